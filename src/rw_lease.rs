//! The read-write lock's two kinds of lease, on three keys of one Cluster
//! slot: the writer's key (the key as given, holding the writer's token:
//! the plain lock format, so a plain lock on the key, from this crate or
//! another library, excludes readers and writers alike), the readers'
//! sorted set (each reader's token scored by its expiry on the server's
//! clock, as the semaphore's permits are), and a waiting writer's mark.
//!
//! - Read: drop expired readers; refuse while a writer holds the key or a
//!   writer's mark waits (write preference: a steady stream of readers
//!   cannot starve a writer); else add ours. Release: remove ours and, when
//!   no live reader is left, announce it to the waiting writers.
//! - Write: refuse while another writer holds the key; while live readers
//!   hold it, leave our mark (unless another writer's is first) and answer
//!   `Queued`, so the engine removes the mark if we give up; else take the
//!   key and drop our mark. Release: delete the key and announce it to
//!   readers and writers; a mark of ours is deleted and announced to the
//!   readers.
//!
//! Invariants:
//! - Each reader's hold is its own member with its own expiry: renewal
//!   keeps only its own alive, and a crashed reader holds writers back at
//!   most until its TTL.
//! - A mark lives two TTLs from the writer's last attempt, and every
//!   attempt renews it; a writer that crashed while waiting holds new
//!   readers back at most that long.
//! - Readers wait on the writers' announcements (`{key}:released`, the
//!   plain lock's channel), writers on `{key}:readers-released`: each side
//!   sees the holder that blocks it.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{RedisResult, Value};

use crate::error::Result;
use crate::keys;
use crate::kind::{Announce, Grant, Holder, Kind};
use crate::mutex::MutexLease;
use crate::permit_set::{SERVER_NOW_LUA, extend_members, holds_member, read_holds_member};
use crate::scripts::{LeaseScript, Request, ScriptCall};
use crate::token;
use crate::ttl::{gone_within, millis};

/// The ms until the writer's key expires, else until the last live reader
/// expires: `{1, pttl, writer}`, `{2, ms}`, or `{0}` when free.
const WRITE_HOLDER_BODY: &str = r#"
local writer = redis.call("GET", KEYS[1])
if writer then
    return {1, redis.call("PTTL", KEYS[1]), writer}
end
local last = redis.call("ZRANGE", KEYS[2], -1, -1, "WITHSCORES")
if last[2] and tonumber(last[2]) > now then
    return {2, tonumber(last[2]) - now}
end
return {0}
"#;

fn with_now(body: &str) -> LeaseScript {
    LeaseScript::new(&format!("{SERVER_NOW_LUA}{body}"))
}

static READ_ACQUIRE: LazyLock<LeaseScript> =
    LazyLock::new(|| with_now(include_str!("lua/rw_read_acquire.lua")));
static READ_RELEASE: LazyLock<LeaseScript> =
    LazyLock::new(|| with_now(include_str!("lua/rw_read_release.lua")));
static WRITE_ACQUIRE: LazyLock<LeaseScript> =
    LazyLock::new(|| with_now(include_str!("lua/rw_write_acquire.lua")));
static WRITE_RELEASE: LazyLock<LeaseScript> =
    LazyLock::new(|| LeaseScript::new(include_str!("lua/rw_write_release.lua")));
static WRITE_HOLDER: LazyLock<LeaseScript> = LazyLock::new(|| with_now(WRITE_HOLDER_BODY));

/// The names of one read-write lock's keys and channels.
#[derive(Debug)]
struct Names {
    readers: Arc<str>,
    intent: Arc<str>,
    /// Where writers' releases are announced (readers wait here).
    writer_released: Arc<str>,
    /// Where the last reader's release is announced (writers wait here).
    readers_released: Arc<str>,
}

/// A read hold of a read-write lock.
#[derive(Clone, Debug)]
pub(crate) struct ReadLease {
    key: Arc<str>,
    names: Arc<Names>,
}

/// A write hold of a read-write lock: the writer's key is a plain lock,
/// extended and inspected as the mutex's.
#[derive(Clone, Debug)]
pub(crate) struct WriteLease {
    mutex: MutexLease,
    names: Arc<Names>,
}

/// The two kinds of one read-write lock on `key`; refused for a key whose
/// companion keys could not share its Cluster slot.
pub(crate) fn rw_leases(key: &str) -> Result<(ReadLease, WriteLease)> {
    let names = Arc::new(Names {
        readers: keys::readers_key(key)?.into(),
        intent: keys::write_intent_key(key)?.into(),
        writer_released: keys::release_channel(key).into(),
        readers_released: keys::readers_channel(key)?.into(),
    });
    let read = ReadLease {
        key: key.into(),
        names: names.clone(),
    };
    let write = WriteLease {
        mutex: MutexLease::new(key, None),
        names,
    };
    Ok((read, write))
}

impl ReadLease {
    /// Asks how many live readers hold the lock.
    /// (Counted in a script: whether a member has expired is the server's
    /// clock's to say.)
    pub(crate) fn readers(&self) -> Request {
        Request::Script(READERS.call(&[&*self.names.readers]))
    }
}

