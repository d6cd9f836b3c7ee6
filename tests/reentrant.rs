//! Re-entrant holds (`Owner`) against real redis-servers: recursion is one
//! SET and one release, owners exclude each other under contention, holds
//! end in any order, cancelled acquires leave nothing, nested guards share
//! the lease, fence and renewal; on one node, a Redlock and a Cluster.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis_mutex::{Error, Lock, LockGuard, Locks, Owner, Result, WaitPolicy};
use support::{RedisServer, eventually};
use tokio::time::Instant;

/// The releases a server ran: each is one EVALSHA of the release script,
/// which DELs the key.
fn releases(server: &RedisServer) -> u64 {
    server.command_calls("del")
}

/// One acquire + release, so the release script is loaded and the counts
/// after it are the steady state; then the server's stats are zeroed.
async fn warm(lock: &Lock, servers: &[&RedisServer]) {
    lock.acquire().await.unwrap().release().await.unwrap();
    for server in servers {
        server.reset_stats();
    }
}

type Step = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Acquires `lock` at every level of a recursion `depth` deep, across
/// awaits (a sleep, and every third level in a task of its own, given the
/// owner), checking that every level sees the top's hold; levels end by
/// `release()` or by drop, alternately.
fn descend(lock: Lock, depth: u32, top: Option<(Instant, Option<u64>)>) -> Step {
    Box::pin(async move {
        let guard = lock.acquire().await?;
        let here = (guard.deadline(), guard.fence());
        let top = match top {
            None => here,
            Some(top) => {
                assert_eq!(here, top, "a nested guard shares the top's lease and fence");
                top
            }
        };
        assert_eq!(guard.owner(), Owner::current().as_ref());
        tokio::time::sleep(Duration::from_millis(1)).await;
        if depth > 0 {
            let next = descend(lock.clone(), depth - 1, Some(top));
            if depth.is_multiple_of(3) {
                let owner = Owner::current().expect("in a scope");
                tokio::spawn(owner.scoped(next)).await.unwrap()?;
            } else {
                next.await?;
            }
        }
        tokio::task::yield_now().await;
        match depth % 2 {
            0 => guard.release().await,
            _ => {
                drop(guard);
                Ok(())
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursion_100_deep_across_awaits_is_one_set_and_one_release() {
    let server = RedisServer::start();
    let lock = Lock::builder("tree:walk")
        .wait(WaitPolicy::no_wait())
        .connect(server.url())
        .await
        .unwrap();
    warm(&lock, &[&server]).await;

    // Depth 100 at the top ends by release(): the one release on the wire.
    Owner::scope(descend(lock.clone(), 100, None))
        .await
        .unwrap();
    assert_eq!(server.command_calls("set"), 1, "one SET in all");
    assert_eq!(releases(&server), 1, "one release in all");
    assert_eq!(server.command_calls("evalsha"), 1);
    assert!(!server.exists("tree:walk"));

    // Outside a scope the same recursion excludes itself at once: a plain
    // lock is not re-entrant.
    let plain = descend(lock.clone(), 1, None).await.unwrap_err();
    assert!(plain.is_busy(), "{plain}");
}

#[tokio::test]
async fn nested_guards_share_one_token_and_a_new_hold_gets_a_new_one() {
    let server = RedisServer::start();
    let lock = Lock::builder("tokens")
        .wait(WaitPolicy::no_wait())
        .connect(server.url())
        .await
        .unwrap();
    let owner = Owner::new();
    let outer = lock.acquire_as(&owner).await.unwrap();
    let token = server.get("tokens").unwrap();
    let inner = lock.with_owner(&owner).acquire().await.unwrap();
    let same = Owner::scope(async { lock.try_acquire().await }).await;
    assert!(
        same.unwrap().is_none(),
        "a scope of another owner is excluded"
    );
    let scoped = owner.clone().scoped(lock.try_acquire()).await.unwrap();
    assert_eq!(server.get("tokens").as_deref(), Some(token.as_str()));
    assert_eq!(owner.hold_count(), 1);
    assert!(
        !format!("{inner:?}").contains(&token),
        "Debug hides the token"
    );
    drop(scoped);
    inner.release().await.unwrap();
    outer.release().await.unwrap();
    assert!(!server.exists("tokens"));
    assert_eq!(owner.hold_count(), 0);

    let again = lock.acquire_as(&owner).await.unwrap();
    assert_ne!(server.get("tokens").unwrap(), token, "a new outermost hold");
    again.release().await.unwrap();
}

/// Who is in the critical section (0: nobody, else the owner's number),
/// and how often two owners were in it at once.
#[derive(Default)]
struct Section {
    holder: AtomicUsize,
    overlaps: AtomicUsize,
    entered: AtomicUsize,
}

/// Owner `me`'s recursion on `key`, a fresh `Lock` of `locks` at each
/// level; `explicit` passes the owner, else the task's scope is used.
fn recurse(
    locks: Locks,
    me: usize,
    depth: u32,
    outermost: bool,
    explicit: Option<Owner>,
    section: Arc<Section>,
) -> Step {
    Box::pin(async move {
        let lock = locks.lock("contended")?;
        let guard = match &explicit {
            Some(owner) => lock.acquire_as(owner).await?,
            None => lock.acquire().await?,
        };
        if outermost {
            section.entered.fetch_add(1, Ordering::Relaxed);
            if section
                .holder
                .compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                section.overlaps.fetch_add(1, Ordering::SeqCst);
            }
        } else if section.holder.load(Ordering::SeqCst) != me {
            section.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        tokio::task::yield_now().await;
        if depth > 0 {
            recurse(locks, me, depth - 1, false, explicit, section.clone()).await?;
        }
        tokio::task::yield_now().await;
        if outermost
            && section
                .holder
                .compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            section.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        guard.release().await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_owners_recursing_on_one_key_never_overlap() {
    let server = RedisServer::start();
    let locks = Locks::builder()
        .wait(WaitPolicy::timeout(Duration::from_secs(60)))
        .connect(server.url())
        .await
        .unwrap();
    let section = Arc::new(Section::default());
    let rounds = 5;
    let tasks: Vec<_> = (1..=16)
        .map(|me| {
            let locks = locks.clone();
            let section = section.clone();
            tokio::spawn(async move {
                for _ in 0..rounds {
                    // Half the owners are task scopes, half passed values.
                    let work = match me % 2 {
                        0 => {
                            Owner::scope(recurse(locks.clone(), me, 4, true, None, section.clone()))
                                .await
                        }
                        _ => {
                            let owner = Owner::new();
                            recurse(locks.clone(), me, 4, true, Some(owner), section.clone()).await
                        }
                    };
                    work.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        section.overlaps.load(Ordering::SeqCst),
        0,
        "owners overlapped"
    );
    assert_eq!(section.entered.load(Ordering::SeqCst), 16 * rounds);
    assert_eq!(
        releases(&server) as usize,
        16 * rounds,
        "one release per outermost hold"
    );
    assert!(!server.exists("contended"));
}

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut one = rest.clone();
            one.insert(at, n - 1);
            all.push(one);
        }
    }
    all
}

#[tokio::test]
async fn holds_ended_in_every_order_release_the_key_with_the_last() {
    let server = RedisServer::start();
    let lock = Lock::builder("orders")
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .connect(server.url())
        .await
        .unwrap();
    warm(&lock, &[&server]).await;
    let mut holds = 0;
    for order in permutations(3) {
        // Bit i set: guard i (0 is the outermost) is dropped, else released.
        for dropped in 0..8u32 {
            let owner = Owner::new();
            let mut guards: Vec<Option<LockGuard>> = Vec::new();
            for _ in 0..3 {
                guards.push(Some(lock.acquire_as(&owner).await.unwrap()));
            }
            holds += 1;
            let token = server.get("orders").unwrap();
            for (step, &i) in order.iter().enumerate() {
                let guard = guards[i].take().unwrap();
                let drop_it = dropped & (1 << i) != 0;
                if drop_it {
                    drop(guard);
                } else {
                    guard.release().await.unwrap();
                }
                let last = step == order.len() - 1;
                let case = format!("order {order:?}, dropped {dropped:03b}, step {step}");
                if !last {
                    if drop_it {
                        // A wrong background release would have landed.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    assert_eq!(server.get("orders").as_ref(), Some(&token), "{case}");
                    assert_eq!(owner.hold_count(), 1, "{case}");
                } else if drop_it {
                    eventually(Duration::from_secs(2), &case, || !server.exists("orders")).await;
                } else {
                    assert!(!server.exists("orders"), "{case}");
                }
            }
            assert_eq!(owner.hold_count(), 0);
        }
    }
    assert_eq!(server.command_calls("set"), holds);
    assert_eq!(releases(&server), holds, "one release per outermost hold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquires_of_one_owner_share_one_hold_not_wait_for_it() {
    let server = RedisServer::start();
    let lock = Lock::builder("together")
        .wait(WaitPolicy::timeout(Duration::from_secs(10)))
        .connect(server.url())
        .await
        .unwrap();
    let other = lock.acquire().await.unwrap();
    let owner = Owner::new();
    // Both wait while another holds the key: one in Redis, the other for
    // the first's outcome. Neither may end up waiting for the other's hold.
    let acquirers: Vec<_> = (0..2)
        .map(|_| {
            let lock = lock.clone();
            let owner = owner.clone();
            tokio::spawn(async move { lock.acquire_as(&owner).await.unwrap() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.reset_stats();
    other.release().await.unwrap();
    let mut guards = Vec::new();
    for acquirer in acquirers {
        let guard = tokio::time::timeout(Duration::from_secs(3), acquirer)
            .await
            .expect("both acquires end while the other guard lives");
        guards.push(guard.unwrap());
    }
    assert_eq!(owner.hold_count(), 1);
    assert_eq!(guards[0].deadline(), guards[1].deadline(), "one hold");
    for guard in guards {
        guard.release().await.unwrap();
    }
    assert!(!server.exists("together"));
    assert_eq!(releases(&server), 2, "the other holder's and the owner's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquires_leave_no_hold_behind() {
    let server = RedisServer::start();
    let lock = Lock::builder("cancel")
        .wait(WaitPolicy::timeout(Duration::from_secs(10)))
        .connect(server.url())
        .await
        .unwrap();
    let owner = Owner::new();

    // A nested acquire dropped before it ran: nothing changes.
    let outer = lock.acquire_as(&owner).await.unwrap();
    drop(lock.acquire_as(&owner));
    let nested = lock.acquire_as(&owner);
    let nested = tokio::time::timeout(Duration::from_secs(1), nested).await;
    drop(nested.expect("a nested acquire completes at once"));
    outer.release().await.unwrap();
    assert!(!server.exists("cancel"), "released with the last guard");

    // The owner's outermost acquire waits for another holder; a second
    // acquire of the owner waits for that one (not for Redis), and is
    // cancelled: the first still gets the hold, which ends with it.
    let other = lock.acquire().await.unwrap();
    let first = tokio::spawn({
        let lock = lock.clone();
        let owner = owner.clone();
        async move { lock.acquire_as(&owner).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::time::timeout(Duration::from_millis(200), lock.acquire_as(&owner)).await;
    assert!(second.is_err(), "still waiting when cancelled");
    other.release().await.unwrap();
    let first = first.await.unwrap();
    assert_eq!(owner.hold_count(), 1);
    first.release().await.unwrap();
    assert!(!server.exists("cancel"));
    assert_eq!(owner.hold_count(), 0);

    // The outermost acquire itself is cancelled while another acquire of
    // the owner waits for it: that one takes over and gets its own hold.
    let other = lock.acquire().await.unwrap();
    let spawn_acquire = || {
        let lock = lock.clone();
        let owner = owner.clone();
        tokio::spawn(async move { lock.acquire_as(&owner).await })
    };
    let first = spawn_acquire();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = spawn_acquire();
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    other.release().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the waiting acquire took over")
        .unwrap()
        .unwrap();
    assert!(server.exists("cancel"));
    second.release().await.unwrap();
    assert!(!server.exists("cancel"));
    assert_eq!(owner.hold_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_guards_share_the_lease_fence_and_renewal_and_see_its_loss() {
    let server = RedisServer::start();
    let lock = Lock::builder("shared:lease")
        .ttl(Duration::from_millis(300))
        .fencing(true)
        .wait(WaitPolicy::no_wait())
        .connect(server.url())
        .await
        .unwrap();
    warm(&lock, &[&server]).await;
    let owner = Owner::new();
    let outer = lock.acquire_as(&owner).await.unwrap();
    let mut inner = lock.acquire_as(&owner).await.unwrap();
    assert_eq!(inner.fence(), outer.fence());
    assert!(inner.fence().is_some());
    assert_eq!(inner.deadline(), outer.deadline());

    // Renewal turned on through the nested guard renews the one hold,
    // which outlives the outer guard.
    inner.auto_renew().unwrap();
    outer.release().await.unwrap();
    assert_eq!(releases(&server), 0, "not the last guard: nothing sent");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!inner.is_lost());
    assert!(inner.is_held().await.unwrap());

    // Taken away: renewal finds out, and every guard sees the loss.
    let witness = lock.acquire_as(&owner).await.unwrap();
    server.cmd(&["DEL", "shared:lease"]);
    tokio::time::timeout(Duration::from_secs(2), witness.lost())
        .await
        .expect("renewal reports the loss to every guard");
    assert!(inner.is_lost());
    let refused = lock.acquire_as(&owner).await.unwrap_err();
    assert!(matches!(refused, Error::NotHeld { .. }), "{refused}");
    assert!(witness.release().await.unwrap_err().is_not_held());
    assert!(inner.release().await.unwrap_err().is_not_held());
    assert_eq!(owner.hold_count(), 0);
}

#[tokio::test]
async fn other_owners_plain_acquires_and_locks_built_apart_are_excluded() {
    let server = RedisServer::start();
    let locks = Locks::builder()
        .wait(WaitPolicy::no_wait())
        .connect(server.url())
        .await
        .unwrap();
    let owner = Owner::new();
    let held = locks
        .lock("excl")
        .unwrap()
        .acquire_as(&owner)
        .await
        .unwrap();

    let lock = locks.lock("excl").unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none(), "no owner");
    let stranger = Owner::new();
    assert!(
        lock.with_owner(&stranger)
            .try_acquire()
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        stranger.scoped(lock.try_acquire()).await.unwrap().is_none(),
        "another owner's scope"
    );
    // A scope inside the owner's scope keeps the owner.
    let nested = owner
        .clone()
        .scoped(Owner::scope(lock.try_acquire()))
        .await
        .unwrap();
    assert!(nested.is_some());
    // Another key of the owner is another lock.
    let other_key = locks.lock("excl:2").unwrap();
    let second = other_key.acquire_as(&owner).await.unwrap();
    assert_eq!(owner.hold_count(), 2);
    // A lock built apart is another lock, even on the same server.
    let apart = Lock::builder("excl")
        .wait(WaitPolicy::no_wait())
        .connect(server.url())
        .await
        .unwrap();
    assert!(
        apart
            .with_owner(&owner)
            .try_acquire()
            .await
            .unwrap()
            .is_none()
    );

    drop(nested);
    second.release().await.unwrap();
    held.release().await.unwrap();
    assert!(!server.exists("excl"));
}

#[tokio::test]
async fn a_nested_run_re_enters_and_the_outer_run_releases() {
    let server = RedisServer::start();
    let lock = Lock::builder("runs")
        .ttl(Duration::from_secs(5))
        .wait(WaitPolicy::no_wait())
        .connect(server.url())
        .await
        .unwrap();
    warm(&lock, &[&server]).await;
    let answer = Owner::scope(lock.run(|outer| {
        let lock = lock.clone();
        async move {
            let inner = lock.run(|inner| async move { inner.deadline() }).await;
            assert_eq!(inner.unwrap(), outer.deadline());
            assert!(!outer.is_lost());
            42
        }
    }))
    .await
    .unwrap();
    assert_eq!(answer, 42);
    assert_eq!(server.command_calls("set"), 1);
    assert_eq!(releases(&server), 1);
}

#[tokio::test]
async fn a_handoff_is_checked_with_one_get() {
    let server = RedisServer::start();
    let lock = Lock::builder("handed").connect(server.url()).await.unwrap();
    let guard = lock.acquire().await.unwrap();
    let handoff = guard.handoff();
    assert_eq!(handoff.key(), "handed");
    assert!(!format!("{handoff:?}").contains(handoff.token()));
    assert_eq!(Some(handoff.token().to_owned()), server.get("handed"));
    server.reset_stats();
    assert!(lock.is_held_by(&handoff).await.unwrap());
    assert_eq!(server.command_calls("get"), 1, "one round trip");
    let other = Lock::builder("handed:other")
        .connect(server.url())
        .await
        .unwrap();
    assert!(!other.is_held_by(&handoff).await.unwrap(), "another key");
    let forged = redis_mutex::Handoff::new("handed", "0".repeat(40), None).unwrap();
    assert!(!lock.is_held_by(&forged).await.unwrap());
    guard.release().await.unwrap();
    assert!(!lock.is_held_by(&handoff).await.unwrap(), "released");
}

#[tokio::test]
async fn a_redlock_owner_recursing_sends_one_set_and_one_release_per_node() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let lock = Lock::builder("redlock:tree")
        .wait(WaitPolicy::no_wait())
        .connect_quorum(servers.iter().map(RedisServer::url))
        .await
        .unwrap();
    let all: Vec<&RedisServer> = servers.iter().collect();
    warm(&lock, &all).await;
    Owner::scope(descend(lock.clone(), 20, None)).await.unwrap();
    for server in &servers {
        assert_eq!(server.command_calls("set"), 1);
        assert_eq!(releases(server), 1);
        assert!(!server.exists("redlock:tree"));
    }
}

#[cfg(feature = "cluster")]
#[tokio::test]
async fn a_cluster_owner_recursing_over_keys_on_every_master_sends_one_set_per_key() {
    use support::cluster::RedisCluster;

    let cluster = RedisCluster::start();
    let locks = Locks::builder()
        .fencing(true)
        .wait(WaitPolicy::no_wait())
        .connect_cluster(cluster.seeds())
        .await
        .unwrap();
    let keys: Vec<String> = (0..6).map(|i| format!("cluster:tree:{i}")).collect();
    let owner = Owner::new();
    let mut outer = Vec::new();
    for key in &keys {
        outer.push(locks.lock(key).unwrap().acquire_as(&owner).await.unwrap());
    }
    for master in &cluster.masters {
        master.reset_stats();
    }
    for (key, guard) in keys.iter().zip(&outer) {
        let lock = locks.lock(key).unwrap();
        for _ in 0..10 {
            let nested = lock.acquire_as(&owner).await.unwrap();
            assert_eq!(nested.fence(), guard.fence());
            drop(nested);
        }
    }
    let sets: u64 = cluster
        .masters
        .iter()
        .map(|m| m.command_calls("evalsha"))
        .sum();
    assert_eq!(sets, 0, "no nested acquire reached the cluster");
    for guard in outer {
        guard.release().await.unwrap();
    }
    for key in &keys {
        assert!(!cluster.masters[cluster.owner_of(key)].exists(key));
    }
}

#[cfg(not(feature = "cluster"))]
#[test]
fn the_cluster_test_is_skipped_without_the_cluster_feature() {
    support::skipped("the Cluster test of tests/reentrant.rs needs `--features cluster`");
}
