//! The state one notifier's subscription task, its push callback and its
//! waiters share: per channel, the waiters, whether the channel is *live*,
//! the holder as last seen, and the queue of release wake-ups.
//!
//! Invariants:
//! - Everything the connection pushes (subscribe and unsubscribe
//!   confirmations, messages, its own disconnection) arrives in order in
//!   [`Shared::on_push`], the only place that decides whether a channel is
//!   live (confirmed on a connection that is up). Pushes of an older
//!   connection (epoch) are ignored.
//! - A release wakes one waiter per process: the one queued longest
//!   (`notify_one` is FIFO). If it leaves without its attempt failing (it
//!   got the lock, an error, dropped), the next one is woken in its place.
//! - A channel is unsubscribed once its last [`Subscription`] is dropped.
//! - A channel belongs to one key while it has waiters: its wake-ups and
//!   the holder its waiters see are that key's. A waiter on another key
//!   whose channel has the same name (never, with `keys::release_channel`,
//!   which names every key's apart) is refused, and polls, rather than
//!   take the other key's wake-ups and holder.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use redis::{PushInfo, PushKind};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Locks the mutex, ignoring poisoning: every critical section here leaves
/// the state consistent at each step, and nothing in them panics.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the task, the push callback and the waiters share.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the task: a channel gained its first waiter or lost its last
    /// one, or the connection broke.
    pub(crate) work: Notify,
}

#[derive(Default)]
struct State {
    /// The channels someone waits on.
    channels: HashMap<Arc<str>, Channel>,
    /// The channels the current connection is subscribed to, as its own
    /// pushes say.
    confirmed: HashSet<Arc<str>>,
    /// The channels the current connection accepted a subscribe for but
    /// whose confirming push has not come yet (a cluster connection may
    /// answer before it forwards the push): not asked again on this
    /// connection until a push about them says what became of them.
    awaiting: HashSet<Arc<str>>,
    /// Counts connections; pushes of older ones are ignored.
    epoch: u64,
    /// Whether the current connection is up.
    connected: bool,
}

struct Channel {
    /// The key whose releases the channel announces.
    key: Arc<str>,
    waiters: usize,
    /// Liveness and the holder as last seen, for all the channel's waiters.
    signal: watch::Sender<Signal>,
    /// One wake-up per announced release: the waiter here that has waited
    /// longest.
    released: Arc<Notify>,
    /// The server refused the subscription (an ACL without the channel):
    /// not asked again while the channel has waiters, who poll meanwhile.
    refused: bool,
    /// Releases heard on the channel so far.
    releases: u64,
    /// `releases` when the holder in `signal` was last seen: that holder
    /// is still the holder as far as this process knows while no release
    /// was heard since (one busy period), and until its expiry.
    holder_as_of: u64,
}

/// What a channel's waiters share, besides the release wake-ups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Signal {
    /// Subscribed, on a connection that is up: a release will be heard.
    pub(crate) live: bool,
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

