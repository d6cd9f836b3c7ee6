//! What every hold of one lease shares: its kind, its settings and its
//! servers; and the one token-checked extend, used by guards and renewal.
//!
//! Invariants:
//! - An extend moves the lease's deadline to `sent_at + validity(ttl)`,
//!   with `sent_at` taken before the send, and only while the lease is not
//!   over: a late answer never revives it.
//! - An extend answered "not ours" marks the lease lost, for good.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Operation, Result};
use crate::kind::Kind;
use crate::lease::Lease;
use crate::replicas::ReplicaSync;
use crate::retry::WaitPolicy;
use crate::token::Token;
use crate::topology::Topology;
use crate::ttl::ClockDrift;

/// One lease's kind, settings and servers, shared (in an `Arc`) by the
/// public handle, its guards and their renewal tasks.
#[derive(Debug)]
pub(crate) struct Engine<K> {
    pub(crate) kind: K,
    pub(crate) ttl: Duration,
    pub(crate) wait: WaitPolicy,
    pub(crate) auto_renew: bool,
    pub(crate) max_hold: Option<Duration>,
    pub(crate) drift: ClockDrift,
    pub(crate) topology: Topology,
    /// `WAIT`/`WAITAOF` after each acquire (single node only).
    pub(crate) replica_sync: Option<ReplicaSync>,
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
            lease.mark_lost();
            return Err(self.not_held());
        }
        if !lease.extended(self.drift.valid_until(sent_at, ttl)) {
            return Err(Error::ValidityExpired {
                operation: Operation::Extend,
                key: self.key().to_owned(),
                elapsed: sent_at.elapsed(),
            });
        }
        Ok(())
    }

    pub(crate) fn not_held(&self) -> Error {
        Error::NotHeld {
            key: self.key().to_owned(),
        }
    }
}
