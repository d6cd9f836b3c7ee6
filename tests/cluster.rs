//! Locks over a real 3-master Redis Cluster started by the tests (feature
//! `cluster`): keys spread over every master, renewal, fencing, contention
//! through different seed nodes, and a held lock whose slot moves.
#![cfg(feature = "cluster")]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_mutex::{Lock, LockGuard, Locks, WaitPolicy};
use support::cluster::{RedisCluster, get_on_replica, key_per_master};
use support::{eventually, time_handoff, time_handoffs};

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
            .ttl(Duration::from_millis(800))
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

    tokio::time::sleep(Duration::from_millis(2_500)).await; // > 3 TTLs: renewal kept them
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_from_one_cluster_factory_exclude_on_keys_of_every_master() {
    let cluster = RedisCluster::start();
    // Two factories (two processes, say), each over its own seed.
    let mut factories = Vec::new();
    for seed in &cluster.seeds()[..2] {
        factories.push(
            Locks::builder()
                .ttl(Duration::from_secs(10))
                .wait(WaitPolicy::timeout(Duration::from_secs(60)))
                .connect_cluster([seed.clone()])
                .await
                .unwrap(),
        );
    }
    let keys = key_per_master(&cluster, "factory");
    let inside: Arc<Vec<AtomicU32>> = Arc::new(keys.iter().map(|_| AtomicU32::new(0)).collect());
    let client = redis::cluster::ClusterClient::new(cluster.seeds()).unwrap();
    let data = client.get_async_connection().await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..12 {
        let locks = factories[task % 2].clone();
        let (inside, keys, mut data) = (inside.clone(), keys.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..6 {
                let k = (task + round) % keys.len();
                let guard = locks.lock(&keys[k]).unwrap().acquire().await.unwrap();
                assert_eq!(
                    inside[k].fetch_add(1, Ordering::SeqCst),
                    0,
                    "overlap on {}",
                    keys[k]
                );
                let counter = format!("{{{}}}:counter", keys[k]);
                let value: Option<u64> = data.get(&counter).await.unwrap();
                tokio::time::sleep(Duration::from_micros(300)).await;
                let _: () = data.set(&counter, value.unwrap_or(0) + 1).await.unwrap();
                inside[k].fetch_sub(1, Ordering::SeqCst);
                guard.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut data = data;
    let mut total = 0;
    for key in &keys {
        let counter: u64 = data.get(format!("{{{key}}}:counter")).await.unwrap();
        total += counter;
    }
    assert_eq!(total, 12 * 6, "no lost update");
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

#[tokio::test]
async fn during_a_migration_ask_redirects_are_followed() {
    let cluster = RedisCluster::start();
    let held_key = "{asked}:held";
    let fresh_key = "{asked}:fresh";
    let lock = |key: &'static str| {
        Lock::builder(key)
            .ttl(Duration::from_secs(10))
            .wait(WaitPolicy::no_wait())
            .connect_cluster(cluster.seeds())
    };
    let (held, fresh) = (
        lock(held_key).await.unwrap(),
        lock(fresh_key).await.unwrap(),
    );
    let guard = held.acquire().await.unwrap();
    let from = cluster.owner_of(held_key);
    let to = (from + 1) % 3;

    // Halfway through: the held key moved, the slot is still `from`'s, and
    // `from` answers ASK for any key of the slot it does not have.
    cluster.start_migration(held_key, &[held_key], to);
    // (KEYS is local to a node: no redirection.)
    let on = |master: usize, key: &str| keys_on(&cluster, master).iter().any(|k| k == key);
    assert!(on(to, held_key) && !on(from, held_key));
    guard.extend(Duration::from_secs(10)).await.unwrap();
    assert!(guard.is_held().await.unwrap());
    assert!(held.try_acquire().await.unwrap().is_none(), "still held");
    // A new lock of the slot is asked over to the importing master.
    let fresh_guard = fresh.acquire().await.unwrap();
    assert!(on(to, fresh_key) && !on(from, fresh_key));
    assert!(fresh.try_acquire().await.unwrap().is_none(), "seen as held");
    guard.release().await.unwrap();
    fresh_guard.release().await.unwrap();
    no_keys_anywhere(&cluster);

    cluster.finish_migration(held_key, to);
    assert_eq!(cluster.owner_of(held_key), to);
    fresh.acquire().await.unwrap().release().await.unwrap();
    no_keys_anywhere(&cluster);
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

// --------------------------------------------------------------------------
// Waiting: sharded pub/sub in the key's shard
// --------------------------------------------------------------------------

/// A wait policy that polls only every 5 s (and waits up to 30 s): a waiter
/// that gets the lock sooner was woken.
fn sluggish() -> WaitPolicy {
    WaitPolicy::timeout(Duration::from_secs(30))
        .backoff(Duration::from_secs(5), Duration::from_secs(5))
}

/// A lock on `key` with a 10 s TTL that waits `sluggish()`ly, through
/// `connect_cluster` (so with sharded wake-ups).
async fn waiting_lock(cluster: &RedisCluster, key: &str) -> Lock {
    Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .wait(sluggish())
        .connect_cluster(cluster.seeds())
        .await
        .unwrap()
}

/// How many clients of `master` are subscribed to the sharded `channel`.
fn shard_subscribers(cluster: &RedisCluster, master: usize, channel: &str) -> i64 {
    let (_, count): (String, i64) =
        redis::from_redis_value(cluster.masters[master].cmd(&["PUBSUB", "SHARDNUMSUB", channel]))
            .unwrap();
    count
}

/// A task that waits for `lock` and returns its guard.
fn spawn_waiter(lock: Lock) -> tokio::task::JoinHandle<LockGuard> {
    tokio::spawn(async move { lock.acquire().await.unwrap() })
}

/// The waiter's guard, if it acquires within 5 s; fails with `what` if not.
async fn acquired_within(waiter: tokio::task::JoinHandle<LockGuard>, what: &str) -> LockGuard {
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect(what)
        .unwrap()
}

/// Holds `lock`, starts a waiter on it, and returns the time from the
/// release to the waiter's acquire, once `subscribed` says the waiter listens.
async fn handoff(lock: &Lock, subscribed: impl FnMut() -> bool) -> Duration {
    let holder = lock.acquire().await.unwrap();
    let waiter = spawn_waiter(lock.clone());
    eventually(Duration::from_secs(5), "subscribed", subscribed).await;
    // The waiter's try after the subscription, and its look at the holder.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (guard, took) = time_handoff(holder, waiter).await;
    guard.release().await.unwrap();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_every_master_are_woken_by_the_sharded_release() {
    let cluster = RedisCluster::start();
    for key in key_per_master(&cluster, "wake") {
        let owner = cluster.owner_of(&key);
        let channel = format!("{{{key}}}:released");
        let lock = waiting_lock(&cluster, key.as_str()).await;
        let took = handoff(&lock, || shard_subscribers(&cluster, owner, &channel) == 1).await;
        assert!(took < Duration::from_millis(250), "{key}: {took:?}");
        // A mutex's channel lingers 3 s after its last waiter leaves (the
        // LINGER of directed wake-ups), then unsubscribes.
        eventually(Duration::from_secs(5), "unsubscribed", || {
            shard_subscribers(&cluster, owner, &channel) == 0
        })
        .await;
    }
    for master in 0..3 {
        let server = &cluster.masters[master];
        assert!(server.command_calls("ssubscribe") >= 1, "master {master}");
        assert!(server.command_calls("spublish") >= 1, "master {master}");
        assert_eq!(server.command_calls("subscribe"), 0, "master {master}");
        assert_eq!(server.command_calls("publish"), 0, "master {master}");
        let channels: Vec<String> =
            redis::from_redis_value(server.cmd(&["PUBSUB", "SHARDCHANNELS"])).unwrap();
        assert!(channels.is_empty(), "master {master}: {channels:?}");
    }
    no_keys_anywhere(&cluster);
}

/// A guard dropped without `release()` is released in the background; on a
/// cluster that release must announce itself with `SPUBLISH`, in the key's
/// shard, or the waiters (subscribed with `SSUBSCRIBE`) sleep until the
/// holder's TTL (10 s here) instead of taking the lock at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_dropped_without_release_wakes_the_sharded_waiters() {
    let cluster = RedisCluster::start();
    let key = "dropped:{wake}";
    let owner = cluster.owner_of(key);
    let channel = format!("released:{key}");
    let lock = waiting_lock(&cluster, key).await;
    let holder = lock.acquire().await.unwrap();
    let waiter = spawn_waiter(lock.clone());
    eventually(Duration::from_secs(5), "subscribed", || {
        shard_subscribers(&cluster, owner, &channel) == 1
    })
    .await;
    // The waiter's try after the subscription, and its look at the holder.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let spublished = cluster.masters[owner].command_calls("spublish");
    let dropped = Instant::now();
    drop(holder);
    let guard = acquired_within(waiter, "the waiter was not woken by the background release").await;
    let took = dropped.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(cluster.masters[owner].command_calls("spublish") > spublished);
    for master in &cluster.masters {
        assert_eq!(master.command_calls("publish"), 0);
    }
    guard.release().await.unwrap();
    no_keys_anywhere(&cluster);
}

/// A lock over a cluster connection given a plain server client for its
/// wake-ups (`notify_with`) would `SUBSCRIBE` while releases `SPUBLISH`:
/// its waiters would never hear one and sleep until the holder's TTL. The
/// topology refuses such a listener, so the waiters poll instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_listener_on_a_cluster_is_not_trusted_and_waiters_poll() {
    let cluster = RedisCluster::start();
    let key = "mismatch:{wake}";
    let owner = cluster.owner_of(key);
    let client = redis::cluster::ClusterClient::builder(cluster.seeds())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .build()
        .unwrap();
    let connection = client.get_async_connection().await.unwrap();
    let lock = Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .wait(
            WaitPolicy::timeout(Duration::from_secs(30))
                .backoff(Duration::from_millis(20), Duration::from_millis(100)),
        )
        .notify_with(&cluster.masters[owner].client())
        .build(connection)
        .unwrap();
    let holder = lock.acquire().await.unwrap();
    let waiter = spawn_waiter(lock.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released = Instant::now();
    holder.release().await.unwrap();
    let guard = acquired_within(
        waiter,
        "the waiter slept on a subscription that cannot hear the release",
    )
    .await;
    assert!(
        released.elapsed() < Duration::from_secs(1),
        "{:?}",
        released.elapsed()
    );
    for master in &cluster.masters {
        assert_eq!(master.command_calls("subscribe"), 0, "nobody subscribed");
    }
    guard.release().await.unwrap();
    no_keys_anywhere(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_built_apart_share_one_subscription_per_cluster() {
    let cluster = RedisCluster::start();
    let key = "shared:wait";
    let channel = "{shared:wait}:released";
    let owner = cluster.owner_of(key);
    let mut locks = Vec::new();
    for _ in 0..3 {
        locks.push(waiting_lock(&cluster, key).await);
    }
    let holder = locks[0].acquire().await.unwrap();
    let waiters: Vec<_> = locks
        .iter()
        .map(|lock| {
            let lock = lock.clone();
            tokio::spawn(async move { lock.acquire().await.unwrap().release().await.unwrap() })
        })
        .collect();
    // Three locks made with the same seeds: one notifier, one subscriber.
    eventually(Duration::from_secs(5), "subscribed", || {
        shard_subscribers(&cluster, owner, channel) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shard_subscribers(&cluster, owner, channel), 1);
    let took = time_handoffs(holder, waiters).await;
    // Three handoffs in turn, each woken (polling would take 5 s each).
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiters_subscription_follows_its_slot_to_another_master() {
    let cluster = RedisCluster::start();
    let key = "moving:wait";
    let channel = "{moving:wait}:released";
    let lock = waiting_lock(&cluster, key).await;
    let from = cluster.owner_of(key);
    let to = (from + 1) % 3;
    let holder = lock.acquire().await.unwrap();
    let waiter = spawn_waiter(lock.clone());
    eventually(Duration::from_secs(5), "subscribed on the owner", || {
        shard_subscribers(&cluster, from, channel) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The old owner drops the channel's subscribers (`sunsubscribe`) when
    // its slot goes; the waiter subscribes again where it went.
    cluster.migrate_slot_of(key, &[key], to);
    eventually(
        Duration::from_secs(5),
        "subscribed where the slot went",
        || {
            shard_subscribers(&cluster, to, channel) == 1
                && shard_subscribers(&cluster, from, channel) == 0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (guard, took) = time_handoff(holder, waiter).await;
    assert!(took < Duration::from_millis(250), "handoff took {took:?}");
    guard.release().await.unwrap();
    no_keys_anywhere(&cluster);
}

/// Kills the one pub/sub connection on master `owner`.
fn kill_the_subscription(cluster: &RedisCluster, owner: usize) {
    let killed: i64 =
        redis::from_redis_value(cluster.masters[owner].cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]))
            .unwrap();
    assert_eq!(killed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_sharded_subscription_loses_no_waiter_and_it_comes_back() {
    let cluster = RedisCluster::start();
    let key = "killed:wait";
    let channel = "{killed:wait}:released";
    let owner = cluster.owner_of(key);
    let lock = waiting_lock(&cluster, key).await;
    let kill = || kill_the_subscription(&cluster, owner);

    // Killed while 4 tasks wait, and released before the subscription is
    // back: the release's message is lost, the disconnection wakes them.
    let holder = lock.acquire().await.unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move {
                let guard = lock.acquire().await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
                guard.release().await.unwrap();
            })
        })
        .collect();
    eventually(Duration::from_secs(5), "subscribed", || {
        shard_subscribers(&cluster, owner, channel) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    kill();
    let took = time_handoffs(holder, waiters).await;
    assert!(took < Duration::from_secs(2), "{took:?}");

    no_keys_anywhere(&cluster);
}

/// Killed while one task waits: the subscription comes back by itself, and
/// the next release wakes the waiter at once. Under load (2 cores shared
/// with other test runs) the waiter twice slept to the holder's TTL
/// (9.95 s) instead. A likely cause was fixed (a channel down and up again
/// before the waiter looked counted as never down:
/// `Subscription::coverage_changed`, unit tested), though the failure was
/// never reproduced on demand; 27 runs under load passed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_sharded_subscription_of_one_waiter_wakes_it_at_the_next_release() {
    let cluster = RedisCluster::start();
    let key = "killed:wait";
    let channel = "{killed:wait}:released";
    let owner = cluster.owner_of(key);
    let lock = waiting_lock(&cluster, key).await;
    let kill = || kill_the_subscription(&cluster, owner);
    eventually(Duration::from_secs(5), "unsubscribed", || {
        shard_subscribers(&cluster, owner, channel) == 0
    })
    .await;
    let took = handoff(&lock, || {
        let subscribed = shard_subscribers(&cluster, owner, channel) == 1;
        if subscribed {
            kill();
        }
        subscribed
    })
    .await;
    // `handoff` waited for the first subscription, killed it, then slept
    // 50 ms; the resubscription must come back before the release is heard.
    assert!(took < Duration::from_millis(250), "handoff took {took:?}");
    no_keys_anywhere(&cluster);
}

#[tokio::test]
async fn a_resp2_cluster_client_polls_instead_of_subscribing() {
    let cluster = RedisCluster::start();
    let key = "resp2:wait";
    let client = redis::cluster::ClusterClient::new(cluster.seeds()).unwrap();
    let lock = Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .wait(
            WaitPolicy::timeout(Duration::from_secs(10))
                .backoff(Duration::from_millis(20), Duration::from_millis(20)),
        )
        .cluster_client(&client)
        .await
        .unwrap();
    let holder = lock.acquire().await.unwrap();
    let waiter = spawn_waiter(lock.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("a polling waiter still gets the lock")
        .unwrap();
    guard.release().await.unwrap();
    for master in &cluster.masters {
        assert_eq!(master.command_calls("ssubscribe"), 0);
    }
}

// --------------------------------------------------------------------------
// Failover: a master dies, its replica takes over
// --------------------------------------------------------------------------

/// Errors a lock may give while its master fails over: typed, and worth
/// trying again (never a panic, never "acquired" without an answer).
/// Extends `guard` by 20 s, retrying the retryable errors of a failover
/// for up to 10 s; fails the test if it cannot.
async fn extend_through_failover(guard: &LockGuard, when: &str) {
    for _ in 0..100 {
        match guard.extend(Duration::from_secs(20)).await {
            Ok(()) => return,
            Err(error) => assert_passing(&error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the held lock could not be extended {when}");
}

fn assert_passing(error: &redis_mutex::Error) {
    assert!(
        error.is_retryable(),
        "not retryable during failover: {error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_keeps_replicated_locks_and_never_overlaps() {
    let cluster = Arc::new(RedisCluster::start_with_replicas());
    // Each phase's start, printed with a failure: which one was slow.
    let started = Instant::now();
    let phase = |name: &str| eprintln!("{:>8.3?} {name}", started.elapsed());
    // Two keys of one slot: one held through the failover, one contended.
    let held_key = "{failover}:held";
    let contended_key = "{failover}:contended";
    let owner = cluster.owner_of(held_key);
    let (master, replica) = (&cluster.masters[owner], &cluster.replicas[owner]);
    let elsewhere = key_per_master(&cluster, "elsewhere")
        .into_iter()
        .find(|key| cluster.owner_of(key) != owner)
        .unwrap();

    let held = Lock::builder(held_key)
        .ttl(Duration::from_secs(20))
        .wait_for_replicas(1, Duration::from_millis(500))
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let guard = held.acquire().await.unwrap();
    // WAIT confirmed it: the replica has our token before we hold the lock.
    let token = get_on_replica(replica, held_key);
    assert!(token.is_some());
    assert_eq!(token, master.get(held_key));

    // Contenders: 6 tasks, each section a check of an in-memory "inside"
    // count; every error must be typed and retryable, and is retried.
    let contended = Lock::builder(contended_key)
        .ttl(Duration::from_secs(2))
        .wait(WaitPolicy::timeout(Duration::from_secs(60)))
        .wait_for_replicas(1, Duration::from_millis(300))
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let inside = Arc::new(AtomicU32::new(0));
    let overlaps = Arc::new(AtomicU32::new(0));
    let sections = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (lock, inside, overlaps, sections, stop) = (
                contended.clone(),
                inside.clone(),
                overlaps.clone(),
                sections.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let guard = match lock.acquire().await {
                        Ok(guard) => guard,
                        Err(error) => {
                            assert_passing(&error);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sections.fetch_add(1, Ordering::SeqCst);
                    if let Err(error) = guard.release().await {
                        // Released or not, the key ends by its TTL at worst.
                        assert!(error.is_retryable() || error.is_not_held(), "{error:?}");
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sections.load(Ordering::SeqCst) > 0, "contention runs");

    // The master dies; its replica takes over (node timeout 1 s).
    phase("stopping the master");
    master.stop();
    {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            let replica = &cluster.replicas[owner];
            cluster.wait_until_owner(replica, held_key, Duration::from_secs(20));
        })
        .await
        .unwrap();
    }
    // The held lock is still ours on the new master: extend and check.
    phase("replica promoted");
    extend_through_failover(&guard, "after the failover").await;
    assert!(guard.is_held().await.unwrap());
    assert!(held.try_acquire().await.unwrap().is_none(), "still held");
    // A lock on another master's key still gets its WAIT answered: it goes
    // to that master (which has its replica), not to every master (the new
    // one has no replica yet).
    let other = Lock::builder(elsewhere.as_str())
        .ttl(Duration::from_secs(5))
        .wait_for_replicas(1, Duration::from_millis(500))
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    other.acquire().await.unwrap().release().await.unwrap();

    // The old master comes back empty and rejoins as the new master's
    // replica, so WAIT can be satisfied again; contention goes on.
    phase("restarting the old master");
    master.restart();
    let back = Instant::now();
    let before = sections.load(Ordering::SeqCst);
    while sections.load(Ordering::SeqCst) < before + 20 {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no progress after the old master rejoined"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And still ours once the old master came back empty as a replica (a
    // full sync from the new master, not the other way). Extended again
    // here: the phases since the last extension are bounded by 30 s, more
    // than its TTL, on a slow machine.
    phase("20 sections after the rejoin; stopping the contenders");
    extend_through_failover(&guard, "after the old master rejoined").await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    phase("contenders stopped");
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);

    guard.release().await.unwrap();
    assert!(!replica.exists(held_key), "released on the new master");
}
