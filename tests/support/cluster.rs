//! A 3-master Redis Cluster of real redis-servers on free ports, for tests
//! and benches; torn down (each server killed) on drop.

use std::process::Command;
use std::time::{Duration, Instant};

use super::RedisServer;

pub struct RedisCluster {
    pub masters: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three cluster-enabled servers, all 16384 slots split between them by
    /// `redis-cli --cluster create`, waited on until every node says
    /// `cluster_state:ok` and agrees on the slot map.
    pub fn start() -> RedisCluster {
        let masters: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addrs: Vec<String> = masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .arg("--cluster-yes")
            .output()
            .expect("redis-cli (from Debian's redis-tools) runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { masters };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.is_settled() {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    fn is_settled(&self) -> bool {
        self.masters.iter().all(|m| {
            let info = match m.try_cmd(&["CLUSTER", "INFO"]) {
                Ok(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                Ok(redis::Value::VerbatimString { text, .. }) => text,
                _ => return false,
            };
            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
        })
    }

    /// URLs of every master, to use as seeds.
    pub fn seeds(&self) -> Vec<String> {
        self.masters.iter().map(RedisServer::url).collect()
    }

    /// `CLUSTER KEYSLOT key`.
    pub fn slot(&self, key: &str) -> u16 {
        match self.masters[0].cmd(&["CLUSTER", "KEYSLOT", key]) {
            redis::Value::Int(slot) => slot as u16,
            other => panic!("CLUSTER KEYSLOT answered {other:?}"),
        }
    }

    /// The node id of a master (`CLUSTER MYID`).
    pub fn node_id(&self, master: usize) -> String {
        match self.masters[master].cmd(&["CLUSTER", "MYID"]) {
            redis::Value::BulkString(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("CLUSTER MYID answered {other:?}"),
        }
    }

    /// The index of the master that owns `key`'s slot, asked of master 0.
    pub fn owner_of(&self, key: &str) -> usize {
        let slot = self.slot(key).to_string();
        let ids: Vec<String> = (0..3).map(|i| self.node_id(i)).collect();
        let nodes = match self.masters[0].cmd(&["CLUSTER", "NODES"]) {
            redis::Value::BulkString(bytes) => String::from_utf8(bytes).unwrap(),
            redis::Value::VerbatimString { text, .. } => text,
            other => panic!("CLUSTER NODES answered {other:?}"),
        };
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let owns = fields.iter().skip(8).any(|range| {
                let slot: u16 = slot.parse().unwrap();
                match range.split_once('-') {
                    Some((a, b)) => {
                        a.parse::<u16>().is_ok_and(|a| a <= slot)
                            && b.parse::<u16>().is_ok_and(|b| slot <= b)
                    }
                    None => range.parse::<u16>().is_ok_and(|s| s == slot),
                }
            });
            if owns {
                return ids
                    .iter()
                    .position(|id| id == fields[0])
                    .expect("a master of ours");
            }
        }
        panic!("no master owns slot {slot}");
    }

    /// Moves `key`'s slot, and the given keys in it, from its master to
    /// `to`, the way resharding does: IMPORTING/MIGRATING, MIGRATE, then the
    /// new owner announced to every master.
    pub fn migrate_slot_of(&self, key: &str, keys: &[&str], to: usize) {
        let from = self.owner_of(key);
        assert_ne!(from, to, "already there");
        let slot = self.slot(key).to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        self.masters[to].cmd(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
        self.masters[from].cmd(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
        let port = self.masters[to].port().to_string();
        let mut migrate = vec![
            "MIGRATE",
            "127.0.0.1",
            port.as_str(),
            "",
            "0",
            "5000",
            "KEYS",
        ];
        migrate.extend_from_slice(keys);
        self.masters[from].cmd(&migrate);
        for master in &self.masters {
            master.cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        }
    }
}
