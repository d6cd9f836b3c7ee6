//! One release channel as one notifier sees it: the key it serves, its
//! waiters here, the holder as last seen, the releases heard, and (for a
//! mutex on one node) the route of directed wake-ups.
//!
//! Invariants:
//! - `releases` counts every release heard, named for any process or for
//!   none, and every watchdog that fired: a holder seen `as_of` an older
//!   count may have released since.
//! - A release wakes at most one waiter here (`released` is FIFO), and none
//!   when it is named for another process.
//! - A channel with a route lingers (no waiters, still subscribed) at most
//!   [`route::LINGER`], and until its leave is announced.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::recent::RecentTokens;
use crate::route::{self, Announcement, Heard, Message, Route};
use crate::seen::{self, HeldUntil, Signal};
use crate::token::HolderToken;

pub(crate) struct Channel {
    /// The key whose releases the channel announces.
    pub(crate) key: Arc<str>,
    pub(crate) waiters: usize,
    /// Liveness and the holder as last seen, for all the channel's waiters.
    pub(crate) signal: watch::Sender<Signal>,
    /// One wake-up per announced release: the waiter here that has waited
    /// longest.
    pub(crate) released: Arc<Notify>,
    /// The server refused the subscription (an ACL without the channel):
    /// not asked again while the channel has waiters, who poll meanwhile.
    pub(crate) refused: bool,
    /// Releases heard on the channel so far.
    pub(crate) releases: u64,
    /// `releases` when the holder in `signal` was last seen: that holder
    /// is still the holder as far as this process knows while no release
    /// was heard since (one busy period), and until its expiry.
    pub(crate) holder_as_of: u64,
    /// `releases` when a waiter here last took a release wake-up, while
    /// its attempt has not ended: that attempt shows the holder after those
    /// releases (it gets the lease, or inspects its holder), so a busy
    /// answer here meanwhile needs no inspection of its own.
    pub(crate) woken_as_of: Option<u64>,
    /// The tokens this process's latest attempts on the channel sent.
    pub(crate) recent: RecentTokens,
    /// Where releases are named for one process (a mutex on one node).
    pub(crate) route: Option<Route>,
    /// With a route: this process's inbox on the channel, where releases
    /// named for it arrive (see [`route::inbox`]).
    pub(crate) inbox: Option<Arc<str>>,
    /// The server refused to subscribe the inbox: not asked again while the
    /// channel has waiters (releases named for this process then reach it
    /// as plain releases on the channel: nobody heard them in the inbox).
    pub(crate) inbox_refused: bool,
    /// Since when a channel with a route has had no waiters: it stays
    /// subscribed, and keeps its view, for [`route::LINGER`], so that a
    /// process whose waiters come and go does not subscribe again each
    /// time, and its holder's release can still name the next process.
    pub(crate) idle_since: Option<Instant>,
    /// The process a release named, whose watchdog fired: the next
    /// attempt here tells the route whether the wake-up was taken (busy)
    /// or lost (see [`Route::looked`]). Cleared by a release heard.
    pub(crate) suspect: Option<Box<str>>,
}

/// What a message heard on a channel asks of the subscription task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ForTask {
    Nothing,
    /// Work to look at: a watchdog armed, or an answer due.
    Wake,
    /// Publish this release on the channel, passed on by this process,
    /// which was named and waits there no more.
    Forward(String),
}

impl Channel {
    /// A channel for `key` with no waiters yet; `live`: already confirmed
    /// on the current connection; `inbox`: releases may name one process,
    /// this one in that inbox.
    pub(crate) fn new(key: Arc<str>, live: bool, inbox: Option<Arc<str>>) -> Channel {
        Channel {
            key,
            waiters: 0,
            signal: watch::channel(Signal {
                live,
                lives: 0,
                holder: None,
            })
            .0,
            released: Arc::new(Notify::new()),
            refused: false,
            releases: 0,
            holder_as_of: 0,
            woken_as_of: None,
            recent: RecentTokens::default(),
            route: inbox.is_some().then(Route::default),
            inbox,
            inbox_refused: false,
            idle_since: None,
            suspect: None,
        }
    }

    /// A waiter joins; whether this process is to announce that it waits.
    pub(crate) fn join(&mut self) -> bool {
        self.waiters += 1;
        self.idle_since = None;
        let Some(route) = self.route.as_mut() else {
            return false;
        };
        route.set_waiting_here(true);
        self.waiters == 1
    }

    /// A waiter leaves; whether the channel is to go now (it has no route
    /// to linger for) rather than linger.
    pub(crate) fn leave(&mut self, now: Instant) -> bool {
        self.waiters = self.waiters.saturating_sub(1);
        if self.waiters > 0 {
            return false;
        }
        let Some(route) = self.route.as_mut() else {
            return true;
        };
        // Lingers; the task announces the leave.
        route.set_waiting_here(false);
        self.idle_since = Some(now);
        false
    }

