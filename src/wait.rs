//! The waiting part of one acquire: between a busy answer and the next
//! attempt, woken by the holder's release where the topology offers
//! wake-ups, polling under the wait policy where it does not.
//!
//! Invariants:
//! - A waiter relies on a release wake-up only for an attempt it sent while
//!   its channel was live, having queued for the wake-up and marked the
//!   liveness as seen just before sending it ([`Subscription::arm`]): a
//!   release after that attempt reached Redis then publishes after the
//!   subscription was confirmed, so its message wakes this waiter or one
//!   queued before it, or the disconnection that lost it notifies it. A
//!   channel that went down and came back since the attempt
//!   ([`Subscription::coverage_changed`]) covers it no more, even if the
//!   waiter only looks once it is live again.
//! - A waiter subscribes after its first busy answer (or joins before its
//!   first attempt when the channel is live already); a subscription that
//!   comes up (or back) makes it try again at once, covered from then on.
//! - Expiry is not announced: every wait is bounded by the holder's expiry
//!   as last seen here (asked after a busy answer, never on the uncontended
//!   path, shared with the channel's other waiters). A busy answer asks
//!   only when no waiter here saw the holder since the last release heard
//!   (one inspection per busy period and process, not one per waiter), and
//!   not when it names a token a recent attempt here sent, whose TTL is
//!   known (see `recent`). A holder that does not
//!   announce (another library), an unknown holder, and wake-ups that are
//!   not complete (one node of a Redlock) are also polled for under the
//!   wait policy's backoff.
//! - A wait never ends past the wait policy's deadline, nor past the
//!   kind's [`refresh_every`](Kind::refresh_every): a waiter whose mark
//!   lives by its attempts keeps it alive while it waits.
//! - One release wakes one waiter per process, or in one named process
//!   (see `route`). A woken waiter that leaves
//!   without the lease passes the wake-up on; one that got an exclusive
//!   lease keeps it and shows the others the new holder's TTL instead
//!   ([`Waiter::acquired`]), so that none waits past it.
//! - A waiter listens on the kind's channel, or on its own when the kind
//!   names one for its token ([`Kind::waiter_channel`]).

use std::borrow::Cow;
use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

use crate::kind::{Holder, Kind, Named};
use crate::retry::Backoff;
use crate::seen::HeldUntil;
use crate::subscription::{Event, Subscription};
use crate::token::HolderToken;
use crate::topology::WakeUps;
use crate::ttl::EXPIRY_RESOLUTION;

/// A wait this long is as good as endless: instants past it are not
/// computed (they need not fit in an `Instant`). Far above any lease
/// ([`MAX_TTL`](crate::MAX_TTL)) or backoff step.
const AS_GOOD_AS_NEVER: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `now + wait`, for a wait of any length: at most a year ahead.
fn after(now: Instant, wait: Duration) -> Instant {
    now + wait.min(AS_GOOD_AS_NEVER)
}

/// The waiting part of one `acquire`.
pub(crate) struct Waiter<'a, K> {
    kind: &'a K,
    /// Where this waiter hears releases.
    channel: Cow<'a, str>,
    backoff: Backoff,
    wake_ups: Option<WakeUps<'a>>,
    subscription: Option<Subscription>,
    /// Whether the channel was live when the last attempt was sent.
    live: bool,
    /// Whether releases on the channel may name one process (see `route`).
    directed: bool,
    /// The acquire's TTL, when its token and TTL are recorded before each
    /// attempt that a subscription covers, so that a busy answer naming
    /// that token is known as this process's hold (an exclusive lease with
    /// complete wake-ups, whose attempts all send one token; see `recent`).
    recorded_ttl: Option<Duration>,
}

/// What a look after a busy answer decided.
enum Next {
    TryNow,
    /// Sleep until an event, the holder's expiry, or `poll_at`.
    Sleep {
        poll_at: Option<Instant>,
    },
}

