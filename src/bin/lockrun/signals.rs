//! The signals lockrun handles, installed before anything else runs so that
//! none of them can kill lockrun while it holds the lock.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The signals that end lockrun's run: passed on to the command's group,
/// which is then stopped.
pub const TERMINATING: [libc::c_int; 4] =
    [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM];

/// Every signal lockrun takes over: [`TERMINATING`], then SIGUSR1 and
/// SIGUSR2 (only passed on).
pub const HANDLED: [libc::c_int; 6] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// lockrun's handlers; a signal that arrives is queued until [`recv`](Signals::recv).
#[derive(Debug)]
pub struct Signals {
    streams: Vec<(libc::c_int, Signal)>,
}

impl Signals {
    pub fn install() -> io::Result<Signals> {
        let streams = HANDLED
            .iter()
            .map(|&number| Ok((number, signal(SignalKind::from_raw(number))?)))
            .collect::<io::Result<_>>()?;
        Ok(Signals { streams })
    }

    /// The next signal lockrun got (each delivery once).
    pub async fn recv(&mut self) -> libc::c_int {
        let waits = self.streams.iter_mut().map(|(number, stream)| {
            let number = *number;
            Box::pin(async move {
                stream.recv().await;
                number
            })
        });
        futures_select_all(waits).await
    }
}

/// The first of `futures` to finish.
async fn futures_select_all<F: Future<Output = libc::c_int> + Unpin>(
    futures: impl Iterator<Item = F>,
) -> libc::c_int {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(|cx| {
        for future in &mut futures {
            if let std::task::Poll::Ready(number) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready(number);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// SIGCHLD: a child process may have changed state.
pub fn child_exits() -> io::Result<Signal> {
    signal(SignalKind::child())
}

/// The signal's name, for messages.
pub fn name(number: libc::c_int) -> String {
    match number {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        libc::SIGKILL => "SIGKILL".into(),
        other => format!("signal {other}"),
    }
}
