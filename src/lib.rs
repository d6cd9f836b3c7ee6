#![doc = include_str!("../README.md")]
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, each using only those below it (`module-graph.py` checks):
// - base: alarm (renewal's timer), clock, timeout, node_failure, error,
//   token, keys, ttl, lease, retry, rt, scripts, trace, metrics
// - node: connection, kind (what a kind of lease is), node (its steps on
//   one server), replicas
// - topology: attempt, identity (which server a Redlock node is), quorum
//   (Redlock), channels, subscriber, notify (wake-ups), topology
// - engine: engine (shared state, extend), wait, renew, hold, acquire
// - kinds: mutex (the mutex's scripts), lock, guard, inspect (who holds a
//   lock, and a forced unlock), fence
// - facade: settings (what the builders set), connect (how they reach
//   servers), builder (one key), locks (any key), diagnose, this file
// - beside the facade, for code without async (`blocking`): blocking_rt
//   (the crate's runtime), blocking_hold (any kind), blocking_guard,
//   blocking_lock, blocking_locks,
//   blocking (the public module)
// - beside them, for users' tests (`test-server`): test_redis (one
//   throwaway redis-server), test_cluster, test_server (the public module)
mod acquire;
mod alarm;
mod attempt;
#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
pub mod blocking;
#[cfg(feature = "blocking")]
mod blocking_guard;
#[cfg(feature = "blocking")]
mod blocking_hold;
#[cfg(feature = "blocking")]
mod blocking_lock;
#[cfg(feature = "blocking")]
mod blocking_locks;
#[cfg(feature = "blocking")]
mod blocking_rt;
mod builder;
mod channels;
mod clock;
mod connect;
mod connection;
mod diagnose;
mod engine;
mod error;
mod fence;
mod guard;
mod hold;
mod identity;
mod inspect;
mod keys;
mod kind;
mod lease;
mod lock;
mod locks;
mod metrics;
mod mutex;
mod node;
mod node_failure;
mod notify;
mod quorum;
mod renew;
mod replicas;
mod retry;
mod rt;
mod scripts;
mod settings;
mod subscriber;
#[cfg(feature = "test-server")]
mod test_cluster;
#[cfg(feature = "test-server")]
mod test_redis;
#[cfg(feature = "test-server")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-server")))]
pub mod test_server;
mod timeout;
mod token;
mod topology;
#[cfg(feature = "tracing")]
mod trace;
mod ttl;
mod wait;

#[cfg(feature = "metrics")]
pub use crate::metrics::describe_metrics;
pub use builder::LockBuilder;
pub use connection::LockConnection;
pub use diagnose::{ServerReport, Weakness};
pub use error::{Error, NodeFailure, NodeFailureReason, Operation, Result};
pub use fence::{FencedResource, FencedWrite};
pub use guard::LockGuard;
pub use inspect::LockHolder;
pub use lease::Lease;
pub use lock::Lock;
pub use locks::{Locks, LocksBuilder};
pub use retry::WaitPolicy;
pub use rt::flush_releases;
pub use ttl::{DEFAULT_TTL, MAX_TTL, MIN_TTL};
