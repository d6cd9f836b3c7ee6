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

/// What waiting processes need besides the lock user's rights: `PTTL`, and
/// subscribing to the release channels (`&{locks:*`).
const WAITER_COMMANDS: &[&str] = &["+pttl", "+subscribe", "+unsubscribe", "&{locks:*"];

/// A mutex on `url` whose waiters poll only every 5 s (TTL 10 s), woken
/// through a notifier that connects as `notifier_url`.
async fn waiting_lock(url: &str, notifier_url: &str) -> Lock {
    let connection = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Lock::builder("locks:directed")
        .ttl(Duration::from_secs(10))
        .wait(
            WaitPolicy::timeout(Duration::from_secs(30))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        )
        .notify_with(&redis::Client::open(notifier_url).unwrap())
        .build(connection)
        .unwrap()
}

/// The `PUBLISH`es that `user` was refused, as `ACL LOG` counts them.
fn refused_publishes(server: &RedisServer, user: &str) -> i64 {
    let log: Vec<Vec<redis::Value>> = redis::from_redis_value(server.cmd(&["ACL", "LOG"])).unwrap();
    log.iter()
        .map(|entry| {
            let fields: Vec<String> = entry
                .iter()
                .map(|v| redis::from_redis_value::<String>(v.clone()).unwrap_or_default())
                .collect();
            let field = |name: &str| {
                let at = fields.iter().position(|f| f == name).unwrap();
                entry[at + 1].clone()
            };
            let refused = redis::from_redis_value::<String>(field("object")).unwrap();
            let by = redis::from_redis_value::<String>(field("username")).unwrap();
            if refused == "publish" && by == user {
                redis::from_redis_value::<i64>(field("count")).unwrap()
            } else {
                0
            }
        })
        .sum()
}

/// A process whose notifier may not `PUBLISH` cannot announce that it
/// waits (directed wake-ups): the others never name it, and it is woken by
/// their plain releases and by its watchdog after a release named for
/// another process (`GRACE`, 500 ms). It still gets the lock at the next
/// release, far from the 5 s poll and the 10 s TTL, and its refused
/// announcements are its heartbeat's few, not a loop of retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifier_that_may_not_publish_still_wakes_its_waiters_at_the_next_release() {
    let server = RedisServer::start();
    let mut full = LOCK_USER_RULES.to_vec();
    full.extend_from_slice(WAITER_COMMANDS);
    full.push("+publish");
    let mut mute = LOCK_USER_RULES.to_vec();
    mute.extend_from_slice(WAITER_COMMANDS);
    // Three users, so three notifiers: three waiting processes as the
    // routing sees them. The mute process's lock connection may publish
    // (its releases announce themselves), its notifier may not.
    let holder_url = user(&server, "holder", &full);
    let other_url = user(&server, "other", &full);
    let mute_url = user(&server, "mute", &mute);
    let holder = waiting_lock(&holder_url, &holder_url).await;
    let other = waiting_lock(&other_url, &other_url).await;
    let muted = waiting_lock(&holder_url, &mute_url).await;

    let guard = holder.acquire().await.unwrap();
    let hold_for = Duration::from_millis(1500);
    let take = |lock: Lock| {
        tokio::spawn(async move {
            let guard = lock.acquire().await.unwrap();
            let took = std::time::Instant::now();
            tokio::time::sleep(hold_for).await;
            let released = std::time::Instant::now();
            guard.release().await.unwrap();
            (took, released)
        })
    };
    // A waiter in each process, the holder's too, so that every process
    // subscribes and the announcing ones hear each other (and name each
    // other in their releases).
    let waiters = [take(holder.clone()), take(other), take(muted)];
    support::eventually(Duration::from_secs(5), "three processes subscribed", || {
        support::subscribers(&server, "{locks:directed}:released") == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // heartbeats
    assert!(
        refused_publishes(&server, "mute") >= 1,
        "the mute notifier tried to announce itself"
    );

    let released = std::time::Instant::now();
    guard.release().await.unwrap();
    let mut turns = tokio::time::timeout(Duration::from_secs(12), async {
        let mut turns = Vec::new();
        for waiter in waiters {
            turns.push(waiter.await.unwrap());
        }
        turns
    })
    .await
    .expect("every waiter got the lock, woken, not by its 5 s poll");
    // Each took the lock within a wake-up's time of the release before its
    // turn (a few ms here): the mute process is never named, so its turn
    // comes at a plain release. A notifier that took the refusal for a
    // broken connection (reconnecting, its waiters polling) took 450 ms and
    // more.
    turns.sort();
    let mut previous_release = released;
    for (took, released) in turns {
        let after = took - previous_release;
        assert!(after < Duration::from_millis(300), "{after:?}");
        previous_release = released;
    }
    // Refused announcements: a heartbeat's worth (about one a second over
    // some 7 s), not retries in a loop.
    let refused = refused_publishes(&server, "mute");
    assert!(refused <= 20, "{refused} refused PUBLISHes");
}
