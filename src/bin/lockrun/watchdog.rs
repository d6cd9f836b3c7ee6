//! A watchdog outside lockrun: lockrun run again as `lockrun --watchdog`,
//! in a session of its own (no terminal or process-group signal reaches
//! it), reading a pipe from lockrun. It is started before the command,
//! whose child process writes its pid (the group's id) on the pipe before
//! it execs, so that lockrun killed at any moment leaves no command
//! unwatched. If the pipe closes without
//! lockrun's "done" (lockrun was SIGKILLed, the OOM killer took it), it
//! sends SIGKILL to the whole command group, grandchildren included, which
//! `PR_SET_PDEATHSIG` alone (the command's direct child only, and Linux
//! only) would miss. SIGKILL, not SIGTERM: nothing renews the lock any
//! more, so the lease may end at any moment, and a cleanup would overlap
//! the next holder.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, ExitCode, Stdio};

/// The byte lockrun sends when it has stopped the group itself.
const DONE: u8 = b'd';

/// lockrun's end of the watchdog's pipe.
#[derive(Debug)]
pub struct Watchdog {
    pipe: ChildStdin,
}

/// Starts the watchdog; the command's group is named on its pipe (see
/// [`Watchdog::fd`]).
pub fn start() -> io::Result<Watchdog> {
    // /proc/self/exe: this very binary, even if replaced on disk meanwhile.
    let exe = match cfg!(target_os = "linux") {
        true => std::path::PathBuf::from("/proc/self/exe"),
        false => std::env::current_exe()?,
    };
    let mut command = Command::new(exe);
    command
        .arg("--watchdog")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| match libc::setsid() {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    let mut child = command.spawn()?;
    let pipe = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no pipe"))?;
    Ok(Watchdog { pipe })
}

impl Watchdog {
    /// The pipe's write end (close-on-exec), where the command's child
    /// writes its pid before it execs.
    pub fn fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// Tells the watchdog the group is gone: it exits without killing.
    pub fn dismiss(mut self) {
        let _ = self.pipe.write_all(&[DONE]);
    }
}

/// The watchdog process: reads the group's id, then waits for lockrun's
/// pipe to close.
pub fn run() -> ExitCode {
    for signal in crate::signals::HANDLED {
        // SAFETY: ignoring a signal installs no handler code.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    let mut seen = Vec::new();
    let _ = io::stdin().read_to_end(&mut seen);
    let (pgid, after) = match seen.iter().position(|&b| b == b'\n') {
        Some(end) => (&seen[..end], &seen[end..]),
        None => (&[][..], &seen[..]),
    };
    let pgid: libc::pid_t = std::str::from_utf8(pgid)
        .ok()
        .and_then(|pgid| pgid.parse().ok())
        .unwrap_or(0);
    if !after.contains(&DONE) && pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    ExitCode::SUCCESS
}
