//! A TCP fault proxy to put between a client and a `redis-server`, switchable at run time.
//!
//! The proxy runs on its own thread and tokio runtime, like a process of its own: a test
//! that blocks its own thread (sync admin commands, `std::thread::sleep`) does not stall it.
//!
//! ```ignore
//! let proxy = Proxy::to(&server);
//! let lock = Lock::builder("k").connect(proxy.url()).await?;
//! proxy.set(Mode::DropReplies); // commands reach the server, answers are swallowed
//! ```
//!
//! Modes ([`Mode`]) apply to bytes as they arrive, on every connection, open or new:
//! pass, delay replies by a fixed time, drop replies, black-hole everything, reset
//! connections, refuse new connections. Counters say what reached the server, command by
//! command, so a test can assert that a request was delivered before its reply was lost.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// What the proxy does with the bytes it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Forwards commands at once, and each reply this long after it arrived from the
    /// server (a slow network, or a server slow to answer).
    Delay(Duration),
    /// Forwards commands, swallows replies: the "reply lost" ambiguous write. Use it with
    /// [`Proxy::reset_connections`]: TCP never loses bytes on an open connection, and a
    /// client whose replies went missing without the connection breaking would pair later
    /// replies with the wrong commands.
    DropReplies,
    /// Swallows everything both ways; connections stay open (a partition, or a host that
    /// went away without a reset).
    Blackhole,
    /// Resets every connection (RST), open ones at once and new ones as they are accepted.
    Reset,
    /// Closes the listening socket, so new connections are refused; open ones pass.
    RefuseNew,
}

struct Shared {
    mode: watch::Sender<Mode>,
    /// Bumped by `reset_connections`: every connection open then is reset.
    epoch: watch::Sender<u64>,
    /// Names (upper case) of the commands forwarded to the server, in order.
    commands: Mutex<Vec<String>>,
    bytes_to_server: AtomicU64,
    bytes_to_client: AtomicU64,
    accepted: AtomicU64,
}