static READERS: LazyLock<LeaseScript> =
    LazyLock::new(|| with_now(r#"return redis.call("ZCOUNT", KEYS[1], "(" .. now, "+inf")"#));

fn read_grant(reply: Value) -> RedisResult<Grant> {
    Ok(match redis::from_redis_value::<i64>(reply)? {
        1 => Grant::Acquired { fence: None },
        2 => Grant::AlreadyOurs { fence: None },
        3 => Grant::Queued,
        _ => Grant::Busy { named: None },
    })
}

impl Kind for ReadLease {
    fn kind_name(&self) -> &'static str {
        "rwlock_read"
    }

    fn key(&self) -> &Arc<str> {
        &self.key
    }

    fn channel(&self) -> &str {
        &self.names.writer_released
    }

    fn acquire(&self, token: &str, ttl: Duration) -> Request {
        let names = &*self.names;
        Request::Script(
            READ_ACQUIRE
                .call(&[&*self.key, &*names.readers, &*names.intent])
                .arg(token)
                .arg(millis(ttl)),
        )
    }

    fn read_acquire(&self, reply: Value, _token: &str) -> RedisResult<Grant> {
        read_grant(reply)
    }

    fn release(&self, token: &str, announce: Announce<'_>) -> ScriptCall {
        let call = READ_RELEASE.call(&[&*self.names.readers]).arg(token);
        match announce.publishes() {
            true => call.arg(&*self.names.readers_released),
            false => call,
        }
    }

    fn extend(&self, token: &str, ttl: Duration) -> ScriptCall {
        extend_members(&self.names.readers, token, ttl, 1)
    }

    fn holds(&self, token: &str) -> Request {
        holds_member(&self.names.readers, token)
    }

    fn read_holds(&self, reply: Value, _token: &str) -> RedisResult<bool> {
        read_holds_member(reply)
    }

    /// What keeps a reader out: the writer's key, else a waiting writer's
    /// mark (whose end is announced: the writer takes the key, whose
    /// release is announced, or gives up, which is announced).
    fn holder(&self) -> Request {
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg(&*self.key)
            .cmd("PTTL")
            .arg(&*self.key)
            .cmd("PTTL")
            .arg(&*self.names.intent);
        Request::Pipeline(pipe)
    }

    fn read_holder(&self, reply: Value) -> Holder {
        match redis::from_redis_value::<(Option<Vec<u8>>, i64, i64)>(reply) {
            Ok((Some(writer), ttl, _)) if ttl >= 0 => Holder::Held {
                free_in: gone_within(ttl),
                announces: token::has_token_format(&writer),
            },
            Ok((None, _, mark)) if mark >= 0 => Holder::Held {
                free_in: gone_within(mark),
                announces: true,
            },
            Ok((None, _, -2)) => Holder::Gone,
            _ => Holder::Unknown,
        }
    }
}

impl Kind for WriteLease {
    fn kind_name(&self) -> &'static str {
        "rwlock_write"
    }

    fn key(&self) -> &Arc<str> {
        self.mutex.key()
    }

    fn channel(&self) -> &str {
        &self.names.readers_released
    }

    fn acquire(&self, token: &str, ttl: Duration) -> Request {
        let names = &*self.names;
        Request::Script(
            WRITE_ACQUIRE
                .call(&[&**self.key(), &*names.readers, &*names.intent])
                .arg(token)
                .arg(millis(ttl)),
        )
    }

    fn read_acquire(&self, reply: Value, _token: &str) -> RedisResult<Grant> {
        read_grant(reply)
    }

    fn release(&self, token: &str, announce: Announce<'_>) -> ScriptCall {
        let names = &*self.names;
        let call = WRITE_RELEASE
            .call(&[&**self.key(), &*names.intent])
            .arg(token);
        match announce.publishes() {
            true => call
                .arg(&*names.writer_released)
                .arg(&*names.readers_released),
            false => call,
        }
    }

    fn extend(&self, token: &str, ttl: Duration) -> ScriptCall {
        self.mutex.extend(token, ttl)
    }

    fn holds(&self, token: &str) -> Request {
        self.mutex.holds(token)
    }

    fn read_holds(&self, reply: Value, token: &str) -> RedisResult<bool> {
        self.mutex.read_holds(reply, token)
    }

    /// What keeps a writer out: another writer, else the last live reader
    /// (the last reader's release is announced).
    fn holder(&self) -> Request {
        Request::Script(WRITE_HOLDER.call(&[&**self.key(), &*self.names.readers]))
    }

    fn read_holder(&self, reply: Value) -> Holder {
        match redis::from_redis_value::<Vec<Value>>(reply) {
            Ok(parts) => match parts.as_slice() {
                [Value::Int(0)] => Holder::Gone,
                [Value::Int(1), Value::Int(ttl), writer] if *ttl >= 0 => Holder::Held {
                    free_in: gone_within(*ttl),
                    announces: redis::from_redis_value_ref::<Vec<u8>>(writer)
                        .is_ok_and(|writer| token::has_token_format(&writer)),
                },
                [Value::Int(2), Value::Int(ms)] if *ms >= 0 => Holder::Held {
                    free_in: gone_within(*ms),
                    announces: true,
                },
                _ => Holder::Unknown,
            },
            Err(_) => Holder::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Publish;

    #[test]
    fn the_releases_sharded_forms_differ_only_in_the_publish_command() {
        for script in [&READ_RELEASE, &WRITE_RELEASE] {
            assert_eq!(
                script.body(Publish::Plain).replace("PUBLISH", "SPUBLISH"),
                script.body(Publish::Sharded)
            );
        }
        for quiet in [&READ_ACQUIRE, &WRITE_ACQUIRE, &WRITE_HOLDER, &READERS] {
            assert!(!quiet.body(Publish::Plain).contains("PUBLISH"));
        }
    }

    #[test]
    fn a_key_without_companions_is_refused() {
        assert!(rw_leases("a}b").is_err());
        let (read, write) = rw_leases("cfg").unwrap();
        assert_eq!(read.channel(), "{cfg}:released");
        assert_eq!(write.channel(), "{cfg}:readers-released");
        assert_eq!(&*read.names.readers, "{cfg}:readers");
    }
}
