//! The database side: pools, the safety layers below the parser guard, typed
//! decoding, and the catalog queries of each engine.
//!
//! [`Database`] is what the gRPC service talks to. It owns a read pool whose
//! connections are opened read-only (PostgreSQL `default_transaction_read_only`,
//! MySQL `SET SESSION TRANSACTION READ ONLY`, SQLite `SQLITE_OPEN_READONLY` and
//! `PRAGMA query_only`) with a server-side statement timeout, and, only in
//! read-write mode, a separate write pool for Execute. Every read runs as a
//! prepared statement inside a READ ONLY transaction that is rolled back (on
//! PostgreSQL and MySQL the statement's own transaction, once the start-up check
//! found a user that can only read: the session already makes it read-only, see
//! [`ReadTransaction`]), fetches
//! at most the row and byte caps (per result and per value, checked as rows
//! arrive), and is bounded by the statement timeout on the client side too.
//! Connections are cleaned of session state (locks) before they are reused. In
//! read-only mode nothing runs until [`Database::check_access`] found that the
//! database user can only read (or the operator allowed it). The engine modules
//! hold what differs per engine: how to connect and clean a session, what the
//! user may do, how to decode values, and how to read the catalog.

mod mysql;
mod pools;
mod postgres;
mod postgres_params;
mod sqlite;

pub use pools::ReadTransaction;
/// The PostgreSQL session clean-up after each use of a connection (for the benchmark's baseline).
pub use postgres::SESSION_RESET as POSTGRES_SESSION_RESET;

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use prost_types::{ListValue, Value};
use secrecy::ExposeSecret;
use sqlx::{Column as _, TypeInfo as _};
use switchboard_proto::database::v1 as pb;

use crate::config::{AccessMode, Config, Target};
use crate::error::Error;
use crate::guard;
use crate::telemetry::{self, PoolName};
use crate::values;

/// The SQL engines the connector speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl EngineKind {
    /// The dialect's name, for messages.
    pub fn dialect_name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::MySql => "MySQL/MariaDB",
            Self::Sqlite => "SQLite",
        }
    }

    /// The engine as the proto names it.
    pub fn proto(self) -> pb::Engine {
        match self {
            Self::Postgres => pb::Engine::Postgresql,
            Self::MySql => pb::Engine::Mysql,
            Self::Sqlite => pb::Engine::Sqlite,
        }
    }
}

/// Limits every operation runs under.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Server-side statement timeout, and (plus a grace) the client-side bound.
    pub statement_timeout: Duration,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// Cap on the bytes of values in one result.
    pub max_result_bytes: usize,
    /// Cap on the bytes of one value.
    pub max_value_bytes: usize,
    /// Cap on rows in one result.
    pub max_rows: u32,
    /// Whether Explain may run the query.
    pub explain_analyze: bool,
    /// Read-only or read-write.
    pub access_mode: AccessMode,
    /// Serve read-only even when the database user can write.
    pub allow_privileged: bool,
    /// Connections per pool.
    pub pool_size: u32,
}

impl Settings {
    /// The limits of `config`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            statement_timeout: config.statement_timeout,
            connect_timeout: config.connect_timeout,
            max_result_bytes: config.max_result_bytes,
            max_value_bytes: config.max_value_bytes,
            max_rows: config.max_rows,
            explain_analyze: config.explain_analyze,
            access_mode: config.access_mode,
            allow_privileged: config.allow_privileged,
            pool_size: config.pool_size,
        }
    }

    /// How long a statement may wait for a lock before the server gives up:
    /// half the statement timeout, so a read stuck behind a schema change says
    /// so instead of timing out.
    pub fn lock_timeout(&self) -> Duration {
        (self.statement_timeout / 2).max(Duration::from_millis(1))
    }

    /// How long returning a connection to the pool may take (releasing locks,
    /// resetting the session) before the connection is closed instead.
    pub(crate) fn release_timeout(&self) -> Duration {
        self.connect_timeout
    }

    fn client_deadline(&self) -> Duration {
        // The server cancels at statement_timeout; the client gives it a moment
        // to say so before giving up on the connection itself.
        self.statement_timeout + Duration::from_secs(2)
    }
}

