//! `FairGuard`: proof of holding a fair lock; the engine's hold of the fair
//! kind (`fair_lease`), with the same contract as a
//! [`LockGuard`](crate::LockGuard).

use std::fmt;

use crate::fair_lease::FairLease;
use crate::guard_methods::guard_methods;
use crate::handoff::Handoff;
use crate::hold::Hold;

/// The hold of a [`FairLock`](crate::FairLock), taken in turn: on the wire
/// the lock's key holds this guard's token, as a plain lock's would.
///
/// The same contract as a [`LockGuard`](crate::LockGuard): a lease with its
/// own token and TTL that Redis ends when the TTL runs out whether or not
/// the guard is still around; [`extend`](FairGuard::extend) and renewal
/// ([`auto_renew`](FairGuard::auto_renew)) keep it, [`lost`](FairGuard::lost)
/// completes when it is lost. [`release`](FairGuard::release) wakes the
/// next waiter in line, and only it; a guard dropped without it is
/// released in the background (token-checked, best effort), or expires by
/// its TTL.
#[must_use = "if unused the lock is released at once (in the background); hold the guard for the critical section and call .release()"]
#[clippy::has_significant_drop]
pub struct FairGuard {
    hold: Hold<FairLease>,
}

impl FairGuard {
    pub(crate) fn new(hold: Hold<FairLease>) -> FairGuard {
        FairGuard { hold }
    }

    guard_methods!();

    /// The engine's hold, for the blocking `FairGuard`.
    #[cfg(feature = "blocking")]
    pub(crate) fn into_hold(self) -> Hold<FairLease> {
        self.hold
    }

    /// This hold's proof for a process trusted with it, as
    /// [`LockGuard::handoff`](crate::LockGuard::handoff): the lock's key
    /// holds this guard's token as a plain lock's does, so
    /// [`Lock::is_held_by`](crate::Lock::is_held_by) checks it. The token
    /// is a secret: see [`Handoff`].
    pub fn handoff(&self) -> Handoff {
        Handoff::of(self.key(), self.hold.token(), None)
    }
}

impl fmt::Debug for FairGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hold.fmt_as("FairGuard", f)
    }
}
