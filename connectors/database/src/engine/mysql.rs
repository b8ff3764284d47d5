//! MySQL and MariaDB: connection set-up, value decoding and catalog queries.
//!
//! Read connections run `SET SESSION TRANSACTION READ ONLY` when they open: on
//! MySQL a DDL statement commits the open transaction implicitly, so a READ ONLY
//! transaction alone would not stop `DROP TABLE`; the session setting does. The
//! statement timeout is set per session too (`max_statement_time` on MariaDB,
//! `max_execution_time` on MySQL), and a read that outlives it anyway is killed
//! on the server (`KILL QUERY`). Named locks are released before a connection is
//! reused; the privilege check reads the user's own `SHOW GRANTS`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use prost_types::Value;
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::query::Query;
use sqlx::{Connection, Executor, MySql, Row, TypeInfo, ValueRef};
use switchboard_proto::database::v1 as pb;

use super::{
    Engine, Plan, Privileges, Read, Rows, Settings, Statement, TableFilter, TableName, Tables,
    Write, WriteOutcome, collect_write, decode_error, pools, schema_not_found, table_not_found,
};
use crate::error::Error;
use crate::values;

const UNKNOWN: u8 = 0;
const MARIADB: u8 = 1;
const MYSQL: u8 = 2;

pub(super) struct Pools {
    pools: pools::Pair<MySql>,
    /// MariaDB or MySQL, learnt on the first connection (they differ in EXPLAIN).
    flavor: Arc<AtomicU8>,
    /// To open the connection that kills a statement past its deadline.
    options: Arc<MySqlConnectOptions>,
    statement_timeout: Duration,
    connect_timeout: Duration,
}

/// How long past the statement timeout a read may run before the connector
/// kills it on the server (the server's own timeout normally comes first).
const KILL_GRACE: Duration = Duration::from_secs(1);

/// How a read's transaction begins.
const BEGIN_READ_ONLY: &str = "START TRANSACTION READ ONLY";

/// The server's id of `conn`, to kill its statement if it must be.
async fn connection_id(conn: &mut MySqlConnection) -> Result<u64, Error> {
    Ok(sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(conn)
        .await?)
}

impl Pools {
    pub(super) fn open(url: &str, settings: &Settings) -> Result<Self, Error> {
        let options: MySqlConnectOptions = pools::connect_options(url, "MySQL")?;
        let flavor = Arc::new(AtomicU8::new(UNKNOWN));
        let timeout = settings.statement_timeout;
        let lock_timeout = settings.lock_timeout();
        let release_timeout = settings.release_timeout();
        let pool = |read_only: bool| {
            let flavor = flavor.clone();
            pools::options::<MySql>(settings)
                .after_connect(move |conn, _meta| {
                    let flavor = flavor.clone();
                    Box::pin(async move {
                        prepare_session(conn, read_only, timeout, lock_timeout, &flavor).await
                    })
                })
                .after_release(move |conn, _meta| {
                    Box::pin(
                        async move { Ok(release_locks(conn, read_only, release_timeout).await) },
                    )
                })
                .connect_lazy_with(options.clone())
        };
        Ok(Self {
            pools: pools::Pair::new(settings, pool(true), || pool(false)),
            flavor,
            options: Arc::new(options),
            statement_timeout: settings.statement_timeout,
            connect_timeout: settings.connect_timeout,
        })
    }

