//! One throwaway `redis-server` process (feature `test-server`): a free
//! port on 127.0.0.1, its own temporary directory, no persistence, killed
//! and removed on drop. See [`test_server`](crate::test_server).
//!
//! Invariants:
//! - A server is ours only once it answers with its own `process_id`, so a
//!   server of another test that won the race for a port is never taken
//!   for ours; a start that lost that race tries another port.
//! - Every process started is killed and reaped: on drop (resumed first if
//!   paused), by `stop`, and when a start gives up on it.
//! - Nothing here panics; failures are [`ServerError`]s that carry the
//!   server's log where there is one.

use std::fmt;
use std::fs;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The environment variable that picks the server binary to run instead of
/// `redis-server` on `PATH` (a Valkey `valkey-server`, a build of your own).
pub const REDIS_SERVER_BIN: &str = "REDIS_SERVER_BIN";

/// How long a freshly spawned server gets to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports a start tries before giving up (the race for a port).
const START_ATTEMPTS: usize = 8;
/// How long `restart` keeps trying the same port (`TIME_WAIT`, a port taken
/// for a moment).
const RESTART_RETRY_FOR: Duration = Duration::from_secs(5);
/// Lines of server log in errors, and printed when dropped in a panic.
const LOG_TAIL_LINES: usize = 100;
/// How long [`RedisServer::pause`] waits for every thread of the server to
/// stop after `SIGSTOP`.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a throwaway server could not be had.
///
/// `Debug` shows the same words as `Display` (the install command, the
/// server's log), since a test that returns `Result<_, Box<dyn Error>>`
/// prints its error with `Debug`.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// No `redis-server` on `PATH`, and no [`REDIS_SERVER_BIN`].
    #[error(
        "redis-server not found on PATH: install it (`apt-get install redis-server` on Debian and Ubuntu, `brew install redis` on macOS) or set {REDIS_SERVER_BIN}=/path/to/redis-server"
    )]
    NotInstalled,
    /// [`REDIS_SERVER_BIN`] names no file.
    #[error("{REDIS_SERVER_BIN}={} does not name a file", .0.display())]
    BadOverride(PathBuf),
    /// The binary could not be run.
    #[error("cannot run {}: {source}", .bin.display())]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server did not come up: it exited, or did not answer in time.
    #[error("redis-server on port {port} {what}\n---- server log (last lines) ----\n{log}")]
    NotReady {
        /// The port it was started on.
        port: u16,
        /// What happened, in words.
        what: String,
        /// The tail of its log.
        log: String,
    },
    /// A file system or process operation failed (a temporary directory, a
    /// signal).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A Redis Cluster of throwaway servers could not be formed.
    #[error("cannot form the test cluster: {0}")]
    Cluster(String),
}

impl fmt::Debug for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A directory under [`std::env::temp_dir`], removed with all it holds when
/// dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, unique directory; `tag` ends up in its name.
    pub fn new(tag: &str) -> Result<TempDir, ServerError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("redis-mutex-test-{}-{n}-{tag}", std::process::id());
            let path = base.join(name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                // Left by an earlier process of the same pid: the next one.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(ServerError::Io {
                        what: format!("cannot create {}", path.display()),
                        source,
                    });
                }
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

#[derive(Debug)]
struct State {
    /// `None` once stopped (and reaped).
    child: Option<Child>,
    /// Stopped by `pause` and not resumed since.
    paused: bool,
}

/// A throwaway `redis-server` on 127.0.0.1: its own free port, its own
/// temporary directory (its `--dir`, with `redis.log`), no persistence,
/// `DEBUG` allowed from local connections. Killed and its directory removed
/// when dropped; dropped while the thread panics (a failed test), it prints
/// the tail of its log to stderr first.
///
/// Every method takes `&self`, so one server can be shared by tasks (in an
/// `Arc`). Starting one blocks the thread until it answers (tens of
/// milliseconds): fine at the top of a `#[tokio::test]`.
pub struct RedisServer {
    port: u16,
    bin: PathBuf,
    extra_args: Vec<String>,
    state: Mutex<State>,
    // Last: removed after the process was killed (`Drop`).
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

/// Why one start attempt made no ready server.
enum StartFailure {
    /// The process exited (typically: its port was taken).
    Exited(ExitStatus),
    /// Still running, but not answering as itself in time.
    Timeout,
}

impl RedisServer {
    /// Starts a server with the default arguments.
    pub fn start() -> Result<RedisServer, ServerError> {
        RedisServer::start_with(&[])
    }

    /// Starts `n` independent servers, for a Redlock.
    pub fn start_many(n: usize) -> Result<Vec<RedisServer>, ServerError> {
        (0..n).map(|_| RedisServer::start()).collect()
    }

