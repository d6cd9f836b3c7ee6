//! The connections a lock can use, and the four steps of the lease protocol
//! on one Redis node.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::{scripts, wait};

/// A connection a [`Lock`](crate::Lock) can send its commands on.
///
/// Implemented for every cheaply clonable async `redis` connection, such as
/// [`redis::aio::ConnectionManager`] (reconnects by itself: the usual choice)
/// and [`redis::aio::MultiplexedConnection`]. The lock clones the connection
/// for each command, so clones must share one underlying connection.
pub trait LockConnection: ConnectionLike + Clone + Send + Sync + 'static {}

impl<C> LockConnection for C where C: ConnectionLike + Clone + Send + Sync + 'static {}

/// One Redis node, behind a type-erased connection so that `Lock` and
/// `LockGuard` carry no type parameter.
#[derive(Clone)]
pub(crate) struct Node {
    connection: Arc<dyn CloneConnection>,
    /// The same connection when it is a Redis Cluster connection: the
    /// release announces itself with a sharded publish, and keyless commands
    /// about the lock go to its key's master.
    #[cfg(feature = "cluster")]
    cluster: Option<redis::cluster_async::ClusterConnection>,
}

/// What `SET key token NX GET PX ttl` answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SetReply {
    /// The key was free and now holds our token.
    Acquired,
    /// The key holds our token already (set by an earlier send of ours).
    AlreadyOurs,
    /// The key holds another owner's token; nothing was changed.
    HeldByOther,
}

impl Node {
    pub(crate) fn new(connection: impl LockConnection) -> Node {
        Node {
            connection: Arc::new(connection),
            #[cfg(feature = "cluster")]
            cluster: None,
        }
    }

    /// Marks the node as a Redis Cluster reached through `cluster` (the
    /// connection it was made over, before any wrapper; see [`as_cluster`]).
    #[cfg(feature = "cluster")]
    pub(crate) fn on_cluster(
        mut self,
        cluster: Option<redis::cluster_async::ClusterConnection>,
    ) -> Node {
        self.cluster = cluster;
        self
    }

    /// Whether the node is a Redis Cluster.
    fn is_cluster(&self) -> bool {
        #[cfg(feature = "cluster")]
        {
            self.cluster.is_some()
        }
        #[cfg(not(feature = "cluster"))]
        {
            false
        }
    }

