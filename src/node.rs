//! One Redis node (a server, or a Redis Cluster through one connection) and
//! the steps of a kind of lease on it: send a request, read its answer, and
//! release in the background.
//!
//! Invariants:
//! - Whether the node is a Redis Cluster is decided once, in [`Node::new`],
//!   from the connection's type; it decides the release's publish
//!   ([`Node::publish`]) and where keyless commands about a key go.
//! - A background release only ever deletes our own token (the kind's
//!   script checks it), so it is safe to resend: it is resent with backoff
//!   until answered, at most [`BACKGROUND_RELEASE_ATTEMPTS`] times; then the
//!   TTL ends the lease. Without a tokio runtime the TTL ends it too, and
//!   when the runtime shuts down first (the task is dropped with it);
//!   `flush_releases` waits for the task (`rt`).

use std::time::Duration;

use redis::{Cmd, RedisResult, Value};

use crate::connection::{DynConnection, LockConnection, SharedConnection};
use crate::kind::{Announce, Grant, Holder, Kind, NamedWakeUp};
use crate::retry::Doubling;
use crate::rt::spawn_release;
use crate::scripts::{Publish, Request, ScriptCall};
use crate::timeout::TimedConnection;

/// How many times a background release is sent before the task gives up
/// and leaves the key to its TTL.
pub(crate) const BACKGROUND_RELEASE_ATTEMPTS: u32 = 5;

/// The pause after the first unanswered background release; it doubles
/// after each (100 ms, 200 ms, 400 ms, 800 ms: about 1.5 s of pauses).
const BACKGROUND_RELEASE_FIRST_PAUSE: Duration = Duration::from_millis(100);

/// One Redis node.
#[derive(Clone)]
pub(crate) struct Node {
    connection: SharedConnection,
    /// The lock's own bound on each command, if set.
    command_timeout: Option<Duration>,
    /// The same connection when it is a Redis Cluster connection.
    #[cfg(feature = "cluster")]
    cluster: Option<redis::cluster_async::ClusterConnection>,
}

impl Node {
    /// A node over `connection`, each command bounded by `command_timeout`
    /// (`None`: the connection's own timeouts only). A Redis Cluster is
    /// recognised by the connection's type, so that one given to `build` is
    /// recognised too.
    pub(crate) fn new<C: LockConnection>(connection: C, command_timeout: Option<Duration>) -> Node {
        #[cfg(feature = "cluster")]
        let cluster = (&connection as &dyn std::any::Any)
            .downcast_ref::<redis::cluster_async::ClusterConnection>()
            .cloned();
        Node {
            connection: SharedConnection::new(TimedConnection::new(connection, command_timeout)),
            command_timeout,
            #[cfg(feature = "cluster")]
            cluster,
        }
    }

    /// How a release announces itself here: a Redis Cluster publishes in
    /// the key's shard (`SPUBLISH`) instead of broadcasting over its bus.
    pub(crate) fn publish(&self) -> Publish {
        #[cfg(feature = "cluster")]
        if self.cluster.is_some() {
            return Publish::Sharded;
        }
        Publish::Plain
    }

    /// The lock's own bound on each command (`None`: the connection's).
    pub(crate) fn command_timeout(&self) -> Option<Duration> {
        self.command_timeout
    }

    pub(crate) fn connection(&self) -> DynConnection {
        self.connection.get()
    }

