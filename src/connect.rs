//! How the builders reach their servers: the connections they open and the
//! topology over them, from checked settings. A [`Lock`](crate::Lock) and a
//! [`Locks`](crate::Locks) are built the same way; `label` (the lock's key,
//! or the factory's prefix) names what was being built in connect errors.
//!
//! Invariants:
//! - A lock on one node listens for wake-ups where its connection goes (set
//!   by `client`, or `notify_with`); a Redlock listens to one of its nodes
//!   that answered when connecting, or not at all (`build_quorum`).
//! - Each call opens its own connections (one per node): sharing them is
//!   what a [`Locks`](crate::Locks) is for.

use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::connection::LockConnection;
use crate::error::{Error, Operation, Result};
use crate::node::Node;
use crate::notify::Notifier;
use crate::quorum::{self, Quorum};
use crate::settings::Checked;
use crate::subscriber::Source;
use crate::topology::{Listener, Topology};

impl Checked {
    fn connect_error(label: &str, source: redis::RedisError) -> Error {
        Error::from_redis(Operation::Connect, label, source)
    }

    /// One node over `connection` (no I/O).
    pub(crate) fn single(&self, connection: impl LockConnection) -> Arc<Topology> {
        let node = Node::new(connection, self.settings.command_timeout);
        let notifier = self.settings.notify.clone().map(Notifier::for_source);
        Arc::new(Topology::single(node, notifier))
    }

    /// One node over a new [`ConnectionManager`] to `url`.
    pub(crate) async fn url(
        &mut self,
        url: impl IntoConnectionInfo,
        label: &str,
    ) -> Result<Arc<Topology>> {
        let client = redis::Client::open(url).map_err(|e| Checked::connect_error(label, e))?;
        self.client(&client, label).await
    }

    /// One node over a new [`ConnectionManager`] from `client`, woken
    /// through `client`'s server unless told otherwise.
    pub(crate) async fn client(
        &mut self,
        client: &redis::Client,
        label: &str,
    ) -> Result<Arc<Topology>> {
        self.settings
            .notify
            .get_or_insert_with(|| Source::Server(client.clone()));
        let manager = ConnectionManager::new_with_config(client.clone(), manager_config())
            .await
            .map_err(|e| Checked::connect_error(label, e))?;
        Ok(self.single(manager))
    }

    /// A Redis Cluster from `seeds`, speaking RESP3 (for its subscriptions).
    #[cfg(feature = "cluster")]
    pub(crate) async fn cluster_seeds<U: IntoConnectionInfo>(
        &mut self,
        seeds: impl IntoIterator<Item = U>,
        label: &str,
    ) -> Result<Arc<Topology>> {
        let client = redis::cluster::ClusterClient::builder(seeds)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .build()
            .map_err(|e| Checked::connect_error(label, e))?;
        self.cluster_client(&client, label).await
    }

    /// A Redis Cluster over a new connection from `client`.
    #[cfg(feature = "cluster")]
    pub(crate) async fn cluster_client(
        &mut self,
        client: &redis::cluster::ClusterClient,
        label: &str,
    ) -> Result<Arc<Topology>> {
        self.settings
            .notify
            .get_or_insert_with(|| Source::Cluster(client.clone()));
        let connection = client
            .get_async_connection()
            .await
            .map_err(|e| Checked::connect_error(label, e))?;
        Ok(self.single(connection))
    }

    /// A Redlock over `connections` (no I/O: its nodes are identified at
    /// the first acquire), without wake-ups.
    pub(crate) fn quorum_of<C: LockConnection>(
        &self,
        connections: impl IntoIterator<Item = C>,
    ) -> Result<Arc<Topology>> {
        let nodes: Vec<Node> = connections
            .into_iter()
            .map(|connection| Node::new(connection, self.settings.command_timeout))
            .collect();
        let node_timeout = self.settings.validate_quorum(self.ttl, nodes.len())?;
        let labels = (0..nodes.len()).map(|i| format!("node {i}")).collect();
        let quorum = Quorum::new(nodes, labels, node_timeout, self.settings.drift);
        Ok(Arc::new(Topology::quorum(quorum, None)))
    }

    /// A Redlock over a new [`ConnectionManager`] to each of `urls`.
    pub(crate) async fn urls_quorum<U: IntoConnectionInfo>(
        &self,
        urls: impl IntoIterator<Item = U>,
        label: &str,
    ) -> Result<Arc<Topology>> {
        let clients = urls
            .into_iter()
            .map(|url| redis::Client::open(url).map_err(|e| Checked::connect_error(label, e)))
            .collect::<Result<Vec<_>>>()?;
        self.clients_quorum(&clients, label).await
    }

    /// A Redlock over a new [`ConnectionManager`] from each of `clients`:
    /// connected at once and identified, waking waiters through the first
    /// node that answered.
    pub(crate) async fn clients_quorum(
        &self,
        clients: &[redis::Client],
        label: &str,
    ) -> Result<Arc<Topology>> {
        let node_timeout = self.settings.validate_quorum(self.ttl, clients.len())?;
        for (i, client) in clients.iter().enumerate() {
            let addr = client.get_connection_info().addr();
            if let Some(j) = clients[..i]
                .iter()
                .position(|other| other.get_connection_info().addr() == addr)
            {
                return Err(Error::invalid(
                    "nodes",
                    format!(
                        "nodes {j} and {i} are the same server ({addr}); a Redlock needs independent servers"
                    ),
                ));
            }
        }
        // Lazy managers: each connects on first use (the identification
        // round below), and a node that is down or stalled now keeps
        // connecting when it is next used, without holding up the rest.
        let config = manager_config();
        let managers = clients
            .iter()
            .map(|client| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Checked::connect_error(label, e))?;
        let labels = clients
            .iter()
            .enumerate()
            .map(|(i, client)| format!("node {i} ({})", client.get_connection_info().addr()))
            .collect();
        let command_timeout = self.settings.command_timeout;
        let nodes = managers
            .into_iter()
            .map(|manager| Node::new(manager, command_timeout))
            .collect();
        let quorum = Quorum::new(nodes, labels, node_timeout, self.settings.drift);
        let (identified, failures) = quorum.identify_connecting(quorum::CONNECT_TIMEOUT).await?;
        let required = quorum::majority(clients.len());
        if identified < required {
            return Err(Error::QuorumNotReached {
                operation: Operation::Connect,
                key: label.to_owned(),
                granted: identified,
                required,
                failures,
            });
        }
        // Waiters listen to one node that answered: a release publishes on
        // every node it reaches.
        let listener = (0..clients.len())
            .find(|i| failures.iter().all(|f| f.node != *i))
            .map(|node| Listener {
                notifier: Notifier::for_source(Source::Server(clients[node].clone())),
                node,
            });
        Ok(Arc::new(Topology::quorum(quorum, listener)))
    }
}

/// The `ConnectionManager` settings of the connections the builders open:
/// few, short connection retries, so that a caller with Redis down hears
/// about it in about a second, not after the default ~6 s of retries.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}
