//! `blocking::Lock` and `blocking::LockBuilder`: the mutex for code without
//! async, over the async [`Lock`](crate::Lock), each call run on the
//! blocking runtime (`blocking_rt`). Same key, same token format, same
//! scripts: a blocking holder and an async one exclude each other.

use std::fmt;
use std::time::Duration;

use crate::blocking_guard::LockGuard;
use crate::blocking_rt;
use crate::blocking_sources::blocking_sources;
use crate::builder::LockBuilder as AsyncBuilder;
use crate::error::Result;
use crate::handoff::Handoff;
use crate::inspect::LockHolder;
use crate::lease::Lease;
use crate::lock::Lock as AsyncLock;
use crate::retry::WaitPolicy;

/// A distributed lock on one Redis key, for code without async: the
/// blocking mirror of [`crate::Lock`], with the same settings, guarantees,
/// errors and wire format. Build it with
/// [`LockBuilder::blocking`](crate::LockBuilder::blocking), or hand one out
/// from a [`blocking::Locks`](crate::blocking::Locks).
///
/// Cheap to clone, `Send` and `Sync`: share it between threads. Every call
/// blocks the calling thread; inside a tokio runtime each refuses with
/// [`Error::BlockingInRuntime`](crate::Error::BlockingInRuntime) (see
/// [the module](crate::blocking)).
///
/// ```no_run
/// # fn example() -> redis_mutex::Result<()> {
/// use std::time::Duration;
/// use redis_mutex::{Lock, WaitPolicy};
///
/// let lock = Lock::builder("reports:nightly")
///     .ttl(Duration::from_secs(30))
///     .wait(WaitPolicy::timeout(Duration::from_secs(5)))
///     .blocking()
///     .connect("redis://127.0.0.1/")?;
/// let guard = lock.acquire()?;
/// // ... the critical section ...
/// guard.release()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lock {
    inner: AsyncLock,
}

impl Lock {
    pub(crate) fn new(inner: AsyncLock) -> Lock {
        Lock { inner }
    }

    /// The async lock underneath, for what the blocking API does not
    /// mirror; its futures run on any runtime (the connection's driver runs
    /// on the blocking API's own).
    pub fn as_async(&self) -> &AsyncLock {
        &self.inner
    }

