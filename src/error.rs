//! The one error type of the crate.

pub use crate::node_failure::{NodeFailure, NodeFailureReason};
use std::fmt;
use std::time::Duration;

/// A `Result` whose error is this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The lock operation an error happened in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Opening the connection to Redis.
    Connect,
    /// `SET key token NX GET PX ttl`, or the fenced acquire script.
    Acquire,
    /// The token-checked compare-and-delete script.
    Release,
    /// The token-checked `PEXPIRE` script.
    Extend,
    /// `GET key`, to ask Redis who holds the lock.
    Inspect,
    /// The compare-and-set script of a [`FencedResource`](crate::FencedResource).
    FencedWrite,
    /// Reading a [`FencedResource`](crate::FencedResource).
    FencedRead,
    /// Reading the server's settings for [`Lock::diagnose`](crate::Lock::diagnose).
    Diagnose,
    /// `WAIT`/`WAITAOF` after an acquire, for
    /// [`LockBuilder::wait_for_replicas`](crate::LockBuilder::wait_for_replicas).
    Replicate,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Connect => "connect",
            Operation::Acquire => "acquire",
            Operation::Release => "release",
            Operation::Extend => "extend",
            Operation::Inspect => "inspect",
            Operation::FencedWrite => "fenced write",
            Operation::FencedRead => "fenced read",
            Operation::Diagnose => "diagnose",
            Operation::Replicate => "replicate",
        })
    }
}

