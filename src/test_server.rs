//! Throwaway Redis servers for your own tests (crate feature
//! `test-server`): code that takes locks is best tested against a real
//! Redis, and this starts one in a few tens of milliseconds, on a free port,
//! with nothing to configure or clean up.
//!
//! - [`RedisServer::start`]: one `redis-server` on 127.0.0.1, its own port
//!   and temporary directory, no persistence; [`url`](RedisServer::url)
//!   to connect. [`RedisServer::start_many`] for a Redlock's N servers,
//!   [`RedisCluster::start`] for a 3-master Redis Cluster (it also needs
//!   `redis-cli`).
//! - Stopped when dropped: the process is killed and its directory
//!   removed. A server dropped while its test panics prints the tail of
//!   its log to stderr, and an error from starting one carries it.
//! - [`REDIS_SERVER_BIN`] picks another binary (a Valkey `valkey-server`,
//!   a build of your own); otherwise `redis-server` is looked up on `PATH`,
//!   and [`ServerError::NotInstalled`] says how to install it.
//! - For tests of faults: [`pause`](RedisServer::pause) and
//!   [`resume`](RedisServer::resume) (a stalled server),
//!   [`stop`](RedisServer::stop) and [`restart`](RedisServer::restart) (a
//!   dead one, and its return on the same port, empty).
//!
//! This crate's own tests use exactly this module (through
//! `tests/support`), so every run of them tests it.
//!
//! Starting blocks the calling thread until the server answers; at the top
//! of a `#[tokio::test]` that is harmless.
//!
//! ```no_run
//! use redis_mutex::test_server::RedisServer;
//! use redis_mutex::Lock;
//!
//! #[tokio::test]
//! async fn a_second_worker_finds_the_job_locked() -> Result<(), Box<dyn std::error::Error>> {
//!     let server = RedisServer::start()?;
//!     let lock = Lock::builder("jobs:import").connect(server.url()).await?;
//!     let guard = lock.acquire().await?;
//!     assert!(lock.try_acquire().await?.is_none());
//!     guard.release().await?;
//!     Ok(())
//! }
//! ```
//!
//! A Redlock over three servers:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use redis_mutex::test_server::RedisServer;
//!
//! let servers = RedisServer::start_many(3)?;
//! let lock = redis_mutex::Lock::builder("jobs:import")
//!     .connect_quorum(servers.iter().map(RedisServer::url))
//!     .await?;
//! # Ok(()) }
//! ```

pub use crate::test_cluster::RedisCluster;
pub use crate::test_redis::{
    REDIS_SERVER_BIN, RedisServer, ServerError, TempDir, free_port, server_bin,
};
