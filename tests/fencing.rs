//! Fencing tokens against a real redis-server: fences strictly increase in
//! acquisition order across tasks and processes, a fenced resource rejects a
//! stale holder, contention burns no fences, the counter shares the lock's
//! Cluster slot, and the fenced acquire keeps the crate's promises (one round
//! trip, typed errors, no lock without a fence).

mod support;

use std::process::Child;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis_mutex::{Error, FencedResource, FencedWrite, Lock, WaitPolicy};
use support::{RedisServer, commands_processed, yields};

fn fenced(connection: MultiplexedConnection, key: &str, ttl_ms: u64) -> Lock {
    Lock::builder(key)
        .ttl(Duration::from_millis(ttl_ms))
        .wait(WaitPolicy::no_wait())
        .fencing(true)
        .build(connection)
        .unwrap()
}

// ---------------------------------------------------------------------------
// Order: 1,000 acquisitions from tasks on two connections and two processes
// ---------------------------------------------------------------------------

const ORDER_KEY: &str = "fencing:order";
const ORDER_LOG: &str = "fencing:order:log";
const ORDER_TASKS: usize = 8;
const ORDER_PROCESSES: usize = 2;
const ORDER_TASKS_PER_PROCESS: usize = 6;
const ORDER_SECTIONS_PER_TASK: usize = 50;
const ORDER_CONTENDER_URL_ENV: &str = "REDIS_MUTEX_FENCING_CONTENDER_URL";

