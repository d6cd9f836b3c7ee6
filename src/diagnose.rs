//! `Lock::diagnose`: the server settings that weaken locks, read on request.
//!
//! A lock on Redis is only as durable as the key that holds it. Eviction
//! deletes lock keys under memory pressure (any `maxmemory-policy` but
//! `noeviction`), a restart without persistence forgets them, and a failover
//! to an asynchronously replicated replica can hand the same lock out again.
//! None of that shows in a lock's answers, so the crate reads the settings on
//! request instead of guessing.

use std::collections::HashMap;
use std::fmt;

use redis::RedisResult;

use crate::error::{Error, Operation, Result};
use crate::lock::Lock;
use crate::node::Node;

/// What one Redis server says about the settings that matter to locks.
///
/// A field is `None` when the server would not tell: the ACL user may not
/// run `INFO` or `CONFIG GET` (a least-privilege lock user should not need
/// to), or the command is renamed away. [`weaknesses`](ServerReport::weaknesses)
/// lists each unknown setting as [`Weakness::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerReport {
    /// The node's position in the lock's list of nodes (0 for a lock on one
    /// node).
    pub node: usize,
    /// `redis_version`, e.g. `"7.0.15"`.
    pub version: Option<String>,
    /// `maxmemory` in bytes; 0 means no limit.
    pub maxmemory: Option<u64>,
    /// `maxmemory-policy`, e.g. `"noeviction"`.
    pub maxmemory_policy: Option<String>,
    /// Whether the append-only file is on (`appendonly yes`).
    pub appendonly: Option<bool>,
    /// `appendfsync`: `"always"`, `"everysec"` or `"no"`.
    pub appendfsync: Option<String>,
    /// `role` from `INFO replication`: `"master"` or `"slave"`.
    pub role: Option<String>,
    /// `connected_slaves` from `INFO replication`.
    pub connected_replicas: Option<u64>,
}

/// A server setting that can make a lock vanish or be granted twice.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Weakness {
    /// `maxmemory-policy` is not `noeviction` and a `maxmemory` is set:
    /// under memory pressure the server deletes keys, lock keys included,
    /// and another client can then take a lock that is still held.
    Eviction {
        /// The policy, e.g. `"volatile-lru"`.
        policy: String,
    },
    /// No append-only file: a restart (or crash) forgets every lock, and
    /// every fence counter.
    NoPersistence,
    /// The append-only file is not synced on every write: a crash can lose
    /// the last second (`everysec`) or more (`no`) of locks and fences.
    LossyFsync {
        /// The `appendfsync` setting.
        appendfsync: String,
    },
    /// The server is a replica: it refuses lock writes (`READONLY`), or, if
    /// writable, keeps them to itself.
    Replica,
    /// The server has replicas, copied asynchronously: a failover to one
    /// that had not yet seen a lock grants it again. See
    /// [`LockBuilder::wait_for_replicas`](crate::LockBuilder::wait_for_replicas).
    AsyncReplicas {
        /// How many replicas are connected.
        replicas: u64,
    },
    /// The server would not say (ACL, renamed command), so nothing is known
    /// about this setting.
    Unknown {
        /// The setting, e.g. `"maxmemory-policy"`.
        setting: &'static str,
    },
}

