//! `blocking::LockGuard`: a held lock for code without async, over the
//! engine's hold, each call run on the blocking runtime (`blocking_rt`).
//!
//! Invariants:
//! - `Drop` outside a tokio runtime releases before it returns, bounded by
//!   one command timeout (the lock's attempt floor); a release cut there or
//!   not answered, and a drop inside a runtime (which must not block), is
//!   handed to the hold's background release (bounded resends) on the
//!   blocking runtime, which lives as long as the process. `Drop` never
//!   panics.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::blocking_rt;
use crate::error::{Error, Result};
use crate::guard::LockGuard as AsyncGuard;
use crate::hold::Hold;
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
    /// `None` once released.
    hold: Option<Hold<MutexLease>>,
    /// How long `Drop` waits for its release.
    release_within: Duration,
}

impl LockGuard {
    pub(crate) fn new(guard: AsyncGuard, release_within: Duration) -> LockGuard {
        LockGuard {
            hold: Some(guard.into_hold()),
            release_within,
        }
    }

    fn hold(&self) -> &Hold<MutexLease> {
        match &self.hold {
            Some(hold) => hold,
            None => unreachable!("the hold is taken only by release and drop"),
        }
    }

    /// The key of the held lock.
    pub fn key(&self) -> &str {
        self.hold().key()
    }

    /// The lease: deadline and loss, to hand to other threads. See
    /// [`crate::LockGuard::lease`].
    pub fn lease(&self) -> &Lease {
        self.hold().lease()
    }

    /// The fencing token of this acquisition, with
    /// [`fencing(true)`](crate::LockBuilder::fencing). See
    /// [`crate::LockGuard::fence`].
    pub fn fence(&self) -> Option<u64> {
        self.hold().fence()
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
        let _runtime = blocking_rt::enter()?;
        match &mut self.hold {
            Some(hold) => hold.auto_renew(),
            None => unreachable!("the hold is taken only by release and drop"),
        }
    }

    /// Asks Redis whether the key still holds this guard's token. See
    /// [`crate::LockGuard::is_held`].
    pub fn is_held(&self) -> Result<bool> {
        blocking_rt::wait("blocking::LockGuard::is_held", self.hold().is_held())
    }

    /// Sets the lock to expire `ttl` from now, if it is still ours. See
    /// [`crate::LockGuard::extend`].
    pub fn extend(&self, ttl: Duration) -> Result<()> {
        blocking_rt::wait("blocking::LockGuard::extend", self.hold().extend(ttl))
    }

    /// Releases the lock if it is still ours: `Ok(())` when it was,
    /// [`Error::NotHeld`](crate::Error::NotHeld) when it had expired or
    /// another owner held it. See [`crate::LockGuard::release`].
    ///
    /// Inside a tokio runtime it fails with
    /// [`Error::BlockingInRuntime`](crate::Error::BlockingInRuntime), and
    /// the lock is released in the background, as by `Drop`.
    pub fn release(mut self) -> Result<()> {
        const CALL: &str = "blocking::LockGuard::release";
        if blocking_rt::in_runtime() {
            // The hold stays, and the drop releases in the background.
            return Err(Error::BlockingInRuntime { call: CALL });
        }
        match self.hold.take() {
            Some(hold) => blocking_rt::wait(CALL, hold.release()),
            None => unreachable!("the hold is taken only by release and drop"),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(hold) = self.hold.take() else {
            return;
        };
        if blocking_rt::in_runtime() {
            // The hold's drop releases in the background, on the blocking
            // runtime (entered: it cannot fail once a guard exists).
            let _runtime = blocking_rt::enter();
            drop(hold);
            return;
        }
        let within = self.release_within;
        // Cut at `within`, or unanswered: the hold's drop (inside the
        // runtime here) resends the release in the background.
        let _ = blocking_rt::block_on("blocking::LockGuard::drop", async move {
            tokio::time::timeout(within, hold.release_or_resend()).await
        });
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hold {
            Some(hold) => hold.fmt_as("blocking::LockGuard", f),
            None => f.write_str("blocking::LockGuard(released)"),
        }
    }
}
