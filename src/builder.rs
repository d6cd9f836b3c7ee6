//! `LockBuilder`: one lock's key and settings, and the ways to give it
//! servers (one connection, a URL or client, a Redis Cluster, or N
//! independent masters: Redlock). The settings and their setters are
//! `settings`'; how servers are reached is `connect`.
//!
//! Invariants:
//! - Every finishing method checks the key and the settings exactly once
//!   (`LockBuilder::check`) and then builds from the checked settings.
//! - Each finishing call opens its own connections; to lock many keys over
//!   one set of connections, use a [`Locks`](crate::Locks).

use std::sync::Arc;

use redis::IntoConnectionInfo;

use crate::connection::LockConnection;
use crate::engine::Engine;
#[cfg(doc)]
use redis::aio::ConnectionManager;

use crate::error::Result;
#[cfg(doc)]
use crate::error::{Error, Operation};
use crate::keys;
use crate::kind::Kind;
use crate::lock::Lock;
use crate::metrics::Meter;
use crate::mutex::MutexLease;
#[cfg(doc)]
use crate::retry::WaitPolicy;
use crate::settings::{Checked, Settings, lease_setters};
use crate::topology::Topology;

/// The ways into a lock: both start from its builder.
impl Lock {
    /// Starts building a lock on `key`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import").ttl(Duration::from_secs(10));
    /// ```
    pub fn builder(key: impl Into<String>) -> LockBuilder {
        LockBuilder::new(key.into())
    }

    /// A lock on `key` with the default TTL and wait policy over `connection`.
    /// Same as `Lock::builder(key).build(connection)`.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let manager = client.get_connection_manager().await.unwrap();
    /// let lock = redis_mutex::Lock::new("jobs:import", manager)?;
    /// # Ok(()) }
    /// ```
    pub fn new(key: impl Into<String>, connection: impl LockConnection) -> Result<Lock> {
        Lock::builder(key).build(connection)
    }
}

/// Builds a [`Lock`]: set the TTL and wait policy, then give it a connection
/// ([`build`](LockBuilder::build), [`connect`](LockBuilder::connect),
/// [`client`](LockBuilder::client)), or N connections to independent Redis
/// masters for a Redlock ([`build_quorum`](LockBuilder::build_quorum),
/// [`connect_quorum`](LockBuilder::connect_quorum),
/// [`clients_quorum`](LockBuilder::clients_quorum)).
#[derive(Clone, Debug)]
#[must_use = "a LockBuilder does nothing until .build(), .connect() or .client() (or their _quorum forms) is called"]
pub struct LockBuilder {
    key: String,
    settings: Settings,
}

impl LockBuilder {
    pub(crate) fn new(key: String) -> LockBuilder {
        LockBuilder {
            key,
            settings: Settings::default(),
        }
    }

    lease_setters!();

    /// Builds the lock over an existing connection, such as a clone of your
    /// application's [`ConnectionManager`] or
    /// [`MultiplexedConnection`](redis::aio::MultiplexedConnection). Many locks
    /// can share one connection.
    ///
    /// Fails with [`Error::InvalidArgument`] for an empty key, a TTL out of
    /// range, a wait policy that would busy-loop, or, with
    /// [fencing](LockBuilder::fencing), a key whose fence counter could not
    /// share its Cluster slot.
    ///
    /// The connection's own settings apply to every command: its response
    /// timeout (500 ms by default in `redis` 1.x) and, for a
    /// `ConnectionManager`, its reconnect schedule. With the `redis` crate's
    /// default `ConnectionManagerConfig`, a command sent while Redis is down
    /// waits out about 10 s of reconnect attempts before it fails;
    /// [`connect`](LockBuilder::connect) configures a manager that gives up
    /// after about half a second.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let connection = client.get_multiplexed_async_connection().await.unwrap();
    /// let lock = redis_mutex::Lock::builder("jobs:import").build(connection)?;
    /// # Ok(()) }
    /// ```
    pub fn build(self, connection: impl LockConnection) -> Result<Lock> {
        let (checked, fence_key) = self.check()?;
        let topology = checked.single(connection);
        Ok(self.finish(checked, topology, fence_key))
    }

