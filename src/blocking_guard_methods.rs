//! The methods every blocking guard of a kind of lease offers over its
//! blocking hold (`blocking_hold`), written once for the blocking guards of
//! every kind ([`blocking_guard_methods!`]), as `guard_methods` is for
//! their async twins.
//!
//! Invariants:
//! - Every method that talks to Redis or waits runs on the blocking runtime and is
//!   refused inside a tokio runtime with `Error::BlockingInRuntime`, named
//!   `blocking::<Guard>::<method>`; the others ask nothing of Redis.

/// `key`, `lease`, `deadline`, `remaining`, `is_lost`, `wait_lost`, `auto_renew`,
/// `is_held`, `extend` and `release`, for a blocking guard type named
/// `$name` (in errors) with an `inner: BlockingHold<_>` field.
macro_rules! blocking_guard_methods {
    ($name:literal) => {
        /// The key of the held lease.
        pub fn key(&self) -> &str {
            self.inner.hold().key()
        }

        /// The lease: deadline and loss, in a form that can be cloned and
        /// handed to other threads.
        pub fn lease(&self) -> &$crate::Lease {
            self.inner.hold().lease()
        }

        /// The instant until which this process can trust it holds the
        /// lease (see [`LockGuard::deadline`](crate::LockGuard::deadline)).
        pub fn deadline(&self) -> ::tokio::time::Instant {
            self.lease().deadline()
        }

        /// How long until [`deadline`](Self::deadline); zero once passed or
        /// once the lease is lost.
        pub fn remaining(&self) -> ::std::time::Duration {
            self.lease().remaining()
        }

        /// Whether the lease is known lost: an extend was answered "not
        /// ours", or the deadline passed. Asks nothing of Redis.
        pub fn is_lost(&self) -> bool {
            self.lease().is_lost()
        }

        /// Blocks until the lease is lost (an extend answered "not ours",
        /// or the deadline passed with Redis silent) or `max` has passed:
        /// `Ok(true)` when it was lost, `Ok(false)` when it is still held.
        /// The blocking twin of the async guards' `lost()`, for a thread
        /// that watches the hold while others work. Sends nothing to Redis;
        /// refused inside a tokio runtime.
        pub fn wait_lost(&self, max: ::std::time::Duration) -> $crate::Result<bool> {
            self.inner
                .wait_lost(concat!("blocking::", $name, "::wait_lost"), max)
        }

        /// Starts renewing the lease: a task of the blocking runtime extends
        /// it about every TTL/3 while your thread works (computes, sleeps,
        /// blocks on I/O), until the guard is released or dropped, the lease
        /// is lost or `max_hold` is reached. Does nothing if renewal runs
        /// already (built with `auto_renew(true)`). Each holder renews its
        /// own hold: a dead holder's renewal cannot keep anyone else's
        /// alive.
        ///
        /// Fails only when the blocking runtime cannot start.
        pub fn auto_renew(&mut self) -> $crate::Result<()> {
            self.inner.auto_renew()
        }

        /// Asks Redis whether the hold is still ours (live on the server's
        /// clock).
        pub fn is_held(&self) -> $crate::Result<bool> {
            self.inner
                .is_held(concat!("blocking::", $name, "::is_held"))
        }

        /// Makes the hold live `ttl` from now, if it is still ours:
        /// [`Error::NotHeld`](crate::Error::NotHeld) when it expired (an
        /// expired hold is never revived).
        pub fn extend(&self, ttl: ::std::time::Duration) -> $crate::Result<()> {
            self.inner
                .extend(concat!("blocking::", $name, "::extend"), ttl)
        }

        /// Ends the hold and wakes the waiters it kept out:
        /// [`Error::NotHeld`](crate::Error::NotHeld) when it had expired.
        /// Dropped without it, the guard releases before `drop` returns,
        /// waiting at most one command timeout (see
        /// [the module](crate::blocking)).
        ///
        /// Inside a tokio runtime it fails with
        /// [`Error::BlockingInRuntime`](crate::Error::BlockingInRuntime),
        /// and the hold is released in the background, as by `Drop`.
        pub fn release(self) -> $crate::Result<()> {
            self.inner
                .release(concat!("blocking::", $name, "::release"))
        }
    };
}

pub(crate) use blocking_guard_methods;
