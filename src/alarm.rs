//! Alarms rung by a thread of their own, not by the runtime's timer: for
//! renewal, which must run while a task blocks a worker of the runtime, and
//! for the acquire's cut (`cut.rs`), which almost never rings.
//!
//! Why a thread for renewal: in a multi-thread tokio runtime, timers fire
//! only while some worker parks on the runtime's driver. When the worker
//! that had it is woken by an answer from Redis and then blocks in a task
//! (a `run()` body calling blocking code), the other, idle workers may all
//! be asleep on their own condition variables, and nobody fires timers
//! until the blocked worker returns (tokio hands the driver over eagerly
//! only with its unstable `enable_eager_driver_handoff`). A waker woken
//! from outside the runtime goes through its injection queue, which wakes
//! an idle worker: that worker runs the task, and then parks on the driver
//! itself.
//!
//! Why for the cut: every acquire on one node is bounded by one, and
//! almost every one ends long before it rings (one command floor, 500 ms
//! unless set, away). A tokio timer costs each of them an entry in the
//! runtime's timer wheel, inserted under the wheel's lock and removed under
//! it again: about 770 client instructions and a hundred instruction-cache
//! misses per acquire with 32 tasks (cachegrind, `benches/cpu.rs`), 4% of an
//! uncontended acquire and release. An alarm costs a slot in a table under
//! an uncontended mutex, taken at its first poll and given back when it
//! ends.
//!
//! Invariants:
//! - One thread for the process, started by the first alarm; it sleeps
//!   without a timeout while no alarm is set, and is never stopped.
//! - Without that thread (it could not be started, or this is a forked
//!   child, which has no copy of it), alarms are tokio's sleeps.
//! - An alarm rings only once the clock (std's monotonic `Instant`) has
//!   passed its time: the thread marks its entry rung and wakes the waker
//!   of its latest poll.
//! - An entry is in the table exactly while its alarm is set: from its
//!   first poll until it rings or is dropped (or disarmed). The thread
//!   keeps no waker of a dropped alarm.
//! - The thread's next look (`planned`) is never later than the earliest
//!   time in the table that has not rung: an alarm set earlier moves it and
//!   notifies the thread. So an alarm rings at most one wake-up latency of
//!   the thread after its time.
//! - Wakers are woken and dropped outside the table's lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::forks;

/// Completes `duration` (at most a year: longer is cut to it) from now.
pub(crate) fn sleep(duration: Duration) -> Alarm {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    let now = Instant::now();
    at(now.checked_add(duration.min(YEAR)).unwrap_or(now))
}

/// Completes at `when`.
pub(crate) fn at(when: Instant) -> Alarm {
    Alarm {
        when,
        state: State::Unset,
    }
}

/// A future that completes at its time. Fused: ready again if polled after.
#[must_use = "a future does nothing unless polled"]
pub(crate) struct Alarm {
    when: Instant,
    state: State,
}

enum State {
    /// Not polled yet, or disarmed.
    Unset,
    /// In the table at this index.
    Set(usize),
    /// No thread: a tokio timer (boxed: it is rare, and inline it would
    /// make every alarm as large).
    Fallback(Pin<Box<tokio::time::Sleep>>),
    /// Completed.
    Rung,
}

impl Future for Alarm {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match &mut this.state {
            State::Unset => match bell() {
                Some(table) => this.state = State::Set(table.set(this.when, cx.waker())),
                None => {
                    let mut sleep = Box::pin(tokio::time::sleep_until(this.when.into()));
                    if sleep.as_mut().poll(cx).is_ready() {
                        this.state = State::Rung;
                        return Poll::Ready(());
                    }
                    this.state = State::Fallback(sleep);
                }
            },
            State::Set(index) => {
                if ALARMS.refresh(*index, cx.waker()) {
                    this.state = State::Rung;
                    return Poll::Ready(());
                }
            }
            State::Fallback(sleep) => {
                if sleep.as_mut().poll(cx).is_ready() {
                    this.state = State::Rung;
                    return Poll::Ready(());
                }
            }
            State::Rung => return Poll::Ready(()),
        }
        Poll::Pending
    }
}

