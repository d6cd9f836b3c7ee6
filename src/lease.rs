//! `Lease`: what a held lock promises and for how long, shared by the guard,
//! its renewal task and the code doing the work. It is how loss is signalled.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

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
/// answers at all. Loss is final.
#[derive(Clone)]
pub struct Lease {
    shared: Arc<Shared>,
}

struct Shared {
    key: Arc<str>,
    state: watch::Sender<LeaseState>,
}

#[derive(Clone, Copy, Debug)]
struct LeaseState {
    /// Invariant: never later than the server-side expiry of our key, since
    /// it counts from before the command that set the TTL was sent and keeps
    /// a drift margin.
    deadline: Instant,
    /// Set when Redis said the key no longer holds our token.
    lost: bool,
}

impl Lease {
    pub(crate) fn new(key: Arc<str>, deadline: Instant) -> Lease {
        let (state, _) = watch::channel(LeaseState {
            deadline,
            lost: false,
        });
        Lease {
            shared: Arc::new(Shared { key, state }),
        }
    }

    /// The key of the lock.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The instant until which this process can trust it holds the lock: the
    /// TTL counted from before the `SET` (or the last successful extend) was
    /// sent, minus a drift margin of 1% + 2 ms, on the monotonic clock.
    pub fn deadline(&self) -> Instant {
        self.shared.state.borrow().deadline
    }

    /// How long until the [`deadline`](Lease::deadline); zero once passed or
    /// once the lock is lost.
    pub fn remaining(&self) -> Duration {
        let state = *self.shared.state.borrow();
        if state.lost {
            Duration::ZERO
        } else {
            state.deadline.saturating_duration_since(Instant::now())
        }
    }

    /// Whether the lock is lost: Redis answered that it is not ours any more,
    /// or the deadline has passed. Cheap: asks nothing of Redis.
    pub fn is_lost(&self) -> bool {
        let state = *self.shared.state.borrow();
        state.lost || Instant::now() >= state.deadline
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
        let mut changes = self.shared.state.subscribe();
        loop {
            let state = *changes.borrow_and_update();
            if state.lost || Instant::now() >= state.deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(state.deadline) => {}
                // The sender lives in `shared`, which we hold: never closed.
                _ = changes.changed() => {}
            }
        }
    }

    /// Moves the deadline after a successful extend, unless already lost;
    /// `false` when it was. Loss is final: a lease that ran out stays lost
    /// even if a late extend succeeds.
    pub(crate) fn extended(&self, deadline: Instant) -> bool {
        let mut moved = false;
        self.shared.state.send_if_modified(|state| {
            if state.lost || Instant::now() >= state.deadline {
                state.lost = true;
                return true;
            }
            state.deadline = deadline;
            moved = true;
            true
        });
        moved
    }

    /// Records that Redis answered "not ours any more".
    pub(crate) fn mark_lost(&self) {
        self.shared.state.send_modify(|state| state.lost = true);
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

    #[tokio::test(start_paused = true)]
    async fn lost_fires_at_the_deadline_without_any_answer() {
        let lease = Lease::new("k".into(), Instant::now() + Duration::from_secs(3));
        assert!(!lease.is_lost());
        let started = Instant::now();
        lease.lost().await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(lease.is_lost());
        assert_eq!(lease.remaining(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_extend_postpones_loss() {
        let lease = Lease::new("k".into(), Instant::now() + Duration::from_secs(3));
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
        let lease = Lease::new("k".into(), Instant::now() + Duration::from_secs(60));
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

    #[tokio::test(start_paused = true)]
    async fn an_extend_after_the_deadline_does_not_revive_the_lease() {
        let lease = Lease::new("k".into(), Instant::now() + Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        lease.extended(Instant::now() + Duration::from_secs(60));
        assert!(lease.is_lost());
    }
}
