//! The methods every guard of a kind of lease offers over its engine hold
//! (`hold`), written once for the guards of the kinds after the mutex
//! ([`guard_methods!`]); [`LockGuard`](crate::LockGuard) has the same ones,
//! with the mutex's longer docs.

/// `key`, `lease`, `deadline`, `remaining`, `is_lost`, `lost`,
/// `auto_renew`, `is_held`, `extend` and `release`, for a guard type with a
/// `hold: Hold<_>` field.
macro_rules! guard_methods {
    () => {
        /// The key of the held lease.
        pub fn key(&self) -> &str {
            self.hold.key()
        }

        /// The lease: deadline and loss, in a form that can be cloned and
        /// handed to other tasks.
        pub fn lease(&self) -> &$crate::Lease {
            self.hold.lease()
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

        /// Completes when the lease is lost: an extend (by you or by
        /// renewal) is answered "not ours any more", or the deadline passes
        /// without a successful extend. Cancel safe: it only watches.
        pub async fn lost(&self) {
            self.lease().lost().await;
        }

        /// Keeps the lease alive in the background, as
        /// [`LockGuard::auto_renew`](crate::LockGuard::auto_renew) does.
        /// Each holder renews its own hold: a dead holder's renewal cannot
        /// keep anyone else's alive.
        pub fn auto_renew(&mut self) -> $crate::Result<()> {
            self.hold.auto_renew()
        }

        /// Asks Redis whether the hold is still ours (live on the server's
        /// clock).
        pub async fn is_held(&self) -> $crate::Result<bool> {
            self.hold.is_held().await
        }

        /// Makes the hold live `ttl` from now, if it is still ours:
        /// [`Error::NotHeld`](crate::Error::NotHeld) when it expired (an
        /// expired hold is never revived).
        pub async fn extend(&self, ttl: ::std::time::Duration) -> $crate::Result<()> {
            self.hold.extend(ttl).await
        }

        /// Ends the hold and wakes the waiters it kept out:
        /// [`Error::NotHeld`](crate::Error::NotHeld) when it had expired. A
        /// guard dropped without it is released in the background
        /// (token-checked, best effort), or expires by its TTL.
        pub async fn release(self) -> $crate::Result<()> {
            self.hold.release().await
        }
    };
}

pub(crate) use guard_methods;
