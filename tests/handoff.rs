//! Fast handoff through pub/sub: waiting `acquire`s are woken by the
//! holder's release instead of polling, and still get the lock when no
//! release is announced (the holder's TTL lapses, a foreign client deletes
//! the key) or when the subscription connection is killed.
//!
//! Waiters here mostly use a "sluggish" wait policy that would poll only
//! every 5 s, so that getting the lock promptly can only come from a
//! notification (or the holder's TTL), never from polling.

mod support;

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis_mutex::{Lock, WaitPolicy};
use support::proxy::{Mode, Proxy};
use support::{RedisServer, eventually, subscribers, time_handoff, time_handoffs};

/// The URL, key and hold time for a contender process started by the test.
const CONTENDER_URL_ENV: &str = "REDIS_MUTEX_HANDOFF_URL";
const CONTENDER_HOLD_ENV: &str = "REDIS_MUTEX_HANDOFF_HOLD_MS";

/// A wait policy that polls only every 5 s (and waits up to 30 s).
fn sluggish() -> WaitPolicy {
    WaitPolicy::timeout(Duration::from_secs(30))
        .backoff(Duration::from_secs(5), Duration::from_secs(5))
}

/// A lock on `key` over a fresh multiplexed connection, woken through
/// `client`'s server.
async fn notified_lock(client: &redis::Client, key: &str, ttl: Duration, wait: WaitPolicy) -> Lock {
    let connection = client.get_multiplexed_async_connection().await.unwrap();
    Lock::builder(key)
        .ttl(ttl)
        .wait(wait)
        .notify_with(client)
        .build(connection)
        .unwrap()
}

// --------------------------------------------------------------------------
// Contention: tasks in this process and in other processes on one key
// --------------------------------------------------------------------------

const KEY: &str = "handoff:lock";
const CHANNEL: &str = "{handoff:lock}:released";
/// A hash with the shared counter and the "inside" marker. Its commands
/// (HINCRBY, HGET, HSET) are not counted with the lock's SET and GET.
const DATA: &str = "handoff:data";
const TASKS: usize = 8;
const PROCESSES: usize = 2;
const TASKS_PER_PROCESS: usize = 2;
const CONTENDERS: usize = TASKS + PROCESSES * TASKS_PER_PROCESS;

async fn hincrby(data: &mut MultiplexedConnection, field: &str, by: i64) -> i64 {
    redis::cmd("HINCRBY")
        .arg(DATA)
        .arg(field)
        .arg(by)
        .query_async(data)
        .await
        .unwrap()
}

/// One critical section: a non-atomic read-modify-write of the counter
/// around a hold of `hold`, with the "inside" marker checked.
async fn section(lock: &Lock, data: &mut MultiplexedConnection, local: &AtomicU32, hold: Duration) {
    let guard = lock.acquire().await.unwrap();
    let inside = hincrby(data, "inside", 1).await;
    let local_inside = local.fetch_add(1, Ordering::SeqCst) + 1;
    if inside != 1 || local_inside != 1 {
        hincrby(data, "overlaps", 1).await;
    }
    let value: Option<u64> = redis::cmd("HGET")
        .arg(DATA)
        .arg("counter")
        .query_async(data)
        .await
        .unwrap();
    tokio::time::sleep(hold).await;
    let _: () = redis::cmd("HSET")
        .arg(DATA)
        .arg("counter")
        .arg(value.unwrap_or(0) + 1)
        .query_async(data)
        .await
        .unwrap();
    local.fetch_sub(1, Ordering::SeqCst);
    hincrby(data, "inside", -1).await;
    guard
        .release()
        .await
        .expect("the lease (10 s) outlives every section");
}

