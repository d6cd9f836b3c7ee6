//! `Semaphore`: a counting semaphore whose permits expire, the public handle
//! over the engine with the semaphore's kind (`permit_set`). Its builder is
//! in `semaphore_builder`, its guard in `permit`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::permit::Permit;
use crate::permit_set::PermitSet;
use crate::retry::WaitPolicy;

/// A counting semaphore on one key: at most [`permits`](Semaphore::permits)
/// holders at once, across every process and host that uses the key, each
/// holding a [`Permit`] that is a lease of its own.
///
/// - **Permits expire on the server's clock.** The key is a sorted set of
///   holders' tokens scored by their expiry, computed from `TIME` inside
///   each script: a holder that crashed frees its permit after its TTL
///   whatever the clients' clocks say (no client clock is read, so clock
///   skew between hosts cannot change the count), and a renewed permit
///   stays. Peers that score by the client's wall clock (Redisson's
///   permit-expirable semaphore, node's redis-semaphore) break under skew.
/// - **The same contract as a lock:** waiting under the
///   [`WaitPolicy`] (woken through pub/sub by releases, never sleeping past
///   the earliest permit expiry the server reported), renewal, `lost()`,
///   [`run`](Semaphore::run), cancel safety (an acquire dropped after its
///   send gives its permit back in the background), tracing, Cluster.
/// - **The limit is the acquirer's.** Each acquire passes this handle's
///   limit; nothing is stored. [`with_permits`](Semaphore::with_permits)
///   (or a new deployment with another number) changes it for new acquires
///   only: lowering it revokes no live permit (holders above the new limit
///   keep theirs, and may extend them, until they release or expire), and
///   new acquires wait until fewer than the new limit are live. Processes
///   that disagree on the limit each enforce their own, so at most the
///   largest is ever inside.
/// - **One node or a Redis Cluster, not a Redlock.** With permits on
///   independent nodes, holders that each won a majority can together
///   exceed the limit (5 nodes, 2 permits: three holders on 3 nodes each
///   fit in the 5 × 2 places), so a quorum semaphore is refused with
///   [`Error::InvalidArgument`]; a Redlock of one permit is a
///   [`Lock`](crate::Lock).
/// - The key holds a sorted set: a [`Lock`](crate::Lock) on it, or a
///   semaphore on a lock's key, fails with [`Error::WrongType`].
///
/// ```no_run
/// # async fn example() -> redis_mutex::Result<()> {
/// use redis_mutex::Semaphore;
///
/// // At most 3 workers call the rate-limited API at once.
/// let api = Semaphore::builder("partner-api", 3)
///     .connect("redis://127.0.0.1/")
///     .await?;
/// let permit = api.acquire().await?;
/// // ... call the API ...
/// permit.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Arc<Engine<PermitSet>>,
}

impl Semaphore {
    /// The semaphore's key.
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// How many permits new acquires of this handle may hold together.
    pub fn permits(&self) -> u32 {
        self.inner.kind.limit()
    }

