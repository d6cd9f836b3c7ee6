//! Redlock: one lock over 5 independent redis-servers started by the tests.
//! Mutual exclusion across processes, a minority of nodes killed, stalled or
//! restarted empty, a majority killed, failed and cancelled attempts leaving
//! nothing behind.

mod support;

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_mutex::{Error, Lock, NodeFailureReason, Operation, WaitPolicy};
use support::{RedisServer, eventually, subscribers, time_handoff, yields};

const NODES: usize = 5;
const NODE_TIMEOUT: Duration = Duration::from_millis(100);
/// How long background cleanups may take; far below any TTL used here.
const CLEANUP_BOUND: Duration = Duration::from_secs(2);

fn start_nodes() -> Vec<RedisServer> {
    (0..NODES).map(|_| RedisServer::start()).collect()
}

fn urls(servers: &[RedisServer]) -> Vec<String> {
    servers.iter().map(RedisServer::url).collect()
}

async fn redlock(servers: &[RedisServer], key: &str, ttl: Duration, wait: WaitPolicy) -> Lock {
    Lock::builder(key)
        .ttl(ttl)
        .wait(wait)
        .node_timeout(NODE_TIMEOUT)
        .connect_quorum(urls(servers))
        .await
        .unwrap()
}

/// The nodes (by index) that are running and hold `key`.
fn nodes_holding(servers: &[RedisServer], key: &str) -> Vec<usize> {
    (0..servers.len())
        .filter(|&i| servers[i].is_running() && !servers[i].is_paused() && servers[i].exists(key))
        .collect()
}