/// `tasks` tasks over two connections, each taking the lock
/// `ORDER_SECTIONS_PER_TASK` times and appending its fence to a Redis list
/// inside the critical section, so the list is in acquisition order.
async fn append_fences(url: &str, tasks: usize) {
    let client = redis::Client::open(url).unwrap();
    let mut connections = vec![];
    for _ in 0..2 {
        connections.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let mut log = connections[task % 2].clone();
            let lock = Lock::builder(ORDER_KEY)
                .ttl(Duration::from_secs(20))
                .wait(WaitPolicy::timeout(Duration::from_secs(120)))
                .fencing(true)
                .build(connections[task % 2].clone())
                .unwrap();
            tokio::spawn(async move {
                for _ in 0..ORDER_SECTIONS_PER_TASK {
                    let guard = lock.acquire().await.unwrap();
                    let fence = guard.fence().expect("a fenced lock yields a fence");
                    let _: i64 = log.rpush(ORDER_LOG, fence).await.unwrap();
                    guard
                        .release()
                        .await
                        .expect("the lease (20 s) outlives every section");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fences_strictly_increase_in_acquisition_order_across_tasks_and_processes() {
    let server = RedisServer::start();
    let url = server.url();
    let mut children: Vec<Child> = (0..ORDER_PROCESSES)
        .map(|_| {
            support::ignored_test_process("fencing_contender_process")
                .env(ORDER_CONTENDER_URL_ENV, &url)
                .spawn()
                .unwrap()
        })
        .collect();
    append_fences(&url, ORDER_TASKS).await;
    for child in &mut children {
        let status = tokio::task::block_in_place(|| child.wait().unwrap());
        assert!(status.success(), "a contender process failed: {status}");
    }

    let total = (ORDER_TASKS + ORDER_PROCESSES * ORDER_TASKS_PER_PROCESS) * ORDER_SECTIONS_PER_TASK;
    assert_eq!(total, 1_000);
    let log: Vec<u64> = redis::cmd("LRANGE")
        .arg(ORDER_LOG)
        .arg(0)
        .arg(-1)
        .query(&mut server.sync_conn())
        .expect("the log is a list of fences");
    assert_eq!(log.len(), total, "every acquisition logged its fence");
    for pair in log.windows(2) {
        assert!(
            pair[0] < pair[1],
            "fences out of acquisition order or repeated: {} then {}",
            pair[0],
            pair[1]
        );
    }
    // Nothing was cancelled, so no fence was burnt: exactly 1..=1000, and the
    // contention of 20 tasks advanced the counter not once.
    assert_eq!(log, (1..=total as u64).collect::<Vec<_>>());
    assert_eq!(server.get("{fencing:order}:fence"), Some(total.to_string()));
    assert!(!server.exists(ORDER_KEY), "released at the end");
}

/// The body of a contender process; run by the test above through
/// `current_exe()`, ignored in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a separate process by fences_strictly_increase_in_acquisition_order_across_tasks_and_processes"]
async fn fencing_contender_process() {
    let url = std::env::var(ORDER_CONTENDER_URL_ENV).expect("run by the order test");
    append_fences(&url, ORDER_TASKS_PER_PROCESS).await;
}

// ---------------------------------------------------------------------------
// The stale holder, and the fenced resource's rule
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_stale_holders_write_is_rejected_and_the_fresh_holders_accepted() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let report = FencedResource::new("story:report", conn.clone()).unwrap();

    // A takes the lock, then pauses past its lease.
    let a = fenced(conn.clone(), "story:lock", 100)
        .acquire()
        .await
        .unwrap();
    let fence_a = a.fence().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.remaining(), Duration::ZERO);

    // B takes the expired lock and writes.
    let b = fenced(conn.clone(), "story:lock", 10_000)
        .acquire()
        .await
        .expect("the lease of A ran out");
    let fence_b = b.fence().unwrap();
    assert!(fence_b > fence_a, "{fence_b} > {fence_a}");
    assert_eq!(
        report.set(fence_b, "written by B").await.unwrap(),
        FencedWrite::Accepted
    );

    // A wakes up and writes as if it still held the lock: rejected.
    let stale = report.set(fence_a, "written by A").await.unwrap();
    assert_eq!(
        stale,
        FencedWrite::Rejected {
            last_fence: fence_b
        }
    );
    assert!(!stale.is_accepted());
    assert_eq!(
        report.get().await.unwrap().as_deref(),
        Some(&b"written by B"[..])
    );
    assert_eq!(report.last_fence().await.unwrap(), Some(fence_b));
    assert_eq!(
        server.get("{story:report}:last-fence"),
        Some(fence_b.to_string())
    );
    assert!(a.release().await.unwrap_err().is_not_held());

    // Strictly greater: the same fence does not write twice.
    assert_eq!(
        report.set(fence_b, "B again").await.unwrap(),
        FencedWrite::Rejected {
            last_fence: fence_b
        }
    );
    b.release().await.unwrap();

    // The next holder writes again.
    let c = fenced(conn, "story:lock", 10_000).acquire().await.unwrap();
    assert!(
        report
            .set(c.fence().unwrap(), "written by C")
            .await
            .unwrap()
            .is_accepted()
    );
    assert_eq!(server.get("story:report").as_deref(), Some("written by C"));
    assert_eq!(server.pttl("story:report"), -1, "a resource has no TTL");
    assert_eq!(server.pttl("{story:report}:last-fence"), -1);
    c.release().await.unwrap();
}

#[tokio::test]
async fn a_fenced_resource_compares_fences_exactly_over_all_of_u64() {
    let server = RedisServer::start();
    let resource = FencedResource::new("exact:value", server.conn().await).unwrap();
    assert_eq!(resource.get().await.unwrap(), None);
    assert_eq!(resource.last_fence().await.unwrap(), None);

    // Any fence writes first, even 0.
    assert!(resource.set(0, "zero").await.unwrap().is_accepted());
    assert!(!resource.set(0, "zero again").await.unwrap().is_accepted());
    // 2^53 + 1 and 2^53 are one double; as fences they differ.
    assert!(
        resource
            .set(9_007_199_254_740_993, "a")
            .await
            .unwrap()
            .is_accepted()
    );
    assert_eq!(
        resource.set(9_007_199_254_740_992, "b").await.unwrap(),
        FencedWrite::Rejected {
            last_fence: 9_007_199_254_740_993
        }
    );
    // Longer is greater; among equal lengths, the digits decide.
    assert!(
        resource
            .set(10_000_000_000_000_000, "c")
            .await
            .unwrap()
            .is_accepted()
    );
    assert!(
        !resource
            .set(9_999_999_999_999_999, "d")
            .await
            .unwrap()
            .is_accepted()
    );
    assert!(resource.set(u64::MAX - 1, "e").await.unwrap().is_accepted());
    assert!(resource.set(u64::MAX, "f").await.unwrap().is_accepted());
    assert_eq!(
        resource.set(u64::MAX, "g").await.unwrap(),
        FencedWrite::Rejected {
            last_fence: u64::MAX
        }
    );
    assert_eq!(resource.get().await.unwrap().as_deref(), Some(&b"f"[..]));
    assert_eq!(resource.last_fence().await.unwrap(), Some(u64::MAX));

    // A last fence written by hand with leading zeros still compares as a
    // number; one that is no number fails the write and changes nothing.
    server.cmd(&["SET", "{exact:value}:last-fence", "0042"]);
    assert!(!resource.set(42, "h").await.unwrap().is_accepted());
    assert!(resource.set(43, "i").await.unwrap().is_accepted());
    server.cmd(&["SET", "{exact:value}:last-fence", "forty-three"]);
    let err = resource.set(44, "j").await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Redis { operation: redis_mutex::Operation::FencedWrite, key, .. } if key == "exact:value"
        ),
        "{err:?}"
    );
    assert_eq!(server.get("exact:value").as_deref(), Some("i"));

    // Binary values go through untouched.
    server.cmd(&["SET", "{exact:value}:last-fence", "999"]);
    let bytes: Vec<u8> = (0..=255).collect();
    assert!(
        resource
            .set(1_000, bytes.as_slice())
            .await
            .unwrap()
            .is_accepted()
    );
    assert_eq!(resource.get().await.unwrap(), Some(bytes));
}

// ---------------------------------------------------------------------------
// Contention and the counter
// ---------------------------------------------------------------------------

#[tokio::test]
async fn contention_does_not_burn_fences() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let holder = fenced(conn.clone(), "burn:lock", 10_000)
        .acquire()
        .await
        .unwrap();
    assert_eq!(holder.fence(), Some(1));

    let other = Lock::builder("burn:lock")
        .wait(WaitPolicy::timeout(Duration::from_millis(300)))
        .fencing(true)
        .build(conn)
        .unwrap();
    for _ in 0..50 {
        assert!(other.try_acquire().await.unwrap().is_none());
    }
    match other.acquire().await {
        Err(Error::Busy { attempts, .. }) => assert!(attempts > 1, "{attempts}"),
        result => panic!("expected Busy, got {result:?}"),
    }
    assert_eq!(
        server.get("{burn:lock}:fence").as_deref(),
        Some("1"),
        "only the holder's acquisition advanced the counter"
    );
    assert_eq!(server.command_calls("incr"), 1);

    holder.release().await.unwrap();
    let next = other.acquire().await.unwrap();
    assert_eq!(next.fence(), Some(2));
    next.release().await.unwrap();
}