    /// Starts a server with `args` after the defaults (which they can
    /// override), e.g. `&["--maxmemory", "10mb"]`.
    pub fn start_with(args: &[&str]) -> Result<RedisServer, ServerError> {
        let bin = server_bin()?;
        let extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let dir = TempDir::new(&port.to_string())?;
            let mut child = spawn(&bin, port, dir.path(), &extra_args)?;
            match wait_ready(&mut child, port, READY_TIMEOUT) {
                Ok(()) => {
                    return Ok(RedisServer {
                        port,
                        bin,
                        extra_args,
                        state: Mutex::new(State {
                            child: Some(child),
                            paused: false,
                        }),
                        dir,
                    });
                }
                // Most likely lost the race for the port: another one.
                Err(StartFailure::Exited(_)) if attempt < START_ATTEMPTS => attempt += 1,
                Err(StartFailure::Exited(status)) => {
                    let what = format!("exited with {status} (the last of {attempt} tries)");
                    return Err(not_ready(port, what, dir.path()));
                }
                Err(StartFailure::Timeout) => {
                    kill_and_reap(&mut child);
                    let what = format!("was not ready within {READY_TIMEOUT:?}");
                    return Err(not_ready(port, what, dir.path()));
                }
            }
        }
    }

    /// The TCP port it listens on (on 127.0.0.1); the same after
    /// [`restart`](RedisServer::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A client for [`url`](RedisServer::url).
    pub fn client(&self) -> redis::Client {
        // A URL of our own making: always valid.
        match redis::Client::open(self.url()) {
            Ok(client) => client,
            Err(_) => unreachable!("redis://127.0.0.1:PORT/ is a valid URL"),
        }
    }