impl ServerReport {
    /// The settings of this server that weaken locks, most severe first.
    /// Empty for a single master with `noeviction` (or no `maxmemory`), AOF
    /// on and `appendfsync always`.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// for server in lock.diagnose().await? {
    ///     for weakness in server.weaknesses() {
    ///         eprintln!("redis node {}: {weakness}", server.node);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn weaknesses(&self) -> Vec<Weakness> {
        let mut found = Vec::new();
        match (&self.maxmemory_policy, self.maxmemory) {
            (Some(policy), maxmemory) if policy != "noeviction" && maxmemory != Some(0) => {
                found.push(Weakness::Eviction {
                    policy: policy.clone(),
                });
            }
            (None, _) => found.push(Weakness::Unknown {
                setting: "maxmemory-policy",
            }),
            _ => {}
        }
        match self.role.as_deref() {
            Some("slave") => found.push(Weakness::Replica),
            None => found.push(Weakness::Unknown { setting: "role" }),
            _ => {}
        }
        if let Some(replicas @ 1..) = self.connected_replicas {
            found.push(Weakness::AsyncReplicas { replicas });
        }
        match (self.appendonly, &self.appendfsync) {
            (Some(false), _) => found.push(Weakness::NoPersistence),
            (None, _) => found.push(Weakness::Unknown {
                setting: "appendonly",
            }),
            (Some(true), Some(fsync)) if fsync != "always" => found.push(Weakness::LossyFsync {
                appendfsync: fsync.clone(),
            }),
            (Some(true), None) => found.push(Weakness::Unknown {
                setting: "appendfsync",
            }),
            _ => {}
        }
        found
    }

    /// Whether the server has `WAITAOF` (Redis 7.2 and later), by its
    /// version; `None` when the version is unknown.
    pub fn has_waitaof(&self) -> Option<bool> {
        let version = self.version.as_deref()?;
        let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
        let major = parts.next().flatten()?;
        let minor = parts.next().flatten().unwrap_or(0);
        Some((major, minor) >= (7, 2))
    }
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weakness::Eviction { policy } => write!(
                f,
                "maxmemory-policy is {policy}: under memory pressure lock keys can be evicted while held; use noeviction"
            ),
            Weakness::NoPersistence => {
                f.write_str("appendonly is off: a restart forgets every lock and fence counter")
            }
            Weakness::LossyFsync { appendfsync } => write!(
                f,
                "appendfsync is {appendfsync}: a crash can lose the last locks and fences; use always where that matters"
            ),
            Weakness::Replica => {
                f.write_str("the server is a replica: locks must be taken on the master")
            }
            Weakness::AsyncReplicas { replicas } => write!(
                f,
                "{replicas} replica(s) copy locks asynchronously: a failover can grant a held lock again"
            ),
            Weakness::Unknown { setting } => {
                write!(f, "{setting} is unknown (the server would not say)")
            }
        }
    }
}

impl fmt::Display for ServerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn show<T: fmt::Display>(value: &Option<T>) -> String {
            value
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), T::to_string)
        }
        write!(
            f,
            "node {}: redis {}, maxmemory {} ({}), appendonly {}, appendfsync {}, role {}, {} replica(s)",
            self.node,
            show(&self.version),
            show(&self.maxmemory),
            show(&self.maxmemory_policy),
            show(&self.appendonly.map(|on| if on { "yes" } else { "no" })),
            show(&self.appendfsync),
            show(&self.role),
            show(&self.connected_replicas),
        )
    }
}

impl Lock {
    /// Reads the settings of the lock's server (each server of a Redlock)
    /// that weaken locks: `maxmemory-policy`, persistence, replication. See
    /// [`ServerReport::weaknesses`]. A few round trips per server; meant
    /// for start-up checks and operators, not for every acquire.
    ///
    /// It reads `INFO` and `CONFIG GET appendfsync` (falling back to
    /// `CONFIG GET` where `INFO` is denied). Settings the ACL user may not
    /// read are reported as unknown rather than failing; a server that
    /// cannot be reached fails with [`Error::Redis`] or
    /// [`Error::TimedOut`] ([`Operation::Diagnose`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// for server in lock.diagnose().await? {
    ///     println!("{server}");
    ///     assert_eq!(server.maxmemory_policy.as_deref(), Some("noeviction"));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn diagnose(&self) -> Result<Vec<ServerReport>> {
        let nodes = self.engine().topology.nodes();
        let mut reports = Vec::with_capacity(nodes.len());
        for (index, node) in nodes.into_iter().enumerate() {
            let report = report(index, node)
                .await
                .map_err(|e| Error::from_redis(Operation::Diagnose, self.key(), e))?;
            reports.push(report);
        }
        Ok(reports)
    }
}

