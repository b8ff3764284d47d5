//! What every engine does the same way with its pools: how a pool is sized
//! and bounded, when a pooled connection is checked before use, the write pool
//! that exists only in read-write mode, the read-only transaction a read runs
//! in (always rolled back) unless the role and the session already make every
//! statement read-only, one more try of a read whose connection broke, the
//! clean-up of a session before its connection is reused, and closing. The
//! engine modules keep what differs: connect options, how a transaction is
//! begun, what a session must be cleaned of.

use std::fmt::Display;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use prost_types::Value;
use sqlx::pool::PoolOptions;
use sqlx::query::Query;
use sqlx::{Connection as _, Executor, IntoArguments, Pool};

use super::{Caps, EngineKind, Rows, Settings, collect, columns_of, rolled_back};
use crate::config::AccessMode;
use crate::error::Error;
use crate::telemetry::{self, PoolName, PoolWatch};
use crate::values;

/// A pooled connection used this recently is handed out without a liveness
/// check (a round trip per operation otherwise); one idle longer is pinged
/// first. A connection that broke in between fails its read with an I/O
/// error, and [`retried_once`] runs the read again on another connection.
pub(super) const TRUSTED_IDLE: Duration = Duration::from_secs(1);

/// The connect options `DATABASE_URL` gives for `engine` (as the message
/// names it: `PostgreSQL`, `MySQL`, `SQLite`).
pub(super) fn connect_options<O>(url: &str, engine: &str) -> Result<O, Error>
where
    O: FromStr,
    O::Err: Display,
{
    O::from_str(url).map_err(|e| {
        Error::InvalidArgument(format!("DATABASE_URL is not a valid {engine} URL: {e}"))
    })
}

/// Pool options every engine starts from: `DB_POOL_SIZE` connections at most,
/// none kept open while idle, `DB_CONNECT_TIMEOUT` to get one, and a liveness
/// check only for connections idle longer than [`TRUSTED_IDLE`].
pub(super) fn options<DB: sqlx::Database>(settings: &Settings) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(settings.pool_size)
        .min_connections(0)
        .acquire_timeout(settings.connect_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= TRUSTED_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// How a read is kept from changing anything at the transaction level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTransaction {
    /// `BEGIN ... READ ONLY` before the statement and `ROLLBACK` after it: two
    /// more round trips, needed while the database user could write (read-write
    /// mode, or `DB_ALLOW_PRIVILEGED` serving a user that can).
    Explicit,
    /// The statement's own transaction (PostgreSQL's implicit one, MySQL's
    /// autocommit), read-only because the session is (PostgreSQL
    /// `default_transaction_read_only`, restored by `RESET ALL` before reuse;
    /// MySQL `SET SESSION TRANSACTION READ ONLY`, asserted again before reuse),
    /// on behalf of a user the start-up check found able only to read.
    Statement,
}

/// Whether a read that ended in `result` runs once more, on another
/// connection: when its connection broke under it (a pooled connection is not
/// pinged when it was used within [`TRUSTED_IDLE`]). A read changed nothing,
/// so trying it again is safe.
pub(super) fn read_again<T>(result: &Result<T, Error>) -> bool {
    match result {
        Err(error) if error.is_connection_lost() => {
            tracing::debug!(%error, "a pooled connection broke; reading on another");
            true
        }
        _ => false,
    }
}

/// The result of `attempt`, run once more when its connection broke under it
/// (see [`read_again`]). Only for reads: a read changed nothing.
pub(super) async fn retried_once<T, F>(attempt: impl Fn() -> F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let result = attempt().await;
    if read_again(&result) {
        return attempt().await;
    }
    result
}

/// The rows of `query` (the statement `sql` with its parameters bound) on
/// `conn`, within `caps`, each value decoded with `decode`. When no row came
/// back the columns are described instead, so an empty result still has them.
pub(super) async fn rows<'q, DB, A, D>(
    conn: &mut DB::Connection,
    sql: &'q str,
    query: Query<'q, DB, A>,
    caps: Caps,
    decode: D,
) -> Result<Rows, Error>
where
    DB: sqlx::Database,
    A: IntoArguments<'q, DB> + 'q,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    D: Fn(&DB::Row, usize, &mut values::ValueCap) -> Result<Value, Error>,
{
    let mut rows = collect(query.fetch(&mut *conn), caps, decode).await?;
    if rows.columns.is_empty() {
        let described = (&mut *conn).describe(sql).await?;
        rows.columns = columns_of(described.columns());
    }
    Ok(rows)
}

/// The pools of one database: the read pool, and the write pool that exists
/// only in read-write mode.
pub(super) struct Pair<DB: sqlx::Database> {
    pub(super) read: Pool<DB>,
    pub(super) write: Option<Pool<DB>>,
}

impl<DB: sqlx::Database> Pair<DB> {
    /// The read pool `read`, and the write pool `open` opens in read-write
    /// mode only (see [`Self::writer`]).
    pub(super) fn new(
        settings: &Settings,
        read: Pool<DB>,
        open: impl FnOnce() -> Pool<DB>,
    ) -> Self {
        Self {
            read,
            write: (settings.access_mode == AccessMode::ReadWrite).then(open),
        }
    }

    /// The write pool, which exists only in read-write mode.
    pub(super) fn writer(&self) -> Result<&Pool<DB>, Error> {
        self.write.as_ref().ok_or_else(|| {
            Error::NotAllowed("the connector is read-only (DB_ACCESS_MODE)".to_owned())
        })
    }

    /// Each row of `query` (a catalog query, run on the read pool), as `each`
    /// makes it.
    pub(super) async fn each_row<'q, A, T>(
        &self,
        query: Query<'q, DB, A>,
        each: impl Fn(&DB::Row) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error>
    where
        A: IntoArguments<'q, DB> + 'q,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    {
        query
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(each)
            .collect()
    }

    /// Checks that the read pool hands out a live connection (a `ping` round trip).
    pub(super) async fn ping(&self) -> Result<(), Error> {
        let mut conn = self.read.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    /// Closes the read pool, then the write pool if there is one.
    pub(super) async fn close(&self) {
        self.read.close().await;
        if let Some(write) = &self.write {
            write.close().await;
        }
    }

    /// Starts watching both pools for the metrics of a database of `kind`.
    pub(super) fn watch(&self, kind: EngineKind) -> Arc<PoolWatch> {
        let named = std::iter::once((PoolName::Read, self.read.clone()))
            .chain(self.write.iter().map(|w| (PoolName::Write, w.clone())));
        telemetry::watch_pools(kind, named)
    }
}

/// Runs `work` on `conn` inside a transaction begun with `begin` (the engine's
/// `BEGIN ... READ ONLY`; `None` for a plain `BEGIN`), then rolls it back:
/// nothing a read did survives. The work's error comes first, then the
/// rollback's. With [`ReadTransaction::Statement`] `work` runs as it is.
pub(super) async fn read<DB, T>(
    conn: &mut DB::Connection,
    transaction: ReadTransaction,
    begin: &'static str,
    work: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, Error>,
) -> Result<T, Error>
where
    DB: sqlx::Database,
{
    match transaction {
        ReadTransaction::Explicit => read_only::<DB, T>(conn, Some(begin), work).await,
        ReadTransaction::Statement => work(conn).await,
    }
}

/// Runs `work` on `conn` inside a transaction begun with `begin`, then rolls
/// it back (see [`read`]).
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
