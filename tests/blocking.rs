//! The blocking API (crate feature `blocking`) on real redis-servers, from
//! plain threads: acquire, busy, extend, release, renewal while the thread
//! sleeps, `run`, a guard's `Drop` releasing before it returns (and within
//! its bound when the server stalls), the refusal inside a tokio runtime,
//! and exclusion between blocking and async holders across OS processes.
#![cfg(feature = "blocking")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use redis::AsyncCommands;
use redis_mutex::{Error, Lock, Locks, WaitPolicy, blocking};
use support::RedisServer;
use support::child::{self, Steps};

fn blocking_lock(url: &str, key: &str, ttl: Duration) -> blocking::Lock {
    Lock::builder(key)
        .ttl(ttl)
        .wait(WaitPolicy::timeout(Duration::from_millis(200)))
        .blocking()
        .connect(url)
        .unwrap()
}

#[test]
fn acquire_busy_extend_release() {
    let server = RedisServer::start();
    let lock = blocking_lock(&server.url(), "sync:job", Duration::from_secs(10));
    let other = blocking_lock(&server.url(), "sync:job", Duration::from_secs(10));

    let guard = lock.acquire().unwrap();
    assert_eq!(guard.key(), "sync:job");
    let holder = lock.holder().unwrap().expect("held");
    assert!(holder.by_this_crate, "the crate's token format");
    assert!(other.try_acquire().unwrap().is_none());
    let started = Instant::now();
    let err = other.acquire().unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let err = other
        .acquire_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(lock.is_locked().unwrap());
    assert!(guard.is_held().unwrap());

    guard.extend(Duration::from_secs(60)).unwrap();
    assert!(server.pttl("sync:job") > 50_000);
    assert!(guard.remaining() > Duration::from_secs(50));
    guard.release().unwrap();
    assert!(!server.exists("sync:job"));

    // Released when no longer ours: NotHeld, as for the async guard.
    let guard = lock.acquire().unwrap();
    server.cmd(&["DEL", "sync:job"]);
    assert!(matches!(guard.release(), Err(Error::NotHeld { .. })));
}

#[test]
fn renewal_keeps_the_lock_while_the_thread_sleeps() {
    let server = RedisServer::start();
    let lock = Lock::builder("sync:renewed")
        .ttl(Duration::from_millis(300))
        .auto_renew(true)
        .blocking()
        .connect(server.url())
        .unwrap();
    let guard = lock.acquire().unwrap();
    // Three TTLs with the thread asleep: only the blocking runtime's
    // renewal task can keep it.
    std::thread::sleep(Duration::from_millis(900));
    assert!(!guard.is_lost());
    assert!(guard.is_held().unwrap());
    guard.release().unwrap();

    // Renewal started on a guard by hand, the same.
    let lock = blocking_lock(&server.url(), "sync:by-hand", Duration::from_millis(300));
    let mut guard = lock.acquire().unwrap();
    guard.auto_renew().unwrap();
    std::thread::sleep(Duration::from_millis(900));
    assert!(guard.is_held().unwrap());
    guard.release().unwrap();
}

#[test]
fn run_returns_the_value_or_reports_the_loss() {
    let server = RedisServer::start();
    let lock = blocking_lock(&server.url(), "sync:run", Duration::from_millis(300));
    let value = lock
        .run(|lease| {
            std::thread::sleep(Duration::from_millis(700));
            assert!(!lease.is_lost(), "renewed while the body slept");
            42
        })
        .unwrap();
    assert_eq!(value, 42);
    assert!(!server.exists("sync:run"), "released after the body");

    let result = lock.run(|lease| {
        server.cmd(&["DEL", "sync:run"]);
        let started = Instant::now();
        while !lease.is_lost() && started.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(10));
        }
        "partial"
    });
    assert!(matches!(result, Err(Error::Lost { .. })), "{result:?}");
}

#[test]
fn a_dropped_guard_is_released_before_drop_returns() {
    let server = RedisServer::start();
    let lock = blocking_lock(&server.url(), "sync:dropped", Duration::from_secs(30));
    for _ in 0..20 {
        let guard = lock.acquire().unwrap();
        drop(guard);
        assert!(
            !server.exists("sync:dropped"),
            "still held right after drop"
        );
    }
}