/// `tasks` contenders of this process, one section each, sharing one lock.
async fn run_contenders(url: &str, tasks: usize, hold: Duration) {
    let client = redis::Client::open(url).unwrap();
    let lock = notified_lock(
        &client,
        KEY,
        Duration::from_secs(10),
        WaitPolicy::timeout(Duration::from_secs(60)),
    )
    .await;
    let data = client.get_multiplexed_async_connection().await.unwrap();
    let local = Arc::new(AtomicU32::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (lock, mut data, local) = (lock.clone(), data.clone(), local.clone());
            tokio::spawn(async move {
                hincrby(&mut data, "ready", 1).await;
                section(&lock, &mut data, &local, hold).await;
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
}

fn spawn_contender_process(url: &str, hold: Duration) -> Child {
    support::ignored_test_process("handoff_contender_process")
        .env(CONTENDER_URL_ENV, url)
        .env(CONTENDER_HOLD_ENV, hold.as_millis().to_string())
        .spawn()
        .unwrap()
}

/// What the server ran while the contenders took the lock one after another.
#[derive(Debug)]
struct Round {
    hold: Duration,
    handoffs: u64,
    sets: u64,
    inspections: u64,
    elapsed: Duration,
}

impl Round {
    fn sets_per_handoff(&self) -> f64 {
        self.sets as f64 / self.handoffs as f64
    }
}

/// Holds the lock until every contender (in this process and in the others)
/// waits for it, then lets them through one by one, each holding `hold`.
async fn round(server: &RedisServer, hold: Duration) -> Round {
    server.cmd(&["DEL", DATA]);
    let client = server.client();
    let holder = notified_lock(&client, KEY, Duration::from_secs(10), WaitPolicy::no_wait()).await;
    let first = holder.acquire().await.unwrap();

    let url = server.url();
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn_contender_process(&url, hold))
        .collect();
    let in_process = tokio::spawn(async move { run_contenders(&url, TASKS, hold).await });
    // Everyone asked, and each process (this one and the others) has its
    // subscription up; a little more for the last ones to settle.
    eventually(Duration::from_secs(20), "all contenders wait", || {
        let ready: Option<String> =
            redis::from_redis_value(server.cmd(&["HGET", DATA, "ready"])).unwrap();
        ready.as_deref() == Some(&CONTENDERS.to_string())
            && subscribers(server, CHANNEL) == 1 + PROCESSES as i64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.reset_stats();
    let started = Instant::now();
    first.release().await.unwrap();
    in_process.await.unwrap();
    for child in &mut children {
        let status = tokio::task::block_in_place(|| child.wait().unwrap());
        assert!(status.success(), "a contender process failed: {status}");
    }
    let elapsed = started.elapsed();

    let field = |name: &str| -> Option<String> {
        redis::from_redis_value(server.cmd(&["HGET", DATA, name])).unwrap()
    };
    assert_eq!(field("overlaps"), None, "two holders were inside at once");
    assert_eq!(
        field("counter"),
        Some(CONTENDERS.to_string()),
        "every contender got the lock once, without lost updates"
    );
    assert_eq!(field("inside").as_deref(), Some("0"));
    assert!(!server.exists(KEY), "released at the end");
    Round {
        hold,
        handoffs: CONTENDERS as u64,
        sets: server.command_calls("set"),
        inspections: server.command_calls("pttl"),
        elapsed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_in_tasks_and_processes_are_woken_not_polling() {
    let server = RedisServer::start();
    let short = round(&server, Duration::from_millis(20)).await;
    let long = round(&server, Duration::from_millis(200)).await;
    eprintln!("{short:?}\n{long:?}");
    for round in [&short, &long] {
        // A release wakes one waiter per process (3 here): a SET each, an
        // inspection (GET + PTTL) for those that lose the race, and for the
        // winner's process one more waiter's SET and inspection, to learn
        // the new holder's expiry. At most 2 SETs per process, whatever the
        // number of waiters; polling would add a SET per waiter per backoff
        // step (up to 100 ms here).
        let processes = (PROCESSES + 1) as f64;
        assert!(
            round.sets_per_handoff() <= 2.0 * processes + 1.0,
            "{:.1} SETs per handoff with {CONTENDERS} contenders in {processes} processes: {round:?}",
            round.sets_per_handoff()
        );
        assert!(round.inspections <= round.sets, "{round:?}");
        assert!(
            round.elapsed < round.hold * CONTENDERS as u32 + Duration::from_secs(2),
            "handoffs were slow: {round:?}"
        );
    }
    // And not proportional to the wait: ten times the hold, about the same
    // commands per handoff.
    assert!(
        long.sets_per_handoff() <= 1.5 * short.sets_per_handoff() + 1.0,
        "SETs per handoff grew with the hold time: {short:?} vs {long:?}"
    );
}

/// The body of a contender process; run by the test above through
/// `current_exe()`, ignored in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started as a separate process by waiters_in_tasks_and_processes_are_woken_not_polling"]
async fn handoff_contender_process() {
    let url = std::env::var(CONTENDER_URL_ENV).expect("run by the handoff test");
    let hold: u64 = std::env::var(CONTENDER_HOLD_ENV).unwrap().parse().unwrap();
    run_contenders(&url, TASKS_PER_PROCESS, Duration::from_millis(hold)).await;
}

// --------------------------------------------------------------------------
// No release announced
// --------------------------------------------------------------------------

#[tokio::test]
async fn a_holder_that_never_releases_is_waited_out_by_its_ttl() {
    let server = RedisServer::start();
    let client = server.client();
    let ttl = Duration::from_millis(600);
    let holder = notified_lock(&client, "handoff:crashed", ttl, WaitPolicy::no_wait()).await;
    let waiter = notified_lock(&client, "handoff:crashed", ttl, sluggish()).await;

    let started = Instant::now();
    // A holder that crashed: it never releases, the key expires.
    std::mem::forget(holder.acquire().await.unwrap());
    server.reset_stats();
    let guard = waiter.acquire().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= ttl - Duration::from_millis(20) && waited < ttl + Duration::from_millis(300),
        "waited {waited:?} for a lock whose TTL was {ttl:?}"
    );
    // A try, one after the subscription, one at the expiry; no polling.
    assert!(
        server.command_calls("set") <= 4,
        "{}",
        server.command_calls("set")
    );
    guard.release().await.unwrap();
}

#[tokio::test]
async fn a_waiter_on_a_renewing_holder_asks_about_once_per_ttl() {
    let server = RedisServer::start();
    let client = server.client();
    let ttl = Duration::from_millis(300);
    let hold = Duration::from_secs(3);
    let holder = notified_lock(&client, "handoff:renewed", ttl, WaitPolicy::no_wait()).await;
    let waiter = notified_lock(&client, "handoff:renewed", ttl, sluggish()).await;
    let mut guard = holder.acquire().await.unwrap();
    guard.auto_renew().unwrap();
    server.reset_stats();
    let waiting = tokio::spawn(async move { waiter.acquire().await.map(|g| g.key().to_owned()) });
    tokio::time::sleep(hold).await;
    let (sets, looks) = (server.command_calls("set"), server.command_calls("pttl"));
    guard.release().await.unwrap();
    waiting.await.unwrap().unwrap();
    // What the README states: one SET and one GET + PTTL each time the
    // expiry it was told comes, every 2/3 to 1 TTL since renewal extends at
    // a third of it (plus the first try and the one after subscribing): not
    // one per backoff step, and not one per renewal.
    let ttls = (hold.as_millis() / ttl.as_millis()) as u64;
    let bound = ttls * 3 / 2 + 3;
    assert!(
        sets <= bound && looks <= bound,
        "{sets} SETs and {looks} PTTLs over {ttls} TTLs"
    );
}

/// Takes `key` as another library would (`SET NX PX`, a token of another
/// format) and deletes it after `hold` with a plain `DEL`: no publish.
async fn foreign_hold(server: &RedisServer, key: &str, token: &str, ttl: Duration, hold: Duration) {
    let mut foreign = server.conn().await;
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .query_async(&mut foreign)
        .await
        .unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
    let key = key.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        let _: i64 = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut foreign)
            .await
            .unwrap();
    });
}

#[tokio::test]
async fn a_foreign_holder_that_never_publishes_still_hands_over() {
    let server = RedisServer::start();
    let client = server.client();
    let redis_py_token = "3f2b8c1e9a7d4e6f8b0c2d4e6f8a0b1c";

    // Another library's token: the waiter polls for it under its policy (the
    // default backs off to 100 ms), so it gets the lock soon after the DEL,
    // long before the TTL.
    let key = "handoff:foreign";
    let waiter = notified_lock(&client, key, Duration::from_secs(10), WaitPolicy::default()).await;
    let started = Instant::now();
    foreign_hold(
        &server,
        key,
        redis_py_token,
        Duration::from_secs(3),
        Duration::from_millis(300),
    )
    .await;
    let guard = waiter.acquire().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(700),
        "waited {waited:?} for a foreign holder that deleted the key after 300 ms"
    );
    guard.release().await.unwrap();

    // However slowly the waiter would poll, the foreign holder's TTL bounds
    // its wait; and the same for a holder whose token looks like ours but
    // that deletes without publishing.
    for (token, key) in [
        (redis_py_token, "handoff:foreign-slow"),
        (
            "0123456789abcdef0123456789abcdef01234567",
            "handoff:own-format",
        ),
    ] {
        let ttl = Duration::from_millis(800);
        let waiter = notified_lock(&client, key, Duration::from_secs(10), sluggish()).await;
        let started = Instant::now();
        foreign_hold(&server, key, token, ttl, Duration::from_millis(200)).await;
        let guard = waiter.acquire().await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited < ttl + Duration::from_millis(300),
            "waited {waited:?} for a holder ({token}) with a TTL of {ttl:?}"
        );
        guard.release().await.unwrap();
    }
}