/// Rows of a read, with their columns.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// `(name, SQL type)` of each column.
    pub columns: Vec<(String, String)>,
    /// The rows, aligned with `columns`.
    pub rows: Vec<ListValue>,
    /// Why the result was cut, if it was.
    pub truncated: Option<String>,
    /// Time the database took.
    pub elapsed: Duration,
}

/// What a write did.
#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    /// Rows inserted, updated or deleted.
    pub rows_affected: u64,
    /// Generated key of the last insert, where the engine reports one.
    pub last_insert_id: Option<i64>,
    /// Rows returned by `RETURNING`, if any.
    pub rows: Rows,
}

/// A query plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plan text.
    pub text: String,
    /// `text` or `json`.
    pub format: &'static str,
    /// Whether the query was run.
    pub analyzed: bool,
    /// Time the database took.
    pub elapsed: Duration,
}

/// What the database user may do beyond reading, as the start-up check found.
#[derive(Debug, Clone, Default)]
pub struct Privileges {
    /// The user as the database names it (`postgres`, `app@%`, the SQLite file).
    pub user: String,
    /// Each privilege beyond reading, saying how to take it away.
    pub beyond_reading: Vec<String>,
}

/// The start-up check of the database user, done once it answers.
#[derive(Debug, Default)]
struct AccessCheck {
    /// Set once the user was found read-only (or allowed by DB_ALLOW_PRIVILEGED).
    passed: std::sync::atomic::AtomicBool,
    /// Set when the check found nothing beyond reading (not when it was waived).
    reads_only: std::sync::atomic::AtomicBool,
}

/// The row and byte caps of one read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub rows: usize,
    pub bytes: usize,
    /// Bytes of one value.
    pub value_bytes: usize,
}

/// A statement and its parameters, as the caller sent them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statement<'a> {
    /// The SQL text.
    pub sql: &'a str,
    /// The values of its placeholders, in order.
    pub params: &'a [serde_json::Value],
}

/// One read, as an engine runs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Read<'a> {
    /// The statement.
    pub statement: Statement<'a>,
    /// The caps of its result.
    pub caps: Caps,
    /// How it is kept read-only at the transaction level.
    pub transaction: ReadTransaction,
}

/// One data-changing statement, as an engine runs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Write<'a> {
    /// The statement.
    pub statement: Statement<'a>,
    /// The caps of the rows it returns (`RETURNING`).
    pub caps: Caps,
    /// Whether it is an INSERT, whose generated key is reported.
    pub inserts: bool,
}

/// Which tables to list: those of `schema` (default: the default schema)
/// whose name contains `name_contains`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableFilter<'a> {
    /// The schema; `None` for the default one.
    pub schema: Option<&'a str>,
    /// Part of the names to keep; `None` keeps every table.
    pub name_contains: Option<&'a str>,
}

/// A table or view as the caller named it, in `schema` (default: the default
/// schema).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableName<'a> {
    /// The schema; `None` for the default one.
    pub schema: Option<&'a str>,
    /// The table's own name.
    pub name: &'a str,
}

/// The tables of a schema, with the schema actually listed.
type Tables = (String, Vec<pb::Table>);

/// What every engine does, each its own way: [`Database`] runs it after its
/// own checks, under its client-side deadline, span and pool metrics. An
/// engine bounds each statement by the statement timeout itself as well (the
/// server's own timeout, SQLite's progress handler).
trait Engine: Send + Sync {
    /// The sqlx driver.
    type Db: sqlx::Database;

    /// The read pool and, in read-write mode, the write pool.
    fn pools(&self) -> &pools::Pair<Self::Db>;

    /// What the database user may do beyond reading (see [`Privileges`]).
    fn privileges(&self) -> impl Future<Output = Result<Privileges, Error>> + Send;

