//! The lock's own per-command timeout: a connection wrapper that gives every
//! command at most so long to be answered.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

/// A connection whose commands fail with a timeout error when they are not
/// answered within `timeout` (`None`: the connection's own timeouts only).
///
/// As with the connection's own response timeout, the command may still run
/// on the server after it timed out: it was sent, and only the wait for the
/// answer is given up.
#[derive(Clone)]
pub(crate) struct TimedConnection<C> {
    inner: C,
    timeout: Option<Duration>,
}

impl<C> TimedConnection<C> {
    pub(crate) fn new(inner: C, timeout: Option<Duration>) -> TimedConnection<C> {
        TimedConnection { inner, timeout }
    }
}

/// The cause inside the `io::Error` of a command that timed out, so that the
/// crate's error can say after how long.
#[derive(Debug)]
pub(crate) struct CommandTimedOut(pub(crate) Duration);

impl fmt::Display for CommandTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no answer within the lock's command timeout of {:?}",
            self.0
        )
    }
}

impl std::error::Error for CommandTimedOut {}

pub(crate) fn timed_out(after: Duration) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        CommandTimedOut(after),
    ))
}

/// After how long the lock's own timeout fired, if that is what `error` is.
/// (`redis` keeps an `io::Error` it was made from as an
/// `Arc<dyn Error + Send + Sync>`, its `source`; the unit test below notices
/// if that changes, and the crate then only loses the duration.)
pub(crate) fn command_timeout_of(error: &RedisError) -> Option<Duration> {
    let source = std::error::Error::source(error)?;
    let shared = source.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()?;
    shared
        .downcast_ref::<std::io::Error>()?
        .get_ref()?
        .downcast_ref::<CommandTimedOut>()
        .map(|timed_out| timed_out.0)
}

/// `sent`, failing with a timeout error unless answered within `timeout`.
fn bounded<T: Send + 'static>(
    timeout: Option<Duration>,
    sent: RedisFuture<'_, T>,
) -> RedisFuture<'_, T> {
    match timeout {
        None => sent,
        Some(after) => Box::pin(async move {
            tokio::time::timeout(after, sent)
                .await
                .map_err(|_| timed_out(after))?
        }),
    }
}

impl<C: ConnectionLike + Send> ConnectionLike for TimedConnection<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let timeout = self.timeout;
        bounded(timeout, self.inner.req_packed_command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let timeout = self.timeout;
        bounded(
            timeout,
            self.inner.req_packed_commands(pipeline, offset, count),
        )
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_a_redis_timeout_that_says_after_how_long() {
        let error = timed_out(Duration::from_millis(250));
        assert!(error.is_timeout());
        assert_eq!(command_timeout_of(&error), Some(Duration::from_millis(250)));
        let other = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(other.is_timeout());
        assert_eq!(command_timeout_of(&other), None);
    }
}
