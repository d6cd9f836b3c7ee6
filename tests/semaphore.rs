//! Counting semaphores whose permits expire on the server's clock: the
//! limit under real contention (tasks and OS processes, checked in Redis and
//! in memory), a SIGKILLed holder's permit freeing itself, renewal and loss,
//! cancel storms, waking, the limit changed under live permits, commands
//! per cycle, and bad input.

mod support;

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use redis::AsyncCommands;
use redis_mutex::{Error, Lock, Locks, Semaphore, WaitPolicy};
use support::{Monitor, RedisServer, eventually};

const CONTENDER_URL_ENV: &str = "REDIS_MUTEX_SEMAPHORE_URL";
const KEY: &str = "sem:api";
const INSIDE: &str = "sem:inside";
const MAX_INSIDE: &str = "sem:max-inside";
const OVERLAPS: &str = "sem:overlaps";
const SECTIONS: &str = "sem:sections";
const PERMITS: u32 = 3;
const TASKS_PER_PROCESS: usize = 8;
const PROCESSES: usize = 3;
const SECTIONS_PER_TASK: u32 = 5;

/// Records the most holders seen inside at once, in Redis.
const RECORD_MAX_LUA: &str = r#"
local inside = redis.call("INCR", KEYS[1])
local max = tonumber(redis.call("GET", KEYS[2]) or "0")
if inside > max then redis.call("SET", KEYS[2], inside) end
return inside
"#;

