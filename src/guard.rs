//! `LockGuard`: proof of holding a lock; the engine's hold of the mutex
//! kind (`hold`), or one share of an owner's hold (`reentrant`), with the
//! mutex's docs.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Result;
use crate::lease::Lease;
use crate::mutex::MutexLease;
use crate::reentrant::Held;

/// A held lock. Get one from [`Lock::acquire`](crate::Lock::acquire) or [`Lock::try_acquire`](crate::Lock::try_acquire).
///
/// The guard is a *lease*: Redis deletes the key when its TTL runs out,
/// whether or not the guard is still around. [`deadline`](LockGuard::deadline)
/// says until when this process can trust it holds the lock;
/// [`extend`](LockGuard::extend), or renewal
/// ([`auto_renew`](LockGuard::auto_renew)), pushes that out, and
/// [`lost`](LockGuard::lost) completes when the lock is lost.
///
/// # Dropping
///
/// Call [`release`](LockGuard::release) when done: it tells you whether the
/// lock was still yours. A guard dropped without it stops its renewal and is
/// released by a background task (token-checked, best effort) of the tokio
/// runtime it is dropped on. Dropped outside a runtime, or when that runtime
/// shuts down before the task has sent the release (its tasks are dropped
/// then: the end of `#[tokio::main]`), the key stays until its TTL. Before
/// a program's runtime shuts down, [`flush_releases`](crate::flush_releases)
/// waits for the background releases. `Drop` never blocks and never panics.
///
/// # Guards of an owner's hold
///
/// A guard acquired by an [`Owner`](crate::Owner) (in its
/// [scope](crate::Owner::scope), or passed explicitly) is one of the guards
/// of the owner's hold of the key: the first acquire's and every nested
/// one's. They share the lease, renewal, fence and token, and the key is
/// released when the **last** of them ends, whichever it is and however it
/// ends:
/// - [`release`](LockGuard::release) of a guard that is not the last ends
///   only that guard: nothing is sent, and the others hold on (the outer
///   guard may end first); `Ok(())` unless the shared lease is known lost.
/// - [`release`](LockGuard::release) of the last guard releases the key and
///   reports Redis's answer, as for a plain guard.
/// - Dropping the last guard releases the key in the background, as for a
///   plain guard; dropping another one ends only that guard.
///
/// [`auto_renew`](LockGuard::auto_renew) on any of them renews the shared
/// hold until it ends; [`extend`](LockGuard::extend) extends it for all.
#[must_use = "if unused the lock is released at once (in the background); hold the guard for the critical section and call .release()"]
#[clippy::has_significant_drop]
pub struct LockGuard {
    hold: Held<MutexLease>,
}

impl LockGuard {
    pub(crate) fn new(hold: Held<MutexLease>) -> LockGuard {
        LockGuard { hold }
    }

    /// A guard of a hold without an owner.
    pub(crate) fn alone(hold: crate::hold::Hold<MutexLease>) -> LockGuard {
        LockGuard {
            hold: Held::Alone(hold),
        }
    }

    /// The owner whose hold this guard is one of; `None` for a guard
    /// acquired without an [`Owner`](crate::Owner).
    pub fn owner(&self) -> Option<&crate::Owner> {
        self.hold.owner()
    }

    /// The token, for `handoff` only. Never log it.
    pub(crate) fn token(&self) -> &crate::token::Token {
        self.hold.token()
    }

    /// The engine's hold, for the blocking guard: `Err` (the guard as it
    /// was) for a guard of an owner's shared hold, which the blocking API
    /// never makes (it has no owners, and refuses to run inside a tokio
    /// runtime, where a task-scoped owner could be).
    #[cfg(feature = "blocking")]
    // Both sides are the guard's hold (136 bytes since the token is stored
    // inline): boxing the `Err` would allocate on every blocking release to
    // save a move on a path taken once per guard.
    #[allow(clippy::result_large_err)]
    pub(crate) fn into_hold(self) -> std::result::Result<crate::hold::Hold<MutexLease>, LockGuard> {
        self.hold.into_alone().map_err(|hold| LockGuard { hold })
    }

