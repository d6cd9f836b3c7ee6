//! `Lock` and its builder: acquire with `SET key token NX GET PX ttl`, or
//! with the fenced acquire script when fencing is on.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use crate::connection::{LockConnection, Node};
use crate::error::{Error, NodeFailure, NodeFailureReason, Operation, Result};
use crate::fence;
use crate::guard::LockGuard;
use crate::lease::Lease;
use crate::quorum::{self, Quorum, join_all};
use crate::replicas::ReplicaSync;
use crate::retry::WaitPolicy;
use crate::timeout::TimedConnection;
use crate::token::Token;
use crate::topology::{AcquireStep, Topology};
use crate::wait::{Notifier, Source, Waiter};

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
    pub(crate) drift: ClockDrift,
    pub(crate) topology: Topology,
    /// Wakes waiters on release, with the index of the node it listens to
    /// (0 on one node or a cluster; on a Redlock one of the quorum's nodes,
    /// and its wake-ups are hints on top of polling); without it they poll.
    pub(crate) notifier: Option<(Arc<Notifier>, usize)>,
    /// `WAIT`/`WAITAOF` after each acquire (single node only).
    pub(crate) replica_sync: Option<ReplicaSync>,
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
            drift: ClockDrift::DEFAULT,
            node_timeout: None,
            notify: None,
            quorum_notify_node: None,
            command_timeout: None,
            replica_sync: None,
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

    /// How many Redis nodes the lock lives on: 1, or N for a Redlock built
    /// with [`LockBuilder::build_quorum`] and its siblings.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("jobs:import")
    ///     .connect_quorum(["redis://10.0.0.1/", "redis://10.0.0.2/", "redis://10.0.0.3/"])
    ///     .await?;
    /// assert_eq!(lock.node_count(), 3);
    /// # Ok(()) }
    /// ```
    pub fn node_count(&self) -> usize {
        self.inner.topology.node_count()
    }

    /// Acquires the lock, waiting under the lock's [`WaitPolicy`] while
    /// another owner holds it.
    ///
    /// Fails with [`Error::Busy`] (saying how long it waited) when the wait
    /// ends first. An uncontended acquire is one round trip, with or without
    /// [fencing](LockBuilder::fencing).
    ///
    /// On a Redlock, each attempt sends the `SET` to every node at once and
    /// succeeds when a majority granted it with validity left; a missed
    /// attempt releases its token on every node and, under contention, tries
    /// again after a random backoff. When fewer than a majority of the nodes
    /// answer at all, it fails at once with [`Error::QuorumNotReached`], as a
    /// lock on one Redis that is down fails with [`Error::Redis`]. At the end
    /// of the wait it reports the last attempt: [`Error::Busy`] if other
    /// owners held enough nodes to decide it, else the quorum error.
    ///
    /// Other failures: [`Error::TimedOut`] when Redis did not answer in time
    /// (the [command timeout](LockBuilder::command_timeout) or the
    /// connection's), [`Error::ValidityExpired`] when the answer came after
    /// the lease was already over, [`Error::NotReplicated`] when
    /// [replicas](LockBuilder::wait_for_replicas) did not confirm it,
    /// [`Error::OutOfMemory`] on a full server. In each case no guard is
    /// made and a `SET` that may have landed is released by token.
    ///
    /// # Waiting
    ///
    /// With pub/sub (a lock from [`connect`](LockBuilder::connect),
    /// [`client`](LockBuilder::client), or
    /// [`notify_with`](LockBuilder::notify_with)), the holder's release wakes
    /// a waiter, which tries again at once: a handoff takes about a round
    /// trip, and waiting costs a few commands per release, not one per
    /// backoff step. A wait is bounded by the holder's expiry (which is not
    /// announced), and a holder using another library (which never
    /// announces) is also polled for under the wait policy. Without pub/sub,
    /// or while the subscription is down, a waiter polls under the wait
    /// policy.
    ///
    /// Waiters are **not** served in FIFO order. A release wakes one waiter
    /// in each process that waits (the one there that has waited longest),
    /// and whichever `SET` reaches Redis first takes the lock; the others
    /// wait for the next release. A new `acquire` (including the releasing
    /// task's own next one) can take the lock before any waiter.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never leaves the lock held until its TTL. The
    /// token is made before the `SET` is sent; if the future is dropped (or
    /// fails with a connection error or timeout) after the `SET` may have
    /// reached the server, a token-checked release is sent in the background,
    /// which deletes the key only if this attempt set it. Without a tokio
    /// runtime to run that release, the key expires by its TTL. A waiting
    /// acquire that is dropped gives up its share of the subscription; the
    /// channel is unsubscribed when nobody in the process waits on it.
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
                #[cfg(feature = "tracing")]
                crate::trace::lost(self.key(), "the work under run() was stopped");
                Err(Error::Lost {
                    key: self.key().to_owned(),
                })
            }
        }
    }

    async fn acquire_under(&self, policy: WaitPolicy) -> Result<LockGuard> {
        let started = Instant::now();
        #[cfg(feature = "tracing")]
        let result = {
            use tracing::Instrument;
            let span = crate::trace::acquire_span(self.key());
            self.attempt_until_acquired(policy, started)
                .instrument(span)
                .await
        };
        #[cfg(not(feature = "tracing"))]
        let result = self.attempt_until_acquired(policy, started).await;
        #[cfg(feature = "tracing")]
        crate::trace::acquired(self.key(), started.elapsed(), &result);
        result
    }

    async fn attempt_until_acquired(
        &self,
        policy: WaitPolicy,
        started: Instant,
    ) -> Result<LockGuard> {
        let LockInner {
            key,
            ttl,
            topology,
            fence_key,
            ..
        } = &*self.inner;
        let notify = self
            .inner
            .notifier
            .as_ref()
            .and_then(|(notifier, index)| Some((&**notifier, topology.node(*index)?)));
        let hints_only = matches!(topology, Topology::Quorum(_));
        let mut waiter = Waiter::new(key, policy.start(started), notify, hints_only);
        let mut pending = PendingAcquire {
            topology,
            key,
            token: Some(Token::generate()?),
            maybe_set: false,
        };
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            pending.maybe_set = true;
            let failed = match topology
                .try_acquire(key, fence_key.as_deref(), pending.token_str(), *ttl)
                .await
            {
                AcquireStep::Acquired {
                    sent_at,
                    from_earlier_send,
                    fence,
                } => {
                    // Only an earlier send of this call can have set our
                    // token; count validity from the first one.
                    let from = if from_earlier_send { started } else { sent_at };
                    if let Some(sync) = &self.inner.replica_sync
                        && let Err(error) = sync.confirm(topology, key).await
                    {
                        // Not confirmed: undo now, so that the failed acquire
                        // leaves nothing; Drop retries if this goes unanswered.
                        if topology.release(key, pending.token_str()).await.is_ok() {
                            pending.maybe_set = false;
                        }
                        return Err(error);
                    }
                    return pending.into_guard(self, from, fence);
                }
                AcquireStep::Fail { error, maybe_set } => {
                    pending.maybe_set = maybe_set;
                    return Err(error);
                }
                AcquireStep::Retry {
                    failed,
                    token_spent,
                } => {
                    pending.maybe_set = false;
                    if token_spent {
                        pending.token = Some(Token::generate()?);
                    }
                    failed
                }
            };
            if !waiter.wait().await {
                return Err(failed.unwrap_or_else(|| Error::Busy {
                    key: key.to_string(),
                    waited: started.elapsed(),
                    attempts,
                }));
            }
        }
    }
}

