//! Each error's message says why, the cause included: the messages the
//! `Error` docs show, made by real servers.

mod support;

use std::time::Duration;

use redis_mutex::{Error, Lock, WaitPolicy};
use support::RedisServer;

fn show(what: &str, error: &Error) -> String {
    let text = error.to_string();
    eprintln!("{what}: {text}");
    text
}

#[tokio::test]
async fn every_message_names_its_cause() {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let lock = Lock::builder("jobs")
        .wait(WaitPolicy::timeout(Duration::from_millis(50)))
        .connect(server.url())
        .await
        .unwrap();

    let guard = lock.acquire().await.unwrap();
    let busy = lock.acquire().await.unwrap_err();
    assert!(
        show("Busy", &busy)
            .starts_with("lock \"jobs\" is busy: another owner held it for the whole wait (")
    );
    server.cmd(&["DEL", "jobs"]);
    let not_held = guard.release().await.unwrap_err();
    assert_eq!(
        show("NotHeld", &not_held),
        "lock \"jobs\" is not held any more: it expired or another owner took it"
    );

    server.cmd(&["HSET", "jobs", "a", "b"]);
    let wrong = lock.try_acquire().await.unwrap_err();
    assert!(show("WrongType", &wrong).ends_with("(a lock is a string, a semaphore a sorted set; or a foreign lock format, such as a Redisson hash?): WRONGTYPE Operation against a key holding the wrong kind of value"));
    server.cmd(&["DEL", "jobs"]);

    let rw = redis_mutex::RwLock::builder("cfg")
        .connect(server.url())
        .await
        .unwrap();
    let read = rw.read().await.unwrap();
    let upgrade = rw.write().await.unwrap_err();
    assert_eq!(
        show("WaitsForItself", &upgrade),
        "read-write lock \"cfg\": this task holds its read hold, so a write hold would wait for itself (upgrading a read to the write, and reading under the write, are refused: release first)"
    );
    read.release().await.unwrap();

    // Full: more used than allowed, and nothing may be evicted.
    server.cmd(&["DEBUG", "POPULATE", "2000", "fill", "64"]);
    server.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let oom = lock.try_acquire().await.unwrap_err();
    assert!(
        show("OutOfMemory", &oom).contains("nothing was written: OOM"),
        "{oom}"
    );
    server.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    server.cmd(&["FLUSHALL"]);

    server.cmd(&[
        "ACL", "SETUSER", "nosha", "on", ">pw", "~*", "&*", "+@all", "-evalsha",
    ]);
    let denied = Lock::builder("jobs")
        .connect(format!("redis://nosha:pw@127.0.0.1:{}/", server.port()))
        .await
        .unwrap();
    let guard = denied.acquire().await.unwrap();
    let refused = guard.release().await.unwrap_err();
    assert!(show("PermissionDenied", &refused).contains("the user may not run `evalsha`"));

    let auth = Lock::builder("jobs")
        .connect(format!("redis://nosha:wrong@127.0.0.1:{}/", server.port()))
        .await
        .unwrap_err();
    let text = show("AuthenticationFailed", &auth);
    assert!(
        text.contains("refused the credentials") && text.contains("Password authentication failed"),
        "{text}"
    );
    assert!(!text.contains("wrong@"), "{text}");

    let invalid = Lock::builder("jobs")
        .ttl(Duration::ZERO)
        .build(server.manager().await)
        .unwrap_err();
    assert!(show("InvalidArgument", &invalid).starts_with("invalid ttl: "));

    let timed = Lock::builder("jobs")
        .command_timeout(Duration::from_millis(200))
        .connect(server.url())
        .await
        .unwrap();
    server.pause();
    let timed_out = timed.try_acquire().await.unwrap_err();
    server.resume();
    assert_eq!(
        show("TimedOut", &timed_out),
        "no answer from redis within 200ms during acquire of lock \"jobs\""
    );

    server.stop();
    let down = lock.try_acquire().await.unwrap_err();
    let text = show("Redis", &down);
    assert!(
        text.starts_with("redis error during acquire of \"jobs\": "),
        "{text}"
    );
    assert!(
        text.len() > "redis error during acquire of \"jobs\": ".len() + 5,
        "{text}"
    );
}
