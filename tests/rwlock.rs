//! Read-write locks: readers share, a writer holds alone, and writers are
//! not starved by a stream of readers (real tasks in two OS processes,
//! checked in Redis and in memory); a SIGKILLed reader, renewal and loss,
//! cancel storms, write preference, upgrades refused, waking, interop with
//! a plain lock, and bad input.

mod support;

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use redis::AsyncCommands;
use redis_mutex::{Error, Lock, Locks, RwLock, WaitPolicy};
use support::{RedisServer, eventually};

const URL_ENV: &str = "REDIS_MUTEX_RWLOCK_URL";
const KEY: &str = "rw:config";
const READERS_INSIDE: &str = "rw:readers-inside";
const WRITERS_INSIDE: &str = "rw:writers-inside";
const MAX_READERS: &str = "rw:max-readers";
const VIOLATIONS: &str = "rw:violations";
const WRITES: &str = "rw:writes";
const READS: &str = "rw:reads";
/// How long the contention runs in each process.
const RUN_FOR: Duration = Duration::from_secs(3);
const WRITES_PER_WRITER: u32 = 4;
/// The longest a writer may wait while readers keep arriving: the reads in
/// progress when it came (at most 80 ms each) plus another writer or two
/// ahead of it, with room for a loaded machine.
const WRITER_BOUND: Duration = Duration::from_secs(2);

/// Enters as a reader: counts it, and checks no writer is inside.
const ENTER_READ_LUA: &str = r#"
local readers = redis.call("INCR", KEYS[1])
local max = tonumber(redis.call("GET", KEYS[3]) or "0")
if readers > max then redis.call("SET", KEYS[3], readers) end
if tonumber(redis.call("GET", KEYS[2]) or "0") > 0 then redis.call("INCR", KEYS[4]) end
return readers
"#;

/// Enters as a writer: checks it is alone.
const ENTER_WRITE_LUA: &str = r#"
local writers = redis.call("INCR", KEYS[2])
if writers ~= 1 or tonumber(redis.call("GET", KEYS[1]) or "0") > 0 then redis.call("INCR", KEYS[4]) end
return writers
"#;

async fn lock_over(url: &str) -> RwLock {
    RwLock::builder(KEY)
        .ttl(Duration::from_secs(20))
        .wait(WaitPolicy::timeout(Duration::from_secs(60)))
        .connect(url)
        .await
        .unwrap()
}

async fn run_mixed(url: &str, readers: usize, writers: usize) -> Duration {
    let lock = lock_over(url).await;
    let data = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let local_readers = Arc::new(AtomicU32::new(0));
    let local_writers = Arc::new(AtomicU32::new(0));
    let stop_at = Instant::now() + RUN_FOR;
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (lock, mut data) = (lock.clone(), data.clone());
        let (local_readers, local_writers) = (local_readers.clone(), local_writers.clone());
        tasks.push(tokio::spawn(async move {
            let enter = redis::Script::new(ENTER_READ_LUA);
            while Instant::now() < stop_at {
                let read = lock.read().await.unwrap();
                local_readers.fetch_add(1, Ordering::SeqCst);
                let _: i64 = enter
                    .key(READERS_INSIDE)
                    .key(WRITERS_INSIDE)
                    .key(MAX_READERS)
                    .key(VIOLATIONS)
                    .invoke_async(&mut data)
                    .await
                    .unwrap();
                if local_writers.load(Ordering::SeqCst) > 0 {
                    let _: i64 = data.incr(VIOLATIONS, 1).await.unwrap();
                }
                let pause = rand::rng().random_range(20..=80u64);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let _: i64 = data.decr(READERS_INSIDE, 1).await.unwrap();
                let _: i64 = data.incr(READS, 1).await.unwrap();
                local_readers.fetch_sub(1, Ordering::SeqCst);
                read.release().await.unwrap();
            }
            Duration::ZERO
        }));
    }
    for _ in 0..writers {
        let (lock, mut data) = (lock.clone(), data.clone());
        let (local_readers, local_writers) = (local_readers.clone(), local_writers.clone());
        tasks.push(tokio::spawn(async move {
            let enter = redis::Script::new(ENTER_WRITE_LUA);
            let mut longest = Duration::ZERO;
            for _ in 0..WRITES_PER_WRITER {
                let pause = rand::rng().random_range(100..400);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let asked = Instant::now();
                let write = lock.write().await.unwrap();
                longest = longest.max(asked.elapsed());
                let here = local_writers.fetch_add(1, Ordering::SeqCst) + 1;
                let _: i64 = enter
                    .key(READERS_INSIDE)
                    .key(WRITERS_INSIDE)
                    .key(MAX_READERS)
                    .key(VIOLATIONS)
                    .invoke_async(&mut data)
                    .await
                    .unwrap();
                if here != 1 || local_readers.load(Ordering::SeqCst) > 0 {
                    let _: i64 = data.incr(VIOLATIONS, 1).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
                local_writers.fetch_sub(1, Ordering::SeqCst);
                let _: i64 = data.decr(WRITERS_INSIDE, 1).await.unwrap();
                let _: i64 = data.incr(WRITES, 1).await.unwrap();
                write.release().await.unwrap();
            }
            longest
        }));
    }
    let mut longest = Duration::ZERO;
    for task in tasks {
        longest = longest.max(task.await.unwrap());
    }
    longest
}

