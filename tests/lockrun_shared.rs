//! `lockrun --shared`: shared commands run together; an exclusive one (the
//! default) runs alone, and shared ones that come while it waits queue
//! behind it.

mod support;

use std::time::Duration;

use support::{RedisServer, lockrun, lockrun_bin};

/// Each command marks itself present in `inside/`, counts the marks into
/// its log, stays a while and leaves: the most counted is the most that
/// ran at once (the last to arrive counts everyone present).
#[test]
fn shared_commands_run_together_and_an_exclusive_one_runs_alone() {
    let server = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("lockrun-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inside")).unwrap();
    let script = |log: &str, stay: &str| {
        format!(
            "touch {d}/inside/$$; ls {d}/inside | wc -l >> {d}/{log}; sleep {stay}; rm {d}/inside/$$",
            d = dir.display()
        )
    };
    let (shared, exclusive) = (script("shared", "0.8"), script("exclusive", "0.5"));
    let run = |args: &[&str], script: &str| {
        let mut all = vec!["--key", "cache", "--wait", "30s"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "sh", "-c", script]);
        lockrun(&server, &all).spawn().unwrap()
    };
    let mut children = Vec::new();
    for _ in 0..3 {
        children.push(run(&["--shared"], &shared));
    }
    std::thread::sleep(Duration::from_millis(300));
    children.push(run(&[], &exclusive));
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..2 {
        children.push(run(&["-s"], &shared));
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a lockrun failed: {output:?}");
    }
    let counts = |log: &str| -> Vec<u32> {
        std::fs::read_to_string(dir.join(log))
            .unwrap()
            .lines()
            .map(|line| line.trim().parse().unwrap())
            .collect()
    };
    let shared = counts("shared");
    assert_eq!(shared.len(), 5, "every shared command ran");
    assert!(
        shared.iter().max() >= Some(&2),
        "shared commands ran together: {shared:?}"
    );
    assert_eq!(counts("exclusive"), [1], "the exclusive command ran alone");
    for key in ["cache", "{cache}:readers", "{cache}:writer-waiting"] {
        assert!(!server.exists(key), "{key} left behind");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_names_shared_holders_and_shared_conflicts_with_permits_and_fence() {
    let server = RedisServer::start();
    let mut holder = lockrun(&server, &["--key", "cache", "--shared", "--", "sleep", "3"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.exists("{cache}:readers") {
        assert!(
            std::time::Instant::now() < deadline,
            "the shared holder started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = lockrun(&server, &["--status", "--key", "cache"])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(75));
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "\"cache\" is held by 1 shared holders (--shared)\n"
    );
    let busy = lockrun(&server, &["--key", "cache", "-n", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(75), "an exclusive run is kept out");
    let together = lockrun(&server, &["--key", "cache", "-s", "-n", "--", "true"])
        .output()
        .unwrap();
    assert!(together.status.success(), "a shared run joins at once");
    for args in [
        &["--key", "k", "--shared", "--permits", "2", "--", "true"][..],
        &["--key", "k", "--shared", "--fence", "--", "true"][..],
    ] {
        let output = lockrun(&server, args).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}");
    }
    holder.kill().unwrap();
    let _ = holder.wait();
}

/// A shared run nested under an exclusive run of the same key re-enters
/// the parent's hold (it would otherwise wait for its own parent); an
/// exclusive run nested under a shared one would be an upgrade, and waits
/// like any other writer (here: exits 75 at once).
#[test]
fn a_shared_run_under_an_exclusive_parent_re_enters_and_the_reverse_waits() {
    let server = RedisServer::start();
    let bin = lockrun_bin().to_str().unwrap().to_owned();
    let url = server.url();
    let nested = |outer: &[&str], inner: &[&str]| {
        let mut args = vec!["--key", "cfg"];
        args.extend_from_slice(outer);
        args.extend_from_slice(&["--", &bin, "--url", &url, "--key", "cfg"]);
        args.extend_from_slice(inner);
        args.extend_from_slice(&["--", "echo", "inner ran"]);
        lockrun(&server, &args).output().unwrap()
    };
    let shared_under_exclusive = nested(&[], &["--shared"]);
    assert!(
        shared_under_exclusive.status.success(),
        "{shared_under_exclusive:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&shared_under_exclusive.stdout),
        "inner ran\n"
    );
    let exclusive_under_shared = nested(&["--shared"], &["-n"]);
    assert_eq!(
        exclusive_under_shared.status.code(),
        Some(75),
        "{exclusive_under_shared:?}"
    );
}