/// The task's next step.
pub(crate) enum Step {
    Sleep,
    Connect,
    Subscribe(Vec<Arc<str>>),
    Unsubscribe(Vec<Arc<str>>),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Registers a waiter for `key` on its release `channel`; wakes the task
    /// to subscribe it if it is not yet. `None` when the channel has waiters
    /// for another key.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        key: &Arc<str>,
        channel: &str,
    ) -> Option<Subscription> {
        let mut state = self.state();
        let live = state.confirmed.contains(channel);
        let channel: Arc<str> = match state.channels.get_key_value(channel) {
            Some((_, entry)) if entry.key != *key => return None,
            Some((name, _)) => name.clone(),
            None => channel.into(),
        };
        let entry = state
            .channels
            .entry(channel.clone())
            .or_insert_with(|| Channel {
                key: key.clone(),
                waiters: 0,
                signal: watch::channel(Signal { live, holder: None }).0,
                released: Arc::new(Notify::new()),
                refused: false,
                releases: 0,
                holder_as_of: 0,
            });
        entry.waiters += 1;
        let signal = entry.signal.subscribe();
        let released = entry.released.clone();
        drop(state);
        if !live {
            self.work.notify_one();
        }
        Some(Subscription {
            shared: self.clone(),
            channel,
            signal,
            released,
            armed: None,
            woken: false,
        })
    }

    /// Whether `channel` has waiters and is live: local work, no command.
    pub(crate) fn is_live(&self, channel: &str) -> bool {
        self.state()
            .channels
            .get(channel)
            .is_some_and(|entry| entry.signal.borrow().live)
    }

    /// Whether a connection is up, and how many channels have waiters, for
    /// `Debug`.
    pub(crate) fn describe(&self) -> (bool, usize) {
        let state = self.state();
        (state.connected, state.channels.len())
    }

    /// Everything connection `epoch` pushes, in the order it arrived.
    pub(crate) fn on_push(&self, epoch: u64, push: PushInfo) {
        let mut state = self.state();
        if state.epoch != epoch {
            return;
        }
        let channel = match push.data.first() {
            Some(redis::Value::BulkString(name)) => std::str::from_utf8(name).ok(),
            Some(redis::Value::SimpleString(name)) => Some(name.as_str()),
            _ => None,
        };
        // A cluster's sharded pushes mean the same as a server's plain ones.
        // The server also pushes `sunsubscribe` by itself when the channel's
        // slot moves to another shard: the channel is then no longer live,
        // and the task subscribes it again, where its slot went.
        match (push.kind, channel) {
            (PushKind::Message | PushKind::SMessage, Some(channel)) => {
                if let Some(entry) = state.channels.get_mut(channel) {
                    entry.releases += 1;
                    entry.released.notify_one();
                }
            }
            (PushKind::Subscribe | PushKind::SSubscribe, Some(channel)) => {
                let channel: Arc<str> = channel.into();
                state.set_live(&channel, true);
                state.awaiting.remove(&channel);
                state.confirmed.insert(channel);
            }
            (PushKind::Unsubscribe | PushKind::SUnsubscribe, Some(channel)) => {
                state.set_live(channel, false);
                state.confirmed.remove(channel);
                state.awaiting.remove(channel);
                // Not asked for by the task (the channel still has waiters):
                // the server dropped it (its slot moved); subscribe again.
                if state.channels.contains_key(channel) {
                    drop(state);
                    self.work.notify_one();
                }
            }
            (PushKind::Disconnection, _) => {
                state.disconnected();
                drop(state);
                self.work.notify_one();
            }
            _ => {}
        }
    }

    /// A new connection is about to be made: returns its epoch.
    pub(crate) fn next_epoch(&self) -> u64 {
        let mut state = self.state();
        state.disconnected();
        state.epoch += 1;
        // Up until it fails to connect or pushes a disconnection; neither
        // can be missed, since both come after this.
        state.connected = true;
        state.epoch
    }

    /// Connection `epoch` is broken or gone (a timeout, an error, the task
    /// dropped it).
    pub(crate) fn lost(&self, epoch: u64) {
        let mut state = self.state();
        if state.epoch == epoch {
            state.disconnected();
        }
    }

    pub(crate) fn forget_connection(&self) {
        let mut state = self.state();
        state.disconnected();
        state.epoch += 1;
    }

    /// What to do next, given the connection the task has.
    pub(crate) fn next_step(&self, connection: Option<u64>) -> Step {
        let state = self.state();
        let wanted: Vec<Arc<str>> = state
            .channels
            .iter()
            .filter(|(name, entry)| {
                !entry.refused
                    && !state.confirmed.contains(*name)
                    && !state.awaiting.contains(*name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        let up = state.connected && connection == Some(state.epoch);
        if !up {
            return if wanted.is_empty() {
                Step::Sleep
            } else {
                Step::Connect
            };
        }
        if !wanted.is_empty() {
            return Step::Subscribe(wanted);
        }
        let unwanted: Vec<Arc<str>> = state
            .confirmed
            .iter()
            .filter(|name| !state.channels.contains_key(*name))
            .cloned()
            .collect();
        if unwanted.is_empty() {
            Step::Sleep
        } else {
            Step::Unsubscribe(unwanted)
        }
    }

    /// After subscribing `channels` on connection `epoch`: those the server
    /// refused are not asked again while they have waiters; those it
    /// accepted whose confirming push has not come yet await it, and are
    /// not asked again on this connection (so that the task cannot loop on
    /// them) unless a push drops them. A channel is never marked refused for
    /// a push that is merely late: its waiters would poll for good.
    pub(crate) fn subscribed(&self, epoch: u64, channels: &[Arc<str>], refused: &[bool]) {
        let mut state = self.state();
        if state.epoch != epoch || !state.connected {
            return;
        }
        let State {
            channels: entries,
            confirmed,
            awaiting,
            ..
        } = &mut *state;
        for (channel, refused) in channels.iter().zip(refused) {
            let Some(entry) = entries.get_mut(channel) else {
                continue;
            };
            if *refused {
                entry.refused = true;
            } else if !confirmed.contains(channel) {
                awaiting.insert(channel.clone());
            }
        }
    }

    /// After unsubscribing `channels`: forget them even without a
    /// confirmation, so that the task cannot loop on them.
    pub(crate) fn unsubscribed(&self, epoch: u64, channels: &[Arc<str>]) {
        let mut state = self.state();
        if state.epoch == epoch {
            for channel in channels {
                state.confirmed.remove(channel);
            }
        }
    }
}

impl State {
    fn set_live(&self, channel: &str, live: bool) {
        if let Some(entry) = self.channels.get(channel) {
            entry.set_live(live);
        }
    }

    /// The connection is down: no channel is live, and the waiters that
    /// counted on one hear so (a release may have been lost with it).
    fn disconnected(&mut self) {
        self.connected = false;
        self.confirmed.clear();
        self.awaiting.clear();
        for entry in self.channels.values() {
            entry.set_live(false);
        }
    }
}

impl Channel {
    /// Notifies only a change: a waiter that did not count on the channel
    /// being live has nothing to learn from it going down, and one that did
    /// is notified when it goes down.
    fn set_live(&self, live: bool) {
        self.signal.send_if_modified(|signal| {
            let changed = signal.live != live;
            signal.live = live;
            changed
        });
    }
}

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
    pub(crate) woken: bool,
}

/// What ended a wait early.
pub(crate) enum Event {
    /// A release was announced, and this waiter is the one woken for it.
    Released,
    /// The channel's liveness or the holder as seen here changed.
    Changed,
}

impl Subscription {
    /// Queues for the next release, unless already queued, and marks the
    /// signal as seen; whether the channel is live. Call right before an
    /// attempt.
    pub(crate) fn arm(&mut self) -> bool {
        if self.armed.is_none() {
            let mut armed = Box::pin(self.released.clone().notified_owned());
            // Queued from now on, not only once polled.
            armed.as_mut().enable();
            self.armed = Some(armed);
        }
        self.signal.borrow_and_update().live
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
        self.armed = None;
        self.woken = true;
        true
    }

    /// Releases heard on the channel so far: taken before an inspection,
    /// given back with what it saw ([`saw_holder`](Self::saw_holder)).
    pub(crate) fn releases_heard(&self) -> u64 {
        let state = self.shared.state();
        state
            .channels
            .get(&self.channel)
            .map_or(0, |entry| entry.releases)
    }

    /// The holder as seen by a waiter of this process since the last
    /// release heard, if it has not expired by `now`: the same busy period,
    /// so a busy answer needs no inspection of its own.
    pub(crate) fn known_holder(&self, now: Instant) -> Option<HeldUntil> {
        let state = self.shared.state();
        let entry = state.channels.get(&self.channel)?;
        let holder = entry.signal.borrow().holder?;
        (entry.holder_as_of == entry.releases && holder.expires > now).then_some(holder)
    }

    /// Tells the channel's other waiters who holds the lock now (`None`:
    /// not known), as seen after `as_of` releases were heard.
    ///
    /// Only a change that can end a sleep sooner wakes them (see
    /// [`wakes_sleepers`]): a new holder whose lease ends later, the usual
    /// handoff, is only recorded, and a waiter whose sleep ends at the old
    /// expiry reads it then. Waking every waiter of the process on every
    /// handoff made a handoff cost O(waiters) task wake-ups.
    pub(crate) fn saw_holder(&self, holder: Option<HeldUntil>, as_of: u64) {
        let mut state = self.shared.state();
        if let Some(entry) = state.channels.get_mut(&self.channel) {
            entry.holder_as_of = as_of;
            entry.signal.send_if_modified(|signal| {
                let wake = wakes_sleepers(signal.holder, holder);
                signal.holder = holder;
                wake
            });
        }
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
            self.armed = None;
            self.woken = true;
        }
        event
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.woken {
            // Pass the wake-up on. (An armed one that fired but was never
            // taken is passed on by tokio when it is dropped.)
            self.released.notify_one();
        }
        let mut state = self.shared.state();
        let Some(entry) = state.channels.get_mut(&self.channel) else {
            return;
        };
        entry.waiters = entry.waiters.saturating_sub(1);
        if entry.waiters == 0 {
            state.channels.remove(&self.channel);
            state.awaiting.remove(&self.channel);
            if state.confirmed.contains(&self.channel) {
                drop(state);
                self.shared.work.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Wake-ups and the holder seen are per channel: a second key on a
    /// channel would take the first key's (and give it its holder), so it
    /// is refused, and polls.
    #[test]
    fn a_channel_serves_one_key_at_a_time() {
        let shared = Arc::new(Shared::default());
        let (x, y): (Arc<str>, Arc<str>) = ("x".into(), "y".into());
        let first = shared.subscribe(&x, "c").expect("a new channel");
        let second = shared.subscribe(&x, "c").expect("the same key joins");
        assert!(shared.subscribe(&y, "c").is_none(), "another key's channel");
        assert!(shared.subscribe(&y, "d").is_some(), "its own channel");
        drop((first, second));
        assert!(shared.subscribe(&y, "c").is_some(), "free again");
    }

    fn push(kind: redis::PushKind, channel: &str) -> redis::PushInfo {
        redis::PushInfo {
            kind,
            data: vec![redis::Value::BulkString(channel.as_bytes().to_vec())],
        }
    }

    fn wants(shared: &Shared, epoch: u64) -> Vec<Arc<str>> {
        match shared.next_step(Some(epoch)) {
            Step::Subscribe(channels) => channels,
            _ => Vec::new(),
        }
    }

    /// A subscribe answered before its confirming push (a cluster
    /// connection forwards pushes on their own path) awaits the push: the
    /// channel is not asked again meanwhile, becomes live when the push
    /// comes, and is subscribed again when a later push drops it (its slot
    /// moved). Marking it refused left its waiters polling for good.
    #[test]
    fn a_late_confirmation_is_awaited_not_taken_for_a_refusal() {
        let shared = Arc::new(Shared::default());
        let key: Arc<str> = "k".into();
        let _waiter = shared.subscribe(&key, "c").expect("a new channel");
        let epoch = shared.next_epoch();
        let asked = wants(&shared, epoch);
        assert_eq!(asked, vec![Arc::<str>::from("c")]);

        shared.subscribed(epoch, &asked, &[false]);
        assert!(
            wants(&shared, epoch).is_empty(),
            "asked again before the push"
        );
        assert!(!shared.is_live("c"));

        shared.on_push(epoch, push(redis::PushKind::SSubscribe, "c"));
        assert!(shared.is_live("c"), "the late push confirms it");

        shared.on_push(epoch, push(redis::PushKind::SUnsubscribe, "c"));
        assert!(!shared.is_live("c"));
        assert_eq!(
            wants(&shared, epoch),
            asked,
            "subscribed again after the move"
        );

        // Refused by the server: not asked again while it has waiters.
        shared.subscribed(epoch, &asked, &[true]);
        assert!(wants(&shared, epoch).is_empty());
    }

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
