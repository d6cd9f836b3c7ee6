//! Nested lockruns (`LOCKRUN_HOLDS`) as real processes against a real
//! redis-server: a lockrun under a lockrun of the same key runs at once,
//! without a lock of its own; one whose parent lost the lock is refused
//! (70); siblings, other keys and a forged hold are excluded as before.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{RedisServer, lockrun_bin};

/// lockrun with `$REDIS_URL` naming `server`, so that the nested runs in
/// its command find it too.
fn lockrun(server: &RedisServer, args: &[&str]) -> Command {
    let mut command = Command::new(lockrun_bin());
    command
        .args(args)
        .env("REDIS_URL", server.url())
        .env_remove("LOCKRUN_HOLDS")
        .stdin(Stdio::null());
    command
}

fn run(mut command: Command) -> Output {
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("lockrun-nested-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lockrun_nested_three_deep_on_one_key_runs_at_once() {
    let server = RedisServer::start();
    let bin = lockrun_bin().to_str().unwrap();
    // The default --wait is 0: a nested run that waited for its own parent
    // would exit 75 at once.
    server.reset_stats();
    let out = run(lockrun(
        &server,
        &[
            "--key",
            "deploy",
            "--",
            bin,
            "--key",
            "deploy",
            "--",
            bin,
            "--key",
            "deploy",
            "--",
            "sh",
            "-c",
            "echo deepest",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "deepest\n");
    assert_eq!(
        server.command_calls("set"),
        1,
        "only the outer lockrun took the lock"
    );
    // The outer run's scripts' GETs (its exclusive hold is a read-write
    // lock's write: the acquire reads the key and the writers' mark, the
    // release the key), and one check per nested run.
    assert_eq!(
        server.command_calls("get"),
        3 + 2,
        "one check per nested run"
    );
    assert_eq!(
        server.command_calls("del"),
        1,
        "only the outer lockrun released it"
    );
    assert!(!server.exists("deploy"));

    // With --fence, every level's command sees the outer acquisition's fence.
    let out = run(lockrun(
        &server,
        &[
            "--key",
            "deploy",
            "--fence",
            "--",
            bin,
            "--key",
            "deploy",
            "--fence",
            "--",
            bin,
            "--key",
            "deploy",
            "--fence",
            "--",
            "sh",
            "-c",
            "echo $LOCKRUN_FENCE",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\n");
    // A nested --fence under a lockrun without it has no fence to pass on.
    let out = run(lockrun(
        &server,
        &[
            "--key", "deploy", "--", bin, "--key", "deploy", "--fence", "--", "true",
        ],
    ));
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
}

#[test]
fn a_nested_lockrun_whose_parent_lost_the_lock_is_refused_with_70() {
    let server = RedisServer::start();
    let bin = lockrun_bin().to_str().unwrap();
    let go = temp_path("lost.go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.02; done; {bin} --key deploy --wait 5 -- echo never; echo nested=$?",
        go = go.display()
    );
    let outer = lockrun(&server, &["--key", "deploy", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the outer lockrun holds the lock", || {
        server.exists("deploy")
    });
    let token = server.get("deploy").unwrap();
    // The parent's hold is gone and someone else holds the key; the parent
    // renews every 10 s, so it has not noticed yet.
    server.cmd(&["SET", "deploy", "someone-else", "PX", "60000"]);
    let started = Instant::now();
    std::fs::write(&go, "").unwrap();
    let out = outer.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.contains("nested=70"), "{stdout}{stderr}");
    assert!(!stdout.contains("never"), "the nested command did not run");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "refused, not waited for"
    );
    assert!(stderr.contains("was lost"), "{stderr}");
    assert!(!stderr.contains(&token), "no token printed: {stderr}");
    assert_eq!(
        out.status.code(),
        Some(70),
        "the outer lockrun finds it lost too"
    );
    assert_eq!(server.get("deploy").as_deref(), Some("someone-else"));
    let _ = std::fs::remove_file(go);
}

#[test]
fn siblings_other_keys_and_forged_holds_are_excluded_as_before() {
    let server = RedisServer::start();
    let bin = lockrun_bin().to_str().unwrap();
    let ready = temp_path("siblings.ready");
    let go = temp_path("siblings.go");
    // "other" is held by someone else, "free" by nobody.
    server.cmd(&["SET", "other", "someone-else", "PX", "60000"]);
    let forged_token = "0123456789abcdef0123456789abcdef01234567";
    let script = format!(
        "env -u LOCKRUN_HOLDS {bin} --key job -- echo stripped-ran; echo stripped=$?; \
         {bin} --key other -- echo other-ran; echo other=$?; \
         {bin} --key free -- {bin} --key job -- echo chain-ran; echo chain=$?; \
         LOCKRUN_HOLDS=6a6f62:{forged_token} {bin} --key job -- echo forged-ran; echo forged=$?; \
         touch {ready}; while [ ! -e {go} ]; do sleep 0.02; done",
        ready = ready.display(),
        go = go.display()
    );
    let outer = lockrun(&server, &["--key", "job", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the outer command's children ran", || ready.exists());
    let token = server.get("job").unwrap();

    // A process that did not inherit the hold: busy at once, or after its
    // wait.
    let sibling = run(lockrun(
        &server,
        &["--key", "job", "--", "echo", "sibling-ran"],
    ));
    assert_eq!(sibling.status.code(), Some(75), "{}", text(&sibling.stderr));
    let started = Instant::now();
    let patient = run(lockrun(
        &server,
        &[
            "--key",
            "job",
            "--wait",
            "300ms",
            "--",
            "echo",
            "sibling-ran",
        ],
    ));
    assert_eq!(patient.status.code(), Some(75));
    assert!(started.elapsed() >= Duration::from_millis(300), "it waited");
    assert!(sibling.stdout.is_empty() && patient.stdout.is_empty());

    std::fs::write(&go, "").unwrap();
    let out = outer.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    // Stripped of the variable, a child is a sibling: busy.
    assert!(stdout.contains("stripped=75"), "{stdout}{stderr}");
    // Another key is acquired as before: busy when held by another...
    assert!(stdout.contains("other=75"), "{stdout}{stderr}");
    // ... taken when free, and its command still re-enters the outer key.
    assert!(stdout.contains("chain-ran\nchain=0"), "{stdout}{stderr}");
    // A token that the key does not hold proves nothing.
    assert!(stdout.contains("forged=70"), "{stdout}{stderr}");
    assert!(!stdout.contains("stripped-ran") && !stdout.contains("other-ran"));
    assert!(!stdout.contains("forged-ran"));
    for shown in [&stderr, &text(&sibling.stderr), &text(&patient.stderr)] {
        assert!(!shown.contains(&token), "no token printed: {shown}");
        assert!(!shown.contains(forged_token), "no token printed: {shown}");
    }
    assert!(!server.exists("job") && !server.exists("free"));
    let _ = std::fs::remove_file(ready);
    let _ = std::fs::remove_file(go);
}

#[test]
fn a_lock_lost_under_a_nested_run_stops_the_nested_command_too() {
    let server = RedisServer::start();
    let bin = lockrun_bin().to_str().unwrap();
    let pid_file = temp_path("lost-under.pid");
    // The nested lockrun's command runs in a group of its own, which the
    // outer lockrun does not signal itself: the nested lockrun passes the
    // outer one's SIGTERM on.
    let inner = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    let outer = lockrun(
        &server,
        &[
            "--key", "deploy", "--ttl", "600ms", "--grace", "2s", "--", bin, "--key", "deploy",
            "--", "sh", "-c", &inner,
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for("the nested command runs", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|pid| !pid.trim().is_empty())
    });
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    server.cmd(&["SET", "deploy", "someone-else", "PX", "60000"]);
    let out = outer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(70), "{}", text(&out.stderr));
    let alive = Command::new("kill")
        .args(["-0", &pid])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(
        !alive,
        "the nested command was stopped before the outer lockrun exited"
    );
    assert_eq!(server.get("deploy").as_deref(), Some("someone-else"));
    let _ = std::fs::remove_file(pid_file);
}