    /// Builds a Redlock: one lock over N independent Redis masters (not
    /// replicas of each other, not nodes of one Cluster), taken when a
    /// majority of them (N/2 + 1) granted it. It keeps working while a
    /// majority is up. See the crate docs' "Redlock" section for what it does
    /// and does not protect against.
    ///
    /// Every step (acquire, release, extend, inspect) goes to all nodes at
    /// once, each bounded by the [per-node timeout](LockBuilder::node_timeout).
    /// A guard's [deadline](crate::LockGuard::deadline) is the TTL minus the time the
    /// acquire took minus the [clock drift](LockBuilder::clock_drift).
    ///
    /// Use an odd N (3 or 5): an even N tolerates no more failed nodes than
    /// the odd N below it (4 nodes need 3, so they survive one failure, like
    /// 3 nodes) and has more nodes that can fail. N = 1 works, but is a lock
    /// on one Redis with extra steps.
    ///
    /// Fails with [`Error::InvalidArgument`] for no connections, or a
    /// per-node timeout that is zero or above a tenth of the TTL, besides the
    /// checks of [`build`](LockBuilder::build).
    ///
    /// One server counts as one vote however it is reached: each node is
    /// identified by its server's `INFO server` (`run_id`) before it votes.
    /// This builds without I/O, so the first acquire asks every node first
    /// (one more round trip, once), and fails with
    /// [`Error::InvalidArgument`] naming both nodes when two of them are one
    /// server (a connection and its clone, two connections to one server);
    /// every later step fails the same way. A node that did not answer is
    /// asked again at each step, and votes once it answered together with
    /// the nodes known before it.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let mut connections = Vec::new();
    /// for url in ["redis://10.0.0.1/", "redis://10.0.0.2/", "redis://10.0.0.3/"] {
    ///     let client = redis::Client::open(url).unwrap();
    ///     connections.push(client.get_connection_manager().await.unwrap());
    /// }
    /// let lock = redis_mutex::Lock::builder("jobs:import").build_quorum(connections)?;
    /// # Ok(()) }
    /// ```
    pub fn build_quorum<C: LockConnection>(
        self,
        connections: impl IntoIterator<Item = C>,
    ) -> Result<Lock> {
        let (checked, fence_key) = self.check()?;
        let topology = checked.quorum_of(connections)?;
        Ok(self.finish(checked, topology, fence_key))
    }

