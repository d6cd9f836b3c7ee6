//! `LockBuilder`: a lock's settings, checked once, and the ways to give it
//! servers: one connection, a URL or client, a Redis Cluster, or N
//! independent masters (Redlock).
//!
//! Invariants:
//! - Every finishing method validates the settings exactly once
//!   ([`LockBuilder::check`]) and then builds from the checked settings.
//! - A lock on one node listens for wake-ups where its connection goes (set
//!   by `connect`/`client`, or `notify_with`); a Redlock listens to one of
//!   its nodes that answered when connecting, or not at all.

use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::connection::LockConnection;
use crate::engine::Engine;
use crate::error::{Error, Operation, Result};
use crate::keys;
use crate::lock::Lock;
use crate::mutex::MutexLease;
use crate::node::Node;
use crate::notify::Notifier;
use crate::quorum::{self, Quorum};
use crate::replicas::ReplicaSync;
use crate::retry::WaitPolicy;
use crate::subscriber::Source;
use crate::topology::{Listener, Topology};
use crate::ttl::{ClockDrift, DEFAULT_TTL, MIN_TTL, check_ttl};

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
    ttl: Duration,
    wait: WaitPolicy,
    auto_renew: bool,
    max_hold: Option<Duration>,
    fencing: bool,
    drift: ClockDrift,
    node_timeout: Option<Duration>,
    /// Where waiters of a lock on one node listen for releases.
    notify: Option<Source>,
    command_timeout: Option<Duration>,
    replica_sync: Option<ReplicaSync>,
}

impl LockBuilder {
    pub(crate) fn new(key: String) -> LockBuilder {
        LockBuilder {
            key,
            ttl: DEFAULT_TTL,
            wait: WaitPolicy::default(),
            auto_renew: false,
            max_hold: None,
            fencing: false,
            drift: ClockDrift::DEFAULT,
            node_timeout: None,
            notify: None,
            command_timeout: None,
            replica_sync: None,
        }
    }

    /// Sets the lease length: how long the lock outlives a holder that
    /// crashed. Between [`MIN_TTL`] and [`MAX_TTL`](crate::MAX_TTL), rounded down to whole
    /// milliseconds.
    ///
    /// Defaults to 30 s.
    pub fn ttl(mut self, ttl: Duration) -> LockBuilder {
        self.ttl = ttl;
        self
    }

    /// Sets how [`Lock::acquire`] waits while another owner holds the lock.
    ///
    /// Defaults to [`WaitPolicy::default()`]: up to 10 s, backing off from
    /// 2 ms to 100 ms with jitter.
    pub fn wait(mut self, policy: WaitPolicy) -> LockBuilder {
        self.wait = policy;
        self
    }

    /// Renews every guard of this lock automatically while it is held (see
    /// [`LockGuard::auto_renew`](crate::LockGuard::auto_renew)): the TTL then only bounds how long the lock
    /// outlives a crashed holder, not how long work may take.
    ///
    /// Defaults to off. [`Lock::run`] always renews.
    pub fn auto_renew(mut self, on: bool) -> LockBuilder {
        self.auto_renew = on;
        self
    }

    /// Caps how long renewal keeps one acquisition held, counted from the
    /// acquire: past it, renewal stops and the lock expires (and the lease
    /// reports loss), so a stuck holder cannot keep the lock forever. The
    /// last extend is shortened to end at the cap.
    ///
    /// Defaults to no cap. Must be at least [`MIN_TTL`].
    pub fn max_hold(mut self, max_hold: Duration) -> LockBuilder {
        self.max_hold = Some(max_hold);
        self
    }