/// A release wakes one waiter per process. When that one takes the lock,
/// the next is woken to look at the new holder: here the new holder has a
/// short TTL and never releases, and the other waiter must not go on
/// waiting for the previous holder's (long) expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_local_handoff_the_other_waiters_follow_the_new_holders_ttl() {
    let waited = waited_after_a_local_crash("handoff:next", Duration::from_millis(300), None).await;
    assert!(
        waited < Duration::from_millis(300 + 300),
        "the new holder's TTL was 300 ms, the waiter got the lock after {waited:?}"
    );
}

/// How long after a local holder took the lock from a release, with
/// `ttl`, extended it to `extended` if given and crashed (never released),
/// another local waiter got it.
async fn waited_after_a_local_crash(
    key: &str,
    ttl: Duration,
    extended: Option<Duration>,
) -> Duration {
    let server = RedisServer::start();
    let client = server.client();
    let first = notified_lock(&client, key, Duration::from_secs(10), WaitPolicy::no_wait()).await;
    let short = notified_lock(&client, key, ttl, sluggish()).await;
    let patient = notified_lock(&client, key, Duration::from_secs(10), sluggish()).await;

    let holder = first.acquire().await.unwrap();
    let crashing = tokio::spawn(async move {
        // Queued first, so woken first; then it never releases.
        let guard = short.acquire().await.unwrap();
        let acquired = Instant::now();
        if let Some(extended) = extended {
            guard.extend(extended).await.unwrap();
        }
        std::mem::forget(guard);
        acquired
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(async move { patient.acquire().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    holder.release().await.unwrap();

    let crashed_holder_acquired = crashing.await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("the waiter went on waiting for the first holder's expiry (10 s)")
        .unwrap();
    let waited = crashed_holder_acquired.elapsed();
    guard.release().await.unwrap();
    waited
}

/// A local holder that extended its lease and then crashed: a waiter that
/// knew its first TTL tries when that runs out, is told the key is held by
/// that holder still, and must look how long (the extension), not wait a
/// whole TTL from then. (It waited `ttl` from the busy answer: a holder
/// whose key outlived the TTL this process gave it, by an extension, or by
/// the server's expiry rounding to the next whole millisecond, was waited
/// for twice.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_told_a_known_local_hold_outlived_its_ttl_looks_how_long() {
    let ttl = Duration::from_millis(300);
    let extended = Duration::from_millis(450);
    let waited = waited_after_a_local_crash("handoff:outlived", ttl, Some(extended)).await;
    assert!(
        waited < extended + Duration::from_millis(100),
        "the crashed holder extended its lease to {extended:?}, the waiter got the lock after {waited:?} \
         (a full TTL of {ttl:?} after its first expiry would be 600 ms)"
    );
}

/// `x` and `{x}` are two locks: each one's release wakes its own waiter,
/// at once, and not the other's. (Both channels were `{x}:released`: the
/// release of `{x}` woke the waiter of `x`, queued first, which found `x`
/// still held and told the waiter of `{x}` that its holder expires with the
/// holder of `x`; that waiter then slept to its deadline.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_differ_only_by_a_hash_tag_wake_their_own_waiters() {
    let server = RedisServer::start();
    let client = server.client();
    let ttl = Duration::from_secs(30);
    let plain = notified_lock(&client, "x", ttl, sluggish()).await;
    let tagged = notified_lock(&client, "{x}", ttl, sluggish()).await;
    let plain_holder = plain.acquire().await.unwrap();
    let tagged_holder = tagged.acquire().await.unwrap();
    server.reset_stats();
    let waiter = |lock: &Lock| {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap() })
    };
    // Each waiter looks at its holder (`PTTL`) once it listens: `x` first,
    // so that it is queued first.
    let plain_waiter = waiter(&plain);
    eventually(Duration::from_secs(5), "x listens", || {
        server.command_calls("pttl") == 1
    })
    .await;
    let tagged_waiter = waiter(&tagged);
    eventually(Duration::from_secs(5), "{x} listens", || {
        server.command_calls("pttl") == 2
    })
    .await;

    let (tagged_guard, took) = time_handoff(tagged_holder, tagged_waiter).await;
    assert!(took < Duration::from_millis(500), "{{x}} after {took:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!plain_waiter.is_finished(), "x is still held");
    let (plain_guard, took) = time_handoff(plain_holder, plain_waiter).await;
    assert!(took < Duration::from_millis(500), "x after {took:?}");
    plain_guard.release().await.unwrap();
    tagged_guard.release().await.unwrap();
}

/// What a waiter saw of the holder serves the process's other waiters only
/// until the next release it hears: here a release (announced) is followed
/// at once, in the same script, by a foreign holder with a short TTL. The
/// woken waiter's `SET` finds it busy and must look at the new holder
/// instead of sleeping to the old one's expiry (10 s; it polls only every
/// 5 s). Each look is a `PTTL` alone: the busy answer named the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_heard_makes_the_next_busy_waiter_look_again() {
    let server = RedisServer::start();
    let client = server.client();
    let key = "handoff:again";
    let lock = notified_lock(&client, key, Duration::from_secs(10), sluggish()).await;
    let _holder = lock.acquire().await.unwrap();
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap() })
    };
    eventually(Duration::from_secs(5), "the waiter looked", || {
        server.command_calls("pttl") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The busy `SET ... GET` named the holder: the look is a `PTTL` alone.
    assert_eq!(server.command_calls("get"), 0, "no GET to inspect");
    let taken_over = Instant::now();
    server.cmd(&[
        "EVAL",
        r#"redis.call("SET", KEYS[1], "foreign", "PX", 300) redis.call("PUBLISH", ARGV[1], "") return 1"#,
        "1",
        key,
        "{handoff:again}:released",
    ]);
    let guard = tokio::time::timeout(Duration::from_secs(3), waiter)
        .await
        .expect("the waiter slept to the old holder's expiry")
        .unwrap();
    let waited = taken_over.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    guard.release().await.unwrap();
}

/// A waiter that joins a key others in the process already wait on is
/// covered from its first attempt: one SET, then it waits (a waiter that
/// subscribes afresh needs a second try). No inspection: a waiter here saw
/// the holder since the last release, so its expiry is known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_waiters_on_a_live_channel_try_once() {
    let server = RedisServer::start();
    let client = server.client();
    let key = "handoff:join";
    let lock = notified_lock(&client, key, Duration::from_secs(10), sluggish()).await;
    let holder = lock.acquire().await.unwrap();
    let waiter = |lock: Lock| {
        tokio::spawn(async move { lock.acquire().await.unwrap().release().await.unwrap() })
    };
    let first = waiter(lock.clone());
    eventually(Duration::from_secs(5), "subscribed", || {
        subscribers(&server, "{handoff:join}:released") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.reset_stats();
    let joined = waiter(lock.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.command_calls("set"), 1);
    assert_eq!(
        server.command_calls("pttl"),
        0,
        "one inspection per busy period"
    );
    holder.release().await.unwrap();
    first.await.unwrap();
    joined.await.unwrap();
}

/// A release wakes one waiter of the process, and the one woken that takes
/// the lock keeps the wake-up: no second waiter tries (`SET`) or looks at
/// the new holder (`PTTL`), and the release costs the woken waiter's `SET`
/// alone. The others still follow the new holder's TTL (see
/// `after_a_local_handoff_the_other_waiters_follow_the_new_holders_ttl`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_release_wakes_one_local_waiter_and_the_winner_keeps_it() {
    let server = RedisServer::start();
    let client = server.client();
    let key = "handoff:one";
    let lock = notified_lock(&client, key, Duration::from_secs(10), sluggish()).await;
    let holder = lock.acquire().await.unwrap();
    let (won, mut first) = tokio::sync::mpsc::unbounded_channel();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (lock, won) = (lock.clone(), won.clone());
            tokio::spawn(async move {
                let guard = lock.acquire().await.unwrap();
                let _ = won.send(());
                // Held past the test's counting.
                tokio::time::sleep(Duration::from_millis(500)).await;
                guard.release().await.unwrap();
            })
        })
        .collect();
    eventually(Duration::from_secs(5), "all four tried", || {
        server.command_calls("set") >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.reset_stats();
    holder.release().await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), first.recv())
        .await
        .expect("a waiter was woken");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.command_calls("set"),
        1,
        "only the woken waiter tries"
    );
    assert_eq!(server.command_calls("pttl"), 0, "nobody inspects");
    for waiter in waiters {
        waiter.await.unwrap();
    }
}

