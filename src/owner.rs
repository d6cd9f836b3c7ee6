//! `Owner`: who a re-entrant hold belongs to, and the table of its live
//! holds. How a hold is shared is in `reentrant`; this file knows holds only
//! as `dyn Any`, so that any kind of lease can use it.
//!
//! Invariants:
//! - One entry per (kind, servers, key): the owner's hold of it, or the
//!   owner's acquire of it in flight. An acquire in flight is the only one
//!   of this owner for that key: others of the same owner wait for its
//!   outcome here, never for the owner's own hold in Redis.
//! - An entry of a hold is a `Weak`: the table never keeps a hold alive; a
//!   hold ends when its last guard does, and its entry goes with it.
//! - The table's mutex is never held across an `.await`, nor while a hold
//!   is dropped.

use std::any::{Any, TypeId};
use std::collections::{HashMap, hash_map};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::Semaphore;

tokio::task_local! {
    /// The owner of the task's [`Owner::scope`].
    static CURRENT: Owner;
}

/// A hold's owner: the identity under which acquiring a lock that is
/// already held re-enters it (a *nested hold*) instead of waiting for it.
///
/// Async Rust has no thread identity to stand for "the same caller" (a
/// task moves between threads, one thread runs many tasks), so the owner is
/// explicit. There are two ways to have one:
/// - **A task scope**: [`Owner::scope`] runs a future under an owner; every
///   acquire made inside it (at any depth of `.await`s and calls) is that
///   owner's. Scopes do not cross [`tokio::spawn`]: a spawned task has no
///   owner unless it is given one ([`Owner::scoped`]).
/// - **A value**: [`Lock::acquire_as`](crate::Lock::acquire_as) or
///   [`Lock::with_owner`](crate::Lock::with_owner), for callbacks and
///   spawned tasks; clone the owner to hand it on. Clones are the same
///   owner.
///
/// # What an owner's holds are
///
/// The owner's first acquire of a key takes the lock in Redis as any
/// acquire does: one `SET`, a fresh token. While that hold lives, the
/// owner's acquires of the same key (through the same [`Lock`](crate::Lock),
/// a clone, [`with_ttl`](crate::Lock::with_ttl)/[`with_wait`](crate::Lock::with_wait)
/// of it, or any lock of the same [`Locks`](crate::Locks)) re-enter: each
/// returns at once a guard of the same hold, with no round trip and no new
/// token. Every guard of a hold shares its token, [`Lease`](crate::Lease)
/// (deadline and [`lost`](crate::LockGuard::lost)), renewal and
/// [fence](crate::LockGuard::fence); the key and TTL are the first
/// acquire's. Only the last guard to end releases the key, in whatever
/// order the guards end (see [`LockGuard`](crate::LockGuard)).
///
/// Anyone else is excluded as before: other processes, plain acquires
/// (outside any scope), and other owners of this process. A lock built
/// apart (another [`LockBuilder`](crate::LockBuilder), even on the same
/// server) is another lock to an owner: acquiring it waits, as it would
/// for anyone. Concurrent futures of one task under one scope (`join!`)
/// are one owner and do not exclude each other.
///
/// Two acquires of one owner at once (tasks given the same owner): the
/// second waits for the first one's outcome, within its own wait policy,
/// then gets a guard of the hold it made, or, if it failed or was
/// cancelled, tries itself; it never waits for its owner's hold in Redis.
///
/// A nested acquire of a hold that is [lost](crate::Lease::is_lost) fails
/// with [`Error::NotHeld`](crate::Error::NotHeld): the owner does not hold
/// the key any more, and the guards it still has say so.
///
/// # Recursion through an `async fn`
///
/// A recursive `async fn` needs a boxed future (`Box::pin`); under one
/// scope, every level's `acquire` re-enters the first level's hold:
///
/// ```no_run
/// use std::future::Future;
/// use std::pin::Pin;
/// use redis_mutex::{Lock, Owner, Result};
///
/// fn walk(lock: Lock, depth: u32) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> {
///     Box::pin(async move {
///         let guard = lock.acquire().await?; // one SET at depth 0, none below
///         if depth > 0 {
///             walk(lock.clone(), depth - 1).await?;
///         }
///         guard.release().await // only depth 0's release reaches Redis
///     })
/// }
///
/// # async fn example(lock: Lock) -> Result<()> {
/// Owner::scope(walk(lock, 10)).await?;
/// # Ok(()) }
/// ```
///
/// # Handing the owner to a spawned task
///
/// ```no_run
/// use redis_mutex::{Lock, Owner};
///
/// # async fn example(lock: Lock) -> redis_mutex::Result<()> {
/// let owner = Owner::new();
/// let guard = lock.acquire_as(&owner).await?;
/// let worker = tokio::spawn(owner.clone().scoped({
///     let lock = lock.clone();
///     async move {
///         // The spawned task is the same owner: no wait, no round trip.
///         let nested = lock.acquire().await?;
///         // ... work under the lock ...
///         nested.release().await
///     }
/// }));
/// // The spawner may end its hold first: the key stays held for the task.
/// guard.release().await?;
/// worker.await.expect("the task ran")?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Owner {
    table: Arc<Table>,
}

