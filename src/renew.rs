//! The renewal task (watchdog): keeps a hold alive by extending it about
//! every TTL/3, and records its loss.
//!
//! Invariants:
//! - The task never outlives its guard: the guard aborts it when dropped, and
//!   `release()` aborts it before sending the release.
//! - A renewal can never keep a lease alive after a release or re-create an
//!   expired one: it uses the engine's token-checked extend, which only
//!   extends a lease that still holds our token. An extend racing a release
//!   either runs first (and the release then ends it) or finds it gone.
//! - Loss is signalled through the [`Lease`] at the latest at the local
//!   deadline, by the clock, even if Redis never answers an extend.
//! - The task runs on any free worker while another is blocked: whoever
//!   starts it waits for its first poll (`Renewal::started`), and its
//!   timer is rung from outside the runtime (`alarm`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::alarm;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::lease::Lease;
use crate::metrics::{self, LossReason};
use crate::rt::spawn_if_runtime;
use crate::token::Token;
use crate::ttl::{MIN_TTL, millis};

/// A running renewal task; aborts it when dropped.
#[derive(Debug)]
pub(crate) struct Renewal {
    task: JoinHandle<()>,
    /// Answered by the task's first poll, once its first alarm is set.
    started: Option<oneshot::Receiver<()>>,
}

impl Renewal {
    /// Starts renewing. `hold_until` caps how long renewal keeps the lease:
    /// past it the lease is left to expire (and then reports loss).
    pub(crate) fn start<K: Kind>(
        engine: Arc<Engine<K>>,
        token: Token,
        lease: Lease,
        hold_until: Option<Instant>,
    ) -> Result<Renewal> {
        let (started_tx, started) = oneshot::channel();
        let task = async move {
            let _ = started_tx.send(());
            renew(engine, token, lease, hold_until).await;
        };
        let task = spawn_if_runtime(task).ok_or_else(|| {
            Error::invalid("runtime", "renewal needs a tokio runtime to run its task")
        })?;
        Ok(Renewal {
            task,
            started: Some(started),
        })
    }

    /// Waits until the task has run once and set its first alarm; from then
    /// on any free worker can run it. Until then it may sit in the LIFO slot
    /// of the worker that spawned it, which tokio's other workers never
    /// steal from: if the caller then blocked that worker (a body calling
    /// blocking code), renewal would not start until the caller returned,
    /// and the lease would expire meanwhile.
    pub(crate) async fn started(&mut self) {
        if let Some(started) = self.started.take() {
            // An error: the task was dropped unpolled (the runtime shuts
            // down); nothing to wait for.
            let _ = started.await;
        }
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How often to extend: a third of the TTL, so that two more attempts fit
/// before the deadline when one fails.
pub(crate) fn interval(ttl: Duration) -> Duration {
    ttl / 3
}

async fn renew<K: Kind>(
    engine: Arc<Engine<K>>,
    token: Token,
    lease: Lease,
    hold_until: Option<Instant>,
) {
    loop {
        // Not tokio's timer: see `alarm`.
        alarm::sleep(interval(engine.ttl)).await;
        if lease.is_lost() {
            // Over by its deadline while we slept (a loss Redis answered
            // was counted by that extend).
            lost_by_deadline(&engine, &lease);
            return;
        }
        let now = Instant::now();
        // The cap: extend only up to `hold_until`, then stop.
        let ttl = match hold_until {
            Some(until) if until.saturating_duration_since(now) < MIN_TTL => return,
            // Whole milliseconds, as PEXPIRE takes them.
            Some(until) => engine.ttl.min(Duration::from_millis(millis(until - now))),
            None => engine.ttl,
        };
        // An answer after the deadline is worthless: the lease is lost then.
        let Some(left) = lease.deadline().checked_duration_since(now) else {
            lost_by_deadline(&engine, &lease);
            return;
        };
        match tokio::time::timeout(left, engine.extend(&token, &lease, ttl)).await {
            Ok(Ok(())) => {}
            Ok(Err(Error::NotHeld { .. })) => {
                #[cfg(feature = "tracing")]
                crate::trace::lost(engine.key(), "the key no longer holds our token");
                return;
            }
            // Answered after the deadline: the lease is over already.
            Ok(Err(_)) if lease.is_lost() => {
                lost_by_deadline(&engine, &lease);
                return;
            }
            // No answer by the deadline: the lease is lost by the clock.
            Err(_) => {
                lost_by_deadline(&engine, &lease);
                return;
            }
            // A Redis error: try again next interval; if none succeeds
            // before the deadline, the lease reports the loss.
            Ok(Err(error)) => {
                #[cfg(feature = "tracing")]
                crate::trace::renewal_failed(engine.key(), &error);
                metrics::extend_failed(&engine.meter, "renew", &error);
            }
        }
    }
}

/// Records a loss by the clock: no extend succeeded before the deadline.
/// Every such path of the task ends here, so the log and the metrics see
/// each loss once, whichever way the deadline was noticed (asleep, an
/// extend timed out, or one failed after it).
fn lost_by_deadline<K: Kind>(engine: &Engine<K>, lease: &Lease) {
    #[cfg(feature = "tracing")]
    crate::trace::lost(
        engine.key(),
        "no renewal succeeded before the lease's deadline",
    );
    metrics::lost(&engine.meter, lease, LossReason::Deadline);
}
