//! Every line lockrun prints goes through [`say`], which blanks the
//! passwords of every URL it was given (arguments and `$REDIS_URL`) and the
//! tokens of the holds it inherited (`LOCKRUN_HOLDS`), so no path (a clap
//! error echoing an argument, a redis error naming its URL) prints one.

use std::ffi::OsString;
use std::sync::OnceLock;

static SECRETS: OnceLock<Vec<String>> = OnceLock::new();

/// Remembers the secrets in lockrun's arguments and `$REDIS_URL`: the
/// user-info part (`user:password`) of anything that looks like a URL, and
/// its password, raw and percent-decoded; and `tokens`.
pub fn remember(args: &[OsString], tokens: Vec<String>) {
    let env = std::env::var_os("REDIS_URL");
    let mut secrets = tokens;
    for text in args.iter().chain(env.as_ref()) {
        let text = text.to_string_lossy();
        let Some((_, rest)) = text.split_once("://") else {
            continue;
        };
        let Some((userinfo, _)) = rest.rsplit_once('@') else {
            continue;
        };
        let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        for secret in [userinfo, password] {
            if !secret.is_empty() {
                secrets.push(secret.to_owned());
                secrets.push(percent_decoded(secret));
            }
        }
    }
    // Longest first, so that a password inside the user-info is blanked
    // with it.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let _ = SECRETS.set(secrets);
}

/// `text` with every remembered secret replaced by `***`.
pub fn scrub(text: &str) -> String {
    let mut text = text.to_owned();
    for secret in SECRETS.get().into_iter().flatten() {
        if !secret.is_empty() {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// Prints `lockrun: <message>` on stderr, secrets blanked.
pub fn say(message: impl std::fmt::Display) {
    eprintln!("lockrun: {}", scrub(&message.to_string()));
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
