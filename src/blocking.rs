//! Locks for code without async (crate feature `blocking`): CLIs, sync
//! services, build tools. A mirror of [`Lock`](crate::Lock),
//! [`LockGuard`](crate::LockGuard) and [`Locks`](crate::Locks), and of the
//! other kinds of lease ([`Semaphore`] and [`Permit`], [`RwLock`] with
//! [`ReadGuard`] and [`WriteGuard`], [`FairLock`] and [`FairGuard`]), whose
//! calls block the calling thread: the same settings (built by the same
//! builders, finished through `.blocking()`:
//! [`LockBuilder::blocking`](crate::LockBuilder::blocking),
//! [`SemaphoreBuilder::blocking`](crate::SemaphoreBuilder::blocking),
//! [`RwLockBuilder::blocking`](crate::RwLockBuilder::blocking),
//! [`FairLockBuilder::blocking`](crate::FairLockBuilder::blocking) and
//! [`LocksBuilder::blocking`](crate::LocksBuilder::blocking)), the same
//! errors, the same guarantees, the same wire format: a blocking holder and
//! an async one (or redis-py, redsync, node-redlock) of one key follow the
//! kind's rule together (exclusion, the count of permits, readers and
//! writers, the line of a fair lock).
//!
//! ```no_run
//! use std::time::Duration;
//! use redis_mutex::Lock;
//!
//! fn main() -> redis_mutex::Result<()> {
//!     let lock = Lock::builder("reports:nightly")
//!         .ttl(Duration::from_secs(10))
//!         .auto_renew(true)
//!         .blocking()
//!         .connect("redis://127.0.0.1/")?;
//!     let guard = lock.acquire()?;
//!     std::thread::sleep(Duration::from_secs(60)); // renewed meanwhile
//!     guard.release()?;
//!     Ok(())
//! }
//! ```
//!
//! # The runtime underneath
//!
//! The calls run on a small tokio runtime of the crate's (one worker
//! thread, timers and I/O), made on the first call and shared by every
//! blocking lock of the process, as `reqwest::blocking` does; it lives
//! until the process ends. Your thread blocks until each call is done,
//! while that worker runs what goes on between calls: the connections,
//! renewal (which keeps a lock while your thread computes, sleeps or
//! blocks on I/O), pub/sub wake-ups and background releases. Many threads
//! can use one lock at once.
//!
//! # Inside an async runtime
//!
//! Blocking a thread of a tokio runtime would stall it (tokio itself
//! panics), so every blocking call made inside a tokio runtime's context (a
//! worker, `block_on`, a `spawn_blocking` closure, an `enter()` guard)
//! returns [`Error::BlockingInRuntime`](crate::Error::BlockingInRuntime),
//! having sent nothing; it never panics. There, use the async API (each
//! blocking type's `as_async` gives it). A guard dropped inside a runtime
//! releases in the background instead of blocking.
//!
//! # Dropping
//!
//! A [`LockGuard`] (or any other blocking guard) dropped without
//! [`release`](LockGuard::release) releases its hold before `drop`
//! returns, waiting at most one command timeout; what is still unanswered
//! then goes on in the background. So a guard dropped by an early `?` or a
//! panic frees its hold at once, not after its TTL. [`flush_releases`] waits for background releases before the
//! process exits.

use std::time::Duration;

pub use crate::blocking_fair_guard::FairGuard;
pub use crate::blocking_fair_lock::{FairLock, FairLockBuilder};
pub use crate::blocking_guard::LockGuard;
pub use crate::blocking_lock::{Lock, LockBuilder};
pub use crate::blocking_locks::{Locks, LocksBuilder};
pub use crate::blocking_permit::Permit;
pub use crate::blocking_rw_guards::{ReadGuard, WriteGuard};
pub use crate::blocking_rwlock::{RwLock, RwLockBuilder};
pub use crate::blocking_semaphore::{Semaphore, SemaphoreBuilder};

use crate::blocking_rt;
use crate::error::Result;

/// Waits until the releases sent in the background have finished, at most
/// `max_wait`; returns how many are still running then. The blocking form
/// of [`crate::flush_releases`]: call it last in `main` if guards may have
/// been dropped inside a runtime or with a release cut by its timeout.
pub fn flush_releases(max_wait: Duration) -> Result<usize> {
    blocking_rt::block_on(
        "blocking::flush_releases",
        crate::rt::flush_releases(max_wait),
    )
}
