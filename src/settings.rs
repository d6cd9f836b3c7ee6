//! The settings a lease is built with, shared by [`LockBuilder`](crate::LockBuilder)
//! (one key) and [`LocksBuilder`](crate::LocksBuilder) (any key): their
//! defaults, their checks, and the setters both builders offer
//! ([`lease_setters!`]), written once.
//!
//! Invariants:
//! - Every finishing method of either builder checks the settings exactly
//!   once ([`Settings::check`]) and builds from the [`Checked`] result.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::kind::Kind;
use crate::metrics::Meter;

use crate::error::{Error, Result};
use crate::quorum;
use crate::replicas::ReplicaSync;
use crate::retry::WaitPolicy;
use crate::subscriber::Source;
use crate::topology::Topology;
use crate::ttl::{ClockDrift, DEFAULT_TTL, MIN_TTL, check_ttl};

/// Everything a builder sets but the key.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) ttl: Duration,
    pub(crate) wait: WaitPolicy,
    pub(crate) auto_renew: bool,
    pub(crate) max_hold: Option<Duration>,
    pub(crate) fencing: bool,
    pub(crate) drift: ClockDrift,
    pub(crate) node_timeout: Option<Duration>,
    /// Where waiters of a lock on one node listen for releases.
    pub(crate) notify: Option<Source>,
    pub(crate) command_timeout: Option<Duration>,
    pub(crate) replica_sync: Option<ReplicaSync>,
    /// The `name` label of the metrics (`metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics_name: Option<std::sync::Arc<str>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
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
            #[cfg(feature = "metrics")]
            metrics_name: None,
        }
    }
}

/// Settings that passed [`Settings::check`], with the TTL as checked.
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    pub(crate) settings: Settings,
    pub(crate) ttl: Duration,
}

impl Checked {
    /// The engine of a lease of `kind` over `topology`, with these settings.
    pub(crate) fn engine<K: Kind>(&self, topology: Arc<Topology>, kind: K) -> Engine<K> {
        let settings = &self.settings;
        let kind_name = kind.kind_name();
        #[cfg(feature = "metrics")]
        let name = settings.metrics_name.as_ref();
        #[cfg(not(feature = "metrics"))]
        let name = None;
        Engine {
            meter: Meter::new(name, kind_name),
            kind,
            ttl: self.ttl,
            wait: settings.wait,
            auto_renew: settings.auto_renew,
            max_hold: settings.max_hold,
            drift: settings.drift,
            topology,
            replica_sync: settings.replica_sync,
        }
    }
}

impl Settings {
    /// Checks every setting, once per finishing call.
    pub(crate) fn check(self) -> Result<Checked> {
        let ttl = self.validate()?;
        Ok(Checked {
            settings: self,
            ttl,
        })
    }