    /// `work` (running on connection `id`), cut off a moment after the
    /// statement timeout: the server's own timeout normally ends a statement
    /// first, but a statement can lift it for itself (MariaDB `SET STATEMENT
    /// max_statement_time = 0 FOR …` in a prepared statement, MySQL's
    /// `MAX_EXECUTION_TIME` hint), so the connector then kills it on the server
    /// (`KILL QUERY`, from a connection of its own) instead of leaving it running.
    async fn killed_past_deadline<T>(
        &self,
        id: u64,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.statement_timeout + KILL_GRACE, work).await {
            Ok(result) => result,
            Err(_) => {
                self.kill_query(id);
                Err(Error::Timeout { seconds: 0.0 })
            }
        }
    }

    /// Kills the statement running on connection `id`, in the background
    /// (bounded by the connect timeout); a user may always kill its own.
    fn kill_query(&self, id: u64) {
        let options = self.options.clone();
        let timeout = self.connect_timeout;
        tokio::spawn(async move {
            let kill = async {
                let mut conn = MySqlConnection::connect_with(options.as_ref()).await?;
                conn.execute(sqlx::raw_sql(&format!("KILL QUERY {id}")))
                    .await?;
                conn.close().await
            };
            match tokio::time::timeout(timeout, kill).await {
                Ok(Ok(())) => tracing::warn!(
                    connection = id,
                    "a statement outlived the statement timeout; killed it on the server"
                ),
                Ok(Err(error)) => {
                    tracing::warn!(connection = id, %error, "cannot kill a statement that outlived the statement timeout")
                }
                Err(_) => tracing::warn!(
                    connection = id,
                    "killing a statement that outlived the statement timeout took too long"
                ),
            }
        });
    }

    async fn schema_or_default(&self, schema: Option<&str>) -> Result<String, Error> {
        let row = sqlx::query(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = COALESCE(?, DATABASE())",
        )
        .bind(schema)
        .fetch_optional(&self.pools.read)
        .await?;
        match row {
            Some(row) => text(&row, 0),
            None => Err(schema_not_found(schema, "database", "default database")),
        }
    }
}

impl Engine for Pools {
    /// What the connector's database user may do beyond reading, from its own
    /// `SHOW GRANTS` (which on MariaDB includes its current role's grants).
    async fn privileges(&self) -> Result<Privileges, Error> {
        let mut conn = self.pools.read.acquire().await?;
        let who = sqlx::query("SELECT CURRENT_USER(), CURRENT_ROLE()")
            .fetch_one(&mut *conn)
            .await?;
        let user = text(&who, 0)?;
        let current_role = opt_text(&who, 1)?;
        let grants = sqlx::query("SHOW GRANTS").fetch_all(&mut *conn).await?;
        let account = account_of(&user);
        let mut findings = Vec::new();
        for row in &grants {
            findings.extend(beyond_reading(
                &text(row, 0)?,
                current_role.as_deref(),
                &account,
            ));
        }
        Ok(Privileges {
            user,
            beyond_reading: findings,
        })
    }

    async fn query(&self, request: Read<'_>) -> Result<Rows, Error> {
        let Statement { sql, params } = request.statement;
        pools::retried_once(|| async move {
            let mut conn = self.pools.read.acquire().await?;
            let id = connection_id(&mut conn).await?;
            self.killed_past_deadline(id, async {
                let transaction = request.transaction;
                pools::read::<MySql, _>(&mut conn, transaction, BEGIN_READ_ONLY, async |tx| {
                    let query = bind(sqlx::query(sql), params);
                    pools::rows(tx, sql, query, request.caps, decode).await
                })
                .await
            })
            .await
        })
        .await
    }

    /// Reports the key MySQL generated last, whatever the statement.
    async fn execute(&self, request: Write<'_>) -> Result<WriteOutcome, Error> {
        let Statement { sql, params } = request.statement;
        let mut conn = self.pools.writer()?.acquire().await?;
        #[allow(deprecated)] // fetch_many is the one call that yields both rows and the count
        let stream = bind(sqlx::query(sql), params).fetch_many(&mut *conn);
        // MariaDB's `RETURNING` rows come back like a query's.
        collect_write(stream, request.caps, decode, |done| {
            let id = done.last_insert_id();
            (
                done.rows_affected(),
                (id != 0).then(|| i64::try_from(id).ok()).flatten(),
            )
        })
        .await
    }

