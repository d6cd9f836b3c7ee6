//! Renewal (the watchdog), loss detection and `Lock::run`, against a real
//! redis-server. TTLs are short so the suite stays fast; margins are wide
//! because this machine is small and shared.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::RngExt;
use redis::AsyncCommands;
use redis_mutex::{Error, Lock, WaitPolicy};
use support::{Monitor, RedisServer, alive_tasks, patient_conn, settle_within};
use tokio::time::Instant;

/// Waits (boundedly, 2 s) until the runtime is back to `baseline` tasks.
async fn settle_to(baseline: usize) {
    settle_within(baseline, Duration::from_secs(2)).await;
}

fn renewing(conn: redis::aio::MultiplexedConnection, key: &str, ttl_ms: u64) -> Lock {
    Lock::builder(key)
        .ttl(Duration::from_millis(ttl_ms))
        .wait(WaitPolicy::no_wait())
        .auto_renew(true)
        .build(conn)
        .unwrap()
}

#[tokio::test]
async fn work_lasting_five_ttls_is_never_interrupted() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let guard = renewing(conn.clone(), "renew:long", 200)
        .acquire()
        .await
        .unwrap();
    let rival = Lock::builder("renew:long")
        .wait(WaitPolicy::no_wait())
        .build(conn)
        .unwrap();

    let started = Instant::now();
    let mut tries = 0;
    while started.elapsed() < Duration::from_millis(1_000) {
        assert!(
            rival.try_acquire().await.unwrap().is_none(),
            "taken over after {:?}",
            started.elapsed()
        );
        assert!(!guard.is_lost());
        tries += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(tries > 50);
    assert!(server.pttl("renew:long") > 0);
    guard.release().await.unwrap();
    assert!(!server.exists("renew:long"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.exists("renew:long"), "nothing re-created it");
}

#[tokio::test]
async fn a_deleted_or_stolen_key_fires_lost_within_one_renewal_period() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    // TTL 3 s: renewal every 1 s, local deadline at ~2.97 s. Loss must come
    // from the next extend's answer, well before the deadline.
    for steal in [false, true] {
        let guard = renewing(conn.clone(), "renew:stolen", 3_000)
            .acquire()
            .await
            .unwrap();
        let acquired = Instant::now();
        if steal {
            server.cmd(&["SET", "renew:stolen", "someone-else", "PX", "10000"]);
        } else {
            server.cmd(&["DEL", "renew:stolen"]);
        }
        tokio::time::timeout(Duration::from_secs(2), guard.lost())
            .await
            .expect("lost() fired");
        let after = acquired.elapsed();
        assert!(
            after < Duration::from_millis(1_600),
            "lost after {after:?}, not within one renewal period"
        );
        assert!(guard.is_lost());
        assert_eq!(guard.remaining(), Duration::ZERO);
        assert!(guard.release().await.unwrap_err().is_not_held());
        if steal {
            assert_eq!(
                server.get("renew:stolen").as_deref(),
                Some("someone-else"),
                "the thief's lock is untouched"
            );
            server.cmd(&["DEL", "renew:stolen"]);
        }
    }
}

#[tokio::test]
async fn run_stops_the_body_when_the_lock_is_lost() {
    let server = RedisServer::start();
    let lock = Lock::builder("renew:run")
        .ttl(Duration::from_millis(900))
        .build(server.conn().await)
        .unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let run = tokio::spawn({
        let (lock, finished) = (lock.clone(), finished.clone());
        async move {
            lock.run(|_lease| async move {
                started_tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_secs(10)).await;
                finished.store(true, Ordering::SeqCst);
            })
            .await
        }
    });
    started_rx.await.unwrap();
    let stolen = Instant::now();
    server.cmd(&["SET", "renew:run", "someone-else", "PX", "10000"]);
    let err = tokio::time::timeout(Duration::from_secs(3), run)
        .await
        .expect("run returned")
        .unwrap()
        .unwrap_err();
    assert!(
        stolen.elapsed() < Duration::from_millis(800),
        "stopped after {:?}",
        stolen.elapsed()
    );
    assert!(
        matches!(&err, Error::Lost { key } if key == "renew:run"),
        "{err:?}"
    );
    assert!(err.to_string().contains("lost"), "{err}");
    assert!(err.is_not_held());
    assert!(!finished.load(Ordering::SeqCst), "the body was stopped");
    assert_eq!(server.get("renew:run").as_deref(), Some("someone-else"));
}

