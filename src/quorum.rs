//! Redlock: the lease steps applied to N independent Redis masters.
//!
//! The rules are those of the Redis docs' "Distributed Locks with Redis" and
//! of its reference implementation, redlock-rb:
//!
//! - every step goes to all N nodes at once, each bounded by a per-node
//!   timeout far below the TTL, so a dead or stalled node costs at most that
//!   timeout, never the lease;
//! - a step counts when a majority (N/2 + 1) of the nodes did it;
//! - an acquire is valid for TTL - elapsed - drift, with elapsed measured
//!   from before the first send to the answer that made the majority: it
//!   returns then, without waiting for slower nodes (whose `SET`, if it
//!   lands, is part of the same hold: every release and extend goes to all
//!   nodes by token, and a dropped guard releases on all);
//! - an acquire that misses the majority, or has no validity left, releases
//!   its token on *every* node, including those that timed out or failed:
//!   their `SET` may still have landed.

use std::future::Future;
use std::time::Duration;

use redis::RedisResult;
use tokio::time::Instant;

use crate::attempt::AcquireStep;
use crate::error::{Error, NodeFailure, NodeFailureReason, Operation, Result};
use crate::identity::{Identities, ServerId, Voters};
use crate::kind::{Grant, Kind};
use crate::node::Node;
use crate::rt::{join_enough, join_until};
use crate::ttl::ClockDrift;
use crate::vote::{self, Reply, Tally};

/// The longest per-node timeout a Redlock uses unless set. The Redis docs
/// suggest 5-50 ms for a 10 s TTL; a healthy node on a LAN answers in well
/// under a millisecond, so 50 ms still rides out a short hiccup (a fork, a
/// slow disk) while a dead node costs each step at most 50 ms.
pub(crate) const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_millis(50);

/// The longest connecting waits for a node while fewer than a majority have
/// answered (the `redis` crate's own connection timeout): then it fails with
/// [`Error::QuorumNotReached`]. Once a majority answered, the rest get one
/// more per-node timeout.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The per-node timeout for a lease of `ttl` unless set: 50 ms, or a tenth
/// of the TTL if that is shorter, so that waiting for a slow node never eats
/// more than a tenth of the lease.
pub(crate) fn default_node_timeout(ttl: Duration) -> Duration {
    DEFAULT_NODE_TIMEOUT.min(ttl / 10)
}

/// Checks a Redlock's per-node timeout against its lease of `ttl`: above
/// zero, at most a tenth of the TTL, and below the validity the drift
/// margin leaves.
pub(crate) fn check_node_timeout(
    node_timeout: Duration,
    ttl: Duration,
    drift: ClockDrift,
) -> Result<()> {
    if node_timeout.is_zero() || node_timeout > ttl / 10 {
        return Err(Error::invalid(
            "node_timeout",
            format!(
                "{node_timeout:?} must be above zero and at most a tenth of the {ttl:?} TTL ({:?})",
                ttl / 10
            ),
        ));
    }
    if drift.validity(ttl) <= node_timeout {
        return Err(Error::invalid(
            "clock_drift",
            format!(
                "a margin of {:?} leaves no more validity of the {ttl:?} TTL than the per-node timeout ({node_timeout:?})",
                drift.margin(ttl)
            ),
        ));
    }
    Ok(())
}

/// How many of `nodes` make a majority.
pub(crate) fn majority(nodes: usize) -> usize {
    nodes / 2 + 1
}

/// N independent Redis masters, and the Redlock rules over them.
pub(crate) struct Quorum {
    nodes: Box<[Node]>,
    /// Which server each node is: a node votes once it is known to be a
    /// server no other node is (see `identity`).
    identities: Identities,
    required: usize,
    node_timeout: Duration,
    drift: ClockDrift,
}