    async fn explain(&self, query: Statement<'_>, analyze: bool) -> Result<Plan, Error> {
        let Statement { sql, params } = query;
        let mut conn = self.pools.read.acquire().await?;
        let mariadb = self.flavor.load(Ordering::Relaxed) != MYSQL;
        let (statement, format) = match (analyze, mariadb) {
            (false, _) => (format!("EXPLAIN FORMAT=JSON {sql}"), "json"),
            (true, true) => (format!("ANALYZE FORMAT=JSON {sql}"), "json"),
            (true, false) => (format!("EXPLAIN ANALYZE {sql}"), "text"),
        };
        let id = connection_id(&mut conn).await?;
        let rows = self
            .killed_past_deadline(id, async {
                pools::read_only::<MySql, _>(&mut conn, Some(BEGIN_READ_ONLY), async |tx| {
                    Ok(bind(sqlx::query(&statement), params).fetch_all(tx).await?)
                })
                .await
            })
            .await?;
        let text = rows
            .iter()
            .map(|r| text(r, 0))
            .collect::<Result<Vec<_>, _>>()?
            .join("\n");
        Ok(Plan {
            text,
            format,
            analyzed: analyze,
            elapsed: Default::default(),
        })
    }

    async fn list_schemas(&self, include_system: bool) -> Result<Vec<pb::Schema>, Error> {
        let query = sqlx::query(
            "SELECT SCHEMA_NAME, COALESCE(SCHEMA_NAME = DATABASE(), 0)
             FROM information_schema.SCHEMATA
             WHERE ? OR SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
             ORDER BY SCHEMA_NAME",
        )
        .bind(include_system);
        self.pools
            .each_row(query, |r| {
                Ok(pb::Schema {
                    name: text(r, 0)?,
                    is_default: int(r, 1)?.unwrap_or(0) != 0,
                    ..Default::default()
                })
            })
            .await
    }

    async fn list_tables(&self, filter: TableFilter<'_>) -> Result<Tables, Error> {
        let schema = self.schema_or_default(filter.schema).await?;
        let query = sqlx::query(
            "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS, TABLE_COMMENT
             FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = ? AND (? IS NULL OR LOCATE(LOWER(?), LOWER(TABLE_NAME)) > 0)
             ORDER BY TABLE_NAME",
        )
        .bind(&schema)
        .bind(filter.name_contains)
        .bind(filter.name_contains);
        let tables = self
            .pools
            .each_row(query, |r| {
                let kind = table_kind(&text(r, 1)?);
                Ok(pb::Table {
                    schema: schema.clone(),
                    name: text(r, 0)?,
                    kind: kind as i32,
                    row_estimate: if kind == pb::TableKind::View {
                        None
                    } else {
                        int(r, 2)?
                    },
                    comment: text(r, 3)?,
                })
            })
            .await?;
        Ok((schema, tables))
    }

