//! What every hold of one lease shares: its kind, its settings and its
//! servers; and the one token-checked extend, used by guards and renewal.
//!
//! Invariants:
//! - An extend moves the lease's deadline to `sent_at + validity(ttl)`,
//!   with `sent_at` taken before the send, and only while the lease is not
//!   over: a late answer never revives it.
//! - An extend answered "not ours" marks the lease lost, for good.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Operation, Result};
use crate::kind::Kind;
use crate::lease::Lease;
use crate::metrics::{self, LossReason, Meter};
use crate::quorum;
use crate::replicas::ReplicaSync;
use crate::retry::WaitPolicy;
use crate::scripts::Request;
use crate::token::Token;
use crate::topology::Topology;
use crate::ttl::{ClockDrift, check_ttl};

/// One lease's kind, settings and servers, shared (in an `Arc`) by the
/// public handle, its guards and their renewal tasks.
#[derive(Clone, Debug)]
pub(crate) struct Engine<K> {
    pub(crate) kind: K,
    pub(crate) ttl: Duration,
    pub(crate) wait: WaitPolicy,
    pub(crate) auto_renew: bool,
    pub(crate) max_hold: Option<Duration>,
    pub(crate) drift: ClockDrift,
    /// Shared by every lease built from one [`Locks`](crate::Locks).
    pub(crate) topology: Arc<Topology>,
    /// `WAIT`/`WAITAOF` after each acquire (single node only).
    pub(crate) replica_sync: Option<ReplicaSync>,
    /// The labels of its metrics (zero-sized without `metrics`).
    pub(crate) meter: Meter,
}

impl<K: Kind> Engine<K> {
    pub(crate) fn key(&self) -> &str {
        self.kind.key()
    }

    /// Makes `token`'s hold live `ttl` from now (`ttl` checked already) and
    /// moves `lease`'s deadline.
    ///
    /// [`Error::NotHeld`] when the token no longer holds the lease (then
    /// marked lost), [`Error::ValidityExpired`] when the answer came after
    /// the lease was over, other errors when Redis could not tell (the
    /// deadline then stays where it was).
    pub(crate) async fn extend(&self, token: &Token, lease: &Lease, ttl: Duration) -> Result<()> {
        let sent_at = Instant::now();
        let extended = self
            .topology
            .extend(&self.kind, token.as_str(), ttl)
            .await?;
        if !extended {
            // Counted before the loss shows: whoever sees the lease over
            // and finds it uncounted may take it for a deadline.
            metrics::lost(&self.meter, lease, LossReason::NotHeld);
            lease.mark_lost();
            return Err(self.not_held());
        }
        if !lease.extended(self.drift.valid_until(sent_at, ttl)) {
            metrics::lost(&self.meter, lease, LossReason::Deadline);
            return Err(Error::ValidityExpired {
                operation: Operation::Extend,
                key: self.key().to_owned(),
                elapsed: sent_at.elapsed(),
            });
        }
        Ok(())
    }

    /// The same lease with another TTL, checked as the builders check it:
    /// within [`MIN_TTL`](crate::MIN_TTL) and [`MAX_TTL`](crate::MAX_TTL),
    /// leaving validity past the drift margin, a Redlock's node timeout and
    /// the replica timeout.
    pub(crate) fn with_ttl(&self, ttl: Duration) -> Result<Engine<K>>
    where
        K: Clone,
    {
        let ttl = check_ttl(ttl)?;
        self.drift.check_validity("ttl", ttl)?;
        if let Some(node_timeout) = self.topology.node_timeout() {
            quorum::check_node_timeout(node_timeout, ttl, self.drift)?;
        }
        if let Some(sync) = &self.replica_sync {
            sync.validate(self.drift.validity(ttl))?;
        }
        Ok(Engine {
            ttl,
            ..self.clone()
        })
    }

    pub(crate) fn not_held(&self) -> Error {
        Error::NotHeld {
            key: self.key().to_owned(),
        }
    }

    /// Sends `request`, a read-only script that counts the kind's live
    /// members on the server's clock (permits taken, readers, places in
    /// line), and returns the count. One node (or the Cluster node that
    /// owns the key) only: a Redlock quorum has no one count, and gets
    /// `on_quorum()`, the kind's reason for refusing quorums.
    pub(crate) async fn count_members(
        &self,
        request: Request,
        on_quorum: fn() -> Error,
    ) -> Result<u32> {
        let Some(node) = self.topology.single_node() else {
            return Err(on_quorum());
        };
        node.send(request)
            .await
            .and_then(|reply| Ok(redis::from_redis_value::<u32>(reply)?))
            .map_err(|e| Error::from_redis(Operation::Inspect, self.key(), e))
    }
}
