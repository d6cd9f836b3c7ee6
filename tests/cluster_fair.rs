//! Fair locks on a Redis Cluster: the lock, its queue and its places'
//! expiries live in the key's slot on the key's master (one script touches
//! them all), waiters on keys of every master are served in arrival order,
//! and each handoff is told to the next waiter alone through its own
//! sharded channel (SPUBLISH) in the key's shard.
#![cfg(feature = "cluster")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_mutex::{FairLock, Locks, WaitPolicy};
use support::cluster::{RedisCluster, key_per_master};

fn in_line(cluster: &RedisCluster, key: &str) -> i64 {
    let master = &cluster.masters[cluster.owner_of(key)];
    redis::from_redis_value(master.cmd(&["ZCARD", &format!("{{{key}}}:queue")])).unwrap()
}

/// 4 waiters arrive in order behind a holder on `lock`; returns the order
/// they were served in.
async fn serve_in_turn(cluster: &RedisCluster, lock: &FairLock) -> Vec<usize> {
    let key = lock.key().to_owned();
    let served = Arc::new(Mutex::new(Vec::new()));
    let holder = lock.acquire().await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..4 {
        let (lock, served) = (lock.clone(), served.clone());
        tasks.push(tokio::spawn(async move {
            let guard = lock.acquire().await.unwrap();
            served.lock().unwrap().push(n);
            guard.release().await.unwrap();
        }));
        let started = Instant::now();
        while in_line(cluster, &key) != n as i64 + 1 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{n} not queued"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    holder.release().await.unwrap();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("a waiter hung")
            .unwrap();
    }
    served.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_keys_of_every_master_are_served_in_arrival_order() {
    let cluster = RedisCluster::start();
    let locks = Locks::builder()
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::timeout(Duration::from_secs(30)))
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let keys = key_per_master(&cluster, "fair");
    for server in &cluster.masters {
        server.reset_stats();
    }
    for key in &keys {
        let lock = locks.fair_lock(key).unwrap();
        let started = Instant::now();
        assert_eq!(serve_in_turn(&cluster, &lock).await, [0, 1, 2, 3], "{key}");
        eprintln!(
            "{key}: 4 waiters served in order in {:?}",
            started.elapsed()
        );
    }
    for (master, server) in cluster.masters.iter().enumerate() {
        // Each release tells the next waiter alone (its own channel; the
        // last has none to tell) and the key's plain channel: 4 + 5.
        assert_eq!(server.command_calls("spublish"), 9, "master {master}");
        assert_eq!(server.command_calls("publish"), 0, "master {master}");
        let left: Vec<String> = redis::from_redis_value(server.cmd(&["KEYS", "*"])).unwrap();
        assert!(left.is_empty(), "master {master} kept {left:?}");
    }
}

/// A release tells the waiter on its own channel in the key's shard: the
/// handoff takes a round trip or two, not the waiter's keep-alive period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_wakes_the_next_waiter_through_its_sharded_channel() {
    let cluster = RedisCluster::start();
    let key = "{orders}:fair";
    let owner = &cluster.masters[cluster.owner_of(key)];
    let lock = FairLock::builder(key)
        .waiter_ttl(Duration::from_secs(60))
        .wait(WaitPolicy::timeout(Duration::from_secs(20)))
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let holder = lock.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire().await.unwrap() }
    });
    let started = Instant::now();
    loop {
        let channels: Vec<String> = redis::from_redis_value(owner.cmd(&[
            "PUBSUB",
            "SHARDCHANNELS",
            "{orders}:fair:turn:*",
        ]))
        .unwrap();
        if channels.len() == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "not subscribed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Settled: the waiter sleeps until its keep-alive, 20 s from now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let released = Instant::now();
    holder.release().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
    let took = released.elapsed();
    assert!(took < Duration::from_millis(500), "{took:?}");
    next.release().await.unwrap();
}
