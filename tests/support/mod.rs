//! Test harness: real `redis-server` processes for integration tests and benches.
//!
//! Included from `tests/*.rs` with `mod support;` and from `benches/lock.rs` with
//! `#[path = "../tests/support/mod.rs"] mod support;`. Uses only std, tokio and redis.
//!
//! Every [`RedisServer`] is fully independent (own port, own temp dir, own process), so
//! tests running in parallel on the threads of one test binary never share state.
//! Failures panic with a clear message: this is test support, not library code.
#![allow(dead_code)]

pub mod cluster;
pub mod proxy;
pub mod tls;

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variable that overrides the `redis-server` binary to run.
pub const REDIS_SERVER_BIN_ENV: &str = "REDIS_SERVER_BIN";

/// How long to wait for a freshly spawned server to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many different ports `start` tries before giving up (port-picking race).
const START_ATTEMPTS: usize = 8;
/// How long `restart` keeps retrying the same port (e.g. TIME_WAIT, port briefly taken).
const RESTART_RETRY_FOR: Duration = Duration::from_secs(5);
/// Connect timeout of the harness's own sync connections.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Read/write timeout of the harness's own sync connections.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of server log printed when a server is dropped during a panic.
const LOG_TAIL_LINES: usize = 100;

// ---------------------------------------------------------------------------------------------
// Temp dir
// ---------------------------------------------------------------------------------------------

/// A directory under `std::env::temp_dir()`, removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, unique directory. `tag` ends up in the name (e.g. the port).
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!(
                "redis-mutex-test-{}-{}-{}",
                std::process::id(),
                n,
                tag
            ));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                // Leftover from an earlier run whose pid got reused: pick the next counter.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create temp dir {}: {e}", path.display()),
            }
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// RedisServer
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct State {
    /// `None` once stopped (and reaped).
    child: Option<Child>,
    /// Whether we sent SIGSTOP without a matching SIGCONT.
    paused: bool,
}

/// A `redis-server` child process on 127.0.0.1 with its own port and temp dir.
///
/// All controls take `&self`, so a server can be shared (e.g. in an `Arc`) between tasks.
/// Dropping it resumes (if paused), kills and reaps the process and removes the temp dir;
/// if the current thread is panicking, the tail of the server log is printed to stderr first.
pub struct RedisServer {
    port: u16,
    bin: PathBuf,
    extra_args: Vec<String>,
    state: Mutex<State>,
    // Declared last: removed after the process has been killed in `Drop::drop`.
    dir: TempDir,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.dir.path)
            .finish_non_exhaustive()
    }
}

/// Why one start attempt did not produce a ready server.
enum StartFailure {
    /// The process exited (typically: port already in use).
    Exited(ExitStatus),
    /// Still running but not answering as itself before the deadline.
    Timeout,
}

