//! Re-entrant holds, for any kind of lease: an owner's acquire of a lease
//! it holds already is a local count over the engine's one hold (see
//! [`Owner`] for the model), and a kind's guard holds either a plain hold
//! or one share of an owner's hold ([`Held`]).
//!
//! Invariants:
//! - A nested acquire sends nothing: no round trip, no new token. Only an
//!   owner's first acquire of a key (no live hold, no acquire in flight)
//!   goes to Redis, through the engine's acquire.
//! - Every guard of a shared hold is one strong reference to it; the hold
//!   ends with the last one (`Arc::into_inner` or the last drop), in any
//!   order, and then, and only then, its release is sent: awaited by a
//!   last `release()`, in the background for a last drop.
//! - Renewal is stopped before the release is sent (the hold's own, and
//!   one a nested guard started).
//! - A lost hold is never re-entered.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::hold::Hold;
use crate::kind::Kind;
use crate::lease::Lease;
use crate::out_of_line::out_of_line;
use crate::owner::{Found, HoldKey, Owner, Registration};
use crate::renew::Renewal;
use crate::retry::WaitPolicy;
use crate::token::Token;

/// A kind's guard's hold: its own, or a share of its owner's.
pub(crate) enum Held<K: Kind> {
    /// Acquired without an owner: exactly the engine's hold.
    Alone(Hold<K>),
    /// One guard of an owner's hold.
    Shared(Arc<SharedHold<K>>),
}

/// An owner's hold of a lease, shared by all its guards.
pub(crate) struct SharedHold<K: Kind> {
    /// Dropped first: the owner's table forgets the hold.
    registration: Registration,
    /// Renewal started through a guard after the hold was made (the hold's
    /// own is started with it); stopped before the hold's release.
    renewal: Mutex<Option<Renewal>>,
    hold: Hold<K>,
}

impl<K: Kind> Engine<K> {
    /// Acquires under `policy`, as `owner`'s when given.
    pub(crate) async fn acquire_held(
        self: &Arc<Self>,
        owner: Option<&Owner>,
        policy: WaitPolicy,
    ) -> Result<Held<K>> {
        match owner {
            None => self.acquire(policy).await.map(Held::Alone),
            Some(owner) => self.acquire_owned(owner, policy).await,
        }
    }

    /// `owner`'s acquire, as a guard's hold. Out of line: an owner's
    /// acquire is the rarer one, and its code would sit among the plain
    /// acquire's.
    pub(crate) async fn acquire_owned(
        self: &Arc<Self>,
        owner: &Owner,
        policy: WaitPolicy,
    ) -> Result<Held<K>> {
        out_of_line(self.acquire_as(owner, policy))
            .await
            .map(Held::Shared)
    }