    /// Turns on fencing tokens: each acquisition also gets a `u64` fence
    /// ([`LockGuard::fence`](crate::LockGuard::fence)) strictly greater than every fence issued before
    /// for this key on this Redis node, for the protected resource to check
    /// (see [`FencedResource`](crate::FencedResource)).
    ///
    /// Acquire is then one script instead of `SET`, still one round trip: if
    /// the lock is free it `INCR`s a counter under
    /// [`Lock::fence_key`] (`{key}:fence`, in the lock's Cluster slot) and
    /// sets the lock. A held lock leaves the counter alone, so waiting burns
    /// no fences. On the wire the lock is the same string key with a token, so
    /// fenced and unfenced clients of this crate, and other libraries that
    /// lock this format, still exclude each other; only fenced acquisitions
    /// advance the counter.
    ///
    /// Fences are monotonic only while the counter only goes up: on one node,
    /// without eviction (`noeviction`), with nobody deleting or lowering the
    /// counter key, and, if the node can crash, with AOF persistence and
    /// `appendfsync always` (RDB snapshots and `appendfsync everysec` can
    /// lose the last increments and hand out the same fences again). They
    /// are **not** monotonic after a failover to an asynchronously replicated
    /// replica that had not yet seen the last `INCR`. After a regression the
    /// resource's check is no longer safe: a stale holder's fence from before
    /// it can be greater than the current holder's. There is no fence across
    /// independent nodes: fencing is single-node only, and a lock over a
    /// quorum of nodes (Redlock) refuses it, since independent counters give
    /// no order between them (Kleppmann: that would take consensus).
    ///
    /// With fencing on, [`build`](LockBuilder::build) fails with
    /// [`Error::InvalidArgument`] for a key with a `}` outside a hash tag
    /// (such as `"a}b"` or `"x{}y}"`): Redis Cluster hashes such a key whole,
    /// and no counter key could share its slot.
    ///
    /// Defaults to off.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("reports:lock")
    ///     .fencing(true)
    ///     .connect("redis://127.0.0.1/")
    ///     .await?;
    /// let guard = lock.acquire().await?;
    /// println!("fence {:?}", guard.fence());
    /// # Ok(()) }
    /// ```
    pub fn fencing(mut self, on: bool) -> LockBuilder {
        self.fencing = on;
        self
    }

    /// Sets the margin kept off every lease for clocks that run at slightly
    /// different rates: a guard trusts a lease of `ttl` for
    /// `ttl - (factor * ttl + fixed)` from before the command that set it was
    /// sent (see [`LockGuard::deadline`](crate::LockGuard::deadline)). Applies to one node and to a
    /// Redlock alike.
    ///
    /// `factor` must be between 0 and 0.5; the margin must leave some
    /// validity of the TTL (on a Redlock, more than the per-node timeout).
    ///
    /// Defaults to `0.01` and 2 ms (1% + 2 ms, as the Redlock reference
    /// implementation).
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .clock_drift(0.02, Duration::from_millis(5));
    /// ```
    pub fn clock_drift(mut self, factor: f64, fixed: Duration) -> LockBuilder {
        self.drift = ClockDrift { factor, fixed };
        self
    }

    /// Sets how long a Redlock waits for each node's answer to each step. A
    /// node that does not answer in time counts as failed for that step, so
    /// a dead or stalled node costs each step at most this long. Keep it far
    /// below the TTL: it must be at most a tenth of it.
    ///
    /// Only a Redlock ([`build_quorum`](LockBuilder::build_quorum) and its
    /// siblings) uses it; a lock on one node relies on its connection's own
    /// timeouts.
    ///
    /// Defaults to 50 ms, or a tenth of the TTL if that is shorter.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .ttl(Duration::from_secs(10))
    ///     .node_timeout(Duration::from_millis(20));
    /// ```
    pub fn node_timeout(mut self, timeout: Duration) -> LockBuilder {
        self.node_timeout = Some(timeout);
        self
    }

    /// Wakes waiting [`acquire`](Lock::acquire)s through pub/sub on the
    /// server `client` points to (the one the lock's connection goes to):
    /// the holder's release publishes on the key's channel, and a waiter
    /// tries again at once instead of at its next backoff step.
    ///
    /// [`connect`](LockBuilder::connect) and [`client`](LockBuilder::client)
    /// do this by themselves; a lock [built](LockBuilder::build) over a
    /// connection of yours needs it, or its waiters fall back to polling
    /// under the [`WaitPolicy`]'s backoff. All locks of a process on one
    /// server share one subscription connection, opened when a first
    /// `acquire` has to wait. A Redlock ignores it: one from
    /// [`connect_quorum`](LockBuilder::connect_quorum) or
    /// [`clients_quorum`](LockBuilder::clients_quorum) listens to one of its
    /// nodes by itself (and polls as well), one from
    /// [`build_quorum`](LockBuilder::build_quorum) polls.
    ///
    /// A lock built over a Redis Cluster connection ignores it too: its
    /// releases are announced with `SPUBLISH` in the key's shard, which a
    /// plain subscription never hears; use
    /// [`notify_with_cluster`](LockBuilder::notify_with_cluster) there.
    ///
    /// See [`Lock::acquire`] ("Waiting") for the order waiters get the lock
    /// in and what bounds a wait.
    ///
    /// Defaults to none for [`build`](LockBuilder::build).
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let connection = client.get_connection_manager().await.unwrap();
    /// let lock = redis_mutex::Lock::builder("jobs:import")
    ///     .notify_with(&client)
    ///     .build(connection)?;
    /// # Ok(()) }
    /// ```
    pub fn notify_with(mut self, client: &redis::Client) -> LockBuilder {
        self.notify = Some(Source::Server(client.clone()));
        self
    }

