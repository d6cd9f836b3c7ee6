//! `lockrun`: run a command while holding a distributed lock, like `flock(1)`
//! across machines.
//!
//! ```text
//! lockrun --key KEY [--url URL]... [--cluster] [--ttl DURATION] [--wait DURATION]
//!         [--renew | --no-renew] [--grace DURATION] [--fence] -- COMMAND [ARGS...]
//! ```
//!
//! The command's stdin, stdout and stderr pass through and its exit status is
//! lockrun's. Exit codes of lockrun itself (from sysexits.h):
//! 64 bad arguments, 69 Redis unreachable or no quorum, 70 the lock was lost while the
//! command ran (the command gets SIGTERM, then SIGKILL after the grace
//! period), 75 the lock was busy for the whole `--wait`.
//!
//! ```sh
//! cargo run --example lockrun -- --key backup --wait 10s -- ./backup.sh
//! ```

use std::process::ExitCode;
use std::time::Duration;

use redis_mutex::{Error, Lock, LockGuard, WaitPolicy};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

const EX_USAGE: u8 = 64;
const EX_UNAVAILABLE: u8 = 69;
const EX_SOFTWARE: u8 = 70;
const EX_TEMPFAIL: u8 = 75;

const USAGE: &str = "\
usage: lockrun --key KEY [--url URL]... [--cluster] [--ttl DURATION] [--wait DURATION]
               [--renew | --no-renew] [--grace DURATION] [--fence] -- COMMAND [ARGS...]

Runs COMMAND while holding the Redis lock KEY.
  --key KEY         the lock's key (required)
  --url URL         Redis server; defaults to $REDIS_URL, then redis://127.0.0.1:6379.
                    rediss:// (TLS) when built with --features tls; the server's
                    certificate is checked against the system's CAs (SSL_CERT_FILE).
                    Give it 3 or 5 times for a Redlock over independent servers
  --cluster         the --url(s) are seed nodes of one Redis Cluster
  --ttl DURATION    lease length (default 30s); DURATION is like 500ms, 10s, 2m, 1h
  --wait DURATION   how long to wait for a busy lock (default 0: fail at once)
  --renew           keep the lock renewed while COMMAND runs (the default)
  --no-renew        let the lock expire after --ttl; COMMAND is stopped then
  --grace DURATION  after SIGTERM, wait this long before SIGKILL (default 5s)
  --fence           pass this acquisition's fencing token to COMMAND as LOCKRUN_FENCE
exit status: COMMAND's, or 64 usage, 69 Redis unreachable or no quorum, 70 lock lost, 75 busy";

#[derive(Debug)]
struct Args {
    key: String,
    urls: Vec<String>,
    ttl: Duration,
    wait: Duration,
    renew: bool,
    grace: Duration,
    fence: bool,
    cluster: bool,
    command: Vec<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        key: String::new(),
        urls: Vec::new(),
        ttl: Duration::from_secs(30),
        wait: Duration::ZERO,
        renew: true,
        grace: Duration::from_secs(5),
        fence: false,
        cluster: false,
        command: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--key" => parsed.key = value("--key")?,
            "--url" => parsed.urls.push(value("--url")?),
            "--ttl" => parsed.ttl = parse_duration(&value("--ttl")?)?,
            "--wait" => parsed.wait = parse_duration(&value("--wait")?)?,
            "--grace" => parsed.grace = parse_duration(&value("--grace")?)?,
            "--renew" => parsed.renew = true,
            "--no-renew" => parsed.renew = false,
            "--fence" => parsed.fence = true,
            "--cluster" => parsed.cluster = true,
            "--" => {
                parsed.command = args.collect();
                break;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.key.is_empty() {
        return Err("--key is required".into());
    }
    if parsed.command.is_empty() {
        return Err("no command given after --".into());
    }
    if parsed.urls.is_empty() {
        parsed
            .urls
            .push(std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()));
    }
    Ok(parsed)
}

/// `500ms`, `10s`, `2m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}: expected e.g. 500ms, 10s, 2m"))?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => {
            return Err(format!(
                "bad duration {text:?}: the unit must be ms, s, m or h"
            ));
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {text:?} is too long"))
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("lockrun: {message}");
    ExitCode::from(code)
}

