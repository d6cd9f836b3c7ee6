//! `blocking::LockGuard`: a held lock for code without async, the
//! blocking hold (`blocking_hold`) of the mutex kind, with the mutex's docs.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::blocking_hold::BlockingHold;
use crate::error::Result;
use crate::guard::LockGuard as AsyncGuard;
use crate::lease::Lease;
use crate::mutex::MutexLease;

/// A held lock, from [`blocking::Lock::acquire`](crate::blocking::Lock::acquire)
/// and its siblings: the blocking mirror of [`crate::LockGuard`], with the
/// same lease, the same guarantees and the same errors.
///
/// # Dropping
///
/// Call [`release`](LockGuard::release) when done: it tells you whether the
/// lock was still yours. Dropped without it, the guard releases the lock
/// before `drop` returns, waiting at most one command timeout (the lock's
/// [`command_timeout`](crate::LockBuilder::command_timeout) and a tenth,
/// 500 ms without one, three per-node timeouts on a Redlock); a release
/// still unanswered then goes on in the background, on the blocking API's
/// runtime. A guard dropped inside a tokio runtime, where blocking is not
/// allowed, releases in the background at once. `Drop` never panics.
#[must_use = "if unused the lock is released at once; hold the guard for the critical section and call .release()"]
#[clippy::has_significant_drop]
pub struct LockGuard {
    inner: BlockingHold<MutexLease>,
}

impl LockGuard {
    pub(crate) fn new(guard: AsyncGuard) -> LockGuard {
        LockGuard {
            inner: BlockingHold::new(match guard.into_hold() {
                Ok(hold) => hold,
                Err(_) => unreachable!("the blocking API acquires without an owner"),
            }),
        }
    }

    /// The blocking hold, for `run`.
    pub(crate) fn into_inner(self) -> BlockingHold<MutexLease> {
        self.inner
    }

    /// The key of the held lock.
    pub fn key(&self) -> &str {
        self.inner.hold().key()
    }

    /// The lease: deadline and loss, to hand to other threads. See
    /// [`crate::LockGuard::lease`].
    pub fn lease(&self) -> &Lease {
        self.inner.hold().lease()
    }

    /// The fencing token of this acquisition, with
    /// [`fencing(true)`](crate::LockBuilder::fencing). See
    /// [`crate::LockGuard::fence`].
    pub fn fence(&self) -> Option<u64> {
        self.inner.hold().fence()
    }

    /// Until when this process can trust it holds the lock. See
    /// [`crate::LockGuard::deadline`].
    pub fn deadline(&self) -> Instant {
        self.lease().deadline()
    }

    /// How long until the [`deadline`](LockGuard::deadline); zero once
    /// passed or once the lock is lost.
    pub fn remaining(&self) -> Duration {
        self.lease().remaining()
    }

    /// Whether the lock is known lost. Asks nothing of Redis; see
    /// [`crate::LockGuard::is_lost`].
    pub fn is_lost(&self) -> bool {
        self.lease().is_lost()
    }

    /// Starts renewing the lock: a task of the blocking runtime extends it
    /// about every TTL/3 while your thread works (computes, sleeps, blocks
    /// on I/O), until the guard is released or dropped, the lock is lost or
    /// [`max_hold`](crate::LockBuilder::max_hold) is reached. Does nothing if
    /// renewal runs already (a lock built with
    /// [`auto_renew(true)`](crate::LockBuilder::auto_renew)). See
    /// [`crate::LockGuard::auto_renew`].
    ///
    /// Fails only when the blocking runtime cannot start.
    pub fn auto_renew(&mut self) -> Result<()> {
        self.inner.auto_renew()
    }

    /// Asks Redis whether the key still holds this guard's token. See
    /// [`crate::LockGuard::is_held`].
    pub fn is_held(&self) -> Result<bool> {
        self.inner.is_held("blocking::LockGuard::is_held")
    }

    /// Sets the lock to expire `ttl` from now, if it is still ours. See
    /// [`crate::LockGuard::extend`].
    pub fn extend(&self, ttl: Duration) -> Result<()> {
        self.inner.extend("blocking::LockGuard::extend", ttl)
    }

    /// Releases the lock if it is still ours: `Ok(())` when it was,
    /// [`Error::NotHeld`](crate::Error::NotHeld) when it had expired or
    /// another owner held it. See [`crate::LockGuard::release`].
    ///
    /// Inside a tokio runtime it fails with
    /// [`Error::BlockingInRuntime`](crate::Error::BlockingInRuntime), and
    /// the lock is released in the background, as by `Drop`.
    pub fn release(self) -> Result<()> {
        self.inner.release("blocking::LockGuard::release")
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.hold().fmt_as("blocking::LockGuard", f)
    }
}
