//! Waiting for a release: waiters are woken through pub/sub when the holder
//! releases, instead of polling.
//!
//! - The release script deletes the lock and, in the same script, `PUBLISH`es
//!   on the key's [release channel](release_channel).
//! - One [`Notifier`] per server (or cluster) and process (shared through a
//!   registry of weak references by every lock built for it) owns one RESP3
//!   connection that is subscribed to the channels of the keys someone in the
//!   process waits for, counted per channel. Its task connects, subscribes,
//!   unsubscribes and reconnects; the connection exists only once someone
//!   waited, and the task ends with the last lock.
//! - On a Redis Cluster the release publishes with `SPUBLISH`, and the
//!   connection is a cluster connection that `SSUBSCRIBE`s each channel on
//!   its slot's master; the server's own `sunsubscribe` when the slot moves
//!   makes the task subscribe again, where the slot went.
//! - On a Redlock the notifier listens to one of its nodes; there a release
//!   wake-up is a hint, and waiters poll as well (see [`Waiter`]).
//! - Everything the connection pushes (subscribe and unsubscribe
//!   confirmations, messages, its own disconnection) arrives in order in one
//!   callback, the only place that decides whether a channel is *live*
//!   (confirmed on a connection that is up). Per channel, a `watch` carries
//!   that flag (notified when it changes) and the holder as last seen by a
//!   waiter here; a `Notify` queues the waiters for release wake-ups.
//! - A release wakes one waiter per process: the one queued longest
//!   (`notify_one` is FIFO). If it leaves without its attempt failing (it got
//!   the lock, an error, dropped), the next one is woken in its place; an
//!   attempt that fails means the lock has a new holder, who will announce
//!   its own release. One `SET` per process per release instead of one per
//!   waiter, and no herd of tasks on the handoff's path.
//! - A waiting `acquire` ([`Waiter`]) subscribes after its first busy answer
//!   (or joins before its first attempt when the channel is live already),
//!   and relies on a release wake-up only for an attempt it sent while its
//!   channel was live, having queued for the wake-up and marked the liveness
//!   as seen just before sending it. A release after that attempt reached
//!   Redis then publishes after the subscription was confirmed, so its
//!   message wakes this waiter or one queued before it (who takes the lock
//!   or passes the wake-up on), or the disconnection that lost the message
//!   notifies it. A subscription that comes up (or back) notifies too, and
//!   the waiter tries again right away, covered from then on.
//! - Pub/sub is fire-and-forget, expiry publishes nothing, and other
//!   libraries never publish: so a wait is bounded by the holder's expiry.
//!   After a busy answer a waiter asks for the holder's token and `PTTL`
//!   (never on the uncontended path) and tells the channel's other waiters,
//!   whose timers follow it; the wake-up passed on after a local winner
//!   makes the next waiter do the same for the new holder. When the
//!   holder's token is not in this crate's format (a foreign client), waiters
//!   also poll under the wait policy's backoff. Without a live subscription a
//!   waiter backs off as it would without pub/sub.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Waker};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
#[cfg(feature = "cluster")]
use redis::cluster::{ClusterClient, ClusterConfig};
#[cfg(feature = "cluster")]
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, ProtocolVersion, PushInfo, PushKind,
    RedisError, RedisResult,
};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connection::Node;
use crate::fence::hash_tag;
use crate::quorum::join_all;
use crate::retry::Backoff;
use crate::token;

/// What the release channel's name adds to the key.
const CHANNEL_SUFFIX: &str = ":released";

/// The first pause between reconnects after a failed one; doubled each time.
const RECONNECT_MIN: Duration = Duration::from_millis(10);
/// The longest pause between reconnects.
const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// Bounds on connecting and on each (un)subscribe of the subscription
/// connection; past them the connection counts as broken.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The channel a release of `key` is announced on: `{key}:released`, or
/// `key:released` when the key has a hash tag, so that it hashes to the key's
/// Cluster slot (for sharded pub/sub). A key with a `}` outside a hash tag
/// (`"a}b"`) cannot share its slot with any other name and also gets
/// `key:released`; with plain `PUBLISH`, which reaches every node, the slot
/// does not matter.
pub(crate) fn release_channel(key: &str) -> String {
    if hash_tag(key).is_some() || key.contains('}') {
        // Either the tag, or (for `a}b`) nothing, decides the slot.
        format!("{key}{CHANNEL_SUFFIX}")
    } else {
        format!("{{{key}}}{CHANNEL_SUFFIX}")
    }
}