#[tokio::test]
async fn fenced_and_unfenced_locks_on_one_key_exclude_each_other() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let plain = Lock::builder("mixed:lock")
        .wait(WaitPolicy::no_wait())
        .build(conn.clone())
        .unwrap();
    let fenced_lock = fenced(conn, "mixed:lock", 10_000);
    assert_eq!(plain.fence_key(), None);
    assert_eq!(fenced_lock.fence_key(), Some("{mixed:lock}:fence"));

    let unfenced_guard = plain.acquire().await.unwrap();
    assert_eq!(unfenced_guard.fence(), None);
    assert!(fenced_lock.try_acquire().await.unwrap().is_none());
    unfenced_guard.release().await.unwrap();
    assert!(
        !server.exists("{mixed:lock}:fence"),
        "unfenced locks leave no counter"
    );

    let fenced_guard = fenced_lock.acquire().await.unwrap();
    assert_eq!(fenced_guard.fence(), Some(1));
    assert!(plain.try_acquire().await.unwrap().is_none());
    assert!(format!("{fenced_guard:?}").contains("fence: Some(1)"));
    fenced_guard.release().await.unwrap();
}

/// Fences above 2^53 come back exact (Lua numbers are doubles), and when the
/// counter cannot be incremented no lock is taken: the script `INCR`s before
/// it `SET`s.
#[tokio::test]
async fn fences_are_exact_and_a_counter_that_cannot_advance_takes_no_lock() {
    let server = RedisServer::start();
    let lock = fenced(server.conn().await, "big:lock", 10_000);
    let counter = "{big:lock}:fence";

    server.cmd(&["SET", counter, "9007199254740994"]);
    let guard = lock.acquire().await.unwrap();
    assert_eq!(guard.fence(), Some(9_007_199_254_740_995));
    guard.release().await.unwrap();

    server.cmd(&["SET", counter, &(i64::MAX - 1).to_string()]);
    let guard = lock.acquire().await.unwrap();
    assert_eq!(guard.fence(), Some(i64::MAX as u64));
    guard.release().await.unwrap();

    // INCR would overflow: an error, and no lock without a fence.
    let err = lock.acquire().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Redis {
                operation: redis_mutex::Operation::Acquire,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        !server.exists("big:lock"),
        "a lock was taken without a fence"
    );
    assert_eq!(server.get(counter), Some(i64::MAX.to_string()));

    server.cmd(&["SET", counter, "not a number"]);
    assert!(matches!(lock.acquire().await, Err(Error::Redis { .. })));
    assert!(!server.exists("big:lock"));

    // A counter of another type is an error that names the counter, not a
    // WrongType, which would blame the lock key.
    server.cmd(&["DEL", counter]);
    server.cmd(&["HSET", counter, "f", "v"]);
    let err = lock.acquire().await.unwrap_err();
    match &err {
        Error::Redis { source, .. } => {
            assert!(source.to_string().contains("fence counter"), "{source}")
        }
        other => panic!("expected a Redis error naming the counter, got {other:?}"),
    }
    assert!(!server.exists("big:lock"));

    // Deleting the counter restarts the fences: the documented way to lose
    // monotonicity.
    server.cmd(&["DEL", counter]);
    let guard = lock.acquire().await.unwrap();
    assert_eq!(guard.fence(), Some(1));
    guard.release().await.unwrap();
}

