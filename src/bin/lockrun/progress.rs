//! The line lockrun shows on stderr while it waits for a busy lock: what it
//! waits for and how long the holder's lease has left, redrawn in place
//! (carriage return) about every 250 ms and cleared when the wait ends. On a
//! terminal, or anywhere with `--verbose`; never on a plain pipe or file
//! otherwise, so cron stays quiet.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::time::Instant;

use crate::cli::Args;
use crate::lease::Wanted;
use crate::redact::scrub;

/// How often the line is redrawn.
const PERIOD: Duration = Duration::from_millis(250);

/// Whether this run shows the waiting line: with `--verbose`, or on a
/// terminal unless `--quiet`.
pub fn wanted(args: &Args) -> bool {
    args.verbose || (!args.quiet && std::io::stderr().is_terminal())
}

/// Runs `wait` (the acquisition), showing the waiting line for `lock`
/// while it runs when `show`; the line is gone when this returns or is
/// dropped.
pub async fn while_waiting<T>(show: bool, lock: &Wanted, wait: impl Future<Output = T>) -> T {
    if !show {
        return wait.await;
    }
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(started + PERIOD, PERIOD);
    let mut line = Line::default();
    let mut wait = std::pin::pin!(wait);
    loop {
        tokio::select! {
            done = &mut wait => return done,
            text = async {
                ticks.tick().await;
                describe(lock, started).await
            } => line.draw(&text),
        }
    }
}

/// `waiting for "KEY": ...; waited 2.0s`.
async fn describe(lock: &Wanted, started: Instant) -> String {
    let holder = match tokio::time::timeout(PERIOD, lock.holder()).await {
        Ok(Ok(holder)) => holder,
        Ok(Err(e)) => format!("Redis: {e}"),
        Err(_) => "Redis does not answer".to_owned(),
    };
    format!(
        "lockrun: waiting for {:?} ({holder}); waited {:.1?}",
        lock.key(),
        started.elapsed()
    )
}

#[derive(Default)]
struct Line {
    /// Characters drawn last, to blank the rest of a longer old line.
    width: usize,
}

impl Line {
    fn draw(&mut self, text: &str) {
        let text = scrub(text);
        let width = text.chars().count();
        let pad = self.width.saturating_sub(width);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{text}{:pad$}", "");
        let _ = stderr.flush();
        self.width = width;
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.width > 0 {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{:width$}\r", "", width = self.width);
            let _ = stderr.flush();
        }
    }
}
