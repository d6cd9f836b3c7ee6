//! Redis down, restarted or stalled: typed errors, no panic, and the lock
//! works again once the server is back.

mod support;

use std::time::{Duration, Instant};

use redis_mutex::{Error, Lock, Operation, WaitPolicy};
use support::RedisServer;
use support::proxy::{Mode, Proxy};

/// Retries `try_acquire` until the server answers again, as a caller would.
async fn acquire_once_back(lock: &Lock) -> redis_mutex::LockGuard {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match lock.try_acquire().await {
            Ok(Some(guard)) => return guard,
            Ok(None) => panic!("nobody else holds {}", lock.key()),
            Err(e) => {
                assert!(matches!(e, Error::Redis { .. }), "{e:?}");
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
    let guard = lock.acquire().await.unwrap();
    let deadline_before = guard.deadline();
    server.pause();
    let err = guard.extend(Duration::from_secs(60)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Redis {
                operation: Operation::Extend,
                ..
            }
        ),
        "{err:?}"
    );
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
            Error::Redis {
                operation: Operation::Inspect,
                ..
            }
        ),
        "{err:?}"
    );
    server.resume();
    // The timed-out extend still ran once the server woke; the lock is ours.
    assert!(lock.try_acquire().await.unwrap().is_none(), "still held");
    assert!(guard.is_held().await.unwrap());
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
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        err.redis_error().is_some_and(|e| e.is_timeout()),
        "the connection's response timeout: {err:?}"
    );
    assert_eq!(proxy.forwarded("set"), 1);
    gone_within(&server, key, Duration::from_secs(3)).await;
    // Answers were lost on that connection: reset it, as a real network
    // failure would, and the lock works again.
    proxy.set(Mode::Pass);
    proxy.reset_connections();
    let guard = acquire_once_back(&lock).await;
    guard.release().await.unwrap();
}