/// Everything that can go wrong with a lock, one case per variant.
///
/// The cases users must tell apart are distinct variants: the lock is held by
/// someone else ([`Busy`](Error::Busy)), the lock was ours but is not any more
/// ([`NotHeld`](Error::NotHeld)), Redis could not be asked
/// ([`Redis`](Error::Redis)), a Redlock step missed its majority of nodes
/// ([`QuorumNotReached`](Error::QuorumNotReached)), the key is not a lock of this format
/// ([`WrongType`](Error::WrongType)), and the caller asked for something
/// impossible ([`InvalidArgument`](Error::InvalidArgument)).
///
/// `Display` says why, the cause included, so one log line is enough;
/// [`source`](std::error::Error::source) returns the `redis` error as well,
/// for code that walks the chain (a reporter that prints the whole chain
/// shows the cause twice). Messages as they appear (`tests/error_messages.rs`
/// makes most of them on a real server):
///
/// | variant | message |
/// |---|---|
/// | `Busy` | `lock "jobs" is busy: another owner held it for the whole wait (51.95ms, 4 attempts)` |
/// | `NotHeld` | `lock "jobs" is not held any more: it expired or another owner took it` |
/// | `Lost` | `lock "jobs" was lost while the work ran, so the work was stopped` |
/// | `WaitsForItself` | `read-write lock "cfg": this task holds its read hold, so a write hold would wait for itself (upgrading a read to the write, and reading under the write, are refused: release first)` |
/// | `WrongType` | `key "jobs" holds a value of another type than this kind of lease keeps there (a lock is a string, a semaphore a sorted set; or a foreign lock format, such as a Redisson hash?): WRONGTYPE Operation against a key holding the wrong kind of value` |
/// | `PermissionDenied` | ``permission denied by the server during release of lock "jobs": the user may not run `evalsha` `` |
/// | `OutOfMemory` | `redis is out of memory (maxmemory reached) and refused the acquire of lock "jobs"; nothing was written: OOM command not allowed when used memory > 'maxmemory'.` |
/// | `NotReplicated` | `lock "jobs" was acquired, but only 0 of 1 replicas confirmed it within 100ms, so it was released` |
/// | `AuthenticationFailed` | `redis refused the credentials (wrong or missing user name or password) during connect of lock "jobs": Password authentication failed - AuthenticationFailed` |
/// | `UnsupportedServer` | ``the server does not support `WAITAOF` (Redis 7.2 or later): ERR unknown command 'WAITAOF', ...`` |
/// | `TimedOut` | `no answer from redis within 200ms during acquire of lock "jobs"` |
/// | `Redis` | `redis error during acquire of "jobs": broken pipe` |
/// | `QuorumNotReached` | `acquire of lock "jobs" missed the quorum: 1 of 3 nodes succeeded, 2 needed (node 1: no answer within 50ms, node 2: unreachable (Connection refused (os error 111)))` |
/// | `ValidityExpired` | `acquire of lock "jobs" succeeded, but only after 10.2s, when no validity was left` |
/// | `InvalidArgument` | `invalid ttl: 0ns is below the minimum of 10ms` |
/// | `BlockingInRuntime` | `blocking::Lock::acquire blocks its thread, and was called inside a tokio runtime: use the async API there (the blocking one is for threads outside any runtime)` |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another owner held the lock for the whole wait.
    #[error(
        "lock {key:?} is busy: another owner held it for the whole wait ({waited:?}, {attempts} attempts)"
    )]
    Busy {
        /// The lock's key.
        key: String,
        /// How long `acquire` waited before giving up.
        waited: Duration,
        /// How many `SET NX` attempts were made.
        attempts: u32,
    },

    /// The lock was not ours any more: it expired, or someone else deleted or
    /// took it. Nothing was changed on the server.
    #[error("lock {key:?} is not held any more: it expired or another owner took it")]
    NotHeld {
        /// The lock's key.
        key: String,
    },

    /// The lock was lost while [`Lock::run`](crate::Lock::run)'s body ran
    /// (an extend was answered "not ours", or the deadline passed without a
    /// successful extend), so the body was stopped. What the body already did
    /// is not undone.
    #[error("lock {key:?} was lost while the work ran, so the work was stopped")]
    Lost {
        /// The lock's key.
        key: String,
    },

    /// A task asked for a hold of a read-write lock that would wait for a
    /// hold it has itself: the write while it reads (an upgrade: two tasks
    /// upgrading at once would deadlock each other, as Redisson's do), or
    /// a read while it writes. Refused at once rather than waiting for
    /// ever; release the hold first (and read again what you read under
    /// it). See [`RwLock`](crate::RwLock).
    #[error(
        "read-write lock {key:?}: this task holds its {held} hold, so a {wanted} hold would wait for itself (upgrading a read to the write, and reading under the write, are refused: release first)"
    )]
    WaitsForItself {
        /// The lock's key.
        key: String,
        /// The hold the task has: `"read"` or `"write"`.
        held: &'static str,
        /// The hold it asked for: `"write"` or `"read"`.
        wanted: &'static str,
    },

    /// The key holds a value of another type than the lease keeps there (a
    /// lock is a string, a [`Semaphore`](crate::Semaphore) a sorted set), so
    /// it is another kind of lease, or a foreign lock format (for example a
    /// Redisson lock, which is a hash).
    /// Waiting would never help, so this is not reported as busy.
    #[error(
        "key {key:?} holds a value of another type than this kind of lease keeps there (a lock is a string, a semaphore a sorted set; or a foreign lock format, such as a Redisson hash?): {}", Cause(.source)
    )]
    WrongType {
        /// The lock's key.
        key: String,
        /// The server's `WRONGTYPE` reply.
        #[source]
        source: redis::RedisError,
    },

    /// The server refused a command for lack of permission (ACL), for example
    /// a user that may not run `EVALSHA`. The message says which command
    /// when the server named it, or which commands the script calls when the
    /// refusal came from inside a script. The README lists the ACL a lock
    /// user needs.
    #[error("permission denied by the server during {operation} of lock {key:?}: {}", Denied(*.operation, .command.as_deref(), .source))]
    PermissionDenied {
        /// What the crate was doing.
        operation: Operation,
        /// The lock's key.
        key: String,
        /// The command the server refused, lower case (e.g. `"evalsha"`),
        /// when it named one. `None` when a script was refused a command it
        /// calls, or access to a key.
        command: Option<String>,
        /// The server's `NOPERM` (or script permission) reply.
        #[source]
        source: redis::RedisError,
    },

    /// The server refused a write because it is out of memory: `maxmemory`
    /// is reached and the eviction policy (`noeviction`, the one to use for
    /// locks) frees nothing. Nothing was written. Release and extend still
    /// work on a full server; acquires fail until memory is freed.
    #[error(
        "redis is out of memory (maxmemory reached) and refused the {operation} of lock {key:?}; nothing was written: {}", Cause(.source)
    )]
    OutOfMemory {
        /// What the crate was doing.
        operation: Operation,
        /// The lock's key.
        key: String,
        /// The server's `OOM` reply.
        #[source]
        source: redis::RedisError,
    },

    /// The lock was acquired on the master, but fewer replicas than
    /// required confirmed the write within the timeout
    /// ([`LockBuilder::wait_for_replicas`](crate::LockBuilder::wait_for_replicas),
    /// [`wait_for_aof`](crate::LockBuilder::wait_for_aof)), so a failover
    /// could lose it. The lock was released again (token-checked); no guard
    /// was made.
    #[error(
        "lock {key:?} was acquired, but only {acknowledged} of {required} replicas confirmed it within {timeout:?}{}, so it was released",
        LocalFsync(*.local_fsynced)
    )]
    NotReplicated {
        /// The lock's key.
        key: String,
        /// How many replicas confirmed the write.
        acknowledged: u32,
        /// How many were required.
        required: u32,
        /// For `WAITAOF` with the local fsync asked for: whether the master
        /// fsynced the write to its append-only file. `None` for `WAIT`.
        local_fsynced: Option<bool>,
        /// How long the server waited for them.
        timeout: Duration,
    },

    /// The server refused the credentials: a wrong user name or password in
    /// the URL, or none where the server requires one (`NOAUTH`,
    /// `WRONGPASS`). The message never contains the password. Trying again
    /// with the same credentials will not help.
    #[error(
        "redis refused the credentials (wrong or missing user name or password) during {operation} of lock {key:?}: {}", Cause(.source)
    )]
    AuthenticationFailed {
        /// What the crate was doing: [`Operation::Connect`], or the first
        /// command on a connection that had not authenticated.
        operation: Operation,
        /// The lock's key.
        key: String,
        /// The error from the `redis` crate.
        #[source]
        source: redis::RedisError,
    },

    /// The server does not support a command the crate needs.
    #[error("the server does not support {needed}: {}", Cause(.source))]
    UnsupportedServer {
        /// What is needed, in words.
        needed: &'static str,
        /// The server's reply.
        #[source]
        source: redis::RedisError,
    },

    /// Redis did not answer in time: the lock's
    /// [command timeout](crate::LockBuilder::command_timeout) fired, or the
    /// connection's own response timeout.
    ///
    /// The command was sent and may still run. For [`Operation::Acquire`]
    /// the crate then releases the token it sent in the background, so the
    /// lock is not left held until its TTL; a timed-out extend leaves the
    /// guard's deadline where it was; a timed-out release leaves the key to
    /// expire by its TTL (or to be deleted when the release runs late).
    #[error("no answer from redis{} during {operation} of lock {key:?}", Within(*.after))]
    TimedOut {
        /// What the crate was doing.
        operation: Operation,
        /// The lock's key.
        key: String,
        /// The timeout that fired, when it was the lock's own; `None` for the
        /// connection's.
        after: Option<Duration>,
        /// The timeout error from the `redis` crate.
        #[source]
        source: redis::RedisError,
    },

    /// Redis could not be reached, or answered with an error.
    ///
    /// For [`Operation::Acquire`] the `SET` may still have reached the server;
    /// the crate then releases the token it sent in the background, so the
    /// lock is not left held until its TTL.
    #[error("redis error during {operation} of {key:?}: {}", Cause(.source))]
    Redis {
        /// What the crate was doing.
        operation: Operation,
        /// The lock's key, or the key of the
        /// [`FencedResource`](crate::FencedResource).
        key: String,
        /// The error from the `redis` crate.
        #[source]
        source: redis::RedisError,
    },

    /// A step on a Redlock (a lock over N independent nodes) did not reach a
    /// majority of the nodes, for a reason other than plain contention: some
    /// nodes timed out, were unreachable or answered with an error, and without
    /// them the majority was out of reach. `failures` says, node by node, why.
    ///
    /// For [`Operation::Acquire`], our token was then released on every node
    /// (on a node that had not answered yet, in the background). An acquire
    /// returns as soon as the nodes that failed or refused leave a majority
    /// out of reach and the slower ones could not make it busy instead:
    /// `granted` counts the nodes that had granted it by then,
    /// and the nodes still running are listed as
    /// [`NotAwaited`](NodeFailureReason::NotAwaited) (they could not have
    /// changed the outcome). A quorum missed only because other owners held
    /// the nodes is [`Busy`](Error::Busy) instead.
    #[error(
        "{operation} of lock {key:?} missed the quorum: {granted} of {} nodes succeeded, {required} needed ({})",
        .granted + .failures.len(),
        FailureList(.failures)
    )]
    QuorumNotReached {
        /// What the crate was doing.
        operation: Operation,
        /// The lock's key.
        key: String,
        /// How many nodes did what was asked: granted the lock (by the time
        /// the outcome was decided), released or extended our token, or (for
        /// [`Operation::Inspect`]) still hold it.
        granted: usize,
        /// How many were needed: a majority, N/2 + 1.
        required: usize,
        /// Every other node and why it failed, in node order.
        failures: Vec<NodeFailure>,
    },

    /// An acquire or extend succeeded (on the one node, or on a majority of a
    /// Redlock's nodes), but the answer took so long that none of the lease
    /// was left to trust: the time taken exceeded the TTL minus the
    /// clock-drift margin (for an extend, it came after the guard's
    /// deadline). For [`Operation::Acquire`] our token was released (on
    /// every node) and no guard was made; for [`Operation::Extend`] the
    /// guard's lease is lost.
    #[error(
        "{operation} of lock {key:?} succeeded, but only after {elapsed:?}, when no validity was left"
    )]
    ValidityExpired {
        /// What the crate was doing.
        operation: Operation,
        /// The lock's key.
        key: String,
        /// How long the step took, from before the first send to the last
        /// answer.
        elapsed: Duration,
    },

    /// An argument is out of its valid range. The message names the field and
    /// the bound.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The name of the argument, e.g. `"ttl"`.
        field: &'static str,
        /// What is wrong with it, including the bound.
        reason: String,
    },

    /// The operating system's random number generator failed, so no token
    /// could be made.
    #[error("the OS random number generator failed to make a lock token: {0}")]
    Random(#[source] rand::rngs::SysError),

    /// A call of the blocking API (`redis_mutex::blocking`, crate feature
    /// `blocking`) was made inside a tokio runtime: on one of its
    /// workers, in its `block_on`, in a `spawn_blocking` closure or under
    /// its `enter()` guard. Blocking there would stall the runtime's thread
    /// (tokio itself panics). Nothing was sent; use the async API there.
    #[error(
        "{call} blocks its thread, and was called inside a tokio runtime: use the async API there (the blocking one is for threads outside any runtime)"
    )]
    BlockingInRuntime {
        /// The call refused, e.g. `"blocking::Lock::acquire"`.
        call: &'static str,
    },

    /// The blocking API's own runtime could not be started (the OS refused
    /// a thread or an I/O driver).
    #[error("cannot start the runtime of the blocking API: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// Classifies an error from the `redis` crate met during `operation`.
    pub(crate) fn from_redis(operation: Operation, key: &str, source: redis::RedisError) -> Error {
        let key = key.to_owned();
        if source.code().is_none() && source.is_timeout() {
            return Error::TimedOut {
                operation,
                key,
                after: crate::timeout::command_timeout_of(&source),
                source,
            };
        }
        if source.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(source.code(), Some("NOAUTH" | "WRONGPASS"))
        {
            return Error::AuthenticationFailed {
                operation,
                key,
                source,
            };
        }
        match source.code() {
            Some("WRONGTYPE") => Error::WrongType { key, source },
            Some("OOM") => Error::OutOfMemory {
                operation,
                key,
                source,
            },
            Some("NOPERM") => Error::PermissionDenied {
                operation,
                key,
                command: source.detail().and_then(quoted_command),
                source,
            },
            // A script that calls a command the ACL user may not run fails with
            // a plain ERR whose text says so, in Redis 7.0's words or in those
            // of Redis 7.2+ and Valkey.
            Some("ERR") if source.detail().is_some_and(is_script_acl_refusal) => {
                Error::PermissionDenied {
                    operation,
                    key,
                    command: None,
                    source,
                }
            }
            Some("ERR")
                if operation == Operation::Acquire
                    && source.detail().is_some_and(|d| d.contains("syntax error")) =>
            {
                Error::UnsupportedServer {
                    needed: "`SET key token NX GET PX ttl` (Redis 7.0 or later)",
                    source,
                }
            }
            _ => Error::Redis {
                operation,
                key,
                source,
            },
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// Whether the error says the lock is held by someone else.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy { .. })
    }

    /// Whether the error says the lock was ours but is not any more:
    /// [`NotHeld`](Error::NotHeld) or [`Lost`](Error::Lost).
    pub fn is_not_held(&self) -> bool {
        matches!(self, Error::NotHeld { .. } | Error::Lost { .. })
    }

    /// Whether Redis did not answer in time ([`TimedOut`](Error::TimedOut)).
    /// The command may still have run.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::TimedOut { .. })
    }

    /// Whether trying again later may succeed: the lock was busy, or Redis
    /// could not be reached, timed out, or was in a passing state (loading
    /// its data; on a cluster, a failover or resharding in progress:
    /// `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`, `READONLY`, or a replica sync's
    /// `WAIT` answered by the master just demoted). A missed quorum is retryable when no
    /// node failed with an error reply (only busy, timed-out or unreachable
    /// nodes).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Busy { .. } | Error::ValidityExpired { .. } | Error::NotReplicated { .. } => {
                true
            }
            Error::QuorumNotReached { failures, .. } => {
                failures.iter().all(|f| !f.reason.is_error_reply())
            }
            Error::TimedOut { .. } => true,
            Error::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_timeout()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || is_transient_server_state(source)
            }
            _ => false,
        }
    }

    /// The underlying `redis` error, if there is one.
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        match self {
            Error::WrongType { source, .. }
            | Error::PermissionDenied { source, .. }
            | Error::UnsupportedServer { source, .. }
            | Error::OutOfMemory { source, .. }
            | Error::AuthenticationFailed { source, .. }
            | Error::TimedOut { source, .. }
            | Error::Redis { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The command in `... run the 'evalsha' command`, the shape of a `NOPERM`
/// reply for a refused command.
fn quoted_command(detail: &str) -> Option<String> {
    let (_, rest) = detail.split_once("run the '")?;
    let (command, _) = rest.split_once('\'')?;
    Some(command.to_owned())
}

/// Whether an `ERR` reply's detail is a script's ACL refusal: Redis 7.0
/// says "The user executing the script can't run this command or
/// subcommand" (or "can't access ..."), Redis 7.2+ and Valkey "ACL failure
/// in script: User u has no permissions to run the 'del' command".
fn is_script_acl_refusal(detail: &str) -> bool {
    detail.contains("The user executing the script can't")
        || detail.contains("ACL failure in script")
}

/// Whether a permission error's detail says a key was refused: Redis 7.0's
/// "access one of the keys" (or, in a script, "at least one of the keys"),
/// Redis 7.2+'s and Valkey's "No permissions to access a key".
fn is_key_refusal(detail: &str) -> bool {
    detail.contains("one of the keys") || detail.contains("access a key")
}

/// The reason of a permission error, in words.
/// A `redis` error as a cause in a message: an error reply as the server
/// words it (`WRONGTYPE Operation against ...`), anything else as `redis`
/// words it.
struct Cause<'a>(&'a redis::RedisError);

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.code(), self.0.detail()) {
            (Some(code), Some(detail)) => write!(f, "{code} {detail}"),
            _ => fmt::Display::fmt(self.0, f),
        }
    }
}

