//! Lock acquire + release against the floor: the `redis` crate alone sending
//! the same two commands (`SET key token NX PX ttl`, then the compare-and-delete
//! script by `EVALSHA`) on the same kind of connection, in the same run.
//!
//! ```sh
//! cargo bench --bench lock
//! ```
//!
//! Report the lock's throughput as a ratio to the floor's from one run.
//!
//! The `redlock` group compares an acquire + release over a Redlock of 5
//! local nodes with the same on 1 node, in the same run:
//!
//! ```sh
//! cargo bench --bench lock -- redlock
//! ```

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use redis::aio::MultiplexedConnection;
use redis_mutex::{Lock, Locks};

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "floor/mod.rs"]
mod floor;

use floor::{RELEASE_LUA, floor_cycle};

const TTL: Duration = Duration::from_secs(30);
const TASKS: usize = 32;

/// One `SET NX PX` then one release by `EVAL` on each of 5 connections, the
/// five of each step joined.
async fn floor_cycle_on_five(connections: &[MultiplexedConnection], key: &str) {
    let set = |connection: &MultiplexedConnection| {
        let mut connection = connection.clone();
        async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg("token-of-the-floor")
                .arg("NX")
                .arg("PX")
                .arg(TTL.as_millis() as u64)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert_eq!(set.as_deref(), Some("OK"));
        }
    };
    let release = |connection: &MultiplexedConnection| {
        let mut connection = connection.clone();
        async move {
            let deleted: i64 = redis::cmd("EVAL")
                .arg(RELEASE_LUA)
                .arg(1)
                .arg(key)
                .arg("token-of-the-floor")
                .query_async(&mut connection)
                .await
                .unwrap();
            assert_eq!(deleted, 1);
        }
    };
    let c = connections;
    tokio::join!(set(&c[0]), set(&c[1]), set(&c[2]), set(&c[3]), set(&c[4]));
    tokio::join!(
        release(&c[0]),
        release(&c[1]),
        release(&c[2]),
        release(&c[3]),
        release(&c[4])
    );
}

/// `iters` acquire + release cycles on each lock, one task per lock, all at
/// once; the time they all took.
async fn cycles_in_parallel(locks: Vec<Lock>, iters: u64) -> Duration {
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
    // A lock made per cycle from one `Locks` (a lock per request), over the
    // same multiplexed connection.
    let locks = Locks::builder()
        .ttl(TTL)
        .build(multiplexed.clone())
        .unwrap();
    one.bench_function("Locks: lock(key) + acquire + release (multiplexed)", |b| {
        b.to_async(&runtime)
            .iter(|| async { lock_cycle(&locks.lock("bench:factory").unwrap()).await })
    });
    one.finish();

    // Making a lock from a `Locks`: no I/O, a few allocations.
    let mut made = c.benchmark_group("locks_lock");
    made.throughput(Throughput::Elements(1));
    made.bench_function("Locks::lock(key), no I/O", |b| {
        b.iter(|| locks.lock("orders:42").unwrap())
    });
    made.finish();

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
            cycles_in_parallel(locks, iters)
        })
    });
    many.finish();

    renewal(c, &runtime, &server, &multiplexed);
    drop(server);
    bench_redlock(c, &runtime);
    #[cfg(feature = "cluster")]
    bench_cluster(c, &runtime);
}