    /// Wakes waiting [`acquire`](Lock::acquire)s through sharded pub/sub
    /// (`SSUBSCRIBE`) on the Redis Cluster `client` points to: the
    /// counterpart of [`notify_with`](LockBuilder::notify_with) for a lock
    /// [built](LockBuilder::build) over a cluster connection of yours.
    /// [`connect_cluster`](LockBuilder::connect_cluster) and
    /// [`cluster_client`](LockBuilder::cluster_client) do this by themselves.
    ///
    /// `client` must speak RESP3 (`.use_protocol(redis::ProtocolVersion::RESP3)`
    /// on its builder); otherwise the subscriptions are refused and waiters
    /// poll. A key with a `}` but no hash tag (say `"a}b"`) has no release
    /// channel in its slot: its waiters poll too. Needs the crate feature
    /// `cluster`.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::cluster::ClusterClient::builder(["redis://10.0.0.1:7000/"])
    ///     .use_protocol(redis::ProtocolVersion::RESP3)
    ///     .build()
    ///     .unwrap();
    /// let connection = client.get_async_connection().await.unwrap();
    /// let lock = redis_mutex::Lock::builder("{orders}:import")
    ///     .notify_with_cluster(&client)
    ///     .build(connection)?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn notify_with_cluster(mut self, client: &redis::cluster::ClusterClient) -> LockBuilder {
        self.notify = Some(Source::Cluster(client.clone()));
        self
    }

    /// Sets how long each command of this lock (acquire, release, extend,
    /// `is_held`) waits for Redis's answer before it fails with
    /// [`Error::TimedOut`]. The command may still run on the server after
    /// that: a timed-out acquire is released by token in the background, a
    /// timed-out extend leaves the guard's deadline where it was.
    ///
    /// The connection's own response timeout applies as well, so this can
    /// only shorten the wait: connections opened by the `redis` crate
    /// (including those of [`connect`](LockBuilder::connect)) give up after
    /// 500 ms unless configured otherwise. On a Redlock, the
    /// [per-node timeout](LockBuilder::node_timeout) bounds each node too.
    ///
    /// Renewal never waits past the guard's deadline, whatever the timeout.
    ///
    /// Defaults to none: the connection's own response timeout only. Must
    /// be above zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .ttl(Duration::from_secs(2))
    ///     .command_timeout(Duration::from_millis(200));
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> LockBuilder {
        self.command_timeout = Some(timeout);
        self
    }

    /// After each acquire, waits (`WAIT replicas timeout`, on the connection
    /// the `SET` went on) until `replicas` replicas have the lock. If fewer
    /// confirm within `timeout`, the acquire fails with
    /// [`Error::NotReplicated`] and the lock is released again. For
    /// deployments with failover: a lock only the master had is lost when a
    /// replica is promoted, and the same lock can then be granted twice.
    ///
    /// This narrows that window; it does not close it. Replication stays
    /// asynchronous: a replica that confirmed can still lose the write, and
    /// failover may promote one that did not confirm. An acquire takes one
    /// more round trip, plus the replicas' delay (up to `timeout` when they
    /// lag). `WAIT` blocks the connection it is sent on for that long, so
    /// give such locks their own connection rather than one shared with
    /// latency-sensitive work, and keep `timeout` below the connection's
    /// response timeout (500 ms by default) and the
    /// [command timeout](LockBuilder::command_timeout).
    ///
    /// Single-node locks only (a Redlock's nodes are independent masters).
    /// `timeout` must be at least 1 ms and below half the lease's validity.
    ///
    /// Defaults to off.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .wait_for_replicas(1, Duration::from_millis(100));
    /// ```
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> LockBuilder {
        self.replica_sync = Some(ReplicaSync::Wait { replicas, timeout });
        self
    }

    /// Like [`wait_for_replicas`](LockBuilder::wait_for_replicas), but with
    /// `WAITAOF` (Redis 7.2 and later): waits until the lock is fsynced to
    /// the append-only file of the master (when `local`; the master needs
    /// `appendonly yes`) and of `replicas` replicas. Older servers answer
    /// that they have no such command: the acquire then fails with
    /// [`Error::UnsupportedServer`] and the lock is released.
    /// [`ServerReport::has_waitaof`](crate::ServerReport::has_waitaof) tells
    /// ahead of time.
    ///
    /// Defaults to off.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .wait_for_aof(true, 1, Duration::from_millis(100));
    /// ```
    pub fn wait_for_aof(mut self, local: bool, replicas: u32, timeout: Duration) -> LockBuilder {
        self.replica_sync = Some(ReplicaSync::Aof {
            local,
            replicas,
            timeout,
        });
        self
    }

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
        self.check()?.single(connection)
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
        let checked = self.check()?;
        let nodes: Vec<Node> = connections
            .into_iter()
            .map(|connection| Node::new(connection, checked.settings.command_timeout))
            .collect();
        let node_timeout = checked.check_quorum(nodes.len())?;
        let labels = (0..nodes.len()).map(|i| format!("node {i}")).collect();
        let quorum = Quorum::new(nodes, labels, node_timeout, checked.settings.drift);
        checked.quorum(quorum, None)
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
        let checked = self.check()?;
        let clients = urls
            .into_iter()
            .map(|url| redis::Client::open(url).map_err(|e| checked.connect_error(e)))
            .collect::<Result<Vec<_>>>()?;
        checked.clients_quorum(&clients).await
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
        self.check()?.clients_quorum(clients).await
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
        let checked = self.check()?;
        let client = redis::cluster::ClusterClient::builder(seeds)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .build()
            .map_err(|e| checked.connect_error(e))?;
        checked.cluster_client(&client).await
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
        self.check()?.cluster_client(client).await
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
        let checked = self.check()?;
        let client = redis::Client::open(url).map_err(|e| checked.connect_error(e))?;
        checked.client(&client).await
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
        self.check()?.client(client).await
    }

    /// Checks every setting, once per finishing call.
    fn check(self) -> Result<Checked> {
        let ttl = self.validate()?;
        let fence_key = if self.fencing {
            Some(keys::fence_key(&self.key)?)
        } else {
            None
        };
        Ok(Checked {
            settings: self,
            ttl,
            fence_key,
        })
    }

    fn validate(&self) -> Result<Duration> {
        keys::check_key(&self.key)?;
        self.wait.validate()?;
        if let Some(max_hold) = self.max_hold
            && max_hold < MIN_TTL
        {
            return Err(Error::invalid(
                "max_hold",
                format!("{max_hold:?} is below the minimum of {MIN_TTL:?}"),
            ));
        }
        if self.fencing {
            keys::fence_key(&self.key)?;
        }
        if self.command_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid("command_timeout", "must be above zero"));
        }
        let ttl = check_ttl(self.ttl)?;
        // Before what is checked against the validity the margin leaves.
        self.drift.check()?;
        self.drift.check_validity("clock_drift", ttl)?;
        if let Some(sync) = &self.replica_sync {
            sync.validate(self.drift.validity(ttl))?;
            if let Some(command_timeout) = self.command_timeout
                && command_timeout <= sync.timeout()
            {
                return Err(Error::invalid(
                    "command_timeout",
                    format!(
                        "{command_timeout:?} must be above the replica timeout ({:?}), or every WAIT times out on the client first",
                        sync.timeout()
                    ),
                ));
            }
        }
        Ok(ttl)
    }

    /// Checks a Redlock of `nodes` nodes; returns the per-node timeout.
    fn validate_quorum(&self, ttl: Duration, nodes: usize) -> Result<Duration> {
        if self.replica_sync.is_some() {
            return Err(Error::invalid(
                "replicas",
                "a Redlock's nodes are independent masters: wait for replicas on a lock on one node",
            ));
        }
        if self.fencing {
            return Err(Error::invalid(
                "fencing",
                "a Redlock cannot issue fencing tokens: counters on independent nodes have no order between them; fence on a single node instead",
            ));
        }
        if nodes == 0 {
            return Err(Error::invalid(
                "nodes",
                "a Redlock needs at least 1 node (3 or 5 are typical), got 0",
            ));
        }
        let node_timeout = self
            .node_timeout
            .unwrap_or_else(|| quorum::default_node_timeout(ttl));
        if node_timeout.is_zero() || node_timeout > ttl / 10 {
            return Err(Error::invalid(
                "node_timeout",
                format!(
                    "{node_timeout:?} must be above zero and at most a tenth of the {ttl:?} TTL ({:?})",
                    ttl / 10
                ),
            ));
        }
        if self.drift.validity(ttl) <= node_timeout {
            return Err(Error::invalid(
                "clock_drift",
                format!(
                    "a margin of {:?} leaves no more validity of the {ttl:?} TTL than the per-node timeout ({node_timeout:?})",
                    self.drift.margin(ttl)
                ),
            ));
        }
        Ok(node_timeout)
    }
}