    /// The key the lock lives under, exactly as given.
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// The lease length of each acquisition.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl()
    }

    /// How [`acquire`](Lock::acquire) waits for a busy lock.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait_policy()
    }

    /// This lock with another lease length. See [`crate::Lock::with_ttl`].
    pub fn with_ttl(&self, ttl: Duration) -> Result<Lock> {
        self.inner.with_ttl(ttl).map(Lock::new)
    }

    /// This lock with another [`WaitPolicy`]. See [`crate::Lock::with_wait`].
    pub fn with_wait(&self, policy: WaitPolicy) -> Result<Lock> {
        self.inner.with_wait(policy).map(Lock::new)
    }

    /// The key of the fence counter, with fencing. See
    /// [`crate::Lock::fence_key`].
    pub fn fence_key(&self) -> Option<&str> {
        self.inner.fence_key()
    }

    /// How many Redis nodes the lock lives on: 1, or N for a Redlock.
    pub fn node_count(&self) -> usize {
        self.inner.node_count()
    }

    /// Acquires the lock, waiting under its [`WaitPolicy`] while another
    /// owner holds it; [`Error::Busy`](crate::Error::Busy) when the wait
    /// ends first. See [`crate::Lock::acquire`] for the waiting, the bound
    /// on how long it takes, and the other errors.
    pub fn acquire(&self) -> Result<LockGuard> {
        let guard = blocking_rt::wait("blocking::Lock::acquire", self.inner.acquire())?;
        Ok(LockGuard::new(guard))
    }

    /// Like [`acquire`](Lock::acquire), waiting at most `max_wait`. See
    /// [`crate::Lock::acquire_timeout`].
    pub fn acquire_timeout(&self, max_wait: Duration) -> Result<LockGuard> {
        let guard = blocking_rt::wait(
            "blocking::Lock::acquire_timeout",
            self.inner.acquire_timeout(max_wait),
        )?;
        Ok(LockGuard::new(guard))
    }

    /// Makes one attempt: `Ok(None)` when another owner holds the lock.
    pub fn try_acquire(&self) -> Result<Option<LockGuard>> {
        let guard = blocking_rt::wait("blocking::Lock::try_acquire", self.inner.try_acquire())?;
        Ok(guard.map(LockGuard::new))
    }

    /// Acquires the lock, runs `body` on this thread while a task of the
    /// blocking runtime renews the lock, and releases it after.
    ///
    /// A thread cannot be stopped from outside, so `body` runs to its end
    /// even when the lock is lost meanwhile (an extend answered "not ours",
    /// or the deadline passed with Redis silent); look at
    /// [`Lease::is_lost`] in long work to stop early. `run` then returns
    /// [`Error::Lost`](crate::Error::Lost) and drops `body`'s value: work
    /// done after the loss may have overlapped another holder's (fence it
    /// where that matters).
    ///
    /// Returns `body`'s value when the lock was ours to the end;
    /// [`Error::NotHeld`](crate::Error::NotHeld) when it was lost only by
    /// the time of the release; the acquire's error (e.g.
    /// [`Error::Busy`](crate::Error::Busy)) when it could not be had.
    ///
    /// ```no_run
    /// # fn example(lock: redis_mutex::blocking::Lock) -> redis_mutex::Result<()> {
    /// let rows = lock.run(|lease| {
    ///     let mut rows = 0;
    ///     while rows < 1_000 && !lease.is_lost() {
    ///         std::thread::sleep(std::time::Duration::from_millis(10)); // the work
    ///         rows += 1;
    ///     }
    ///     rows
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn run<T>(&self, body: impl FnOnce(Lease) -> T) -> Result<T> {
        self.acquire()?
            .into_inner()
            .run("blocking::Lock::run", body)
    }

    /// Who holds the lock now, if anyone. See [`crate::Lock::holder`].
    pub fn holder(&self) -> Result<Option<LockHolder>> {
        blocking_rt::wait("blocking::Lock::holder", self.inner.holder())
    }

    /// Whether anyone holds the lock now. See [`crate::Lock::is_locked`].
    pub fn is_locked(&self) -> Result<bool> {
        blocking_rt::wait("blocking::Lock::is_locked", self.inner.is_locked())
    }

    /// Whether the hold `handoff` proves is still live on this lock's
    /// servers; one `GET`, which only reads. See [`crate::Lock::is_held_by`].
    pub fn is_held_by(&self, handoff: &Handoff) -> Result<bool> {
        blocking_rt::wait("blocking::Lock::is_held_by", self.inner.is_held_by(handoff))
    }

    /// Deletes the lock whoever holds it. See [`crate::Lock::force_unlock`].
    pub fn force_unlock(&self) -> Result<bool> {
        blocking_rt::wait("blocking::Lock::force_unlock", self.inner.force_unlock())
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Lock").field(&self.inner).finish()
    }
}

impl AsyncBuilder {
    /// The blocking way into this lock (crate feature `blocking`): the same
    /// settings, finished by blocking calls that return a
    /// [`blocking::Lock`](crate::blocking::Lock).
    ///
    /// ```no_run
    /// # fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("jobs:import")
    ///     .auto_renew(true)
    ///     .blocking()
    ///     .connect("redis://127.0.0.1/")?;
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
    pub fn blocking(self) -> LockBuilder {
        LockBuilder { inner: self }
    }
}

/// Builds a [`blocking::Lock`](crate::blocking::Lock): from
/// [`LockBuilder::blocking`](crate::LockBuilder::blocking), with the
/// settings made there. Each finishing method blocks until connected and
/// opens its connections on the blocking API's runtime.
#[derive(Clone, Debug)]
#[must_use = "a blocking::LockBuilder does nothing until .connect() or one of its siblings is called"]
pub struct LockBuilder {
    inner: AsyncBuilder,
}

impl LockBuilder {
    blocking_sources!(Lock, LockBuilder, quorum);
}
