//! The semaphore's kind of lease: a sorted set of permits at the key, each
//! member a holder's token scored by its expiry **on the server's clock**
//! (`TIME`, read inside every script), so that a crashed holder's permit
//! frees itself after its TTL whatever the clients' clocks say, and no
//! client's clock is ever read.
//!
//! - Acquire: drop the expired members, then add ours if the live ones
//!   leave room for it under the limit the acquirer passes, in one script.
//!   A hold of `n` permits is `n` members: the token, then `token#2` ..
//!   `token#n`, all with one score.
//! - Release: remove our members, and publish on the release channel when
//!   they were live. Extend: re-score ours, only while they are live.
//! - After every add or re-score the key's own expiry is moved to its
//!   latest member's, so a semaphore nobody uses any more leaves nothing.
//!
//! Invariants:
//! - A member whose score is at or before the server's `now` is expired:
//!   it counts for nobody, extend never revives it, release reports it
//!   not held.
//! - The limit is an argument of each acquire, not stored: lowering it
//!   revokes no live permit (their holders keep them, and may extend them,
//!   until they release or expire); new acquires wait until the live
//!   permits are below the new limit.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{RedisResult, Value};

use crate::error::{Error, Result};
use crate::kind::{Announce, Grant, Holder, Kind};
use crate::scripts::{LeaseScript, Request, ScriptCall};
use crate::ttl::millis;

/// The most permits a semaphore can have: beyond that it is a counter, not
/// a lock, and its set would be costly to keep.
pub const MAX_PERMITS: u32 = 1_000_000;

/// The most permits one hold can take at once: each is a member of the set,
/// added by one script.
pub const MAX_PERMITS_PER_HOLD: u32 = 1_000;

/// The server's time in ms, as a Lua number (exact: far below 2^53).
/// Every script of this kind starts with it.
pub(crate) const SERVER_NOW_LUA: &str = include_str!("lua/server_now.lua");

/// Our members for `ARGV[1]` (the token) and a count: the token, then
/// `token#2` .. `token#count`.
const MEMBERS_LUA: &str = include_str!("lua/permit_members.lua");

/// `ARGV`: token, TTL in ms, limit, count. Returns 1 when it added our
/// permits, 2 when they were ours already (an earlier send landed), 0 when
/// the live permits leave no room.
const ACQUIRE_BODY: &str = include_str!("lua/permit_acquire.lua");

/// `ARGV`: token, count, and the release channel when the release is
/// announced. Returns 1 when our permits were live (then published), 0
/// when they were gone or expired (removed all the same).
const RELEASE_BODY: &str = include_str!("lua/permit_release.lua");

/// `ARGV`: token, TTL in ms, count. Returns 1 when our live permits now
/// expire TTL from the server's now, 0 when they were gone or expired.
const EXTEND_BODY: &str = r#"
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
    return 0
end
local expires = now + tonumber(ARGV[2])
for _, member in ipairs(members(ARGV[1], tonumber(ARGV[3]))) do
    redis.call("ZADD", KEYS[1], "XX", expires, member)
end
local last = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[1], last[2])
return 1
"#;

/// `ARGV`: token. Returns 1 while our permits are live, else 0.
const HOLDS_BODY: &str = r#"
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if score and tonumber(score) > now then
    return 1
end
return 0
"#;

/// `ARGV`: limit, count. Returns -2 when the live permits leave room for
/// `count` more, else the ms until the earliest live permit expires.
/// Reads only.
const HOLDER_BODY: &str = r#"
local after = "(" .. now
local live = redis.call("ZCOUNT", KEYS[1], after, "+inf")
if live + tonumber(ARGV[2]) <= tonumber(ARGV[1]) then
    return -2
end
local first = redis.call("ZRANGEBYSCORE", KEYS[1], after, "+inf", "WITHSCORES", "LIMIT", 0, 1)
return tonumber(first[2]) - now
"#;

/// Returns how many live permits the set holds. Reads only.
const IN_USE_BODY: &str = r#"
return redis.call("ZCOUNT", KEYS[1], "(" .. now, "+inf")
"#;

fn script(body: &str) -> LeaseScript {
    LeaseScript::new(&format!("{SERVER_NOW_LUA}{MEMBERS_LUA}{body}"))
}

static ACQUIRE: LazyLock<LeaseScript> = LazyLock::new(|| script(ACQUIRE_BODY));
static RELEASE: LazyLock<LeaseScript> = LazyLock::new(|| script(RELEASE_BODY));
static EXTEND: LazyLock<LeaseScript> = LazyLock::new(|| script(EXTEND_BODY));
static HOLDS: LazyLock<LeaseScript> = LazyLock::new(|| script(HOLDS_BODY));
static HOLDER: LazyLock<LeaseScript> = LazyLock::new(|| script(HOLDER_BODY));
static IN_USE: LazyLock<LeaseScript> = LazyLock::new(|| script(IN_USE_BODY));

/// Makes `token`'s `count` live members of the set at `key` expire `ttl`
/// from the server's now (the extend of every kind whose holders are
/// members of a set).
pub(crate) fn extend_members(key: &str, token: &str, ttl: Duration, count: u32) -> ScriptCall {
    EXTEND.call(&[key]).arg(token).arg(millis(ttl)).arg(count)
}

/// Asks whether `token` is a live member of the set at `key`.
pub(crate) fn holds_member(key: &str, token: &str) -> Request {
    Request::Script(HOLDS.call(&[key]).arg(token))
}

/// Reads the answer to [`holds_member`].
pub(crate) fn read_holds_member(reply: Value) -> RedisResult<bool> {
    Ok(redis::from_redis_value::<i64>(reply)? == 1)
}

