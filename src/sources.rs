//! The finishing methods of a builder whose kind of lease lives on one
//! server or one Redis Cluster (not on a Redlock quorum): written once, for
//! the builders of every such kind ([`single_server_sources!`]).

/// `build`, `connect`, `client` and, with the `cluster` feature,
/// `connect_cluster` and `cluster_client`, for a builder type with a `key:
/// String` field, a `fn check(&self) -> Result<(Checked, X)>` that checks
/// the key and the settings (exactly once per finishing call; `X` is what
/// it made of the key, such as the kind's key names) and a `fn
/// finish(&self, Checked, Arc<Topology>, X) -> $out`.
macro_rules! single_server_sources {
    ($out:ty) => {
        /// Builds over an existing connection, such as a clone of your
        /// application's [`ConnectionManager`](redis::aio::ConnectionManager),
        /// as [`LockBuilder::build`](crate::LockBuilder::build) does; add
        /// [`notify_with`](Self::notify_with) for waiters to be woken by
        /// releases instead of polling.
        pub fn build(self, connection: impl $crate::LockConnection) -> $crate::Result<$out> {
            let (checked, made) = self.check()?;
            let topology = checked.single(connection);
            Ok(self.finish(checked, topology, made))
        }

        /// Builds over a new connection to `url`, woken through pub/sub on
        /// the same server, as [`LockBuilder::connect`](crate::LockBuilder::connect) does.
        pub async fn connect(self, url: impl ::redis::IntoConnectionInfo) -> $crate::Result<$out> {
            let (mut checked, made) = self.check()?;
            let topology = checked.url(url, &self.key).await?;
            Ok(self.finish(checked, topology, made))
        }

        /// Builds over a new connection from `client`, woken through pub/sub
        /// on the same server, as [`LockBuilder::client`](crate::LockBuilder::client) does.
        pub async fn client(self, client: &::redis::Client) -> $crate::Result<$out> {
            let (mut checked, made) = self.check()?;
            let topology = checked.client(client, &self.key).await?;
            Ok(self.finish(checked, topology, made))
        }

        /// Builds over a Redis Cluster reached from `seeds`, as
        /// [`LockBuilder::connect_cluster`](crate::LockBuilder::connect_cluster)
        /// does: every key of the lease is in the key's slot.
        #[cfg(feature = "cluster")]
        #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
        pub async fn connect_cluster<U: ::redis::IntoConnectionInfo>(
            self,
            seeds: impl IntoIterator<Item = U>,
        ) -> $crate::Result<$out> {
            let (mut checked, made) = self.check()?;
            let topology = checked.cluster_seeds(seeds, &self.key).await?;
            Ok(self.finish(checked, topology, made))
        }

        /// Builds over a Redis Cluster from `client`, as
        /// [`LockBuilder::cluster_client`](crate::LockBuilder::cluster_client) does.
        #[cfg(feature = "cluster")]
        #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
        pub async fn cluster_client(
            self,
            client: &::redis::cluster::ClusterClient,
        ) -> $crate::Result<$out> {
            let (mut checked, made) = self.check()?;
            let topology = checked.cluster_client(client, &self.key).await?;
            Ok(self.finish(checked, topology, made))
        }
    };
}

pub(crate) use single_server_sources;
