//! `Locks`: locks for any key from one configuration, sharing one set of
//! connections and one wake-up subscription.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis_mutex::{Error, Lock, Locks, WaitPolicy};
use support::{RedisServer, alive_tasks, settle_within};

/// Clients connected to `server`, not counting the one asking.
fn clients(server: &RedisServer) -> usize {
    let list: String = redis::from_redis_value(server.cmd(&["CLIENT", "LIST"])).unwrap();
    list.lines()
        .filter(|line| !line.contains("cmd=client|list"))
        .count()
}

/// The ids of the clients connected to `server`, not counting the one
/// asking.
fn client_ids(server: &RedisServer) -> std::collections::BTreeSet<u64> {
    let list: String = redis::from_redis_value(server.cmd(&["CLIENT", "LIST"])).unwrap();
    list.lines()
        .filter(|line| !line.contains("cmd=client|list"))
        .map(|line| {
            line.strip_prefix("id=")
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// Channels someone is subscribed to on `server`.
fn subscribed_channels(server: &RedisServer) -> Vec<String> {
    redis::from_redis_value(server.cmd(&["PUBSUB", "CHANNELS"])).unwrap()
}

/// The process's resident memory, in bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Acquires and releases `keys` locks on distinct keys from `locks`, 16 at
/// a time, and makes one acquire wait on a held key (so that the wake-up
/// subscription is used), checking the connection count while it waits.
async fn round(locks: &Locks, server: &RedisServer, keys: usize) {
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let locks = locks.clone();
            tokio::spawn(async move {
                for i in (task..keys).step_by(16) {
                    let lock = locks.lock(format!("many:{i}")).unwrap();
                    lock.acquire().await.unwrap().release().await.unwrap();
                }
            })
        })
        .collect();
    let held = locks.lock("many:hot").unwrap().acquire().await.unwrap();
    let waiter = {
        let lock = locks.lock("many:hot").unwrap();
        tokio::spawn(async move { lock.acquire().await.map(|guard| guard.release()) })
    };
    support::eventually(Duration::from_secs(5), "the waiter to subscribe", || {
        !subscribed_channels(server).is_empty()
    })
    .await;
    // One command connection, one subscription connection (plus, at most,
    // one the manager is reconnecting).
    assert!(clients(server) <= 3, "{} clients", clients(server));
    held.release().await.unwrap();
    waiter.await.unwrap().unwrap().await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_share_two_connections_and_leave_nothing_behind() {
    let server = RedisServer::start();
    let locks = Locks::builder()
        .wait(WaitPolicy::timeout(Duration::from_secs(10)))
        .connect(server.url())
        .await
        .unwrap();
    // A first round starts the subscription task; the baseline follows it.
    round(&locks, &server, 100).await;
    let tasks = alive_tasks();
    round(&locks, &server, 10_000).await;
    let after_first = resident_bytes();
    settle_within(tasks, Duration::from_secs(2)).await;
    // A mutex's channel lingers 3 s after its last waiter (directed
    // wake-ups), then is left.
    support::eventually(Duration::from_secs(5), "channels to be left", || {
        subscribed_channels(&server).is_empty()
    })
    .await;
    assert!(clients(&server) <= 2, "{} clients", clients(&server));

    round(&locks, &server, 10_000).await;
    settle_within(tasks, Duration::from_secs(2)).await;
    let growth = resident_bytes().saturating_sub(after_first);
    assert!(
        growth < 4 << 20,
        "a second round grew the process by {growth} bytes"
    );
    assert!(clients(&server) <= 2, "{} clients", clients(&server));
    assert_eq!(server.cmd(&["DBSIZE"]), redis::Value::Int(0));
}

#[tokio::test]
async fn a_lock_made_used_and_dropped_per_request_reconnects_nothing() {
    let server = RedisServer::start();
    let locks = Locks::connect(server.url()).await.unwrap();
    let lock = locks.lock("per-request").unwrap();
    let held = lock.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let lock = locks.lock("per-request").unwrap();
        async move { lock.acquire().await.unwrap().release().await.unwrap() }
    });
    support::eventually(Duration::from_secs(5), "the waiter to subscribe", || {
        !subscribed_channels(&server).is_empty()
    })
    .await;
    held.release().await.unwrap();
    waiter.await.unwrap();
    drop(lock);
    let before = client_ids(&server);
    for i in 0..20 {
        // Per request: a lock, contended (so its waiter uses the
        // subscription), then dropped with everything it made.
        let lock = locks.lock(format!("per-request:{i}")).unwrap();
        let held = lock.acquire().await.unwrap();
        let waiter = tokio::spawn({
            let lock = lock.clone();
            async move { lock.acquire().await.unwrap().release().await.unwrap() }
        });
        let channel = format!("{{per-request:{i}}}:released");
        support::eventually(Duration::from_secs(5), "the waiter to subscribe", || {
            support::subscribers(&server, &channel) == 1
        })
        .await;
        held.release().await.unwrap();
        waiter.await.unwrap();
    }
    // The same connections, command and subscription alike: none was
    // closed and opened again.
    assert_eq!(client_ids(&server), before);
}

