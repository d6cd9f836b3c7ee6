//! A throwaway Redis Cluster (feature `test-server`): three masters (and a
//! replica each, when asked) of [`RedisServer`]s, formed by `redis-cli
//! --cluster create`. See [`test_server`](crate::test_server).
//!
//! Invariants:
//! - A cluster is handed out only once every node says `cluster_state:ok`
//!   and knows every other, and every replica's link to its master is up.
//! - `replicas()[i]` replicates `masters()[i]`.

use std::fmt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::test_redis::{RedisServer, ServerError};

/// How long a new cluster gets to settle.
const SETTLE_WITHIN: Duration = Duration::from_secs(20);
/// What each sync command to a node may take.
const NODE_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis Cluster of three throwaway masters on free ports (and one
/// replica each, with [`start_with_replicas`](RedisCluster::start_with_replicas)),
/// all 16384 slots split between the masters; every server is killed when
/// the cluster is dropped. Needs `redis-cli` (`apt-get install redis-tools`)
/// besides the server.
pub struct RedisCluster {
    masters: Vec<RedisServer>,
    replicas: Vec<RedisServer>,
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("masters", &self.masters)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl RedisCluster {
    /// Three masters, waited on until the cluster is ok.
    pub fn start() -> Result<RedisCluster, ServerError> {
        RedisCluster::create(0, "5000")
    }

    /// Three masters and a replica each. The cluster's node timeout is
    /// 1 s, so a replica takes over about 2 s after its master dies.
    pub fn start_with_replicas() -> Result<RedisCluster, ServerError> {
        RedisCluster::create(1, "1000")
    }

    fn create(
        replicas_per_master: usize,
        node_timeout_ms: &str,
    ) -> Result<RedisCluster, ServerError> {
        let servers = (0..3 * (1 + replicas_per_master))
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    node_timeout_ms,
                ])
            })
            .collect::<Result<Vec<RedisServer>, ServerError>>()?;
        let addrs: Vec<String> = servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas_per_master.to_string()])
            .arg("--cluster-yes")
            .output()
            .map_err(|e| {
                ServerError::Cluster(format!(
                    "cannot run redis-cli ({e}): install it (`apt-get install redis-tools`, `brew install redis`)"
                ))
            })?;
        if !out.status.success() {
            return Err(ServerError::Cluster(format!(
                "redis-cli --cluster create failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut masters = Vec::new();
        let mut replicas = Vec::new();
        for server in servers {
            match text(&server, &["ROLE"]).as_deref() {
                Ok("master") => masters.push(server),
                _ => replicas.push(server),
            }
        }
        let mut cluster = RedisCluster { masters, replicas };
        let deadline = Instant::now() + SETTLE_WITHIN;
        while !cluster.is_settled() {
            if Instant::now() >= deadline {
                return Err(ServerError::Cluster(format!(
                    "not ok within {SETTLE_WITHIN:?}"
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
        // replicas[i] replicates masters[i].
        let ids = cluster
            .masters
            .iter()
            .map(|m| text(m, &["CLUSTER", "MYID"]))
            .collect::<Result<Vec<String>, ServerError>>()?;
        let mut masters_of = Vec::new();
        for replica in cluster.replicas.drain(..) {
            let master = master_id_of(&replica)?;
            masters_of.push((ids.iter().position(|id| *id == master), replica));
        }
        masters_of.sort_by_key(|(index, _)| *index);
        cluster.replicas = masters_of.into_iter().map(|(_, r)| r).collect();
        Ok(cluster)
    }

    /// The masters, in the order the cluster was made (after a failover a
    /// master may have become a replica).
    pub fn masters(&self) -> &[RedisServer] {
        &self.masters
    }

    /// The replicas: `replicas()[i]` replicates `masters()[i]`.
    pub fn replicas(&self) -> &[RedisServer] {
        &self.replicas
    }

    /// The URL of every master, as seeds for
    /// [`LockBuilder::connect_cluster`](crate::LockBuilder::connect_cluster).
    pub fn seeds(&self) -> Vec<String> {
        self.masters.iter().map(RedisServer::url).collect()
    }

    /// The servers, masters and replicas, to own (each still stops on drop).
    pub fn into_servers(self) -> (Vec<RedisServer>, Vec<RedisServer>) {
        (self.masters, self.replicas)
    }

    /// Every node says `cluster_state:ok` and knows every other, and every
    /// replica's link to its master is up.
    fn is_settled(&self) -> bool {
        let nodes = self.masters.len() + self.replicas.len();
        let known = format!("cluster_known_nodes:{nodes}");
        self.masters.iter().chain(&self.replicas).all(|node| {
            text(node, &["CLUSTER", "INFO"])
                .is_ok_and(|info| info.contains("cluster_state:ok") && info.contains(&known))
        }) && self.replicas.iter().all(|replica| {
            text(replica, &["INFO", "replication"])
                .is_ok_and(|info| info.contains("master_link_status:up"))
        })
    }
}

/// A command's reply as text: a bulk or verbatim string, or the first word
/// of an array (`ROLE`).
fn text(server: &RedisServer, args: &[&str]) -> Result<String, ServerError> {
    let failed = |e: redis::RedisError| {
        ServerError::Cluster(format!("{args:?} on port {}: {e}", server.port()))
    };
    let client = server.client();
    let mut con = client
        .get_connection_with_timeout(NODE_IO_TIMEOUT)
        .map_err(failed)?;
    con.set_read_timeout(Some(NODE_IO_TIMEOUT))
        .map_err(failed)?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let value: redis::Value = cmd.query(&mut con).map_err(failed)?;
    let value = match value {
        redis::Value::Array(items) => items.into_iter().next().unwrap_or(redis::Value::Nil),
        other => other,
    };
    match value {
        redis::Value::BulkString(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        redis::Value::SimpleString(s) => Ok(s),
        redis::Value::VerbatimString { text, .. } => Ok(text),
        other => Err(ServerError::Cluster(format!(
            "{args:?} on port {} answered {other:?}",
            server.port()
        ))),
    }
}

/// The node id a replica replicates (the `myself` line of `CLUSTER NODES`).
fn master_id_of(replica: &RedisServer) -> Result<String, ServerError> {
    let nodes = text(replica, &["CLUSTER", "NODES"])?;
    nodes
        .lines()
        .find(|line| line.contains("myself"))
        .and_then(|line| line.split(' ').nth(3))
        .map(str::to_owned)
        .ok_or_else(|| {
            ServerError::Cluster(format!(
                "replica on port {} names no master",
                replica.port()
            ))
        })
}