    /// Checks every setting but the key; returns the TTL, rounded down to
    /// whole milliseconds.
    pub(crate) fn validate(&self) -> Result<Duration> {
        self.wait.validate()?;
        if let Some(max_hold) = self.max_hold
            && max_hold < MIN_TTL
        {
            return Err(Error::invalid(
                "max_hold",
                format!("{max_hold:?} is below the minimum of {MIN_TTL:?}"),
            ));
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
    pub(crate) fn validate_quorum(&self, ttl: Duration, nodes: usize) -> Result<Duration> {
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
        quorum::check_node_timeout(node_timeout, ttl, self.drift)?;
        Ok(node_timeout)
    }
}

/// The setters of [`Settings`], for a builder type with a `settings:
/// Settings` field: one text for both builders, so that their options and
/// docs cannot drift apart.
macro_rules! lease_setters {
    () => {
        /// Sets the lease length: how long the lock outlives a holder that
        /// crashed. Between [`MIN_TTL`](crate::MIN_TTL) and [`MAX_TTL`](crate::MAX_TTL), rounded down to whole
        /// milliseconds.
        ///
        /// Defaults to 30 s.
        pub fn ttl(mut self, ttl: ::std::time::Duration) -> Self {
            self.settings.ttl = ttl;
            self
        }

        /// Sets how [`Lock::acquire`](crate::Lock::acquire) waits while another owner holds the lock.
        ///
        /// Defaults to [`WaitPolicy::default()`](crate::WaitPolicy::default): up to 10 s, backing off from
        /// 2 ms to 100 ms with jitter.
        pub fn wait(mut self, policy: $crate::WaitPolicy) -> Self {
            self.settings.wait = policy;
            self
        }

        /// Renews every guard of this lock automatically while it is held (see
        /// [`LockGuard::auto_renew`](crate::LockGuard::auto_renew)): the TTL then only bounds how long the lock
        /// outlives a crashed holder, not how long work may take.
        ///
        /// Defaults to off. [`Lock::run`](crate::Lock::run) always renews.
        pub fn auto_renew(mut self, on: bool) -> Self {
            self.settings.auto_renew = on;
            self
        }

        /// Caps how long renewal keeps one acquisition held, counted from the
        /// acquire: past it, renewal stops and the lock expires (and the lease
        /// reports loss), so a stuck holder cannot keep the lock forever. The
        /// last extend is shortened to end at the cap.
        ///
        /// Defaults to no cap. Must be at least [`MIN_TTL`](crate::MIN_TTL).
        pub fn max_hold(mut self, max_hold: ::std::time::Duration) -> Self {
            self.settings.max_hold = Some(max_hold);
            self
        }

        /// Turns on fencing tokens: each acquisition also gets a `u64` fence
        /// ([`LockGuard::fence`](crate::LockGuard::fence)) strictly greater than every fence issued before
        /// for this key on this Redis node, for the protected resource to check
        /// (see [`FencedResource`](crate::FencedResource)).
        ///
        /// Acquire is then one script instead of `SET`, still one round trip: if
        /// the lock is free it `INCR`s a counter under
        /// [`Lock::fence_key`](crate::Lock::fence_key) (`{key}:fence`, in the lock's Cluster slot) and
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
        /// With fencing on, [`build`](crate::LockBuilder::build) fails with
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a key with a `}` outside a hash tag
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
        pub fn fencing(mut self, on: bool) -> Self {
            self.settings.fencing = on;
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
        pub fn clock_drift(mut self, factor: f64, fixed: ::std::time::Duration) -> Self {
            self.settings.drift = $crate::ttl::ClockDrift { factor, fixed };
            self
        }

        /// Sets how long a Redlock waits for each node's answer to each step. A
        /// node that does not answer in time counts as failed for that step, so
        /// a dead or stalled node costs each step at most this long. Keep it far
        /// below the TTL: it must be at most a tenth of it.
        ///
        /// Only a Redlock ([`build_quorum`](crate::LockBuilder::build_quorum) and its
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
        pub fn node_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.settings.node_timeout = Some(timeout);
            self
        }

        /// Wakes waiting [`acquire`](crate::Lock::acquire)s through pub/sub on the
        /// server `client` points to (the one the lock's connection goes to):
        /// the holder's release publishes on the key's channel, and a waiter
        /// tries again at once instead of at its next backoff step.
        ///
        /// [`connect`](crate::LockBuilder::connect) and [`client`](crate::LockBuilder::client)
        /// do this by themselves; a lock [built](crate::LockBuilder::build) over a
        /// connection of yours needs it, or its waiters fall back to polling
        /// under the [`WaitPolicy`](crate::WaitPolicy)'s backoff. All locks of a process on one
        /// server share one subscription connection, opened when a first
        /// `acquire` has to wait. A Redlock ignores it: one from
        /// [`connect_quorum`](crate::LockBuilder::connect_quorum) or
        /// [`clients_quorum`](crate::LockBuilder::clients_quorum) listens to one of its
        /// nodes by itself (and polls as well), one from
        /// [`build_quorum`](crate::LockBuilder::build_quorum) polls.
        ///
        /// A lock built over a Redis Cluster connection ignores it too: its
        /// releases are announced with `SPUBLISH` in the key's shard, which a
        /// plain subscription never hears; use
        /// [`notify_with_cluster`](crate::LockBuilder::notify_with_cluster) there.
        ///
        /// See [`Lock::acquire`](crate::Lock::acquire) ("Waiting") for the order waiters get the lock
        /// in and what bounds a wait.
        ///
        /// Defaults to none for [`build`](crate::LockBuilder::build).
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
        pub fn notify_with(mut self, client: &redis::Client) -> Self {
            self.settings.notify = Some($crate::subscriber::Source::Server(client.clone()));
            self
        }

        /// Wakes waiting [`acquire`](crate::Lock::acquire)s through sharded pub/sub
        /// (`SSUBSCRIBE`) on the Redis Cluster `client` points to: the
        /// counterpart of [`notify_with`](crate::LockBuilder::notify_with) for a lock
        /// [built](crate::LockBuilder::build) over a cluster connection of yours.
        /// [`connect_cluster`](crate::LockBuilder::connect_cluster) and
        /// [`cluster_client`](crate::LockBuilder::cluster_client) do this by themselves.
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
        pub fn notify_with_cluster(mut self, client: &redis::cluster::ClusterClient) -> Self {
            self.settings.notify = Some($crate::subscriber::Source::Cluster(client.clone()));
            self
        }

        /// Sets how long each command of this lock (acquire, release, extend,
        /// `is_held`) waits for Redis's answer before it fails with
        /// [`Error::TimedOut`](crate::Error::TimedOut). The command may still run on the server after
        /// that: a timed-out acquire is released by token in the background, a
        /// timed-out extend leaves the guard's deadline where it was.
        ///
        /// The connection's own response timeout applies as well, so this can
        /// only shorten the wait: connections opened by the `redis` crate
        /// (including those of [`connect`](crate::LockBuilder::connect)) give up after
        /// 500 ms unless configured otherwise. On a Redlock, the
        /// [per-node timeout](crate::LockBuilder::node_timeout) bounds each node too.
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
        pub fn command_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.settings.command_timeout = Some(timeout);
            self
        }

        /// After each acquire, waits (`WAIT replicas timeout`, on the connection
        /// the `SET` went on) until `replicas` replicas have the lock. If fewer
        /// confirm within `timeout`, the acquire fails with
        /// [`Error::NotReplicated`](crate::Error::NotReplicated) and the lock is released again. For
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
        /// [command timeout](crate::LockBuilder::command_timeout).
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
        pub fn wait_for_replicas(mut self, replicas: u32, timeout: ::std::time::Duration) -> Self {
            self.settings.replica_sync =
                Some($crate::replicas::ReplicaSync::Wait { replicas, timeout });
            self
        }

        /// Like [`wait_for_replicas`](crate::LockBuilder::wait_for_replicas), but with
        /// `WAITAOF` (Redis 7.2 and later): waits until the lock is fsynced to
        /// the append-only file of the master (when `local`; the master needs
        /// `appendonly yes`) and of `replicas` replicas. Older servers answer
        /// that they have no such command: the acquire then fails with
        /// [`Error::UnsupportedServer`](crate::Error::UnsupportedServer) and the lock is released.
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
        pub fn wait_for_aof(
            mut self,
            local: bool,
            replicas: u32,
            timeout: ::std::time::Duration,
        ) -> Self {
            self.settings.replica_sync = Some($crate::replicas::ReplicaSync::Aof {
                local,
                replicas,
                timeout,
            });
            self
        }

        /// Names these locks in their metrics: the `name` label of every
        /// metric they record (see [`describe_metrics`](crate::describe_metrics)
        /// for the list). Give one name to a group of locks an operator
        /// watches together ("checkout", "nightly-reports"), not one per
        /// key: each name is its own time series. Needs the crate feature
        /// `metrics`.
        ///
        /// Defaults to none: the label is then empty. The key is never a
        /// label.
        ///
        /// ```
        /// let builder = redis_mutex::Lock::builder("reports:nightly").metrics_name("reports");
        /// ```
        #[cfg(feature = "metrics")]
        #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
        pub fn metrics_name(mut self, name: impl Into<String>) -> Self {
            self.settings.metrics_name = Some(name.into().into());
            self
        }
    };
}
pub(crate) use lease_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drift_margin_that_leaves_no_validity_is_refused() {
        let settings = Settings {
            ttl: Duration::from_millis(100),
            drift: ClockDrift {
                factor: 0.01,
                fixed: Duration::from_millis(99),
            },
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("leaves no validity"), "{err}");
    }
}