#[test]
fn wait_lost_blocks_until_the_loss_and_a_handoff_is_checked_blocking() {
    let server = RedisServer::start();
    let lock = blocking_lock(&server.url(), "sync:watched", Duration::from_millis(400));
    let mut guard = lock.acquire().unwrap();
    guard.auto_renew().unwrap();

    // Held and renewed: the wait runs out, Ok(false).
    let started = Instant::now();
    assert!(!guard.wait_lost(Duration::from_millis(600)).unwrap());
    assert!(started.elapsed() >= Duration::from_millis(600));

    let handoff = guard.handoff();
    assert_eq!(handoff.key(), "sync:watched");
    assert!(lock.is_held_by(&handoff).unwrap());
    let other_key = blocking_lock(&server.url(), "sync:other", Duration::from_secs(1));
    assert!(!other_key.is_held_by(&handoff).unwrap());

    // Taken by someone else: renewal finds it, and the watcher thread
    // wakes well before its 5 s bound.
    server.cmd(&["SET", "sync:watched", "someone-else"]);
    let watcher = {
        let lease = guard.lease().clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while !lease.is_lost() && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
            lease.is_lost()
        })
    };
    let started = Instant::now();
    assert!(guard.wait_lost(Duration::from_secs(5)).unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(watcher.join().unwrap());
    assert!(!lock.is_held_by(&handoff).unwrap());
    assert!(matches!(guard.release(), Err(Error::NotHeld { .. })));
}

/// How many guards the exiting process holds.
const DROPPED_AT_EXIT: usize = 20;

#[test]
fn a_process_that_exits_right_after_dropping_its_guards_leaves_no_lock() {
    // The CLI case: guards dropped at the end of `main`, and the process
    // gone at once. Released in the background, most would be lost with
    // the process and stay until their TTL.
    let server = RedisServer::start();
    let mut child = child::spawn("drops_guards_and_exits_process", &server.url());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let left: Vec<usize> = (0..DROPPED_AT_EXIT)
        .filter(|i| server.exists(&format!("sync:exit:{i}")))
        .collect();
    assert!(
        left.is_empty(),
        "still held after the process exited: {left:?}"
    );
}

/// Started by the test above: holds locks, drops the guards, and exits the
/// moment the last drop returns.
#[test]
#[ignore = "started as a separate process by a_process_that_exits_right_after_dropping_its_guards_leaves_no_lock"]
fn drops_guards_and_exits_process() {
    let url = child::url();
    let locks = Locks::builder()
        .prefix("sync:exit:")
        .ttl(Duration::from_secs(30))
        .blocking()
        .connect(url.as_str())
        .unwrap();
    let guards: Vec<blocking::LockGuard> = (0..DROPPED_AT_EXIT)
        .map(|i| locks.lock(i.to_string()).unwrap().acquire().unwrap())
        .collect();
    drop(guards);
    std::process::exit(0);
}

