//! [`FencedResource`]: a value in Redis that only accepts writes with a fence
//! greater than any it accepted before. (Where a lock's fence counter lives,
//! and why, is `keys`' rule.)
//!
//! Invariants:
//! - A write is stored only with a fence strictly greater than the last one
//!   stored, compared exactly over all of `u64`, in one script with the
//!   write itself.
//! - The last fence lives in the value's Cluster slot (`keys`).

use std::fmt;
use std::sync::{Arc, LazyLock};

use redis::ToSingleRedisArg;

use crate::connection::LockConnection;
use crate::error::{Error, Operation, Result};
use crate::keys;
use crate::node::Node;
use crate::scripts::{LeaseScript, Publish};

/// A fenced write. `KEYS[1]` is the value, `KEYS[2]` the last accepted fence;
/// `ARGV[1]` the fence (a `u64` in decimal), `ARGV[2]` the value. Stores both
/// and returns nil when the fence is strictly greater than the last accepted
/// one (or there is none); otherwise changes nothing and returns the last
/// accepted fence.
///
/// Fences are compared as decimal strings, digit by digit: exact over all of
/// `u64`, where Lua's doubles are not, and independent of the server's locale
/// (Lua compares strings with `strcoll`). A stored fence that is not a
/// decimal number (written by hand) fails the write rather than guessing.
const FENCED_SET_LUA: &str = r#"
local function greater(a, b)
    if #a ~= #b then
        return #a > #b
    end
    for i = 1, #a do
        local x, y = string.byte(a, i), string.byte(b, i)
        if x ~= y then
            return x > y
        end
    end
    return false
end
local last = redis.call("GET", KEYS[2])
if last then
    local digits = string.match(last, "^0*(%d+)$")
    if not digits then
        return redis.error_reply("ERR the last fence of a fenced resource is not a decimal number")
    end
    if not greater(ARGV[1], digits) then
        return digits
    end
end
redis.call("SET", KEYS[2], ARGV[1])
redis.call("SET", KEYS[1], ARGV[2])
return false
"#;

static FENCED_SET: LazyLock<LeaseScript> = LazyLock::new(|| LeaseScript::new(FENCED_SET_LUA));

/// A value stored in Redis that accepts a write only with a fence strictly
/// greater than the last fence it accepted: a protected resource that turns
/// away a holder whose lease has run out.
///
/// A lease can end while its holder is paused (a GC or VM pause, swapping, a
/// long `await`, a network stall); the holder then writes as if it still held
/// the lock, and no check it makes beforehand can close that gap. With
/// [`LockBuilder::fencing`](crate::LockBuilder::fencing) each acquisition
/// comes with a fence ([`LockGuard::fence`](crate::LockGuard::fence)) greater
/// than every earlier one on that key; the next holder's write raises the bar,
/// and the stale holder's write is rejected. The resource, not the lock, makes
/// the decision.
///
/// # The rule
///
/// [`set`](FencedResource::set) stores the value and the fence in one script,
/// and only if the fence is **strictly greater** than the last fence stored
/// (any fence is accepted the first time). An equal fence is rejected too: if
/// the counter ever went back, two holders could carry the same fence, and
/// only a strict rule keeps the second one out. So each fence writes at most
/// once: write the result of a critical section in one `set`, or take the
/// lock again for the next write. Fences are compared exactly over all of
/// `u64`.
///
/// Fences only mean something while the lock's counter only goes up: on one
/// Redis node, while the counter key survives (no eviction, nobody deletes
/// it or sets it lower, and `appendfsync always` if the node can crash).
/// They are **not** monotonic across a failover to an asynchronously
/// replicated replica, across several independent nodes (Redlock), or after
/// the counter is lost; see
/// [`LockBuilder::fencing`](crate::LockBuilder::fencing).
///
/// # Keys
///
/// The value lives under the key given, exactly; the last accepted fence
/// under `{key}:last-fence` (or `key:last-fence` if `key` has a hash tag), in
/// the same Cluster slot. Names with a `}` outside a hash tag are refused, as
/// for a fenced lock. Neither key gets a TTL. Give the resource a key of its
/// own: a resource under the lock's own key would overwrite the lock.
///
/// A resource elsewhere (a database row, a file store, an API) applies the
/// same rule itself, in the same atomic step as the write, for example
/// `UPDATE ... SET value = $1, fence = $2 WHERE id = $3 AND fence < $2`.
///
/// ```no_run
/// # async fn example() -> redis_mutex::Result<()> {
/// use redis_mutex::{FencedResource, FencedWrite, Lock};
///
/// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
/// let connection = client.get_connection_manager().await.unwrap();
/// let lock = Lock::builder("reports:lock").fencing(true).build(connection.clone())?;
/// let report = FencedResource::new("reports:latest", connection)?;
///
/// let guard = lock.acquire().await?;
/// let fence = guard.fence().expect("the lock was built with fencing");
/// // ... compute, maybe pause for longer than the lease ...
/// match report.set(fence, "the report").await? {
///     FencedWrite::Accepted => {}
///     FencedWrite::Rejected { last_fence } => {
///         eprintln!("lease lost: a holder with fence {last_fence} wrote after us");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FencedResource {
    inner: Arc<ResourceInner>,
}

struct ResourceInner {
    key: String,
    last_fence_key: String,
    node: Node,
}

