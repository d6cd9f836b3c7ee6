//! `blocking::RwLock` and `blocking::RwLockBuilder`: the read-write lock
//! for code without async, over the async [`RwLock`](crate::RwLock), each
//! call run on the blocking runtime (`blocking_rt`). Same keys, same
//! scripts, same write preference: blocking and async readers and writers
//! exclude each other as the lock says. Its guards are in
//! `blocking_rw_guards`.
//!
//! Invariants:
//! - The async acquire runs in `block_on` on the caller's thread, outside
//!   any task, so `rw_upgrade` takes the thread for the task: a thread
//!   that holds a read and asks for the write (or the reverse) is refused
//!   with `Error::WaitsForItself` instead of waiting for itself.

use std::fmt;
use std::time::Duration;

use crate::blocking_rt;
use crate::blocking_rw_guards::{ReadGuard, WriteGuard};
use crate::blocking_sources::blocking_sources;
use crate::error::Result;
use crate::lease::Lease;
use crate::retry::WaitPolicy;
use crate::rwlock::RwLock as AsyncRwLock;
use crate::rwlock_builder::RwLockBuilder as AsyncBuilder;

/// A read-write lock on one key, for code without async: the blocking
/// mirror of [`crate::RwLock`], with the same settings, guarantees (write
/// preference, every reader its own lease on the server's clock; one node
/// or a Cluster, not a Redlock), errors and wire format. Build it with
/// [`RwLockBuilder::blocking`](crate::RwLockBuilder::blocking), or from a
/// [`blocking::Locks`](crate::blocking::Locks).
///
/// Cheap to clone, `Send` and `Sync`: share it between threads. Every call
/// blocks the calling thread; inside a tokio runtime each refuses with
/// [`Error::BlockingInRuntime`](crate::Error::BlockingInRuntime) (see
/// [the module](crate::blocking)).
///
/// **No upgrade.** A thread that holds a read and asks for the write (two
/// such threads would deadlock each other), or holds the write and asks
/// for a read, gets [`Error::WaitsForItself`](crate::Error::WaitsForItself)
/// at once. For the blocking API the thread is the holder: a guard handed
/// to another thread still counts for the thread that acquired it.
///
/// ```no_run
/// # fn example() -> redis_mutex::Result<()> {
/// use redis_mutex::RwLock;
///
/// let config = RwLock::builder("config")
///     .blocking()
///     .connect("redis://127.0.0.1/")?;
/// let read = config.read()?; // many at once
/// read.release()?;
/// let write = config.write()?; // alone
/// write.release()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RwLock {
    inner: AsyncRwLock,
}

impl RwLock {
    pub(crate) fn new(inner: AsyncRwLock) -> RwLock {
        RwLock { inner }
    }

    /// The async read-write lock underneath, for what the blocking API does
    /// not mirror; its futures run on any runtime.
    pub fn as_async(&self) -> &AsyncRwLock {
        &self.inner
    }

