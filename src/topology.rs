//! How the lease steps are applied: on one node, or on a quorum of N
//! independent nodes (Redlock). Everything above this (the lock's wait loop,
//! the guard, cancel safety, `Drop`) is written once over these steps.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::connection::{Node, SetReply};
use crate::error::{Error, Operation, Result};
use crate::quorum::Quorum;

/// The nodes a lock lives on.
#[derive(Debug)]
pub(crate) enum Topology {
    /// One Redis (or anything behind one `ConnectionLike`).
    Single(Node),
    /// N independent masters (Redlock).
    Quorum(Quorum),
}

/// The outcome of one acquire attempt.
#[derive(Debug)]
pub(crate) enum AcquireStep {
    /// The token now holds the lock. Its lease counts from `sent_at`, or,
    /// when `from_earlier_send`, from an earlier send of the same token.
    /// `fence` is the acquisition's fence when the lock is fenced.
    Acquired {
        sent_at: Instant,
        from_earlier_send: bool,
        fence: Option<u64>,
    },
    /// Not acquired, and no key of ours is left behind: worth another try
    /// under the wait policy. `failed` is the error to report if the wait
    /// ends now, `None` for plain contention ([`Error::Busy`]). When
    /// `token_spent`, the next attempt needs a fresh token.
    Retry {
        failed: Option<Error>,
        token_spent: bool,
    },
    /// Give up with `error`. `maybe_set`: whether our token may have been
    /// set on a node, so that it needs releasing.
    Fail { error: Error, maybe_set: bool },
}

impl Topology {
    /// Node `index`: the node itself for a single node (index 0), one of
    /// the quorum's otherwise.
    pub(crate) fn node(&self, index: usize) -> Option<&Node> {
        match self {
            Topology::Single(node) => (index == 0).then_some(node),
            Topology::Quorum(quorum) => quorum.node(index),
        }
    }

    /// One acquire attempt with `token`; fenced (one script that also
    /// `INCR`s `fence_key`) when `fence_key` is given. Fencing is single-node
    /// only: the builder refuses it for a quorum.
    pub(crate) async fn try_acquire(
        &self,
        key: &str,
        fence_key: Option<&str>,
        token: &str,
        ttl: Duration,
    ) -> AcquireStep {
        match self {
            Topology::Single(node) => {
                // The local deadline counts from before the send, so it is
                // never later than the server's expiry.
                let sent_at = Instant::now();
                let reply = match fence_key {
                    None => node
                        .set_nx(key, token, ttl)
                        .await
                        .map(|reply| (reply, None)),
                    Some(fence_key) => node.set_nx_fenced(key, fence_key, token, ttl).await,
                };
                match reply {
                    Ok((SetReply::Acquired, fence)) => AcquireStep::Acquired {
                        sent_at,
                        from_earlier_send: false,
                        fence,
                    },
                    Ok((SetReply::AlreadyOurs, fence)) => AcquireStep::Acquired {
                        sent_at,
                        from_earlier_send: true,
                        fence,
                    },
                    Ok((SetReply::HeldByOther, _)) => AcquireStep::Retry {
                        failed: None,
                        token_spent: false,
                    },
                    // A server error reply means the SET did not run; anything
                    // else (timeout, broken connection) leaves it unknown.
                    Err(e) => AcquireStep::Fail {
                        maybe_set: e.code().is_none(),
                        error: Error::from_redis(Operation::Acquire, key, e),
                    },
                }
            }
            Topology::Quorum(quorum) => quorum.try_acquire(key, token, ttl).await,
        }
    }

    /// Release: `Ok(true)` when our lock was deleted (on a majority),
    /// `Ok(false)` when it was not ours any more.
    pub(crate) async fn release(&self, key: &str, token: &str) -> Result<bool> {
        match self {
            Topology::Single(node) => node
                .release(key, token)
                .await
                .map_err(|e| Error::from_redis(Operation::Release, key, e)),
            Topology::Quorum(quorum) => quorum.release(key, token).await,
        }
    }

    /// Extend: `Ok(true)` when our lock now lives `ttl` (on a majority, with
    /// validity left), `Ok(false)` when it was not ours any more.
    pub(crate) async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        match self {
            Topology::Single(node) => node
                .extend(key, token, ttl)
                .await
                .map_err(|e| Error::from_redis(Operation::Extend, key, e)),
            Topology::Quorum(quorum) => quorum.extend(key, token, ttl).await,
        }
    }

    /// Inspect: whether the key holds `token` (on a majority).
    pub(crate) async fn holds(&self, key: &str, token: &str) -> Result<bool> {
        match self {
            Topology::Single(node) => node
                .holds(key, token)
                .await
                .map_err(|e| Error::from_redis(Operation::Inspect, key, e)),
            Topology::Quorum(quorum) => quorum.holds(key, token).await,
        }
    }

    /// A token-checked release on every node, sent without waiting for it
    /// when a tokio runtime is there to run it; otherwise the keys expire by
    /// their TTL.
    pub(crate) fn release_in_background(&self, key: Arc<str>, token: String) {
        match self {
            Topology::Single(node) => node.release_in_background(key, token),
            Topology::Quorum(quorum) => quorum.release_in_background(key, token),
        }
    }

    /// How many nodes the lock lives on.
    pub(crate) fn node_count(&self) -> usize {
        match self {
            Topology::Single(_) => 1,
            Topology::Quorum(quorum) => quorum.len(),
        }
    }
}
