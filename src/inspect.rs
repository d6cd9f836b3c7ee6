//! Inspection and administration of a lock's key, as Redisson
//! (`isLocked`, `remainTimeToLive`, `forceUnlock`) and redis-py (`locked()`)
//! offer them: who holds it, for how long yet, and a forced unlock for
//! operators.
//!
//! Invariants:
//! - Inspection only reads (`GET`, `PTTL`); only [`Lock::force_unlock`]
//!   writes, and it is the one place in the crate that deletes a lock's key
//!   without checking a token.
//! - On a Redlock a holder is one token on a majority of the nodes; every
//!   node is asked at once, each for at most the per-node timeout.

use std::time::Duration;

use crate::error::{Error, NodeFailure, NodeFailureReason, Operation, Result};
use crate::kind::Kind;
use crate::lock::Lock;
use crate::node::Node;
use crate::quorum::majority;
use crate::rt::join_all;
use crate::scripts::Publish;
use crate::token;

/// Who holds a lock's key now, as [`Lock::holder`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockHolder {
    /// How long until the key expires; `None` when it has no expiry (a
    /// holder of another library that set none: it never frees itself).
    pub expires_in: Option<Duration>,
    /// Whether the value has this crate's token format (40 hex digits), so
    /// the holder announces its release; `false` for other libraries'
    /// tokens. A guess from the format: it cannot tell which process holds
    /// it, nor whether it is one of this process's guards.
    pub by_this_crate: bool,
}

/// One node's answer, or why there was none.
type Reply<T> = std::result::Result<T, NodeFailureReason>;

