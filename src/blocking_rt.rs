//! The runtime of the blocking API (feature `blocking`): one small tokio
//! runtime of the crate's, made on first use and shared by every blocking
//! lock of the process, as `reqwest::blocking` does. A caller's thread
//! blocks on a future run there ([`block_on`]); the runtime's own worker
//! runs what must go on while callers work or sleep: connections, renewal,
//! wake-ups, background releases.
//!
//! Invariants:
//! - Nothing here blocks a thread inside a tokio runtime's context: there
//!   [`block_on`] refuses with [`Error::BlockingInRuntime`] before doing
//!   anything (tokio would panic, and the caller's runtime would stall).
//! - The runtime lives in a static and is never shut down, so a task
//!   spawned on it (renewal, a background release) runs for the life of the
//!   process; it is built once, and a failed build is tried again by the
//!   next call.
//! - Every connection of a blocking lock is opened here (the builders'
//!   futures run in [`block_on`]), so its driver task lives on this runtime.

use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::runtime::{Builder, EnterGuard, Handle, Runtime};

use crate::error::{Error, Result};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Held while the runtime is built, so that it is built once.
static BUILDING: Mutex<()> = Mutex::new(());

/// The runtime, built on first use: one worker thread, timers and I/O.
fn runtime() -> Result<&'static Runtime> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let _building = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("redis-mutex-blocking")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// Whether the calling thread is inside a tokio runtime's context (a
/// worker, a `block_on`, a `spawn_blocking` closure, an `enter()` guard):
/// tokio offers no finer test, so all of them count.
pub(crate) fn in_runtime() -> bool {
    Handle::try_current().is_ok()
}

/// Runs `future` on the crate's runtime, blocking the calling thread until
/// it is done; refuses inside a tokio runtime. `call` names the public call
/// in the error.
pub(crate) fn block_on<F: Future>(call: &'static str, future: F) -> Result<F::Output> {
    if in_runtime() {
        return Err(Error::BlockingInRuntime { call });
    }
    Ok(runtime()?.block_on(future))
}

/// [`block_on`] for a future that returns the crate's `Result`.
pub(crate) fn wait<T>(call: &'static str, future: impl Future<Output = Result<T>>) -> Result<T> {
    block_on(call, future)?
}

/// Enters the crate's runtime, for a call that spawns a task and returns
/// (starting renewal, dropping a guard in the background); works inside
/// another runtime too, since it does not block.
pub(crate) fn enter() -> Result<EnterGuard<'static>> {
    Ok(runtime()?.enter())
}