    async fn describe_table(&self, table: TableName<'_>) -> Result<pb::TableDescription, Error> {
        let schema = self.schema_or_default(table.schema).await?;
        // Each catalog query below takes the schema and the table, in that order.
        let of_table = |sql| {
            sqlx::query::<MySql>(sql)
                .bind(schema.as_str())
                .bind(table.name)
        };
        let relation = of_table(
            "SELECT TABLE_TYPE, TABLE_COMMENT FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        )
        .fetch_optional(&self.pools.read)
        .await?
        .ok_or_else(|| table_not_found(table.name, format_args!("database {schema:?}")))?;
        let mut description = pb::TableDescription {
            schema: schema.clone(),
            name: table.name.to_owned(),
            kind: table_kind(&text(&relation, 0)?) as i32,
            comment: text(&relation, 1)?,
            ..Default::default()
        };

        let columns = of_table(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_COMMENT, ORDINAL_POSITION
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
             ORDER BY ORDINAL_POSITION",
        );
        description.columns = self
            .pools
            .each_row(columns, |r| {
                // MariaDB reports "NULL" (the expression) for a NULL default.
                let default = opt_text(r, 3)?.filter(|d| d != "NULL");
                Ok(pb::TableColumn {
                    name: text(r, 0)?,
                    r#type: text(r, 1)?,
                    nullable: text(r, 2)? == "YES",
                    default,
                    comment: text(r, 4)?,
                    position: int(r, 5)?.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
                })
            })
            .await?;

        let keys = of_table(
            "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME,
                    k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE
             FROM information_schema.KEY_COLUMN_USAGE k
             LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
              AND r.TABLE_NAME = k.TABLE_NAME
             WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ?
             ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        )
        .fetch_all(&self.pools.read)
        .await?;
        let mut fks: BTreeMap<String, pb::ForeignKey> = BTreeMap::new();
        for r in &keys {
            let name = text(r, 0)?;
            let column = text(r, 1)?;
            if name == "PRIMARY" {
                description.primary_key.push(column);
                continue;
            }
            let Some(referenced_table) = opt_text(r, 3)? else {
                continue;
            };
            let fk = fks.entry(name.clone()).or_insert_with(|| pb::ForeignKey {
                name,
                referenced_table,
                ..Default::default()
            });
            fk.columns.push(column);
            fk.referenced_schema = opt_text(r, 2)?.unwrap_or_default();
            fk.referenced_columns
                .push(opt_text(r, 4)?.unwrap_or_default());
            fk.on_delete = opt_text(r, 5)?.unwrap_or_default();
            fk.on_update = opt_text(r, 6)?.unwrap_or_default();
        }
        description.foreign_keys = fks.into_values().collect();

        let stats = of_table(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, INDEX_TYPE
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        )
        .fetch_all(&self.pools.read)
        .await?;
        let mut indexes: BTreeMap<String, pb::Index> = BTreeMap::new();
        for r in &stats {
            let name = text(r, 0)?;
            let index = indexes.entry(name.clone()).or_insert_with(|| pb::Index {
                primary: name == "PRIMARY",
                name,
                ..Default::default()
            });
            index.unique = int(r, 1)?.unwrap_or(1) == 0;
            index.method = opt_text(r, 3)?.unwrap_or_default().to_ascii_lowercase();
            index
                .columns
                .push(opt_text(r, 2)?.unwrap_or_else(|| "(expression)".to_owned()));
        }
        description.indexes = indexes.into_values().collect();
        Ok(description)
    }

    type Db = MySql;

    fn pools(&self) -> &pools::Pair<MySql> {
        &self.pools
    }
}

/// Runs once per new connection: read-only session (read pool), statement
/// timeout, and which server flavor this is.
async fn prepare_session(
    conn: &mut MySqlConnection,
    read_only: bool,
    timeout: std::time::Duration,
    lock_timeout: std::time::Duration,
    flavor: &AtomicU8,
) -> Result<(), sqlx::Error> {
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut *conn)
        .await?;
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    flavor.store(if mariadb { MARIADB } else { MYSQL }, Ordering::Relaxed);
    let timeout_sql = if mariadb {
        format!(
            "SET SESSION max_statement_time = {:.3}",
            timeout.as_secs_f64()
        )
    } else {
        format!("SET SESSION max_execution_time = {}", timeout.as_millis())
    };
    // Metadata locks (a read behind ALTER TABLE) wait lock_wait_timeout seconds,
    // a year by default.
    let lock_seconds = lock_timeout.as_secs().max(1);
    // One round trip for every setting of the session.
    let mut settings = format!(
        "{timeout_sql}; SET SESSION lock_wait_timeout = {lock_seconds}, SESSION innodb_lock_wait_timeout = {lock_seconds}"
    );
    if read_only {
        settings.push_str("; SET SESSION TRANSACTION READ ONLY");
    }
    conn.execute(sqlx::raw_sql(&settings)).await?;
    Ok(())
}

/// Releases the named locks (`GET_LOCK`) a statement may have taken, which
/// outlive the read's transaction, before the connection is used again
/// (`RELEASE_ALL_LOCKS()`: MariaDB 10.5+, MySQL 5.7+), and on a read
/// connection sets the session read-only again, in the same round trip: a
/// statement could have made it read-write for the next one (`SET SESSION
/// TRANSACTION READ WRITE` in a prepared statement), and a read may run in its
/// own autocommit transaction
/// ([`ReadTransaction::Statement`](super::ReadTransaction::Statement)). True
/// when the connection is clean; false closes it instead of returning it to
/// the pool.
async fn release_locks(
    conn: &mut MySqlConnection,
    read_only: bool,
    timeout: std::time::Duration,
) -> bool {
    let sql = if read_only {
        "DO RELEASE_ALL_LOCKS(); SET SESSION TRANSACTION READ ONLY"
    } else {
        "DO RELEASE_ALL_LOCKS()"
    };
    let release = conn.execute(sqlx::raw_sql(sql));
    pools::cleaned(release, timeout, "release the locks of").await
}

