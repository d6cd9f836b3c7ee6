//! The command's process group: started in a group of its own, stopped as a
//! whole (SIGTERM, then SIGKILL after the grace period), and waited for
//! until no process of it is left.
//!
//! lockrun reaps its children itself (`waitpid(-1)`, no tokio::process): on
//! Linux it is a child subreaper, so the command's orphaned grandchildren
//! become its children and are reaped here too; a zombie of the group would
//! otherwise keep the group alive for `kill(-pgid, 0)`.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use tokio::time::Instant;

/// How often a group whose leader has exited is checked for being gone.
const POLL: Duration = Duration::from_millis(20);

/// Makes lockrun the reaper of its descendants' orphans (Linux only;
/// elsewhere init reaps them, which works as long as init does).
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// The running command: its pid, which is also its process group's id.
#[derive(Debug)]
pub struct Group {
    pub pgid: libc::pid_t,
    status: Option<ExitStatus>,
}

/// Starts `argv` in a new process group. On Linux the command gets SIGKILL
/// if lockrun dies (`PR_SET_PDEATHSIG`): lockrun runs this from its main
/// thread, which lives as long as lockrun (the death signal follows the
/// thread that forked). With `watchdog`, the write end of the watchdog's
/// pipe (close-on-exec), the child writes its pid there before it execs,
/// so the watchdog knows the group before the command runs. `holds` is
/// the command's `LOCKRUN_HOLDS` (see `nested`).
pub fn spawn(
    argv: &[String],
    fence: Option<u64>,
    holds: &str,
    watchdog: Option<std::os::fd::RawFd>,
) -> io::Result<Group> {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .process_group(0)
        .env(crate::nested::HOLDS_ENV, holds);
    if let Some(fence) = fence {
        command.env("LOCKRUN_FENCE", fence.to_string());
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid has no preconditions.
        let lockrun = unsafe { libc::getpid() };
        // SAFETY: the closure only makes async-signal-safe calls (prctl,
        // getppid, raise) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // lockrun died before the death signal was armed.
                if libc::getppid() != lockrun {
                    libc::raise(libc::SIGKILL);
                }
                Ok(())
            });
        }
    }
    if let Some(fd) = watchdog {
        // SAFETY: the closure only makes async-signal-safe calls (getpid,
        // write) on a stack buffer between fork and exec.
        unsafe {
            command.pre_exec(move || tell_watchdog(fd));
        }
    }
    let child = command.spawn()?;
    let pgid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    // Dropping a std Child neither waits nor kills: reaped in `reap`.
    drop(child);
    Ok(Group { pgid, status: None })
}

/// Writes this process's pid and a newline to `fd`, without allocating
/// (it runs between fork and exec).
fn tell_watchdog(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: getpid has no preconditions.
    let mut pid = unsafe { libc::getpid() }.unsigned_abs();
    let mut buffer = [0u8; 16];
    let mut start = buffer.len() - 1;
    buffer[start] = b'\n';
    loop {
        start -= 1;
        buffer[start] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    let line = &buffer[start..];
    // A pipe write this short is atomic: all of it or an error.
    // SAFETY: `line` is valid for `line.len()` bytes.
    match unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) } {
        n if n == line.len() as isize => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

impl Group {
    /// Sends `signal` to every process of the group.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) has no memory-safety preconditions; the group is
        // ours and not empty until `is_gone`.
        unsafe { libc::kill(-self.pgid, signal) };
    }

    /// The command's exit status, once it has exited.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Reaps every child that has exited, noting the command's status.
    pub fn reap(&mut self) {
        loop {
            let mut raw = 0;
            // SAFETY: waitpid writes only to `raw`.
            let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if pid == self.pgid {
                self.status = Some(ExitStatus::from_raw(raw));
            }
        }
    }

    /// Whether no process of the group is left (its zombies reaped).
    pub fn is_gone(&mut self) -> bool {
        self.reap();
        // SAFETY: signal 0 only checks that the group exists.
        let alive = unsafe { libc::kill(-self.pgid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        self.status.is_some() && !alive
    }
}

/// A group being stopped: when it is due for SIGKILL.
#[derive(Debug)]
pub struct Stop {
    kill_at: Instant,
    killed: bool,
    grace: Duration,
}

impl Stop {
    /// Sends `signal` to the group now and SIGKILL after `grace` unless it
    /// is gone by then.
    pub fn begin(group: &Group, signal: libc::c_int, grace: Duration) -> Stop {
        group.signal(signal);
        Stop::after(grace)
    }

    /// SIGKILL after `grace` unless the group is gone by then (the group
    /// already got its first signal).
    pub fn after(grace: Duration) -> Stop {
        Stop {
            kill_at: Instant::now() + grace,
            killed: false,
            grace,
        }
    }

    /// Sleeps until the group is due for SIGKILL (forever once sent).
    pub async fn due(&self) {
        match self.killed {
            true => std::future::pending().await,
            false => tokio::time::sleep_until(self.kill_at).await,
        }
    }

    /// Sends SIGKILL to the group if the grace period is over.
    pub fn kill_if_due(&mut self, group: &Group) {
        if !self.killed && Instant::now() >= self.kill_at {
            crate::redact::say(format!(
                "the command's process group outlived the {:?} grace period; sending SIGKILL",
                self.grace
            ));
            group.signal(libc::SIGKILL);
            self.killed = true;
        }
    }
}

/// Sleeps one poll period: how often a group whose leader exited is
/// checked (its other members do not signal lockrun when they exit unless
/// they are its children).
pub async fn poll() {
    tokio::time::sleep(POLL).await;
}

/// The command's exit code, or 128 + the signal that killed it, as shells do.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => 128u8.saturating_add(u8::try_from(signal).unwrap_or(0)),
        (None, None) => 1,
    }
}
