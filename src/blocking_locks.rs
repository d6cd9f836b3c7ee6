//! `blocking::Locks` and `blocking::LocksBuilder`: locks for any key from
//! one configuration, for code without async, over the async
//! [`Locks`](crate::Locks) (see its invariants: one set of connections,
//! shared by every lock handed out, opened on the blocking runtime).

use std::fmt;
use std::time::Duration;

use crate::blocking_fair_lock::FairLock;
use crate::blocking_lock::Lock;
use crate::blocking_rwlock::RwLock;
use crate::blocking_semaphore::Semaphore;
use crate::blocking_sources::blocking_sources;
use crate::error::Result;
use crate::locks::{Locks as AsyncLocks, LocksBuilder as AsyncBuilder};
use crate::retry::WaitPolicy;

/// Locks for any key from one configuration, for code without async: the
/// blocking mirror of [`crate::Locks`]. Build it with
/// [`LocksBuilder::blocking`](crate::LocksBuilder::blocking); cheap to
/// clone, and handing out a [`blocking::Lock`](crate::blocking::Lock) for
/// any key without I/O.
///
/// ```no_run
/// # fn example() -> redis_mutex::Result<()> {
/// let locks = redis_mutex::Locks::builder()
///     .prefix("billing:")
///     .blocking()
///     .connect("redis://127.0.0.1/")?;
/// let guard = locks.lock("order:42")?.acquire()?; // key "billing:order:42"
/// guard.release()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Locks {
    inner: AsyncLocks,
}

impl Locks {
    fn new(inner: AsyncLocks) -> Locks {
        Locks { inner }
    }

    /// A lock on `key` (after the prefix), sharing this value's
    /// connections and defaults. No I/O. See [`crate::Locks::lock`].
    pub fn lock(&self, key: impl AsRef<str>) -> Result<Lock> {
        self.inner.lock(key).map(Lock::new)
    }

    /// A [`blocking::Semaphore`](crate::blocking::Semaphore) of `permits`
    /// permits on `key` (after the prefix), sharing this value's
    /// connections and defaults. No I/O. See [`crate::Locks::semaphore`]
    /// (refused on a Redlock quorum).
    ///
    /// ```no_run
    /// # fn example(locks: redis_mutex::blocking::Locks) -> redis_mutex::Result<()> {
    /// // At most 10 concurrent exports per tenant.
    /// let permit = locks.semaphore("tenant:7:exports", 10)?.acquire()?;
    /// # Ok(()) }
    /// ```
    pub fn semaphore(&self, key: impl AsRef<str>, permits: u32) -> Result<Semaphore> {
        self.inner.semaphore(key, permits).map(Semaphore::new)
    }

    /// A [`blocking::RwLock`](crate::blocking::RwLock) on `key` (after the
    /// prefix), sharing this value's connections and defaults. No I/O. See
    /// [`crate::Locks::rwlock`] (refused on a Redlock quorum).
    pub fn rwlock(&self, key: impl AsRef<str>) -> Result<RwLock> {
        self.inner.rwlock(key).map(RwLock::new)
    }

    /// A [`blocking::FairLock`](crate::blocking::FairLock) on `key` (after
    /// the prefix), sharing this value's connections and defaults. No I/O.
    /// See [`crate::Locks::fair_lock`] (refused on a Redlock quorum).
    pub fn fair_lock(&self, key: impl AsRef<str>) -> Result<FairLock> {
        self.inner.fair_lock(key).map(FairLock::new)
    }

    /// The async `Locks` underneath.
    pub fn as_async(&self) -> &AsyncLocks {
        &self.inner
    }

    /// The prefix put before every key (empty when none was set).
    pub fn prefix(&self) -> &str {
        self.inner.prefix()
    }

    /// The lease length of the locks handed out.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl()
    }

    /// How the locks handed out wait for a busy lock.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait_policy()
    }

    /// How many Redis nodes the locks live on: 1, or N for a Redlock.
    pub fn node_count(&self) -> usize {
        self.inner.node_count()
    }
}

impl fmt::Debug for Locks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Locks").field(&self.inner).finish()
    }
}

impl AsyncBuilder {
    /// The blocking way into these locks (crate feature `blocking`): the
    /// same settings, finished by blocking calls that return a
    /// [`blocking::Locks`](crate::blocking::Locks).
    #[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
    pub fn blocking(self) -> LocksBuilder {
        LocksBuilder { inner: self }
    }
}

/// Builds [`blocking::Locks`](crate::blocking::Locks): from
/// [`LocksBuilder::blocking`](crate::LocksBuilder::blocking), with the
/// settings made there.
#[derive(Clone, Debug)]
#[must_use = "a blocking::LocksBuilder does nothing until .connect() or one of its siblings is called"]
pub struct LocksBuilder {
    inner: AsyncBuilder,
}

impl LocksBuilder {
    blocking_sources!(Locks, LocksBuilder, quorum);
}
