//! A service that already has a connection pool: the README's way to lock
//! from it. A pooled connection is checked out per use and is not `Clone`,
//! while locks need one multiplexed connection for as long as they live (a
//! guard's release, its renewal and `WAIT` go on the connection its acquire
//! used). So one connection is taken out of the pool for good, and every lock
//! shares it.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use redis_mutex::{Locks, WaitPolicy};
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_over_a_connection_taken_out_of_a_deadpool_pool() {
    let server = RedisServer::start();
    let pool = deadpool_redis::Config::from_url(server.url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    // Taken out of the pool for good: a MultiplexedConnection, which every
    // lock clones.
    let for_locks = deadpool_redis::Connection::take(pool.get().await.unwrap());
    let locks = Locks::builder()
        .wait(WaitPolicy::timeout(Duration::from_secs(10)))
        .notify_with(&server.client())
        .build(for_locks)
        .unwrap();

    // The service's own work still goes through the pool.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (locks, pool) = (locks.clone(), pool.clone());
            tokio::spawn(async move {
                for _ in 0..20 {
                    let guard = locks.lock("pool:counter").unwrap().acquire().await.unwrap();
                    let mut data = pool.get().await.unwrap();
                    let seen: i64 = data.get("counter").await.unwrap_or(0);
                    tokio::task::yield_now().await;
                    let () = data.set("counter", seen + 1).await.unwrap();
                    drop(data);
                    guard.release().await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    // Read-modify-write under the lock: no update lost.
    let mut data = pool.get().await.unwrap();
    let total: i64 = data.get("counter").await.unwrap();
    assert_eq!(total, 8 * 20);
}