struct Denied<'a>(Operation, Option<&'a str>, &'a redis::RedisError);

impl fmt::Display for Denied<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Denied(operation, command, source) = *self;
        let detail = source.detail().unwrap_or("");
        if let Some(command) = command {
            return write!(f, "the user may not run `{command}`");
        }
        if is_key_refusal(detail) {
            return f.write_str(
                "the user may not access this key (check its ACL key patterns, `~...`)",
            );
        }
        if is_script_acl_refusal(detail) {
            let calls = match operation {
                Operation::Acquire => "GET, INCR and SET",
                Operation::Release => "GET and DEL",
                Operation::Extend => "GET and PEXPIRE",
                Operation::FencedWrite => "GET and SET",
                _ => "",
            };
            if calls.is_empty() {
                return f.write_str("a script calls a command the user may not run");
            }
            return write!(
                f,
                "the {operation} script calls {calls}, which the user may not all run"
            );
        }
        f.write_str(detail)
    }
}

/// Says that the master did not fsync, when it was asked to and did not.
struct LocalFsync(Option<bool>);

impl fmt::Display for LocalFsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(false) => f.write_str(" (and the master did not fsync it)"),
            _ => Ok(()),
        }
    }
}

/// Formats a timeout as ` within 200ms`, or nothing when unknown.
struct Within(Option<Duration>);

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(after) => write!(f, " within {after:?}"),
            None => f.write_str(" in time"),
        }
    }
}

