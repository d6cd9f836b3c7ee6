//! `lockrun --status`: who holds the lock, for how long, and the lock's
//! fence counter, without running anything.

use redis_mutex::{Lock, LockConnection};

use crate::cli::{Args, EX_TEMPFAIL};
use crate::lease::Wanted;
use crate::redact::say;

/// Prints who holds the lock and its fence counter; 0 when free, 75 when
/// held.
pub async fn status(args: &Args, wanted: &Wanted) -> redis_mutex::Result<u8> {
    if let Wanted::Permit(semaphore) = wanted {
        let (taken, permits) = (semaphore.in_use().await?, semaphore.permits());
        println!("{:?}: {taken} of {permits} permits taken", semaphore.key());
        return Ok(if taken < permits { 0 } else { EX_TEMPFAIL });
    }
    if let Wanted::Write { rw, .. } | Wanted::Read { rw, .. } = wanted {
        let readers = rw.readers().await?;
        if readers > 0 {
            println!(
                "{:?} is held by {readers} shared holders (--shared)",
                rw.key()
            );
            return Ok(EX_TEMPFAIL);
        }
    }
    if let Wanted::Fair { fair, .. } = wanted {
        println!(
            "{:?}: {} in line (--fair)",
            fair.key(),
            fair.waiting().await?
        );
    }
    let Some(lock) = wanted.lock() else {
        return Ok(0);
    };
    let key = lock.key();
    let code = match lock.holder().await? {
        None => {
            println!("{key:?} is free");
            0
        }
        Some(holder) => {
            let by = match holder.by_this_crate {
                true => "a redis-mutex lock (lockrun or the library)",
                false => "another library's lock (not a redis-mutex token)",
            };
            let expiry = match holder.expires_in {
                Some(left) => format!("expires in {left:.1?} unless renewed"),
                None => "has no expiry: it is never freed by itself".to_owned(),
            };
            println!("{key:?} is held by {by}; it {expiry}");
            EX_TEMPFAIL
        }
    };
    match fence_counter(args, key).await {
        Ok(None) => println!("fence counter: none (a key with '}}' outside a hash tag has none)"),
        Ok(Some((fence_key, Some(counter)))) => {
            println!("fence counter: {counter} ({fence_key:?})");
        }
        Ok(Some((fence_key, None))) => println!("fence counter: none ({fence_key:?} is not set)"),
        Err(e) => {
            println!("fence counter: unknown");
            say(format!("cannot read the fence counter: {e}"));
        }
    }
    Ok(code)
}

/// The lock's fence key and the value there, read with a plain `GET` from
/// the first `--url` (from the cluster, with `--cluster`); `None` for a key
/// that cannot have a fence key. The counter only grows, so on a Redlock
/// any node's value is a lower bound of the last token handed out.
async fn fence_counter(
    args: &Args,
    key: &str,
) -> redis::RedisResult<Option<(String, Option<String>)>> {
    if args.cluster {
        let client = redis::cluster::ClusterClient::new(args.urls.iter().map(String::as_str))?;
        return read(client.get_async_connection().await?, key).await;
    }
    let client = redis::Client::open(args.urls[0].as_str())?;
    read(client.get_multiplexed_async_connection().await?, key).await
}

async fn read<C: LockConnection>(
    mut connection: C,
    key: &str,
) -> redis::RedisResult<Option<(String, Option<String>)>> {
    // The library names the fence key (`{KEY}:fence`, or `KEY:fence` for
    // a key with a hash tag); building the lock sends nothing.
    let Ok(lock) = Lock::builder(key).fencing(true).build(connection.clone()) else {
        return Ok(None);
    };
    let Some(fence_key) = lock.fence_key() else {
        return Ok(None);
    };
    let counter = redis::cmd("GET")
        .arg(fence_key)
        .query_async(&mut connection)
        .await?;
    Ok(Some((fence_key.to_owned(), counter)))
}