/// A task here that takes the lock again right after its own release,
/// before the release is heard (this process hears its channel late, here
/// through a proxy that delays every push by 300 ms): the waiter woken by
/// that release finds the lock busy, named by the token a task here just
/// sent, so it knows the holder's TTL without asking (no `PTTL`). The new
/// holder's own acquire could not show it: the release heard after it made
/// what it showed stale. (It was the hundredth of a command above 6 per
/// handoff in the bench, with zero hold times.) The new holder never
/// releases: the waiter's sleep ends by that TTL, counted from its busy
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_answer_naming_a_token_sent_here_needs_no_inspection() {
    let server = RedisServer::start();
    let late = Proxy::to(&server);
    late.set(Mode::Delay(Duration::from_millis(300)));
    let hears_late = redis::Client::open(late.url()).unwrap();
    let key = "handoff:again-here";
    let lock = |ttl: Duration| {
        let server = &server;
        let hears_late = &hears_late;
        async move {
            Lock::builder(key)
                .ttl(ttl)
                .wait(sluggish())
                .notify_with(hears_late)
                .build(server.conn().await)
                .unwrap()
        }
    };
    let patient = lock(Duration::from_secs(10)).await;
    let short = lock(Duration::from_millis(600)).await;
    let holder = patient.acquire().await.unwrap();
    let waiter = {
        let patient = patient.clone();
        tokio::spawn(async move { patient.acquire().await.unwrap() })
    };
    eventually(
        Duration::from_secs(5),
        "the waiter subscribed and looked",
        || {
            subscribers(&server, "{handoff:again-here}:released") == 1
                && server.command_calls("pttl") == 1
        },
    )
    .await;
    // The confirmation comes 300 ms late: the waiter tries again then.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.reset_stats();

    holder.release().await.unwrap();
    // Never released: only its TTL (600 ms) ends it.
    std::mem::forget(short.acquire().await.unwrap());
    let taken = Instant::now();
    assert_eq!(server.command_calls("set"), 1, "taken again at once");
    eventually(Duration::from_secs(5), "the woken waiter tried", || {
        server.command_calls("set") == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.command_calls("pttl"),
        0,
        "the woken waiter asked for the TTL of a hold taken here"
    );
    assert!(!waiter.is_finished(), "the lock is held");

    let guard = tokio::time::timeout(Duration::from_secs(3), waiter)
        .await
        .expect("the waiter slept past the new holder's TTL (600 ms)")
        .unwrap();
    let waited = taken.elapsed();
    // Its answer came some 300 ms after the SET; it sleeps the TTL from then.
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_millis(600 + 300 + 500),
        "{waited:?}"
    );
    guard.release().await.unwrap();
}

