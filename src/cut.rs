//! The cut: a future ended at a deadline by an alarm (`alarm.rs`: rung by
//! the crate's thread, a slot in a table rather than an entry in tokio's
//! timer wheel), for the attempts of an acquire, which almost always end
//! long before it.
//!
//! Invariants:
//! - A [`Cut`] ends with [`Elapsed`] only once its alarm rang, so never
//!   before its cutoff; it ends with the inner future's output whenever that
//!   is ready first, the inner future being polled before the alarm.
//! - Once the inner future is ready, the alarm is disarmed at once: no slot
//!   or waker of it outlives the attempt.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::alarm::{self, Alarm};

/// The cut fired: the cutoff passed before the future was ready.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// `future`, ended with [`Elapsed`] unless ready by `cutoff`; never cut
/// without one. (One type for both, so that a caller awaits one future
/// where it may cut or not, and its code holds the inner future once.)
pub(crate) fn cut_at<F: Future>(cutoff: Option<tokio::time::Instant>, future: F) -> Cut<F> {
    Cut {
        future,
        alarm: cutoff.map(|cutoff| alarm::at(cutoff.into_std())),
    }
}

pin_project_lite::pin_project! {
    /// See [`cut_at`].
    #[must_use = "a future does nothing unless polled"]
    pub(crate) struct Cut<F> {
        #[pin]
        future: F,
        alarm: Option<Alarm>,
    }
}

impl<F: Future> Future for Cut<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            if let Some(alarm) = this.alarm {
                alarm.disarm();
            }
            return Poll::Ready(Ok(output));
        }
        match this.alarm {
            Some(alarm) => Pin::new(alarm).poll(cx).map(|()| Err(Elapsed)),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::{Duration, Instant};

    use super::*;

    fn after(duration: Duration) -> tokio::time::Instant {
        tokio::time::Instant::now() + duration
    }

    struct Counted;

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {}
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

    #[tokio::test]
    async fn a_future_that_never_ends_is_cut_at_its_cutoff_not_before() {
        let started = Instant::now();
        let cut = cut_at(
            Some(after(Duration::from_millis(100))),
            std::future::pending::<()>(),
        );
        assert_eq!(cut.await, Err(Elapsed));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
    }

    #[test]
    fn a_future_ready_first_is_not_cut_and_its_alarm_is_let_go_at_once() {
        let counted = Arc::new(Counted);
        let waker = Waker::from(counted.clone());
        let mut cx = Context::from_waker(&waker);
        let mut cut = pin!(cut_at(
            Some(after(Duration::from_secs(30))),
            ready_at_second_poll()
        ));
        assert!(cut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            Arc::strong_count(&counted),
            3,
            "the alarm's table holds a clone"
        );
        assert_eq!(cut.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(
            Arc::strong_count(&counted),
            2,
            "and then none, before the drop"
        );
    }

    #[test]
    fn without_a_cutoff_nothing_is_cut_and_no_alarm_is_set() {
        let counted = Arc::new(Counted);
        let waker = Waker::from(counted.clone());
        let mut cx = Context::from_waker(&waker);
        let mut cut = pin!(cut_at(None, ready_at_second_poll()));
        assert!(cut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(Arc::strong_count(&counted), 2, "no alarm holds the waker");
        assert_eq!(cut.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    }

    #[test]
    fn a_future_ready_at_once_never_sets_an_alarm() {
        let counted = Arc::new(Counted);
        let waker = Waker::from(counted.clone());
        let mut cut = pin!(cut_at(Some(after(Duration::from_secs(30))), async {}));
        let polled = cut.as_mut().poll(&mut Context::from_waker(&waker));
        assert_eq!(polled, Poll::Ready(Ok(())));
        assert_eq!(Arc::strong_count(&counted), 2);
    }
}