    /// Sends `cmd`, a command that names no key but is about `key` (`WAIT`,
    /// `WAITAOF`: they count the replicas that acknowledged this
    /// connection's writes), to the node that holds `key`. On a cluster that
    /// is the master of the key's slot, where the lock's `SET` went; the
    /// cluster connection would send a keyless `WAIT` to every master, and
    /// one master down would fail every lock's wait.
    pub(crate) async fn query_for_key<T: redis::FromRedisValue>(
        &self,
        key: &str,
        cmd: Cmd,
    ) -> RedisResult<T> {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
            let route = Route::with_key(key, SlotAddr::Master);
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
            let value = cluster.clone().route_command(cmd, routing).await?;
            return redis::from_redis_value(value).map_err(Into::into);
        }
        #[cfg(not(feature = "cluster"))]
        let _ = key; // One node holds every key.
        cmd.query_async(&mut self.connection()).await
    }

    /// Acquire: `SET key token NX GET PX ttl`, one round trip. The `GET`
    /// option makes a key of another type answer `WRONGTYPE` instead of a
    /// silent nil that would look busy forever, and shows whether the holder
    /// is ourselves.
    pub(crate) async fn set_nx(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> RedisResult<SetReply> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(token)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(millis(ttl));
        let previous: Option<String> = cmd.query_async(&mut self.connection()).await?;
        Ok(match previous {
            None => SetReply::Acquired,
            Some(holder) if holder == token => SetReply::AlreadyOurs,
            Some(_) => SetReply::HeldByOther,
        })
    }

    /// Fenced acquire: one script that checks the lock, then `INCR`s the
    /// fence counter and sets the lock (see `scripts::FENCED_ACQUIRE`), one
    /// round trip. The fence comes with `Acquired` and `AlreadyOurs`.
    pub(crate) async fn set_nx_fenced(
        &self,
        key: &str,
        fence_key: &str,
        token: &str,
        ttl: Duration,
    ) -> RedisResult<(SetReply, Option<u64>)> {
        let reply: Option<(i64, u64)> = scripts::FENCED_ACQUIRE
            .key(key)
            .key(fence_key)
            .arg(token)
            .arg(millis(ttl))
            .invoke_async(&mut self.connection())
            .await?;
        Ok(match reply {
            None => (SetReply::HeldByOther, None),
            Some((1, fence)) => (SetReply::Acquired, Some(fence)),
            Some((2, fence)) => (SetReply::AlreadyOurs, Some(fence)),
            Some((state, _)) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "unexpected reply from the fenced acquire script",
                    format!("state {state}"),
                )));
            }
        })
    }

    /// Release: compare-and-delete, announced on the key's release channel
    /// to wake waiters. `true` when our lock was deleted.
    pub(crate) async fn release(&self, key: &str, token: &str) -> RedisResult<bool> {
        let script = if self.is_cluster() {
            &scripts::RELEASE_SHARDED
        } else {
            &scripts::RELEASE
        };
        let deleted: i64 = script
            .key(key)
            .arg(token)
            .arg(wait::release_channel(key))
            .invoke_async(&mut self.connection())
            .await?;
        Ok(deleted == 1)
    }

    /// Release by the script's body (`EVAL`) instead of its hash: one command
    /// whatever the node's script cache holds. A Redlock sends this to nodes
    /// that may be stalled: the command waits in the socket behind our `SET`
    /// and runs right after it when the node wakes, while an `EVALSHA` would
    /// answer `NOSCRIPT` on a fresh node with nobody left to load the script
    /// and send it again.
    pub(crate) async fn release_uncached(&self, key: &str, token: &str) -> RedisResult<bool> {
        self.eval_release(key, token, true).await
    }

    /// [`release_uncached`](Node::release_uncached) without the wake-up:
    /// for the undo of a Redlock attempt that missed its quorum. Its keys
    /// were never a lock, so waiters have nothing to hear; announcing them
    /// would wake a waiter listening to this node into its next attempt,
    /// whose own undo would wake it again, round after round.
    pub(crate) async fn withdraw_uncached(&self, key: &str, token: &str) -> RedisResult<bool> {
        self.eval_release(key, token, false).await
    }

    async fn eval_release(&self, key: &str, token: &str, announce: bool) -> RedisResult<bool> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(scripts::RELEASE_LUA).arg(1).arg(key).arg(token);
        if announce {
            // Without it, the script deletes and publishes nothing.
            eval.arg(wait::release_channel(key));
        }
        let deleted: i64 = eval.query_async(&mut self.connection()).await?;
        Ok(deleted == 1)
    }

    /// Extend: compare-and-`PEXPIRE`. `true` when our lock now lives `ttl`.
    pub(crate) async fn extend(&self, key: &str, token: &str, ttl: Duration) -> RedisResult<bool> {
        let extended: i64 = scripts::EXTEND
            .key(key)
            .arg(token)
            .arg(millis(ttl))
            .invoke_async(&mut self.connection())
            .await?;
        Ok(extended == 1)
    }

    /// Inspect: whether the key holds `token`.
    pub(crate) async fn holds(&self, key: &str, token: &str) -> RedisResult<bool> {
        let holder: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.connection())
            .await?;
        Ok(holder.as_deref() == Some(token))
    }

    /// Inspect, for a waiter: the holder's token and its time to live in ms
    /// (`PTTL`: -2 when the key is gone, -1 when it has no TTL), in one round
    /// trip (a pipeline of `GET` and `PTTL`).
    pub(crate) async fn holder(&self, key: &str) -> RedisResult<(Option<String>, i64)> {
        redis::pipe()
            .cmd("GET")
            .arg(key)
            .cmd("PTTL")
            .arg(key)
            .query_async(&mut self.connection())
            .await
    }

    /// Sends a token-checked release without waiting for it, when a tokio
    /// runtime is there to run it; otherwise the key expires by its TTL.
    /// Safe whatever the key holds now: it only ever deletes our own token.
    ///
    /// It is sent by the script's body (`EVAL`), one command that runs
    /// whatever the script cache holds: the connection may be the one whose
    /// answers were just lost, where an `EVALSHA` answered `NOSCRIPT` would
    /// be the last word. Without an answer (timeout, broken connection) it is
    /// sent again a few times with backoff: a repeated release is harmless,
    /// and a connection that reconnects by itself gets it through once it is
    /// back. The task gives up after [`BACKGROUND_RELEASE_ATTEMPTS`]; the TTL
    /// then ends the lock.
    pub(crate) fn release_in_background(&self, key: Arc<str>, token: String) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let node = self.clone();
            runtime.spawn(async move {
                let mut pause = BACKGROUND_RELEASE_FIRST_PAUSE;
                for attempt in 1..=BACKGROUND_RELEASE_ATTEMPTS {
                    match node.release_uncached(&key, &token).await {
                        // Answered: released, or not ours (any more).
                        Ok(_) => return,
                        // An error reply: the server refused it; asking again
                        // would get the same answer.
                        Err(e) if e.code().is_some() => return,
                        Err(_) if attempt < BACKGROUND_RELEASE_ATTEMPTS => {
                            tokio::time::sleep(pause).await;
                            pause *= 2;
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    }

    pub(crate) fn connection(&self) -> DynConnection {
        self.connection.clone_connection()
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Node")
    }
}

/// How many times a background release is sent before the task gives up
/// and leaves the key to its TTL.
pub(crate) const BACKGROUND_RELEASE_ATTEMPTS: u32 = 5;

/// The pause after the first unanswered background release; it doubles
/// after each (100 ms, 200 ms, 400 ms, 800 ms: about 1.5 s of pauses).
const BACKGROUND_RELEASE_FIRST_PAUSE: Duration = Duration::from_millis(100);

/// TTLs are validated to whole milliseconds within `MAX_TTL` before they get
/// here, so this never truncates a meaningful amount.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

/// `connection` itself when it is the redis crate's async Redis Cluster
/// connection (known by its type, so that a lock built over one with `build`
/// is recognised too).
#[cfg(feature = "cluster")]
pub(crate) fn as_cluster<C: 'static>(
    connection: &C,
) -> Option<redis::cluster_async::ClusterConnection> {
    (connection as &dyn std::any::Any)
        .downcast_ref::<redis::cluster_async::ClusterConnection>()
        .cloned()
}

/// Object-safe cloning of a connection.
trait CloneConnection: Send + Sync {
    fn clone_connection(&self) -> DynConnection;
}

impl<C: LockConnection> CloneConnection for C {
    fn clone_connection(&self) -> DynConnection {
        DynConnection(Box::new(self.clone()))
    }
}

/// A boxed connection that `redis` can send commands and scripts on.
pub(crate) struct DynConnection(Box<dyn ConnectionLike + Send>);

impl ConnectionLike for DynConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