/// What [`FencedResource::set`] did.
///
/// Not `#[non_exhaustive]`, on purpose: a write is accepted or rejected, and
/// a caller deciding what a rejection means should not need a `_` arm that
/// would silently swallow a new case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a rejected write means the lease was lost: check it"]
pub enum FencedWrite {
    /// The fence was greater than any accepted before: the value and the
    /// fence are stored.
    Accepted,
    /// A write with this fence or a greater one was accepted before, so this
    /// writer's lease has run out: nothing was changed.
    Rejected {
        /// The fence of the last accepted write.
        last_fence: u64,
    },
}

impl FencedWrite {
    /// Whether the write was stored.
    ///
    /// ```
    /// use redis_mutex::FencedWrite;
    /// assert!(FencedWrite::Accepted.is_accepted());
    /// assert!(!FencedWrite::Rejected { last_fence: 7 }.is_accepted());
    /// ```
    pub fn is_accepted(self) -> bool {
        self == FencedWrite::Accepted
    }
}

impl FencedResource {
    /// A fenced value under `key`, over `connection` (any connection a
    /// [`Lock`](crate::Lock) takes).
    ///
    /// Fails with [`Error::InvalidArgument`] for an empty key or one with a
    /// `}` outside a hash tag.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let connection = client.get_connection_manager().await.unwrap();
    /// let balance = redis_mutex::FencedResource::new("accounts:42:balance", connection)?;
    /// # Ok(()) }
    /// ```
    pub fn new(key: impl Into<String>, connection: impl LockConnection) -> Result<FencedResource> {
        let key = key.into();
        keys::check_key(&key)?;
        let last_fence_key = keys::last_fence_key(&key)?;
        Ok(FencedResource {
            inner: Arc::new(ResourceInner {
                key,
                last_fence_key,
                node: Node::new(connection, None),
            }),
        })
    }

    /// The key the value is stored under, exactly as given.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// The key that holds the fence of the last accepted write.
    ///
    /// ```
    /// # fn example(conn: redis::aio::MultiplexedConnection) -> redis_mutex::Result<()> {
    /// let plain = redis_mutex::FencedResource::new("balance", conn.clone())?;
    /// assert_eq!(plain.last_fence_key(), "{balance}:last-fence");
    /// let tagged = redis_mutex::FencedResource::new("{acct:42}:balance", conn)?;
    /// assert_eq!(tagged.last_fence_key(), "{acct:42}:balance:last-fence");
    /// # Ok(()) }
    /// ```
    pub fn last_fence_key(&self) -> &str {
        &self.inner.last_fence_key
    }

    /// Stores `value` if `fence` is strictly greater than the fence of every
    /// write accepted before, atomically (one script, one round trip).
    /// `value` is one Redis argument: `&str`, `String`, `&[u8]`, `Vec<u8>`,
    /// a number.
    ///
    /// A [`FencedWrite::Rejected`] means a holder with a fence at least as
    /// great has written: the caller's lease ran out, and its write must be
    /// treated as never having happened.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped (or fails with a timeout), the write may or
    /// may not have happened; the fence rule holds either way. Retrying with
    /// the same fence is safe: a rejection whose `last_fence` is that very
    /// fence means the first attempt was stored.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock, balance: redis_mutex::FencedResource) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// let fence = guard.fence().expect("the lock was built with fencing");
    /// if !balance.set(fence, "100").await?.is_accepted() {
    ///     eprintln!("too late: another holder has written since");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn set(&self, fence: u64, value: impl ToSingleRedisArg) -> Result<FencedWrite> {
        let inner = &*self.inner;
        let last: Option<u64> = FENCED_SET
            .call(&[&inner.key, &inner.last_fence_key])
            .arg(fence)
            .arg(value)
            .by_hash(Publish::Plain, &mut inner.node.connection())
            .await
            .and_then(|reply| redis::from_redis_value(reply).map_err(Into::into))
            .map_err(|e| self.redis_error(Operation::FencedWrite, e))?;
        Ok(match last {
            None => FencedWrite::Accepted,
            Some(last_fence) => FencedWrite::Rejected { last_fence },
        })
    }

    /// The stored value, if any: `GET key`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// ```no_run
    /// # async fn example(balance: redis_mutex::FencedResource) -> redis_mutex::Result<()> {
    /// let value: Option<Vec<u8>> = balance.get().await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self) -> Result<Option<Vec<u8>>> {
        redis::cmd("GET")
            .arg(&self.inner.key)
            .query_async(&mut self.inner.node.connection())
            .await
            .map_err(|e| self.redis_error(Operation::FencedRead, e))
    }

    /// The fence of the last accepted write, if any.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// ```no_run
    /// # async fn example(balance: redis_mutex::FencedResource) -> redis_mutex::Result<()> {
    /// if let Some(fence) = balance.last_fence().await? {
    ///     println!("last written under fence {fence}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn last_fence(&self) -> Result<Option<u64>> {
        redis::cmd("GET")
            .arg(&self.inner.last_fence_key)
            .query_async(&mut self.inner.node.connection())
            .await
            .map_err(|e| self.redis_error(Operation::FencedRead, e))
    }

    /// Every server error is a plain [`Error::Redis`] here: the lock-specific
    /// readings of `WRONGTYPE` and friends do not apply to a resource.
    fn redis_error(&self, operation: Operation, source: redis::RedisError) -> Error {
        Error::Redis {
            operation,
            key: self.inner.key.clone(),
            source,
        }
    }
}

impl fmt::Debug for FencedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FencedResource")
            .field("key", &self.inner.key)
            .field("last_fence_key", &self.inner.last_fence_key)
            .finish_non_exhaustive()
    }
}