#[test]
fn a_drop_against_a_stalled_server_returns_within_its_command_timeout() {
    let server = RedisServer::start();
    let lock = Lock::builder("sync:stalled")
        .ttl(Duration::from_secs(30))
        .command_timeout(Duration::from_millis(200))
        .blocking()
        .connect(server.url())
        .unwrap();
    let guard = lock.acquire().unwrap();
    server.pause();
    let started = Instant::now();
    drop(guard);
    let took = started.elapsed();
    server.resume();
    // The bound is 220 ms; far more means it waited for the server.
    assert!(took < Duration::from_secs(2), "drop took {took:?}");
    // The release cut there goes on in the background and lands.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.exists("sync:stalled") {
        assert!(Instant::now() < deadline, "never released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn locks_and_a_redlock_work_blocking_too() {
    let server = RedisServer::start();
    let locks = Locks::builder()
        .prefix("tenants:")
        .blocking()
        .connect(server.url())
        .unwrap();
    let guard = locks.lock("7").unwrap().acquire().unwrap();
    assert!(server.exists("tenants:7"));
    assert!(locks.lock("7").unwrap().try_acquire().unwrap().is_none());
    guard.release().unwrap();

    let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let lock = Lock::builder("sync:redlock")
        .blocking()
        .connect_quorum(nodes.iter().map(RedisServer::url))
        .unwrap();
    assert_eq!(lock.node_count(), 3);
    let guard = lock.acquire().unwrap();
    assert!(nodes.iter().all(|n| n.exists("sync:redlock")));
    guard.release().unwrap();
    assert!(nodes.iter().all(|n| !n.exists("sync:redlock")));
}

/// A blocking lock and a guard of it, made on a plain thread (a test's
/// runtime refuses to build one).
fn made_outside(url: String, key: &'static str) -> (blocking::Lock, blocking::LockGuard) {
    std::thread::spawn(move || {
        let lock = blocking_lock(&url, key, Duration::from_secs(30));
        let guard = lock.acquire().unwrap();
        (lock, guard)
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn inside_a_runtime_every_blocking_call_refuses_without_panicking() {
    let server = RedisServer::start();
    let err = Lock::builder("sync:inside")
        .blocking()
        .connect(server.url())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BlockingInRuntime {
                call: "blocking::LockBuilder::connect"
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("inside a tokio runtime"), "{err}");

    let (lock, guard) = made_outside(server.url(), "sync:inside");
    for err in [
        lock.acquire().unwrap_err(),
        lock.try_acquire().unwrap_err(),
        lock.run(|_| ()).unwrap_err(),
        guard.is_held().unwrap_err(),
        guard.extend(Duration::from_secs(5)).unwrap_err(),
        guard.wait_lost(Duration::from_secs(5)).unwrap_err(),
        lock.is_held_by(&guard.handoff()).unwrap_err(),
    ] {
        assert!(matches!(err, Error::BlockingInRuntime { .. }), "{err:?}");
    }
    // A spawn_blocking closure is inside the runtime's context too.
    let inner = lock.clone();
    let err = tokio::task::spawn_blocking(move || inner.try_acquire().map(|_| ()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::BlockingInRuntime { .. }), "{err:?}");

    // The async API still works on the same lock.
    assert!(lock.as_async().try_acquire().await.unwrap().is_none());

    // A release refused here, and so a drop here: released in the
    // background, without blocking.
    assert!(matches!(
        guard.release(),
        Err(Error::BlockingInRuntime { .. })
    ));
    support::eventually(Duration::from_secs(5), "released in the background", || {
        !server.exists("sync:inside")
    })
    .await;
    let (_lock, guard) = made_outside(server.url(), "sync:inside");
    drop(guard);
    support::eventually(Duration::from_secs(5), "dropped in the background", || {
        !server.exists("sync:inside")
    })
    .await;
}

const EXCLUSION_KEY: &str = "mixed:lock";
const COUNTER: &str = "mixed:counter";
const INSIDE: &str = "mixed:inside";
const OVERLAPS: &str = "mixed:overlaps";
const SECTIONS: u32 = 10;
const ASYNC_TASKS: u32 = 4;
const BLOCKING_THREADS: u32 = 3;

fn mixed_lock_builder() -> redis_mutex::LockBuilder {
    Lock::builder(EXCLUSION_KEY)
        .ttl(Duration::from_secs(20))
        .wait(WaitPolicy::timeout(Duration::from_secs(60)))
}

/// One async contender: a non-atomic read-modify-write of `COUNTER` per
/// section, and an "inside" marker that any overlap pushes above one.
async fn contend_async(lock: Lock, mut data: redis::aio::MultiplexedConnection) {
    for _ in 0..SECTIONS {
        let guard = lock.acquire().await.unwrap();
        let inside: i64 = data.incr(INSIDE, 1).await.unwrap();
        if inside != 1 {
            let _: i64 = data.incr(OVERLAPS, 1).await.unwrap();
        }
        let value: Option<u64> = data.get(COUNTER).await.unwrap();
        let pause = rand::rng().random_range(0..=500u64);
        tokio::time::sleep(Duration::from_micros(pause)).await;
        let _: () = data.set(COUNTER, value.unwrap_or(0) + 1).await.unwrap();
        let _: i64 = data.decr(INSIDE, 1).await.unwrap();
        guard.release().await.unwrap();
    }
}

/// The same, on a plain thread through the blocking API.
fn contend_blocking(lock: blocking::Lock, url: &str, local: &AtomicU32) {
    let mut data = redis::Client::open(url).unwrap().get_connection().unwrap();
    for _ in 0..SECTIONS {
        let guard = lock.acquire().unwrap();
        let inside: i64 = redis::cmd("INCR").arg(INSIDE).query(&mut data).unwrap();
        if inside != 1 || local.fetch_add(1, Ordering::SeqCst) != 0 {
            let _: i64 = redis::cmd("INCR").arg(OVERLAPS).query(&mut data).unwrap();
        }
        let value: Option<u64> = redis::cmd("GET").arg(COUNTER).query(&mut data).unwrap();
        std::thread::sleep(Duration::from_micros(rand::rng().random_range(0..=500u64)));
        let _: () = redis::cmd("SET")
            .arg(COUNTER)
            .arg(value.unwrap_or(0) + 1)
            .query(&mut data)
            .unwrap();
        local.fetch_sub(1, Ordering::SeqCst);
        let _: i64 = redis::cmd("DECR").arg(INSIDE).query(&mut data).unwrap();
        guard.release().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_and_async_holders_in_two_processes_never_overlap() {
    let server = RedisServer::start();
    let url = server.url();
    let mut child = child::spawn("blocking_contender_process", &url);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..ASYNC_TASKS {
        let connection = client.get_multiplexed_async_connection().await.unwrap();
        let lock = mixed_lock_builder().build(connection.clone()).unwrap();
        tasks.push(tokio::spawn(contend_async(lock, connection)));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let status = tokio::task::block_in_place(|| child.wait().unwrap());
    assert!(status.success(), "the blocking process failed: {status}");
    assert_eq!(
        server.get(OVERLAPS),
        None,
        "two holders were inside at once"
    );
    let sections = (ASYNC_TASKS + BLOCKING_THREADS) * SECTIONS;
    assert_eq!(
        server.get(COUNTER),
        Some(sections.to_string()),
        "lost updates"
    );
    assert!(!server.exists(EXCLUSION_KEY));
}

/// Started by the test above: blocking contenders on plain threads.
#[test]
#[ignore = "started as a separate process by blocking_and_async_holders_in_two_processes_never_overlap"]
fn blocking_contender_process() {
    let url = child::url();
    let lock = mixed_lock_builder()
        .blocking()
        .connect(url.as_str())
        .unwrap();
    let local = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..BLOCKING_THREADS)
        .map(|_| {
            let (lock, url, local) = (lock.clone(), url.clone(), local.clone());
            std::thread::spawn(move || contend_blocking(lock, &url, &local))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_holder_in_another_process_excludes_an_async_one_and_back() {
    let server = RedisServer::start();
    let lock = Lock::builder("mixed:handoff")
        .wait(WaitPolicy::timeout(Duration::from_secs(10)))
        .connect(server.url())
        .await
        .unwrap();
    let held_here = lock.acquire().await.unwrap();
    let mut child = child::spawn("blocking_holder_process", &server.url());
    let mut steps = Steps::of(&mut child);
    let mut next = || tokio::task::block_in_place(|| steps.next());
    // The child found it busy, and waits for it.
    assert_eq!(next(), "busy");
    held_here.release().await.unwrap();
    assert_eq!(next(), "held");
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "the child holds it"
    );
    // Let the child release, then the lock is ours again.
    steps.tell("release");
    assert_eq!(tokio::task::block_in_place(|| steps.next()), "released");
    lock.acquire().await.unwrap().release().await.unwrap();
    let status = tokio::task::block_in_place(|| child.wait().unwrap());
    assert!(status.success(), "{status}");
}

/// Started by the test above: takes the lock with the blocking API,
/// reporting each step on stdout, and releases it when told on stdin.
#[test]
#[ignore = "started as a separate process by a_blocking_holder_in_another_process_excludes_an_async_one_and_back"]
fn blocking_holder_process() {
    let url = child::url();
    let lock = Lock::builder("mixed:handoff")
        .wait(WaitPolicy::timeout(Duration::from_secs(10)))
        .blocking()
        .connect(url.as_str())
        .unwrap();
    assert!(lock.try_acquire().unwrap().is_none(), "held by the parent");
    child::say("busy");
    let guard = lock.acquire().unwrap();
    child::say("held");
    child::wait_for_parent();
    guard.release().unwrap();
    child::say("released");
}
