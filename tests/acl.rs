//! ACL users (F2-F4, L7): the least-privilege user of the README works, and a
//! user missing a permission gets a `PermissionDenied` that says which.

mod support;

use std::time::Duration;

use redis_mutex::{Error, Lock, Operation, WaitPolicy};
use support::RedisServer;

/// The README's ACL line for a lock user, keys under `locks:`.
const LOCK_USER_RULES: &[&str] = &[
    "on",
    ">pw",
    "resetkeys",
    "~locks:*",
    "~{locks:*",
    "resetchannels",
    "-@all",
    "+set",
    "+get",
    "+evalsha",
    "+eval",
    "+script|load",
    "+del",
    "+pexpire",
    "+incr",
];

fn user(server: &RedisServer, name: &str, rules: &[&str]) -> String {
    let mut command = vec!["ACL", "SETUSER", name];
    command.extend_from_slice(rules);
    server.cmd(&command);
    format!("redis://{name}:pw@127.0.0.1:{}/", server.port())
}

/// `LOCK_USER_RULES` without `rule`.
fn without(rule: &str) -> Vec<&'static str> {
    LOCK_USER_RULES
        .iter()
        .copied()
        .filter(|r| *r != rule)
        .collect()
}

async fn lock(url: &str, key: &str, fencing: bool) -> Lock {
    Lock::builder(key)
        .ttl(Duration::from_millis(600))
        .wait(WaitPolicy::timeout(Duration::from_millis(100)))
        .fencing(fencing)
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_least_privilege_user_can_do_everything_a_lock_does() {
    let server = RedisServer::start();
    let url = user(&server, "locker", LOCK_USER_RULES);
    for fencing in [false, true] {
        let lock = lock(&url, "locks:job", fencing).await;
        let mut guard = lock.acquire().await.unwrap();
        assert_eq!(guard.fence().is_some(), fencing);
        assert!(lock.try_acquire().await.unwrap().is_none(), "busy");
        assert!(guard.is_held().await.unwrap());
        guard.extend(Duration::from_millis(600)).await.unwrap();
        guard.auto_renew().unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!guard.is_lost(), "renewal works");
        guard.release().await.unwrap();
        // A dropped guard is released in the background (by EVAL).
        drop(lock.acquire().await.unwrap());
        let started = std::time::Instant::now();
        while server.exists("locks:job") {
            assert!(started.elapsed() < Duration::from_secs(1), "not released");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lock.run(|_| async {}).await.unwrap();
    }
    // Diagnose is not part of the user's rights: it reports unknowns.
    let lock = lock(&url, "locks:job", false).await;
    assert_eq!(lock.diagnose().await.unwrap()[0].maxmemory_policy, None);
}

#[tokio::test]
async fn a_user_without_evalsha_gets_a_permission_error_naming_it() {
    let server = RedisServer::start();
    let rules: Vec<_> = without("+evalsha")
        .into_iter()
        .filter(|r| *r != "+eval")
        .collect();
    let url = user(&server, "noscripts", &rules);
    let lock = lock(&url, "locks:noeval", false).await;
    let guard = lock.acquire().await.unwrap(); // SET is allowed
    let err = guard.release().await.unwrap_err();
    match &err {
        Error::PermissionDenied {
            operation: Operation::Release,
            command,
            ..
        } => assert_eq!(command.as_deref(), Some("evalsha")),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("`evalsha`"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_user_whose_scripts_may_not_delete_gets_a_permission_error_naming_the_scripts_commands() {
    let server = RedisServer::start();
    let url = user(&server, "nodel", &without("+del"));
    let lock = lock(&url, "locks:nodel", false).await;
    let guard = lock.acquire().await.unwrap();
    let err = guard.release().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::PermissionDenied {
                operation: Operation::Release,
                command: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("GET and DEL"), "{err}");
}

#[tokio::test]
async fn a_key_outside_the_users_patterns_is_a_permission_error_not_busy() {
    let server = RedisServer::start();
    let url = user(&server, "locker", LOCK_USER_RULES);
    let lock = lock(&url, "elsewhere:job", false).await;
    let err = lock.acquire().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::PermissionDenied {
                operation: Operation::Acquire,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("ACL key patterns"), "{err}");
    // Fencing needs INCR on the counter: without it, no lock and a clear error.
    let url = user(&server, "noincr", &without("+incr"));
    let err = lock_err(&url).await;
    assert!(err.to_string().contains("GET, INCR and SET"), "{err}");
}

async fn lock_err(url: &str) -> Error {
    lock(url, "locks:fenced", true)
        .await
        .acquire()
        .await
        .unwrap_err()
}

/// The README's commands for a user that takes semaphores, on top of the
/// lock user's.
const SEMAPHORE_COMMANDS: &[&str] = &[
    "+time",
    "+zremrangebyscore",
    "+zscore",
    "+zcard",
    "+zadd",
    "+zrange",
    "+zrangebyscore",
    "+zcount",
    "+zrem",
    "+pexpireat",
];

#[tokio::test]
async fn the_readmes_semaphore_user_can_do_everything_a_semaphore_does() {
    let server = RedisServer::start();
    let mut rules = LOCK_USER_RULES.to_vec();
    rules.extend_from_slice(SEMAPHORE_COMMANDS);
    let url = user(&server, "counter", &rules);
    let semaphore = redis_mutex::Semaphore::builder("locks:exports", 2)
        .ttl(Duration::from_millis(600))
        .wait(WaitPolicy::timeout(Duration::from_millis(100)))
        .connect(url.as_str())
        .await
        .unwrap();
    let mut permit = semaphore.acquire_many(2).await.unwrap();
    assert!(semaphore.try_acquire().await.unwrap().is_none(), "busy");
    assert!(
        semaphore.acquire().await.unwrap_err().is_busy(),
        "waited, polling"
    );
    assert!(permit.is_held().await.unwrap());
    assert_eq!(semaphore.in_use().await.unwrap(), 2);
    permit.extend(Duration::from_millis(600)).await.unwrap();
    permit.auto_renew().unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!permit.is_lost(), "renewal works");
    permit.release().await.unwrap();
    drop(semaphore.acquire().await.unwrap());
    let started = std::time::Instant::now();
    while server.exists("locks:exports") {
        assert!(started.elapsed() < Duration::from_secs(1), "not released");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Without one of them: a permission error naming it.
    let rules: Vec<&str> = rules.into_iter().filter(|r| *r != "+zcount").collect();
    let url = user(&server, "miscounter", &rules);
    let semaphore = redis_mutex::Semaphore::builder("locks:exports", 2)
        .connect(url.as_str())
        .await
        .unwrap();
    match semaphore.in_use().await {
        Err(Error::PermissionDenied { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_guides_read_write_lock_user_can_read_and_write() {
    let server = RedisServer::start();
    let mut rules = LOCK_USER_RULES.to_vec();
    rules.extend_from_slice(SEMAPHORE_COMMANDS);
    rules.push("+exists");
    let url = user(&server, "rw", &rules);
    let lock = redis_mutex::RwLock::builder("locks:config")
        .ttl(Duration::from_millis(600))
        .wait(WaitPolicy::timeout(Duration::from_millis(300)))
        .connect(url.as_str())
        .await
        .unwrap();
    let mut read = lock.read().await.unwrap();
    assert_eq!(lock.readers().await.unwrap(), 1);
    read.auto_renew().unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!read.is_lost(), "renewal works");
    // A writer waits (polling, without wake-ups) and gives up: its mark goes.
    let writer = lock.clone();
    let error = tokio::spawn(async move { writer.write().await.unwrap_err() })
        .await
        .unwrap();
    assert!(error.is_busy(), "{error:?}");
    assert!(!server.exists("{locks:config}:writer-waiting"));
    read.release().await.unwrap();
    lock.write().await.unwrap().release().await.unwrap();
    let rules: Vec<&str> = rules.into_iter().filter(|r| *r != "+exists").collect();
    let url = user(&server, "rw2", &rules);
    let lock = redis_mutex::RwLock::builder("locks:config")
        .connect(url.as_str())
        .await
        .unwrap();
    assert!(matches!(
        lock.read().await,
        Err(Error::PermissionDenied { .. })
    ));
}

/// The guide's commands for a user that takes fair locks, on top of the
/// lock user's, and those its wake-ups need.
const FAIR_COMMANDS: &[&str] = &[
    "+time",
    "+zrange",
    "+zrangebyscore",
    "+zremrangebyscore",
    "+zadd",
    "+zrem",
    "+zscore",
    "+zcount",
    "+pexpireat",
    "+exists",
    "+pttl",
    "+publish",
    "+subscribe",
    "+unsubscribe",
    "&{locks:*",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_fair_lock_user_can_do_everything_a_fair_lock_does() {
    let server = RedisServer::start();
    let mut rules = LOCK_USER_RULES.to_vec();
    rules.extend_from_slice(FAIR_COMMANDS);
    let url = user(&server, "queuer", &rules);
    let lock = redis_mutex::FairLock::builder("locks:queue")
        .ttl(Duration::from_millis(600))
        .waiter_ttl(Duration::from_secs(30))
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .connect(url.as_str())
        .await
        .unwrap();
    // A place that lapsed long ago: pruned by the first script.
    server.cmd(&["ZADD", "{locks:queue}:queue", "1", "ghost"]);
    server.cmd(&["ZADD", "{locks:queue}:queue-expiry", "1", "ghost"]);
    let mut guard = lock.acquire().await.unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none(), "busy");
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire().await.unwrap() }
    });
    let started = std::time::Instant::now();
    while lock.waiting().await.unwrap() != 1 {
        assert!(started.elapsed() < Duration::from_secs(2), "not in line");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(guard.is_held().await.unwrap());
    guard.extend(Duration::from_millis(600)).await.unwrap();
    guard.auto_renew().unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!guard.is_lost(), "renewal works");
    // Woken by the release (its keep-alive is 5 s or more away).
    let released = std::time::Instant::now();
    guard.release().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("the waiter got its turn")
        .unwrap();
    assert!(released.elapsed() < Duration::from_millis(500), "not woken");
    // A waiter first in line that gives up while the lock is held.
    let err = lock
        .acquire_timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_busy(), "{err}");
    next.release().await.unwrap();
    redis_mutex::flush_releases(Duration::from_secs(2)).await;
    assert!(!server.exists("{locks:queue}:queue"));
    // Every command of every script was allowed. (Valkey also logs the
    // redis crate's `CLIENT SETINFO` at connect, which the crate ignores
    // when refused and never needs.)
    let log: Vec<redis::Value> = redis::from_redis_value(server.cmd(&["ACL", "LOG"])).unwrap();
    let refused: Vec<&redis::Value> = log
        .iter()
        .filter(|entry| !format!("{entry:?}").contains("client|setinfo"))
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
}