fn spawn_process(test: &str, url: &str) -> Child {
    support::ignored_test_process(test)
        .env(URL_ENV, url)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_are_alone_readers_share_and_no_writer_starves() {
    let server = RedisServer::start();
    let url = server.url();
    let mut child = spawn_process("mixed_process", &url);
    let longest = run_mixed(&url, 8, 2).await;
    let status = tokio::task::block_in_place(|| child.wait().unwrap());
    assert!(status.success(), "the other process failed: {status}");
    assert_eq!(
        server.get(VIOLATIONS),
        None,
        "a writer was inside with someone"
    );
    assert_eq!(
        server.get(WRITES),
        Some((4 * WRITES_PER_WRITER).to_string()),
        "every writer got in every time"
    );
    let max_readers: u32 = server.get(MAX_READERS).unwrap().parse().unwrap();
    assert!(
        max_readers > 1,
        "readers overlapped: at most {max_readers} at once"
    );
    let reads: u32 = server.get(READS).unwrap().parse().unwrap();
    assert!(
        longest < WRITER_BOUND,
        "a writer waited {longest:?} ({reads} reads)"
    );
    eprintln!(
        "{reads} reads, at most {max_readers} at once; the longest writer wait in this process {longest:?}"
    );
    for key in [KEY, "{rw:config}:readers", "{rw:config}:writer-waiting"] {
        assert!(!server.exists(key), "{key} left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a separate process by writers_are_alone_readers_share_and_no_writer_starves"]
async fn mixed_process() {
    let url = std::env::var(URL_ENV).expect("run by the rwlock test");
    let longest = run_mixed(&url, 8, 2).await;
    assert!(longest < WRITER_BOUND, "a writer waited {longest:?}");
}

const READER_TTL: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a separate process by a_sigkilled_reader_holds_a_writer_back_at_most_its_ttl"]
async fn reader_process() {
    let url = std::env::var(URL_ENV).expect("run by the SIGKILL test");
    let lock = RwLock::builder("rw:killed")
        .ttl(READER_TTL)
        .auto_renew(true)
        .connect(url.as_str())
        .await
        .unwrap();
    let _read = lock.read().await.unwrap();
    let mut data = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = data.set("rw:killed:ready", 1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_reader_holds_a_writer_back_at_most_its_ttl() {
    let server = RedisServer::start();
    let mut child = spawn_process("reader_process", &server.url());
    eventually(Duration::from_secs(20), "the reader took its hold", || {
        server.exists("rw:killed:ready")
    })
    .await;
    let lock = RwLock::builder("rw:killed")
        .wait(
            WaitPolicy::timeout(Duration::from_secs(20))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        )
        .connect(server.url())
        .await
        .unwrap();
    tokio::time::sleep(READER_TTL * 2).await;
    assert!(
        lock.try_write().await.unwrap().is_none(),
        "the renewed read still holds"
    );
    assert_eq!(lock.readers().await.unwrap(), 1);
    let writer = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.write().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    tokio::task::block_in_place(|| child.wait().unwrap());
    let write = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer hung")
        .unwrap()
        .unwrap();
    let took = killed.elapsed();
    assert!(
        took <= READER_TTL + Duration::from_millis(700),
        "took {took:?}"
    );
    write.release().await.unwrap();
}

#[tokio::test]
async fn renewal_keeps_a_long_read_across_five_ttls_and_a_lost_read_fires_lost() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(300);
    let lock = RwLock::builder("rw:renew")
        .ttl(ttl)
        .auto_renew(true)
        .connect(server.url())
        .await
        .unwrap();
    let read = lock.read().await.unwrap();
    let other = tokio::spawn({
        let lock = lock.clone();
        async move { lock.read().await.unwrap() }
    })
    .await
    .unwrap();
    tokio::time::sleep(ttl * 5).await;
    assert!(!read.is_lost() && read.is_held().await.unwrap());
    assert_eq!(
        lock.readers().await.unwrap(),
        2,
        "each reader renewed its own hold"
    );
    // One reader's hold removed behind its back: only it is lost.
    let members: Vec<String> =
        redis::from_redis_value(server.cmd(&["ZRANGE", "{rw:renew}:readers", "0", "0"])).unwrap();
    server.cmd(&["ZREM", "{rw:renew}:readers", &members[0]]);
    let (lost, kept) = tokio::select! {
        () = read.lost() => (read, other),
        () = other.lost() => (other, read),
        () = tokio::time::sleep(ttl * 2) => panic!("no read was lost"),
    };
    assert!(!kept.is_lost() && kept.is_held().await.unwrap());
    assert!(matches!(lost.release().await, Err(Error::NotHeld { .. })));
    kept.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_storm_on_reads_and_writes_leaks_nothing() {
    let server = RedisServer::start();
    let lock = RwLock::builder("rw:cancel")
        .ttl(Duration::from_secs(60))
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .connect(server.url())
        .await
        .unwrap();
    let (mut acquired, mut cut) = (0, 0);
    for i in 0..300 {
        let pause = Duration::from_micros(rand::rng().random_range(0..600));
        if i % 2 == 0 {
            tokio::select! {
                biased;
                _ = tokio::time::sleep(pause) => cut += 1,
                read = lock.read() => { acquired += 1; read.unwrap().release().await.unwrap(); }
            }
        } else {
            tokio::select! {
                biased;
                _ = tokio::time::sleep(pause) => cut += 1,
                write = lock.write() => { acquired += 1; write.unwrap().release().await.unwrap(); }
            }
        }
    }
    assert!(acquired > 0 && cut > 0, "{acquired} acquired, {cut} cut");
    // Waiting writers and readers behind holders, dropped at random.
    let held = lock.read().await.unwrap();
    let mut waiters = Vec::new();
    for i in 0..40 {
        let lock = lock.clone();
        let cut_after = Duration::from_millis(rand::rng().random_range(0..300));
        waiters.push(tokio::spawn(async move {
            if i % 2 == 0 {
                drop(tokio::time::timeout(cut_after, lock.write()).await);
            } else {
                drop(tokio::time::timeout(cut_after, lock.read()).await);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    held.release().await.unwrap();
    for waiter in waiters {
        waiter.await.unwrap();
    }
    redis_mutex::flush_releases(Duration::from_secs(5)).await;
    for key in [
        "rw:cancel",
        "{rw:cancel}:readers",
        "{rw:cancel}:writer-waiting",
    ] {
        eventually(Duration::from_secs(2), &format!("{key} released"), || {
            !server.exists(key)
        })
        .await;
    }
}

#[tokio::test]
async fn a_waiting_writer_stops_new_readers_and_a_writer_that_gives_up_lets_them_in() {
    let server = RedisServer::start();
    let lock = RwLock::builder("rw:pref")
        .wait(WaitPolicy::timeout(Duration::from_secs(10)))
        .connect(server.url())
        .await
        .unwrap();
    let first = lock.read().await.unwrap();
    let second = lock.try_read().await.unwrap().expect("readers share");
    let writer = tokio::spawn({
        let lock = lock.clone();
        async move { lock.write().await.unwrap() }
    });
    eventually(Duration::from_secs(2), "the writer's mark", || {
        server.exists("{rw:pref}:writer-waiting")
    })
    .await;
    let third = tokio::spawn({
        let lock = lock.clone();
        async move { lock.try_read().await.unwrap() }
    })
    .await
    .unwrap();
    assert!(
        third.is_none(),
        "a new reader waits behind the waiting writer"
    );
    first.release().await.unwrap();
    assert!(!writer.is_finished());
    second.release().await.unwrap();
    let write = tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .expect("the last reader woke the writer")
        .unwrap();
    assert!(
        !server.exists("{rw:pref}:writer-waiting"),
        "the mark went with the write"
    );
    assert!(
        lock.try_read().await.unwrap().is_none(),
        "no reader beside the writer"
    );
    write.release().await.unwrap();
    lock.try_read()
        .await
        .unwrap()
        .expect("free after the write")
        .release()
        .await
        .unwrap();

    // A writer that gives up waiting takes its mark with it at once.
    let read = lock.read().await.unwrap();
    let gave_up = tokio::spawn({
        let lock = lock.clone();
        async move { lock.write_timeout(Duration::from_millis(300)).await }
    })
    .await
    .unwrap();
    assert!(gave_up.unwrap_err().is_busy());
    assert!(
        !server.exists("{rw:pref}:writer-waiting"),
        "the mark was removed"
    );
    let another = tokio::spawn({
        let lock = lock.clone();
        async move { lock.try_read().await.unwrap() }
    })
    .await
    .unwrap()
    .expect("readers are let in again");
    another.release().await.unwrap();
    read.release().await.unwrap();
}

#[tokio::test]
async fn a_task_may_not_upgrade_nor_read_under_its_write_but_others_wait_as_usual() {
    let server = RedisServer::start();
    let lock = RwLock::builder("rw:upgrade")
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .connect(server.url())
        .await
        .unwrap();
    let read = lock.read().await.unwrap();
    match lock.write().await {
        Err(Error::WaitsForItself {
            held: "read",
            wanted: "write",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        lock.try_write().await,
        Err(Error::WaitsForItself { .. })
    ));
    // Another task's write waits for this read, as it should.
    let writer = tokio::spawn({
        let lock = lock.clone();
        async move { lock.write().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writer.is_finished());
    read.release().await.unwrap();
    let write = writer.await.unwrap();
    write.release().await.unwrap();
    let write = lock.write().await.expect("no read held any more");
    let error = lock.read().await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::WaitsForItself {
                held: "write",
                wanted: "read",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("refused"), "{error}");
    write.release().await.unwrap();
    lock.read().await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn releases_wake_the_waiters_they_let_in() {
    let server = RedisServer::start();
    let lock = RwLock::builder("rw:wake")
        .ttl(Duration::from_secs(30))
        .wait(
            WaitPolicy::timeout(Duration::from_secs(20))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        )
        .connect(server.url())
        .await
        .unwrap();
    // A writer's release wakes the readers.
    let write = lock.write().await.unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move { lock.read().await.unwrap() })
        })
        .collect();
    eventually(Duration::from_secs(5), "the readers subscribed", || {
        support::subscribers(&server, "{rw:wake}:released") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let released = Instant::now();
    write.release().await.unwrap();
    let mut reads = Vec::new();
    for reader in readers {
        reads.push(
            tokio::time::timeout(Duration::from_secs(4), reader)
                .await
                .expect("woken")
                .unwrap(),
        );
    }
    assert!(
        released.elapsed() < Duration::from_secs(1),
        "{:?}",
        released.elapsed()
    );
    // The last reader's release wakes the writer.
    let writer = tokio::spawn({
        let lock = lock.clone();
        async move { lock.write().await.unwrap() }
    });
    eventually(Duration::from_secs(5), "the writer subscribed", || {
        support::subscribers(&server, "{rw:wake}:readers-released") == 1
    })
    .await;
    let mut reads = reads.into_iter();
    reads.next().unwrap().release().await.unwrap();
    reads.next().unwrap().release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writer.is_finished(), "one reader is left");
    let released = Instant::now();
    reads.next().unwrap().release().await.unwrap();
    let write = support::woken_at_once(released, writer).await;
    write.release().await.unwrap();
}

/// On the wire the key is the writer's plain lock: a `Lock` on it keeps
/// readers and writers out, and a writer keeps the `Lock` out.
#[tokio::test]
async fn a_plain_lock_on_the_key_and_the_writer_exclude_each_other() {
    let server = RedisServer::start();
    let rw = RwLock::builder("rw:plain")
        .connect(server.url())
        .await
        .unwrap();
    let plain = Lock::builder("rw:plain")
        .connect(server.url())
        .await
        .unwrap();
    let guard = plain.acquire().await.unwrap();
    assert!(rw.try_read().await.unwrap().is_none());
    assert!(rw.try_write().await.unwrap().is_none());
    guard.release().await.unwrap();
    let write = rw.write().await.unwrap();
    assert!(plain.try_acquire().await.unwrap().is_none());
    write.release().await.unwrap();
}

#[tokio::test]
async fn uncontended_reads_and_writes_are_two_commands_each() {
    let server = RedisServer::start();
    let lock = RwLock::builder("rw:cost")
        .connect(server.url())
        .await
        .unwrap();
    lock.read().await.unwrap().release().await.unwrap();
    lock.write().await.unwrap().release().await.unwrap();
    server.reset_stats();
    for _ in 0..10 {
        lock.read().await.unwrap().release().await.unwrap();
        lock.write().await.unwrap().release().await.unwrap();
    }
    assert_eq!(server.command_calls("evalsha"), 40);
    // GET, SET and the rest run inside the scripts (and are counted there).
    for other in ["eval", "script", "pttl"] {
        assert_eq!(server.command_calls(other), 0, "{other}");
    }
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let server = RedisServer::start();
    let invalid = |result: redis_mutex::Result<RwLock>, field: &str| match result {
        Err(Error::InvalidArgument { field: f, reason }) if f == field => reason,
        other => panic!("{field}: {other:?}"),
    };
    invalid(RwLock::builder("").connect(server.url()).await, "key");
    let reason = invalid(RwLock::builder("a}b").connect(server.url()).await, "key");
    assert!(reason.contains("read-write lock"), "{reason}");
    invalid(
        RwLock::builder("k")
            .fencing(true)
            .connect(server.url())
            .await,
        "fencing",
    );
    invalid(
        RwLock::builder("k")
            .ttl(Duration::ZERO)
            .connect(server.url())
            .await,
        "ttl",
    );
    // The key holding another type (a semaphore's set).
    server.cmd(&["ZADD", "rw:other", "1", "x"]);
    let lock = RwLock::builder("rw:other")
        .connect(server.url())
        .await
        .unwrap();
    assert!(matches!(lock.read().await, Err(Error::WrongType { .. })));
    assert!(matches!(lock.write().await, Err(Error::WrongType { .. })));

    let locks = Locks::builder()
        .prefix("app:")
        .connect(server.url())
        .await
        .unwrap();
    let from_factory = locks.rwlock("cfg").unwrap();
    assert_eq!(from_factory.key(), "app:cfg");
    from_factory.read().await.unwrap().release().await.unwrap();
    let servers = [
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    ];
    let quorum = Locks::builder()
        .connect_quorum(servers.iter().map(|s| s.url()))
        .await
        .unwrap();
    assert!(matches!(
        quorum.rwlock("cfg"),
        Err(Error::InvalidArgument {
            field: "servers",
            ..
        })
    ));
}
