//! Locks for many keys from one `Locks`: 16 tasks contend over 1,000 keys
//! for a few seconds, then it prints how many locks were taken and how many
//! connections the process opened to the server for them.
//!
//! ```sh
//! cargo run --example many_keys                          # starts a throwaway redis-server
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example many_keys
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_mutex::{Locks, WaitPolicy};

const KEYS: u64 = 1_000;
const TASKS: u64 = 16;
const RUN_FOR: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Use REDIS_URL, or start a private redis-server that lives as long as `_server`.
    let (url, _server) = throwaway::url_or_start()?;
    println!("using {url}");

    // A connection of our own to count the server's connections with.
    let client = redis::Client::open(url.as_str())?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let opened_before = connections_received(&mut admin).await?;

    // Built once per process: every lock below shares its connection and
    // its wake-up subscription.
    let locks = Locks::builder()
        .prefix("many-keys:")
        .ttl(Duration::from_secs(5))
        .wait(WaitPolicy::timeout(Duration::from_secs(5)))
        .client(&client)
        .await?;

    let taken = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (locks, taken) = (locks.clone(), taken.clone());
            tokio::spawn(async move {
                let mut key = task * 7919 % KEYS;
                while started.elapsed() < RUN_FOR {
                    // A lock per entity, made where it is needed: no I/O.
                    let lock = locks.lock(format!("order:{key}"))?;
                    let guard = lock.acquire().await?;
                    taken.fetch_add(1, Ordering::Relaxed);
                    guard.release().await?;
                    // Neighbouring tasks collide on some keys.
                    key = (key + 1 + task % 3) % KEYS;
                }
                Ok::<(), redis_mutex::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }

    let opened = connections_received(&mut admin).await? - opened_before;
    println!(
        "{} locks taken on {KEYS} keys by {TASKS} tasks in {:.1?}",
        taken.load(Ordering::Relaxed),
        started.elapsed()
    );
    println!(
        "server connections opened for them: {opened} (commands, and wake-ups if anyone waited)"
    );
    Ok(())
}

/// `total_connections_received` from the server's `INFO stats`.
async fn connections_received(
    connection: &mut redis::aio::MultiplexedConnection,
) -> Result<u64, Box<dyn std::error::Error>> {
    let stats: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(connection)
        .await?;
    let count = stats
        .lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .ok_or("INFO stats has no total_connections_received")?;
    Ok(count.trim().parse()?)
}

/// A private redis-server for when `REDIS_URL` is unset (see the file).
#[path = "support/throwaway.rs"]
mod throwaway;