#[tokio::test]
async fn run_renews_returns_the_value_and_releases() {
    let server = RedisServer::start();
    let lock = Lock::builder("renew:ok")
        .ttl(Duration::from_millis(150))
        .build(server.conn().await)
        .unwrap();
    let rival = Lock::builder("renew:ok")
        .wait(WaitPolicy::no_wait())
        .build(server.conn().await)
        .unwrap();
    let value = lock
        .run(|lease| async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(50)).await; // 500 ms in all: >3 TTLs
                assert!(rival.try_acquire().await.unwrap().is_none());
            }
            assert!(!lease.is_lost());
            42
        })
        .await
        .unwrap();
    assert_eq!(value, 42);
    assert!(!server.exists("renew:ok"));
}

#[tokio::test]
async fn a_paused_server_fires_lost_by_the_local_deadline_and_leaves_nothing_renewing() {
    let server = RedisServer::start();
    // Answers waited for 5 s: only the lease's deadline bounds the extend.
    let conn = patient_conn(&server).await;
    let baseline = alive_tasks();
    let guard = renewing(conn, "renew:paused", 600).acquire().await.unwrap();
    assert_eq!(alive_tasks(), baseline + 1, "one renewal task");
    server.pause();
    let deadline = guard.deadline();
    tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("lost() fired without any answer");
    let late = Instant::now().saturating_duration_since(deadline);
    assert!(Instant::now() >= deadline);
    assert!(
        late < Duration::from_millis(150),
        "fired {late:?} after the deadline"
    );
    assert!(guard.is_lost());
    // The renewal task gave up at the deadline too: it does not wait out
    // the unanswered extend (5 s here).
    settle_within(baseline, Duration::from_millis(300)).await;

    server.resume();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.exists("renew:paused"),
        "expired, and no late extend revived it"
    );
    assert!(guard.release().await.unwrap_err().is_not_held());
    settle_to(baseline).await;
}

#[tokio::test]
async fn a_thousand_cycles_leave_no_key_and_no_renewal_task() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let mut admin = server.conn().await;
    let lock = renewing(conn, "renew:cycles", 50);
    let baseline = alive_tasks();
    server.reset_stats();
    for cycle in 0..1_000 {
        let guard = lock.acquire().await.unwrap();
        if cycle % 10 == 0 {
            // Long enough for renewals (every ~16 ms), at random phases.
            let hold = rand::rng().random_range(0..60);
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        match guard.release().await {
            Ok(()) => {}
            // The lease may run out if this shared machine stalls us; what
            // matters is that nothing is left behind.
            Err(e) if e.is_not_held() => {}
            Err(e) => panic!("{e:?}"),
        }
        let exists: bool = admin.exists("renew:cycles").await.unwrap();
        assert!(!exists, "cycle {cycle}: a key survived its release");
    }
    settle_to(baseline).await;
    let extends = server.command_calls("evalsha") - 1_000; // the rest were releases
    assert!(extends > 20, "renewal ran: {extends} extends");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!server.exists("renew:cycles"));
}

#[tokio::test]
async fn a_guard_dropped_while_renewing_stops_renewal_and_releases() {
    let server = RedisServer::start();
    let conn = server.conn().await;
    let baseline = alive_tasks();
    let guard = renewing(conn, "renew:dropped", 300)
        .acquire()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await; // at least one renewal
    assert!(server.pttl("renew:dropped") > 150, "renewed");
    drop(guard);
    settle_to(baseline).await;
    let started = Instant::now();
    while server.exists("renew:dropped") {
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "not released"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!server.exists("renew:dropped"), "nothing re-created it");
}

