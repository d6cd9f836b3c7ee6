//! `Locks`: locks for any key from one configuration and one set of
//! connections, and its builder.
//!
//! Invariants:
//! - Every lock a `Locks` hands out shares its topology: the same
//!   connection (one per Redlock node) and the same wake-up notifier, which
//!   live as long as the `Locks` or any of its locks and guards.
//! - Handing out a lock does no I/O: it checks the key, and allocates the
//!   lock's state and its key names.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;

use crate::builder::lease_of;
use crate::connection::LockConnection;
use crate::error::Result;
use crate::fair_lease::{DEFAULT_WAITER_TTL, FairLease};
use crate::fair_lock::{self, FairLock};
use crate::fair_lock_builder::fair_lock_of;
use crate::keys;
use crate::lock::Lock;
use crate::mutex::MutexLease;
use crate::permit_set::{PermitSet, check_permits};
use crate::retry::WaitPolicy;
use crate::rw_lease::rw_leases;
use crate::rwlock::{self, RwLock};
use crate::rwlock_builder::rwlock_of;
use crate::semaphore::{Semaphore, quorum_refused};
use crate::semaphore_builder::semaphore_of;
use crate::settings::{Checked, Settings, lease_setters};
use crate::topology::Topology;

/// Locks for any key, from one configuration: built once per process (from
/// a URL, a `redis::Client`, a connection, a Redlock's servers or a Redis
/// Cluster), cheap to clone, and handing out a [`Lock`] for any key without
/// I/O. Every lock it hands out shares its connection (one per Redlock
/// node) and its wake-up subscription (one per server, opened when a first
/// `acquire` has to wait), which stay open as long as the `Locks` or any of
/// its locks lives: a lock made, used and dropped per request reconnects
/// nothing.
///
/// It carries the defaults of its locks (TTL, wait policy, renewal,
/// fencing, timeouts: the same settings as [`LockBuilder`](crate::LockBuilder))
/// and an optional key prefix. One lock can still differ:
/// [`Lock::with_ttl`], [`Lock::with_wait`].
///
/// ```no_run
/// # async fn example() -> redis_mutex::Result<()> {
/// use std::time::Duration;
/// use redis_mutex::Locks;
///
/// let locks = Locks::builder()
///     .prefix("billing:")
///     .ttl(Duration::from_secs(10))
///     .connect("redis://127.0.0.1/")
///     .await?;
/// // Anywhere in the service, per entity:
/// let guard = locks.lock("order:42")?.acquire().await?; // key "billing:order:42"
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Locks {
    inner: Arc<Shared>,
}

struct Shared {
    checked: Checked,
    topology: Arc<Topology>,
    prefix: String,
}

impl Locks {
    /// Starts building a `Locks`: set the defaults of its locks, then give it
    /// its servers.
    pub fn builder() -> LocksBuilder {
        LocksBuilder {
            prefix: String::new(),
            settings: Settings::default(),
        }
    }

