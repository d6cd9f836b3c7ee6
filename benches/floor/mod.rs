//! The floors the benches compare the lock with, the raw `redis` crate
//! sending commands by hand on the same connection, and the helpers the
//! benches share (medians of interleaved rounds, percentiles, CPU time,
//! command counts). Two floors:
//!
//! - the plain one, the lock anyone would write by hand: `SET key token NX
//!   PX 30000`, then a compare-and-delete by `EVALSHA` ([`floor_cycle`]);
//! - the same-commands one, byte for byte what an uncontended `Lock` sends:
//!   `SET key token NX GET PX ttl`, then the crate's own release script,
//!   which also publishes the release ([`same_commands_cycle`]). Against it
//!   a ratio measures the crate's client code alone; against the plain one
//!   it also measures what the `GET` option and the `PUBLISH` cost the
//!   server.
#![allow(dead_code)]

pub mod pubsub;

/// The compare-and-delete anyone would write by hand. The crate's release
/// script also publishes a wake-up for waiters after the `DEL`: a `PUBLISH`
/// to a channel that usually has no subscriber, part of what the ratio to
/// this floor measures.
pub const RELEASE_LUA: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// The crate's release script, word for word (`RELEASE_LUA` in
/// `src/mutex.rs`, whose unit test checks that this file holds its text): the
/// compare-and-delete, then the `PUBLISH` on the release channel
/// (`ARGV[2]`) of an empty message (`ARGV[3]` and `ARGV[4]` absent), by `pcall`. Being
/// the same text it has the same SHA1, so the floor and the lock share one
/// cached script on the server.
pub const CRATE_RELEASE_LUA: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    redis.call("DEL", KEYS[1])
    if ARGV[2] then
        local heard = redis.pcall("PUBLISH", ARGV[2], ARGV[3] or "")
        if ARGV[4] and (type(heard) ~= "number" or heard == 0) then
            redis.pcall("PUBLISH", ARGV[4], ARGV[5] or "")
        end
    end
    return 1
end
return 0
"#;

/// A token as long as the crate's (40 hex digits), for the same-commands
/// floor: the same bytes on the wire, without drawing a fresh one.
pub const CRATE_SIZED_TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

/// The channel the crate's release publishes on for a mutex on `key`: the
/// key in braces, then `:released` (`src/keys.rs`; copied by hand, since the
/// crate does not export it).
pub fn crate_release_channel(key: &str) -> String {
    format!("{{{key}}}:released")
}

/// One uncontended cycle of exactly the commands an uncontended `Lock`
/// cycle sends, on the same connection: `SET key token NX GET PX ttl` (the
/// lock's default TTL), which must answer nil (it was free), then
/// [`CRATE_RELEASE_LUA`] by `EVALSHA` with the key, the token and
/// `channel`, which must answer 1. What a cycle costs beyond this is the
/// crate's client code alone.
pub async fn same_commands_cycle(
    connection: &mut impl redis::aio::ConnectionLike,
    script: &redis::Script,
    key: &str,
    token: &str,
    channel: &str,
) {
    assert!(try_set_get(connection, key, token).await, "{key} was free");
    let deleted: i64 = script
        .key(key)
        .arg(token)
        .arg(channel)
        .invoke_async(connection)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
}

/// `SET key token NX GET PX ttl`, the crate's acquire (TTL: the lock's
/// default): whether it was set (the key held nothing before).
pub async fn try_set_get(
    connection: &mut impl redis::aio::ConnectionLike,
    key: &str,
    token: &str,
) -> bool {
    let previous: Option<Vec<u8>> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("GET")
        .arg("PX")
        .arg(redis_mutex::DEFAULT_TTL.as_millis() as u64)
        .query_async(connection)
        .await
        .unwrap();
    previous.is_none()
}

/// `SET key token NX PX 30000`: whether it was set.
pub async fn try_set(
    connection: &mut impl redis::aio::ConnectionLike,
    key: &str,
    token: &str,
) -> bool {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(30_000)
        .query_async(connection)
        .await
        .unwrap();
    set.is_some()
}

/// The floor's acquire: `SET key token NX PX 30000`, which must succeed.
pub async fn floor_set(connection: &mut impl redis::aio::ConnectionLike, key: &str, token: &str) {
    assert!(try_set(connection, key, token).await, "{key} was free");
}

/// The plain floor's cycle: [`floor_set`], then `script` (a
/// compare-and-delete) by `EVALSHA`, which must answer 1.
pub async fn floor_cycle(
    connection: &mut impl redis::aio::ConnectionLike,
    script: &redis::Script,
    key: &str,
    token: &str,
) {
    floor_set(connection, key, token).await;
    let deleted: i64 = script
        .key(key)
        .arg(token)
        .invoke_async(connection)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
}

/// The median of `values` (the upper middle one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The lock's rate over a floor's, round by round (each pair measured in
/// the same round): their median, a 95% confidence interval of that
/// median, and the lowest and highest.
///
/// The interval is distribution-free (order statistics: the rank of each
/// bound from the binomial distribution of how many rounds fall below the
/// true median), so it assumes only that the rounds are independent. With
/// 27 rounds it runs from the 8th to the 20th ratio. A bar that lies inside
/// it is neither met nor missed by this run.
#[derive(Clone, Copy, Debug, Default)]
pub struct PairedRatio {
    pub median: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub low: f64,
    pub high: f64,
}