#[tokio::test]
async fn the_prefix_names_the_key_on_the_wire_and_overrides_apply_to_one_lock() {
    let server = RedisServer::start();
    let locks = Locks::builder()
        .prefix("billing:")
        .ttl(Duration::from_secs(7))
        .wait(WaitPolicy::no_wait())
        .connect(server.url())
        .await
        .unwrap();
    assert_eq!(locks.prefix(), "billing:");
    let lock = locks.lock("order:42").unwrap();
    assert_eq!(lock.key(), "billing:order:42");
    let guard = lock.acquire().await.unwrap();
    assert!(server.exists("billing:order:42"));
    assert!(server.pttl("billing:order:42") <= 7_000);

    let long = lock.with_ttl(Duration::from_secs(60)).unwrap();
    assert_eq!(
        (long.ttl(), lock.ttl()),
        (Duration::from_secs(60), Duration::from_secs(7))
    );
    // The same key: excluded by the lock the first handle holds.
    assert!(long.try_acquire().await.unwrap().is_none());
    let patient = lock
        .with_wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .unwrap();
    let waiting = tokio::spawn(async move { patient.acquire().await.map(|g| g.key().to_owned()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    guard.release().await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), "billing:order:42");

    // Bad overrides and keys are refused by name, without I/O.
    let field = |result: redis_mutex::Result<Lock>| match result {
        Err(Error::InvalidArgument { field, .. }) => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    assert_eq!(field(lock.with_ttl(Duration::ZERO)), "ttl");
    assert_eq!(
        field(lock.with_wait(
            WaitPolicy::timeout(Duration::from_secs(1)).backoff(Duration::ZERO, Duration::ZERO)
        )),
        "min_backoff"
    );
    let bare = Locks::connect(server.url()).await.unwrap();
    assert_eq!(field(bare.lock("")), "key");
}

/// Runs `tasks` tasks, each taking locks on `keys` keys from its own
/// `Locks` of `make`, and checks that no two are ever inside one key's
/// section, in memory and in Redis.
async fn excluded_under_contention<F, Fut>(server: &RedisServer, make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = redis_mutex::Result<Locks>>,
{
    const KEYS: usize = 3;
    const SECTIONS: usize = 15;
    let inside: Arc<Vec<AtomicU32>> = Arc::new((0..KEYS).map(|_| AtomicU32::new(0)).collect());
    let mut handles = Vec::new();
    for task in 0..8 {
        // A factory each, as separate processes would have.
        let locks = make().await.unwrap();
        let inside = inside.clone();
        let mut data = server.conn().await;
        handles.push(tokio::spawn(async move {
            for section in 0..SECTIONS {
                let key = (task + section) % KEYS;
                let guard = locks
                    .lock(format!("contended:{key}"))
                    .unwrap()
                    .acquire()
                    .await
                    .unwrap();
                assert_eq!(
                    inside[key].fetch_add(1, Ordering::SeqCst),
                    0,
                    "overlap in memory"
                );
                let marker = format!("inside:{key}");
                let others: i64 = data.incr(&marker, 1).await.unwrap();
                assert_eq!(others, 1, "overlap seen in Redis");
                tokio::task::yield_now().await;
                let _: i64 = data.decr(&marker, 1).await.unwrap();
                inside[key].fetch_sub(1, Ordering::SeqCst);
                guard.release().await.unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

fn contended() -> redis_mutex::LocksBuilder {
    Locks::builder()
        .ttl(Duration::from_secs(5))
        .wait(WaitPolicy::timeout(Duration::from_secs(20)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_excludes_under_contention() {
    let server = RedisServer::start();
    let url = server.url();
    excluded_under_contention(&server, || contended().connect(url.clone())).await;
    let client = server.client();
    excluded_under_contention(&server, || contended().client(&client)).await;
    excluded_under_contention(&server, || async {
        contended()
            .notify_with(&client)
            .build(server.manager().await)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redlock_sources_exclude_under_contention() {
    let data = RedisServer::start();
    let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    excluded_under_contention(&data, || {
        contended()
            .node_timeout(Duration::from_millis(100))
            .connect_quorum(urls.clone())
    })
    .await;
    let clients: Vec<redis::Client> = nodes.iter().map(RedisServer::client).collect();
    excluded_under_contention(&data, || async {
        let mut connections = Vec::new();
        for node in &nodes {
            connections.push(node.manager().await);
        }
        contended()
            .node_timeout(Duration::from_millis(100))
            .build_quorum(connections)
    })
    .await;
    excluded_under_contention(&data, || {
        contended()
            .node_timeout(Duration::from_millis(100))
            .clients_quorum(&clients)
    })
    .await;
}

#[tokio::test]
async fn holder_tells_who_holds_for_how_long_and_force_unlock_wakes_waiters() {
    let server = RedisServer::start();
    let locks = Locks::builder()
        .ttl(Duration::from_secs(20))
        .wait(
            WaitPolicy::timeout(Duration::from_secs(10))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        )
        .connect(server.url())
        .await
        .unwrap();
    let lock = locks.lock("inspect").unwrap();
    assert_eq!(lock.holder().await.unwrap(), None);
    assert!(!lock.is_locked().await.unwrap());

    let guard = lock.acquire().await.unwrap();
    let holder = lock.holder().await.unwrap().unwrap();
    assert!(holder.by_this_crate);
    let expires_in = holder.expires_in.unwrap();
    assert!(
        expires_in <= Duration::from_secs(20) && expires_in > Duration::from_secs(19),
        "{expires_in:?}"
    );
    assert!(lock.is_locked().await.unwrap());

    // A waiter, polling only every 5 s: the forced unlock wakes it at once.
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move {
            let started = std::time::Instant::now();
            let guard = lock.acquire().await.unwrap();
            (started.elapsed(), guard)
        }
    });
    let channel = "{inspect}:released";
    support::eventually(Duration::from_secs(5), "the waiter to subscribe", || {
        support::subscribers(&server, channel) == 1
    })
    .await;
    assert!(lock.force_unlock().await.unwrap());
    let (waited, next) = waiter.await.unwrap();
    assert!(waited < Duration::from_secs(4), "woken after {waited:?}");
    // The old holder learns it lost the lock: its release is refused.
    assert!(matches!(guard.release().await, Err(Error::NotHeld { .. })));
    next.release().await.unwrap();
    assert!(
        !lock.force_unlock().await.unwrap(),
        "nothing left to delete"
    );

    // Another library's holder, without expiry.
    server.cmd(&["SET", "inspect", "not-ours"]);
    let holder = lock.holder().await.unwrap().unwrap();
    assert_eq!((holder.expires_in, holder.by_this_crate), (None, false));

    // A key of another type is named as such, not reported as a holder.
    server.cmd(&["DEL", "inspect"]);
    server.cmd(&["HSET", "inspect", "a", "b"]);
    assert!(
        matches!(lock.holder().await, Err(Error::WrongType { .. })),
        "{:?}",
        lock.holder().await
    );
}

#[tokio::test]
async fn a_redlock_holder_is_one_token_on_a_majority() {
    let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let locks = Locks::builder()
        .node_timeout(Duration::from_millis(100))
        .connect_quorum(urls)
        .await
        .unwrap();
    let lock = locks.lock("inspect:redlock").unwrap();
    let guard = lock.acquire().await.unwrap();
    assert!(lock.holder().await.unwrap().unwrap().by_this_crate);
    // Split: no token on a majority.
    nodes[0].cmd(&["SET", "inspect:redlock", "other"]);
    nodes[1].cmd(&["DEL", "inspect:redlock"]);
    assert_eq!(lock.holder().await.unwrap(), None);
    nodes[2].stop();
    nodes[1].stop();
    assert!(matches!(
        lock.holder().await,
        Err(Error::QuorumNotReached { .. })
    ));
    drop(guard);
}
