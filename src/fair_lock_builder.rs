//! `FairLockBuilder`: one fair lock's key, its waiters' TTL and its
//! settings (a lock's), and the ways to give it a server: one connection, a
//! URL or client, or a Redis Cluster. No Redlock: see [`FairLock`]'s docs.
//!
//! Invariants:
//! - Every finishing method checks the key and the settings exactly once
//!   (`FairLockBuilder::check`).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fair_lease::{DEFAULT_WAITER_TTL, FairLease};
use crate::fair_lock::FairLock;
use crate::keys;
use crate::settings::{Checked, Settings, lease_setters};
use crate::sources::single_server_sources;
use crate::topology::Topology;

impl FairLock {
    /// Starts building a fair lock on `key`: set its options (a lock's,
    /// with the same defaults, and [`waiter_ttl`](FairLockBuilder::waiter_ttl)),
    /// then give it a server with a finishing method such as
    /// [`connect`](FairLockBuilder::connect).
    pub fn builder(key: impl Into<String>) -> FairLockBuilder {
        FairLockBuilder {
            key: key.into(),
            settings: Settings::default(),
            waiter_ttl: DEFAULT_WAITER_TTL,
        }
    }
}

/// Builds a [`FairLock`]. The settings are a lock's (TTL, wait policy,
/// renewal, timeouts, replicas); [`fencing`](FairLockBuilder::fencing) is
/// refused.
#[derive(Clone, Debug)]
#[must_use = "a FairLockBuilder does nothing until .build(), .connect() or .client() (or a _cluster form) is called"]
pub struct FairLockBuilder {
    key: String,
    settings: Settings,
    waiter_ttl: Duration,
}

impl FairLockBuilder {
    lease_setters!();

    /// Sets how long a waiter's place in line outlives the waiter: what a
    /// waiter that crashed (or lost its connection) costs each waiter
    /// behind it at most. A waiter renews its place with an attempt every
    /// third of it while it waits, so a shorter one costs more commands.
    /// Rounded down to whole milliseconds; checked when the lock is built:
    /// between [`MIN_WAITER_TTL`](crate::MIN_WAITER_TTL) and
    /// [`MAX_WAITER_TTL`](crate::MAX_WAITER_TTL).
    ///
    /// Defaults to [`DEFAULT_WAITER_TTL`](crate::DEFAULT_WAITER_TTL) (3 s).
    pub fn waiter_ttl(mut self, waiter_ttl: Duration) -> Self {
        self.waiter_ttl = waiter_ttl;
        self
    }

    single_server_sources!(FairLock);

    fn check(&self) -> Result<(Checked, FairLease)> {
        keys::check_key(&self.key)?;
        let kind = FairLease::new(&self.key, self.waiter_ttl)?;
        if self.settings.fencing {
            return Err(Error::invalid(
                "fencing",
                "a fair lock does not issue fencing tokens (not built); fence with a Lock",
            ));
        }
        Ok((self.settings.clone().check()?, kind))
    }

    fn finish(&self, checked: Checked, topology: Arc<Topology>, kind: FairLease) -> FairLock {
        fair_lock_of(&checked, topology, kind)
    }
}

pub(crate) fn fair_lock_of(
    checked: &Checked,
    topology: Arc<Topology>,
    kind: FairLease,
) -> FairLock {
    FairLock::from_engine(checked.engine(topology, kind))
}
