//! A hold of any kind of lease for the blocking API: the engine's
//! [`Hold`], its calls run on the blocking runtime (`blocking_rt`), and a
//! `Drop` that waits for the release. Each kind's blocking guard (the
//! mutex's `blocking::LockGuard`) is this with its own docs and names.
//!
//! Invariants:
//! - `Drop` outside a tokio runtime releases before it returns, bounded by
//!   `release_within` (the lease's attempt floor: one command timeout); a
//!   release cut there or not answered, and a drop inside a runtime (which
//!   must not block), is handed to the hold's background release (bounded
//!   resends) on the blocking runtime, which lives as long as the process.
//!   `Drop` never panics.

use std::time::Duration;

use crate::blocking_rt;
use crate::error::{Error, Result};
use crate::hold::Hold;
use crate::kind::Kind;

/// A hold run from blocking code.
pub(crate) struct BlockingHold<K: Kind> {
    /// `None` once released.
    hold: Option<Hold<K>>,
    /// How long `Drop` waits for its release.
    release_within: Duration,
}

impl<K: Kind> BlockingHold<K> {
    pub(crate) fn new(hold: Hold<K>, release_within: Duration) -> BlockingHold<K> {
        BlockingHold {
            hold: Some(hold),
            release_within,
        }
    }

    pub(crate) fn hold(&self) -> &Hold<K> {
        match &self.hold {
            Some(hold) => hold,
            None => unreachable!("the hold is taken only by release and drop"),
        }
    }

    /// Starts renewal on the blocking runtime, whatever thread calls.
    pub(crate) fn auto_renew(&mut self) -> Result<()> {
        let _runtime = blocking_rt::enter()?;
        match &mut self.hold {
            Some(hold) => hold.auto_renew(),
            None => unreachable!("the hold is taken only by release and drop"),
        }
    }

    pub(crate) fn is_held(&self, call: &'static str) -> Result<bool> {
        blocking_rt::wait(call, self.hold().is_held())
    }

    pub(crate) fn extend(&self, call: &'static str, ttl: Duration) -> Result<()> {
        blocking_rt::wait(call, self.hold().extend(ttl))
    }

    /// Releases; refused inside a tokio runtime, where the hold stays for
    /// the drop to release in the background.
    pub(crate) fn release(mut self, call: &'static str) -> Result<()> {
        if blocking_rt::in_runtime() {
            return Err(Error::BlockingInRuntime { call });
        }
        match self.hold.take() {
            Some(hold) => blocking_rt::wait(call, hold.release()),
            None => unreachable!("the hold is taken only by release and drop"),
        }
    }
}

impl<K: Kind> Drop for BlockingHold<K> {
    fn drop(&mut self) {
        let Some(hold) = self.hold.take() else {
            return;
        };
        if blocking_rt::in_runtime() {
            // The hold's drop releases in the background, on the blocking
            // runtime (entered: it cannot fail once a hold exists).
            let _runtime = blocking_rt::enter();
            drop(hold);
            return;
        }
        let within = self.release_within;
        // Cut at `within`, or unanswered: the hold's drop (inside the
        // runtime here) resends the release in the background.
        let _ = blocking_rt::block_on("blocking guard drop", async move {
            tokio::time::timeout(within, hold.release_or_resend()).await
        });
    }
}
