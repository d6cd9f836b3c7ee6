//! Acquire a lock, work, release it, and see what "busy" looks like.
//!
//! ```sh
//! cargo run --example quickstart                          # starts a throwaway redis-server
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example quickstart
//! ```

use std::time::Duration;

use redis_mutex::{Locks, WaitPolicy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Use REDIS_URL, or start a private redis-server that lives as long as `_server`.
    let (url, _server) = throwaway::url_or_start()?;
    println!("using {url}");
    let result = quickstart(&url).await;
    // A guard dropped on the way out (by an early `?`) is released by a
    // background task: let it finish before the runtime shuts down.
    redis_mutex::flush_releases(Duration::from_secs(2)).await;
    result
}

async fn quickstart(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Once per process: one connection and one wake-up subscription,
    // shared by every lock it hands out.
    let locks = Locks::builder()
        .ttl(Duration::from_secs(10))
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .connect(url)
        .await?;

    // A lock for any key, where it is needed: no I/O.
    let lock = locks.lock("quickstart:nightly-report")?;
    let guard = lock.acquire().await?;
    println!(
        "acquired {:?}; the lease is good for {:?}",
        guard.key(),
        guard.remaining()
    );

    // Another worker (here: another Lock on the same key) finds it busy.
    let impatient = locks
        .lock("quickstart:nightly-report")?
        .with_wait(WaitPolicy::timeout(Duration::from_millis(300)))?;
    match impatient.acquire().await {
        Err(e) if e.is_busy() => println!("a second worker gives up: {e}"),
        Err(e) => return Err(e.into()),
        Ok(_) => unreachable!("two holders at once"),
    }
    assert!(
        impatient.try_acquire().await?.is_none(),
        "try_acquire sees it held too"
    );

    // The work. Longer work would extend the lease before it runs out.
    tokio::time::sleep(Duration::from_millis(100)).await;
    guard.extend(Duration::from_secs(10)).await?;
    println!(
        "extended; still ours on the server: {}",
        guard.is_held().await?
    );

    // Release tells us whether the lock was still ours.
    guard.release().await?;
    println!("released");

    let second = impatient.acquire().await?;
    println!("the second worker now holds it");
    second.release().await?;
    Ok(())
}

/// A private redis-server for when `REDIS_URL` is unset (see the file).
#[path = "support/throwaway.rs"]
mod throwaway;
