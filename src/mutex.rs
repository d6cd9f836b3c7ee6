//! The mutex, the first kind of lease: a string key holding a random token,
//! the format redis-py's `Lock`, node-redlock, redsync and bsm/redislock
//! share, so that they and this crate exclude each other on the same key.
//!
//! - Acquire: `SET key token NX GET PX ttl`, one round trip. The `GET`
//!   option makes a key of another type answer `WRONGTYPE` instead of a
//!   silent nil that would look busy forever, and shows whether the holder
//!   is ourselves. With fencing, one script that also `INCR`s the fence
//!   counter (see [`FENCED_ACQUIRE_LUA`]).
//! - Release: compare-and-delete, then publish on the release channel, in
//!   one script. Extend: compare-and-`PEXPIRE`.
//! - Inspect: `GET`; for a waiter, `GET` and `PTTL` in one pipeline.
//!
//! A holder's value is read as bytes, never as text: other libraries' tokens
//! need not be UTF-8 (rslock stores 20 raw random bytes), and such a holder
//! is busy like any other.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{RedisResult, Value};

use crate::kind::{Announce, Grant, Holder, Kind, Named};
use crate::scripts::{LeaseScript, Request, ScriptCall};
use crate::token;
use crate::ttl::{gone_within, millis};

/// Deletes the lock only while it still holds our token (`ARGV[1]`), and
/// then publishes on `ARGV[2]`, when given, to wake the waiters: either the
/// lock's release channel, with an empty message, for one waiter in every
/// process; or one process's inbox (see `route`), with `ARGV[3]` naming it,
/// and when nobody there hears it (the process is gone, or never subscribed
/// it), `ARGV[5]` on the release channel, `ARGV[4]`, instead (a release for
/// everyone that names the process nobody heard). In the
/// same script, so a waiter never hears of a release that did not happen or
/// misses one that did. Returns 1 when deleted, 0 when the key is gone or
/// holds another token (nothing is published then).
///
/// `pcall`: a publish the server refuses (an ACL without the channel) must
/// not turn a release that already deleted the key into an error; waiters
/// then find out by their TTL-bounded wait. An inbox refused is as one
/// nobody hears.
const RELEASE_LUA: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    redis.call("DEL", KEYS[1])
    if ARGV[2] then
        local heard = redis.pcall("PUBLISH", ARGV[2], ARGV[3] or "")
        if ARGV[4] and (type(heard) ~= "number" or heard == 0) then
            redis.pcall("PUBLISH", ARGV[4], ARGV[5] or "")
        end
    end
    return 1
end
return 0
"#;

/// Sets the lock's time to live to `ARGV[2]` ms only while it still holds our
/// token. Returns 1 when extended, 0 when the key is gone or holds another
/// token. It never creates a key: a lock that expired stays expired.
const EXTEND_LUA: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"#;

/// Fenced acquire. `KEYS[1]` is the lock, `KEYS[2]` its fence counter;
/// `ARGV[1]` our token, `ARGV[2]` the TTL in ms. Returns nil when another
/// token holds the lock, `{1, fence}` when it took the lock, `{2, fence}` when
/// the lock already holds our token.
///
/// - The `GET` comes first: a held lock returns before `INCR`, so contention
///   burns no fence numbers, and a key of another type raises `WRONGTYPE`.
///   The script is atomic, so the plain `SET` after it has `NX` semantics.
/// - `INCR` comes before `SET`: if it fails (out of memory, a counter that is
///   not an integer or would overflow), the script stops with no lock taken,
///   so there is never a lock without a fence. Scripts do not roll back.
/// - A counter of another type is reported as such (`ERR`), not as
///   `WRONGTYPE`, which the crate reads as "the lock key is not a lock"; any
///   other `INCR` error (such as `OOM`) is passed on as it is.
/// - Lua numbers are doubles, exact only below 2^53; above that the counter is
///   read back as text rather than returned rounded.
const FENCED_ACQUIRE_LUA: &str = r#"
local holder = redis.call("GET", KEYS[1])
if holder then
    if holder == ARGV[1] then
        return {2, redis.call("GET", KEYS[2])}
    end
    return false
end
local fence = redis.pcall("INCR", KEYS[2])
if type(fence) == "table" then
    if string.find(fence.err, "WRONGTYPE", 1, true) == 1 then
        return redis.error_reply("ERR the lock's fence counter holds a value of another type")
    end
    return fence
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
if fence >= 9007199254740992 then
    fence = redis.call("GET", KEYS[2])
end
return {1, fence}
"#;

static RELEASE: LazyLock<LeaseScript> = LazyLock::new(|| LeaseScript::new(RELEASE_LUA));
static EXTEND: LazyLock<LeaseScript> = LazyLock::new(|| LeaseScript::new(EXTEND_LUA));
static FENCED_ACQUIRE: LazyLock<LeaseScript> =
    LazyLock::new(|| LeaseScript::new(FENCED_ACQUIRE_LUA));

/// A mutex on one key.
#[derive(Clone, Debug)]
pub(crate) struct MutexLease {
    key: Arc<str>,
    /// The fence counter's key when fencing is on.
    fence_key: Option<Arc<str>>,
    channel: Arc<str>,
}

impl MutexLease {
    /// `key` and `fence_key` checked by the builder.
    pub(crate) fn new(key: &str, fence_key: Option<String>) -> MutexLease {
        MutexLease {
            key: key.into(),
            fence_key: fence_key.map(Into::into),
            channel: crate::keys::release_channel(key).into(),
        }
    }

    pub(crate) fn fence_key(&self) -> Option<&str> {
        self.fence_key.as_deref()
    }
}

impl Kind for MutexLease {
    fn key(&self) -> &Arc<str> {
        &self.key
    }

