//! Events for operators (crate feature `tracing`), target `redis_mutex`.
//! Call sites are `#[cfg(feature = "tracing")]` statements, so that without
//! the feature nothing is computed for them.
//!
//! - Acquire: a span `acquire` with the key around every attempt and wait;
//!   `debug` when taken (time waited), `info` when given up as busy
//!   (attempts, time waited), `warn` on errors.
//! - Release: `debug` when released (time held), `warn` when the lock was no
//!   longer ours or the release failed.
//! - Renewal: `warn` for each failed extend (it is tried again), `error`
//!   when the lock is lost (the key no longer holds our token, or no extend
//!   was answered before the lease's deadline).
//! - Redlock: `warn` naming the nodes that failed a step that still reached
//!   its majority (a failed step's error names them anyway).
//!
//! Fields are keys, counts, milliseconds and the crate's errors: never a
//! token, never a credential (the errors carry neither).

use std::time::Duration;

use crate::error::{Error, NodeFailure, Operation, Result};

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The span every attempt and wait of one `acquire` runs in.
pub(crate) fn acquire_span(key: &str) -> tracing::Span {
    tracing::debug_span!(target: "redis_mutex", "acquire", key)
}

/// How an acquire ended: its fence when it was taken.
pub(crate) fn acquired(key: &str, waited: Duration, result: Result<Option<u64>, &Error>) {
    match result {
        Ok(fence) => tracing::debug!(
            target: "redis_mutex",
            key,
            waited_ms = ms(waited),
            fence,
            "lock acquired"
        ),
        Err(Error::Busy {
            waited, attempts, ..
        }) => tracing::info!(
            target: "redis_mutex",
            key,
            attempts,
            waited_ms = ms(*waited),
            "lock busy: gave up waiting"
        ),
        Err(error) => tracing::warn!(
            target: "redis_mutex",
            key,
            waited_ms = ms(waited),
            error = %error,
            "lock acquire failed"
        ),
    }
}

pub(crate) fn released(key: &str, held: Duration, result: &Result<()>) {
    match result {
        Ok(()) => tracing::debug!(target: "redis_mutex", key, held_ms = ms(held), "lock released"),
        Err(error) if error.is_not_held() => tracing::warn!(
            target: "redis_mutex",
            key,
            held_ms = ms(held),
            "lock was no longer held at release (expired or taken by another owner)"
        ),
        Err(error) => tracing::warn!(
            target: "redis_mutex",
            key,
            held_ms = ms(held),
            error = %error,
            "lock release failed; the key expires by its TTL"
        ),
    }
}

/// A renewal's extend failed; the next one is tried at the next tick.
pub(crate) fn renewal_failed(key: &str, error: &Error) {
    tracing::warn!(
        target: "redis_mutex",
        key,
        error = %error,
        "lock renewal failed; trying again"
    );
}

pub(crate) fn lost(key: &str, why: &'static str) {
    tracing::error!(target: "redis_mutex", key, why, "lock lost");
}

/// A Redlock step reached its majority although some nodes failed.
pub(crate) fn nodes_failed(key: &str, operation: Operation, failures: &[NodeFailure]) {
    if failures.is_empty() {
        return;
    }
    let nodes = failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    tracing::warn!(
        target: "redis_mutex",
        key,
        operation = %operation,
        failed = failures.len(),
        nodes = %nodes,
        "Redlock step reached its majority with failed nodes"
    );
}