    /// The key of the held lock.
    pub fn key(&self) -> &str {
        self.hold.key()
    }

    /// The lease: deadline and loss, in a form that can be cloned and handed
    /// to other tasks.
    pub fn lease(&self) -> &Lease {
        self.hold.lease()
    }

    /// The fencing token of this acquisition: `Some` when the lock was built
    /// with [`fencing(true)`](crate::LockBuilder::fencing), `None` otherwise.
    ///
    /// It is strictly greater than every fence issued before for this key on
    /// this Redis node, while the node keeps the counter (see
    /// [`LockBuilder::fencing`](crate::LockBuilder::fencing)). Send it with
    /// every write to the protected resource, and have the resource reject a
    /// fence that is not greater than the last one it accepted, as
    /// [`FencedResource`](crate::FencedResource) does: then a holder whose
    /// lease ran out while it was paused cannot overwrite the next holder's
    /// work.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock, store: redis_mutex::FencedResource) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// let fence = guard.fence().expect("the lock was built with .fencing(true)");
    /// let _ = store.set(fence, "new state").await?;
    /// # Ok(()) }
    /// ```
    pub fn fence(&self) -> Option<u64> {
        self.hold.fence()
    }

    /// The instant until which this process can trust it holds the lock: the
    /// TTL counted from before the `SET` (or the last successful extend) was
    /// sent, minus a drift margin (1% + 2 ms unless set with
    /// [`LockBuilder::clock_drift`](crate::LockBuilder::clock_drift)), on the
    /// monotonic clock. On a Redlock the `SET` went to every node at once,
    /// and the time until the last answer is part of what is subtracted.
    ///
    /// Past it, another owner may hold the lock. Before it, the lock is ours
    /// unless someone deleted the key by hand or the server lost it (restart
    /// without persistence, failover, eviction): use fencing where that
    /// matters.
    pub fn deadline(&self) -> Instant {
        self.lease().deadline()
    }

    /// How long until [`deadline`](LockGuard::deadline); zero once passed or
    /// once the lock is lost.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// assert!(guard.remaining() <= lock.ttl());
    /// # Ok(()) }
    /// ```
    pub fn remaining(&self) -> Duration {
        self.lease().remaining()
    }

    /// Whether the lock is known lost: an extend was answered "not ours", or
    /// the deadline passed. Asks nothing of Redis; see also
    /// [`is_held`](LockGuard::is_held).
    pub fn is_lost(&self) -> bool {
        self.lease().is_lost()
    }

    /// Completes when the lock is lost: an extend (by you or by renewal) is
    /// answered "not ours any more", or the deadline passes without a
    /// successful extend, even if Redis never answers. See [`Lease::lost`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let mut guard = lock.acquire().await?;
    /// guard.auto_renew()?;
    /// tokio::select! {
    ///     _ = guard.lost() => eprintln!("lost the lock: stop"),
    ///     _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {} // the work
    /// }
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn lost(&self) {
        self.lease().lost().await;
    }

    /// Starts renewing the lock in the background: a task extends it to the
    /// lock's TTL about every TTL/3 (token-checked) until the guard is
    /// released or dropped, the lock is lost, or the lock's
    /// [`max_hold`](crate::LockBuilder::max_hold) is reached. Does nothing if
    /// renewal is already on (e.g. by
    /// [`LockBuilder::auto_renew`](crate::LockBuilder::auto_renew)).
    ///
    /// A failed extend (Redis down, timed out) is retried at the next
    /// interval; if none succeeds before the deadline, the lock is reported
    /// lost. Renewal never re-creates a key that expired or was taken.
    ///
    /// The task first runs at the calling task's next `.await`: blocking
    /// the thread before one (a synchronous call right after `auto_renew`)
    /// can keep it from starting until the call returns. A lock built with
    /// [`LockBuilder::auto_renew`](crate::LockBuilder::auto_renew) has its
    /// renewal running when `acquire` returns the guard; from then on it
    /// runs on any free worker of a multi-thread runtime (see
    /// [`Lock::run`](crate::Lock::run) on blocking).
    ///
    /// Fails only outside a tokio runtime.
    pub fn auto_renew(&mut self) -> Result<()> {
        self.hold.auto_renew()
    }

