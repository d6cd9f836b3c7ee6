//! A hold of a lease, of any kind: the engine's guard, behind each kind's
//! public guard. What happens on release is here, in the topology's step
//! (`topology`, `node`) and, for a Redlock, in the quorum rules (`quorum`).
//!
//! Invariants:
//! - The deadline counts from before the send that confirmed the hold,
//!   minus the drift margin (`ttl`), and moves only by the engine's extend.
//! - Renewal is stopped (aborted) before any release is sent.
//! - A hold that was not released with an answer is released in the
//!   background when dropped (token-checked, best effort, bounded resends);
//!   without a tokio runtime, or when it shuts down before the release is
//!   sent, the lease expires by its TTL. `Drop` never blocks and never
//!   panics.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::lease::Lease;
use crate::metrics;
use crate::renew::Renewal;
use crate::token::Token;
use crate::ttl::check_ttl;

/// A confirmed hold of a lease.
pub(crate) struct Hold<K: Kind> {
    engine: Arc<Engine<K>>,
    token: Token,
    lease: Lease,
    /// Renewal stops extending past this instant (`max_hold`).
    hold_until: Option<Instant>,
    /// The watchdog, while renewal is on.
    renewal: Option<Renewal>,
    /// The fence of this acquisition, when the kind fences.
    fence: Option<u64>,
    /// Set once a release has had an answer; `Drop` releases otherwise.
    released: bool,
    /// When the lease began, for the time held in events and metrics.
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    valid_from: Instant,
}

impl<K: Kind> Hold<K> {
    /// A hold that Redis just confirmed, with renewal started if the engine
    /// asks for it. `valid_from` is when the confirming command was sent,
    /// `valid_until` the lease's deadline counted from it (computed once),
    /// `now` both clocks read after its answer came.
    pub(crate) fn new(
        engine: Arc<Engine<K>>,
        token: Token,
        fence: Option<u64>,
        valid_from: Instant,
        valid_until: Instant,
        now: crate::clock::Readings,
    ) -> Result<Hold<K>> {
        let lease = Lease::new(engine.kind.key().clone(), valid_until, now);
        let hold_until = engine.max_hold.and_then(|max| valid_from.checked_add(max));
        let auto_renew = engine.auto_renew;
        let mut hold = Hold {
            engine,
            token,
            fence,
            lease,
            hold_until,
            renewal: None,
            released: false,
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            valid_from,
        };
        if auto_renew {
            hold.auto_renew()?;
        }
        Ok(hold)
    }

    pub(crate) fn key(&self) -> &str {
        self.engine.key()
    }

    pub(crate) fn lease(&self) -> &Lease {
        &self.lease
    }

    pub(crate) fn kind(&self) -> &K {
        &self.engine.kind
    }

    pub(crate) fn fence(&self) -> Option<u64> {
        self.fence
    }

    /// The token, for the wire only (a handoff to another process) and a
    /// shared hold's `Debug` (a prefix). Never log it.
    pub(crate) fn token(&self) -> &Token {
        &self.token
    }

    /// Starts renewal unless it runs; fails only outside a tokio runtime.
    pub(crate) fn auto_renew(&mut self) -> Result<()> {
        if self.renewal.is_none() {
            self.renewal = Some(self.renewal_task()?);
        }
        Ok(())
    }

    /// Whether this hold's own renewal runs.
    pub(crate) fn is_renewing(&self) -> bool {
        self.renewal.is_some()
    }

    /// A renewal task for this hold, kept by the caller (a shared hold,
    /// which cannot give `&mut`); it must be stopped before the release.
    pub(crate) fn renewal_task(&self) -> Result<Renewal> {
        Renewal::start(
            self.engine.clone(),
            self.token.clone(),
            self.lease.clone(),
            self.hold_until,
        )
    }