/// A running proxy on 127.0.0.1; stopped (every connection closed) when dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("port", &self.port)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy in front of `server`, in [`Mode::Pass`].
    pub fn to(server: &super::RedisServer) -> Proxy {
        Proxy::start(server.port())
    }

    /// A proxy in front of `127.0.0.1:upstream_port`, in [`Mode::Pass`].
    pub fn start(upstream_port: u16) -> Proxy {
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port));
        let (mode, _) = watch::channel(Mode::Pass);
        let (epoch, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            mode,
            epoch,
            commands: Mutex::new(Vec::new()),
            bytes_to_server: AtomicU64::new(0),
            bytes_to_client: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let std_listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("proxy: bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("local_addr").port();
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn({
                let shared = shared.clone();
                move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("proxy runtime");
                    runtime.block_on(async move {
                        let listener = TcpListener::from_std(std_listener).expect("listener");
                        tokio::select! {
                            () = accept_loop(listener, port, upstream, shared) => {}
                            _ = shutdown_rx => {}
                        }
                    });
                    // Dropping the runtime drops every connection task and its sockets.
                }
            })
            .expect("spawn proxy thread");
        Proxy {
            port,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Switches the mode, for open connections and new ones.
    pub fn set(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Resets (RST) every connection open now; the mode stays, new connections follow it.
    pub fn reset_connections(&self) {
        self.shared.epoch.send_modify(|epoch| *epoch += 1);
    }

    /// How many commands named `name` (any case) were forwarded to the server.
    pub fn forwarded(&self, name: &str) -> usize {
        let commands = self.shared.commands.lock().unwrap();
        commands
            .iter()
            .filter(|c| c.eq_ignore_ascii_case(name))
            .count()
    }

    /// The names of all commands forwarded to the server, in order (upper case).
    pub fn commands(&self) -> Vec<String> {
        self.shared.commands.lock().unwrap().clone()
    }

    /// Waits (polling, without blocking the caller's runtime) until at least `count`
    /// commands named `name` were forwarded; panics after `within`.
    pub async fn wait_forwarded(&self, name: &str, count: usize, within: Duration) {
        let started = Instant::now();
        while self.forwarded(name) < count {
            assert!(
                started.elapsed() < within,
                "proxy forwarded {} {name} within {within:?}, expected {count}; all: {:?}",
                self.forwarded(name),
                self.commands()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Bytes forwarded to the server.
    pub fn bytes_to_server(&self) -> u64 {
        self.shared.bytes_to_server.load(Ordering::SeqCst)
    }

    /// Bytes forwarded to clients.
    pub fn bytes_to_client(&self) -> u64 {
        self.shared.bytes_to_client.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (including those reset at once).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, port: u16, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut modes = shared.mode.subscribe();
    let mut listener = Some(listener);
    loop {
        let refusing = *modes.borrow_and_update() == Mode::RefuseNew;
        if refusing {
            // Closed: the kernel refuses new connections until we bind again.
            listener = None;
        } else if listener.is_none() {
            listener = Some(rebind(port).await);
        }
        match &listener {
            None => {
                if modes.changed().await.is_err() {
                    return;
                }
            }
            Some(bound) => tokio::select! {
                accepted = bound.accept() => {
                    if let Ok((client, _)) = accepted {
                        shared.accepted.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(serve(client, upstream, shared.clone()));
                    }
                }
                changed = modes.changed() => if changed.is_err() { return },
            },
        }
    }
}

/// Binds the proxy's port again after `RefuseNew`, retrying while the port is busy.
async fn rebind(port: u16) -> TcpListener {
    let started = Instant::now();
    loop {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(listener) => return listener,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "proxy: cannot bind port {port} again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn reset(writer: &OwnedWriteHalf) {
    let _ = writer.as_ref().set_zero_linger();
}

/// One client connection: pumps both ways under the current mode.
async fn serve(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut modes = shared.mode.subscribe();
    let mut epochs = shared.epoch.subscribe();
    epochs.borrow_and_update();
    let _ = client.set_nodelay(true);
    if *modes.borrow_and_update() == Mode::Reset {
        let _ = client.set_zero_linger();
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    let mut commands = CommandParser::default();
    // Replies waiting to be delivered, with when; kept in order.
    let mut queued: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    loop {
        let mode = *modes.borrow_and_update();
        if mode == Mode::Reset {
            reset(&to_client);
            return;
        }
        let next_due = queued.front().map(|(due, _)| *due);
        tokio::select! {
            changed = modes.changed() => if changed.is_err() { return },
            changed = epochs.changed() => {
                if changed.is_ok() {
                    reset(&to_client);
                }
                return;
            }
            read = from_client.read(&mut up) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                // The mode now, not the one before the wait: a switch made
                // before these bytes were sent may not have woken us first
                // (select! picks among ready branches at random).
                let mode = *modes.borrow();
                if mode == Mode::Reset {
                    reset(&to_client);
                    return;
                }
                if mode == Mode::Blackhole {
                    continue;
                }
                let names = commands.feed(&up[..n]);
                // Counted before the write: by the time anyone could see the command run,
                // the counter shows it.
                shared.commands.lock().unwrap().extend(names);
                if to_server.write_all(&up[..n]).await.is_err() {
                    reset(&to_client);
                    return;
                }
                shared.bytes_to_server.fetch_add(n as u64, Ordering::SeqCst);
            }
            read = from_server.read(&mut down) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                let mode = *modes.borrow();
                let delay = match mode {
                    Mode::Pass | Mode::RefuseNew => Duration::ZERO,
                    Mode::Delay(delay) => delay,
                    Mode::DropReplies | Mode::Blackhole | Mode::Reset => continue,
                };
                let due = Instant::now() + delay;
                // Never let a reply overtake one queued before it.
                let due = queued.back().map_or(due, |(last, _)| due.max(*last));
                if due <= Instant::now() && queued.is_empty() {
                    if to_client.write_all(&down[..n]).await.is_err() {
                        return;
                    }
                    shared.bytes_to_client.fetch_add(n as u64, Ordering::SeqCst);
                } else {
                    queued.push_back((due, down[..n].to_vec()));
                }
            }
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                if let Some((_, bytes)) = queued.pop_front() {
                    if to_client.write_all(&bytes).await.is_err() {
                        return;
                    }
                    shared.bytes_to_client.fetch_add(bytes.len() as u64, Ordering::SeqCst);
                }
            }
        }
    }
}

/// Splits the client's byte stream into RESP commands (arrays of bulk strings, as every
/// client library sends them) and returns their names as they complete.
#[derive(Default)]
struct CommandParser {
    buffer: Vec<u8>,
}

impl CommandParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut names = Vec::new();
        while let Some((consumed, name)) = parse_command(&self.buffer) {
            names.push(name);
            self.buffer.drain(..consumed);
        }
        names
    }
}

/// One complete command at the start of `buf`: its length and upper-cased name.
fn parse_command(buf: &[u8]) -> Option<(usize, String)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (header, mut at) = line(buf, 0)?;
    if header.first() != Some(&b'*') {
        // An inline command: the whole line, name first.
        let text = String::from_utf8_lossy(header);
        let name = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        return Some((at, name));
    }
    let count: usize = std::str::from_utf8(&header[1..]).ok()?.parse().ok()?;
    let mut name = String::new();
    for i in 0..count {
        let (len_line, data_at) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len_line.get(1..)?).ok()?.parse().ok()?;
        let data = buf.get(data_at..data_at + len)?;
        if buf.get(data_at + len..data_at + len + 2)? != b"\r\n" {
            return None;
        }
        if i == 0 {
            name = String::from_utf8_lossy(data).to_ascii_uppercase();
        }
        at = data_at + len + 2;
    }
    Some((at, name))
}

#[doc(hidden)]
pub fn parse_for_selftest(bytes: &[u8]) -> Vec<String> {
    CommandParser::default().feed(bytes)
}