#[tokio::test]
async fn out_of_memory_takes_no_lock_and_burns_no_fence() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let lock = fenced(conn.clone(), "oom:lock", 10_000);
    let held = lock.acquire().await.unwrap();
    assert_eq!(held.fence(), Some(1));

    server.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    // A busy lock answers busy without writing anything.
    assert!(lock.try_acquire().await.unwrap().is_none());
    // Release has no shebang and deletes, so it works out of memory.
    held.release().await.unwrap();
    let err = lock.acquire().await.unwrap_err();
    assert_eq!(
        err.redis_error().and_then(|e| e.code()),
        Some("OOM"),
        "{err:?}"
    );
    assert!(!server.exists("oom:lock"));
    assert_eq!(server.get("{oom:lock}:fence").as_deref(), Some("1"));

    server.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    let guard = lock.acquire().await.unwrap();
    assert_eq!(guard.fence(), Some(2));
    guard.release().await.unwrap();
}

// ---------------------------------------------------------------------------
// Cluster slots
// ---------------------------------------------------------------------------

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster takes modulo 16384.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The Cluster slot of `key`: the CRC16 of its hash tag (between the first
/// `{` and the first `}` after it, if non-empty), or of the whole key.
fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        None => bytes,
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            None | Some(0) => bytes,
            Some(len) => &bytes[open + 1..open + 1 + len],
        },
    };
    crc16(hashed) % 16384
}

/// Lock keys with and without hash tags, including awkward ones.
fn slot_test_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "orders",
        "lock:orders:2024-06-01",
        "{tenant:7}:orders",
        "orders:{tenant:7}",
        "{user1000}.following",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "a{b",
        "{",
        "{{",
        "a}b{c}",
        "ключ:{замок}",
        "🔒",
        "a b\tc\n",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..200 {
        keys.push(format!("job:{i}"));
        keys.push(format!("{{shard-{}}}:job:{i}", i % 7));
        keys.push(format!("job:{i}:{{shard-{}}}:x", i % 5));
    }
    keys
}

