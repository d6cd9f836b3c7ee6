//! The performance figures of the README, each against a floor measured in
//! the same run:
//!
//! - `throughput`: uncontended acquire + release cycles/s, 1 task and 32
//!   tasks on distinct keys, as a ratio to the raw `redis` crate sending
//!   byte for byte the lock's commands on the same connection (`SET key
//!   token NX GET PX ttl`, then the crate's release script, which
//!   publishes), and to the plain floor anyone would write (`SET NX PX`,
//!   then a compare-and-delete), medians of paired interleaved rounds with
//!   a 95% confidence interval of each median (`floor::PairedRatio`: a bar
//!   inside it is neither met nor missed by the run); the client's and the
//!   server's CPU per cycle.
//! - `handoff`: commands per handoff (`INFO commandstats`, the release
//!   script's own `GET`, `DEL` and `PUBLISH` included) with 8, 64 and 256
//!   waiters on one key, in 1 process and spread over 4, with zero hold and
//!   2 ms holds; and the p50 handoff (one holder's `release()` returning to
//!   the next holder's `acquire()` returning) in round trips (the p50 of a
//!   back-to-back `PING` on the same server, and of a `PING` after a pause
//!   as long as the hold, which wakes an idle client and server as a
//!   handoff after a hold does); over several processes, the
//!   share of handoffs that went to a waiter of another process, and their
//!   own p50. `PERF_PROCESSES=2` runs one count of processes instead of 1
//!   and 4, `PERF_WAITERS=8` one count of waiters, `PERF_HOLD_US=200000`
//!   one hold (200 ms), `PERF_HANDOFFS=100` fewer handoffs a run (400),
//!   `PERF_HANDOFF_ONLY=crate` (or `floor`) one side alone, for a profile.
//! - `redlock`: acquire + release cycles/s of 1 task over a Redlock of 5
//!   local servers, as a ratio to two floors of the raw `redis` crate
//!   sending the lock's commands to all 5 at once (`SET NX GET PX`, then
//!   the crate's release script by `EVALSHA`): one that returns at the
//!   third grant like the lock (and redis-lock), and one that waits for all
//!   five `SET`s (medians of paired interleaved rounds, the three in turn).
//! - `memory`: heap bytes and tokio tasks per idle `Lock`, per held lock
//!   and per waiting task (a counting allocator).
//!
//! ```sh
//! cargo bench --bench perf                 # all three
//! cargo bench --bench perf -- handoff      # one of them
//! cargo bench --bench perf -- redlock
//! taskset -c 0 cargo bench --bench perf    # everything on one core
//! PERF_PLACEMENT=split cargo bench --bench perf  # clients on CPU 0, servers on CPU 1
//! PERF_DELAY_US=30 cargo bench --bench perf  # a slow link (~150 µs PING here)
//! ```
//!
//! `PERF_DELAY_US` sends every timed connection (the floors' and the
//! lock's, `PING`s included) through a relay that holds each chunk that
//! long in each direction (`benches/relay`): this machine cannot delay its
//! loopback in the kernel (no `tc netem`). The relay is a process of its
//! own per server, whose CPU time is not the client's; it runs on the
//! servers' CPU with `PERF_PLACEMENT=split`. It adds about 100 µs a round
//! trip of its own here, so read the round trip off the `PING` rows.
//!
//! The instructions of contended acquisitions, against the floor's: one
//! handoff child (`--child url run tasks hold_us crate|floor`: 9 tasks are
//! 8 waiters and the holder) under callgrind, against a server of your own,
//! each side with a run name of its own. The totals over its 451
//! acquisitions differ by what the crate adds per acquisition, and by each
//! side's set-up; a side's total moves by a few hundred thousand from run
//! to run (timing decides how many busy answers there are):
//!
//! ```sh
//! redis-server --port 6399 --save '' --daemonize yes
//! valgrind --tool=callgrind target/release/deps/perf-<hash> --child redis://127.0.0.1:6399 c 9 2000 crate
//! valgrind --tool=callgrind target/release/deps/perf-<hash> --child redis://127.0.0.1:6399 f 9 2000 floor
//! ```
//!
//! In a handoff run each process has `waiters / processes + 1` tasks; a
//! task that released does not compete again until another task of its
//! process took the lock, so every handoff goes to a task that was waiting
//! and about `waiters` tasks wait at any time. Each holder `INCR`s a counter
//! (not counted) to number the acquisitions; the holder of the 50th resets
//! the server's statistics and that of the 50 + `HANDOFFS`th reads them
//! while it still holds the lock.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis_mutex::{Lock, WaitPolicy};
use tokio::sync::watch;

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "floor/mod.rs"]
mod floor;

