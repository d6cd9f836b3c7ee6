//! Polling a future in a function of its own, not inlined into its
//! caller's poll: for the rare branches of a hot async function (the wait
//! of a contended acquire, the replica check), whose code would otherwise
//! sit among the instructions of the uncontended path and spread them over
//! more of the instruction cache.
//!
//! Invariant: nothing but where the code lies changes; the future is
//! polled exactly as it would be by `.await`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// `future`, polled out of line.
    #[must_use = "a future does nothing unless polled"]
    pub(crate) struct OutOfLine<F> {
        #[pin]
        future: F,
    }
}

/// `future`, polled out of line (see the module docs).
pub(crate) fn out_of_line<F: Future>(future: F) -> OutOfLine<F> {
    OutOfLine { future }
}

impl<F: Future> Future for OutOfLine<F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}
