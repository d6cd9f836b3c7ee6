//! `Permit`: proof of holding permits of a semaphore; the engine's hold of
//! the semaphore's kind (`permit_set`), with the same contract as a
//! [`LockGuard`](crate::LockGuard).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Result;
use crate::hold::Hold;
use crate::lease::Lease;
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

    /// The semaphore's key.
    pub fn key(&self) -> &str {
        self.hold.key()
    }

    /// How many permits this holds.
    pub fn permits(&self) -> u32 {
        self.hold.kind().count()
    }

    /// The lease: deadline and loss, in a form that can be cloned and handed
    /// to other tasks.
    pub fn lease(&self) -> &Lease {
        self.hold.lease()
    }

    /// The instant until which this process can trust it holds the permits
    /// (see [`LockGuard::deadline`](crate::LockGuard::deadline)).
    pub fn deadline(&self) -> Instant {
        self.lease().deadline()
    }

    /// How long until [`deadline`](Permit::deadline); zero once passed or
    /// once the permits are lost.
    pub fn remaining(&self) -> Duration {
        self.lease().remaining()
    }

    /// Whether the permits are known lost: an extend was answered "not
    /// ours", or the deadline passed. Asks nothing of Redis.
    pub fn is_lost(&self) -> bool {
        self.lease().is_lost()
    }

    /// Completes when the permits are lost: an extend (by you or by renewal)
    /// is answered "not ours any more", or the deadline passes without a
    /// successful extend. Cancel safe: it only watches.
    pub async fn lost(&self) {
        self.lease().lost().await;
    }

    /// Keeps the permits alive in the background, as
    /// [`LockGuard::auto_renew`](crate::LockGuard::auto_renew) does; each
    /// holder renews its own permits, so a dead holder's renewal cannot
    /// keep anyone's alive.
    pub fn auto_renew(&mut self) -> Result<()> {
        self.hold.auto_renew()
    }

    /// Asks Redis whether these permits are still ours (live on the
    /// server's clock).
    pub async fn is_held(&self) -> Result<bool> {
        self.hold.is_held().await
    }

    /// Makes the permits live `ttl` from now on the server's clock, if they
    /// are still ours: [`Error::NotHeld`](crate::Error::NotHeld) when they
    /// expired (an expired permit is never revived). A permit above a
    /// lowered limit can still be extended: lowering the limit revokes
    /// nothing.
    pub async fn extend(&self, ttl: Duration) -> Result<()> {
        self.hold.extend(ttl).await
    }

    /// Gives the permits back and wakes the semaphore's waiters:
    /// [`Error::NotHeld`](crate::Error::NotHeld) when they had expired.
    pub async fn release(self) -> Result<()> {
        self.hold.release().await
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hold.fmt_as("Permit", f)
    }
}
