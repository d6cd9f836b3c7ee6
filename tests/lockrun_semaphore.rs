//! `lockrun --permits N`: at most N commands at once on one key, across
//! lockrun processes; `--status` counts the permits taken.

mod support;

use std::time::{Duration, Instant};

use support::{RedisServer, lockrun};

/// Six lockruns started together on a semaphore of 2: each command marks
/// itself present in a directory, counts the marks, stays 600 ms and
/// leaves; the most ever counted is the most ever running at once (the
/// last to arrive counts everyone present), and it must be 2.
#[test]
fn six_lockruns_with_two_permits_run_at_most_two_commands_at_once() {
    let server = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("lockrun-permits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inside")).unwrap();
    let script = format!(
        "touch {d}/inside/$$; ls {d}/inside | wc -l >> {d}/counts; sleep 0.6; rm {d}/inside/$$",
        d = dir.display()
    );
    let started = Instant::now();
    let children: Vec<_> = (0..6)
        .map(|_| {
            lockrun(
                &server,
                &[
                    "--key",
                    "exports",
                    "--permits",
                    "2",
                    "--wait",
                    "30s",
                    "--",
                    "sh",
                    "-c",
                    &script,
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a lockrun failed: {:?}",
            output.status
        );
    }
    let took = started.elapsed();
    let counts: Vec<u32> = std::fs::read_to_string(dir.join("counts"))
        .unwrap()
        .lines()
        .map(|line| line.trim().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 6, "every command ran");
    assert_eq!(
        counts.iter().max(),
        Some(&2),
        "at most 2 at once, and 2 did run together: {counts:?}"
    );
    // Three rounds of 600 ms: more than two, fewer than six (serial).
    assert!(took > Duration::from_millis(1_700), "{took:?}");
    assert!(!server.exists("exports"), "every permit given back");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_counts_the_permits_taken_and_a_full_semaphore_exits_75() {
    let server = RedisServer::start();
    let status = |permits: &str| {
        lockrun(
            &server,
            &["--status", "--key", "jobs", "--permits", permits],
        )
        .output()
        .unwrap()
    };
    let free = status("1");
    assert_eq!(free.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&free.stdout),
        "\"jobs\": 0 of 1 permits taken\n"
    );
    let mut holder = lockrun(
        &server,
        &["--key", "jobs", "--permits", "1", "--", "sleep", "3"],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.exists("jobs") {
        assert!(Instant::now() < deadline, "the holder took its permit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let full = status("1");
    assert_eq!(full.status.code(), Some(75), "{full:?}");
    assert_eq!(
        String::from_utf8_lossy(&full.stdout),
        "\"jobs\": 1 of 1 permits taken\n"
    );
    assert_eq!(
        status("2").status.code(),
        Some(0),
        "room under a limit of 2"
    );
    let busy = lockrun(
        &server,
        &["--key", "jobs", "--permits", "1", "-n", "--", "true"],
    )
    .output()
    .unwrap();
    assert_eq!(busy.status.code(), Some(75));
    holder.kill().unwrap();
    let _ = holder.wait();
}

#[test]
fn bad_permit_counts_and_fence_with_permits_are_usage_errors() {
    let server = RedisServer::start();
    for args in [
        &["--key", "k", "--permits", "0", "--", "true"][..],
        &["--key", "k", "--permits", "x", "--", "true"][..],
        &["--key", "k", "--permits", "2", "--fence", "--", "true"][..],
    ] {
        let output = lockrun(&server, args).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}: {output:?}");
    }
}
