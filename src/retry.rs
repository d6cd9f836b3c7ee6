//! The wait policy: how long `acquire` waits for a busy lock, and how it
//! spaces its attempts (exponential backoff with full jitter, capped); and
//! [`Doubling`], the one doubling-with-a-cap schedule of the crate (backoff
//! bounds, reconnect pauses, background release resends).

use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::ttl::MAX_TTL;

/// The shortest first backoff step the builder accepts.
const MIN_BACKOFF: Duration = Duration::from_millis(1);

/// How [`Lock::acquire`](crate::Lock::acquire) waits while another owner holds
/// the lock.
///
/// Between attempts it sleeps a random time between zero and
/// `min_backoff * 2^attempt`, capped at `max_backoff` ("full jitter"), so that
/// many waiters spread out instead of retrying in step. It never sleeps past
/// the deadline, and makes one last attempt at the deadline.
///
/// ```
/// use std::time::Duration;
/// use redis_mutex::WaitPolicy;
///
/// let patient = WaitPolicy::timeout(Duration::from_secs(60))
///     .backoff(Duration::from_millis(10), Duration::from_millis(500));
/// let once = WaitPolicy::no_wait();
/// assert_eq!(once.max_wait(), Some(Duration::ZERO));
/// assert_eq!(patient.max_wait(), Some(Duration::from_secs(60)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    max_wait: Option<Duration>,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl WaitPolicy {
    /// The first backoff step unless set: short, so a free lock is found fast.
    pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(2);
    /// The backoff cap unless set.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_millis(100);
    /// How long `acquire` waits unless set.
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);

    /// Wait up to `max_wait` for the lock, with the default backoff.
    pub const fn timeout(max_wait: Duration) -> WaitPolicy {
        WaitPolicy {
            max_wait: Some(max_wait),
            min_backoff: Self::DEFAULT_MIN_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
        }
    }

    /// Make one attempt and fail with [`Error::Busy`] at once if the lock is
    /// held.
    pub const fn no_wait() -> WaitPolicy {
        WaitPolicy::timeout(Duration::ZERO)
    }

    /// Wait as long as it takes. Use with care: a holder that renews forever
    /// keeps this waiter waiting forever.
    pub const fn forever() -> WaitPolicy {
        WaitPolicy {
            max_wait: None,
            ..WaitPolicy::timeout(Duration::ZERO)
        }
    }

    /// Sets the backoff bounds: the first sleep is at most `min`, each later
    /// one at most twice the previous bound, never more than `max`.
    ///
    /// Defaults to 2 ms and 100 ms. [`Lock`](crate::Lock)'s builder rejects a
    /// `min` below 1 ms (a busy loop against Redis), a `max` below `min`, and
    /// a `max` above [`MAX_TTL`](crate::MAX_TTL) (7 days: a waiter would
    /// sleep past any lease).
    #[must_use]
    pub const fn backoff(self, min: Duration, max: Duration) -> WaitPolicy {
        WaitPolicy {
            min_backoff: min,
            max_backoff: max,
            ..self
        }
    }

    /// The longest `acquire` waits, or `None` for no limit.
    pub const fn max_wait(&self) -> Option<Duration> {
        self.max_wait
    }

    pub(crate) const fn with_max_wait(self, max_wait: Option<Duration>) -> WaitPolicy {
        WaitPolicy { max_wait, ..self }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.min_backoff < MIN_BACKOFF {
            return Err(Error::invalid(
                "min_backoff",
                format!(
                    "{:?} must be at least 1 ms; less would retry in a busy loop against Redis",
                    self.min_backoff
                ),
            ));
        }
        if self.max_backoff > MAX_TTL {
            return Err(Error::invalid(
                "max_backoff",
                format!(
                    "{:?} is above the maximum of {MAX_TTL:?} (7 days, the longest lease): a waiter would outsleep any holder",
                    self.max_backoff
                ),
            ));
        }
        if self.max_backoff < self.min_backoff {
            return Err(Error::invalid(
                "max_backoff",
                format!(
                    "{:?} is below min_backoff {:?}",
                    self.max_backoff, self.min_backoff
                ),
            ));
        }
        Ok(())
    }

    /// When a wait started at `now` ends; `None` for [`forever`](WaitPolicy::forever).
    pub(crate) fn deadline(&self, now: Instant) -> Option<Instant> {
        self.max_wait.and_then(|wait| now.checked_add(wait))
    }

    pub(crate) fn start(&self, now: Instant) -> Backoff {
        Backoff {
            deadline: self.deadline(now),
            bound: Doubling::new(self.min_backoff, self.max_backoff),
        }
    }
}

impl Default for WaitPolicy {
    /// Waits up to 10 s, backing off from 2 ms to at most 100 ms.
    fn default() -> WaitPolicy {
        WaitPolicy::timeout(WaitPolicy::DEFAULT_MAX_WAIT)
    }
}

