//! A hold of any kind of lease for the blocking API: the engine's
//! [`Hold`], its calls run on the blocking runtime (`blocking_rt`), a
//! `Drop` that waits for the release, and the blocking `run` of every kind.
//! Each kind's blocking guard (`blocking::LockGuard`, `Permit`,
//! `ReadGuard`, `WriteGuard`, `FairGuard`) is this with its own docs and
//! names (`blocking_guard_methods`).
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
use crate::lease::Lease;

/// A hold run from blocking code.
pub(crate) struct BlockingHold<K: Kind> {
    /// `None` once released.
    hold: Option<Hold<K>>,
    /// How long `Drop` waits for its release.
    release_within: Duration,
}

impl<K: Kind> BlockingHold<K> {
    pub(crate) fn new(hold: Hold<K>) -> BlockingHold<K> {
        BlockingHold {
            release_within: hold.release_floor(),
            hold: Some(hold),
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

    /// Whether the lease is lost within `max`, waited for on the blocking
    /// runtime (where renewal, which finds a loss, runs).
    pub(crate) fn wait_lost(&self, call: &'static str, max: Duration) -> Result<bool> {
        let lease = self.hold().lease();
        blocking_rt::block_on(call, async {
            tokio::time::timeout(max, lease.lost()).await.is_ok()
        })
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

impl<K: Kind> BlockingHold<K> {
    /// The blocking `run` of every kind: renews this hold on the blocking
    /// runtime while `body` runs on the calling thread (which nothing can
    /// stop from outside, so it runs to its end), then releases.
    /// [`Error::Lost`] when the lease was lost meanwhile (`body`'s value is
    /// dropped: work after the loss may have overlapped another holder's),
    /// the release's answer otherwise.
    pub(crate) fn run<T>(mut self, call: &'static str, body: impl FnOnce(Lease) -> T) -> Result<T> {
        self.auto_renew()?;
        let lease = self.hold().lease().clone();
        let value = body(lease.clone());
        let lost = lease.is_lost();
        let released = self.release(call);
        if lost {
            return Err(Error::Lost {
                key: lease.key().to_owned(),
            });
        }
        released.map(|()| value)
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