#[tokio::test]
async fn the_lock_and_its_fence_counter_share_a_cluster_slot() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    for key in slot_test_keys() {
        let lock = fenced(conn.clone(), &key, 10_000);
        let fence_key = lock.fence_key().unwrap();
        assert_eq!(slot(&key), slot(fence_key), "{key:?} vs {fence_key:?}");
        let resource = FencedResource::new(format!("{key}:data"), conn.clone()).unwrap();
        assert_eq!(
            slot(resource.key()),
            slot(resource.last_fence_key()),
            "{key:?}"
        );
    }
    // Our CRC16 agrees with the examples of the Cluster spec.
    assert_eq!(crc16(b"123456789"), 0x31c3);
    assert_eq!(slot("foo"), 12182);
}

/// The same on a real one-node Redis Cluster: `CLUSTER KEYSLOT` agrees with
/// our CRC16, and the fenced acquire (a two-key script) never meets
/// `CROSSSLOT`. A name that cannot be fenced would have met it.
#[tokio::test]
async fn on_a_real_cluster_node_fenced_acquires_never_cross_slots() {
    let server = RedisServer::start_with(&["--cluster-enabled", "yes"]);
    server.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.info("cluster").contains("cluster_enabled:1")
        || !matches!(
            server.cmd(&["CLUSTER", "INFO"]),
            redis::Value::BulkString(ref info) if String::from_utf8_lossy(info).contains("cluster_state:ok")
        )
    {
        assert!(std::time::Instant::now() < deadline, "cluster never got ok");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keyslot = |key: &str| -> u16 {
        match server.cmd(&["CLUSTER", "KEYSLOT", key]) {
            redis::Value::Int(slot) => slot as u16,
            other => panic!("CLUSTER KEYSLOT {key:?}: {other:?}"),
        }
    };

    let conn = server.conn().await;
    for key in slot_test_keys() {
        let lock = fenced(conn.clone(), &key, 10_000);
        let fence_key = lock.fence_key().unwrap().to_owned();
        assert_eq!(keyslot(&key), slot(&key), "our CRC16 for {key:?}");
        assert_eq!(keyslot(&key), keyslot(&fence_key), "{key:?}");
        let guard = lock
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{key:?}: {e:?}"));
        assert!(guard.fence().is_some());
        guard.release().await.unwrap();
        let resource = FencedResource::new(format!("{key}:data"), conn.clone()).unwrap();
        assert!(resource.set(1, "v").await.unwrap().is_accepted(), "{key:?}");
    }

    // Why "a}b" is refused: the counter the rule would give it, "{a}b}:fence",
    // hashes "a" while "a}b" hashes whole, and a script on both fails.
    for refused in ["a}b", "}x", "x{}y}", "{}", "lock:{}x}"] {
        let err = Lock::builder(refused)
            .fencing(true)
            .build(conn.clone())
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { field: "key", .. }),
            "{refused:?}: {err:?}"
        );
        let naive = format!("{{{refused}}}:fence");
        assert_ne!(keyslot(refused), keyslot(&naive), "{refused:?}");
        let crossed = server
            .try_cmd(&["EVAL", "return 1", "2", refused, &naive])
            .unwrap_err();
        assert_eq!(crossed.code(), Some("CROSSSLOT"), "{crossed:?}");
    }
}