// --------------------------------------------------------------------------
// The subscription connection
// --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_subscription_connection_loses_no_waiter_and_it_comes_back() {
    let server = RedisServer::start();
    let client = server.client();
    let key = "handoff:kill";
    let channel = "{handoff:kill}:released";
    // Built from a client: notified without asking.
    let lock = Lock::builder(key)
        .ttl(Duration::from_secs(10))
        .wait(sluggish())
        .client(&client)
        .await
        .unwrap();

    // Killed while 8 tasks wait, and the lock released right after: before
    // the subscription is back, so the release's message is lost.
    let holder = lock.acquire().await.unwrap();
    let waiters: Vec<_> = (0..8)
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
        subscribers(&server, channel) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let killed: i64 =
        redis::from_redis_value(server.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])).unwrap();
    assert_eq!(killed, 1);
    let took = time_handoffs(holder, waiters).await;
    // Polling every 5 s would take far longer.
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Killed again while one task waits: the subscription comes back by
    // itself, and the next release wakes the waiter at once.
    let holder = lock.acquire().await.unwrap();
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.acquire().await.unwrap() })
    };
    eventually(Duration::from_secs(5), "subscribed", || {
        subscribers(&server, channel) == 1
    })
    .await;
    let killed: i64 =
        redis::from_redis_value(server.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])).unwrap();
    assert_eq!(killed, 1);
    eventually(Duration::from_secs(2), "subscribed again", || {
        subscribers(&server, channel) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let released = Instant::now();
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter hung")
        .unwrap();
    let handoff = released.elapsed();
    assert!(
        handoff < Duration::from_millis(250),
        "handoff took {handoff:?}"
    );
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_that_give_up_or_are_dropped_leave_no_subscription() {
    let server = RedisServer::start();
    let client = server.client();
    let key = "handoff:leak";
    let channel = "{handoff:leak}:released";
    let lock = notified_lock(&client, key, Duration::from_secs(10), WaitPolicy::default()).await;
    let holder = lock.acquire().await.unwrap();

    let timing_out: Vec<_> = (0..10)
        .map(|i| {
            let lock = lock.clone();
            tokio::spawn(async move {
                let wait = Duration::from_millis(100 + 20 * i);
                assert!(lock.acquire_timeout(wait).await.unwrap_err().is_busy());
            })
        })
        .collect();
    let dropped: Vec<_> = (0..10)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move { lock.acquire().await })
        })
        .collect();
    eventually(Duration::from_secs(5), "subscribed", || {
        subscribers(&server, channel) == 1
    })
    .await;
    for task in dropped {
        task.abort();
    }
    for task in timing_out {
        task.await.unwrap();
    }
    // A mutex's channel lingers 3 s after its last waiter leaves (the
    // LINGER of directed wake-ups), then unsubscribes.
    eventually(Duration::from_secs(5), "unsubscribed", || {
        subscribers(&server, channel) == 0
    })
    .await;
    let channels: Vec<String> =
        redis::from_redis_value(server.cmd(&["PUBSUB", "CHANNELS"])).unwrap();
    assert!(channels.is_empty(), "{channels:?}");
    holder.release().await.unwrap();
}

