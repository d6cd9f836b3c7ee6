//! Why one node of a Redlock failed a step: part of
//! [`Error::QuorumNotReached`](crate::Error::QuorumNotReached).

use std::fmt;
use std::time::Duration;

/// One node of a Redlock that did not do what a step asked, and why. Part of
/// [`Error::QuorumNotReached`](crate::Error::QuorumNotReached).
///
/// ```
/// # fn example(err: redis_mutex::Error) {
/// use redis_mutex::{Error, NodeFailureReason};
///
/// if let Error::QuorumNotReached { failures, .. } = &err {
///     for failure in failures {
///         if let NodeFailureReason::Unreachable(source) = &failure.reason {
///             eprintln!("node {} is down: {source}", failure.node);
///         }
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct NodeFailure {
    /// The node's position in the list the lock was built from, from 0.
    pub node: usize,
    /// Why it failed.
    pub reason: NodeFailureReason,
}

/// Why one node of a Redlock failed a step.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeFailureReason {
    /// Acquire: the node holds another owner's token.
    Busy,
    /// Release, extend or inspect: the node does not hold our token (it
    /// expired there, the node restarted empty, or another owner has it).
    NotHeld,
    /// No answer within the per-node timeout. The command may still run on
    /// the node later.
    TimedOut(Duration),
    /// The node could not be reached: connection refused, reset or dropped,
    /// or the connection's own timeout.
    Unreachable(redis::RedisError),
    /// The node answered with an error (for example `WRONGTYPE`, `NOPERM` or
    /// `OOM`).
    Redis(redis::RedisError),
    /// The node has not yet said which server it is, so it does not vote: a
    /// Redlock counts each server once, and learns which server a node is
    /// from its `INFO server` (`run_id`), asked again at every step until it
    /// answers together with the nodes already known. Holds why the last
    /// question failed, when it did (`None`: it answered, and votes from the
    /// next step, or it was not asked in this step).
    Unidentified(Option<Box<NodeFailureReason>>),
    /// Acquire: the node had not answered yet when the other nodes' answers
    /// had decided the attempt (too many refused or failed for a majority to
    /// be left), so its answer was not awaited. It could not have changed
    /// the outcome. Its `SET` may still land: the release of the attempt's
    /// token, sent to it at once, runs right after it.
    NotAwaited,
}

impl NodeFailureReason {
    /// Classifies an error from the `redis` crate: network trouble is
    /// [`Unreachable`](NodeFailureReason::Unreachable), an error reply is
    /// [`Redis`](NodeFailureReason::Redis).
    pub(crate) fn from_redis(source: redis::RedisError) -> NodeFailureReason {
        if source.code().is_none()
            && (source.is_io_error()
                || source.is_timeout()
                || source.is_connection_dropped()
                || source.is_connection_refusal())
        {
            NodeFailureReason::Unreachable(source)
        } else {
            NodeFailureReason::Redis(source)
        }
    }

    /// Whether the command may still run on the node: it was not answered in
    /// time (the per-node timeout, or the connection's own response
    /// timeout), so it may wait in the socket of a stalled node.
    pub(crate) fn may_still_run(&self) -> bool {
        match self {
            NodeFailureReason::TimedOut(_) => true,
            NodeFailureReason::Unreachable(e) => e.is_timeout(),
            _ => false,
        }
    }

    /// Whether the node answered with an error (directly, or to the
    /// question that identifies it): asking again gets the same answer.
    pub(crate) fn is_error_reply(&self) -> bool {
        match self {
            NodeFailureReason::Redis(_) => true,
            NodeFailureReason::Unidentified(Some(why)) => why.is_error_reply(),
            _ => false,
        }
    }
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}: {}", self.node, self.reason)
    }
}

impl fmt::Display for NodeFailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeFailureReason::Busy => f.write_str("held by another owner"),
            NodeFailureReason::NotHeld => f.write_str("does not hold our token"),
            NodeFailureReason::TimedOut(after) => write!(f, "no answer within {after:?}"),
            NodeFailureReason::Unreachable(e) => write!(f, "unreachable ({e})"),
            NodeFailureReason::Redis(e) => write!(f, "error reply ({e})"),
            NodeFailureReason::Unidentified(None) => {
                f.write_str("not yet identified (INFO server), so not counted")
            }
            NodeFailureReason::Unidentified(Some(why)) => {
                write!(f, "not identified, so not counted: INFO server: {why}")
            }
            NodeFailureReason::NotAwaited => {
                f.write_str("not answered yet when the outcome was decided, so not awaited")
            }
        }
    }
}