    /// The rows of one read, within its caps.
    fn query(&self, read: Read<'_>) -> impl Future<Output = Result<Rows, Error>> + Send;

    /// Runs one data-changing statement on the write pool, where it commits
    /// by itself.
    fn execute(&self, write: Write<'_>)
    -> impl Future<Output = Result<WriteOutcome, Error>> + Send;

    /// The plan of `query`, which runs as well with `analyze`.
    fn explain(
        &self,
        query: Statement<'_>,
        analyze: bool,
    ) -> impl Future<Output = Result<Plan, Error>> + Send;

    /// The schemas, the system's too with `include_system` (where the engine
    /// has any).
    fn list_schemas(
        &self,
        include_system: bool,
    ) -> impl Future<Output = Result<Vec<pb::Schema>, Error>> + Send;

    /// The tables `filter` selects.
    fn list_tables(
        &self,
        filter: TableFilter<'_>,
    ) -> impl Future<Output = Result<Tables, Error>> + Send;

    /// Columns, keys and indexes of one table or view.
    fn describe_table(
        &self,
        table: TableName<'_>,
    ) -> impl Future<Output = Result<pb::TableDescription, Error>> + Send;

    /// Checks that the database answers through the read pool.
    fn ping(&self) -> impl Future<Output = Result<(), Error>> + Send {
        self.pools().ping()
    }
}

/// What the result of an engine's operation is awaited as.
type Reply<'a, T> = futures::future::BoxFuture<'a, Result<T, Error>>;

/// [`Engine`] with its futures boxed, so that [`Database`] can hold whichever
/// engine `DATABASE_URL` names; each method is the [`Engine`] one.
trait AnyEngine: Send + Sync {
    fn privileges(&self) -> Reply<'_, Privileges>;
    fn query<'a>(&'a self, read: Read<'a>) -> Reply<'a, Rows>;
    fn execute<'a>(&'a self, write: Write<'a>) -> Reply<'a, WriteOutcome>;
    fn explain<'a>(&'a self, query: Statement<'a>, analyze: bool) -> Reply<'a, Plan>;
    fn list_schemas(&self, include_system: bool) -> Reply<'_, Vec<pb::Schema>>;
    fn list_tables<'a>(&'a self, filter: TableFilter<'a>) -> Reply<'a, Tables>;
    fn describe_table<'a>(&'a self, table: TableName<'a>) -> Reply<'a, pb::TableDescription>;
    fn ping(&self) -> Reply<'_, ()>;
    /// Closes the pools.
    fn close(&self) -> futures::future::BoxFuture<'_, ()>;
    /// Starts watching the pools for the metrics of a database of `kind`.
    fn watch(&self, kind: EngineKind) -> std::sync::Arc<telemetry::PoolWatch>;
}

impl<E: Engine> AnyEngine for E {
    fn privileges(&self) -> Reply<'_, Privileges> {
        Box::pin(Engine::privileges(self))
    }
    fn query<'a>(&'a self, read: Read<'a>) -> Reply<'a, Rows> {
        Box::pin(Engine::query(self, read))
    }
    fn execute<'a>(&'a self, write: Write<'a>) -> Reply<'a, WriteOutcome> {
        Box::pin(Engine::execute(self, write))
    }
    fn explain<'a>(&'a self, query: Statement<'a>, analyze: bool) -> Reply<'a, Plan> {
        Box::pin(Engine::explain(self, query, analyze))
    }
    fn list_schemas(&self, include_system: bool) -> Reply<'_, Vec<pb::Schema>> {
        Box::pin(Engine::list_schemas(self, include_system))
    }
    fn list_tables<'a>(&'a self, filter: TableFilter<'a>) -> Reply<'a, Tables> {
        Box::pin(Engine::list_tables(self, filter))
    }
    fn describe_table<'a>(&'a self, table: TableName<'a>) -> Reply<'a, pb::TableDescription> {
        Box::pin(Engine::describe_table(self, table))
    }
    fn ping(&self) -> Reply<'_, ()> {
        Box::pin(Engine::ping(self))
    }
    fn close(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(self.pools().close())
    }
    fn watch(&self, kind: EngineKind) -> std::sync::Arc<telemetry::PoolWatch> {
        self.pools().watch(kind)
    }
}

/// One database with its pools; cheap to share behind an `Arc`.
pub struct Database {
    kind: EngineKind,
    engine: Box<dyn AnyEngine>,
    identity: String,
    settings: Settings,
    /// Whether the database user passed the read-only check.
    access: AccessCheck,
    /// The parser guard of reads, with the operator's function list.
    guard: guard::ReadOnlyGuard,
    /// Where the database is, for spans.
    target: telemetry::DbTarget,
    /// Whether spans carry the statement text (`DB_TRACE_STATEMENTS`).
    trace_statements: bool,
    /// The pools as the metrics see them.
    pools: std::sync::Arc<telemetry::PoolWatch>,
}

