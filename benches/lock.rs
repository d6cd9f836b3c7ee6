//! Lock acquire + release against the floor: the `redis` crate alone sending
//! the same two commands (`SET key token NX PX ttl`, then the compare-and-delete
//! script by `EVALSHA`) on the same kind of connection, in the same run.
//!
//! ```sh
//! cargo bench --bench lock
//! ```
//!
//! Report the lock's throughput as a ratio to the floor's from one run.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use redis::aio::MultiplexedConnection;
use redis_mutex::Lock;

#[path = "../tests/support/mod.rs"]
mod support;

/// The compare-and-delete anyone would write by hand (the same Lua the crate
/// sends).
const RELEASE_LUA: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"#;

const TTL: Duration = Duration::from_secs(30);
const TASKS: usize = 32;

async fn floor_cycle(
    connection: &mut MultiplexedConnection,
    script: &redis::Script,
    key: &str,
    token: &str,
) {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(TTL.as_millis() as u64)
        .query_async(connection)
        .await
        .unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
    let deleted: i64 = script
        .key(key)
        .arg(token)
        .invoke_async(connection)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
}

async fn lock_cycle(lock: &Lock) {
    let guard = lock.acquire().await.unwrap();
    guard.release().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let server = support::RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let (multiplexed, manager) = runtime.block_on(async {
        (
            client.get_multiplexed_async_connection().await.unwrap(),
            client.get_connection_manager().await.unwrap(),
        )
    });
    let script = redis::Script::new(RELEASE_LUA);

    let mut one = c.benchmark_group("acquire_release/1_task");
    one.throughput(Throughput::Elements(1));
    one.bench_function("floor: SET NX PX + EVALSHA (multiplexed)", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let mut connection = multiplexed.clone();
            let script = script.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    floor_cycle(
                        &mut connection,
                        &script,
                        "bench:floor",
                        "token-of-the-floor",
                    )
                    .await;
                }
                start.elapsed()
            }
        })
    });
    let lock = Lock::builder("bench:lock")
        .ttl(TTL)
        .build(multiplexed.clone())
        .unwrap();
    one.bench_function("Lock (multiplexed)", |b| {
        b.to_async(&runtime).iter(|| lock_cycle(&lock))
    });
    let lock = Lock::builder("bench:lock-manager")
        .ttl(TTL)
        .build(manager.clone())
        .unwrap();
    one.bench_function("Lock (ConnectionManager)", |b| {
        b.to_async(&runtime).iter(|| lock_cycle(&lock))
    });
    one.finish();

    // 32 tasks, each on its own key, all on one multiplexed connection. One
    // criterion iteration = one cycle in each of the 32 tasks.
    let mut many = c.benchmark_group("acquire_release/32_tasks_distinct_keys");
    many.throughput(Throughput::Elements(TASKS as u64));
    many.bench_function(BenchmarkId::new("floor: SET NX PX + EVALSHA", TASKS), |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let connection = multiplexed.clone();
            let script = script.clone();
            async move {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|task| {
                        let mut connection = connection.clone();
                        let script = script.clone();
                        tokio::spawn(async move {
                            let key = format!("bench:floor:{task}");
                            for _ in 0..iters {
                                floor_cycle(&mut connection, &script, &key, "token-of-the-floor")
                                    .await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    let locks: Vec<Lock> = (0..TASKS)
        .map(|task| {
            Lock::builder(format!("bench:lock:{task}"))
                .ttl(TTL)
                .build(multiplexed.clone())
                .unwrap()
        })
        .collect();
    many.bench_function(BenchmarkId::new("Lock", TASKS), |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let locks = locks.clone();
            async move {
                let start = Instant::now();
                let tasks: Vec<_> = locks
                    .into_iter()
                    .map(|lock| {
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                lock_cycle(&lock).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    many.finish();

    renewal(c, &runtime, &server, &multiplexed);
    drop(server);
}

/// What renewal costs: `release()` latency with a renewal task running vs
/// without, and the commands per second a renewed lock sends.
fn renewal(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    server: &support::RedisServer,
    conn: &MultiplexedConnection,
) {
    let mut group = c.benchmark_group("release");
    for renew in [false, true] {
        let lock = Lock::builder(format!("bench:release:{renew}"))
            .ttl(TTL)
            .auto_renew(renew)
            .build(conn.clone())
            .unwrap();
        let name = if renew {
            "with renewal"
        } else {
            "without renewal"
        };
        group.bench_function(name, |b| {
            b.to_async(runtime).iter_custom(|iters| {
                let lock = lock.clone();
                async move {
                    let mut released = Duration::ZERO;
                    for _ in 0..iters {
                        let guard = lock.acquire().await.unwrap();
                        let start = Instant::now();
                        guard.release().await.unwrap();
                        released += start.elapsed();
                    }
                    released
                }
            })
        });
    }
    group.finish();

    // Renewal traffic: one lock held for a while with renewal on.
    let ttl = Duration::from_millis(300);
    let held_for = Duration::from_secs(3);
    let lock = Lock::builder("bench:traffic")
        .ttl(ttl)
        .auto_renew(true)
        .build(conn.clone())
        .unwrap();
    server.reset_stats();
    runtime.block_on(async {
        let guard = lock.acquire().await.unwrap();
        tokio::time::sleep(held_for).await;
        guard.release().await.unwrap();
    });
    let extends = server.command_calls("evalsha") - 1; // minus the release
    println!(
        "renewal traffic: {extends} extends in {held_for:?} at ttl {ttl:?} = {:.1} commands/s per held lock \
         (expected 3 per ttl = {:.1}/s)",
        extends as f64 / held_for.as_secs_f64(),
        3.0 / ttl.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
