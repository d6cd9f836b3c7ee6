//! Re-entrant holds (`Owner`) against their floors, in one run:
//!
//! - an owner's outermost acquire + release (one `SET`, one release, as a
//!   plain lock's) against the plain `Lock` and the raw `redis` floor
//!   (`SET NX PX` + `EVALSHA`) on the same connection;
//! - a nested acquire + release (no I/O) against `tokio::sync::Mutex`
//!   lock + unlock, the floor of a local critical section.
//!
//! The `client_cpu` group measures the same outermost cycles by the
//! process's CPU time (`getrusage`) on a current-thread runtime, so that a
//! loaded machine or a slow loopback does not hide the client's cost.
//!
//! ```sh
//! cargo bench --bench reentrant
//! ```

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis_mutex::{Lock, Owner};

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "floor/mod.rs"]
mod floor;

use floor::{RELEASE_LUA, cpu_time, floor_cycle};

const TTL: Duration = Duration::from_secs(30);

fn bench(c: &mut Criterion) {
    let server = support::RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let multiplexed = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let script = redis::Script::new(RELEASE_LUA);
    let lock = Lock::builder("bench:reentrant")
        .ttl(TTL)
        .build(multiplexed.clone())
        .unwrap();

    let mut outer = c.benchmark_group("reentrant/outermost_acquire_release");
    outer.throughput(Throughput::Elements(1));
    outer.bench_function("floor: SET NX PX + EVALSHA (multiplexed)", |b| {
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
    outer.bench_function("Lock, no owner", |b| {
        b.to_async(&runtime)
            .iter(|| async { lock.acquire().await.unwrap().release().await.unwrap() })
    });
    let owner = Owner::new();
    outer.bench_function("Lock::acquire_as(owner)", |b| {
        b.to_async(&runtime).iter(|| async {
            let guard = lock.acquire_as(&owner).await.unwrap();
            guard.release().await.unwrap();
        })
    });
    outer.finish();

    let mut nested = c.benchmark_group("reentrant/nested_acquire_release");
    nested.throughput(Throughput::Elements(1));
    let mutex = tokio::sync::Mutex::new(0u64);
    nested.bench_function("floor: tokio::sync::Mutex lock + unlock", |b| {
        b.to_async(&runtime).iter(|| async {
            *mutex.lock().await += 1;
        })
    });
    let held = runtime.block_on(lock.acquire_as(&owner)).unwrap();
    nested.bench_function("nested Lock::acquire_as(owner) + release", |b| {
        b.to_async(&runtime).iter(|| async {
            let guard = lock.acquire_as(&owner).await.unwrap();
            guard.release().await.unwrap();
        })
    });
    nested.bench_function("nested, in Owner::scope: acquire + release", |b| {
        b.to_async(&runtime).iter(|| {
            owner.clone().scoped(async {
                let guard = lock.acquire().await.unwrap();
                guard.release().await.unwrap();
            })
        })
    });
    nested.finish();
    runtime.block_on(held.release()).unwrap();
    assert!(!server.exists("bench:reentrant"));
}

fn bench_cpu(c: &mut Criterion) {
    let server = support::RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let multiplexed = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let script = redis::Script::new(RELEASE_LUA);
    let lock = Lock::builder("bench:cpu")
        .ttl(TTL)
        .build(multiplexed.clone())
        .unwrap();
    let owner = Owner::new();
    let mut group = c.benchmark_group("reentrant/client_cpu");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor: SET NX PX + EVALSHA", |b| {
        b.iter_custom(|iters| {
            let mut connection = multiplexed.clone();
            runtime.block_on(async {
                let start = cpu_time();
                for _ in 0..iters {
                    floor_cycle(&mut connection, &script, "bench:cpu:floor", "token").await;
                }
                cpu_time() - start
            })
        })
    });
    group.bench_function("Lock, no owner", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = cpu_time();
                for _ in 0..iters {
                    lock.acquire().await.unwrap().release().await.unwrap();
                }
                cpu_time() - start
            })
        })
    });
    group.bench_function("Lock::acquire_as(owner)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = cpu_time();
                for _ in 0..iters {
                    lock.acquire_as(&owner)
                        .await
                        .unwrap()
                        .release()
                        .await
                        .unwrap();
                }
                cpu_time() - start
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench, bench_cpu
}
criterion_main!(benches);