#[tokio::test]
async fn max_hold_caps_how_long_renewal_keeps_the_lock() {
    let server = RedisServer::start();
    let lock = Lock::builder("renew:capped")
        .ttl(Duration::from_millis(300))
        .auto_renew(true)
        .max_hold(Duration::from_millis(800))
        .build(server.conn().await)
        .unwrap();
    let acquired = Instant::now();
    let guard = lock.acquire().await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("lost() fired at the cap");
    let held = acquired.elapsed();
    assert!(
        held > Duration::from_millis(600) && held < Duration::from_millis(900),
        "held {held:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !server.exists("renew:capped"),
        "the server expired it at the cap too"
    );
    assert!(guard.release().await.unwrap_err().is_not_held());

    let err = Lock::builder("k")
        .max_hold(Duration::ZERO)
        .build(server.conn().await)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "max_hold",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_manual_extend_answered_not_ours_marks_the_lease_lost() {
    let server = RedisServer::start();
    // TTL 900 ms: renewal would tick every 300 ms, and the lease's own
    // deadline (~890 ms) comes after the first tick.
    let lock = Lock::builder("renew:manual")
        .ttl(Duration::from_millis(900))
        .build(server.conn().await)
        .unwrap();
    let baseline = alive_tasks();
    let mut guard = lock.acquire().await.unwrap();
    let lease = guard.lease().clone();
    assert!(!lease.is_lost());
    server.cmd(&["DEL", "renew:manual"]);
    assert!(
        guard
            .extend(Duration::from_millis(900))
            .await
            .unwrap_err()
            .is_not_held()
    );
    assert!(lease.is_lost() && guard.is_lost());
    tokio::time::timeout(Duration::from_millis(10), lease.lost())
        .await
        .expect("already lost");
    // Renewal of a lost lease does nothing and stops: at its first tick the
    // task ends without sending an extend.
    server.reset_stats();
    guard.auto_renew().unwrap();
    assert_eq!(alive_tasks(), baseline + 1, "renewal started");
    settle_within(baseline, Duration::from_secs(2)).await;
    assert_eq!(server.command_calls("evalsha"), 0, "no extend was sent");
    assert!(!server.exists("renew:manual"));
    assert!(guard.release().await.unwrap_err().is_not_held());
}

#[tokio::test]
async fn release_and_drop_stop_renewal_at_once_not_at_its_next_tick() {
    let server = RedisServer::start();
    // Renewal every 2 s: a task that only noticed at its next tick would
    // still be alive long after the bound below.
    let lock = renewing(server.conn().await, "renew:stop", 6_000);
    let baseline = alive_tasks();

    let guard = lock.acquire().await.unwrap();
    assert_eq!(alive_tasks(), baseline + 1);
    guard.release().await.unwrap();
    settle_within(baseline, Duration::from_millis(200)).await;

    let guard = lock.acquire().await.unwrap();
    assert_eq!(alive_tasks(), baseline + 1);
    drop(guard);
    // The renewal task goes; the background release task comes and goes.
    settle_within(baseline, Duration::from_millis(500)).await;
    assert!(!server.exists("renew:stop"));
}

/// A rival in another thread with its own runtime (think: another process):
/// once `go` is set, tries the key every 20 ms until `stop`; keeps whatever
/// it gets for 10 s.
fn rival_thread(
    url: String,
    key: &'static str,
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let rival = Lock::builder(key)
                .ttl(Duration::from_secs(10))
                .wait(WaitPolicy::no_wait())
                .connect(url.as_str())
                .await
                .unwrap();
            while !go.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            while !stop.load(Ordering::SeqCst) {
                if let Some(guard) = rival.try_acquire().await.unwrap() {
                    std::mem::forget(guard); // keeps the key: our release must see it
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        })
    })
}

