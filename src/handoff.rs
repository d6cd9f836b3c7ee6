//! `Handoff`: a hold's proof handed to another process (lockrun's nested
//! runs), and the one-round-trip check that the hold is still live.
//!
//! Invariants:
//! - A handoff carries the hold's token, which is a secret: `Debug` shows
//!   a prefix only, and nothing here prints or logs it.
//! - A check reads only (`GET` on every node); it never extends, releases
//!   or re-creates anything. The holder keeps renewal and release.

use std::fmt;

use crate::error::{Error, Result};
use crate::guard::LockGuard;
use crate::lock::Lock;
use crate::token::{self, Token};

/// Hex digits of the token that `Debug` shows (as a token's `Debug`).
const SHOWN_HEX_DIGITS: usize = 6;

/// Proof of a live hold, for a process the holder trusts with it: the key,
/// the hold's token, and its fence. The holder gets one from
/// [`LockGuard::handoff`](crate::LockGuard::handoff) and passes it on (the
/// `lockrun` binary passes it to its command's environment); the receiver
/// checks with [`Lock::is_held_by`] that the hold still lives, and then
/// works as part of the holder, leaving renewal and release to it.
///
/// **The token is a secret.** Whoever has it can release or extend the
/// hold (the release and extend scripts check only the token), and can
/// pass for part of the holder: give it only to what you would trust with
/// the lock itself, such as the child processes of the holder's own work.
/// `Debug` shows a prefix only; [`token`](Handoff::token) is for the wire
/// or an environment variable, never for a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Handoff {
    key: String,
    token: String,
    fence: Option<u64>,
}

impl Handoff {
    pub(crate) fn of(key: &str, token: &Token, fence: Option<u64>) -> Handoff {
        Handoff {
            key: key.to_owned(),
            token: token.as_str().to_owned(),
            fence,
        }
    }

    /// A handoff from its parts, as another process received them.
    ///
    /// Fails with [`Error::InvalidArgument`] for an empty key, or a token
    /// that is not one of this crate's (40 lowercase hex digits); the error
    /// never shows the token.
    ///
    /// ```
    /// let bad = redis_mutex::Handoff::new("jobs", "not-a-token", None).unwrap_err();
    /// assert!(bad.to_string().contains("token"));
    /// ```
    pub fn new(
        key: impl Into<String>,
        token: impl Into<String>,
        fence: Option<u64>,
    ) -> Result<Handoff> {
        let key = key.into();
        let token = token.into();
        if key.is_empty() {
            return Err(Error::invalid("key", "a handoff's key is empty"));
        }
        if !token::has_token_format(token.as_bytes()) {
            return Err(Error::invalid(
                "token",
                format!(
                    "a handoff's token must be 40 lowercase hex digits (this crate's tokens); got {} characters",
                    token.len()
                ),
            ));
        }
        Ok(Handoff { key, token, fence })
    }

    /// The key of the hold.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The hold's fence, when its lock fences.
    pub fn fence(&self) -> Option<u64> {
        self.fence
    }

    /// The hold's token: a secret (see [`Handoff`]). For the receiver's
    /// process only; never print or log it.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.token.get(..SHOWN_HEX_DIGITS).unwrap_or_default();
        f.debug_struct("Handoff")
            .field("key", &self.key)
            .field("token", &format_args!("{shown}…"))
            .field("fence", &self.fence)
            .finish()
    }
}

impl LockGuard {
    /// This hold's proof for another process (see [`Handoff`]); it carries
    /// the token, a secret. For a guard of an [`Owner`](crate::Owner)'s
    /// hold, the proof of that one hold.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// let handoff = guard.handoff();
    /// std::process::Command::new("./child")
    ///     .env("MY_LOCK_TOKEN", handoff.token()) // a child trusted with the lock
    ///     .status()
    ///     .expect("the child ran");
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn handoff(&self) -> Handoff {
        Handoff::of(self.key(), self.token(), self.fence())
    }
}

impl Lock {
    /// Whether the hold `handoff` proves is still live on this lock's
    /// servers: the key holds its token (on a majority of a Redlock's
    /// nodes). One round trip (`GET`), which only reads. `Ok(false)` for a
    /// handoff of another key, or a hold that ended, expired or was taken.
    ///
    /// The answer is already old when it arrives: the holder may lose the
    /// lock right after. A receiver that must stop when the hold is lost
    /// relies on the holder for it (lockrun stops its command's whole
    /// process group, nested runs included).
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock, guard: redis_mutex::LockGuard) -> redis_mutex::Result<()> {
    /// let handoff = guard.handoff();
    /// assert!(lock.is_held_by(&handoff).await?);
    /// guard.release().await?;
    /// assert!(!lock.is_held_by(&handoff).await?);
    /// # Ok(()) }
    /// ```
    pub async fn is_held_by(&self, handoff: &Handoff) -> Result<bool> {
        if handoff.key != self.key() {
            return Ok(false);
        }
        let engine = self.engine();
        engine.topology.holds(&engine.kind, &handoff.token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_never_show_the_token() {
        let token = Token::generate().unwrap();
        let handoff = Handoff::of("jobs", &token, Some(7));
        let shown = format!("{handoff:?}");
        assert!(!shown.contains(token.as_str()), "{shown}");
        assert!(shown.contains(&token.as_str()[..SHOWN_HEX_DIGITS]));
        assert_eq!(
            Handoff::new("jobs", token.as_str(), Some(7)).unwrap(),
            handoff
        );

        let almost = &token.as_str()[..39];
        let error = Handoff::new("jobs", almost, None).unwrap_err().to_string();
        assert!(!error.contains(almost), "{error}");
        assert!(Handoff::new("", token.as_str(), None).is_err());
        assert!(Handoff::new("jobs", token.as_str().to_uppercase(), None).is_err());
    }
}
