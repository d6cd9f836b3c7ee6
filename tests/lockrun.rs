//! The `lockrun` binary (`--features cli`) run as a program against real
//! redis-servers.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{RedisServer, lockrun, lockrun_bin, skipped};

fn run(mut command: Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

fn temp_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("lockrun-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn two_lockruns_on_one_key_serialize() {
    let server = RedisServer::start();
    let log = temp_file("serialize.log");
    let script = |name: &str| {
        format!(
            "echo start-{name} >> {0}; sleep 1; echo end-{name} >> {0}",
            log.display()
        )
    };

    let mut first = lockrun(
        &server,
        &["--key", "job", "--", "sh", "-c", &script("first")],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let second = run(lockrun(
        &server,
        &[
            "--key",
            "job",
            "--wait",
            "10s",
            "--",
            "sh",
            "-c",
            &script("second"),
        ],
    ));
    assert!(first.wait().unwrap().success());
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        started.elapsed() > Duration::from_millis(1_400),
        "the second waited for the first"
    );
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines, "start-first\nend-first\nstart-second\nend-second\n");
    assert!(!server.exists("job"), "released after the command exited");
    let _ = std::fs::remove_file(log);
}

#[test]
fn a_busy_lock_exits_75_at_once_without_wait() {
    let server = RedisServer::start();
    let mut holder = lockrun(&server, &["--key", "job", "--", "sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let busy = run(lockrun(&server, &["--key", "job", "--", "echo", "never"]));
    assert_eq!(
        busy.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(busy.stdout.is_empty(), "the command did not run");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("busy"));
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn exit_codes_and_stdio_pass_through() {
    let server = RedisServer::start();
    let out = run(lockrun(
        &server,
        &[
            "--key",
            "job",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    ));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");

    let mut cat = lockrun(&server, &["--key", "job", "--", "cat"]);
    cat.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cat.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"through stdin\n");

    let killed = run(lockrun(
        &server,
        &["--key", "job", "--", "sh", "-c", "kill -9 $$"],
    ));
    assert_eq!(
        killed.status.code(),
        Some(128 + 9),
        "a signal becomes 128 + signal"
    );
    assert!(!server.exists("job"));
}

#[test]
fn a_lock_taken_over_while_the_command_runs_exits_70_and_stops_the_command() {
    let server = RedisServer::start();
    let pid_file = temp_file("taken.pid");
    let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    let lockrun = lockrun(
        &server,
        &[
            "--key", "job", "--ttl", "600ms", "--grace", "1s", "--", "sh", "-c", &script,
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let started = Instant::now();
    while !pid_file.exists()
        || std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    server.cmd(&["SET", "job", "someone-else", "PX", "60000"]);
    let taken = Instant::now();
    let out = lockrun.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert!(
        taken.elapsed() < Duration::from_secs(3),
        "noticed within a renewal period: {:?}",
        taken.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lost the lock"), "{stderr}");
    let alive = Command::new("kill")
        .args(["-0", &pid])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(!alive, "the command was terminated");
    assert_eq!(
        server.get("job").as_deref(),
        Some("someone-else"),
        "the new holder is untouched"
    );
    let _ = std::fs::remove_file(pid_file);
}

#[test]
fn sigterm_to_lockrun_is_passed_on_and_the_lock_released_after() {
    let server = RedisServer::start();
    let marker = temp_file("term.marker");
    let script = format!(
        "trap 'echo got-term > {}; exit 0' TERM; while true; do sleep 0.05; done",
        marker.display()
    );
    let child = lockrun(&server, &["--key", "job", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.exists("job"));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "the command's own exit code");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "got-term\n");
    assert!(!server.exists("job"), "released once the command exited");
    let _ = std::fs::remove_file(marker);
}

#[test]
fn bad_arguments_exit_64_with_usage_and_an_unreachable_server_69() {
    let server = RedisServer::start();
    for args in [
        &["--", "true"][..],
        &["--key", "job"],
        &["--key", "job", "--ttl", "ten", "--", "true"],
        &["--bogus"],
    ] {
        let out = run(lockrun(&server, args));
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--help"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(lockrun(&server, &["--key", "", "--", "true"]));
    assert_eq!(out.status.code(), Some(64));
    // Asked for: the usage on stdout, success; after `--` it is the
    // command's.
    for help in ["--help", "-h"] {
        let out = run(lockrun(&server, &[help]));
        assert_eq!(out.status.code(), Some(0), "{help}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Usage: lockrun"), "{help}");
        assert!(help.ends_with('\n'), "{help:?}");
    }
    let out = run(lockrun(&server, &["--key", "job", "--", "echo", "-h"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "-h\n");
    server.stop();
    let out = run(lockrun(&server, &["--key", "job", "--", "echo", "never"]));
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn fences_strictly_increase_across_runs() {
    let server = RedisServer::start();
    let mut fences = Vec::new();
    for _ in 0..5 {
        let out = run(lockrun(
            &server,
            &[
                "--key",
                "job",
                "--fence",
                "--",
                "sh",
                "-c",
                "echo $LOCKRUN_FENCE",
            ],
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fence: u64 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .expect("LOCKRUN_FENCE is a number");
        fences.push(fence);
    }
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");
    let out = run(lockrun(
        &server,
        &[
            "--key",
            "job",
            "--",
            "sh",
            "-c",
            "echo ${LOCKRUN_FENCE:-unset}",
        ],
    ));
    assert_eq!(out.stdout, b"unset\n", "no fence without --fence");
}

#[test]
fn a_three_node_quorum_with_one_node_down_still_runs_and_excludes() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    servers[2].stop();
    let quorum = |args: &[&str]| {
        let mut command = Command::new(lockrun_bin());
        for server in &servers {
            command.arg("--url").arg(server.url());
        }
        command.args(args).env_remove("REDIS_URL");
        command
    };
    let started_file = temp_file("quorum.started");
    let script = format!("touch {}; sleep 3", started_file.display());
    let mut holder = quorum(&["--key", "job", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    // Connecting waits out the down node's short reconnect attempts. The
    // command started: the keys are not those of a timed-out attempt.
    let started = Instant::now();
    while !(started_file.exists() && servers[0].exists("job") && servers[1].exists("job")) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never held on the 2 live nodes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let busy = run(quorum(&["--key", "job", "--", "echo", "never"]));
    assert_eq!(
        busy.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(holder.wait().unwrap().success());
    let out = run(quorum(&["--key", "job", "--", "echo", "ran"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"ran\n");
    assert!(!servers[0].exists("job") && !servers[1].exists("job"));

    // With 2 of 3 down there is no quorum: 69.
    servers[1].stop();
    let out = run(quorum(&["--key", "job", "--", "echo", "never"]));
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_password_in_the_url_never_reaches_lockruns_messages() {
    const SENTINEL: &str = "s3ntinel-pw-lockrun-77a1";
    let server = RedisServer::start();
    server.cmd(&["CONFIG", "SET", "requirepass", "the-real-one"]);
    let url = format!("redis://:{SENTINEL}@127.0.0.1:{}/", server.port());
    for use_env in [false, true] {
        let mut command = Command::new(lockrun_bin());
        if use_env {
            command.env("REDIS_URL", &url);
        } else {
            command.env_remove("REDIS_URL").arg("--url").arg(&url);
        }
        command.args(["--key", "secret", "--", "true"]);
        let output = run(command);
        assert_eq!(output.status.code(), Some(69), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("credentials"), "{stderr}");
        assert!(!stderr.contains(SENTINEL), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains(SENTINEL));
    }
}

#[test]
fn flock_flags_version_and_a_help_that_lists_every_exit_code() {
    let server = RedisServer::start();
    for wait in [
        &["--wait", "0"][..],
        &["-w", "0.5"],
        &["-n"],
        &["--wait", "300ms"],
    ] {
        let mut args = vec!["--key", "job"];
        args.extend_from_slice(wait);
        args.extend_from_slice(&["--", "echo", "ran"]);
        let out = run(lockrun(&server, &args));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{wait:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"ran\n");
    }
    let mut holder = lockrun(&server, &["--key", "job", "--", "sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = run(lockrun(
        &server,
        &["-n", "-E", "3", "--key", "job", "--", "echo", "never"],
    ));
    assert_eq!(out.status.code(), Some(3), "-E sets the busy code");
    assert!(String::from_utf8_lossy(&out.stderr).contains("busy"));
    let out = run(lockrun(
        &server,
        &["-q", "--key", "job", "-w", "0.2", "--", "echo", "never"],
    ));
    assert_eq!(out.status.code(), Some(75));
    assert!(
        out.stderr.is_empty() && out.stdout.is_empty(),
        "-q: nothing when busy"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    let out = run(lockrun(&server, &["--version"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("lockrun {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = run(lockrun(&server, &["--help"]));
    let help = String::from_utf8_lossy(&out.stdout);
    for code in ["64", "69", "70", "75", "126", "127", "128+N", "SIGUSR1"] {
        assert!(help.contains(code), "{code} in {help}");
    }
    assert!(help.ends_with(".\n"), "{help:?}");
}

#[test]
fn an_empty_redis_url_counts_as_unset() {
    // `REDIS_URL= lockrun ...` is the default server, not a bad URL (64).
    // Nothing listens on port 6379 in the tests unless a user runs one
    // there: then the command runs.
    let mut command = Command::new(lockrun_bin());
    command
        .env("REDIS_URL", "")
        .args(["--key", "job", "--nonblock", "--", "true"]);
    let out = run(command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 69 | 75)), "{stderr}");
    assert!(!stderr.contains("parse"), "{stderr}");
}

#[test]
fn a_bad_url_or_one_server_given_twice_is_a_usage_error() {
    let server = RedisServer::start();
    let port = server.port().to_string();
    for urls in [
        vec!["http://127.0.0.1:6379/".to_owned()],
        vec!["redis://127.0.0.1:99999/".to_owned()],
        vec![
            format!("redis://127.0.0.1:{port}/"),
            format!("redis://localhost:{port}/"),
            "redis://127.0.0.1:1/".to_owned(),
        ],
    ] {
        let mut command = Command::new(lockrun_bin());
        for url in &urls {
            command.arg("--url").arg(url);
        }
        command
            .args(["--key", "job", "--", "echo", "never"])
            .env_remove("REDIS_URL");
        let started = Instant::now();
        let out = run(command);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{urls:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn a_server_pause_or_outage_within_the_wait_is_waited_out_and_69_comes_after_the_wait() {
    let server = RedisServer::start();
    let ran_after = |server: &RedisServer, down: fn(&RedisServer), up: fn(&RedisServer), for_ms| {
        down(server);
        let started = Instant::now();
        let child = lockrun(
            server,
            &["--key", "job", "--wait", "5", "--", "echo", "ran"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(for_ms));
        up(server);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"ran\n");
        assert!(started.elapsed() >= Duration::from_millis(for_ms));
    };
    // Paused (SIGSTOP) for 0.5 s: connections are accepted and answered
    // late.
    ran_after(&server, RedisServer::pause, RedisServer::resume, 500);
    // Down for 1.5 s, longer than the library's own connection retries
    // (about 0.5 s): the first attempts are refused and only lockrun's
    // retrying within --wait runs the command.
    ran_after(&server, RedisServer::stop, RedisServer::restart, 1_500);

    server.stop();
    let started = Instant::now();
    let out = run(lockrun(
        &server,
        &["--key", "job", "--wait", "2", "--", "echo", "never"],
    ));
    assert_eq!(out.status.code(), Some(69));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retried for the whole wait: {:?}",
        started.elapsed()
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn status_says_free_or_held_by_whom_and_for_how_long() {
    let server = RedisServer::start();
    let status = |server: &RedisServer| run(lockrun(server, &["--status", "--key", "job"]));
    let out = status(&server);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("free"));

    let mut holder = lockrun(
        &server,
        &["--key", "job", "--ttl", "20s", "--", "sleep", "3"],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = status(&server);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(75), "{text}");
    assert!(
        text.contains("redis-mutex") && text.contains("expires in 1"),
        "{text}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    server.cmd(&["SET", "job", "someone-else", "PX", "60000"]);
    let out = status(&server);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(75));
    assert!(
        text.contains("another library") && text.contains("expires in"),
        "{text}"
    );
    server.cmd(&["SET", "job", "someone-else"]);
    let text = String::from_utf8_lossy(&status(&server).stdout).into_owned();
    assert!(text.contains("no expiry"), "{text}");
}

#[test]
fn a_password_appears_on_no_output_path() {
    const PW: &str = "s3ntinel-pw-lockrun-path-93c2";
    let server = RedisServer::start();
    server.cmd(&["CONFIG", "SET", "requirepass", PW]);
    let good = format!("redis://:{PW}@127.0.0.1:{}/", server.port());
    let bad_url = format!("http://:{PW}@127.0.0.1:{}/", server.port());
    let down = format!("redis://:{PW}@127.0.0.1:1/");
    let twice = format!("redis://:{PW}@localhost:{}/", server.port());
    let misspelt = format!("--urll={good}");
    let mut holder = Command::new(lockrun_bin())
        .args(["--url", &good, "--key", "held", "--", "sleep", "3"])
        .env_remove("REDIS_URL")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (
            vec!["--url", &good, "--key", "job", "--", "sh", "-c", "echo ran"],
            0,
        ),
        (vec!["--url", &good, "--key", "held", "--", "true"], 75),
        (vec!["--url", &good, "--status", "--key", "held"], 75),
        (
            vec!["--url", &good, "--key", "job", "--", "/nonexistent/cmd"],
            127,
        ),
        (vec!["--url", &bad_url, "--key", "job", "--", "true"], 64),
        (
            vec![
                "--url", &good, "--url", &twice, "--url", &down, "--key", "job", "--", "true",
            ],
            64,
        ),
        (vec!["--ttl", &good, "--key", "job", "--", "true"], 64),
        (vec![&misspelt, "--key", "job", "--", "true"], 64),
        (vec!["--url", &down, "--key", "job", "--", "true"], 69),
    ];
    for (args, code) in cases {
        let mut command = Command::new(lockrun_bin());
        command.args(&args).env_remove("REDIS_URL");
        let out = run(command);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(PW), "{code}: {all}");
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn status_shows_the_fence_counter_none_before_a_fenced_run_and_its_value_after() {
    let server = RedisServer::start();
    for (key, fence_key) in [("job", "{job}:fence"), ("{t}:job", "{t}:job:fence")] {
        let status = || {
            let out = run(lockrun(&server, &["--status", "--key", key]));
            assert_eq!(out.status.code(), Some(0), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let text = status();
        assert!(text.contains("fence counter: none"), "{key}: {text}");
        for _ in 0..2 {
            let out = run(lockrun(&server, &["--key", key, "--fence", "--", "true"]));
            assert!(out.status.success(), "{out:?}");
        }
        assert_eq!(server.get(fence_key).as_deref(), Some("2"));
        let text = status();
        assert!(
            text.contains("fence counter: 2") && text.contains(fence_key),
            "{key}: {text}"
        );
    }
    // A key that no fence key can share a slot with: free, and no counter
    // (not a usage error).
    let out = run(lockrun(&server, &["--status", "--key", "a}b"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text.contains("free") && text.contains("fence counter: none"),
        "{text}"
    );
}

#[test]
fn verbose_shows_what_it_waits_for_and_the_lease_left_and_a_pipe_without_it_stays_quiet() {
    let server = RedisServer::start();
    for verbose in [true, false] {
        let mut holder = lockrun(
            &server,
            &["--key", "job", "--ttl", "20s", "--", "sleep", "1.5"],
        )
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut args = vec!["--key", "job", "--wait", "10", "--", "echo", "ran"];
        if verbose {
            args.insert(0, "--verbose");
        }
        let out = run(lockrun(&server, &args));
        assert!(holder.wait().unwrap().success());
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"ran\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !verbose {
            assert!(stderr.is_empty(), "nothing on a pipe: {stderr:?}");
            continue;
        }
        // Redrawn in place: several lines, each after a carriage return.
        let lines: Vec<&str> = stderr
            .split('\r')
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(lines.len() >= 2, "redrawn about every 250 ms: {stderr:?}");
        for line in &lines {
            assert!(line.contains("waiting for \"job\""), "{stderr:?}");
        }
        // The holder renews a 20 s lease: 1x.ys left.
        let left = lines[0]
            .split("lease has ")
            .nth(1)
            .and_then(|rest| rest.split("s left").next())
            .and_then(|figure| figure.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no lease figure in {:?}", lines[0]));
        assert!((10.0..=20.0).contains(&left), "{left} in {stderr:?}");
        assert!(!stderr.contains('\n'), "one line only: {stderr:?}");
        assert!(
            stderr.ends_with('\r') && stderr.rsplit('\r').nth(1).unwrap().trim().is_empty(),
            "cleared once acquired: {stderr:?}"
        );
    }
}

#[test]
fn on_a_terminal_the_waiting_line_shows_without_verbose_and_not_with_quiet() {
    // util-linux script(1) runs lockrun on a pseudo-terminal.
    if Command::new("script").arg("--version").output().is_err() {
        return skipped("no script(1) to give lockrun a terminal");
    }
    let server = RedisServer::start();
    for quiet in [false, true] {
        let mut holder = lockrun(
            &server,
            &["--key", "job", "--ttl", "20s", "--", "sleep", "1.2"],
        )
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let line = format!(
            "'{}' --url '{}' {} --key job --wait 10 -- echo ran",
            lockrun_bin().display(),
            server.url(),
            if quiet { "-q" } else { "" }
        );
        let out = run({
            let mut command = Command::new("script");
            command
                .args(["-q", "-e", "-c", &line, "/dev/null"])
                .env_remove("REDIS_URL");
            command
        });
        assert!(holder.wait().unwrap().success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(text.contains("ran"), "{text:?}");
        assert_eq!(
            text.contains("waiting for \"job\"") && text.contains("s left"),
            !quiet,
            "quiet: {quiet}: {text:?}"
        );
    }
}
