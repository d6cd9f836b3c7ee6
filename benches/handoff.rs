//! Handoff latency: from one holder's `release()` returning to the next
//! waiter's `acquire()` returning, with 8 waiters on one key, against the
//! floor of one round trip (a `PING` on the same connection), in the same
//! run; and the commands the server runs per handoff.
//!
//! ```sh
//! cargo bench --bench handoff
//! HANDOFF_WAITERS=1 cargo bench --bench handoff   # another number of waiters
//! ```
//!
//! Criterion is built for means; this needs percentiles, so the bench takes
//! its own samples and prints p50, p90 and p99. Each of the 9 tasks takes
//! the lock, holds it 2 ms, releases it, and does not compete again until
//! another task has taken it, so every handoff goes to a task that was
//! waiting. Blocks of PINGs and of handoffs alternate, so that both see the
//! same load on a shared machine, and the p50 ratio is given per block. The
//! floor is a PING after a 2 ms pause, as a handoff wakes a task that was
//! idle for the hold (back-to-back PINGs, also shown, keep the threads
//! busy). Last, the same handoffs polling under the default wait policy (a
//! lock built without `notify_with`), the way every waiter waited before.
//! Then the same on a Redlock of 5 nodes, and, with `--features cluster`,
//! on a 3-master Redis Cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis_mutex::{Lock, WaitPolicy};
use tokio::sync::watch;

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "floor/mod.rs"]
mod floor;

use floor::{command_calls, percentiles};

const HOLD: Duration = Duration::from_millis(2);
const BLOCKS: usize = 5;
const PINGS_PER_BLOCK: usize = 400;
const HANDOFFS_PER_BLOCK: usize = 400;
const POLLING_HANDOFFS: usize = 300;

