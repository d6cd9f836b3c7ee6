//! The renewal task (watchdog): keeps a held lock alive by extending it about
//! every TTL/3, and records its loss.
//!
//! Invariants:
//! - The task never outlives its guard: the guard aborts it when dropped, and
//!   `release()` aborts it before sending the release.
//! - A renewal can never keep a key alive after a release or re-create an
//!   expired lock: the extend script only `PEXPIRE`s a key that still holds
//!   our token. An extend racing a release either runs first (and the release
//!   then deletes the key) or finds the key gone.
//! - Loss is signalled through the [`Lease`] at the latest at the local
//!   deadline, by the clock, even if Redis never answers an extend.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::lock::{Lock, MIN_TTL};
use crate::token::Token;

/// A running renewal task; aborts it when dropped.
#[derive(Debug)]
pub(crate) struct Renewal(JoinHandle<()>);

impl Renewal {
    /// Starts renewing. `hold_until` caps how long renewal keeps the lock:
    /// past it the lock is left to expire (and the lease then reports loss).
    pub(crate) fn start(
        lock: Lock,
        token: Token,
        lease: Lease,
        hold_until: Option<Instant>,
    ) -> Result<Renewal> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::invalid("runtime", "renewal needs a tokio runtime to run its task")
        })?;
        Ok(Renewal(
            runtime.spawn(renew(lock, token, lease, hold_until)),
        ))
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often to extend: a third of the TTL, so that two more attempts fit
/// before the deadline when one fails.
pub(crate) fn interval(ttl: Duration) -> Duration {
    ttl / 3
}

async fn renew(lock: Lock, token: Token, lease: Lease, hold_until: Option<Instant>) {
    let inner = &lock.inner;
    loop {
        tokio::time::sleep(interval(inner.ttl)).await;
        if lease.is_lost() {
            return;
        }
        let now = Instant::now();
        // The cap: extend only up to `hold_until`, then stop.
        let ttl = match hold_until {
            Some(until) if until.saturating_duration_since(now) < MIN_TTL => return,
            // Whole milliseconds, as PEXPIRE takes them.
            Some(until) => inner
                .ttl
                .min(Duration::from_millis((until - now).as_millis() as u64)),
            None => inner.ttl,
        };
        // An answer after the deadline is worthless: the lease is lost then.
        let Some(left) = lease.deadline().checked_duration_since(now) else {
            #[cfg(feature = "tracing")]
            crate::trace::lost(
                &inner.key,
                "no renewal succeeded before the lease's deadline",
            );
            return;
        };
        let extend = inner.topology.extend(&inner.key, token.as_str(), ttl);
        match tokio::time::timeout(left, extend).await {
            Ok(Ok(true)) => {
                lease.extended(now + inner.drift.validity(ttl));
            }
            Ok(Ok(false)) => {
                lease.mark_lost();
                #[cfg(feature = "tracing")]
                crate::trace::lost(&inner.key, "the key no longer holds our token");
                return;
            }
            // A Redis error: try again next interval; if none succeeds
            // before the deadline, the lease reports the loss.
            #[cfg(feature = "tracing")]
            Ok(Err(error)) => crate::trace::renewal_failed(&inner.key, &error),
            #[cfg(not(feature = "tracing"))]
            Ok(Err(_)) => {}
            // No answer by the deadline: the lease is lost by the clock.
            Err(_) => {
                #[cfg(feature = "tracing")]
                crate::trace::lost(
                    &inner.key,
                    "no renewal succeeded before the lease's deadline",
                );
                return;
            }
        }
    }
}
