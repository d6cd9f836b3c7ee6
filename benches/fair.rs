//! The fair lock against the default `Lock`, in the same run, with 8 and
//! with 64 waiters on one key: handoff latency (from one holder's
//! `release()` returning to the next holder's `acquire()` returning, p50 and
//! p99, against the floor of a PING after the same pause), the commands the
//! server counted per handoff, and how evenly the tasks were served.
//!
//! ```sh
//! cargo bench --bench fair
//! ```
//!
//! Handoffs: as in `benches/handoff.rs`, each task takes the lock, holds it
//! 2 ms, releases it, and does not compete again until another task has
//! taken it, so every handoff goes to a task that was waiting (the default
//! lock's best case: no barging). Blocks of PINGs, fair handoffs and
//! default handoffs alternate, so that all see the same load on a shared
//! machine. Commands are those the clients sent (`EVALSHA`, `EVAL`, `SET`,
//! the waiters' `GET`+`PTTL`, `(UN)SUBSCRIBE` on the notifier's connection)
//! counted from `INFO commandstats`, less what the scripts run inside;
//! those are given apart.
//!
//! Shares: the benchmark's contended scenario, where a task that released
//! asks again at once: the fewest and the most sections any task got out
//! of the run, for each lock (even is the run's sections / tasks).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis_mutex::{FairGuard, FairLock, Lock, LockGuard, WaitPolicy};
use tokio::sync::watch;

#[path = "../tests/support/mod.rs"]
mod support;

const HOLD: Duration = Duration::from_millis(2);
const BLOCKS: usize = 5;
const PINGS_PER_BLOCK: usize = 200;
const HANDOFFS_PER_BLOCK: usize = 300;
const SHARE_SECTIONS: usize = 1_000;

/// Either lock, through one harness.
#[derive(Clone)]
enum Either {
    Fair(FairLock),
    Default(Lock),
}

enum Guard {
    Fair(FairGuard),
    Default(LockGuard),
}

impl Either {
    async fn acquire(&self) -> Guard {
        match self {
            Either::Fair(lock) => Guard::Fair(lock.acquire().await.unwrap()),
            Either::Default(lock) => Guard::Default(lock.acquire().await.unwrap()),
        }
    }

    /// The commands the clients sent, out of `calls` (see the module docs).
    fn sent(&self, calls: &BTreeMap<String, u64>) -> u64 {
        let n = |command: &str| *calls.get(command).unwrap_or(&0);
        let subscriptions = n("subscribe") + n("unsubscribe");
        match self {
            // Scripts only: acquire, release, the waiters' inspection.
            Either::Fair(_) => n("evalsha") + n("eval") + subscriptions,
            // SET, the release script (one GET inside), GET + PTTL.
            Either::Default(_) => {
                n("set")
                    + n("evalsha")
                    + n("eval")
                    + (n("get") - n("evalsha") - n("eval"))
                    + n("pttl")
                    + subscriptions
            }
        }
    }
}

impl Guard {
    async fn release(self) {
        match self {
            Guard::Fair(guard) => guard.release().await.unwrap(),
            Guard::Default(guard) => guard.release().await.unwrap(),
        }
    }
}

/// p50, p99 and the largest of `samples`, in µs.
fn percentiles(samples: &mut [Duration]) -> [f64; 3] {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e6
    };
    [at(0.50), at(0.99), at(1.0)]
}

/// `count` PINGs on `connection`, each after `pause`.
async fn pings(connection: &MultiplexedConnection, count: usize, pause: Duration) -> Vec<Duration> {
    let mut connection = connection.clone();
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        tokio::time::sleep(pause).await;
        let start = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .unwrap();
        samples.push(start.elapsed());
    }
    samples
}

#[derive(Default)]
struct Timeline {
    acquired: Vec<Instant>,
    released: Vec<Option<Instant>>,
}

