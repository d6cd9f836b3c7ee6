#![doc = include_str!("../README.md")]
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod connection;
mod diagnose;
mod error;
mod fence;
mod guard;
mod lease;
mod lock;
mod quorum;
mod renew;
mod replicas;
mod retry;
mod scripts;
mod timeout;
mod token;
mod topology;
#[cfg(feature = "tracing")]
mod trace;
mod wait;

pub use connection::LockConnection;
pub use diagnose::{ServerReport, Weakness};
pub use error::{Error, NodeFailure, NodeFailureReason, Operation, Result};
pub use fence::{FencedResource, FencedWrite};
pub use guard::LockGuard;
pub use lease::Lease;
pub use lock::{DEFAULT_TTL, Lock, LockBuilder, MAX_TTL, MIN_TTL};
pub use retry::WaitPolicy;
