//! Core semantics of `Lock` and `LockGuard` against a real redis-server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use redis_mutex::{Error, Lock, MAX_TTL, Operation, WaitPolicy};
use support::{RedisServer, commands_processed, patient_conn};
use tokio::time::Instant;

fn lock_on(server_conn: redis::aio::MultiplexedConnection, key: &str, ttl_ms: u64) -> Lock {
    Lock::builder(key)
        .ttl(Duration::from_millis(ttl_ms))
        .wait(WaitPolicy::no_wait())
        .build(server_conn)
        .unwrap()
}

#[tokio::test]
async fn acquire_sets_the_key_to_a_token_and_release_deletes_it() {
    let server = RedisServer::start();
    let lock = lock_on(server.conn().await, "jobs:a", 10_000);
    let guard = lock.acquire().await.unwrap();

    let token = server
        .get("jobs:a")
        .expect("the key is exactly the name given");
    assert!(
        token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    let pttl = server.pttl("jobs:a");
    assert!(pttl > 9_000 && pttl <= 10_000, "PX ttl: {pttl}");
    assert!(guard.is_held().await.unwrap());
    assert!(
        !format!("{guard:?}").contains(&token),
        "Debug must not show the token"
    );

    guard.release().await.unwrap();
    assert!(!server.exists("jobs:a"));
}

#[tokio::test]
async fn each_acquisition_has_a_fresh_token() {
    let server = RedisServer::start();
    let lock = lock_on(server.conn().await, "jobs:fresh", 10_000);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let guard = lock.acquire().await.unwrap();
        assert!(seen.insert(server.get("jobs:fresh").unwrap()));
        guard.release().await.unwrap();
    }
}

#[tokio::test]
async fn a_held_lock_is_busy_for_others() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let holder = lock_on(conn.clone(), "jobs:b", 10_000)
        .acquire()
        .await
        .unwrap();

    let other = lock_on(conn.clone(), "jobs:b", 10_000);
    assert!(other.try_acquire().await.unwrap().is_none());

    let patient = Lock::builder("jobs:b")
        .wait(WaitPolicy::timeout(Duration::from_millis(200)))
        .build(conn)
        .unwrap();
    let started = std::time::Instant::now();
    match patient.acquire().await {
        Err(Error::Busy {
            key,
            waited,
            attempts,
        }) => {
            assert_eq!(key, "jobs:b");
            assert!(waited >= Duration::from_millis(200), "{waited:?}");
            assert!(attempts > 1, "it retried: {attempts}");
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    holder.release().await.unwrap();
    other
        .try_acquire()
        .await
        .unwrap()
        .expect("free after release")
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn acquire_waits_for_a_release() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let holder = lock_on(conn.clone(), "jobs:wait", 10_000)
        .acquire()
        .await
        .unwrap();
    let waiter = Lock::builder("jobs:wait")
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .build(conn)
        .unwrap();
    let waiting = tokio::spawn(async move { waiter.acquire().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiting.is_finished());
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    guard.release().await.unwrap();
}

#[tokio::test]
async fn an_expired_holder_cannot_release_or_extend_the_next_holders_lock() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let old = lock_on(conn.clone(), "jobs:c", 100)
        .acquire()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(old.remaining(), Duration::ZERO);
    assert!(!old.is_held().await.unwrap());

    let new = lock_on(conn, "jobs:c", 10_000)
        .acquire()
        .await
        .expect("the expired lock is free");
    let new_token = server.get("jobs:c").unwrap();

    let err = old.extend(Duration::from_secs(10)).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotHeld { key } if key == "jobs:c"),
        "{err:?}"
    );
    assert!(err.is_not_held());
    let err = old.release().await.unwrap_err();
    assert!(err.is_not_held(), "{err:?}");
    assert_eq!(
        err.to_string(),
        r#"lock "jobs:c" is not held any more: it expired or another owner took it"#
    );

    assert_eq!(
        server.get("jobs:c").as_deref(),
        Some(new_token.as_str()),
        "new holder untouched"
    );
    assert!(server.pttl("jobs:c") > 9_000, "new holder's TTL untouched");
    new.release().await.unwrap();
}