impl RedisServer {
    /// Starts a server with the default arguments. Panics if it cannot be started.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments appended to the defaults,
    /// e.g. `&["--maxmemory", "10mb"]`. Panics if it cannot be started.
    pub fn start_with(args: &[&str]) -> RedisServer {
        let bin = server_bin();
        let extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let dir = TempDir::new(&port.to_string());
            let mut child = spawn(&bin, port, dir.path(), &extra_args);
            match wait_ready(&mut child, port, READY_TIMEOUT) {
                Ok(()) => {
                    return RedisServer {
                        port,
                        bin,
                        extra_args,
                        state: Mutex::new(State {
                            child: Some(child),
                            paused: false,
                        }),
                        dir,
                    };
                }
                Err(StartFailure::Exited(status)) => {
                    // Most likely lost the race for the port: try another one.
                    last_log = format!(
                        "redis-server on port {port} exited with {status}:\n{}",
                        read_log(dir.path())
                    );
                }
                Err(StartFailure::Timeout) => {
                    kill_and_reap(&mut child);
                    panic!(
                        "redis-server on port {port} was not ready within {READY_TIMEOUT:?}\n\
                         ---- server log ----\n{}",
                        read_log(dir.path())
                    );
                }
            }
        }
        panic!(
            "could not start redis-server after {START_ATTEMPTS} attempts; last failure: {last_log}"
        );
    }

    /// The TCP port the server listens on (on 127.0.0.1). Stable across `restart`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A client for [`url`](Self::url).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis url")
    }

    /// A fresh multiplexed async connection. Panics if it cannot connect.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to redis on port {}: {e}", self.port))
    }

    /// A fresh connection manager (reconnects after errors). Panics if it cannot connect.
    pub async fn manager(&self) -> redis::aio::ConnectionManager {
        redis::aio::ConnectionManager::new(self.client())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create connection manager for port {}: {e}",
                    self.port
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
        self.try_sync_conn()
            .unwrap_or_else(|e| panic!("cannot connect (sync) to redis on port {}: {e}", self.port))
    }

    /// Pid of the current server process. Panics if the server is stopped.
    pub fn pid(&self) -> u32 {
        self.state()
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("redis-server on port {} is stopped", self.port))
    }

    /// The server's temp dir (its `--dir`, containing `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Contents of the server log (`redis.log`, followed by anything the process wrote
    /// to stdout/stderr, e.g. fatal config errors). Includes all runs across restarts.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Whether the process is alive (a paused process counts as running).
    pub fn is_running(&self) -> bool {
        let mut st = self.state();
        match st.child.as_mut() {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    /// Whether the process is currently paused with [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.state().paused
    }

    /// Freezes the server (SIGSTOP). The kernel still accepts TCP connections, but
    /// nothing is answered until [`resume`](Self::resume). Panics if stopped.
    pub fn pause(&self) {
        let mut st = self.state();
        let pid = st
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("pause: redis-server on port {} is stopped", self.port));
        send_signal("STOP", pid);
        st.paused = true;
    }

    /// Unfreezes a paused server (SIGCONT). Panics if stopped.
    pub fn resume(&self) {
        let mut st = self.state();
        let pid = st
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("resume: redis-server on port {} is stopped", self.port));
        send_signal("CONT", pid);
        st.paused = false;
    }

    /// Kills the server (SIGKILL) and waits for it. It stays stopped until
    /// [`restart`](Self::restart). No-op if already stopped. Data is lost (no persistence).
    pub fn stop(&self) {
        let mut st = self.state();
        if let Some(mut child) = st.child.take() {
            kill_and_reap(&mut child);
        }
        st.paused = false;
    }

    /// Starts the server again on the SAME port and temp dir (stopping it first if it is
    /// still running) and waits until it is ready. Retries for a few seconds if the port
    /// cannot be bound yet. The new server starts empty.
    pub fn restart(&self) {
        self.stop();
        let mut st = self.state();
        let deadline = Instant::now() + RESTART_RETRY_FOR;
        loop {
            let mut child = spawn(&self.bin, self.port, self.dir.path(), &self.extra_args);
            match wait_ready(&mut child, self.port, READY_TIMEOUT) {
                Ok(()) => {
                    st.child = Some(child);
                    st.paused = false;
                    return;
                }
                Err(StartFailure::Exited(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartFailure::Exited(status)) => panic!(
                    "restart: redis-server on port {} kept exiting (last: {status}) for \
                     {RESTART_RETRY_FOR:?}\n---- server log ----\n{}",
                    self.port,
                    self.log()
                ),
                Err(StartFailure::Timeout) => {
                    kill_and_reap(&mut child);
                    panic!(
                        "restart: redis-server on port {} was not ready within \
                         {READY_TIMEOUT:?}\n---- server log ----\n{}",
                        self.port,
                        self.log()
                    );
                }
            }
        }
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
            .unwrap_or_else(|e| panic!("redis (port {}) {args:?} failed: {e}", self.port))
    }

    /// Runs a command and converts its reply, panicking on error.
    fn query<T: redis::FromRedisValue>(&self, c: &redis::Cmd) -> T {
        let mut con = self.sync_conn();
        c.query(&mut con)
            .unwrap_or_else(|e| panic!("redis (port {}) {c:?} failed: {e}", self.port))
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

    fn state(&self) -> MutexGuard<'_, State> {
        // Never let a poisoned lock (a test panicked mid-call) stop us from cleaning up.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = st.child.take() {
            if st.paused {
                send_signal_quiet("CONT", child.id());
            }
            kill_and_reap(&mut child);
        }
        if thread::panicking() {
            let log = read_log(self.dir.path());
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "==== redis-server log (port {}, last {} lines) ====\n{}\n==== end of redis-server log (port {}) ====",
                self.port,
                tail.len(),
                tail.join("\n"),
                self.port
            );
        }
        // `self.dir` (TempDir) is removed when the fields are dropped, right after this.
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `$REDIS_SERVER_BIN`, else `redis-server` found on `PATH`; panics with install hints.
fn server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os(REDIS_SERVER_BIN_ENV) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "{REDIS_SERVER_BIN_ENV}={} does not point to a file",
            bin.display()
        );
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server not found on PATH. The integration tests and benches need a real \
                 Redis server: install it (e.g. `apt-get install redis-server`, \
                 `brew install redis`) or set {REDIS_SERVER_BIN_ENV}=/path/to/redis-server"
            )
        })
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

