//! Test harness: real `redis-server` processes for integration tests and benches.
//!
//! Included from `tests/*.rs` with `mod support;` and from `benches/*.rs` with
//! `#[path = "../tests/support/mod.rs"] mod support;`.
//!
//! The servers themselves are the library's [`redis_mutex::test_server`] (the crate's
//! `test-server` feature, which the dev-dependency on itself turns on for every test
//! build), so every test run tests that module too. This file wraps them for tests:
//! constructors and controls that panic with the error's message (server log included)
//! instead of returning it, and admin helpers (`cmd`, `get`, `pttl`, `command_calls`,
//! ...) on sync connections with short timeouts.
//!
//! Every [`RedisServer`] is fully independent (own port, own temp dir, own process), so
//! tests running in parallel on the threads of one test binary never share state.
#![allow(dead_code)]

pub mod child;
pub mod cluster;
pub mod proxy;
pub mod tls;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use redis_mutex::test_server;
pub use redis_mutex::test_server::TempDir;

/// Environment variable that overrides the `redis-server` binary to run.
pub const REDIS_SERVER_BIN_ENV: &str = test_server::REDIS_SERVER_BIN;

/// Connect timeout of the harness's own sync connections.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Read/write timeout of the harness's own sync connections.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`test_server::RedisServer`] whose controls panic on failure, with admin helpers.
/// Everything else (`dir`, `log`, `is_running`, `is_paused`, `stop`) is the library's,
/// through `Deref`; `port`, `url`, `client` and `stop` are forwarded by name too, for
/// paths such as `servers.iter().map(RedisServer::url)`.
#[derive(Debug)]
pub struct RedisServer(test_server::RedisServer);

impl Deref for RedisServer {
    type Target = test_server::RedisServer;

    fn deref(&self) -> &test_server::RedisServer {
        &self.0
    }
}