/// One operation on the database, as its span and the pool metrics see it.
#[derive(Debug, Clone, Copy)]
struct Operation<'a> {
    /// `db.operation`: the SQL keyword.
    name: &'a str,
    /// The pool it uses.
    pool: PoolName,
    /// The statement, for `db.statement` when that is switched on.
    statement: Option<&'a str>,
}

impl<'a> Operation<'a> {
    fn read(sql: &'a str) -> Self {
        Self {
            name: telemetry::sql_operation(sql),
            pool: PoolName::Read,
            statement: Some(sql),
        }
    }

    /// A catalog read (the connector's own SELECTs on the catalog).
    fn catalog() -> Self {
        Self {
            name: "SELECT",
            pool: PoolName::Read,
            statement: None,
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("kind", &self.kind)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens the pools for `config` (lazily for network databases, so the
    /// connector starts while the database is down). The SQLite demo database is
    /// created here when missing.
    pub async fn open(config: &Config) -> Result<Self, Error> {
        let settings = Settings::from_config(config);
        let url = match &config.target {
            Target::Url(url) => url.expose_secret().to_owned(),
            Target::Demo(path) => {
                crate::demo::ensure(path).await?;
                format!("sqlite:{}", path.display())
            }
        };
        let identity = identity_of(&url);
        let (kind, engine): (_, Box<dyn AnyEngine>) =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                (
                    EngineKind::Postgres,
                    Box::new(postgres::Pools::open(&url, &settings)?),
                )
            } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
                let url = url.replacen("mariadb://", "mysql://", 1);
                (
                    EngineKind::MySql,
                    Box::new(mysql::Pools::open(&url, &settings)?),
                )
            } else if url.starts_with("sqlite:") {
                (
                    EngineKind::Sqlite,
                    Box::new(sqlite::Pools::open(&url, &settings).await?),
                )
            } else {
                return Err(Error::InvalidArgument(
                    "DATABASE_URL must start with postgres://, mysql://, mariadb:// or sqlite:"
                        .to_owned(),
                ));
            };
        tracing::info!(engine = kind.dialect_name(), database = %identity, mode = ?settings.access_mode, "database configured");
        let pools = engine.watch(kind);
        Ok(Self {
            target: telemetry::DbTarget::of(kind, &url),
            trace_statements: config.trace_statements,
            pools,
            kind,
            engine,
            identity,
            settings,
            access: AccessCheck::default(),
            guard: guard::ReadOnlyGuard::new(
                kind,
                config.explain_analyze,
                config.allow_functions.clone(),
                config.max_sql_tokens,
            ),
        })
    }

    /// What the database user may do beyond reading (see [`Privileges`]).
    pub async fn privileges(&self) -> Result<Privileges, Error> {
        self.engine.privileges().await
    }

    /// In read-only mode, checks that the database user can only read; a user
    /// that can write is refused with [`Error::NotAllowed`] naming the user,
    /// each privilege and its fix, unless `DB_ALLOW_PRIVILEGED=true` (then a
    /// warning is logged). Other errors mean the database could not be asked.
    /// Once passed, the check is not repeated.
    pub async fn check_access(&self) -> Result<(), Error> {
        use std::sync::atomic::Ordering;
        if self.settings.access_mode == AccessMode::ReadWrite
            || self.access.passed.load(Ordering::Acquire)
        {
            return Ok(());
        }
        let found = tokio::time::timeout(self.settings.client_deadline(), self.privileges())
            .await
            .map_err(|_| {
                Error::Unavailable(
                    "the database did not answer the privilege check in time".to_owned(),
                )
            })??;
        if !found.beyond_reading.is_empty() {
            if !self.settings.allow_privileged {
                return Err(Error::NotAllowed(refusal(&found)));
            }
            tracing::warn!(
                user = %found.user,
                privileges = %found.beyond_reading.join("; "),
                "DB_ALLOW_PRIVILEGED=true: serving read-only as a database user that can write; only the connector's own layers keep it read-only, give it a read-only user"
            );
        }
        self.access
            .reads_only
            .store(found.beyond_reading.is_empty(), Ordering::Release);
        self.access.passed.store(true, Ordering::Release);
        Ok(())
    }

    /// How reads are kept read-only at the transaction level: by the
    /// statement's own transaction once the role and the session make every
    /// statement read-only (PostgreSQL, MySQL/MariaDB in read-only mode with a
    /// user the start-up check found able only to read), else by a READ ONLY
    /// transaction around each read, rolled back. SQLite always has the
    /// transaction: it costs no round trip there.
    pub fn read_transaction(&self) -> ReadTransaction {
        let role_reads_only = self.settings.access_mode == AccessMode::ReadOnly
            && self
                .access
                .reads_only
                .load(std::sync::atomic::Ordering::Acquire);
        if role_reads_only && self.kind != EngineKind::Sqlite {
            ReadTransaction::Statement
        } else {
            ReadTransaction::Explicit
        }
    }

    /// The read-only layers in force for reads, in the README's order, one
    /// line each (for the benchmark's report and logs).
    pub fn read_only_layers(&self) -> Vec<String> {
        let session = match self.kind {
            EngineKind::Postgres => {
                "read-only session: default_transaction_read_only=on, statement_timeout, lock_timeout, idle_in_transaction_session_timeout at connect"
            }
            EngineKind::MySql => {
                "read-only session: SET SESSION TRANSACTION READ ONLY, statement and lock timeouts at connect"
            }
            EngineKind::Sqlite => "read-only session: SQLITE_OPEN_READONLY, PRAGMA query_only",
        };
        let role = if self.settings.access_mode == AccessMode::ReadWrite {
            "database user: not checked (read-write mode)"
        } else if self
            .access
            .reads_only
            .load(std::sync::atomic::Ordering::Acquire)
        {
            "database user: checked at start, can only read"
        } else if self
            .access
            .passed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            "database user: CAN WRITE, served under DB_ALLOW_PRIVILEGED=true"
        } else {
            "database user: not checked yet"
        };
        let transaction = match self.read_transaction() {
            ReadTransaction::Explicit => "READ ONLY transaction around each read, rolled back",
            ReadTransaction::Statement => {
                "each read in its own statement transaction, read-only by the session (no BEGIN/ROLLBACK round trips)"
            }
        };
        let cleanup = match self.kind {
            EngineKind::Postgres => {
                "session cleaned before reuse: pg_advisory_unlock_all(), UNLISTEN *, RESET ALL"
            }
            EngineKind::MySql => {
                "session cleaned before reuse: RELEASE_ALL_LOCKS(), SET SESSION TRANSACTION READ ONLY"
            }
            EngineKind::Sqlite => "session cleaned before reuse: nothing outlives a statement",
        };
        vec![
            "parser guard".to_owned(),
            role.to_owned(),
            "prepared statement (one statement per call)".to_owned(),
            session.to_owned(),
            transaction.to_owned(),
            cleanup.to_owned(),
            format!(
                "timeouts: statement {} s on the server and the client",
                self.settings.statement_timeout.as_secs_f64()
            ),
            format!(
                "caps: {} rows, {} bytes per result, {} bytes per value",
                self.settings.max_rows,
                self.settings.max_result_bytes,
                self.settings.max_value_bytes
            ),
        ]
    }

