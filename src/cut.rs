//! The cut: a future ended at a deadline by one watchdog thread for the
//! whole process, instead of a tokio timer for each future.
//!
//! Every acquire on one node is bounded this way (`acquire.rs`), and almost
//! every one ends long before its cutoff (one command floor, 500 ms unless
//! set, away). A tokio timer costs each of them an entry in the runtime's
//! timer wheel, inserted under the wheel's lock and removed under it again:
//! about 770 client instructions and a hundred instruction-cache misses per
//! acquire with 32 tasks (cachegrind, `benches/cpu.rs`), 4% of an
//! uncontended acquire and release. Here a future that waits registers its
//! cutoff and waker in a table under an uncontended mutex and removes them
//! when it ends; the watchdog sleeps on a condition variable until the
//! earliest cutoff it knows of, wakes the futures whose cutoff passed, and
//! sleeps without a timeout while the table is empty. When the thread
//! cannot be started, and in a forked child (which has no copy of the
//! thread), a tokio timer does the same job.
//!
//! Invariants:
//! - A [`Cut`] ends with [`Elapsed`] only once the clock (std's monotonic
//!   `Instant`) has passed its cutoff, and then at its next poll: the
//!   watchdog marks its entry fired and wakes it. It ends with the inner
//!   future's output whenever that is ready first, fired or not.
//! - An entry is in the table exactly while its `Cut` waits: added at the
//!   first `Pending`, removed when the `Cut` is ready or dropped; its waker
//!   is the one of the `Cut`'s latest poll.
//! - The watchdog's next look (`planned`) is never later than the earliest
//!   cutoff in the table that has not fired: an entry with an earlier one
//!   moves it and notifies the thread. So a cut fires at most one wake-up
//!   latency of the thread after its cutoff.
//! - Wakers are woken outside the table's lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::forks;

/// The cut fired: the deadline passed before the future was ready.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// `future`, ended with [`Elapsed`] unless ready by `cutoff`.
pub(crate) fn cut_at<F: Future>(cutoff: tokio::time::Instant, future: F) -> Cut<F> {
    Cut {
        future,
        cutoff: cutoff.into_std(),
        state: State::Unregistered,
    }
}

pin_project_lite::pin_project! {
    /// See [`cut_at`].
    #[must_use = "a future does nothing unless polled"]
    pub(crate) struct Cut<F> {
        #[pin]
        future: F,
        cutoff: Instant,
        state: State,
    }

    impl<F> PinnedDrop for Cut<F> {
        fn drop(this: Pin<&mut Self>) {
            this.project().state.deregister();
        }
    }
}

enum State {
    /// Not polled to `Pending` yet, or ended.
    Unregistered,
    /// In the watchdog's table at this index.
    Registered(usize),
    /// No watchdog thread: a tokio timer (boxed: it is rare, and inline
    /// it would make every cut as large).
    Timer(Pin<Box<tokio::time::Sleep>>),
}

impl State {
    /// Out of the table, if in it.
    fn deregister(&mut self) {
        if let State::Registered(index) = std::mem::replace(self, State::Unregistered) {
            WATCHDOG.remove(index);
        }
    }
}

impl<F: Future> Future for Cut<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            this.state.deregister();
            return Poll::Ready(Ok(output));
        }
        match this.state {
            State::Unregistered => match watchdog() {
                Some(watchdog) => {
                    *this.state = State::Registered(watchdog.register(*this.cutoff, cx.waker()));
                }
                None => {
                    let mut timer = Box::pin(tokio::time::sleep_until((*this.cutoff).into()));
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(Elapsed));
                    }
                    *this.state = State::Timer(timer);
                }
            },
            State::Registered(index) => {
                if WATCHDOG.refresh(*index, cx.waker()) {
                    *this.state = State::Unregistered;
                    return Poll::Ready(Err(Elapsed));
                }
            }
            State::Timer(timer) => {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(Elapsed));
                }
            }
        }
        Poll::Pending
    }
}

/// The table of waiting cuts, and the thread's alarm clock.
struct Watchdog {
    table: Mutex<Table>,
    alarm: Condvar,
}