    /// Sends `cmd`, a command that names no key but is about `key` (`WAIT`,
    /// `WAITAOF`: they count the replicas that acknowledged this
    /// connection's writes), to the node that holds `key`. On a cluster that
    /// is the master of the key's slot, where the lease's writes went; the
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
            // An error reply comes back as a value here: surfaced as the
            // server's error, not as a reply that does not parse.
            let value = cluster.clone().route_command(cmd, routing).await?;
            return redis::from_redis_value(value.extract_error()?).map_err(Into::into);
        }
        #[cfg(not(feature = "cluster"))]
        let _ = key; // One node holds every key.
        cmd.query_async(&mut self.connection()).await
    }

    /// Sends `request`; scripts by hash.
    pub(crate) async fn send(&self, request: Request) -> RedisResult<Value> {
        self.send_ref(&request).await
    }

    /// [`send`](Node::send) of a request that several nodes share (a
    /// Redlock builds its acquire once for all of them).
    pub(crate) async fn send_ref(&self, request: &Request) -> RedisResult<Value> {
        let mut connection = self.connection();
        match request {
            Request::Cmd(cmd) => cmd.query_async(&mut connection).await,
            Request::Pipeline(pipe) => pipe.query_async(&mut connection).await,
            Request::Script(call) => call.by_hash(self.publish(), &mut connection).await,
        }
    }

    /// Sends a token-checked script (release or extend): `true` when it
    /// replied 1 (done), `false` for 0 (the token no longer holds the lease).
    async fn send_checked(&self, call: ScriptCall) -> RedisResult<bool> {
        // By hash, as `send` would, without its other kinds of request.
        let reply = call.by_hash(self.publish(), &mut self.connection()).await;
        let done: i64 = reply.and_then(from_value)?;
        Ok(done == 1)
    }

    /// [`send_checked`](Node::send_checked) by the script's body (`EVAL`):
    /// one command whatever the node's script cache holds. A Redlock's undo
    /// and every background release (among them the one after a Redlock
    /// release that a node did not answer in time) send this to nodes that
    /// may be stalled or whose answers were just lost: the command waits in the socket and runs when
    /// the node wakes, where an `EVALSHA` would answer `NOSCRIPT` on a fresh
    /// node with nobody left to load the script and send it again.
    async fn send_checked_by_body(&self, call: &ScriptCall) -> RedisResult<bool> {
        let done: i64 = call
            .by_body(self.publish())
            .query_async(&mut self.connection())
            .await?;
        Ok(done == 1)
    }

    /// Acquire: one request.
    pub(crate) async fn acquire<K: Kind>(
        &self,
        kind: &K,
        token: &str,
        ttl: Duration,
    ) -> RedisResult<Grant> {
        let request = kind.acquire(token, ttl);
        let reply = self.send_ref(&request).await?;
        kind.read_acquire(reply, token)
    }

    /// Acquire by `request`, the kind's acquire of `token` built once for
    /// every node of a Redlock.
    pub(crate) async fn acquire_by<K: Kind>(
        &self,
        kind: &K,
        request: &Request,
        token: &str,
    ) -> RedisResult<Grant> {
        let reply = self.send_ref(request).await?;
        kind.read_acquire(reply, token)
    }

    /// Release, announced to waiters (to one process when `named`, see
    /// `route`): `true` when our hold was deleted.
    pub(crate) async fn release<K: Kind>(
        &self,
        kind: &K,
        token: &str,
        named: Option<&NamedWakeUp>,
    ) -> RedisResult<bool> {
        let announce = named.map_or(Announce::Everyone, Announce::Named);
        // `send_checked`'s body, inline: one layer of futures less on
        // every release.
        let call = kind.release(token, announce);
        let reply = call.by_hash(self.publish(), &mut self.connection()).await;
        let done: i64 = reply.and_then(from_value)?;
        Ok(done == 1)
    }

    /// Release by the script's body (see `send_checked_by_body`); announced
    /// unless it undoes an acquire that never became a lease (a Redlock
    /// attempt that missed its majority: announcing it would wake a waiter
    /// listening to this node into an attempt whose own undo wakes it again).
    pub(crate) async fn release_by_body<K: Kind>(
        &self,
        kind: &K,
        token: &str,
        announce: bool,
    ) -> RedisResult<bool> {
        self.send_checked_by_body(&kind.release(token, everyone_or_nobody(announce)))
            .await
    }

    /// Extend: `true` when our hold now lives `ttl`.
    pub(crate) async fn extend<K: Kind>(
        &self,
        kind: &K,
        token: &str,
        ttl: Duration,
    ) -> RedisResult<bool> {
        self.send_checked(kind.extend(token, ttl)).await
    }

    /// Inspect: whether `token` holds the lease.
    pub(crate) async fn holds<K: Kind>(&self, kind: &K, token: &str) -> RedisResult<bool> {
        let reply = self.send(kind.holds(token)).await?;
        kind.read_holds(reply, token)
    }

    /// Inspect, for a waiter: who holds the lease and until when.
    /// Who holds the lease, for a waiter: only its TTL when the busy answer
    /// named the holder (`announces`) and the kind can ask for that alone.
    pub(crate) async fn holder_after_busy<K: Kind>(&self, kind: &K, named: Option<bool>) -> Holder {
        let (Some(announces), Some(request)) = (named, kind.holder_ttl()) else {
            return self.holder(kind).await;
        };
        match self.send(request).await {
            Ok(reply) => kind.read_holder_ttl(reply, announces),
            Err(_) => Holder::Unknown,
        }
    }

    pub(crate) async fn holder<K: Kind>(&self, kind: &K) -> Holder {
        match self.send(kind.holder()).await {
            Ok(reply) => kind.read_holder(reply),
            Err(_) => Holder::Unknown,
        }
    }

    /// Releases `token` in a spawned task, resending with backoff until
    /// answered (see the module docs). `announce` when the lease may have
    /// been one that waiters wait for; not for the undo of a Redlock attempt
    /// that missed (see [`release_by_body`](Node::release_by_body)).
    pub(crate) fn release_in_background<K: Kind>(&self, kind: &K, token: &str, announce: bool) {
        let node = self.clone();
        let call = kind.release(token, everyone_or_nobody(announce));
        spawn_release(async move {
            let mut pause = Doubling::new(BACKGROUND_RELEASE_FIRST_PAUSE, Duration::MAX);
            for attempt in 1..=BACKGROUND_RELEASE_ATTEMPTS {
                match node.send_checked_by_body(&call).await {
                    // Answered: released, or not ours (any more).
                    Ok(_) => return,
                    // An error reply: the server refused it; asking again
                    // would get the same answer.
                    Err(e) if e.code().is_some() => return,
                    Err(_) if attempt < BACKGROUND_RELEASE_ATTEMPTS => {
                        tokio::time::sleep(pause.step()).await;
                    }
                    Err(_) => return,
                }
            }
        });
    }
}

fn everyone_or_nobody(announce: bool) -> Announce<'static> {
    if announce {
        Announce::Everyone
    } else {
        Announce::Nobody
    }
}

fn from_value<T: redis::FromRedisValue>(value: Value) -> RedisResult<T> {
    redis::from_redis_value(value).map_err(Into::into)
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Node")
    }
}
