//! A clock that keeps counting while the system is suspended, for lease
//! deadlines.
//!
//! `Instant` (tokio's and std's) is `CLOCK_MONOTONIC` on Linux, which stops
//! during system suspend, while Redis keeps expiring keys by its own clock.
//! A laptop or VM suspended for longer than the TTL would wake up believing
//! it still holds a lock that expired meanwhile (rust-lang/rust#87906). So a
//! lease keeps its deadline on both clocks and is over when either says so:
//! `CLOCK_BOOTTIME` counts suspend, the monotonic clock drives tokio's
//! timers. Wall-clock time is never used (it jumps).
//!
//! Elsewhere than Linux there is no second clock here, and the monotonic
//! deadline alone applies.

use std::time::Duration;

/// Both clocks, read together for a lease's deadline.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Readings {
    /// [`boot_now`], read first.
    pub(crate) boot: Option<Duration>,
    /// The monotonic clock (tokio's, which tests can pause), read after.
    pub(crate) monotonic: tokio::time::Instant,
}

/// Reads both clocks, the boot clock first: a deadline carried from the
/// monotonic clock to the boot clock (`boot + (deadline - monotonic)`) then
/// comes out no later than the true one, whatever ran between the reads.
pub(crate) fn read() -> Readings {
    let boot = boot_now();
    Readings {
        boot,
        monotonic: tokio::time::Instant::now(),
    }
}

/// Time since boot, suspend included; `None` where the platform offers no
/// such clock here.
pub(crate) fn boot_now() -> Option<Duration> {
    let now = read_boottime()?;
    #[cfg(test)]
    let now = now + tests::suspended();
    Some(now)
}

#[cfg(target_os = "linux")]
fn read_boottime() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes only to the timespec it is given.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    if status != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

#[cfg(not(target_os = "linux"))]
fn read_boottime() -> Option<Duration> {
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    thread_local! {
        static SUSPENDED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    /// Time this thread's tests pretend the system spent suspended: it
    /// advances the boot clock only.
    pub(crate) fn suspend(for_: Duration) {
        SUSPENDED.with(|s| s.set(s.get() + for_));
    }

    pub(crate) fn suspended() -> Duration {
        SUSPENDED.with(Cell::get)
    }

    #[test]
    fn the_boot_clock_runs_on_linux() {
        if cfg!(target_os = "linux") {
            let a = super::boot_now().unwrap();
            std::thread::sleep(Duration::from_millis(5));
            let b = super::boot_now().unwrap();
            assert!(b >= a + Duration::from_millis(5), "{a:?} {b:?}");
        } else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the_boot_clock_runs_on_linux: not Linux, no boot clock to check"
            );
        }
    }
}
