//! A 3-master Redis Cluster of real redis-servers on free ports (with one
//! replica per master when asked), for tests and benches; torn down (each
//! server killed) on drop. Formed by the library's
//! [`redis_mutex::test_server::RedisCluster`]; the slot moves and
//! failover waits tests need are here.

use std::time::{Duration, Instant};

use redis_mutex::test_server;

use super::RedisServer;

pub struct RedisCluster {
    /// The masters as created (index = the order `owner_of` reports). After
    /// a failover an entry may be a replica, and a replica a master.
    pub masters: Vec<RedisServer>,
    /// With [`start_with_replicas`](Self::start_with_replicas): one replica
    /// per master, `replicas[i]` replicating `masters[i]`.
    pub replicas: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three cluster-enabled servers, all 16384 slots split between them,
    /// waited on until every node says `cluster_state:ok`. Panics on failure.
    pub fn start() -> RedisCluster {
        RedisCluster::wrap(test_server::RedisCluster::start())
    }

    /// Three masters and one replica each. The node timeout is 1 s, so that
    /// a replica takes over about 2 s after its master died.
    pub fn start_with_replicas() -> RedisCluster {
        RedisCluster::wrap(test_server::RedisCluster::start_with_replicas())
    }

    fn wrap(cluster: Result<test_server::RedisCluster, test_server::ServerError>) -> RedisCluster {
        let (masters, replicas) = cluster.unwrap_or_else(|e| panic!("{e}")).into_servers();
        RedisCluster {
            masters: masters.into_iter().map(RedisServer::from_server).collect(),
            replicas: replicas.into_iter().map(RedisServer::from_server).collect(),
        }
    }

    /// URLs of every master, to use as seeds.
    pub fn seeds(&self) -> Vec<String> {
        self.masters.iter().map(|m| m.url()).collect()
    }