    /// The engine.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// Which database this is, without any password (for cache keys and logs).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The limits in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs one read-only statement after the parser guard accepted it.
    pub async fn query(
        &self,
        sql: &str,
        params: &[serde_json::Value],
        max_rows: u32,
    ) -> Result<Rows, Error> {
        self.guard
            .check(sql)
            .map_err(|r| Error::Refused(r.to_string()))?;
        self.query_without_parser_guard(sql, params, max_rows).await
    }

    /// Runs a statement through every safety layer EXCEPT the parser guard: a
    /// prepared statement on a read-only connection, in a READ ONLY transaction
    /// that is rolled back, under the timeout and caps. Exists so tests can prove
    /// that these layers refuse writes on their own; services call [`Self::query`].
    pub async fn query_without_parser_guard(
        &self,
        sql: &str,
        params: &[serde_json::Value],
        max_rows: u32,
    ) -> Result<Rows, Error> {
        let caps = Caps {
            rows: max_rows.min(self.settings.max_rows) as usize,
            bytes: self.settings.max_result_bytes,
            value_bytes: self.settings.max_value_bytes,
        };
        let started = Instant::now();
        let mut rows = self
            .bounded(Operation::read(sql), async {
                // After the access check (inside `bounded`), which decides it.
                let read = Read {
                    statement: Statement { sql, params },
                    caps,
                    transaction: self.read_transaction(),
                };
                self.engine.query(read).await
            })
            .await?;
        rows.elapsed = started.elapsed();
        Ok(rows)
    }

