//! Runtime helpers: spawning where a tokio runtime is there, counting the
//! background releases until they finish, and running futures side by side
//! in one task.
//!
//! Invariants:
//! - Nothing here blocks or panics without a runtime: [`spawn_if_runtime`]
//!   says whether it spawned, and its callers say what happens otherwise
//!   (a key expires by its TTL; waiters poll).
//! - Every task of [`spawn_release`] is counted from its spawn until it
//!   finishes or is dropped (a runtime that shuts down drops its tasks,
//!   polled or not), so the count never leaks and [`flush_releases`] never
//!   waits for a task that is gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Spawns `task` on the current tokio runtime; `None` (and `task` dropped)
/// outside one.
pub(crate) fn spawn_if_runtime<F>(task: F) -> Option<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(task))
}

/// Background releases spawned and not yet finished or dropped, in the
/// whole process.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Told when [`PENDING`] falls to zero.
static SETTLED: Notify = Notify::const_new();

/// One count of [`PENDING`], given back when dropped.
struct Pending;

impl Pending {
    fn count() -> Pending {
        PENDING.fetch_add(1, Ordering::AcqRel);
        Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if PENDING.fetch_sub(1, Ordering::AcqRel) == 1 {
            SETTLED.notify_waiters();
        }
    }
}

/// Spawns a background release like [`spawn_if_runtime`], counted until
/// it finishes or is dropped (see [`flush_releases`]); `false` outside a
/// runtime.
pub(crate) fn spawn_release(task: impl Future<Output = ()> + Send + 'static) -> bool {
    let pending = Pending::count();
    spawn_if_runtime(async move {
        let _pending = pending;
        task.await;
    })
    .is_some()
}

/// Waits until the releases sent in the background have finished, at most
/// `max_wait`, and returns how many are still running then: `0` when all
/// were answered or given up (or none was pending: then it returns at once).
///
/// Call it as the last step before a program's runtime shuts down, after
/// the last guard has gone. A [`LockGuard`](crate::LockGuard) dropped
/// without [`release`](crate::LockGuard::release) (by an early `?`, a
/// panic caught up the stack, a task aborted), a cancelled
/// [`acquire`](crate::Lock::acquire) and a dropped [`run`](crate::Lock::run)
/// release their key in a background task of the runtime they were dropped
/// on. When that runtime shuts down (the end of a `#[tokio::main]`
/// function), its tasks are dropped where they are: a release not sent yet
/// never is, and the key lives on until its TTL. On a current-thread
/// runtime a guard dropped in `main`'s last statement is always left so; on
/// a multi-thread runtime it races the shutdown.
///
/// Like [`flush`] on a buffered writer, it makes sure what was handed over
/// in the background reaches the server before the program goes. It counts
/// the releases of the whole process (one per server of a Redlock),
/// whatever lock or runtime they belong to. A release is resent at most a
/// few times (about 1.5 s of pauses, plus each try's command timeout), so a
/// couple of seconds usually suffice; `max_wait` bounds the wait when a
/// server does not answer. Its timer does not need the runtime's: it works
/// on a runtime built without `enable_time`.
///
/// [`flush`]: https://docs.rs/tokio/1/tokio/io/trait.AsyncWriteExt.html#method.flush
///
/// ```no_run
/// # async fn work() -> redis_mutex::Result<()> { Ok(()) }
/// #[tokio::main]
/// async fn main() -> redis_mutex::Result<()> {
///     let result = work().await; // may drop a guard on an early return
///     let left = redis_mutex::flush_releases(std::time::Duration::from_secs(2)).await;
///     if left > 0 {
///         eprintln!("{left} lock releases unanswered: their keys expire by their TTL");
///     }
///     result
/// }
/// ```
pub async fn flush_releases(max_wait: Duration) -> usize {
    if PENDING.load(Ordering::Acquire) == 0 {
        return 0;
    }
    let timer = crate::alarm::sleep(max_wait);
    tokio::pin!(timer);
    loop {
        let settled = SETTLED.notified();
        tokio::pin!(settled);
        // Listening before looking: a fall to zero in between is not missed.
        settled.as_mut().enable();
        let pending = PENDING.load(Ordering::Acquire);
        if pending == 0 {
            return 0;
        }
        tokio::select! {
            () = &mut settled => {}
            () = &mut timer => return PENDING.load(Ordering::Acquire),
        }
    }
}

