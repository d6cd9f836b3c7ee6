//! `lockrun --fair`: lockruns that start waiting in a known order behind a
//! holder run their commands in that order; `--status` tells the line's
//! length; a Redlock, and `--fair` with `--shared`, are refused as usage.

mod support;

use std::time::{Duration, Instant};

use support::{RedisServer, lockrun, lockrun_bin};

fn in_line(server: &RedisServer) -> i64 {
    redis::from_redis_value(server.cmd(&["ZCARD", "{nightly}:queue"])).unwrap()
}

#[test]
fn six_lockruns_started_100_ms_apart_run_in_their_start_order() {
    let server = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("lockrun-fair-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let go = dir.join("go");
    let order = dir.join("order");
    let holder = lockrun(
        &server,
        &[
            "--fair",
            "--key",
            "nightly",
            "--",
            "sh",
            "-c",
            &format!("while [ ! -e {} ]; do sleep 0.02; done", go.display()),
        ],
    )
    .spawn()
    .unwrap();
    let started = Instant::now();
    while !server.exists("nightly") {
        assert!(started.elapsed() < Duration::from_secs(20), "no holder");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut waiters = Vec::new();
    for n in 0..6 {
        let began = Instant::now();
        let script = format!("echo {n} >> {}", order.display());
        waiters.push(
            lockrun(
                &server,
                &[
                    "--fair", "--key", "nightly", "--wait", "60s", "--", "sh", "-c", &script,
                ],
            )
            .spawn()
            .unwrap(),
        );
        // The next starts 100 ms later, and not before this one is in line
        // (on a loaded machine a lockrun can take longer to start).
        while in_line(&server) != n + 1 {
            assert!(began.elapsed() < Duration::from_secs(20), "{n} not queued");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(began.elapsed()));
    }
    let status = lockrun(&server, &["--fair", "--key", "nightly", "--status"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("6 in line"), "{said}");
    assert_eq!(status.status.code(), Some(75), "held");

    std::fs::write(&go, "").unwrap();
    let output = holder.wait_with_output().unwrap();
    assert!(output.status.success(), "the holder failed: {output:?}");
    for waiter in waiters {
        let output = waiter.wait_with_output().unwrap();
        assert!(output.status.success(), "a lockrun failed: {output:?}");
    }
    let ran: Vec<u32> = std::fs::read_to_string(&order)
        .unwrap()
        .lines()
        .map(|line| line.trim().parse().unwrap())
        .collect();
    assert_eq!(ran, [0, 1, 2, 3, 4, 5], "not in start order");
    for key in ["nightly", "{nightly}:queue", "{nightly}:queue-expiry"] {
        assert!(!server.exists(key), "{key} left behind");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_redlock_and_fair_with_shared_are_usage_errors() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let output = lockrun(
        &a,
        &["--url", &b.url(), "--fair", "--key", "k", "--", "true"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(64), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("Redlock"), "{said}");
    let output = lockrun(&a, &["--fair", "--shared", "--key", "k", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64), "{output:?}");
}

/// A `--fair` lockrun under a `--fair` lockrun on the same key re-enters
/// its parent's hold (the key holds the parent's token, as a plain lock's
/// would) instead of queueing behind it.
#[test]
fn a_nested_fair_run_reenters_its_parents_hold() {
    let server = RedisServer::start();
    let inner = format!(
        "{} --url {} --fair --key nested -n -- true",
        lockrun_bin().display(),
        server.url()
    );
    let output = lockrun(
        &server,
        &["--fair", "--key", "nested", "--", "sh", "-c", &inner],
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(!server.exists("{nested}:queue"), "the inner run queued");
}
