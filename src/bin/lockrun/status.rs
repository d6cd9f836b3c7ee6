//! `lockrun --status`: who holds the lock, for how long, and the lock's
//! fence counter, without running anything.

use redis_mutex::Lock;

use crate::cli::{Args, EX_TEMPFAIL};
use crate::redact::say;

/// Prints who holds the lock and its fence counter; 0 when free, 75 when
/// held. `lock` is built with fencing, so that it names its fence key.
pub async fn status(args: &Args, lock: &Lock) -> redis_mutex::Result<u8> {
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
    match lock.fence_key() {
        None => println!("fence counter: none (this key cannot have one)"),
        Some(fence_key) => match fence_counter(args, fence_key).await {
            Ok(Some(counter)) => println!("fence counter: {counter} ({fence_key:?})"),
            Ok(None) => println!("fence counter: none ({fence_key:?} is not set)"),
            Err(e) => {
                println!("fence counter: unknown");
                say(format!("cannot read the fence counter {fence_key:?}: {e}"));
            }
        },
    }
    Ok(code)
}

/// The value at `fence_key`, read with a plain `GET` from the first
/// `--url` (from the cluster, with `--cluster`). The counter is only
/// incremented, so any node's value is a lower bound of the Redlock's.
async fn fence_counter(args: &Args, fence_key: &str) -> redis::RedisResult<Option<String>> {
    let mut get = redis::cmd("GET");
    get.arg(fence_key);
    if args.cluster {
        let client = redis::cluster::ClusterClient::new(args.urls.iter().map(String::as_str))?;
        let mut connection = client.get_async_connection().await?;
        return get.query_async(&mut connection).await;
    }
    let client = redis::Client::open(args.urls[0].as_str())?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    get.query_async(&mut connection).await
}