/// Acquire + release latency on a Redlock of 5 nodes against 1 node. The
/// quorum sends each step to all nodes at once, so the ratio should stay
/// near 1 (a sequential loop would be about 5x).
/// Throughput of 32 tasks, each acquiring and releasing its own key, over a
/// 3-master Redis Cluster vs over one node, in the same run:
/// `cargo bench --bench lock --features cluster -- cluster`.
#[cfg(feature = "cluster")]
fn bench_cluster(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let node = support::RedisServer::start();
    let cluster = support::cluster::RedisCluster::start();
    let (one, many) = runtime.block_on(async {
        let one = redis::Client::open(node.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let many = redis::cluster::ClusterClient::new(cluster.seeds())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap();
        (one, many)
    });
    let mut group = c.benchmark_group("cluster/32_tasks_distinct_keys");
    group.throughput(Throughput::Elements(TASKS as u64));
    let one_node: Vec<Lock> = (0..TASKS)
        .map(|task| {
            Lock::builder(format!("bench:cluster:{task}"))
                .ttl(TTL)
                .build(one.clone())
                .unwrap()
        })
        .collect();
    let three_masters: Vec<Lock> = (0..TASKS)
        .map(|task| {
            Lock::builder(format!("bench:cluster:{task}"))
                .ttl(TTL)
                .build(many.clone())
                .unwrap()
        })
        .collect();
    // The floor: the redis crate alone on the same cluster connection.
    let script = redis::Script::new(RELEASE_LUA);
    group.bench_function(
        "floor: SET NX PX + EVALSHA on the cluster connection",
        |b| {
            b.to_async(runtime).iter_custom(|iters| {
                let (connection, script) = (many.clone(), script.clone());
                async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|task| {
                            let (mut connection, script) = (connection.clone(), script.clone());
                            tokio::spawn(async move {
                                // The same keys as the locks (so the same masters).
                                let key = format!("bench:cluster:{task}");
                                for _ in 0..iters {
                                    floor_cycle(
                                        &mut connection,
                                        &script,
                                        &key,
                                        "token-of-the-floor",
                                    )
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
        },
    );
    for (name, locks) in [("1 node", &one_node), ("3-master cluster", &three_masters)] {
        group.bench_function(name, |b| {
            b.to_async(runtime)
                .iter_custom(|iters| cycles_in_parallel(locks.clone(), iters))
        });
    }
    group.finish();

    // Where the time goes: on 2 cores, 3 masters and the client share the
    // CPU, so the client's CPU per cycle counts against throughput here as
    // it does not against one server that is the bottleneck.
    let cycles = 32 * 300;
    let masters: Vec<&support::RedisServer> = cluster.masters.iter().collect();
    for (name, servers, connection, locks) in [
        (
            "1 node",
            vec![&node],
            ErasedConnection::One(one.clone()),
            &one_node,
        ),
        (
            "3-master cluster",
            masters,
            ErasedConnection::Cluster(many.clone()),
            &three_masters,
        ),
    ] {
        let floor = runtime.block_on(cpu_per_cycle(&servers, cycles, || {
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let (mut connection, script) = (connection.clone(), script.clone());
                    tokio::spawn(async move {
                        let key = format!("bench:cluster:{task}");
                        for _ in 0..cycles / TASKS {
                            floor_cycle(&mut connection, &script, &key, "token-of-the-floor").await;
                        }
                    })
                })
                .collect();
            async move {
                for task in tasks {
                    task.await.unwrap();
                }
            }
        }));
        let lock = runtime.block_on(cpu_per_cycle(&servers, cycles, || {
            cycles_in_parallel(locks.clone(), (cycles / TASKS) as u64)
        }));
        println!("CPU per acquire+release cycle, {name}, {cycles} cycles in 32 tasks:");
        for (what, (wall, client, server)) in [("floor", floor), ("Lock", lock)] {
            println!(
                "  {what:5}: wall {wall:5.1} µs, client CPU {client:5.1} µs, server CPU {server:5.1} µs"
            );
        }
    }
}

/// The two connections the CPU probe compares, as one type.
#[cfg(feature = "cluster")]
#[derive(Clone)]
enum ErasedConnection {
    One(MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

#[cfg(feature = "cluster")]
impl redis::aio::ConnectionLike for ErasedConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            ErasedConnection::One(c) => c.req_packed_command(cmd),
            ErasedConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            ErasedConnection::One(c) => c.req_packed_commands(pipeline, offset, count),
            ErasedConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(feature = "cluster")]
/// Runs `work` (which does `cycles` cycles) and returns, per cycle, the wall
/// time, this process's CPU time and the `servers`' CPU time, in µs.
async fn cpu_per_cycle<F: std::future::Future>(
    servers: &[&support::RedisServer],
    cycles: usize,
    work: impl FnOnce() -> F,
) -> (f64, f64, f64) {
    let servers_cpu = || -> f64 {
        servers
            .iter()
            .map(|server| {
                let info = server.info("cpu");
                ["used_cpu_sys:", "used_cpu_user:"]
                    .iter()
                    .map(|field| {
                        info.lines()
                            .find_map(|line| line.strip_prefix(field))
                            .and_then(|v| v.trim().parse::<f64>().ok())
                            .unwrap_or(0.0)
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let client_cpu = || -> f64 {
        // SAFETY: getrusage only writes the struct we pass.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    };
    let (client0, servers0, start) = (client_cpu(), servers_cpu(), Instant::now());
    work().await;
    let wall = start.elapsed().as_secs_f64();
    let per = |secs: f64| secs * 1e6 / cycles as f64;
    (
        per(wall),
        per(client_cpu() - client0),
        per(servers_cpu() - servers0),
    )
}

fn bench_redlock(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let servers: Vec<support::RedisServer> =
        (0..5).map(|_| support::RedisServer::start()).collect();
    let connections: Vec<MultiplexedConnection> = runtime.block_on(async {
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
        connections
    });
    let single = Lock::builder("bench:redlock:single")
        .ttl(TTL)
        .build(connections[0].clone())
        .unwrap();
    let quorum_of_one = Lock::builder("bench:redlock:one")
        .ttl(TTL)
        .build_quorum([connections[0].clone()])
        .unwrap();
    let quorum_of_five = Lock::builder("bench:redlock:five")
        .ttl(TTL)
        .build_quorum(connections.clone())
        .unwrap();

    let mut group = c.benchmark_group("redlock/acquire_release");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, lock) in [
        ("1 node", &single),
        ("quorum of 1 node", &quorum_of_one),
        ("quorum of 5 nodes", &quorum_of_five),
    ] {
        group.bench_function(name, |b| b.to_async(runtime).iter(|| lock_cycle(lock)));
    }
    // The floor of a parallel fan-out on this machine: the raw `redis` crate
    // sending the same SET NX PX, then the same release by EVAL, to all 5
    // nodes at once. Its ratio to "1 node" is what the hardware allows.
    group.bench_function("floor: raw SET NX PX + EVAL to 5 nodes at once", |b| {
        b.to_async(runtime)
            .iter(|| floor_cycle_on_five(&connections, "bench:redlock:floor"))
    });
    group.finish();
    drop(servers);
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
