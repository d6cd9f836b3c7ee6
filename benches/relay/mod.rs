//! A slow link for the perf bench (`PERF_DELAY_US`): a TCP relay between
//! the bench's clients and a server that holds every chunk it relays for a
//! fixed delay in each direction, as a network with that one-way latency
//! would. This machine cannot add a delay in the kernel (`tc netem` is not
//! available), and every side of a comparison goes through the same relay,
//! so a ratio is still the lock against its floor, on one slower link.
//!
//! Invariants:
//! - One thread relays every connection to one server (`ppoll` with a
//!   nanosecond timeout, timer slack of 1 ns): the relay adds no wake-up of
//!   another of its threads between a chunk's arrival and its departure.
//! - A chunk leaves at its arrival plus the delay, or as soon after as the
//!   thread gets to it; the chunks of one direction leave in the order they
//!   came, each whole.
//! - An end that closes is closed on the other side once what it sent has
//!   left (a half close, as TCP has).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A relay process (this bench's binary, `--relay <upstream> <delay µs>`)
/// listening on a port of its own, to a server on `127.0.0.1`. Its own
/// process, so that its CPU time is not the bench's client CPU, and it can
/// be placed on a CPU like a server. It dies with the thread that started
/// it (`PR_SET_PDEATHSIG`).
pub struct Relay {
    port: u16,
    process: Child,
}

impl Relay {
    /// Relays to `127.0.0.1:upstream`, every chunk held `delay` each way.
    pub fn start(upstream: u16, delay: Duration) -> Relay {
        let exe = std::env::current_exe().expect("the bench's own binary");
        let mut process = Command::new(exe)
            .args(["--relay", &upstream.to_string()])
            .arg(delay.as_micros().to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("a relay process");
        let mut line = String::new();
        let stdout = process.stdout.take().expect("the relay's stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the relay's port");
        let port = line.trim().parse().expect("a port number");
        Relay { port, process }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}

/// The relay process's main (`args`: the upstream port and the delay in
/// µs): prints its port, then relays until the bench ends.
pub fn serve(args: &[String]) -> ! {
    let upstream: u16 = args[0].parse().expect("--relay <upstream port> <delay µs>");
    let delay = Duration::from_micros(args[1].parse().expect("--relay <upstream port> <delay µs>"));
    // SAFETY: prctl with these options only sets this process's parent
    // death signal and this thread's timer slack (1 ns instead of 50 µs).
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the relay");
    let port = listener.local_addr().expect("the relay's port").port();
    println!("{port}");
    std::io::stdout().flush().expect("the port told");
    relay(&listener, upstream, delay)
}

/// One direction of one relayed connection.
struct Pipe {
    from: TcpStream,
    to: TcpStream,
    /// Chunks read and not yet written, with the time each is due.
    queue: VecDeque<(Instant, Vec<u8>)>,
    /// `from` ended (or failed): nothing more is read.
    ended: bool,
    /// `to` failed, or was closed after `from` ended and the queue emptied.
    done: bool,
}

impl Pipe {
    fn new(from: &TcpStream, to: &TcpStream) -> Pipe {
        Pipe {
            from: from.try_clone().expect("a socket's second handle"),
            to: to.try_clone().expect("a socket's second handle"),
            queue: VecDeque::new(),
            ended: false,
            done: false,
        }
    }

    /// Writes every chunk due by `now`; closes `to` once `from` ended and
    /// all it sent has left.
    fn send_due(&mut self, now: Instant) {
        while let Some((due, _)) = self.queue.front() {
            if *due > now {
                break;
            }
            let (_, chunk) = self.queue.pop_front().expect("a front");
            if self.to.write_all(&chunk).is_err() {
                self.queue.clear();
                self.ended = true;
                break;
            }
        }
        if self.ended && self.queue.is_empty() && !self.done {
            let _ = self.to.shutdown(Shutdown::Write);
            self.done = true;
        }
    }

    /// Reads what `from` has (it polled readable) and queues it, due in
    /// `delay`.
    fn take_in(&mut self, buffer: &mut [u8], delay: Duration) {
        match self.from.read(buffer) {
            Ok(0) => self.ended = true,
            Ok(n) => {
                let due = Instant::now() + delay;
                self.queue.push_back((due, buffer[..n].to_vec()));
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => self.ended = true,
        }
    }
}

fn relay(listener: &TcpListener, upstream: u16, delay: Duration) -> ! {
    let mut pipes: Vec<Pipe> = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        for pipe in &mut pipes {
            pipe.send_due(now);
        }
        pipes.retain(|pipe| !pipe.done);
        let next_due = (pipes.iter())
            .filter_map(|pipe| pipe.queue.front().map(|(due, _)| *due))
            .min();
        // The listener first, then every pipe still reading, in order.
        let reading: Vec<usize> = (0..pipes.len()).filter(|&i| !pipes[i].ended).collect();
        let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
            .chain(reading.iter().map(|&i| pipes[i].from.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = next_due.map(|due| {
            let left = due.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            }
        });
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `fds` is a live array of `fds.len()` pollfds, the
        // timeout null or a live timespec, and no signal mask is given.
        let ready = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout_ptr,
                std::ptr::null(),
            )
        };
        if ready <= 0 {
            continue;
        }
        for (slot, &i) in reading.iter().enumerate() {
            if fds[slot + 1].revents != 0 {
                pipes[i].take_in(&mut buffer, delay);
            }
        }
        if fds[0].revents & libc::POLLIN != 0
            && let Ok((client, _)) = listener.accept()
            && let Ok(server) = TcpStream::connect(("127.0.0.1", upstream))
        {
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            pipes.push(Pipe::new(&client, &server));
            pipes.push(Pipe::new(&server, &client));
        }
    }
}