    /// Builds a Redlock over a new [`ConnectionManager`] to each of `urls`:
    /// see [`build_quorum`](LockBuilder::build_quorum).
    ///
    /// It connects to all nodes at once and identifies each by its server's
    /// `INFO server` (`run_id`). It waits for each node at most 1 s, but once
    /// a majority answered, for the rest only one more
    /// [per-node timeout](LockBuilder::node_timeout), so a stalled node costs
    /// connecting what it costs a step; a node that did not answer is
    /// connected to when it is next used, and votes once identified. Fails
    /// with [`Error::QuorumNotReached`] (operation [`Operation::Connect`])
    /// when fewer than a majority answered, and with
    /// [`Error::InvalidArgument`] naming both when two nodes are one server,
    /// whatever names reach it (`localhost` and `127.0.0.1`, two databases of
    /// one server): one server counted twice would let its restart give the
    /// lock to two owners. The lock's ACL user needs `+info`.
    ///
    /// Waiters listen for releases on the first node that answered (see
    /// [`notify_with`](LockBuilder::notify_with)): a hint that makes a
    /// handoff take about a round trip, on top of polling under the
    /// [`WaitPolicy`], since that one node may have missed the holder's `SET`
    /// or its release.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// use std::time::Duration;
    ///
    /// let lock = redis_mutex::Lock::builder("jobs:import")
    ///     .ttl(Duration::from_secs(10))
    ///     .connect_quorum([
    ///         "redis://10.0.0.1/",
    ///         "redis://10.0.0.2/",
    ///         "redis://10.0.0.3/",
    ///         "redis://10.0.0.4/",
    ///         "redis://10.0.0.5/",
    ///     ])
    ///     .await?;
    /// let guard = lock.acquire().await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_quorum<U: IntoConnectionInfo>(
        self,
        urls: impl IntoIterator<Item = U>,
    ) -> Result<Lock> {
        let (checked, fence_key) = self.check()?;
        let topology = checked.urls_quorum(urls, &self.key).await?;
        Ok(self.finish(checked, topology, fence_key))
    }

    /// Builds a Redlock over a new [`ConnectionManager`] from each of
    /// `clients`: see [`connect_quorum`](LockBuilder::connect_quorum).
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let clients: Vec<redis::Client> = ["redis://10.0.0.1/", "redis://10.0.0.2/", "redis://10.0.0.3/"]
    ///     .into_iter()
    ///     .map(|url| redis::Client::open(url).unwrap())
    ///     .collect();
    /// let lock = redis_mutex::Lock::builder("jobs:import").clients_quorum(&clients).await?;
    /// # Ok(()) }
    /// ```
    pub async fn clients_quorum(self, clients: &[redis::Client]) -> Result<Lock> {
        let (checked, fence_key) = self.check()?;
        let topology = checked.clients_quorum(clients, &self.key).await?;
        Ok(self.finish(checked, topology, fence_key))
    }

    /// Builds the lock over a new async connection to the Redis Cluster that
    /// `seeds` belong to (any of its nodes; more than one in case one is
    /// down). Needs the crate feature `cluster`.
    ///
    /// The lock lives on the master that owns its key's slot; the cluster
    /// connection follows `MOVED` and `ASK` redirections while slots move
    /// (resharding, failover), so a lock whose slot moved while held is still
    /// extended and released where it went. Every script touches only keys
    /// of one slot: the lock key, and with [`fencing`](LockBuilder::fencing)
    /// its counter `{key}:fence` (or `key:fence` when the key has a hash tag).
    ///
    /// What a failover does: replication is asynchronous, so a replica
    /// promoted before it saw the `SET` does not know the lock, and another
    /// client can take it. Use
    /// [`wait_for_replicas`](LockBuilder::wait_for_replicas) to narrow that
    /// window, or a Redlock across independent clusters or servers.
    ///
    /// A release announces itself with a sharded publish (`SPUBLISH`, in the
    /// key's shard), and waiters subscribe to it with `SSUBSCRIBE` on that
    /// shard: one subscription connection set per cluster and process,
    /// opened when a first `acquire` has to wait, following the channel when
    /// its slot moves. The client speaks RESP3 (needed for subscriptions on a
    /// cluster connection) for every command.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("{orders}:import")
    ///     .connect_cluster(["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"])
    ///     .await?;
    /// let guard = lock.acquire().await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn connect_cluster<U: IntoConnectionInfo>(
        self,
        seeds: impl IntoIterator<Item = U>,
    ) -> Result<Lock> {
        let (mut checked, fence_key) = self.check()?;
        let topology = checked.cluster_seeds(seeds, &self.key).await?;
        Ok(self.finish(checked, topology, fence_key))
    }

    /// Builds the lock over a new async connection from a
    /// [`ClusterClient`](redis::cluster::ClusterClient): see
    /// [`connect_cluster`](LockBuilder::connect_cluster). A lock can also be
    /// [built](LockBuilder::build) over a cluster connection you already
    /// have, since it is a [`LockConnection`] (add
    /// [`notify_with_cluster`](LockBuilder::notify_with_cluster) for its
    /// waiters to be woken).
    ///
    /// Waiters are woken through sharded pub/sub when `client` speaks RESP3
    /// (`.use_protocol(redis::ProtocolVersion::RESP3)` on its builder, as
    /// `connect_cluster` does); a RESP2 client cannot subscribe on a cluster
    /// connection, and its waiters poll under the [`WaitPolicy`].
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::cluster::ClusterClient::new(["redis://10.0.0.1:7000/"]).unwrap();
    /// let lock = redis_mutex::Lock::builder("{orders}:import").cluster_client(&client).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn cluster_client(self, client: &redis::cluster::ClusterClient) -> Result<Lock> {
        let (mut checked, fence_key) = self.check()?;
        let topology = checked.cluster_client(client, &self.key).await?;
        Ok(self.finish(checked, topology, fence_key))
    }

    /// Builds the lock over a new [`ConnectionManager`] (which reconnects by
    /// itself) to the server at `url`, e.g. `"redis://127.0.0.1:6379/"`, with
    /// waiters woken through pub/sub on the same server (see
    /// [`notify_with`](LockBuilder::notify_with)).
    ///
    /// Each call opens a connection: to lock many keys, open one
    /// `ConnectionManager` and [`build`](LockBuilder::build) every lock over
    /// a clone of it.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("jobs:import").connect("redis://127.0.0.1/").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self, url: impl IntoConnectionInfo) -> Result<Lock> {
        let (mut checked, fence_key) = self.check()?;
        let topology = checked.url(url, &self.key).await?;
        Ok(self.finish(checked, topology, fence_key))
    }

    /// Builds the lock over a new [`ConnectionManager`] from `client`, with
    /// waiters woken through pub/sub on the same server (see
    /// [`notify_with`](LockBuilder::notify_with)).
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let lock = redis_mutex::Lock::builder("jobs:import").client(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn client(self, client: &redis::Client) -> Result<Lock> {
        let (mut checked, fence_key) = self.check()?;
        let topology = checked.client(client, &self.key).await?;
        Ok(self.finish(checked, topology, fence_key))
    }

    /// Checks the key and every setting, once per finishing call; returns
    /// the checked settings and the fence counter's key.
    fn check(&self) -> Result<(Checked, Option<String>)> {
        keys::check_key(&self.key)?;
        let fence_key = match self.settings.fencing {
            true => Some(keys::fence_key(&self.key)?),
            false => None,
        };
        Ok((self.settings.clone().check()?, fence_key))
    }

    fn finish(&self, checked: Checked, topology: Arc<Topology>, fence_key: Option<String>) -> Lock {
        lease_of(&checked, topology, MutexLease::new(&self.key, fence_key))
    }
}

/// A lock of `kind` over `topology` with `checked` settings: what every
/// way into a lock ends with.
pub(crate) fn lease_of(checked: &Checked, topology: Arc<Topology>, kind: MutexLease) -> Lock {
    let settings = &checked.settings;
    let kind_name = kind.kind_name();
    Lock::from_engine(Engine {
        kind,
        ttl: checked.ttl,
        wait: settings.wait,
        auto_renew: settings.auto_renew,
        max_hold: settings.max_hold,
        drift: settings.drift,
        topology,
        replica_sync: settings.replica_sync,
        meter: Meter::new(settings, kind_name),
    })
}
