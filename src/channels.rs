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

use redis::{PushInfo, PushKind};
use tokio::sync::{Notify, watch};

use crate::channel::{Channel, ForTask};
use crate::kind::NamedWakeUp;
use tokio::time::Instant;

use crate::route::{self, Announcement, Message, Route};
use crate::seen::{self, Signal};

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
        let inbox = directed.then(|| route::inbox(&channel, &self.id).into());
        let entry = (state.channels.entry(channel.clone()))
            .or_insert_with(|| Channel::new(key.clone(), live, inbox));
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
                // A message in this process's inbox is heard on its channel.
                let channel = match state.channels.contains_key(channel) {
                    true => channel,
                    false => route::channel_of_inbox(channel, &self.id).unwrap_or(channel),
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
                if state.owns(channel, &self.id) {
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
        let asked =
            |name: &Arc<str>| state.confirmed.contains(name) || state.awaiting.contains(name);
        let wanted: Vec<Arc<str>> = (state.channels.iter())
            .filter(|(_, entry)| entry.waiters > 0 && !entry.refused)
            .flat_map(|(name, entry)| {
                let inbox = entry.inbox.as_ref().filter(|_| !entry.inbox_refused);
                [Some(name), inbox].into_iter().flatten()
            })
            .filter(|name| !asked(name))
            .cloned()
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
        let unwanted: Vec<Arc<str>> = (state.confirmed.iter())
            .filter(|name| !state.owns(name, &self.id))
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
            let (entry, inbox) = match entries.get_mut(&**channel) {
                Some(entry) => (entry, false),
                None => {
                    let of = route::channel_of_inbox(channel, &self.id);
                    match of.and_then(|of| entries.get_mut(of)) {
                        Some(entry) => (entry, true),
                        None => continue,
                    }
                }
            };
            if *refused && inbox {
                entry.inbox_refused = true;
            } else if *refused {
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

    /// Whom a release on `channel` by this process wakes alone, when it
    /// knows the next waiting process and has waiters there itself (on a
    /// live subscription); `None`: wake every process. Only the named
    /// process hears the release, so this one takes it in as heard, named
    /// for another, before it is sent: its waiters count it, and its
    /// watchdog (see `route`) looks at the lock if it hears no release
    /// within the grace.
    pub(crate) fn next_waiter(&self, channel: &str) -> Option<NamedWakeUp> {
        let mut state = self.state();
        let entry = state.channels.get_mut(channel)?;
        if entry.waiters == 0 || !entry.signal.borrow().live {
            return None;
        }
        let now = Instant::now();
        let next = entry.route.as_ref()?.next(&self.id, now)?.to_owned();
        let task = entry.heard(Message::Named(&next), &self.id, now);
        drop(state);
        if task != ForTask::Nothing {
            self.work.notify_one();
        }
        Some(NamedWakeUp {
            inbox: route::inbox(channel, &next),
            message: route::named(&next),
            unheard: route::unheard(&next),
        })
    }

    /// `f` on what the waiters of `channel` share (see `Channel`), while
    /// it has waiters or lingers: local work under the state's lock, no
    /// command. `None` when the channel is gone.
    pub(crate) fn on_channel<R>(
        &self,
        channel: &str,
        f: impl FnOnce(&mut Channel) -> R,
    ) -> Option<R> {
        self.state().channels.get_mut(channel).map(f)
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
            let inbox = entry.inbox.clone();
            state.channels.remove(channel);
            state.awaiting.remove(channel);
            if let Some(inbox) = &inbox {
                state.awaiting.remove(inbox);
            }
            let subscribed = state.confirmed.contains(channel)
                || inbox.is_some_and(|inbox| state.confirmed.contains(&inbox));
            if !subscribed {
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
                if let Some(inbox) = &entry.inbox {
                    awaiting.remove(inbox);
                }
            }
            !ends
        });
    }

    /// Whether `name` is a channel someone here waits on (or lingers on),
    /// or the inbox of one for process `me`: to stay subscribed.
    fn owns(&self, name: &str, me: &str) -> bool {
        self.channels.contains_key(name)
            || route::channel_of_inbox(name, me)
                .and_then(|channel| self.channels.get(channel))
                .is_some_and(|entry| entry.inbox.as_deref() == Some(name))
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

    /// A directed channel is subscribed with this process's inbox, and the
    /// inbox stays subscribed with it. A release this process names for
    /// another goes to that process's inbox, unheard here: it is taken in
    /// as heard before it is sent, so it wakes no waiter here and leaves the
    /// lease known to be held (a busy answer asks no one). A release in this
    /// process's inbox, or for everyone, wakes one waiter; when no release
    /// is heard within the grace of one named for another, the watchdog
    /// wakes one, with the holder no longer known, so that it looks. A
    /// process without waiters of its own names no one.
    #[test]
    fn a_release_named_for_another_process_wakes_no_waiter_here() {
        let shared = Arc::new(Shared::default());
        let key: Arc<str> = "k".into();
        let waiter = shared.join(&key, "c", true).expect("a new channel");
        let epoch = shared.next_epoch();
        let inbox = route::inbox("c", &shared.id);
        let asked = wants(&shared, epoch);
        assert_eq!(asked, [Arc::from("c"), Arc::from(&*inbox)]);
        shared.subscribed(epoch, &asked, &[false, false]);
        shared.on_push(epoch, push(redis::PushKind::Subscribe, "c"));
        shared.on_push(epoch, push(redis::PushKind::Subscribe, &inbox));
        match shared.next_step(Some(epoch), Instant::now()) {
            Step::Publish(posts) => {
                assert_eq!(posts, [(Arc::from("c"), route::waiting(&shared.id))]);
                shared.published(epoch, &posts, Instant::now());
            }
            _ => panic!("the announcement is due"),
        }
        assert!(
            matches!(
                shared.next_step(Some(epoch), Instant::now()),
                Step::Sleep(_)
            ),
            "the inbox stays subscribed"
        );
        let other = if &*shared.id == "00000000000000ff" {
            "00000000000000fe"
        } else {
            "00000000000000ff"
        };
        assert_eq!(shared.next_waiter("c"), None, "no one announced yet");
        shared.on_push(epoch, message("c", &route::waiting(other)));
        let named = NamedWakeUp {
            inbox: route::inbox("c", other),
            message: route::named(other),
            unheard: route::unheard(other),
        };
        assert_eq!(shared.next_waiter("c"), Some(named.clone()));
        assert!(!woken(&waiter.released), "named for another process");
        let now = Instant::now();
        assert!(knows_holder(&shared, now), "held, for all we know");

        shared.on_push(epoch, message(&inbox, &route::named(&shared.id)));
        assert!(woken(&waiter.released), "in this process's inbox");
        assert!(!knows_holder(&shared, now), "to be looked at");
        shared.on_push(epoch, message("c", ""));
        assert!(woken(&waiter.released), "for everyone");

        assert_eq!(shared.next_waiter("c"), Some(named));
        let _ = shared.next_step(Some(epoch), Instant::now());
        assert!(!woken(&waiter.released), "not before the grace");
        let _ = shared.next_step(Some(epoch), Instant::now() + route::GRACE);
        assert!(woken(&waiter.released), "the watchdog wakes one");
        assert!(!knows_holder(&shared, Instant::now()));
        // Its attempt got the lease: the named one never took it.
        shared.on_channel("c", |c| c.attempt_answered(false));
        assert_eq!(shared.next_waiter("c"), None, "the silent one is dropped");

        shared.on_push(epoch, message("c", &route::waiting(other)));
        shared.leave(&waiter.channel);
        assert_eq!(
            shared.next_waiter("c"),
            None,
            "no waiter here to look if the named one does not take it"
        );
    }

    /// Whether the process knows a holder of channel `c` at `at`.
    fn knows_holder(shared: &Shared, at: Instant) -> bool {
        shared
            .on_channel("c", |c| c.known_holder(at))
            .flatten()
            .is_some()
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
        let held = crate::seen::HeldUntil {
            expires: now + std::time::Duration::from_secs(10),
            announces: true,
        };
        shared.on_channel("c", |c| c.saw_holder(Some(held), 0));
        assert!(knows_holder(&shared, now), "seen");
        shared.on_push(epoch, message("c", ""));
        assert!(!knows_holder(&shared, now), "released since");
        assert!(woken(&waiter.released));
        shared.on_channel("c", |c| c.woken(true));
        assert!(knows_holder(&shared, now), "to be shown");
        shared.on_channel("c", |c| c.woken(false));
        assert!(!knows_holder(&shared, now), "not shown");
        shared.on_channel("c", |c| c.woken(true));
        shared.on_push(epoch, message("c", ""));
        assert!(!knows_holder(&shared, now), "a later release");
        shared.leave(&waiter.channel);
    }
}