#[tokio::test]
async fn release_after_expiry_does_not_recreate_or_delete_anything() {
    let server = RedisServer::start();
    let guard = lock_on(server.conn().await, "jobs:gone", 50)
        .acquire()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        guard
            .extend(Duration::from_secs(5))
            .await
            .unwrap_err()
            .is_not_held()
    );
    assert!(
        !server.exists("jobs:gone"),
        "extend never re-creates an expired lock"
    );
    assert!(guard.release().await.unwrap_err().is_not_held());
}

/// Pauses `server` now and resumes it after `for_`, from a thread: the
/// answers to what is sent meanwhile are held up that long.
fn held_up(server: &Arc<RedisServer>, for_: Duration) -> std::thread::JoinHandle<()> {
    server.pause();
    let server = server.clone();
    std::thread::spawn(move || {
        std::thread::sleep(for_);
        server.resume();
    })
}

/// The local deadline counts from before the command was sent, never from
/// its answer. The answers are held up 300 ms (the server paused): counted
/// from the answer, the deadline would be 300 ms late, past the server's
/// expiry, which the drift margin (12 ms of 1 s) cannot hide.
#[tokio::test]
async fn extend_moves_the_server_ttl_and_the_local_deadline() {
    let server = Arc::new(RedisServer::start());
    let lock = lock_on(patient_conn(&server).await, "jobs:d", 1_000);
    let hold_up = Duration::from_millis(300);
    // Validity: the TTL less the drift margin, 1% + 2 ms.
    let (validity_1s, validity_20s) = (Duration::from_millis(988), Duration::from_millis(19_798));
    // Counted from before the send: at most this much later than `before`.
    let slack = Duration::from_millis(150);

    let resumer = held_up(&server, hold_up);
    let before = Instant::now();
    let guard = lock.acquire().await.unwrap();
    assert!(before.elapsed() >= hold_up, "the answer was held up");
    resumer.join().unwrap();
    let deadline = guard.deadline();
    assert!(deadline >= before + validity_1s);
    assert!(
        deadline < before + validity_1s + slack,
        "the deadline counts from the answer: {:?} late",
        deadline - (before + validity_1s)
    );
    assert!(guard.remaining() <= Duration::from_millis(1_000));

    let resumer = held_up(&server, hold_up);
    let before = Instant::now();
    guard.extend(Duration::from_secs(20)).await.unwrap();
    assert!(before.elapsed() >= hold_up, "the answer was held up");
    resumer.join().unwrap();
    let pttl = server.pttl("jobs:d");
    assert!(pttl > 19_000, "{pttl}");
    let deadline = guard.deadline();
    assert!(deadline >= before + validity_20s);
    assert!(
        deadline < before + validity_20s + slack,
        "the extended deadline counts from the answer: {:?} late",
        deadline - (before + validity_20s)
    );
    guard.release().await.unwrap();
}

#[tokio::test]
async fn release_survives_a_script_flush() {
    let server = RedisServer::start();
    let lock = lock_on(server.conn().await, "jobs:e", 10_000);
    // Load the scripts once, then flush the cache between acquire and release.
    lock.acquire().await.unwrap().release().await.unwrap();
    let guard = lock.acquire().await.unwrap();
    server.cmd(&["SCRIPT", "FLUSH"]);
    guard.extend(Duration::from_secs(10)).await.unwrap();
    server.cmd(&["SCRIPT", "FLUSH"]);
    guard.release().await.unwrap();
    assert!(!server.exists("jobs:e"));
    // redis::Script loaded each script again after NOSCRIPT: release, then
    // extend after the first flush, then release after the second.
    assert_eq!(server.command_calls("script|load"), 3);
}