    fn kind_name(&self) -> &'static str {
        "lock"
    }

    fn channel(&self) -> &str {
        &self.channel
    }

    fn exclusive(&self) -> bool {
        true
    }

    fn directs_wake_ups(&self) -> bool {
        true
    }

    fn acquire(&self, token: &str, ttl: Duration) -> Request {
        match &self.fence_key {
            None => {
                // Sized up front: no reallocation on the uncontended path.
                let mut set = redis::Cmd::with_capacity(7, self.key.len() + token.len() + 32);
                set.arg("SET")
                    .arg(&*self.key)
                    .arg(token)
                    .arg("NX")
                    .arg("GET")
                    .arg("PX")
                    .arg(millis(ttl));
                Request::Cmd(set)
            }
            Some(fence_key) => Request::Script(
                FENCED_ACQUIRE
                    .call(&[&*self.key, &**fence_key])
                    .arg(token)
                    .arg(millis(ttl)),
            ),
        }
    }

    fn read_acquire(&self, reply: Value, token: &str) -> RedisResult<Grant> {
        if self.fence_key.is_none() {
            let previous: Option<Vec<u8>> = redis::from_redis_value(reply)?;
            return Ok(match previous {
                None => Grant::Acquired { fence: None },
                Some(holder) if holder == token.as_bytes() => Grant::AlreadyOurs { fence: None },
                Some(holder) => Grant::Busy {
                    named: Some(Named::of(&holder)),
                },
            });
        }
        let reply: Option<(i64, u64)> = redis::from_redis_value(reply)?;
        Ok(match reply {
            None => Grant::Busy { named: None },
            Some((1, fence)) => Grant::Acquired { fence: Some(fence) },
            Some((2, fence)) => Grant::AlreadyOurs { fence: Some(fence) },
            Some((state, _)) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "unexpected reply from the fenced acquire script",
                    format!("state {state}"),
                )));
            }
        })
    }

    fn release(&self, token: &str, announce: Announce<'_>) -> ScriptCall {
        let call = RELEASE.call(&[&*self.key]).arg(token);
        match announce {
            // Without a channel the script deletes and publishes nothing.
            Announce::Nobody => call,
            Announce::Everyone => call.arg(&*self.channel),
            Announce::Named(wake) => (call.arg(&wake.inbox).arg(&wake.message))
                .arg(&*self.channel)
                .arg(&wake.unheard),
        }
    }

    fn extend(&self, token: &str, ttl: Duration) -> ScriptCall {
        EXTEND.call(&[&*self.key]).arg(token).arg(millis(ttl))
    }

    fn holds(&self, _token: &str) -> Request {
        let mut get = redis::cmd("GET");
        get.arg(&*self.key);
        Request::Cmd(get)
    }

    fn read_holds(&self, reply: Value, token: &str) -> RedisResult<bool> {
        let holder: Option<Vec<u8>> = redis::from_redis_value(reply)?;
        Ok(holder.as_deref() == Some(token.as_bytes()))
    }

    /// The holder's token and its time to live in ms (`PTTL`: -2 when the
    /// key is gone, -1 when it has no TTL), in one round trip.
    fn holder(&self) -> Request {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&*self.key).cmd("PTTL").arg(&*self.key);
        Request::Pipeline(pipe)
    }

    /// `PTTL` alone: the busy `SET ... GET` named the holder already.
    fn holder_ttl(&self) -> Option<Request> {
        let mut pttl = redis::cmd("PTTL");
        pttl.arg(&*self.key);
        Some(Request::Cmd(pttl))
    }

    fn read_holder_ttl(&self, reply: Value, announces: bool) -> Holder {
        match redis::from_redis_value::<i64>(reply) {
            Ok(-2) => Holder::Gone,
            Ok(ttl) if ttl >= 0 => Holder::Held {
                free_in: gone_within(ttl),
                announces,
            },
            _ => Holder::Unknown,
        }
    }

    /// A holder of this crate announces its release, so only its expiry
    /// bounds a wait for it; any other holder is polled for as well.
    fn read_holder(&self, reply: Value) -> Holder {
        match redis::from_redis_value::<(Option<Vec<u8>>, i64)>(reply) {
            Ok((None, _)) | Ok((_, -2)) => Holder::Gone,
            Ok((Some(holder), ttl)) if ttl >= 0 => Holder::Held {
                free_in: gone_within(ttl),
                announces: token::has_token_format(&holder),
            },
            _ => Holder::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Publish;

    #[test]
    fn the_release_scripts_differ_only_in_the_publish_command() {
        assert_eq!(
            RELEASE.body(Publish::Plain).replace("PUBLISH", "SPUBLISH"),
            RELEASE.body(Publish::Sharded)
        );
        assert!(
            RELEASE
                .body(Publish::Plain)
                .contains(r#"redis.pcall("PUBLISH", ARGV[2], ARGV[3] or "")"#)
        );
        assert!(
            RELEASE
                .body(Publish::Sharded)
                .contains(r#"redis.pcall("SPUBLISH", ARGV[2], ARGV[3] or "")"#)
        );
    }

    /// The benches' same-commands floor sends this script word for word:
    /// a change here must be made there too, or the floor measures
    /// something else.
    #[test]
    fn the_benches_floor_sends_this_release_script() {
        let floor = include_str!("../benches/floor/mod.rs");
        assert!(floor.contains(&format!(
            "pub const CRATE_RELEASE_LUA: &str = r#\"{RELEASE_LUA}\"#;"
        )));
    }

    #[test]
    fn scripts_have_no_shebang_so_they_run_under_oom() {
        for lua in [RELEASE_LUA, EXTEND_LUA, FENCED_ACQUIRE_LUA] {
            assert!(!lua.trim_start().starts_with("#!"));
        }
    }
}
