//! `RwLock`: a read-write lock, the public handle over the engine with the
//! read and the write kinds (`rw_lease`). Its builder is in
//! `rwlock_builder`, its guards in `rw_guards`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::lease::Lease;
use crate::retry::WaitPolicy;
use crate::rw_guards::{ReadGuard, WriteGuard};
use crate::rw_lease::{ReadLease, WriteLease};
use crate::rw_upgrade::{Mode, Registration, holds_now};

/// A read-write lock on one key: many readers at once, or one writer alone,
/// across every process and host that uses the key.
///
/// - **Write preference.** A writer that finds readers leaves a mark that
///   stops new readers, and takes the lock when the last reader leaves; so
///   a steady stream of readers cannot starve writers. A writer waits at
///   most for the reads in progress when it arrived (each bounded by its
///   TTL, or by its holder's renewal); readers arriving meanwhile wait for
///   that writer. The mark lives two TTLs from the writer's last attempt
///   (every attempt renews it) and goes at once when the writer takes the
///   lock or gives up: a writer that crashed while waiting holds new
///   readers back for at most two TTLs.
/// - **Every reader's hold is its own lease** on the server's clock (a
///   sorted set of reader tokens scored by expiry, from `TIME` in the
///   scripts): renewal keeps each reader's own hold alive, never one shared
///   TTL that a dead reader's renewal could keep up, and a crashed reader
///   holds writers back at most until its TTL.
/// - **No upgrade.** A task that holds a read and asks for the write (two
///   such tasks deadlock each other), or holds the write and asks for a
///   read, gets [`Error::WaitsForItself`] at once. A task is its tokio task
///   (or, outside any task, its thread), and a lock is its key on its
///   servers (one `Locks`, or one handle and its clones).
/// - **Waiting through pub/sub:** a writer's release wakes readers and
///   writers, the last reader's release wakes a writer; expiries bound
///   every wait, as for a lock.
/// - **On the wire** the key as given is the writer's key, holding the
///   writer's token like a plain lock: a plain [`Lock`](crate::Lock) (or
///   redis-py's, or redsync's) on the key excludes readers and writers.
///   The readers are in `{key}:readers`, a waiting writer's mark in
///   `{key}:writer-waiting`, all in the key's Cluster slot.
/// - **One node or a Redis Cluster, not a Redlock** (refused with
///   [`Error::InvalidArgument`]): exclusion between a reader and a writer
///   holding majorities would hold (the majorities meet on a node that
///   refused one of them), but the writers' marks would have to be kept
///   and cleaned on every node, which is not built.
///
/// ```no_run
/// # async fn example() -> redis_mutex::Result<()> {
/// use redis_mutex::RwLock;
///
/// let config = RwLock::builder("config").connect("redis://127.0.0.1/").await?;
/// let read = config.read().await?; // many at once
/// read.release().await?;
/// let write = config.write().await?; // alone
/// write.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RwLock {
    read: Arc<Engine<ReadLease>>,
    write: Arc<Engine<WriteLease>>,
}

impl RwLock {
    /// The lock's key (the writer's key on the wire).
    pub fn key(&self) -> &str {
        self.write.key()
    }

    /// The lease length of each read and write hold.
    pub fn ttl(&self) -> Duration {
        self.write.ttl
    }