#[tokio::test]
async fn an_uncontended_acquire_and_release_is_exactly_two_commands() {
    let server = RedisServer::start();
    let lock = lock_on(server.conn().await, "jobs:f", 10_000);
    // Warm the script cache so the steady state is measured.
    lock.acquire().await.unwrap().release().await.unwrap();

    // What reading the stat costs by itself, on the admin connection.
    let first = commands_processed(&server);
    let admin_overhead = commands_processed(&server) - first;

    server.reset_stats();
    let before = commands_processed(&server);
    let cycles = 10;
    for _ in 0..cycles {
        lock.acquire().await.unwrap().release().await.unwrap();
    }
    let after = commands_processed(&server);
    // Sent by the lock: one SET and one EVALSHA per cycle, nothing else.
    assert_eq!(server.command_calls("set"), cycles);
    assert_eq!(server.command_calls("evalsha"), cycles);
    assert_eq!(server.command_calls("eval"), 0);
    assert_eq!(server.command_calls("script|load"), 0);
    // Run inside the release script: one GET, one DEL and one PUBLISH (the
    // wake-up for waiters) per EVALSHA, so no GET was sent on its own.
    assert_eq!(server.command_calls("get"), cycles);
    assert_eq!(server.command_calls("del"), cycles);
    assert_eq!(server.command_calls("publish"), cycles);
    // And no other command at all reached the server: 2 sent per cycle, 3
    // more run inside the script (the server counts those too).
    assert_eq!(after - before - admin_overhead, 5 * cycles);
}

#[tokio::test]
async fn a_dropped_guard_is_released_in_the_background() {
    let server = RedisServer::start();
    let lock = lock_on(server.conn().await, "jobs:g", 30_000);
    drop(lock.acquire().await.unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while server.exists("jobs:g") {
        assert!(
            std::time::Instant::now() < deadline,
            "dropped guard still holds the key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lock.try_acquire()
        .await
        .unwrap()
        .expect("free again")
        .release()
        .await
        .unwrap();
}

#[test]
fn a_guard_dropped_without_a_runtime_leaves_the_key_to_expire() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let guard = runtime.block_on(async {
        let lock = lock_on(server.conn().await, "jobs:h", 300);
        lock.acquire().await.unwrap()
    });
    drop(guard); // outside the runtime: no panic, no blocking
    assert!(server.exists("jobs:h"), "nothing could release it");
    std::thread::sleep(Duration::from_millis(400));
    assert!(!server.exists("jobs:h"), "the TTL ended it");
}

#[tokio::test]
async fn works_over_a_connection_manager_a_url_and_a_client() {
    let server = RedisServer::start();
    let over_manager = Lock::builder("jobs:i")
        .wait(WaitPolicy::no_wait())
        .build(server.manager().await)
        .unwrap();
    let from_url = Lock::builder("jobs:i")
        .wait(WaitPolicy::no_wait())
        .connect(server.url())
        .await
        .unwrap();
    let from_client = Lock::builder("jobs:i")
        .wait(WaitPolicy::no_wait())
        .client(&server.client())
        .await
        .unwrap();

    for (lock, others) in [
        (&over_manager, [&from_url, &from_client]),
        (&from_url, [&over_manager, &from_client]),
        (&from_client, [&over_manager, &from_url]),
    ] {
        let guard = lock.acquire().await.unwrap();
        for other in others {
            assert!(other.try_acquire().await.unwrap().is_none());
        }
        guard.release().await.unwrap();
    }
}

#[tokio::test]
async fn a_key_of_another_type_is_a_wrong_type_error_not_busy() {
    let server = RedisServer::start();
    // A Redisson lock is a hash.
    server.cmd(&["HSET", "jobs:redisson", "8743c9c0:1", "1"]);
    let lock = Lock::builder("jobs:redisson")
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .build(server.conn().await)
        .unwrap();
    let started = std::time::Instant::now();
    let err = lock.acquire().await.unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { key, .. } if key == "jobs:redisson"),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no waiting on a foreign key"
    );
    assert!(err.to_string().contains("another type"), "{err}");
    assert!(err.redis_error().is_some());
    assert!(
        lock.try_acquire()
            .await
            .unwrap_err()
            .to_string()
            .contains("another type")
    );
    assert_eq!(
        server.cmd(&["TYPE", "jobs:redisson"]),
        redis::Value::SimpleString("hash".into())
    );

    // A key replaced by a hash under a held guard: release and extend say so.
    let lock = lock_on(server.conn().await, "jobs:replaced", 10_000);
    let guard = lock.acquire().await.unwrap();
    server.cmd(&["DEL", "jobs:replaced"]);
    server.cmd(&["HSET", "jobs:replaced", "f", "v"]);
    assert!(matches!(
        guard.extend(Duration::from_secs(1)).await,
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        guard.release().await,
        Err(Error::WrongType { .. })
    ));
    assert!(server.exists("jobs:replaced"), "nothing deleted");
}