impl<'a, K: Kind> Waiter<'a, K> {
    /// Made before the first attempt. When others in the process already
    /// wait on the key, with a live subscription, the first attempt is
    /// covered too, and a busy answer needs no second try. `token` and
    /// `ttl` are the acquire's: the token names the waiter's channel for a
    /// kind whose waiters have channels of their own, and both are recorded
    /// before a covered attempt (see `recent`).
    pub(crate) fn new(
        kind: &'a K,
        (token, ttl): (&str, Duration),
        backoff: Backoff,
        wake_ups: Option<WakeUps<'a>>,
    ) -> Self {
        let (channel, directed) = match kind.waiter_channel(token) {
            Some(own) => (Cow::Owned(own), false),
            None => {
                let complete = wake_ups.is_some_and(|wake| wake.complete);
                (
                    Cow::Borrowed(kind.channel()),
                    complete && kind.directs_wake_ups(),
                )
            }
        };
        let mut subscription =
            wake_ups.and_then(|wake| wake.notifier.join_if_live(kind.key(), &channel, directed));
        let recorded_ttl =
            (wake_ups.is_some_and(|wake| wake.complete) && kind.exclusive()).then_some(ttl);
        let live = subscription.as_mut().is_some_and(|subscription| {
            subscription.arm(recorded_ttl.and_then(|ttl| sending(token, ttl)))
        });
        Waiter {
            kind,
            channel,
            backoff,
            wake_ups,
            subscription,
            live,
            directed,
            recorded_ttl,
        }
    }

    /// Waits after a busy answer until the next attempt is worth sending.
    /// `false` when the wait policy's deadline has passed: give up.
    /// `named`: what the busy answer showed of the holder (see
    /// `Grant::Busy`); `token`: the acquire's, which the next attempt sends.
    ///
    /// Cancel safe: dropping it (with the `Waiter`) gives up this waiter's
    /// share of the subscription, and passes on a release wake-up it took.
    pub(crate) async fn wait(&mut self, named: Option<Named>, token: &str) -> bool {
        let now = Instant::now();
        let Some(mut left) = self.backoff.time_left(now) else {
            return false;
        };
        if let Some(every) = self.kind.refresh_every() {
            // Anywhere in its second half: waiters that queued together do
            // not all keep their marks alive in the same instant.
            left = left.min(rand::rng().random_range(every / 2..=every));
        }
        let Some(wake) = self.wake_ups else {
            return self.back_off(now, left).await;
        };
        match self.subscription.as_mut() {
            // The attempt after its wake-up found the lease taken: the new
            // holder will announce its release in turn.
            Some(subscription) => {
                subscription.answered(true);
                subscription.wake_up_used();
            }
            None => {
                self.subscription =
                    wake.notifier
                        .subscribe(self.kind.key(), &self.channel, self.directed);
            }
        }
        let Some(subscription) = self.subscription.as_mut() else {
            return self.back_off(now, left).await;
        };
        let next = look(
            subscription,
            self.live,
            wake,
            (self.kind, named),
            &mut self.backoff,
            now,
        )
        .await;
        if let Next::Sleep { poll_at } = next {
            let deadline = now.checked_add(left);
            sleep_for_event(
                subscription,
                self.live,
                deadline,
                poll_at,
                &mut self.backoff,
                now,
            )
            .await;
        }
        // The mark and the queueing come after the wait and right before
        // the next attempt (nothing is awaited in between).
        self.live = subscription.arm(self.recorded_ttl.and_then(|ttl| sending(token, ttl)));
        true
    }

    /// The acquire with `token` got the lease, `ttl` from now at the latest.
    /// A waiter of an [exclusive](Kind::exclusive) lease keeps the release
    /// it was woken for, and shows the channel's other waiters how long the
    /// lease is held (and when it was granted, for a busy answer that names
    /// it later: see `recent`); else its wake-up is passed on when it is
    /// dropped. Not on a Redlock, whose wake-ups are incomplete anyway.
    pub(crate) fn acquired(&mut self, token: Option<HolderToken>, ttl: Duration) {
        let complete = self.wake_ups.is_some_and(|wake| wake.complete);
        let Some(subscription) = self.subscription.as_mut() else {
            return;
        };
        subscription.answered(false);
        if complete && self.kind.exclusive() {
            // Shown before the wake-up's mark goes: a busy answer here in
            // between would inspect.
            let as_of = subscription.releases_heard();
            let now = Instant::now();
            subscription.saw_holder(
                Some(HeldUntil {
                    expires: after(now, ttl + EXPIRY_RESOLUTION),
                    announces: true,
                }),
                as_of,
            );
            if let Some(token) = token {
                subscription.granted(token, now);
            }
            subscription.wake_up_used();
        }
        subscription.attempt_ended();
    }

    /// No pub/sub: the wait policy's backoff.
    async fn back_off(&mut self, now: Instant, left: Duration) -> bool {
        let pause = self.backoff.next_sleep(now).unwrap_or(Duration::ZERO);
        tokio::time::sleep(pause.min(left)).await;
        true
    }
}

/// What an attempt with `token` records before it is sent (see `recent`).
fn sending(token: &str, ttl: Duration) -> Option<(HolderToken, Duration)> {
    Some((HolderToken::own(token)?, ttl))
}

