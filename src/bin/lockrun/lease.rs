//! What lockrun takes: the lock on `--key` (exclusive, the default) or, with
//! `--permits N`, one of N permits of a semaphore on it; and the hold it
//! runs the command under. One type each, so the rest of lockrun is written
//! once for every kind.

use std::time::Duration;

use redis_mutex::{Lock, LockGuard, Locks, Permit, Semaphore};

/// The lease lockrun waits for.
pub enum Wanted {
    Lock(Lock),
    Permit(Semaphore),
}

/// The lease the command runs under.
pub enum Held {
    Lock(LockGuard),
    Permit(Permit),
}

impl Wanted {
    /// The lock, or with `permits` the semaphore, on `key`.
    pub fn of(locks: &Locks, key: &str, permits: Option<u32>) -> redis_mutex::Result<Wanted> {
        Ok(match permits {
            None => Wanted::Lock(locks.lock(key)?),
            Some(permits) => Wanted::Permit(locks.semaphore(key, permits)?),
        })
    }

    pub fn key(&self) -> &str {
        match self {
            Wanted::Lock(lock) => lock.key(),
            Wanted::Permit(semaphore) => semaphore.key(),
        }
    }

    pub async fn acquire_timeout(&self, max_wait: Duration) -> redis_mutex::Result<Held> {
        Ok(match self {
            Wanted::Lock(lock) => Held::Lock(lock.acquire_timeout(max_wait).await?),
            Wanted::Permit(semaphore) => Held::Permit(semaphore.acquire_timeout(max_wait).await?),
        })
    }

    /// Who holds it, for the waiting line: the holder's lease, or how many
    /// permits are taken.
    pub async fn holder(&self) -> redis_mutex::Result<String> {
        Ok(match self {
            Wanted::Lock(lock) => match lock.holder().await? {
                None => "free now, acquiring".to_owned(),
                Some(holder) => match holder.expires_in {
                    Some(left) => format!("the holder's lease has {left:.1?} left"),
                    None => "held with no expiry".to_owned(),
                },
            },
            Wanted::Permit(semaphore) => format!(
                "{} of {} permits taken",
                semaphore.in_use().await?,
                semaphore.permits()
            ),
        })
    }
}

impl Held {
    pub fn key(&self) -> &str {
        match self {
            Held::Lock(guard) => guard.key(),
            Held::Permit(permit) => permit.key(),
        }
    }

    /// The fencing token, for a fenced lock.
    pub fn fence(&self) -> Option<u64> {
        match self {
            Held::Lock(guard) => guard.fence(),
            Held::Permit(_) => None,
        }
    }

    pub fn is_lost(&self) -> bool {
        match self {
            Held::Lock(guard) => guard.is_lost(),
            Held::Permit(permit) => permit.is_lost(),
        }
    }

    pub async fn lost(&self) {
        match self {
            Held::Lock(guard) => guard.lost().await,
            Held::Permit(permit) => permit.lost().await,
        }
    }

    pub async fn release(self) -> redis_mutex::Result<()> {
        match self {
            Held::Lock(guard) => guard.release().await,
            Held::Permit(permit) => permit.release().await,
        }
    }
}