/// The value, or a panic with the error's message (which carries the server log).
fn or_panic<T>(result: Result<T, test_server::ServerError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

impl RedisServer {
    /// Starts a server with the default arguments. Panics if it cannot be started.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments appended to the defaults,
    /// e.g. `&["--maxmemory", "10mb"]`. Panics if it cannot be started.
    pub fn start_with(args: &[&str]) -> RedisServer {
        RedisServer(or_panic(test_server::RedisServer::start_with(args)))
    }

    /// Wraps a server of the library's (a cluster's).
    pub fn from_server(server: test_server::RedisServer) -> RedisServer {
        RedisServer(server)
    }

    /// The TCP port the server listens on (on 127.0.0.1). Stable across `restart`.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// A client for [`url`](Self::url).
    pub fn client(&self) -> redis::Client {
        self.0.client()
    }

    /// Kills the server (SIGKILL); it stays down until [`restart`](Self::restart).
    pub fn stop(&self) {
        self.0.stop()
    }

    /// A fresh multiplexed async connection. Panics if it cannot connect.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to redis on port {}: {e}", self.port()))
    }

    /// A fresh connection manager (reconnects after errors). Panics if it cannot connect.
    pub async fn manager(&self) -> redis::aio::ConnectionManager {
        redis::aio::ConnectionManager::new(self.client())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create connection manager for port {}: {e}",
                    self.port()
                )
            })
    }

    /// A fresh sync connection with a short connect timeout and read/write timeouts of a
    /// few seconds, so a paused or dead server makes it fail instead of hang.
    pub fn try_sync_conn(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client().get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    /// Like [`try_sync_conn`](Self::try_sync_conn), panicking on error.
    pub fn sync_conn(&self) -> redis::Connection {
        self.try_sync_conn().unwrap_or_else(|e| {
            panic!(
                "cannot connect (sync) to redis on port {}: {e}",
                self.port()
            )
        })
    }

    /// Pid of the current server process. Panics if the server is stopped.
    pub fn pid(&self) -> u32 {
        self.0
            .pid()
            .unwrap_or_else(|| panic!("redis-server on port {} is stopped", self.port()))
    }

    /// Freezes the server (SIGSTOP). Panics if stopped.
    pub fn pause(&self) {
        or_panic(self.0.pause())
    }

    /// Unfreezes a paused server (SIGCONT). Panics if stopped.
    pub fn resume(&self) {
        or_panic(self.0.resume())
    }

    /// Starts the server again on the SAME port and temp dir, empty. Panics on failure.
    pub fn restart(&self) {
        or_panic(self.0.restart())
    }

    /// Runs an arbitrary command on a fresh sync connection.
    /// e.g. `try_cmd(&["DEBUG", "SLEEP", "0.5"])`.
    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        assert!(!args.is_empty(), "cmd: empty command");
        let mut con = self.try_sync_conn()?;
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut con)
    }

    /// Like [`try_cmd`](Self::try_cmd), panicking on error,
    /// e.g. `cmd(&["SCRIPT", "FLUSH"])`, `cmd(&["HSET", "k", "f", "v"])`.
    pub fn cmd(&self, args: &[&str]) -> redis::Value {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis (port {}) {args:?} failed: {e}", self.port()))
    }

    /// Runs a command and converts its reply, panicking on error.
    fn query<T: redis::FromRedisValue>(&self, c: &redis::Cmd) -> T {
        let mut con = self.sync_conn();
        c.query(&mut con)
            .unwrap_or_else(|e| panic!("redis (port {}) {c:?} failed: {e}", self.port()))
    }

    /// `INFO <section>` as text.
    pub fn info(&self, section: &str) -> String {
        self.query(redis::cmd("INFO").arg(section))
    }

    /// Number of calls of a command since start / the last [`reset_stats`](Self::reset_stats),
    /// from `INFO commandstats` (`cmdstat_<name>:calls=N,...`). `name` is matched
    /// case-insensitively, e.g. `"set"`, `"evalsha"`, `"eval"`, `"script|load"`.
    /// Returns 0 for commands never called.
    pub fn command_calls(&self, name: &str) -> u64 {
        parse_command_calls(&self.info("commandstats"), name)
    }

    /// `CONFIG RESETSTAT` (zeroes `command_calls`).
    pub fn reset_stats(&self) {
        let _: () = self.query(redis::cmd("CONFIG").arg("RESETSTAT"));
    }

    /// `GET key` (string value).
    pub fn get(&self, key: &str) -> Option<String> {
        self.query(redis::cmd("GET").arg(key))
    }

    /// `EXISTS key`.
    pub fn exists(&self, key: &str) -> bool {
        self.query(redis::cmd("EXISTS").arg(key))
    }

    /// `PTTL key`: remaining ms, `-1` without expiry, `-2` if missing.
    pub fn pttl(&self, key: &str) -> i64 {
        self.query(redis::cmd("PTTL").arg(key))
    }
}

/// `$REDIS_SERVER_BIN`, else `redis-server` found on `PATH`; panics with install hints.
pub fn server_bin() -> PathBuf {
    or_panic(test_server::server_bin())
}

/// A fresh temp dir, removed on drop; panics if it cannot be made.
pub fn temp_dir(tag: &str) -> TempDir {
    or_panic(TempDir::new(tag))
}

/// Asks the OS for a free port on 127.0.0.1 (racy by nature: callers retry).
pub fn free_port() -> u16 {
    or_panic(test_server::free_port())
}

/// Says on the test process's stderr, past libtest's output capture (which
/// takes only `print!`/`eprint!`), that the running test checked nothing
/// and why: `SKIPPED <test>: <reason>`. The test then returns and shows as
/// passed, so this line is what tells a skip from a pass.
pub fn skipped(reason: &str) {
    use std::io::Write;
    let current = thread::current();
    let test = current.name().unwrap_or("<unnamed test>");
    let _ = writeln!(std::io::stderr(), "\nSKIPPED {test}: {reason}");
}

