//! Lease lengths: the TTL bounds, and the drift margin that turns a TTL into
//! the time a holder may trust its lease.
//!
//! Invariants:
//! - A TTL is between [`MIN_TTL`] and [`MAX_TTL`], in whole milliseconds (as
//!   `PX` and `PEXPIRE` take them).
//! - A lease is trusted until `sent_at + validity(ttl)`, where `sent_at` is
//!   taken before the command that set the TTL was sent: never later than
//!   the server's expiry. [`ClockDrift::valid_until`] is the one place that
//!   computes it.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// The shortest TTL a lock accepts. Shorter leases leave no validity after the
/// clock-drift margin (see [`LockGuard::deadline`](crate::LockGuard::deadline)).
pub const MIN_TTL: Duration = Duration::from_millis(10);

/// The longest TTL a lock accepts: 7 days. A lock meant to outlive a crashed
/// holder for longer is almost always a mistake; long work should renew a
/// shorter lease instead.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The TTL of a lock unless set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// How long a key can outlive its TTL: Redis keeps expiry times in whole
/// milliseconds and deletes a key only once its last millisecond is over.
/// So a key set with a TTL before instant `t` is gone by
/// `t + ttl + EXPIRY_RESOLUTION`, and one whose `PTTL` read `n` before `t`,
/// by `t + n + EXPIRY_RESOLUTION`. A waiter that wakes at `t + ttl` can
/// find it still there.
pub(crate) const EXPIRY_RESOLUTION: Duration = Duration::from_millis(1);

/// How long after a reply of `pttl_ms` (`PTTL`, or a script's) its key is
/// gone at the latest. A negative reply counts as 0.
pub(crate) fn gone_within(pttl_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(pttl_ms).unwrap_or(0)) + EXPIRY_RESOLUTION
}

/// Checks a TTL and rounds it down to whole milliseconds, as `PX` takes them.
pub(crate) fn check_ttl(ttl: Duration) -> Result<Duration> {
    if ttl < MIN_TTL {
        return Err(Error::invalid(
            "ttl",
            format!("{ttl:?} is below the minimum of {MIN_TTL:?}"),
        ));
    }
    if ttl > MAX_TTL {
        return Err(Error::invalid(
            "ttl",
            format!(
                "{ttl:?} is above the maximum of {MAX_TTL:?} (7 days); renew a shorter lease instead"
            ),
        ));
    }
    Ok(Duration::from_millis(millis(ttl)))
}

/// Whole milliseconds of `duration`, saturating (TTLs are checked to fit).
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The margin kept off every lease for clocks that run at slightly different
/// rates: `factor * ttl + fixed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClockDrift {
    pub(crate) factor: f64,
    pub(crate) fixed: Duration,
}

impl ClockDrift {
    /// 1% + 2 ms, the Redlock reference's allowance (redlock-rb): the 2 ms
    /// cover Redis's 1 ms expiry precision plus 1 ms of drift for short TTLs.
    pub(crate) const DEFAULT: ClockDrift = ClockDrift {
        factor: 0.01,
        fixed: Duration::from_millis(2),
    };

    /// The margin for a lease of `ttl`, rounded up to whole nanoseconds.
    pub(crate) fn margin(&self, ttl: Duration) -> Duration {
        // TTLs are at most 7 days (6e14 ns): a u64, exact in an f64 (a u128
        // would cost a software conversion, ~45 instructions an acquire).
        // Anything longer saturates, as the cast back does.
        let nanos = u64::try_from(ttl.as_nanos()).map_or(f64::MAX, |nanos| nanos as f64);
        let scaled = (nanos * self.factor).ceil();
        Duration::from_nanos(scaled as u64).saturating_add(self.fixed)
    }

    /// How long a lease of `ttl` is safe to trust, counted from before the
    /// command that set it was sent: `ttl` minus the margin.
    pub(crate) fn validity(&self, ttl: Duration) -> Duration {
        ttl.saturating_sub(self.margin(ttl))
    }

    /// Until when a lease of `ttl` set by a command sent at `sent_at` is ours.
    pub(crate) fn valid_until(&self, sent_at: Instant, ttl: Duration) -> Instant {
        sent_at + self.validity(ttl)
    }

    /// An error unless `ttl` leaves some validity after the margin.
    pub(crate) fn check_validity(&self, field: &'static str, ttl: Duration) -> Result<()> {
        if self.validity(ttl).is_zero() {
            return Err(Error::invalid(
                field,
                format!(
                    "a margin of {:?} leaves no validity of the {ttl:?} TTL",
                    self.margin(ttl)
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn check(&self) -> Result<()> {
        if !(self.factor.is_finite() && (0.0..=0.5).contains(&self.factor)) {
            return Err(Error::invalid(
                "clock_drift",
                format!(
                    "the factor {} is not between 0 and 0.5 (a fraction of the TTL)",
                    self.factor
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long a lease of `ttl` is safe to trust with the default margin.
    fn validity(ttl: Duration) -> Duration {
        ClockDrift::DEFAULT.validity(ttl)
    }

    #[test]
    fn validity_leaves_a_drift_margin() {
        assert_eq!(
            validity(Duration::from_secs(10)),
            Duration::from_millis(9_898)
        );
        assert_eq!(
            validity(Duration::from_millis(100)),
            Duration::from_millis(97)
        );
        assert!(validity(MIN_TTL) > Duration::ZERO);
    }

    #[test]
    fn the_drift_margin_is_configurable_and_checked() {
        let drift = ClockDrift {
            factor: 0.02,
            fixed: Duration::from_millis(5),
        };
        assert_eq!(
            drift.margin(Duration::from_secs(10)),
            Duration::from_millis(205)
        );
        assert_eq!(
            drift.validity(Duration::from_secs(10)),
            Duration::from_millis(9_795)
        );
        let none = ClockDrift {
            factor: 0.0,
            fixed: Duration::ZERO,
        };
        assert_eq!(none.validity(MAX_TTL), MAX_TTL);
        // More margin than lease saturates to no validity, never panics.
        let huge = ClockDrift {
            factor: 0.5,
            fixed: Duration::MAX,
        };
        assert_eq!(huge.validity(MAX_TTL), Duration::ZERO);
        for factor in [-0.01, 0.51, f64::NAN, f64::INFINITY] {
            let drift = ClockDrift {
                factor,
                fixed: Duration::ZERO,
            };
            let err = drift.check().unwrap_err().to_string();
            assert!(err.starts_with("invalid clock_drift"), "{err}");
        }
    }

    #[test]
    fn ttl_bounds_are_named_in_the_error() {
        for bad in [
            Duration::ZERO,
            Duration::from_millis(9),
            MAX_TTL + Duration::from_millis(1),
            Duration::MAX,
        ] {
            let err = check_ttl(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { field: "ttl", .. }),
                "{err}"
            );
        }
        assert!(
            check_ttl(Duration::ZERO)
                .unwrap_err()
                .to_string()
                .contains("minimum of 10ms")
        );
        assert!(
            check_ttl(Duration::MAX)
                .unwrap_err()
                .to_string()
                .contains("maximum")
        );
        assert_eq!(
            check_ttl(Duration::from_micros(10_999)).unwrap(),
            Duration::from_millis(10)
        );
        assert_eq!(check_ttl(MAX_TTL).unwrap(), MAX_TTL);
    }
}