#[tokio::main]
async fn main() -> ExitCode {
    // Asked for before `--` (after it, `-h` is the command's).
    let mut own_args = std::env::args().skip(1).take_while(|arg| arg != "--");
    if own_args.any(|arg| arg == "--help" || arg == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(problem) => return fail(EX_USAGE, format!("{problem}\n{USAGE}")),
    };
    let builder = Lock::builder(&args.key)
        .ttl(args.ttl)
        .wait(WaitPolicy::timeout(args.wait))
        .auto_renew(args.renew)
        .fencing(args.fence);
    // --cluster: the URLs are seeds of one Redis Cluster. Otherwise one URL
    // is a single node, several a Redlock over independent servers.
    let connected = match args.urls.as_slice() {
        urls if args.cluster => connect_cluster(builder, urls).await,
        [url] => builder.connect(url.as_str()).await,
        urls => {
            builder
                .connect_quorum(urls.iter().map(String::as_str))
                .await
        }
    };
    let lock = match connected {
        Ok(lock) => lock,
        Err(e @ Error::InvalidArgument { .. }) => return fail(EX_USAGE, e),
        Err(e) => return fail(EX_UNAVAILABLE, error_chain(&e)),
    };
    let guard = match lock.acquire().await {
        Ok(guard) => guard,
        Err(e) if e.is_busy() => return fail(EX_TEMPFAIL, e),
        Err(e) => return fail(EX_UNAVAILABLE, error_chain(&e)),
    };
    let code = run(&args, guard).await;
    // A guard dropped on the way out is released by a background task: let
    // it finish (bounded) before the runtime shuts down and drops it.
    redis_mutex::flush_releases(Duration::from_secs(2)).await;
    code
}

#[cfg(feature = "cluster")]
async fn connect_cluster(
    builder: redis_mutex::LockBuilder,
    seeds: &[String],
) -> redis_mutex::Result<Lock> {
    builder
        .connect_cluster(seeds.iter().map(String::as_str))
        .await
}

#[cfg(not(feature = "cluster"))]
async fn connect_cluster(_: redis_mutex::LockBuilder, _: &[String]) -> redis_mutex::Result<Lock> {
    Err(Error::InvalidArgument {
        field: "--cluster",
        reason: "this lockrun was built without the `cluster` feature (cargo build --example lockrun --features cluster)".into(),
    })
}

/// Runs the command under the held lock and turns the outcome into lockrun's
/// exit code.
async fn run(args: &Args, guard: LockGuard) -> ExitCode {
    let mut command = Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    if let Some(fence) = guard.fence() {
        command.env("LOCKRUN_FENCE", fence.to_string());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = guard.release().await;
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return fail(code, format!("cannot run {:?}: {e}", args.command[0]));
        }
    };
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return fail(EX_SOFTWARE, "cannot install signal handlers");
    };

    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = guard.lost() => {
                eprintln!(
                    "lockrun: lost the lock {:?} while the command ran; terminating it (SIGTERM, SIGKILL after {:?})",
                    args.key, args.grace
                );
                stop(&mut child, args.grace).await;
                let _ = guard.release().await;
                return ExitCode::from(EX_SOFTWARE);
            }
            // Passed on; lockrun keeps the lock until the command exits.
            _ = interrupt.recv() => send_signal(&child, libc::SIGINT),
            _ = terminate.recv() => send_signal(&child, libc::SIGTERM),
        }
    };
    let released = guard.release().await;
    let status = match status {
        Ok(status) => status,
        Err(e) => return fail(EX_SOFTWARE, format!("waiting for the command failed: {e}")),
    };
    if let Err(e) = released {
        if e.is_not_held() {
            return fail(
                EX_SOFTWARE,
                format!("{e}: the command may have overlapped with another holder"),
            );
        }
        eprintln!(
            "lockrun: warning: {}; the lock expires by its TTL",
            error_chain(&e)
        );
    }
    exit_code(status)
}

/// SIGTERM, then SIGKILL if the command has not exited after `grace`.
async fn stop(child: &mut Child, grace: Duration) {
    send_signal(child, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        eprintln!("lockrun: the command ignored SIGTERM for {grace:?}; killing it");
        let _ = child.kill().await;
    }
}

fn send_signal(child: &Child, signal: libc::c_int) {
    if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child's, which we have not reaped yet.
        unsafe { libc::kill(pid, signal) };
    }
}

/// The command's exit code, or 128 + the signal that killed it, as shells do.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(128 + u8::try_from(signal).unwrap_or(0)),
        (None, None) => ExitCode::from(1),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // redis errors repeat their I/O cause in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