/// Parses the `calls=` count of `cmdstat_<name>` from `INFO commandstats` text (0 if absent).
pub fn parse_command_calls(info: &str, name: &str) -> u64 {
    let prefix = format!("cmdstat_{}:", name.to_ascii_lowercase());
    info.lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .and_then(|rest| {
            rest.split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `total_commands_processed` from `INFO stats`: every command run,
/// including the admin connection's own and those a script runs inside.
pub fn commands_processed(server: &RedisServer) -> u64 {
    let stats = server.info("stats");
    let line = stats
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .expect("INFO stats has total_commands_processed");
    line.trim().parse().expect("a number")
}

/// Completes after `n` trips through the scheduler; each lets the I/O driver
/// run, so an `acquire` raced against it gets cut off at every stage of its
/// life as `n` grows. (`tokio::time::timeout` cannot do this: its timer ticks
/// in milliseconds, longer than a loopback round trip.)
pub async fn yields(n: usize) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

/// The built `lockrun` binary (`--features cli`, plus the features this
/// test binary was built with) in the profile of this test binary, so that
/// under `cargo test --all-features` it is the binary `cargo test` itself
/// built (then this build is a no-op) and never a stale one of another
/// profile. Built once per test binary (`cargo test` builds the bin only
/// when its required `cli` feature is on); the path is the one cargo
/// reports. Built in the environment the user's `cargo test` had, or the
/// build would be dirty each time and the test binary calling this first
/// (cluster.rs in a full run) would wait out a rebuild of every dependency.
pub fn lockrun_bin() -> &'static PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "--bin", "lockrun"]);
        // Not the variables cargo sets for running this test: build scripts
        // that track one (ring's tracks CARGO_MANIFEST_DIR) would rebuild
        // the whole tree, and the next `cargo test` rebuild it back.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&name.as_ref())
            {
                build.env_remove(name.as_ref());
            }
        }
        build.args(["--message-format", "json-render-diagnostics"]);
        // target/<profile dir>/deps/<this test>: `debug` is the dev profile's.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .expect("the test binary lives in target/<profile>/deps");
        let profile = if profile_dir == "debug" {
            "dev"
        } else {
            profile_dir
        };
        build.args(["--profile", profile]);
        // The bin needs `cli`; it gets the features this test was built
        // with too, so that the library is built once for both.
        let features: Vec<&str> = [
            ("cli", true),
            ("tls", cfg!(feature = "tls")),
            ("cluster", cfg!(feature = "cluster")),
            ("tracing", cfg!(feature = "tracing")),
            ("metrics", cfg!(feature = "metrics")),
            ("blocking", cfg!(feature = "blocking")),
            // On in every test build (the dev-dependency on the crate itself),
            // which a `cargo build` has to be told.
            ("test-server", true),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        build.args(["--features", &features.join(",")]);
        let output = build.stderr(Stdio::inherit()).output().expect("cargo runs");
        assert!(
            output.status.success(),
            "building the lockrun binary failed"
        );
        // The artifact line: {"reason":"compiler-artifact",...,"executable":"..."}.
        let stdout = String::from_utf8_lossy(&output.stdout);
        let path = stdout
            .lines()
            .filter(|line| line.contains(r#""reason":"compiler-artifact""#))
            .filter(|line| line.contains(r#""name":"lockrun""#))
            .find_map(|line| line.split(r#""executable":""#).nth(1))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("cargo named no lockrun executable:\n{stdout}"));
        PathBuf::from(path)
    })
}

/// A connection to `server` that waits 5 s for answers, not the redis
/// crate's default 500 ms: for tests whose server holds answers back longer
/// (`WAIT`, a paused server).
pub async fn patient_conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
    server
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// The commands a server runs, in order, as `MONITOR` reports them (those
/// a script calls too, from `lua`), gathered by a thread until the server
/// goes.
pub struct Monitor {
    lines: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    /// Starts monitoring: commands from now on are seen.
    pub fn start(server: &RedisServer) -> Monitor {
        let mut con = server.sync_conn();
        con.set_read_timeout(None).unwrap();
        let () = redis::cmd("MONITOR").query(&mut con).unwrap();
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        thread::spawn(move || {
            while let Ok(value) = con.recv_response() {
                if let Ok(line) = redis::from_redis_value::<String>(value) {
                    sink.lock().unwrap().push(line);
                }
            }
        });
        Monitor { lines }
    }

    /// The lines seen so far, e.g. `1700000000.123456 [0 127.0.0.1:4242]
    /// "evalsha" "..." "1" "key" "token"`, or `... [0 lua] "DEL" "key"`.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Tasks alive on the current tokio runtime (its own metrics).
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (boundedly) until the runtime is back to `baseline` tasks: aborted
/// tasks are reaped on the runtime's next tick.
pub async fn settle_within(baseline: usize, bound: std::time::Duration) {
    let started = std::time::Instant::now();
    while alive_tasks() > baseline {
        assert!(
            started.elapsed() < bound,
            "{} tasks left over {baseline} after {bound:?}",
            alive_tasks()
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// Polls `condition` every 5 ms until it holds; panics with `what` after
/// `within`.
pub async fn eventually(
    within: std::time::Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + within;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The command that runs `test`, an `#[ignore]`d test of this same test
/// binary, alone in a child process: the way the tests put contenders in
/// other OS processes. The child reads what it needs from the environment
/// the caller adds; its output is not captured, so it shows in the parent's.
pub fn ignored_test_process(test: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    command
}

/// `lockrun --url <server> <args>`, with no `REDIS_URL` from the caller's
/// environment and stdin closed (a lockrun must not wait on a terminal).
pub fn lockrun(server: &RedisServer, args: &[&str]) -> Command {
    let mut command = Command::new(lockrun_bin());
    command
        .arg("--url")
        .arg(server.url())
        .args(args)
        .env_remove("REDIS_URL")
        .stdin(std::process::Stdio::null());
    command
}

/// Awaits `waiter`, a task blocked in an acquire when its holder was
/// released at `released`, and checks that the release woke it at once
/// (within 1 s, where a waiter that polls would sleep out its full
/// wait); panics if it hangs for 4 s.
pub async fn woken_at_once<T>(
    released: std::time::Instant,
    waiter: tokio::task::JoinHandle<T>,
) -> T {
    let got = tokio::time::timeout(std::time::Duration::from_secs(4), waiter)
        .await
        .expect("the waiter was not woken")
        .unwrap();
    assert!(
        released.elapsed() < std::time::Duration::from_secs(1),
        "woken {:?} after the release",
        released.elapsed()
    );
    got
}

/// The state of each thread of process `pid` (`R`, `S`, `T` for stopped,
/// ...), from `/proc/<pid>/task/*/stat`; empty where that cannot be read.
pub fn thread_states(pid: u32) -> Vec<char> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| {
            let stat = std::fs::read_to_string(thread.path().join("stat")).ok()?;
            // `pid (comm) state ...`: the state follows the last `)`.
            stat.rsplit_once(')')?.1.trim_start().chars().next()
        })
        .collect()
}

/// How many clients of `server` are subscribed to the (plain) `channel`.
pub fn subscribers(server: &RedisServer, channel: &str) -> i64 {
    let (_, count): (String, i64) =
        redis::from_redis_value(server.cmd(&["PUBSUB", "NUMSUB", channel])).unwrap();
    count
}

/// Releases `holder` and waits (10 s at most) for `waiter`, a task blocked
/// in `acquire`, to get the lock: its guard, and the time from the release
/// to the waiter's acquire returning.
pub async fn time_handoff(
    holder: redis_mutex::LockGuard,
    waiter: tokio::task::JoinHandle<redis_mutex::LockGuard>,
) -> (redis_mutex::LockGuard, std::time::Duration) {
    let released = std::time::Instant::now();
    holder.release().await.unwrap();
    let guard = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("the waiter hung")
        .unwrap();
    (guard, released.elapsed())
}

/// Releases `holder` and waits (10 s at most each) for every task of
/// `waiters` (tasks that take the lock in turn) to finish: the time from the
/// release to the last one.
pub async fn time_handoffs(
    holder: redis_mutex::LockGuard,
    waiters: Vec<tokio::task::JoinHandle<()>>,
) -> std::time::Duration {
    let released = std::time::Instant::now();
    holder.release().await.unwrap();
    for waiter in waiters {
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("a waiter hung")
            .unwrap();
    }
    released.elapsed()
}
