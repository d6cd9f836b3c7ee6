//! What lockrun does with its arguments: connect and acquire (retrying
//! within `--wait`), then run the command under the lock, or report the
//! lock's holder (`--status`).

use std::time::Duration;

use redis_mutex::{Error, Lock, Locks, WaitPolicy};
use tokio::time::Instant;

use crate::cli::{Args, EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE};
use crate::group::{self, Stop};
use crate::lease::Wanted;
use crate::nested::{self, Held};
use crate::progress;
use crate::redact::say;
use crate::signals::{self, Signals};
use crate::status;
use crate::watchdog;

/// The longest pause between two tries while Redis does not answer.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a Redis failure (not a busy lock) is retried even when `--wait`
/// is shorter: `-n` means "do not wait for the holder", not "give up on
/// the first dropped packet" (a Redlock node being reconnected, say).
const MIN_RETRY: Duration = Duration::from_secs(1);

/// lockrun's run; returns its exit code.
pub async fn main(mut args: Args) -> u8 {
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            say(format!("cannot install signal handlers: {e}"));
            return EX_SOFTWARE;
        }
    };
    if args.urls.is_empty() {
        // An empty $REDIS_URL counts as unset, as in the examples.
        let url = std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        args.urls.push(url);
    }
    for (n, url) in args.urls.iter().enumerate() {
        if let Err(e) = redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
            say(format!(
                "--url number {}: not a valid Redis URL ({e})",
                n + 1
            ));
            return EX_USAGE;
        }
    }
    let deadline = Instant::now() + args.max_wait();
    let code = lock_and_run(&args, deadline, &mut signals).await;
    // A guard dropped on the way out is released by a background task: let
    // it finish (bounded) before the runtime shuts down.
    redis_mutex::flush_releases(Duration::from_secs(2)).await;
    code
}

async fn lock_and_run(args: &Args, deadline: Instant, signals: &mut Signals) -> u8 {
    let key = args.key.as_deref().unwrap_or_default();
    let acquired = async {
        let locks = retrying(deadline, || connect(args)).await?;
        let wanted = Wanted::of(&locks, key, args)?;
        if args.status {
            return Ok(Err(status::status(args, &wanted).await?));
        }
        // Re-entered under an outer lockrun's exclusive hold of this key
        // (a shared run under it too: it would wait for its own parent).
        if let (Some(handoff), Some(lock)) = (nested::inherited_hold(key), wanted.lock()) {
            return re_enter(args, deadline, lock, handoff).await;
        }
        let acquire = retrying(deadline, || {
            wanted.acquire_timeout(deadline.saturating_duration_since(Instant::now()))
        });
        let guard = progress::while_waiting(progress::wanted(args), &wanted, acquire).await?;
        Ok(Ok(Held::Own(guard)))
    };
    let acquired: redis_mutex::Result<Result<Held, u8>> = tokio::select! {
        acquired = acquired => acquired,
        signal = until_terminating(signals) => {
            say(format!("got {} while waiting for the lock; the command did not run", signals::name(signal)));
            return 128u8.saturating_add(u8::try_from(signal).unwrap_or(0));
        }
    };
    match acquired {
        Ok(Ok(held)) => run_command(args, held, signals).await,
        Ok(Err(status_code)) => status_code,
        Err(e) if e.is_busy() => {
            if !args.quiet {
                say(&e);
            }
            args.conflict_exit_code
        }
        Err(e @ Error::InvalidArgument { .. }) => {
            say(&e);
            EX_USAGE
        }
        Err(e) => {
            say(error_chain(&e));
            EX_UNAVAILABLE
        }
    }
}

/// A nested run's check of the hold it inherited (see `nested`): the
/// hold to run under, or the exit code of a refusal.
async fn re_enter(
    args: &Args,
    deadline: Instant,
    lock: &Lock,
    handoff: redis_mutex::Handoff,
) -> redis_mutex::Result<Result<Held, u8>> {
    if args.fence && handoff.fence().is_none() {
        say(format!(
            "--fence: the lockrun this one runs under holds {:?} without --fence, so there is no fencing token to pass on",
            handoff.key()
        ));
        return Ok(Err(EX_USAGE));
    }
    if !retrying(deadline, || lock.is_held_by(&handoff)).await? {
        say(format!(
            "the lock {:?} inherited from the lockrun this one runs under ({}) is not held by it any more: it was lost; the command did not run",
            handoff.key(),
            nested::HOLDS_ENV
        ));
        return Ok(Err(EX_SOFTWARE));
    }
    Ok(Ok(Held::Inherited(handoff)))
}