#[tokio::test]
async fn invalid_arguments_name_the_field_and_the_bound() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let invalid = |result: redis_mutex::Result<Lock>| match result {
        Err(Error::InvalidArgument { field, reason }) => (field, reason),
        other => panic!("expected InvalidArgument, got {other:?}"),
    };

    let (field, reason) = invalid(Lock::builder("").build(conn.clone()));
    assert_eq!((field, reason.as_str()), ("key", "must not be empty"));

    let (field, reason) = invalid(Lock::builder("k").ttl(Duration::ZERO).build(conn.clone()));
    assert_eq!(field, "ttl");
    assert!(reason.contains("minimum of 10ms"), "{reason}");

    let (field, reason) = invalid(
        Lock::builder("k")
            .ttl(MAX_TTL + Duration::from_secs(1))
            .build(conn.clone()),
    );
    assert_eq!(field, "ttl");
    assert!(reason.contains("maximum"), "{reason}");

    // A TTL whose milliseconds overflow u64.
    let (field, _) = invalid(Lock::builder("k").ttl(Duration::MAX).build(conn.clone()));
    assert_eq!(field, "ttl");

    let busy_loop =
        WaitPolicy::timeout(Duration::from_secs(1)).backoff(Duration::ZERO, Duration::ZERO);
    let (field, _) = invalid(Lock::builder("k").wait(busy_loop).build(conn.clone()));
    assert_eq!(field, "min_backoff");

    // Connecting validates before it dials.
    let (field, _) = invalid(Lock::builder("").connect(server.url()).await);
    assert_eq!(field, "key");

    let lock = lock_on(conn, "k", 10_000);
    let guard = lock.acquire().await.unwrap();
    for bad in [Duration::ZERO, Duration::MAX] {
        let err = guard.extend(bad).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { field: "ttl", .. }),
            "{err:?}"
        );
    }
    assert!(
        server.pttl("k") > 9_000,
        "a rejected extend changes nothing"
    );
    guard.release().await.unwrap();
    assert_eq!(Operation::Acquire.to_string(), "acquire");
}

/// The field an `InvalidArgument` names, or a panic naming what came instead.
fn invalid_field(result: redis_mutex::Result<Lock>) -> &'static str {
    match result {
        Err(Error::InvalidArgument { field, .. }) => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

fn limits_builder() -> redis_mutex::LockBuilder {
    Lock::builder("limits:k").ttl(Duration::from_secs(1))
}

/// The backoff bounds: at least 1 ms, as the error for zero says, and at
/// most `MAX_TTL`; `Duration::MAX` was accepted, and panicked in the wait.
#[tokio::test]
async fn backoff_bounds_are_checked_as_stated_at_their_extremes() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let ms = Duration::from_millis;
    for (min, max, field) in [
        (Duration::MAX, Duration::MAX, "max_backoff"),
        (ms(1), Duration::MAX, "max_backoff"),
        (ms(1), MAX_TTL + Duration::from_nanos(1), "max_backoff"),
        (
            Duration::from_nanos(1),
            Duration::from_nanos(1),
            "min_backoff",
        ),
        (Duration::from_micros(999), ms(5), "min_backoff"),
    ] {
        for policy in [WaitPolicy::forever(), WaitPolicy::timeout(ms(10))] {
            let wait = policy.backoff(min, max);
            let built = limits_builder().wait(wait).build(conn.clone());
            assert_eq!(invalid_field(built), field, "{wait:?}");
        }
    }
    let widest = WaitPolicy::forever().backoff(ms(1), MAX_TTL);
    assert!(limits_builder().wait(widest).build(conn).is_ok());
}

