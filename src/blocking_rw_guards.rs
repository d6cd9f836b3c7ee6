//! `blocking::ReadGuard` and `blocking::WriteGuard`: the holds of a
//! read-write lock for code without async, the blocking holds
//! (`blocking_hold`) of the read and the write kinds, with their async
//! twins' methods (`blocking_guard_methods`).
//!
//! Invariants:
//! - Each keeps its thread's registration (`rw_upgrade`) until the hold is
//!   released or dropped, so that this thread's opposite acquire of the
//!   same lock is refused with `Error::WaitsForItself` meanwhile; the
//!   registration is dropped after the release (fields drop in order).

use std::fmt;

use crate::blocking_guard_methods::blocking_guard_methods;
use crate::blocking_hold::BlockingHold;
use crate::error::Result;
use crate::handoff::Handoff;
use crate::lease::Lease;
use crate::rw_guards::{ReadGuard as AsyncRead, WriteGuard as AsyncWrite};
use crate::rw_lease::{ReadLease, WriteLease};
use crate::rw_upgrade::Registration;

/// A read hold of a [`blocking::RwLock`](crate::blocking::RwLock): the
/// blocking mirror of [`crate::ReadGuard`]. Other readers (blocking or
/// async) may hold the lock too, no writer does; its own lease, with its
/// own token and TTL on the server's clock.
///
/// # Dropping
///
/// Call [`release`](ReadGuard::release) when done. Dropped without it, the
/// guard releases its read before `drop` returns, waiting at most one
/// command timeout; what is still unanswered then goes on in the
/// background. A guard dropped inside a tokio runtime releases in the
/// background at once. `Drop` never panics.
#[must_use = "if unused the read is released at once; hold the guard while reading and call .release()"]
#[clippy::has_significant_drop]
pub struct ReadGuard {
    inner: BlockingHold<ReadLease>,
    /// Refuses this thread's write while it reads.
    _registered: Registration,
}

impl ReadGuard {
    pub(crate) fn new(guard: AsyncRead) -> ReadGuard {
        let (hold, registered) = guard.into_parts();
        ReadGuard {
            inner: BlockingHold::new(hold),
            _registered: registered,
        }
    }

    /// `run_read`'s body under this hold, the registration kept to the end.
    pub(crate) fn run<T>(self, call: &'static str, body: impl FnOnce(Lease) -> T) -> Result<T> {
        let ReadGuard { inner, _registered } = self;
        inner.run(call, body)
    }

    blocking_guard_methods!("ReadGuard");
}

/// The write hold of a [`blocking::RwLock`](crate::blocking::RwLock): the
/// blocking mirror of [`crate::WriteGuard`]. No reader and no other writer,
/// blocking or async, holds the lock; on the wire the lock's key holds this
/// writer's token, as a plain lock's would.
///
/// # Dropping
///
/// As for a [`ReadGuard`]: released before `drop` returns, within one
/// command timeout; in the background inside a tokio runtime.
#[must_use = "if unused the write is released at once; hold the guard while writing and call .release()"]
#[clippy::has_significant_drop]
pub struct WriteGuard {
    inner: BlockingHold<WriteLease>,
    /// Refuses this thread's read while it writes.
    _registered: Registration,
}

impl WriteGuard {
    pub(crate) fn new(guard: AsyncWrite) -> WriteGuard {
        let (hold, registered) = guard.into_parts();
        WriteGuard {
            inner: BlockingHold::new(hold),
            _registered: registered,
        }
    }

    /// `run_write`'s body under this hold, the registration kept to the end.
    pub(crate) fn run<T>(self, call: &'static str, body: impl FnOnce(Lease) -> T) -> Result<T> {
        let WriteGuard { inner, _registered } = self;
        inner.run(call, body)
    }

    blocking_guard_methods!("WriteGuard");

    /// This write hold's proof for a process trusted with it. See
    /// [`crate::WriteGuard::handoff`]; the token is a secret (see
    /// [`Handoff`]).
    pub fn handoff(&self) -> Handoff {
        Handoff::of(self.key(), self.inner.hold().token(), None)
    }
}

impl fmt::Debug for ReadGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.hold().fmt_as("blocking::ReadGuard", f)
    }
}

impl fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.hold().fmt_as("blocking::WriteGuard", f)
    }
}