/// Privileges a reader may hold: anything else in a grant is a finding.
const READING: [&str; 4] = ["USAGE", "SELECT", "SHOW VIEW", "SHOW DATABASES"];

/// What one `SHOW GRANTS` line gives beyond reading, each with how to take it
/// away. Never quotes the line itself: it may hold a password hash. A grant of a
/// role other than `current_role` (whose own grants SHOW GRANTS lists on
/// MariaDB) is a finding too: its privileges are not visible here.
fn beyond_reading(line: &str, current_role: Option<&str>, account: &str) -> Vec<String> {
    let Some(rest) = strip_prefix_ignore_case(line.trim(), "GRANT ") else {
        return Vec::new(); // SET DEFAULT ROLE …, REVOKE …: nothing granted
    };
    let parts = top_level_split(rest, |c| c == ' ');
    let on = parts.iter().position(|w| w.eq_ignore_ascii_case("ON"));
    let to = parts.iter().position(|w| w.eq_ignore_ascii_case("TO"));
    let mut findings = Vec::new();
    match (on, to) {
        (Some(on), Some(to)) if on < to => {
            let target = parts[on + 1..to].join(" ");
            let privileges = parts[..on].join(" ");
            for privilege in top_level_split(&privileges, |c| c == ',') {
                // `INSERT (`b`)`: a column privilege is still the privilege.
                let name = privilege
                    .split('(')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_uppercase();
                if !name.is_empty() && !READING.contains(&name.as_str()) {
                    findings.push(format!(
                        "it has {name} on {target} (REVOKE {name} ON {target} FROM {account})"
                    ));
                }
            }
            let with_grant = parts[to..]
                .windows(2)
                .any(|w| w[0].eq_ignore_ascii_case("GRANT") && w[1].eq_ignore_ascii_case("OPTION"));
            if with_grant {
                findings.push(format!(
                    "it may grant its privileges on {target} to others (WITH GRANT OPTION; REVOKE GRANT OPTION ON {target} FROM {account})"
                ));
            }
        }
        (None, Some(to)) => {
            let roles = parts[..to].join(" ");
            for role in top_level_split(&roles, |c| c == ',') {
                let bare = role.trim().trim_matches('`').trim_matches('\'');
                if Some(bare) != current_role {
                    findings.push(format!(
                        "it is granted role {} whose privileges are not checked (grant SELECT to the user itself and REVOKE {} FROM {account})",
                        role.trim(),
                        role.trim()
                    ));
                }
            }
        }
        _ => findings.push("it has a grant the connector cannot read (see SHOW GRANTS)".to_owned()),
    }
    findings
}

/// `user@host` (as CURRENT_USER() says it) as an account name for SQL.
fn account_of(user: &str) -> String {
    let (name, host) = user.rsplit_once('@').unwrap_or((user, "%"));
    format!(
        "'{}'@'{}'",
        name.replace('\'', "''"),
        host.replace('\'', "''")
    )
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Splits `text` at `separator` characters outside backquotes, quotes and
/// parentheses; empty pieces are dropped.
fn top_level_split(text: &str, separator: impl Fn(char) -> bool) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut quote, mut depth) = (None::<char>, 0usize);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '`' | '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, c) if depth == 0 && separator(c) => {
                if !current.trim().is_empty() {
                    parts.push(current.trim().to_owned());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        parts.push(current.trim().to_owned());
    }
    parts
}

fn table_kind(kind: &str) -> pb::TableKind {
    match kind {
        "BASE TABLE" | "SYSTEM VERSIONED" => pb::TableKind::Table,
        "VIEW" | "SYSTEM VIEW" => pb::TableKind::View,
        _ => pb::TableKind::Unspecified,
    }
}

