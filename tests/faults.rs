//! Redis down, restarted or stalled: typed errors, no panic, and the lock
//! works again once the server is back.

mod support;

use std::time::Duration;

use redis_mutex::{Error, Lock, Operation, WaitPolicy};
use support::proxy::{Mode, Proxy};
use support::{RedisServer, alive_tasks, settle_within};
use tokio::time::Instant;

/// Retries `try_acquire` until the server answers again, as a caller would.
async fn acquire_once_back(lock: &Lock) -> redis_mutex::LockGuard {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match lock.try_acquire().await {
            Ok(Some(guard)) => return guard,
            Ok(None) => panic!("nobody else holds {}", lock.key()),
            Err(e) => {
                assert!(
                    matches!(e, Error::Redis { .. } | Error::TimedOut { .. }),
                    "{e:?}"
                );
                assert!(
                    Instant::now() < deadline,
                    "the lock never worked again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn connecting_to_a_server_that_is_down_is_a_typed_error() {
    let server = RedisServer::start();
    server.stop();
    let started = Instant::now();
    let err = Lock::builder("faults:connect")
        .connect(server.url())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Redis {
                operation: Operation::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("connect"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails fast: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_down_at_acquire_then_back() {
    let server = RedisServer::start();
    // connect() makes a ConnectionManager that gives up reconnecting after
    // about half a second; the redis crate's default waits ~10 s per command.
    let lock = Lock::builder("faults:down")
        .wait(WaitPolicy::timeout(Duration::from_secs(2)))
        .connect(server.url())
        .await
        .unwrap();
    lock.acquire().await.unwrap().release().await.unwrap();

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = lock.acquire().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "fails fast: {:?}",
            started.elapsed()
        );
        match &err {
            Error::Redis {
                operation: Operation::Acquire,
                key,
                ..
            } => assert_eq!(key, "faults:down"),
            other => panic!("expected a Redis error during acquire, got {other:?}"),
        }
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "the redis error is chained"
        );
        assert!(lock.try_acquire().await.is_err());
    }

    server.restart();
    acquire_once_back(&lock).await.release().await.unwrap();
}

#[tokio::test]
async fn server_restarted_while_a_guard_is_held() {
    let server = RedisServer::start();
    let lock = Lock::builder("faults:restart")
        .ttl(Duration::from_secs(30))
        .build(server.manager().await)
        .unwrap();
    let guard = lock.acquire().await.unwrap();

    // No persistence: the restarted server has forgotten the lock.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match guard.is_held().await {
            Ok(held) => {
                assert!(!held, "the restarted server has no key");
                break;
            }
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        Error::Redis {
                            operation: Operation::Inspect,
                            ..
                        }
                    ),
                    "{e:?}"
                );
                assert!(Instant::now() < deadline, "never reconnected: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let err = guard.extend(Duration::from_secs(30)).await.unwrap_err();
    assert!(err.is_not_held(), "{err:?}");
    let err = guard.release().await.unwrap_err();
    assert!(err.is_not_held(), "the release reports the loss: {err:?}");

    acquire_once_back(&lock).await.release().await.unwrap();
}

#[tokio::test]
async fn release_while_the_server_is_down_is_a_typed_error() {
    let server = RedisServer::start();
    let lock = Lock::builder("faults:release")
        .ttl(Duration::from_secs(30))
        .connect(server.url())
        .await
        .unwrap();
    let guard = lock.acquire().await.unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none());
    server.stop();
    let err = guard.release().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Redis {
                operation: Operation::Release,
                ..
            }
        ),
        "{err:?}"
    );
    server.restart();
    acquire_once_back(&lock).await.release().await.unwrap();
}

