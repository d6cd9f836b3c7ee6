//! The connections a lock can use, behind one type-erased handle.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection a [`Lock`](crate::Lock) can send its commands on.
///
/// Implemented for every cheaply clonable async `redis` connection, such as
/// [`redis::aio::ConnectionManager`] (reconnects by itself: the usual choice)
/// and [`redis::aio::MultiplexedConnection`]. The lock clones the connection
/// for each command, so clones must share one underlying connection.
pub trait LockConnection: ConnectionLike + Clone + Send + Sync + 'static {}

impl<C> LockConnection for C where C: ConnectionLike + Clone + Send + Sync + 'static {}

/// A shared connection of any type, so that locks and guards carry no type
/// parameter.
#[derive(Clone)]
pub(crate) struct SharedConnection(Arc<dyn CloneConnection>);

impl SharedConnection {
    pub(crate) fn new(connection: impl LockConnection) -> SharedConnection {
        SharedConnection(Arc::new(connection))
    }

    /// A clone to send on (clones share the underlying connection).
    pub(crate) fn get(&self) -> DynConnection {
        self.0.clone_connection()
    }
}

/// Object-safe cloning of a connection.
trait CloneConnection: Send + Sync {
    fn clone_connection(&self) -> DynConnection;
}

impl<C: LockConnection> CloneConnection for C {
    fn clone_connection(&self) -> DynConnection {
        DynConnection(Box::new(self.clone()))
    }
}

/// A boxed connection that `redis` can send commands and scripts on.
pub(crate) struct DynConnection(Box<dyn ConnectionLike + Send>);

impl ConnectionLike for DynConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
