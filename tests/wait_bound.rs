//! The wait policy's deadline bounds the whole `acquire`, an attempt that
//! stalls included: by the deadline, or one command timeout (500 ms unless
//! set) when the deadline is sooner.

mod support;

use std::time::{Duration, Instant};

use redis::AsyncConnectionConfig;
use redis_mutex::{Error, Lock, WaitPolicy};
use support::RedisServer;

/// How late past its bound a call may return on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(400);

/// How long `call` took, and what it returned; fails the test (instead of
/// hanging it) when it is still running after 20 s.
async fn bounded<T>(call: impl std::future::Future<Output = T>) -> (Duration, T) {
    let started = Instant::now();
    let value = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("still waiting after 20 s");
    (started.elapsed(), value)
}

#[tokio::test]
async fn a_stalled_server_cannot_hold_acquire_past_its_deadline() {
    let server = RedisServer::start();
    // A connection that waits for answers forever: only the deadline ends
    // the wait.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    let connection = server
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let lock = Lock::builder("bound:stalled")
        .wait(WaitPolicy::timeout(Duration::from_secs(1)))
        .build(connection)
        .unwrap();
    lock.acquire().await.unwrap().release().await.unwrap();

    server.pause();
    let (took, result) = bounded(lock.acquire()).await;
    assert!(
        matches!(result, Err(Error::TimedOut { after: Some(d), .. }) if d == Duration::from_secs(1)),
        "{result:?}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(1) + SLACK,
        "took {took:?}"
    );
    // A shorter wait still gives the attempt one command timeout.
    let (took, result) = bounded(lock.acquire_timeout(Duration::from_millis(10))).await;
    assert!(matches!(result, Err(Error::TimedOut { .. })), "{result:?}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(500) + SLACK,
        "took {took:?}"
    );
    let (took, _) = bounded(lock.try_acquire()).await;
    assert!(took < Duration::from_millis(500) + SLACK, "took {took:?}");
    server.resume();
    // The cut attempts' SETs ran when the server woke; they are released
    // by token in the background.
    support::eventually(
        Duration::from_secs(3),
        "the cut SETs to be released",
        || !server.exists("bound:stalled"),
    )
    .await;
    lock.acquire().await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn a_dropped_connection_to_a_stalled_server_cannot_hold_acquire_past_its_deadline() {
    let server = RedisServer::start();
    // The README's connection, with the redis crate's default reconnect
    // schedule: each reconnect attempt to a stalled server waits out its
    // 1 s connection timeout, several times over, before a command fails.
    let connection = server.client().get_connection_manager().await.unwrap();
    let lock = Lock::builder("bound:dropped")
        .wait(WaitPolicy::timeout(Duration::from_secs(1)))
        .build(connection)
        .unwrap();
    lock.acquire().await.unwrap().release().await.unwrap();
    server.cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    server.pause();
    // The first command finds the connection dropped (at once) and starts
    // the reconnect; the next ones wait on the reconnect.
    let _ = bounded(lock.try_acquire()).await;
    let (took, result) = bounded(lock.acquire()).await;
    server.resume();
    assert!(result.is_err(), "{result:?}");
    assert!(
        took < Duration::from_secs(1) + SLACK,
        "took {took:?}: {result:?}"
    );
}