struct Table {
    /// Entries by index; `None` for a free slot.
    entries: Vec<Option<Entry>>,
    /// The free slots' indices.
    free: Vec<usize>,
    /// When the thread looks next; `None`: only when notified.
    planned: Option<Instant>,
}

struct Entry {
    cutoff: Instant,
    waker: Waker,
    fired: bool,
}

static WATCHDOG: Watchdog = Watchdog {
    table: Mutex::new(Table {
        entries: Vec::new(),
        free: Vec::new(),
        planned: None,
    }),
    alarm: Condvar::new(),
};

/// The watchdog, its thread started on first use; `None` when the thread
/// could not be started, or in a forked child (threads do not survive a
/// fork; the child's cuts are tokio timers).
fn watchdog() -> Option<&'static Watchdog> {
    /// The fork count the thread was started at, if it was.
    static STARTED: OnceLock<Option<u64>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        let forks = forks::count();
        std::thread::Builder::new()
            .name("redis-mutex-cut".to_owned())
            .spawn(|| WATCHDOG.watch())
            .ok()
            .map(|_| forks)
    });
    (*started == Some(forks::counted())).then_some(&WATCHDOG)
}

impl Watchdog {
    fn table(&self) -> MutexGuard<'_, Table> {
        // Nothing panics while holding the lock; a poisoned table is as
        // consistent as it was.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, cutoff: Instant, waker: &Waker) -> usize {
        let mut table = self.table();
        let entry = Some(Entry {
            cutoff,
            waker: waker.clone(),
            fired: false,
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
        let sooner = table.planned.is_none_or(|planned| cutoff < planned);
        if sooner {
            table.planned = Some(cutoff);
        }
        drop(table);
        if sooner {
            self.alarm.notify_one();
        }
        index
    }

    /// Whether the entry at `index` fired (then removed); else its waker is
    /// now `waker`.
    fn refresh(&self, index: usize, waker: &Waker) -> bool {
        let mut table = self.table();
        let Some(entry) = table.entries[index].as_mut() else {
            return false;
        };
        if entry.fired {
            let entry = table.entries[index].take();
            table.free.push(index);
            drop(table);
            // A waker's drop may run arbitrary code: outside the lock.
            drop(entry);
            return true;
        }
        if !entry.waker.will_wake(waker) {
            let old = std::mem::replace(&mut entry.waker, waker.clone());
            drop(table);
            drop(old);
        }
        false
    }

    fn remove(&self, index: usize) {
        let mut table = self.table();
        let entry = table.entries[index].take();
        table.free.push(index);
        drop(table);
        // A waker's drop may run arbitrary code: outside the lock.
        drop(entry);
    }

    /// The thread: fire what is due, sleep until the earliest cutoff left.
    fn watch(&self) -> ! {
        let mut due = Vec::new();
        let mut table = self.table();
        loop {
            let now = Instant::now();
            let mut earliest: Option<Instant> = None;
            for entry in table.entries.iter_mut().flatten() {
                if entry.fired {
                    continue;
                }
                if entry.cutoff <= now {
                    entry.fired = true;
                    due.push(entry.waker.clone());
                } else if earliest.is_none_or(|earliest| entry.cutoff < earliest) {
                    earliest = Some(entry.cutoff);
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
                    .alarm
                    .wait(table)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    self.alarm
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
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    fn after(duration: Duration) -> tokio::time::Instant {
        tokio::time::Instant::now() + duration
    }

    /// A waker whose clones can be counted: the table holds one while the
    /// cut waits, and none after.
    struct Counted;

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {}
    }

    fn counted() -> (Arc<Counted>, Waker) {
        let counted = Arc::new(Counted);
        let waker = Waker::from(counted.clone());
        (counted, waker)
    }

    /// Pending at its first poll, ready at the next.
    fn ready_at_second_poll() -> impl Future<Output = ()> {
        let mut polled = false;
        std::future::poll_fn(move |_| {
            if std::mem::replace(&mut polled, true) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    #[test]
    fn a_cut_that_ends_ready_takes_its_entry_out_of_the_table() {
        let (counted, waker) = counted();
        let mut cx = Context::from_waker(&waker);
        let mut cut = pin!(cut_at(
            after(Duration::from_secs(30)),
            ready_at_second_poll()
        ));
        assert!(cut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(Arc::strong_count(&counted), 3, "the table holds a clone");
        assert_eq!(cut.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(Arc::strong_count(&counted), 2, "and then none");
    }

    #[test]
    fn a_dropped_cut_takes_its_entry_out_of_the_table() {
        let (counted, waker) = counted();
        let mut cx = Context::from_waker(&waker);
        let mut cut = Box::pin(cut_at(
            after(Duration::from_secs(30)),
            std::future::pending::<()>(),
        ));
        assert!(cut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(Arc::strong_count(&counted), 3);
        drop(cut);
        assert_eq!(Arc::strong_count(&counted), 2);
    }

    #[test]
    fn a_ready_future_never_enters_the_table() {
        let (counted, waker) = counted();
        let mut cx = Context::from_waker(&waker);
        let mut cut = pin!(cut_at(after(Duration::from_secs(30)), async {}));
        assert_eq!(cut.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(Arc::strong_count(&counted), 2);
    }

    #[test]
    fn the_table_holds_the_waker_of_the_latest_poll_only() {
        let (first, first_waker) = counted();
        let (second, second_waker) = counted();
        let mut cut = pin!(cut_at(
            after(Duration::from_secs(30)),
            std::future::pending::<()>(),
        ));
        assert!(
            cut.as_mut()
                .poll(&mut Context::from_waker(&first_waker))
                .is_pending()
        );
        assert!(
            cut.as_mut()
                .poll(&mut Context::from_waker(&second_waker))
                .is_pending()
        );
        assert_eq!(Arc::strong_count(&first), 2, "the first waker is let go");
        assert_eq!(Arc::strong_count(&second), 3, "the second one is held");
    }

    /// A forked child has no copy of the watchdog thread: its cuts must
    /// still fire (by a tokio timer), not wait forever.
    #[cfg(unix)]
    #[test]
    fn a_forked_child_still_cuts() {
        assert!(watchdog().is_some(), "the parent's thread is started");
        // SAFETY: the child only builds a current-thread runtime, awaits
        // one cut and exits without unwinding; `alarm` kills it if the cut
        // never fires.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            unsafe { libc::alarm(10) };
            let cut = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map(|runtime| {
                    runtime.block_on(cut_at(
                        after(Duration::from_millis(50)),
                        std::future::pending::<()>(),
                    ))
                });
            unsafe {
                libc::_exit(if matches!(cut, Ok(Err(Elapsed))) {
                    0
                } else {
                    1
                })
            };
        }
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child's cut fired (wait status {status})"
        );
    }

    #[tokio::test]
    async fn a_future_that_never_ends_is_cut_at_its_cutoff_not_before() {
        let started = Instant::now();
        let cut = cut_at(
            after(Duration::from_millis(100)),
            std::future::pending::<()>(),
        );
        assert_eq!(cut.await, Err(Elapsed));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sooner_cutoff_wakes_a_watchdog_that_sleeps_until_a_later_one() {
        // A long cut first, so that the thread sleeps until it; a short one
        // registered after must still fire on time.
        let long = tokio::spawn(cut_at(
            after(Duration::from_secs(30)),
            std::future::pending::<()>(),
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let short = cut_at(
            after(Duration::from_millis(50)),
            std::future::pending::<()>(),
        );
        assert_eq!(short.await, Err(Elapsed));
        assert!(started.elapsed() < Duration::from_millis(500));
        long.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_cuts_fire_each_at_its_own_cutoff() {
        let started = Instant::now();
        let cuts: Vec<_> = (0..200u64)
            .map(|i| {
                let cutoff = Duration::from_millis(10 + i % 50);
                tokio::spawn(async move {
                    let result = cut_at(after(cutoff), std::future::pending::<()>()).await;
                    (cutoff, result, started.elapsed())
                })
            })
            .collect();
        for cut in cuts {
            let (cutoff, result, took) = cut.await.unwrap();
            assert_eq!(result, Err(Elapsed));
            assert!(took >= cutoff, "{took:?} < {cutoff:?}");
        }
    }
}
