//! `blocking::FairGuard`: the hold of a fair lock for code without async,
//! the blocking hold (`blocking_hold`) of the fair kind, with the async
//! [`FairGuard`](crate::FairGuard)'s methods (`blocking_guard_methods`).

use std::fmt;

use crate::blocking_guard_methods::blocking_guard_methods;
use crate::blocking_hold::BlockingHold;
use crate::fair_guard::FairGuard as AsyncGuard;
use crate::fair_lease::FairLease;
use crate::handoff::Handoff;

/// The hold of a [`blocking::FairLock`](crate::blocking::FairLock), taken
/// in turn: the blocking mirror of [`crate::FairGuard`], with the same
/// lease, the same guarantees and the same errors.
/// [`release`](FairGuard::release) wakes the next waiter in line, and only
/// it, whether that waiter is blocking or async.
///
/// # Dropping
///
/// Call [`release`](FairGuard::release) when done. Dropped without it, the
/// guard releases the lock before `drop` returns, waiting at most one
/// command timeout; what is still unanswered then goes on in the
/// background. A guard dropped inside a tokio runtime releases in the
/// background at once. `Drop` never panics.
#[must_use = "if unused the lock is released at once; hold the guard for the critical section and call .release()"]
#[clippy::has_significant_drop]
pub struct FairGuard {
    inner: BlockingHold<FairLease>,
}

impl FairGuard {
    pub(crate) fn new(guard: AsyncGuard) -> FairGuard {
        FairGuard {
            inner: BlockingHold::new(guard.into_hold()),
        }
    }

    /// The blocking hold, for `run`.
    pub(crate) fn into_inner(self) -> BlockingHold<FairLease> {
        self.inner
    }

    blocking_guard_methods!("FairGuard");

    /// This hold's proof for a process trusted with it. See
    /// [`crate::FairGuard::handoff`]; the token is a secret (see
    /// [`Handoff`]).
    pub fn handoff(&self) -> Handoff {
        Handoff::of(self.key(), self.inner.hold().token(), None)
    }
}

impl fmt::Debug for FairGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.hold().fmt_as("blocking::FairGuard", f)
    }
}
