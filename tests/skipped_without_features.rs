//! Says which test files a build without some features compiles out (they
//! are `#![cfg(feature = ...)]`): a plain `cargo test` would otherwise pass
//! them silently. CI runs `--all-features`, where this file has no test.

mod support;

#[cfg(not(feature = "cluster"))]
#[test]
fn cluster_tests_skipped_without_the_cluster_feature() {
    support::skipped(
        "tests/cluster.rs and tests/cluster_fair.rs are compiled out: run with `--features cluster`",
    );
}

#[cfg(not(feature = "tracing"))]
#[test]
fn tracing_tests_skipped_without_the_tracing_feature() {
    support::skipped("tests/tracing.rs is compiled out: run with `--features tracing`");
}

#[cfg(not(feature = "metrics"))]
#[test]
fn metrics_tests_skipped_without_the_metrics_feature() {
    support::skipped(
        "tests/metrics.rs and tests/metrics_prometheus.rs are compiled out: run with `--features metrics`",
    );
}

#[cfg(not(feature = "blocking"))]
#[test]
fn blocking_tests_skipped_without_the_blocking_feature() {
    support::skipped(
        "tests/blocking.rs and tests/blocking_kinds.rs are compiled out: run with `--features blocking`",
    );
}