/// The waiter's order of steps closes the gap between a busy answer and its
/// wait: it subscribes after its first busy answer, tries again once the
/// subscription is confirmed, and marks the channel's notifications as seen
/// before each try (see `src/wait.rs`). Here the holder releases at delays
/// spread over the waiter's first round trips (its first try, the subscribe,
/// the try after it, the inspection), many times; a release that fell into
/// a gap would leave the waiter to its 5 s polling or the 10 s TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_right_after_a_busy_answer_is_not_missed() {
    let server = RedisServer::start();
    let client = server.client();
    let key = "handoff:gap";
    let ttl = Duration::from_secs(10);
    let holder = notified_lock(&client, key, ttl, WaitPolicy::no_wait()).await;
    let waiter = notified_lock(&client, key, ttl, sluggish()).await;
    for i in 0..150u64 {
        let guard = holder.acquire().await.unwrap();
        let waiting = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.acquire().await.unwrap() })
        };
        // Sub-millisecond delays (tokio's timer has 1 ms steps): spin.
        let delay = Duration::from_micros(i * 37 % 3_000);
        let start = Instant::now();
        while start.elapsed() < delay {
            tokio::task::yield_now().await;
        }
        guard.release().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .unwrap_or_else(|_| panic!("a release {delay:?} after the waiter started was missed"))
            .unwrap();
        got.release().await.unwrap();
    }
}

