//! A guard dropped as a program ends: each test builds its own runtime, as
//! `#[tokio::main]` does, drops a guard at the end of `block_on`, drops the
//! runtime, and then looks at the key in a real redis-server.

mod support;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis_mutex::{Lock, flush_releases};
use support::RedisServer;
use tokio::runtime::{Builder, Runtime};

/// `flush_releases` counts the releases of the whole process: one test at a
/// time here, and nothing else in this binary spawns any.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn lock(server: &RedisServer, key: &str) -> Lock {
    Lock::builder(key)
        .ttl(Duration::from_secs(30))
        .command_timeout(Duration::from_millis(200))
        .connect(server.url())
        .await
        .unwrap()
}

/// The program's work: returns early, dropping its guard (an early `?`).
async fn work_that_drops_its_guard(lock: &Lock) {
    let _guard = lock.acquire().await.unwrap();
}

/// The documented behaviour without `flush_releases`: the runtime drops the
/// release's task before it ran, and the key stays until its TTL.
#[test]
fn without_flush_a_current_thread_runtime_ends_before_the_release_and_the_key_stays() {
    let _one = one_at_a_time();
    let server = RedisServer::start();
    let runtime = current_thread();
    runtime.block_on(async {
        let lock = lock(&server, "shutdown:kept").await;
        work_that_drops_its_guard(&lock).await;
    });
    drop(runtime);
    assert!(server.exists("shutdown:kept"), "released after all?");
    assert!(server.pttl("shutdown:kept") > 20_000, "lives until its TTL");

    // The dropped task gave its count back: nothing is left to wait for.
    let started = Instant::now();
    assert_eq!(
        current_thread().block_on(flush_releases(Duration::from_secs(10))),
        0
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// With `flush_releases` as `main`'s last step, the key is gone when the
/// program is, on both runtime flavours.
#[test]
fn flush_releases_before_the_runtime_ends_lets_the_release_finish() {
    let _one = one_at_a_time();
    let server = RedisServer::start();
    for (flavour, runtime) in [
        ("current-thread", current_thread as fn() -> Runtime),
        ("multi-thread", multi_thread),
    ] {
        for round in 0..3 {
            let runtime = runtime();
            let left = runtime.block_on(async {
                let lock = lock(&server, "shutdown:flushed").await;
                work_that_drops_its_guard(&lock).await;
                flush_releases(Duration::from_secs(10)).await
            });
            drop(runtime);
            assert_eq!(left, 0, "{flavour}, round {round}");
            assert!(
                !server.exists("shutdown:flushed"),
                "{flavour}, round {round}: the key outlived the program"
            );
        }
    }
}

/// A server that does not answer: the wait ends at `max_wait`, reporting
/// the release still pending; answered later, nothing is left.
#[test]
fn flush_releases_is_bounded_and_reports_what_is_left() {
    let _one = one_at_a_time();
    let server = RedisServer::start();
    let runtime = current_thread();
    runtime.block_on(async {
        let lock = lock(&server, "shutdown:stalled").await;
        let guard = lock.acquire().await.unwrap();
        server.pause();
        drop(guard);
        let started = Instant::now();
        assert_eq!(flush_releases(Duration::from_millis(300)).await, 1);
        assert!(started.elapsed() >= Duration::from_millis(300));
        server.resume();
        assert_eq!(flush_releases(Duration::from_secs(10)).await, 0);
    });
    drop(runtime);
    assert!(!server.exists("shutdown:stalled"));
}
