//! `Lock` and its builder: acquire with `SET key token NX GET PX ttl`, or
//! with the fenced acquire script when fencing is on.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use crate::connection::{LockConnection, Node, SetReply};
use crate::error::{Error, Operation, Result};
use crate::fence;
use crate::guard::LockGuard;
use crate::lease::Lease;
use crate::retry::WaitPolicy;
use crate::token::Token;

/// The shortest TTL a lock accepts. Shorter leases leave no validity after the
/// clock-drift margin (see [`LockGuard::deadline`]).
pub const MIN_TTL: Duration = Duration::from_millis(10);

/// The longest TTL a lock accepts: 7 days. A lock meant to outlive a crashed
/// holder for longer is almost always a mistake; long work should renew a
/// shorter lease instead.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The TTL of a lock unless set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// A distributed lock on one Redis key: a lease that expires by itself if its
/// holder crashes.
///
/// A `Lock` is cheap to clone (an `Arc`), `Send` and `Sync`; build it once and
/// share it. On the wire the key is exactly the name given and its value is a
/// random token, the format of redis-py's `Lock`, node-redlock, redsync and
/// bsm/redislock, so those and this crate exclude each other on the same key.
///
/// ```no_run
/// # async fn example() -> redis_mutex::Result<()> {
/// use std::time::Duration;
/// use redis_mutex::{Lock, WaitPolicy};
///
/// let lock = Lock::builder("reports:nightly")
///     .ttl(Duration::from_secs(30))
///     .wait(WaitPolicy::timeout(Duration::from_secs(5)))
///     .connect("redis://127.0.0.1/")
///     .await?;
/// let guard = lock.acquire().await?;
/// // ... the critical section ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lock {
    pub(crate) inner: Arc<LockInner>,
}

pub(crate) struct LockInner {
    pub(crate) key: Arc<str>,
    pub(crate) ttl: Duration,
    pub(crate) wait: WaitPolicy,
    pub(crate) auto_renew: bool,
    pub(crate) max_hold: Option<Duration>,
    /// The fence counter's key when fencing is on.
    pub(crate) fence_key: Option<Arc<str>>,
    pub(crate) node: Node,
}

impl Lock {
    /// Starts building a lock on `key`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import").ttl(Duration::from_secs(10));
    /// ```
    pub fn builder(key: impl Into<String>) -> LockBuilder {
        LockBuilder {
            key: key.into(),
            ttl: DEFAULT_TTL,
            wait: WaitPolicy::default(),
            auto_renew: false,
            max_hold: None,
            fencing: false,
        }
    }

    /// A lock on `key` with the default TTL and wait policy over `connection`.
    /// Same as `Lock::builder(key).build(connection)`.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let manager = client.get_connection_manager().await.unwrap();
    /// let lock = redis_mutex::Lock::new("jobs:import", manager)?;
    /// # Ok(()) }
    /// ```
    pub fn new(key: impl Into<String>, connection: impl LockConnection) -> Result<Lock> {
        Lock::builder(key).build(connection)
    }