/// The drift margin: a factor that is no number, or a margin past any TTL,
/// named as such, also where other settings are checked against the
/// validity it leaves.
#[tokio::test]
async fn clock_drift_extremes_are_refused_by_name() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    for (factor, fixed) in [
        (f64::NAN, Duration::ZERO),
        (f64::INFINITY, Duration::ZERO),
        (f64::NEG_INFINITY, Duration::ZERO),
        (f64::MAX, Duration::ZERO),
        (0.01, Duration::MAX),
    ] {
        let drifting = limits_builder().clock_drift(factor, fixed);
        assert_eq!(
            invalid_field(drifting.clone().build(conn.clone())),
            "clock_drift"
        );
        let replicated = drifting.wait_for_replicas(1, Duration::from_millis(10));
        assert_eq!(invalid_field(replicated.build(conn.clone())), "clock_drift");
    }
}

/// Replica sync: a count of `u32::MAX` overflows nothing (it overflowed
/// with the local fsync added), and fails typed; a timeout is bounded.
#[tokio::test]
async fn replica_sync_extremes_are_refused_by_name_or_fail_typed() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let ms = Duration::from_millis;
    let build = |b: redis_mutex::LockBuilder| b.build(conn.clone());
    assert_eq!(
        invalid_field(build(limits_builder().wait_for_replicas(1, Duration::MAX))),
        "replica_timeout"
    );
    assert_eq!(
        invalid_field(build(limits_builder().wait_for_aof(true, 1, Duration::MAX))),
        "replica_timeout"
    );
    assert_eq!(
        invalid_field(build(limits_builder().wait_for_aof(false, 0, ms(10)))),
        "replicas"
    );
    let all_replicas = build(limits_builder().wait_for_replicas(u32::MAX, ms(10))).unwrap();
    let err = all_replicas.acquire().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                required: u32::MAX,
                ..
            }
        ),
        "{err:?}"
    );
    let all_aof = build(limits_builder().wait_for_aof(true, u32::MAX, ms(10))).unwrap();
    let err = all_aof.acquire().await.unwrap_err();
    // Redis 7.0 has no WAITAOF; a server with it (Valkey, Redis 7.2+)
    // refuses a local fsync without appendonly: typed either way, released.
    let refused_local_fsync = matches!(
        &err,
        Error::Redis { operation: Operation::Replicate, source, .. }
            if source.to_string().contains("appendonly is disabled")
    );
    assert!(
        matches!(err, Error::UnsupportedServer { .. }) || refused_local_fsync,
        "{err:?}"
    );
    assert!(!server.exists("limits:k"), "released after each");
}

/// Timeouts and caps without end: a command timeout of `Duration::MAX` is
/// none, a cap on holding past any instant is no cap, and a Redlock's
/// per-node timeout is bounded by the TTL.
#[tokio::test]
async fn timeouts_and_caps_without_end_are_none_or_refused_by_name() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let patient = limits_builder()
        .command_timeout(Duration::MAX)
        .build(conn.clone())
        .unwrap();
    patient.acquire().await.unwrap().release().await.unwrap();

    let uncapped = limits_builder()
        .max_hold(Duration::MAX)
        .auto_renew(true)
        .build(conn.clone())
        .unwrap();
    let guard = uncapped.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(guard.is_held().await.unwrap(), "renewed");
    guard.release().await.unwrap();

    let quorum = limits_builder()
        .node_timeout(Duration::MAX)
        .build_quorum(vec![conn]);
    assert_eq!(invalid_field(quorum), "node_timeout");
}

/// Waits without end, or as good as, work: the deadline that does not fit
/// in an `Instant` is none.
#[tokio::test]
async fn waits_without_end_work() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let ms = Duration::from_millis;
    let holder = lock_on(conn.clone(), "limits:wait", 200);
    for wait in [
        WaitPolicy::forever(),
        WaitPolicy::timeout(Duration::MAX),
        WaitPolicy::forever().backoff(ms(1), MAX_TTL),
    ] {
        let waiter = Lock::builder("limits:wait")
            .wait(wait)
            .build(conn.clone())
            .unwrap();
        let held = holder.acquire().await.unwrap();
        let guard = waiter.acquire().await.unwrap();
        assert!(held.release().await.unwrap_err().is_not_held());
        guard.release().await.unwrap();

        let held = holder.acquire().await.unwrap();
        let guard = waiter.acquire_timeout(Duration::MAX).await.unwrap();
        assert!(held.release().await.unwrap_err().is_not_held());
        guard.release().await.unwrap();
    }
}
