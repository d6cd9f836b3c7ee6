//! Mutual exclusion under real contention: tasks on several connections and
//! several OS processes hammer one key. Inside the critical section each does
//! a non-atomic read-modify-write of a Redis counter and checks an "inside"
//! marker, so any overlap shows up as a marker count above one or as a lost
//! update.

mod support;

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rand::RngExt;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis_mutex::{Lock, WaitPolicy};
use support::RedisServer;

const KEY: &str = "exclusion:lock";
const COUNTER: &str = "exclusion:counter";
const INSIDE: &str = "exclusion:inside";
const OVERLAPS: &str = "exclusion:overlaps";
const SECTIONS_PER_TASK: u32 = 6;

const TASKS: usize = 32;
const CONNECTIONS: usize = 4;
const PROCESSES: usize = 2;
const TASKS_PER_PROCESS: usize = 8;
/// The URL of the server, for a contender process started by the test.
const CONTENDER_URL_ENV: &str = "REDIS_MUTEX_CONTENDER_URL";

fn lock_over(connection: MultiplexedConnection) -> Lock {
    Lock::builder(KEY)
        .ttl(Duration::from_secs(20))
        .wait(WaitPolicy::timeout(Duration::from_secs(120)))
        .build(connection)
        .unwrap()
}

/// One contender: `SECTIONS_PER_TASK` critical sections.
async fn contend(lock: Lock, mut data: MultiplexedConnection, local_inside: Arc<AtomicU32>) {
    for _ in 0..SECTIONS_PER_TASK {
        let guard = lock.acquire().await.unwrap();
        let inside: i64 = data.incr(INSIDE, 1).await.unwrap();
        let local = local_inside.fetch_add(1, Ordering::SeqCst) + 1;
        if inside != 1 || local != 1 {
            let _: i64 = data.incr(OVERLAPS, 1).await.unwrap();
        }
        // A lost update if anyone else runs between this read and the write.
        let value: Option<u64> = data.get(COUNTER).await.unwrap();
        let pause = rand::rng().random_range(0..=500u64);
        tokio::time::sleep(Duration::from_micros(pause)).await;
        let _: () = data.set(COUNTER, value.unwrap_or(0) + 1).await.unwrap();
        local_inside.fetch_sub(1, Ordering::SeqCst);
        let _: i64 = data.decr(INSIDE, 1).await.unwrap();
        guard
            .release()
            .await
            .expect("the lease (20 s) outlives every section");
    }
}

/// Runs `tasks` contenders spread over `connections` connections.
async fn run_contenders(url: &str, tasks: usize, connections: usize) {
    let client = redis::Client::open(url).unwrap();
    let mut lock_connections = Vec::new();
    for _ in 0..connections {
        lock_connections.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    let data = client.get_multiplexed_async_connection().await.unwrap();
    let local_inside = Arc::new(AtomicU32::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let lock = lock_over(lock_connections[task % connections].clone());
            tokio::spawn(contend(lock, data.clone(), local_inside.clone()))
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

fn spawn_contender_process(url: &str) -> Child {
    support::ignored_test_process("contender_process")
        .env(CONTENDER_URL_ENV, url)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_two_holders_overlap_across_tasks_connections_and_processes() {
    let server = RedisServer::start();
    let url = server.url();
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn_contender_process(&url))
        .collect();

    run_contenders(&url, TASKS, CONNECTIONS).await;

    for child in &mut children {
        let status = tokio::task::block_in_place(|| child.wait().unwrap());
        assert!(status.success(), "a contender process failed: {status}");
    }
    let sections = (TASKS + PROCESSES * TASKS_PER_PROCESS) as u32 * SECTIONS_PER_TASK;
    assert_eq!(
        server.get(OVERLAPS),
        None,
        "two holders were inside at once"
    );
    assert_eq!(
        server.get(COUNTER),
        Some(sections.to_string()),
        "lost updates"
    );
    assert_eq!(server.get(INSIDE).as_deref(), Some("0"));
    assert!(!server.exists(KEY), "released at the end");
}

/// The body of a contender process; run by the test above through
/// `current_exe()`, ignored in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a separate process by no_two_holders_overlap_across_tasks_connections_and_processes"]
async fn contender_process() {
    let url = std::env::var(CONTENDER_URL_ENV).expect("run by the exclusion test");
    run_contenders(&url, TASKS_PER_PROCESS, 2).await;
}
