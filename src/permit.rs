//! `Permit`: proof of holding permits of a semaphore; the engine's hold of
//! the semaphore's kind (`permit_set`), with the same contract as a
//! [`LockGuard`](crate::LockGuard).

use std::fmt;

use crate::guard_methods::guard_methods;
use crate::hold::Hold;
use crate::permit_set::PermitSet;

/// Held permits of a [`Semaphore`](crate::Semaphore): one, or as many as
/// [`acquire_many`](crate::Semaphore::acquire_many) asked for. Get one from
/// [`Semaphore::acquire`](crate::Semaphore::acquire) or
/// [`Semaphore::try_acquire`](crate::Semaphore::try_acquire).
///
/// The same contract as a [`LockGuard`](crate::LockGuard): a lease with its
/// own token and TTL, counted on the server's clock, that Redis frees when
/// the TTL runs out whether or not the guard is still around;
/// [`extend`](Permit::extend) and renewal ([`auto_renew`](Permit::auto_renew))
/// keep it, [`lost`](Permit::lost) completes when it is lost. Call
/// [`release`](Permit::release) when done; a permit dropped without it is
/// released in the background (token-checked, best effort), or frees itself
/// after its TTL.
#[must_use = "if unused the permit is released at once (in the background); hold it for the guarded work and call .release()"]
#[clippy::has_significant_drop]
pub struct Permit {
    hold: Hold<PermitSet>,
}

impl Permit {
    pub(crate) fn new(hold: Hold<PermitSet>) -> Permit {
        Permit { hold }
    }

    guard_methods!();

    /// The engine's hold, for the blocking `Permit`.
    #[cfg(feature = "blocking")]
    pub(crate) fn into_hold(self) -> Hold<PermitSet> {
        self.hold
    }

    /// How many permits this holds.
    pub fn permits(&self) -> u32 {
        self.hold.kind().count()
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hold.fmt_as("Permit", f)
    }
}
