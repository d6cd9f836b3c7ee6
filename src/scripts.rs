//! The Lua scripts, as constants. Lua is never built from input: keys and
//! tokens travel as `KEYS` and `ARGV`.
//!
//! No script starts with a `#!lua` line, on purpose: Redis refuses such
//! scripts under `maxmemory` before they run unless they carry the
//! `allow-oom` flag, while these plain ones still release and extend locks
//! when the server is out of memory.

use std::sync::LazyLock;

use redis::Script;

/// Deletes the lock only while it still holds our token, and then publishes
/// an empty message on `ARGV[2]`, the lock's release channel (see
/// `wait::release_channel`), to wake the waiters: in the same script, so a
/// waiter never hears of a release that did not happen or misses one that
/// did. Returns 1 when deleted, 0 when the key is gone or holds another
/// token (nothing is published then).
///
/// `pcall`: a publish the server refuses (an ACL without the channel) must not
/// turn a release that already deleted the key into an error; waiters then
/// find out by their TTL-bounded wait.
///
/// On a Redis Cluster the wake-up goes by `SPUBLISH` ([`RELEASE_SHARDED_LUA`]):
/// it stays in the key's shard (the channel hashes to the key's slot) instead
/// of being broadcast to every node over the cluster bus.
pub(crate) const RELEASE_LUA: &str = release_lua!("PUBLISH");

/// [`RELEASE_LUA`] with a sharded publish, for a Redis Cluster.
pub(crate) const RELEASE_SHARDED_LUA: &str = release_lua!("SPUBLISH");

/// The release script for a publish command; one body for both, so they
/// cannot drift apart.
macro_rules! release_lua {
    ($publish:literal) => {
        concat!(
            r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    redis.call("DEL", KEYS[1])
    if ARGV[2] then
        redis.pcall(""#,
            $publish,
            r#"", ARGV[2], "")
    end
    return 1
end
return 0
"#
        )
    };
}
use release_lua;

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

/// The release script; `redis::Script` sends it with `EVALSHA` and falls back
/// to loading it when the server answers `NOSCRIPT` (after a restart, a
/// failover or `SCRIPT FLUSH`).
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));

/// The release script of a lock on a Redis Cluster (`SPUBLISH`).
pub(crate) static RELEASE_SHARDED: LazyLock<Script> =
    LazyLock::new(|| Script::new(RELEASE_SHARDED_LUA));

/// The extend script, cached like [`RELEASE`].
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND_LUA));

/// The fenced acquire script, cached like [`RELEASE`].
pub(crate) static FENCED_ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(FENCED_ACQUIRE_LUA));

/// The fenced write script, cached like [`RELEASE`].
pub(crate) static FENCED_SET: LazyLock<Script> = LazyLock::new(|| Script::new(FENCED_SET_LUA));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_scripts_differ_only_in_the_publish_command() {
        assert_eq!(
            RELEASE_LUA.replace("PUBLISH", "SPUBLISH"),
            RELEASE_SHARDED_LUA
        );
        assert!(RELEASE_LUA.contains(r#"redis.pcall("PUBLISH", ARGV[2], "")"#));
    }

    #[test]
    fn scripts_have_no_shebang_so_they_run_under_oom() {
        for lua in [
            RELEASE_LUA,
            RELEASE_SHARDED_LUA,
            EXTEND_LUA,
            FENCED_ACQUIRE_LUA,
            FENCED_SET_LUA,
        ] {
            assert!(!lua.trim_start().starts_with("#!"));
        }
    }
}