    /// Runs one data-changing statement and commits it (read-write mode only).
    pub async fn execute(
        &self,
        sql: &str,
        params: &[serde_json::Value],
    ) -> Result<WriteOutcome, Error> {
        if self.settings.access_mode != AccessMode::ReadWrite {
            return Err(Error::NotAllowed(
                "the database connector is read-only: Execute is disabled. The operator can enable it with DB_ACCESS_MODE=read-write; use Query for reading".to_owned(),
            ));
        }
        let statement = guard::check_single_statement(self.kind, sql).map_err(Error::Refused)?;
        let inserts = guard::is_insert(&statement);
        let caps = Caps {
            rows: self.settings.max_rows as usize,
            bytes: self.settings.max_result_bytes,
            value_bytes: self.settings.max_value_bytes,
        };
        let started = Instant::now();
        let operation = Operation {
            name: telemetry::sql_operation(sql),
            pool: PoolName::Write,
            statement: Some(sql),
        };
        let mut outcome = self
            .bounded(operation, async {
                let write = Write {
                    statement: Statement { sql, params },
                    caps,
                    inserts,
                };
                self.engine.execute(write).await
            })
            .await?;
        outcome.rows.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// The plan of one read-only query; runs it only with `analyze` (when allowed).
    pub async fn explain(
        &self,
        sql: &str,
        params: &[serde_json::Value],
        analyze: bool,
    ) -> Result<Plan, Error> {
        let statement = self
            .guard
            .check(sql)
            .map_err(|r| Error::Refused(r.to_string()))?;
        // Only a query has a plan: not EXPLAIN itself, SHOW or DESCRIBE.
        if !matches!(statement, sqlparser::ast::Statement::Query(_)) {
            return Err(Error::InvalidArgument(
                "give the query itself, without EXPLAIN (or SHOW/DESCRIBE, which have no plan)"
                    .to_owned(),
            ));
        }
        if analyze && !self.settings.explain_analyze {
            return Err(Error::NotAllowed(
                "analyze is disabled by the operator (DB_EXPLAIN_ANALYZE=false); ask for the plan without analyze".to_owned(),
            ));
        }
        let sql = sql.trim().trim_end_matches(';').trim_end();
        let started = Instant::now();
        let operation = Operation {
            name: "EXPLAIN",
            ..Operation::read(sql)
        };
        let mut plan = self
            .bounded(operation, async {
                let query = Statement { sql, params };
                self.engine.explain(query, analyze).await
            })
            .await?;
        plan.elapsed = started.elapsed();
        Ok(plan)
    }

    /// The schemas (databases on MySQL, attached databases on SQLite).
    pub async fn list_schemas(&self, include_system: bool) -> Result<Vec<pb::Schema>, Error> {
        self.bounded(Operation::catalog(), async {
            self.engine.list_schemas(include_system).await
        })
        .await
    }

    /// The tables of `schema` (default: the default schema) whose name contains
    /// `name_contains`, with the schema actually listed.
    pub async fn list_tables(
        &self,
        schema: Option<&str>,
        name_contains: Option<&str>,
    ) -> Result<(String, Vec<pb::Table>), Error> {
        self.bounded(Operation::catalog(), async {
            let filter = TableFilter {
                schema,
                name_contains,
            };
            self.engine.list_tables(filter).await
        })
        .await
    }

    /// Columns, keys and indexes of one table or view.
    pub async fn describe_table(
        &self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<pb::TableDescription, Error> {
        let mut description = self
            .bounded(Operation::catalog(), async {
                let table = TableName {
                    schema,
                    name: table,
                };
                self.engine.describe_table(table).await
            })
            .await?;
        description.engine = self.kind.proto() as i32;
        Ok(description)
    }

    /// Checks that the database answers (a `SELECT 1` through the read pool).
    pub async fn ping(&self) -> Result<(), Error> {
        match tokio::time::timeout(self.settings.connect_timeout * 2, self.engine.ping()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable(
                "the database did not answer a health check in time".to_owned(),
            )),
        }
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.engine.close().await
    }

    /// Bounds `work` by the client-side deadline and names the timeout in
    /// force when the database cancelled a statement; observes it as `operation`
    /// (a client span, and an operation in flight on its pool).
    async fn bounded<T>(
        &self,
        operation: Operation<'_>,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        use tracing::Instrument as _;
        let statement = operation.statement.filter(|_| self.trace_statements);
        let span = telemetry::operation_span(&self.target, operation.name, statement);
        let _in_flight = self.pools.in_flight(operation.pool);
        let result = async {
            // Nothing runs as a user that can write until the check allowed it.
            self.check_access().await?;
            let seconds = self.settings.statement_timeout.as_secs_f64();
            match tokio::time::timeout(self.settings.client_deadline(), work).await {
                Err(_) | Ok(Err(Error::Timeout { .. })) => Err(Error::Timeout { seconds }),
                Ok(result) => result,
            }
        }
        .instrument(span.clone())
        .await;
        telemetry::record_outcome(&span, &result);
        result
    }
}

/// Result rows kept within the caps: rows, bytes per result and bytes per
/// value, checked value by value as rows arrive (the first row too).
struct Capped {
    caps: Caps,
    rows: Rows,
    bytes: usize,
    values: values::ValueCap,
}

impl Capped {
    fn new(caps: Caps) -> Self {
        Self {
            caps,
            rows: Rows::default(),
            bytes: 0,
            values: values::ValueCap::new(caps.value_bytes),
        }
    }