/// The token of an `acquire` in progress. While `maybe_set` is true the `SET`
/// may have reached a node without a guard to show for it; dropping the
/// `PendingAcquire` then (cancellation, error) releases the token in the
/// background, on every node, so the lock is not left held until its TTL.
struct PendingAcquire<'a> {
    topology: &'a Topology,
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
        // An answer that came after the lease's validity proves nothing any
        // more: the key may have expired and been taken meanwhile. No guard;
        // the token stays pending, so Drop releases it in the background.
        let ttl = lock.inner.ttl;
        if valid_from + lock.inner.drift.validity(ttl) <= Instant::now() {
            return Err(Error::ValidityExpired {
                operation: Operation::Acquire,
                key: lock.key().to_owned(),
                elapsed: valid_from.elapsed(),
            });
        }
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
            self.topology
                .release_in_background(self.key.clone(), token.as_str().to_owned());
        }
    }
}

/// The margin kept off every lease for clocks that run at slightly different
/// rates: `factor * ttl + fixed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClockDrift {
    factor: f64,
    fixed: Duration,
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
        // TTLs are at most 7 days (6e14 ns), exact in an f64; the cast
        // saturates rather than wraps on anything odd.
        let scaled = (ttl.as_nanos() as f64 * self.factor).ceil();
        Duration::from_nanos(scaled as u64).saturating_add(self.fixed)
    }

    /// How long a lease of `ttl` is safe to trust, counted from before the
    /// command that set it was sent: `ttl` minus the margin.
    pub(crate) fn validity(&self, ttl: Duration) -> Duration {
        ttl.saturating_sub(self.margin(ttl))
    }

    fn check(&self) -> Result<()> {
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

/// How long a lease of `ttl` is safe to trust with the default drift margin.
#[cfg(test)]
pub(crate) fn validity(ttl: Duration) -> Duration {
    ClockDrift::DEFAULT.validity(ttl)
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
            .field("topology", &self.inner.topology)
            .field("notify", &self.inner.notifier.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Lock`]: set the TTL and wait policy, then give it a connection
/// ([`build`](LockBuilder::build), [`connect`](LockBuilder::connect),
/// [`client`](LockBuilder::client)), or N connections to independent Redis
/// masters for a Redlock ([`build_quorum`](LockBuilder::build_quorum),
/// [`connect_quorum`](LockBuilder::connect_quorum),
/// [`clients_quorum`](LockBuilder::clients_quorum)).
#[derive(Clone, Debug)]
#[must_use = "a LockBuilder does nothing until .build(), .connect() or .client() (or their _quorum forms) is called"]
pub struct LockBuilder {
    key: String,
    ttl: Duration,
    wait: WaitPolicy,
    auto_renew: bool,
    max_hold: Option<Duration>,
    fencing: bool,
    drift: ClockDrift,
    node_timeout: Option<Duration>,
    notify: Option<Source>,
    /// On a Redlock, the node whose server `notify` is (set by
    /// `clients_quorum`); `notify` is ignored on a Redlock without it.
    quorum_notify_node: Option<usize>,
    command_timeout: Option<Duration>,
    replica_sync: Option<ReplicaSync>,
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

    /// Sets the margin kept off every lease for clocks that run at slightly
    /// different rates: a guard trusts a lease of `ttl` for
    /// `ttl - (factor * ttl + fixed)` from before the command that set it was
    /// sent (see [`LockGuard::deadline`]). Applies to one node and to a
    /// Redlock alike.
    ///
    /// `factor` must be between 0 and 0.5; the margin must leave some
    /// validity of the TTL (on a Redlock, more than the per-node timeout).
    ///
    /// Defaults to `0.01` and 2 ms (1% + 2 ms, as the Redlock reference
    /// implementation).
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .clock_drift(0.02, Duration::from_millis(5));
    /// ```
    pub fn clock_drift(mut self, factor: f64, fixed: Duration) -> LockBuilder {
        self.drift = ClockDrift { factor, fixed };
        self
    }

    /// Sets how long a Redlock waits for each node's answer to each step. A
    /// node that does not answer in time counts as failed for that step, so
    /// a dead or stalled node costs each step at most this long. Keep it far
    /// below the TTL: it must be at most a tenth of it.
    ///
    /// Only a Redlock ([`build_quorum`](LockBuilder::build_quorum) and its
    /// siblings) uses it; a lock on one node relies on its connection's own
    /// timeouts.
    ///
    /// Defaults to 50 ms, or a tenth of the TTL if that is shorter.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .ttl(Duration::from_secs(10))
    ///     .node_timeout(Duration::from_millis(20));
    /// ```
    pub fn node_timeout(mut self, timeout: Duration) -> LockBuilder {
        self.node_timeout = Some(timeout);
        self
    }

    /// Wakes waiting [`acquire`](Lock::acquire)s through pub/sub on the
    /// server `client` points to (the one the lock's connection goes to):
    /// the holder's release publishes on the key's channel, and a waiter
    /// tries again at once instead of at its next backoff step.
    ///
    /// [`connect`](LockBuilder::connect) and [`client`](LockBuilder::client)
    /// do this by themselves; a lock [built](LockBuilder::build) over a
    /// connection of yours needs it, or its waiters fall back to polling
    /// under the [`WaitPolicy`]'s backoff. All locks of a process on one
    /// server share one subscription connection, opened when a first
    /// `acquire` has to wait. A Redlock ignores it: one from
    /// [`connect_quorum`](LockBuilder::connect_quorum) or
    /// [`clients_quorum`](LockBuilder::clients_quorum) listens to one of its
    /// nodes by itself (and polls as well), one from
    /// [`build_quorum`](LockBuilder::build_quorum) polls.
    ///
    /// See [`Lock::acquire`] ("Waiting") for the order waiters get the lock
    /// in and what bounds a wait.
    ///
    /// Defaults to none for [`build`](LockBuilder::build).
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let connection = client.get_connection_manager().await.unwrap();
    /// let lock = redis_mutex::Lock::builder("jobs:import")
    ///     .notify_with(&client)
    ///     .build(connection)?;
    /// # Ok(()) }
    /// ```
    pub fn notify_with(mut self, client: &redis::Client) -> LockBuilder {
        self.notify = Some(Source::Server(client.clone()));
        self
    }

    /// Wakes waiting [`acquire`](Lock::acquire)s through sharded pub/sub
    /// (`SSUBSCRIBE`) on the Redis Cluster `client` points to: the
    /// counterpart of [`notify_with`](LockBuilder::notify_with) for a lock
    /// [built](LockBuilder::build) over a cluster connection of yours.
    /// [`connect_cluster`](LockBuilder::connect_cluster) and
    /// [`cluster_client`](LockBuilder::cluster_client) do this by themselves.
    ///
    /// `client` must speak RESP3 (`.use_protocol(redis::ProtocolVersion::RESP3)`
    /// on its builder); otherwise the subscriptions are refused and waiters
    /// poll. A key with a `}` but no hash tag (say `"a}b"`) has no release
    /// channel in its slot: its waiters poll too. Needs the crate feature
    /// `cluster`.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::cluster::ClusterClient::builder(["redis://10.0.0.1:7000/"])
    ///     .use_protocol(redis::ProtocolVersion::RESP3)
    ///     .build()
    ///     .unwrap();
    /// let connection = client.get_async_connection().await.unwrap();
    /// let lock = redis_mutex::Lock::builder("{orders}:import")
    ///     .notify_with_cluster(&client)
    ///     .build(connection)?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn notify_with_cluster(mut self, client: &redis::cluster::ClusterClient) -> LockBuilder {
        self.notify = Some(Source::Cluster(client.clone()));
        self
    }

    /// Sets how long each command of this lock (acquire, release, extend,
    /// `is_held`) waits for Redis's answer before it fails with
    /// [`Error::TimedOut`]. The command may still run on the server after
    /// that: a timed-out acquire is released by token in the background, a
    /// timed-out extend leaves the guard's deadline where it was.
    ///
    /// The connection's own response timeout applies as well, so this can
    /// only shorten the wait: connections opened by the `redis` crate
    /// (including those of [`connect`](LockBuilder::connect)) give up after
    /// 500 ms unless configured otherwise. On a Redlock, the
    /// [per-node timeout](LockBuilder::node_timeout) bounds each node too.
    ///
    /// Renewal never waits past the guard's deadline, whatever the timeout.
    ///
    /// Defaults to none: the connection's own response timeout only. Must
    /// be above zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .ttl(Duration::from_secs(2))
    ///     .command_timeout(Duration::from_millis(200));
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> LockBuilder {
        self.command_timeout = Some(timeout);
        self
    }

    /// After each acquire, waits (`WAIT replicas timeout`, on the connection
    /// the `SET` went on) until `replicas` replicas have the lock. If fewer
    /// confirm within `timeout`, the acquire fails with
    /// [`Error::NotReplicated`] and the lock is released again. For
    /// deployments with failover: a lock only the master had is lost when a
    /// replica is promoted, and the same lock can then be granted twice.
    ///
    /// This narrows that window; it does not close it. Replication stays
    /// asynchronous: a replica that confirmed can still lose the write, and
    /// failover may promote one that did not confirm. An acquire takes one
    /// more round trip, plus the replicas' delay (up to `timeout` when they
    /// lag). `WAIT` blocks the connection it is sent on for that long, so
    /// give such locks their own connection rather than one shared with
    /// latency-sensitive work, and keep `timeout` below the connection's
    /// response timeout (500 ms by default) and the
    /// [command timeout](LockBuilder::command_timeout).
    ///
    /// Single-node locks only (a Redlock's nodes are independent masters).
    /// `timeout` must be at least 1 ms and below half the lease's validity.
    ///
    /// Defaults to off.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .wait_for_replicas(1, Duration::from_millis(100));
    /// ```
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> LockBuilder {
        self.replica_sync = Some(ReplicaSync::Wait { replicas, timeout });
        self
    }

    /// Like [`wait_for_replicas`](LockBuilder::wait_for_replicas), but with
    /// `WAITAOF` (Redis 7.2 and later): waits until the lock is fsynced to
    /// the append-only file of the master (when `local`; the master needs
    /// `appendonly yes`) and of `replicas` replicas. Older servers answer
    /// that they have no such command: the acquire then fails with
    /// [`Error::UnsupportedServer`] and the lock is released.
    /// [`ServerReport::has_waitaof`](crate::ServerReport::has_waitaof) tells
    /// ahead of time.
    ///
    /// Defaults to off.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = redis_mutex::Lock::builder("jobs:import")
    ///     .wait_for_aof(true, 1, Duration::from_millis(100));
    /// ```
    pub fn wait_for_aof(mut self, local: bool, replicas: u32, timeout: Duration) -> LockBuilder {
        self.replica_sync = Some(ReplicaSync::Aof {
            local,
            replicas,
            timeout,
        });
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
        #[cfg(feature = "cluster")]
        let cluster = crate::connection::as_cluster(&connection);
        let node = Node::new(TimedConnection::new(connection, self.command_timeout));
        #[cfg(feature = "cluster")]
        let node = node.on_cluster(cluster);
        self.finish(ttl, Topology::Single(node))
    }

    /// Builds a Redlock: one lock over N independent Redis masters (not
    /// replicas of each other, not nodes of one Cluster), taken when a
    /// majority of them (N/2 + 1) granted it. It keeps working while a
    /// majority is up. See the crate docs' "Redlock" section for what it does
    /// and does not protect against.
    ///
    /// Every step (acquire, release, extend, inspect) goes to all nodes at
    /// once, each bounded by the [per-node timeout](LockBuilder::node_timeout).
    /// A guard's [deadline](LockGuard::deadline) is the TTL minus the time the
    /// acquire took minus the [clock drift](LockBuilder::clock_drift).
    ///
    /// Use an odd N (3 or 5): an even N tolerates no more failed nodes than
    /// the odd N below it (4 nodes need 3, so they survive one failure, like
    /// 3 nodes) and has more nodes that can fail. N = 1 works, but is a lock
    /// on one Redis with extra steps.
    ///
    /// Fails with [`Error::InvalidArgument`] for no connections, or a
    /// per-node timeout that is zero or above a tenth of the TTL, besides the
    /// checks of [`build`](LockBuilder::build).
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let mut connections = Vec::new();
    /// for url in ["redis://10.0.0.1/", "redis://10.0.0.2/", "redis://10.0.0.3/"] {
    ///     let client = redis::Client::open(url).unwrap();
    ///     connections.push(client.get_connection_manager().await.unwrap());
    /// }
    /// let lock = redis_mutex::Lock::builder("jobs:import").build_quorum(connections)?;
    /// # Ok(()) }
    /// ```
    pub fn build_quorum<C: LockConnection>(
        self,
        connections: impl IntoIterator<Item = C>,
    ) -> Result<Lock> {
        let ttl = self.validate()?;
        let nodes: Vec<Node> = connections
            .into_iter()
            .map(|connection| Node::new(TimedConnection::new(connection, self.command_timeout)))
            .collect();
        let node_timeout = self.validate_quorum(ttl, nodes.len())?;
        let quorum = Quorum::new(nodes, node_timeout, self.drift);
        self.finish(ttl, Topology::Quorum(quorum))
    }

    /// Builds a Redlock over a new [`ConnectionManager`] to each of `urls`:
    /// see [`build_quorum`](LockBuilder::build_quorum).
    ///
    /// It connects to all nodes at once and succeeds when a majority
    /// answered; a node that is down now is connected to when it is next
    /// used. Fails with [`Error::QuorumNotReached`] (operation
    /// [`Operation::Connect`]) when fewer than a majority could be reached,
    /// and with [`Error::InvalidArgument`] when two URLs name the same
    /// server (as written: `localhost` and `127.0.0.1` are not recognised as
    /// one).
    ///
    /// Waiters listen for releases on the first node that answered (see
    /// [`notify_with`](LockBuilder::notify_with)): a hint that makes a
    /// handoff take about a round trip, on top of polling under the
    /// [`WaitPolicy`], since that one node may have missed the holder's `SET`
    /// or its release.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// use std::time::Duration;
    ///
    /// let lock = redis_mutex::Lock::builder("jobs:import")
    ///     .ttl(Duration::from_secs(10))
    ///     .connect_quorum([
    ///         "redis://10.0.0.1/",
    ///         "redis://10.0.0.2/",
    ///         "redis://10.0.0.3/",
    ///         "redis://10.0.0.4/",
    ///         "redis://10.0.0.5/",
    ///     ])
    ///     .await?;
    /// let guard = lock.acquire().await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_quorum<U: IntoConnectionInfo>(
        self,
        urls: impl IntoIterator<Item = U>,
    ) -> Result<Lock> {
        self.validate()?;
        let clients = urls
            .into_iter()
            .map(|url| redis::Client::open(url).map_err(|e| self.connect_error(e)))
            .collect::<Result<Vec<_>>>()?;
        self.clients_quorum(&clients).await
    }

    /// Builds a Redlock over a new [`ConnectionManager`] from each of
    /// `clients`: see [`connect_quorum`](LockBuilder::connect_quorum).
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let clients: Vec<redis::Client> = ["redis://10.0.0.1/", "redis://10.0.0.2/", "redis://10.0.0.3/"]
    ///     .into_iter()
    ///     .map(|url| redis::Client::open(url).unwrap())
    ///     .collect();
    /// let lock = redis_mutex::Lock::builder("jobs:import").clients_quorum(&clients).await?;
    /// # Ok(()) }
    /// ```
    pub async fn clients_quorum(mut self, clients: &[redis::Client]) -> Result<Lock> {
        let ttl = self.validate()?;
        self.validate_quorum(ttl, clients.len())?;
        for (i, client) in clients.iter().enumerate() {
            let addr = client.get_connection_info().addr();
            if let Some(j) = clients[..i]
                .iter()
                .position(|other| other.get_connection_info().addr() == addr)
            {
                return Err(Error::invalid(
                    "nodes",
                    format!(
                        "nodes {j} and {i} are the same server ({addr}); a Redlock needs independent servers"
                    ),
                ));
            }
        }
        let config = manager_config();
        let connected = join_all(
            clients
                .iter()
                .map(|client| ConnectionManager::new_with_config(client.clone(), config.clone())),
        )
        .await;
        let mut managers = Vec::with_capacity(clients.len());
        let mut failures = Vec::new();
        for (node, (client, result)) in clients.iter().zip(connected).enumerate() {
            let manager = match result {
                Ok(manager) => manager,
                Err(e) => {
                    failures.push(NodeFailure {
                        node,
                        reason: NodeFailureReason::from_redis(e),
                    });
                    // Connects on first use, and after that as it always does.
                    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                        .map_err(|e| self.connect_error(e))?
                }
            };
            managers.push(manager);
        }
        let required = quorum::majority(clients.len());
        let granted = clients.len() - failures.len();
        // Waiters listen to one node that answered: a release publishes on
        // every node it reaches.
        if let Some(node) = (0..clients.len()).find(|i| failures.iter().all(|f| f.node != *i)) {
            self.notify = Some(Source::Server(clients[node].clone()));
            self.quorum_notify_node = Some(node);
        }
        if granted < required {
            return Err(Error::QuorumNotReached {
                operation: Operation::Connect,
                key: self.key,
                granted,
                required,
                failures,
            });
        }
        self.build_quorum(managers)
    }

    fn finish(self, ttl: Duration, topology: Topology) -> Result<Lock> {
        let fence_key = self.fence_key()?;
        let notifier = match (&topology, &self.notify, self.quorum_notify_node) {
            (Topology::Single(_), Some(source), _) => {
                Some((Notifier::for_source(source.clone()), 0))
            }
            (Topology::Quorum(_), Some(source), Some(node)) => {
                Some((Notifier::for_source(source.clone()), node))
            }
            _ => None,
        };
        Ok(Lock {
            inner: Arc::new(LockInner {
                key: self.key.into(),
                ttl,
                wait: self.wait,
                auto_renew: self.auto_renew,
                max_hold: self.max_hold,
                fence_key,
                drift: self.drift,
                topology,
                notifier,
                replica_sync: self.replica_sync,
            }),
        })
    }

    /// Builds the lock over a new async connection to the Redis Cluster that
    /// `seeds` belong to (any of its nodes; more than one in case one is
    /// down). Needs the crate feature `cluster`.
    ///
    /// The lock lives on the master that owns its key's slot; the cluster
    /// connection follows `MOVED` and `ASK` redirections while slots move
    /// (resharding, failover), so a lock whose slot moved while held is still
    /// extended and released where it went. Every script touches only keys
    /// of one slot: the lock key, and with [`fencing`](LockBuilder::fencing)
    /// its counter `{key}:fence` (or `key:fence` when the key has a hash tag).
    ///
    /// What a failover does: replication is asynchronous, so a replica
    /// promoted before it saw the `SET` does not know the lock, and another
    /// client can take it. Use
    /// [`wait_for_replicas`](LockBuilder::wait_for_replicas) to narrow that
    /// window, or a Redlock across independent clusters or servers.
    ///
    /// A release announces itself with a sharded publish (`SPUBLISH`, in the
    /// key's shard), and waiters subscribe to it with `SSUBSCRIBE` on that
    /// shard: one subscription connection set per cluster and process,
    /// opened when a first `acquire` has to wait, following the channel when
    /// its slot moves. The client speaks RESP3 (needed for subscriptions on a
    /// cluster connection) for every command.
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let lock = redis_mutex::Lock::builder("{orders}:import")
    ///     .connect_cluster(["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"])
    ///     .await?;
    /// let guard = lock.acquire().await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn connect_cluster<U: IntoConnectionInfo>(
        self,
        seeds: impl IntoIterator<Item = U>,
    ) -> Result<Lock> {
        self.validate()?;
        let client = redis::cluster::ClusterClient::builder(seeds)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .build()
            .map_err(|e| self.connect_error(e))?;
        self.cluster_client(&client).await
    }

    /// Builds the lock over a new async connection from a
    /// [`ClusterClient`](redis::cluster::ClusterClient): see
    /// [`connect_cluster`](LockBuilder::connect_cluster). A lock can also be
    /// [built](LockBuilder::build) over a cluster connection you already
    /// have, since it is a [`LockConnection`] (add
    /// [`notify_with_cluster`](LockBuilder::notify_with_cluster) for its
    /// waiters to be woken).
    ///
    /// Waiters are woken through sharded pub/sub when `client` speaks RESP3
    /// (`.use_protocol(redis::ProtocolVersion::RESP3)` on its builder, as
    /// `connect_cluster` does); a RESP2 client cannot subscribe on a cluster
    /// connection, and its waiters poll under the [`WaitPolicy`].
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::cluster::ClusterClient::new(["redis://10.0.0.1:7000/"]).unwrap();
    /// let lock = redis_mutex::Lock::builder("{orders}:import").cluster_client(&client).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn cluster_client(mut self, client: &redis::cluster::ClusterClient) -> Result<Lock> {
        self.validate()?;
        self.notify
            .get_or_insert_with(|| Source::Cluster(client.clone()));
        let connection = client
            .get_async_connection()
            .await
            .map_err(|e| self.connect_error(e))?;
        self.build(connection)
    }

    /// Builds the lock over a new [`ConnectionManager`] (which reconnects by
    /// itself) to the server at `url`, e.g. `"redis://127.0.0.1:6379/"`, with
    /// waiters woken through pub/sub on the same server (see
    /// [`notify_with`](LockBuilder::notify_with)).
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

    /// Builds the lock over a new [`ConnectionManager`] from `client`, with
    /// waiters woken through pub/sub on the same server (see
    /// [`notify_with`](LockBuilder::notify_with)).
    ///
    /// ```no_run
    /// # async fn example() -> redis_mutex::Result<()> {
    /// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
    /// let lock = redis_mutex::Lock::builder("jobs:import").client(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn client(mut self, client: &redis::Client) -> Result<Lock> {
        self.validate()?;
        self.notify
            .get_or_insert_with(|| Source::Server(client.clone()));
        let manager = ConnectionManager::new_with_config(client.clone(), manager_config())
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
        if self.command_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid("command_timeout", "must be above zero"));
        }
        let ttl = check_ttl(self.ttl)?;
        if let Some(sync) = &self.replica_sync {
            sync.validate(self.drift.validity(ttl))?;
            if let Some(command_timeout) = self.command_timeout
                && command_timeout <= sync.timeout()
            {
                return Err(Error::invalid(
                    "command_timeout",
                    format!(
                        "{command_timeout:?} must be above the replica timeout ({:?}), or every WAIT times out on the client first",
                        sync.timeout()
                    ),
                ));
            }
        }
        self.drift.check()?;
        if self.drift.validity(ttl).is_zero() {
            return Err(Error::invalid(
                "clock_drift",
                format!(
                    "a margin of {:?} leaves no validity of the {ttl:?} TTL",
                    self.drift.margin(ttl)
                ),
            ));
        }
        Ok(ttl)
    }

    /// Checks a Redlock of `nodes` nodes; returns the per-node timeout.
    fn validate_quorum(&self, ttl: Duration, nodes: usize) -> Result<Duration> {
        if self.replica_sync.is_some() {
            return Err(Error::invalid(
                "replicas",
                "a Redlock's nodes are independent masters: wait for replicas on a lock on one node",
            ));
        }
        if self.fencing {
            return Err(Error::invalid(
                "fencing",
                "a Redlock cannot issue fencing tokens: counters on independent nodes have no order between them; fence on a single node instead",
            ));
        }
        if nodes == 0 {
            return Err(Error::invalid(
                "nodes",
                "a Redlock needs at least 1 node (3 or 5 are typical), got 0",
            ));
        }
        let node_timeout = self
            .node_timeout
            .unwrap_or_else(|| quorum::default_node_timeout(ttl));
        if node_timeout.is_zero() || node_timeout > ttl / 10 {
            return Err(Error::invalid(
                "node_timeout",
                format!(
                    "{node_timeout:?} must be above zero and at most a tenth of the {ttl:?} TTL ({:?})",
                    ttl / 10
                ),
            ));
        }
        if self.drift.validity(ttl) <= node_timeout {
            return Err(Error::invalid(
                "clock_drift",
                format!(
                    "a margin of {:?} leaves no more validity of the {ttl:?} TTL than the per-node timeout ({node_timeout:?})",
                    self.drift.margin(ttl)
                ),
            ));
        }
        Ok(node_timeout)
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

/// The `ConnectionManager` settings of the connections the builder opens:
/// few, short connection retries, so that a caller with Redis down hears
/// about it in about a second, not after the default ~6 s of retries.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
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
        let err = Lock::builder("k")
            .ttl(Duration::from_millis(100))
            .clock_drift(0.01, Duration::from_millis(99))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves no validity"), "{err}");
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
