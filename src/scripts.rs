//! The Lua scripts, as constants. Lua is never built from input: keys and
//! tokens travel as `KEYS` and `ARGV`.
//!
//! No script starts with a `#!lua` line, on purpose: Redis refuses such
//! scripts under `maxmemory` before they run unless they carry the
//! `allow-oom` flag, while these plain ones still release and extend locks
//! when the server is out of memory.

use std::sync::LazyLock;

use redis::Script;

/// Deletes the lock only while it still holds our token.
/// Returns 1 when deleted, 0 when the key is gone or holds another token.
pub(crate) const RELEASE_LUA: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
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

/// The release script; `redis::Script` sends it with `EVALSHA` and falls back
/// to loading it when the server answers `NOSCRIPT` (after a restart, a
/// failover or `SCRIPT FLUSH`).
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));

/// The extend script, cached like [`RELEASE`].
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND_LUA));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_have_no_shebang_so_they_run_under_oom() {
        for lua in [RELEASE_LUA, EXTEND_LUA] {
            assert!(!lua.trim_start().starts_with("#!"));
        }
    }
}
