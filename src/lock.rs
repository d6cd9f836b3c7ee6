//! `Lock`: the mutex's public handle, over the engine with the mutex kind
//! (`mutex`). Its builder is in `builder`, its guard in `guard`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::Result;
use crate::guard::LockGuard;
use crate::lease::Lease;
use crate::mutex::MutexLease;
use crate::owner::Owner;
use crate::retry::WaitPolicy;

/// A distributed lock on one Redis key: a lease that expires by itself if its
/// holder crashes.
///
/// A `Lock` is cheap to clone (an `Arc`), `Send` and `Sync`; build it once and
/// share it. On the wire the key is exactly the name given and its value is a
/// random token, the format of redis-py's `Lock`, node-redlock, redsync and
/// bsm/redislock, so those and this crate exclude each other on the same key.
///
/// ```no_run
/// # async fn example() -> redis_mutex::Result<()> {
/// use std::time::Duration;
/// use redis_mutex::{Lock, WaitPolicy};
///
/// let lock = Lock::builder("reports:nightly")
///     .ttl(Duration::from_secs(30))
///     .wait(WaitPolicy::timeout(Duration::from_secs(5)))
///     .connect("redis://127.0.0.1/")
///     .await?;
/// let guard = lock.acquire().await?;
/// // ... the critical section ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
///
/// # Re-entrant holds
///
/// A plain acquire of a lock that is held waits, even if this very task
/// holds it. Under an [`Owner`] (a task's [`Owner::scope`], or one passed
/// with [`acquire_as`](Lock::acquire_as) or [`with_owner`](Lock::with_owner)),
/// an acquire of a lock the owner already holds returns at once a nested
/// guard of the same hold: no round trip, no new token, and the key is
/// released when the owner's last guard of it ends. See [`Owner`].
#[derive(Clone)]
pub struct Lock {
    inner: Arc<Engine<MutexLease>>,
    /// Whose acquires these are, when set by [`Lock::with_owner`]; else the
    /// task's [`Owner::scope`], if any.
    owner: Option<Owner>,
}

