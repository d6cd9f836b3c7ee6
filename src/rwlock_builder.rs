//! `RwLockBuilder`: one read-write lock's key and settings (a lock's), and
//! the ways to give it a server: one connection, a URL or client, or a
//! Redis Cluster. No Redlock: see [`RwLock`]'s docs.
//!
//! Invariants:
//! - Every finishing method checks the key and the settings exactly once
//!   (`RwLockBuilder::check`).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keys;
use crate::rw_lease::{ReadLease, WriteLease, rw_leases};
use crate::rwlock::RwLock;
use crate::settings::{Checked, Settings, lease_setters};
use crate::sources::single_server_sources;
use crate::topology::Topology;

impl RwLock {
    /// Starts building a read-write lock on `key`: set its options (a
    /// lock's, with the same defaults), then give it a server with a
    /// finishing method such as [`connect`](RwLockBuilder::connect).
    pub fn builder(key: impl Into<String>) -> RwLockBuilder {
        RwLockBuilder {
            key: key.into(),
            settings: Settings::default(),
        }
    }
}

/// Builds a [`RwLock`]. The settings are a lock's (TTL of each hold, wait
/// policy, renewal, timeouts); [`fencing`](RwLockBuilder::fencing) is
/// refused.
#[derive(Clone, Debug)]
#[must_use = "an RwLockBuilder does nothing until .build(), .connect() or .client() (or a _cluster form) is called"]
pub struct RwLockBuilder {
    key: String,
    settings: Settings,
}

impl RwLockBuilder {
    lease_setters!();

    single_server_sources!(RwLock);

    fn check(&self) -> Result<(Checked, (ReadLease, WriteLease))> {
        keys::check_key(&self.key)?;
        let kinds = rw_leases(&self.key)?;
        if self.settings.fencing {
            return Err(Error::invalid(
                "fencing",
                "a read-write lock does not issue fencing tokens (its readers are not ordered); fence with a Lock",
            ));
        }
        Ok((self.settings.clone().check()?, kinds))
    }

    fn finish(
        &self,
        checked: Checked,
        topology: Arc<Topology>,
        kinds: (ReadLease, WriteLease),
    ) -> RwLock {
        rwlock_of(&checked, topology, kinds)
    }
}

pub(crate) fn rwlock_of(
    checked: &Checked,
    topology: Arc<Topology>,
    (read, write): (ReadLease, WriteLease),
) -> RwLock {
    RwLock::from_engines(
        checked.engine(topology.clone(), read),
        checked.engine(topology, write),
    )
}
