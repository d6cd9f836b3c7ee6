//! Runtime helpers: spawning where a tokio runtime is there, and running
//! futures side by side in one task.
//!
//! Invariants:
//! - Nothing here blocks or panics without a runtime: [`spawn_if_runtime`]
//!   says whether it spawned, and its callers say what happens otherwise
//!   (a key expires by its TTL; waiters poll).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

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

/// Polls all `futures` concurrently in the calling task until every one is
/// done, and returns their outputs in order. Dropping it drops them all.
/// (What `futures::future::join_all` does, without the dependency.)
pub(crate) async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
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
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
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