/// `handoffs` handoffs among `waiters + 1` tasks on `lock`, none barging.
async fn handoffs(lock: &Either, waiters: usize, handoffs: usize) -> Vec<Duration> {
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let taken = Arc::new(watch::channel(0usize).0);
    let tasks: Vec<_> = (0..=waiters)
        .map(|_| {
            let (lock, timeline, taken) = (lock.clone(), timeline.clone(), taken.clone());
            tokio::spawn(async move {
                let mut seen = taken.subscribe();
                loop {
                    let guard = lock.acquire().await;
                    let now = Instant::now();
                    let index = {
                        let mut timeline = timeline.lock().unwrap();
                        timeline.acquired.push(now);
                        timeline.released.push(None);
                        timeline.acquired.len() - 1
                    };
                    taken.send_replace(index + 1);
                    if index > handoffs {
                        guard.release().await;
                        return;
                    }
                    tokio::time::sleep(HOLD).await;
                    guard.release().await;
                    timeline.lock().unwrap().released[index] = Some(Instant::now());
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

/// The contended scenario: `tasks` tasks take the lock, hold it 1 ms and
/// ask again at once, until `sections` were run; each task's share.
async fn shares(lock: &Either, tasks: usize, sections: usize) -> Vec<usize> {
    let total = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (lock, total) = (lock.clone(), total.clone());
            tokio::spawn(async move {
                let mut mine = 0;
                loop {
                    let guard = lock.acquire().await;
                    if total.fetch_add(1, Ordering::SeqCst) >= sections {
                        guard.release().await;
                        return mine;
                    }
                    mine += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    guard.release().await;
                }
            })
        })
        .collect();
    let mut shares = Vec::new();
    for handle in handles {
        shares.push(handle.await.unwrap());
    }
    shares
}

fn command_calls(server: &support::RedisServer) -> BTreeMap<String, u64> {
    server
        .info("commandstats")
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

fn all_calls(calls: &BTreeMap<String, u64>) -> u64 {
    calls
        .iter()
        .filter(|(command, _)| !matches!(command.as_str(), "info" | "config|resetstat" | "ping"))
        .map(|(_, calls)| *calls)
        .sum()
}

fn add_calls(total: &mut BTreeMap<String, u64>, calls: BTreeMap<String, u64>) {
    for (command, n) in calls {
        *total.entry(command).or_default() += n;
    }
}

/// Handoffs of both locks with `waiters` waiters, against the paced PING.
async fn compare(
    server: &support::RedisServer,
    connection: &MultiplexedConnection,
    fair: &Either,
    default: &Either,
    waiters: usize,
) {
    // Warm up: connections, scripts, subscriptions.
    handoffs(fair, waiters, 50).await;
    handoffs(default, waiters, 50).await;
    let (mut paced, mut samples) = (Vec::new(), [Vec::new(), Vec::new()]);
    let mut calls = [BTreeMap::new(), BTreeMap::new()];
    for _ in 0..BLOCKS {
        paced.extend(pings(connection, PINGS_PER_BLOCK, HOLD).await);
        for (i, lock) in [fair, default].into_iter().enumerate() {
            server.reset_stats();
            samples[i].extend(handoffs(lock, waiters, HANDOFFS_PER_BLOCK).await);
            add_calls(&mut calls[i], command_calls(server));
        }
    }
    let [floor, floor_p99, _] = percentiles(&mut paced);
    println!(
        "{waiters} waiters, hold {HOLD:?}; floor: PING after {HOLD:?} p50 {floor:.1} µs, p99 {floor_p99:.1} µs"
    );
    let mut p50s = [0.0; 2];
    for (i, (name, lock)) in [("fair", fair), ("default", default)]
        .into_iter()
        .enumerate()
    {
        let [p50, p99, max] = percentiles(&mut samples[i]);
        p50s[i] = p50;
        let handoffs = (BLOCKS * HANDOFFS_PER_BLOCK) as f64;
        let sent = lock.sent(&calls[i]) as f64 / handoffs;
        let inside = all_calls(&calls[i]) as f64 / handoffs - sent;
        let subscriptions = (calls[i].get("subscribe").unwrap_or(&0)
            + calls[i].get("unsubscribe").unwrap_or(&0)) as f64
            / handoffs;
        println!(
            "  {name:<8} handoff p50 {p50:>7.1} µs ({:>4.1}x)  p99 {p99:>7.1} µs ({:>5.1}x)  max {max:>8.1} µs;  per handoff {sent:.2} commands sent ({subscriptions:.2} (UN)SUBSCRIBE) + {inside:.2} run inside scripts",
            p50 / floor,
            p99 / floor,
        );
    }
    println!("  fair / default handoff p50: {:.2}", p50s[0] / p50s[1]);
}

fn main() {
    if let Some(filter) = std::env::args().skip(1).find(|arg| !arg.starts_with('-'))
        && !"fair".contains(filter.as_str())
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
        let wait = WaitPolicy::timeout(Duration::from_secs(60));
        let fair = Either::Fair(
            FairLock::builder("bench:fair")
                .ttl(Duration::from_secs(30))
                .wait(wait)
                .notify_with(&client)
                .build(connection.clone())
                .unwrap(),
        );
        let default = Either::Default(
            Lock::builder("bench:default")
                .ttl(Duration::from_secs(30))
                .wait(wait)
                .notify_with(&client)
                .build(connection.clone())
                .unwrap(),
        );
        for waiters in [8, 64] {
            compare(&server, &connection, &fair, &default, waiters).await;
        }
        for tasks in [8, 64] {
            for (name, lock) in [("fair", &fair), ("default", &default)] {
                let started = Instant::now();
                let shares = shares(lock, tasks, SHARE_SECTIONS).await;
                let (least, most) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                println!(
                    "shares, {tasks} tasks asking again at once, {SHARE_SECTIONS} sections: {name:<8} fewest {least}, most {most} (even {:.1}) in {:.2?}",
                    SHARE_SECTIONS as f64 / tasks as f64,
                    started.elapsed()
                );
            }
        }
    });
}
