//! The tokens this process's latest attempts sent on one release channel,
//! each with the TTL it asked for: a busy answer that names one of them
//! shows a hold of this process, whose expiry is known without asking.
//!
//! Invariants:
//! - An entry is recorded before its attempt is sent, so a busy answer
//!   naming its token, whenever it is read, finds it (unless it made room
//!   for [`RECENT`] newer ones).
//! - A busy answer naming an entry's token shows that token's hold,
//!   taken before the answer: its key is gone by the entry's TTL (and
//!   [`EXPIRY_RESOLUTION`]) after the grant was seen here, or, while it was
//!   not, after the answer arrived; unless the hold was extended since (a
//!   waiter that then wakes too early looks at it, as for any expiry seen,
//!   and one that finds the bound already past asks at once).
//! - An entry is never removed when its hold ends: a token that holds no
//!   more is never named by a busy answer. The oldest entry makes room for
//!   a new one; a token that fell out costs its waiters one inspection.
//! - Entries are tokens, secrets: never shown ([`HolderToken`]'s `Debug`
//!   shows a prefix).

use std::time::Duration;

use tokio::time::Instant;

use crate::token::HolderToken;
use crate::ttl::EXPIRY_RESOLUTION;

/// How many of the latest attempts are kept. Between an attempt's send and
/// a busy answer naming its token, a handoff sends two or three others
/// (the woken waiter's, the releasing task's next one).
pub(crate) const RECENT: usize = 8;

/// What this process knows of the hold an attempt of its sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SentHold {
    /// The TTL the attempt asked for.
    pub(crate) ttl: Duration,
    /// When its grant was seen here (after the reply), if it was.
    pub(crate) granted: Option<Instant>,
}

impl SentHold {
    /// The latest its key can expire, for a busy answer naming it that
    /// arrived by `now`. `None` when that is past: the hold was extended
    /// (or the clocks disagree), and only asking tells.
    pub(crate) fn expires_by(self, now: Instant) -> Option<Instant> {
        let by = self.granted.unwrap_or(now) + self.ttl + EXPIRY_RESOLUTION;
        (by > now).then_some(by)
    }
}

/// The latest attempts' tokens and holds, oldest overwritten first.
#[derive(Debug, Default)]
pub(crate) struct RecentTokens {
    entries: [Option<(HolderToken, SentHold)>; RECENT],
    /// Where the next entry goes.
    next: usize,
}

impl RecentTokens {
    /// An attempt with `token` and `ttl` is about to be sent. A token sent
    /// again (the next attempt of one acquire) keeps its one entry.
    pub(crate) fn sending(&mut self, token: HolderToken, ttl: Duration) {
        let hold = SentHold { ttl, granted: None };
        match self.entry(token) {
            Some(entry) => *entry = hold,
            None => {
                self.entries[self.next] = Some((token, hold));
                self.next = (self.next + 1) % RECENT;
            }
        }
    }

    /// The attempt that sent `token` got the lease, as seen `at`.
    pub(crate) fn granted(&mut self, token: HolderToken, at: Instant) {
        if let Some(entry) = self.entry(token) {
            entry.granted = Some(at);
        }
    }

    /// What an attempt of this process that sent `token` holds, if it is
    /// one of the latest.
    pub(crate) fn hold_of(&self, token: HolderToken) -> Option<SentHold> {
        self.entries
            .iter()
            .flatten()
            .find(|(t, _)| *t == token)
            .map(|&(_, hold)| hold)
    }

    fn entry(&mut self, token: HolderToken) -> Option<&mut SentHold> {
        self.entries
            .iter_mut()
            .flatten()
            .find(|(t, _)| *t == token)
            .map(|(_, hold)| hold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;

    fn token() -> HolderToken {
        HolderToken::read(Token::generate().unwrap().as_str().as_bytes()).unwrap()
    }

    #[test]
    fn the_latest_tokens_are_found_with_their_ttl_and_the_oldest_make_room() {
        let ttl_of = |recent: &RecentTokens, token| recent.hold_of(token).map(|hold| hold.ttl);
        let mut recent = RecentTokens::default();
        let first = token();
        recent.sending(first, Duration::from_secs(10));
        assert_eq!(ttl_of(&recent, first), Some(Duration::from_secs(10)));
        assert_eq!(ttl_of(&recent, token()), None, "never sent here");

        // Sent again: still one entry, not pushed out by its own resends.
        for _ in 0..RECENT * 2 {
            recent.sending(first, Duration::from_secs(20));
        }
        let second = token();
        recent.sending(second, Duration::from_secs(1));
        assert_eq!(ttl_of(&recent, first), Some(Duration::from_secs(20)));

        for _ in 0..RECENT - 2 {
            recent.sending(token(), Duration::from_secs(1));
        }
        assert!(ttl_of(&recent, first).is_some(), "still among the latest");
        recent.sending(token(), Duration::from_secs(1));
        assert_eq!(ttl_of(&recent, first), None, "made room");
        assert_eq!(ttl_of(&recent, second), Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_hold_expires_by_its_ttl_after_its_grant_or_after_the_answer_until_granted() {
        let ttl = Duration::from_millis(300);
        let mut recent = RecentTokens::default();
        let held = token();
        recent.sending(held, ttl);
        let now = Instant::now();
        let sent = recent.hold_of(held).unwrap();
        assert_eq!(sent.expires_by(now), Some(now + ttl + EXPIRY_RESOLUTION));

        let granted = now;
        recent.granted(held, granted);
        let hold = recent.hold_of(held).unwrap();
        let later = now + Duration::from_millis(200);
        assert_eq!(
            hold.expires_by(later),
            Some(granted + ttl + EXPIRY_RESOLUTION),
            "counted from the grant, not from a later answer"
        );
        // A busy answer at the key's expiry as seen here (one resolution
        // early at most) still waits for the last millisecond.
        assert_eq!(
            hold.expires_by(granted + ttl),
            Some(granted + ttl + EXPIRY_RESOLUTION)
        );
        assert_eq!(
            hold.expires_by(granted + ttl + EXPIRY_RESOLUTION),
            None,
            "past its bound: extended since, ask"
        );

        recent.sending(held, ttl);
        assert_eq!(recent.hold_of(held).unwrap().granted, None, "sent again");
        recent.granted(token(), granted);
        assert_eq!(
            recent.hold_of(held).unwrap().granted,
            None,
            "another's grant"
        );
    }
}