async fn contend(
    semaphore: Semaphore,
    mut data: redis::aio::MultiplexedConnection,
    local: Arc<AtomicU32>,
) {
    let record = redis::Script::new(RECORD_MAX_LUA);
    for _ in 0..SECTIONS_PER_TASK {
        let permit = semaphore.acquire().await.unwrap();
        let inside: u32 = record
            .key(INSIDE)
            .key(MAX_INSIDE)
            .invoke_async(&mut data)
            .await
            .unwrap();
        let here = local.fetch_add(1, Ordering::SeqCst) + 1;
        if inside > PERMITS || here > PERMITS {
            let _: i64 = data.incr(OVERLAPS, 1).await.unwrap();
        }
        let pause = rand::rng().random_range(10..=60u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        local.fetch_sub(1, Ordering::SeqCst);
        let _: i64 = data.decr(INSIDE, 1).await.unwrap();
        let _: i64 = data.incr(SECTIONS, 1).await.unwrap();
        permit
            .release()
            .await
            .expect("the permit (20 s) outlives every section");
    }
}

async fn run_contenders(url: &str) {
    let semaphore = Semaphore::builder(KEY, PERMITS)
        .ttl(Duration::from_secs(20))
        .wait(WaitPolicy::timeout(Duration::from_secs(120)))
        .connect(url)
        .await
        .unwrap();
    let data = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let local = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..TASKS_PER_PROCESS)
        .map(|_| tokio::spawn(contend(semaphore.clone(), data.clone(), local.clone())))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn spawn_process(test: &str, url: &str) -> Child {
    support::ignored_test_process(test)
        .env(CONTENDER_URL_ENV, url)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_the_permits_inside_across_tasks_and_processes() {
    let server = RedisServer::start();
    let url = server.url();
    let mut children: Vec<Child> = (1..PROCESSES)
        .map(|_| spawn_process("contender_process", &url))
        .collect();
    let started = Instant::now();
    run_contenders(&url).await;
    for child in &mut children {
        let status = tokio::task::block_in_place(|| child.wait().unwrap());
        assert!(status.success(), "a contender process failed: {status}");
    }
    assert_eq!(
        server.get(OVERLAPS),
        None,
        "more than {PERMITS} were inside at once"
    );
    let sections = (PROCESSES * TASKS_PER_PROCESS) as u32 * SECTIONS_PER_TASK;
    assert_eq!(
        server.get(SECTIONS),
        Some(sections.to_string()),
        "every task got its permits"
    );
    assert_eq!(
        server.get(MAX_INSIDE),
        Some(PERMITS.to_string()),
        "the permits were used together"
    );
    assert!(!server.exists(KEY), "nothing left once all released");
    eprintln!("{sections} sections by 24 tasks in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a separate process by never_more_than_the_permits_inside_across_tasks_and_processes"]
async fn contender_process() {
    let url = std::env::var(CONTENDER_URL_ENV).expect("run by the semaphore test");
    run_contenders(&url).await;
}

const KILLED_TTL: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a separate process by a_sigkilled_holders_permits_free_themselves_within_their_ttl"]
async fn holder_process() {
    let url = std::env::var(CONTENDER_URL_ENV).expect("run by the SIGKILL test");
    let semaphore = Semaphore::builder("sem:killed", 2)
        .ttl(KILLED_TTL)
        .auto_renew(true)
        .connect(url.as_str())
        .await
        .unwrap();
    let _permits = semaphore.acquire_many(2).await.unwrap();
    let mut data = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = data.set("sem:killed:ready", 1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

/// A holder that renews its permits forever is SIGKILLed: its permits free
/// themselves on the server's clock within their TTL, and a waiter (whose
/// own backoff would poll only every 5 s) takes one at the earliest expiry
/// the server reported, not at its next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_holders_permits_free_themselves_within_their_ttl() {
    let server = RedisServer::start();
    let mut child = spawn_process("holder_process", &server.url());
    eventually(
        Duration::from_secs(20),
        "the holder took its permits",
        || server.exists("sem:killed:ready"),
    )
    .await;
    let semaphore = Semaphore::builder("sem:killed", 2)
        .wait(
            WaitPolicy::timeout(Duration::from_secs(20))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        )
        .connect(server.url())
        .await
        .unwrap();
    // Renewed past its TTL while the holder lives.
    tokio::time::sleep(KILLED_TTL * 2).await;
    assert!(semaphore.try_acquire().await.unwrap().is_none());
    assert_eq!(semaphore.in_use().await.unwrap(), 2);
    let waiter = {
        let semaphore = semaphore.clone();
        tokio::spawn(async move { semaphore.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    tokio::task::block_in_place(|| child.wait().unwrap());
    let permit = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter hung")
        .unwrap()
        .unwrap();
    let took = killed.elapsed();
    assert!(
        took <= KILLED_TTL + Duration::from_millis(700),
        "took {took:?}"
    );
    assert_eq!(semaphore.in_use().await.unwrap(), 1);
    permit.release().await.unwrap();
    assert!(
        !server.exists("sem:killed"),
        "the set is gone with its last permit"
    );
}

/// The scripts carry only the TTL, the limit and counts: no client time
/// reaches the server, so clients whose clocks disagree cannot change the
/// count; the expiry is computed from `TIME` on the server.
#[tokio::test]
async fn no_client_time_is_sent_and_the_server_clock_is_read() {
    let server = RedisServer::start();
    let semaphore = Semaphore::builder("sem:clock", 2)
        .connect(server.url())
        .await
        .unwrap();
    // Once to load the scripts (a first EVALSHA answers NOSCRIPT), then
    // watched.
    let cycle = || async {
        let permit = semaphore.acquire().await.unwrap();
        permit.extend(Duration::from_secs(5)).await.unwrap();
        assert!(permit.is_held().await.unwrap());
        assert_eq!(semaphore.in_use().await.unwrap(), 1);
        permit.release().await.unwrap();
    };
    cycle().await;
    let monitor = Monitor::start(&server);
    cycle().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = monitor.lines();
    let calls: Vec<&String> = lines
        .iter()
        .filter(|l| l.to_lowercase().contains("\"evalsha\""))
        .collect();
    assert_eq!(calls.len(), 5, "{lines:#?}");
    for line in &calls {
        // Arguments after the client address: a number of 10 digits or more
        // would be a time.
        let args = &line[line.find(']').unwrap()..];
        for arg in args
            .split('"')
            .filter(|a| a.chars().all(|c| c.is_ascii_digit()) && !a.is_empty())
        {
            let value: u128 = arg.parse().unwrap();
            assert!(
                value < 1_000_000_000,
                "a time-like argument {value} in {line}"
            );
        }
    }
    let times = lines
        .iter()
        .filter(|l| l.contains("[0 lua] \"TIME\""))
        .count();
    assert_eq!(times, 5, "each script read the server's clock");
}

#[tokio::test]
async fn renewal_keeps_a_permit_across_five_ttls_and_a_lost_one_fires_lost() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(300);
    let semaphore = Semaphore::builder("sem:renew", 1)
        .ttl(ttl)
        .auto_renew(true)
        .connect(server.url())
        .await
        .unwrap();
    let permit = semaphore.acquire().await.unwrap();
    tokio::time::sleep(ttl * 5).await;
    assert!(!permit.is_lost());
    assert!(permit.is_held().await.unwrap());
    assert!(
        semaphore.try_acquire().await.unwrap().is_none(),
        "still the one permit"
    );
    // Someone removes it behind our back: the next renewal finds it gone.
    server.cmd(&["DEL", "sem:renew"]);
    tokio::time::timeout(ttl * 2, permit.lost())
        .await
        .expect("lost() fired");
    assert!(matches!(permit.release().await, Err(Error::NotHeld { .. })));
}

/// A permit that expired among live ones (so the set itself lives on):
/// counted for nobody, pruned by the next acquire, never revived by an
/// extend, reported not held, and its late release leaves the others alone.
#[tokio::test]
async fn an_expired_permit_is_not_revived_and_is_reported_not_held() {
    let server = RedisServer::start();
    let semaphore = Semaphore::builder("sem:expired", 2)
        .ttl(Duration::from_millis(100))
        .connect(server.url())
        .await
        .unwrap();
    let long = semaphore
        .with_ttl(Duration::from_secs(30))
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let permit = semaphore.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        server.exists("sem:expired"),
        "the set lives on with the long permit"
    );
    assert!(!permit.is_held().await.unwrap());
    assert!(matches!(
        permit.extend(Duration::from_secs(5)).await,
        Err(Error::NotHeld { .. })
    ));
    assert_eq!(semaphore.in_use().await.unwrap(), 1);
    let next = semaphore
        .try_acquire()
        .await
        .unwrap()
        .expect("the expired permit counts for nobody");
    assert!(matches!(permit.release().await, Err(Error::NotHeld { .. })));
    assert!(
        next.is_held().await.unwrap(),
        "the late release left the new permit alone"
    );
    assert!(long.is_held().await.unwrap());
    next.release().await.unwrap();
    long.release().await.unwrap();
}

/// Acquires dropped at every point of their life, uncontended and while
/// waiting on a full semaphore: no permit is left taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_storm_leaks_no_permit() {
    let server = RedisServer::start();
    let semaphore = Semaphore::builder("sem:cancel", 3)
        .ttl(Duration::from_secs(60))
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .connect(server.url())
        .await
        .unwrap();
    let (mut acquired, mut cut) = (0, 0);
    for i in 0..300u32 {
        tokio::select! {
            biased;
            _ = tokio::time::sleep(Duration::from_micros(rand::rng().random_range(0..600))) => cut += 1,
            permit = semaphore.acquire_many(1 + i % 3) => {
                acquired += 1;
                permit.unwrap().release().await.unwrap();
            }
        }
    }
    assert!(acquired > 0 && cut > 0, "{acquired} acquired, {cut} cut");
    // Waiting acquires on a full semaphore, dropped at random while the
    // holders come and go.
    let holders: Vec<_> = futures_of(&semaphore, 3).await;
    let mut waiters = Vec::new();
    for _ in 0..40 {
        let semaphore = semaphore.clone();
        let cut_after = Duration::from_millis(rand::rng().random_range(0..300));
        waiters.push(tokio::spawn(async move {
            if let Ok(Ok(permit)) = tokio::time::timeout(cut_after, semaphore.acquire()).await {
                // Dropped without release: given back in the background.
                drop(permit);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for holder in holders {
        holder.release().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for waiter in waiters {
        waiter.await.unwrap();
    }
    redis_mutex::flush_releases(Duration::from_secs(5)).await;
    let semaphore2 = semaphore.clone();
    let mut in_use = u32::MAX;
    for _ in 0..100 {
        in_use = semaphore2.in_use().await.unwrap();
        if in_use == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(in_use, 0, "a cancelled acquire left a permit taken");
    assert!(!server.exists("sem:cancel"));
}

async fn futures_of(semaphore: &Semaphore, n: usize) -> Vec<redis_mutex::Permit> {
    let mut permits = Vec::new();
    for _ in 0..n {
        permits.push(semaphore.acquire().await.unwrap());
    }
    permits
}

/// A release wakes a waiter through pub/sub at once, though its backoff
/// would poll only every 5 s and the holder's TTL is 30 s.
#[tokio::test]
async fn a_release_wakes_a_waiter_at_once() {
    let server = RedisServer::start();
    let semaphore = Semaphore::builder("sem:wake", 2)
        .ttl(Duration::from_secs(30))
        .wait(
            WaitPolicy::timeout(Duration::from_secs(20))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
        )
        .connect(server.url())
        .await
        .unwrap();
    let holders = futures_of(&semaphore, 2).await;
    let waiter = {
        let semaphore = semaphore.clone();
        tokio::spawn(async move { semaphore.acquire().await.unwrap() })
    };
    eventually(Duration::from_secs(5), "the waiter subscribed", || {
        support::subscribers(&server, "{sem:wake}:released") == 1
    })
    .await;
    // Waiting, it neither spins nor polls: it sleeps until the release
    // (after the subscription it tries once more, and asks for the
    // holder: a spinning waiter sends hundreds).
    server.reset_stats();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = server.command_calls("evalsha");
    assert!(sent <= 4, "{sent} scripts sent while waiting 500 ms");
    let mut holders = holders.into_iter();
    let released = Instant::now();
    holders.next().unwrap().release().await.unwrap();
    let permit = support::woken_at_once(released, waiter).await;
    permit.release().await.unwrap();
}

#[tokio::test]
async fn many_permits_at_once_are_all_or_nothing() {
    let server = RedisServer::start();
    let semaphore = Semaphore::builder("sem:many", 5)
        .connect(server.url())
        .await
        .unwrap();
    let three = semaphore.acquire_many(3).await.unwrap();
    assert_eq!(three.permits(), 3);
    assert!(semaphore.try_acquire_many(3).await.unwrap().is_none());
    assert_eq!(
        semaphore.in_use().await.unwrap(),
        3,
        "a refused acquire took nothing"
    );
    let two = semaphore
        .try_acquire_many(2)
        .await
        .unwrap()
        .expect("two were free");
    assert!(semaphore.try_acquire().await.unwrap().is_none());
    three.release().await.unwrap();
    assert_eq!(semaphore.in_use().await.unwrap(), 2);
    let zcard: u32 = redis::from_redis_value(server.cmd(&["ZCARD", "sem:many"])).unwrap();
    assert_eq!(
        zcard, 2,
        "a hold of n permits is n members, all removed on release"
    );
    two.extend(Duration::from_secs(60)).await.unwrap();
    let scores: Vec<String> =
        redis::from_redis_value(server.cmd(&["ZRANGE", "sem:many", "0", "-1", "WITHSCORES"]))
            .unwrap();
    assert_eq!(scores[1], scores[3], "extended together");
    assert!(
        server.pttl("sem:many") > 50_000,
        "the set lives as long as its last permit"
    );
    two.release().await.unwrap();
    for bad in [0, 6] {
        match semaphore.acquire_many(bad).await {
            Err(Error::InvalidArgument {
                field: "permits", ..
            }) => {}
            other => panic!("{bad} permits: {other:?}"),
        }
    }
}

/// Lowering the limit revokes no live permit; new acquires wait until the
/// live permits are below it. Raising it lets new acquires in at once.
#[tokio::test]
async fn changing_the_limit_affects_new_acquires_only() {
    let server = RedisServer::start();
    let three = Semaphore::builder("sem:limit", 3)
        .connect(server.url())
        .await
        .unwrap();
    let held = futures_of(&three, 3).await;
    let one = three.with_permits(1).unwrap();
    assert_eq!(one.permits(), 1);
    assert!(one.try_acquire().await.unwrap().is_none());
    for permit in &held {
        permit.extend(Duration::from_secs(30)).await.unwrap();
    }
    let four = three.with_permits(4).unwrap();
    let fourth = four
        .try_acquire()
        .await
        .unwrap()
        .expect("room under the raised limit");
    let mut held = held.into_iter();
    for permit in held.by_ref().take(3) {
        permit.release().await.unwrap();
    }
    assert_eq!(one.in_use().await.unwrap(), 1);
    assert!(
        one.try_acquire().await.unwrap().is_none(),
        "one live permit fills a limit of 1"
    );
    fourth.release().await.unwrap();
    one.try_acquire()
        .await
        .unwrap()
        .expect("free under the lowered limit")
        .release()
        .await
        .unwrap();
    assert!(matches!(
        three.with_permits(0),
        Err(Error::InvalidArgument {
            field: "permits",
            ..
        })
    ));
}

/// An uncontended acquire + release is two commands on the server.
#[tokio::test]
async fn an_uncontended_cycle_is_two_commands() {
    let server = RedisServer::start();
    let semaphore = Semaphore::builder("sem:cost", 2)
        .connect(server.url())
        .await
        .unwrap();
    semaphore.acquire().await.unwrap().release().await.unwrap();
    server.reset_stats();
    for _ in 0..10 {
        semaphore.acquire().await.unwrap().release().await.unwrap();
    }
    assert_eq!(server.command_calls("evalsha"), 20);
    for other in ["eval", "script", "get", "pttl", "set"] {
        assert_eq!(server.command_calls(other), 0, "{other}");
    }
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let server = RedisServer::start();
    let invalid = |result: redis_mutex::Result<Semaphore>, field: &str| match result {
        Err(Error::InvalidArgument { field: f, reason }) if f == field => reason,
        other => panic!("{field}: {other:?}"),
    };
    let reason = invalid(
        Semaphore::builder("s", 0).connect(server.url()).await,
        "permits",
    );
    assert!(reason.contains("at least 1"), "{reason}");
    invalid(
        Semaphore::builder("s", redis_mutex::MAX_PERMITS + 1)
            .connect(server.url())
            .await,
        "permits",
    );
    invalid(Semaphore::builder("", 2).connect(server.url()).await, "key");
    invalid(
        Semaphore::builder("s", 2)
            .ttl(Duration::ZERO)
            .connect(server.url())
            .await,
        "ttl",
    );
    invalid(
        Semaphore::builder("s", 2)
            .fencing(true)
            .connect(server.url())
            .await,
        "fencing",
    );

    // A lock's key used as a semaphore, and a semaphore's key as a lock.
    let lock = Lock::builder("taken").connect(server.url()).await.unwrap();
    let _guard = lock.acquire().await.unwrap();
    let on_lock = Semaphore::builder("taken", 2)
        .connect(server.url())
        .await
        .unwrap();
    let error = on_lock.acquire().await.unwrap_err();
    assert!(matches!(error, Error::WrongType { .. }), "{error:?}");
    assert!(error.to_string().contains("semaphore"), "{error}");
    assert!(matches!(
        on_lock.in_use().await,
        Err(Error::WrongType { .. })
    ));
    let semaphore = Semaphore::builder("counted", 2)
        .connect(server.url())
        .await
        .unwrap();
    let _permit = semaphore.acquire().await.unwrap();
    let error = Lock::builder("counted")
        .connect(server.url())
        .await
        .unwrap()
        .acquire()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::WrongType { .. }), "{error:?}");

    // A server that is down: a typed error, not a panic.
    let down = Semaphore::builder("s", 2)
        .build(server.conn().await)
        .unwrap();
    server.stop();
    let error = down.acquire().await.unwrap_err();
    assert!(!matches!(error, Error::Busy { .. }), "{error:?}");
}

#[tokio::test]
async fn a_factory_hands_out_semaphores_but_a_redlock_refuses_them() {
    let server = RedisServer::start();
    let locks = Locks::builder()
        .prefix("app:")
        .connect(server.url())
        .await
        .unwrap();
    let semaphore = locks.semaphore("exports", 2).unwrap();
    assert_eq!(semaphore.key(), "app:exports");
    let permit = semaphore.acquire().await.unwrap();
    assert!(server.exists("app:exports"));
    permit.release().await.unwrap();
    assert!(matches!(
        locks.semaphore("exports", 0),
        Err(Error::InvalidArgument {
            field: "permits",
            ..
        })
    ));

    let servers = [
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    ];
    let quorum = Locks::builder()
        .connect_quorum(servers.iter().map(|s| s.url()))
        .await
        .unwrap();
    match quorum.semaphore("exports", 2) {
        Err(Error::InvalidArgument {
            field: "servers",
            reason,
        }) => {
            assert!(reason.contains("Redlock"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn run_holds_a_renewed_permit_for_the_work() {
    let server = RedisServer::start();
    let semaphore = Semaphore::builder("sem:run", 1)
        .ttl(Duration::from_millis(200))
        .connect(server.url())
        .await
        .unwrap();
    let other = semaphore.clone();
    let value = semaphore
        .run(|_lease| async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            other.try_acquire().await.unwrap().is_none()
        })
        .await
        .unwrap();
    assert!(value, "the permit was held (renewed) through the work");
    assert_eq!(semaphore.in_use().await.unwrap(), 0);
}

/// The kind's contract, on the scripts themselves (the crate's own Lua,
/// sent raw): an acquire resent with the same token answers "ours already"
/// and takes nothing more.
#[tokio::test]
async fn a_resent_acquire_is_answered_ours_already_and_takes_no_second_permit() {
    let server = RedisServer::start();
    let acquire = redis::Script::new(
        &[
            include_str!("../src/lua/server_now.lua"),
            include_str!("../src/lua/permit_members.lua"),
            include_str!("../src/lua/permit_acquire.lua"),
        ]
        .concat(),
    );
    let mut connection = server.conn().await;
    for expected in [1, 2, 2] {
        let answer: i64 = acquire
            .key("sem:resend")
            .arg("a-token")
            .arg(30_000)
            .arg(5)
            .arg(2)
            .invoke_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(answer, expected);
    }
    let members: u32 = redis::from_redis_value(server.cmd(&["ZCARD", "sem:resend"])).unwrap();
    assert_eq!(members, 2, "one hold of 2 permits");
}

/// A semaphore whose holders all vanished without releasing leaves no key
/// behind once their permits expired: the set expires with its last member.
#[tokio::test]
async fn an_abandoned_semaphore_leaves_no_key_behind() {
    let server = RedisServer::start();
    let semaphore = Semaphore::builder("sem:abandoned", 3)
        .ttl(Duration::from_millis(200))
        .connect(server.url())
        .await
        .unwrap();
    for _ in 0..3 {
        // As if the holder's process died: no release, no background one.
        std::mem::forget(semaphore.acquire().await.unwrap());
    }
    assert!(server.pttl("sem:abandoned") > 0, "the set has an expiry");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.exists("sem:abandoned"),
        "the set expired with its permits"
    );
}