impl Quorum {
    /// A quorum over `nodes`, named in errors by `labels` (one per node);
    /// the builder has checked that there is at least one and that the
    /// timeout fits the TTL. No node votes before it is identified
    /// ([`Quorum::identify`], or the first acquire).
    pub(crate) fn new(
        nodes: Vec<Node>,
        labels: Vec<String>,
        node_timeout: Duration,
        drift: ClockDrift,
    ) -> Quorum {
        Quorum {
            required: majority(nodes.len()),
            identities: Identities::new(labels),
            nodes: nodes.into(),
            node_timeout,
            drift,
        }
    }

    /// The nodes, in the order the lock was built with.
    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn node_timeout(&self) -> Duration {
        self.node_timeout
    }

    /// One identification round: `INFO server` to every node at once,
    /// each bounded by the per-node timeout (see `identity`).
    pub(crate) async fn identify(&self) -> Result<Vec<Reply<ServerId>>> {
        let answers = self.on_nodes(&Voters::All, ServerId::ask).await;
        self.identities.record(&answers)?;
        Ok(answers)
    }

    /// The identification round of connecting: it waits for every node,
    /// each for at most `cap`, but once a majority answered, for the rest
    /// only one more per-node timeout, so that a stalled node costs
    /// connecting what it costs a step. Returns how many nodes are
    /// identified, and why each of the others is not.
    pub(crate) async fn identify_connecting(
        &self,
        cap: Duration,
    ) -> Result<(usize, Vec<NodeFailure>)> {
        let started = Instant::now();
        let asked = self.nodes.iter().map(|node| async move {
            match tokio::time::timeout(cap, ServerId::ask(node)).await {
                Ok(Ok(id)) => Ok(id),
                Ok(Err(e)) => Err(NodeFailureReason::from_redis(e)),
                Err(_elapsed) => Err(NodeFailureReason::TimedOut(cap)),
            }
        });
        let answers: Vec<Reply<ServerId>> =
            join_enough(asked, Result::is_ok, self.required, self.node_timeout)
                .await
                .into_iter()
                .map(|answer| {
                    answer.unwrap_or_else(|| Err(NodeFailureReason::TimedOut(started.elapsed())))
                })
                .collect();
        self.identities.record(&answers)?;
        let voters = self.identities.voters()?;
        let failures = answers
            .into_iter()
            .enumerate()
            .filter(|(node, _)| !voters.includes(*node))
            .map(|(node, answer)| NodeFailure {
                node,
                reason: NodeFailureReason::Unidentified(answer.err().map(Box::new)),
            })
            .collect();
        Ok((voters.count(self.len()), failures))
    }

    /// The nodes that vote in an acquire: the identified ones, after a
    /// round first if too few are identified to make a majority. `true`
    /// when that round happened.
    async fn acquire_voters(&self) -> Result<(Voters, bool)> {
        let voters = self.identities.voters()?;
        if voters.count(self.len()) >= self.required {
            return Ok((voters, false));
        }
        self.identify().await?;
        Ok((self.identities.voters()?, true))
    }