/// Asks the OS for a free port on 127.0.0.1 (racy by nature: callers retry).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

fn spawn(bin: &Path, port: u16, dir: &Path, extra: &[String]) -> Child {
    let log_file = dir.join("redis.log");
    let stdio_file = |name: &str| {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    Command::new(bin)
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log_file)
        .args(["--enable-debug-command", "local"])
        .args(["--daemonize", "no"])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdio_file("stdout.log"))
        .stderr(stdio_file("stdout.log"))
        .spawn()
        .unwrap_or_else(|e| {
            if e.kind() == ErrorKind::NotFound {
                panic!(
                    "cannot run {}: not found. Install Redis (e.g. `apt-get install \
                     redis-server`) or set {REDIS_SERVER_BIN_ENV}",
                    bin.display()
                )
            }
            panic!("cannot spawn {}: {e}", bin.display())
        })
}

/// Polls until the server on `port` answers and is *our* child (its `process_id` matches,
/// so a server of another test that grabbed the port is not mistaken for ours).
fn wait_ready(child: &mut Child, port: u16, timeout: Duration) -> Result<(), StartFailure> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let url = format!("redis://127.0.0.1:{port}/");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartFailure::Exited(status));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            && server_pid(&url) == Some(child.id())
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StartFailure::Timeout);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `process_id` from `INFO server`, if the server answers (PING, then INFO).
fn server_pid(url: &str) -> Option<u32> {
    let client = redis::Client::open(url).ok()?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    con.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    con.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    let pong: String = redis::cmd("PING").query(&mut con).ok()?;
    if pong != "PONG" {
        return None;
    }
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
    info.lines()
        .find_map(|l| l.trim().strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
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

fn read_log(dir: &Path) -> String {
    let mut log = fs::read_to_string(dir.join("redis.log"))
        .unwrap_or_else(|e| format!("<no redis.log: {e}>\n"));
    if let Ok(out) = fs::read_to_string(dir.join("stdout.log"))
        && !out.trim().is_empty()
    {
        log.push_str("---- stdout/stderr ----\n");
        log.push_str(&out);
    }
    log
}

fn kill_and_reap(child: &mut Child) {
    // SIGKILL also works on a SIGSTOPped process.
    let _ = child.kill();
    let _ = child.wait();
}

/// `kill -SIG pid`, panicking on failure.
fn send_signal(sig: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `kill -{sig} {pid}`: {e}"));
    assert!(status.success(), "`kill -{sig} {pid}` failed: {status}");
}

/// `kill -SIG pid`, ignoring failures (for Drop).
fn send_signal_quiet(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
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
