//! Observability (crate feature `tracing`): what an operator finds in the
//! logs without adding code, captured by a small subscriber of our own, on
//! real redis-servers: acquires (taken, busy, failed), releases (released,
//! no longer ours), renewal failures and loss, and a Redlock's failed
//! nodes. No event, field or span carries a token or a password.
#![cfg(feature = "tracing")]

mod support;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_mutex::{Lock, WaitPolicy};
use support::{RedisServer, eventually};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const PASSWORD: &str = "tracing-pw-5d1e";

/// One event or span as the subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    target: String,
    /// The event's message, or the span's name.
    message: String,
    fields: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Records every event and span (with their fields) into a shared list.
#[derive(Clone, Default)]
struct Collector {
    seen: Arc<Mutex<Vec<Seen>>>,
    next_id: Arc<AtomicU64>,
}

struct Fields<'a> {
    message: &'a mut String,
    fields: &'a mut Vec<(String, String)>,
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            *self.message = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            *self.message = value.to_owned();
        } else {
            self.fields
                .push((field.name().to_owned(), value.to_owned()));
        }
    }
}

impl Collector {
    fn push(&self, metadata: &Metadata<'_>, mut message: String, visit: impl FnOnce(&mut Fields)) {
        let mut fields = Vec::new();
        visit(&mut Fields {
            message: &mut message,
            fields: &mut fields,
        });
        self.seen.lock().unwrap().push(Seen {
            level: *metadata.level(),
            target: metadata.target().to_owned(),
            message,
            fields,
        });
    }

    fn events(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The events with `message` (target `redis_mutex`).
    fn find(&self, message: &str) -> Vec<Seen> {
        self.events()
            .into_iter()
            .filter(|e| e.target == "redis_mutex" && e.message.contains(message))
            .collect()
    }

    /// Everything recorded, as one text.
    fn all_text(&self) -> String {
        format!("{:?}", self.events())
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.push(span.metadata(), span.metadata().name().to_owned(), |f| {
            span.record(f)
        });
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        self.push(event.metadata(), String::new(), |f| event.record(f));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

// One thread (the default `#[tokio::test]` runtime), so that the subscriber
// set for it sees the renewal and background tasks too.
#[tokio::test]
async fn acquires_releases_renewal_and_loss_are_reported_without_secrets() {
    let collector = Collector::default();
    let _default = tracing::subscriber::set_default(collector.clone());
    let server = RedisServer::start();
    server.cmd(&["CONFIG", "SET", "requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port());
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = "traced:lock";
    let lock = Lock::builder(key)
        .ttl(Duration::from_millis(600))
        .wait(WaitPolicy::timeout(Duration::from_millis(150)))
        .connect(url.as_str())
        .await
        .unwrap();

    // Taken, then busy for a second acquire.
    let guard = lock.acquire().await.unwrap();
    let token: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut admin)
        .await
        .unwrap();
    let acquired = collector.find("lock acquired");
    assert_eq!(acquired.len(), 1, "{acquired:?}");
    assert_eq!(acquired[0].level, Level::DEBUG);
    assert_eq!(acquired[0].field("key"), Some(key));
    assert!(acquired[0].field("waited_ms").is_some());
    let spans: Vec<Seen> = collector
        .events()
        .into_iter()
        .filter(|e| e.message == "acquire")
        .collect();
    assert!(
        spans.iter().all(|s| s.field("key") == Some(key)),
        "{spans:?}"
    );
    assert!(!spans.is_empty());

    assert!(lock.acquire().await.unwrap_err().is_busy());
    let busy = collector.find("lock busy");
    assert_eq!(busy.len(), 1, "{busy:?}");
    assert_eq!(busy[0].level, Level::INFO);
    let attempts: u32 = busy[0].field("attempts").unwrap().parse().unwrap();
    assert!(attempts >= 2, "{attempts}");
    let waited: u64 = busy[0].field("waited_ms").unwrap().parse().unwrap();
    assert!(waited >= 150, "{waited}");

    // Released while still ours.
    guard.release().await.unwrap();
    let released = collector.find("lock released");
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0].level, Level::DEBUG);
    assert!(released[0].field("held_ms").is_some());

    // Not ours any more at release: the key was deleted meanwhile.
    let guard = lock.acquire().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(guard.release().await.unwrap_err().is_not_held());
    let gone = collector.find("no longer held at release");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].level, Level::WARN);