    /// Asks Redis whether the key still holds this guard's token.
    ///
    /// The answer is already old when it arrives: it does not mean the lock
    /// will still be held when you act on it.
    ///
    /// On a Redlock: `true` when a majority of the nodes hold it, `false`
    /// when so many do not that no majority can, and
    /// [`Error::QuorumNotReached`](crate::Error::QuorumNotReached) when failed nodes leave it open.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// if !guard.is_held().await? {
    ///     eprintln!("lost {}", guard.key());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn is_held(&self) -> Result<bool> {
        self.hold.is_held().await
    }

    /// Sets the lock to expire `ttl` from now, if it is still ours, and moves
    /// the [`deadline`](LockGuard::deadline) accordingly.
    ///
    /// Fails with [`Error::NotHeld`](crate::Error::NotHeld) when the key expired or holds another
    /// token (nothing is changed then: an expired lock is never re-created,
    /// and the lease is marked lost), and with [`Error::InvalidArgument`](crate::Error::InvalidArgument) for
    /// a TTL out of range or one that the drift margin would leave no
    /// validity of. A lease already lost stays lost.
    ///
    /// On a Redlock the extend goes to every node at once and succeeds only
    /// when a majority extended our token with validity left, counted from
    /// before the first send; the deadline then moves to that send plus the
    /// TTL minus the drift. [`Error::NotHeld`](crate::Error::NotHeld) means a majority no longer
    /// held our token; [`Error::QuorumNotReached`](crate::Error::QuorumNotReached) that failed nodes made the
    /// difference; [`Error::ValidityExpired`](crate::Error::ValidityExpired) that the answers came too late.
    /// A failed extend releases nothing: the nodes that did extend keep our
    /// token until [`release`](LockGuard::release), `Drop` or their TTL.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the extend may or may not have happened; the
    /// deadline stays at its old, earlier value, which is safe.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// guard.extend(std::time::Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, ttl: Duration) -> Result<()> {
        self.hold.extend(ttl).await
    }

    /// Releases the lock if it is still ours. Renewal stops first, before
    /// the release is sent. A guard of an [`Owner`](crate::Owner)'s hold
    /// that is not its last guard ends only itself and sends nothing (see
    /// [Guards of an owner's hold](LockGuard#guards-of-an-owners-hold)).
    ///
    /// `Ok(())` means the key held our token and is now deleted.
    /// [`Error::NotHeld`](crate::Error::NotHeld) means it had expired or another owner holds it:
    /// nothing was deleted, and the work done under the lock may have
    /// overlapped with another holder's. Other errors mean Redis could not
    /// tell; the key then expires by its TTL.
    ///
    /// On a Redlock the release goes to every node at once (whatever
    /// happens, each node that still holds our token deletes it). `Ok(())`
    /// means a majority still held our token and deleted it: the lock was
    /// ours to the end. [`Error::NotHeld`](crate::Error::NotHeld) means a majority no longer held
    /// it, so another owner may have held the lock meanwhile.
    /// [`Error::QuorumNotReached`](crate::Error::QuorumNotReached) means nodes that failed to answer leave
    /// it open which of the two; where our token is left, it expires by its
    /// TTL.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before Redis answered, the guard's `Drop`
    /// sends the release again in the background (a token-checked release is
    /// safe to repeat).
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// match guard.release().await {
    ///     Ok(()) => {}
    ///     Err(e) if e.is_not_held() => eprintln!("the lease ran out before we finished"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn release(self) -> Result<()> {
        // The hold's release awaited here, not through `Held::release`:
        // one layer of futures less on every release.
        match self.hold.into_release() {
            Ok(hold) => hold.release().await,
            Err(answer) => answer,
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hold.fmt_as("LockGuard", f)
    }
}