#[path = "relay/mod.rs"]
mod relay;

use floor::pubsub::{FloorGuard, FloorLock};
use floor::{
    CRATE_RELEASE_LUA, CRATE_SIZED_TOKEN, PairedRatio, RELEASE_LUA, command_calls, cpu_time,
    crate_release_channel, floor_cycle, floor_redlock_cycle, median, percentiles, rate,
    same_commands_cycle,
};

/// Heap bytes allocated and not yet freed, by everything in the process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: the system allocator does the work; this only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Rounds per section. On a 2-core VM the median ratio of 32 tasks on one
/// core was 0.954, 1.187 and 0.972 in three runs of 9 rounds, and 0.968,
/// 0.968 and 0.975 in three of 27.
const ROUNDS: usize = 27;
const CYCLES: usize = 3_200;
const TASKS: usize = 32;
const WARM_UP: u64 = 50;
const HANDOFFS: u64 = 400;

/// Handoffs a run: [`HANDOFFS`], or `PERF_HANDOFFS` (fewer, for long holds).
fn handoffs_a_run() -> u64 {
    env("PERF_HANDOFFS").map_or(HANDOFFS, |n| n as u64)
}

/// A count the environment sets for a profile or an experiment, if set.
fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--relay") {
        relay::serve(&args[1..]);
    }
    let only = args.iter().find(|arg| !arg.starts_with('-'));
    let wanted = |section: &str| only.is_none_or(|only| section.contains(only.as_str()));
    if split_placement() {
        // Before any thread is started: they inherit it.
        pin_threads_of(std::process::id(), CLIENT_CPU);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = start_server();
    println!(
        "machine: {} cores online ({} for this process), {}; {}; {}",
        // SAFETY: sysconf only reads a system setting.
        unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) },
        std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model(),
        if split_placement() {
            "PERF_PLACEMENT=split: this process and its children on CPU 0, the servers on CPU 1"
        } else {
            "threads where the OS puts them"
        },
        match link_delay() {
            Some(delay) => format!(
                "PERF_DELAY_US={}: timed connections through a relay adding that much each way",
                delay.as_micros()
            ),
            None => "the plain loopback".to_owned(),
        }
    );
    if wanted("throughput") {
        runtime.block_on(throughput(&server));
    }
    if wanted("handoff") {
        handoff(&runtime, &server);
    }
    if wanted("redlock") {
        runtime.block_on(redlock());
    }
    if wanted("memory") {
        runtime.block_on(memory(&server));
    }
}

/// The CPU of the bench's own threads, and of the handoff children it
/// starts, with `PERF_PLACEMENT=split`.
const CLIENT_CPU: usize = 0;
/// The CPU of every server the bench starts, with `PERF_PLACEMENT=split`.
const SERVER_CPU: usize = 1;

/// `PERF_PLACEMENT=split`: the clients on one core, the servers on the
/// other, as in "redis-server and clients pinned to separate cores".
/// Unset, the OS places the threads, and on a VM where a wake-up across
/// cores costs far more than one on the same core, the loopback then
/// changes with each placement; `taskset -c 0 cargo bench` puts everything
/// on one core instead (servers inherit the mask).
fn split_placement() -> bool {
    std::env::var("PERF_PLACEMENT").is_ok_and(|placement| placement == "split")
}

/// Restricts every thread of process `pid` to `cpu`.
fn pin_threads_of(pid: u32, cpu: usize) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/<pid>/task");
    for thread in threads.flatten() {
        let Some(tid) = thread.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // SAFETY: a zeroed cpu_set_t is an empty set; the calls only read
        // and write the set they are given.
        let done = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        assert_eq!(done, 0, "sched_setaffinity({tid}, CPU {cpu})");
    }
}

/// `PERF_DELAY_US`: a slow link, this many µs added to each direction of
/// every timed connection by a relay (`benches/relay`), since the machine
/// cannot delay its loopback itself. Unset or 0: the plain loopback.
fn link_delay() -> Option<Duration> {
    env("PERF_DELAY_US")
        .filter(|&us| us > 0)
        .map(|us| Duration::from_micros(us as u64))
}

/// The address of `server` for timed connections, the floors' and the
/// lock's alike: through its relay with [`link_delay`] (started at the
/// first use, on the servers' CPU with `PERF_PLACEMENT=split`, as the far
/// end of the link), else the server's own. Statistics and
/// set-up (`INFO`, `CONFIG RESETSTAT`) go to the server directly.
fn url_of(server: &support::RedisServer) -> String {
    let Some(delay) = link_delay() else {
        return server.url();
    };
    // Kept until the bench ends (they die with it).
    static RELAYS: Mutex<BTreeMap<u16, relay::Relay>> = Mutex::new(BTreeMap::new());
    let mut relays = RELAYS.lock().unwrap();
    let relay = relays.entry(server.port()).or_insert_with(|| {
        let relay = relay::Relay::start(server.port(), delay);
        if split_placement() {
            pin_threads_of(relay.pid(), SERVER_CPU);
        }
        relay
    });
    relay.url()
}