    /// Locks with the default settings over a new
    /// [`ConnectionManager`](redis::aio::ConnectionManager) to `url`.
    /// Same as `Locks::builder().connect(url)`.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let locks = redis_mutex::Locks::connect("redis://127.0.0.1/").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: impl IntoConnectionInfo) -> Result<Locks> {
        Locks::builder().connect(url).await
    }

    /// A lock on `key` (after the prefix, if one was set), sharing this
    /// value's connections, wake-ups and defaults. No I/O.
    ///
    /// Fails with [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for an empty key or, with fencing, a key whose fence counter could
    /// not share its Cluster slot.
    ///
    /// ```no_run
    /// # async fn example(locks: redis_mutex::Locks) -> redis_mutex::Result<()> {
    /// let lock = locks.lock("tenant:7:export")?;
    /// let guard = lock.acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn lock(&self, key: impl AsRef<str>) -> Result<Lock> {
        let shared = &*self.inner;
        let key = self.full_key(key.as_ref())?;
        let fence_key = match shared.checked.settings.fencing {
            true => Some(keys::fence_key(&key)?),
            false => None,
        };
        Ok(lease_of(
            &shared.checked,
            shared.topology.clone(),
            MutexLease::new(&key, fence_key),
        ))
    }

    /// A [`Semaphore`] of `permits` permits on `key` (after the prefix),
    /// sharing this value's connection, wake-ups and defaults (fencing
    /// aside: a semaphore is not fenced). No I/O.
    ///
    /// Fails with [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for an empty key, 0 or too many permits, or when this is a Redlock
    /// quorum (see [`Semaphore`] for why a quorum semaphore is unsound).
    ///
    /// ```no_run
    /// # async fn example(locks: redis_mutex::Locks) -> redis_mutex::Result<()> {
    /// // At most 10 concurrent exports per tenant.
    /// let exports = locks.semaphore("tenant:7:exports", 10)?;
    /// let permit = exports.acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn semaphore(&self, key: impl AsRef<str>, permits: u32) -> Result<Semaphore> {
        let shared = &*self.inner;
        let key = self.full_key(key.as_ref())?;
        check_permits(permits)?;
        if shared.topology.single_node().is_none() {
            return Err(quorum_refused());
        }
        Ok(semaphore_of(
            &shared.checked,
            shared.topology.clone(),
            PermitSet::new(&key, permits),
        ))
    }

    /// A [`RwLock`] on `key` (after the prefix), sharing this value's
    /// connection, wake-ups and defaults (fencing aside). No I/O.
    ///
    /// Fails with [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for an empty key, a key with a `}` outside a hash tag (its readers'
    /// set could not share its Cluster slot), or when this is a Redlock
    /// quorum.
    pub fn rwlock(&self, key: impl AsRef<str>) -> Result<RwLock> {
        let shared = &*self.inner;
        let key = self.full_key(key.as_ref())?;
        let kinds = rw_leases(&key)?;
        if shared.topology.single_node().is_none() {
            return Err(rwlock::quorum_refused());
        }
        Ok(rwlock_of(&shared.checked, shared.topology.clone(), kinds))
    }

    /// A [`FairLock`] on `key` (after the prefix), its waiters' places
    /// living [`DEFAULT_WAITER_TTL`](crate::DEFAULT_WAITER_TTL) (see
    /// [`FairLock::with_waiter_ttl`]), sharing this value's connection,
    /// wake-ups and defaults (fencing aside). No I/O.
    ///
    /// Fails with [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for an empty key, a key with a `}` outside a hash tag (its queue
    /// could not share its Cluster slot), or when this is a Redlock quorum.
    pub fn fair_lock(&self, key: impl AsRef<str>) -> Result<FairLock> {
        let shared = &*self.inner;
        let key = self.full_key(key.as_ref())?;
        let kind = FairLease::new(&key, DEFAULT_WAITER_TTL)?;
        if shared.topology.single_node().is_none() {
            return Err(fair_lock::quorum_refused());
        }
        Ok(fair_lock_of(&shared.checked, shared.topology.clone(), kind))
    }

    /// `key` after the prefix, checked.
    fn full_key(&self, key: &str) -> Result<String> {
        let prefix = &self.inner.prefix;
        let key = match prefix.is_empty() {
            true => key.to_owned(),
            false => format!("{prefix}{key}"),
        };
        keys::check_key(&key)?;
        Ok(key)
    }

    /// The prefix put before every key (empty when none was set).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The lease length of the locks handed out.
    pub fn ttl(&self) -> Duration {
        self.inner.checked.ttl
    }

    /// How the locks handed out wait for a busy lock.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.checked.settings.wait
    }

    /// How many Redis nodes the locks live on: 1, or N for a Redlock.
    pub fn node_count(&self) -> usize {
        self.inner.topology.node_count()
    }
}

impl fmt::Debug for Locks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locks")
            .field("prefix", &self.inner.prefix)
            .field("ttl", &self.inner.checked.ttl)
            .field("topology", &self.inner.topology)
            .finish()
    }
}

/// Builds [`Locks`]: set the defaults of its locks (the same settings as
/// [`LockBuilder`](crate::LockBuilder), with the same defaults) and a key
/// prefix, then give it its servers. Each finishing method opens the
/// connections every lock of the `Locks` then shares; the settings are
/// checked once, there.
#[derive(Clone, Debug)]
#[must_use = "a LocksBuilder does nothing until .connect(), .client() or .build() (or their _quorum and _cluster forms) is called"]
pub struct LocksBuilder {
    prefix: String,
    settings: Settings,
}

