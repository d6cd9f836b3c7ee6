//! The attempt loop of every kind: acquire under a wait policy (one total
//! deadline), the cancel-safe pending acquire, and `run`.
//!
//! Invariants:
//! - The token exists before the first send. While an acquire may have
//!   landed without a hold to show for it (`PendingAcquire::maybe_set`),
//!   dropping the pending acquire (cancellation, error) releases the token
//!   in the background, so a lease is never left held until its TTL.
//! - A hold counts from before the send that confirmed it, or from the
//!   call's start when an earlier send of the same token landed; an answer
//!   that came after the validity makes no hold.
//! - A call ends by the wait policy's deadline, or one attempt floor after
//!   its last attempt started if that is later (`Topology::attempt_floor`):
//!   an attempt still running then is cut, as a dropped future would be
//!   (a Redlock attempt ends by then on its own: `Topology::cuts_attempts`).
//!   The cut is the process-wide watchdog's (`cut.rs`), not a tokio timer
//!   per attempt: almost every attempt ends long before it.
//! - A topology that spent a token (a Redlock attempt that missed) gets a
//!   fresh one: a late release of the old token must never meet a later
//!   attempt's key.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use crate::attempt::AcquireStep;
use crate::engine::Engine;
use crate::error::{Error, Operation, Result};
use crate::hold::Hold;
use crate::kind::Kind;
use crate::lease::Lease;
use crate::metrics::{self, LossReason};
use crate::out_of_line::out_of_line;
use crate::retry::WaitPolicy;
use crate::timeout::timed_out;
use crate::token::{HolderToken, Token};
use crate::wait::Waiter;

impl<K: Kind> Engine<K> {
    /// Acquires under `policy`; [`Error::Busy`] when the wait ends first.
    pub(crate) async fn acquire(self: &Arc<Self>, policy: WaitPolicy) -> Result<Hold<K>> {
        let started = Instant::now();
        #[cfg(feature = "tracing")]
        let mut result = {
            use tracing::Instrument;
            let span = crate::trace::acquire_span(self.key());
            self.attempt_until_acquired(policy, started)
                .instrument(span)
                .await
        };
        #[cfg(not(feature = "tracing"))]
        let mut result = self.attempt_until_acquired(policy, started).await;
        // Before the caller gets the guard, and perhaps blocks its thread.
        if let Ok(hold) = &mut result {
            hold.renewal_started().await;
        }
        #[cfg(feature = "tracing")]
        crate::trace::acquired(
            self.key(),
            started.elapsed(),
            result.as_ref().map(Hold::fence),
        );
        metrics::acquired(&self.meter, started, &result);
        result
    }