/// Whether `key`'s release channel hashes to `key`'s Cluster slot: always,
/// unless the key has a `}` but no hash tag (then it is hashed whole, and no
/// other name shares its slot).
fn channel_shares_slot(key: &str) -> bool {
    hash_tag(key).is_some() || !key.contains('}')
}

/// Locks the mutex, ignoring poisoning: every critical section here leaves
/// the state consistent at each step, and nothing in them panics.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `client` switched to RESP3, for pushes on a multiplexed connection.
fn resp3(client: &Client) -> Client {
    let info = client.get_connection_info();
    let resp3 = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Client::open(info.clone().set_redis_settings(resp3))
        // Opening a client from a `ConnectionInfo` cannot fail; if it ever
        // did, a plain RESP2 client fails to subscribe instead, and waiters
        // poll.
        .unwrap_or_else(|_| client.clone())
}

/// The shared subscription connection to one server, and the task that
/// keeps it subscribed to the channels someone waits on.
pub(crate) struct Notifier {
    shared: Arc<Shared>,
    /// Where the subscription connection goes.
    source: Source,
    /// The task, started by the first waiter; aborted when the notifier goes.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Where a notifier subscribes, and how.
// Made once per lock and kept by its notifier: its size does not matter.
#[cfg_attr(feature = "cluster", allow(clippy::large_enum_variant))]
#[derive(Clone)]
pub(crate) enum Source {
    /// One server: `SUBSCRIBE` on a multiplexed connection of this client,
    /// switched to RESP3 (pushes).
    Server(Client),
    /// A Redis Cluster: sharded pub/sub (`SSUBSCRIBE`), each channel in the
    /// shard that owns its slot (which is its key's slot), through the
    /// cluster connection's routing. Needs a client that speaks RESP3; with
    /// RESP2 the subscriptions are refused and waiters poll.
    #[cfg(feature = "cluster")]
    Cluster(ClusterClient),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Server(client) => f
                .debug_tuple("Server")
                .field(client.get_connection_info().addr())
                .finish(),
            #[cfg(feature = "cluster")]
            Source::Cluster(_) => f.write_str("Cluster"),
        }
    }
}

/// Which server or cluster (and user) a notifier is for.
#[derive(PartialEq)]
enum SourceId {
    Server(ServerId),
    /// A `ClusterClient` offers no accessor for its seeds or settings; its
    /// `Debug` text lists both (password redacted), so two clients that
    /// print the same connect the same way, as the same user, and share a
    /// notifier.
    #[cfg(feature = "cluster")]
    Cluster(String),
}

impl SourceId {
    fn of(source: &Source) -> SourceId {
        match source {
            Source::Server(client) => SourceId::Server(ServerId::of(client)),
            #[cfg(feature = "cluster")]
            Source::Cluster(client) => SourceId::Cluster(format!("{client:?}")),
        }
    }
}

/// Which server (and user) a notifier is for.
#[derive(PartialEq)]
struct ServerId {
    addr: ConnectionAddr,
    db: i64,
    username: Option<String>,
    password: Option<String>,
}

impl ServerId {
    fn of(client: &Client) -> ServerId {
        let info = client.get_connection_info();
        let redis = info.redis_settings();
        ServerId {
            addr: info.addr().clone(),
            db: redis.db(),
            username: redis.username().map(str::to_owned),
            password: redis.password().map(str::to_owned),
        }
    }
}

/// The notifiers of this process, one per server while any lock uses it.
static REGISTRY: Mutex<Vec<(SourceId, Weak<Notifier>)>> = Mutex::new(Vec::new());