/// Runs `holder` `rounds` times on this runtime, with a rival elsewhere:
/// `holder` holds a 300 ms lock while it blocks its worker for 900 ms
/// (setting `go` first), and returns its release's outcome. `Ok` means the
/// key held our token from the acquire to the release, so no rival had it
/// meanwhile; a rival that got it after the release is let go.
async fn blocking_holder_keeps_the_lock<F>(rounds: usize, holder: F)
where
    F: Fn(Lock, Arc<AtomicBool>) -> tokio::task::JoinHandle<redis_mutex::Result<()>>,
{
    let server = RedisServer::start();
    let lock = renewing(server.conn().await, "renew:blocking", 300);
    for round in 0..rounds {
        let (go, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let rival = rival_thread(server.url(), "renew:blocking", go.clone(), stop.clone());
        // Awaiting the handle runs nothing on the workers: nothing else
        // wakes them while the holder blocks one.
        let result = holder(lock.clone(), go).await.unwrap();
        stop.store(true, Ordering::SeqCst);
        let rival_took_it = rival.join().unwrap();
        assert!(
            result.is_ok(),
            "round {round}: {result:?} (a rival took the key: {rival_took_it})"
        );
        server.cmd(&["DEL", "renew:blocking"]);
    }
}

/// A `run` body that blocks its worker (std::thread::sleep, 3 TTLs) inside
/// `tokio::spawn` on a multi-thread runtime: renewal runs on the other
/// worker, so the lock is never lost and no rival gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_the_lock_while_its_body_blocks_a_worker() {
    blocking_holder_keeps_the_lock(3, |lock, go| {
        tokio::spawn(async move {
            let lost = lock
                .run(|lease| async move {
                    go.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(900));
                    lease.is_lost()
                })
                .await?;
            assert!(!lost);
            Ok(())
        })
    })
    .await;
}

/// The same after the body awaited an answer from Redis: the worker that
/// took the answer off the socket is the one that blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_the_lock_while_its_body_blocks_a_worker_after_io() {
    blocking_holder_keeps_the_lock(2, |lock, go| {
        tokio::spawn(async move {
            let same_lock = lock.clone();
            lock.run(|_lease| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                // One round trip: busy (we hold it).
                assert!(same_lock.try_acquire().await.unwrap().is_none());
                go.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(900));
            })
            .await
        })
    })
    .await;
}

/// A guard of a lock with `auto_renew(true)`, held by a task that blocks
/// its worker right after `acquire` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewing_guard_keeps_the_lock_while_its_task_blocks_a_worker() {
    blocking_holder_keeps_the_lock(2, |lock, go| {
        tokio::spawn(async move {
            let guard = lock.acquire().await?;
            go.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(900));
            guard.release().await
        })
    })
    .await;
}

/// Renewal stops before the release is sent, not when the guard goes after
/// the release's answer. The release is held up (the server paused) past a
/// renewal tick: no renewal task is left meanwhile, and no extend reaches
/// the server after the release.
#[tokio::test]
async fn renewal_stops_before_the_release_is_sent() {
    let server = RedisServer::start();
    let monitor = Monitor::start(&server);
    // TTL 1.5 s: a tick every 500 ms; answers waited for 5 s.
    let lock = renewing(patient_conn(&server).await, "renew:order", 1_500);
    let baseline = alive_tasks();
    let guard = lock.acquire().await.unwrap();
    assert_eq!(alive_tasks(), baseline + 1, "renewing");
    server.pause();
    let release = tokio::spawn(guard.release());
    // Past the first tick (500 ms after the acquire), well before the
    // lease's deadline (~1.48 s) and the server's expiry.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!release.is_finished(), "the release waits for the server");
    let renewing_meanwhile = alive_tasks() - (baseline + 1);
    server.resume();
    release.await.unwrap().unwrap();
    assert!(!server.exists("renew:order"));

    // The release's DEL, then anything from the lock's connection after it.
    let deleted = |lines: &[String]| {
        lines
            .iter()
            .position(|l| l.contains(r#"lua] "DEL" "renew:order""#))
    };
    support::eventually(Duration::from_secs(2), "MONITOR saw the release", || {
        deleted(&monitor.lines()).is_some()
    })
    .await;
    // A pipelined extend would run right behind it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = monitor.lines();
    let after: Vec<&String> = lines[deleted(&lines).unwrap() + 1..]
        .iter()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains(r#""evalsha""#) || l.contains(r#""eval""#)
        })
        .collect();
    assert!(after.is_empty(), "extends after the release: {after:#?}");
    assert_eq!(
        renewing_meanwhile, 0,
        "the renewal task lived on while the release was in flight"
    );
}
