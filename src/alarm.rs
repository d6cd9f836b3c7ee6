//! Alarms rung by a thread of their own, not by the runtime's timer: for
//! renewal, which must run while a task blocks a worker of the runtime.
//!
//! Why: in a multi-thread tokio runtime, timers fire only while some worker
//! parks on the runtime's driver. When the worker that had it is woken by
//! an answer from Redis and then blocks in a task (a `run()` body calling
//! blocking code), the other, idle workers may all be asleep on their own
//! condition variables, and nobody fires timers until the blocked worker
//! returns (tokio hands the driver over eagerly only with its unstable
//! `enable_eager_driver_handoff`). A waker woken from outside the runtime
//! goes through its injection queue, which wakes an idle worker: that
//! worker runs the task, and then parks on the driver itself.
//!
//! Invariants:
//! - One thread for the process, started by the first alarm; it sleeps
//!   while no alarm is set, and is never stopped.
//! - If the thread cannot be started, alarms are tokio's sleeps.
//! - A dropped alarm is removed at once: the thread keeps no waker of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The alarms that are set, by when they ring.
struct Alarms {
    set: Mutex<Set>,
    /// Told when an alarm is set earlier than every other.
    earlier: Condvar,
}

struct Set {
    waiting: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

static ALARMS: Alarms = Alarms {
    set: Mutex::new(Set {
        waiting: BTreeMap::new(),
        next_id: 0,
    }),
    earlier: Condvar::new(),
};

/// Whether the thread runs (started by the first call).
fn bell() -> bool {
    static STARTED: OnceLock<bool> = OnceLock::new();
    *STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("redis-mutex-alarms".into())
            .spawn(ring)
            .is_ok()
    })
}

impl Alarms {
    fn lock(&self) -> MutexGuard<'_, Set> {
        // Nothing panics while holding it; a poisoned set is still whole.
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The thread: wakes each alarm when it is due.
fn ring() {
    let mut set = ALARMS.lock();
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(entry) = set.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(set);
            due.into_iter().for_each(Waker::wake);
            set = ALARMS.lock();
            continue;
        }
        set = match set.waiting.first_key_value() {
            Some(((when, _), _)) => {
                let wait = when.saturating_duration_since(now);
                let (set, _) = ALARMS
                    .earlier
                    .wait_timeout(set, wait)
                    .unwrap_or_else(PoisonError::into_inner);
                set
            }
            None => ALARMS
                .earlier
                .wait(set)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// Completes `duration` (at most a year: longer is cut to it) from now; a
/// runtime's sleep without the thread.
pub(crate) fn sleep(duration: Duration) -> Alarm {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    let now = Instant::now();
    Alarm {
        when: now.checked_add(duration.min(YEAR)).unwrap_or(now),
        id: None,
        fallback: None,
    }
}

/// A future that completes at `when`.
pub(crate) struct Alarm {
    when: Instant,
    /// Set once the alarm is in the thread's set.
    id: Option<u64>,
    fallback: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for Alarm {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.when {
            this.remove();
            return Poll::Ready(());
        }
        if !bell() {
            let when = tokio::time::Instant::from_std(this.when);
            let sleep = this
                .fallback
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(when)));
            return sleep.as_mut().poll(cx);
        }
        let mut set = ALARMS.lock();
        let id = *this.id.get_or_insert_with(|| {
            set.next_id += 1;
            set.next_id
        });
        let first = set.waiting.first_key_value().map(|((when, _), _)| *when);
        // Insert or refresh: the thread may have rung and removed it between
        // the check above and here; set again, it rings at once.
        match set.waiting.get_mut(&(this.when, id)) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                set.waiting.insert((this.when, id), cx.waker().clone());
            }
        }
        if first.is_none_or(|first| this.when < first) {
            ALARMS.earlier.notify_one();
        }
        Poll::Pending
    }
}

impl Alarm {
    fn remove(&mut self) {
        if let Some(id) = self.id.take() {
            ALARMS.lock().waiting.remove(&(self.when, id));
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_alarm_rings_after_its_duration_and_a_dropped_one_is_forgotten() {
        let started = Instant::now();
        sleep(Duration::from_millis(30)).await;
        assert!(started.elapsed() >= Duration::from_millis(30));

        let mut dropped = Box::pin(sleep(Duration::from_secs(60)));
        assert!(futures_poll_once(dropped.as_mut()).is_pending());
        let id = dropped.id.expect("set");
        let when = dropped.when;
        drop(dropped);
        assert!(!ALARMS.lock().waiting.contains_key(&(when, id)));
    }

    /// An alarm rings on a current-thread runtime whose only thread is
    /// blocked when it is due: it is woken from outside, and runs as soon
    /// as the thread is free.
    #[test]
    fn an_alarm_is_rung_from_outside_the_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build() // no timer: only the alarm thread can wake it
            .unwrap();
        runtime.block_on(sleep(Duration::from_millis(20)));
    }

    fn futures_poll_once(future: Pin<&mut Alarm>) -> Poll<()> {
        let mut cx = Context::from_waker(Waker::noop());
        future.poll(&mut cx)
    }
}