impl Notifier {
    /// The process's notifier for `source`, made if there is none. Connects
    /// nothing yet: that waits for the first waiter.
    pub(crate) fn for_source(source: Source) -> Arc<Notifier> {
        let id = SourceId::of(&source);
        let mut registry = lock(&REGISTRY);
        registry.retain(|(_, notifier)| notifier.strong_count() > 0);
        if let Some(notifier) = registry
            .iter()
            .find(|(known, _)| *known == id)
            .and_then(|(_, notifier)| notifier.upgrade())
        {
            return notifier;
        }
        let source = match source {
            Source::Server(client) => Source::Server(resp3(&client)),
            #[cfg(feature = "cluster")]
            cluster @ Source::Cluster(_) => cluster,
        };
        let notifier = Arc::new(Notifier {
            shared: Arc::new(Shared::default()),
            source,
            task: Mutex::new(None),
        });
        registry.push((id, Arc::downgrade(&notifier)));
        notifier
    }

    /// Whether a release of `key` is heard on this notifier's subscription:
    /// on a cluster, only when the release channel shares the key's slot
    /// (the release script's `SPUBLISH` may only reach that slot's shard).
    fn hears(&self, key: &str) -> bool {
        matches!(self.source, Source::Server(_)) || channel_shares_slot(key)
    }

    /// Registers a waiter on `key`'s release channel; the task subscribes the
    /// channel if it is not yet. `None` without a tokio runtime to run the
    /// task on.
    fn subscribe(&self, key: &str) -> Option<Subscription> {
        if !self.hears(key) || !self.ensure_running() {
            return None;
        }
        let channel: Arc<str> = release_channel(key).into();
        let mut state = self.shared.state();
        let live = state.confirmed.contains(&channel);
        let entry = state
            .channels
            .entry(channel.clone())
            .or_insert_with(|| Channel {
                waiters: 0,
                signal: watch::channel(Signal { live, holder: None }).0,
                released: Arc::new(Notify::new()),
                refused: false,
            });
        entry.waiters += 1;
        let signal = entry.signal.subscribe();
        let released = entry.released.clone();
        drop(state);
        if !live {
            self.shared.work.notify_one();
        }
        Some(Subscription {
            shared: self.shared.clone(),
            channel,
            signal,
            released,
            armed: None,
            woken: false,
        })
    }

    /// Registers a waiter on `key`'s release channel only if it is live
    /// already (others in the process wait on it): local work, no command.
    fn join_if_live(&self, key: &str) -> Option<Subscription> {
        let state = self.shared.state();
        // Nobody waits on anything: not even the channel's name is made.
        if state.channels.is_empty() {
            return None;
        }
        let channel = release_channel(key);
        let live = state
            .channels
            .get(channel.as_str())
            .is_some_and(|entry| entry.signal.borrow().live);
        drop(state);
        if live { self.subscribe(key) } else { None }
    }

    /// Starts the task unless it runs. A task that ended went with its
    /// runtime (shut down), and its connection with it, without a
    /// disconnection push: the new one starts from nothing.
    fn ensure_running(&self) -> bool {
        let mut task = lock(&self.task);
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        self.shared.forget_connection();
        *task = Some(runtime.spawn(run(self.shared.clone(), self.source.clone())));
        true
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            // Drops the connection, whose driver then drops the push
            // callback: nothing of the notifier outlives it.
            task.abort();
        }
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("Notifier")
            .field("source", &self.source)
            .field("connected", &state.connected)
            .field("channels", &state.channels.len())
            .finish_non_exhaustive()
    }
}

/// What the task, the push callback and the waiters share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the task: a channel gained its first waiter or lost its last
    /// one, or the connection broke.
    work: Notify,
}

#[derive(Default)]
struct State {
    /// The channels someone waits on.
    channels: HashMap<Arc<str>, Channel>,
    /// The channels the current connection is subscribed to, as its own
    /// pushes say.
    confirmed: HashSet<Arc<str>>,
    /// Counts connections; pushes of older ones are ignored.
    epoch: u64,
    /// Whether the current connection is up.
    connected: bool,
}

struct Channel {
    waiters: usize,
    /// Liveness and the holder as last seen, for all the channel's waiters.
    signal: watch::Sender<Signal>,
    /// One wake-up per announced release: the waiter here that has waited
    /// longest.
    released: Arc<Notify>,
    /// The server refused the subscription (an ACL without the channel):
    /// not asked again while the channel has waiters, who poll meanwhile.
    refused: bool,
}

