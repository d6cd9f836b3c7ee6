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
//! - A release wakes one waiter per process (or, named for one process,
//!   only there: see `route`): the one queued longest (`notify_one` is
//!   FIFO). If it leaves without its attempt failing (it got the lock, an
//!   error, dropped), the next one is woken in its place.
//! - A channel is unsubscribed once its last [`Subscription`] is dropped,
//!   after announcing the leave where it announced waiting.
//! - A channel belongs to one key while it has waiters: its wake-ups and
//!   the holder its waiters see are that key's. A waiter on another key
//!   whose channel has the same name (never, with `keys::release_channel`,
//!   which names every key's apart) is refused, and polls, rather than
//!   take the other key's wake-ups and holder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::{PushInfo, PushKind};
use tokio::sync::{Notify, watch};

use crate::channel::{Channel, ForTask};
use tokio::time::Instant;

use crate::recent::SentHold;
use crate::route::{self, Announcement, Message, Route};
use crate::seen::{self, HeldUntil, Signal};
use crate::token::HolderToken;

/// Locks the mutex, ignoring poisoning: every critical section here leaves
/// the state consistent at each step, and nothing in them panics.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the task, the push callback and the waiters share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the task: a channel gained its first waiter or lost its last
    /// one, the connection broke, or there is something to publish.
    pub(crate) work: Notify,
    /// This process's id in directed wake-ups (see `route`).
    id: Box<str>,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            state: Mutex::default(),
            work: Notify::new(),
            id: route::new_id(),
        }
    }
}

/// Ordered sets and maps, not hashed ones: a contended acquire looks its
/// channel up about 14 times, and SipHash over a channel's name cost ~250
/// instructions a lookup (3,600 per acquisition, callgrind), where the few
/// name comparisons of a process's usual handful of channels cost far less.
/// A lookup stays O(log n) comparisons with many channels.
#[derive(Default)]
struct State {
    /// The channels someone waits on.
    channels: BTreeMap<Arc<str>, Channel>,
    /// The channels the current connection is subscribed to, as its own
    /// pushes say.
    confirmed: BTreeSet<Arc<str>>,
    /// The channels the current connection accepted a subscribe for but
    /// whose confirming push has not come yet (a cluster connection may
    /// answer before it forwards the push): not asked again on this
    /// connection until a push about them says what became of them.
    awaiting: BTreeSet<Arc<str>>,
    /// Counts connections; pushes of older ones are ignored.
    epoch: u64,
    /// Whether the current connection is up.
    connected: bool,
    /// Releases named for this process on channels it no longer waits on,
    /// to pass on: (channel, message).
    forward: Vec<(Arc<str>, String)>,
}

/// A waiter's share of a channel it joined.
pub(crate) struct Joined {
    pub(crate) channel: Arc<str>,
    pub(crate) signal: watch::Receiver<Signal>,
    /// One wake-up per release heard, for the waiter queued longest.
    pub(crate) released: Arc<Notify>,
}

/// The task's next step.
pub(crate) enum Step {
    /// Until woken, or until the instant (an announcement or a watchdog of
    /// directed wake-ups is due).
    Sleep(Option<Instant>),
    Connect,
    Subscribe(Vec<Arc<str>>),
    /// Messages to publish on channels: (channel, message).
    Publish(Vec<(Arc<str>, String)>),
    Unsubscribe(Vec<Arc<str>>),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Registers a waiter for `key` on its release `channel`; wakes the task
    /// to subscribe it if it is not yet. `directed`: releases on the
    /// channel may name one process (see `route`), decided by its first
    /// waiter. `None` when the channel has waiters for another key; the
    /// waiter must [`leave`](Shared::leave) it again.
    pub(crate) fn join(&self, key: &Arc<str>, channel: &str, directed: bool) -> Option<Joined> {
        let mut state = self.state();
        let live = state.confirmed.contains(channel);
        let channel: Arc<str> = match state.channels.get_key_value(channel) {
            // Lingering for another key: it is this key's now.
            Some((name, entry)) if entry.key != *key && entry.waiters == 0 => {
                let name = name.clone();
                state.channels.remove(&name);
                name
            }
            Some((_, entry)) if entry.key != *key => return None,
            Some((name, _)) => name.clone(),
            None => channel.into(),
        };
        let entry = (state.channels.entry(channel.clone()))
            .or_insert_with(|| Channel::new(key.clone(), live, directed));
        let announce = entry.join();
        let signal = entry.signal.subscribe();
        let released = entry.released.clone();
        drop(state);
        // To subscribe, or to announce that this process waits.
        if !live || announce {
            self.work.notify_one();
        }
        Some(Joined {
            channel,
            signal,
            released,
        })
    }

