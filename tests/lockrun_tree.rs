//! lockrun and the command's process tree, with real processes, real
//! signals and a real redis-server: grandchildren are stopped before the
//! lock is released (on exit, on loss, on a signal), a signal reaches the
//! command once, and a killed lockrun takes its command with it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::RedisServer;

/// lockrun leading a process group of its own, as under a shell's job
/// control.
fn lockrun(server: &RedisServer, args: &[&str]) -> Command {
    let mut command = support::lockrun(server, args);
    command.process_group(0);
    command
}

use std::os::unix::process::CommandExt;

fn temp_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("lockrun-tree-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// The pid written to `file`, once it is there.
fn pid_in(file: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} never written",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: &str) -> bool {
    // A zombie (exited, not reaped yet) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn signal(sig: &str, target: &str) {
    let status = Command::new("kill")
        .args([sig, "--", target])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {target}");
}

/// Waits for `child` at most `limit`; kills it and panics after.
fn wait_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("lockrun still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn eventually_dead(pid: &str, within: Duration) -> bool {
    let started = Instant::now();
    while alive(pid) {
        if started.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// A script that leaves `sleep 30` behind in the background (and one that
/// ignores SIGTERM, once its trap is set: else a SIGTERM could come first
/// under load), writes both pids, then does `then`.
fn leave_grandchildren(pids: &Path, then: &str) -> String {
    format!(
        "sleep 30 & a=$!; (trap '' TERM; : > {0}.trapped; exec sleep 30) & b=$!; \
         while [ ! -e {0}.trapped ]; do sleep 0.01; done; \
         echo \"$a $b\" > {0}.tmp; mv {0}.tmp {0}; {then}",
        pids.display()
    )
}

fn grandchildren(pids: &Path) -> Vec<String> {
    let text = pid_in(pids);
    text.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn grandchildren_left_on_exit_are_stopped_before_the_lock_is_released() {
    let server = RedisServer::start();
    let pids = temp_file("exit.pids");
    let script = leave_grandchildren(&pids, "exit 4");
    let started = Instant::now();
    let mut child = lockrun(
        &server,
        &[
            "--key", "job", "--grace", "300ms", "--", "sh", "-c", &script,
        ],
    )
    .spawn()
    .unwrap();
    let status = wait_within(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(4), "the command's own exit code");
    for pid in grandchildren(&pids) {
        assert!(!alive(&pid), "grandchild {pid} outlived lockrun");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the one ignoring SIGTERM got SIGKILL only after the grace period"
    );
    assert!(!server.exists("job"));
    let _ = std::fs::remove_file(pids);
}

#[test]
fn grandchildren_are_stopped_when_the_lock_is_lost() {
    let server = RedisServer::start();
    let pids = temp_file("lost.pids");
    let script = leave_grandchildren(&pids, "wait");
    let mut child = lockrun(
        &server,
        &[
            "--key", "job", "--ttl", "600ms", "--grace", "300ms", "--", "sh", "-c", &script,
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let grandchildren = grandchildren(&pids);
    server.cmd(&["SET", "job", "someone-else", "PX", "60000"]);
    let status = wait_within(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(70));
    for pid in grandchildren {
        assert!(!alive(&pid), "grandchild {pid} outlived the lost lock");
    }
    assert_eq!(server.get("job").as_deref(), Some("someone-else"));
    let _ = std::fs::remove_file(pids);
}

#[test]
fn hup_int_quit_and_term_stop_the_whole_group_and_release_the_lock() {
    let server = RedisServer::start();
    for sig in ["HUP", "INT", "QUIT", "TERM"] {
        let pids = temp_file(&format!("{sig}.pids"));
        let script = leave_grandchildren(&pids, "wait");
        let mut child = lockrun(
            &server,
            &[
                "--key", "job", "--grace", "300ms", "--", "sh", "-c", &script,
            ],
        )
        .spawn()
        .unwrap();
        let grandchildren = grandchildren(&pids);
        assert!(server.exists("job"));
        signal(&format!("-{sig}"), &child.id().to_string());
        let status = wait_within(&mut child, Duration::from_secs(10));
        assert!(
            status.code().is_some(),
            "SIG{sig}: lockrun exited by itself: {status:?}"
        );
        for pid in grandchildren {
            assert!(!alive(&pid), "SIG{sig}: grandchild {pid} outlived lockrun");
        }
        assert!(
            !server.exists("job"),
            "SIG{sig}: released, not left to its TTL"
        );
        let _ = std::fs::remove_file(pids);
    }
}

#[test]
fn a_signal_to_lockruns_group_reaches_the_command_exactly_once() {
    let server = RedisServer::start();
    for sig in ["INT", "TERM"] {
        let log = temp_file(&format!("count-{sig}.log"));
        let ready = temp_file(&format!("count-{sig}.ready"));
        // Records every signal it gets, and keeps running.
        let counter = format!(
            "import os, signal, time\n\
             def seen(number, frame):\n    \
                 with open({log:?}, 'a') as f: f.write(signal.Signals(number).name + '\\n')\n\
             signal.signal(signal.SIGINT, seen)\n\
             signal.signal(signal.SIGTERM, seen)\n\
             open({ready:?}, 'w').write(str(os.getpid()) + '\\n')\n\
             while True: time.sleep(0.01)\n",
            log = log.display().to_string(),
            ready = ready.display().to_string(),
        );
        let mut child = lockrun(
            &server,
            &[
                "--key", "job", "--grace", "500ms", "--", "python3", "-c", &counter,
            ],
        )
        .spawn()
        .unwrap();
        pid_in(&ready);
        // As Ctrl-C or `kill -- -PGID` do: the whole group of lockrun.
        signal(&format!("-{sig}"), &format!("-{}", child.id()));
        let status = wait_within(&mut child, Duration::from_secs(10));
        assert_eq!(
            status.code(),
            Some(128 + 9),
            "SIG{sig}: killed after the grace period"
        );
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            seen,
            format!("SIG{sig}\n"),
            "SIG{sig}: exactly once, nothing else"
        );
        assert!(!server.exists("job"));
        let _ = std::fs::remove_file(log);
        let _ = std::fs::remove_file(ready);
    }
}

#[test]
fn a_killed_lockrun_takes_its_command_and_grandchildren_with_it() {
    let server = RedisServer::start();
    let pids = temp_file("killed.pids");
    let shell = temp_file("killed.shell");
    let script = format!(
        "echo $$ > {}; {}",
        shell.display(),
        leave_grandchildren(&pids, "wait")
    );
    let mut child = lockrun(&server, &["--key", "job", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    let mut processes = grandchildren(&pids);
    processes.push(pid_in(&shell));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for pid in processes {
        assert!(
            eventually_dead(&pid, Duration::from_secs(3)),
            "{pid} still runs without the lock after lockrun was SIGKILLed"
        );
    }
    let _ = std::fs::remove_file(pids);
    let _ = std::fs::remove_file(shell);
}
