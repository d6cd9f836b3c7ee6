// The crate docs are the README, with the link targets of docs/guide/links.md
// defined first: a reference defined twice takes its first definition, so
// the README's docs.rs addresses (for GitHub and crates.io) give way here to
// intra-doc links that rustdoc checks (tests/readme_links.rs keeps the two
// lists in step). rustdoc names the README's doctests after the first file,
// docs/guide/links.md, with line numbers counted from its start.
#![doc = include_str!("../docs/guide/links.md")]
#![doc = include_str!("../README.md")]
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, each using only those below it (`module-graph.py` checks):
// - base: forks, alarm (renewal's timer, and the acquire's cut), cut,
//   clock, timeout, node_failure, error, token, keys, ttl, lease, retry,
//   rt, scripts, trace, metrics
// - node: connection, kind (what a kind of lease is), node (its steps on
//   one server), replicas
// - topology: attempt, identity (which server a Redlock node is), quorum
//   (Redlock), channels, subscriber, notify (wake-ups), topology
// - engine: engine (shared state, extend), wait, renew, hold, acquire,
//   owner (who a re-entrant hold is of), reentrant (an owner's shared hold)
// - kinds: mutex (the mutex's scripts), lock, guard, inspect (who holds a
//   lock, and a forced unlock), fence; guard_methods (what every later
//   kind's guard offers); permit_set (the semaphore's scripts), semaphore,
//   permit; rw_lease (the read-write lock's scripts), rw_upgrade (which
//   task holds what), rw_guards, rwlock; handoff (a hold's proof for
//   another process); fair_lease (the fair lock's queue and scripts),
//   fair_guard, fair_lock
// - facade: settings (what the builders set), connect (how they reach
//   servers), sources (finishing methods of one-server kinds), builder
//   (one key), semaphore_builder, rwlock_builder, fair_lock_builder, locks
//   (any key), diagnose, this file
// - beside the facade, for code without async (`blocking`): blocking_rt
//   (the crate's runtime), blocking_hold (any kind, and the blocking
//   `run`), blocking_guard_methods (what every later kind's blocking guard
//   offers), blocking_sources (finishing methods of one-server kinds'
//   blocking builders); blocking_guard, blocking_lock; blocking_permit,
//   blocking_semaphore; blocking_rw_guards, blocking_rwlock;
//   blocking_fair_guard, blocking_fair_lock; blocking_locks (any key),
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
mod blocking_fair_guard;
#[cfg(feature = "blocking")]
mod blocking_fair_lock;
#[cfg(feature = "blocking")]
mod blocking_guard;
#[cfg(feature = "blocking")]
mod blocking_guard_methods;
#[cfg(feature = "blocking")]
mod blocking_hold;
#[cfg(feature = "blocking")]
mod blocking_lock;
#[cfg(feature = "blocking")]
mod blocking_locks;
#[cfg(feature = "blocking")]
mod blocking_permit;
#[cfg(feature = "blocking")]
mod blocking_rt;
#[cfg(feature = "blocking")]
mod blocking_rw_guards;
#[cfg(feature = "blocking")]
mod blocking_rwlock;
#[cfg(feature = "blocking")]
mod blocking_semaphore;
#[cfg(feature = "blocking")]
mod blocking_sources;
mod builder;
mod channel;
mod channels;
mod clock;
mod connect;
mod connection;
mod cut;
mod diagnose;
mod engine;
mod error;
mod fair_guard;
mod fair_lease;
mod fair_lock;
mod fair_lock_builder;
mod fence;
mod forks;
mod guard;
mod guard_methods;
mod handoff;
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
mod out_of_line;
mod owner;
mod permit;
mod permit_set;
mod quorum;
mod recent;
mod reentrant;
mod renew;
mod replicas;
mod retry;
mod route;
mod rt;
mod rw_guards;
mod rw_lease;
mod rw_upgrade;
mod rwlock;
mod rwlock_builder;
mod scripts;
mod seen;
mod semaphore;
mod semaphore_builder;
mod settings;
mod sources;
mod subscriber;
mod subscription;
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
mod vote;
mod wait;

// Documentation only: the guide's chapters, for rustdoc (and its doctests).
#[cfg(doc)]
pub mod guide;

#[cfg(feature = "metrics")]
pub use crate::metrics::describe_metrics;
pub use builder::LockBuilder;
pub use connection::LockConnection;
pub use diagnose::{ServerReport, Weakness};
pub use error::{Error, NodeFailure, NodeFailureReason, Operation, Result};
pub use fair_guard::FairGuard;
pub use fair_lease::{DEFAULT_WAITER_TTL, MAX_WAITER_TTL, MIN_WAITER_TTL};
pub use fair_lock::FairLock;
pub use fair_lock_builder::FairLockBuilder;
pub use fence::{FencedResource, FencedWrite};
pub use guard::LockGuard;
pub use handoff::Handoff;
pub use inspect::LockHolder;
pub use lease::Lease;
pub use lock::Lock;
pub use locks::{Locks, LocksBuilder};
pub use owner::Owner;
pub use permit::Permit;
pub use permit_set::{MAX_PERMITS, MAX_PERMITS_PER_HOLD};
pub use retry::WaitPolicy;
pub use rt::flush_releases;
pub use rw_guards::{ReadGuard, WriteGuard};
pub use rwlock::RwLock;
pub use rwlock_builder::RwLockBuilder;
pub use semaphore::Semaphore;
pub use semaphore_builder::SemaphoreBuilder;
pub use ttl::{DEFAULT_TTL, MAX_TTL, MIN_TTL};