/// Right after a busy answer: try again at once, or sleep (and poll when
/// releases may go unheard).
async fn look<K: Kind>(
    subscription: &mut Subscription,
    live: bool,
    wake: WakeUps<'_>,
    (kind, named): (&K, Option<Named>),
    backoff: &mut Backoff,
    now: Instant,
) -> Next {
    let mut poll = || backoff.next_sleep(now).map(|d| after(now, d));
    let mut poll_at = None;
    let mut again = false;
    if live {
        if subscription.released_already() || subscription.coverage_changed(true) {
            again = true;
        } else if wake.complete && subscription.known_holder(now).is_some() {
            // Seen by a waiter here since the last release: the holder is
            // the same, and sleeping until its expiry (or the release's
            // wake-up) needs no inspection of this waiter's own.
        } else if let Some(Named::Announcing(holder)) = named
            && wake.complete
            && let Some((hold, as_of)) = subscription.sent_here(holder)
            && let Some(expires) = hold.expires_by(now)
        {
            // Held by an attempt of this process, which set the key before
            // the busy answer came: it expires within its TTL of its grant
            // (or, not seen yet, of now) at the latest, and announces its
            // release. (The race this saves an inspection in: a task here
            // takes the lock right after its release, and the woken
            // waiter's answer comes before its own acquire shows the new
            // holder, or after the release heard has made that stale.)
            // Not a full TTL from now for a hold whose expiry was waited
            // out already: a holder that crashed would be waited for twice.
            subscription.saw_holder(
                Some(HeldUntil {
                    expires,
                    announces: true,
                }),
                as_of,
            );
        } else {
            // Taken before the inspection: a release heard while it runs
            // makes what it sees unfit for reuse.
            let as_of = subscription.releases_heard();
            let announces = named.map(Named::announces);
            match wake.node.holder_after_busy(kind, announces).await {
                // Gone from one node of several says nothing of the others:
                // poll (below), or this loop would spin.
                Holder::Gone if !wake.complete => subscription.saw_holder(None, as_of),
                // Gone since the busy answer: try again now.
                Holder::Gone => again = true,
                Holder::Held { free_in, announces } => {
                    subscription.saw_holder(
                        Some(HeldUntil {
                            // A foreign holder's TTL can be of any length.
                            expires: after(Instant::now(), free_in),
                            announces,
                        }),
                        as_of,
                    );
                }
                // No TTL, or no answer: poll; an earlier holder's expiry
                // means nothing now.
                Holder::Unknown => {
                    subscription.saw_holder(None, as_of);
                    poll_at = poll();
                }
            }
        }
    } else if subscription.coverage_changed(false) {
        // Subscribed since the last attempt: try again at once, now covered;
        // a release before the subscription was confirmed would otherwise
        // go unheard.
        again = true;
    } else {
        // No live subscription (yet, or any more): back off as without
        // notifications; the subscription coming up ends the pause.
        poll_at = poll();
    }
    if !wake.complete && poll_at.is_none() {
        poll_at = poll();
    }
    if again {
        Next::TryNow
    } else {
        Next::Sleep { poll_at }
    }
}

/// Sleeps until this waiter's release wake-up, a change of liveness, the
/// holder's expiry as seen here, `poll_at` or `deadline`.
async fn sleep_for_event(
    subscription: &mut Subscription,
    live: bool,
    deadline: Option<Instant>,
    mut poll_at: Option<Instant>,
    backoff: &mut Backoff,
    now: Instant,
) {
    loop {
        // Counting on announced releases, the holder's expiry bounds the
        // wait. Every wake-up at it ends in an inspection that updates it.
        let holder = subscription.signal().holder.filter(|_| live);
        if let Some(holder) = holder
            && !holder.announces
            && poll_at.is_none()
        {
            // A holder that announces nothing: poll too.
            poll_at = backoff.next_sleep(now).map(|d| after(now, d));
        }
        let until = [deadline, poll_at, holder.map(|h| h.expires)]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = subscription.event() => match event {
                Event::Released => return,
                // Liveness changed: try again (now covered, or not any
                // more, or down and up again); else the holder as seen
                // here changed: wait for it.
                Event::Changed if subscription.coverage_changed(live) => return,
                Event::Changed => {}
            },
            () = sleep => {
                // Only the holder's expiry as seen here may be stale: a
                // later holder's lease ends later (`saw_holder` wakes no one
                // for that); sleep on until it.
                let now = Instant::now();
                let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
                let later_holder = subscription
                    .signal()
                    .holder
                    .filter(|held| live && held.expires > now);
                if due(deadline) || due(poll_at) || later_holder.is_none() {
                    return;
                }
            }
        }
    }
}
