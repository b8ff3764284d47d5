//! The reconnect loop behind every Redis the router uses (the session store,
//! shared rate limits): connect, prove the connection with a `PING`, and
//! while it is down try again every [`RETRY_EVERY`]; a failed command wakes
//! the loop through [`Reconnecting::wake`].

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

/// How long connecting to Redis may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an unreachable Redis is tried again.
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What the loop needs of a store's state.
pub(crate) trait Reconnecting: Send + Sync + 'static {
    fn client(&self) -> &redis::Client;
    /// Whether the store has a working connection.
    fn is_up(&self) -> bool;
    /// Notified when a command failed and the store was marked down.
    fn wake(&self) -> &tokio::sync::Notify;
    /// A connection answered: use it.
    fn connected(&self, connection: MultiplexedConnection);
    /// Connecting failed, for `reason` (no secret in it).
    fn unreachable(&self, reason: String);
}

/// Connects (again) whenever the store is down, until `shutdown`.
pub(crate) async fn keep_connected<T: Reconnecting>(inner: Arc<T>, shutdown: CancellationToken) {
    loop {
        if !inner.is_up() {
            match connect(inner.client()).await {
                Ok(connection) => inner.connected(connection),
                Err(reason) => {
                    inner.unreachable(reason);
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_EVERY) => continue,
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        }
        tokio::select! {
            () = inner.wake().notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// A connection that has answered a `PING`, or why not (the error's category
/// only: a Redis error may quote the URL, password included).
async fn connect(client: &redis::Client) -> Result<MultiplexedConnection, String> {
    let attempt = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok::<_, redis::RedisError>(connection)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.category().to_owned()),
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}
