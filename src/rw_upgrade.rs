//! Which tasks of this process hold reads or the write of which read-write
//! locks, so that a task asking for the write of a lock it reads (an
//! upgrade: the deadlock of Redisson's issue 4796), or a read of a lock it
//! writes, is refused at once instead of waiting for itself.
//!
//! Invariants:
//! - A task is its tokio task id, or, outside any task (the future of a
//!   `block_on`, which never leaves its thread), its thread.
//! - A lock is its servers (the topology's address: every lock of one
//!   `Locks`, or of one handle and its clones, shares it) and its key.
//! - A hold registers when it is acquired, under the acquiring task, and
//!   unregisters when its guard ends, wherever that is.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::thread::ThreadId;

use crate::topology::Topology;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Task {
    Task(tokio::task::Id),
    Thread(ThreadId),
}

fn current_task() -> Task {
    match tokio::task::try_id() {
        Some(id) => Task::Task(id),
        None => Task::Thread(std::thread::current().id()),
    }
}

/// A read or a write hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    Read,
    Write,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Read => "read",
            Mode::Write => "write",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    servers: usize,
    key: Arc<str>,
    task: Task,
    mode: Mode,
}

static READS: LazyLock<Mutex<HashMap<Entry, u32>>> = LazyLock::new(Default::default);

fn reads() -> std::sync::MutexGuard<'static, HashMap<Entry, u32>> {
    READS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn entry(topology: &Arc<Topology>, key: &Arc<str>, mode: Mode) -> Entry {
    Entry {
        servers: Arc::as_ptr(topology) as usize,
        key: key.clone(),
        task: current_task(),
        mode,
    }
}

/// Whether the current task holds a `mode` hold of the lock on `key` over
/// `topology`.
pub(crate) fn holds_now(topology: &Arc<Topology>, key: &Arc<str>, mode: Mode) -> bool {
    reads().contains_key(&entry(topology, key, mode))
}

/// A hold of the current task, registered until dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    entry: Entry,
}

impl Registration {
    pub(crate) fn new(topology: &Arc<Topology>, key: &Arc<str>, mode: Mode) -> Registration {
        let entry = entry(topology, key, mode);
        *reads().entry(entry.clone()).or_insert(0) += 1;
        Registration { entry }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut reads = reads();
        if let Some(count) = reads.get_mut(&self.entry) {
            *count -= 1;
            if *count == 0 {
                reads.remove(&self.entry);
            }
        }
    }
}
