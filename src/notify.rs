//! Wake-ups for waiters: one [`Notifier`] per server (or cluster) and
//! process, shared by every lock built for it through a registry of weak
//! references, owns the subscription task (see `subscriber`) and the state
//! its waiters share (see `channels`).
//!
//! Invariants:
//! - Nothing connects until someone waits; the task ends with the last lock
//!   of the server (the notifier aborts it when dropped).
//! - A waiter relies on a wake-up only for a channel it can hear: on a
//!   cluster, only a channel in its key's slot (`SPUBLISH` reaches only that
//!   shard); otherwise it polls.
//! - Pub/sub is fire-and-forget, expiry publishes nothing and other
//!   libraries never publish: wake-ups are hints that end a wait early, and
//!   the waiter (`wait`) bounds every wait by the holder's expiry.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use redis::{Client, ConnectionAddr, ProtocolVersion};
use tokio::task::JoinHandle;

use crate::channels::{Shared, lock};
use crate::keys;
use crate::kind::NamedWakeUp;
use crate::rt::spawn_if_runtime;
use crate::scripts::Publish;
use crate::subscriber::{Source, run};
use crate::subscription::Subscription;

/// The shared subscription connection to one server, and the task that
/// keeps it subscribed to the channels someone waits on.
pub(crate) struct Notifier {
    shared: Arc<Shared>,
    /// Where the subscription connection goes.
    source: Source,
    /// The task, started by the first waiter; aborted when the notifier goes.
    task: Mutex<Option<JoinHandle<()>>>,
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

    /// Which publish this notifier's subscriptions hear.
    pub(crate) fn hears(&self) -> Publish {
        self.source.publish()
    }

    /// Whether a release of `key` is heard on this notifier's subscription:
    /// on a cluster, only when the release channel shares the key's slot
    /// (the release script's `SPUBLISH` may only reach that slot's shard).
    fn hears_key(&self, key: &str) -> bool {
        self.hears() == Publish::Plain || keys::shares_slot(key)
    }

    /// Registers a waiter on the release `channel` of `key`; the task
    /// subscribes the channel if it is not yet. `directed`: a release there
    /// may name one process (see `route`). `None` when the channel cannot
    /// be heard, is another key's, or without a tokio runtime to run the
    /// task on.
    pub(crate) fn subscribe(
        &self,
        key: &Arc<str>,
        channel: &str,
        directed: bool,
    ) -> Option<Subscription> {
        if !self.hears_key(key) || !self.ensure_running() {
            return None;
        }
        Subscription::join(&self.shared, key, channel, directed)
    }

    /// Registers a waiter on `channel` only if it is live already (others
    /// in the process wait on it): local work, no command.
    pub(crate) fn join_if_live(
        &self,
        key: &Arc<str>,
        channel: &str,
        directed: bool,
    ) -> Option<Subscription> {
        if self.shared.is_live(channel) {
            self.subscribe(key, channel, directed)
        } else {
            None
        }
    }

    /// Whom a release on `channel` wakes alone: the next waiting process,
    /// when this process waits there too and knows it (see `route`);
    /// `None`: wake one waiter in every process.
    pub(crate) fn next_waiter(&self, channel: &str) -> Option<NamedWakeUp> {
        self.shared.next_waiter(channel)
    }

    /// Starts the task unless it runs. A task that ended went with its
    /// runtime (shut down), and its connection with it, without a
    /// disconnection push: the new one starts from nothing.
    fn ensure_running(&self) -> bool {
        let mut task = lock(&self.task);
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            return true;
        }
        self.shared.forget_connection();
        *task = spawn_if_runtime(run(self.shared.clone(), self.source.clone()));
        task.is_some()
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
        let (connected, channels) = self.shared.describe();
        f.debug_struct("Notifier")
            .field("source", &self.source)
            .field("connected", &connected)
            .field("channels", &channels)
            .finish_non_exhaustive()
    }
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
