//! MySQL and MariaDB: connection set-up, value decoding and catalog queries.
//!
//! Read connections run `SET SESSION TRANSACTION READ ONLY` when they open: on
//! MySQL a DDL statement commits the open transaction implicitly, so a READ ONLY
//! transaction alone would not stop `DROP TABLE`; the session setting does. The
//! statement timeout is set per session too (`max_statement_time` on MariaDB,
//! `max_execution_time` on MySQL).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use prost_types::Value;
use sqlx::mysql::{
    MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow,
};
use sqlx::query::Query;
use sqlx::{Connection, Executor, MySql, Row, TypeInfo, ValueRef};
use switchboard_proto::database::v1 as pb;

use super::{
    Caps, Plan, Rows, Settings, WriteOutcome, collect, collect_write, columns_of, decode_error,
    rolled_back,
};
use crate::config::AccessMode;
use crate::error::Error;
use crate::values;

const UNKNOWN: u8 = 0;
const MARIADB: u8 = 1;
const MYSQL: u8 = 2;

pub(super) struct Pools {
    read: MySqlPool,
    write: Option<MySqlPool>,
    /// MariaDB or MySQL, learnt on the first connection (they differ in EXPLAIN).
    flavor: Arc<AtomicU8>,
}

impl Pools {
    pub(super) fn open(url: &str, settings: &Settings) -> Result<Self, Error> {
        let options = MySqlConnectOptions::from_str(url).map_err(|e| {
            Error::InvalidArgument(format!("DATABASE_URL is not a valid MySQL URL: {e}"))
        })?;
        let flavor = Arc::new(AtomicU8::new(UNKNOWN));
        let timeout = settings.statement_timeout;
        let pool = |read_only: bool| {
            let flavor = flavor.clone();
            MySqlPoolOptions::new()
                .max_connections(settings.pool_size)
                .min_connections(0)
                .acquire_timeout(settings.connect_timeout)
                .after_connect(move |conn, _meta| {
                    let flavor = flavor.clone();
                    Box::pin(
                        async move { prepare_session(conn, read_only, timeout, &flavor).await },
                    )
                })
                .connect_lazy_with(options.clone())
        };
        Ok(Self {
            read: pool(true),
            write: (settings.access_mode == AccessMode::ReadWrite).then(|| pool(false)),
            flavor,
        })
    }

    pub(super) async fn close(&self) {
        self.read.close().await;
        if let Some(write) = &self.write {
            write.close().await;
        }
    }

    pub(super) async fn ping(&self) -> Result<(), Error> {
        let mut conn = self.read.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[serde_json::Value],
        caps: Caps,
    ) -> Result<Rows, Error> {
        let mut conn = self.read.acquire().await?;
        let mut tx = conn.begin_with("START TRANSACTION READ ONLY").await?;
        let result = read(&mut tx, sql, params, caps).await;
        rolled_back(tx, result).await
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[serde_json::Value],
        caps: Caps,
    ) -> Result<WriteOutcome, Error> {
        let pool = self.write.as_ref().ok_or_else(|| {
            Error::NotAllowed("the connector is read-only (DB_ACCESS_MODE)".to_owned())
        })?;
        let mut conn = pool.acquire().await?;
        #[allow(deprecated)] // fetch_many is the one call that yields both rows and the count
        let stream = bind(sqlx::query(sql), params).fetch_many(&mut *conn);
        // MariaDB's `RETURNING` rows come back like a query's.
        collect_write(stream, caps, decode, |done| {
            let id = done.last_insert_id();
            (
                done.rows_affected(),
                (id != 0).then(|| i64::try_from(id).ok()).flatten(),
            )
        })
        .await
    }