    /// The key the lock lives under, exactly as given.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// The lease length of each acquisition.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// How [`acquire`](Lock::acquire) waits for a busy lock.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.inner.wait
    }

    /// The key of the fence counter when the lock was built with
    /// [`fencing(true)`](LockBuilder::fencing): `{key}:fence`, or `key:fence`
    /// when the key has a hash tag. Never delete it, and keep it out of any
    /// eviction: fences stay monotonic only while it lives.
    ///
    /// ```no_run
    /// # async fn example(connection: redis::aio::ConnectionManager) -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("jobs:import").fencing(true).build(connection)?;
    /// assert_eq!(lock.fence_key(), Some("{jobs:import}:fence"));
    /// # Ok(()) }
    /// ```
    pub fn fence_key(&self) -> Option<&str> {
        self.inner.fence_key.as_deref()
    }

    /// Acquires the lock, waiting under the lock's [`WaitPolicy`] while
    /// another owner holds it.
    ///
    /// Fails with [`Error::Busy`] (saying how long it waited) when the wait
    /// ends first. An uncontended acquire is one round trip, with or without
    /// [fencing](LockBuilder::fencing).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never leaves the lock held until its TTL. The
    /// token is made before the `SET` is sent; if the future is dropped (or
    /// fails with a connection error or timeout) after the `SET` may have
    /// reached the server, a token-checked release is sent in the background,
    /// which deletes the key only if this attempt set it. Without a tokio
    /// runtime to run that release, the key expires by its TTL.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// match lock.acquire().await {
    ///     Ok(guard) => guard.release().await?,
    ///     Err(e) if e.is_busy() => eprintln!("someone else is on it: {e}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<LockGuard> {
        self.acquire_under(self.inner.wait).await
    }

    /// Like [`acquire`](Lock::acquire), but waits at most `max_wait` instead
    /// of the policy's limit (keeping its backoff).
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Lock::acquire).
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let guard = lock.acquire_timeout(std::time::Duration::from_millis(250)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_timeout(&self, max_wait: Duration) -> Result<LockGuard> {
        self.acquire_under(self.inner.wait.with_max_wait(Some(max_wait)))
            .await
    }

    /// Makes one attempt: `Ok(None)` when another owner holds the lock.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Lock::acquire).
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// if let Some(guard) = lock.try_acquire().await? {
    ///     // ... we are the only one ...
    ///     guard.release().await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        match self.acquire_under(WaitPolicy::no_wait()).await {
            Ok(guard) => Ok(Some(guard)),
            Err(Error::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Acquires the lock, runs `body` while renewing the lock, and releases it
    /// after: the safe way to do long work under a lock.
    ///
    /// `body` gets the [`Lease`], to watch the deadline or hand to other
    /// tasks. If the lock is lost while `body` runs (an extend is answered
    /// "not ours", or the deadline passes because Redis stopped answering),
    /// `body` is **stopped** (its future is dropped at its next `.await`)
    /// and `run` returns [`Error::Lost`].
    ///
    /// Stopping the body cannot undo what it already did: writes it made may
    /// land after another holder's. Where that matters, have the protected
    /// resource check a fencing token.
    ///
    /// Returns `body`'s value when it finished and the lock was still ours at
    /// release; [`Error::NotHeld`] when it finished but the lock had been
    /// lost by the time of the release; the acquire's error (e.g.
    /// [`Error::Busy`]) when the lock could not be had.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `body`, stops renewal and releases the lock
    /// in the background, like dropping a [`LockGuard`].
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// let answer = lock
    ///     .run(|lease| async move {
    ///         // Long work; the lock is renewed meanwhile.
    ///         tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    ///         assert!(!lease.is_lost());
    ///         42
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<F, Fut, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        let mut guard = self.acquire().await?;
        guard.auto_renew()?;
        let lease = guard.lease().clone();
        let finished = tokio::select! {
            biased;
            () = lease.lost() => None,
            value = body(lease.clone()) => Some(value),
        };
        match finished {
            Some(value) => guard.release().await.map(|()| value),
            None => {
                // Still worth a try: if the deadline passed only because
                // Redis was slow, the key may still be ours.
                let _ = guard.release().await;
                Err(Error::Lost {
                    key: self.key().to_owned(),
                })
            }
        }
    }

    async fn acquire_under(&self, policy: WaitPolicy) -> Result<LockGuard> {
        let LockInner {
            key,
            ttl,
            node,
            fence_key,
            ..
        } = &*self.inner;
        let started = Instant::now();
        let mut backoff = policy.start(started);
        let mut pending = PendingAcquire {
            node,
            key,
            token: Some(Token::generate()?),
            maybe_set: false,
        };
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // The local deadline counts from before the send, so it is never
            // later than the server's expiry.
            let sent_at = Instant::now();
            pending.maybe_set = true;
            let reply = match fence_key {
                None => node
                    .set_nx(key, pending.token_str(), *ttl)
                    .await
                    .map(|reply| (reply, None)),
                Some(fence_key) => {
                    node.set_nx_fenced(key, fence_key, pending.token_str(), *ttl)
                        .await
                }
            };
            match reply.map_err(|e| {
                // A server error reply means the SET did not run; anything
                // else (timeout, broken connection) leaves it unknown.
                pending.maybe_set = e.code().is_none();
                Error::from_redis(Operation::Acquire, key, e)
            })? {
                (SetReply::Acquired, fence) => return pending.into_guard(self, sent_at, fence),
                // Only an earlier send of this call can have set our token;
                // count validity from the first one.
                (SetReply::AlreadyOurs, fence) => return pending.into_guard(self, started, fence),
                (SetReply::HeldByOther, _) => pending.maybe_set = false,
            }
            match backoff.next_sleep(Instant::now()) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => {
                    return Err(Error::Busy {
                        key: key.to_string(),
                        waited: started.elapsed(),
                        attempts,
                    });
                }
            }
        }
    }
}

