//! How the steps of a kind of lease are applied to servers: on one node (a
//! server, or a Redis Cluster through one connection), or on a quorum of N
//! independent nodes (Redlock, see `quorum`). Everything above this (the
//! attempt loop, the guard, renewal, cancel safety, `Drop`) is written once
//! over these steps.
//!
//! Invariants:
//! - Callers never ask which topology this is: each question they have
//!   (where to listen for wake-ups and whether those are complete, where
//!   replicas are waited for, which servers to diagnose) is a method here.
//! - On one node a server error reply means the acquire did not run; any
//!   other failure (timeout, broken connection) leaves it unknown
//!   (`maybe_set`), for the caller to release by token.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::attempt::AcquireStep;
use crate::error::{Error, Operation, Result};
use crate::kind::{Grant, Kind, NamedWakeUp};
use crate::node::Node;
use crate::notify::Notifier;
use crate::quorum::Quorum;
use crate::replicas::ReplicaSync;

/// The least an acquire attempt on one node gets before the wait's deadline
/// cuts it, unless the lock has its own command timeout: 500 ms, the `redis`
/// crate's default response timeout.
pub(crate) const ATTEMPT_FLOOR: Duration = Duration::from_millis(500);

/// The least a cut comes after the lock's own command timeout would have
/// fired (a tenth of that timeout, if longer).
const CUT_MARGIN: Duration = Duration::from_millis(10);

/// The servers a lease lives on, and where its waiters listen.
pub(crate) struct Topology {
    servers: Servers,
    listener: Option<Listener>,
}

/// Where waiters listen: a notifier that hears the releases on one node.
pub(crate) struct Listener {
    pub(crate) notifier: Arc<Notifier>,
    /// The node's index in the quorum (0 on one node).
    pub(crate) node: usize,
}

enum Servers {
    /// One Redis (or anything behind one `ConnectionLike`).
    Single(Node),
    /// N independent masters (Redlock).
    Quorum(Quorum),
}

/// Where a waiter listens for releases, and whom it asks about the holder.
#[derive(Clone, Copy)]
pub(crate) struct WakeUps<'a> {
    pub(crate) notifier: &'a Notifier,
    pub(crate) node: &'a Node,
    /// Whether every release of the lease is announced on `node`: not on a
    /// Redlock, where a release that did not reach that node publishes
    /// nothing there, and its key may be gone or outlive the lease. Waiters
    /// then poll as well.
    pub(crate) complete: bool,
}

impl Topology {
    /// One node; waiters listen to `notifier` when given (and when it
    /// hears the node's publish, see [`Topology::hearing`]).
    pub(crate) fn single(node: Node, notifier: Option<Arc<Notifier>>) -> Topology {
        let listener = notifier.map(|notifier| Listener { notifier, node: 0 });
        Topology {
            listener: Topology::hearing(listener, std::slice::from_ref(&node)),
            servers: Servers::Single(node),
        }
    }

    /// A Redlock; waiters listen to `listener`, when given.
    pub(crate) fn quorum(quorum: Quorum, listener: Option<Listener>) -> Topology {
        Topology {
            listener: Topology::hearing(listener, quorum.nodes()),
            servers: Servers::Quorum(quorum),
        }
    }

    /// `listener` if it hears what its node publishes: the node decides
    /// the publish (`SPUBLISH` on a Redis Cluster), and a notifier
    /// subscribed the other way would never hear it (its waiters would
    /// sleep until the holder's expiry). Without one, waiters poll.
    fn hearing(listener: Option<Listener>, nodes: &[Node]) -> Option<Listener> {
        let listener = listener?;
        let node = nodes.get(listener.node)?;
        (listener.notifier.hears() == node.publish()).then_some(listener)
    }