/// What a channel's waiters share, besides the release wake-ups.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Signal {
    /// Subscribed, on a connection that is up: a release will be heard.
    live: bool,
    /// The holder, as last seen by a waiter here.
    holder: Option<Holder>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Holder {
    /// When its key expires unless it is extended, at the latest.
    expires: Instant,
    /// Whether it announces its release (its token has this crate's format).
    announces: bool,
}

/// The task's next step.
enum Step {
    Sleep,
    Connect,
    Subscribe(Vec<Arc<str>>),
    Unsubscribe(Vec<Arc<str>>),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Everything connection `epoch` pushes, in the order it arrived.
    fn on_push(&self, epoch: u64, push: PushInfo) {
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
                if let Some(entry) = state.channels.get(channel) {
                    entry.released.notify_one();
                }
            }
            (PushKind::Subscribe | PushKind::SSubscribe, Some(channel)) => {
                let channel: Arc<str> = channel.into();
                state.set_live(&channel, true);
                state.confirmed.insert(channel);
            }
            (PushKind::Unsubscribe | PushKind::SUnsubscribe, Some(channel)) => {
                state.set_live(channel, false);
                state.confirmed.remove(channel);
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
    fn next_epoch(&self) -> u64 {
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
    fn lost(&self, epoch: u64) {
        let mut state = self.state();
        if state.epoch == epoch {
            state.disconnected();
        }
    }

    fn forget_connection(&self) {
        let mut state = self.state();
        state.disconnected();
        state.epoch += 1;
    }

    /// What to do next, given the connection the task has.
    fn next_step(&self, connection: Option<u64>) -> Step {
        let state = self.state();
        let wanted: Vec<Arc<str>> = state
            .channels
            .iter()
            .filter(|(name, entry)| !entry.refused && !state.confirmed.contains(*name))
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
    /// refused, and those it accepted without a confirmation (never expected;
    /// marked so that the task cannot loop on them), are not asked again.
    fn subscribed(&self, epoch: u64, channels: &[Arc<str>], refused: &[bool]) {
        let mut state = self.state();
        if state.epoch != epoch || !state.connected {
            return;
        }
        let State {
            channels: entries,
            confirmed,
            ..
        } = &mut *state;
        for (channel, refused) in channels.iter().zip(refused) {
            if let Some(entry) = entries.get_mut(channel)
                && (*refused || !confirmed.contains(channel))
            {
                entry.refused = true;
            }
        }
    }

    /// After unsubscribing `channels`: forget them even without a
    /// confirmation, so that the task cannot loop on them.
    fn unsubscribed(&self, epoch: u64, channels: &[Arc<str>]) {
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

/// The task: connects when someone waits, keeps the subscriptions in step
/// with the waiters, and reconnects after a disconnection: at once after a
/// connection that lived a while, else backing off from 10 ms to 1 s, so
/// that a server that keeps refusing or dropping it is not hammered. Runs
/// until the notifier aborts it.
async fn run(shared: Arc<Shared>, source: Source) {
    let mut connection: Option<(u64, Subscriber)> = None;
    let mut connected_at: Option<Instant> = None;
    // Connections in a row that failed or broke within RECONNECT_MAX.
    let mut failures: u32 = 0;
    loop {
        match shared.next_step(connection.as_ref().map(|(epoch, _)| *epoch)) {
            Step::Sleep => shared.work.notified().await,
            Step::Connect => {
                // Let the old one go before pausing.
                drop(connection.take());
                match connected_at.take() {
                    Some(at) if at.elapsed() >= RECONNECT_MAX => failures = 0,
                    Some(_) => failures = failures.saturating_add(1),
                    None => {}
                }
                let pause = reconnect_pause(failures);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                connection = connect(&shared, &source).await;
                if connection.is_some() {
                    connected_at = Some(Instant::now());
                } else {
                    failures = failures.saturating_add(1);
                }
            }
            Step::Subscribe(channels) => {
                let Some((epoch, conn)) = &connection else {
                    continue;
                };
                // One command per channel, all in flight at once, so that
                // the server's refusal of one names it.
                let results = join_all(channels.iter().map(|channel| {
                    let mut conn = conn.clone();
                    async move { conn.subscribe(channel).await }
                }))
                .await;
                if results.iter().any(|r| r.as_ref().is_err_and(unanswered)) {
                    // No answer (timeout, broken connection): start over.
                    shared.lost(*epoch);
                    continue;
                }
                let refused: Vec<bool> = results.iter().map(Result::is_err).collect();
                shared.subscribed(*epoch, &channels, &refused);
            }
            Step::Unsubscribe(channels) => {
                let Some((epoch, conn)) = &mut connection else {
                    continue;
                };
                if conn.unsubscribe(&channels).await.is_err() {
                    shared.lost(*epoch);
                    continue;
                }
                shared.unsubscribed(*epoch, &channels);
            }
        }
    }
}

/// The pause before connecting after `failures` connections in a row failed
/// or broke soon: none at first, then 10 ms doubling to 1 s.
fn reconnect_pause(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => RECONNECT_MIN
            .saturating_mul(1 << (n - 1).min(16))
            .min(RECONNECT_MAX),
    }
}

/// Whether a failed (un)subscribe went unanswered (a timeout, a broken
/// connection), rather than refused: by the server (an error reply), or by
/// the client before sending (a RESP2 cluster client cannot subscribe).
fn unanswered(error: &RedisError) -> bool {
    error.code().is_none() && error.kind() != ErrorKind::InvalidClientConfig
}

/// The subscription connection: to one server, or to a cluster.
#[derive(Clone)]
enum Subscriber {
    Server(MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(ClusterConnection),
}

impl Subscriber {
    async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Subscriber::Server(conn) => conn.subscribe(channel).await,
            #[cfg(feature = "cluster")]
            Subscriber::Cluster(conn) => conn.ssubscribe(channel).await,
        }
    }

    async fn unsubscribe(&mut self, channels: &[Arc<str>]) -> RedisResult<()> {
        match self {
            Subscriber::Server(conn) => {
                let names: Vec<&str> = channels.iter().map(|c| &**c).collect();
                conn.unsubscribe(&names).await
            }
            // One command per channel: channels of different slots in one
            // `SUNSUBSCRIBE` are a cross-slot error.
            #[cfg(feature = "cluster")]
            Subscriber::Cluster(conn) => {
                let results = join_all(channels.iter().map(|channel| {
                    let mut conn = conn.clone();
                    async move { conn.sunsubscribe(&**channel).await }
                }))
                .await;
                results.into_iter().collect()
            }
        }
    }
}

/// Opens a new subscription connection whose pushes go to `shared`.
async fn connect(shared: &Arc<Shared>, source: &Source) -> Option<(u64, Subscriber)> {
    let epoch = shared.next_epoch();
    let sink = {
        let shared = shared.clone();
        move |push: PushInfo| {
            shared.on_push(epoch, push);
            Ok::<(), Infallible>(())
        }
    };
    let connection = match source {
        Source::Server(client) => {
            let config = AsyncConnectionConfig::new()
                .set_push_sender(sink)
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(Subscriber::Server)
        }
        #[cfg(feature = "cluster")]
        Source::Cluster(client) => {
            let config = ClusterConfig::new()
                .set_push_sender(sink)
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT);
            client
                .get_async_connection_with_config(config)
                .await
                .map(Subscriber::Cluster)
        }
    };
    match connection {
        Ok(connection) => Some((epoch, connection)),
        Err(_) => {
            shared.lost(epoch);
            None
        }
    }
}

/// One waiter's interest in a channel; dropping it lets the task unsubscribe
/// when it was the last.
struct Subscription {
    shared: Arc<Shared>,
    channel: Arc<str>,
    signal: watch::Receiver<Signal>,
    released: Arc<Notify>,
    /// In the queue for the next release wake-up, from before the attempt
    /// it covers; `None` once it fired.
    armed: Option<Pin<Box<OwnedNotified>>>,
    /// This waiter took a release wake-up and its attempt has not failed
    /// (yet): if it leaves now (it got the lock, failed, or was dropped),
    /// the next waiter is woken in its place.
    woken: bool,
}

/// What ended a wait early.
enum Event {
    /// A release was announced, and this waiter is the one woken for it.
    Released,
    /// The channel's liveness or the holder as seen here changed.
    Changed,
}

impl Subscription {
    /// Queues for the next release, unless already queued, and marks the
    /// signal as seen; whether the channel is live. Call right before an
    /// attempt.
    fn arm(&mut self) -> bool {
        if self.armed.is_none() {
            let mut armed = Box::pin(self.released.clone().notified_owned());
            // Queued from now on, not only once polled.
            armed.as_mut().enable();
            self.armed = Some(armed);
        }
        self.signal.borrow_and_update().live
    }

    fn signal(&self) -> Signal {
        *self.signal.borrow()
    }

    /// Whether this waiter's release wake-up came already (taking it).
    fn released_already(&mut self) -> bool {
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

    /// Tells the channel's other waiters who holds the lock now (`None`:
    /// not known).
    fn saw_holder(&self, holder: Option<Holder>) {
        let state = self.shared.state();
        if let Some(entry) = state.channels.get(&self.channel) {
            entry.signal.send_if_modified(|signal| {
                let changed = signal.holder != holder;
                signal.holder = holder;
                changed
            });
        }
    }

    /// Completes at this waiter's release wake-up, or when the signal
    /// changes after the last mark.
    async fn event(&mut self) -> Event {
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
            if state.confirmed.contains(&self.channel) {
                drop(state);
                self.shared.work.notify_one();
            }
        }
    }
}

/// The waiting part of one `acquire`: between a busy answer and the next
/// attempt.
pub(crate) struct Waiter<'a> {
    key: &'a str,
    backoff: Backoff,
    /// Where to listen and whom to ask about the holder, when the lock has a
    /// notifier.
    notify: Option<(&'a Notifier, &'a Node)>,
    /// The notifier's node is one of a Redlock's: a release that did not
    /// reach it publishes nothing there, and its key may be gone or may
    /// outlive the lock. Its wake-ups and holder are hints: the waiter also
    /// polls under the backoff, as without pub/sub.
    hints_only: bool,
    subscription: Option<Subscription>,
    /// Whether the channel was live when the last attempt was sent.
    live: bool,
}

impl<'a> Waiter<'a> {
    /// Made before the first attempt. When others in the process already
    /// wait on the key, with a live subscription, the first attempt is
    /// covered too, and a busy answer needs no second try.
    pub(crate) fn new(
        key: &'a str,
        backoff: Backoff,
        notify: Option<(&'a Notifier, &'a Node)>,
        hints_only: bool,
    ) -> Waiter<'a> {
        let mut subscription = notify.and_then(|(notifier, _)| notifier.join_if_live(key));
        let live = subscription.as_mut().is_some_and(Subscription::arm);
        Waiter {
            key,
            backoff,
            notify,
            hints_only,
            subscription,
            live,
        }
    }

