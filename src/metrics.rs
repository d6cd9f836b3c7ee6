//! Metrics for operators (crate feature `metrics`), through the `metrics`
//! facade: whatever recorder the program installed (a Prometheus exporter,
//! StatsD, an OpenTelemetry bridge) gets them. Written once, for every kind
//! of lease: the engine calls these at its few points (acquire's end, the
//! wait, release, `Drop`, extend, renewal, loss).
//!
//! Without the feature every function here is an empty inline and [`Meter`]
//! is zero-sized: no metric call, no allocation, no clock read. Callers pass
//! what the functions need unevaluated (an `Instant`, a `&Result`), never a
//! value computed for them.
//!
//! Invariants:
//! - Labels are low-cardinality by construction: the name given with
//!   `metrics_name` (empty when none), the kind of lease
//!   ([`Kind::kind_name`](crate::kind::Kind::kind_name)), and outcomes,
//!   operations, error kinds and reasons from fixed lists here. Never a key,
//!   a token or a credential: none of them reaches this module.
//! - Each hold's loss is counted once (`Lease::first_loss`), whichever of
//!   an extend, renewal or `run` notices it first.
//! - The waiting gauge goes up at most once per acquire and down exactly
//!   as often, on every exit, cancellation included ([`Waiting`]'s drop).
//! - Metrics are looked up at each event, never cached: a recorder
//!   installed after the locks were built still gets every event. What is
//!   built once per lease is the [`Key`](::metrics::Key) (name, labels and
//!   their hash) of each event an uncontended acquire and release record
//!   ([`HotKeys`]): the macros build it at every call, which cost about
//!   1,900 instructions an acquire + release even with no recorder
//!   installed (callgrind, `benches/cpu.rs`, `--features metrics`).

// Without the feature the names and reasons are only documentation.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::sync::Arc;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::lease::Lease;

/// Acquires that took the lease.
pub(crate) const ACQUIRED: &str = "redis_mutex_acquired_total";
/// Acquires that gave up because others held the lease for the whole wait
/// (a `try_acquire` that found it held included).
pub(crate) const BUSY: &str = "redis_mutex_busy_total";
/// Operations that failed with an error, by `operation` and `error`.
pub(crate) const FAILURES: &str = "redis_mutex_failures_total";
/// Releases that found the lease gone (expired, or taken by another owner).
pub(crate) const RELEASED_NOT_HELD: &str = "redis_mutex_released_not_held_total";
/// Holds lost while held, by `reason`.
pub(crate) const LOST: &str = "redis_mutex_lost_total";
/// Seconds an acquire took, by `outcome`.
pub(crate) const WAIT_SECONDS: &str = "redis_mutex_wait_seconds";
/// Seconds from the acquire to the release or drop, by `outcome`.
pub(crate) const HELD_SECONDS: &str = "redis_mutex_held_seconds";
/// Acquires waiting now for a lease that others hold.
pub(crate) const WAITING: &str = "redis_mutex_waiting";

/// What one lease's metrics are labelled with; shared by every hold of it.
/// Zero-sized without the feature.
#[derive(Clone, Debug)]
pub(crate) struct Meter {
    /// The name given with `metrics_name`, empty when none was.
    #[cfg(feature = "metrics")]
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    kind: &'static str,
    #[cfg(feature = "metrics")]
    hot: Arc<HotKeys>,
}

/// The keys of the events every acquire and release record, built once
/// per lease with the same names and labels the macros would give them.
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct HotKeys {
    /// [`ACQUIRED`].
    acquired: ::metrics::Key,
    /// [`WAIT_SECONDS`], `outcome` `acquired`.
    waited_acquired: ::metrics::Key,
    /// [`HELD_SECONDS`], `outcome` `released`.
    held_released: ::metrics::Key,
}

#[cfg(feature = "metrics")]
impl HotKeys {
    fn new(name: &Arc<str>, kind: &'static str) -> HotKeys {
        use ::metrics::{Key, Label};
        let labels = |outcome: Option<&'static str>| {
            let mut labels = vec![Label::new("name", name.clone()), Label::new("kind", kind)];
            labels.extend(outcome.map(|outcome| Label::new("outcome", outcome)));
            labels
        };
        HotKeys {
            acquired: Key::from_parts(ACQUIRED, labels(None)),
            waited_acquired: Key::from_parts(WAIT_SECONDS, labels(Some("acquired"))),
            held_released: Key::from_parts(HELD_SECONDS, labels(Some("released"))),
        }
    }
}

/// What the macros give every metric of this module.
#[cfg(feature = "metrics")]
static METADATA: ::metrics::Metadata<'static> =
    ::metrics::Metadata::new(module_path!(), ::metrics::Level::INFO, Some(module_path!()));

