//! The floor every bench compares the lock with: the raw `redis` crate
//! doing the same two commands by hand (`SET key token NX PX 30000`, then
//! a compare-and-delete by `EVALSHA`).

/// The compare-and-delete anyone would write by hand. The crate's release
/// script also publishes a wake-up for waiters after the `DEL`: a `PUBLISH`
/// to a channel that usually has no subscriber, part of what the ratio to
/// this floor measures.
pub const RELEASE_LUA: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// The floor's acquire: `SET key token NX PX 30000`, which must succeed.
pub async fn floor_set(connection: &mut impl redis::aio::ConnectionLike, key: &str, token: &str) {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(30_000)
        .query_async(connection)
        .await
        .unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
}

pub async fn floor_cycle(
    connection: &mut impl redis::aio::ConnectionLike,
    script: &redis::Script,
    key: &str,
    token: &str,
) {
    floor_set(connection, key, token).await;
    let deleted: i64 = script
        .key(key)
        .arg(token)
        .invoke_async(connection)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
}