#[tokio::test]
async fn an_uncontended_acquire_is_still_one_command_with_pubsub() {
    let server = RedisServer::start();
    let lock = Lock::builder("handoff:alone")
        .client(&server.client())
        .await
        .unwrap();
    lock.acquire().await.unwrap().release().await.unwrap();
    server.reset_stats();
    for _ in 0..10 {
        lock.acquire().await.unwrap().release().await.unwrap();
    }
    assert_eq!(server.command_calls("set"), 10);
    assert_eq!(server.command_calls("evalsha"), 10);
    assert_eq!(
        server.command_calls("publish"),
        10,
        "inside the release script"
    );
    assert_eq!(server.command_calls("pttl"), 0);
    assert_eq!(server.command_calls("subscribe"), 0, "nobody waited");
}

#[tokio::test]
async fn only_a_release_that_deleted_the_lock_announces_it() {
    let server = RedisServer::start();
    let lock = notified_lock(
        &server.client(),
        "handoff:expired",
        Duration::from_millis(50),
        WaitPolicy::no_wait(),
    )
    .await;
    // Warm the script cache: every release below is one EVALSHA.
    lock.acquire().await.unwrap().release().await.unwrap();
    let guard = lock.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.reset_stats();
    assert!(guard.release().await.unwrap_err().is_not_held());
    assert_eq!(server.command_calls("evalsha"), 1);
    assert_eq!(server.command_calls("publish"), 0);
    lock.acquire().await.unwrap().release().await.unwrap();
    assert_eq!(server.command_calls("evalsha"), 2);
    assert_eq!(server.command_calls("publish"), 1);
}