#[derive(Default)]
struct Table {
    entries: Mutex<HashMap<HoldKey, Entry>>,
}

/// What makes two acquires "the same lock" for an owner: the kind of
/// lease, the servers (one topology, shared by a lock's clones and by every
/// lock of one `Locks`) and the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct HoldKey {
    kind: TypeId,
    /// The topology's address. Never dangling while its entry is live: a
    /// live hold, and an acquire in flight, keep their topology alive.
    servers: usize,
    key: Arc<str>,
}

impl HoldKey {
    pub(crate) fn new<K: 'static, T>(servers: &Arc<T>, key: &Arc<str>) -> HoldKey {
        HoldKey {
            kind: TypeId::of::<K>(),
            servers: Arc::as_ptr(servers) as *const () as usize,
            key: key.clone(),
        }
    }
}

enum Entry {
    /// The owner's acquire of the key is in flight.
    Acquiring(Ended),
    /// The owner's hold of the key, while any guard of it lives.
    Held(Weak<dyn Any + Send + Sync>),
}

/// What [`Owner::find`] found for a key.
pub(crate) enum Found {
    /// A live hold (a new strong reference to it).
    Held(Arc<dyn Any + Send + Sync>),
    /// The owner's own acquire of the key is in flight, until `Ended`.
    Acquiring(Ended),
    /// Nothing: the caller is now the owner's one acquire of the key.
    Free(Slot),
}

impl Owner {
    /// A new owner, distinct from every other.
    pub fn new() -> Owner {
        Owner::default()
    }

    /// The owner of the current task's [`scope`](Owner::scope), if the task
    /// runs in one.
    pub fn current() -> Option<Owner> {
        CURRENT.try_with(Owner::clone).ok()
    }

    /// Runs `future` under the current task's owner, or under a new one
    /// when the task has none: every acquire inside it, at any depth, is
    /// that owner's and re-enters the holds the owner already has. A scope
    /// inside a scope keeps the outer owner, so a library that scopes its
    /// own work still re-enters its caller's holds; use
    /// [`Owner::new().scoped(..)`](Owner::scoped) for a separate owner.
    ///
    /// ```no_run
    /// # async fn example(lock: redis_mutex::Lock) -> redis_mutex::Result<()> {
    /// redis_mutex::Owner::scope(async {
    ///     let outer = lock.acquire().await?;
    ///     let inner = lock.acquire().await?; // at once: the same hold
    ///     inner.release().await?;
    ///     outer.release().await // the key is released here
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn scope<F: Future>(future: F) -> F::Output {
        // Async: the owner is the one of the task that polls, not of the
        // caller that made the future.
        Owner::current().unwrap_or_default().scoped(future).await
    }

    /// Runs `future` under this owner (a spawned task, a callback's future).
    pub fn scoped<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// How many keys the owner holds now.
    pub fn hold_count(&self) -> usize {
        self.entries()
            .values()
            .filter(|entry| matches!(entry, Entry::Held(hold) if hold.strong_count() > 0))
            .count()
    }

