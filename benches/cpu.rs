//! Client CPU per uncontended acquire + release, against the floor: the
//! `redis` crate alone sending byte for byte the lock's two commands (`SET
//! key token NX GET PX ttl`, then the crate's release script by `EVALSHA`,
//! see `floor::same_commands_cycle`) on the same multiplexed connection, in
//! the same process and run.
//!
//! On a slow loopback the wall-clock ratios of `benches/lock.rs` hide the
//! client's CPU cost; this counts it. Everything runs on one current-thread
//! runtime, so the process's CPU time (`getrusage`) is the client's:
//!
//! ```sh
//! cargo bench --bench cpu
//! ```
//!
//! For instruction counts, which repeat to the last digit on a noisy
//! machine, run one side under callgrind (`lock`, `floor`, `lock32`,
//! `floor32`, or `lock5` and `floor5`: a Redlock over 5 nodes, its floor
//! sending the same `SET` to all five and returning at the majority's
//! grant, then the release to all five, waiting for every reply, as the
//! lock does) after `--` and compare the totals:
//!
//! ```sh
//! cargo bench --bench cpu --no-run
//! valgrind --tool=callgrind target/release/deps/cpu-<hash> lock32
//! ```

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis_mutex::Lock;

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "floor/mod.rs"]
mod floor;

use floor::{
    CRATE_RELEASE_LUA, CRATE_SIZED_TOKEN, cpu_time, crate_release_channel, floor_redlock_cycle,
    same_commands_cycle,
};

/// Cycles per run; `CPU_CYCLES` overrides it (two callgrind runs of
/// different lengths give the instructions per cycle without the start-up).
fn cycles() -> usize {
    std::env::var("CPU_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_400)
}
const TASKS: usize = 32;

/// `cycles()` acquire + release cycles spread over `tasks` tasks on distinct
/// keys, by the floor or by the lock.
async fn run(connection: &MultiplexedConnection, locks: &[Lock], floor: bool, tasks: usize) {
    let script = redis::Script::new(CRATE_RELEASE_LUA);
    let mut set = tokio::task::JoinSet::new();
    for lock in &locks[..tasks] {
        let (lock, mut connection, script) = (lock.clone(), connection.clone(), script.clone());
        set.spawn(async move {
            let key = format!("{}:floor", lock.key());
            let channel = crate_release_channel(&key);
            for _ in 0..cycles() / tasks {
                if floor {
                    same_commands_cycle(
                        &mut connection,
                        &script,
                        &key,
                        CRATE_SIZED_TOKEN,
                        &channel,
                    )
                    .await;
                } else {
                    lock.acquire().await.unwrap().release().await.unwrap();
                }
            }
        });
    }
    set.join_all().await;
}

/// `cycles()` acquire + release cycles of a Redlock over `connections` (5
/// servers), by the floor or by the lock, in one task.
async fn run_redlock(connections: &[MultiplexedConnection], floor: bool) {
    let script = redis::Script::new(CRATE_RELEASE_LUA);
    let lock = Lock::builder("cpu:redlock")
        .build_quorum(connections.iter().cloned())
        .unwrap();
    for _ in 0..cycles() {
        if floor {
            floor_redlock_cycle(
                connections,
                &script,
                "cpu:redlock:floor",
                CRATE_SIZED_TOKEN,
                Some("{cpu:redlock:floor}:released"),
                true,
            )
            .await;
        } else {
            lock.acquire().await.unwrap().release().await.unwrap();
        }
    }
}

fn main() {
    let only = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    if let Some(side @ ("lock5" | "floor5")) = only.as_deref() {
        let servers: Vec<support::RedisServer> =
            (0..5).map(|_| support::RedisServer::start()).collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut connections = Vec::new();
            for server in &servers {
                let client = redis::Client::open(server.url()).unwrap();
                connections.push(client.get_multiplexed_async_connection().await.unwrap());
            }
            run_redlock(&connections, side == "floor5").await;
        });
        return;
    }
    let server = support::RedisServer::start();
    // `CPU_RUNTIME=multi`: a 2-worker runtime instead, to see what work
    // handed between threads costs (`strace -f -c` of one side).
    let runtime = match std::env::var("CPU_RUNTIME").as_deref() {
        Ok("multi") => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    };
    runtime.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        let connection = client.get_multiplexed_async_connection().await.unwrap();
        let locks: Vec<Lock> = (0..TASKS)
            .map(|i| {
                Lock::builder(format!("cpu:{i}"))
                    .build(connection.clone())
                    .unwrap()
            })
            .collect();
        // One side only, for callgrind.
        if let Some(side) = only.as_deref() {
            let tasks = if side.ends_with("32") { TASKS } else { 1 };
            run(&connection, &locks, side.starts_with("floor"), tasks).await;
            return;
        }
        for tasks in [1, TASKS] {
            // Warm up both, then measure each twice, interleaved.
            run(&connection, &locks, true, tasks).await;
            run(&connection, &locks, false, tasks).await;
            let (mut floor, mut lock) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..2 {
                let started = cpu_time();
                run(&connection, &locks, true, tasks).await;
                floor += cpu_time() - started;
                let started = cpu_time();
                run(&connection, &locks, false, tasks).await;
                lock += cpu_time() - started;
            }
            let per_cycle = |total: Duration| total.as_secs_f64() * 1e6 / (2 * cycles()) as f64;
            println!(
                "{tasks:>2} task(s): client CPU per acquire+release: floor {:.1} µs, Lock {:.1} µs, ratio {:.2}",
                per_cycle(floor),
                per_cycle(lock),
                lock.as_secs_f64() / floor.as_secs_f64()
            );
        }
    });
}
