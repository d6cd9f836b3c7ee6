//! Just enough to run an example without a Redis: `REDIS_URL`, or a
//! throwaway redis-server of the crate's `test-server` module (on in every
//! example build, through the crate's dev-dependency on itself). Shared by
//! the examples through `#[path]`; not an example of its own.

use redis_mutex::test_server::{RedisServer, ServerError};

/// `REDIS_URL`, or the URL of a private redis-server started now, which
/// lives as long as the returned server (keep it until the end of `main`).
pub fn url_or_start() -> Result<(String, Option<RedisServer>), ServerError> {
    match std::env::var("REDIS_URL") {
        // Set but empty (`REDIS_URL= cargo run ...`) counts as unset.
        Ok(url) if !url.trim().is_empty() => Ok((url, None)),
        _ => {
            let server = RedisServer::start()?;
            Ok((server.url(), Some(server)))
        }
    }
}
