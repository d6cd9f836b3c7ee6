//! Release without Lua where the server offers it (Valkey 9's `DELIFEQ`):
//! what it would save against the crate's release script, measured on the
//! same connection in the same run. Needs a server with `DELIFEQ`:
//!
//! ```sh
//! REDIS_SERVER_BIN="$(./scripts/ensure-valkey-server)" cargo bench --bench delifeq
//! ```
//!
//! Three acquire + release cycles, each `SET key token NX PX 30000` and then:
//! - the floor's compare-and-delete script by `EVALSHA` (no publish);
//! - `DELIFEQ key token` (no publish: waiters would not be woken);
//! - `DELIFEQ` and `PUBLISH` pipelined (woken, but not atomically: a waiter
//!   may miss the wake-up if the pipeline is cut between the two);
//! - the crate's own `Lock` (its script deletes and publishes atomically).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis_mutex::Lock;

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "floor/mod.rs"]
mod floor;

use floor::{RELEASE_LUA, floor_cycle, floor_set};

fn bench(c: &mut Criterion) {
    let server = support::RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let connection = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let probe: redis::RedisResult<i64> = runtime.block_on(async {
        redis::cmd("DELIFEQ")
            .arg("delifeq:probe")
            .arg("x")
            .query_async(&mut connection.clone())
            .await
    });
    if let Err(e) = probe {
        eprintln!("SKIPPED: this server has no DELIFEQ ({e}); run it against Valkey 9");
        return;
    }
    let script = redis::Script::new(RELEASE_LUA);
    let mut group = c.benchmark_group("release_without_lua/1_task");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor: SET NX PX + EVALSHA compare-and-delete", |b| {
        b.to_async(&runtime).iter(|| {
            let (mut connection, script) = (connection.clone(), script.clone());
            async move { floor_cycle(&mut connection, &script, "delifeq:floor", "token").await }
        })
    });
    group.bench_function("SET NX PX + DELIFEQ", |b| {
        b.to_async(&runtime).iter(|| {
            let mut connection = connection.clone();
            async move {
                floor_set(&mut connection, "delifeq:plain", "token").await;
                let deleted: i64 = redis::cmd("DELIFEQ")
                    .arg("delifeq:plain")
                    .arg("token")
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                assert_eq!(deleted, 1);
            }
        })
    });
    group.bench_function("SET NX PX + DELIFEQ and PUBLISH pipelined", |b| {
        b.to_async(&runtime).iter(|| {
            let mut connection = connection.clone();
            async move {
                floor_set(&mut connection, "delifeq:published", "token").await;
                let (deleted, _): (i64, i64) = redis::pipe()
                    .cmd("DELIFEQ")
                    .arg("delifeq:published")
                    .arg("token")
                    .cmd("PUBLISH")
                    .arg("{delifeq:published}:released")
                    .arg("")
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                assert_eq!(deleted, 1);
            }
        })
    });
    let lock = Lock::builder("delifeq:lock")
        .ttl(Duration::from_secs(30))
        .build(connection.clone())
        .unwrap();
    group.bench_function("Lock (script: delete and publish atomically)", |b| {
        b.to_async(&runtime)
            .iter(|| async { lock.acquire().await.unwrap().release().await.unwrap() })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
