//! The subscription task of one notifier: connects when someone waits,
//! keeps the subscriptions in step with the waiters, reconnects after a
//! disconnection.
//!
//! Invariants:
//! - How waiters subscribe follows from the [`Source`], and nowhere else:
//!   `SUBSCRIBE` on one server, `SSUBSCRIBE` in the channel's shard on a
//!   Redis Cluster. [`Source::publish`] says which publish that hears; the
//!   topology keeps a notifier only where it matches the node's own
//!   (`Node::publish`), so the two can never disagree.
//! - Every push of a connection goes to [`Shared::on_push`] under the
//!   connection's epoch; a connection that fails or goes unanswered is
//!   marked lost there, so no waiter counts on it.
//! - Reconnects back off from 10 ms to 1 s while connections fail or break
//!   soon, so a server that keeps refusing is not hammered.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
#[cfg(feature = "cluster")]
use redis::cluster::{ClusterClient, ClusterConfig};
#[cfg(feature = "cluster")]
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, ErrorKind, PushInfo, RedisError, RedisResult, ServerErrorKind,
};
use tokio::time::Instant;

use crate::channels::{Shared, Step};
use crate::retry::Doubling;
use crate::rt::join_all;
use crate::scripts::Publish;

/// The first pause between reconnects after a failed one; doubled each time.
const RECONNECT_MIN: Duration = Duration::from_millis(10);
/// The longest pause between reconnects.
const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// Bounds on connecting and on each (un)subscribe of the subscription
/// connection; past them the connection counts as broken.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a notifier subscribes, and how.
// Made once per lock and kept by its notifier: its size does not matter.
#[cfg_attr(feature = "cluster", allow(clippy::large_enum_variant))]
#[derive(Clone)]
pub(crate) enum Source {
    /// One server: `SUBSCRIBE` on a multiplexed connection of this client,
    /// switched to RESP3 (pushes).
    Server(Client),
    /// A Redis Cluster: sharded pub/sub (`SSUBSCRIBE`), each channel in the
    /// shard that owns its slot (which is its key's slot), through the
    /// cluster connection's routing. Needs a client that speaks RESP3; with
    /// RESP2 the subscriptions are refused and waiters poll.
    #[cfg(feature = "cluster")]
    Cluster(ClusterClient),
}

impl Source {
    /// The publish that this source's subscriptions hear: `SUBSCRIBE`
    /// hears `PUBLISH`, a cluster's `SSUBSCRIBE` hears `SPUBLISH`.
    pub(crate) fn publish(&self) -> Publish {
        match self {
            Source::Server(_) => Publish::Plain,
            #[cfg(feature = "cluster")]
            Source::Cluster(_) => Publish::Sharded,
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Server(client) => f
                .debug_tuple("Server")
                .field(client.get_connection_info().addr())
                .finish(),
            #[cfg(feature = "cluster")]
            Source::Cluster(_) => f.write_str("Cluster"),
        }
    }
}

/// The task: connects when someone waits, keeps the subscriptions in step
/// with the waiters, and reconnects after a disconnection: at once after a
/// connection that lived a while, else backing off from 10 ms to 1 s, so
/// that a server that keeps refusing or dropping it is not hammered. Runs
/// until the notifier aborts it.
pub(crate) async fn run(shared: Arc<Shared>, source: Source) {
    let mut connection: Option<(u64, Subscriber)> = None;
    let mut connected_at: Option<Instant> = None;
    // Connections in a row that failed or broke within RECONNECT_MAX.
    let mut failures: u32 = 0;
    loop {
        let epoch = connection.as_ref().map(|(epoch, _)| *epoch);
        match shared.next_step(epoch, Instant::now()) {
            Step::Sleep(None) => shared.work.notified().await,
            Step::Sleep(Some(until)) => {
                tokio::select! {
                    () = shared.work.notified() => {}
                    () = tokio::time::sleep_until(until) => {}
                }
            }
            Step::Connect => {
                // Let the old one go before pausing.
                drop(connection.take());
                match connected_at.take() {
                    Some(at) if at.elapsed() >= RECONNECT_MAX => failures = 0,
                    Some(_) => failures = failures.saturating_add(1),
                    None => {}
                }
                let pause = reconnect_pause(failures);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                connection = connect(&shared, &source).await;
                if connection.is_some() {
                    connected_at = Some(Instant::now());
                } else {
                    failures = failures.saturating_add(1);
                }
            }
            Step::Subscribe(channels) => {
                let Some((epoch, conn)) = &connection else {
                    continue;
                };
                // One command per channel, all in flight at once, so that
                // the server's refusal of one names it.
                let results = join_all(channels.iter().map(|channel| {
                    let mut conn = conn.clone();
                    async move { conn.subscribe(channel).await }
                }))
                .await;
                if results.iter().any(|r| r.as_ref().is_err_and(passing)) {
                    // No answer (timeout, broken connection), or a cluster
                    // in the middle of moving the slot: start over.
                    shared.lost(*epoch);
                    continue;
                }
                let refused: Vec<bool> = results.iter().map(Result::is_err).collect();
                shared.subscribed(*epoch, &channels, &refused);
            }
            Step::Publish(posts) => {
                let Some((epoch, conn)) = &connection else {
                    continue;
                };
                let results = join_all(posts.iter().map(|(channel, message)| {
                    let mut conn = conn.clone();
                    async move { conn.publish(channel, message).await }
                }))
                .await;
                if results.iter().any(|r| r.as_ref().is_err_and(passing)) {
                    shared.lost(*epoch);
                    continue;
                }
                // Refused ones too (an ACL without the channel): asking
                // again would get the same answer.
                shared.published(*epoch, &posts, Instant::now());
            }
            Step::Unsubscribe(channels) => {
                let Some((epoch, conn)) = &mut connection else {
                    continue;
                };
                if conn.unsubscribe(&channels).await.is_err() {
                    shared.lost(*epoch);
                    continue;
                }
                shared.unsubscribed(*epoch, &channels);
            }
        }
    }
}

