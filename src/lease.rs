//! `Lease`: what a held lock promises and for how long, shared by the guard,
//! its renewal task and the code doing the work. It is how loss is signalled.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock;

/// How often `lost()` looks at the boot clock while it waits: the
/// monotonic timers it sleeps on stop during system suspend, so a loss by
/// suspend is noticed at most this long after the system wakes up.
const BOOT_CLOCK_CHECK: Duration = Duration::from_secs(1);

/// Below this, the boot and monotonic clocks are taken to agree: they differ
/// by the instants they were read at, and by no suspend worth counting.
const CLOCKS_AGREE: Duration = Duration::from_millis(1);

/// A read-only view of a held lock: its deadline and whether it is lost.
///
/// Get one from [`LockGuard::lease`](crate::LockGuard::lease) or from
/// [`Lock::run`](crate::Lock::run). It is cheap to clone and can be handed to
/// other tasks, so that work running under the lock can watch for its loss. It
/// cannot release the lock, and it does not keep the lock held: dropping the
/// guard still ends the lock.
///
/// The lock counts as **lost** from the moment an extend (manual or by the
/// renewal task) is answered "not ours any more", or the local deadline passes
/// without a successful extend, whichever comes first, even if Redis never
/// answers at all. Loss is final. On Linux the deadline passes during system
/// suspend too (see [`deadline`](Lease::deadline)); [`lost`](Lease::lost)
/// then completes within a second of the wake-up.
#[derive(Clone)]
pub struct Lease {
    shared: Arc<Shared>,
}

struct Shared {
    key: Arc<str>,
    /// Held only to copy or change the state, never across an await.
    state: Mutex<LeaseState>,
    /// Wakes `lost()` waiters when the state changes. (Not a watch channel:
    /// its sender notifies on drop, a cost on every uncontended cycle, while
    /// nobody can be waiting once the last `Lease` is gone.)
    changed: Notify,
    /// Set by the first to count this lease's loss (`metrics`).
    #[cfg(feature = "metrics")]
    loss_counted: std::sync::atomic::AtomicBool,
}

#[derive(Clone, Copy, Debug)]
struct LeaseState {
    /// Invariant: never later than the server-side expiry of our key, since
    /// it counts from before the command that set the TTL was sent and keeps
    /// a drift margin.
    deadline: Instant,
    /// The same deadline on the boot clock, which keeps counting during
    /// system suspend (see `clock`); `None` without one.
    boot_deadline: Option<Duration>,
    /// Set when Redis said the key no longer holds our token.
    lost: bool,
}

impl LeaseState {
    /// A lease until `deadline`, carried to the boot clock by `now` (both
    /// clocks read once, the boot clock first: see [`clock::read`]).
    fn until(deadline: Instant, now: clock::Readings) -> LeaseState {
        LeaseState {
            deadline,
            boot_deadline: now
                .boot
                .map(|boot| boot + deadline.saturating_duration_since(now.monotonic)),
            lost: false,
        }
    }

    /// The time left by both clocks: the smaller (zero once either passed).
    fn left(&self) -> Duration {
        let monotonic = self.deadline.saturating_duration_since(Instant::now());
        self.left_after_suspend(monotonic).unwrap_or(monotonic)
    }

    /// The time left by the boot clock, when a suspend made it shorter than
    /// `monotonic`, the time left by the monotonic clock. The two clocks
    /// differ only by time spent suspended and by the instants they were
    /// read at; less than `CLOCKS_AGREE` apart, they agree.
    fn left_after_suspend(&self, monotonic: Duration) -> Option<Duration> {
        let boot = self.boot_deadline?.saturating_sub(clock::boot_now()?);
        (boot + CLOCKS_AGREE < monotonic).then_some(boot)
    }

    fn is_over(&self) -> bool {
        self.lost || self.left().is_zero()
    }
}