    /// Waits until renewal, if on, has started (see `Renewal::started`).
    pub(crate) async fn renewal_started(&mut self) {
        if let Some(renewal) = &mut self.renewal {
            renewal.started().await;
        }
    }

    /// Whether the token still holds the lease.
    pub(crate) async fn is_held(&self) -> Result<bool> {
        let engine = &self.engine;
        engine
            .topology
            .holds(&engine.kind, self.token.as_str())
            .await
    }

    /// Checks `ttl`, then extends by the engine's one extend.
    pub(crate) async fn extend(&self, ttl: Duration) -> Result<()> {
        let ttl = check_ttl(ttl)?;
        if self.engine.drift.validity(ttl).is_zero() {
            return Err(Error::invalid(
                "ttl",
                format!("{ttl:?} leaves no validity after the clock-drift margin"),
            ));
        }
        let result = self.engine.extend(&self.token, &self.lease, ttl).await;
        if let Err(error) = &result {
            metrics::extend_failed(&self.engine.meter, "extend", error);
        }
        result
    }

    /// Stops renewal, then releases: `Ok(())` when the token held the lease
    /// and no longer does, [`Error::NotHeld`] when it had not held it any
    /// more.
    pub(crate) async fn release(mut self) -> Result<()> {
        self.renewal = None;
        let engine = &self.engine;
        let result = engine
            .topology
            .release(&engine.kind, self.token.as_str())
            .await;
        self.answered(result)
    }

    /// How long a release by a blocking guard's `Drop` may wait: one
    /// attempt's floor (`Topology::attempt_floor`), one command timeout.
    #[cfg(feature = "blocking")]
    pub(crate) fn release_floor(&self) -> Duration {
        self.engine.topology.attempt_floor()
    }

    /// Releases as [`release`](Hold::release) does, but a release Redis
    /// did not answer (a timeout, a lost connection, a Redlock short of
    /// answers) is left to the drop, which resends it in the background:
    /// for a drop that waits for its release (the blocking guard's).
    #[cfg(feature = "blocking")]
    pub(crate) async fn release_or_resend(mut self) {
        self.renewal = None;
        let engine = &self.engine;
        let result = engine
            .topology
            .release(&engine.kind, self.token.as_str())
            .await;
        let unanswered = match &result {
            Ok(_) => false,
            Err(Error::TimedOut { .. } | Error::QuorumNotReached { .. }) => true,
            Err(error) => error.redis_error().is_some_and(|e| e.code().is_none()),
        };
        if !unanswered {
            let _ = self.answered(result);
        }
    }

    /// A release had an answer: nothing is left for `Drop`, and the
    /// outcome is reported.
    fn answered(&mut self, result: Result<bool>) -> Result<()> {
        self.released = true;
        let result = match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.engine.not_held()),
            Err(e) => Err(e),
        };
        #[cfg(feature = "tracing")]
        crate::trace::released(self.key(), self.valid_from.elapsed(), &result);
        #[cfg(feature = "metrics")]
        metrics::released(&self.engine.meter, self.valid_from, &result);
        result
    }
}

impl<K: Kind> Drop for Hold<K> {
    fn drop(&mut self) {
        self.renewal = None;
        if !self.released {
            #[cfg(feature = "tracing")]
            tracing::debug!(
                target: "redis_mutex",
                key = self.key(),
                "lock guard dropped without release(): releasing in the background"
            );
            let engine = &self.engine;
            #[cfg(feature = "metrics")]
            metrics::dropped(&engine.meter, self.valid_from);
            engine
                .topology
                .release_in_background(&engine.kind, self.token.as_str());
        }
    }
}

impl<K: Kind> Hold<K> {
    /// `Debug` for a kind's guard named `name`: never the whole token.
    pub(crate) fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("key", &self.key())
            .field("token", &self.token)
            .field("fence", &self.fence)
            .field("remaining", &self.lease.remaining())
            .field("renewing", &self.renewal.is_some())
            .finish()
    }
}