    /// The pid of the server process; `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.state().child.as_ref().map(Child::id)
    }

    /// The server's temporary directory (its `--dir`, with `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log (`redis.log`, then anything it wrote to stdout or stderr,
    /// such as a fatal configuration error), over every run since
    /// [`start`](RedisServer::start).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Whether the process is alive (a paused one is).
    pub fn is_running(&self) -> bool {
        let mut state = self.state();
        match state.child.as_mut() {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    /// Whether it is [paused](RedisServer::pause).
    pub fn is_paused(&self) -> bool {
        self.state().paused
    }

    /// Freezes the server (`SIGSTOP`): connections are still accepted by
    /// the kernel, nothing is answered until [`resume`](RedisServer::resume).
    /// For tests of timeouts and stalls. Unix only. On Linux it returns once
    /// every thread of the server is stopped: `kill(2)` returns when the
    /// signal is sent, and right after it a thread is often still running.
    pub fn pause(&self) -> Result<(), ServerError> {
        let mut state = self.state();
        signal(&state, Signal::Stop, self.port)?;
        state.paused = true;
        wait_stopped(&state, self.port)
    }

    /// Unfreezes a paused server (`SIGCONT`). Unix only.
    pub fn resume(&self) -> Result<(), ServerError> {
        let mut state = self.state();
        signal(&state, Signal::Continue, self.port)?;
        state.paused = false;
        Ok(())
    }

    /// Kills the server (`SIGKILL`) and reaps it; it stays down until
    /// [`restart`](RedisServer::restart), its data lost. Does nothing when
    /// stopped already.
    pub fn stop(&self) {
        let mut state = self.state();
        if let Some(mut child) = state.child.take() {
            kill_and_reap(&mut child);
        }
        state.paused = false;
    }

    /// Starts the server again on the same port and directory (stopping it
    /// first if it runs), empty, and waits until it answers; tries the port
    /// again for a few seconds while it cannot be bound.
    pub fn restart(&self) -> Result<(), ServerError> {
        self.stop();
        let mut state = self.state();
        let deadline = Instant::now() + RESTART_RETRY_FOR;
        loop {
            let mut child = spawn(&self.bin, self.port, self.dir.path(), &self.extra_args)?;
            match wait_ready(&mut child, self.port, READY_TIMEOUT) {
                Ok(()) => {
                    state.child = Some(child);
                    state.paused = false;
                    return Ok(());
                }
                Err(StartFailure::Exited(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartFailure::Exited(status)) => {
                    let what =
                        format!("kept exiting on restart for {RESTART_RETRY_FOR:?} ({status})");
                    return Err(not_ready(self.port, what, self.dir.path()));
                }
                Err(StartFailure::Timeout) => {
                    kill_and_reap(&mut child);
                    let what = format!("was not ready within {READY_TIMEOUT:?} of a restart");
                    return Err(not_ready(self.port, what, self.dir.path()));
                }
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked mid-call must not keep us from cleaning up.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = state.child.take() {
            if state.paused {
                let _ = send(child.id(), Signal::Continue);
            }
            kill_and_reap(&mut child);
        }
        if thread::panicking() {
            eprintln!(
                "==== redis-server log (port {port}, last lines) ====\n{}\n==== end of redis-server log (port {port}) ====",
                log_tail(self.dir.path()),
                port = self.port,
            );
        }
        // `self.dir` goes right after this, with the fields.
    }
}

/// The server binary: [`REDIS_SERVER_BIN`], else `redis-server` on `PATH`.
pub fn server_bin() -> Result<PathBuf, ServerError> {
    if let Some(bin) = std::env::var_os(REDIS_SERVER_BIN) {
        let bin = PathBuf::from(bin);
        return match bin.is_file() {
            true => Ok(bin),
            false => Err(ServerError::BadOverride(bin)),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .ok_or(ServerError::NotInstalled)
}

/// A port on 127.0.0.1 free a moment ago (racy by nature: a start that
/// loses the race tries another).
pub fn free_port() -> Result<u16, ServerError> {
    let io = |source| ServerError::Io {
        what: "cannot find a free port on 127.0.0.1".into(),
        source,
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io)?;
    Ok(listener.local_addr().map_err(io)?.port())
}

fn spawn(bin: &Path, port: u16, dir: &Path, extra: &[String]) -> Result<Child, ServerError> {
    let output = || {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stdout.log"))
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
        .arg(dir.join("redis.log"))
        .args(["--enable-debug-command", "local"])
        .args(["--daemonize", "no"])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(output())
        .stderr(output())
        .spawn()
        .map_err(|source| match source.kind() {
            ErrorKind::NotFound => ServerError::NotInstalled,
            _ => ServerError::Spawn {
                bin: bin.to_owned(),
                source,
            },
        })
}

/// Polls until the server on `port` answers as our child (its `process_id`
/// is the child's pid).
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

/// `process_id` from `INFO server`, if the server answers.
fn server_pid(url: &str) -> Option<u32> {
    let client = redis::Client::open(url).ok()?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    con.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    con.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).ok()?;
    info.lines()
        .find_map(|l| l.trim().strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

fn not_ready(port: u16, what: String, dir: &Path) -> ServerError {
    ServerError::NotReady {
        port,
        what,
        log: log_tail(dir),
    }
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

fn log_tail(dir: &Path) -> String {
    let log = read_log(dir);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn kill_and_reap(child: &mut Child) {
    // SIGKILL, which a stopped process gets too.
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Clone, Copy, Debug)]
enum Signal {
    Stop,
    Continue,
}

fn signal(state: &State, signal: Signal, port: u16) -> Result<(), ServerError> {
    let Some(child) = state.child.as_ref() else {
        return Err(ServerError::Io {
            what: format!("redis-server on port {port} is stopped"),
            source: io::Error::from(ErrorKind::NotFound),
        });
    };
    send(child.id(), signal).map_err(|source| ServerError::Io {
        what: format!("cannot send {signal:?} to redis-server on port {port}"),
        source,
    })
}

/// Waits until every thread of the server is stopped, where `/proc` tells
/// (Linux); elsewhere the signal's sending is all there is.
fn wait_stopped(state: &State, port: u16) -> Result<(), ServerError> {
    let Some(child) = state.child.as_ref() else {
        return Ok(());
    };
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match all_threads_stopped(child.id()) {
            None | Some(true) => return Ok(()),
            Some(false) if Instant::now() >= deadline => {
                return Err(ServerError::Io {
                    what: format!(
                        "redis-server on port {port} did not stop within {STOP_TIMEOUT:?} of SIGSTOP"
                    ),
                    source: io::Error::from(ErrorKind::TimedOut),
                });
            }
            Some(false) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Whether every thread of process `pid` is stopped (state `T` or `t` in
/// `/proc/<pid>/task/*/stat`); `None` where that cannot be read.
fn all_threads_stopped(pid: u32) -> Option<bool> {
    let mut all = true;
    for thread in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = fs::read_to_string(thread.ok()?.path().join("stat")).ok()?;
        // `pid (comm) state ...`: the name may hold anything but the state
        // follows its last `)`.
        let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
        all &= matches!(state, 'T' | 't');
    }
    Some(all)
}

/// Sends `signal` to our child `pid` (only ever a server we started, not
/// yet reaped, so the pid is not reused).
#[cfg(unix)]
fn send(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(ErrorKind::InvalidInput))?;
    let signal = match signal {
        Signal::Stop => libc::SIGSTOP,
        Signal::Continue => libc::SIGCONT,
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    match unsafe { libc::kill(pid, signal) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(not(unix))]
fn send(_pid: u32, _signal: Signal) -> io::Result<()> {
    Err(io::Error::from(ErrorKind::Unsupported))
}