#[tokio::test]
async fn names_that_cannot_share_a_slot_are_refused_before_connecting() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let invalid = |result: redis_mutex::Result<Lock>| match result {
        Err(Error::InvalidArgument { field, reason }) => (field, reason),
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    let (field, reason) = invalid(Lock::builder("a}b").fencing(true).build(conn.clone()));
    assert_eq!(field, "key");
    assert!(reason.contains("hash tag"), "{reason}");
    // Refused before dialing: this URL has nobody listening.
    let (field, _) = invalid(
        Lock::builder("a}b")
            .fencing(true)
            .connect("redis://127.0.0.1:1/")
            .await,
    );
    assert_eq!(field, "key");
    // Without fencing the same name is a fine lock; with a hash tag too.
    Lock::builder("a}b").build(conn.clone()).unwrap();
    let tagged = Lock::builder("{a}b}")
        .fencing(true)
        .build(conn.clone())
        .unwrap();
    assert_eq!(tagged.fence_key(), Some("{a}b}:fence"));

    for bad in ["", "x}"] {
        let err = FencedResource::new(bad, conn.clone()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { field: "key", .. }),
            "{bad:?}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The fenced acquire keeps the crate's other promises
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_key_of_another_type_is_still_a_wrong_type_error_and_burns_no_fence() {
    let server = RedisServer::start();
    server.cmd(&["HSET", "redisson:lock", "8743c9c0:1", "1"]);
    let lock = Lock::builder("redisson:lock")
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .fencing(true)
        .build(server.conn().await)
        .unwrap();
    let started = std::time::Instant::now();
    let err = lock.acquire().await.unwrap_err();
    assert!(
        matches!(&err, Error::WrongType { key, .. } if key == "redisson:lock"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1), "no waiting");
    assert!(matches!(
        lock.try_acquire().await,
        Err(Error::WrongType { .. })
    ));
    assert!(!server.exists("{redisson:lock}:fence"));
}

#[tokio::test]
async fn fenced_acquire_survives_a_script_flush() {
    let server = RedisServer::start();
    let lock = fenced(server.conn().await, "flush:lock", 10_000);
    let first = lock.acquire().await.unwrap();
    assert_eq!(first.fence(), Some(1));
    first.release().await.unwrap();
    server.cmd(&["SCRIPT", "FLUSH"]);
    let second = lock.acquire().await.unwrap();
    assert_eq!(second.fence(), Some(2));
    second.release().await.unwrap();
    // Acquire and release each loaded their script again after NOSCRIPT.
    assert_eq!(server.command_calls("script|load"), 4);
    assert!(!server.exists("flush:lock"));
}

#[tokio::test]
async fn an_uncontended_fenced_acquire_and_release_is_exactly_two_commands() {
    let server = RedisServer::start();
    let lock = fenced(server.conn().await, "rtt:lock", 10_000);
    // Warm the script cache so the steady state is measured.
    lock.acquire().await.unwrap().release().await.unwrap();

    let first = commands_processed(&server);
    let admin_overhead = commands_processed(&server) - first;

    server.reset_stats();
    let before = commands_processed(&server);
    let cycles = 10;
    for _ in 0..cycles {
        lock.acquire().await.unwrap().release().await.unwrap();
    }
    let after = commands_processed(&server);
    // Sent by the lock: two EVALSHAs per cycle (acquire, release), nothing else.
    assert_eq!(server.command_calls("evalsha"), 2 * cycles);
    assert_eq!(server.command_calls("eval"), 0);
    assert_eq!(server.command_calls("script|load"), 0);
    // Run inside the scripts: acquire GETs, INCRs and SETs; release GETs,
    // DELs and PUBLISHes (the wake-up for waiters).
    assert_eq!(server.command_calls("get"), 2 * cycles);
    assert_eq!(server.command_calls("incr"), cycles);
    assert_eq!(server.command_calls("set"), cycles);
    assert_eq!(server.command_calls("del"), cycles);
    assert_eq!(server.command_calls("publish"), cycles);
    assert_eq!(after - before - admin_overhead, 8 * cycles);
}

/// Fenced acquires cut off at every point of their life leave no lock behind
/// (as unfenced ones, `tests/cancel.rs`), and the fences of those that
/// completed still increase; cut-off ones may have burnt a number.
#[tokio::test]
async fn cut_off_fenced_acquires_leave_no_lock_and_fences_still_increase() {
    let server = RedisServer::start();
    let lock = fenced(server.conn().await, "cancel:fenced", 60_000);
    let mut fences = vec![];
    let mut cut_off = 0;
    for i in 0..300 {
        tokio::select! {
            biased;
            _ = yields(i % 30) => cut_off += 1,
            result = lock.acquire() => {
                let guard = result.unwrap();
                fences.push(guard.fence().unwrap());
                guard.release().await.unwrap();
            }
        }
        let started = std::time::Instant::now();
        while server.exists("cancel:fenced") {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "a cut-off acquire left the lock held"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(
        cut_off > 0 && !fences.is_empty(),
        "{cut_off} {}",
        fences.len()
    );
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");
    // Some acquires were cut off after their script ran on the server: they
    // took a fence (and the lock, cleaned up above) with no guard to show.
    let issued: u64 = server
        .get("{cancel:fenced}:fence")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        issued > fences.len() as u64,
        "no script was in flight when cut off: {issued} fences issued, {} acquired",
        fences.len()
    );
}