/// One `acquire` call's progress through its wait policy.
#[derive(Debug)]
pub(crate) struct Backoff {
    deadline: Option<Instant>,
    bound: Doubling,
}

impl Backoff {
    /// How long to sleep before the next attempt, or `None` when the deadline
    /// has passed and the caller must give up. The sleep never ends after the
    /// deadline, so the last attempt happens at the deadline.
    pub(crate) fn next_sleep(&mut self, now: Instant) -> Option<Duration> {
        let left = self.time_left(now)?;
        let jittered = rand::rng().random_range(Duration::ZERO..=self.bound.step());
        Some(jittered.min(left))
    }

    /// How long until the deadline (`Duration::MAX` without one), or `None`
    /// when it has passed and the caller must give up.
    pub(crate) fn time_left(&self, now: Instant) -> Option<Duration> {
        match self.deadline {
            Some(deadline) if now >= deadline => None,
            Some(deadline) => Some(deadline - now),
            None => Some(Duration::MAX),
        }
    }
}

/// A duration that doubles at each step, from `first` up to `max`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Doubling {
    next: Duration,
    max: Duration,
}

impl Doubling {
    pub(crate) const fn new(first: Duration, max: Duration) -> Doubling {
        Doubling { next: first, max }
    }

    /// This step's duration; the next one is twice as long, at most `max`.
    pub(crate) fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        now
    }

    /// The duration of step `n` (0 is `first`) of a fresh schedule.
    pub(crate) fn nth(first: Duration, n: u32, max: Duration) -> Duration {
        first.saturating_mul(1 << n.min(16)).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_grow_to_the_cap_with_jitter() {
        let policy =
            WaitPolicy::forever().backoff(Duration::from_millis(2), Duration::from_millis(50));
        let now = Instant::now();
        let mut backoff = policy.start(now);
        let bounds = [2, 4, 8, 16, 32, 50, 50, 50];
        for bound in bounds {
            let sleep = backoff.next_sleep(now).unwrap();
            assert!(
                sleep <= Duration::from_millis(bound),
                "{sleep:?} > {bound} ms"
            );
        }
        // Full jitter: over many draws at the cap, sleeps spread over the range.
        let draws: Vec<_> = (0..200).map(|_| backoff.next_sleep(now).unwrap()).collect();
        assert!(draws.iter().any(|d| *d < Duration::from_millis(10)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(40)));
    }

    #[test]
    fn never_sleeps_past_the_deadline() {
        let now = Instant::now();
        let policy = WaitPolicy::timeout(Duration::from_millis(30))
            .backoff(Duration::from_secs(5), Duration::from_secs(5));
        let mut backoff = policy.start(now);
        for _ in 0..50 {
            assert!(backoff.next_sleep(now).unwrap() <= Duration::from_millis(30));
        }
        assert!(
            backoff
                .next_sleep(now + Duration::from_millis(30))
                .is_none()
        );
    }

    #[test]
    fn doubling_doubles_up_to_its_cap() {
        let ms = Duration::from_millis;
        let mut doubling = Doubling::new(ms(10), ms(50));
        let steps: Vec<_> = (0..5).map(|_| doubling.step()).collect();
        assert_eq!(steps, [ms(10), ms(20), ms(40), ms(50), ms(50)]);
        for n in 0..5 {
            assert_eq!(Doubling::nth(ms(10), n, ms(50)), steps[n as usize]);
        }
        assert_eq!(Doubling::nth(ms(10), u32::MAX, ms(50)), ms(50));
    }

    #[test]
    fn no_wait_gives_up_after_the_first_attempt() {
        let now = Instant::now();
        assert!(WaitPolicy::no_wait().start(now).next_sleep(now).is_none());
    }

    #[test]
    fn rejects_busy_loops_and_inverted_bounds() {
        let zero = WaitPolicy::default().backoff(Duration::ZERO, Duration::from_millis(5));
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("min_backoff"), "{err}");
        let inverted =
            WaitPolicy::default().backoff(Duration::from_millis(9), Duration::from_millis(5));
        let err = inverted.validate().unwrap_err().to_string();
        assert!(err.contains("max_backoff"), "{err}");
        let below_a_ms =
            WaitPolicy::default().backoff(Duration::from_nanos(999_999), Duration::from_millis(5));
        let err = below_a_ms.validate().unwrap_err().to_string();
        assert!(err.contains("min_backoff") && err.contains("1 ms"), "{err}");
        let endless = WaitPolicy::forever().backoff(Duration::MAX, Duration::MAX);
        let err = endless.validate().unwrap_err().to_string();
        assert!(
            err.contains("max_backoff") && err.contains("7 days"),
            "{err}"
        );
        let bounds = WaitPolicy::forever().backoff(MIN_BACKOFF, MAX_TTL);
        assert!(bounds.validate().is_ok());
    }
}
