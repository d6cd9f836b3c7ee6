//! The connections a lock can use, behind one type-erased handle.

use std::any::Any;
use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::timeout::TimedConnection;

/// A connection a [`Lock`](crate::Lock) can send its commands on.
///
/// Implemented for every cheaply clonable async `redis` connection, such as
/// [`redis::aio::ConnectionManager`] (reconnects by itself: the usual choice)
/// and [`redis::aio::MultiplexedConnection`]. The lock clones the connection
/// for each command, so clones must share one underlying connection.
pub trait LockConnection: ConnectionLike + Clone + Send + Sync + 'static {}

impl<C> LockConnection for C where C: ConnectionLike + Clone + Send + Sync + 'static {}

/// A shared connection of any type, so that locks and guards carry no type
/// parameter. The lock clones it for every command; the two usual
/// connections, [`MultiplexedConnection`] and [`ConnectionManager`], are
/// kept as themselves so that such a clone needs no allocation and their
/// calls no indirection.
#[derive(Clone)]
pub(crate) enum SharedConnection {
    Multiplexed(TimedConnection<MultiplexedConnection>),
    Manager(TimedConnection<ConnectionManager>),
    Other(Arc<dyn CloneConnection>),
}

impl SharedConnection {
    pub(crate) fn new<C: LockConnection>(connection: TimedConnection<C>) -> SharedConnection {
        let any: &dyn Any = &connection;
        if let Some(multiplexed) = any.downcast_ref::<TimedConnection<MultiplexedConnection>>() {
            return SharedConnection::Multiplexed(multiplexed.clone());
        }
        if let Some(manager) = any.downcast_ref::<TimedConnection<ConnectionManager>>() {
            return SharedConnection::Manager(manager.clone());
        }
        SharedConnection::Other(Arc::new(connection))
    }

    /// A clone to send on (clones share the underlying connection).
    pub(crate) fn get(&self) -> DynConnection {
        match self {
            SharedConnection::Multiplexed(connection) => {
                DynConnection::Multiplexed(connection.clone())
            }
            SharedConnection::Manager(connection) => DynConnection::Manager(connection.clone()),
            SharedConnection::Other(connection) => connection.clone_connection(),
        }
    }
}

/// Object-safe cloning of a connection.
pub(crate) trait CloneConnection: Send + Sync {
    fn clone_connection(&self) -> DynConnection;
}

impl<C: LockConnection> CloneConnection for TimedConnection<C> {
    fn clone_connection(&self) -> DynConnection {
        DynConnection::Other(Box::new(self.clone()))
    }
}

/// A connection that `redis` can send commands and scripts on.
pub(crate) enum DynConnection {
    Multiplexed(TimedConnection<MultiplexedConnection>),
    Manager(TimedConnection<ConnectionManager>),
    Other(Box<dyn ConnectionLike + Send>),
}

impl ConnectionLike for DynConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            DynConnection::Multiplexed(connection) => connection.req_packed_command(cmd),
            DynConnection::Manager(connection) => connection.req_packed_command(cmd),
            DynConnection::Other(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            DynConnection::Multiplexed(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            DynConnection::Manager(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            DynConnection::Other(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            DynConnection::Multiplexed(connection) => connection.get_db(),
            DynConnection::Manager(connection) => connection.get_db(),
            DynConnection::Other(connection) => connection.get_db(),
        }
    }
}