/// Binds JSON parameters to the `?` placeholders in order.
fn bind<'q>(
    mut query: Query<'q, MySql, MySqlArguments>,
    params: &[serde_json::Value],
) -> Query<'q, MySql, MySqlArguments> {
    for param in params {
        query = match param {
            serde_json::Value::Null => query.bind(None::<String>),
            serde_json::Value::Bool(b) => query.bind(*b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => query.bind(i),
                (None, Some(u), _) => query.bind(u),
                (_, _, Some(f)) => query.bind(f),
                _ => query.bind(n.to_string()),
            },
            serde_json::Value::String(s) => query.bind(s.clone()),
            other => query.bind(other.to_string()),
        };
    }
    query
}

/// A text column of a catalog row, whether the server calls it text or binary.
fn text(row: &MySqlRow, i: usize) -> Result<String, Error> {
    Ok(opt_text(row, i)?.unwrap_or_default())
}

fn opt_text(row: &MySqlRow, i: usize) -> Result<Option<String>, Error> {
    match row.try_get::<Option<String>, _>(i) {
        Ok(v) => Ok(v),
        Err(_) => Ok(row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(|e| decode_error(row, i, e))?
            .map(|b| String::from_utf8_lossy(&b).into_owned())),
    }
}

/// An integer column of a catalog row, whatever its width and signedness.
fn int(row: &MySqlRow, i: usize) -> Result<Option<i64>, Error> {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return Ok(v);
    }
    if let Ok(v) = row.try_get::<Option<u64>, _>(i) {
        return Ok(v.map(|u| i64::try_from(u).unwrap_or(i64::MAX)));
    }
    let text = opt_text(row, i)?;
    Ok(text.and_then(|t| t.trim().parse().ok()))
}