async fn wait_until_no_node_holds(servers: &[RedisServer], key: &str) {
    let started = Instant::now();
    loop {
        let holding = nodes_holding(servers, key);
        if holding.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < CLEANUP_BOUND,
            "{key} left on nodes {holding:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------
// Mutual exclusion
// ---------------------------------------------------------------------------

const KEY: &str = "redlock:exclusion";
const COUNTER: &str = "redlock:counter";
const INSIDE: &str = "redlock:inside";
const OVERLAPS: &str = "redlock:overlaps";
const SECTIONS_PER_TASK: u32 = 8;
const TASKS_PER_PROCESS: usize = 4;
const CHILD_PROCESSES: usize = 2;
const NODES_ENV: &str = "REDIS_MUTEX_REDLOCK_NODES";
const DATA_ENV: &str = "REDIS_MUTEX_REDLOCK_DATA";

/// `TASKS_PER_PROCESS` contenders in this process, each doing
/// `SECTIONS_PER_TASK` critical sections: a non-atomic read-modify-write of a
/// counter on the data server, checking an "inside" marker.
async fn run_contenders(node_urls: Vec<String>, data_url: &str) {
    let lock = Lock::builder(KEY)
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::timeout(Duration::from_secs(60)))
        .connect_quorum(node_urls)
        .await
        .unwrap();
    let data = redis::Client::open(data_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let local_inside = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..TASKS_PER_PROCESS)
        .map(|_| {
            let (lock, mut data, local_inside) = (lock.clone(), data.clone(), local_inside.clone());
            tokio::spawn(async move {
                for _ in 0..SECTIONS_PER_TASK {
                    let guard = lock.acquire().await.unwrap();
                    let inside: i64 = data.incr(INSIDE, 1).await.unwrap();
                    let local = local_inside.fetch_add(1, Ordering::SeqCst) + 1;
                    if inside != 1 || local != 1 {
                        let _: i64 = data.incr(OVERLAPS, 1).await.unwrap();
                    }
                    let value: Option<u64> = data.get(COUNTER).await.unwrap();
                    tokio::time::sleep(Duration::from_micros(300)).await;
                    let _: () = data.set(COUNTER, value.unwrap_or(0) + 1).await.unwrap();
                    local_inside.fetch_sub(1, Ordering::SeqCst);
                    let _: i64 = data.decr(INSIDE, 1).await.unwrap();
                    guard
                        .release()
                        .await
                        .expect("the 10 s lease outlives every section");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_contenders_in_three_processes_never_overlap() {
    let servers = start_nodes();
    let data = RedisServer::start();
    let node_urls = urls(&servers).join(",");
    let mut children: Vec<Child> = (0..CHILD_PROCESSES)
        .map(|_| {
            support::ignored_test_process("contender_process")
                .env(NODES_ENV, &node_urls)
                .env(DATA_ENV, data.url())
                .spawn()
                .unwrap()
        })
        .collect();

    run_contenders(urls(&servers), &data.url()).await;

    for child in &mut children {
        let status = tokio::task::block_in_place(|| child.wait().unwrap());
        assert!(status.success(), "a contender process failed: {status}");
    }
    let sections = ((1 + CHILD_PROCESSES) * TASKS_PER_PROCESS) as u32 * SECTIONS_PER_TASK;
    assert_eq!(data.get(OVERLAPS), None, "two holders were inside at once");
    assert_eq!(
        data.get(COUNTER),
        Some(sections.to_string()),
        "lost updates"
    );
    assert_eq!(data.get(INSIDE).as_deref(), Some("0"));
    assert_eq!(nodes_holding(&servers, KEY), Vec::<usize>::new());
}

/// The body of a contender process; run by the test above through
/// `current_exe()`, ignored in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a separate process by twelve_contenders_in_three_processes_never_overlap"]
async fn contender_process() {
    let nodes = std::env::var(NODES_ENV).expect("run by the redlock exclusion test");
    let data = std::env::var(DATA_ENV).expect("run by the redlock exclusion test");
    run_contenders(nodes.split(',').map(str::to_owned).collect(), &data).await;
}

// ---------------------------------------------------------------------------
// Node failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn with_two_of_five_nodes_down_acquire_extend_and_release_still_work() {
    let servers = start_nodes();
    servers[1].stop();
    servers[3].stop();
    // Connecting tolerates a minority that is down.
    let lock = redlock(
        &servers,
        "redlock:two-down",
        Duration::from_secs(2),
        WaitPolicy::no_wait(),
    )
    .await;
    assert_eq!(lock.node_count(), 5);

    let guard = lock.acquire().await.unwrap();
    assert_eq!(nodes_holding(&servers, "redlock:two-down"), [0, 2, 4]);
    assert!(guard.is_held().await.unwrap());
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "busy for others"
    );

    guard.extend(Duration::from_secs(30)).await.unwrap();
    for i in [0, 2, 4] {
        assert!(servers[i].pttl("redlock:two-down") > 29_000);
    }
    assert!(guard.remaining() > Duration::from_secs(29));

    guard.release().await.unwrap();
    assert_eq!(
        nodes_holding(&servers, "redlock:two-down"),
        Vec::<usize>::new()
    );
    lock.try_acquire()
        .await
        .unwrap()
        .expect("free again")
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn with_three_of_five_nodes_down_acquire_fails_fast_with_a_quorum_error() {
    let servers = start_nodes();
    // The default wait policy waits 10 s for a busy lock; a missing majority
    // must not be waited out like one.
    let lock = redlock(
        &servers,
        "redlock:three-down",
        Duration::from_secs(30),
        WaitPolicy::default(),
    )
    .await;
    lock.acquire().await.unwrap().release().await.unwrap();
    for i in [0, 2, 3] {
        servers[i].stop();
    }

    let started = Instant::now();
    let err = lock.acquire().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < 10 * NODE_TIMEOUT, "took {elapsed:?}");
    // Decided once the three down nodes failed: the two up may not have
    // answered by then, and are then listed as not awaited.
    match &err {
        Error::QuorumNotReached {
            operation: Operation::Acquire,
            key,
            granted,
            required: 3,
            failures,
        } => {
            assert_eq!(key, "redlock:three-down");
            let down: Vec<usize> = failures
                .iter()
                .filter(|f| !matches!(f.reason, NodeFailureReason::NotAwaited))
                .map(|f| f.node)
                .collect();
            assert_eq!(down, [0, 2, 3]);
            assert_eq!(granted + failures.len(), 5);
            for failure in failures {
                assert!(
                    matches!(
                        (failure.node, &failure.reason),
                        (
                            0 | 2 | 3,
                            NodeFailureReason::Unreachable(_) | NodeFailureReason::TimedOut(_)
                        ) | (1 | 4, NodeFailureReason::NotAwaited)
                    ),
                    "{failure}"
                );
            }
            assert!(
                err.to_string()
                    .contains(&format!("{granted} of 5 nodes succeeded, 3 needed")),
                "{err}"
            );
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
    assert!(!err.is_busy(), "down is not busy");
    assert!(err.is_retryable());
    // The two nodes up were released again (in the background where they
    // had not answered yet).
    wait_until_no_node_holds(&servers, "redlock:three-down").await;

    // A new lock cannot even connect to a minority.
    let err = Lock::builder("redlock:three-down")
        .connect_quorum(urls(&servers))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::QuorumNotReached {
                operation: Operation::Connect,
                granted: 2,
                required: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

/// An acquire returns once a majority granted it: two stalled nodes cost
/// it nothing (their per-node timeout here is 1 s). Their `SET`s wait in
/// the socket and are part of the same hold when they land: the release,
/// sent to every node, queues behind them and deletes them.
#[tokio::test]
async fn paused_nodes_cost_an_acquire_nothing_and_keep_no_key_after_they_wake() {
    let servers = start_nodes();
    let key = "redlock:paused";
    let node_timeout = Duration::from_secs(1);
    let lock = Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::no_wait())
        .node_timeout(node_timeout)
        .connect_quorum(urls(&servers))
        .await
        .unwrap();
    lock.acquire().await.unwrap().release().await.unwrap();

    for i in [1, 3] {
        // As after a restart: the release script is not cached there.
        servers[i].cmd(&["SCRIPT", "FLUSH"]);
        servers[i].reset_stats();
        servers[i].pause();
    }
    let started = Instant::now();
    let guard = lock.acquire().await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < node_timeout / 2,
        "waited {elapsed:?}: for the paused nodes' timeout ({node_timeout:?}), not for the majority"
    );
    assert!(guard.remaining() < Duration::from_secs(10));
    assert_eq!(nodes_holding(&servers, key), [0, 2, 4]);
    guard.release().await.unwrap();
    assert_eq!(nodes_holding(&servers, key), Vec::<usize>::new());

    for i in [1, 3] {
        servers[i].resume();
    }
    // Their SETs waited in the socket and ran when they woke; the releases
    // queued behind them must have deleted them again.
    wait_until_no_node_holds(&servers, key).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(nodes_holding(&servers, key), Vec::<usize>::new());
    for i in [1, 3] {
        assert_eq!(servers[i].command_calls("set"), 1, "the SET did run late");
    }
}

#[tokio::test]
async fn an_attempt_that_misses_the_quorum_leaves_no_key_of_ours() {
    let servers = start_nodes();
    let key = "redlock:foreign";
    // Another owner holds nodes 0, 1 and 2: a majority.
    for server in &servers[..3] {
        server.cmd(&["SET", key, "someone-else", "PX", "20000"]);
    }
    let lock = redlock(
        &servers,
        key,
        Duration::from_secs(10),
        WaitPolicy::no_wait(),
    )
    .await;
    assert!(lock.try_acquire().await.unwrap().is_none(), "busy");
    assert_eq!(
        nodes_holding(&servers, key),
        [0, 1, 2],
        "ours released on 3 and 4"
    );

    let patient = redlock(
        &servers,
        key,
        Duration::from_secs(10),
        WaitPolicy::timeout(Duration::from_millis(300)),
    )
    .await;
    match patient.acquire().await {
        Err(Error::Busy { attempts, .. }) => assert!(attempts > 1, "retried: {attempts}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert_eq!(nodes_holding(&servers, key), [0, 1, 2]);
    for server in &servers[..3] {
        assert_eq!(server.get(key).as_deref(), Some("someone-else"));
    }

    // A split vote with a node down: another owner on 0 and 1, node 2 down.
    // Nodes 3 and 4 grant it, one short: retried until the wait ends, then
    // reported as a quorum error, not as busy, since node 2 made the
    // difference.
    servers[2].stop();
    let started = Instant::now();
    let err = patient.acquire().await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300), "waited");
    assert!(
        matches!(
            err,
            Error::QuorumNotReached {
                granted: 2,
                required: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(nodes_holding(&servers, key), [0, 1]);
}

/// A miss returns once it is decided: another owner holds a majority
/// (nodes 0, 1, 2) and the other two are stalled (their per-node timeout is
/// 1 s). The attempt does not wait for them; their `SET`s wait in the socket,
/// land when they wake, and the release of the attempt's token sent behind
/// them (in the background) deletes them. A waiter then paces its attempts
/// by its backoff, as before, and leaves nothing either.
#[tokio::test]
async fn a_miss_decided_by_a_majority_does_not_wait_for_stalled_nodes_and_leaves_no_key() {
    let servers = start_nodes();
    let key = "redlock:decided-miss";
    let node_timeout = Duration::from_secs(1);
    let build = |wait| {
        Lock::builder(key)
            .ttl(Duration::from_secs(10))
            .wait(wait)
            .node_timeout(node_timeout)
            .connect_quorum(urls(&servers))
    };
    let lock = build(WaitPolicy::no_wait()).await.unwrap();
    let waiter = build(
        WaitPolicy::timeout(Duration::from_secs(1))
            .backoff(Duration::from_millis(100), Duration::from_millis(100)),
    )
    .await
    .unwrap();
    for server in &servers[..3] {
        server.cmd(&["SET", key, "someone-else", "PX", "60000"]);
    }
    for server in &servers[3..] {
        // As after a restart: the release script is not cached there.
        server.cmd(&["SCRIPT", "FLUSH"]);
        server.reset_stats();
        server.pause();
    }

    let started = Instant::now();
    assert!(lock.try_acquire().await.unwrap().is_none(), "busy");
    let elapsed = started.elapsed();
    assert!(
        elapsed < node_timeout / 2,
        "waited {elapsed:?}: for the stalled nodes' timeout ({node_timeout:?}), not for the majority that refused"
    );

    // Paced by its backoff (full jitter up to 100 ms: one try per 50 ms on
    // average), not by the stalled nodes, and never a busy loop.
    match waiter.acquire().await {
        Err(Error::Busy {
            attempts, waited, ..
        }) => {
            assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
            assert!(
                (2..=40).contains(&attempts),
                "{attempts} attempts in {waited:?}"
            );
        }
        other => panic!("expected Busy, got {other:?}"),
    }

    for server in &servers[3..] {
        server.resume();
    }
    // Their SETs ran when they woke; the releases behind them deleted them.
    wait_until_no_node_holds(&servers[3..], key).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for server in &servers[3..] {
        assert!(!server.exists(key), "a key of ours left behind");
        assert!(server.command_calls("set") >= 2, "the SETs did run late");
    }
    for server in &servers[..3] {
        assert_eq!(server.get(key).as_deref(), Some("someone-else"));
    }
}

#[tokio::test]
async fn a_node_restarted_empty_under_a_held_guard_leaves_the_lock_held() {
    let servers = start_nodes();
    let key = "redlock:restarted";
    let lock = redlock(&servers, key, Duration::from_secs(5), WaitPolicy::no_wait()).await;
    let guard = lock.acquire().await.unwrap();

    servers[0].restart();
    guard.extend(Duration::from_secs(5)).await.unwrap();
    assert!(guard.is_held().await.unwrap());
    assert!(
        !servers[0].exists(key),
        "extend never re-creates a lost key"
    );
    assert!(lock.try_acquire().await.unwrap().is_none(), "still busy");

    // Two more restarted: only 2 of 5 hold it now, and the lock is lost.
    servers[1].restart();
    servers[2].restart();
    let started = Instant::now();
    let err = loop {
        match guard.extend(Duration::from_secs(5)).await {
            // Broken connections first count as failures, which leave it open.
            Err(Error::QuorumNotReached { .. }) if started.elapsed() < CLEANUP_BOUND => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.unwrap_err(),
        }
    };
    assert!(err.is_not_held(), "{err:?}");
    assert!(!guard.is_held().await.unwrap());
    assert!(guard.release().await.unwrap_err().is_not_held());
    assert_eq!(
        nodes_holding(&servers, key),
        Vec::<usize>::new(),
        "ours deleted on 3 and 4"
    );
}

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn acquires_cut_off_at_any_point_leave_no_key_on_any_node() {
    let servers = start_nodes();
    let key = "redlock:cancel";
    let lock = redlock(
        &servers,
        key,
        Duration::from_secs(60),
        WaitPolicy::no_wait(),
    )
    .await;
    let (mut acquired, mut cut_off) = (0, 0);
    for i in 0..150 {
        tokio::select! {
            biased;
            _ = yields(i % 50) => cut_off += 1,
            result = lock.acquire() => {
                acquired += 1;
                result.unwrap().release().await.unwrap();
            }
        }
        wait_until_no_node_holds(&servers, key).await;
    }
    assert!(
        cut_off > 0 && acquired > 0,
        "both outcomes exercised: {cut_off} cut off, {acquired} acquired"
    );
    let sets: u64 = servers.iter().map(|s| s.command_calls("set")).sum();
    assert!(
        sets > 5 * acquired,
        "no SET was in flight when cut off: {sets} SETs, {acquired} acquired"
    );

    // Cut off while a majority of nodes is stalled (with one stalled node
    // the acquire returns at the majority before any cut): their SETs run
    // when they wake, and the background release queued behind them
    // deletes them.
    for server in &servers[2..] {
        server.pause();
    }
    let result = tokio::time::timeout(NODE_TIMEOUT / 2, lock.acquire()).await;
    assert!(result.is_err(), "cut off");
    tokio::time::sleep(Duration::from_millis(50)).await;
    for server in &servers[2..] {
        server.resume();
    }
    wait_until_no_node_holds(&servers, key).await;
    lock.try_acquire()
        .await
        .unwrap()
        .expect("free")
        .release()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_builder_rejects_bad_quorums_by_name() {
    let servers: Vec<RedisServer> = (0..2).map(|_| RedisServer::start()).collect();
    let field = |result: redis_mutex::Result<Lock>| match result {
        Err(Error::InvalidArgument { field, reason }) => (field, reason),
        other => panic!("expected InvalidArgument, got {other:?}"),
    };

    let none: Vec<redis::aio::MultiplexedConnection> = Vec::new();
    let (name, reason) = field(Lock::builder("k").build_quorum(none));
    assert_eq!(name, "nodes");
    assert!(reason.contains("at least 1"), "{reason}");

    let conns = vec![servers[0].conn().await, servers[1].conn().await];
    let (name, reason) = field(
        Lock::builder("k")
            .ttl(Duration::from_secs(1))
            .node_timeout(Duration::from_millis(101))
            .build_quorum(conns.clone()),
    );
    assert_eq!(name, "node_timeout");
    assert!(reason.contains("a tenth"), "{reason}");
    let (name, _) = field(
        Lock::builder("k")
            .node_timeout(Duration::ZERO)
            .build_quorum(conns.clone()),
    );
    assert_eq!(name, "node_timeout");
    let (name, _) = field(
        Lock::builder("k")
            .clock_drift(0.6, Duration::ZERO)
            .build_quorum(conns.clone()),
    );
    assert_eq!(name, "clock_drift");
    let (name, _) = field(
        Lock::builder("k")
            .ttl(Duration::from_millis(100))
            .clock_drift(0.0, Duration::from_millis(95))
            .build_quorum(conns),
    );
    assert_eq!(name, "clock_drift");

    let same = [servers[0].url(), servers[1].url(), servers[0].url()];
    let (name, reason) = field(Lock::builder("k").connect_quorum(same).await);
    assert_eq!(name, "nodes");
    assert!(reason.contains("nodes 0 and 2"), "{reason}");
}

// ---------------------------------------------------------------------------
// Renewal, loss and run over a quorum
// ---------------------------------------------------------------------------

#[tokio::test]
async fn renewal_keeps_a_redlock_through_a_node_restart_and_loss_fires_once_a_majority_forgot_it() {
    let servers = start_nodes();
    let key = "redlock:renewed";
    let lock = Lock::builder(key)
        .ttl(Duration::from_millis(1_500))
        .wait(WaitPolicy::no_wait())
        .node_timeout(NODE_TIMEOUT)
        .auto_renew(true)
        .connect_quorum(urls(&servers))
        .await
        .unwrap();
    let rival = redlock(&servers, key, Duration::from_secs(5), WaitPolicy::no_wait()).await;
    let guard = lock.acquire().await.unwrap();

    // One node forgets the lock: a majority still has it, renewal goes on.
    servers[0].restart();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(
            !guard.is_lost(),
            "lost after {:?} with 4 of 5 nodes holding",
            started.elapsed()
        );
        assert!(rival.try_acquire().await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two more forget it: a majority no longer holds our token.
    servers[1].restart();
    servers[2].restart();
    let forgotten = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("lost() fired");
    assert!(
        forgotten.elapsed() < Duration::from_millis(1_600),
        "within the lease: {:?}",
        forgotten.elapsed()
    );
    assert!(guard.release().await.unwrap_err().is_not_held());
    wait_until_no_node_holds(&servers, key).await;
}

#[tokio::test]
async fn run_renews_a_redlock_and_releases_it_on_every_node() {
    let servers = start_nodes();
    let key = "redlock:run";
    let lock = redlock(
        &servers,
        key,
        Duration::from_millis(1_000),
        WaitPolicy::no_wait(),
    )
    .await;
    let rival = redlock(&servers, key, Duration::from_secs(5), WaitPolicy::no_wait()).await;
    let value = lock
        .run(|lease| async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(250)).await; // 2.5 s: 2.5 TTLs
                assert!(rival.try_acquire().await.unwrap().is_none());
            }
            assert!(!lease.is_lost());
            "done"
        })
        .await
        .unwrap();
    assert_eq!(value, "done");
    assert_eq!(nodes_holding(&servers, key), Vec::<usize>::new());
}

#[tokio::test]
async fn fencing_is_refused_over_a_quorum() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let err = Lock::builder("redlock:fenced")
        .fencing(true)
        .connect_quorum(urls(&servers))
        .await
        .unwrap_err();
    match err {
        Error::InvalidArgument { field, reason } => {
            assert_eq!(field, "fencing");
            assert!(reason.contains("single node"), "{reason}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// A client that stalls mid-acquire (a stop-the-world pause, here a
/// blocking sleep on the only runtime thread) longer than the lease's
/// validity gets no guard, whatever came back meanwhile, and its token is
/// released on every node. The grants are counted against the time since
/// before the first send (`ValidityExpired`); in practice the per-node
/// timers (at most a tenth of the TTL, so shorter than any pause past the
/// validity) are looked at first, and the nodes count as timed out.
#[tokio::test(flavor = "current_thread")]
async fn a_client_paused_mid_acquire_past_the_validity_gets_no_guard() {
    let servers = start_nodes();
    let key = "redlock:paused-client";
    let ttl = Duration::from_millis(1000);
    let lock = Lock::builder(key)
        .ttl(ttl)
        .wait(WaitPolicy::no_wait())
        .node_timeout(NODE_TIMEOUT)
        .connect_quorum(urls(&servers))
        .await
        .unwrap();
    // Connections up and scripts cached.
    lock.acquire().await.unwrap().release().await.unwrap();
    for _ in 0..3 {
        // Runs once the acquire has sent its SETs and waits for answers.
        let pause = tokio::spawn(async move { std::thread::sleep(ttl + ttl / 5) });
        let result = lock.acquire().await;
        pause.await.unwrap();
        match result {
            Ok(guard) => panic!(
                "a guard after a pause past the TTL: remaining {:?}",
                guard.remaining()
            ),
            Err(Error::ValidityExpired {
                operation: Operation::Acquire,
                elapsed,
                ..
            }) => assert!(elapsed >= ttl, "{elapsed:?}"),
            // The pause also ran past the attempt's bound (three node
            // timeouts): the attempt is cut, its token released in the
            // background.
            Err(Error::TimedOut {
                operation: Operation::Acquire,
                ..
            }) => {}
            Err(Error::QuorumNotReached { failures, .. }) => assert!(
                failures.iter().all(|f| match &f.reason {
                    NodeFailureReason::TimedOut(_) => true,
                    NodeFailureReason::Unreachable(e) => e.is_timeout(),
                    _ => false,
                }),
                "{failures:?}"
            ),
            Err(other) => panic!("{other:?}"),
        }
        wait_until_no_node_holds(&servers, key).await;
    }
    lock.acquire().await.unwrap().release().await.unwrap();
}

// --------------------------------------------------------------------------
// Waiting: release wake-ups from one node, on top of polling
// --------------------------------------------------------------------------

/// Polls only every `every` (and waits up to 30 s).
fn polling_every(every: Duration) -> WaitPolicy {
    WaitPolicy::timeout(Duration::from_secs(30)).backoff(every, every)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redlock_waiter_is_woken_by_the_release_on_the_node_it_listens_to() {
    let servers = start_nodes();
    // Node 0 is down when the lock is built: waiters listen to node 1.
    servers[0].stop();
    let key = "redlock:woken";
    let channel = "{redlock:woken}:released";
    let lock = redlock(
        &servers,
        key,
        Duration::from_secs(10),
        polling_every(Duration::from_secs(5)),
    )
    .await;
    let holder = lock.acquire().await.unwrap();
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap() })
    };
    eventually(Duration::from_secs(5), "subscribed on node 1", || {
        subscribers(&servers[1], channel) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (guard, took) = time_handoff(holder, waiter).await;
    // Its backoff alone would take 5 s.
    assert!(took < Duration::from_millis(300), "handoff took {took:?}");
    guard.release().await.unwrap();
    eventually(Duration::from_secs(2), "unsubscribed", || {
        subscribers(&servers[1], channel) == 0
    })
    .await;
}

/// The node a waiter listens to is only one of the quorum: its key can be
/// gone while a majority holds the lock. The waiter then polls under its
/// backoff instead of trying again at once, over and over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redlock_waiter_polls_when_its_node_lost_the_key_and_does_not_spin() {
    let servers = start_nodes();
    let key = "redlock:spin";
    let channel = "{redlock:spin}:released";
    let lock = redlock(
        &servers,
        key,
        Duration::from_secs(10),
        polling_every(Duration::from_millis(100)),
    )
    .await;
    let holder = lock.acquire().await.unwrap();
    // The listened node (0) forgets the lock; the other four still hold it.
    servers[0].cmd(&["DEL", key]);
    for server in &servers {
        server.reset_stats();
    }
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap() })
    };
    eventually(Duration::from_secs(5), "subscribed on node 0", || {
        subscribers(&servers[0], channel) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sets = servers[1].command_calls("set");
    // The backoff's full jitter averages one try per 50 ms; spinning would
    // be hundreds.
    assert!(sets <= 40, "{sets} SETs in about a second");
    let (guard, took) = time_handoff(holder, waiter).await;
    assert!(took < Duration::from_millis(300), "handoff took {took:?}");
    guard.release().await.unwrap();
    wait_until_no_node_holds(&servers, key).await;
}
