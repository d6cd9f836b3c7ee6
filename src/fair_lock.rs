//! `FairLock`: a lock that serves its waiters first come, first served;
//! the public handle over the engine with the fair kind (`fair_lease`). Its
//! builder is in `fair_lock_builder`, its guard in `fair_guard`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fair_guard::FairGuard;
use crate::fair_lease::FairLease;
use crate::lease::Lease;
use crate::retry::WaitPolicy;

/// A lock on one key that serves its waiters in the order they started
/// waiting (FIFO), across every process and host that uses the key: a new
/// [`acquire`](FairLock::acquire) queues behind the waiters already there,
/// and a holder that releases and asks again goes to the back of the line.
///
/// - **A queue of places, each a lease of its waiter.** A waiter's first
///   attempt gives it the last place in `{key}:queue`; only the first live
///   place may take the free lock. A place lives one
///   [waiter TTL](crate::FairLockBuilder::waiter_ttl) (3 s unless set) on the
///   server's clock (`TIME` inside the scripts, never a client's clock)
///   from its waiter's last attempt, and waiters attempt at least every
///   third of it while they wait (at a random point between a sixth and a
///   third, so that waiters do not refresh in step): a waiter that crashed
///   (or was cut off from Redis) leaves the line one waiter TTL later at
///   most, and never blocks those behind it longer. An acquire that gives up, or whose future is
///   dropped, leaves the line at once (its place is released by token in
///   the background).
/// - **A release wakes exactly the next waiter**, on its own channel
///   (`{key}:turn:` and the SHA-1 of its token): one publish per handoff,
///   however many wait. Waiting is otherwise that of a [`Lock`](crate::Lock):
///   under the [`WaitPolicy`]'s deadline, never sleeping past the holder's
///   expiry as the server reports it.
/// - **How long a waiter waits.** With `n` live waiters ahead of it, at most
///   the current hold plus `n` holds (each bounded by the lock's
///   [TTL](crate::FairLockBuilder::ttl) when it is not renewed, by
///   [`max_hold`](crate::FairLockBuilder::max_hold) when it is), plus one waiter
///   TTL for each waiter ahead that crashed, plus a handoff (a round trip
///   or two) each. A holder that crashed costs its TTL, as for any lock.
///   The wait policy's deadline still ends the wait, and gives up the place.
/// - **What it costs next to the default [`Lock`](crate::Lock).** An
///   uncontended acquire and release are 2 commands, as for the default lock
///   (2 scripts over 3 keys, where it sends a `SET` and a script). A handoff
///   costs O(1) commands whatever the number of waiters: the release (one
///   publish, to the next waiter alone), that waiter's attempt, and, for a
///   task joining the line, an attempt, a `SUBSCRIBE` to its own channel, a
///   second attempt once subscribed and an inspection (and an
///   `UNSUBSCRIBE` when served; the default lock's waiters share one
///   subscription per key and process). On top, each waiter keeps its place
///   with an attempt and an inspection every sixth to third of the waiter
///   TTL. The scripts do more work inside (keeping the line). Measured by
///   `benches/fair.rs` (2 ms holds, loopback, every handoff to a waiting
///   task): 7.2 commands sent per handoff with 8 waiters and 8.6 with 64
///   (default lock: 8.3 and 10.1), about 40 commands run inside the scripts
///   (default: 3 to 4), a handoff p50 1.3 to 1.5 times the default lock's
///   (two runs, 8 and 64 waiters; the p99s are the shared machine's). Where
///   tasks ask again at once, the default lock gave 8 tasks between 74 and
///   177 of 1,000 sections in one run (109 and 137 in another), and 64
///   tasks between 0 and 46 (1 and 57); the fair lock gave every task its
///   even share, ±1, in both.
/// - **On the wire** the key as given holds the holder's token like a
///   plain lock: a plain [`Lock`](crate::Lock) (or redis-py's, or
///   redsync's) on the key excludes fair holders and waiters, and is
///   excluded by them, but does not queue: it takes the key whenever it
///   finds it free, and fair waiters hear its release only at their next
///   keep-alive attempt. The queue is in `{key}:queue` and
///   `{key}:queue-expiry`, in the key's Cluster slot.
/// - **One node or a Redis Cluster, not a Redlock** (refused with
///   [`Error::InvalidArgument`]): independent nodes would each order the
///   waiters by the arrival they saw, and could disagree on who is first,
///   so that no waiter holds a majority (and every one waits); a queue
///   agreed on by a quorum needs a consensus protocol that is not built.
///   No fencing either (refused): fence with a [`Lock`](crate::Lock).
///
/// ```no_run
/// # async fn example() -> redis_mutex::Result<()> {
/// use redis_mutex::FairLock;
///
/// let jobs = FairLock::builder("jobs:in-order").connect("redis://127.0.0.1/").await?;
/// let guard = jobs.acquire().await?; // after everyone who asked before
/// // ... the critical section ...
/// guard.release().await?; // wakes the next in line, and only it
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FairLock {
    inner: Arc<Engine<FairLease>>,
}

