//! The public `redis_mutex::test_server` module as a user's test sees it:
//! a server, N servers for a Redlock, the errors when redis-server is
//! missing or will not start (with its log), the log tail printed by a
//! server dropped in a failing test, and the `REDIS_SERVER_BIN` override.
//! (The rest of the suite uses the module through `tests/support`.)

use std::process::Command;

use redis_mutex::Lock;
use redis_mutex::test_server::{REDIS_SERVER_BIN, RedisServer, ServerError};

/// Which scenario a child process of this test binary runs.
const SCENARIO_ENV: &str = "REDIS_MUTEX_TEST_SERVER_SCENARIO";

/// Runs `scenario` (an ignored test below) in a child process with `env`
/// set (and no `REDIS_SERVER_BIN` but one given there); returns whether it
/// passed and what it wrote to stderr.
fn child(scenario: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            scenario,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove(REDIS_SERVER_BIN)
        .env(SCENARIO_ENV, scenario);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_server_serves_locks_and_goes_with_its_process_and_directory() {
    let server = RedisServer::start().unwrap();
    let pid = server.pid().unwrap();
    let dir = server.dir().to_path_buf();
    let lock = Lock::builder("jobs:import")
        .connect(server.url())
        .await
        .unwrap();
    let guard = lock.acquire().await.unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none());
    guard.release().await.unwrap();
    assert!(server.log().contains("Ready to accept connections"));
    drop(server);
    let alive = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(!alive, "redis-server {pid} outlived its RedisServer");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[tokio::test]
async fn start_many_gives_a_redlock_its_independent_servers() {
    let servers = RedisServer::start_many(3).unwrap();
    let lock = Lock::builder("jobs:import")
        .connect_quorum(servers.iter().map(RedisServer::url))
        .await
        .unwrap();
    assert_eq!(lock.node_count(), 3);
    lock.acquire().await.unwrap().release().await.unwrap();
}

/// `pause` returns once the server is frozen, not when the signal is only
/// sent: right after `kill(2)` a thread of the server is often still running
/// (a third of the time here), and a test that counts on the stall then
/// sees an answer. Read off `/proc`, so Linux only.
#[cfg(target_os = "linux")]
#[test]
fn pause_returns_once_every_thread_of_the_server_is_stopped() {
    let server = RedisServer::start().unwrap();
    let pid = server.pid().unwrap();
    let states = || -> Vec<char> {
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        threads
            .map(|thread| {
                let stat = std::fs::read_to_string(thread.unwrap().path().join("stat")).unwrap();
                let (_, rest) = stat.rsplit_once(')').unwrap();
                rest.trim_start().chars().next().unwrap()
            })
            .collect()
    };
    for _ in 0..50 {
        server.pause().unwrap();
        let now = states();
        assert!(
            now.iter().all(|state| matches!(state, 'T' | 't')),
            "paused, but its threads are {now:?}"
        );
        server.resume().unwrap();
    }
    let mut connection = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = redis::cmd("PING").query(&mut connection).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_server_that_will_not_start_is_an_error_with_its_log() {
    let err = RedisServer::start_with(&["--no-such-directive", "1"]).unwrap_err();
    assert!(matches!(err, ServerError::NotReady { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("exited"), "{message}");
    assert!(
        message.contains("no-such-directive"),
        "no server log in: {message}"
    );
}

#[test]
fn without_redis_server_the_error_says_how_to_install_it() {
    let (passed, stderr) = child("scenario_missing_server", &[("PATH", "/nonexistent")]);
    assert!(passed, "{stderr}");
    let (passed, stderr) = child(
        "scenario_bad_override",
        &[(REDIS_SERVER_BIN, "/nonexistent/redis-server")],
    );
    assert!(passed, "{stderr}");
}

#[test]
fn the_override_picks_the_binary() {
    let bin = redis_mutex::test_server::server_bin().unwrap();
    let (passed, stderr) = child(
        "scenario_override",
        &[
            (REDIS_SERVER_BIN, bin.to_str().unwrap()),
            ("PATH", "/nonexistent"),
        ],
    );
    assert!(passed, "{stderr}");
}

#[test]
fn a_server_dropped_in_a_failing_test_prints_its_log_tail() {
    let (passed, stderr) = child("scenario_panics_with_a_server", &[]);
    assert!(!passed, "the scenario panics");
    assert!(stderr.contains("==== redis-server log (port"), "{stderr}");
    assert!(stderr.contains("Ready to accept connections"), "{stderr}");
}

#[test]
#[ignore = "run by without_redis_server_the_error_says_how_to_install_it"]
fn scenario_missing_server() {
    assert!(std::env::var(SCENARIO_ENV).is_ok(), "a child scenario");
    let err = RedisServer::start().unwrap_err();
    assert!(matches!(err, ServerError::NotInstalled), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("apt-get install redis-server"),
        "{message}"
    );
    assert!(message.contains(REDIS_SERVER_BIN), "{message}");
    // What a test returning `Result<_, Box<dyn Error>>` prints on `?`.
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    let printed = format!("{boxed:?}");
    assert!(
        printed.contains("apt-get install redis-server"),
        "{printed}"
    );
}

#[test]
#[ignore = "run by without_redis_server_the_error_says_how_to_install_it"]
fn scenario_bad_override() {
    assert!(std::env::var(SCENARIO_ENV).is_ok(), "a child scenario");
    let err = RedisServer::start().unwrap_err();
    assert!(matches!(err, ServerError::BadOverride(_)), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/redis-server"),
        "{err}"
    );
}

#[test]
#[ignore = "run by the_override_picks_the_binary"]
fn scenario_override() {
    assert!(std::env::var(SCENARIO_ENV).is_ok(), "a child scenario");
    let server = RedisServer::start().unwrap();
    let mut con = server.client().get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
#[ignore = "run by a_server_dropped_in_a_failing_test_prints_its_log_tail"]
fn scenario_panics_with_a_server() {
    assert!(std::env::var(SCENARIO_ENV).is_ok(), "a child scenario");
    let _server = RedisServer::start().unwrap();
    panic!("a failing test");
}