impl PairedRatio {
    /// `None` without rounds.
    pub fn of(ours: &[f64], floor: &[f64]) -> Option<PairedRatio> {
        let mut ratios: Vec<f64> = ours.iter().zip(floor).map(|(o, f)| o / f).collect();
        if ratios.is_empty() {
            return None;
        }
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        let k = median_ci_rank(n);
        Some(PairedRatio {
            median: median(ratios.clone()),
            ci_low: ratios[k],
            ci_high: ratios[n - 1 - k],
            low: ratios[0],
            high: ratios[n - 1],
        })
    }
}

impl std::fmt::Display for PairedRatio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} (95% CI {:.3} to {:.3}; {:.3} to {:.3} over rounds)",
            self.median, self.ci_low, self.ci_high, self.low, self.high
        )
    }
}

/// The 0-based rank of the lower bound of a 95% confidence interval of the
/// median of `n` sorted values (the upper bound's is `n - 1 - rank`): the
/// largest `k` with P(Bin(n, 1/2) <= k) <= 2.5%, or 0 (fewer than 6 rounds
/// give the whole range, which then covers less than 95%).
pub fn median_ci_rank(n: usize) -> usize {
    // P(X = i) for X ~ Bin(n, 1/2), summed from i = 0 while the tail stays
    // within 2.5%.
    let mut p = 0.5f64.powi(n as i32);
    let mut tail = 0.0;
    // How many of the lowest ranks the tail admits.
    let mut admitted = 0;
    for i in 0..n {
        tail += p;
        if tail > 0.025 {
            break;
        }
        admitted = i + 1;
        p *= (n - i) as f64 / (i + 1) as f64;
    }
    admitted.saturating_sub(1).min(n.saturating_sub(1) / 2)
}

/// `rounds` rounds of the floor and of the crate, interleaved (floor,
/// ours, floor, ours, ...) so that both see the same load on a shared
/// machine; each call returns its round's rate. The medians, floor first.
pub async fn interleaved(
    rounds: usize,
    mut floor: impl AsyncFnMut() -> f64,
    mut ours: impl AsyncFnMut() -> f64,
) -> (f64, f64) {
    let (mut floors, mut theirs) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        floors.push(floor().await);
        theirs.push(ours().await);
    }
    (median(floors), median(theirs))
}

/// `count` per second of `took`.
pub fn rate(count: usize, took: std::time::Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

/// User + system CPU time of this process so far.
pub fn cpu_time() -> std::time::Duration {
    // SAFETY: `getrusage` only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let of = |tv: libc::timeval| {
        std::time::Duration::from_secs(tv.tv_sec as u64)
            + std::time::Duration::from_micros(tv.tv_usec as u64)
    };
    of(usage.ru_utime) + of(usage.ru_stime)
}

/// p50, p90, p99 and the largest of `samples`, in µs.
pub fn percentiles(samples: &mut [std::time::Duration]) -> [f64; 4] {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e6
    };
    [at(0.50), at(0.90), at(0.99), at(1.0)]
}

/// `cmdstat_<name>:calls=N` of an `INFO commandstats` text, by command.
pub fn command_calls(info: &str) -> std::collections::BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// The floor of one Redlock cycle over `connections` (5 independent
/// servers): `SET key token NX PX 30000` to every node at once, then the
/// release by `EVALSHA` to every node at once, waiting for all five. With a
/// `channel`, the same commands as the crate's Redlock instead: `SET key
/// token NX GET PX ttl` ([`try_set_get`]) and `script` (then
/// [`CRATE_RELEASE_LUA`]) given the channel to publish on. With
/// `at_majority`, the acquire returns at the majority's grant instead (as
/// redis-lock's does); the slower nodes' `SET`s are still sent, their
/// answers dropped, and the release queues behind them on each connection.
pub async fn floor_redlock_cycle(
    connections: &[redis::aio::MultiplexedConnection],
    script: &redis::Script,
    key: &str,
    token: &str,
    channel: Option<&str>,
    at_majority: bool,
) {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    let majority = connections.len() / 2 + 1;
    let mut sets: Vec<Pin<Box<dyn Future<Output = bool> + Send + '_>>> = connections
        .iter()
        .map(|connection| {
            let mut connection = connection.clone();
            Box::pin(async move {
                match channel {
                    None => try_set(&mut connection, key, token).await,
                    Some(_) => try_set_get(&mut connection, key, token).await,
                }
            }) as Pin<Box<dyn Future<Output = bool> + Send + '_>>
        })
        .collect();
    let mut done: Vec<Option<bool>> = vec![None; sets.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (set, done) in sets.iter_mut().zip(done.iter_mut()) {
            if done.is_none() {
                match set.as_mut().poll(cx) {
                    Poll::Ready(granted) => *done = Some(granted),
                    Poll::Pending => pending = true,
                }
            }
        }
        let granted = done.iter().filter(|d| **d == Some(true)).count();
        if !pending || (at_majority && granted >= majority) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    drop(sets);
    assert!(done.iter().filter(|d| **d == Some(true)).count() >= majority);
    let mut releases = Vec::with_capacity(connections.len());
    for connection in connections {
        let mut connection = connection.clone();
        releases.push(async move {
            let mut invocation = script.key(key);
            invocation.arg(token);
            if let Some(channel) = channel {
                invocation.arg(channel);
            }
            let _: i64 = invocation.invoke_async(&mut connection).await.unwrap();
        });
    }
    join_all(releases).await;
}

/// Polls `futures` concurrently in the calling task until all are done.
pub async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done = vec![false; futures.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, done) in futures.iter_mut().zip(done.iter_mut()) {
            if !*done {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(()) => *done = true,
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
}