    /// Waits until `server` is a master that every reachable node agrees
    /// owns `key`'s slot (after a failover).
    pub fn wait_until_owner(&self, server: &RedisServer, key: &str, within: Duration) {
        let slot = self.slot(key).to_string();
        let deadline = Instant::now() + within;
        let port = server.port().to_string();
        loop {
            let agreed = self
                .masters
                .iter()
                .chain(&self.replicas)
                .filter(|s| s.is_running())
                .all(|s| match s.try_cmd(&["CLUSTER", "SHARDS"]) {
                    Ok(shards) => owner_port(&shards, &slot).as_deref() == Some(port.as_str()),
                    Err(_) => false,
                });
            if agreed && role(server) == "master" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "port {port} did not take over slot {slot} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `CLUSTER KEYSLOT key`.
    pub fn slot(&self, key: &str) -> u16 {
        let alive = self
            .masters
            .iter()
            .chain(&self.replicas)
            .find(|s| s.is_running())
            .expect("a node is up");
        match alive.cmd(&["CLUSTER", "KEYSLOT", key]) {
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
        self.start_migration(key, keys, to);
        self.finish_migration(key, to);
    }

    /// The first half of [`migrate_slot_of`](Self::migrate_slot_of): the
    /// slot is MIGRATING on its owner and IMPORTING on `to`, and `keys`
    /// moved. Until [`finish_migration`](Self::finish_migration), the owner
    /// answers `ASK` for keys it does not have.
    pub fn start_migration(&self, key: &str, keys: &[&str], to: usize) {
        let from = self.owner_of(key);
        assert_ne!(from, to, "already there");
        let slot = self.slot(key).to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        self.masters[to].cmd(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
        self.masters[from].cmd(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
        if keys.is_empty() {
            return;
        }
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
    }

    /// Announces `to` as the owner of `key`'s slot to every master: to `to`
    /// first, then to the old owner, then to the rest, the order Redis's
    /// `CLUSTER SETSLOT` documentation (and `redis-cli --cluster reshard`)
    /// uses. In another order there is a window where the old owner
    /// answers `MOVED` to `to` and `to`, still importing, `MOVED` back, and
    /// a command sent then fails once the client's redirects run out (the
    /// cause of a rare failure of the cluster tests that move a waiter's
    /// slot, whose waiter then acquired inside that window).
    pub fn finish_migration(&self, key: &str, to: usize) {
        let slot = self.slot(key).to_string();
        let to_id = self.node_id(to);
        let from = self.owner_of(key);
        let mut order = vec![to, from];
        order.extend((0..self.masters.len()).filter(|m| *m != to && *m != from));
        for master in order {
            self.masters[master].cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        }
    }
}

/// `ROLE`'s first word: `master` or `slave`.
fn role(server: &RedisServer) -> String {
    match server.cmd(&["ROLE"]) {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            other => panic!("ROLE answered {other:?}"),
        },
        other => panic!("ROLE answered {other:?}"),
    }
}

/// The port of the master that `CLUSTER SHARDS` says owns `slot`.
fn owner_port(shards: &redis::Value, slot: &str) -> Option<String> {
    let slot: i64 = slot.parse().ok()?;
    let redis::Value::Array(shards) = shards else {
        return None;
    };
    for shard in shards {
        let fields = map_of(shard)?;
        let slots = match fields.iter().find(|(k, _)| k == "slots")?.1 {
            redis::Value::Array(slots) => slots,
            _ => return None,
        };
        let ranges: Vec<i64> = slots
            .iter()
            .filter_map(|v| match v {
                redis::Value::Int(n) => Some(*n),
                _ => None,
            })
            .collect();
        if !ranges
            .chunks(2)
            .any(|r| r.len() == 2 && r[0] <= slot && slot <= r[1])
        {
            continue;
        }
        let nodes = match fields.iter().find(|(k, _)| k == "nodes")?.1 {
            redis::Value::Array(nodes) => nodes,
            _ => return None,
        };
        for node in nodes {
            let node = map_of(node)?;
            let field = |name: &str| {
                node.iter().find(|(k, _)| k == name).map(|(_, v)| match v {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    redis::Value::SimpleString(s) => s.clone(),
                    redis::Value::Int(n) => n.to_string(),
                    _ => String::new(),
                })
            };
            if field("role").as_deref() == Some("master")
                && field("health").as_deref() == Some("online")
            {
                return field("port");
            }
        }
    }
    None
}

/// A RESP2 flat array or a RESP3 map, as (name, value) pairs.
fn map_of(value: &redis::Value) -> Option<Vec<(String, &redis::Value)>> {
    let pairs: Vec<(&redis::Value, &redis::Value)> = match value {
        redis::Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect(),
        redis::Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    Some(
        pairs
            .into_iter()
            .filter_map(|(k, v)| match k {
                redis::Value::BulkString(b) => Some((String::from_utf8_lossy(b).into_owned(), v)),
                redis::Value::SimpleString(s) => Some((s.clone(), v)),
                _ => None,
            })
            .collect(),
    )
}

/// One key per master, named `prefix:N`, in master order.
pub fn key_per_master(cluster: &RedisCluster, prefix: &str) -> Vec<String> {
    let mut keys: Vec<Option<String>> = vec![None; cluster.masters.len()];
    for i in 0.. {
        let key = format!("{prefix}:{i}");
        keys[cluster.owner_of(&key)].get_or_insert(key);
        if keys.iter().all(Option::is_some) {
            break;
        }
    }
    keys.into_iter().flatten().collect()
}

/// `GET key` on a replica (after `READONLY`, or it answers `MOVED`).
pub fn get_on_replica(replica: &RedisServer, key: &str) -> Option<String> {
    let mut con = replica.sync_conn();
    let _: () = redis::cmd("READONLY").query(&mut con).unwrap();
    redis::cmd("GET").arg(key).query(&mut con).unwrap()
}
