//! Which server each Redlock node is, as the servers themselves say
//! (`INFO server`'s `run_id`), so that one server reached twice (two names
//! for one host, two URLs for one port, a connection and its clone) is
//! never counted as two votes.
//!
//! Counting one server twice breaks the Redlock: with A holding the lock on
//! a majority that includes that server twice, the server restarted empty
//! gives B a "majority" too, and both hold the lock.
//!
//! Invariants:
//! - A node votes (its acquire, extend, release and inspect count) only once
//!   it is *identified*: it reported its run_ids in a round in which every
//!   node identified before it reported too. So all identified nodes were
//!   seen to be distinct processes at one moment, and a server restarted
//!   (new run_id) between two answers cannot pass as two servers.
//! - Two nodes that report a common run_id in one round are one server: the
//!   lock is refused for good, every later step failing with the same
//!   [`Error::InvalidArgument`] naming both nodes.
//! - Rounds happen only while some node is unidentified (a node that was
//!   down when the lock was built, or every node of `build_quorum` before
//!   its first acquire); after that the table is read with one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::{RedisResult, Value};

use crate::error::{Error, NodeFailureReason, Result};
use crate::node::Node;

/// What a server says it is: its `run_id` (random per process start). A
/// node over a Redis Cluster connection reports the run_id of every node
/// `INFO` reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerId(Box<[String]>);

impl ServerId {
    /// Asks `node` (`INFO server`).
    pub(crate) async fn ask(node: &Node) -> RedisResult<ServerId> {
        let reply: Value = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut node.connection())
            .await?;
        ServerId::from_info(&reply).ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Parse, "INFO server reported no run_id"))
        })
    }

    /// The run_ids in an `INFO` reply (one text, or one per node as a map).
    fn from_info(reply: &Value) -> Option<ServerId> {
        let mut ids = Vec::new();
        collect_run_ids(reply, &mut ids);
        ids.sort();
        ids.dedup();
        (!ids.is_empty()).then(|| ServerId(ids.into()))
    }

    fn shared_with(&self, other: &ServerId) -> Option<&str> {
        self.0
            .iter()
            .find(|id| other.0.contains(id))
            .map(String::as_str)
    }
}

fn collect_run_ids(reply: &Value, ids: &mut Vec<String>) {
    match reply {
        Value::BulkString(bytes) => collect_from_text(&String::from_utf8_lossy(bytes), ids),
        Value::SimpleString(text) => collect_from_text(text, ids),
        Value::VerbatimString { text, .. } => collect_from_text(text, ids),
        Value::Map(pairs) => pairs.iter().for_each(|(_, v)| collect_run_ids(v, ids)),
        Value::Array(items) => items.iter().for_each(|v| collect_run_ids(v, ids)),
        _ => {}
    }
}

fn collect_from_text(text: &str, ids: &mut Vec<String>) {
    ids.extend(
        text.lines()
            .filter_map(|line| line.trim_end().strip_prefix("run_id:"))
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
    );
}

/// The identities of a Redlock's nodes, learned in rounds.
pub(crate) struct Identities {
    /// How errors name each node: its address when known.
    labels: Box<[String]>,
    table: Mutex<Table>,
    /// Set once every node is identified: nothing more to learn.
    complete: AtomicBool,
}

#[derive(Default)]
struct Table {
    ids: Vec<Option<ServerId>>,
    /// Set when two nodes turned out to be one server.
    conflict: Option<String>,
}

/// Which nodes may vote in a step.
#[derive(Clone, Debug)]
pub(crate) enum Voters {
    All,
    /// Only the nodes marked `true`.
    Some(Vec<bool>),
}

impl Voters {
    pub(crate) fn includes(&self, node: usize) -> bool {
        match self {
            Voters::All => true,
            Voters::Some(mask) => mask.get(node).copied().unwrap_or(false),
        }
    }

    pub(crate) fn count(&self, nodes: usize) -> usize {
        (0..nodes).filter(|n| self.includes(*n)).count()
    }
}

impl Identities {
    /// A table for nodes named by `labels` (one per node), none identified.
    pub(crate) fn new(labels: Vec<String>) -> Identities {
        let table = Table {
            ids: vec![None; labels.len()],
            conflict: None,
        };
        Identities {
            labels: labels.into(),
            table: Mutex::new(table),
            complete: AtomicBool::new(false),
        }
    }

    /// The nodes that may vote now; the refusal if two nodes were found to
    /// be one server.
    pub(crate) fn voters(&self) -> Result<Voters> {
        if self.complete.load(Ordering::Acquire) {
            return Ok(Voters::All);
        }
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(conflict) = &table.conflict {
            return Err(Error::invalid("nodes", conflict.clone()));
        }
        Ok(Voters::Some(
            table.ids.iter().map(Option::is_some).collect(),
        ))
    }

