//! Replica sync after acquire (`WAIT`, `WAITAOF`) against a real master and a
//! replica started with `--replicaof` (C4).

mod support;

use std::time::Duration;

use redis_mutex::{Error, Lock, WaitPolicy, Weakness};
use support::{RedisServer, patient_conn};
use tokio::time::Instant;

/// A master and one replica of it, with the link up.
fn master_and_replica() -> (RedisServer, RedisServer) {
    master_and_replica_with(&[])
}

/// The same, both servers started with `args` too.
fn master_and_replica_with(args: &[&str]) -> (RedisServer, RedisServer) {
    // No 5 s wait for more replicas before a full sync.
    let mut master_args = vec!["--repl-diskless-sync-delay", "0"];
    master_args.extend_from_slice(args);
    let master = RedisServer::start_with(&master_args);
    let port = master.port().to_string();
    let mut replica_args = vec!["--replicaof", "127.0.0.1", &port];
    replica_args.extend_from_slice(args);
    let replica = RedisServer::start_with(&replica_args);
    let started = std::time::Instant::now();
    while !(replica
        .info("replication")
        .contains("master_link_status:up")
        && master.info("replication").contains("connected_slaves:1"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replica never synced:\n{}",
            replica.info("replication")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (master, replica)
}

/// A lock that waits up to `timeout_ms` for `replicas` replicas. Where the
/// replica should confirm, tests give it a generous timeout: the machine is
/// small and shared, and a busy replica can take a while to acknowledge.
async fn replicated(master: &RedisServer, key: &str, replicas: u32, timeout_ms: u64) -> Lock {
    Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::no_wait())
        .wait_for_replicas(replicas, Duration::from_millis(timeout_ms))
        .build(patient_conn(master).await)
        .unwrap()
}

#[tokio::test]
async fn an_acquire_confirmed_by_the_replica_is_on_the_replica() {
    let (master, replica) = master_and_replica();
    let lock = replicated(&master, "replicas:ok", 1, 2_000).await;
    master.reset_stats();
    let guard = lock.acquire().await.unwrap();
    // WAIT returned, so the replica has it: no polling needed.
    assert_eq!(replica.get("replicas:ok"), master.get("replicas:ok"));
    assert!(replica.exists("replicas:ok"));
    assert_eq!(
        master.command_calls("wait"),
        1,
        "WAIT on the same connection"
    );
    guard.release().await.unwrap();

    let report = &lock.diagnose().await.unwrap()[0];
    assert!(
        report
            .weaknesses()
            .contains(&Weakness::AsyncReplicas { replicas: 1 }),
        "{report}"
    );
    let on_replica = Lock::builder("replicas:ok")
        .connect(replica.url())
        .await
        .unwrap();
    assert!(
        on_replica.diagnose().await.unwrap()[0]
            .weaknesses()
            .contains(&Weakness::Replica)
    );
}

#[tokio::test]
async fn a_paused_replica_fails_the_acquire_and_the_lock_is_released() {
    let (master, replica) = master_and_replica();
    let lock = replicated(&master, "replicas:paused", 1, 200).await;
    replica.pause();
    let started = Instant::now();
    let err = lock.acquire().await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            &err,
            Error::NotReplicated {
                acknowledged: 0,
                required: 1,
                local_fsynced: None,
                timeout,
                ..
            } if *timeout == Duration::from_millis(200)
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("0 of 1 replicas"), "{err}");
    assert!(err.is_retryable());
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "waited the WAIT timeout: {took:?}"
    );
    assert!(!master.exists("replicas:paused"), "released on the master");
    replica.resume();
    let patient = replicated(&master, "replicas:paused", 1, 2_000).await;
    let guard = patient.acquire().await.unwrap();
    assert!(replica.exists("replicas:paused"));
    guard.release().await.unwrap();
}

#[tokio::test]
async fn more_replicas_than_there_are_is_never_confirmed() {
    let (master, _replica) = master_and_replica();
    let lock = replicated(&master, "replicas:two", 2, 1_500).await;
    let err = lock.acquire().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                acknowledged: 1,
                required: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!master.exists("replicas:two"));
}