/// Runs `attempt` until it succeeds, fails for good, or fails retryably
/// after `deadline` and after [`MIN_RETRY`] (a busy lock is the attempt's
/// own wait, not retried).
async fn retrying<T, F, Fut>(deadline: Instant, mut attempt: F) -> redis_mutex::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis_mutex::Result<T>>,
{
    let deadline = deadline.max(Instant::now() + MIN_RETRY);
    loop {
        match attempt().await {
            Err(e) if !e.is_busy() && e.is_retryable() && Instant::now() < deadline => {
                let pause = deadline
                    .saturating_duration_since(Instant::now())
                    .min(RETRY_PAUSE);
                tokio::time::sleep(pause).await;
            }
            done => return done,
        }
    }
}

async fn connect(args: &Args) -> redis_mutex::Result<Locks> {
    let builder = Locks::builder()
        .ttl(args.ttl)
        .wait(WaitPolicy::timeout(args.max_wait()))
        .auto_renew(!args.no_renew)
        .fencing(args.fence);
    let urls = args.urls.iter().map(String::as_str);
    match args.urls.as_slice() {
        _ if args.cluster => builder.connect_cluster(urls).await,
        [url] => builder.connect(url.as_str()).await,
        _ => builder.connect_quorum(urls).await,
    }
}

/// The next terminating signal (USR1/USR2 before the command runs are
/// ignored).
async fn until_terminating(signals: &mut Signals) -> libc::c_int {
    loop {
        let signal = signals.recv().await;
        if signals::TERMINATING.contains(&signal) {
            return signal;
        }
    }
}

/// Runs the command under the held lock, stops its group, releases the
/// lock, and turns the outcome into lockrun's exit code.
async fn run_command(args: &Args, guard: Held, signals: &mut Signals) -> u8 {
    let mut child_exits = match signals::child_exits() {
        Ok(stream) => stream,
        Err(e) => {
            let _ = guard.release().await;
            say(format!("cannot install signal handlers: {e}"));
            return EX_SOFTWARE;
        }
    };
    // Started before the command, which tells it its group id before it
    // execs: no moment when the command runs unwatched.
    let watchdog = watchdog::start()
        .inspect_err(|e| say(format!("warning: no watchdog ({e}); if lockrun is killed, the command's grandchildren may outlive it")))
        .ok();
    let watchdog_fd = watchdog.as_ref().map(watchdog::Watchdog::fd);
    let holds = guard.for_command();
    let mut group = match group::spawn(&args.command, guard.fence(), &holds, watchdog_fd) {
        Ok(group) => group,
        Err(e) => {
            if let Some(watchdog) = watchdog {
                watchdog.dismiss();
            }
            let _ = guard.release().await;
            say(format!("cannot run {:?}: {e}", args.command[0]));
            return match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
        }
    };
    let mut stop: Option<Stop> = None;
    let mut lost = false;
    loop {
        group.reap();
        if group.status().is_some() && stop.is_none() {
            // The command exited: whatever it left in its group goes too.
            stop = Some(Stop::begin(&group, libc::SIGTERM, args.grace));
        }
        if let Some(stop) = &mut stop {
            stop.kill_if_due(&group);
        }
        if group.is_gone() {
            break;
        }
        let stopping = stop.is_some();
        tokio::select! {
            _ = child_exits.recv() => {}
            () = group::poll(), if group.status().is_some() => {}
            () = async {
                match &stop {
                    Some(stop) => stop.due().await,
                    None => std::future::pending().await,
                }
            }, if stopping => {}
            () = guard.lost(), if !lost => {
                lost = true;
                say(format!(
                    "lost the lock {:?} while the command ran; stopping its process group (SIGTERM, SIGKILL after {:?})",
                    guard.key(), args.grace
                ));
                if stop.is_none() {
                    stop = Some(Stop::begin(&group, libc::SIGTERM, args.grace));
                }
            }
            signal = signals.recv() => {
                // Passed on once: the command's group is not lockrun's, so
                // it did not get this from the terminal or from a kill of
                // lockrun's group.
                group.signal(signal);
                if signals::TERMINATING.contains(&signal) && stop.is_none() {
                    stop = Some(Stop::after(args.grace));
                }
            }
        }
    }
    if let Some(watchdog) = watchdog {
        watchdog.dismiss();
    }
    let status = group.status();
    if lost || guard.is_lost() {
        let _ = guard.release().await;
        return EX_SOFTWARE;
    }
    if let Err(e) = guard.release().await {
        if e.is_not_held() {
            say(format!(
                "{e}: the command may have overlapped with another holder"
            ));
            return EX_SOFTWARE;
        }
        say(format!(
            "warning: {}; the lock expires by its TTL",
            error_chain(&e)
        ));
    }
    status.map_or(1, group::exit_code)
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