#[tokio::test]
async fn a_stalled_server_times_out_release_and_extend_with_typed_errors() {
    let server = RedisServer::start();
    let lock = Lock::builder("faults:stalled")
        .ttl(Duration::from_secs(30))
        .build(server.conn().await)
        .unwrap();
    // The scripts cached first: a late EVALSHA of a script the server has
    // not seen fails NOSCRIPT, and nobody waits to send it again.
    lock.acquire().await.unwrap().release().await.unwrap();
    let guard = lock.acquire().await.unwrap();
    guard.extend(Duration::from_secs(30)).await.unwrap();
    let deadline_before = guard.deadline();
    server.pause();
    let err = guard.extend(Duration::from_secs(60)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TimedOut {
                operation: Operation::Extend,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_timeout() && err.is_retryable(), "{err:?}");
    assert!(err.redis_error().is_some_and(|e| e.is_timeout()), "{err:?}");
    assert_eq!(
        guard.deadline(),
        deadline_before,
        "a failed extend does not move the deadline"
    );
    let err = guard.is_held().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TimedOut {
                operation: Operation::Inspect,
                ..
            }
        ),
        "{err:?}"
    );
    server.resume();
    // The timed-out extend still ran once the server woke; the lock is ours.
    let pttl = server.pttl("faults:stalled");
    assert!(pttl > 30_000, "extended to 60 s late: PTTL {pttl} ms");
    assert!(lock.try_acquire().await.unwrap().is_none(), "still held");
    assert!(guard.is_held().await.unwrap());

    // A release to a stalled server: a typed timeout, not NotHeld and not
    // a hang.
    server.pause();
    let err = guard.release().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TimedOut {
                operation: Operation::Release,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_timeout() && !err.is_not_held(), "{err:?}");
    assert!(err.redis_error().is_some_and(|e| e.is_timeout()), "{err:?}");
    // It was sent: the server runs it when it wakes (the key, extended to
    // 60 s, goes at once), and the lock is free again.
    server.resume();
    gone_within(&server, "faults:stalled", Duration::from_secs(2)).await;
    lock.try_acquire()
        .await
        .unwrap()
        .expect("free")
        .release()
        .await
        .unwrap();
}

/// Polls until `key` is gone from `server`; panics after `bound`.
async fn gone_within(server: &RedisServer, key: &str, bound: Duration) -> Duration {
    let started = Instant::now();
    while server.exists(key) {
        assert!(
            started.elapsed() < bound,
            "{key} still held after {bound:?} (PTTL {} ms)",
            server.pttl(key)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// The `SET` reaches the server, its reply is lost and the connection breaks
/// (D1): the acquire must not report a lock it never saw confirmed, and the
/// key it may have set must not stay held for its TTL.
#[tokio::test]
async fn an_acquire_whose_reply_is_lost_is_not_acquired_and_leaves_no_lock() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let key = "faults:ambiguous";
    let lock = Lock::builder(key)
        .ttl(Duration::from_secs(30))
        .connect(proxy.url())
        .await
        .unwrap();
    for round in 0..3 {
        proxy.set(Mode::DropReplies);
        let acquiring = tokio::spawn({
            let lock = lock.clone();
            async move { lock.acquire().await }
        });
        proxy
            .wait_forwarded("set", round + 1, Duration::from_secs(2))
            .await;
        let started = Instant::now();
        while !server.exists(key) {
            assert!(started.elapsed() < Duration::from_secs(1), "the SET ran");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let token = server.get(key).unwrap();
        proxy.set(Mode::Pass);
        proxy.reset_connections();
        let err = acquiring.await.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Redis {
                    operation: Operation::Acquire,
                    ..
                }
            ),
            "round {round}: {err:?}"
        );
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            !format!("{err:?}{err}").contains(&token),
            "no token in errors"
        );
        // Released by token in the background, far sooner than the 30 s TTL.
        gone_within(&server, key, Duration::from_secs(3)).await;
        let guard = lock.try_acquire().await.unwrap().expect("free again");
        guard.release().await.unwrap();
    }
}

/// As above, but the connection stays open and the client's response
/// timeout fires: the cleanup goes out on the same connection, still without
/// answers, and runs after the SET.
#[tokio::test]
async fn an_acquire_that_times_out_with_its_reply_lost_leaves_no_lock() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let key = "faults:ambiguous-timeout";
    let lock = Lock::builder(key)
        .ttl(Duration::from_secs(30))
        .connect(proxy.url())
        .await
        .unwrap();
    proxy.set(Mode::DropReplies);
    let err = lock.acquire().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TimedOut {
                operation: Operation::Acquire,
                after: None,
                ..
            }
        ),
        "the connection's response timeout: {err:?}"
    );
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(proxy.forwarded("set"), 1);
    gone_within(&server, key, Duration::from_secs(3)).await;
    // Answers were lost on that connection: reset it, as a real network
    // failure would, and the lock works again.
    proxy.set(Mode::Pass);
    proxy.reset_connections();
    let guard = acquire_once_back(&lock).await;
    guard.release().await.unwrap();
}