/// A counter by its prebuilt key, from the recorder installed now.
#[cfg(feature = "metrics")]
fn counter(key: &::metrics::Key) -> ::metrics::Counter {
    ::metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

/// A histogram by its prebuilt key, from the recorder installed now.
#[cfg(feature = "metrics")]
fn histogram(key: &::metrics::Key) -> ::metrics::Histogram {
    ::metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
}

impl Meter {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    /// A meter for a lease of `kind` named `name` (the builders'
    /// `metrics_name`; empty when none was given).
    pub(crate) fn new(name: Option<&Arc<str>>, kind: &'static str) -> Meter {
        #[cfg(feature = "metrics")]
        let name: Arc<str> = name.cloned().unwrap_or_else(|| "".into());
        Meter {
            #[cfg(feature = "metrics")]
            hot: Arc::new(HotKeys::new(&name, kind)),
            #[cfg(feature = "metrics")]
            name,
            #[cfg(feature = "metrics")]
            kind,
        }
    }
}

#[cfg(feature = "metrics")]
macro_rules! labelled {
    ($macro:ident, $name:expr, $meter:expr $(, $key:literal => $value:expr)*) => {
        ::metrics::$macro!(
            $name,
            "name" => $meter.name.clone(),
            "kind" => $meter.kind
            $(, $key => $value)*
        )
    };
}

/// An acquire that began at `started` ended with `result`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn acquired<T>(meter: &Meter, started: Instant, result: &Result<T>) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match result {
            Ok(_) => {
                counter(&meter.hot.acquired).increment(1);
                histogram(&meter.hot.waited_acquired).record(started.elapsed());
                return;
            }
            Err(Error::Busy { .. }) => {
                labelled!(counter, BUSY, meter).increment(1);
                "busy"
            }
            Err(error) => {
                failed(meter, "acquire", error);
                "failed"
            }
        };
        labelled!(histogram, WAIT_SECONDS, meter, "outcome" => outcome).record(started.elapsed());
    }
}

/// A release of a hold that began at `valid_from` ended with `result`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn released(meter: &Meter, valid_from: Instant, result: &Result<()>) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match result {
            Ok(()) => "released",
            Err(error) if error.is_not_held() => {
                labelled!(counter, RELEASED_NOT_HELD, meter).increment(1);
                "not_held"
            }
            Err(error) => {
                failed(meter, "release", error);
                "failed"
            }
        };
        held(meter, valid_from, outcome);
    }
}

/// A hold that began at `valid_from` was dropped without a release (it is
/// released in the background).
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn dropped(meter: &Meter, valid_from: Instant) {
    #[cfg(feature = "metrics")]
    held(meter, valid_from, "dropped");
}

#[cfg(feature = "metrics")]
fn held(meter: &Meter, valid_from: Instant, outcome: &'static str) {
    if outcome == "released" {
        histogram(&meter.hot.held_released).record(valid_from.elapsed());
        return;
    }
    labelled!(histogram, HELD_SECONDS, meter, "outcome" => outcome).record(valid_from.elapsed());
}

/// An extend failed: `operation` is `"extend"` (the caller's) or `"renew"`
/// (renewal's, tried again). One that found the lease gone is a loss,
/// counted by [`lost`], not a failure.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn extend_failed(meter: &Meter, operation: &'static str, error: &Error) {
    #[cfg(feature = "metrics")]
    if !matches!(error, Error::NotHeld { .. } | Error::ValidityExpired { .. }) {
        failed(meter, operation, error);
    }
}

/// Why a hold was lost.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LossReason {
    /// Redis answered an extend: the lease no longer holds our token.
    NotHeld,
    /// No extend succeeded before the lease's deadline.
    Deadline,
}

/// `lease` is lost; counted once per hold, by whichever caller is first.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn lost(meter: &Meter, lease: &Lease, reason: LossReason) {
    #[cfg(feature = "metrics")]
    if lease.first_loss() {
        let reason = match reason {
            LossReason::NotHeld => "not_held",
            LossReason::Deadline => "deadline",
        };
        labelled!(counter, LOST, meter, "reason" => reason).increment(1);
    }
}

#[cfg(feature = "metrics")]
fn failed(meter: &Meter, operation: &'static str, error: &Error) {
    labelled!(counter, FAILURES, meter, "operation" => operation, "error" => error_kind(error))
        .increment(1);
}