/// 8 unless `HANDOFF_WAITERS` says otherwise.
fn waiters() -> usize {
    std::env::var("HANDOFF_WAITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// `count` PINGs on `connection`, each after `pause`.
async fn pings(connection: &MultiplexedConnection, count: usize, pause: Duration) -> Vec<Duration> {
    let mut connection = connection.clone();
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let start = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .unwrap();
        samples.push(start.elapsed());
    }
    samples
}

/// When each acquisition returned and when its release returned, in the
/// lock's order (the lock's exclusion makes that order well defined).
#[derive(Default)]
struct Timeline {
    acquired: Vec<Instant>,
    released: Vec<Option<Instant>>,
}

/// Runs `handoffs` handoffs among `waiters() + 1` tasks on `lock`; returns
/// the handoff latencies.
async fn handoffs(lock: &Lock, handoffs: usize) -> Vec<Duration> {
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    // The number of acquisitions so far; a task that released waits for it
    // to move before competing again.
    let taken = Arc::new(watch::channel(0usize).0);
    let tasks: Vec<_> = (0..=waiters())
        .map(|_| {
            let (lock, timeline, taken) = (lock.clone(), timeline.clone(), taken.clone());
            tokio::spawn(async move {
                let mut seen = taken.subscribe();
                loop {
                    let guard = lock.acquire().await.unwrap();
                    let now = Instant::now();
                    let index = {
                        let mut timeline = timeline.lock().unwrap();
                        timeline.acquired.push(now);
                        timeline.released.push(None);
                        timeline.acquired.len() - 1
                    };
                    taken.send_replace(index + 1);
                    if index > handoffs {
                        guard.release().await.unwrap();
                        return;
                    }
                    tokio::time::sleep(HOLD).await;
                    guard.release().await.unwrap();
                    timeline.lock().unwrap().released[index] = Some(Instant::now());
                    // No barging: the next holder is one of the waiters.
                    let _ = seen.wait_for(|&n| n > index + 1).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let timeline = timeline.lock().unwrap();
    (0..handoffs)
        .filter_map(|i| {
            let released = timeline.released[i]?;
            Some(timeline.acquired[i + 1].saturating_duration_since(released))
        })
        .collect()
}

/// `INFO commandstats` of `server`, by command.
fn server_calls(server: &support::RedisServer) -> BTreeMap<String, u64> {
    command_calls(&server.info("commandstats"))
}

/// Adds `calls` to `total`.
fn add_calls(total: &mut BTreeMap<String, u64>, calls: BTreeMap<String, u64>) {
    for (command, n) in calls {
        *total.entry(command).or_default() += n;
    }
}

fn report(name: &str, samples: &mut [Duration], floor_p50: f64) {
    let [p50, p90, p99, max] = percentiles(samples);
    println!(
        "{name:<32} n={:<5} p50 {p50:>7.1} µs ({:>4.1}x)  p90 {p90:>7.1} µs  p99 {p99:>7.1} µs ({:>5.1}x)  max {max:>8.1} µs",
        samples.len(),
        p50 / floor_p50,
        p99 / floor_p50,
    );
}

fn report_commands(name: &str, calls: &BTreeMap<String, u64>, handoffs: usize) {
    let n = handoffs as f64;
    let per = |command: &str| *calls.get(command).unwrap_or(&0) as f64 / n;
    // The release script runs a GET, a DEL and a PUBLISH (SPUBLISH on a
    // cluster) inside each EVALSHA; the server counts those too.
    let inside = per("evalsha") * 2.0 + per("publish") + per("spublish");
    let all: f64 = calls
        .iter()
        .filter(|(command, _)| !matches!(command.as_str(), "info" | "config|resetstat" | "ping"))
        .map(|(_, calls)| *calls as f64 / n)
        .sum();
    println!(
        "{name:<32} per handoff: {:.2} commands sent ({:.2} SET, {:.2} EVALSHA, {:.2} GET, {:.2} PTTL, {:.2} (UN)SUBSCRIBE) + {:.2} run inside the release script",
        all - inside,
        per("set"),
        per("evalsha"),
        per("get") - per("evalsha"),
        per("pttl"),
        per("subscribe") + per("unsubscribe") + per("ssubscribe") + per("sunsubscribe"),
        inside,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this
    // bench (e.g. `cargo bench -- redlock`) skips it.
    if let Some(filter) = std::env::args().skip(1).find(|arg| !arg.starts_with('-'))
        && !"handoff".contains(filter.as_str())
    {
        return;
    }
    let server = support::RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = server.client();
    runtime.block_on(async {
        let connection = client.get_multiplexed_async_connection().await.unwrap();
        let lock = |key: &str| {
            Lock::builder(key)
                .ttl(Duration::from_secs(30))
                .wait(WaitPolicy::timeout(Duration::from_secs(60)))
        };
        let notified = lock("bench:handoff:notified")
            .notify_with(&client)
            .build(connection.clone())
            .unwrap();
        let polling = lock("bench:handoff:polling")
            .build(connection.clone())
            .unwrap();
        // Warm up: connections, the script cache, the subscription.
        handoffs(&notified, 50).await;
        handoffs(&polling, 10).await;

        println!(
            "handoff: {} waiters on one key, hold {HOLD:?}, release() returned -> next acquire() returned; (Nx) = to the paced PING p50",
            waiters()
        );
        let (mut back_to_back, mut paced, mut notified_samples) = (vec![], vec![], vec![]);
        let mut ratios = Vec::new();
        let mut notified_calls = BTreeMap::new();
        for _ in 0..BLOCKS {
            back_to_back.extend(pings(&connection, PINGS_PER_BLOCK, Duration::ZERO).await);
            let mut block = pings(&connection, PINGS_PER_BLOCK, HOLD).await;
            let block_floor = percentiles(&mut block)[0];
            paced.extend(block);
            server.reset_stats();
            let mut block = handoffs(&notified, HANDOFFS_PER_BLOCK).await;
            add_calls(&mut notified_calls, server_calls(&server));
            ratios.push(percentiles(&mut block)[0] / block_floor);
            notified_samples.extend(block);
        }
        let floor_p50 = percentiles(&mut paced)[0];
        report("floor: PING after a 2 ms pause", &mut paced, floor_p50);
        report("floor: PING back to back", &mut back_to_back, floor_p50);
        report("pub/sub (notify_with)", &mut notified_samples, floor_p50);
        ratios.sort_by(f64::total_cmp);
        println!(
            "{:<32} p50 to the paced PING p50, per block: {}",
            "pub/sub (notify_with)",
            ratios
                .iter()
                .map(|r| format!("{r:.1}x"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        report_commands(
            "pub/sub (notify_with)",
            &notified_calls,
            BLOCKS * HANDOFFS_PER_BLOCK,
        );

        server.reset_stats();
        let mut samples = handoffs(&polling, POLLING_HANDOFFS).await;
        let calls = server_calls(&server);
        report("polling (default WaitPolicy)", &mut samples, floor_p50);
        report_commands("polling (default WaitPolicy)", &calls, POLLING_HANDOFFS);
    });
    drop(server);
    runtime.block_on(redlock());
    #[cfg(feature = "cluster")]
    runtime.block_on(cluster());
}

/// The same on a Redlock of 5 nodes: waiters listening to one node
/// (`connect_quorum`) on top of polling, against a paced PING to that node,
/// and against polling alone (`build_quorum`).
async fn redlock() {
    let servers: Vec<support::RedisServer> =
        (0..5).map(|_| support::RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(support::RedisServer::url).collect();
    let key = "bench:handoff:redlock";
    let builder = || {
        Lock::builder(key)
            .ttl(Duration::from_secs(30))
            .wait(WaitPolicy::timeout(Duration::from_secs(60)))
    };
    let notified = builder().connect_quorum(urls.clone()).await.unwrap();
    let mut connections = Vec::new();
    for server in &servers {
        connections.push(
            server
                .client()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        );
    }
    let polling = builder().build_quorum(connections.clone()).unwrap();
    handoffs(&notified, 50).await;
    handoffs(&polling, 10).await;

    println!(
        "handoff on a Redlock of 5 nodes: {} waiters on one key, (Nx) = to the paced PING p50 on the listened node",
        waiters()
    );
    let (mut paced, mut notified_samples) = (vec![], vec![]);
    for _ in 0..BLOCKS {
        paced.extend(pings(&connections[0], PINGS_PER_BLOCK, HOLD).await);
        notified_samples.extend(handoffs(&notified, HANDOFFS_PER_BLOCK).await);
    }
    let floor_p50 = percentiles(&mut paced)[0];
    report("redlock floor: paced PING", &mut paced, floor_p50);
    report("redlock wake-up hints", &mut notified_samples, floor_p50);
    let mut samples = handoffs(&polling, POLLING_HANDOFFS).await;
    report("redlock polling", &mut samples, floor_p50);
}

/// The same on a 3-master Redis Cluster: waiters woken by `SSUBSCRIBE` in
/// the key's shard (`connect_cluster`), against a paced PING to the key's
/// master, and against polling (a lock built over the cluster connection
/// without `notify_with_cluster`). `cargo bench --bench handoff --features
/// cluster`.
#[cfg(feature = "cluster")]
async fn cluster() {
    let cluster = support::cluster::RedisCluster::start();
    let key = "bench:handoff:cluster";
    let owner = &cluster.masters[cluster.owner_of(key)];
    let ping = owner
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let builder = || {
        Lock::builder(key)
            .ttl(Duration::from_secs(30))
            .wait(WaitPolicy::timeout(Duration::from_secs(60)))
    };
    let notified = builder().connect_cluster(cluster.seeds()).await.unwrap();
    let connection = redis::cluster::ClusterClient::new(cluster.seeds())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let polling = builder().build(connection).unwrap();
    handoffs(&notified, 50).await;
    handoffs(&polling, 10).await;

    println!(
        "handoff on a 3-master cluster: {} waiters on one key, (Nx) = to the paced PING p50 on the key's master",
        waiters()
    );
    let (mut paced, mut notified_samples) = (vec![], vec![]);
    let mut calls = BTreeMap::new();
    for _ in 0..BLOCKS {
        paced.extend(pings(&ping, PINGS_PER_BLOCK, HOLD).await);
        owner.reset_stats();
        notified_samples.extend(handoffs(&notified, HANDOFFS_PER_BLOCK).await);
        add_calls(&mut calls, server_calls(owner));
    }
    let floor_p50 = percentiles(&mut paced)[0];
    report("cluster floor: paced PING", &mut paced, floor_p50);
    report("cluster sharded pub/sub", &mut notified_samples, floor_p50);
    report_commands(
        "cluster sharded pub/sub",
        &calls,
        BLOCKS * HANDOFFS_PER_BLOCK,
    );
    owner.reset_stats();
    let mut samples = handoffs(&polling, POLLING_HANDOFFS).await;
    let calls = server_calls(owner);
    report("cluster polling", &mut samples, floor_p50);
    report_commands("cluster polling", &calls, POLLING_HANDOFFS);
}