/// A builder whose settings passed validation: what the finishing methods
/// build from.
struct Checked {
    settings: LockBuilder,
    ttl: Duration,
    fence_key: Option<String>,
}

impl Checked {
    fn connect_error(&self, source: redis::RedisError) -> Error {
        Error::from_redis(Operation::Connect, &self.settings.key, source)
    }

    fn single(self, connection: impl LockConnection) -> Result<Lock> {
        let node = Node::new(connection, self.settings.command_timeout);
        let notifier = self.settings.notify.clone().map(Notifier::for_source);
        self.finish(Topology::single(node, notifier))
    }

    async fn client(mut self, client: &redis::Client) -> Result<Lock> {
        self.settings
            .notify
            .get_or_insert_with(|| Source::Server(client.clone()));
        let manager = ConnectionManager::new_with_config(client.clone(), manager_config())
            .await
            .map_err(|e| self.connect_error(e))?;
        self.single(manager)
    }

    #[cfg(feature = "cluster")]
    async fn cluster_client(mut self, client: &redis::cluster::ClusterClient) -> Result<Lock> {
        self.settings
            .notify
            .get_or_insert_with(|| Source::Cluster(client.clone()));
        let connection = client
            .get_async_connection()
            .await
            .map_err(|e| self.connect_error(e))?;
        self.single(connection)
    }

