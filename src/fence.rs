//! Fencing: where a lock's fence counter lives, and [`FencedResource`], a
//! value in Redis that only accepts writes with a fence greater than any it
//! accepted before.
//!
//! # Where the counter lives
//!
//! The counter of a lock on `key` is `{key}:fence`, or `key:fence` when `key`
//! already has a hash tag, so that the lock and its counter are in one Redis
//! Cluster slot and one script can touch both. Redis Cluster hashes only the
//! *hash tag* of a key when it has one: the bytes between the first `{` and the
//! first `}` after it, if there are any. Otherwise it hashes the whole key.
//!
//! - `key` has a hash tag: `key:fence` has the same first `{` and the same
//!   first `}` after it, so the same tag. Same slot.
//! - `key` has no hash tag and no `}`: in `{key}:fence` the first `}` is the
//!   one added, so the tag is `key`, which is what Cluster hashes for `key`.
//!   Same slot.
//! - `key` has no hash tag but has a `}` (`a}b`, `}x`, `x{}y}`, `{}`): any key
//!   that hashes the whole of `key` would need `key` as its tag, which cannot
//!   contain a `}`, or be `key` itself. No counter key can share the slot, so
//!   such names are refused when fencing is on.

use std::fmt;
use std::sync::Arc;

use redis::ToSingleRedisArg;

use crate::connection::{LockConnection, Node};
use crate::error::{Error, Operation, Result};
use crate::scripts;

/// The suffix of a lock's fence counter key.
const FENCE_SUFFIX: &str = ":fence";

/// The suffix of the key where a [`FencedResource`] keeps the last fence it
/// accepted. Not `:fence`, so that a resource named like a lock never shares
/// the lock's counter.
const LAST_FENCE_SUFFIX: &str = ":last-fence";

/// The non-empty hash tag of `key`, if it has one: the bytes between the
/// first `{` and the first `}` after it, as in `keyHashSlot` in Redis's
/// `cluster.c`. Redis Cluster hashes the tag when there is one, otherwise the
/// whole key.
pub(crate) fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let after = &key[open + 1..];
    let close = after.find('}')?;
    (close > 0).then(|| &after[..close])
}

/// The name of a key that lives in the same Cluster slot as `key`:
/// `{key}suffix`, or `keysuffix` when `key` has a hash tag. `suffix` has no
/// braces. Fails for the names that no such key exists for (see the module
/// docs).
fn companion_key(key: &str, suffix: &str) -> Result<String> {
    if hash_tag(key).is_some() {
        return Ok(format!("{key}{suffix}"));
    }
    if key.contains('}') {
        return Err(Error::invalid(
            "key",
            "with fencing, a key must not contain '}' outside a hash tag (as in \"a}b\" or \
             \"x{}y}\"): Redis Cluster would hash the whole key, and no fence key could share \
             its slot; use a hash tag such as \"{orders}:lock\" or a name without '}'",
        ));
    }
    Ok(format!("{{{key}}}{suffix}"))
}

