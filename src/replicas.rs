//! Replica sync after acquire: `WAIT` (or `WAITAOF`) on the same connection,
//! so that a failover to a replica does not lose a lock the master granted.
//!
//! Redis replicates asynchronously: a master can grant a lock, crash before
//! any replica saw the `SET`, and the promoted replica grants it again.
//! `WAIT n timeout` right after the `SET`, on the same connection, blocks
//! until `n` replicas acknowledged every write of that connection so far, or
//! the timeout passes. It narrows the window; it does not make Redis
//! strongly consistent (a replica that acknowledged can still lose the write
//! in its own crash, and failover may still pick a replica that did not).

use std::time::Duration;

use crate::error::{Error, Operation, Result};
use crate::node::Node;

/// What to wait for after each acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplicaSync {
    /// `WAIT replicas timeout`.
    Wait { replicas: u32, timeout: Duration },
    /// `WAITAOF local replicas timeout` (Redis 7.2+): the write is fsynced
    /// to the append-only file of the master (when `local`) and of
    /// `replicas` replicas.
    Aof {
        local: bool,
        replicas: u32,
        timeout: Duration,
    },
}

impl ReplicaSync {
    pub(crate) fn timeout(&self) -> Duration {
        match *self {
            ReplicaSync::Wait { timeout, .. } | ReplicaSync::Aof { timeout, .. } => timeout,
        }
    }

    /// Checks the settings against the lease: a timeout of zero would make
    /// `WAIT` block forever, and a wait as long as the lease would leave no
    /// validity.
    pub(crate) fn validate(&self, validity: Duration) -> Result<()> {
        // Whether anything is waited for, without adding (`u32::MAX`
        // replicas and the local fsync would overflow).
        let (waits_for_some, timeout) = match *self {
            ReplicaSync::Wait { replicas, timeout } => (replicas > 0, timeout),
            ReplicaSync::Aof {
                local,
                replicas,
                timeout,
            } => (local || replicas > 0, timeout),
        };
        if !waits_for_some {
            return Err(Error::invalid(
                "replicas",
                "must be at least 1 (or, for WAITAOF, the local fsync)",
            ));
        }
        if timeout < Duration::from_millis(1) {
            return Err(Error::invalid(
                "replica_timeout",
                "must be at least 1 ms (WAIT with 0 blocks forever)",
            ));
        }
        if timeout >= validity / 2 {
            return Err(Error::invalid(
                "replica_timeout",
                format!(
                    "{timeout:?} must be below half the lease's validity ({:?}), or an acquire that waits it out has little lease left",
                    validity / 2
                ),
            ));
        }
        Ok(())
    }

    /// Sends the wait on the lock's connection (the one the `SET` went on)
    /// and checks the answer. Single-node locks only: the builder refuses
    /// replica sync for a Redlock.
    pub(crate) async fn confirm(&self, node: &Node, key: &str) -> Result<()> {
        let millis = u64::try_from(self.timeout().as_millis()).unwrap_or(u64::MAX);
        let (confirmed, required, local_fsynced) = match *self {
            ReplicaSync::Wait { replicas, .. } => {
                let mut wait = redis::cmd("WAIT");
                wait.arg(replicas).arg(millis);
                let acked: u64 = node
                    .query_for_key(key, wait)
                    .await
                    .map_err(|e| Error::from_redis(Operation::Replicate, key, e))?;
                (acked, replicas, None)
            }
            ReplicaSync::Aof {
                local, replicas, ..
            } => {
                let mut wait = redis::cmd("WAITAOF");
                wait.arg(u32::from(local)).arg(replicas).arg(millis);
                let reply: redis::RedisResult<(u64, u64)> = node.query_for_key(key, wait).await;
                let (local_acked, acked) = reply.map_err(|e| {
                    if e.code() == Some("ERR")
                        && e.detail().is_some_and(|d| d.contains("unknown command"))
                    {
                        Error::UnsupportedServer {
                            needed: "`WAITAOF` (Redis 7.2 or later)",
                            source: e,
                        }
                    } else {
                        Error::from_redis(Operation::Replicate, key, e)
                    }
                })?;
                let local_ok = !local || local_acked >= 1;
                (acked, replicas, Some(local_ok).filter(|_| local))
            }
        };
        if confirmed < u64::from(required) || local_fsynced == Some(false) {
            return Err(Error::NotReplicated {
                key: key.to_owned(),
                acknowledged: u32::try_from(confirmed).unwrap_or(u32::MAX),
                required,
                local_fsynced,
                timeout: self.timeout(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_against_the_lease() {
        let validity = Duration::from_millis(1_000);
        let wait = |replicas, ms| ReplicaSync::Wait {
            replicas,
            timeout: Duration::from_millis(ms),
        };
        assert!(wait(1, 100).validate(validity).is_ok());
        let err = wait(0, 100).validate(validity).unwrap_err();
        assert!(err.to_string().contains("replicas"), "{err}");
        let err = wait(1, 0).validate(validity).unwrap_err();
        assert!(err.to_string().contains("blocks forever"), "{err}");
        let err = wait(1, 500).validate(validity).unwrap_err();
        assert!(err.to_string().contains("half"), "{err}");
        let local_only = ReplicaSync::Aof {
            local: true,
            replicas: 0,
            timeout: Duration::from_millis(100),
        };
        assert!(local_only.validate(validity).is_ok());
        let every = |local| ReplicaSync::Aof {
            local,
            replicas: u32::MAX,
            timeout: Duration::from_millis(100),
        };
        assert!(every(true).validate(validity).is_ok());
        assert!(every(false).validate(validity).is_ok());
        let nothing = ReplicaSync::Aof {
            local: false,
            replicas: 0,
            timeout: Duration::from_millis(100),
        };
        let err = nothing.validate(validity).unwrap_err();
        assert!(err.to_string().contains("replicas"), "{err}");
        let err = wait(1, u64::MAX).validate(validity).unwrap_err();
        assert!(err.to_string().contains("half"), "{err}");
    }
}
