//! The connections a lock can use, behind one type-erased handle.

use std::any::Any;
use std::sync::Arc;

use redis::aio::{ConnectionLike, MultiplexedConnection};
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
/// parameter. The lock clones it for every command; a
/// [`MultiplexedConnection`], the usual connection, is kept as itself so
/// that such a clone needs no allocation and its calls no indirection.
#[derive(Clone)]
pub(crate) enum SharedConnection {
    Multiplexed(TimedConnection<MultiplexedConnection>),
    Other(Arc<dyn CloneConnection>),
}

impl SharedConnection {
    pub(crate) fn new<C: LockConnection>(connection: TimedConnection<C>) -> SharedConnection {
        let any: &dyn Any = &connection;
        match any.downcast_ref::<TimedConnection<MultiplexedConnection>>() {
            Some(multiplexed) => SharedConnection::Multiplexed(multiplexed.clone()),
            None => SharedConnection::Other(Arc::new(connection)),
        }
    }

    /// A clone to send on (clones share the underlying connection).
    pub(crate) fn get(&self) -> DynConnection {
        match self {
            SharedConnection::Multiplexed(connection) => {
                DynConnection::Multiplexed(connection.clone())
            }
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
    Other(Box<dyn ConnectionLike + Send>),
}

impl ConnectionLike for DynConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            DynConnection::Multiplexed(connection) => connection.req_packed_command(cmd),
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
            DynConnection::Other(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            DynConnection::Multiplexed(connection) => connection.get_db(),
            DynConnection::Other(connection) => connection.get_db(),
        }
    }
}
