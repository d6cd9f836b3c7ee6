//! Counting the answers to one Redlock acquire: when they decide it, and
//! what they say then.
//!
//! Invariants:
//! - An attempt is decided as soon as a majority granted it, or as soon as
//!   so many nodes refused or failed that the others could no longer make a
//!   majority even if all of them granted it, and what kind of miss it is
//!   (busy, failing, split) can no longer change either ([`decided`]). The
//!   nodes still running then cannot change the outcome; they are
//!   [`NotAwaited`](NodeFailureReason::NotAwaited) in a miss's failures.
//! - A node whose `SET` may still land (no answer yet, or none within the
//!   per-node timeout) is [`unsettled`]: the undo of a missed attempt does
//!   not wait for it, but hands its release to the background.
//! - A miss fails at once (instead of being retried under the wait policy)
//!   only when the nodes that certainly failed leave fewer than a majority
//!   that answered or may still answer: a node not awaited counts as one
//!   that may.

use crate::error::{NodeFailure, NodeFailureReason};
use crate::kind::Grant;

/// One node's answer to a step, or why there was none.
pub(crate) type Reply<T> = std::result::Result<T, NodeFailureReason>;

fn grants(reply: &Reply<Grant>) -> bool {
    matches!(
        reply,
        Ok(Grant::Acquired { .. } | Grant::AlreadyOurs { .. })
    )
}

/// Whether the answers so far (`None`: still running) decide the attempt:
/// `required` nodes granted it; or too few are left that could, and what
/// kind of miss it is can no longer change either (busy, a failure to fail
/// at once, or a split vote to retry: see [`Tally`]), so that a lock held by
/// others is never reported as failing nodes because some answers were late.
pub(crate) fn decided(replies: &[Option<Reply<Grant>>], required: usize) -> bool {
    let rest = replies.len().saturating_sub(required);
    let (mut granted, mut busy, mut failed, mut pending) = (0, 0, 0, 0);
    for reply in replies {
        match reply {
            None => pending += 1,
            Some(reply) if grants(reply) => granted += 1,
            Some(Ok(_)) => busy += 1,
            Some(Err(_)) => failed += 1,
        }
    }
    if granted >= required {
        return true;
    }
    if granted + pending >= required {
        return false; // may still win
    }
    busy > rest || failed > rest || (busy + pending <= rest && failed + pending <= rest)
}

/// Per node, whether its `SET` may still land: no answer yet, or none in
/// time (the per-node timeout, or the connection's response timeout).
pub(crate) fn unsettled(replies: &[Option<Reply<Grant>>]) -> Vec<bool> {
    replies
        .iter()
        .map(|reply| match reply {
            None => true,
            Some(Err(reason)) => reason.may_still_run(),
            Some(Ok(_)) => false,
        })
        .collect()
}

/// What the answers to one attempt say.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) granted: usize,
    pub(crate) busy: usize,
    /// Nodes that certainly failed: an error, no answer within the per-node
    /// timeout, unreachable, not voting. Not the busy ones, nor those not
    /// awaited.
    pub(crate) failed: usize,
    /// A node said the token was ours already (an earlier send landed).
    pub(crate) earlier_send: bool,
    /// Every node that did not grant it, and why; the nodes still running
    /// when a majority had granted it are not failures and are left out.
    pub(crate) failures: Vec<NodeFailure>,
}

impl Tally {
    pub(crate) fn of(replies: Vec<Option<Reply<Grant>>>, required: usize) -> Tally {
        let won = replies.iter().flatten().filter(|r| grants(r)).count() >= required;
        let mut tally = Tally::default();
        for (node, reply) in replies.into_iter().enumerate() {
            let reason = match reply {
                // Still running when a majority had granted it: not a failure.
                None if won => continue,
                None => NodeFailureReason::NotAwaited,
                Some(Ok(Grant::Acquired { .. })) => {
                    tally.granted += 1;
                    continue;
                }
                Some(Ok(Grant::AlreadyOurs { .. })) => {
                    tally.granted += 1;
                    tally.earlier_send = true;
                    continue;
                }
                // A quorum undoes every missed attempt, marks included.
                Some(Ok(Grant::Busy { .. } | Grant::Queued)) => {
                    tally.busy += 1;
                    NodeFailureReason::Busy
                }
                Some(Err(reason)) => {
                    tally.failed += 1;
                    reason
                }
            };
            tally.failures.push(NodeFailure { node, reason });
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn granted() -> Option<Reply<Grant>> {
        Some(Ok(Grant::Acquired { fence: None }))
    }
    fn busy() -> Option<Reply<Grant>> {
        Some(Ok(Grant::Busy { named: None }))
    }
    fn timed_out() -> Option<Reply<Grant>> {
        Some(Err(NodeFailureReason::TimedOut(Duration::from_millis(50))))
    }

    #[test]
    fn decided_by_a_majority_either_way_and_not_before() {
        // 5 nodes, 3 needed.
        assert!(!decided(&[granted(), granted(), None, None, None], 3));
        assert!(decided(&[granted(), granted(), None, granted(), None], 3));
        assert!(!decided(&[busy(), timed_out(), None, None, None], 3));
        // Three busy: two left cannot make three, and it is busy whatever
        // they answer.
        assert!(decided(&[busy(), busy(), None, busy(), None], 3));
        // Three failed: a failure whatever the rest answer.
        assert!(decided(
            &[timed_out(), timed_out(), None, timed_out(), None],
            3
        ));
        // A miss, but busy or a split vote depends on the two left.
        assert!(!decided(&[busy(), timed_out(), None, busy(), None], 3));
        // Two busy, two failed: busy if the last one is busy too. (Over 5
        // nodes a split vote is only known once every node answered.)
        assert!(!decided(
            &[busy(), timed_out(), busy(), timed_out(), None],
            3
        ));
        assert!(!decided(&[granted(), granted(), busy(), busy(), None], 3));
        assert!(decided(
            &[granted(), granted(), busy(), busy(), timed_out()],
            3
        ));
    }

    #[test]
    fn a_miss_lists_the_nodes_not_awaited_and_a_win_leaves_them_out() {
        let miss = Tally::of(vec![busy(), None, busy(), timed_out(), timed_out()], 3);
        assert_eq!((miss.granted, miss.busy, miss.failed), (0, 2, 2));
        let reasons: Vec<String> = miss.failures.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                "node 0: held by another owner",
                "node 1: not answered yet when the outcome was decided, so not awaited",
                "node 2: held by another owner",
                "node 3: no answer within 50ms",
                "node 4: no answer within 50ms",
            ]
        );
        let win = Tally::of(vec![granted(), None, granted(), busy(), granted()], 3);
        assert_eq!((win.granted, win.busy, win.failed), (3, 1, 0));
        assert_eq!(win.failures.len(), 1);
        assert_eq!(
            unsettled(&[granted(), None, busy(), timed_out()]),
            [false, true, false, true]
        );
    }
}