impl LocksBuilder {
    /// Puts `prefix` before every key (a namespace): `lock("order:42")`
    /// with prefix `"billing:"` locks the Redis key `"billing:order:42"`.
    /// On the wire the key is the prefixed name, so other libraries lock it
    /// by that name. A prefix with a hash tag (`"{billing}:"`) puts every
    /// lock in one Cluster slot.
    ///
    /// Defaults to none.
    pub fn prefix(mut self, prefix: impl Into<String>) -> LocksBuilder {
        self.prefix = prefix.into();
        self
    }

    lease_setters!();

    /// Locks over an existing connection, such as a clone of your
    /// application's [`ConnectionManager`](redis::aio::ConnectionManager):
    /// see [`LockBuilder::build`](crate::LockBuilder::build). Add
    /// [`notify_with`](LocksBuilder::notify_with) for waiters to be woken.
    pub fn build(self, connection: impl LockConnection) -> Result<Locks> {
        let checked = self.settings.clone().check()?;
        let topology = checked.single(connection);
        Ok(self.finish(checked, topology))
    }

    /// Locks over a new connection to `url`, woken through pub/sub on the
    /// same server: see [`LockBuilder::connect`](crate::LockBuilder::connect).
    pub async fn connect(self, url: impl IntoConnectionInfo) -> Result<Locks> {
        let mut checked = self.settings.clone().check()?;
        let topology = checked.url(url, &self.label()).await?;
        Ok(self.finish(checked, topology))
    }

    /// Locks over a new connection from `client`, woken through pub/sub on
    /// the same server: see [`LockBuilder::client`](crate::LockBuilder::client).
    pub async fn client(self, client: &redis::Client) -> Result<Locks> {
        let mut checked = self.settings.clone().check()?;
        let topology = checked.client(client, &self.label()).await?;
        Ok(self.finish(checked, topology))
    }

    /// Redlocks over `connections` to independent masters: see
    /// [`LockBuilder::build_quorum`](crate::LockBuilder::build_quorum).
    pub fn build_quorum<C: LockConnection>(
        self,
        connections: impl IntoIterator<Item = C>,
    ) -> Result<Locks> {
        let checked = self.settings.clone().check()?;
        let topology = checked.quorum_of(connections)?;
        Ok(self.finish(checked, topology))
    }

    /// Redlocks over a new connection to each of `urls`: see
    /// [`LockBuilder::connect_quorum`](crate::LockBuilder::connect_quorum).
    pub async fn connect_quorum<U: IntoConnectionInfo>(
        self,
        urls: impl IntoIterator<Item = U>,
    ) -> Result<Locks> {
        let checked = self.settings.clone().check()?;
        let topology = checked.urls_quorum(urls, &self.label()).await?;
        Ok(self.finish(checked, topology))
    }

    /// Redlocks over a new connection from each of `clients`: see
    /// [`LockBuilder::clients_quorum`](crate::LockBuilder::clients_quorum).
    pub async fn clients_quorum(self, clients: &[redis::Client]) -> Result<Locks> {
        let checked = self.settings.clone().check()?;
        let topology = checked.clients_quorum(clients, &self.label()).await?;
        Ok(self.finish(checked, topology))
    }

    /// Locks on the Redis Cluster that `seeds` belong to: see
    /// [`LockBuilder::connect_cluster`](crate::LockBuilder::connect_cluster).
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn connect_cluster<U: IntoConnectionInfo>(
        self,
        seeds: impl IntoIterator<Item = U>,
    ) -> Result<Locks> {
        let mut checked = self.settings.clone().check()?;
        let topology = checked.cluster_seeds(seeds, &self.label()).await?;
        Ok(self.finish(checked, topology))
    }

    /// Locks on a Redis Cluster over a new connection from `client`: see
    /// [`LockBuilder::cluster_client`](crate::LockBuilder::cluster_client).
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn cluster_client(self, client: &redis::cluster::ClusterClient) -> Result<Locks> {
        let mut checked = self.settings.clone().check()?;
        let topology = checked.cluster_client(client, &self.label()).await?;
        Ok(self.finish(checked, topology))
    }

    /// How connect errors name what was being built: the prefix and `*`.
    fn label(&self) -> String {
        format!("{}*", self.prefix)
    }

    fn finish(self, checked: Checked, topology: Arc<Topology>) -> Locks {
        Locks {
            inner: Arc::new(Shared {
                checked,
                topology,
                prefix: self.prefix,
            }),
        }
    }
}
