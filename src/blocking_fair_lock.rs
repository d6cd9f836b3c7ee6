//! `blocking::FairLock` and `blocking::FairLockBuilder`: the fair (FIFO)
//! lock for code without async, over the async
//! [`FairLock`](crate::FairLock), each call run on the blocking runtime
//! (`blocking_rt`). Same key, same queue, same scripts: blocking and async
//! waiters stand in one line. Its guard is in `blocking_fair_guard`.

use std::fmt;
use std::time::Duration;

use crate::blocking_fair_guard::FairGuard;
use crate::blocking_rt;
use crate::blocking_sources::blocking_sources;
use crate::error::Result;
use crate::fair_lock::FairLock as AsyncFairLock;
use crate::fair_lock_builder::FairLockBuilder as AsyncBuilder;
use crate::lease::Lease;
use crate::retry::WaitPolicy;

/// A lock that serves its waiters first come, first served, for code
/// without async: the blocking mirror of [`crate::FairLock`], with the same
/// settings, guarantees (a queue of places on the server's clock, each
/// release waking exactly the next waiter; one node or a Cluster, not a
/// Redlock), errors and wire format. Build it with
/// [`FairLockBuilder::blocking`](crate::FairLockBuilder::blocking), or from
/// a [`blocking::Locks`](crate::blocking::Locks).
///
/// Cheap to clone, `Send` and `Sync`: share it between threads. Every call
/// blocks the calling thread; inside a tokio runtime each refuses with
/// [`Error::BlockingInRuntime`](crate::Error::BlockingInRuntime) (see
/// [the module](crate::blocking)). A thread blocked in
/// [`acquire`](FairLock::acquire) keeps its place in line: the blocking
/// runtime sends its keep-alive attempts.
///
/// ```no_run
/// # fn example() -> redis_mutex::Result<()> {
/// use redis_mutex::FairLock;
///
/// let jobs = FairLock::builder("jobs:in-order")
///     .blocking()
///     .connect("redis://127.0.0.1/")?;
/// let guard = jobs.acquire()?; // after everyone who asked before
/// // ... the critical section ...
/// guard.release()?; // wakes the next in line, and only it
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FairLock {
    inner: AsyncFairLock,
}

impl FairLock {
    pub(crate) fn new(inner: AsyncFairLock) -> FairLock {
        FairLock { inner }
    }

    /// The async fair lock underneath, for what the blocking API does not
    /// mirror; its futures run on any runtime.
    pub fn as_async(&self) -> &AsyncFairLock {
        &self.inner
    }

    /// The lock's key, exactly as given.
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// The lease length of each acquisition.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl()
    }

    /// How [`acquire`](FairLock::acquire) waits for its turn.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait_policy()
    }

    /// How long a waiter's place in line outlives the waiter.
    pub fn waiter_ttl(&self) -> Duration {
        self.inner.waiter_ttl()
    }

    /// The same lock with another lease length. See
    /// [`crate::FairLock::with_ttl`].
    pub fn with_ttl(&self, ttl: Duration) -> Result<FairLock> {
        self.inner.with_ttl(ttl).map(FairLock::new)
    }

    /// The same lock, waiting under another policy.
    pub fn with_wait(&self, policy: WaitPolicy) -> Result<FairLock> {
        self.inner.with_wait(policy).map(FairLock::new)
    }

    /// The same lock, its waiters' places living `waiter_ttl`. See
    /// [`crate::FairLock::with_waiter_ttl`].
    pub fn with_waiter_ttl(&self, waiter_ttl: Duration) -> Result<FairLock> {
        self.inner.with_waiter_ttl(waiter_ttl).map(FairLock::new)
    }

    /// Takes the lock after every waiter that was in line before this call,
    /// waiting under the wait policy: [`Error::Busy`](crate::Error::Busy)
    /// when the wait ran out (its place is then given up). See
    /// [`crate::FairLock::acquire`].
    pub fn acquire(&self) -> Result<FairGuard> {
        let call = "blocking::FairLock::acquire";
        blocking_rt::wait(call, self.inner.acquire()).map(FairGuard::new)
    }

    /// [`acquire`](FairLock::acquire), waiting at most `max_wait`.
    pub fn acquire_timeout(&self, max_wait: Duration) -> Result<FairGuard> {
        let call = "blocking::FairLock::acquire_timeout";
        blocking_rt::wait(call, self.inner.acquire_timeout(max_wait)).map(FairGuard::new)
    }

    /// Takes the lock if it is free and nobody waits for it: `Ok(None)`
    /// otherwise (it takes no place in line, and jumps none).
    pub fn try_acquire(&self) -> Result<Option<FairGuard>> {
        let call = "blocking::FairLock::try_acquire";
        Ok(blocking_rt::wait(call, self.inner.try_acquire())?.map(FairGuard::new))
    }

    /// Acquires in turn, runs `body` on this thread while a task of the
    /// blocking runtime renews the lock, and releases it after, as
    /// [`blocking::Lock::run`](crate::blocking::Lock::run) does: `body`
    /// runs to its end, and [`Error::Lost`](crate::Error::Lost) (its value
    /// dropped) tells that the lock was lost meanwhile.
    ///
    /// ```no_run
    /// # fn example(jobs: redis_mutex::blocking::FairLock) -> redis_mutex::Result<()> {
    /// let done = jobs.run(|_lease| "job 7")?; // in turn
    /// # Ok(()) }
    /// ```
    pub fn run<T>(&self, body: impl FnOnce(Lease) -> T) -> Result<T> {
        self.acquire()?
            .into_inner()
            .run("blocking::FairLock::run", body)
    }

    /// How many waiters have a live place in line now. See
    /// [`crate::FairLock::waiting`].
    pub fn waiting(&self) -> Result<u32> {
        blocking_rt::wait("blocking::FairLock::waiting", self.inner.waiting())
    }
}

impl fmt::Debug for FairLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::FairLock")
            .field(&self.inner)
            .finish()
    }
}

impl AsyncBuilder {
    /// The blocking way into this fair lock (crate feature `blocking`): the
    /// same settings, finished by blocking calls that return a
    /// [`blocking::FairLock`](crate::blocking::FairLock).
    #[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
    pub fn blocking(self) -> FairLockBuilder {
        FairLockBuilder { inner: self }
    }
}

/// Builds a [`blocking::FairLock`](crate::blocking::FairLock): from
/// [`FairLockBuilder::blocking`](crate::FairLockBuilder::blocking), with the
/// settings made there. Each finishing method blocks until connected and
/// opens its connections on the blocking API's runtime.
#[derive(Clone, Debug)]
#[must_use = "a blocking::FairLockBuilder does nothing until .connect() or one of its siblings is called"]
pub struct FairLockBuilder {
    inner: AsyncBuilder,
}

impl FairLockBuilder {
    blocking_sources!(FairLock, FairLockBuilder);
}