impl Alarm {
    /// Out of the table (and its waker let go) now, not at the drop; a
    /// later poll sets it again.
    pub(crate) fn disarm(&mut self) {
        if let State::Set(index) = std::mem::replace(&mut self.state, State::Unset) {
            ALARMS.remove(index);
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// The alarms that are set, and the thread's alarm clock.
struct Alarms {
    table: Mutex<Table>,
    /// Told when an alarm is set earlier than the thread's next look.
    earlier: Condvar,
}

struct Table {
    /// Entries by index; `None` for a free slot.
    entries: Vec<Option<Entry>>,
    /// The free slots' indices.
    free: Vec<usize>,
    /// When the thread looks next; `None`: only when told.
    planned: Option<Instant>,
}

struct Entry {
    when: Instant,
    waker: Waker,
    rung: bool,
}

static ALARMS: Alarms = Alarms {
    table: Mutex::new(Table {
        entries: Vec::new(),
        free: Vec::new(),
        planned: None,
    }),
    earlier: Condvar::new(),
};

/// The table, its thread started on first use; `None` when the thread
/// could not be started, or in a forked child.
fn bell() -> Option<&'static Alarms> {
    /// The fork count the thread was started at, if it was.
    static STARTED: OnceLock<Option<u64>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        let forks = forks::count();
        std::thread::Builder::new()
            .name("redis-mutex-alarms".to_owned())
            .spawn(|| ALARMS.ring())
            .ok()
            .map(|_| forks)
    });
    (*started == Some(forks::counted())).then_some(&ALARMS)
}