/// A lock that waits up to `timeout_ms` for `WAITAOF local 1`.
async fn aof_synced(master: &RedisServer, key: &str, local: bool, timeout_ms: u64) -> Lock {
    Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::no_wait())
        .wait_for_aof(local, 1, Duration::from_millis(timeout_ms))
        .build(patient_conn(master).await)
        .unwrap()
}

/// Whether the binary under test has `WAITAOF` (Redis 7.2+, Valkey), by
/// the version the crate's diagnosis reads. Each of the two tests below
/// checks one answer and skips (saying so) on the other; CI runs both
/// servers, Redis 7.0 and Valkey 9, so both run.
async fn has_waitaof(server: &RedisServer) -> bool {
    let lock = Lock::builder("replicas:probe")
        .build(server.conn().await)
        .unwrap();
    let report = &lock.diagnose().await.unwrap()[0];
    report
        .has_waitaof()
        .unwrap_or_else(|| panic!("no version in the diagnosis: {report}"))
}

/// Redis 7.0 has no `WAITAOF`: the crate says so and releases the lock.
#[tokio::test]
async fn waitaof_is_detected_and_unsupported_servers_release_the_lock() {
    let (master, _replica) = master_and_replica();
    if has_waitaof(&master).await {
        support::skipped(
            "the server has WAITAOF (Redis 7.2+, Valkey): checked by waitaof_confirms_an_acquire_fsynced_by_master_and_replica",
        );
        return;
    }
    let lock = aof_synced(&master, "replicas:aof", false, 2_000).await;
    match lock.acquire().await {
        Err(Error::UnsupportedServer { needed, .. }) => {
            assert!(needed.contains("WAITAOF"), "{needed}");
            assert!(!master.exists("replicas:aof"), "released");
        }
        other => panic!("{other:?}"),
    }
}

/// Where the server has `WAITAOF`: a master and replica with AOF on
/// confirm the fsync and the lock is held; a replica without AOF never
/// confirms, so the acquire fails `NotReplicated` and is released.
#[tokio::test]
async fn waitaof_confirms_an_acquire_fsynced_by_master_and_replica() {
    // `always`: the fsync comes with each write, not within a second.
    let (master, replica) =
        master_and_replica_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    if !has_waitaof(&master).await {
        support::skipped(
            "the server has no WAITAOF (before Redis 7.2): checked by waitaof_is_detected_and_unsupported_servers_release_the_lock",
        );
        return;
    }
    let lock = aof_synced(&master, "replicas:aof", true, 4_000).await;
    master.reset_stats();
    let guard = lock.acquire().await.unwrap();
    assert_eq!(master.command_calls("waitaof"), 1);
    assert_eq!(replica.get("replicas:aof"), master.get("replicas:aof"));
    guard.release().await.unwrap();
    assert!(!master.exists("replicas:aof"));

    let (master, replica) = master_and_replica();
    assert!(
        replica.info("persistence").contains("aof_enabled:0"),
        "the replica runs without AOF"
    );
    let lock = aof_synced(&master, "replicas:noaof", false, 200).await;
    let err = lock.acquire().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                acknowledged: 0,
                required: 1,
                local_fsynced: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!master.exists("replicas:noaof"), "released");
}

#[tokio::test]
async fn replica_settings_are_checked_when_the_lock_is_built() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let build = |builder: redis_mutex::LockBuilder| builder.build(conn.clone()).unwrap_err();
    let base = || Lock::builder("replicas:bad").ttl(Duration::from_secs(1));
    let err = build(base().wait_for_replicas(1, Duration::ZERO));
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "replica_timeout",
                ..
            }
        ),
        "{err:?}"
    );
    let err = build(base().wait_for_replicas(1, Duration::from_millis(600)));
    assert!(err.to_string().contains("half the lease"), "{err}");
    let err = build(base().wait_for_replicas(0, Duration::from_millis(100)));
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "replicas",
                ..
            }
        ),
        "{err:?}"
    );
    let err = build(
        base()
            .wait_for_replicas(1, Duration::from_millis(100))
            .command_timeout(Duration::from_millis(100)),
    );
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "command_timeout",
                ..
            }
        ),
        "{err:?}"
    );
    let err = base()
        .wait_for_replicas(1, Duration::from_millis(50))
        .build_quorum([conn.clone()])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "replicas",
                ..
            }
        ),
        "{err:?}"
    );
}