    /// Waits after a busy answer until the next attempt is worth sending.
    /// `false` when the wait policy's deadline has passed: give up.
    ///
    /// Cancel safe: dropping it (with the `Waiter`) gives up this waiter's
    /// share of the subscription, and passes on a release wake-up it took.
    pub(crate) async fn wait(&mut self) -> bool {
        let now = Instant::now();
        let Some(left) = self.backoff.time_left(now) else {
            return false;
        };
        let deadline = now.checked_add(left);
        if let Some(subscription) = self.subscription.as_mut() {
            // The attempt after its wake-up found the lock taken: the new
            // holder will announce its release in turn.
            subscription.woken = false;
        } else {
            self.subscription = self
                .notify
                .and_then(|(notifier, _)| notifier.subscribe(self.key));
        }
        let (Some(subscription), Some((_, node))) = (self.subscription.as_mut(), self.notify)
        else {
            // No pub/sub: the wait policy's backoff.
            let pause = self.backoff.next_sleep(now).unwrap_or(Duration::ZERO);
            tokio::time::sleep(pause.min(left)).await;
            return true;
        };
        // When to try again whatever else happens: the backoff, when
        // releases are not (all) announced.
        let mut poll_at = None;
        let mut again = false;
        if self.live {
            if subscription.released_already() || !subscription.signal().live {
                again = true;
            } else {
                match holder(node, self.key).await {
                    // Gone from a Redlock's node says nothing of the
                    // others: poll (below), or this loop would spin.
                    Seen::Gone if self.hints_only => subscription.saw_holder(None),
                    // Gone since the busy answer: try again now.
                    Seen::Gone => again = true,
                    Seen::Holder(holder) => subscription.saw_holder(Some(holder)),
                    // No TTL (a foreign lock that never expires), or no
                    // answer: poll; an earlier holder's expiry means
                    // nothing now.
                    Seen::Unknown => {
                        subscription.saw_holder(None);
                        poll_at = self.backoff.next_sleep(now).map(|d| now + d);
                    }
                }
            }
        } else if subscription.signal().live {
            // Subscribed since the last attempt: try again at once, now
            // covered; a release before the subscription was confirmed
            // would otherwise go unheard.
            again = true;
        } else {
            // No live subscription (yet, or any more): back off as without
            // notifications; the subscription coming up ends the pause.
            poll_at = self.backoff.next_sleep(now).map(|d| now + d);
        }
        if self.hints_only && poll_at.is_none() {
            poll_at = self.backoff.next_sleep(now).map(|d| now + d);
        }
        while !again {
            // Counting on announced releases, the holder's expiry (which is
            // not announced) bounds the wait: the holder as last seen here,
            // by this waiter or another. Every wake-up at it ends in an
            // inspection that updates it.
            let holder = subscription.signal().holder.filter(|_| self.live);
            if let Some(holder) = holder
                && !holder.announces
                && poll_at.is_none()
            {
                // Another library's holder announces nothing: poll too.
                poll_at = self.backoff.next_sleep(now).map(|d| now + d);
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
                    Event::Released => again = true,
                    // Liveness changed: try again (now covered, or not any
                    // more); else the holder as seen here changed: wait
                    // for it instead.
                    Event::Changed => again = subscription.signal().live != self.live,
                },
                () = sleep => again = true,
            }
        }
        // The mark and the queueing come after the wait and right before
        // the next attempt (nothing is awaited in between): a release after
        // that attempt reached Redis wakes this waiter or one queued before
        // it, and a lost connection notifies it.
        self.live = subscription.arm();
        true
    }
}

