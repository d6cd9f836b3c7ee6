//! The attempt loop of every kind: acquire under a wait policy (one total
//! deadline), the cancel-safe pending acquire, and `run`.
//!
//! Invariants:
//! - The token exists before the first send. While an acquire may have
//!   landed without a hold to show for it (`PendingAcquire::maybe_set`),
//!   dropping the pending acquire (cancellation, error) releases the token
//!   in the background, so a lease is never left held until its TTL.
//! - A hold counts from before the send that confirmed it, or from the
//!   call's start when an earlier send of the same token landed; an answer
//!   that came after the validity makes no hold.
//! - A topology that spent a token (a Redlock attempt that missed) gets a
//!   fresh one: a late release of the old token must never meet a later
//!   attempt's key.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use crate::attempt::AcquireStep;
use crate::engine::Engine;
use crate::error::{Error, Operation, Result};
use crate::hold::Hold;
use crate::kind::Kind;
use crate::lease::Lease;
use crate::retry::WaitPolicy;
use crate::token::Token;
use crate::wait::Waiter;

impl<K: Kind> Engine<K> {
    /// Acquires under `policy`; [`Error::Busy`] when the wait ends first.
    pub(crate) async fn acquire(self: &Arc<Self>, policy: WaitPolicy) -> Result<Hold<K>> {
        let started = Instant::now();
        #[cfg(feature = "tracing")]
        let result = {
            use tracing::Instrument;
            let span = crate::trace::acquire_span(self.key());
            self.attempt_until_acquired(policy, started)
                .instrument(span)
                .await
        };
        #[cfg(not(feature = "tracing"))]
        let result = self.attempt_until_acquired(policy, started).await;
        #[cfg(feature = "tracing")]
        crate::trace::acquired(
            self.key(),
            started.elapsed(),
            result.as_ref().map(Hold::fence),
        );
        result
    }

    /// One attempt: `Ok(None)` when the lease is held by others.
    pub(crate) async fn try_acquire(self: &Arc<Self>) -> Result<Option<Hold<K>>> {
        match self.acquire(WaitPolicy::no_wait()).await {
            Ok(hold) => Ok(Some(hold)),
            Err(Error::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Acquires, runs `body` while renewing, and releases after; `body` is
    /// stopped (dropped) when the lease is lost, and the result is then
    /// [`Error::Lost`].
    pub(crate) async fn run<F, Fut, T>(self: &Arc<Self>, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        let mut hold = self.acquire(self.wait).await?;
        hold.auto_renew()?;
        let lease = hold.lease().clone();
        let finished = tokio::select! {
            biased;
            () = lease.lost() => None,
            value = body(lease.clone()) => Some(value),
        };
        match finished {
            Some(value) => hold.release().await.map(|()| value),
            None => {
                // Still worth a try: if the deadline passed only because
                // Redis was slow, the lease may still be ours.
                let _ = hold.release().await;
                #[cfg(feature = "tracing")]
                crate::trace::lost(self.key(), "the work under run() was stopped");
                Err(Error::Lost {
                    key: self.key().to_owned(),
                })
            }
        }
    }

    async fn attempt_until_acquired(
        self: &Arc<Self>,
        policy: WaitPolicy,
        started: Instant,
    ) -> Result<Hold<K>> {
        let mut waiter = Waiter::new(&self.kind, policy.start(started), self.topology.wake_ups());
        let mut pending = PendingAcquire {
            engine: self,
            token: Some(Token::generate()?),
            maybe_set: false,
        };
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            pending.maybe_set = true;
            let step = self
                .topology
                .try_acquire(&self.kind, pending.token_str(), self.ttl)
                .await;
            let failed = match step {
                AcquireStep::Acquired {
                    sent_at,
                    from_earlier_send,
                    fence,
                } => {
                    // Only an earlier send of this call can have set our
                    // token; count validity from the first one.
                    let from = if from_earlier_send { started } else { sent_at };
                    if let Some(sync) = &self.replica_sync
                        && let Err(error) = self.topology.replicate(sync, self.key()).await
                    {
                        // Not confirmed: undo now, so that the failed acquire
                        // leaves nothing; Drop retries if this goes unanswered.
                        if self
                            .topology
                            .release(&self.kind, pending.token_str())
                            .await
                            .is_ok()
                        {
                            pending.maybe_set = false;
                        }
                        return Err(error);
                    }
                    return pending.into_hold(from, fence);
                }
                AcquireStep::Fail { error, maybe_set } => {
                    pending.maybe_set = maybe_set;
                    return Err(error);
                }
                AcquireStep::Retry {
                    failed,
                    token_spent,
                } => {
                    pending.maybe_set = false;
                    if token_spent {
                        pending.token = Some(Token::generate()?);
                    }
                    failed
                }
            };
            if !waiter.wait().await {
                return Err(failed.unwrap_or_else(|| Error::Busy {
                    key: self.key().to_owned(),
                    waited: started.elapsed(),
                    attempts,
                }));
            }
        }
    }
}

/// The token of an acquire in progress (see the module's invariants).
struct PendingAcquire<'a, K: Kind> {
    engine: &'a Arc<Engine<K>>,
    token: Option<Token>,
    maybe_set: bool,
}

impl<K: Kind> PendingAcquire<'_, K> {
    fn token_str(&self) -> &str {
        self.token.as_ref().map_or("", Token::as_str)
    }

    fn into_hold(mut self, valid_from: Instant, fence: Option<u64>) -> Result<Hold<K>> {
        let engine = self.engine;
        // An answer that came after the lease's validity proves nothing any
        // more: it may have expired and been taken meanwhile. No hold; the
        // token stays pending, so Drop releases it in the background.
        if engine.drift.valid_until(valid_from, engine.ttl) <= Instant::now() {
            return Err(Error::ValidityExpired {
                operation: Operation::Acquire,
                key: engine.key().to_owned(),
                elapsed: valid_from.elapsed(),
            });
        }
        self.maybe_set = false;
        let Some(token) = self.token.take() else {
            unreachable!("token taken twice")
        };
        // From here the hold's Drop releases the lease if anything fails.
        Hold::new(engine.clone(), token, fence, valid_from)
    }
}

impl<K: Kind> Drop for PendingAcquire<'_, K> {
    fn drop(&mut self) {
        if self.maybe_set
            && let Some(token) = self.token.take()
        {
            let engine = self.engine;
            engine
                .topology
                .release_in_background(&engine.kind, token.as_str());
        }
    }
}
