//! `blocking::Permit`: held permits of a semaphore for code without async,
//! the blocking hold (`blocking_hold`) of the semaphore's kind, with the
//! async [`Permit`](crate::Permit)'s methods (`blocking_guard_methods`).

use std::fmt;

use crate::blocking_guard_methods::blocking_guard_methods;
use crate::blocking_hold::BlockingHold;
use crate::permit::Permit as AsyncPermit;
use crate::permit_set::PermitSet;

/// Held permits of a [`blocking::Semaphore`](crate::blocking::Semaphore):
/// the blocking mirror of [`crate::Permit`], with the same lease, the same
/// guarantees and the same errors.
///
/// # Dropping
///
/// Call [`release`](Permit::release) when done. Dropped without it, the
/// permit is given back before `drop` returns, waiting at most one command
/// timeout; what is still unanswered then goes on in the background. A
/// permit dropped inside a tokio runtime is given back in the background at
/// once. `Drop` never panics.
#[must_use = "if unused the permit is released at once; hold it for the guarded work and call .release()"]
#[clippy::has_significant_drop]
pub struct Permit {
    inner: BlockingHold<PermitSet>,
}

impl Permit {
    pub(crate) fn new(permit: AsyncPermit) -> Permit {
        Permit {
            inner: BlockingHold::new(permit.into_hold()),
        }
    }

    /// The blocking hold, for `run`.
    pub(crate) fn into_inner(self) -> BlockingHold<PermitSet> {
        self.inner
    }

    blocking_guard_methods!("Permit");

    /// How many permits this holds.
    pub fn permits(&self) -> u32 {
        self.inner.hold().kind().count()
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.hold().fmt_as("blocking::Permit", f)
    }
}
