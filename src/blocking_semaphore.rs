//! `blocking::Semaphore` and `blocking::SemaphoreBuilder`: the semaphore for
//! code without async, over the async [`Semaphore`](crate::Semaphore), each
//! call run on the blocking runtime (`blocking_rt`). Same key, same
//! scripts, same limit rule: blocking and async holders share one count.
//! Its guard is in `blocking_permit`.

use std::fmt;
use std::time::Duration;

use crate::blocking_permit::Permit;
use crate::blocking_rt;
use crate::blocking_sources::blocking_sources;
use crate::error::Result;
use crate::lease::Lease;
use crate::retry::WaitPolicy;
use crate::semaphore::Semaphore as AsyncSemaphore;
use crate::semaphore_builder::SemaphoreBuilder as AsyncBuilder;

/// A counting semaphore whose permits expire, for code without async: the
/// blocking mirror of [`crate::Semaphore`], with the same settings,
/// guarantees (permits counted on the server's clock; one node or a
/// Cluster, not a Redlock), errors and wire format. Build it with
/// [`SemaphoreBuilder::blocking`](crate::SemaphoreBuilder::blocking), or
/// from a [`blocking::Locks`](crate::blocking::Locks).
///
/// Cheap to clone, `Send` and `Sync`: share it between threads. Every call
/// blocks the calling thread; inside a tokio runtime each refuses with
/// [`Error::BlockingInRuntime`](crate::Error::BlockingInRuntime) (see
/// [the module](crate::blocking)).
///
/// ```no_run
/// # fn example() -> redis_mutex::Result<()> {
/// use redis_mutex::Semaphore;
///
/// // At most 3 threads, of every process, call the partner API at once.
/// let api = Semaphore::builder("partner-api", 3)
///     .blocking()
///     .connect("redis://127.0.0.1/")?;
/// let permit = api.acquire()?;
/// // ... call the API ...
/// permit.release()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: AsyncSemaphore,
}

impl Semaphore {
    pub(crate) fn new(inner: AsyncSemaphore) -> Semaphore {
        Semaphore { inner }
    }

    /// The async semaphore underneath, for what the blocking API does not
    /// mirror; its futures run on any runtime.
    pub fn as_async(&self) -> &AsyncSemaphore {
        &self.inner
    }

    /// The semaphore's key.
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// How many permits new acquires of this handle may hold together.
    pub fn permits(&self) -> u32 {
        self.inner.permits()
    }

    /// The lease length of each permit.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl()
    }

    /// How [`acquire`](Semaphore::acquire) waits while no permit is free.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait_policy()
    }

    /// The same semaphore with another limit for new acquires. See
    /// [`crate::Semaphore::with_permits`].
    pub fn with_permits(&self, permits: u32) -> Result<Semaphore> {
        self.inner.with_permits(permits).map(Semaphore::new)
    }

    /// The same semaphore with permits of another TTL. See
    /// [`crate::Semaphore::with_ttl`].
    pub fn with_ttl(&self, ttl: Duration) -> Result<Semaphore> {
        self.inner.with_ttl(ttl).map(Semaphore::new)
    }

    /// The same semaphore, waiting under another policy.
    pub fn with_wait(&self, policy: WaitPolicy) -> Result<Semaphore> {
        self.inner.with_wait(policy).map(Semaphore::new)
    }

    /// Takes a permit, waiting under the wait policy while none is free:
    /// [`Error::Busy`](crate::Error::Busy) when the wait ran out. See
    /// [`crate::Semaphore::acquire`].
    pub fn acquire(&self) -> Result<Permit> {
        let call = "blocking::Semaphore::acquire";
        blocking_rt::wait(call, self.inner.acquire()).map(Permit::new)
    }

    /// [`acquire`](Semaphore::acquire), waiting at most `max_wait`.
    pub fn acquire_timeout(&self, max_wait: Duration) -> Result<Permit> {
        let call = "blocking::Semaphore::acquire_timeout";
        blocking_rt::wait(call, self.inner.acquire_timeout(max_wait)).map(Permit::new)
    }

    /// Takes a permit if one is free now: `Ok(None)` when none is.
    pub fn try_acquire(&self) -> Result<Option<Permit>> {
        let call = "blocking::Semaphore::try_acquire";
        Ok(blocking_rt::wait(call, self.inner.try_acquire())?.map(Permit::new))
    }

    /// Takes `permits` permits at once, as one lease (all or none). See
    /// [`crate::Semaphore::acquire_many`].
    pub fn acquire_many(&self, permits: u32) -> Result<Permit> {
        let call = "blocking::Semaphore::acquire_many";
        blocking_rt::wait(call, self.inner.acquire_many(permits)).map(Permit::new)
    }

    /// [`acquire_many`](Semaphore::acquire_many) if that many are free now:
    /// `Ok(None)` when they are not.
    pub fn try_acquire_many(&self, permits: u32) -> Result<Option<Permit>> {
        let call = "blocking::Semaphore::try_acquire_many";
        Ok(blocking_rt::wait(call, self.inner.try_acquire_many(permits))?.map(Permit::new))
    }

    /// Takes a permit, runs `body` on this thread while a task of the
    /// blocking runtime renews it, and releases it after, as
    /// [`blocking::Lock::run`](crate::blocking::Lock::run) does: `body`
    /// runs to its end, and [`Error::Lost`](crate::Error::Lost) (its value
    /// dropped) tells that the permit was lost meanwhile.
    ///
    /// ```no_run
    /// # fn example(api: redis_mutex::blocking::Semaphore) -> redis_mutex::Result<()> {
    /// let status = api.run(|_lease| 200)?; // the call, under a permit
    /// # Ok(()) }
    /// ```
    pub fn run<T>(&self, body: impl FnOnce(Lease) -> T) -> Result<T> {
        self.acquire()?
            .into_inner()
            .run("blocking::Semaphore::run", body)
    }

    /// How many permits are live now, on the server's clock. See
    /// [`crate::Semaphore::in_use`].
    pub fn in_use(&self) -> Result<u32> {
        blocking_rt::wait("blocking::Semaphore::in_use", self.inner.in_use())
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Semaphore")
            .field(&self.inner)
            .finish()
    }
}

impl AsyncBuilder {
    /// The blocking way into this semaphore (crate feature `blocking`): the
    /// same settings, finished by blocking calls that return a
    /// [`blocking::Semaphore`](crate::blocking::Semaphore).
    #[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
    pub fn blocking(self) -> SemaphoreBuilder {
        SemaphoreBuilder { inner: self }
    }
}

/// Builds a [`blocking::Semaphore`](crate::blocking::Semaphore): from
/// [`SemaphoreBuilder::blocking`](crate::SemaphoreBuilder::blocking), with
/// the settings made there. Each finishing method blocks until connected
/// and opens its connections on the blocking API's runtime.
#[derive(Clone, Debug)]
#[must_use = "a blocking::SemaphoreBuilder does nothing until .connect() or one of its siblings is called"]
pub struct SemaphoreBuilder {
    inner: AsyncBuilder,
}

impl SemaphoreBuilder {
    blocking_sources!(Semaphore, SemaphoreBuilder);
}