    /// How acquires wait while the lock is held against them.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.write.wait
    }

    /// The same lock with holds of another TTL, checked as the builder
    /// checks it.
    pub fn with_ttl(&self, ttl: Duration) -> Result<RwLock> {
        Ok(RwLock {
            read: Arc::new(self.read.with_ttl(ttl)?),
            write: Arc::new(self.write.with_ttl(ttl)?),
        })
    }

    /// The same lock, waiting under another policy.
    pub fn with_wait(&self, policy: WaitPolicy) -> Result<RwLock> {
        policy.validate()?;
        let (mut read, mut write) = ((*self.read).clone(), (*self.write).clone());
        read.wait = policy;
        write.wait = policy;
        Ok(RwLock::from_engines(read, write))
    }

    /// Takes a read hold, waiting under the wait policy while a writer holds
    /// or waits: [`Error::Busy`] when the wait ran out,
    /// [`Error::WaitsForItself`] at once when this task holds the write.
    /// Cancel safe, as [`Lock::acquire`](crate::Lock::acquire) is.
    pub async fn read(&self) -> Result<ReadGuard> {
        self.read_under(self.read.wait).await
    }

    /// [`read`](RwLock::read), waiting at most `max_wait`.
    pub async fn read_timeout(&self, max_wait: Duration) -> Result<ReadGuard> {
        self.read_under(self.read.wait.with_max_wait(Some(max_wait)))
            .await
    }

    /// A read hold if one can be had now: `Ok(None)` when not.
    pub async fn try_read(&self) -> Result<Option<ReadGuard>> {
        none_if_busy(self.read_under(WaitPolicy::no_wait()).await)
    }

    /// Takes the write hold, waiting under the wait policy while readers or
    /// another writer hold it (new readers wait behind this writer
    /// meanwhile): [`Error::Busy`] when the wait ran out,
    /// [`Error::WaitsForItself`] at once when this task holds a read (no
    /// upgrade). Cancel safe; a writer that gives up or is dropped removes
    /// its mark at once.
    pub async fn write(&self) -> Result<WriteGuard> {
        self.write_under(self.write.wait).await
    }

    /// [`write`](RwLock::write), waiting at most `max_wait`.
    pub async fn write_timeout(&self, max_wait: Duration) -> Result<WriteGuard> {
        self.write_under(self.write.wait.with_max_wait(Some(max_wait)))
            .await
    }

    /// The write hold if it can be had now: `Ok(None)` when not (and no
    /// mark is left).
    pub async fn try_write(&self) -> Result<Option<WriteGuard>> {
        none_if_busy(self.write_under(WaitPolicy::no_wait()).await)
    }

    /// Runs `body` under a renewed read hold, as
    /// [`Lock::run`](crate::Lock::run) does.
    pub async fn run_read<F, Fut, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        self.refuse_if_held(Mode::Write, Mode::Read)?;
        let _registered = self.register(Mode::Read);
        self.read.run(body).await
    }

    /// Runs `body` under the renewed write hold, as
    /// [`Lock::run`](crate::Lock::run) does.
    pub async fn run_write<F, Fut, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        self.refuse_if_held(Mode::Read, Mode::Write)?;
        let _registered = self.register(Mode::Write);
        self.write.run(body).await
    }

    /// How many live read holds there are now, on the server's clock. One
    /// round trip; the answer may be stale at once.
    pub async fn readers(&self) -> Result<u32> {
        let engine = &*self.read;
        engine
            .count_members(engine.kind.readers(), quorum_refused)
            .await
    }

    pub(crate) fn from_engines(read: Engine<ReadLease>, write: Engine<WriteLease>) -> RwLock {
        RwLock {
            read: Arc::new(read),
            write: Arc::new(write),
        }
    }

    async fn read_under(&self, policy: WaitPolicy) -> Result<ReadGuard> {
        self.refuse_if_held(Mode::Write, Mode::Read)?;
        let hold = self.read.acquire(policy).await?;
        Ok(ReadGuard::new(hold, self.register(Mode::Read)))
    }

    async fn write_under(&self, policy: WaitPolicy) -> Result<WriteGuard> {
        self.refuse_if_held(Mode::Read, Mode::Write)?;
        let hold = self.write.acquire(policy).await?;
        Ok(WriteGuard::new(hold, self.register(Mode::Write)))
    }

    fn register(&self, mode: Mode) -> Registration {
        Registration::new(&self.write.topology, self.write.kind.key(), mode)
    }

    /// [`Error::WaitsForItself`] when this task holds a `held` hold and
    /// asks for a `wanted` one.
    fn refuse_if_held(&self, held: Mode, wanted: Mode) -> Result<()> {
        if holds_now(&self.write.topology, self.write.kind.key(), held) {
            return Err(Error::WaitsForItself {
                key: self.key().to_owned(),
                held: held.name(),
                wanted: wanted.name(),
            });
        }
        Ok(())
    }
}

fn none_if_busy<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(guard) => Ok(Some(guard)),
        Err(Error::Busy { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why a read-write lock is refused on a Redlock quorum.
pub(crate) fn quorum_refused() -> Error {
    Error::invalid(
        "servers",
        "a read-write lock is not offered on a Redlock quorum: its waiting writers' marks would have to be kept and cleaned on every node; use one node or a Redis Cluster",
    )
}

impl fmt::Debug for RwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = &*self.write;
        f.debug_struct("RwLock")
            .field("key", &engine.key())
            .field("ttl", &engine.ttl)
            .field("wait", &engine.wait)
            .field("auto_renew", &engine.auto_renew)
            .field("topology", &engine.topology)
            .finish_non_exhaustive()
    }
}
