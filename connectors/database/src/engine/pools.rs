//! What every engine does the same way with its pools: how a pool is sized
//! and bounded, the write pool that exists only in read-write mode, the
//! read-only transaction every read runs in (always rolled back), the clean-up
//! of a session before its connection is reused, and closing. The engine
//! modules keep what differs: connect options, how a transaction is begun,
//! what a session must be cleaned of.

use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{Connection as _, Pool};

use super::{Settings, rolled_back};
use crate::error::Error;

/// Pool options every engine starts from: `DB_POOL_SIZE` connections at most,
/// none kept open while idle, and `DB_CONNECT_TIMEOUT` to get one.
pub(super) fn options<DB: sqlx::Database>(settings: &Settings) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(settings.pool_size)
        .min_connections(0)
        .acquire_timeout(settings.connect_timeout)
}

/// The write pool, which exists only in read-write mode.
pub(super) fn writer<DB: sqlx::Database>(write: Option<&Pool<DB>>) -> Result<&Pool<DB>, Error> {
    write.ok_or_else(|| Error::NotAllowed("the connector is read-only (DB_ACCESS_MODE)".to_owned()))
}

/// Closes the read pool, then the write pool if there is one.
pub(super) async fn close<DB: sqlx::Database>(read: &Pool<DB>, write: Option<&Pool<DB>>) {
    read.close().await;
    if let Some(write) = write {
        write.close().await;
    }
}

/// Runs `work` on `conn` inside a transaction begun with `begin` (the engine's
/// `BEGIN ... READ ONLY`; `None` for a plain `BEGIN`), then rolls it back:
/// nothing a read did survives. The work's error comes first, then the
/// rollback's.
pub(super) async fn read_only<DB, T>(
    conn: &mut DB::Connection,
    begin: Option<&'static str>,
    work: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, Error>,
) -> Result<T, Error>
where
    DB: sqlx::Database,
{
    let mut tx = match begin {
        Some(statement) => conn.begin_with(statement).await?,
        None => conn.begin().await?,
    };
    let result = work(&mut tx).await;
    rolled_back(tx, result).await
}

/// Whether `cleanup` (what a statement may have left on its session: locks,
/// settings) finished within `timeout`, before the connection is reused; on
/// false the pool closes the connection instead. `what` names the clean-up in
/// the warning (`reset`, `release the locks of`).
pub(super) async fn cleaned<E: std::fmt::Display>(
    cleanup: impl Future<Output = Result<impl Sized, E>>,
    timeout: Duration,
    what: &str,
) -> bool {
    match tokio::time::timeout(timeout, cleanup).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot {what} a database session; closing the connection");
            false
        }
        Err(_) => {
            tracing::warn!(
                "trying to {what} a database session took too long; closing the connection"
            );
            false
        }
    }
}