    /// Keeps `row`, decoding each value with `decode`, unless a cap is reached;
    /// then returns false and says which in `rows.truncated`. A row that would
    /// take the result past its byte cap is left out whole, even the first.
    fn push<R: sqlx::Row>(
        &mut self,
        row: &R,
        decode: &impl Fn(&R, usize, &mut values::ValueCap) -> Result<Value, Error>,
    ) -> Result<bool, Error> {
        let out = &mut self.rows;
        if out.columns.is_empty() {
            out.columns = columns_of(row.columns());
        }
        if out.truncated.is_some() {
            return Ok(false);
        }
        if out.rows.len() >= self.caps.rows {
            out.truncated = Some(format!("max_rows {} reached", self.caps.rows));
            return Ok(false);
        }
        let mut values = Vec::with_capacity(row.len());
        let mut bytes = self.bytes;
        for i in 0..row.len() {
            let value = decode(row, i, &mut self.values)?;
            bytes += values::json_size(&value) + 1;
            if bytes > self.caps.bytes {
                out.truncated = Some(format!(
                    "result size cap of {} bytes reached (DB_MAX_RESULT_BYTES) after {} row(s); select fewer or narrower columns, or fewer rows",
                    self.caps.bytes,
                    out.rows.len()
                ));
                return Ok(false);
            }
            values.push(value);
        }
        self.bytes = bytes;
        out.rows.push(ListValue { values });
        Ok(true)
    }