/// Runs `DEBUG SLEEP secs` on its own connection, in a thread.
fn stall(server: &RedisServer, secs: &str) -> std::thread::JoinHandle<()> {
    let mut admin = server.sync_conn();
    let secs = secs.to_owned();
    std::thread::spawn(move || {
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs)
            .query(&mut admin)
            .unwrap();
    })
}

/// A multiplexed connection through `proxy` that waits `response_timeout`
/// for answers (the redis crate's default is 500 ms).
async fn patient_conn(
    proxy: &Proxy,
    response_timeout: Duration,
) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(response_timeout));
    redis::Client::open(proxy.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

fn timed_out_after(err: &Error, op: Operation, after: Duration) -> bool {
    matches!(err, Error::TimedOut { operation, after: Some(a), .. } if *operation == op && *a == after)
}

/// `DEBUG SLEEP` longer than the lock's command timeout (B8): every step
/// fails with a typed timeout after the lock's timeout (not the connection's
/// 500 ms), a held guard's deadline does not move, the SET that ran after
/// the sleep is released by token, and no task is left behind.
#[tokio::test]
async fn a_slow_server_past_the_command_timeout_gives_typed_timeouts_and_leaves_nothing() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let timeout = Duration::from_millis(150);
    let lock_on = |key: &str| {
        Lock::builder(key)
            .ttl(Duration::from_secs(10))
            .wait(WaitPolicy::no_wait())
            .command_timeout(timeout)
            .build(conn.clone())
            .unwrap()
    };
    let held = lock_on("faults:slow-held");
    let other = lock_on("faults:slow-other");
    let guard = held.acquire().await.unwrap();
    let deadline = guard.deadline();
    let baseline = alive_tasks();

    let sleeper = stall(&server, "1.2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let err = other.acquire().await.unwrap_err();
    let took = started.elapsed();
    assert!(
        timed_out_after(&err, Operation::Acquire, timeout),
        "{err:?}"
    );
    assert!(err.is_timeout() && err.is_retryable(), "{err:?}");
    assert!(
        err.to_string().contains("within 150ms"),
        "says how long: {err}"
    );
    // `after: Some(150ms)` above says it was ours, not the connection's 500 ms.
    assert!(took < Duration::from_secs(2), "{took:?}");

    let err = guard.extend(Duration::from_secs(10)).await.unwrap_err();
    assert!(timed_out_after(&err, Operation::Extend, timeout), "{err:?}");
    assert_eq!(
        guard.deadline(),
        deadline,
        "a timed-out extend moves nothing"
    );
    assert!(!guard.is_lost());
    let err = guard.is_held().await.unwrap_err();
    assert!(
        timed_out_after(&err, Operation::Inspect, timeout),
        "{err:?}"
    );

    sleeper.join().unwrap();
    // The timed-out SET ran after the sleep and took the lock; the crate's
    // background release (sent behind it on the same connection) removed it.
    gone_within(&server, "faults:slow-other", Duration::from_secs(2)).await;
    assert_eq!(server.command_calls("set"), 2, "both SETs ran");
    settle_within(baseline, Duration::from_secs(3)).await;

    other
        .try_acquire()
        .await
        .unwrap()
        .expect("free")
        .release()
        .await
        .unwrap();
    guard.release().await.unwrap();
}

/// Replies delayed by the network past the command timeout: typed timeouts,
/// no lock left behind, and the lock works once replies are prompt again.
#[tokio::test]
async fn replies_delayed_past_the_command_timeout_are_typed_timeouts() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let key = "faults:delayed";
    let timeout = Duration::from_millis(150);
    let lock = Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::no_wait())
        .command_timeout(timeout)
        .build(patient_conn(&proxy, Duration::from_secs(5)).await)
        .unwrap();
    let baseline = alive_tasks();
    proxy.set(Mode::Delay(Duration::from_millis(600)));
    let err = lock.acquire().await.unwrap_err();
    assert!(
        timed_out_after(&err, Operation::Acquire, timeout),
        "{err:?}"
    );
    // The SET ran at once; the release sent after the timeout runs too.
    gone_within(&server, key, Duration::from_secs(2)).await;
    proxy.set(Mode::Pass);
    settle_within(baseline, Duration::from_secs(3)).await;
    let guard = lock.acquire().await.unwrap();
    guard.release().await.unwrap();
}

