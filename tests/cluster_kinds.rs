//! Semaphores and read-write locks on a Redis Cluster: the permits of each key live on the
//! key's master, the limit holds under contention on keys of every master,
//! and a release wakes a waiter through the sharded channel (SPUBLISH) in
//! the key's shard.

#![cfg(feature = "cluster")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis_mutex::{Locks, Semaphore, WaitPolicy};
use support::cluster::{RedisCluster, key_per_master};
use support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_on_keys_of_every_master() {
    let cluster = RedisCluster::start();
    let locks = Locks::builder()
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::timeout(Duration::from_secs(60)))
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let keys = key_per_master(&cluster, "sem");
    let inside: Arc<Vec<AtomicU32>> = Arc::new(keys.iter().map(|_| AtomicU32::new(0)).collect());
    let most: Arc<Vec<AtomicU32>> = Arc::new(keys.iter().map(|_| AtomicU32::new(0)).collect());
    let mut tasks = Vec::new();
    for task in 0..12 {
        let (locks, keys, inside, most) =
            (locks.clone(), keys.clone(), inside.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..4 {
                let k = (task + round) % keys.len();
                let permit = locks
                    .semaphore(&keys[k], 2)
                    .unwrap()
                    .acquire()
                    .await
                    .unwrap();
                let now = inside[k].fetch_add(1, Ordering::SeqCst) + 1;
                most[k].fetch_max(now, Ordering::SeqCst);
                assert!(now <= 2, "{now} inside {}", keys[k]);
                tokio::time::sleep(Duration::from_millis(20)).await;
                inside[k].fetch_sub(1, Ordering::SeqCst);
                permit.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for (k, key) in keys.iter().enumerate() {
        assert_eq!(
            most[k].load(Ordering::SeqCst),
            2,
            "{key}: both permits were used"
        );
    }
    for (master, server) in cluster.masters.iter().enumerate() {
        assert!(server.command_calls("spublish") >= 1, "master {master}");
        assert_eq!(server.command_calls("publish"), 0, "master {master}");
        let keys: Vec<String> = redis::from_redis_value(server.cmd(&["KEYS", "*"])).unwrap();
        assert!(keys.is_empty(), "master {master} kept {keys:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_wakes_a_waiter_in_the_keys_shard() {
    let cluster = RedisCluster::start();
    let key = "wake-sem";
    let owner = cluster.owner_of(key);
    let semaphore = Semaphore::builder(key, 1)
        .ttl(Duration::from_secs(30))
        .wait(
            WaitPolicy::timeout(Duration::from_secs(20))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        )
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let permit = semaphore.acquire().await.unwrap();
    assert!(
        cluster.masters[owner].exists(key),
        "the permits live on the key's master"
    );
    let waiter = {
        let semaphore = semaphore.clone();
        tokio::spawn(async move { semaphore.acquire().await.unwrap() })
    };
    let channel = format!("{{{key}}}:released");
    eventually(
        Duration::from_secs(5),
        "the waiter subscribed in the shard",
        || {
            let (_, count): (String, i64) = redis::from_redis_value(cluster.masters[owner].cmd(&[
                "PUBSUB",
                "SHARDNUMSUB",
                &channel,
            ]))
            .unwrap();
            count == 1
        },
    )
    .await;
    let released = Instant::now();
    permit.release().await.unwrap();
    let next = support::woken_at_once(released, waiter).await;
    next.release().await.unwrap();
}

/// A read-write lock on a Cluster: its three keys in the key's slot (on the
/// key's master), readers sharing, a writer alone, and the last reader's
/// release waking the writer through the sharded channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_write_lock_lives_in_its_keys_slot_and_wakes_through_its_shard() {
    let cluster = RedisCluster::start();
    let key = "rw-cluster";
    let owner = cluster.owner_of(key);
    let lock = redis_mutex::RwLock::builder(key)
        .ttl(Duration::from_secs(30))
        .wait(
            WaitPolicy::timeout(Duration::from_secs(20))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        )
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let first = lock.read().await.unwrap();
    let second = lock.try_read().await.unwrap().expect("readers share");
    assert!(cluster.masters[owner].exists("{rw-cluster}:readers"));
    let writer = tokio::spawn({
        let lock = lock.clone();
        async move { lock.write().await.unwrap() }
    });
    eventually(
        Duration::from_secs(5),
        "the writer's mark and subscription",
        || {
            let (_, count): (String, i64) = redis::from_redis_value(cluster.masters[owner].cmd(&[
                "PUBSUB",
                "SHARDNUMSUB",
                "{rw-cluster}:readers-released",
            ]))
            .unwrap();
            count == 1 && cluster.masters[owner].exists("{rw-cluster}:writer-waiting")
        },
    )
    .await;
    first.release().await.unwrap();
    let released = Instant::now();
    second.release().await.unwrap();
    let write = support::woken_at_once(released, writer).await;
    assert!(
        cluster.masters[owner].exists(key),
        "the writer's key on the same master"
    );
    write.release().await.unwrap();
    for (master, server) in cluster.masters.iter().enumerate() {
        let keys: Vec<String> = redis::from_redis_value(server.cmd(&["KEYS", "*"])).unwrap();
        assert!(keys.is_empty(), "master {master} kept {keys:?}");
    }
}

/// The blocking API on a Cluster: each blocking builder's `connect_cluster`
/// and `cluster_client` reach the key's master, and the kinds keep their
/// rule there.
#[cfg(feature = "blocking")]
#[test]
fn the_blocking_api_works_on_a_cluster() {
    use redis_mutex::{FairLock, Lock, RwLock};

    let cluster = RedisCluster::start();
    let client = redis::cluster::ClusterClient::new(cluster.seeds()).unwrap();
    let keys = key_per_master(&cluster, "sync");

    let locks = Locks::builder().blocking().cluster_client(&client).unwrap();
    for key in &keys {
        let lock = locks.lock(key).unwrap();
        let guard = lock.acquire().unwrap();
        assert!(cluster.masters[cluster.owner_of(key)].exists(key));
        assert!(lock.try_acquire().unwrap().is_none());
        guard.release().unwrap();
        assert!(!cluster.masters[cluster.owner_of(key)].exists(key));
    }

    let lock = Lock::builder(&keys[0])
        .blocking()
        .cluster_client(&client)
        .unwrap();
    let guard = lock.acquire().unwrap();
    let other = Lock::builder(&keys[0])
        .blocking()
        .connect_cluster(cluster.seeds())
        .unwrap();
    assert!(other.try_acquire().unwrap().is_none());
    guard.release().unwrap();

    let semaphore = Semaphore::builder(&keys[1], 2)
        .blocking()
        .cluster_client(&client)
        .unwrap();
    let (a, b) = (semaphore.acquire().unwrap(), semaphore.acquire().unwrap());
    assert!(semaphore.try_acquire().unwrap().is_none());
    assert_eq!(semaphore.in_use().unwrap(), 2);
    a.release().unwrap();
    b.release().unwrap();

    let rwlock = RwLock::builder(&keys[2])
        .blocking()
        .cluster_client(&client)
        .unwrap();
    let read = rwlock.read().unwrap();
    assert_eq!(rwlock.readers().unwrap(), 1);
    read.release().unwrap();
    rwlock.write().unwrap().release().unwrap();

    let fair = FairLock::builder(&keys[0])
        .blocking()
        .cluster_client(&client)
        .unwrap();
    fair.acquire().unwrap().release().unwrap();

    for (master, server) in cluster.masters.iter().enumerate() {
        let left: Vec<String> = redis::from_redis_value(server.cmd(&["KEYS", "*"])).unwrap();
        assert!(left.is_empty(), "master {master} kept {left:?}");
    }
}