    /// The rows, with every reason they were cut.
    fn finish(mut self) -> Rows {
        if let Some(cut) = self.values.note(&self.rows.columns) {
            self.rows.truncated = Some(match self.rows.truncated.take() {
                Some(reason) => format!("{reason}; {cut}"),
                None => cut,
            });
        }
        self.rows
    }
}

/// The start-up refusal for a user with `found` privileges beyond reading.
fn refusal(found: &Privileges) -> String {
    format!(
        "refusing to serve read-only (DB_ACCESS_MODE=read-only) as database user {:?}, which can do more than read: {}. Connect as a user that can only read (the SQL per engine is in the database connector's README, \"How read-only is enforced\"), or set DB_ALLOW_PRIVILEGED=true to serve anyway with a warning (not recommended)",
        found.user,
        found.beyond_reading.join("; ")
    )
}

/// Reads up to the caps from a row stream, decoding each value with `decode`.
pub(crate) async fn collect<R, S, D>(stream: S, caps: Caps, decode: D) -> Result<Rows, Error>
where
    R: sqlx::Row,
    S: Stream<Item = Result<R, sqlx::Error>>,
    D: Fn(&R, usize, &mut values::ValueCap) -> Result<Value, Error>,
{
    let mut stream = std::pin::pin!(stream);
    let mut out = Capped::new(caps);
    while let Some(row) = stream.next().await {
        if !out.push(&row?, &decode)? {
            break;
        }
    }
    Ok(out.finish())
}

/// Drains the stream of a data-changing statement: adds up what `done` reports
/// for each result (rows affected, generated key) and keeps `RETURNING` rows within
/// the caps. The whole stream is read: the statement has run either way.
pub(crate) async fn collect_write<Q, R, S, D>(
    stream: S,
    caps: Caps,
    decode: D,
    done: impl Fn(&Q) -> (u64, Option<i64>),
) -> Result<WriteOutcome, Error>
where
    R: sqlx::Row,
    S: Stream<Item = Result<sqlx::Either<Q, R>, sqlx::Error>>,
    D: Fn(&R, usize, &mut values::ValueCap) -> Result<Value, Error>,
{
    let mut stream = std::pin::pin!(stream);
    let mut returned = Capped::new(caps);
    let (mut rows_affected, mut last_insert_id, mut rows_returned) = (0, None, 0);
    while let Some(item) = stream.next().await {
        match item? {
            sqlx::Either::Left(result) => {
                let (affected, id) = done(&result);
                rows_affected += affected;
                last_insert_id = id.or(last_insert_id);
            }
            sqlx::Either::Right(row) => {
                rows_returned += 1;
                returned.push(&row, &decode)?;
            }
        }
    }
    Ok(WriteOutcome {
        // MariaDB reports no count for a statement that returns rows; every
        // returned row is an affected one.
        rows_affected: rows_affected.max(rows_returned),
        last_insert_id,
        rows: returned.finish(),
    })
}

/// The result of work done in a read's transaction `tx`, once `tx` is rolled
/// back (a read's always is: nothing it did survives). The work's error comes
/// first, then the rollback's.
pub(super) async fn rolled_back<DB: sqlx::Database, T, E: Into<Error>>(
    tx: sqlx::Transaction<'_, DB>,
    result: Result<T, E>,
) -> Result<T, Error> {
    let rollback = tx.rollback().await;
    let value = result.map_err(Into::into)?;
    rollback?;
    Ok(value)
}

/// `(name, type)` of result columns.
pub(crate) fn columns_of<C: sqlx::Column>(columns: &[C]) -> Vec<(String, String)> {
    columns
        .iter()
        .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
        .collect()
}

/// Decode failure of column `i` of `row`, as an error the agent can read.
pub(crate) fn decode_error<R: sqlx::Row>(
    row: &R,
    i: usize,
    error: impl std::fmt::Display,
) -> Error {
    let column = row
        .columns()
        .get(i)
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| i.to_string());
    Error::Decode {
        column,
        message: error.to_string(),
    }
}

/// The database URL without its password or query string: `postgres://app@db:5432/shop`.
pub fn identity_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => {
            let user = parsed.username();
            let host = parsed.host_str().unwrap_or("");
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let at = if user.is_empty() {
                String::new()
            } else {
                format!("{user}@")
            };
            format!("{}://{at}{host}{port}{}", parsed.scheme(), parsed.path())
        }
        _ => url.split('?').next().unwrap_or(url).to_owned(),
    }
}

/// That the schema the caller named does not exist or, without a name, that
/// the connection has no default one: `noun` is what the engine calls a schema
/// (`schema`, `database`), `default` what it calls the default one.
pub(crate) fn schema_not_found(schema: Option<&str>, noun: &str, default: &str) -> Error {
    Error::NotFound(match schema {
        Some(s) => format!("{noun} {s:?} does not exist; see ListSchemas"),
        None => format!("the connection has no {default}; pass `schema` (see ListSchemas)"),
    })
}

/// That `table` does not exist in `place` (the schema, as the engine names it).
pub(crate) fn table_not_found(table: &str, place: std::fmt::Arguments<'_>) -> Error {
    Error::NotFound(format!(
        "table {table:?} does not exist in {place}; see ListTables"
    ))
}

/// The `ON DELETE` / `ON UPDATE` action a one-letter PostgreSQL code stands for.
pub(crate) fn fk_action(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        other => other,
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_never_hold_the_password() {
        assert_eq!(
            identity_of("postgres://app:s3cret@db.internal:5432/shop?sslmode=require"),
            "postgres://app@db.internal:5432/shop"
        );
        assert_eq!(identity_of("sqlite:demo.sqlite3"), "sqlite:demo.sqlite3");
        assert!(!identity_of("mysql://root:pw@localhost/test").contains("pw"));
    }
}