    /// One attempt: `Ok(None)` when the lease is held by others.
    pub(crate) async fn try_acquire(self: &Arc<Self>) -> Result<Option<Hold<K>>> {
        match self.acquire(WaitPolicy::no_wait()).await {
            Ok(hold) => Ok(Some(hold)),
            Err(Error::Busy { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Acquires, runs `body` while renewing, and releases after; `body` is
    /// stopped (dropped) when the lease is lost, and the result is then
    /// [`Error::Lost`].
    pub(crate) async fn run<F, Fut, T>(self: &Arc<Self>, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        let mut hold = self.acquire(self.wait).await?;
        hold.auto_renew()?;
        hold.renewal_started().await;
        let lease = hold.lease().clone();
        let finished = tokio::select! {
            biased;
            () = lease.lost() => None,
            value = body(lease.clone()) => Some(value),
        };
        match finished {
            Some(value) => hold.release().await.map(|()| value),
            None => {
                // Counted at once (renewal may not have looked yet); an
                // answered loss was counted by the extend that got it.
                metrics::lost(&self.meter, &lease, LossReason::Deadline);
                // Still worth a try: if the deadline passed only because
                // Redis was slow, the lease may still be ours.
                let _ = hold.release().await;
                #[cfg(feature = "tracing")]
                crate::trace::lost(self.key(), "the work under run() was stopped");
                Err(Error::Lost {
                    key: self.key().to_owned(),
                })
            }
        }
    }

    async fn attempt_until_acquired(
        self: &Arc<Self>,
        policy: WaitPolicy,
        started: Instant,
    ) -> Result<Hold<K>> {
        let mut pending = PendingAcquire {
            engine: self,
            token: Some(Token::generate()?),
            maybe_set: false,
        };
        let mut waiter = Waiter::new(
            &self.kind,
            (pending.token_str(), self.ttl),
            policy.start(started),
            self.topology.wake_ups(),
        );
        // The whole call ends by the wait's deadline, a stalled attempt
        // included, except that each attempt gets at least one attempt floor
        // (the last one starts at the deadline). A floor past any instant (a
        // command timeout of `Duration::MAX`) cuts nothing.
        let deadline = policy.deadline(started);
        let floor = self.topology.attempt_floor();
        let mut attempts = 0u32;
        let mut queued_once = false;
        let mut waiting = metrics::Waiting::default();
        // When the attempt starts: the call's start for the first one (the
        // clock read once for both).
        let mut now = started;
        loop {
            attempts += 1;
            pending.maybe_set = true;
            // `now` is also the attempt's `sent_at`: read before the send.
            // The attempt is made where it is awaited: a future made first
            // and moved in after costs a copy of it.
            let attempt = || {
                self.topology
                    .try_acquire(&self.kind, pending.token_str(), self.ttl, now)
            };
            let cutoff = deadline
                .filter(|_| self.topology.cuts_attempts())
                .and_then(|deadline| Some(deadline.max(now.checked_add(floor)?)));
            let step = match crate::cut::cut_at(cutoff, attempt()).await {
                Ok(step) => step,
                // Cut: the SET may have landed, so the token is released
                // in the background (the pending acquire's drop).
                Err(_) => self.cut_attempt(cutoff, started),
            };
            let (failed, holder_named) = match step {
                AcquireStep::Acquired {
                    sent_at,
                    from_earlier_send,
                    fence,
                } => {
                    // Only an earlier send of this call can have set our
                    // token; count validity from the first one.
                    let from = if from_earlier_send { started } else { sent_at };
                    if let Some(sync) = &self.replica_sync
                        && let Err(error) =
                            out_of_line(self.topology.replicate(sync, self.key())).await
                    {
                        // Not confirmed: undo now, so that the failed acquire
                        // leaves nothing; Drop retries if this goes unanswered.
                        if self
                            .topology
                            .release(&self.kind, pending.token_str())
                            .await
                            .is_ok()
                        {
                            pending.maybe_set = false;
                        }
                        return Err(error);
                    }
                    let granted = HolderToken::own(pending.token_str());
                    let hold = pending.into_hold(from, fence);
                    if hold.is_ok() {
                        waiter.acquired(granted, self.ttl);
                    }
                    return hold;
                }
                AcquireStep::Fail { error, maybe_set } => {
                    pending.maybe_set = maybe_set;
                    return Err(error);
                }
                AcquireStep::Retry {
                    failed,
                    token_spent,
                    queued,
                    named,
                } => {
                    // A mark left while queued (by this attempt or an
                    // earlier one) is released by token if the acquire
                    // gives up: the pending acquire's drop.
                    queued_once |= queued;
                    pending.maybe_set = queued_once;
                    if token_spent {
                        pending.token = Some(Token::generate()?);
                    }
                    (failed, named)
                }
            };
            waiting.start(&self.meter);
            if !out_of_line(waiter.wait(holder_named, pending.token_str())).await {
                return Err(failed.unwrap_or_else(|| Error::Busy {
                    key: self.key().to_owned(),
                    waited: started.elapsed(),
                    attempts,
                }));
            }
            now = Instant::now();
        }
    }

    /// The step of an attempt cut at `cutoff` (set: only an attempt with a
    /// cutoff is cut). Out of line: almost no attempt is cut.
    #[cold]
    fn cut_attempt(&self, cutoff: Option<Instant>, started: Instant) -> AcquireStep {
        let after = cutoff.map_or(started.elapsed(), |cutoff| cutoff - started);
        AcquireStep::Fail {
            error: Error::TimedOut {
                operation: Operation::Acquire,
                key: self.key().to_owned(),
                after: Some(after),
                source: timed_out(after),
            },
            maybe_set: true,
        }
    }
}

/// The token of an acquire in progress (see the module's invariants).
struct PendingAcquire<'a, K: Kind> {
    engine: &'a Arc<Engine<K>>,
    token: Option<Token>,
    maybe_set: bool,
}

impl<K: Kind> PendingAcquire<'_, K> {
    fn token_str(&self) -> &str {
        self.token.as_ref().map_or("", Token::as_str)
    }

    fn into_hold(mut self, valid_from: Instant, fence: Option<u64>) -> Result<Hold<K>> {
        let engine = self.engine;
        // An answer that came after the lease's validity proves nothing any
        // more: it may have expired and been taken meanwhile. No hold; the
        // token stays pending, so Drop releases it in the background.
        let valid_until = engine.drift.valid_until(valid_from, engine.ttl);
        // Read once, for this check and for the lease's boot-clock deadline.
        let now = crate::clock::read();
        if valid_until <= now.monotonic {
            return Err(Error::ValidityExpired {
                operation: Operation::Acquire,
                key: engine.key().to_owned(),
                elapsed: valid_from.elapsed(),
            });
        }
        self.maybe_set = false;
        let Some(token) = self.token.take() else {
            unreachable!("token taken twice")
        };
        // From here the hold's Drop releases the lease if anything fails.
        Hold::new(engine.clone(), token, fence, valid_from, valid_until, now)
    }
}

impl<K: Kind> Drop for PendingAcquire<'_, K> {
    fn drop(&mut self) {
        if self.maybe_set
            && let Some(token) = self.token.take()
        {
            let engine = self.engine;
            engine
                .topology
                .release_in_background(&engine.kind, token.as_str());
        }
    }
}

/// A second kind of lease, test-only, run through the engine as it is: a
/// hold is a field `owner` of a hash, not a string key. Nothing of the
/// engine knows it; waiting, wake-ups, renewal, loss, `run` and `Drop` all
/// work for it, against a real `redis-server`.
#[cfg(test)]
mod a_second_kind {
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, LazyLock};
    use std::time::Duration;