    /// Whether `channel` has waiters (or lingers) and is live: local work,
    /// no command.
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
        let waited_on = state.channels.values().filter(|entry| entry.waiters > 0);
        (state.connected, waited_on.count())
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
                let payload = match push.data.get(1) {
                    Some(redis::Value::BulkString(bytes)) => bytes.as_slice(),
                    _ => &[],
                };
                if state.heard(channel, payload, &self.id) {
                    drop(state);
                    self.work.notify_one();
                }
            }
            (PushKind::Subscribe | PushKind::SSubscribe, Some(channel)) => {
                let channel: Arc<str> = channel.into();
                state.set_live(&channel, true);
                state.awaiting.remove(&channel);
                let directed = state
                    .channels
                    .get(&channel)
                    .is_some_and(|entry| entry.route.is_some());
                state.confirmed.insert(channel);
                if directed {
                    // Its announcement is due.
                    drop(state);
                    self.work.notify_one();
                }
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

    /// What to do next, given the connection the task has. Fires the
    /// watchdogs of directed wake-ups that are due by `now` first.
    pub(crate) fn next_step(&self, connection: Option<u64>, now: Instant) -> Step {
        let mut state = self.state();
        for entry in state.channels.values_mut() {
            entry.fire_watchdog(now);
        }
        state.end_lingering(now);
        let wanted: Vec<Arc<str>> = state
            .channels
            .iter()
            .filter(|(name, entry)| {
                entry.waiters > 0
                    && !entry.refused
                    && !state.confirmed.contains(*name)
                    && !state.awaiting.contains(*name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        let up = state.connected && connection == Some(state.epoch);
        if !up {
            return if wanted.is_empty() {
                Step::Sleep(state.next_due(false))
            } else {
                Step::Connect
            };
        }
        if !wanted.is_empty() {
            return Step::Subscribe(wanted);
        }
        let posts = state.take_posts(&self.id, now);
        if !posts.is_empty() {
            return Step::Publish(posts);
        }
        let unwanted: Vec<Arc<str>> = state
            .confirmed
            .iter()
            .filter(|name| !state.channels.contains_key(*name))
            .cloned()
            .collect();
        if unwanted.is_empty() {
            Step::Sleep(state.next_due(true))
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

    /// After publishing `posts` on connection `epoch` (or failing to, for a
    /// refusal that asking again would not change): not asked again.
    pub(crate) fn published(&self, epoch: u64, posts: &[(Arc<str>, String)], now: Instant) {
        let mut state = self.state();
        if state.epoch != epoch {
            return;
        }
        for (channel, message) in posts {
            let announced = match Message::parse(message.as_bytes()) {
                Message::Waiting(_) => Announcement::Waiting,
                Message::Answer(_) => Announcement::Answer,
                Message::Leaving(_) => Announcement::Leaving,
                _ => {
                    state.forward.retain(|(forward, _)| forward != channel);
                    continue;
                }
            };
            if let Some(route) = state.route_mut(channel) {
                route.announced(announced, now);
            }
        }
    }

    /// The message a release on `channel` by this process publishes to wake
    /// the next waiting process alone, when it knows one (it waits there
    /// too, on a live subscription); `None`: wake every process.
    pub(crate) fn next_waiter(&self, channel: &str) -> Option<String> {
        let mut state = self.state();
        let entry = state.channels.get_mut(channel)?;
        if !entry.signal.borrow().live {
            return None;
        }
        let now = Instant::now();
        let route = entry.route.as_mut()?;
        let next = route.next(&self.id, now)?.to_owned();
        Some(if route.sign_release(now) {
            route::named_by(&next, &self.id)
        } else {
            route::named(&next)
        })
    }

    /// Releases heard on `channel` so far.
    pub(crate) fn releases_heard(&self, channel: &str) -> u64 {
        self.state()
            .channels
            .get(channel)
            .map_or(0, |entry| entry.releases)
    }

    /// An attempt on `channel` is about to be sent, with `token` and `ttl`
    /// when a busy answer naming that token is to be known as this
    /// process's (see `recent`); the releases heard on it so far.
    pub(crate) fn sending(&self, channel: &str, token: Option<(HolderToken, Duration)>) -> u64 {
        let mut state = self.state();
        let Some(entry) = state.channels.get_mut(channel) else {
            return 0;
        };
        if let Some((token, ttl)) = token {
            entry.recent.sending(token, ttl);
        }
        entry.releases
    }

    /// The hold of a recent attempt of this process on `channel` that sent
    /// `token` (see `recent`).
    pub(crate) fn sent_here(&self, channel: &str, token: HolderToken) -> Option<SentHold> {
        self.state().channels.get(channel)?.recent.hold_of(token)
    }

    /// The recent attempt on `channel` that sent `token` got the lease, as
    /// seen `at` (see `recent`).
    pub(crate) fn granted(&self, channel: &str, token: HolderToken, at: Instant) {
        if let Some(entry) = self.state().channels.get_mut(channel) {
            entry.recent.granted(token, at);
        }
    }

    /// The holder as seen on `channel` in this busy period, if it has not
    /// expired by `now` (see `Channel::known_holder`).
    pub(crate) fn known_holder(&self, channel: &str, now: Instant) -> Option<HeldUntil> {
        self.state().channels.get(channel)?.known_holder(now)
    }

    /// A waiter on `channel` took a release wake-up (`true`), or its
    /// attempt after one ended (`false`): see `Channel::woken_as_of`.
    pub(crate) fn woken(&self, channel: &str, woken: bool) {
        if let Some(entry) = self.state().channels.get_mut(channel) {
            entry.woken_as_of = woken.then_some(entry.releases);
        }
    }

    /// Tells `channel`'s waiters who holds the lock now (`None`: not
    /// known), as seen after `as_of` releases were heard; only a change
    /// that can end a sleep sooner wakes them (see `seen`).
    pub(crate) fn saw_holder(&self, channel: &str, holder: Option<HeldUntil>, as_of: u64) {
        let mut state = self.state();
        if let Some(entry) = state.channels.get_mut(channel) {
            entry.holder_as_of = as_of;
            seen::saw_holder(&entry.signal, holder);
        }
    }

    /// A waiter on `channel` is gone: the last one lets the task
    /// unsubscribe, after announcing the leave where this process announced
    /// that it waits.
    pub(crate) fn leave(&self, channel: &Arc<str>) {
        let mut state = self.state();
        let Some(entry) = state.channels.get_mut(channel) else {
            return;
        };
        if entry.waiters > 1 {
            entry.waiters -= 1;
            return;
        }
        if entry.leave(Instant::now()) {
            state.channels.remove(channel);
            state.awaiting.remove(channel);
            if !state.confirmed.contains(channel) {
                return;
            }
        }
        drop(state);
        self.work.notify_one();
    }
}

impl State {
    fn set_live(&self, channel: &str, live: bool) {
        if let Some(entry) = self.channels.get(channel) {
            seen::set_live(&entry.signal, live);
        }
    }

    /// The connection is down: no channel is live, and the waiters that
    /// counted on one hear so (a release may have been lost with it).
    fn disconnected(&mut self) {
        self.connected = false;
        self.confirmed.clear();
        self.awaiting.clear();
        self.forward.clear();
        for entry in self.channels.values_mut() {
            seen::set_live(&entry.signal, false);
            if let Some(route) = entry.route.as_mut() {
                route.disconnected();
            }
        }
    }

    /// Forgets the channels that lingered long enough without waiters (and
    /// announced their leave, if they were to): the task unsubscribes them.
    fn end_lingering(&mut self, now: Instant) {
        let awaiting = &mut self.awaiting;
        self.channels.retain(|name, entry| {
            let ends = entry.lingered(now);
            if ends {
                awaiting.remove(name);
            }
            !ends
        });
    }

    fn route_mut(&mut self, channel: &str) -> Option<&mut Route> {
        self.channels.get_mut(channel)?.route.as_mut()
    }

    /// Takes in a message heard on `channel` (`me`: this process's id);
    /// whether the task has work from it (a watchdog to arm, an
    /// announcement or a forward to publish).
    fn heard(&mut self, channel: &str, payload: &[u8], me: &str) -> bool {
        let Some(entry) = self.channels.get_mut(channel) else {
            return false;
        };
        let now = Instant::now();
        if let (Some(route), Some(sender)) = (entry.route.as_mut(), route::sender(payload)) {
            route.heard_from(sender, now);
        }
        match entry.heard(Message::parse(payload), me, now) {
            ForTask::Nothing => false,
            ForTask::Wake => true,
            ForTask::Forward(message) => {
                self.forward.push((channel.into(), message));
                true
            }
        }
    }

    /// What the task is to publish now (`me`: this process's id): passed-on
    /// wake-ups, leaves, and announcements due by `now`.
    /// Announcements are taken here, on subscribed channels only, so that
    /// an answer owed on a channel not yet confirmed stays owed.
    fn take_posts(&mut self, me: &str, now: Instant) -> Vec<(Arc<str>, String)> {
        let confirmed = &self.confirmed;
        let forwards = (self.forward.iter()).filter(|(c, _)| confirmed.contains(c));
        let announcements = (self.channels.iter_mut())
            .filter(|(c, _)| confirmed.contains(*c))
            .filter_map(|(c, entry)| Some((c.clone(), entry.take_announcement(me, now)?)));
        forwards.cloned().chain(announcements).collect()
    }

    /// The next watchdog, announcement (when `up`) or end of lingering
    /// that the task must wake for.
    fn next_due(&self, up: bool) -> Option<Instant> {
        let subscribed = |channel: &Arc<str>| up && self.confirmed.contains(channel);
        (self.channels.iter())
            .filter_map(|(c, entry)| entry.next_due(subscribed(c)))
            .min()
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Wake-ups and the holder seen are per channel: a second key on a
    /// channel would take the first key's (and give it its holder), so it
    /// is refused, and polls.
    #[test]
    fn a_channel_serves_one_key_at_a_time() {
        let shared = Arc::new(Shared::default());
        let (x, y): (Arc<str>, Arc<str>) = ("x".into(), "y".into());
        let first = shared.join(&x, "c", false).expect("a new channel");
        let second = shared.join(&x, "c", false).expect("the same key joins");
        assert!(
            shared.join(&y, "c", false).is_none(),
            "another key's channel"
        );
        assert!(shared.join(&y, "d", false).is_some(), "its own channel");
        shared.leave(&first.channel);
        shared.leave(&second.channel);
        assert!(shared.join(&y, "c", false).is_some(), "free again");
    }

    fn push(kind: redis::PushKind, channel: &str) -> redis::PushInfo {
        redis::PushInfo {
            kind,
            data: vec![redis::Value::BulkString(channel.as_bytes().to_vec())],
        }
    }

    fn wants(shared: &Shared, epoch: u64) -> Vec<Arc<str>> {
        match shared.next_step(Some(epoch), Instant::now()) {
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
        let _waiter = shared.join(&key, "c", false).expect("a new channel");
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

    fn message(channel: &str, payload: &str) -> redis::PushInfo {
        let bulk = |text: &str| redis::Value::BulkString(text.as_bytes().to_vec());
        redis::PushInfo {
            kind: redis::PushKind::Message,
            data: vec![bulk(channel), bulk(payload)],
        }
    }

    /// Whether a release wake-up is waiting to be taken (taking it).
    fn woken(released: &Notify) -> bool {
        let notified = std::pin::pin!(released.notified());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        notified.poll(&mut context).is_ready()
    }

    /// A release named for another process wakes no waiter here and leaves
    /// the lease known to be held (a busy answer asks no one); one named
    /// for this process, or for everyone, wakes one waiter; and when
    /// nothing more is heard within the grace, the watchdog wakes one, with
    /// the holder no longer known, so that it looks.
    #[test]
    fn a_release_named_for_another_process_wakes_no_waiter_here() {
        let shared = Arc::new(Shared::default());
        let key: Arc<str> = "k".into();
        let waiter = shared.join(&key, "c", true).expect("a new channel");
        let epoch = shared.next_epoch();
        shared.on_push(epoch, push(redis::PushKind::Subscribe, "c"));
        let other = if &*shared.id == "00000000000000ff" {
            "00000000000000fe"
        } else {
            "00000000000000ff"
        };
        assert_eq!(shared.next_waiter("c"), None, "no one announced yet");
        shared.on_push(epoch, message("c", &route::waiting(other)));
        assert_eq!(shared.next_waiter("c"), Some(route::named(other)));

        shared.on_push(epoch, message("c", &route::named(other)));
        assert!(!woken(&waiter.released), "named for another process");
        let now = Instant::now();
        assert!(
            shared.known_holder("c", now).is_some(),
            "held, for all we know"
        );

        shared.on_push(epoch, message("c", &route::named(&shared.id)));
        assert!(woken(&waiter.released), "named for this process");
        assert!(shared.known_holder("c", now).is_none(), "to be looked at");
        shared.on_push(epoch, message("c", ""));
        assert!(woken(&waiter.released), "for everyone");

        shared.on_push(epoch, message("c", &route::named(other)));
        let _ = shared.next_step(Some(epoch), Instant::now());
        assert!(!woken(&waiter.released), "not before the grace");
        let _ = shared.next_step(Some(epoch), Instant::now() + route::GRACE);
        assert!(woken(&waiter.released), "the watchdog wakes one");
        assert!(shared.known_holder("c", Instant::now()).is_none());
        assert_eq!(shared.next_waiter("c"), None, "the silent one is dropped");
        shared.leave(&waiter.channel);
    }

    /// A busy answer right after a release, while the waiter here woken for
    /// it has not shown the new holder yet, needs no inspection: that
    /// waiter's attempt shows it (it gets the lease, or inspects). Once its
    /// attempt ended without showing one, a busy answer inspects again.
    #[test]
    fn the_waiter_woken_for_the_last_release_shows_the_holder_for_all() {
        let shared = Arc::new(Shared::default());
        let key: Arc<str> = "k".into();
        let waiter = shared.join(&key, "c", false).expect("a new channel");
        let epoch = shared.next_epoch();
        shared.on_push(epoch, push(redis::PushKind::Subscribe, "c"));
        let now = Instant::now();
        let held = HeldUntil {
            expires: now + std::time::Duration::from_secs(10),
            announces: true,
        };
        shared.saw_holder("c", Some(held), 0);
        assert!(shared.known_holder("c", now).is_some(), "seen");
        shared.on_push(epoch, message("c", ""));
        assert!(shared.known_holder("c", now).is_none(), "released since");
        assert!(woken(&waiter.released));
        shared.woken("c", true);
        assert!(shared.known_holder("c", now).is_some(), "to be shown");
        shared.woken("c", false);
        assert!(shared.known_holder("c", now).is_none(), "not shown");
        shared.woken("c", true);
        shared.on_push(epoch, message("c", ""));
        assert!(shared.known_holder("c", now).is_none(), "a later release");
        shared.leave(&waiter.channel);
    }
}
