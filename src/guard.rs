//! `LockGuard`: proof of holding a lock, and the token-checked release and
//! extend.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::lock::{Lock, check_ttl};
use crate::token::Token;

/// A held lock. Get one from [`Lock::acquire`] or [`Lock::try_acquire`].
///
/// The guard is a *lease*: Redis deletes the key when its TTL runs out,
/// whether or not the guard is still around. [`deadline`](LockGuard::deadline)
/// says until when this process can trust it holds the lock;
/// [`extend`](LockGuard::extend) pushes that out.
///
/// # Dropping
///
/// Call [`release`](LockGuard::release) when done: it tells you whether the
/// lock was still yours. A guard dropped without it is released in the
/// background (token-checked, best effort) when a tokio runtime is running;
/// otherwise the key expires by its TTL. `Drop` never blocks and never panics.
#[must_use = "if unused the lock is released at once (in the background); hold the guard for the critical section and call .release()"]
#[clippy::has_significant_drop]
pub struct LockGuard {
    lock: Lock,
    token: Token,
    /// Invariant: never later than the server-side expiry of our key, since
    /// it counts from before the command that set the TTL was sent and keeps
    /// a drift margin.
    deadline: Mutex<Instant>,
    /// Set once `release` has had an answer; `Drop` releases otherwise.
    released: bool,
}

impl LockGuard {
    pub(crate) fn new(lock: Lock, token: Token, deadline: Instant) -> LockGuard {
        LockGuard {
            lock,
            token,
            deadline: Mutex::new(deadline),
            released: false,
        }
    }

    /// The key of the held lock.
    pub fn key(&self) -> &str {
        self.lock.key()
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
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long until [`deadline`](LockGuard::deadline); zero once passed.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// assert!(guard.remaining() <= lock.ttl());
    /// # Ok(()) }
    /// ```
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    /// Asks Redis whether the key still holds this guard's token.
    ///
    /// The answer is already old when it arrives: it does not mean the lock
    /// will still be held when you act on it.
    ///
    /// On a Redlock: `true` when a majority of the nodes hold it, `false`
    /// when so many do not that no majority can, and
    /// [`Error::QuorumNotReached`] when failed nodes leave it open.
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
        let inner = &self.lock.inner;
        inner.topology.holds(&inner.key, self.token.as_str()).await
    }

    /// Sets the lock to expire `ttl` from now, if it is still ours, and moves
    /// the [`deadline`](LockGuard::deadline) accordingly.
    ///
    /// Fails with [`Error::NotHeld`] when the key expired or holds another
    /// token (nothing is changed then: an expired lock is never re-created),
    /// and with [`Error::InvalidArgument`] for a TTL out of range or one that
    /// the drift margin would leave no validity of.
    ///
    /// On a Redlock the extend goes to every node at once and succeeds only
    /// when a majority extended our token with validity left, counted from
    /// before the first send; the deadline then moves to that send plus the
    /// TTL minus the drift. [`Error::NotHeld`] means a majority no longer
    /// held our token; [`Error::QuorumNotReached`] that failed nodes made the
    /// difference; [`Error::ValidityExpired`] that the answers came too late.
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
        let ttl = check_ttl(ttl)?;
        let inner = &self.lock.inner;
        let validity = inner.drift.validity(ttl);
        if validity.is_zero() {
            return Err(Error::invalid(
                "ttl",
                format!("{ttl:?} leaves no validity after the clock-drift margin"),
            ));
        }
        let sent_at = Instant::now();
        let extended = inner
            .topology
            .extend(&inner.key, self.token.as_str(), ttl)
            .await?;
        if !extended {
            return Err(self.not_held());
        }
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = sent_at + validity;
        Ok(())
    }

    /// Releases the lock if it is still ours.
    ///
    /// `Ok(())` means the key held our token and is now deleted.
    /// [`Error::NotHeld`] means it had expired or another owner holds it:
    /// nothing was deleted, and the work done under the lock may have
    /// overlapped with another holder's. Other errors mean Redis could not
    /// tell; the key then expires by its TTL.
    ///
    /// On a Redlock the release goes to every node at once (whatever
    /// happens, each node that still holds our token deletes it). `Ok(())`
    /// means a majority still held our token and deleted it: the lock was
    /// ours to the end. [`Error::NotHeld`] means a majority no longer held
    /// it, so another owner may have held the lock meanwhile.
    /// [`Error::QuorumNotReached`] means nodes that failed to answer leave
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
    pub async fn release(mut self) -> Result<()> {
        let inner = &self.lock.inner;
        let result = inner
            .topology
            .release(&inner.key, self.token.as_str())
            .await;
        self.released = true;
        if result? {
            Ok(())
        } else {
            Err(self.not_held())
        }
    }

    fn not_held(&self) -> Error {
        Error::NotHeld {
            key: self.key().to_owned(),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            let inner = &self.lock.inner;
            inner
                .topology
                .release_in_background(inner.key.clone(), self.token.as_str().to_owned());
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key())
            .field("token", &self.token)
            .field("remaining", &self.remaining())
            .finish()
    }
}