/// The fence counter key of a lock on `key`.
pub(crate) fn fence_key(key: &str) -> Result<String> {
    companion_key(key, FENCE_SUFFIX)
}

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
        if key.is_empty() {
            return Err(Error::invalid("key", "must not be empty"));
        }
        let last_fence_key = companion_key(&key, LAST_FENCE_SUFFIX)?;
        Ok(FencedResource {
            inner: Arc::new(ResourceInner {
                key,
                last_fence_key,
                node: Node::new(connection),
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
        let last: Option<u64> = scripts::FENCED_SET
            .key(&inner.key)
            .key(&inner.last_fence_key)
            .arg(fence)
            .arg(value)
            .invoke_async(&mut inner.node.connection())
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of `key` that Redis Cluster hashes to pick a slot.
    fn hashed_part(key: &str) -> &str {
        hash_tag(key).unwrap_or(key)
    }

    /// CRC16-CCITT (XMODEM), the checksum Redis Cluster takes modulo 16384.
    fn crc16(bytes: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &byte in bytes {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    /// The Cluster slot of `key`, by the rule written out independently of
    /// `hash_tag`, on bytes as `cluster.c` does.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let hashed = match bytes.iter().position(|&b| b == b'{') {
            None => bytes,
            Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
                None | Some(0) => bytes,
                Some(len) => &bytes[open + 1..open + 1 + len],
            },
        };
        crc16(hashed) % 16384
    }

    #[test]
    fn crc16_and_slots_match_the_cluster_spec() {
        // The check value of CRC16/XMODEM, and slots the Redis docs show.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot("foo{{bar}}zap"), crc16(b"{bar") % 16384);
        assert_eq!(slot("foo{bar}{zap}"), crc16(b"bar") % 16384);
    }

    #[test]
    fn hash_tags_follow_the_cluster_rule() {
        for (key, tag) in [
            ("plain", None),
            ("{user1000}.following", Some("user1000")),
            ("foo{}{bar}", None),
            ("foo{{bar}}zap", Some("{bar")),
            ("foo{bar}{zap}", Some("bar")),
            ("{}", None),
            ("a{b", None),
            ("a}b{c}", Some("c")),
            ("}{x}", Some("x")),
            ("{", None),
            ("}", None),
        ] {
            assert_eq!(hash_tag(key), tag, "{key:?}");
        }
    }

    #[test]
    fn fence_keys_are_named_as_documented() {
        assert_eq!(fence_key("orders").unwrap(), "{orders}:fence");
        assert_eq!(fence_key("{orders}:lock").unwrap(), "{orders}:lock:fence");
        assert_eq!(fence_key("a{b").unwrap(), "{a{b}:fence");
        assert_eq!(fence_key("{").unwrap(), "{{}:fence");
        assert_eq!(
            companion_key("orders", LAST_FENCE_SUFFIX).unwrap(),
            "{orders}:last-fence"
        );
        let err = fence_key("a}b").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { field: "key", reason } if reason.contains("hash tag")),
            "{err:?}"
        );
    }

    /// Every key of up to 6 characters over an alphabet of braces and
    /// letters (5,460 keys, every arrangement of `{` and `}`), and some
    /// longer ones: the fence key is refused exactly when no key could share
    /// the lock key's slot, and otherwise is in the same slot.
    #[test]
    fn fence_key_is_in_the_lock_key_slot_or_refused_exactly_when_it_cannot_be() {
        let alphabet = ['{', '}', 'a', 'b'];
        let mut keys: Vec<String> = vec![];
        let mut layer = vec![String::new()];
        for _ in 0..6 {
            layer = layer
                .iter()
                .flat_map(|prefix| alphabet.iter().map(move |c| format!("{prefix}{c}")))
                .collect();
            keys.extend(layer.iter().cloned());
        }
        keys.extend(
            [
                "lock:orders",
                "{tenant:7}:lock:orders",
                "lock:{tenant:7}:orders",
                "lock:{}x}",
                "}x",
                "x{}y}",
                "ключ:{замок}",
                "🔒{🔑}",
                "a{🔑",
            ]
            .map(String::from),
        );
        keys.push("k".repeat(65_536));
        keys.push(format!("{{{}}}", "t".repeat(65_536)));

        let (mut accepted, mut refused) = (0, 0);
        for key in &keys {
            // The construction the docs promise, without the refusal.
            let candidate = if hash_tag(key).is_some() {
                format!("{key}:fence")
            } else {
                format!("{{{key}}}:fence")
            };
            let shares_hashed_part = hashed_part(key) == hashed_part(&candidate);
            match fence_key(key) {
                Ok(fence) => {
                    accepted += 1;
                    assert_eq!(fence, candidate);
                    assert!(shares_hashed_part, "{key:?}");
                    assert_eq!(slot(key), slot(&fence), "{key:?} vs {fence:?}");
                }
                Err(_) => {
                    refused += 1;
                    assert!(!shares_hashed_part, "refused needlessly: {key:?}");
                    // Refused names are those that hash whole and contain '}':
                    // no key hashes all of them except the key itself.
                    assert!(hash_tag(key).is_none() && key.contains('}'), "{key:?}");
                }
            }
        }
        assert!(accepted > 2_000 && refused > 2_000, "{accepted} {refused}");
    }

    #[test]
    fn a_resource_keeps_its_last_fence_in_its_own_slot_apart_from_the_lock_counter() {
        assert_eq!(
            companion_key("orders", LAST_FENCE_SUFFIX).unwrap(),
            "{orders}:last-fence"
        );
        assert_ne!(
            companion_key("orders", LAST_FENCE_SUFFIX).unwrap(),
            fence_key("orders").unwrap()
        );
        assert_eq!(
            companion_key("{t}x}", LAST_FENCE_SUFFIX).unwrap(),
            "{t}x}:last-fence"
        );
        assert_eq!(slot("{t}x}"), slot("{t}x}:last-fence"));
        assert!(companion_key("x}", LAST_FENCE_SUFFIX).is_err());
    }
}