/// Checks a semaphore's number of permits.
pub(crate) fn check_permits(permits: u32) -> Result<u32> {
    match permits {
        0 => Err(Error::invalid(
            "permits",
            "a semaphore needs at least 1 permit, got 0",
        )),
        p if p > MAX_PERMITS => Err(Error::invalid(
            "permits",
            format!("{p} is above the maximum of {MAX_PERMITS}"),
        )),
        p => Ok(p),
    }
}

/// A semaphore on one key: `limit` permits in all, `count` per hold.
#[derive(Clone, Debug)]
pub(crate) struct PermitSet {
    key: Arc<str>,
    channel: Arc<str>,
    limit: u32,
    count: u32,
}

impl PermitSet {
    /// `key` and `limit` checked by the builder; one permit per hold.
    pub(crate) fn new(key: &str, limit: u32) -> PermitSet {
        PermitSet {
            key: key.into(),
            channel: crate::keys::release_channel(key).into(),
            limit,
            count: 1,
        }
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// The same semaphore with another limit (checked here).
    pub(crate) fn with_limit(&self, limit: u32) -> Result<PermitSet> {
        Ok(PermitSet {
            limit: check_permits(limit)?,
            ..self.clone()
        })
    }

    /// The same semaphore, taking `count` permits per hold: at least 1, at
    /// most the limit (more could never be granted) and
    /// [`MAX_PERMITS_PER_HOLD`].
    pub(crate) fn taking(&self, count: u32) -> Result<PermitSet> {
        if count == 0 {
            return Err(Error::invalid("permits", "a hold takes at least 1 permit"));
        }
        if count > self.limit {
            return Err(Error::invalid(
                "permits",
                format!(
                    "{count} permits at once can never be granted by a semaphore of {}",
                    self.limit
                ),
            ));
        }
        if count > MAX_PERMITS_PER_HOLD {
            return Err(Error::invalid(
                "permits",
                format!("{count} is above the maximum of {MAX_PERMITS_PER_HOLD} per hold"),
            ));
        }
        Ok(PermitSet {
            count,
            ..self.clone()
        })
    }

    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Asks how many live permits the set holds.
    pub(crate) fn in_use(&self) -> Request {
        Request::Script(IN_USE.call(&[&*self.key]))
    }
}

impl Kind for PermitSet {
    fn kind_name(&self) -> &'static str {
        "semaphore"
    }

    fn key(&self) -> &Arc<str> {
        &self.key
    }

    fn channel(&self) -> &str {
        &self.channel
    }

    fn acquire(&self, token: &str, ttl: Duration) -> Request {
        Request::Script(
            ACQUIRE
                .call(&[&*self.key])
                .arg(token)
                .arg(millis(ttl))
                .arg(self.limit)
                .arg(self.count),
        )
    }

    fn read_acquire(&self, reply: Value, _token: &str) -> RedisResult<Grant> {
        Ok(match redis::from_redis_value::<i64>(reply)? {
            1 => Grant::Acquired { fence: None },
            2 => Grant::AlreadyOurs { fence: None },
            _ => Grant::Busy { named: None },
        })
    }

    fn release(&self, token: &str, announce: Announce<'_>) -> ScriptCall {
        let call = RELEASE.call(&[&*self.key]).arg(token).arg(self.count);
        if announce.publishes() {
            call.arg(&*self.channel)
        } else {
            call
        }
    }

    fn extend(&self, token: &str, ttl: Duration) -> ScriptCall {
        extend_members(&self.key, token, ttl, self.count)
    }

    fn holds(&self, token: &str) -> Request {
        holds_member(&self.key, token)
    }

    fn read_holds(&self, reply: Value, _token: &str) -> RedisResult<bool> {
        read_holds_member(reply)
    }

    fn holder(&self) -> Request {
        Request::Script(HOLDER.call(&[&*self.key]).arg(self.limit).arg(self.count))
    }

    /// Only this crate's scripts write the set, and every release of ours
    /// is announced.
    fn read_holder(&self, reply: Value) -> Holder {
        match redis::from_redis_value::<i64>(reply) {
            Ok(-2) => Holder::Gone,
            Ok(ms) if ms >= 0 => Holder::Held {
                // The server's now is rounded down to the ms: one more and
                // the earliest permit has expired.
                free_in: Duration::from_millis(u64::try_from(ms).unwrap_or(0) + 1),
                announces: true,
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
    fn only_the_release_publishes_and_its_sharded_form_differs_only_there() {
        assert_eq!(
            RELEASE.body(Publish::Plain).replace("PUBLISH", "SPUBLISH"),
            RELEASE.body(Publish::Sharded)
        );
        for quiet in [&ACQUIRE, &EXTEND, &HOLDS, &HOLDER, &IN_USE] {
            assert!(!quiet.body(Publish::Plain).contains("PUBLISH"));
        }
    }

    #[test]
    fn scripts_read_the_servers_clock_and_no_client_time() {
        for body in [
            ACQUIRE_BODY,
            RELEASE_BODY,
            EXTEND_BODY,
            HOLDS_BODY,
            HOLDER_BODY,
            IN_USE_BODY,
        ] {
            assert!(!body.trim_start().starts_with("#!"));
            assert!(body.contains("now"));
        }
    }

    #[test]
    fn permit_counts_are_checked() {
        assert!(check_permits(0).is_err());
        assert!(check_permits(MAX_PERMITS + 1).is_err());
        let set = PermitSet::new("k", 3);
        assert!(set.taking(0).is_err());
        assert!(set.taking(4).is_err());
        assert_eq!(set.taking(3).map(|s| s.count()).ok(), Some(3));
        let big = PermitSet::new("k", MAX_PERMITS);
        assert!(big.taking(MAX_PERMITS_PER_HOLD + 1).is_err());
    }
}