impl Alarms {
    fn table(&self) -> MutexGuard<'_, Table> {
        // Nothing panics while holding it; a poisoned table is still whole.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, when: Instant, waker: &Waker) -> usize {
        let mut table = self.table();
        let entry = Some(Entry {
            when,
            waker: waker.clone(),
            rung: false,
        });
        let index = match table.free.pop() {
            Some(index) => {
                table.entries[index] = entry;
                index
            }
            None => {
                table.entries.push(entry);
                table.entries.len() - 1
            }
        };
        let earlier = table.planned.is_none_or(|planned| when < planned);
        if earlier {
            table.planned = Some(when);
        }
        drop(table);
        if earlier {
            self.earlier.notify_one();
        }
        index
    }

    /// Whether the alarm at `index` rang (then its slot is freed); else its
    /// waker is now `waker`.
    fn refresh(&self, index: usize, waker: &Waker) -> bool {
        let mut table = self.table();
        let Some(entry) = table.entries[index].as_mut() else {
            return false;
        };
        if entry.rung {
            let rung = table.entries[index].take();
            table.free.push(index);
            drop(table);
            drop(rung);
            return true;
        }
        if entry.waker.will_wake(waker) {
            return false;
        }
        let old = std::mem::replace(&mut entry.waker, waker.clone());
        drop(table);
        drop(old);
        false
    }

    fn remove(&self, index: usize) {
        let mut table = self.table();
        let entry = table.entries[index].take();
        table.free.push(index);
        drop(table);
        drop(entry);
    }

    /// The thread: ring what is due, sleep until the earliest time left.
    fn ring(&self) -> ! {
        let mut due = Vec::new();
        let mut table = self.table();
        loop {
            let now = Instant::now();
            let mut earliest: Option<Instant> = None;
            for entry in table.entries.iter_mut().flatten() {
                if entry.rung {
                    continue;
                }
                if entry.when <= now {
                    entry.rung = true;
                    due.push(entry.waker.clone());
                } else if earliest.is_none_or(|earliest| entry.when < earliest) {
                    earliest = Some(entry.when);
                }
            }
            table.planned = earliest;
            if !due.is_empty() {
                drop(table);
                due.drain(..).for_each(Waker::wake);
                table = self.table();
                continue;
            }
            table = match earliest {
                None => self
                    .earlier
                    .wait(table)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    self.earlier
                        .wait_timeout(table, at.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    /// A waker whose clones can be counted: the table holds one while the
    /// alarm is set, and none after.
    struct Counted;

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {}
    }

    fn counted() -> (Arc<Counted>, Waker) {
        let counted = Arc::new(Counted);
        let waker = Waker::from(counted.clone());
        (counted, waker)
    }

    fn poll(alarm: &mut Alarm, waker: &Waker) -> Poll<()> {
        Pin::new(alarm).poll(&mut Context::from_waker(waker))
    }

    #[tokio::test]
    async fn an_alarm_rings_after_its_duration_not_before() {
        let started = Instant::now();
        sleep(Duration::from_millis(100)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
    }

    #[test]
    fn a_dropped_alarm_leaves_no_waker_in_the_table() {
        let (counted, waker) = counted();
        let mut alarm = sleep(Duration::from_secs(60));
        assert!(poll(&mut alarm, &waker).is_pending());
        assert_eq!(Arc::strong_count(&counted), 3, "the table holds a clone");
        drop(alarm);
        assert_eq!(Arc::strong_count(&counted), 2, "and then none");
    }

    #[test]
    fn a_disarmed_alarm_leaves_no_waker_in_the_table() {
        let (counted, waker) = counted();
        let mut alarm = sleep(Duration::from_secs(60));
        assert!(poll(&mut alarm, &waker).is_pending());
        alarm.disarm();
        assert_eq!(Arc::strong_count(&counted), 2);
    }

    #[test]
    fn the_table_holds_the_waker_of_the_latest_poll_only() {
        let (first, first_waker) = counted();
        let (second, second_waker) = counted();
        let mut alarm = sleep(Duration::from_secs(60));
        assert!(poll(&mut alarm, &first_waker).is_pending());
        assert!(poll(&mut alarm, &second_waker).is_pending());
        assert_eq!(Arc::strong_count(&first), 2, "the first waker is let go");
        assert_eq!(Arc::strong_count(&second), 3, "the second one is held");
    }

    #[test]
    fn a_rung_alarm_stays_ready_and_gives_its_slot_back() {
        let (counted, waker) = counted();
        let mut alarm = sleep(Duration::from_millis(10));
        assert!(poll(&mut alarm, &waker).is_pending());
        std::thread::sleep(Duration::from_millis(200));
        assert!(poll(&mut alarm, &waker).is_ready());
        assert_eq!(Arc::strong_count(&counted), 2);
        assert!(poll(&mut alarm, &waker).is_ready(), "fused");
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_earlier_alarm_wakes_a_thread_that_sleeps_until_a_later_one() {
        // A long alarm first, so that the thread sleeps until it; a short
        // one set after must still ring on time.
        let long = tokio::spawn(sleep(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        sleep(Duration::from_millis(50)).await;
        assert!(started.elapsed() < Duration::from_millis(500));
        long.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_alarms_ring_each_at_its_own_time() {
        let started = Instant::now();
        let alarms: Vec<_> = (0..200u64)
            .map(|i| {
                let after = Duration::from_millis(10 + i % 50);
                tokio::spawn(async move {
                    sleep(after).await;
                    (after, started.elapsed())
                })
            })
            .collect();
        for alarm in alarms {
            let (after, took) = alarm.await.unwrap();
            assert!(took >= after, "{took:?} < {after:?}");
        }
    }

    /// A forked child has no copy of the thread: its alarms must still
    /// ring (by a tokio timer), not wait forever.
    #[cfg(unix)]
    #[test]
    fn a_forked_child_s_alarms_still_ring() {
        assert!(bell().is_some(), "the parent's thread is started");
        // SAFETY: the child only builds a current-thread runtime, awaits
        // one alarm and exits without unwinding; `alarm(2)` kills it if
        // the alarm never rings.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            unsafe { libc::alarm(10) };
            let rang = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map(|runtime| runtime.block_on(sleep(Duration::from_millis(50))));
            unsafe { libc::_exit(if rang.is_ok() { 0 } else { 1 }) };
        }
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child's alarm rang (wait status {status})"
        );
    }
}