    use redis::{RedisResult, Value};
    use tokio::time::Instant;

    use crate::engine::Engine;
    use crate::error::Error;
    use crate::kind::{Announce, Grant, Holder, Kind};
    use crate::node::Node;
    use crate::notify::Notifier;
    use crate::retry::WaitPolicy;
    use crate::scripts::{LeaseScript, Request, ScriptCall};
    use crate::subscriber::Source;
    use crate::topology::Topology;
    use crate::ttl::{ClockDrift, millis};

    static ACQUIRE: LazyLock<LeaseScript> = LazyLock::new(|| {
        LeaseScript::new(
            r#"
local holder = redis.call("HGET", KEYS[1], "owner")
if not holder then
    redis.call("HSET", KEYS[1], "owner", ARGV[1])
    redis.call("PEXPIRE", KEYS[1], ARGV[2])
    return 1
end
if holder == ARGV[1] then return 2 end
return 0
"#,
        )
    });
    static RELEASE: LazyLock<LeaseScript> = LazyLock::new(|| {
        LeaseScript::new(
            r#"
if redis.call("HGET", KEYS[1], "owner") == ARGV[1] then
    redis.call("DEL", KEYS[1])
    if ARGV[2] then redis.pcall("PUBLISH", ARGV[2], "") end
    return 1
end
return 0
"#,
        )
    });
    static EXTEND: LazyLock<LeaseScript> = LazyLock::new(|| {
        LeaseScript::new(
            r#"
if redis.call("HGET", KEYS[1], "owner") == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"#,
        )
    });

    struct HashLease {
        key: Arc<str>,
        channel: String,
    }

