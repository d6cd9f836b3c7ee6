//! What a process's waiters on one release channel share besides the
//! wake-ups: whether the channel is live, and the holder as last seen; and
//! which changes of it wake the sleepers among them.
//!
//! Invariant: a change wakes the sleepers only when it can end a sleep
//! sooner; any other is recorded, and a sleeper reads it when its timer
//! fires. Waking every waiter of the process on every handoff made a
//! handoff cost O(waiters) task wake-ups.

use tokio::sync::watch;
use tokio::time::Instant;

/// What a channel's waiters share, besides the release wake-ups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Signal {
    /// Subscribed, on a connection that is up: a release will be heard.
    pub(crate) live: bool,
    /// How many times the channel went live so far. A waiter that counted
    /// on it being live is covered only while this is still what it saw:
    /// down and up again in between, a release in the gap went unheard.
    pub(crate) lives: u64,
    /// The holder, as last seen by a waiter here.
    pub(crate) holder: Option<HeldUntil>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct HeldUntil {
    /// When its key expires unless it is extended, at the latest.
    pub(crate) expires: Instant,
    /// Whether it announces its release (a client of this crate).
    pub(crate) announces: bool,
}

/// Whether waiters asleep on `was` (until its expiry, or polling when it
/// does not announce its release or is not known) must look again now that
/// the holder is `now`: it ends sooner, it stopped announcing, or it became
/// known (the sleepers may be polling) or unknown (they must poll).
fn wakes_sleepers(was: Option<HeldUntil>, now: Option<HeldUntil>) -> bool {
    match (was, now) {
        (Some(was), Some(now)) => now.expires < was.expires || (was.announces && !now.announces),
        (None, None) => false,
        _ => true,
    }
}

/// Liveness changed: notifies only a change. A waiter that did not count
/// on the channel being live has nothing to learn from it going down, and
/// one that did is notified when it goes down.
pub(crate) fn set_live(signal: &watch::Sender<Signal>, live: bool) {
    signal.send_if_modified(|signal| {
        let changed = signal.live != live;
        if changed && live {
            signal.lives += 1;
        }
        signal.live = live;
        changed
    });
}

/// A waiter saw `holder` (`None`: not known). Wakes the sleepers only when
/// [`wakes_sleepers`] says so.
pub(crate) fn saw_holder(signal: &watch::Sender<Signal>, holder: Option<HeldUntil>) {
    signal.send_if_modified(|signal| {
        let wake = wakes_sleepers(signal.holder, holder);
        signal.holder = holder;
        wake
    });
}

/// The lease is taken to be held, by a client that announces its release,
/// until `until` at least (or the expiry seen, if later). Wakes no one.
pub(crate) fn held_at_least_until(signal: &watch::Sender<Signal>, until: Instant) {
    signal.send_if_modified(|signal| {
        let expires = signal.holder.map_or(until, |held| held.expires.max(until));
        signal.holder = Some(HeldUntil {
            expires,
            announces: true,
        });
        false
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A handoff to a holder whose lease ends later wakes no sleeper (the
    /// usual case, which woke every waiter of the process before); an
    /// earlier end, a holder that stops announcing, or a holder becoming
    /// known or unknown does.
    #[test]
    fn only_a_holder_change_that_can_end_a_sleep_sooner_wakes_sleepers() {
        let now = Instant::now();
        let held = |secs: u64, announces: bool| {
            Some(HeldUntil {
                expires: now + Duration::from_secs(secs),
                announces,
            })
        };
        assert!(!wakes_sleepers(held(10, true), held(20, true)), "later");
        assert!(!wakes_sleepers(held(10, true), held(10, true)), "the same");
        assert!(
            !wakes_sleepers(held(10, false), held(20, true)),
            "now announces"
        );
        assert!(!wakes_sleepers(None, None));
        assert!(wakes_sleepers(held(20, true), held(10, true)), "sooner");
        assert!(
            wakes_sleepers(held(10, true), held(20, false)),
            "stops announcing"
        );
        assert!(wakes_sleepers(held(10, true), None), "unknown");
        assert!(wakes_sleepers(None, held(10, true)), "known");
    }
}
