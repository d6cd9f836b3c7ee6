//! The floor of a pub/sub handoff: the raw `redis` crate doing the least a
//! client that is woken by a release must do. Waiters of a process share
//! one RESP3 subscription; each release `PUBLISH`ed wakes one waiter per
//! process (a `Notify` permit), which sends one `SET NX PX`; a waiter that
//! lost the race waits for the next release. No holder inspection, no
//! wait deadline, no renewal: what it costs is what any such protocol
//! costs on this machine (a 1 s poll only keeps a lost wake-up from
//! stalling the run).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::Notify;

/// Compare-and-delete, then the wake-up, as the crate's release does.
const RELEASE_AND_PUBLISH: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    redis.call("DEL", KEYS[1])
    redis.call("PUBLISH", KEYS[2], "")
    return 1
end
return 0
"#;

#[derive(Clone)]
pub struct FloorLock {
    key: String,
    channel: String,
    connection: MultiplexedConnection,
    released: Arc<Notify>,
    script: redis::Script,
    tokens: Arc<AtomicU64>,
    /// Keeps the subscription open.
    _subscription: MultiplexedConnection,
}

pub struct FloorGuard {
    lock: FloorLock,
    token: String,
}

impl FloorLock {
    /// A lock on `key` whose waiters listen on `key`'s own channel.
    pub async fn new(url: &str, key: &str, connection: MultiplexedConnection) -> FloorLock {
        let channel = format!("{key}:released");
        let released = Arc::new(Notify::new());
        let wake = released.clone();
        let config =
            redis::AsyncConnectionConfig::new().set_push_sender(move |push: redis::PushInfo| {
                if push.kind == redis::PushKind::Message {
                    wake.notify_one();
                }
                Ok::<(), std::convert::Infallible>(())
            });
        let client = redis::Client::open(format!("{url}?protocol=resp3")).unwrap();
        let mut subscription = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap();
        subscription.subscribe(&channel).await.unwrap();
        FloorLock {
            key: key.to_owned(),
            channel,
            connection,
            released,
            script: redis::Script::new(RELEASE_AND_PUBLISH),
            tokens: Arc::new(AtomicU64::new(0)),
            _subscription: subscription,
        }
    }

    pub async fn acquire(&self) -> FloorGuard {
        let token = format!(
            "floor-{}-{}",
            std::process::id(),
            self.tokens.fetch_add(1, Ordering::Relaxed)
        );
        let mut connection = self.connection.clone();
        loop {
            if super::try_set(&mut connection, &self.key, &token).await {
                return FloorGuard {
                    lock: self.clone(),
                    token,
                };
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.released.notified()).await;
        }
    }
}

impl FloorGuard {
    pub async fn release(self) {
        let mut connection = self.lock.connection.clone();
        let released: i64 = self
            .lock
            .script
            .key(&self.lock.key)
            .key(&self.lock.channel)
            .arg(&self.token)
            .invoke_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(released, 1);
    }
}