impl Lease {
    /// A lease until `deadline`; `now`: both clocks, read when the answer
    /// that confirmed it came (the acquire reads them once for its validity
    /// check and for this).
    pub(crate) fn new(key: Arc<str>, deadline: Instant, now: clock::Readings) -> Lease {
        Lease {
            shared: Arc::new(Shared {
                key,
                state: Mutex::new(LeaseState::until(deadline, now)),
                changed: Notify::new(),
                #[cfg(feature = "metrics")]
                loss_counted: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    fn state(&self) -> LeaseState {
        *self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and wakes the `lost()` waiters.
    fn change<T>(&self, change: impl FnOnce(&mut LeaseState) -> T) -> T {
        let result = change(
            &mut self
                .shared
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.shared.changed.notify_waiters();
        result
    }

    /// The key of the lock.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The instant until which this process can trust it holds the lock: the
    /// TTL counted from before the `SET` (or the last successful extend) was
    /// sent, minus a drift margin of 1% + 2 ms, on the monotonic clock.
    ///
    /// On Linux the lease also counts time the system spent suspended
    /// (`CLOCK_BOOTTIME`), which the monotonic clock misses while Redis keeps
    /// expiring keys: after a suspend the deadline moves earlier by it.
    pub fn deadline(&self) -> Instant {
        let state = self.state();
        let now = Instant::now();
        match state.left_after_suspend(state.deadline.saturating_duration_since(now)) {
            Some(left) => now + left,
            None => state.deadline,
        }
    }

    /// How long until the [`deadline`](Lease::deadline); zero once passed or
    /// once the lock is lost.
    pub fn remaining(&self) -> Duration {
        let state = self.state();
        if state.lost {
            Duration::ZERO
        } else {
            state.left()
        }
    }

    /// Whether the lock is lost: Redis answered that it is not ours any more,
    /// or the deadline has passed. Cheap: asks nothing of Redis.
    pub fn is_lost(&self) -> bool {
        self.state().is_over()
    }

    /// Completes when the lock is lost (see [`Lease`]); at once if it already
    /// is. With renewal on, that happens when Redis answers an extend with
    /// "not ours", or when extends fail (Redis down, paused, partitioned)
    /// until the deadline passes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire().await?;
    /// tokio::select! {
    ///     _ = guard.lease().lost() => eprintln!("lost {}: stop writing", guard.key()),
    ///     _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lost(&self) {
        loop {
            // Registered before the state is read: a change after the read
            // wakes this wait.
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let state = self.state();
            if state.is_over() {
                return;
            }
            let mut wake = Instant::now() + state.left();
            if state.boot_deadline.is_some() {
                // A suspend from now on stops this timer too.
                wake = wake.min(Instant::now() + BOOT_CLOCK_CHECK);
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = changed => {}
            }
        }
    }

    /// Moves the deadline after a successful extend, unless already lost;
    /// `false` when it was. Loss is final: a lease that ran out stays lost
    /// even if a late extend succeeds.
    pub(crate) fn extended(&self, deadline: Instant) -> bool {
        self.change(|state| {
            if state.is_over() {
                state.lost = true;
                return false;
            }
            *state = LeaseState::until(deadline, clock::read());
            true
        })
    }

    /// `true` for the first caller only: the one that counts the loss.
    #[cfg(feature = "metrics")]
    pub(crate) fn first_loss(&self) -> bool {
        !self
            .shared
            .loss_counted
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Records that Redis answered "not ours any more".
    pub(crate) fn mark_lost(&self) {
        self.change(|state| state.lost = true);
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key())
            .field("remaining", &self.remaining())
            .field("lost", &self.is_lost())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease of `left` from now.
    fn lease_for(left: Duration) -> Lease {
        let now = clock::read();
        Lease::new("k".into(), now.monotonic + left, now)
    }

    #[tokio::test(start_paused = true)]
    async fn lost_fires_at_the_deadline_without_any_answer() {
        let lease = lease_for(Duration::from_secs(3));
        assert!(!lease.is_lost());
        let started = Instant::now();
        lease.lost().await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(lease.is_lost());
        assert_eq!(lease.remaining(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_extend_postpones_loss() {
        let lease = lease_for(Duration::from_secs(3));
        let watcher = tokio::spawn({
            let lease = lease.clone();
            async move {
                let started = Instant::now();
                lease.lost().await;
                started.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        lease.extended(Instant::now() + Duration::from_secs(3));
        assert_eq!(watcher.await.unwrap(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn mark_lost_wakes_watchers_and_is_final() {
        let lease = lease_for(Duration::from_secs(60));
        let watcher = tokio::spawn({
            let lease = lease.clone();
            async move { lease.lost().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!watcher.is_finished());
        lease.mark_lost();
        watcher.await.unwrap();
        lease.extended(Instant::now() + Duration::from_secs(60));
        assert!(lease.is_lost(), "a late extend does not undo a loss");
    }

    /// A system suspend stops the monotonic clock (and tokio's timers) but
    /// not Redis's: the boot clock ends the lease (research B6).
    #[tokio::test(start_paused = true)]
    async fn a_suspend_longer_than_the_lease_loses_it() {
        if clock::boot_now().is_none() {
            // Past libtest's capture, which takes only `eprintln!`.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED a_suspend_longer_than_the_lease_loses_it: no boot clock on this platform"
            );
            return;
        }
        let lease = lease_for(Duration::from_secs(30));
        let watcher = tokio::spawn({
            let lease = lease.clone();
            async move {
                lease.lost().await;
                Instant::now()
            }
        });
        tokio::task::yield_now().await;
        assert!(!lease.is_lost());
        let before = lease.remaining();
        // 10 s asleep: the monotonic clock did not move, the lease did.
        clock::tests::suspend(Duration::from_secs(10));
        let after = lease.remaining();
        assert!(
            before - after >= Duration::from_secs(10) && before - after < Duration::from_secs(11),
            "{before:?} -> {after:?}"
        );
        assert!(lease.deadline() <= Instant::now() + after);
        // Past the lease: lost at once for is_lost, and lost() wakes within
        // its check period, far before the monotonic deadline.
        clock::tests::suspend(Duration::from_secs(30));
        assert!(lease.is_lost());
        assert_eq!(lease.remaining(), Duration::ZERO);
        let woke = watcher.await.unwrap();
        assert!(woke <= Instant::now() + BOOT_CLOCK_CHECK);
        assert!(woke < Instant::now() + Duration::from_secs(20));
        // And an extend cannot revive it.
        assert!(!lease.extended(Instant::now() + Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_extend_after_the_deadline_does_not_revive_the_lease() {
        let lease = lease_for(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        lease.extended(Instant::now() + Duration::from_secs(60));
        assert!(lease.is_lost());
    }
}
