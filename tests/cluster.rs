//! Locks over a real 3-master Redis Cluster started by the tests (feature
//! `cluster`): keys spread over every master, renewal, fencing, contention
//! through different seed nodes, and a held lock whose slot moves.
#![cfg(feature = "cluster")]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis_mutex::{Lock, WaitPolicy};
use support::cluster::RedisCluster;

/// The keys a master holds (`KEYS *` is local to a node in a cluster).
fn keys_on(cluster: &RedisCluster, master: usize) -> Vec<String> {
    match cluster.masters[master].cmd(&["KEYS", "*"]) {
        redis::Value::Array(keys) => keys
            .into_iter()
            .map(|k| match k {
                redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("KEYS answered {other:?}"),
    }
}

fn no_keys_anywhere(cluster: &RedisCluster) {
    for master in 0..3 {
        assert_eq!(
            keys_on(cluster, master),
            Vec::<String>::new(),
            "keys left on master {master}"
        );
    }
}

#[tokio::test]
async fn locks_on_many_keys_spread_over_every_master_renew_and_release() {
    let cluster = RedisCluster::start();
    let keys: Vec<String> = (0..24).map(|i| format!("job:{i}")).collect();
    let mut owners = HashSet::new();
    let mut guards = Vec::new();
    for key in &keys {
        let lock = Lock::builder(key.as_str())
            .ttl(Duration::from_millis(300))
            .auto_renew(true)
            .connect_cluster(cluster.seeds())
            .await
            .unwrap();
        let guard = lock.acquire().await.unwrap();
        let owner = cluster.owner_of(key);
        assert!(
            cluster.masters[owner].exists(key),
            "{key} is on the master that owns its slot"
        );
        owners.insert(owner);
        guards.push(guard);
    }
    assert_eq!(owners.len(), 3, "the keys landed on all three masters");

    tokio::time::sleep(Duration::from_millis(1_000)).await; // > 3 TTLs: renewal kept them
    for (key, guard) in keys.iter().zip(&guards) {
        assert!(!guard.is_lost(), "{key} lost");
        assert!(guard.is_held().await.unwrap());
    }
    for guard in guards {
        guard.release().await.unwrap();
    }
    no_keys_anywhere(&cluster);
    // Each release announced itself in its key's shard, not cluster-wide.
    let calls = |command: &str| -> u64 {
        cluster
            .masters
            .iter()
            .map(|m| m.command_calls(command))
            .sum()
    };
    assert_eq!(calls("spublish"), keys.len() as u64);
    assert_eq!(calls("publish"), 0);
}

#[tokio::test]
async fn fencing_works_and_keeps_the_counter_on_the_locks_master() {
    let cluster = RedisCluster::start();
    let mut fences = Vec::new();
    for key in ["report", "{user:7}:profile", "invoice:2026"] {
        let lock = Lock::builder(key)
            .fencing(true)
            .connect_cluster(cluster.seeds())
            .await
            .unwrap();
        for _ in 0..3 {
            let guard = lock.acquire().await.unwrap();
            let owner = cluster.owner_of(key);
            let fence_key = lock.fence_key().unwrap();
            assert!(cluster.masters[owner].exists(key));
            assert!(
                cluster.masters[owner].exists(fence_key),
                "{fence_key} beside {key}"
            );
            fences.push(guard.fence().unwrap());
            guard.release().await.unwrap();
        }
        assert_eq!(
            &fences[fences.len() - 3..],
            &[1, 2, 3],
            "{key}: fences increase"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_through_different_seed_nodes_never_overlaps() {
    let cluster = RedisCluster::start();
    let seeds = cluster.seeds();
    let inside = Arc::new(AtomicU32::new(0));
    let overlaps = Arc::new(AtomicU32::new(0));
    let client = redis::cluster::ClusterClient::new(seeds.clone()).unwrap();
    let data = client.get_async_connection().await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..12 {
        // Each task enters the cluster through a different seed.
        let seed = seeds[task % 3].clone();
        let (inside, overlaps, mut data) = (inside.clone(), overlaps.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let lock = Lock::builder("shared:job")
                .ttl(Duration::from_secs(10))
                .wait(WaitPolicy::timeout(Duration::from_secs(60)))
                .connect_cluster([seed])
                .await
                .unwrap();
            for _ in 0..8 {
                let guard = lock.acquire().await.unwrap();
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                let value: Option<u64> = data.get("{shared:job}:counter").await.unwrap();
                tokio::time::sleep(Duration::from_micros(300)).await;
                let _: () = data
                    .set("{shared:job}:counter", value.unwrap_or(0) + 1)
                    .await
                    .unwrap();
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    let mut data = data;
    let counter: u64 = data.get("{shared:job}:counter").await.unwrap();
    assert_eq!(counter, 12 * 8, "no lost update");
}

#[tokio::test]
async fn a_held_lock_whose_slot_migrates_is_extended_and_released_where_it_went() {
    let cluster = RedisCluster::start();
    let key = "migrating:job";
    let lock = Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .fencing(true)
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let guard = lock.acquire().await.unwrap();
    let from = cluster.owner_of(key);
    let to = (from + 1) % 3;
    cluster.migrate_slot_of(key, &[key, lock.fence_key().unwrap()], to);
    assert_eq!(cluster.owner_of(key), to);
    assert!(
        cluster.masters[to].exists(key),
        "the lock moved with its slot"
    );

    // The connection learns the new owner from MOVED and follows it.
    guard.extend(Duration::from_secs(10)).await.unwrap();
    assert!(guard.is_held().await.unwrap());
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "still held where it went"
    );
    guard.release().await.unwrap();
    assert!(
        !cluster.masters[to].exists(key),
        "the release found the key"
    );
    let again = lock.acquire().await.unwrap();
    assert_eq!(again.fence(), Some(2), "the counter moved with the lock");
    again.release().await.unwrap();
    // Only the fence counter remains, on the new owner.
    assert_eq!(
        keys_on(&cluster, to),
        vec![lock.fence_key().unwrap().to_string()]
    );
    assert_eq!(keys_on(&cluster, from), Vec::<String>::new());
}

#[test]
fn lockrun_with_cluster_seeds_runs_and_excludes() {
    let cluster = RedisCluster::start();
    let lockrun = |args: &[&str]| {
        let mut command = std::process::Command::new(support::lockrun_bin());
        command
            .arg("--cluster")
            .arg("--url")
            .arg(&cluster.seeds()[1])
            .args(args)
            .env_remove("REDIS_URL");
        command
    };
    let mut holder = lockrun(&["--key", "cron:job", "--", "sleep", "2"])
        .spawn()
        .unwrap();
    let owner = cluster.owner_of("cron:job");
    let started = std::time::Instant::now();
    while !cluster.masters[owner].exists("cron:job") {
        assert!(started.elapsed() < Duration::from_secs(5), "never held");
        std::thread::sleep(Duration::from_millis(20));
    }
    let busy = lockrun(&["--key", "cron:job", "--", "echo", "never"])
        .output()
        .unwrap();
    assert_eq!(
        busy.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(holder.wait().unwrap().success());
    let out = lockrun(&[
        "--key",
        "cron:job",
        "--fence",
        "--",
        "sh",
        "-c",
        "echo $LOCKRUN_FENCE",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"1\n");
    no_keys_anywhere_but_fences(&cluster);
}

fn no_keys_anywhere_but_fences(cluster: &RedisCluster) {
    for master in 0..3 {
        let left: Vec<String> = keys_on(cluster, master)
            .into_iter()
            .filter(|k| !k.ends_with(":fence"))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "keys left on master {master}");
    }
}

#[tokio::test]
async fn run_renews_and_lost_fires_on_a_cluster() {
    let cluster = RedisCluster::start();
    let lock = Lock::builder("cluster:run")
        .ttl(Duration::from_millis(300))
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let value = lock
        .run(|lease| async move {
            tokio::time::sleep(Duration::from_millis(1_000)).await; // > 3 TTLs
            assert!(!lease.is_lost());
            7
        })
        .await
        .unwrap();
    assert_eq!(value, 7);
    no_keys_anywhere(&cluster);

    // The key deleted behind the holder's back, on the master that owns it.
    let lock = Lock::builder("cluster:lost")
        .ttl(Duration::from_millis(1_500))
        .auto_renew(true)
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let guard = lock.acquire().await.unwrap();
    cluster.masters[cluster.owner_of("cluster:lost")].cmd(&["DEL", "cluster:lost"]);
    let deleted = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("lost() fired");
    assert!(
        deleted.elapsed() < Duration::from_millis(1_200),
        "within a renewal period: {:?}",
        deleted.elapsed()
    );
    assert!(guard.release().await.unwrap_err().is_not_held());
}