/// Polls all `futures` concurrently in the calling task until every one is
/// done, and returns their outputs in order. Dropping it drops them all.
/// (What `futures::future::join_all` does, without the dependency.)
pub(crate) async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    // No output counts, so no grace starts: every future runs to its end.
    join_enough(futures, |_| false, 1, Duration::ZERO)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Polls all `futures` concurrently like [`join_all`] until `decided` says
/// the outputs so far settle the question, or `timeout` has passed since
/// the call. Outputs in order; `None` for the futures still running then
/// (dropped), and `true` beside them when it was the timeout that ended it.
/// One alarm for all of them: they start together, so one deadline bounds
/// each as a timeout of its own would. An alarm of the crate's thread
/// (`alarm.rs`), not a tokio timer: a Redlock step almost always ends long
/// before its per-node timeout, and a tokio timer cost each cycle about 400
/// client instructions more (callgrind, `benches/cpu.rs` `lock5`). Like
/// every alarm it follows the real clock, not tokio's paused one.
pub(crate) async fn join_until<F: Future>(
    futures: impl IntoIterator<Item = F>,
    decided: impl Fn(&[Option<F::Output>]) -> bool,
    timeout: Duration,
) -> (Vec<Option<F::Output>>, bool) {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut timer = crate::alarm::sleep(timeout);
    let mut timed_out = false;
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if !pending || decided(&outputs) {
            return Poll::Ready(());
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(()) => {
                timed_out = true;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    (outputs, timed_out)
}

/// Polls all `futures` concurrently like [`join_all`], but once `enough` of
/// the outputs satisfy `counts`, waits at most `grace` more for the rest.
/// Outputs in order; `None` for the futures still running then (dropped).
pub(crate) async fn join_enough<F: Future>(
    futures: impl IntoIterator<Item = F>,
    counts: impl Fn(&F::Output) -> bool,
    enough: usize,
    grace: Duration,
) -> Vec<Option<F::Output>> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut grace_ends: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if !pending {
            return Poll::Ready(());
        }
        if grace_ends.is_none() && outputs.iter().flatten().filter(|o| counts(o)).count() >= enough
        {
            grace_ends = Some(Box::pin(tokio::time::sleep(grace)));
        }
        match grace_ends.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    })
    .await;
    outputs
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test]
    async fn join_all_runs_futures_concurrently_and_keeps_their_order() {
        let started = Instant::now();
        let outputs = join_all((0..5u64).rev().map(|i| async move {
            tokio::time::sleep(Duration::from_millis(20 * i)).await;
            i
        }))
        .await;
        assert_eq!(outputs, [4, 3, 2, 1, 0]);
        // Sequentially it would take 200 ms.
        assert!(started.elapsed() < Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn join_until_stops_once_decided_and_drops_the_rest() {
        let started = Instant::now();
        // Decided by three outputs; the fourth would take an hour.
        let (outputs, timed_out) = join_until(
            [10u64, 20, 30, 3_600_000].map(|ms| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ms
            }),
            |outputs| outputs.iter().flatten().count() >= 3,
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(outputs, [Some(10), Some(20), Some(30), None]);
        assert!(!timed_out);
        assert_eq!(started.elapsed(), Duration::from_millis(30));
    }

    /// On the real clock, which the deadline's alarm follows.
    #[tokio::test]
    async fn join_until_ends_at_its_deadline_for_every_future_left() {
        let started = Instant::now();
        let (outputs, timed_out) = join_until(
            [10u64, 3_600_000, 3_600_000].map(|ms| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ms
            }),
            |_| false,
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(outputs, [Some(10), None, None]);
        assert!(timed_out);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_millis(1_000), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn join_enough_gives_the_rest_a_grace_once_enough_are_done() {
        let started = Instant::now();
        // Three answer at once, one never: the grace (10 ms) ends the wait.
        let outputs = join_enough(
            [0u64, 0, 0, 3_600_000].map(|ms| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ms
            }),
            |_| true,
            3,
            Duration::from_millis(10),
        )
        .await;
        assert_eq!(outputs, [Some(0), Some(0), Some(0), None]);
        assert_eq!(started.elapsed(), Duration::from_millis(10));
        // Outputs that do not count start no grace: all are awaited.
        let outputs = join_enough(
            [5u64, 20].map(|ms| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ms
            }),
            |ms| *ms > 100,
            1,
            Duration::ZERO,
        )
        .await;
        assert_eq!(outputs, [Some(5), Some(20)]);
    }

    #[test]
    fn nothing_is_spawned_without_a_runtime() {
        assert!(spawn_if_runtime(async {}).is_none());
    }
}