    /// Whether a round has anything left to learn.
    pub(crate) fn complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Records one round's answers (in node order): identifies the nodes
    /// that answered if every node identified before answered too, and
    /// refuses the lock if two answers (or an answer and a node identified
    /// earlier) share a run_id.
    pub(crate) fn record(
        &self,
        answers: &[std::result::Result<ServerId, NodeFailureReason>],
    ) -> Result<()> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(conflict) = &table.conflict {
            return Err(Error::invalid("nodes", conflict.clone()));
        }
        // What each node is now: this round's answer, else what it said last.
        let now: Vec<Option<&ServerId>> = table
            .ids
            .iter()
            .zip(answers)
            .map(|(known, answer)| answer.as_ref().ok().or(known.as_ref()))
            .collect();
        for (i, a) in now.iter().enumerate() {
            for (j, b) in now.iter().enumerate().skip(i + 1) {
                if let (Some(a), Some(b)) = (a, b)
                    && let Some(run_id) = a.shared_with(b)
                {
                    let conflict = format!(
                        "{} and {} are one Redis server (both report run_id {}...); a Redlock needs independent servers, or one server would count as two votes",
                        self.labels[i],
                        self.labels[j],
                        run_id.get(..8).unwrap_or(run_id),
                    );
                    table.conflict = Some(conflict.clone());
                    return Err(Error::invalid("nodes", conflict));
                }
            }
        }
        let all_identified_answered = table
            .ids
            .iter()
            .zip(answers)
            .all(|(known, answer)| known.is_none() || answer.is_ok());
        if all_identified_answered {
            for (known, answer) in table.ids.iter_mut().zip(answers) {
                if let Ok(id) = answer {
                    *known = Some(id.clone());
                }
            }
        }
        if table.ids.iter().all(Option::is_some) {
            self.complete.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("complete", &self.complete())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(run_id: &str) -> std::result::Result<ServerId, NodeFailureReason> {
        Ok(ServerId(vec![run_id.to_owned()].into()))
    }

    fn silent() -> std::result::Result<ServerId, NodeFailureReason> {
        Err(NodeFailureReason::TimedOut(
            std::time::Duration::from_millis(5),
        ))
    }

    fn table(n: usize) -> Identities {
        Identities::new((0..n).map(|i| format!("node {i}")).collect())
    }

    #[test]
    fn info_replies_give_their_run_ids() {
        let text = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:6379\r\n";
        let one = Value::BulkString(text.as_bytes().to_vec());
        assert_eq!(
            ServerId::from_info(&one),
            Some(ServerId(vec!["abc123".to_owned()].into()))
        );
        let cluster = Value::Map(vec![
            (
                Value::SimpleString("a:1".into()),
                Value::SimpleString("run_id:zz\n".into()),
            ),
            (
                Value::SimpleString("b:2".into()),
                Value::SimpleString("run_id:yy\n".into()),
            ),
        ]);
        assert_eq!(
            ServerId::from_info(&cluster),
            Some(ServerId(vec!["yy".to_owned(), "zz".to_owned()].into()))
        );
        assert_eq!(ServerId::from_info(&Value::Nil), None);
    }

    #[test]
    fn one_run_id_on_two_nodes_refuses_the_lock_for_good() {
        let ids = table(3);
        let err = ids.record(&[id("a"), id("a"), id("b")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("node 0 and node 1 are one Redis server"),
            "{text}"
        );
        // Refused for good, whatever later rounds say.
        assert!(ids.voters().is_err());
        assert!(ids.record(&[id("x"), id("y"), id("z")]).is_err());
    }

    #[test]
    fn a_node_is_identified_only_with_every_node_identified_before_it() {
        let ids = table(3);
        ids.record(&[id("a"), silent(), id("c")]).unwrap();
        assert!(matches!(ids.voters().unwrap(), Voters::Some(m) if m == [true, false, true]));
        // Node 1 answers while node 0 is silent: node 0 may have restarted
        // into node 1's run_id, so node 1 must wait for a round with node 0.
        ids.record(&[silent(), id("b"), id("c")]).unwrap();
        assert!(matches!(ids.voters().unwrap(), Voters::Some(m) if m == [true, false, true]));
        // Node 0 restarted, and node 1 is the same server: caught.
        assert!(ids.record(&[id("b2"), id("b2"), id("c")]).is_err());
    }

    #[test]
    fn the_table_is_complete_once_every_node_answered() {
        let ids = table(2);
        ids.record(&[silent(), id("b")]).unwrap();
        assert!(!ids.complete());
        ids.record(&[id("a"), id("b")]).unwrap();
        assert!(ids.complete());
        assert!(matches!(ids.voters().unwrap(), Voters::All));
    }
}