    /// The lease length of each permit.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// How [`acquire`](Semaphore::acquire) waits while no permit is free.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait
    }

    /// The same semaphore with another limit for new acquires (see the
    /// type's docs for what lowering it does to live permits).
    /// [`Error::InvalidArgument`] for 0 or more than
    /// [`MAX_PERMITS`](crate::MAX_PERMITS).
    pub fn with_permits(&self, permits: u32) -> Result<Semaphore> {
        let kind = self.inner.kind.with_limit(permits)?;
        Ok(self.with_kind(kind))
    }

    /// The same semaphore with permits of another TTL, checked as the
    /// builder checks it.
    pub fn with_ttl(&self, ttl: Duration) -> Result<Semaphore> {
        Ok(Semaphore::from_engine(self.inner.with_ttl(ttl)?))
    }

    /// The same semaphore, waiting under another policy.
    pub fn with_wait(&self, policy: WaitPolicy) -> Result<Semaphore> {
        policy.validate()?;
        let mut engine = (*self.inner).clone();
        engine.wait = policy;
        Ok(Semaphore::from_engine(engine))
    }

    /// Takes a permit, waiting under the wait policy while none is free:
    /// [`Error::Busy`] when the wait ran out. Cancel safe: dropped after its
    /// send, the permit it may have taken is given back in the background.
    pub async fn acquire(&self) -> Result<Permit> {
        self.inner.acquire(self.inner.wait).await.map(Permit::new)
    }

    /// [`acquire`](Semaphore::acquire), waiting at most `max_wait`.
    pub async fn acquire_timeout(&self, max_wait: Duration) -> Result<Permit> {
        let policy = self.inner.wait.with_max_wait(Some(max_wait));
        self.inner.acquire(policy).await.map(Permit::new)
    }

    /// Takes a permit if one is free now: `Ok(None)` when none is.
    pub async fn try_acquire(&self) -> Result<Option<Permit>> {
        Ok(self.inner.try_acquire().await?.map(Permit::new))
    }

    /// Takes `permits` permits at once, as one lease (all or none), waiting
    /// under the wait policy until that many are free. A waiter for many
    /// is not favoured over waiters for one: under steady demand it may
    /// wait until its wait policy ends. [`Error::InvalidArgument`] for 0,
    /// more than the limit, or more than
    /// [`MAX_PERMITS_PER_HOLD`](crate::MAX_PERMITS_PER_HOLD).
    pub async fn acquire_many(&self, permits: u32) -> Result<Permit> {
        let engine = self.taking(permits)?;
        engine.acquire(engine.wait).await.map(Permit::new)
    }

    /// [`acquire_many`](Semaphore::acquire_many) if that many are free now:
    /// `Ok(None)` when they are not.
    pub async fn try_acquire_many(&self, permits: u32) -> Result<Option<Permit>> {
        let engine = self.taking(permits)?;
        Ok(engine.try_acquire().await?.map(Permit::new))
    }

    /// Runs `body` while holding a renewed permit, as
    /// [`Lock::run`](crate::Lock::run) does: [`Error::Lost`] (and `body`
    /// stopped) if the permit is lost first.
    pub async fn run<F, Fut, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        self.inner.run(body).await
    }

    /// How many permits are live now, on the server's clock (expired ones
    /// not counted). One round trip; the answer may be stale at once.
    pub async fn in_use(&self) -> Result<u32> {
        let engine = &*self.inner;
        engine
            .count_members(engine.kind.in_use(), quorum_refused)
            .await
    }

    pub(crate) fn from_engine(engine: Engine<PermitSet>) -> Semaphore {
        Semaphore {
            inner: Arc::new(engine),
        }
    }

    fn with_kind(&self, kind: PermitSet) -> Semaphore {
        Semaphore::from_engine(Engine {
            kind,
            ..(*self.inner).clone()
        })
    }

    /// The engine for holds of `permits` permits.
    fn taking(&self, permits: u32) -> Result<Arc<Engine<PermitSet>>> {
        if permits == self.inner.kind.count() {
            return Ok(self.inner.clone());
        }
        let kind = self.inner.kind.taking(permits)?;
        Ok(self.with_kind(kind).inner)
    }
}

/// Why a semaphore is refused on a Redlock quorum.
pub(crate) fn quorum_refused() -> Error {
    Error::invalid(
        "servers",
        "a semaphore cannot run on a Redlock quorum: holders that each won a majority of independent nodes can together exceed the limit (5 nodes, 2 permits: 3 holders on 3 nodes each fit); use one node or a Redis Cluster, or a Lock for a single permit",
    )
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Semaphore")
            .field("key", &inner.key())
            .field("permits", &inner.kind.limit())
            .field("ttl", &inner.ttl)
            .field("wait", &inner.wait)
            .field("auto_renew", &inner.auto_renew)
            .field("topology", &inner.topology)
            .finish_non_exhaustive()
    }
}