    pub(super) async fn explain(
        &self,
        sql: &str,
        params: &[serde_json::Value],
        analyze: bool,
    ) -> Result<Plan, Error> {
        let mut conn = self.read.acquire().await?;
        let mariadb = self.flavor.load(Ordering::Relaxed) != MYSQL;
        let (statement, format) = match (analyze, mariadb) {
            (false, _) => (format!("EXPLAIN FORMAT=JSON {sql}"), "json"),
            (true, true) => (format!("ANALYZE FORMAT=JSON {sql}"), "json"),
            (true, false) => (format!("EXPLAIN ANALYZE {sql}"), "text"),
        };
        let mut tx = conn.begin_with("START TRANSACTION READ ONLY").await?;
        let result = bind(sqlx::query(&statement), params)
            .fetch_all(&mut *tx)
            .await;
        let rows = rolled_back(tx, result).await?;
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

    pub(super) async fn list_schemas(
        &self,
        include_system: bool,
    ) -> Result<Vec<pb::Schema>, Error> {
        let rows = sqlx::query(
            "SELECT SCHEMA_NAME, COALESCE(SCHEMA_NAME = DATABASE(), 0)
             FROM information_schema.SCHEMATA
             WHERE ? OR SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
             ORDER BY SCHEMA_NAME",
        )
        .bind(include_system)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(pb::Schema {
                    name: text(r, 0)?,
                    is_default: int(r, 1)?.unwrap_or(0) != 0,
                    ..Default::default()
                })
            })
            .collect()
    }

    async fn schema_or_default(&self, schema: Option<&str>) -> Result<String, Error> {
        let row = sqlx::query(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = COALESCE(?, DATABASE())",
        )
        .bind(schema)
        .fetch_optional(&self.read)
        .await?;
        match row {
            Some(row) => text(&row, 0),
            None => Err(Error::NotFound(match schema {
                Some(s) => format!("database {s:?} does not exist; see ListSchemas"),
                None => "the connection has no default database; pass `schema` (see ListSchemas)"
                    .to_owned(),
            })),
        }
    }

    pub(super) async fn list_tables(
        &self,
        schema: Option<&str>,
        name_contains: Option<&str>,
    ) -> Result<(String, Vec<pb::Table>), Error> {
        let schema = self.schema_or_default(schema).await?;
        let rows = sqlx::query(
            "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS, TABLE_COMMENT
             FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = ? AND (? IS NULL OR LOCATE(LOWER(?), LOWER(TABLE_NAME)) > 0)
             ORDER BY TABLE_NAME",
        )
        .bind(&schema)
        .bind(name_contains)
        .bind(name_contains)
        .fetch_all(&self.read)
        .await?;
        let tables = rows
            .iter()
            .map(|r| {
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
            .collect::<Result<Vec<_>, Error>>()?;
        Ok((schema, tables))
    }

    pub(super) async fn describe_table(
        &self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<pb::TableDescription, Error> {
        let schema = self.schema_or_default(schema).await?;
        let relation = sqlx::query(
            "SELECT TABLE_TYPE, TABLE_COMMENT FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        )
        .bind(&schema)
        .bind(table)
        .fetch_optional(&self.read)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "table {table:?} does not exist in database {schema:?}; see ListTables"
            ))
        })?;
        let mut description = pb::TableDescription {
            schema: schema.clone(),
            name: table.to_owned(),
            kind: table_kind(&text(&relation, 0)?) as i32,
            comment: text(&relation, 1)?,
            ..Default::default()
        };

        let columns = sqlx::query(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_COMMENT, ORDINAL_POSITION
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
             ORDER BY ORDINAL_POSITION",
        )
        .bind(&schema)
        .bind(table)
        .fetch_all(&self.read)
        .await?;
        for r in &columns {
            // MariaDB reports "NULL" (the expression) for a NULL default.
            let default = opt_text(r, 3)?.filter(|d| d != "NULL");
            description.columns.push(pb::TableColumn {
                name: text(r, 0)?,
                r#type: text(r, 1)?,
                nullable: text(r, 2)? == "YES",
                default,
                comment: text(r, 4)?,
                position: int(r, 5)?.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
            });
        }

        let keys = sqlx::query(
            "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME,
                    k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE
             FROM information_schema.KEY_COLUMN_USAGE k
             LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
              AND r.TABLE_NAME = k.TABLE_NAME
             WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ?
             ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        )
        .bind(&schema)
        .bind(table)
        .fetch_all(&self.read)
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

        let stats = sqlx::query(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, INDEX_TYPE
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        )
        .bind(&schema)
        .bind(table)
        .fetch_all(&self.read)
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
}

/// Runs once per new connection: read-only session (read pool), statement
/// timeout, and which server flavor this is.
async fn prepare_session(
    conn: &mut MySqlConnection,
    read_only: bool,
    timeout: std::time::Duration,
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
    conn.execute(sqlx::raw_sql(&timeout_sql)).await?;
    if read_only {
        conn.execute(sqlx::raw_sql("SET SESSION TRANSACTION READ ONLY"))
            .await?;
    }
    Ok(())
}

/// Runs a read inside the caller's transaction.
async fn read(
    conn: &mut MySqlConnection,
    sql: &str,
    params: &[serde_json::Value],
    caps: Caps,
) -> Result<Rows, Error> {
    let mut rows = collect(
        bind(sqlx::query(sql), params).fetch(&mut *conn),
        caps,
        decode,
    )
    .await?;
    if rows.columns.is_empty() {
        let described = (&mut *conn).describe(sql).await?;
        rows.columns = columns_of(described.columns());
    }
    Ok(rows)
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

/// One value of a row as JSON with its type kept faithfully.
pub(super) fn decode(row: &MySqlRow, i: usize) -> Result<Value, Error> {
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
        "JSON" => values::from_json(&row.try_get::<serde_json::Value, _>(i).map_err(err)?),
        "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            values::string(row.try_get::<String, _>(i).map_err(err)?)
        }
        "BIT" => {
            let bytes = row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?;
            if bytes.len() <= 8 {
                values::uint(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            } else {
                values::bytes(&bytes)
            }
        }
        "NULL" => values::null(),
        // BINARY, VARBINARY, *BLOB, GEOMETRY and anything unknown: the bytes.
        _ => values::bytes(&row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?),
    };
    Ok(value)
}
