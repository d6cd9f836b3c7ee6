//! `ReadGuard` and `WriteGuard`: proof of holding a read-write lock, shared
//! or alone; the engine's holds of the read-write kinds (`rw_lease`), with
//! the same contract as a [`LockGuard`](crate::LockGuard).

use std::fmt;

use crate::guard_methods::guard_methods;
use crate::handoff::Handoff;
use crate::hold::Hold;
use crate::rw_lease::{ReadLease, WriteLease};
use crate::rw_upgrade::Registration;

/// A read hold of a [`RwLock`](crate::RwLock): other readers may hold it
/// too, no writer does. Its own lease, with its own token and TTL on the
/// server's clock: renewal keeps this reader's hold alive and nobody
/// else's, and a crashed reader holds writers back at most until its TTL.
#[must_use = "if unused the read is released at once (in the background); hold the guard while reading and call .release()"]
#[clippy::has_significant_drop]
pub struct ReadGuard {
    hold: Hold<ReadLease>,
    /// Refuses this task's write while it reads.
    _registered: Registration,
}

impl ReadGuard {
    pub(crate) fn new(hold: Hold<ReadLease>, registered: Registration) -> ReadGuard {
        ReadGuard {
            hold,
            _registered: registered,
        }
    }

    /// The engine's hold and this task's registration, for the blocking
    /// `ReadGuard`.
    #[cfg(feature = "blocking")]
    pub(crate) fn into_parts(self) -> (Hold<ReadLease>, Registration) {
        (self.hold, self._registered)
    }

    guard_methods!();
}

/// The write hold of a [`RwLock`](crate::RwLock): no reader and no other
/// writer holds it. On the wire the lock's key holds this writer's token,
/// as a plain lock's would.
#[must_use = "if unused the write is released at once (in the background); hold the guard while writing and call .release()"]
#[clippy::has_significant_drop]
pub struct WriteGuard {
    hold: Hold<WriteLease>,
    /// Refuses this task's read while it writes.
    _registered: Registration,
}

impl WriteGuard {
    /// This write hold's proof for a process trusted with it, as
    /// [`LockGuard::handoff`](crate::LockGuard::handoff): the lock's key
    /// holds the writer's token as a plain lock's does, so
    /// [`Lock::is_held_by`](crate::Lock::is_held_by) checks it. The token
    /// is a secret: see [`Handoff`].
    pub fn handoff(&self) -> Handoff {
        Handoff::of(self.key(), self.hold.token(), None)
    }

    pub(crate) fn new(hold: Hold<WriteLease>, registered: Registration) -> WriteGuard {
        WriteGuard {
            hold,
            _registered: registered,
        }
    }

    /// The engine's hold and this task's registration, for the blocking
    /// `WriteGuard`.
    #[cfg(feature = "blocking")]
    pub(crate) fn into_parts(self) -> (Hold<WriteLease>, Registration) {
        (self.hold, self._registered)
    }

    guard_methods!();
}

impl fmt::Debug for ReadGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hold.fmt_as("ReadGuard", f)
    }
}

impl fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hold.fmt_as("WriteGuard", f)
    }
}
