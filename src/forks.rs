//! The process's forks, counted: what a forked child must not share with
//! its parent (a token generator's state, the cut's watchdog thread, which
//! a child does not have) is told apart by the count it was made at.
//!
//! Invariant: from the first [`count`] on, every `fork` adds one to the
//! child's count (a `pthread_atfork` child handler: one atomic add, which
//! is async-signal-safe), so a child's count differs from the one its
//! parent read before the fork.

use std::sync::atomic::{AtomicU64, Ordering};

/// Forks of this process so far, as its children count them.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// Forks so far, counting from the first call (the handler is installed
/// then); one relaxed load after that.
pub(crate) fn count() -> u64 {
    install();
    FORKS.load(Ordering::Relaxed)
}

/// Forks so far, without installing the handler: for a caller that called
/// [`count`] before it stored a count to compare with.
pub(crate) fn counted() -> u64 {
    FORKS.load(Ordering::Relaxed)
}

#[cfg(unix)]
fn install() {
    extern "C" fn forked() {
        FORKS.fetch_add(1, Ordering::Relaxed);
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: registers a handler that only adds to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forked)) };
    });
}

#[cfg(not(unix))]
fn install() {}
