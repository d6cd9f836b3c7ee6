//! Nested runs: a command run under `lockrun --key K` that runs
//! `lockrun --key K` itself (a deploy script calling another script that
//! locks the same thing) re-enters the outer hold instead of waiting for
//! it.
//!
//! The outer lockrun gives its command `LOCKRUN_HOLDS`: its own hold and
//! those it inherited, each as the key (hex) and the hold's token (and
//! fence). A lockrun whose key is there asks Redis whether the key still
//! holds that token (one `GET`, a majority of a Redlock's nodes), and if so
//! runs its command at once, with no lock of its own: renewal and release
//! stay with the lockrun that took the lock, which stops its whole process
//! group (this lockrun and its command's group included) if the lock is
//! lost. If the key no longer holds the token, the parent lost the lock,
//! and the nested run is refused (70) instead of waiting or running
//! unprotected. A key that is not there (another key, or a process that
//! did not inherit the variable) is acquired as before.
//!
//! Trust: the token is the lock's secret. Whoever can read the command's
//! environment (the command itself, its user's processes through
//! `/proc/PID/environ`, root) can release or extend the lock, and can run
//! a nested lockrun that skips the wait: the same trust as the command,
//! which holds the lock anyway. The token is never printed (lockrun blanks
//! it in every message); run something you do not trust with the lock
//! under `env -u LOCKRUN_HOLDS`.

use std::fmt::Write;

use redis_mutex::Handoff;

use crate::lease;

/// The variable the holds are passed in.
pub const HOLDS_ENV: &str = "LOCKRUN_HOLDS";

/// What the command runs under: this lockrun's own hold, or one inherited
/// from a lockrun above it.
#[derive(Debug)]
pub enum Held {
    Own(lease::Held),
    Inherited(Handoff),
}

impl Held {
    pub fn key(&self) -> &str {
        match self {
            Held::Own(guard) => guard.key(),
            Held::Inherited(handoff) => handoff.key(),
        }
    }

    pub fn fence(&self) -> Option<u64> {
        match self {
            Held::Own(guard) => guard.fence(),
            Held::Inherited(handoff) => handoff.fence(),
        }
    }

    /// Completes when our own hold is lost; never for an inherited one
    /// (its holder stops us then).
    pub async fn lost(&self) {
        match self {
            Held::Own(guard) => guard.lost().await,
            Held::Inherited(_) => std::future::pending().await,
        }
    }

    pub fn is_lost(&self) -> bool {
        match self {
            Held::Own(guard) => guard.is_lost(),
            Held::Inherited(_) => false,
        }
    }

    /// Releases our own hold; an inherited one is its holder's to release.
    pub async fn release(self) -> redis_mutex::Result<()> {
        match self {
            Held::Own(guard) => guard.release().await,
            Held::Inherited(_) => Ok(()),
        }
    }

    /// `LOCKRUN_HOLDS` for the command: the inherited holds, with ours.
    pub fn for_command(&self) -> String {
        // Only an exclusive hold (a plain lock on the key) can be re-entered
        // by a child: a shared hold or a permit passes on what it inherited.
        let ours = match self {
            Held::Own(held) => held.handoff(),
            Held::Inherited(handoff) => Some(handoff.clone()),
        };
        let mut holds: Vec<Handoff> = inherited()
            .into_iter()
            .filter(|held| ours.as_ref().is_none_or(|ours| held.key() != ours.key()))
            .collect();
        holds.extend(ours);
        let mut text = String::new();
        for (n, held) in holds.iter().enumerate() {
            if n > 0 {
                text.push(',');
            }
            text.push_str(&encode(held));
        }
        text
    }
}

pub fn inherited_hold(key: &str) -> Option<Handoff> {
    inherited().into_iter().find(|held| held.key() == key)
}

/// The tokens in `LOCKRUN_HOLDS`, for lockrun's messages to blank.
pub fn secrets() -> Vec<String> {
    inherited()
        .iter()
        .map(|held| held.token().to_owned())
        .collect()
}

/// Every well-formed hold in `LOCKRUN_HOLDS` (none without it). A
/// malformed entry proves nothing and is skipped: its key is then
/// acquired as if nothing were inherited.
fn inherited() -> Vec<Handoff> {
    let Some(text) = std::env::var_os(HOLDS_ENV) else {
        return Vec::new();
    };
    let Some(text) = text.to_str() else {
        return Vec::new();
    };
    text.split(',').filter_map(decode).collect()
}

/// `<key in hex>:<token>[:<fence>]`: hex, so that any key (commas,
/// colons, any bytes) fits.
fn encode(held: &Handoff) -> String {
    let mut text = String::with_capacity(held.key().len() * 2 + 64);
    for byte in held.key().bytes() {
        let _ = write!(text, "{byte:02x}");
    }
    text.push(':');
    text.push_str(held.token());
    if let Some(fence) = held.fence() {
        let _ = write!(text, ":{fence}");
    }
    text
}

fn decode(entry: &str) -> Option<Handoff> {
    let mut parts = entry.split(':');
    let key = parts.next()?;
    let token = parts.next()?;
    let fence = match parts.next() {
        None => None,
        Some(fence) => Some(fence.parse().ok()?),
    };
    if parts.next().is_some() || key.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..key.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(key.get(at..at + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let key = String::from_utf8(bytes).ok()?;
    Handoff::new(key, token, fence).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_round_trip_through_their_text() {
        let token = "0123456789abcdef0123456789abcdef01234567";
        for (key, fence) in [
            ("deploy:web", Some(7)),
            ("a,b:c{d}", None),
            ("ключ", Some(0)),
        ] {
            let held = Handoff::new(key, token, fence).unwrap();
            let text = encode(&held);
            assert!(!text.contains(','), "{text}");
            assert_eq!(decode(&text), Some(held));
        }
        for bad in [
            "",
            "6b",
            "6b:short",
            "6:0123456789abcdef0123456789abcdef01234567",
            "zz:0123456789abcdef0123456789abcdef01234567",
            "6b:0123456789abcdef0123456789abcdef01234567:x",
            "6b:0123456789abcdef0123456789abcdef01234567:1:2",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
