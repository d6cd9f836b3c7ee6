//! Metrics (crate feature `metrics`): what a recorder gets from a scripted
//! session on real redis-servers, read back from `metrics-util`'s debugging
//! recorder: acquired, busy, failed (by operation and error kind),
//! released-not-held, lost (once per hold, by reason), time waited and
//! held, and the gauge of acquires waiting. No label carries a key, a token
//! or a password.
#![cfg(feature = "metrics")]

mod support;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use redis_mutex::{Lock, Locks, WaitPolicy};
use support::{RedisServer, eventually};

const PASSWORD: &str = "metrics-pw-0c4f";

/// One metric: its name and labels (sorted).
type Series = (String, Vec<(String, String)>);

/// Everything recorded so far, summed over snapshots (the debugging
/// recorder's snapshots reset counters, gauges and histograms).
#[derive(Default)]
struct Totals {
    counters: HashMap<Series, u64>,
    gauges: HashMap<Series, f64>,
    histograms: HashMap<Series, Vec<f64>>,
}

static TOTALS: Mutex<Option<Totals>> = Mutex::new(None);

/// The debugging recorder, installed for this whole test binary the first
/// time it is needed.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        redis_mutex::describe_metrics();
        snapshotter
    })
}

/// Adds what was recorded since the last call, and runs `read` on the sum.
fn with_totals<T>(read: impl FnOnce(&Totals) -> T) -> T {
    let snapshot = snapshotter().snapshot();
    let mut totals = TOTALS.lock().unwrap();
    let totals = totals.get_or_insert_with(Totals::default);
    for (key, _, _, value) in snapshot.into_vec() {
        let (kind, key) = key.into_parts();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let series = (key.name().to_owned(), labels);
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => {
                *totals.counters.entry(series).or_default() += n
            }
            (MetricKind::Gauge, DebugValue::Gauge(delta)) => {
                *totals.gauges.entry(series).or_default() += delta.into_inner()
            }
            (MetricKind::Histogram, DebugValue::Histogram(values)) => totals
                .histograms
                .entry(series)
                .or_default()
                .extend(values.into_iter().map(|v| v.into_inner())),
            other => panic!("unexpected metric {other:?}"),
        }
    }
    read(totals)
}

fn matches(series: &Series, name: &str, labels: &[(&str, &str)]) -> bool {
    series.0 == name
        && labels
            .iter()
            .all(|(k, v)| series.1.iter().any(|(sk, sv)| sk == k && sv == v))
}

/// The sum of counter `name` over the series with all of `labels`.
fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    with_totals(|t| {
        t.counters
            .iter()
            .filter(|(s, _)| matches(s, name, labels))
            .map(|(_, n)| n)
            .sum()
    })
}

fn gauge(name: &str, labels: &[(&str, &str)]) -> f64 {
    with_totals(|t| {
        t.gauges
            .iter()
            .filter(|(s, _)| matches(s, name, labels))
            .map(|(_, v)| v)
            .sum()
    })
}

/// Every value histogram `name` got, over the series with all of `labels`.
fn histogram(name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    with_totals(|t| {
        t.histograms
            .iter()
            .filter(|(s, _)| matches(s, name, labels))
            .flat_map(|(_, v)| v.iter().copied())
            .collect()
    })
}