/// `Ok(None)` for an error reply (denied, unknown command): the setting is
/// unknown. Connection trouble stays an error.
fn unless_refused<T>(result: RedisResult<T>) -> RedisResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.code().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn config_get(node: &Node, name: &str) -> RedisResult<Option<String>> {
    let reply: Option<HashMap<String, String>> = unless_refused(
        redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut node.connection())
            .await,
    )?;
    Ok(reply.and_then(|mut pairs| pairs.remove(name)))
}

async fn report(index: usize, node: &Node) -> RedisResult<ServerReport> {
    // Bytes: `INFO` need not be UTF-8 (`errorstats` names any client's
    // error replies by their first word, whatever its bytes); the fields
    // read here are plain ASCII.
    let info: Option<Vec<u8>> =
        unless_refused(redis::cmd("INFO").query_async(&mut node.connection()).await)?;
    let info = info.as_deref().map(String::from_utf8_lossy);
    let fields: HashMap<&str, &str> = info
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .collect();
    let field = |name: &str| fields.get(name).map(|value| (*value).to_owned());
    let mut report = ServerReport {
        node: index,
        version: field("redis_version"),
        maxmemory: field("maxmemory").and_then(|v| v.parse().ok()),
        maxmemory_policy: field("maxmemory_policy"),
        appendonly: field("aof_enabled").map(|v| v == "1"),
        appendfsync: None,
        role: field("role"),
        connected_replicas: field("connected_slaves").and_then(|v| v.parse().ok()),
    };
    if report.maxmemory_policy.is_none() {
        report.maxmemory_policy = config_get(node, "maxmemory-policy").await?;
    }
    if report.maxmemory.is_none() {
        report.maxmemory = config_get(node, "maxmemory")
            .await?
            .and_then(|v| v.parse().ok());
    }
    if report.appendonly.is_none() {
        report.appendonly = config_get(node, "appendonly").await?.map(|v| v == "yes");
    }
    report.appendfsync = config_get(node, "appendfsync").await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe() -> ServerReport {
        ServerReport {
            node: 0,
            version: Some("7.0.15".into()),
            maxmemory: Some(0),
            maxmemory_policy: Some("noeviction".into()),
            appendonly: Some(true),
            appendfsync: Some("always".into()),
            role: Some("master".into()),
            connected_replicas: Some(0),
        }
    }

    #[test]
    fn a_safe_server_has_no_weaknesses() {
        assert_eq!(safe().weaknesses(), []);
        // Any policy is harmless without a maxmemory.
        let unlimited = ServerReport {
            maxmemory_policy: Some("allkeys-lru".into()),
            ..safe()
        };
        assert_eq!(unlimited.weaknesses(), []);
    }

    #[test]
    fn weak_settings_are_named() {
        let weak = ServerReport {
            maxmemory: Some(1 << 20),
            maxmemory_policy: Some("volatile-lru".into()),
            appendfsync: Some("everysec".into()),
            connected_replicas: Some(2),
            ..safe()
        };
        assert_eq!(
            weak.weaknesses(),
            [
                Weakness::Eviction {
                    policy: "volatile-lru".into()
                },
                Weakness::AsyncReplicas { replicas: 2 },
                Weakness::LossyFsync {
                    appendfsync: "everysec".into()
                },
            ]
        );
        let unknown = ServerReport {
            maxmemory_policy: None,
            appendonly: None,
            role: None,
            ..safe()
        };
        assert_eq!(unknown.weaknesses().len(), 3);
        assert!(unknown.to_string().contains("unknown"));
    }

    #[test]
    fn waitaof_comes_with_7_2() {
        let with = |version: &str| ServerReport {
            version: Some(version.into()),
            ..safe()
        };
        assert_eq!(with("7.0.15").has_waitaof(), Some(false));
        assert_eq!(with("7.2.4").has_waitaof(), Some(true));
        assert_eq!(with("8.0.0").has_waitaof(), Some(true));
        assert_eq!(
            ServerReport {
                version: None,
                ..safe()
            }
            .has_waitaof(),
            None
        );
    }
}
