//! Fencing tokens: why a lease is not enough, and how the resource fixes it.
//!
//! Worker A takes the lock and then stalls (a GC pause, swapping, a long
//! `await`) for longer than its lease. The lock expires, worker B takes it
//! and writes the report. A wakes up and writes too, as if it still held the
//! lock: no check A could make before writing closes that gap. But A's fence
//! is older than B's, so the report (a `FencedResource`) rejects A's write.
//!
//! ```sh
//! cargo run --example fencing                          # starts a throwaway redis-server
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example fencing
//! ```

use std::time::Duration;

use redis_mutex::{FencedResource, FencedWrite, Lock, WaitPolicy};

const LOCK: &str = "fencing-example:lock";
const REPORT: &str = "fencing-example:report";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Use REDIS_URL, or start a private redis-server that lives as long as `_server`.
    let (url, _server) = throwaway::url_or_start()?;
    println!("using {url}");
    let result = fencing(&url).await;
    // A guard dropped on the way out (by an early `?`) is released by a
    // background task: let it finish before the runtime shuts down.
    redis_mutex::flush_releases(Duration::from_secs(2)).await;
    result
}

async fn fencing(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = redis::Client::open(url)?;
    let connection = client.get_connection_manager().await?;

    // Both workers lock the same key with fencing on, and write the same
    // fenced report. A's lease is short so that its pause outlives it.
    let lock_a = Lock::builder(LOCK)
        .ttl(Duration::from_millis(500))
        .fencing(true)
        .build(connection.clone())?;
    let lock_b = Lock::builder(LOCK)
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .fencing(true)
        .build(connection.clone())?;
    let report = FencedResource::new(REPORT, connection)?;

    let guard_a = lock_a.acquire().await?;
    let fence_a = guard_a.fence().ok_or("lock_a is fenced")?;
    println!(
        "A: acquired {LOCK:?} with fence {fence_a}; lease {:?}",
        guard_a.remaining()
    );

    // B waits for the lock meanwhile.
    let b_report = report.clone();
    let worker_b = tokio::spawn(async move {
        let guard_b = lock_b.acquire().await?;
        let fence_b = guard_b.fence().ok_or("lock_b is fenced")?;
        println!("B: acquired {LOCK:?} with fence {fence_b} (A's lease ran out)");
        let write = b_report.set(fence_b, "the report, by B").await?;
        println!("B: wrote the report with fence {fence_b}: {write:?}");
        guard_b.release().await?;
        println!("B: released");
        Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(fence_b)
    });

    // A stalls for longer than its lease, and does not know it.
    println!("A: pausing for 1 s (think: a stop-the-world GC)...");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fence_b = worker_b.await?.map_err(|e| e.to_string())?;

    // A wakes up and writes as if nothing happened.
    println!("A: woke up; writing the report with fence {fence_a}");
    match report.set(fence_a, "the report, by A (stale)").await? {
        FencedWrite::Rejected { last_fence } => {
            println!("A: write REJECTED: the report already took fence {last_fence} > {fence_a}")
        }
        FencedWrite::Accepted => return Err("a stale write was accepted".into()),
    }
    match guard_a.release().await {
        Err(e) if e.is_not_held() => println!("A: release says: {e}"),
        other => println!("A: release: {other:?}"),
    }

    let stored = report.get().await?.unwrap_or_default();
    println!(
        "the report is {:?}, written with fence {:?} (B's was {fence_b})",
        String::from_utf8_lossy(&stored),
        report.last_fence().await?
    );
    Ok(())
}

/// A private redis-server for when `REDIS_URL` is unset (see the file).
#[path = "support/throwaway.rs"]
mod throwaway;