/// Formats failures as `node 1: ..., node 3: ...`.
struct FailureList<'a>(&'a [NodeFailure]);

impl fmt::Display for FailureList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

/// Error replies that a server sends while it passes through a state that
/// ends by itself: loading its data, or (on a cluster) a failover or a
/// resharding in progress.
fn is_transient_server_state(error: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ) | ErrorKind::ClusterConnectionNotFound
    ) || is_wait_on_a_replica(error)
}

/// `WAIT` or `WAITAOF` sent to a node that is a replica by now: the master
/// that granted the lock was demoted in a failover (as `READONLY` for a
/// write). Redis and Valkey say so with a plain `ERR`.
fn is_wait_on_a_replica(error: &redis::RedisError) -> bool {
    error.code() == Some("ERR")
        && error
            .detail()
            .is_some_and(|detail| detail.contains("cannot be used with replica instances"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    fn server_error(kind: ServerErrorKind, code: &'static str) -> Error {
        let source = RedisError::from((ErrorKind::Server(kind), code, "detail".to_owned()));
        Error::from_redis(Operation::Acquire, "k", source)
    }

    fn reply(code: &'static str, detail: &str) -> RedisError {
        let kind = match code {
            "NOPERM" => ServerErrorKind::NoPerm,
            _ => ServerErrorKind::ResponseError,
        };
        RedisError::from((ErrorKind::Server(kind), code, detail.to_owned()))
    }

    /// Redis 7.0 and Redis 7.2+/Valkey word ACL refusals differently; each
    /// wording is a `PermissionDenied` that says the same. (tests/acl.rs
    /// checks the replies of whichever server CI runs, Redis and Valkey.)
    #[test]
    fn acl_refusals_are_permission_denied_in_every_servers_words() {
        let script = [
            "The user executing the script can't run this command or subcommand script: \
             41e6, on @user_script:1.",
            "ACL failure in script: User nodel has no permissions to run the 'del' command \
             script: on @user_script:3.",
        ];
        for detail in script {
            let err = Error::from_redis(Operation::Release, "k", reply("ERR", detail));
            assert!(
                matches!(&err, Error::PermissionDenied { command: None, .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("calls GET and DEL"), "{err}");
        }
        let key = [
            "this user has no permissions to access one of the keys used as arguments",
            "No permissions to access a key",
        ];
        for detail in key {
            let err = Error::from_redis(Operation::Acquire, "k", reply("NOPERM", detail));
            assert!(err.to_string().contains("ACL key patterns"), "{err}");
        }
        let command = [
            "this user has no permissions to run the 'evalsha' command",
            "User u has no permissions to run the 'evalsha' command",
        ];
        for detail in command {
            let err = Error::from_redis(Operation::Release, "k", reply("NOPERM", detail));
            assert!(
                matches!(&err, Error::PermissionDenied { command: Some(c), .. } if c == "evalsha"),
                "{err:?}"
            );
        }
        let other = Error::from_redis(Operation::Release, "k", reply("ERR", "something else"));
        assert!(matches!(other, Error::Redis { .. }), "{other:?}");
    }

    /// The classification only: a cluster in failover answers these while
    /// the redis crate's own retries run out.
    #[test]
    fn passing_server_states_are_retryable_and_refusals_are_not() {
        for (kind, code) in [
            (ServerErrorKind::ClusterDown, "CLUSTERDOWN"),
            (ServerErrorKind::TryAgain, "TRYAGAIN"),
            (ServerErrorKind::MasterDown, "MASTERDOWN"),
            (ServerErrorKind::BusyLoading, "LOADING"),
            (ServerErrorKind::ReadOnly, "READONLY"),
        ] {
            assert!(server_error(kind, code).is_retryable(), "{code}");
        }
        // The demoted master's answers to the acquire's `WAIT` or
        // `WAITAOF`, word for word (Redis 7.0, Valkey 9).
        for detail in [
            "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 \
             if a replica is configured to be writable (which is not the default) writes to \
             replicas are just local and are not propagated.",
            "WAIT cannot be used with replica instances. Please also note that if a replica is \
             configured to be writable (which is not the default) writes to replicas are just \
             local and are not propagated.",
            "WAITAOF cannot be used with replica instances. Please also note that writes to \
             replicas are just local and are not propagated.",
        ] {
            let demoted = Error::from_redis(Operation::Replicate, "k", reply("ERR", detail));
            assert!(demoted.is_retryable(), "{demoted:?}");
        }
        let other = Error::from_redis(Operation::Replicate, "k", reply("ERR", "something else"));
        assert!(!other.is_retryable(), "{other:?}");
        for (kind, code) in [
            (ServerErrorKind::CrossSlot, "CROSSSLOT"),
            (ServerErrorKind::NoScript, "NOSCRIPT"),
            (ServerErrorKind::ResponseError, "ERR"),
        ] {
            assert!(!server_error(kind, code).is_retryable(), "{code}");
        }
    }
}
