//! `SemaphoreBuilder`: one semaphore's key, number of permits and settings
//! (the same settings as a lock's), and the ways to give it a server: one
//! connection, a URL or client, or a Redis Cluster. No Redlock: see
//! [`Semaphore`]'s docs for why.
//!
//! Invariants:
//! - Every finishing method checks the key, the permits and the settings
//!   exactly once (`SemaphoreBuilder::check`).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keys;
use crate::permit_set::{PermitSet, check_permits};
use crate::semaphore::Semaphore;
use crate::settings::{Checked, Settings, lease_setters};
use crate::sources::single_server_sources;
use crate::topology::Topology;

impl Semaphore {
    /// Starts building a semaphore of `permits` permits on `key`: set its
    /// options (the same as a lock's, with the same defaults), then give it
    /// a server with a finishing method such as
    /// [`connect`](SemaphoreBuilder::connect).
    pub fn builder(key: impl Into<String>, permits: u32) -> SemaphoreBuilder {
        SemaphoreBuilder {
            key: key.into(),
            permits,
            settings: Settings::default(),
        }
    }
}

/// Builds a [`Semaphore`]. The settings are a lock's (TTL of each permit,
/// wait policy, renewal, timeouts); [`fencing`](SemaphoreBuilder::fencing)
/// is refused, since the holders of a semaphore are not ordered.
#[derive(Clone, Debug)]
#[must_use = "a SemaphoreBuilder does nothing until .build(), .connect() or .client() (or a _cluster form) is called"]
pub struct SemaphoreBuilder {
    key: String,
    permits: u32,
    settings: Settings,
}

impl SemaphoreBuilder {
    lease_setters!();

    single_server_sources!(Semaphore);

    fn check(&self) -> Result<(Checked, PermitSet)> {
        keys::check_key(&self.key)?;
        let permits = check_permits(self.permits)?;
        if self.settings.fencing {
            return Err(fencing_refused());
        }
        let kind = PermitSet::new(&self.key, permits);
        Ok((self.settings.clone().check()?, kind))
    }

    fn finish(&self, checked: Checked, topology: Arc<Topology>, kind: PermitSet) -> Semaphore {
        semaphore_of(&checked, topology, kind)
    }
}

pub(crate) fn semaphore_of(
    checked: &Checked,
    topology: Arc<Topology>,
    kind: PermitSet,
) -> Semaphore {
    Semaphore::from_engine(checked.engine(topology, kind))
}

fn fencing_refused() -> Error {
    Error::invalid(
        "fencing",
        "a semaphore's holders are not exclusive, so fence numbers would order nothing; fence with a Lock",
    )
}