    /// Takes in a message heard here (`me`: this process's id).
    pub(crate) fn heard(&mut self, message: Message<'_>, me: &str, now: Instant) -> ForTask {
        let heard = match self.route.as_mut() {
            Some(route) => route.heard(message, me, now),
            None => Route::heard_undirected(message),
        };
        if matches!(heard, Heard::Wake | Heard::Named { .. }) {
            self.suspect = None;
        }
        match heard {
            // Named for this process, which waits here no more (it
            // lingers): pass it on, to the next process it knows of.
            Heard::Wake if self.waiters == 0 => {
                self.releases += 1;
                if message != Message::Named(me) {
                    return ForTask::Nothing;
                }
                let next = self.route.as_ref().and_then(|route| route.next(me, now));
                ForTask::Forward(next.map(route::named).unwrap_or_default())
            }
            // As any release: the woken waiter's busy answer (another took
            // the lease first) asks who holds it.
            Heard::Wake => {
                self.releases += 1;
                self.released.notify_one();
                ForTask::Nothing
            }
            Heard::Named { armed } => {
                // Held by a waiter of the named process, for all this one
                // knows: busy answers here need no inspection meanwhile,
                // and the watchdog asks if nothing more is heard.
                self.releases += 1;
                self.holder_as_of = self.releases;
                seen::held_at_least_until(&self.signal, now + route::ASSUMED_HOLD);
                if armed {
                    ForTask::Wake
                } else {
                    ForTask::Nothing
                }
            }
            Heard::Newcomer => ForTask::Wake,
            Heard::Nothing => ForTask::Nothing,
        }
    }

    /// Wakes one waiter if the watchdog is due by `now`, as for a release,
    /// without the holder known: it looks at the lock.
    pub(crate) fn fire_watchdog(&mut self, now: Instant) {
        if let Some(suspect) = self.route.as_mut().and_then(|route| route.fire(now)) {
            self.suspect = Some(suspect);
            self.releases += 1;
            self.released.notify_one();
        }
    }

    /// An attempt here was answered: `busy`, or it got the lease. After a
    /// watchdog fired, that says whether the named wake-up was taken.
    pub(crate) fn attempt_answered(&mut self, busy: bool) {
        if let (Some(suspect), Some(route)) = (self.suspect.take(), self.route.as_mut()) {
            route.looked(&suspect, busy);
        }
    }

    /// Whether the channel has lingered long enough without waiters, and
    /// announced its leave if it was to: it can go.
    pub(crate) fn lingered(&self, now: Instant) -> bool {
        let done = (self.idle_since).is_some_and(|since| since + route::LINGER <= now);
        let announced = (self.route.as_ref()).is_none_or(|r| r.to_announce(now).is_none());
        done && announced && self.waiters == 0
    }

    /// The announcement due by `now`, if any (`me`: this process's id),
    /// taken to be published (see [`Route::take_announcement`]).
    pub(crate) fn take_announcement(&mut self, me: &str, now: Instant) -> Option<String> {
        Some(match self.route.as_mut()?.take_announcement(now)? {
            Announcement::Waiting => route::waiting(me),
            Announcement::Answer => route::answer(me),
            Announcement::Leaving => route::leaving(me),
        })
    }

    /// An attempt here is about to be sent, with `token` and `ttl` when a
    /// busy answer naming that token is to be known as this process's (see
    /// `recent`); the releases heard so far.
    pub(crate) fn sending(&mut self, token: Option<(HolderToken, Duration)>) -> u64 {
        if let Some((token, ttl)) = token {
            self.recent.sending(token, ttl);
        }
        self.releases
    }

    /// A waiter here took a release wake-up (`true`), or its attempt after
    /// one ended (`false`): see `woken_as_of`.
    pub(crate) fn woken(&mut self, woken: bool) {
        self.woken_as_of = woken.then_some(self.releases);
    }

    /// Tells the waiters here who holds the lock now (`None`: not known),
    /// as seen after `as_of` releases were heard; only a change that can
    /// end a sleep sooner wakes them (see `seen`).
    pub(crate) fn saw_holder(&mut self, holder: Option<HeldUntil>, as_of: u64) {
        self.holder_as_of = as_of;
        seen::saw_holder(&self.signal, holder);
    }

    /// The holder as seen by a waiter here since the last release, or as
    /// last seen while the waiter woken for the last release will show
    /// the new one; if it has not expired by `now`. Either way the same
    /// busy period, bounded by that expiry: a busy answer needs no
    /// inspection of its own.
    pub(crate) fn known_holder(&self, now: Instant) -> Option<HeldUntil> {
        let holder = self.signal.borrow().holder?;
        let seen = self.holder_as_of == self.releases;
        let shown = self.woken_as_of == Some(self.releases);
        ((seen || shown) && holder.expires > now).then_some(holder)
    }

    /// When the task must next wake for this channel: its watchdog, its
    /// next announcement when `subscribed`, or the end of its lingering.
    pub(crate) fn next_due(&self, subscribed: bool) -> Option<Instant> {
        let route = self.route.as_ref().and_then(|r| r.task_due(subscribed));
        let linger = self.idle_since.map(|since| since + route::LINGER);
        route.into_iter().chain(linger).min()
    }
}
