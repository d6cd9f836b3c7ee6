//! Semaphore permit acquire + release, uncontended, against the floor: the
//! raw `redis` crate running the same two scripts (the crate's own acquire
//! and release Lua, from `src/lua/`) by `EVALSHA` on the same multiplexed
//! connection, in the same run, interleaved. Prints the median cycles/s of
//! each over 5 rounds, the ratio, and the commands the server counted per
//! cycle (`INFO commandstats`: the scripts' own calls not included).
//!
//! ```sh
//! cargo bench --bench semaphore
//! ```

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis_mutex::Semaphore;

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "floor/mod.rs"]
mod floor;

use floor::{interleaved, rate};

const CYCLES: u32 = 3_000;
const ROUNDS: usize = 5;

fn script(parts: &[&str]) -> redis::Script {
    redis::Script::new(&parts.concat())
}

async fn floor_cycles(
    connection: &mut MultiplexedConnection,
    acquire: &redis::Script,
    release: &redis::Script,
) -> Duration {
    let started = Instant::now();
    for i in 0..CYCLES {
        // A token as long as the crate's (128 bits as hex).
        let token = format!("{i:032x}");
        let granted: i64 = acquire
            .key("bench:floor-sem")
            .arg(&token)
            .arg(30_000)
            .arg(3)
            .arg(1)
            .invoke_async(connection)
            .await
            .unwrap();
        assert_eq!(granted, 1);
        let released: i64 = release
            .key("bench:floor-sem")
            .arg(&token)
            .arg(1)
            .arg("{bench:floor-sem}:released")
            .invoke_async(connection)
            .await
            .unwrap();
        assert_eq!(released, 1);
    }
    started.elapsed()
}

async fn semaphore_cycles(semaphore: &Semaphore) -> Duration {
    let started = Instant::now();
    for _ in 0..CYCLES {
        semaphore.acquire().await.unwrap().release().await.unwrap();
    }
    started.elapsed()
}

fn main() {
    let server = support::RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let now = include_str!("../src/lua/server_now.lua");
    let members = include_str!("../src/lua/permit_members.lua");
    let acquire = script(&[now, members, include_str!("../src/lua/permit_acquire.lua")]);
    let release = script(&[now, members, include_str!("../src/lua/permit_release.lua")]);
    runtime.block_on(async {
        let connection = server.conn().await;
        let semaphore = Semaphore::builder("bench:sem", 3)
            .build(connection.clone())
            .unwrap();
        let mut floor_connection = connection.clone();
        // Warm up: scripts loaded, connections busy once.
        floor_cycles(&mut floor_connection, &acquire, &release).await;
        semaphore_cycles(&semaphore).await;
        let (floor, ours) = interleaved(
            ROUNDS,
            async || rate(CYCLES as usize, floor_cycles(&mut floor_connection, &acquire, &release).await),
            async || rate(CYCLES as usize, semaphore_cycles(&semaphore).await),
        )
        .await;
        println!(
            "semaphore acquire + release, 1 task, uncontended: floor {floor:.0} cycles/s, Semaphore {ours:.0} cycles/s, ratio {:.3} (median of {ROUNDS} rounds of {CYCLES})",
            ours / floor
        );
        server.reset_stats();
        semaphore_cycles(&semaphore).await;
        let evalsha = server.command_calls("evalsha");
        let total = support::commands_processed(&server);
        let inner = ["time", "zremrangebyscore", "zscore", "zcard", "zadd", "zrange", "pexpireat", "zrem", "publish"]
            .iter()
            .map(|name| server.command_calls(name))
            .sum::<u64>();
        println!(
            "commands per acquire + release: {:.2} sent by the client ({evalsha} EVALSHA in {CYCLES} cycles; {:.2} counted with the scripts' own calls)",
            (total - inner) as f64 / f64::from(CYCLES),
            total as f64 / f64::from(CYCLES)
        );
    });
}
