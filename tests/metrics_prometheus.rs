//! The README's Prometheus example, run against a real redis-server: what
//! the exporter renders for a lock's metrics (its own binary, since each
//! installs a global recorder).
#![cfg(feature = "metrics")]

mod support;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use support::RedisServer;

#[tokio::test]
async fn the_readme_example_renders_the_metrics_for_prometheus() {
    let server = RedisServer::start();
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[0.001, 0.01, 0.1, 1.0, 10.0],
        )
        .unwrap()
        .install_recorder()
        .unwrap();
    redis_mutex::describe_metrics();
    let lock = redis_mutex::Lock::builder("reports:nightly")
        .metrics_name("reports")
        .connect(server.url())
        .await
        .unwrap();
    let guard = lock.acquire().await.unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none());
    guard.release().await.unwrap();

    let text = prometheus.render();
    for line in [
        r#"redis_mutex_acquired_total{name="reports",kind="lock"} 1"#,
        r#"redis_mutex_busy_total{name="reports",kind="lock"} 1"#,
        r#"redis_mutex_wait_seconds_bucket{name="reports",kind="lock",outcome="acquired",le="10"} 1"#,
        r#"redis_mutex_held_seconds_count{name="reports",kind="lock",outcome="released"} 1"#,
        r#"redis_mutex_waiting{name="reports",kind="lock"} 0"#,
        "# HELP redis_mutex_acquired_total Lock acquires that took the lease",
        "# TYPE redis_mutex_wait_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains("reports:nightly"), "the key is no label");
}
