//! The finishing methods of a blocking builder: one server or one Redis
//! Cluster for every kind of lease, and a Redlock quorum for the kinds that
//! have one (the mutex and its factory), written once for every blocking
//! builder ([`blocking_sources!`]), as `sources` is for their async twins.
//!
//! Invariants:
//! - Each runs its async twin on the blocking runtime (so the connection's
//!   driver lives there) and is refused inside a tokio runtime with
//!   `Error::BlockingInRuntime`, named `blocking::<Builder>::<method>`.

/// `connect`, `client` and, with the `cluster` feature, `connect_cluster`
/// and `cluster_client`, for a blocking builder type named `$builder` with
/// an `inner` field holding the async builder of the same name, finishing
/// into the blocking `$out` (made by `$out::new` from the async one); with
/// `quorum`, also `connect_quorum` and `clients_quorum`.
macro_rules! blocking_sources {
    ($out:ident, $builder:ident, quorum) => {
        $crate::blocking_sources::blocking_sources!($out, $builder);

        #[doc = concat!(
            "A Redlock over a connection to each of `urls`. See [`crate::",
            stringify!($builder),
            "::connect_quorum`]."
        )]
        pub fn connect_quorum<U: ::redis::IntoConnectionInfo>(
            self,
            urls: impl IntoIterator<Item = U>,
        ) -> $crate::Result<$out> {
            let call = concat!("blocking::", stringify!($builder), "::connect_quorum");
            $crate::blocking_rt::wait(call, self.inner.connect_quorum(urls)).map($out::new)
        }

        #[doc = concat!(
            "A Redlock over a connection from each of `clients`. See [`crate::",
            stringify!($builder),
            "::clients_quorum`]."
        )]
        pub fn clients_quorum(self, clients: &[::redis::Client]) -> $crate::Result<$out> {
            let call = concat!("blocking::", stringify!($builder), "::clients_quorum");
            $crate::blocking_rt::wait(call, self.inner.clients_quorum(clients)).map($out::new)
        }
    };
    ($out:ident, $builder:ident) => {
        #[doc = concat!(
                                    "Connects to the server at `url`. See [`crate::",
                                    stringify!($builder),
                                    "::connect`]."
                                )]
        pub fn connect(self, url: impl ::redis::IntoConnectionInfo) -> $crate::Result<$out> {
            let call = concat!("blocking::", stringify!($builder), "::connect");
            $crate::blocking_rt::wait(call, self.inner.connect(url)).map($out::new)
        }

        #[doc = concat!(
                                    "Connects through `client`. See [`crate::",
                                    stringify!($builder),
                                    "::client`]."
                                )]
        pub fn client(self, client: &::redis::Client) -> $crate::Result<$out> {
            let call = concat!("blocking::", stringify!($builder), "::client");
            $crate::blocking_rt::wait(call, self.inner.client(client)).map($out::new)
        }

        #[doc = concat!(
                                    "Builds over the Redis Cluster that `seeds` belong to (crate ",
                                    "feature `cluster` too). See [`crate::",
                                    stringify!($builder),
                                    "::connect_cluster`]."
                                )]
        #[cfg(feature = "cluster")]
        #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
        pub fn connect_cluster<U: ::redis::IntoConnectionInfo>(
            self,
            seeds: impl IntoIterator<Item = U>,
        ) -> $crate::Result<$out> {
            let call = concat!("blocking::", stringify!($builder), "::connect_cluster");
            $crate::blocking_rt::wait(call, self.inner.connect_cluster(seeds)).map($out::new)
        }

        #[doc = concat!(
                                    "Builds over a Redis Cluster from `client` (crate feature ",
                                    "`cluster` too). See [`crate::",
                                    stringify!($builder),
                                    "::cluster_client`]."
                                )]
        #[cfg(feature = "cluster")]
        #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
        pub fn cluster_client(
            self,
            client: &::redis::cluster::ClusterClient,
        ) -> $crate::Result<$out> {
            let call = concat!("blocking::", stringify!($builder), "::cluster_client");
            $crate::blocking_rt::wait(call, self.inner.cluster_client(client)).map($out::new)
        }
    };
}

pub(crate) use blocking_sources;
