//! Cancel safety of `acquire` (the deadpool way): many acquires cut off by
//! `tokio::time::timeout` at every point of their life, then no lock key may
//! be left behind, within a small bound far below the TTL.

mod support;

use std::time::{Duration, Instant};

use redis_mutex::{Lock, WaitPolicy};
use support::{RedisServer, yields};

const TTL: Duration = Duration::from_secs(60);
/// How long background cleanups may take; far below the TTL.
const CLEANUP_BOUND: Duration = Duration::from_secs(1);

async fn wait_until_gone(server: &RedisServer, key: &str) -> Duration {
    let started = Instant::now();
    while server.exists(key) {
        assert!(
            started.elapsed() < CLEANUP_BOUND,
            "a cancelled acquire left {key} held (PTTL {} ms)",
            server.pttl(key)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn acquires_cut_off_at_any_point_leave_no_lock_behind() {
    let server = RedisServer::start();
    let lock = Lock::builder("cancel:a")
        .ttl(TTL)
        .wait(WaitPolicy::no_wait())
        .build(server.conn().await)
        .unwrap();
    server.reset_stats();
    let (mut acquired, mut cut_off) = (0, 0);
    for i in 0..400 {
        tokio::select! {
            biased;
            _ = yields(i % 40) => cut_off += 1,
            result = lock.acquire() => match result {
                Ok(guard) => {
                    acquired += 1;
                    guard.release().await.unwrap();
                }
                Err(e) => panic!("{e:?}"),
            },
        }
        wait_until_gone(&server, "cancel:a").await;
    }
    assert!(
        cut_off > 0 && acquired > 0,
        "both outcomes exercised: {cut_off} cut off, {acquired} acquired"
    );
    // Some acquires were cut off after their SET reached the server, and
    // were cleaned up; the rest were cut off before sending.
    let sets = server.command_calls("set");
    assert!(
        sets > acquired,
        "no SET was in flight when cut off: {sets} SETs, {acquired} acquired"
    );
    assert!(sets < 400, "some acquires were cut off before sending");
}

/// The same with `tokio::time::timeout` of many short durations. The server
/// is kept busy by `DEBUG SLEEP`s from another connection, so that each reply
/// takes a few milliseconds and the timeouts land while SETs are in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquires_timed_out_leave_no_lock_behind() {
    let server = RedisServer::start();
    let lock = Lock::builder("cancel:t")
        .ttl(TTL)
        .wait(WaitPolicy::no_wait())
        .build(server.conn().await)
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slowdown = {
        let (stop, url) = (stop.clone(), server.url());
        std::thread::spawn(move || {
            let mut admin = redis::Client::open(url).unwrap().get_connection().unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _: () = redis::cmd("DEBUG")
                    .arg("SLEEP")
                    .arg("0.003")
                    .query(&mut admin)
                    .unwrap();
            }
        })
    };
    server.reset_stats();
    let (mut acquired, mut cut_off) = (0, 0);
    for i in 0..150u64 {
        match tokio::time::timeout(Duration::from_micros(i * 40), lock.acquire()).await {
            Ok(Ok(guard)) => {
                acquired += 1;
                guard.release().await.unwrap();
            }
            Ok(Err(e)) => assert!(e.is_busy(), "{e:?}"), // a cleanup still in flight
            Err(_elapsed) => cut_off += 1,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    slowdown.join().unwrap();
    wait_until_gone(&server, "cancel:t").await;
    assert!(
        cut_off > 0 && acquired > 0,
        "both outcomes exercised: {cut_off} cut off, {acquired} acquired"
    );
    assert!(
        server.command_calls("set") > acquired,
        "some SETs ran after their acquire was cut off"
    );
}

#[tokio::test]
async fn an_acquire_cut_off_while_the_server_is_stalled_is_cleaned_up_after() {
    // The SET waits in the socket while the server is stopped; the acquire
    // gives up; when the server resumes, the SET runs and takes the lock
    // (the connection stays open) unless the crate cleans up by token.
    let server = RedisServer::start();
    let lock = Lock::builder("cancel:stalled")
        .ttl(TTL)
        .build(server.conn().await)
        .unwrap();
    server.pause();
    let result = tokio::time::timeout(Duration::from_millis(100), lock.acquire()).await;
    assert!(result.is_err(), "cut off");
    server.resume();
    wait_until_gone(&server, "cancel:stalled").await;
    assert_eq!(
        server.command_calls("set"),
        1,
        "the SET did run on the server"
    );
    lock.try_acquire()
        .await
        .unwrap()
        .expect("free")
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_timed_out_acquire_is_a_typed_error_and_leaves_no_lock_behind() {
    let server = RedisServer::start();
    // The connection's own response timeout (500 ms by default) fires.
    let lock = Lock::builder("cancel:timeout")
        .ttl(TTL)
        .build(server.conn().await)
        .unwrap();
    server.pause();
    let started = Instant::now();
    let err = lock.acquire().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            err,
            redis_mutex::Error::TimedOut {
                operation: redis_mutex::Operation::Acquire,
                after: None, // the connection's own timeout
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable(), "{err:?}");
    server.resume();
    wait_until_gone(&server, "cancel:timeout").await;
    lock.try_acquire()
        .await
        .unwrap()
        .expect("free")
        .release()
        .await
        .unwrap();
}