    /// One acquire attempt: the kind's acquire on every node that votes.
    ///
    /// A missed attempt has already released `token` on every node when this
    /// returns, so the caller must use a fresh token for the next one: a late
    /// release of this token must never meet a later attempt's key.
    pub(crate) async fn try_acquire<K: Kind>(
        &self,
        kind: &K,
        token: &str,
        ttl: Duration,
    ) -> AcquireStep {
        let key: &str = kind.key();
        let (voters, identified_now) = match self.acquire_voters().await {
            Ok(found) => found,
            Err(error) => {
                return AcquireStep::Fail {
                    error,
                    maybe_set: false,
                };
            }
        };
        // While some node is unidentified, every step asks every node again,
        // beside the acquire: a node identified now votes from the next one.
        let learn = !identified_now && !self.identities.complete();
        // Decided once a majority granted it, or once too few are left that
        // could, unless identities are being learnt (that round waits for
        // every node anyway).
        let required = self.required;
        let decided = |replies: &[Option<Reply<Grant>>]| !learn && vote::decided(replies, required);
        // One request for every node (it is the same command).
        let request = kind.acquire(token, ttl);
        let sent_at = Instant::now();
        let acquiring = self.on_nodes_until(
            &voters,
            |node| node.acquire_by(kind, &request, token),
            decided,
        );
        // Joined with the round only while learning: on the usual path a
        // join would add a layer to every poll of every reply.
        let (mut replies, round) = if learn {
            let (replies, round) = tokio::join!(acquiring, self.identify());
            (replies, Some(round))
        } else {
            (acquiring.await, None)
        };
        let elapsed = sent_at.elapsed();
        match round {
            Some(Err(error)) => {
                self.undo(kind, token, &vote::unsettled(&replies)).await;
                return AcquireStep::Fail {
                    error,
                    maybe_set: false,
                };
            }
            Some(Ok(answers)) => explain_unidentified(&mut replies, answers),
            None => {}
        }

        let unsettled = vote::unsettled(&replies);
        let Tally {
            granted,
            busy,
            failed,
            earlier_send,
            failures,
        } = Tally::of(replies, self.required);
        let has_validity = self.drift.valid_until(sent_at, ttl) > sent_at + elapsed;
        if granted >= self.required && has_validity {
            #[cfg(feature = "tracing")]
            crate::trace::nodes_failed(key, Operation::Acquire, &failures);
            return AcquireStep::Acquired {
                sent_at,
                from_earlier_send: earlier_send,
                // Fencing is refused for a quorum when the lock is built.
                fence: None,
            };
        }

        self.undo(kind, token, &unsettled).await;

        if granted >= self.required {
            return AcquireStep::Retry {
                named: None,
                queued: false,
                failed: Some(Error::ValidityExpired {
                    operation: Operation::Acquire,
                    key: key.to_owned(),
                    elapsed,
                }),
                token_spent: true,
            };
        }
        // Other owners hold so many nodes that we could not have won even if
        // every failed node had granted it: plain contention, whatever else
        // went wrong.
        if busy > self.len() - self.required {
            return AcquireStep::Retry {
                named: None,
                queued: false,
                failed: None,
                token_spent: true,
            };
        }
        let error = Error::QuorumNotReached {
            operation: Operation::Acquire,
            key: key.to_owned(),
            granted,
            required: self.required,
            failures,
        };
        if failed > self.len() - self.required {
            // Fewer than a majority answered at all (or may still): like a
            // single Redis that is down, fail now instead of waiting out the
            // wait policy.
            AcquireStep::Fail {
                error,
                maybe_set: false,
            }
        } else {
            // A split vote (with some node failing): another try may win.
            AcquireStep::Retry {
                named: None,
                queued: false,
                failed: Some(error),
                token_spent: true,
            }
        }
    }

    /// Undoes an acquire attempt everywhere, including on nodes that did not
    /// vote or failed: their `SET` may have landed. It waits for the nodes
    /// that answered the attempt; to a node marked `unsettled` (no answer
    /// yet, or none in time) the release goes at once, in the background,
    /// and is not waited for: the attempt's `SET`, if it lands, waits in the
    /// socket in front of it, which deletes it right after. Quietly (no
    /// announce): this was never a lock.
    async fn undo<K: Kind>(&self, kind: &K, token: &str, unsettled: &[bool]) {
        for (node, _) in self.nodes.iter().zip(unsettled).filter(|(_, u)| **u) {
            node.release_in_background(kind, token, false);
        }
        let answered = Voters::Some(unsettled.iter().map(|u| !u).collect());
        let _ = self
            .on_nodes(&answered, |node| node.release_by_body(kind, token, false))
            .await;
    }