/// The token of an `acquire` in progress. While `maybe_set` is true the `SET`
/// may have reached the server without a guard to show for it; dropping the
/// `PendingAcquire` then (cancellation, error) releases the token in the
/// background so the lock is not left held until its TTL.
struct PendingAcquire<'a> {
    node: &'a Node,
    key: &'a Arc<str>,
    token: Option<Token>,
    maybe_set: bool,
}

impl PendingAcquire<'_> {
    fn token_str(&self) -> &str {
        self.token.as_ref().map_or("", Token::as_str)
    }

    fn into_guard(
        mut self,
        lock: &Lock,
        valid_from: Instant,
        fence: Option<u64>,
    ) -> Result<LockGuard> {
        self.maybe_set = false;
        let token = self
            .token
            .take()
            .unwrap_or_else(|| unreachable!("token taken twice"));
        // From here the guard's Drop releases the lock if anything fails.
        LockGuard::new(lock.clone(), token, fence, valid_from)
    }
}

impl Drop for PendingAcquire<'_> {
    fn drop(&mut self) {
        if self.maybe_set
            && let Some(token) = self.token.take()
        {
            self.node
                .release_in_background(self.key.clone(), token.as_str().to_owned());
        }
    }
}

/// How long a lease of `ttl` is safe to trust, counted from before the
/// command that set it was sent: `ttl` minus a drift margin of 1% + 2 ms,
/// the Redlock reference's allowance for clock-rate differences and Redis's
/// 1 ms expiry precision.
pub(crate) fn validity(ttl: Duration) -> Duration {
    ttl.saturating_sub(ttl / 100 + Duration::from_millis(2))
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
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    Ok(Duration::from_millis(millis))
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key", "must not be empty"));
    }
    Ok(())
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("key", &self.inner.key)
            .field("ttl", &self.inner.ttl)
            .field("wait", &self.inner.wait)
            .field("auto_renew", &self.inner.auto_renew)
            .field("max_hold", &self.inner.max_hold)
            .field("fence_key", &self.inner.fence_key)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Lock`]: set the TTL and wait policy, then give it a connection.
#[derive(Clone, Debug)]
#[must_use = "a LockBuilder does nothing until .build(), .connect() or .client() is called"]
pub struct LockBuilder {
    key: String,
    ttl: Duration,
    wait: WaitPolicy,
    auto_renew: bool,
    max_hold: Option<Duration>,
    fencing: bool,
}

impl LockBuilder {
    /// Sets the lease length: how long the lock outlives a holder that
    /// crashed. Between [`MIN_TTL`] and [`MAX_TTL`], rounded down to whole
    /// milliseconds.
    ///
    /// Defaults to 30 s.
    pub fn ttl(mut self, ttl: Duration) -> LockBuilder {
        self.ttl = ttl;
        self
    }

    /// Sets how [`Lock::acquire`] waits while another owner holds the lock.
    ///
    /// Defaults to [`WaitPolicy::default()`]: up to 10 s, backing off from
    /// 2 ms to 100 ms with jitter.
    pub fn wait(mut self, policy: WaitPolicy) -> LockBuilder {
        self.wait = policy;
        self
    }

    /// Renews every guard of this lock automatically while it is held (see
    /// [`LockGuard::auto_renew`]): the TTL then only bounds how long the lock
    /// outlives a crashed holder, not how long work may take.
    ///
    /// Defaults to off. [`Lock::run`] always renews.
    pub fn auto_renew(mut self, on: bool) -> LockBuilder {
        self.auto_renew = on;
        self
    }

    /// Caps how long renewal keeps one acquisition held, counted from the
    /// acquire: past it, renewal stops and the lock expires (and the lease
    /// reports loss), so a stuck holder cannot keep the lock forever. The
    /// last extend is shortened to end at the cap.
    ///
    /// Defaults to no cap. Must be at least [`MIN_TTL`].
    pub fn max_hold(mut self, max_hold: Duration) -> LockBuilder {
        self.max_hold = Some(max_hold);
        self
    }

    /// Turns on fencing tokens: each acquisition also gets a `u64` fence
    /// ([`LockGuard::fence`]) strictly greater than every fence issued before
    /// for this key on this Redis node, for the protected resource to check
    /// (see [`FencedResource`](crate::FencedResource)).
    ///
    /// Acquire is then one script instead of `SET`, still one round trip: if
    /// the lock is free it `INCR`s a counter under
    /// [`Lock::fence_key`] (`{key}:fence`, in the lock's Cluster slot) and
    /// sets the lock. A held lock leaves the counter alone, so waiting burns
    /// no fences. On the wire the lock is the same string key with a token, so
    /// fenced and unfenced clients of this crate, and other libraries that
    /// lock this format, still exclude each other; only fenced acquisitions
    /// advance the counter.
    ///
    /// Fences are monotonic only while the counter only goes up: on one node,
    /// without eviction (`noeviction`), with nobody deleting or lowering the
    /// counter key, and, if the node can crash, with AOF persistence and
    /// `appendfsync always` (RDB snapshots and `appendfsync everysec` can
    /// lose the last increments and hand out the same fences again). They
    /// are **not** monotonic after a failover to an asynchronously replicated
    /// replica that had not yet seen the last `INCR`. After a regression the
    /// resource's check is no longer safe: a stale holder's fence from before
    /// it can be greater than the current holder's. There is no fence across
    /// independent nodes: fencing is single-node only, and a lock over a
    /// quorum of nodes (Redlock) refuses it, since independent counters give
    /// no order between them (Kleppmann: that would take consensus).
    ///
    /// With fencing on, [`build`](LockBuilder::build) fails with
    /// [`Error::InvalidArgument`] for a key with a `}` outside a hash tag
    /// (such as `"a}b"` or `"x{}y}"`): Redis Cluster hashes such a key whole,
    /// and no counter key could share its slot.
    ///
    /// Defaults to off.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("reports:lock")
    ///     .fencing(true)
    ///     .connect("redis://127.0.0.1/")
    ///     .await?;
    /// let guard = lock.acquire().await?;
    /// println!("fence {:?}", guard.fence());
    /// # Ok(()) }
    /// ```
    pub fn fencing(mut self, on: bool) -> LockBuilder {
        self.fencing = on;
        self
    }

    /// Builds the lock over an existing connection, such as a clone of your
    /// application's [`ConnectionManager`] or
    /// [`MultiplexedConnection`](redis::aio::MultiplexedConnection). Many locks
    /// can share one connection.
    ///
    /// Fails with [`Error::InvalidArgument`] for an empty key, a TTL out of
    /// range, a wait policy that would busy-loop, or, with
    /// [fencing](LockBuilder::fencing), a key whose fence counter could not
    /// share its Cluster slot.
    ///
    /// The connection's own settings apply to every command: its response
    /// timeout (500 ms by default in `redis` 1.x) and, for a
    /// `ConnectionManager`, its reconnect schedule. With the `redis` crate's
    /// default `ConnectionManagerConfig`, a command sent while Redis is down
    /// waits out about 10 s of reconnect attempts before it fails;
    /// [`connect`](LockBuilder::connect) configures a manager that gives up
    /// after about half a second.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let connection = client.get_multiplexed_async_connection().await.unwrap();
    /// let lock = redis_mutex::Lock::builder("jobs:import").build(connection)?;
    /// # Ok(()) }
    /// ```
    pub fn build(self, connection: impl LockConnection) -> Result<Lock> {
        let ttl = self.validate()?;
        let fence_key = self.fence_key()?;
        Ok(Lock {
            inner: Arc::new(LockInner {
                key: self.key.into(),
                ttl,
                wait: self.wait,
                auto_renew: self.auto_renew,
                max_hold: self.max_hold,
                fence_key,
                node: Node::new(connection),
            }),
        })
    }

    /// Builds the lock over a new [`ConnectionManager`] (which reconnects by
    /// itself) to the server at `url`, e.g. `"redis://127.0.0.1:6379/"`.
    ///
    /// Each call opens a connection: to lock many keys, open one
    /// `ConnectionManager` and [`build`](LockBuilder::build) every lock over
    /// a clone of it.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("jobs:import").connect("redis://127.0.0.1/").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self, url: impl IntoConnectionInfo) -> Result<Lock> {
        self.validate()?;
        let client = redis::Client::open(url).map_err(|e| self.connect_error(e))?;
        self.client(&client).await
    }

    /// Builds the lock over a new [`ConnectionManager`] from `client`.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let lock = redis_mutex::Lock::builder("jobs:import").client(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn client(self, client: &redis::Client) -> Result<Lock> {
        self.validate()?;
        // Few, short connection retries: a caller with Redis down should hear
        // about it in about a second, not after the default ~6 s of retries.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| self.connect_error(e))?;
        self.build(manager)
    }

    fn validate(&self) -> Result<Duration> {
        check_key(&self.key)?;
        self.wait.validate()?;
        if let Some(max_hold) = self.max_hold
            && max_hold < MIN_TTL
        {
            return Err(Error::invalid(
                "max_hold",
                format!("{max_hold:?} is below the minimum of {MIN_TTL:?}"),
            ));
        }
        self.fence_key()?;
        check_ttl(self.ttl)
    }

    fn fence_key(&self) -> Result<Option<Arc<str>>> {
        if !self.fencing {
            return Ok(None);
        }
        Ok(Some(fence::fence_key(&self.key)?.into()))
    }

    fn connect_error(&self, source: redis::RedisError) -> Error {
        Error::from_redis(Operation::Connect, &self.key, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn empty_key_is_rejected() {
        let err = check_key("").unwrap_err();
        assert_eq!(err.to_string(), "invalid key: must not be empty");
    }

    fn is_send_sync<T: Send + Sync>() {}

    fn is_send<T: Send>(_: &T) {}

    #[allow(dead_code, clippy::let_underscore_future)]
    async fn futures_are_send(
        lock: Lock,
        guard: LockGuard,
        resource: crate::fence::FencedResource,
    ) {
        is_send(&lock.acquire());
        is_send(&lock.try_acquire());
        is_send(&guard.extend(DEFAULT_TTL));
        is_send(&guard.is_held());
        is_send(&resource.set(1, "v"));
        is_send(&resource.get());
        is_send(&resource.last_fence());
        is_send(&guard.release());
    }

    #[test]
    fn public_types_are_send_and_sync() {
        is_send_sync::<Lock>();
        is_send_sync::<LockBuilder>();
        is_send_sync::<LockGuard>();
        is_send_sync::<Error>();
        is_send_sync::<crate::fence::FencedResource>();
        is_send_sync::<crate::fence::FencedWrite>();
    }
}