    /// Where waiters listen, if anywhere.
    pub(crate) fn wake_ups(&self) -> Option<WakeUps<'_>> {
        let Listener { notifier, node } = self.listener.as_ref()?;
        let (node, complete) = match &self.servers {
            Servers::Single(node) => (node, true),
            Servers::Quorum(quorum) => (quorum.nodes().get(*node)?, false),
        };
        Some(WakeUps {
            notifier,
            node,
            complete,
        })
    }

    /// The nodes, in the order the lease was built with.
    pub(crate) fn nodes(&self) -> Vec<&Node> {
        match &self.servers {
            Servers::Single(node) => vec![node],
            Servers::Quorum(quorum) => quorum.nodes().iter().collect(),
        }
    }

    /// How long an acquire attempt may take at least before the wait's
    /// deadline cuts it: one command timeout on one node (the lock's own, or
    /// [`ATTEMPT_FLOOR`], the `redis` crate's default response timeout), the
    /// per-node timeout times the steps of a Redlock attempt (three).
    pub(crate) fn attempt_floor(&self) -> Duration {
        match &self.servers {
            // A little past the lock's own command timeout, so that the
            // command's own timeout, which names the command, fires first.
            Servers::Single(node) => node.command_timeout().map_or(ATTEMPT_FLOOR, |t| {
                t.saturating_add((t / 10).max(CUT_MARGIN))
            }),
            // An attempt's steps, each bounded by the per-node timeout: an
            // identification round (while too few nodes are known), the
            // acquire, and the undo of a missed one.
            Servers::Quorum(quorum) => quorum.node_timeout() * 3,
        }
    }

    /// Whether the attempt loop must cut an attempt that runs past its
    /// bound. Not on a Redlock: each of its steps ends by its own deadline
    /// (the per-node timeout), so an attempt ends within the attempt floor
    /// by itself, and the cut would only cost every acquire.
    pub(crate) fn cuts_attempts(&self) -> bool {
        matches!(self.servers, Servers::Single(_))
    }

    /// A Redlock's per-node timeout; `None` on one node.
    pub(crate) fn node_timeout(&self) -> Option<Duration> {
        match &self.servers {
            Servers::Single(_) => None,
            Servers::Quorum(quorum) => Some(quorum.node_timeout()),
        }
    }

    /// How many nodes the lease lives on.
    pub(crate) fn node_count(&self) -> usize {
        match &self.servers {
            Servers::Single(_) => 1,
            Servers::Quorum(quorum) => quorum.len(),
        }
    }

    /// The one node, unless this is a Redlock quorum.
    pub(crate) fn single_node(&self) -> Option<&Node> {
        match &self.servers {
            Servers::Single(node) => Some(node),
            Servers::Quorum(_) => None,
        }
    }

    /// One acquire attempt with `token`; on one node the lease counts from
    /// `sent_at`, an instant read before this is called (a Redlock reads
    /// its own, per round).
    pub(crate) async fn try_acquire<K: Kind>(
        &self,
        kind: &K,
        token: &str,
        ttl: Duration,
        sent_at: Instant,
    ) -> AcquireStep {
        let node = match &self.servers {
            Servers::Single(node) => node,
            // Boxed, here and in the other steps: a quorum's future is many
            // times a single node's, and inline it would make every
            // single-node step's future as large (moved and zeroed on every
            // acquire and release).
            Servers::Quorum(quorum) => return Box::pin(quorum.try_acquire(kind, token, ttl)).await,
        };
        // The lease counts from before the send (`sent_at`), so its local
        // deadline is never later than the server's expiry.
        match node.acquire(kind, token, ttl).await {
            Ok(Grant::Acquired { fence }) => AcquireStep::Acquired {
                sent_at,
                from_earlier_send: false,
                fence,
            },
            Ok(Grant::AlreadyOurs { fence }) => AcquireStep::Acquired {
                sent_at,
                from_earlier_send: true,
                fence,
            },
            Ok(Grant::Busy { named }) => AcquireStep::Retry {
                failed: None,
                token_spent: false,
                queued: false,
                named,
            },
            Ok(Grant::Queued) => AcquireStep::Retry {
                named: None,
                failed: None,
                token_spent: false,
                queued: true,
            },
            Err(e) => AcquireStep::Fail {
                maybe_set: e.code().is_none(),
                error: Error::from_redis(Operation::Acquire, kind.key(), e),
            },
        }
    }

    /// Release: `Ok(true)` when our hold was deleted (on a majority),
    /// `Ok(false)` when it was not ours any more.
    pub(crate) async fn release<K: Kind>(&self, kind: &K, token: &str) -> Result<bool> {
        match &self.servers {
            Servers::Single(node) => node
                .release(kind, token, self.named_wake_up(kind).as_ref())
                .await
                .map_err(|e| Error::from_redis(Operation::Release, kind.key(), e)),
            Servers::Quorum(quorum) => Box::pin(quorum.release(kind, token)).await,
        }
    }

    /// Whom a release of `kind` on one node wakes alone: the next waiting
    /// process, when the kind directs its wake-ups and this process waits
    /// on the key too (see `route`).
    fn named_wake_up<K: Kind>(&self, kind: &K) -> Option<NamedWakeUp> {
        if !kind.directs_wake_ups() {
            return None;
        }
        self.listener.as_ref()?.notifier.next_waiter(kind.channel())
    }

    /// Extend: `Ok(true)` when our hold now lives `ttl` (on a majority, with
    /// validity left), `Ok(false)` when it was not ours any more.
    pub(crate) async fn extend<K: Kind>(
        &self,
        kind: &K,
        token: &str,
        ttl: Duration,
    ) -> Result<bool> {
        match &self.servers {
            Servers::Single(node) => node
                .extend(kind, token, ttl)
                .await
                .map_err(|e| Error::from_redis(Operation::Extend, kind.key(), e)),
            Servers::Quorum(quorum) => Box::pin(quorum.extend(kind, token, ttl)).await,
        }
    }

    /// Inspect: whether `token` holds the lease (on a majority).
    pub(crate) async fn holds<K: Kind>(&self, kind: &K, token: &str) -> Result<bool> {
        match &self.servers {
            Servers::Single(node) => node
                .holds(kind, token)
                .await
                .map_err(|e| Error::from_redis(Operation::Inspect, kind.key(), e)),
            Servers::Quorum(quorum) => Box::pin(quorum.holds(kind, token)).await,
        }
    }

    /// A token-checked release on every node, in the background (see
    /// `Node::release_in_background`).
    pub(crate) fn release_in_background<K: Kind>(&self, kind: &K, token: &str) {
        match &self.servers {
            Servers::Single(node) => node.release_in_background(kind, token, true),
            Servers::Quorum(quorum) => quorum.release_in_background(kind, token),
        }
    }

    /// Waits for replicas to confirm a lease just taken on one node. A
    /// Redlock's nodes are independent masters: the builder refuses replica
    /// sync for one, and there is nothing to wait for.
    pub(crate) async fn replicate(&self, sync: &ReplicaSync, key: &str) -> Result<()> {
        match &self.servers {
            Servers::Single(node) => sync.confirm(node, key).await,
            Servers::Quorum(_) => Ok(()),
        }
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.servers {
            Servers::Single(node) => f.debug_tuple("Single").field(node).finish(),
            Servers::Quorum(quorum) => f.debug_tuple("Quorum").field(quorum).finish(),
        }
    }
}