    /// One attempt (a nested acquire always succeeds, unless lost).
    pub(crate) async fn try_acquire_held(
        self: &Arc<Self>,
        owner: Option<&Owner>,
    ) -> Result<Option<Held<K>>> {
        let Some(owner) = owner else {
            return Ok(self.try_acquire().await?.map(Held::Alone));
        };
        match self.acquire_as(owner, WaitPolicy::no_wait()).await {
            Ok(shared) => Ok(Some(Held::Shared(shared))),
            Err(Error::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `Engine::run` as `owner`'s: a nested run re-enters, and its end
    /// releases only if it was the last guard.
    pub(crate) async fn run_as<F, Fut, T>(self: &Arc<Self>, owner: &Owner, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        let shared = self.acquire_as(owner, self.wait).await?;
        shared.start_renewal().await?;
        let held = Held::Shared(shared);
        let lease = held.lease().clone();
        let finished = tokio::select! {
            biased;
            () = lease.lost() => None,
            value = body(lease.clone()) => Some(value),
        };
        match finished {
            Some(value) => held.release().await.map(|()| value),
            None => {
                let _ = held.release().await;
                #[cfg(feature = "tracing")]
                crate::trace::lost(self.key(), "the work under run() was stopped");
                Err(Error::Lost {
                    key: self.key().to_owned(),
                })
            }
        }
    }

    /// `owner`'s acquire: a share of its live hold at once, or, after any
    /// acquire of the same owner in flight has ended, the engine's acquire
    /// of a new hold. The whole call ends by `policy`'s deadline.
    async fn acquire_as(
        self: &Arc<Self>,
        owner: &Owner,
        policy: WaitPolicy,
    ) -> Result<Arc<SharedHold<K>>> {
        let started = Instant::now();
        let deadline = policy.deadline(started);
        let key = HoldKey::new::<K, _>(&self.topology, self.kind.key());
        loop {
            match owner.find(&key) {
                Found::Held(hold) => return self.enter(hold).await,
                Found::Acquiring(ended) => {
                    // Not the owner's hold in Redis: its outcome, here.
                    let ended = ended.wait();
                    let in_time = match deadline {
                        None => {
                            let _ = ended.await;
                            true
                        }
                        Some(deadline) => tokio::time::timeout_at(deadline, ended).await.is_ok(),
                    };
                    if !in_time {
                        return Err(Error::Busy {
                            key: self.key().to_owned(),
                            waited: started.elapsed(),
                            attempts: 0,
                        });
                    }
                }
                Found::Free(slot) => {
                    // What is left of the wait, if another acquire of the
                    // owner's went first and failed.
                    let policy = match deadline {
                        None => policy,
                        Some(deadline) => policy.with_max_wait(Some(
                            deadline.saturating_duration_since(Instant::now()),
                        )),
                    };
                    // Cancelled or failed: the slot's drop lets the owner's
                    // other acquires of the key try.
                    let hold = match self.acquire(policy).await {
                        Ok(hold) => hold,
                        // The wait counts from this call's start.
                        Err(Error::Busy { key, attempts, .. }) => {
                            return Err(Error::Busy {
                                key,
                                waited: started.elapsed(),
                                attempts,
                            });
                        }
                        Err(e) => return Err(e),
                    };
                    let shared = Arc::new(SharedHold {
                        registration: slot.registration(),
                        renewal: Mutex::new(None),
                        hold,
                    });
                    let weak = Arc::downgrade(&shared);
                    slot.fill(weak);
                    return Ok(shared);
                }
            }
        }
    }

    /// A nested hold of `hold` (the owner's live hold of this lease).
    async fn enter(&self, hold: Arc<dyn Any + Send + Sync>) -> Result<Arc<SharedHold<K>>> {
        let Ok(shared) = hold.downcast::<SharedHold<K>>() else {
            // The table's key names the kind: not reached.
            return Err(Error::invalid("owner", "a hold of another kind of lease"));
        };
        if shared.hold.lease().is_lost() {
            return Err(self.not_held());
        }
        if self.auto_renew {
            shared.start_renewal().await?;
        }
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "redis_mutex",
            key = self.key(),
            guards = Arc::strong_count(&shared),
            "lock re-entered by its owner: a nested guard, nothing sent"
        );
        Ok(shared)
    }
}

impl<K: Kind> SharedHold<K> {
    fn is_renewing(&self) -> bool {
        self.hold.is_renewing() || self.renewal().is_some()
    }

    fn renewal(&self) -> std::sync::MutexGuard<'_, Option<Renewal>> {
        self.renewal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts renewal unless it runs, and waits until it has started.
    async fn start_renewal(&self) -> Result<()> {
        if self.is_renewing() {
            return Ok(());
        }
        let mut renewal = self.hold.renewal_task()?;
        renewal.started().await;
        // Another guard may have started one meanwhile: one is enough.
        self.renewal().get_or_insert(renewal);
        Ok(())
    }
}

impl<K: Kind> Held<K> {
    fn hold(&self) -> &Hold<K> {
        match self {
            Held::Alone(hold) => hold,
            Held::Shared(shared) => &shared.hold,
        }
    }

    /// The engine's hold of a guard acquired without an owner; a guard of
    /// an owner's shared hold is given back as it is.
    #[cfg(feature = "blocking")]
    // Both sides are the guard's hold (136 bytes since the token is stored
    // inline): boxing the `Err` would allocate on every blocking release to
    // save a move on a path taken once per guard.
    #[allow(clippy::result_large_err)]
    pub(crate) fn into_alone(self) -> std::result::Result<Hold<K>, Held<K>> {
        match self {
            Held::Alone(hold) => Ok(hold),
            shared => Err(shared),
        }
    }

    pub(crate) fn key(&self) -> &str {
        self.hold().key()
    }

    pub(crate) fn lease(&self) -> &Lease {
        self.hold().lease()
    }

    pub(crate) fn fence(&self) -> Option<u64> {
        self.hold().fence()
    }

    pub(crate) fn token(&self) -> &Token {
        self.hold().token()
    }

    /// The owner, for a share of an owner's hold.
    pub(crate) fn owner(&self) -> Option<&Owner> {
        match self {
            Held::Alone(_) => None,
            Held::Shared(shared) => Some(shared.registration.owner()),
        }
    }

    /// Starts renewal of the hold unless it runs (for every guard of a
    /// shared hold); fails only outside a tokio runtime.
    pub(crate) fn auto_renew(&mut self) -> Result<()> {
        match self {
            Held::Alone(hold) => hold.auto_renew(),
            Held::Shared(shared) => {
                if !shared.is_renewing() {
                    let renewal = shared.hold.renewal_task()?;
                    shared.renewal().get_or_insert(renewal);
                }
                Ok(())
            }
        }
    }

    pub(crate) async fn is_held(&self) -> Result<bool> {
        self.hold().is_held().await
    }

    pub(crate) async fn extend(&self, ttl: Duration) -> Result<()> {
        self.hold().extend(ttl).await
    }

    /// Ends this guard's hold. The last guard of a hold releases it (the
    /// answer from Redis); any other sends nothing and says
    /// [`Error::NotHeld`] only when the shared lease is known lost.
    pub(crate) async fn release(self) -> Result<()> {
        match self.into_release() {
            Ok(hold) => hold.release().await,
            Err(answer) => answer,
        }
    }

    /// The hold to release now, or the answer of a guard whose release
    /// sends nothing: for a caller that awaits the hold's release itself.
    pub(crate) fn into_release(self) -> std::result::Result<Hold<K>, Result<()>> {
        match self {
            Held::Alone(hold) => Ok(hold),
            Held::Shared(shared) => Held::last_guard(shared),
        }
    }

    /// The hold of `shared`, to release, when this was its last guard;
    /// otherwise what releasing a nested guard answers.
    fn last_guard(shared: Arc<SharedHold<K>>) -> std::result::Result<Hold<K>, Result<()>> {
        let not_held = shared.hold.lease().is_lost().then(|| Error::NotHeld {
            key: shared.hold.key().to_owned(),
        });
        let Some(last) = Arc::into_inner(shared) else {
            return Err(not_held.map_or(Ok(()), Err));
        };
        let SharedHold {
            registration,
            renewal,
            hold,
        } = last;
        drop(renewal);
        drop(registration);
        Ok(hold)
    }

    /// `Debug` for a kind's guard named `name`: never the whole token.
    pub(crate) fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::Alone(hold) => hold.fmt_as(name, f),
            Held::Shared(shared) => {
                let hold = &shared.hold;
                f.debug_struct(name)
                    .field("key", &hold.key())
                    .field("token", hold.token())
                    .field("fence", &hold.fence())
                    .field("remaining", &hold.lease().remaining())
                    .field("renewing", &shared.is_renewing())
                    .field("guards", &Arc::strong_count(shared))
                    .finish()
            }
        }
    }
}