    impl Kind for HashLease {
        fn key(&self) -> &Arc<str> {
            &self.key
        }
        fn kind_name(&self) -> &'static str {
            "hash lease"
        }
        fn channel(&self) -> &str {
            &self.channel
        }
        fn acquire(&self, token: &str, ttl: Duration) -> Request {
            Request::Script(ACQUIRE.call(&[&*self.key]).arg(token).arg(millis(ttl)))
        }
        fn read_acquire(&self, reply: Value, _token: &str) -> RedisResult<Grant> {
            Ok(match redis::from_redis_value::<i64>(reply)? {
                1 => Grant::Acquired { fence: None },
                2 => Grant::AlreadyOurs { fence: None },
                _ => Grant::Busy { named: None },
            })
        }
        fn release(&self, token: &str, announce: Announce<'_>) -> ScriptCall {
            let call = RELEASE.call(&[&*self.key]).arg(token);
            if announce.publishes() {
                call.arg(&self.channel)
            } else {
                call
            }
        }
        fn extend(&self, token: &str, ttl: Duration) -> ScriptCall {
            EXTEND.call(&[&*self.key]).arg(token).arg(millis(ttl))
        }
        fn holds(&self, _token: &str) -> Request {
            let mut hget = redis::cmd("HGET");
            hget.arg(&*self.key).arg("owner");
            Request::Cmd(hget)
        }
        fn read_holds(&self, reply: Value, token: &str) -> RedisResult<bool> {
            let owner: Option<String> = redis::from_redis_value(reply)?;
            Ok(owner.as_deref() == Some(token))
        }
        fn holder(&self) -> Request {
            let mut pipe = redis::pipe();
            pipe.cmd("HGET").arg(&*self.key).arg("owner");
            pipe.cmd("PTTL").arg(&*self.key);
            Request::Pipeline(pipe)
        }
        fn read_holder(&self, reply: Value) -> Holder {
            match redis::from_redis_value::<(Option<String>, i64)>(reply) {
                Ok((None, _)) => Holder::Gone,
                Ok((Some(_), ttl)) if ttl >= 0 => Holder::Held {
                    free_in: Duration::from_millis(ttl as u64 + 1),
                    announces: true,
                },
                _ => Holder::Unknown,
            }
        }
    }

    /// A throwaway `redis-server` on a free port, killed on drop.
    struct Server {
        child: Child,
        url: String,
    }

    impl Server {
        async fn start() -> Server {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
            let child = Command::new(bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server runs (scripts/ensure-redis-server installs it)");
            let server = Server {
                child,
                url: format!("redis://127.0.0.1:{port}/"),
            };
            let client = redis::Client::open(server.url.as_str()).unwrap();
            for _ in 0..200 {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                    && redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok()
                {
                    return server;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("redis-server did not come up on {}", server.url);
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn engine(server: &Server, ttl: Duration, auto_renew: bool) -> Arc<Engine<HashLease>> {
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let connection = client.get_multiplexed_async_connection().await.unwrap();
        let notifier = Notifier::for_source(Source::Server(client));
        Arc::new(Engine {
            kind: HashLease {
                key: "jobs:hash".into(),
                channel: crate::keys::release_channel("jobs:hash"),
            },
            ttl,
            wait: WaitPolicy::timeout(Duration::from_secs(20))
                .backoff(Duration::from_secs(5), Duration::from_secs(5)),
            auto_renew,
            max_hold: None,
            drift: ClockDrift::DEFAULT,
            topology: std::sync::Arc::new(Topology::single(
                Node::new(connection, None),
                Some(notifier),
            )),
            replica_sync: None,
            meter: crate::metrics::Meter::new(None, "hash lease"),
        })
    }

    async fn owner(server: &Server) -> Option<String> {
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("HGET")
            .arg("jobs:hash")
            .arg("owner")
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn excludes_wakes_renews_and_releases_through_the_engine() {
        let server = Server::start().await;
        let a = engine(&server, Duration::from_secs(10), false).await;
        let b = engine(&server, Duration::from_secs(10), false).await;

        let held = a.acquire(a.wait).await.unwrap();
        assert!(owner(&server).await.is_some());
        assert!(b.try_acquire().await.unwrap().is_none(), "excluded");
        assert!(held.is_held().await.unwrap());

        // A waiter sleeps until the release announces itself (its backoff
        // is 5 s, the holder's TTL 10 s): a wake-up, not a poll.
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(b.wait).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let released = Instant::now();
        held.release().await.unwrap();
        let handed = waiter.await.unwrap();
        assert!(
            released.elapsed() < Duration::from_secs(1),
            "{:?}",
            released.elapsed()
        );

        // Dropped without release: released in the background.
        drop(handed);
        for _ in 0..100 {
            if owner(&server).await.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(owner(&server).await, None);

        // Renewal keeps a short lease past its TTL.
        let renewed = engine(&server, Duration::from_millis(300), true).await;
        let hold = renewed.acquire(renewed.wait).await.unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(!hold.lease().is_lost());
        assert!(hold.is_held().await.unwrap());
        hold.release().await.unwrap();

        // Taken away by hand: extend reports it, and the lease is lost.
        let hold = a.acquire(a.wait).await.unwrap();
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("DEL")
            .arg("jobs:hash")
            .query_async(&mut conn)
            .await
            .unwrap();
        let err = hold.extend(Duration::from_secs(10)).await.unwrap_err();
        assert!(matches!(err, Error::NotHeld { .. }), "{err}");
        assert!(hold.lease().is_lost());
        drop(hold);

        // `run` acquires, renews, releases.
        let value = renewed.run(|_lease| async { 7 }).await.unwrap();
        assert_eq!(value, 7);
        assert_eq!(owner(&server).await, None);
    }
}