impl Lock {
    /// The key the lock lives under, exactly as given.
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// The lease length of each acquisition.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// How [`acquire`](Lock::acquire) waits for a busy lock.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait
    }

    /// This lock with another lease length for its acquisitions, sharing
    /// everything else (connections, wake-ups, the other settings). Checked
    /// as [`LockBuilder::ttl`](crate::LockBuilder::ttl) is. For one lock of a
    /// [`Locks`](crate::Locks) that needs longer leases than the rest.
    ///
    /// ```no_run
    /// # async fn example(locks: redis_mutex::Locks) -> redis_mutex::Result<()> {
    /// use std::time::Duration;
    /// let lock = locks.lock("reports:rebuild")?.with_ttl(Duration::from_secs(120))?;
    /// # Ok(()) }
    /// ```
    pub fn with_ttl(&self, ttl: Duration) -> Result<Lock> {
        Ok(self.with_engine(self.inner.with_ttl(ttl)?))
    }

    /// This lock with another [`WaitPolicy`] for
    /// [`acquire`](Lock::acquire) and [`run`](Lock::run), sharing everything
    /// else. Checked as [`LockBuilder::wait`](crate::LockBuilder::wait) is.
    ///
    /// ```no_run
    /// # async fn example(locks: redis_mutex::Locks) -> redis_mutex::Result<()> {
    /// use redis_mutex::WaitPolicy;
    /// let lock = locks.lock("cache:warm")?.with_wait(WaitPolicy::no_wait())?;
    /// # Ok(()) }
    /// ```
    pub fn with_wait(&self, policy: WaitPolicy) -> Result<Lock> {
        policy.validate()?;
        let mut engine = (*self.inner).clone();
        engine.wait = policy;
        Ok(self.with_engine(engine))
    }

    /// This lock with its acquires made as `owner`'s, wherever they run
    /// (a spawned task, a callback), instead of the task's
    /// [`Owner::scope`]: an acquire of a lock `owner` holds already
    /// re-enters its hold (see [`Owner`]). Sharing everything else.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let owner = redis_mutex::Owner::new();
    /// let mine = lock.with_owner(&owner);
    /// let outer = mine.acquire().await?;
    /// let inner = mine.try_acquire().await?.expect("the owner holds it");
    /// # Ok(()) }
    /// ```
    pub fn with_owner(&self, owner: &Owner) -> Lock {
        Lock {
            inner: self.inner.clone(),
            owner: Some(owner.clone()),
        }
    }

    /// The owner set by [`with_owner`](Lock::with_owner), if any.
    pub fn owner(&self) -> Option<&Owner> {
        self.owner.as_ref()
    }

    /// The key of the fence counter when the lock was built with
    /// [`fencing(true)`](crate::LockBuilder::fencing): `{key}:fence`, or `key:fence`
    /// when the key has a hash tag. Never delete it, and keep it out of any
    /// eviction: fences stay monotonic only while it lives.
    ///
    /// ```no_run
    /// # async fn example(connection: redis::aio::ConnectionManager) -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("jobs:import").fencing(true).build(connection)?;
    /// assert_eq!(lock.fence_key(), Some("{jobs:import}:fence"));
    /// # Ok(()) }
    /// ```
    pub fn fence_key(&self) -> Option<&str> {
        self.inner.kind.fence_key()
    }

    /// How many Redis nodes the lock lives on: 1, or N for a Redlock built
    /// with [`LockBuilder::build_quorum`](crate::LockBuilder::build_quorum) and its siblings.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("jobs:import")
    ///     .connect_quorum(["redis://10.0.0.1/", "redis://10.0.0.2/", "redis://10.0.0.3/"])
    ///     .await?;
    /// assert_eq!(lock.node_count(), 3);
    /// # Ok(()) }
    /// ```
    pub fn node_count(&self) -> usize {
        self.inner.topology.node_count()
    }

    /// Acquires the lock, waiting under the lock's [`WaitPolicy`] while
    /// another owner holds it.
    ///
    /// In an [`Owner::scope`] (or on a lock [`with_owner`](Lock::with_owner)),
    /// an owner that holds the lock already gets a nested guard of its hold
    /// at once, with no round trip (see [`Owner`]); what follows is about
    /// the acquires that go to Redis.
    ///
    /// Fails with [`Error::Busy`](crate::Error::Busy) (saying how long it waited) when the wait
    /// ends first. An uncontended acquire is one round trip, with or without
    /// [fencing](crate::LockBuilder::fencing).
    ///
    /// On a Redlock, each attempt sends the `SET` to every node at once and
    /// succeeds when a majority granted it with validity left; a missed
    /// attempt releases its token on every node and, under contention, tries
    /// again after a random backoff. When fewer than a majority of the nodes
    /// answer at all, it fails at once with [`Error::QuorumNotReached`](crate::Error::QuorumNotReached), as a
    /// lock on one Redis that is down fails with [`Error::Redis`](crate::Error::Redis). At the end
    /// of the wait it reports the last attempt: [`Error::Busy`](crate::Error::Busy) if other
    /// owners held enough nodes to decide it, else the quorum error.
    ///
    /// Other failures: [`Error::TimedOut`](crate::Error::TimedOut) when Redis did not answer in time
    /// (the [command timeout](crate::LockBuilder::command_timeout) or the
    /// connection's), [`Error::ValidityExpired`](crate::Error::ValidityExpired) when the answer came after
    /// the lease was already over, [`Error::NotReplicated`](crate::Error::NotReplicated) when
    /// [replicas](crate::LockBuilder::wait_for_replicas) did not confirm it,
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) on a full server. In each case no guard is
    /// made and a `SET` that may have landed is released by token.
    ///
    /// # Waiting
    ///
    /// With pub/sub (a lock from [`connect`](crate::LockBuilder::connect),
    /// [`client`](crate::LockBuilder::client), or
    /// [`notify_with`](crate::LockBuilder::notify_with)), the holder's release wakes
    /// a waiter, which tries again at once: a handoff takes about a round
    /// trip, and waiting costs a few commands per release, not one per
    /// backoff step. A wait is bounded by the holder's expiry (which is not
    /// announced), and a holder using another library (which never
    /// announces) is also polled for under the wait policy. Without pub/sub,
    /// or while the subscription is down, a waiter polls under the wait
    /// policy.
    ///
    /// # How long it can take
    ///
    /// The whole call returns by the wait policy's deadline `d`, a stalled
    /// attempt included (a paused server, a connection reconnecting to one):
    /// an attempt still running then is cut, and fails with
    /// [`Error::TimedOut`](crate::Error::TimedOut), its token released in the
    /// background. Each attempt, the last one too (it starts at `d`), gets at
    /// least one command timeout: the lock's
    /// [`command_timeout`](crate::LockBuilder::command_timeout) (and a tenth,
    /// so that the command's own timeout reports first), or 500 ms,
    /// the `redis` crate's default response timeout; on a Redlock three
    /// per-node timeouts, an attempt's steps. So the bound is `d` plus at
    /// most one command timeout, plus, with
    /// [`wait_for_replicas`](crate::LockBuilder::wait_for_replicas), the
    /// replica timeout; [`WaitPolicy::forever`] has none.
    ///
    /// Waiters are **not** served in FIFO order. A release wakes one waiting
    /// process, the next after the releaser's in turn (a Redlock, or a
    /// release that knows of no other waiting process: one waiter in each
    /// process that waits), and there the waiter that has waited longest;
    /// the others wait for the next release. A new `acquire` (including the
    /// releasing task's own next one) can take the lock before any waiter.
    /// See [directed wake-ups](crate::guide::waiting#directed-wake-ups).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never leaves the lock held until its TTL. The
    /// token is made before the `SET` is sent; if the future is dropped (or
    /// fails with a connection error or timeout) after the `SET` may have
    /// reached the server, a token-checked release is sent in the background,
    /// which deletes the key only if this attempt set it. Without a tokio
    /// runtime to run that release, or when the runtime shuts down before it
    /// is sent (see [`flush_releases`](crate::flush_releases)), the key
    /// expires by its TTL. A waiting
    /// acquire that is dropped gives up its share of the subscription; the
    /// channel is unsubscribed when nobody in the process waits on it.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// match lock.acquire().await {
    ///     Ok(guard) => guard.release().await?,
    ///     Err(e) if e.is_busy() => eprintln!("someone else is on it: {e}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<LockGuard> {
        // The engine's acquire awaited here, not through `acquire_held`:
        // on the uncontended path every layer of futures costs its moves
        // and its lines of the instruction cache.
        let wait = self.inner.wait;
        match self.acting_owner() {
            None => self.inner.acquire(wait).await.map(LockGuard::alone),
            Some(owner) => self
                .inner
                .acquire_owned(&owner, wait)
                .await
                .map(LockGuard::new),
        }
    }

    /// [`acquire`](Lock::acquire) as `owner`'s: re-enters `owner`'s hold
    /// of this lock at once if it has one (see [`Owner`]). The same as
    /// `lock.with_owner(owner).acquire()`.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Lock::acquire). A nested acquire sends nothing;
    /// dropped before it returns, it leaves the owner's hold as it was.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let owner = redis_mutex::Owner::new();
    /// let outer = lock.acquire_as(&owner).await?;
    /// let inner = lock.acquire_as(&owner).await?; // no round trip
    /// assert_eq!(inner.deadline(), outer.deadline());
    /// # Ok(()) }
    /// ```
    pub async fn acquire_as(&self, owner: &Owner) -> Result<LockGuard> {
        self.inner
            .acquire_held(Some(owner), self.inner.wait)
            .await
            .map(LockGuard::new)
    }

    /// Like [`acquire`](Lock::acquire), but waits at most `max_wait` instead
    /// of the policy's limit (keeping its backoff): it returns within
    /// `max_wait` plus at most one command timeout, as `acquire` does.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Lock::acquire).
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire_timeout(std::time::Duration::from_millis(250)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_timeout(&self, max_wait: Duration) -> Result<LockGuard> {
        let policy = self.inner.wait.with_max_wait(Some(max_wait));
        let owner = self.acting_owner();
        self.inner
            .acquire_held(owner.as_ref(), policy)
            .await
            .map(LockGuard::new)
    }

    /// Makes one attempt: `Ok(None)` when another owner holds the lock.
    /// An [`Owner`] that holds it gets a nested guard, as with
    /// [`acquire`](Lock::acquire).
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Lock::acquire).
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// if let Some(guard) = lock.try_acquire().await? {
    ///     // ... we are the only one ...
    ///     guard.release().await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        let owner = self.acting_owner();
        let hold = self.inner.try_acquire_held(owner.as_ref()).await?;
        Ok(hold.map(LockGuard::new))
    }

    /// Acquires the lock, runs `body` while renewing the lock, and releases it
    /// after: the safe way to do long work under a lock.
    ///
    /// `body` gets the [`Lease`], to watch the deadline or hand to other
    /// tasks. If the lock is lost while `body` runs (an extend is answered
    /// "not ours", or the deadline passes because Redis stopped answering),
    /// `body` is **stopped** (its future is dropped at its next `.await`)
    /// and `run` returns [`Error::Lost`](crate::Error::Lost).
    ///
    /// In an [`Owner::scope`], a `run` of a lock the owner holds (say, a
    /// `run` inside another `run`'s body) re-enters that hold: its body
    /// gets the shared lease, and its end releases the key only if no other
    /// guard of the hold is left.
    ///
    /// Stopping the body cannot undo what it already did: writes it made may
    /// land after another holder's. Where that matters, have the protected
    /// resource check a fencing token.
    ///
    /// Returns `body`'s value when it finished and the lock was still ours at
    /// release; [`Error::NotHeld`](crate::Error::NotHeld) when it finished but the lock had been
    /// lost by the time of the release; the acquire's error (e.g.
    /// [`Error::Busy`](crate::Error::Busy)) when the lock could not be had.
    ///
    /// # Blocking in the body
    ///
    /// Renewal is a task of the same runtime. On a multi-thread runtime it
    /// keeps the lock while `body` blocks its worker thread (a long
    /// computation, a synchronous call), as long as another worker is free:
    /// `run` starts `body` only once renewal has started, and renewal's
    /// timer is rung from a thread of this crate, which wakes a free worker
    /// even when the blocked one was the last to watch the runtime's timers.
    /// On a current-thread runtime nothing else runs while `body` blocks the
    /// thread: renewal cannot, the lease expires after its TTL, another
    /// owner may take the lock, and `run` returns
    /// [`Error::NotHeld`](crate::Error::NotHeld) after `body`. Put blocking
    /// work in [`spawn_blocking`](tokio::task::spawn_blocking) where you can.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `body`, stops renewal and releases the lock
    /// in the background, like dropping a [`LockGuard`].
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let answer = lock
    ///     .run(|lease| async move {
    ///         // Long work; the lock is renewed meanwhile.
    ///         tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    ///         assert!(!lease.is_lost());
    ///         42
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<F, Fut, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        match self.acting_owner() {
            None => self.inner.run(body).await,
            Some(owner) => self.inner.run_as(&owner, body).await,
        }
    }

    /// A lock over `engine` (the builder's last step).
    pub(crate) fn from_engine(engine: Engine<MutexLease>) -> Lock {
        Lock {
            inner: Arc::new(engine),
            owner: None,
        }
    }

    /// This lock's owner over another engine.
    fn with_engine(&self, engine: Engine<MutexLease>) -> Lock {
        Lock {
            inner: Arc::new(engine),
            owner: self.owner.clone(),
        }
    }

    /// Whose acquires these are: the lock's owner, else the task's scope's.
    fn acting_owner(&self) -> Option<Owner> {
        self.owner.clone().or_else(Owner::current)
    }

    /// The engine, for `diagnose`.
    pub(crate) fn engine(&self) -> &Engine<MutexLease> {
        &self.inner
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Lock")
            .field("key", &inner.key())
            .field("ttl", &inner.ttl)
            .field("wait", &inner.wait)
            .field("auto_renew", &inner.auto_renew)
            .field("max_hold", &inner.max_hold)
            .field("fence_key", &inner.kind.fence_key())
            .field("topology", &inner.topology)
            .field("notify", &inner.topology.wake_ups().is_some())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LockBuilder;
    use crate::ttl::DEFAULT_TTL;

    fn is_send_sync<T: Send + Sync>() {}

    fn is_send<T: Send>(_: &T) {}

    #[allow(dead_code, clippy::let_underscore_future)]
    async fn futures_are_send(
        lock: Lock,
        guard: LockGuard,
        resource: crate::fence::FencedResource,
    ) {
        is_send(&lock.acquire());
        is_send(&lock.try_acquire());
        is_send(&lock.run(|_| async {}));
        let owner = Owner::new();
        is_send(&lock.acquire_as(&owner));
        is_send(&Owner::scope(lock.acquire()));
        is_send(&owner.clone().scoped(lock.run(|_| async {})));
        is_send(&lock.is_held_by(&guard.handoff()));
        is_send(&guard.extend(DEFAULT_TTL));
        is_send(&guard.is_held());
        is_send(&resource.set(1, "v"));
        is_send(&resource.get());
        is_send(&resource.last_fence());
        is_send(&guard.release());
    }

    #[test]
    fn public_types_are_send_and_sync() {
        is_send_sync::<Lock>();
        is_send_sync::<LockBuilder>();
        is_send_sync::<LockGuard>();
        is_send_sync::<crate::Error>();
        is_send_sync::<crate::fence::FencedResource>();
        is_send_sync::<crate::fence::FencedWrite>();
        is_send_sync::<Owner>();
        is_send_sync::<crate::Handoff>();
    }
}