/// The error's variant in snake case: a fixed list, whatever the error
/// carries (its key, its cause) left out.
#[cfg(feature = "metrics")]
fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Busy { .. } => "busy",
        Error::NotHeld { .. } => "not_held",
        Error::Lost { .. } => "lost",
        Error::WrongType { .. } => "wrong_type",
        Error::PermissionDenied { .. } => "permission_denied",
        Error::OutOfMemory { .. } => "out_of_memory",
        Error::NotReplicated { .. } => "not_replicated",
        Error::AuthenticationFailed { .. } => "authentication_failed",
        Error::UnsupportedServer { .. } => "unsupported_server",
        Error::TimedOut { .. } => "timed_out",
        Error::Redis { .. } => "redis",
        Error::QuorumNotReached { .. } => "quorum_not_reached",
        Error::ValidityExpired { .. } => "validity_expired",
        Error::InvalidArgument { .. } => "invalid_argument",
        Error::WaitsForItself { .. } => "waits_for_itself",
        Error::Random(_) => "random",
        Error::BlockingInRuntime { .. } => "blocking_in_runtime",
        Error::Runtime(_) => "runtime",
    }
}

/// The waiting gauge's share of one acquire: up when it first waits, down
/// when dropped (however the acquire ends). Zero-sized without the feature.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    #[cfg(feature = "metrics")]
    counted: Option<Meter>,
}

impl Waiting {
    /// The acquire waits (again): counted the first time only.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn start(&mut self, meter: &Meter) {
        #[cfg(feature = "metrics")]
        if self.counted.is_none() {
            labelled!(gauge, WAITING, meter).increment(1.0);
            self.counted = Some(meter.clone());
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(meter) = &self.counted {
            labelled!(gauge, WAITING, meter).decrement(1.0);
        }
    }
}

/// Registers the description and unit of every metric of this crate with
/// the recorder installed now, for exporters that show them (Prometheus'
/// `# HELP` lines). Call it once, after installing the recorder; metrics are
/// recorded without it all the same. Needs the crate feature `metrics`.
///
/// The metrics, each labelled `name` (set with
/// [`LockBuilder::metrics_name`](crate::LockBuilder::metrics_name) or
/// [`LocksBuilder::metrics_name`](crate::LocksBuilder::metrics_name);
/// empty when not) and `kind` (`lock` for a [`Lock`](crate::Lock)):
///
/// | metric | type | more labels | what it counts |
/// |---|---|---|---|
/// | `redis_mutex_acquired_total` | counter | | acquires that took the lease |
/// | `redis_mutex_busy_total` | counter | | acquires that gave up because others held the lease for the whole wait (a `try_acquire` that found it held too) |
/// | `redis_mutex_failures_total` | counter | `operation` (`acquire`, `release`, `extend`, `renew`), `error` | operations that failed with an error; `error` is the [`Error`](crate::Error) variant in snake case (`timed_out`, `redis`, `quorum_not_reached`, ...). Renewal's failed extends are tried again |
/// | `redis_mutex_released_not_held_total` | counter | | releases that found the lease gone: it expired or another owner took it, so the work may have overlapped another holder's |
/// | `redis_mutex_lost_total` | counter | `reason` (`not_held`, `deadline`) | holds lost while held: an extend (yours or renewal's) answered that the lease is not ours, or no extend succeeded before the deadline; once per hold |
/// | `redis_mutex_wait_seconds` | histogram | `outcome` (`acquired`, `busy`, `failed`) | how long each acquire took, waiting included |
/// | `redis_mutex_held_seconds` | histogram | `outcome` (`released`, `not_held`, `failed`, `dropped`) | from the acquire to the release, or to the guard's drop without one |
/// | `redis_mutex_waiting` | gauge | | acquires waiting now for a lease others hold |
///
/// No label carries a key (per-entity keys would give each its own time
/// series), a token or a credential. A loss is counted when the crate
/// notices it: an extend's answer, or renewal (or [`Lock::run`](crate::Lock::run))
/// seeing the deadline pass; a guard without renewal whose lease merely ran
/// out shows as `released_not_held` at its release instead.
///
/// ```
/// // After installing the recorder (a Prometheus exporter, ...):
/// redis_mutex::describe_metrics();
/// ```
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe_metrics() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(ACQUIRED, Unit::Count, "Lock acquires that took the lease");
    describe_counter!(
        BUSY,
        Unit::Count,
        "Lock acquires that gave up: others held the lease for the whole wait"
    );
    describe_counter!(
        FAILURES,
        Unit::Count,
        "Lock operations that failed with an error, by operation and error kind"
    );
    describe_counter!(
        RELEASED_NOT_HELD,
        Unit::Count,
        "Lock releases that found the lease gone (expired or taken)"
    );
    describe_counter!(LOST, Unit::Count, "Locks lost while held, by reason");
    describe_histogram!(
        WAIT_SECONDS,
        Unit::Seconds,
        "Time each lock acquire took, waiting included, by outcome"
    );
    describe_histogram!(
        HELD_SECONDS,
        Unit::Seconds,
        "Time from a lock's acquire to its release or drop, by outcome"
    );
    describe_gauge!(
        WAITING,
        Unit::Count,
        "Lock acquires waiting now for a lease others hold"
    );
}