    // Renewing, and the key is deleted: renewal finds it gone (one renewal
    // period is 200 ms) and reports the loss.
    let mut guard = lock.acquire().await.unwrap();
    guard.auto_renew().unwrap();
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut admin)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .unwrap();
    eventually(Duration::from_secs(1), "a loss event", || {
        !collector.find("lock lost").is_empty()
    })
    .await;
    let lost = collector.find("lock lost");
    assert_eq!(lost[0].level, Level::ERROR);
    assert_eq!(lost[0].field("key"), Some(key));
    assert!(lost[0].field("why").unwrap().contains("token"), "{lost:?}");
    drop(guard);

    // Renewal against a stalled server: no extend is answered, and the
    // loss is reported at the deadline.
    let mut guard = lock.acquire().await.unwrap();
    guard.auto_renew().unwrap();
    server.pause();
    tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .unwrap();
    server.resume();
    eventually(Duration::from_secs(1), "a second loss event", || {
        collector.find("lock lost").len() == 2
    })
    .await;
    let why = collector.find("lock lost")[1]
        .field("why")
        .unwrap()
        .to_owned();
    assert!(why.contains("deadline"), "{why}");
    drop(guard);

    // Renewal against a server that is down: each extend fails with an
    // error (warn) and is tried again, until the lease runs out.
    let slow = Lock::builder(key)
        .ttl(Duration::from_secs(2))
        .connect(url.as_str())
        .await
        .unwrap();
    let mut guard = slow.acquire().await.unwrap();
    guard.auto_renew().unwrap();
    server.stop();
    tokio::time::timeout(Duration::from_secs(4), guard.lost())
        .await
        .unwrap();
    eventually(Duration::from_secs(1), "renewal failures", || {
        !collector.find("lock renewal failed").is_empty()
    })
    .await;
    for event in collector.find("lock renewal failed") {
        assert_eq!(event.level, Level::WARN);
        assert!(event.field("error").is_some(), "{event:?}");
    }
    drop(guard);

    let text = collector.all_text();
    assert!(!text.contains(&token), "a token in the events: {text}");
    assert!(
        !text.contains(&token[..12]),
        "part of a token in the events"
    );
    assert!(!text.contains(PASSWORD), "the password in the events");
    assert!(
        collector
            .events()
            .iter()
            .filter(|e| e.target.starts_with("redis_mutex"))
            .all(|e| !e.fields.is_empty()),
        "every event of the crate names at least its key"
    );
}

#[tokio::test]
async fn a_redlock_step_with_failed_nodes_names_them() {
    let collector = Collector::default();
    let _default = tracing::subscriber::set_default(collector.clone());
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let lock = Lock::builder("traced:redlock")
        .ttl(Duration::from_secs(5))
        .node_timeout(Duration::from_millis(100))
        .connect_quorum(servers.iter().map(RedisServer::url))
        .await
        .unwrap();
    servers[2].stop();
    let guard = lock.acquire().await.unwrap();
    guard.release().await.unwrap();
    let degraded = collector.find("reached its majority with failed nodes");
    // The acquire and the release each reached 2 of 3.
    assert_eq!(degraded.len(), 2, "{degraded:?}");
    for event in &degraded {
        assert_eq!(event.level, Level::WARN);
        assert_eq!(event.field("failed"), Some("1"));
        assert!(
            event.field("nodes").unwrap().contains("node 2"),
            "{event:?}"
        );
    }
    assert_eq!(degraded[0].field("operation"), Some("acquire"));
}

#[tokio::test]
async fn an_acquire_that_fails_is_a_warning_with_the_error() {
    let collector = Collector::default();
    let _default = tracing::subscriber::set_default(collector.clone());
    let server = RedisServer::start();
    server.cmd(&["HSET", "traced:hash", "field", "1"]);
    let lock = Lock::builder("traced:hash")
        .connect(server.url())
        .await
        .unwrap();
    assert!(lock.acquire().await.is_err());
    let failed = collector.find("lock acquire failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].level, Level::WARN);
    assert!(
        failed[0].field("error").unwrap().contains("type"),
        "{failed:?}"
    );
}
