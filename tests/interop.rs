//! A lock held by another library on the same key excludes ours, and the
//! reverse. The foreign client is the `redis` crate alone doing what
//! redis-py's `Lock`, node-redlock and redsync do: `SET key token NX PX ttl`
//! and a compare-and-delete script of its own.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use redis_mutex::{Lock, WaitPolicy};
use support::RedisServer;

/// redis-py's `Lock.LUA_RELEASE_SCRIPT`, verbatim.
const FOREIGN_RELEASE: &str = r#"
        local token = redis.call('get', KEYS[1])
        if not token or token ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        return 1
"#;

async fn foreign_acquire(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    token: &str,
) -> bool {
    let reply: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(10_000)
        .query_async(conn)
        .await
        .unwrap();
    reply.is_some()
}

async fn foreign_release(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    token: &str,
) -> bool {
    let deleted: i64 = redis::Script::new(FOREIGN_RELEASE)
        .key(key)
        .arg(token)
        .invoke_async(conn)
        .await
        .unwrap();
    deleted == 1
}

#[tokio::test]
async fn a_foreign_holder_excludes_us() {
    let server = RedisServer::start();
    let mut foreign = server.conn().await;
    let lock = Lock::builder("shared:report")
        .wait(WaitPolicy::timeout(Duration::from_millis(150)))
        .build(server.conn().await)
        .unwrap();

    assert!(foreign_acquire(&mut foreign, "shared:report", "python-uuid-hex-token").await);
    assert!(lock.try_acquire().await.unwrap().is_none());
    assert!(lock.acquire().await.unwrap_err().is_busy());
    let value: String = foreign.get("shared:report").await.unwrap();
    assert_eq!(value, "python-uuid-hex-token", "we changed nothing");

    assert!(foreign_release(&mut foreign, "shared:report", "python-uuid-hex-token").await);
    let guard = lock
        .try_acquire()
        .await
        .unwrap()
        .expect("free once the foreign holder released");
    guard.release().await.unwrap();
}

#[tokio::test]
async fn we_exclude_a_foreign_client() {
    let server = RedisServer::start();
    let mut foreign = server.conn().await;
    let lock = Lock::builder("shared:report")
        .build(server.conn().await)
        .unwrap();

    let guard = lock.acquire().await.unwrap();
    // The value is a plain string token: readable by any client.
    let ours: String = foreign.get("shared:report").await.unwrap();
    assert!(ours.len() >= 32);

    assert!(!foreign_acquire(&mut foreign, "shared:report", "go-redsync-token").await);
    // The foreign client's own compare-and-delete leaves our lock alone.
    assert!(!foreign_release(&mut foreign, "shared:report", "go-redsync-token").await);
    assert!(guard.is_held().await.unwrap());

    guard.release().await.unwrap();
    assert!(foreign_acquire(&mut foreign, "shared:report", "go-redsync-token").await);
    assert!(foreign_release(&mut foreign, "shared:report", "go-redsync-token").await);
}

#[tokio::test]
async fn our_release_never_deletes_a_foreign_holders_key() {
    let server = RedisServer::start();
    let mut foreign = server.conn().await;
    let lock = Lock::builder("shared:expiring")
        .ttl(Duration::from_millis(100))
        .build(server.conn().await)
        .unwrap();
    let guard = lock.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(foreign_acquire(&mut foreign, "shared:expiring", "node-redlock-token").await);
    assert!(guard.release().await.unwrap_err().is_not_held());
    let value: String = foreign.get("shared:expiring").await.unwrap();
    assert_eq!(value, "node-redlock-token");
}

/// rslock's lock value: 20 raw random bytes, as a rule not UTF-8.
const RAW_TOKEN: [u8; 20] = [
    0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc, 0x7f,
    0xfd, 0x01, 0xc0, 0xaf,
];

/// `SET key <raw bytes> NX PX ttl_ms`, as rslock does.
async fn raw_acquire(conn: &mut redis::aio::MultiplexedConnection, key: &str, ttl_ms: u64) {
    let reply: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(&RAW_TOKEN[..])
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms)
        .query_async(conn)
        .await
        .unwrap();
    assert!(reply.is_some(), "the raw holder took {key}");
}

/// A holder whose token is not UTF-8 (rslock) is a holder like any other:
/// `try_acquire` is busy, `acquire` waits for its expiry (through the
/// pub/sub waiter, which reads the holder, and through plain polling), and a
/// guard whose lock it took over is simply not held.
#[tokio::test]
async fn a_holder_whose_token_is_not_utf8_is_waited_for_not_an_error() {
    let server = RedisServer::start();
    let mut foreign = server.conn().await;
    let wait = WaitPolicy::timeout(Duration::from_secs(5));
    let notified = Lock::builder("shared:raw")
        .wait(wait)
        .connect(server.url())
        .await
        .unwrap();
    let polling = Lock::builder("shared:raw")
        .wait(wait)
        .build(server.conn().await)
        .unwrap();

    for lock in [&notified, &polling] {
        raw_acquire(&mut foreign, "shared:raw", 300).await;
        assert!(lock.try_acquire().await.unwrap().is_none(), "busy");
        let started = std::time::Instant::now();
        let guard = lock.acquire().await.expect("waits out the raw holder");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        guard.release().await.unwrap();
    }

    let short = Lock::builder("shared:raw")
        .ttl(Duration::from_millis(50))
        .build(server.conn().await)
        .unwrap();
    let guard = short.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    raw_acquire(&mut foreign, "shared:raw", 10_000).await;
    assert!(!guard.is_held().await.unwrap(), "the raw holder has it");
    assert!(guard.release().await.unwrap_err().is_not_held());
    let value: Vec<u8> = foreign.get("shared:raw").await.unwrap();
    assert_eq!(value, RAW_TOKEN, "we changed nothing");
}
