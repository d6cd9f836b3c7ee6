//! Read-write lock read and write cycles (acquire + release, uncontended)
//! against the floor: the raw `redis` crate running the same scripts (the
//! crate's own Lua, from `src/lua/`) by `EVALSHA` on the same multiplexed
//! connection, in the same run, interleaved. Prints the median cycles/s of
//! each over 5 rounds and the ratios.
//!
//! ```sh
//! cargo bench --bench rwlock
//! ```

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis_mutex::RwLock;

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "floor/mod.rs"]
mod floor;

use floor::{interleaved, rate};

const CYCLES: u32 = 3_000;
const ROUNDS: usize = 5;
const NOW: &str = include_str!("../src/lua/server_now.lua");

struct Floor {
    read_acquire: redis::Script,
    read_release: redis::Script,
    write_acquire: redis::Script,
    write_release: redis::Script,
}

impl Floor {
    fn new() -> Floor {
        let with_now = |body: &str| redis::Script::new(&format!("{NOW}{body}"));
        Floor {
            read_acquire: with_now(include_str!("../src/lua/rw_read_acquire.lua")),
            read_release: with_now(include_str!("../src/lua/rw_read_release.lua")),
            write_acquire: with_now(include_str!("../src/lua/rw_write_acquire.lua")),
            write_release: redis::Script::new(include_str!("../src/lua/rw_write_release.lua")),
        }
    }

    async fn cycles(&self, connection: &mut MultiplexedConnection, write: bool) -> Duration {
        let (key, readers, intent) = (
            "bench:floor-rw",
            "{bench:floor-rw}:readers",
            "{bench:floor-rw}:writer-waiting",
        );
        let started = Instant::now();
        for i in 0..CYCLES {
            let token = format!("{i:032x}");
            let (acquire, release) = match write {
                false => (&self.read_acquire, &self.read_release),
                true => (&self.write_acquire, &self.write_release),
            };
            let granted: i64 = acquire
                .key(key)
                .key(readers)
                .key(intent)
                .arg(&token)
                .arg(30_000)
                .invoke_async(connection)
                .await
                .unwrap();
            assert_eq!(granted, 1);
            let mut release = release.prepare_invoke();
            match write {
                false => release
                    .key(readers)
                    .arg(&token)
                    .arg("{bench:floor-rw}:readers-released"),
                true => release
                    .key(key)
                    .key(intent)
                    .arg(&token)
                    .arg("{bench:floor-rw}:released")
                    .arg("{bench:floor-rw}:readers-released"),
            };
            let released: i64 = release.invoke_async(connection).await.unwrap();
            assert_eq!(released, 1);
        }
        started.elapsed()
    }
}

async fn lock_cycles(lock: &RwLock, write: bool) -> Duration {
    let started = Instant::now();
    for _ in 0..CYCLES {
        match write {
            false => lock.read().await.unwrap().release().await.unwrap(),
            true => lock.write().await.unwrap().release().await.unwrap(),
        }
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
    runtime.block_on(async {
        let connection = server.conn().await;
        let lock = RwLock::builder("bench:rw").build(connection.clone()).unwrap();
        let floor = Floor::new();
        let mut floor_connection = connection.clone();
        for write in [false, true] {
            floor.cycles(&mut floor_connection, write).await;
            lock_cycles(&lock, write).await;
            let (floor_rate, our_rate) = interleaved(
                ROUNDS,
                async || rate(CYCLES as usize, floor.cycles(&mut floor_connection, write).await),
                async || rate(CYCLES as usize, lock_cycles(&lock, write).await),
            )
            .await;
            println!(
                "rwlock {} + release, 1 task, uncontended: floor {floor_rate:.0} cycles/s, RwLock {our_rate:.0} cycles/s, ratio {:.3} (median of {ROUNDS} rounds of {CYCLES})",
                if write { "write" } else { "read" },
                our_rate / floor_rate
            );
        }
        server.reset_stats();
        lock_cycles(&lock, false).await;
        lock_cycles(&lock, true).await;
        println!(
            "commands sent per cycle: {:.2} (EVALSHA)",
            server.command_calls("evalsha") as f64 / f64::from(2 * CYCLES)
        );
    });
}