    /// Checks a Redlock of `nodes` nodes; returns the per-node timeout.
    fn check_quorum(&self, nodes: usize) -> Result<Duration> {
        self.settings.validate_quorum(self.ttl, nodes)
    }

    fn quorum(self, quorum: Quorum, listener: Option<(Source, usize)>) -> Result<Lock> {
        let listener = listener.map(|(source, node)| Listener {
            notifier: Notifier::for_source(source),
            node,
        });
        self.finish(Topology::quorum(quorum, listener))
    }

    async fn clients_quorum(self, clients: &[redis::Client]) -> Result<Lock> {
        let node_timeout = self.check_quorum(clients.len())?;
        for (i, client) in clients.iter().enumerate() {
            let addr = client.get_connection_info().addr();
            if let Some(j) = clients[..i]
                .iter()
                .position(|other| other.get_connection_info().addr() == addr)
            {
                return Err(Error::invalid(
                    "nodes",
                    format!(
                        "nodes {j} and {i} are the same server ({addr}); a Redlock needs independent servers"
                    ),
                ));
            }
        }
        // Lazy managers: each connects on first use (the identification
        // round below), and a node that is down or stalled now keeps
        // connecting when it is next used, without holding up the rest.
        let config = manager_config();
        let managers = clients
            .iter()
            .map(|client| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.connect_error(e))?;
        let labels = clients
            .iter()
            .enumerate()
            .map(|(i, client)| format!("node {i} ({})", client.get_connection_info().addr()))
            .collect();
        let command_timeout = self.settings.command_timeout;
        let nodes = managers
            .into_iter()
            .map(|manager| Node::new(manager, command_timeout))
            .collect();
        let quorum = Quorum::new(nodes, labels, node_timeout, self.settings.drift);
        let (identified, failures) = quorum.identify_connecting(quorum::CONNECT_TIMEOUT).await?;
        let required = quorum::majority(clients.len());
        if identified < required {
            return Err(Error::QuorumNotReached {
                operation: Operation::Connect,
                key: self.settings.key,
                granted: identified,
                required,
                failures,
            });
        }
        // Waiters listen to one node that answered: a release publishes on
        // every node it reaches.
        let listener = (0..clients.len())
            .find(|i| failures.iter().all(|f| f.node != *i))
            .map(|node| (Source::Server(clients[node].clone()), node));
        self.quorum(quorum, listener)
    }

    fn finish(self, topology: Topology) -> Result<Lock> {
        let settings = self.settings;
        Ok(Lock::from_engine(Engine {
            kind: MutexLease::new(&settings.key, self.fence_key),
            ttl: self.ttl,
            wait: settings.wait,
            auto_renew: settings.auto_renew,
            max_hold: settings.max_hold,
            drift: settings.drift,
            topology,
            replica_sync: settings.replica_sync,
        }))
    }
}

/// The `ConnectionManager` settings of the connections the builder opens:
/// few, short connection retries, so that a caller with Redis down hears
/// about it in about a second, not after the default ~6 s of retries.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drift_margin_that_leaves_no_validity_is_refused() {
        let err = Lock::builder("k")
            .ttl(Duration::from_millis(100))
            .clock_drift(0.01, Duration::from_millis(99))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves no validity"), "{err}");
    }
}
