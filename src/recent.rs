//! The tokens this process's latest attempts sent on one release channel,
//! each with the TTL it asked for: a busy answer that names one of them
//! shows a hold of this process, whose expiry is known without asking.
//!
//! Invariants:
//! - An entry is recorded before its attempt is sent, so a busy answer
//!   naming its token, whenever it is read, finds it (unless it made room
//!   for [`RECENT`] newer ones).
//! - A busy answer naming an entry's token shows that token's hold,
//!   taken before the answer: its key expires at most the entry's TTL after
//!   the answer arrived, unless the hold was extended since (a waiter that
//!   then wakes too early looks at it, as for any expiry seen).
//! - An entry is never removed when its hold ends: a token that holds no
//!   more is never named by a busy answer. The oldest entry makes room for
//!   a new one; a token that fell out costs its waiters one inspection.
//! - Entries are tokens, secrets: never shown ([`HolderToken`]'s `Debug`
//!   shows a prefix).

use std::time::Duration;

use crate::token::HolderToken;

/// How many of the latest attempts are kept. Between an attempt's send and
/// a busy answer naming its token, a handoff sends two or three others
/// (the woken waiter's, the releasing task's next one).
pub(crate) const RECENT: usize = 8;

/// The latest attempts' tokens and TTLs, oldest overwritten first.
#[derive(Debug, Default)]
pub(crate) struct RecentTokens {
    entries: [Option<(HolderToken, Duration)>; RECENT],
    /// Where the next entry goes.
    next: usize,
}

impl RecentTokens {
    /// An attempt with `token` and `ttl` is about to be sent. A token sent
    /// again (the next attempt of one acquire) keeps its one entry.
    pub(crate) fn sending(&mut self, token: HolderToken, ttl: Duration) {
        if let Some(entry) = self.entries.iter_mut().flatten().find(|(t, _)| *t == token) {
            entry.1 = ttl;
            return;
        }
        self.entries[self.next] = Some((token, ttl));
        self.next = (self.next + 1) % RECENT;
    }

    /// The TTL an attempt of this process asked for with `token`, if it is
    /// one of the latest.
    pub(crate) fn ttl_of(&self, token: HolderToken) -> Option<Duration> {
        self.entries
            .iter()
            .flatten()
            .find(|(t, _)| *t == token)
            .map(|&(_, ttl)| ttl)
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
        let mut recent = RecentTokens::default();
        let first = token();
        recent.sending(first, Duration::from_secs(10));
        assert_eq!(recent.ttl_of(first), Some(Duration::from_secs(10)));
        assert_eq!(recent.ttl_of(token()), None, "never sent here");

        // Sent again: still one entry, not pushed out by its own resends.
        for _ in 0..RECENT * 2 {
            recent.sending(first, Duration::from_secs(20));
        }
        let second = token();
        recent.sending(second, Duration::from_secs(1));
        assert_eq!(recent.ttl_of(first), Some(Duration::from_secs(20)));

        for _ in 0..RECENT - 2 {
            recent.sending(token(), Duration::from_secs(1));
        }
        assert!(recent.ttl_of(first).is_some(), "still among the latest");
        recent.sending(token(), Duration::from_secs(1));
        assert_eq!(recent.ttl_of(first), None, "made room");
        assert_eq!(recent.ttl_of(second), Some(Duration::from_secs(1)));
    }
}