/// What an inspection after a busy answer found.
enum Seen {
    Gone,
    Holder(Holder),
    Unknown,
}

/// Asks who holds `key` and until when. A holder of this crate announces its
/// release, so only its expiry (which is not announced) bounds a wait for
/// it; any other holder is polled for as well.
async fn holder(node: &Node, key: &str) -> Seen {
    match node.holder(key).await {
        Ok((None, _)) | Ok((_, -2)) => Seen::Gone,
        Ok((Some(token), ttl)) if ttl >= 0 => {
            // PTTL rounds down: one more millisecond and it has expired.
            let ttl = Duration::from_millis(u64::try_from(ttl).unwrap_or(0) + 1);
            Seen::Holder(Holder {
                expires: Instant::now() + ttl,
                announces: token::has_token_format(&token),
            })
        }
        _ => Seen::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_tag(name: &str) -> &str {
        hash_tag(name).unwrap_or(name)
    }

    #[test]
    fn reconnects_back_off_from_at_once_to_a_second() {
        let pauses: Vec<u128> = (0..10).map(|n| reconnect_pause(n).as_millis()).collect();
        assert_eq!(pauses, [0, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(reconnect_pause(u32::MAX), RECONNECT_MAX);
    }

    #[test]
    fn release_channels_share_the_keys_cluster_slot() {
        for (key, channel) in [
            ("orders", "{orders}:released"),
            ("{orders}:lock", "{orders}:lock:released"),
            ("a{b", "{a{b}:released"),
            ("{", "{{}:released"),
        ] {
            assert_eq!(release_channel(key), channel);
            assert_eq!(slot_tag(&release_channel(key)), slot_tag(key), "{key}");
        }
        // No name shares the slot of a key hashed whole despite a `}`.
        assert_eq!(release_channel("a}b"), "a}b:released");
        assert_eq!(release_channel("foo{}bar"), "foo{}bar:released");
        for key in ["orders", "{orders}:lock", "a{b", "{"] {
            assert!(channel_shares_slot(key), "{key}");
        }
        for key in ["a}b", "foo{}bar"] {
            assert!(!channel_shares_slot(key), "{key}");
        }
    }
}