    /// The lock's key (the writer's key on the wire).
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// The lease length of each read and write hold.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl()
    }

    /// How acquires wait while the lock is held against them.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait_policy()
    }

    /// The same lock with holds of another TTL. See
    /// [`crate::RwLock::with_ttl`].
    pub fn with_ttl(&self, ttl: Duration) -> Result<RwLock> {
        self.inner.with_ttl(ttl).map(RwLock::new)
    }

    /// The same lock, waiting under another policy.
    pub fn with_wait(&self, policy: WaitPolicy) -> Result<RwLock> {
        self.inner.with_wait(policy).map(RwLock::new)
    }

    /// Takes a read hold, waiting under the wait policy while a writer holds
    /// or waits: [`Error::Busy`](crate::Error::Busy) when the wait ran out,
    /// [`Error::WaitsForItself`](crate::Error::WaitsForItself) at once when
    /// this thread holds the write. See [`crate::RwLock::read`].
    pub fn read(&self) -> Result<ReadGuard> {
        let call = "blocking::RwLock::read";
        blocking_rt::wait(call, self.inner.read()).map(ReadGuard::new)
    }

    /// [`read`](RwLock::read), waiting at most `max_wait`.
    pub fn read_timeout(&self, max_wait: Duration) -> Result<ReadGuard> {
        let call = "blocking::RwLock::read_timeout";
        blocking_rt::wait(call, self.inner.read_timeout(max_wait)).map(ReadGuard::new)
    }

    /// A read hold if one can be had now: `Ok(None)` when not.
    pub fn try_read(&self) -> Result<Option<ReadGuard>> {
        let call = "blocking::RwLock::try_read";
        Ok(blocking_rt::wait(call, self.inner.try_read())?.map(ReadGuard::new))
    }

    /// Takes the write hold, waiting under the wait policy while readers or
    /// another writer hold it (new readers wait behind this writer
    /// meanwhile): [`Error::Busy`](crate::Error::Busy) when the wait ran
    /// out, [`Error::WaitsForItself`](crate::Error::WaitsForItself) at once
    /// when this thread holds a read (no upgrade). See
    /// [`crate::RwLock::write`].
    pub fn write(&self) -> Result<WriteGuard> {
        let call = "blocking::RwLock::write";
        blocking_rt::wait(call, self.inner.write()).map(WriteGuard::new)
    }

    /// [`write`](RwLock::write), waiting at most `max_wait`.
    pub fn write_timeout(&self, max_wait: Duration) -> Result<WriteGuard> {
        let call = "blocking::RwLock::write_timeout";
        blocking_rt::wait(call, self.inner.write_timeout(max_wait)).map(WriteGuard::new)
    }

    /// The write hold if it can be had now: `Ok(None)` when not (and no
    /// mark is left).
    pub fn try_write(&self) -> Result<Option<WriteGuard>> {
        let call = "blocking::RwLock::try_write";
        Ok(blocking_rt::wait(call, self.inner.try_write())?.map(WriteGuard::new))
    }

    /// Runs `body` on this thread under a read hold that a task of the
    /// blocking runtime renews, and releases it after, as
    /// [`blocking::Lock::run`](crate::blocking::Lock::run) does. A
    /// [`write`](RwLock::write) of this lock inside `body` is refused.
    ///
    /// ```no_run
    /// # fn example(config: redis_mutex::blocking::RwLock) -> redis_mutex::Result<()> {
    /// let port = config.run_read(|_lease| 8080)?; // read the config
    /// # Ok(()) }
    /// ```
    pub fn run_read<T>(&self, body: impl FnOnce(Lease) -> T) -> Result<T> {
        self.read()?.run("blocking::RwLock::run_read", body)
    }

    /// Runs `body` on this thread under the write hold, renewed, and
    /// releases it after, as [`blocking::Lock::run`](crate::blocking::Lock::run)
    /// does. A [`read`](RwLock::read) of this lock inside `body` is refused.
    pub fn run_write<T>(&self, body: impl FnOnce(Lease) -> T) -> Result<T> {
        self.write()?.run("blocking::RwLock::run_write", body)
    }

    /// How many live read holds there are now. See
    /// [`crate::RwLock::readers`].
    pub fn readers(&self) -> Result<u32> {
        blocking_rt::wait("blocking::RwLock::readers", self.inner.readers())
    }
}

impl fmt::Debug for RwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::RwLock")
            .field(&self.inner)
            .finish()
    }
}

impl AsyncBuilder {
    /// The blocking way into this read-write lock (crate feature
    /// `blocking`): the same settings, finished by blocking calls that
    /// return a [`blocking::RwLock`](crate::blocking::RwLock).
    #[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
    pub fn blocking(self) -> RwLockBuilder {
        RwLockBuilder { inner: self }
    }
}

/// Builds a [`blocking::RwLock`](crate::blocking::RwLock): from
/// [`RwLockBuilder::blocking`](crate::RwLockBuilder::blocking), with the
/// settings made there. Each finishing method blocks until connected and
/// opens its connections on the blocking API's runtime.
#[derive(Clone, Debug)]
#[must_use = "a blocking::RwLockBuilder does nothing until .connect() or one of its siblings is called"]
pub struct RwLockBuilder {
    inner: AsyncBuilder,
}

impl RwLockBuilder {
    blocking_sources!(RwLock, RwLockBuilder);
}