/// One value of a row as JSON with its type kept faithfully, held to `cap`:
/// text, binary and JSON values are read borrowed and cut.
pub(super) fn decode(row: &MySqlRow, i: usize, cap: &mut values::ValueCap) -> Result<Value, Error> {
    let raw = row.try_get_raw(i).map_err(|e| decode_error(row, i, e))?;
    if raw.is_null() {
        return Ok(values::null());
    }
    let type_name = raw.type_info().name().to_owned();
    let err = |e: sqlx::Error| decode_error(row, i, e);
    let value = match type_name.as_str() {
        "BOOLEAN" => {
            let v = row.try_get_unchecked::<i8, _>(i).map_err(err)?;
            if v == 0 || v == 1 {
                values::boolean(v == 1)
            } else {
                values::int(v.into())
            }
        }
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" => {
            values::int(row.try_get::<i64, _>(i).map_err(err)?)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "INT UNSIGNED" | "MEDIUMINT UNSIGNED"
        | "BIGINT UNSIGNED" => values::uint(row.try_get::<u64, _>(i).map_err(err)?),
        "YEAR" => values::int(row.try_get_unchecked::<u16, _>(i).map_err(err)?.into()),
        "FLOAT" => values::float(row.try_get::<f32, _>(i).map_err(err)?.into()),
        "DOUBLE" => values::float(row.try_get::<f64, _>(i).map_err(err)?),
        "DECIMAL" => values::string(
            row.try_get::<bigdecimal::BigDecimal, _>(i)
                .map_err(err)?
                .to_plain_string(),
        ),
        "DATE" => values::string(
            row.try_get::<chrono::NaiveDate, _>(i)
                .map_err(err)?
                .format("%Y-%m-%d")
                .to_string(),
        ),
        "DATETIME" => values::string(
            row.try_get::<chrono::NaiveDateTime, _>(i)
                .map_err(err)?
                .format("%Y-%m-%dT%H:%M:%S%.f")
                .to_string(),
        ),
        "TIMESTAMP" => values::string(
            row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)
                .map_err(err)?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        "TIME" => match row.try_get::<chrono::NaiveTime, _>(i) {
            Ok(t) => values::string(t.format("%H:%M:%S%.f").to_string()),
            // Negative or beyond 24 h: MySQL's TIME is a duration.
            Err(_) => values::string(
                row.try_get::<sqlx::mysql::types::MySqlTime, _>(i)
                    .map_err(err)?
                    .to_string(),
            ),
        },
        "JSON" => {
            let text = row.try_get_unchecked::<&[u8], _>(i).map_err(err)?;
            if cap.fits(text.len()) {
                values::from_json(&row.try_get::<serde_json::Value, _>(i).map_err(err)?)
            } else {
                cap.text_bytes(i, text)
            }
        }
        "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            cap.text(i, row.try_get::<&str, _>(i).map_err(err)?)
        }
        "BIT" => {
            let bytes = row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?;
            if bytes.len() <= 8 {
                values::uint(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            } else {
                cap.bytes(i, &bytes)
            }
        }
        "NULL" => values::null(),
        // BINARY, VARBINARY, *BLOB, GEOMETRY and anything unknown: the bytes.
        _ => cap.bytes(i, row.try_get_unchecked::<&[u8], _>(i).map_err(err)?),
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "'ro'@'%'";

    #[test]
    fn select_show_view_and_usage_are_reading() {
        for line in [
            "GRANT USAGE ON *.* TO `ro`@`%` IDENTIFIED BY PASSWORD '*SECRETHASH'",
            "GRANT SELECT, SHOW VIEW ON `shop`.* TO `ro`@`%`",
            "GRANT SELECT (`a`, `b`) ON `shop`.`t` TO `ro`@`%`",
            "SET DEFAULT ROLE `reader` FOR `ro`@`%`",
            "GRANT `reader` TO `ro`@`%`",
        ] {
            assert_eq!(
                beyond_reading(line, Some("reader"), ME),
                Vec::<String>::new(),
                "{line}"
            );
        }
    }

    #[test]
    fn every_privilege_beyond_reading_is_named_with_its_fix_and_no_password() {
        let all = beyond_reading(
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED BY PASSWORD '*SECRETHASH' WITH GRANT OPTION",
            None,
            ME,
        );
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(
            all[0].contains("ALL PRIVILEGES on *.*")
                && all[0].contains("REVOKE ALL PRIVILEGES ON *.* FROM 'ro'@'%'"),
            "{all:?}"
        );
        assert!(all[1].contains("WITH GRANT OPTION"), "{all:?}");
        assert!(all.iter().all(|f| !f.contains("SECRETHASH")), "{all:?}");

        let columns = beyond_reading(
            "GRANT SELECT (`a`), INSERT (`b`), UPDATE ON `shop`.`t` TO `ro`@`%`",
            None,
            ME,
        );
        assert_eq!(columns.len(), 2, "{columns:?}");
        assert!(columns[0].contains("INSERT on `shop`.`t`"), "{columns:?}");
        assert!(columns[1].contains("UPDATE on `shop`.`t`"), "{columns:?}");

        let mysql8 = beyond_reading("GRANT SELECT,BACKUP_ADMIN ON *.* TO `ro`@`%`", None, ME);
        assert_eq!(mysql8.len(), 1, "{mysql8:?}");
        assert!(mysql8[0].contains("BACKUP_ADMIN"), "{mysql8:?}");

        let proxy = beyond_reading(
            "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
            None,
            ME,
        );
        assert!(proxy[0].contains("PROXY"), "{proxy:?}");
    }

    #[test]
    fn a_role_other_than_the_current_one_is_a_finding() {
        let roles = beyond_reading("GRANT `writer`, `reader` TO `ro`@`%`", Some("reader"), ME);
        assert_eq!(roles.len(), 1, "{roles:?}");
        assert!(roles[0].contains("`writer`"), "{roles:?}");
    }

    #[test]
    fn accounts_are_quoted_for_sql() {
        assert_eq!(account_of("ro@%"), "'ro'@'%'");
        assert_eq!(account_of("o'brien@10.0.0.1"), "'o''brien'@'10.0.0.1'");
    }
}