    /// Release on every node. `Ok(true)` when a majority of the voting nodes
    /// deleted our token; `Ok(false)` when a majority certainly did not hold
    /// it any more. Sent to every node, since a token-checked release is
    /// always safe; only the voters count. By hash (`EVALSHA`, what a node
    /// that answers runs fastest), and by body in the background to a node
    /// that did not answer in time.
    pub(crate) async fn release<K: Kind>(&self, kind: &K, token: &str) -> Result<bool> {
        let voters = self.identities.voters()?;
        let mut replies = self
            .on_nodes(&Voters::All, |node| node.release(kind, token, None))
            .await;
        for (node, reply) in replies.iter_mut().enumerate() {
            if reply.as_ref().is_err_and(NodeFailureReason::may_still_run) {
                // Stalled, perhaps restarted without the script: the
                // `EVALSHA` may meet `NOSCRIPT` when it wakes, with nobody
                // left to load the script. The release by body queued
                // behind it deletes our key (a late `SET` included) then.
                self.nodes[node].release_in_background(kind, token, true);
            }
            if !voters.includes(node) {
                *reply = Err(NodeFailureReason::Unidentified(None));
            }
        }
        self.tally(Operation::Release, kind.key(), replies)
    }

    /// Extend on every node: `Ok(true)` when a majority extended our token
    /// with validity left, measured from before the first send.
    pub(crate) async fn extend<K: Kind>(
        &self,
        kind: &K,
        token: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let key: &str = kind.key();
        let voters = self.identities.voters()?;
        let sent_at = Instant::now();
        let replies = self
            .on_nodes(&voters, |node| node.extend(kind, token, ttl))
            .await;
        let extended = self.tally(Operation::Extend, key, replies)?;
        if extended && self.drift.valid_until(sent_at, ttl) <= Instant::now() {
            return Err(Error::ValidityExpired {
                operation: Operation::Extend,
                key: key.to_owned(),
                elapsed: sent_at.elapsed(),
            });
        }
        Ok(extended)
    }

    /// Whether a majority of the nodes hold our token.
    pub(crate) async fn holds<K: Kind>(&self, kind: &K, token: &str) -> Result<bool> {
        let voters = self.identities.voters()?;
        let replies = self.on_nodes(&voters, |node| node.holds(kind, token)).await;
        self.tally(Operation::Inspect, kind.key(), replies)
    }

    /// Releases on every node in the background, by each node's one policy
    /// (resent until answered, bounded); where it fails, the TTL ends it.
    pub(crate) fn release_in_background<K: Kind>(&self, kind: &K, token: &str) {
        for node in self.nodes.iter() {
            node.release_in_background(kind, token, true);
        }
    }

    /// Counts a yes/no step: yes on a majority is `Ok(true)`; `Ok(false)`
    /// when the nodes that said no leave a majority out of reach even if
    /// every failed node had said yes; otherwise the failures decided, and
    /// the error lists them.
    fn tally(&self, operation: Operation, key: &str, replies: Vec<Reply<bool>>) -> Result<bool> {
        let mut granted = 0;
        let mut failed = 0;
        let mut failures = Vec::new();
        for (node, reply) in replies.into_iter().enumerate() {
            match reply {
                Ok(true) => granted += 1,
                Ok(false) => failures.push(NodeFailure {
                    node,
                    reason: NodeFailureReason::NotHeld,
                }),
                Err(reason) => {
                    failed += 1;
                    failures.push(NodeFailure { node, reason });
                }
            }
        }
        if granted >= self.required {
            #[cfg(feature = "tracing")]
            crate::trace::nodes_failed(key, operation, &failures);
            Ok(true)
        } else if granted + failed < self.required {
            Ok(false)
        } else {
            Err(Error::QuorumNotReached {
                operation,
                key: key.to_owned(),
                granted,
                required: self.required,
                failures,
            })
        }
    }

