//! One waiter's interest in a release channel of a notifier (see
//! `channels`): its place in the queue for release wake-ups, and its view
//! of what the channel's waiters share.
//!
//! Invariants:
//! - A waiter is queued for a wake-up from right before the attempt it
//!   covers ([`Subscription::arm`]), so that a release after that attempt
//!   reached Redis wakes it or a waiter queued before it.
//! - A waiter that took a wake-up and leaves without its attempt failing
//!   passes the wake-up on to the next waiter.
//! - Dropping the last subscription of a channel lets the task unsubscribe.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::channels::Shared;
use crate::recent::SentHold;
use crate::seen::{HeldUntil, Signal};
use crate::token::HolderToken;

/// One waiter's interest in a channel; dropping it lets the task unsubscribe
/// when it was the last.
pub(crate) struct Subscription {
    shared: Arc<Shared>,
    channel: Arc<str>,
    signal: watch::Receiver<Signal>,
    released: Arc<Notify>,
    /// In the queue for the next release wake-up, from before the attempt
    /// it covers; `None` once it fired.
    armed: Option<Pin<Box<OwnedNotified>>>,
    /// This waiter took a release wake-up and its attempt has not failed
    /// (yet): if it leaves now (it failed, was dropped, or got a lease that
    /// others may share), the next waiter is woken in its place.
    woken: bool,
    /// The channel's [`Signal::lives`] at the last [`arm`](Self::arm).
    lives_at_arm: u64,
    /// The releases heard on the channel at the last [`arm`](Self::arm)
    /// that recorded a token (see [`sent_here`](Self::sent_here)).
    releases_at_arm: u64,
}

/// What ended a wait early.
pub(crate) enum Event {
    /// A release was announced, and this waiter is the one woken for it.
    Released,
    /// The channel's liveness or the holder as seen here changed.
    Changed,
}

impl Subscription {
    /// A waiter's interest in `channel`, the release channel of `key` (see
    /// [`Shared::join`]).
    pub(crate) fn join(
        shared: &Arc<Shared>,
        key: &Arc<str>,
        channel: &str,
        directed: bool,
    ) -> Option<Subscription> {
        let joined = shared.join(key, channel, directed)?;
        Some(Subscription {
            shared: shared.clone(),
            channel: joined.channel,
            signal: joined.signal,
            released: joined.released,
            armed: None,
            woken: false,
            lives_at_arm: 0,
            releases_at_arm: 0,
        })
    }

    /// Queues for the next release, unless already queued, and marks the
    /// signal as seen; whether the channel is live. Call right before an
    /// attempt; `sending`: its token and TTL, for a kind whose busy answers
    /// naming it are to be known as this process's (see `recent`).
    pub(crate) fn arm(&mut self, sending: Option<(HolderToken, Duration)>) -> bool {
        if sending.is_some() {
            self.releases_at_arm = (self.shared)
                .on_channel(&self.channel, |c| c.sending(sending))
                .unwrap_or(0);
        }
        if self.armed.is_none() {
            let mut armed = Box::pin(self.released.clone().notified_owned());
            // Queued from now on, not only once polled.
            armed.as_mut().enable();
            self.armed = Some(armed);
        }
        let signal = self.signal.borrow_and_update();
        self.lives_at_arm = signal.lives;
        signal.live
    }

    /// Whether the channel's liveness no longer is what the last attempt
    /// saw at [`arm`](Self::arm) (`live_at_arm`): live then, and down now,
    /// or down and up again since (a release in the gap went unheard,
    /// though it is live again by now); or down then and live now. Either
    /// way the waiter must try again.
    pub(crate) fn coverage_changed(&self, live_at_arm: bool) -> bool {
        let signal = self.signal();
        if live_at_arm {
            !signal.live || signal.lives != self.lives_at_arm
        } else {
            signal.live
        }
    }

    fn took_wake_up(&mut self) {
        self.armed = None;
        self.woken = true;
        self.shared.on_channel(&self.channel, |c| c.woken(true));
    }

    /// An attempt of this waiter was answered: `busy`, or it got the lease
    /// (see `Channel::attempt_answered`).
    pub(crate) fn answered(&self, busy: bool) {
        self.shared
            .on_channel(&self.channel, |c| c.attempt_answered(busy));
    }

    /// The attempt after this waiter's wake-up ended: it failed (busy), or
    /// got a lease that uses the wake-up up.
    pub(crate) fn wake_up_used(&mut self) {
        self.attempt_ended();
        self.woken = false;
    }

    /// The attempt after this waiter's wake-up ended, with a lease others
    /// may share (the wake-up is passed on when the waiter is dropped):
    /// busy answers here inspect again.
    pub(crate) fn attempt_ended(&self) {
        if self.woken {
            self.shared.on_channel(&self.channel, |c| c.woken(false));
        }
    }

    pub(crate) fn signal(&self) -> Signal {
        *self.signal.borrow()
    }