impl FairLock {
    /// The lock's key, exactly as given.
    pub fn key(&self) -> &str {
        self.inner.key()
    }

    /// The lease length of each acquisition.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// How [`acquire`](FairLock::acquire) waits for its turn.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait
    }

    /// How long a waiter's place in line outlives the waiter.
    pub fn waiter_ttl(&self) -> Duration {
        self.inner.kind.waiter_ttl()
    }

    /// The same lock with another lease length, checked as the builder
    /// checks it.
    pub fn with_ttl(&self, ttl: Duration) -> Result<FairLock> {
        Ok(FairLock::from_engine(self.inner.with_ttl(ttl)?))
    }

    /// The same lock, waiting under another policy.
    pub fn with_wait(&self, policy: WaitPolicy) -> Result<FairLock> {
        policy.validate()?;
        let mut engine = (*self.inner).clone();
        engine.wait = policy;
        Ok(FairLock::from_engine(engine))
    }

    /// The same lock, its waiters' places living `waiter_ttl`: between
    /// [`MIN_WAITER_TTL`](crate::MIN_WAITER_TTL) and
    /// [`MAX_WAITER_TTL`](crate::MAX_WAITER_TTL).
    pub fn with_waiter_ttl(&self, waiter_ttl: Duration) -> Result<FairLock> {
        let kind = self.inner.kind.with_waiter_ttl(waiter_ttl)?;
        Ok(FairLock::from_engine(Engine {
            kind,
            ..(*self.inner).clone()
        }))
    }

    /// Takes the lock after every waiter that was in line before this call,
    /// waiting under the wait policy: [`Error::Busy`] when the wait ran out
    /// (its place is then given up). Cancel safe: dropped while waiting, it
    /// leaves the line at once (in the background); dropped after the lock
    /// may have been taken, it releases it.
    pub async fn acquire(&self) -> Result<FairGuard> {
        self.inner
            .acquire(self.inner.wait)
            .await
            .map(FairGuard::new)
    }

    /// [`acquire`](FairLock::acquire), waiting at most `max_wait`.
    pub async fn acquire_timeout(&self, max_wait: Duration) -> Result<FairGuard> {
        let policy = self.inner.wait.with_max_wait(Some(max_wait));
        self.inner.acquire(policy).await.map(FairGuard::new)
    }

    /// Takes the lock if it is free and nobody waits for it: `Ok(None)`
    /// otherwise (it takes no place in line, and jumps none).
    pub async fn try_acquire(&self) -> Result<Option<FairGuard>> {
        let trying = Arc::new(Engine {
            kind: self.inner.kind.trying(),
            ..(*self.inner).clone()
        });
        Ok(trying.try_acquire().await?.map(FairGuard::new))
    }

    /// Acquires in turn, runs `body` while renewing, and releases after,
    /// as [`Lock::run`](crate::Lock::run) does: [`Error::Lost`] (and `body`
    /// stopped) if the lock is lost first.
    pub async fn run<F, Fut, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        self.inner.run(body).await
    }

    /// How many waiters have a live place in line now, on the server's
    /// clock. One round trip; the answer may be stale at once.
    pub async fn waiting(&self) -> Result<u32> {
        let engine = &*self.inner;
        engine
            .count_members(engine.kind.waiting(), quorum_refused)
            .await
    }

    pub(crate) fn from_engine(engine: Engine<FairLease>) -> FairLock {
        FairLock {
            inner: Arc::new(engine),
        }
    }
}

/// Why a fair lock is refused on a Redlock quorum.
pub(crate) fn quorum_refused() -> Error {
    Error::invalid(
        "servers",
        "a fair lock is not offered on a Redlock quorum: independent nodes each order waiters by the arrival they saw and can disagree on who is first, so that no waiter wins a majority; use one node or a Redis Cluster",
    )
}

impl fmt::Debug for FairLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = &*self.inner;
        f.debug_struct("FairLock")
            .field("key", &engine.key())
            .field("ttl", &engine.ttl)
            .field("waiter_ttl", &engine.kind.waiter_ttl())
            .field("wait", &engine.wait)
            .field("auto_renew", &engine.auto_renew)
            .field("topology", &engine.topology)
            .finish_non_exhaustive()
    }
}