/// A timed connection to `server` (see [`url_of`]).
async fn timed_conn(server: &support::RedisServer) -> MultiplexedConnection {
    redis::Client::open(url_of(server))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A throwaway redis-server, on [`SERVER_CPU`] with `PERF_PLACEMENT=split`.
fn start_server() -> support::RedisServer {
    let server = support::RedisServer::start();
    if split_placement() {
        pin_threads_of(server.pid(), SERVER_CPU);
    }
    server
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// What a throughput round runs in each task.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// `SET NX PX`, then the hand-written compare-and-delete.
    Floor,
    /// Byte for byte the commands of the lock's cycle: `SET NX GET PX`,
    /// then the crate's release script, publishing.
    FloorSame,
    /// `Lock::acquire`, then `LockGuard::release`.
    Lock,
}

impl Side {
    fn named(name: &str) -> Option<Side> {
        match name {
            "floor" => Some(Side::Floor),
            "same" => Some(Side::FloorSame),
            "lock" => Some(Side::Lock),
            _ => None,
        }
    }
}

/// Cycles per throughput round with `tasks` tasks: ten times as many with
/// 32 tasks as with 1, so that a round lasts about as long (0.3 to 0.7 s
/// here) and a few ms of another process's work on a 2-core machine do not
/// decide it.
fn cycles_for(tasks: usize) -> usize {
    if tasks == 1 { CYCLES } else { CYCLES * 10 }
}

/// [`cycles_for`] cycles of `side`, spread over one task per lock (distinct
/// keys); cycles/s.
async fn cycles(connection: &MultiplexedConnection, locks: &[Lock], side: Side) -> f64 {
    let script = redis::Script::new(match side {
        Side::FloorSame => CRATE_RELEASE_LUA,
        _ => RELEASE_LUA,
    });
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for lock in locks {
        let (lock, mut connection, script) = (lock.clone(), connection.clone(), script.clone());
        let per_task = cycles_for(locks.len()) / locks.len();
        set.spawn(async move {
            let key = format!("{}:floor", lock.key());
            let channel = crate_release_channel(&key);
            for _ in 0..per_task {
                match side {
                    Side::Floor => {
                        floor_cycle(&mut connection, &script, &key, "token-of-the-floor").await
                    }
                    Side::FloorSame => {
                        same_commands_cycle(
                            &mut connection,
                            &script,
                            &key,
                            CRATE_SIZED_TOKEN,
                            &channel,
                        )
                        .await
                    }
                    Side::Lock => lock.acquire().await.unwrap().release().await.unwrap(),
                }
            }
        });
    }
    set.join_all().await;
    rate(cycles_for(locks.len()), started.elapsed())
}

/// The server process's CPU time so far (user + system, `INFO cpu`), in
/// seconds.
fn server_cpu_seconds(server: &support::RedisServer) -> f64 {
    let info = server.info("cpu");
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    field("used_cpu_user") + field("used_cpu_sys")
}

/// One round's cycles/s, and the client's and the server's CPU µs per
/// cycle.
#[derive(Default)]
struct Rounds {
    rates: Vec<f64>,
    client_cpu: Vec<f64>,
    server_cpu: Vec<f64>,
}

impl Rounds {
    async fn run(
        &mut self,
        server: &support::RedisServer,
        connection: &MultiplexedConnection,
        locks: &[Lock],
        side: Side,
    ) {
        let (client, on_server) = (cpu_time(), server_cpu_seconds(server));
        self.rates.push(cycles(connection, locks, side).await);
        let per_cycle = 1e6 / cycles_for(locks.len()) as f64;
        self.client_cpu
            .push((cpu_time() - client).as_secs_f64() * per_cycle);
        self.server_cpu
            .push((server_cpu_seconds(server) - on_server) * per_cycle);
    }

    /// Medians: cycles/s, client CPU, server CPU.
    fn medians(&self) -> (f64, f64, f64) {
        (
            median(self.rates.clone()),
            median(self.client_cpu.clone()),
            median(self.server_cpu.clone()),
        )
    }

    /// `ours`' rate over `self`'s in each round (see [`PairedRatio`]). A
    /// slow spell of the machine during one round moves this median less
    /// than it moves the medians of the rates.
    fn paired(&self, ours: &Rounds) -> PairedRatio {
        PairedRatio::of(&ours.rates, &self.rates).unwrap_or_default()
    }
}

/// Uncontended cycles, 1 task and 32 on distinct keys: the plain floor, the
/// same-commands floor and the lock in turn, round after round, so that all
/// three see the same load. The server's CPU is counted too: with 32 tasks
/// on 2 cores the client and the server share the machine, and what the
/// release script makes the server do slows both.
///
/// For a profile (strace, perf): `PERF_THROUGHPUT_ONLY` = `floor`,
/// `same` or `lock` runs that side alone, `PERF_TASKS` tasks (both
/// counts by default), `PERF_ROUNDS` rounds.
async fn throughput(server: &support::RedisServer) {
    let connection = timed_conn(server).await;
    let locks: Vec<Lock> = (0..TASKS)
        .map(|i| {
            Lock::builder(format!("perf:{i}"))
                .build(connection.clone())
                .unwrap()
        })
        .collect();
    let only = std::env::var("PERF_THROUGHPUT_ONLY")
        .ok()
        .map(|name| Side::named(&name).expect("PERF_THROUGHPUT_ONLY: floor, same or lock"));
    let rounds = env("PERF_ROUNDS").unwrap_or(ROUNDS);
    let task_counts = match env("PERF_TASKS") {
        Some(tasks) => vec![tasks.clamp(1, TASKS)],
        None => vec![1, TASKS],
    };
    for tasks in task_counts {
        let locks = &locks[..tasks];
        let sides = match only {
            Some(side) => vec![side],
            None => vec![Side::Floor, Side::FloorSame, Side::Lock],
        };
        // Warm up each: scripts loaded, the connection busy once.
        for &side in &sides {
            cycles(&connection, locks, side).await;
        }
        // Each round runs every side once, starting from the next side each
        // time, so that none always follows another.
        let mut measured: Vec<Rounds> = sides.iter().map(|_| Rounds::default()).collect();
        for round in 0..rounds {
            for turn in 0..sides.len() {
                let side = (round + turn) % sides.len();
                measured[side]
                    .run(server, &connection, locks, sides[side])
                    .await;
            }
        }
        if only.is_some() {
            let (rate, client, on_server) = measured[0].medians();
            println!(
                "throughput, {tasks:>2} task(s), one side alone: {rate:.0} cycles/s, client CPU {client:.1} µs, server CPU {on_server:.1} µs per cycle (medians of {rounds} rounds of {})",
                cycles_for(tasks)
            );
            continue;
        }
        let [floor_rounds, same_rounds, our_rounds] = &measured[..] else {
            unreachable!("three sides")
        };
        let to_same = same_rounds.paired(our_rounds);
        let to_floor = floor_rounds.paired(our_rounds);
        let (floor, floor_client, floor_server) = floor_rounds.medians();
        let (same, same_client, same_server) = same_rounds.medians();
        let (ours, our_client, our_server) = our_rounds.medians();
        println!(
            "throughput, {tasks:>2} task(s) on distinct keys: plain floor {floor:>7.0} cycles/s, same-commands floor {same:>7.0}, Lock {ours:>7.0}; ratio {to_same} to the same-commands floor, {to_floor} to the plain floor; client CPU per cycle: {floor_client:.1} / {same_client:.1} / {our_client:.1} µs (Lock to same-commands {:.3}); server CPU per cycle: {floor_server:.1} / {same_server:.1} / {our_server:.1} µs (Lock to same-commands {:.3}) (medians of {rounds} rounds of {}; a ratio is the median of the lock's rate over the floor's in the same round)",
            our_client / same_client,
            our_server / same_server,
            cycles_for(tasks),
        );
    }
}

/// Cycles of 1 task over a Redlock of 5 servers: the crate's, and the two
/// floors (see the module docs). Cycles/s and client CPU µs per cycle.
async fn redlock() {
    const NODES: usize = 5;
    let servers: Vec<support::RedisServer> = (0..NODES).map(|_| start_server()).collect();
    let mut connections = Vec::new();
    for server in &servers {
        connections.push(timed_conn(server).await);
    }
    let lock = Lock::builder("perf:redlock")
        .build_quorum(connections.clone())
        .unwrap();
    let script = redis::Script::new(CRATE_RELEASE_LUA);
    let (floor_key, floor_channel) = ("perf:redlock:floor", "{perf:redlock:floor}:released");
    // For a profile (valgrind): one of the three alone, `PERF_CYCLES` cycles
    // per round.
    let (only, cycles) = (
        env("PERF_REDLOCK_ONLY"),
        env("PERF_CYCLES").unwrap_or(CYCLES),
    );
    let rounds = env("PERF_ROUNDS").unwrap_or(ROUNDS);
    let variants: Vec<usize> = (0..3).filter(|w| only.is_none_or(|o| o == *w)).collect();
    // 0: the floor waiting for all five SETs, 1: returning at the third, 2: ours.
    let round = async |which: usize| {
        let (started, cpu) = (Instant::now(), cpu_time());
        for _ in 0..cycles {
            match which {
                0 | 1 => {
                    floor_redlock_cycle(
                        &connections,
                        &script,
                        floor_key,
                        CRATE_SIZED_TOKEN,
                        Some(floor_channel),
                        which == 1,
                    )
                    .await
                }
                _ => lock.acquire().await.unwrap().release().await.unwrap(),
            }
        }
        let took = started.elapsed();
        (
            rate(cycles, took),
            (cpu_time() - cpu).as_secs_f64() * 1e6 / cycles as f64,
        )
    };
    for &which in &variants {
        round(which).await; // warm up: scripts loaded, nodes identified
    }
    let (mut rates, mut cpus): ([Vec<f64>; 3], [Vec<f64>; 3]) = Default::default();
    for r in 0..rounds {
        // Each round starts from the next variant, so that none always
        // follows another.
        for turn in 0..variants.len() {
            let which = variants[(r + turn) % variants.len()];
            let (rate, cpu) = round(which).await;
            rates[which].push(rate);
            cpus[which].push(cpu);
        }
    }
    // A variant left out (profiling one) shows 0.
    let of = |values: &Vec<f64>| {
        if values.is_empty() {
            0.0
        } else {
            median(values.clone())
        }
    };
    // The lock's rate over a floor's in the same round (see `PairedRatio`).
    let paired = |floor: &Vec<f64>| PairedRatio::of(&rates[2], floor).unwrap_or_default();
    let [all, third, ours] = [of(&rates[0]), of(&rates[1]), of(&rates[2])];
    let [all_cpu, third_cpu, our_cpu] = [of(&cpus[0]), of(&cpus[1]), of(&cpus[2])];
    let (to_third, to_all) = (paired(&rates[1]), paired(&rates[0]));
    println!(
        "redlock over {NODES} nodes, 1 task (the lock's commands on every side): floor waiting for all {all:>6.0} cycles/s, floor returning at the 3rd grant {third:>6.0} cycles/s, Lock {ours:>6.0} cycles/s; ratio to the 3rd-grant floor {to_third}, to the wait-for-all floor {to_all}; client CPU per cycle: {all_cpu:.1} / {third_cpu:.1} / {our_cpu:.1} µs (medians of {rounds} interleaved rounds of {cycles})",
    );
    drop(servers);
}

/// CLOCK_MONOTONIC in ns: comparable across the processes of one machine.
fn monotonic_ns() -> u64 {
    // SAFETY: `clock_gettime` only writes the struct it is given.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// One acquisition: its number, when `acquire()` returned and when its
/// `release()` returned (ns).
#[derive(Clone, Copy)]
struct Held {
    number: u64,
    acquired: u64,
    released: u64,
    /// Which process of the run took it (0 in a one-process run).
    process: usize,
}

/// A run's handoffs: how long each took, and whether it went to another
/// process.
struct Handoffs {
    all: Vec<Duration>,
    to_another_process: Vec<Duration>,
}

/// The keys of one handoff run.
fn run_keys(run: &str) -> (String, String, String) {
    (
        format!("perf:handoff:{run}"),
        format!("perf:count:{run}"),
        format!("perf:stats:{run}"),
    )
}

/// `tasks` tasks taking the lock of `run` in turn (see the module doc)
/// until the counter passes `WARM_UP + HANDOFFS`.
async fn take_turns(url: &str, run: &str, tasks: usize, hold: Duration, floor: bool) -> Vec<Held> {
    let (key, count, stats) = run_keys(run);
    let client = redis::Client::open(url).unwrap();
    let connection = client.get_multiplexed_async_connection().await.unwrap();
    let lock = if floor {
        Taker::Floor(Box::new(
            FloorLock::new(url, &key, connection.clone()).await,
        ))
    } else {
        Taker::Crate(
            Lock::builder(&key)
                .ttl(Duration::from_secs(30))
                .wait(WaitPolicy::timeout(Duration::from_secs(120)))
                .notify_with(&client)
                .build(connection.clone())
                .unwrap(),
        )
    };
    let taken = Arc::new(watch::channel(0u64).0);
    let end = WARM_UP + handoffs_a_run();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (lock, taken, mut admin) = (lock.clone(), taken.clone(), connection.clone());
        let (count, stats) = (count.clone(), stats.clone());
        set.spawn(async move {
            let mut seen = taken.subscribe();
            let mut held = Vec::new();
            loop {
                let guard = lock.acquire().await;
                let acquired = monotonic_ns();
                // Only a holder counts, so no other task here moves it now.
                taken.send_modify(|n| *n += 1);
                let mine = *taken.borrow();
                let number: u64 = redis::cmd("INCR")
                    .arg(&count)
                    .query_async(&mut admin)
                    .await
                    .unwrap();
                if number == WARM_UP {
                    let () = redis::cmd("CONFIG")
                        .arg("RESETSTAT")
                        .query_async(&mut admin)
                        .await
                        .unwrap();
                } else if number == end {
                    let info: String = redis::cmd("INFO")
                        .arg("commandstats")
                        .query_async(&mut admin)
                        .await
                        .unwrap();
                    let () = redis::cmd("SET")
                        .arg(&stats)
                        .arg(info)
                        .query_async(&mut admin)
                        .await
                        .unwrap();
                }
                if !hold.is_zero() {
                    tokio::time::sleep(hold).await;
                }
                guard.release().await;
                held.push(Held {
                    number,
                    acquired,
                    released: monotonic_ns(),
                    process: 0,
                });
                if number > end {
                    return held;
                }
                // No barging: wait until another task here took it.
                let _ = seen.wait_for(|&n| n > mine).await;
            }
        });
    }
    set.join_all().await.concat()
}

/// The lock a handoff run takes turns on: the crate's, or the floor's.
#[derive(Clone)]
enum Taker {
    Crate(Lock),
    Floor(Box<FloorLock>),
}

enum Taken {
    Crate(redis_mutex::LockGuard),
    Floor(FloorGuard),
}

impl Taker {
    async fn acquire(&self) -> Taken {
        match self {
            Taker::Crate(lock) => Taken::Crate(lock.acquire().await.unwrap()),
            Taker::Floor(lock) => Taken::Floor(lock.acquire().await),
        }
    }
}

impl Taken {
    async fn release(self) {
        match self {
            Taken::Crate(guard) => guard.release().await.unwrap(),
            Taken::Floor(guard) => guard.release().await,
        }
    }
}

/// A child process of a handoff run: `url run tasks hold_us crate|floor`;
/// prints its acquisitions, one a line.
fn child(args: &[String]) {
    let [url, run, tasks, hold_us, taker] = args else {
        panic!("--child url run tasks hold_us crate|floor")
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hold = Duration::from_micros(hold_us.parse().unwrap());
    let floor = taker == "floor";
    let cpu = cpu_time();
    let held = runtime.block_on(take_turns(url, run, tasks.parse().unwrap(), hold, floor));
    for h in held {
        println!("held {} {} {}", h.number, h.acquired, h.released);
    }
    println!("cpu {}", (cpu_time() - cpu).as_nanos());
}

/// One handoff run: `waiters` waiters over `processes` processes.
fn handoff_run(
    runtime: &tokio::runtime::Runtime,
    server: &support::RedisServer,
    processes: usize,
    waiters: usize,
    hold: Duration,
    floor: bool,
) -> (BTreeMap<String, u64>, Handoffs, f64) {
    let taker = if floor { "floor" } else { "crate" };
    let run = format!("{processes}p{waiters}w{}us{taker}", hold.as_micros());
    let (_, _, stats) = run_keys(&run);
    let tasks = waiters / processes + 1;
    let mut cpu = Duration::ZERO;
    let held: Vec<Held> = if processes == 1 {
        let before = cpu_time();
        let held = runtime.block_on(take_turns(&url_of(server), &run, tasks, hold, floor));
        cpu = cpu_time() - before;
        held
    } else {
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..processes)
            .map(|_| {
                Command::new(&exe)
                    .args(["--child", &url_of(server), &run, &tasks.to_string()])
                    .arg(hold.as_micros().to_string())
                    .arg(taker)
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .enumerate()
            .flat_map(|(process, child)| {
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "a child failed");
                let text = String::from_utf8(out.stdout).unwrap();
                cpu += text
                    .lines()
                    .find_map(|line| line.strip_prefix("cpu ")?.parse().ok())
                    .map_or(Duration::ZERO, Duration::from_nanos);
                text.lines()
                    .filter_map(|line| {
                        let mut fields = line.strip_prefix("held ")?.split(' ');
                        let mut next = || fields.next()?.parse().ok();
                        Some(Held {
                            number: next()?,
                            acquired: next()?,
                            released: next()?,
                            process,
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let info: String = redis::from_redis_value(server.cmd(&["GET", &stats])).unwrap();
    // Client CPU per acquisition, waiting included (every process's).
    let cpu_per = cpu.as_secs_f64() * 1e6 / held.len() as f64;
    let mut by_number: Vec<Held> = held;
    by_number.sort_by_key(|h| h.number);
    let mut handoffs = Handoffs {
        all: Vec::new(),
        to_another_process: Vec::new(),
    };
    for pair in by_number
        .windows(2)
        .filter(|pair| pair[0].number >= WARM_UP && pair[1].number <= WARM_UP + handoffs_a_run())
    {
        let took = Duration::from_nanos(pair[1].acquired.saturating_sub(pair[0].released));
        handoffs.all.push(took);
        if pair[0].process != pair[1].process {
            handoffs.to_another_process.push(took);
        }
    }
    (command_calls(&info), handoffs, cpu_per)
}

/// The p50 of 500 `PING`s, in µs, each after `pause`: one round trip
/// (back to back with no pause; after a pause as long as the hold, one that
/// wakes a client and a server that were idle, as a handoff after a hold
/// does).
fn round_trip(
    runtime: &tokio::runtime::Runtime,
    server: &support::RedisServer,
    pause: Duration,
) -> f64 {
    let mut samples = runtime.block_on(async {
        let mut connection = timed_conn(server).await;
        let mut samples = Vec::new();
        // 500 pings, or as many as fit in about 10 s of pauses (at least 20).
        let pings = if pause.is_zero() {
            500
        } else {
            (Duration::from_secs(10).as_nanos() / pause.as_nanos()).clamp(20, 500)
        };
        for _ in 0..pings {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let started = Instant::now();
            let _: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .unwrap();
            samples.push(started.elapsed());
        }
        samples
    });
    percentiles(&mut samples)[0]
}

fn handoff(runtime: &tokio::runtime::Runtime, server: &support::RedisServer) {
    println!(
        "handoff: {} handoffs a run; RTs = p50 handoff / p50 of a back-to-back PING measured just before the run; \
         paced = p50 handoff / p50 of a PING after a pause as long as the hold (the same as RTs with zero hold); \
         each crate row is followed by its floor (raw redis, one SET per woken process, see benches/floor/pubsub.rs), \
         and x floor = the crate's p50 / the floor's",
        handoffs_a_run()
    );
    println!(
        "{:>9} {:>7} {:>6} {:>5} | {:>8} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6} | {:>6} | {:>9} {:>7} {:>7} {:>6} {:>7} | {:>6} {:>9}",
        "processes",
        "waiters",
        "hold",
        "",
        "commands",
        "SET",
        "EVAL",
        "GET",
        "PTTL",
        "PUB",
        "(UN)SUB",
        "CPU µs",
        "p50 µs",
        "RTs",
        "PING µs",
        "paced",
        "x floor",
        "moved",
        "moved RTs"
    );
    // `PERF_PROCESSES=2` (say): one count of processes instead of 1 and 4.
    let process_counts = env("PERF_PROCESSES").map_or(vec![1, 4], |n| vec![n]);
    // `PERF_WAITERS=8`, `PERF_HOLD_US=200000`: one count, one hold.
    let waiter_counts = env("PERF_WAITERS").map_or(vec![8, 64, 256], |n| vec![n]);
    let holds = env("PERF_HOLD_US").map_or(vec![Duration::ZERO, Duration::from_millis(2)], |us| {
        vec![Duration::from_micros(us as u64)]
    });
    // `PERF_HANDOFF_ONLY=crate` (or `floor`): that side alone, for a
    // profile of one side (`perf record`).
    let sides = match std::env::var("PERF_HANDOFF_ONLY").as_deref() {
        Ok("crate") => vec![false],
        Ok("floor") => vec![true],
        Ok(other) => panic!("PERF_HANDOFF_ONLY: crate or floor, not {other}"),
        Err(_) => vec![false, true],
    };
    for processes in process_counts {
        for &waiters in &waiter_counts {
            for &hold in &holds {
                let mut crate_p50 = 0.0;
                for &floor in &sides {
                    let round_trip_paced = round_trip(runtime, server, hold);
                    let round_trip = if hold.is_zero() {
                        round_trip_paced
                    } else {
                        round_trip(runtime, server, Duration::ZERO)
                    };
                    let (calls, mut handoffs, cpu) =
                        handoff_run(runtime, server, processes, waiters, hold, floor);
                    let n = handoffs_a_run() as f64;
                    let per = |command: &str| *calls.get(command).unwrap_or(&0) as f64 / n;
                    let all: f64 = calls
                        .iter()
                        .filter(|(command, _)| {
                            !matches!(
                                command.as_str(),
                                "info" | "config|resetstat" | "ping" | "incr"
                            )
                        })
                        .map(|(_, calls)| *calls as f64 / n)
                        .sum();
                    // The release script runs a GET and a DEL inside each EVALSHA.
                    let evals = per("evalsha") + per("eval");
                    let p50 = percentiles(&mut handoffs.all)[0];
                    // Handoffs to a waiter of another process: their share,
                    // and their p50 in round trips ("-" when none).
                    let moved =
                        handoffs.to_another_process.len() as f64 / handoffs.all.len() as f64;
                    let moved_p50 = if handoffs.to_another_process.is_empty() {
                        format!("{:>9}", "-")
                    } else {
                        format!(
                            "{:>9.2}",
                            percentiles(&mut handoffs.to_another_process)[0] / round_trip
                        )
                    };
                    let against = if floor {
                        format!("{:>7.2}", crate_p50 / p50)
                    } else {
                        crate_p50 = p50;
                        format!("{:>7}", "")
                    };
                    println!(
                        "{processes:>9} {waiters:>7} {:>4}ms {:>5} | {all:>8.2} {:>5.2} {evals:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>7.2} | {cpu:>6.1} | {p50:>9.1} {:>7.2} {round_trip:>7.1} {:>6.2} {against} | {:>5.0}% {moved_p50}",
                        hold.as_millis(),
                        if floor { "floor" } else { "crate" },
                        per("set"),
                        per("get") - evals,
                        per("pttl"),
                        per("publish") - evals,
                        per("subscribe") + per("unsubscribe"),
                        p50 / round_trip,
                        p50 / round_trip_paced,
                        moved * 100.0,
                    );
                }
            }
        }
    }
    println!(
        "(commands: all the server ran per handoff, the release script's GET, DEL and PUBLISH included; GET: outside scripts; PUB: PUBLISHes beyond one per release script (announcements and heartbeats, a script's fallback); CPU: client CPU time per acquisition, waiting included, summed over the processes; \
         moved: the share of handoffs that went to a waiter of another process, and their p50 in round trips)"
    );
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

async fn memory(server: &support::RedisServer) {
    const N: usize = 1_000;
    let client = server.client();
    let connection = server.conn().await;
    let tasks = support::alive_tasks;

    let (bytes, alive) = (live(), tasks());
    let idle: Vec<Lock> = (0..N)
        .map(|i| {
            Lock::builder(format!("perf:memory:{i}"))
                .notify_with(&client)
                .build(connection.clone())
                .unwrap()
        })
        .collect();
    println!(
        "memory: idle Lock (notify_with): {} bytes, {} tasks each",
        (live() - bytes) / N as isize,
        (tasks() - alive) as f64 / N as f64
    );

    let (bytes, alive) = (live(), tasks());
    let mut guards = Vec::with_capacity(N);
    for lock in &idle {
        guards.push(lock.acquire().await.unwrap());
    }
    println!(
        "memory: held lock, no renewal: {} bytes, {} tasks each (the guard and its state)",
        (live() - bytes) / N as isize,
        (tasks() - alive) as f64 / N as f64
    );
    for guard in guards.drain(..) {
        guard.release().await.unwrap();
    }
    let renewing: Vec<Lock> = (0..N)
        .map(|i| {
            Lock::builder(format!("perf:memory:renewed:{i}"))
                .auto_renew(true)
                .build(connection.clone())
                .unwrap()
        })
        .collect();
    let (bytes, alive) = (live(), tasks());
    for lock in &renewing {
        guards.push(lock.acquire().await.unwrap());
    }
    println!(
        "memory: held lock, auto_renew: {} bytes, {} tasks each",
        (live() - bytes) / N as isize,
        (tasks() - alive) as f64 / N as f64
    );
    for guard in guards.drain(..) {
        guard.release().await.unwrap();
    }

    // Waiters on one key held by another lock of the same key.
    let holder = idle[0].acquire().await.unwrap();
    let lock = Lock::builder(idle[0].key())
        .wait(WaitPolicy::timeout(Duration::from_secs(60)))
        .notify_with(&client)
        .build(connection.clone())
        .unwrap();
    let (bytes, alive) = (live(), tasks());
    let waiting: Vec<_> = (0..N)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move {
                let _ = lock.acquire().await;
            })
        })
        .collect();
    // All subscribed and asleep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "memory: waiting task: {} bytes each (its acquire future and task included), {} tasks each besides its own (the process's subscription task is shared)",
        (live() - bytes) / N as isize,
        (tasks() - alive - N) as f64 / N as f64
    );
    for task in &waiting {
        task.abort();
    }
    holder.release().await.unwrap();
}