impl Lock {
    /// Who holds the lock's key now, asked of Redis (`GET`, then `PTTL`): `None`
    /// when nobody does. On a Redlock, a holder is one token on a majority
    /// of the nodes (with the shortest expiry among them); `None` when no
    /// token has a majority.
    ///
    /// This is a snapshot: the holder may release, or the key expire, right
    /// after. Never use it to decide whether to acquire; acquire instead.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// if let Some(holder) = lock.holder().await? {
    ///     println!("held, expires in {:?}", holder.expires_in);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn holder(&self) -> Result<Option<LockHolder>> {
        let nodes = self.engine().topology.nodes();
        let key = self.key();
        let seen = self.on_nodes(&nodes, |node| read_holder(node, key)).await;
        if let [only] = seen.as_slice() {
            return match only {
                Ok(found) => Ok(found.as_ref().map(holder_of)),
                Err(_) => Err(self.single_failure(seen, Operation::Inspect)),
            };
        }
        let required = majority(nodes.len());
        let answered = seen.iter().filter(|s| s.is_ok()).count();
        for (value, _) in seen.iter().flatten().flatten() {
            let on: Vec<&(Vec<u8>, Option<Duration>)> = seen
                .iter()
                .flatten()
                .flatten()
                .filter(|(other, _)| other == value)
                .collect();
            if on.len() >= required {
                let expires_in = on.iter().filter_map(|(_, ttl)| *ttl).min();
                return Ok(Some(LockHolder {
                    expires_in,
                    by_this_crate: token::has_token_format(value),
                }));
            }
        }
        if answered >= required {
            return Ok(None);
        }
        Err(self.quorum_failure(seen, Operation::Inspect, answered, required))
    }

    /// Whether anyone holds the lock's key now: [`holder`](Lock::holder)
    /// is `Some`. A snapshot, like `holder`.
    pub async fn is_locked(&self) -> Result<bool> {
        Ok(self.holder().await?.is_some())
    }

    /// **Dangerous:** deletes the lock's key whoever holds it, on every
    /// node, and wakes its waiters. `Ok(true)` when a key was deleted.
    ///
    /// For operators only, when a holder is known to be dead and its TTL
    /// too long to wait out (a foreign lock without expiry, say). If the
    /// holder is alive, it keeps running its critical section while the
    /// next owner runs theirs: mutual exclusion is broken until it notices
    /// (its next extend or release fails with
    /// [`Error::NotHeld`](crate::Error::NotHeld)). Its fence, if any, stays
    /// below the next owner's, so a fenced resource still refuses its writes.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// // The holder's host is gone for good; do not wait for its TTL.
    /// let deleted = lock.force_unlock().await?;
    /// # Ok(()) }
    /// ```
    pub async fn force_unlock(&self) -> Result<bool> {
        let nodes = self.engine().topology.nodes();
        let channel = self.engine().kind.channel().to_owned();
        let key = self.key().to_owned();
        let seen = self
            .on_nodes(&nodes, |node| {
                let (key, channel) = (key.clone(), channel.clone());
                async move {
                    let mut pipe = redis::pipe();
                    pipe.cmd("DEL").arg(&key);
                    let publish = match node.publish() {
                        Publish::Plain => "PUBLISH",
                        Publish::Sharded => "SPUBLISH",
                    };
                    pipe.cmd(publish).arg(&channel).arg("forced").ignore();
                    let (deleted,): (i64,) = pipe.query_async(&mut node.connection()).await?;
                    Ok(deleted == 1)
                }
            })
            .await;
        let deleted = seen.iter().any(|s| matches!(s, Ok(true)));
        let answered = seen.iter().filter(|s| s.is_ok()).count();
        match seen.len() {
            1 if answered == 1 => Ok(deleted),
            1 => Err(self.single_failure(seen, Operation::Release)),
            n if answered >= majority(n) => Ok(deleted),
            n => Err(self.quorum_failure(seen, Operation::Release, answered, majority(n))),
        }
    }

    /// Runs `step` on every node at once; on a Redlock each is bounded by
    /// the per-node timeout.
    async fn on_nodes<'a, T, F, Fut>(&self, nodes: &[&'a Node], step: F) -> Vec<Reply<T>>
    where
        F: Fn(&'a Node) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>> + 'a,
    {
        let timeout = self.engine().topology.node_timeout();
        join_all(nodes.iter().map(|node| {
            let sent = step(node);
            async move {
                let answer = match timeout {
                    Some(timeout) => match tokio::time::timeout(timeout, sent).await {
                        Ok(answer) => answer,
                        Err(_) => return Err(NodeFailureReason::TimedOut(timeout)),
                    },
                    None => sent.await,
                };
                answer.map_err(NodeFailureReason::from_redis)
            }
        }))
        .await
    }

    /// The error of a lock on one node whose node failed: the `redis`
    /// error, classified as everywhere else.
    fn single_failure<T>(&self, seen: Vec<Reply<T>>, operation: Operation) -> Error {
        let mut seen = seen;
        match seen.pop() {
            Some(Err(NodeFailureReason::Unreachable(e) | NodeFailureReason::Redis(e))) => {
                Error::from_redis(operation, self.key(), e)
            }
            other => self.quorum_failure(other.into_iter().collect(), operation, 0, 1),
        }
    }

    fn quorum_failure<T>(
        &self,
        seen: Vec<Reply<T>>,
        operation: Operation,
        granted: usize,
        required: usize,
    ) -> Error {
        let failures = seen
            .into_iter()
            .enumerate()
            .filter_map(|(node, s)| s.err().map(|reason| NodeFailure { node, reason }))
            .collect();
        Error::QuorumNotReached {
            operation,
            key: self.key().to_owned(),
            granted,
            required,
            failures,
        }
    }
}

/// `GET`, then `PTTL` of `key` on `node`: `None` when the key is gone.
/// Two commands, not a pipeline, so that an error reply (`WRONGTYPE`)
/// reaches the caller as itself.
async fn read_holder(
    node: &Node,
    key: &str,
) -> redis::RedisResult<Option<(Vec<u8>, Option<Duration>)>> {
    let mut connection = node.connection();
    let value: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await?;
    let Some(value) = value else {
        return Ok(None);
    };
    let ttl: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut connection)
        .await?;
    Ok(match ttl {
        -2 => None,
        ttl => Some((value, u64::try_from(ttl).ok().map(Duration::from_millis))),
    })
}

fn holder_of((value, expires_in): &(Vec<u8>, Option<Duration>)) -> LockHolder {
    LockHolder {
        expires_in: *expires_in,
        by_this_crate: token::has_token_format(value),
    }
}