/// The pause before connecting after `failures` connections in a row failed
/// or broke soon: none at first, then 10 ms doubling to 1 s.
fn reconnect_pause(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Doubling::nth(RECONNECT_MIN, n - 1, RECONNECT_MAX),
    }
}

/// Whether a failed subscribe may pass if tried again on a new connection,
/// rather than refused for good (an ACL without the channel, a RESP2
/// cluster client): it went unanswered (a timeout, a broken connection), or
/// a cluster was moving the channel's slot (`MOVED` or `ASK` past the
/// client's redirects, `TRYAGAIN`, `CLUSTERDOWN`: a slot moved while a
/// waiter waits sends `SSUBSCRIBE` to a node that does not know yet that it
/// owns the slot, while the old owner knows it does not), or the node was
/// loading or had lost its master.
fn passing(error: &RedisError) -> bool {
    let unanswered = error.code().is_none() && error.kind() != ErrorKind::InvalidClientConfig;
    unanswered
        || error.is_cluster_error()
        || matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown)
        )
}

/// The subscription connection: to one server, or to a cluster.
#[derive(Clone)]
enum Subscriber {
    Server(MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(ClusterConnection),
}

impl Subscriber {
    async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Subscriber::Server(conn) => conn.subscribe(channel).await,
            #[cfg(feature = "cluster")]
            Subscriber::Cluster(conn) => conn.ssubscribe(channel).await,
        }
    }

    /// Publishes as a release does on this source: `PUBLISH`, or
    /// `SPUBLISH` in the channel's shard.
    async fn publish(&mut self, channel: &str, message: &str) -> RedisResult<()> {
        let command = match self {
            Subscriber::Server(_) => "PUBLISH",
            #[cfg(feature = "cluster")]
            Subscriber::Cluster(_) => "SPUBLISH",
        };
        let mut publish = redis::cmd(command);
        publish.arg(channel).arg(message);
        match self {
            Subscriber::Server(conn) => publish.exec_async(conn).await,
            #[cfg(feature = "cluster")]
            Subscriber::Cluster(conn) => publish.exec_async(conn).await,
        }
    }

    async fn unsubscribe(&mut self, channels: &[Arc<str>]) -> RedisResult<()> {
        match self {
            Subscriber::Server(conn) => {
                let names: Vec<&str> = channels.iter().map(|c| &**c).collect();
                conn.unsubscribe(&names).await
            }
            // One command per channel: channels of different slots in one
            // `SUNSUBSCRIBE` are a cross-slot error.
            #[cfg(feature = "cluster")]
            Subscriber::Cluster(conn) => {
                let results = join_all(channels.iter().map(|channel| {
                    let mut conn = conn.clone();
                    async move { conn.sunsubscribe(&**channel).await }
                }))
                .await;
                results.into_iter().collect()
            }
        }
    }
}

/// Opens a new subscription connection whose pushes go to `shared`.
async fn connect(shared: &Arc<Shared>, source: &Source) -> Option<(u64, Subscriber)> {
    let epoch = shared.next_epoch();
    let sink = {
        let shared = shared.clone();
        move |push: PushInfo| {
            shared.on_push(epoch, push);
            Ok::<(), Infallible>(())
        }
    };
    let connection = match source {
        Source::Server(client) => {
            let config = AsyncConnectionConfig::new()
                .set_push_sender(sink)
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(Subscriber::Server)
        }
        #[cfg(feature = "cluster")]
        Source::Cluster(client) => {
            let config = ClusterConfig::new()
                .set_push_sender(sink)
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT);
            client
                .get_async_connection_with_config(config)
                .await
                .map(Subscriber::Cluster)
        }
    };
    match connection {
        Ok(connection) => Some((epoch, connection)),
        Err(_) => {
            shared.lost(epoch);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_from_at_once_to_a_second() {
        let pauses: Vec<u128> = (0..10).map(|n| reconnect_pause(n).as_millis()).collect();
        assert_eq!(pauses, [0, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(reconnect_pause(u32::MAX), RECONNECT_MAX);
    }

    /// The classification only: a refusal for good is not asked again
    /// until its waiters are gone, a passing failure reconnects.
    #[test]
    fn a_slot_on_the_move_is_tried_again_and_a_refusal_is_not() {
        let server = |kind, code: &'static str| {
            RedisError::from((ErrorKind::Server(kind), code, "detail".to_owned()))
        };
        for (kind, code) in [
            (ServerErrorKind::Moved, "MOVED"),
            (ServerErrorKind::Ask, "ASK"),
            (ServerErrorKind::TryAgain, "TRYAGAIN"),
            (ServerErrorKind::ClusterDown, "CLUSTERDOWN"),
            (ServerErrorKind::BusyLoading, "LOADING"),
            (ServerErrorKind::MasterDown, "MASTERDOWN"),
        ] {
            assert!(passing(&server(kind, code)), "{code}");
        }
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(passing(&io));
        for (kind, code) in [
            (ServerErrorKind::NoPerm, "NOPERM"),
            (ServerErrorKind::ResponseError, "ERR"),
        ] {
            assert!(!passing(&server(kind, code)), "{code}");
        }
        let resp2 = RedisError::from((ErrorKind::InvalidClientConfig, "RESP3 needed"));
        assert!(!passing(&resp2));
    }
}
