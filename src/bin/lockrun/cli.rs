//! lockrun's arguments (clap), its durations and its exit codes.

use std::time::Duration;

use clap::Parser;

/// Bad arguments or a bad `--url` (sysexits.h `EX_USAGE`).
pub const EX_USAGE: u8 = 64;
/// Redis unreachable or no quorum after the whole wait (`EX_UNAVAILABLE`).
pub const EX_UNAVAILABLE: u8 = 69;
/// The lock was lost while the command ran, or, for a nested run, before
/// it (`EX_SOFTWARE`).
pub const EX_SOFTWARE: u8 = 70;
/// The lock was busy for the whole wait (`EX_TEMPFAIL`).
pub const EX_TEMPFAIL: u8 = 75;

const EXIT_CODES: &str = "\
Exit status:
  N      the command's own exit status
  128+N  the command was ended by signal N (or lockrun was, before it started)
  64     usage: bad arguments or a bad --url
  69     Redis unreachable, or no quorum, after retrying for the whole --wait
  70     the lock was lost while the command ran (the command was stopped);
         nested: the lock inherited from the outer lockrun was lost (the
         command did not run)
  75     the lock (or, with --permits, every permit) was busy for the whole --wait
         (-E changes it); with --status: held
  126    the command could not be run
  127    the command was not found

The command runs in its own process group. When it exits, when the lock is
lost, or when lockrun gets SIGHUP, SIGINT, SIGQUIT or SIGTERM (passed on to
the group once), every process left in the group gets SIGTERM, then SIGKILL
after --grace, and the lock is released only once the group is gone.
SIGUSR1 and SIGUSR2 are passed on to the group. On Linux the command is
killed if lockrun itself is killed (SIGKILL, OOM killer).

Nested runs: the command gets LOCKRUN_HOLDS, the tokens of the locks it
runs under. A lockrun --key K run by it (at any depth) checks with Redis
that K still holds its token and runs at once, leaving renewal and release
to the outer lockrun (exit 70 if the outer lockrun lost K). The tokens are
secrets: whoever can read the command's environment can release the lock.
";

/// Runs a command while holding a distributed lock on Redis: flock(1)
/// across machines.
#[derive(Debug, Parser)]
#[command(
    name = "lockrun",
    version,
    after_help = EXIT_CODES,
    override_usage = "lockrun --key KEY [OPTIONS] [--] COMMAND [ARGS]...\n       lockrun --status --key KEY [OPTIONS]"
)]
pub struct Args {
    /// The lock's key
    #[arg(long, value_name = "KEY", required_unless_present = "watchdog",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub key: Option<String>,

    /// Redis server (redis://, rediss://, redis+unix://); defaults to
    /// $REDIS_URL (unless empty), then redis://127.0.0.1:6379. Give it 3 or 5 times for a
    /// Redlock over independent servers
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,

    /// The --url(s) are seed nodes of one Redis Cluster
    #[arg(long)]
    pub cluster: bool,

    /// Lease length: 30s, 500ms, 2m, 1h; a bare number is seconds
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub ttl: Duration,

    /// How long to wait for a busy lock (and for Redis to answer) before
    /// giving up; a bare number is seconds, 0 gives up at once (the default)
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,

    /// Give up at once if the lock is busy (the same as --wait 0)
    #[arg(short, long, conflicts_with = "wait")]
    pub nonblock: bool,

    /// Exit status when the lock is busy
    #[arg(short = 'E', long, value_name = "N", default_value_t = EX_TEMPFAIL)]
    pub conflict_exit_code: u8,

    /// No message when the lock is busy (for cron)
    #[arg(short, long)]
    pub quiet: bool,

    /// While waiting, show what for and the holder's lease left on stderr
    /// (updated in place) even when stderr is not a terminal; on a
    /// terminal it is shown anyway
    #[arg(long)]
    pub verbose: bool,

    /// Let the lock expire after --ttl instead of renewing it; the command
    /// is stopped then
    #[arg(long)]
    pub no_renew: bool,

    /// After SIGTERM, how long the command's group has before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Pass this acquisition's fencing token to the command as LOCKRUN_FENCE
    /// (takes a plain fenced lock, which does not wait for --shared holders)
    #[arg(long, conflicts_with_all = ["permits", "shared"])]
    pub fence: bool,

    /// Take a shared hold, as flock --shared: commands run with --shared
    /// run together, an exclusive one (the default) runs alone and is not
    /// starved by a stream of shared ones (not on a Redlock)
    #[arg(short, long, conflicts_with = "permits")]
    pub shared: bool,

    /// Wait in line: lockruns with --fair on KEY run in the order they
    /// started waiting, a new one behind those already waiting (not on a
    /// Redlock)
    #[arg(long, conflicts_with_all = ["permits", "shared", "fence"])]
    pub fair: bool,

    /// Take one of N permits of a semaphore on KEY instead of the lock: at
    /// most N commands run at once on every host (not on a Redlock: give
    /// one --url, or --cluster)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub permits: Option<u32>,

    /// Say whether KEY is held (exit 75) or free (exit 0), by whom and for
    /// how long, and its fence counter; run nothing
    #[arg(long, conflicts_with = "command")]
    pub status: bool,

    /// Internal: watch lockrun from outside and kill the process group
    /// named on stdin if lockrun dies
    #[arg(long, hide = true, exclusive = true)]
    pub watchdog: bool,

    /// The command to run, and its arguments
    #[arg(value_name = "COMMAND", trailing_var_arg = true,
          required_unless_present_any = ["status", "watchdog"])]
    pub command: Vec<String>,
}

impl Args {
    /// The longest wait for the lock (and for Redis).
    pub fn max_wait(&self) -> Duration {
        match self.nonblock {
            true => Duration::ZERO,
            false => self.wait.unwrap_or(Duration::ZERO),
        }
    }
}

/// `500ms`, `10s`, `2m`, `1h`, `1.5s`; a bare number is seconds (`0`, `5`,
/// `0.5`), as flock(1) takes them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("bad duration {text:?}: expected e.g. 0, 5, 0.5, 500ms, 10s, 2m, 1h");
    if number.is_empty() {
        return Err(bad());
    }
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3_600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(number * seconds)
        .map_err(|_| format!("duration {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_and_without_units() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("5"), Ok(ms(5_000)));
        assert_eq!(parse_duration("0.5"), Ok(ms(500)));
        assert_eq!(parse_duration("300ms"), Ok(ms(300)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        for bad in ["", "s", "ten", "5x", "-1", "1.2.3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
