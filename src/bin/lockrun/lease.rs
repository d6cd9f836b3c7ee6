//! What lockrun takes on `--key`: the write of a read-write lock (exclusive,
//! the default: on the wire a plain lock, that also waits for `--shared`
//! holders), a read of it (`--shared`), one of N permits of a semaphore
//! (`--permits N`), a fair lock (`--fair`: served in the order lockruns
//! started waiting), or a plain lock (with `--fence`, or on a Redlock,
//! where read-write locks are not offered); and the hold it runs the
//! command under. One type each, so the rest of lockrun is written once for every
//! kind.

use std::time::Duration;

use redis_mutex::{
    FairGuard, FairLock, Lock, LockGuard, Locks, Permit, ReadGuard, RwLock, Semaphore, WriteGuard,
};

use crate::cli::Args;

/// The lease lockrun waits for. `inspect` is a plain lock on the same key,
/// for the waiting line and `--status` (what holds the key).
pub enum Wanted {
    Lock(Lock),
    Write { rw: RwLock, inspect: Lock },
    Read { rw: RwLock, inspect: Lock },
    Permit(Semaphore),
    Fair { fair: FairLock, inspect: Lock },
}

/// The lease the command runs under.
#[derive(Debug)]
pub enum Held {
    Lock(LockGuard),
    Write(WriteGuard),
    Read(ReadGuard),
    Permit(Permit),
    Fair(FairGuard),
}

impl Wanted {
    /// What `args` ask for on `key`.
    pub fn of(locks: &Locks, key: &str, args: &Args) -> redis_mutex::Result<Wanted> {
        let redlock = args.urls.len() > 1 && !args.cluster;
        Ok(match args.permits {
            Some(permits) => Wanted::Permit(locks.semaphore(key, permits)?),
            None if args.fair => Wanted::Fair {
                fair: locks.fair_lock(key)?,
                inspect: locks.lock(key)?,
            },
            None if args.shared => Wanted::Read {
                rw: locks.rwlock(key)?,
                inspect: locks.lock(key)?,
            },
            None if args.fence || redlock => Wanted::Lock(locks.lock(key)?),
            // A key with '}' outside a hash tag has no readers' set (and so
            // no --shared holders): a plain lock then.
            None => match locks.rwlock(key) {
                Ok(rw) => Wanted::Write {
                    rw,
                    inspect: locks.lock(key)?,
                },
                Err(_) => Wanted::Lock(locks.lock(key)?),
            },
        })
    }

    /// The plain lock on the key, when what is wanted has one.
    pub fn lock(&self) -> Option<&Lock> {
        match self {
            Wanted::Lock(lock)
            | Wanted::Write { inspect: lock, .. }
            | Wanted::Read { inspect: lock, .. }
            | Wanted::Fair { inspect: lock, .. } => Some(lock),
            Wanted::Permit(_) => None,
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Wanted::Lock(lock) => lock.key(),
            Wanted::Write { rw, .. } | Wanted::Read { rw, .. } => rw.key(),
            Wanted::Permit(semaphore) => semaphore.key(),
            Wanted::Fair { fair, .. } => fair.key(),
        }
    }

    pub async fn acquire_timeout(&self, max_wait: Duration) -> redis_mutex::Result<Held> {
        Ok(match self {
            Wanted::Lock(lock) => Held::Lock(lock.acquire_timeout(max_wait).await?),
            Wanted::Write { rw, .. } => Held::Write(rw.write_timeout(max_wait).await?),
            Wanted::Read { rw, .. } => Held::Read(rw.read_timeout(max_wait).await?),
            Wanted::Permit(semaphore) => Held::Permit(semaphore.acquire_timeout(max_wait).await?),
            Wanted::Fair { fair, .. } => Held::Fair(fair.acquire_timeout(max_wait).await?),
        })
    }

    /// Who holds it, for the waiting line: the holder's lease (and the
    /// readers, for a read-write lock; the line, for a fair lock), or how
    /// many permits are taken.
    pub async fn holder(&self) -> redis_mutex::Result<String> {
        Ok(match self {
            Wanted::Lock(lock) => describe_holder(lock).await?,
            Wanted::Write { rw, inspect } | Wanted::Read { rw, inspect } => {
                match rw.readers().await? {
                    0 => describe_holder(inspect).await?,
                    n => format!("{n} shared holders"),
                }
            }
            Wanted::Permit(semaphore) => format!(
                "{} of {} permits taken",
                semaphore.in_use().await?,
                semaphore.permits()
            ),
            Wanted::Fair { fair, inspect } => format!(
                "{}, {} in line",
                describe_holder(inspect).await?,
                fair.waiting().await?
            ),
        })
    }
}

async fn describe_holder(lock: &Lock) -> redis_mutex::Result<String> {
    Ok(match lock.holder().await? {
        None => "free now, acquiring".to_owned(),
        Some(holder) => match holder.expires_in {
            Some(left) => format!("the holder's lease has {left:.1?} left"),
            None => "held with no expiry".to_owned(),
        },
    })
}

impl Held {
    pub fn key(&self) -> &str {
        match self {
            Held::Lock(guard) => guard.key(),
            Held::Write(guard) => guard.key(),
            Held::Read(guard) => guard.key(),
            Held::Permit(permit) => permit.key(),
            Held::Fair(guard) => guard.key(),
        }
    }

    /// The fencing token, for a fenced lock.
    pub fn fence(&self) -> Option<u64> {
        match self {
            Held::Lock(guard) => guard.fence(),
            Held::Write(_) | Held::Read(_) | Held::Permit(_) | Held::Fair(_) => None,
        }
    }

    pub fn is_lost(&self) -> bool {
        match self {
            Held::Lock(guard) => guard.is_lost(),
            Held::Write(guard) => guard.is_lost(),
            Held::Read(guard) => guard.is_lost(),
            Held::Permit(permit) => permit.is_lost(),
            Held::Fair(guard) => guard.is_lost(),
        }
    }

    pub async fn lost(&self) {
        match self {
            Held::Lock(guard) => guard.lost().await,
            Held::Write(guard) => guard.lost().await,
            Held::Read(guard) => guard.lost().await,
            Held::Permit(permit) => permit.lost().await,
            Held::Fair(guard) => guard.lost().await,
        }
    }

    /// What a child lockrun needs to re-enter this hold: only an exclusive
    /// one, whose key holds our token as a plain lock's does.
    pub fn handoff(&self) -> Option<redis_mutex::Handoff> {
        match self {
            Held::Lock(guard) => Some(guard.handoff()),
            Held::Write(guard) => Some(guard.handoff()),
            Held::Fair(guard) => Some(guard.handoff()),
            Held::Read(_) | Held::Permit(_) => None,
        }
    }

    pub async fn release(self) -> redis_mutex::Result<()> {
        match self {
            Held::Lock(guard) => guard.release().await,
            Held::Write(guard) => guard.release().await,
            Held::Read(guard) => guard.release().await,
            Held::Permit(permit) => permit.release().await,
            Held::Fair(guard) => guard.release().await,
        }
    }
}