    /// Whether this waiter's release wake-up came already (taking it).
    pub(crate) fn released_already(&mut self) -> bool {
        let Some(armed) = self.armed.as_mut() else {
            return false;
        };
        let mut context = Context::from_waker(Waker::noop());
        if armed.as_mut().poll(&mut context).is_pending() {
            return false;
        }
        self.took_wake_up();
        true
    }

    /// Releases heard on the channel so far: taken before an inspection,
    /// given back with what it saw ([`saw_holder`](Self::saw_holder)).
    pub(crate) fn releases_heard(&self) -> u64 {
        (self.shared)
            .on_channel(&self.channel, |c| c.releases)
            .unwrap_or(0)
    }

    /// When a busy answer named `holder`, a token that a recent attempt of
    /// this process sent: what is known of that attempt's hold, and the
    /// releases heard before the attempt this answer replied to (what the
    /// answer shows is as of then at the earliest).
    pub(crate) fn sent_here(&self, holder: HolderToken) -> Option<(SentHold, u64)> {
        let hold = (self.shared)
            .on_channel(&self.channel, |c| c.recent.hold_of(holder))
            .flatten()?;
        Some((hold, self.releases_at_arm))
    }

    /// This process's attempt that sent `token` got the lease, as seen `at`:
    /// a busy answer naming it shows a key gone by its TTL after `at`.
    pub(crate) fn granted(&self, token: HolderToken, at: Instant) {
        self.shared
            .on_channel(&self.channel, |c| c.recent.granted(token, at));
    }

    /// The holder as seen by a waiter of this process since the last
    /// release heard, if it has not expired by `now`: the same busy period,
    /// so a busy answer needs no inspection of its own.
    pub(crate) fn known_holder(&self, now: Instant) -> Option<HeldUntil> {
        (self.shared)
            .on_channel(&self.channel, |c| c.known_holder(now))
            .flatten()
    }

    /// Tells the channel's other waiters who holds the lock now (`None`:
    /// not known), as seen after `as_of` releases were heard (see
    /// `Channel::saw_holder`).
    pub(crate) fn saw_holder(&self, holder: Option<HeldUntil>, as_of: u64) {
        self.shared
            .on_channel(&self.channel, |c| c.saw_holder(holder, as_of));
    }

    /// Completes at this waiter's release wake-up, or when the signal
    /// changes after the last mark.
    pub(crate) async fn event(&mut self) -> Event {
        let released = async {
            match self.armed.as_mut() {
                Some(armed) => armed.as_mut().await,
                None => std::future::pending().await,
            }
        };
        let changed = async {
            if self.signal.changed().await.is_err() {
                // The sender lives while this waiter is counted; should it
                // ever be gone, the caller's timer ends the wait.
                std::future::pending::<()>().await;
            }
        };
        let event = tokio::select! {
            () = released => Event::Released,
            () = changed => Event::Changed,
        };
        if let Event::Released = event {
            self.took_wake_up();
        }
        event
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.woken {
            self.shared.on_channel(&self.channel, |c| c.woken(false));
            // Pass the wake-up on. (An armed one that fired but was never
            // taken is passed on by tokio when it is dropped.)
            self.released.notify_one();
        }
        self.shared.leave(&self.channel);
    }
}

#[cfg(test)]
mod tests {
    use redis::{PushInfo, PushKind, Value};

    use super::*;

    fn subscribed(channel: &str) -> PushInfo {
        PushInfo {
            kind: PushKind::SSubscribe,
            data: vec![Value::BulkString(channel.as_bytes().to_vec())],
        }
    }

    /// A subscription killed and back (a new connection, subscribed again)
    /// before the waiter looks leaves it live, but a release in between
    /// went unheard: the attempt it covered is covered no more. Looking at
    /// liveness alone, the waiter slept on to the holder's TTL (the Cluster
    /// kill test, under load).
    #[test]
    fn a_channel_down_and_up_again_since_the_attempt_covers_it_no_more() {
        let shared = Arc::new(Shared::default());
        let key: Arc<str> = "k".into();
        let mut waiter = Subscription::join(&shared, &key, "c", false).expect("a new channel");
        assert!(!waiter.arm(None), "not subscribed yet");
        let epoch = shared.next_epoch();
        shared.on_push(epoch, subscribed("c"));
        assert!(waiter.coverage_changed(false), "came up: try again");
        assert!(waiter.arm(None), "live");
        assert!(!waiter.coverage_changed(true), "covered");

        shared.on_push(
            epoch,
            PushInfo {
                kind: PushKind::Disconnection,
                data: Vec::new(),
            },
        );
        assert!(waiter.coverage_changed(true), "down");
        let epoch = shared.next_epoch();
        shared.on_push(epoch, subscribed("c"));
        assert!(waiter.signal().live, "back");
        assert!(
            waiter.coverage_changed(true),
            "down and up since the attempt"
        );

        assert!(waiter.arm(None));
        assert!(
            !waiter.coverage_changed(true),
            "covered from the next attempt"
        );
    }
}