    /// Runs `step` on every node of `voters` at once, each bounded by the
    /// per-node timeout, and waits for all of them; the answers are in node
    /// order, [`NodeFailureReason::Unidentified`] for the nodes left out.
    async fn on_nodes<'a, T, F, Fut>(&'a self, voters: &Voters, step: F) -> Vec<Reply<T>>
    where
        F: Fn(&'a Node) -> Fut,
        Fut: Future<Output = RedisResult<T>> + 'a,
    {
        self.on_nodes_until(voters, step, |_| false)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// [`on_nodes`](Self::on_nodes) until `decided` says the answers so far
    /// settle the step: `None` for the nodes still running then (their
    /// futures dropped; what they sent may still land).
    async fn on_nodes_until<'a, T, F, Fut>(
        &'a self,
        voters: &Voters,
        step: F,
        decided: impl Fn(&[Option<Reply<T>>]) -> bool,
    ) -> Vec<Option<Reply<T>>>
    where
        F: Fn(&'a Node) -> Fut,
        Fut: Future<Output = RedisResult<T>> + 'a,
    {
        let timeout = self.node_timeout;
        // One deadline for the step: every node's command starts now.
        let (replies, timed_out) = join_until(
            self.nodes.iter().enumerate().map(|(index, node)| {
                let sent = voters.includes(index).then(|| step(node));
                async move {
                    match sent {
                        None => Err(NodeFailureReason::Unidentified(None)),
                        Some(sent) => sent.await.map_err(NodeFailureReason::from_redis),
                    }
                }
            }),
            decided,
            timeout,
        )
        .await;
        if !timed_out {
            return replies;
        }
        replies
            .into_iter()
            .map(|reply| reply.or(Some(Err(NodeFailureReason::TimedOut(timeout)))))
            .collect()
    }
}

/// Says, for each node that did not vote, why it is unidentified: what its
/// answer to this step's identification round was.
fn explain_unidentified<T>(replies: &mut [Option<Reply<T>>], answers: Vec<Reply<ServerId>>) {
    for (reply, answer) in replies.iter_mut().zip(answers) {
        if let (Some(Err(NodeFailureReason::Unidentified(why))), Err(failed)) =
            (&mut *reply, answer)
        {
            *why = Some(Box::new(failed));
        }
    }
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("nodes", &self.len())
            .field("required", &self.required)
            .field("node_timeout", &self.node_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_is_more_than_half_for_odd_and_even_n() {
        let expected = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)];
        for (nodes, required) in expected {
            assert_eq!(majority(nodes), required, "N = {nodes}");
        }
    }

    #[test]
    fn the_default_node_timeout_is_50_ms_or_a_tenth_of_the_ttl() {
        assert_eq!(
            default_node_timeout(Duration::from_secs(30)),
            Duration::from_millis(50)
        );
        assert_eq!(
            default_node_timeout(Duration::from_millis(200)),
            Duration::from_millis(20)
        );
    }

    fn quorum_of(nodes: usize) -> Quorum {
        let nodes: Vec<Node> = (0..nodes)
            .map(|_| {
                let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
                Node::new(
                    redis::aio::ConnectionManager::new_lazy_with_config(
                        client,
                        redis::aio::ConnectionManagerConfig::new(),
                    )
                    .unwrap(),
                    None,
                )
            })
            .collect();
        let labels = (0..nodes.len()).map(|i| format!("node {i}")).collect();
        Quorum::new(
            nodes,
            labels,
            Duration::from_millis(10),
            ClockDrift::DEFAULT,
        )
    }

    fn timed_out() -> Reply<bool> {
        Err(NodeFailureReason::TimedOut(Duration::from_millis(10)))
    }

    #[tokio::test]
    async fn tally_tells_held_from_not_held_from_unknown() {
        let quorum = quorum_of(5);
        let tally = |replies| quorum.tally(Operation::Release, "k", replies);
        // A majority said yes, whatever the rest did.
        assert!(tally(vec![Ok(true), Ok(true), Ok(true), timed_out(), Ok(false)]).unwrap());
        // A majority said no: certain, even with a failure.
        assert!(!tally(vec![Ok(true), Ok(false), Ok(false), Ok(false), timed_out()]).unwrap());
        // Two yes, two failed: the failed ones could have made the majority.
        let open = tally(vec![
            Ok(true),
            Ok(true),
            Ok(false),
            timed_out(),
            timed_out(),
        ]);
        assert!(
            matches!(
                &open,
                Err(Error::QuorumNotReached { granted: 2, required: 3, failures, .. })
                    if failures.iter().map(|f| f.node).eq([2, 3, 4])
            ),
            "{open:?}"
        );
    }
}