    /// Looks `key` up; when free, marks the owner's acquire of it as in
    /// flight (the returned [`Slot`]).
    pub(crate) fn find(&self, key: &HoldKey) -> Found {
        let mut entries = self.entries();
        // One hash of the key: the entry API.
        let entry = entries.entry(key.clone());
        if let hash_map::Entry::Occupied(found) = &entry {
            match found.get() {
                Entry::Held(hold) => {
                    if let Some(hold) = hold.upgrade() {
                        return Found::Held(hold);
                    }
                }
                // Closed only after its slot took the entry out; never
                // spin on one that would be left.
                Entry::Acquiring(ended) if !ended.0.is_closed() => {
                    return Found::Acquiring(ended.clone());
                }
                Entry::Acquiring(_) => {}
            }
        }
        let ended = Ended(Arc::new(Semaphore::new(0)));
        entry.insert_entry(Entry::Acquiring(ended.clone()));
        Found::Free(Slot {
            owner: self.clone(),
            key: key.clone(),
            filled: false,
            ended,
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<HoldKey, Entry>> {
        // Nothing panics under this lock; a poisoned one is still valid.
        self.table
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl PartialEq for Owner {
    /// The same owner: one is a clone of the other.
    fn eq(&self, other: &Owner) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
    }
}

impl Eq for Owner {}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owner")
            .field("id", &Arc::as_ptr(&self.table))
            .field("holds", &self.hold_count())
            .finish()
    }
}

/// The end of an owner's acquire in flight (a semaphore without permits,
/// closed when it ends: lighter than a channel), for its other acquires of
/// the key to wait for.
#[derive(Clone)]
pub(crate) struct Ended(Arc<Semaphore>);

impl Ended {
    /// Completes once the acquire has ended (at once if it has).
    pub(crate) async fn wait(&self) {
        // Never a permit: only the close ends it.
        let _ = self.0.acquire().await;
    }
}

/// The owner's one acquire of a key in flight. Filled with the hold it
/// made, or dropped (failed, cancelled): then the entry goes, and the
/// owner's other acquires of the key, which waited for this one, try
/// again (one of them takes the slot).
pub(crate) struct Slot {
    owner: Owner,
    key: HoldKey,
    filled: bool,
    /// Closed after the entry changed: wakes the waiters.
    ended: Ended,
}

impl Slot {
    /// What the hold keeps to take its entry out when it ends.
    pub(crate) fn registration(&self) -> Registration {
        Registration {
            owner: self.owner.clone(),
            key: self.key.clone(),
        }
    }

    /// Records `hold` as the owner's hold of the key.
    pub(crate) fn fill(mut self, hold: Weak<dyn Any + Send + Sync>) {
        self.owner
            .entries()
            .insert(self.key.clone(), Entry::Held(hold));
        self.filled = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.filled {
            // While the slot lives, the entry is its own: nobody replaces
            // an acquire in flight.
            self.owner.entries().remove(&self.key);
        }
        self.ended.0.close();
    }
}

/// A hold's place in its owner's table; taken out when the hold ends.
pub(crate) struct Registration {
    owner: Owner,
    key: HoldKey,
}

impl Registration {
    pub(crate) fn owner(&self) -> &Owner {
        &self.owner
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self.owner.entries();
        // Only a dead hold's entry: a later hold of the key may have
        // replaced it already.
        if let hash_map::Entry::Occupied(found) = entries.entry(self.key.clone())
            && matches!(found.get(), Entry::Held(hold) if hold.strong_count() == 0)
        {
            found.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> HoldKey {
        HoldKey::new::<u8, _>(&Arc::new(()), &Arc::from(name))
    }

    fn table_len(owner: &Owner) -> usize {
        owner.entries().len()
    }

    #[tokio::test]
    async fn entries_live_as_long_as_their_acquire_or_hold() {
        let owner = Owner::new();
        let k = key("k");
        // An acquire in flight: the owner's others wait for it.
        let Found::Free(slot) = owner.find(&k) else {
            panic!("an empty table has the key free")
        };
        let Found::Acquiring(waiter) = owner.find(&k) else {
            panic!("one acquire of a key in flight at a time")
        };
        // Failed or cancelled: the entry goes, then the waiter wakes.
        drop(slot);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter.wait())
            .await
            .expect("woken");
        assert_eq!(table_len(&owner), 0);

        // A hold: found while it lives; its registration takes it out.
        let Found::Free(slot) = owner.find(&k) else {
            panic!("free again")
        };
        let hold: Arc<dyn Any + Send + Sync> = Arc::new(slot.registration());
        slot.fill(Arc::downgrade(&hold));
        assert_eq!(owner.hold_count(), 1);
        assert!(matches!(owner.find(&k), Found::Held(_)));
        drop(hold);
        assert_eq!(
            table_len(&owner),
            0,
            "the last reference took the entry out"
        );
        assert_eq!(owner.hold_count(), 0);

        // Other keys and other owners are apart.
        let Found::Free(_mine) = owner.find(&k) else {
            panic!()
        };
        assert!(matches!(owner.find(&key("other")), Found::Free(_)));
        assert!(matches!(Owner::new().find(&k), Found::Free(_)));
        assert!(owner != Owner::new() && owner == owner.clone());
    }

    #[tokio::test]
    async fn a_scope_is_the_polling_tasks_and_a_nested_scope_keeps_it() {
        assert_eq!(Owner::current(), None);
        let owner = Owner::new();
        let inner = owner
            .clone()
            .scoped(Owner::scope(async { Owner::current() }))
            .await;
        assert_eq!(inner.as_ref(), Some(&owner));
        let fresh = Owner::scope(async { Owner::current() }).await;
        assert!(fresh.is_some() && fresh != Some(owner));
        let spawned = Owner::new()
            .scoped(async { tokio::spawn(async { Owner::current() }).await.unwrap() })
            .await;
        assert_eq!(spawned, None, "a scope does not cross spawn");
    }
}