/// Every series recorded so far, of every kind.
fn all_series() -> Vec<Series> {
    with_totals(|t| {
        t.counters
            .keys()
            .chain(t.gauges.keys())
            .chain(t.histograms.keys())
            .cloned()
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_session_shows_in_every_metric() {
    let server = RedisServer::start();
    server.cmd(&["CONFIG", "SET", "requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port());
    let key = "metered:lock";
    let name = [("name", "session"), ("kind", "lock")];
    // Built before the recorder is installed: metrics are looked up at each
    // event, so it still reports.
    let lock = Lock::builder(key)
        .metrics_name("session")
        .ttl(Duration::from_secs(1))
        .wait(WaitPolicy::timeout(Duration::from_millis(150)))
        .command_timeout(Duration::from_millis(100))
        .connect(url.as_str())
        .await
        .unwrap();
    snapshotter();
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut tokens = Vec::new();
    let token_of = async |admin: &mut redis::aio::MultiplexedConnection| {
        let token: String = redis::cmd("GET").arg(key).query_async(admin).await.unwrap();
        token
    };

    // Acquired, then busy for a second acquire, which waited meanwhile.
    let guard = lock.acquire().await.unwrap();
    tokens.push(token_of(&mut admin).await);
    assert_eq!(counter("redis_mutex_acquired_total", &name), 1);
    let waited = histogram(
        "redis_mutex_wait_seconds",
        &[name[0], ("outcome", "acquired")],
    );
    assert_eq!(waited.len(), 1, "{waited:?}");
    let waiter = tokio::spawn({
        let lock = lock.clone();
        async move { lock.acquire().await }
    });
    eventually(Duration::from_secs(2), "one acquire waiting", || {
        gauge("redis_mutex_waiting", &name) == 1.0
    })
    .await;
    assert!(waiter.await.unwrap().unwrap_err().is_busy());
    assert_eq!(gauge("redis_mutex_waiting", &name), 0.0, "back down");
    assert_eq!(counter("redis_mutex_busy_total", &name), 1);
    let busy = histogram("redis_mutex_wait_seconds", &[name[0], ("outcome", "busy")]);
    assert_eq!(busy.len(), 1, "{busy:?}");
    assert!(busy[0] >= 0.150, "waited the whole wait: {busy:?}");
    // A try_acquire that finds it held is busy too, and waits for nothing.
    assert!(lock.try_acquire().await.unwrap().is_none());
    assert_eq!(counter("redis_mutex_busy_total", &name), 2);

    // Released while ours: the time held.
    tokio::time::sleep(Duration::from_millis(50)).await;
    guard.release().await.unwrap();
    let held = histogram(
        "redis_mutex_held_seconds",
        &[name[0], ("outcome", "released")],
    );
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0] >= 0.050, "{held:?}");

    // Released when no longer ours: the key was deleted meanwhile.
    let guard = lock.acquire().await.unwrap();
    tokens.push(token_of(&mut admin).await);
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(guard.release().await.unwrap_err().is_not_held());
    assert_eq!(counter("redis_mutex_released_not_held_total", &name), 1);
    let not_held = histogram(
        "redis_mutex_held_seconds",
        &[name[0], ("outcome", "not_held")],
    );
    assert_eq!(not_held.len(), 1);

    // Renewing, and the key is deleted: renewal's extend finds it gone.
    // One loss, however many times it is looked at.
    let mut guard = lock.acquire().await.unwrap();
    tokens.push(token_of(&mut admin).await);
    guard.auto_renew().unwrap();
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut admin)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .unwrap();
    // An extend answered "not ours" is that same loss, not a failure.
    assert!(
        guard
            .extend(Duration::from_secs(1))
            .await
            .unwrap_err()
            .is_not_held()
    );
    drop(guard);
    assert_eq!(
        counter("redis_mutex_lost_total", &[name[0], ("reason", "not_held")]),
        1
    );
    assert_eq!(
        counter(
            "redis_mutex_failures_total",
            &[name[0], ("operation", "extend")]
        ),
        0
    );
    let dropped = histogram(
        "redis_mutex_held_seconds",
        &[name[0], ("outcome", "dropped")],
    );
    assert_eq!(dropped.len(), 1);

    // Renewing against a server that stalls: each extend times out (the
    // command timeout, 100 ms), is counted and tried again, until the
    // deadline: a loss by the deadline.
    let mut guard = lock.acquire().await.unwrap();
    guard.auto_renew().unwrap();
    server.pause();
    tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .unwrap();
    eventually(Duration::from_secs(2), "a loss by the deadline", || {
        counter("redis_mutex_lost_total", &[name[0], ("reason", "deadline")]) == 1
    })
    .await;
    let renew_failures = counter(
        "redis_mutex_failures_total",
        &[name[0], ("operation", "renew"), ("error", "timed_out")],
    );
    assert!(renew_failures >= 1, "{renew_failures}");

    // While it stalls: an acquire, a release and an extend fail, each
    // counted by operation and error.
    assert!(lock.acquire().await.unwrap_err().is_timeout());
    assert!(guard.extend(Duration::from_secs(1)).await.is_err());
    assert!(guard.release().await.unwrap_err().is_timeout());
    server.resume();
    for operation in ["acquire", "extend", "release"] {
        assert_eq!(
            counter(
                "redis_mutex_failures_total",
                &[name[0], ("operation", operation), ("error", "timed_out")]
            ),
            1,
            "{operation}"
        );
    }
    let failed = histogram(
        "redis_mutex_wait_seconds",
        &[name[0], ("outcome", "failed")],
    );
    assert_eq!(failed.len(), 1);
    let failed = histogram(
        "redis_mutex_held_seconds",
        &[name[0], ("outcome", "failed")],
    );
    assert_eq!(failed.len(), 1);
    assert_eq!(counter("redis_mutex_lost_total", &name), 2);

    // `run` whose work outlives a lost lease: one loss, not one per
    // observer.
    let lost_before = counter("redis_mutex_lost_total", &name);
    let mut admin_in_body = admin.clone();
    let result = lock
        .run(|_lease| async move {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut admin_in_body)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
    assert!(
        matches!(result, Err(redis_mutex::Error::Lost { .. })),
        "{result:?}"
    );
    assert_eq!(counter("redis_mutex_lost_total", &name), lost_before + 1);

    // Every acquire, and nothing else, was counted as one outcome.
    let acquires = counter("redis_mutex_acquired_total", &name)
        + counter("redis_mutex_busy_total", &name)
        + counter(
            "redis_mutex_failures_total",
            &[name[0], ("operation", "acquire")],
        );
    let waits = histogram("redis_mutex_wait_seconds", &name).len() as u64;
    assert_eq!(acquires, waits);
    assert_eq!(counter("redis_mutex_acquired_total", &name), 5);

    // A Locks' name labels every lock it hands out; an unnamed lock has an
    // empty name.
    let locks = Locks::builder()
        .prefix("tenants:")
        .metrics_name("tenants")
        .connect(url.as_str())
        .await
        .unwrap();
    for tenant in ["a", "b", "c"] {
        locks
            .lock(tenant)
            .unwrap()
            .acquire()
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    }
    assert_eq!(
        counter(
            "redis_mutex_acquired_total",
            &[("name", "tenants"), ("kind", "lock")]
        ),
        3
    );
    let unnamed = Lock::builder("unnamed")
        .connect(url.as_str())
        .await
        .unwrap();
    unnamed.acquire().await.unwrap().release().await.unwrap();
    assert_eq!(counter("redis_mutex_acquired_total", &[("name", "")]), 1);

    // Fixed, low-cardinality labels only: no key, no token, no password.
    let allowed_keys = ["name", "kind", "outcome", "operation", "error", "reason"];
    for (metric, labels) in all_series() {
        assert!(metric.starts_with("redis_mutex_"), "{metric}");
        for (label, value) in &labels {
            assert!(
                allowed_keys.contains(&label.as_str()),
                "{metric} {labels:?}"
            );
            for secret in tokens.iter().map(String::as_str).chain([PASSWORD]) {
                assert!(!value.contains(secret), "{metric} {labels:?}");
                assert!(!value.contains(&secret[..8]), "{metric} {labels:?}");
            }
            for key in [key, "tenants:a", "unnamed", "a"] {
                assert_ne!(value, key, "a key as a label: {metric} {labels:?}");
            }
        }
    }
}
