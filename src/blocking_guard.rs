//! `blocking::LockGuard`: a held lock for code without async, the
//! blocking hold (`blocking_hold`) of the mutex kind, with the mutex's docs.

use std::fmt;

use crate::blocking_guard_methods::blocking_guard_methods;
use crate::blocking_hold::BlockingHold;
use crate::guard::LockGuard as AsyncGuard;
use crate::handoff::Handoff;
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

    blocking_guard_methods!("LockGuard");

    /// The fencing token of this acquisition, with
    /// [`fencing(true)`](crate::LockBuilder::fencing). See
    /// [`crate::LockGuard::fence`].
    pub fn fence(&self) -> Option<u64> {
        self.inner.hold().fence()
    }

    /// This hold's proof for a process trusted with it, checked there by
    /// [`blocking::Lock::is_held_by`](crate::blocking::Lock::is_held_by).
    /// See [`crate::LockGuard::handoff`]; the token is a secret (see
    /// [`Handoff`]).
    pub fn handoff(&self) -> Handoff {
        Handoff::of(self.key(), self.inner.hold().token(), self.fence())
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.hold().fmt_as("blocking::LockGuard", f)
    }
}