/// An acquire whose answer comes after the lease's validity (a reply
/// delayed past the TTL, B2/D5) is not a lock: no guard, a distinct error.
#[tokio::test]
async fn an_acquire_answered_after_its_validity_is_not_a_lock() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let key = "faults:late-acquire";
    let lock = Lock::builder(key)
        .ttl(Duration::from_millis(200))
        .wait(WaitPolicy::no_wait())
        .build(patient_conn(&proxy, Duration::from_secs(5)).await)
        .unwrap();
    proxy.set(Mode::Delay(Duration::from_millis(400)));
    let err = lock.acquire().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ValidityExpired {
                operation: Operation::Acquire,
                elapsed,
                ..
            } if elapsed >= Duration::from_millis(400)
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    proxy.set(Mode::Pass);
    gone_within(&server, key, Duration::from_secs(2)).await;
    lock.acquire().await.unwrap().release().await.unwrap();
}

/// A manual extend answered after the guard's deadline is not trusted: the
/// guard stays lost even though the server extended the key (H2).
#[tokio::test]
async fn an_extend_answered_after_the_deadline_is_not_trusted() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let key = "faults:late-extend";
    let lock = Lock::builder(key)
        .ttl(Duration::from_millis(300))
        .build(patient_conn(&proxy, Duration::from_secs(5)).await)
        .unwrap();
    let guard = lock.acquire().await.unwrap();
    // Loads the script, so the delayed extend is one round trip.
    guard.extend(Duration::from_millis(300)).await.unwrap();
    proxy.set(Mode::Delay(Duration::from_millis(500)));
    let err = guard.extend(Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ValidityExpired {
                operation: Operation::Extend,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(guard.is_lost());
    assert_eq!(guard.remaining(), Duration::ZERO);
    assert!(server.pttl(key) > 3_000, "the server did extend it");
    proxy.set(Mode::Pass);
    guard.release().await.unwrap();
}

/// Replies delayed past the TTL while a renewing guard holds the lock: the
/// guard's `lost()` fires by its deadline, and a second client that takes
/// the lock only ever gets it after that deadline: never two guards that
/// both believe they hold it (O1). Commands still reach the server on time,
/// so the server keeps the key at least as long as the guard trusts it.
#[tokio::test]
async fn replies_delayed_past_the_ttl_fire_lost_and_never_make_two_holders() {
    let server = RedisServer::start();
    let proxy = Proxy::to(&server);
    let key = "faults:delayed-renewal";
    let holder = Lock::builder(key)
        .ttl(Duration::from_millis(300))
        .auto_renew(true)
        .build(patient_conn(&proxy, Duration::from_secs(5)).await)
        .unwrap();
    let rival = Lock::builder(key)
        .ttl(Duration::from_secs(5))
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .build(server.conn().await)
        .unwrap();
    for round in 0..3 {
        proxy.set(Mode::Pass);
        let baseline = alive_tasks();
        let guard = holder.acquire().await.unwrap();
        // Renewal works while replies are prompt.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!guard.is_lost(), "round {round}: renewed through a TTL");

        proxy.set(Mode::Delay(Duration::from_millis(800)));
        let rival_got_it = tokio::spawn({
            let rival = rival.clone();
            async move {
                let guard = rival.acquire().await.unwrap();
                (Instant::now(), guard)
            }
        });
        tokio::time::timeout(Duration::from_secs(2), guard.lost())
            .await
            .expect("lost() fired without any answer");
        let lost_at = Instant::now();
        let deadline = guard.deadline();
        assert!(lost_at >= deadline);
        assert!(
            lost_at - deadline < Duration::from_millis(150),
            "round {round}: fired {:?} after the deadline",
            lost_at - deadline
        );
        let (rival_at, rival_guard) = rival_got_it.await.unwrap();
        assert!(
            rival_at > deadline,
            "round {round}: the rival held the lock {:?} before the holder's deadline",
            deadline - rival_at
        );
        // Late answers to the holder's extends arrive while the rival holds
        // the lock: none of them may revive the holder's lease.
        let watching = Instant::now();
        while watching.elapsed() < Duration::from_millis(1_000) {
            assert!(!rival_guard.is_lost());
            assert!(
                guard.is_lost(),
                "round {round}: two guards believe they hold it"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(guard);
        rival_guard.release().await.unwrap();
        // The renewal task and any release tasks end.
        settle_within(baseline, Duration::from_secs(3)).await;
    }
}

/// `maxmemory` reached under `noeviction` (C7): an acquire fails with a
/// clear out-of-memory error and writes nothing, while release and extend
/// (scripts without a `#!lua` line) and renewal still work.
#[tokio::test]
async fn a_full_server_refuses_acquire_but_release_extend_and_renewal_work() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let conn = server.conn().await;
    let renewing = Lock::builder("faults:oom-held")
        .ttl(Duration::from_millis(300))
        .auto_renew(true)
        .build(conn.clone())
        .unwrap();
    let other = Lock::builder("faults:oom-other")
        .wait(WaitPolicy::no_wait())
        .build(conn.clone())
        .unwrap();
    let guard = renewing.acquire().await.unwrap();
    // Load the scripts while there is memory, as a running service would
    // have; SCRIPT LOAD itself is refused when full.
    guard.extend(Duration::from_millis(300)).await.unwrap();
    other.acquire().await.unwrap().release().await.unwrap();

    // Full: more used than allowed, and nothing may be evicted.
    server.cmd(&["DEBUG", "POPULATE", "20000", "fill", "64"]);
    server.cmd(&["CONFIG", "SET", "maxmemory", "1"]);

    let err = other.acquire().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfMemory {
                operation: Operation::Acquire,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("out of memory"), "{err}");
    assert!(!err.is_retryable(), "not a busy lock: {err:?}");
    assert_eq!(err.redis_error().and_then(|e| e.code()), Some("OOM"));
    assert!(!server.exists("faults:oom-other"), "nothing written");
    // Even a held lock is refused as OOM, not reported busy.
    let err = renewing.try_acquire().await.unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");

    // Renewal keeps the lock over several TTLs; a manual extend works.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!guard.is_lost(), "renewal works out of memory");
    guard.extend(Duration::from_millis(300)).await.unwrap();
    assert!(server.pttl("faults:oom-held") > 200);
    guard.release().await.unwrap();
    assert!(!server.exists("faults:oom-held"), "released out of memory");

    server.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    other.acquire().await.unwrap().release().await.unwrap();
}

/// With a `volatile-*` eviction policy, memory pressure deletes held locks
/// (V8, C6): `diagnose()` flags the policy, and a renewing guard hears of
/// the loss at its next extend instead of believing it still holds the lock.
#[tokio::test]
async fn an_evicted_lock_is_reported_lost_and_diagnose_flags_the_policy() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "volatile-lru"]);
    let lock = Lock::builder("faults:evicted")
        .ttl(Duration::from_secs(3))
        .auto_renew(true)
        .build(server.conn().await)
        .unwrap();
    server.cmd(&["CONFIG", "SET", "maxmemory", "100mb"]);
    let report = &lock.diagnose().await.unwrap()[0];
    assert!(
        report
            .weaknesses()
            .contains(&redis_mutex::Weakness::Eviction {
                policy: "volatile-lru".into()
            }),
        "{report}"
    );
    let guard = lock.acquire().await.unwrap();
    // Keys without a TTL fill the memory; only keys with one (the lock) can
    // be evicted, and the next write evicts it.
    server.cmd(&["DEBUG", "POPULATE", "20000", "fill", "64"]);
    server.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let _ = server.try_cmd(&["SET", "trigger", "x"]);
    assert!(!server.exists("faults:evicted"), "the lock was evicted");
    server.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    // Renewal runs every second; the deadline is ~2.97 s away.
    tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .expect("the next extend reports the loss");
    assert!(guard.release().await.unwrap_err().is_not_held());
}
