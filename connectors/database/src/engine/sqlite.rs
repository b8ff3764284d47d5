//! SQLite: read-only opening, deadlines, value decoding and catalog queries.
//!
//! Read connections are opened with `SQLITE_OPEN_READONLY` and `PRAGMA
//! query_only = ON`, so they cannot write whatever SQL reaches them. SQLite has
//! no server-side statement timeout: a progress handler armed before every
//! operation interrupts the statement at its deadline. Values are decoded by
//! their storage class (INTEGER, REAL, TEXT, BLOB), as SQLite types values, not
//! columns.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use prost_types::Value;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Row, Sqlite, TypeInfo, ValueRef};
use switchboard_proto::database::v1 as pb;

use super::{
    Caps, Engine, Plan, Privileges, Read, Rows, Settings, Statement, TableFilter, TableName,
    Tables, Write, WriteOutcome, collect_write, decode_error, pools, table_not_found,
};
use crate::error::Error;
use crate::values;

/// Progress handler granularity: SQLite VM instructions between deadline checks.
const PROGRESS_OPS: i32 = 10_000;

pub(super) struct Pools {
    pools: pools::Pair<Sqlite>,
    /// The database file, to name it when it cannot be opened.
    file: PathBuf,
    /// How long a statement may run: SQLite has no timeout of its own.
    statement_timeout: Duration,
}

impl Pools {
    pub(super) async fn open(url: &str, settings: &Settings) -> Result<Self, Error> {
        let base: SqliteConnectOptions = pools::connect_options(url, "SQLite")?;
        let read_options = base
            .clone()
            .read_only(true)
            .create_if_missing(false)
            .pragma("query_only", "ON");
        let pool = || pools::options::<Sqlite>(settings);
        let file = base.get_filename().to_path_buf();
        let read = pool().connect_lazy_with(read_options);
        Ok(Self {
            pools: pools::Pair::new(settings, read, || {
                pool().connect_lazy_with(base.create_if_missing(true))
            }),
            file,
            statement_timeout: settings.statement_timeout,
        })
    }

    /// When a statement that starts now must stop.
    fn deadline(&self) -> Instant {
        Instant::now() + self.statement_timeout
    }

    /// A read connection whose statements stop at the statement timeout from now.
    async fn acquire(&self) -> Result<PoolConnection<Sqlite>, Error> {
        let deadline = self.deadline();
        let mut conn = self
            .pools
            .read
            .acquire()
            .await
            .map_err(|e| self.open_error(e))?;
        arm(&mut conn, deadline).await?;
        Ok(conn)
    }

    /// SQLite says only "unable to open database file" (SQLITE_CANTOPEN, 14); when
    /// the file is missing, say which one and what to do.
    fn open_error(&self, error: sqlx::Error) -> Error {
        let cannot_open =
            matches!(&error, sqlx::Error::Database(db) if db.code().as_deref() == Some("14"));
        if cannot_open && !self.file.exists() {
            return Error::Unavailable(format!(
                "the SQLite database file {} does not exist (or its folder does not); fix the path in DATABASE_URL or create the file",
                self.file.display()
            ));
        }
        Error::from_sqlx(error)
    }

    /// The attached database `schema` (default `main`), checked to exist.
    async fn schema(
        &self,
        conn: &mut SqliteConnection,
        schema: Option<&str>,
    ) -> Result<String, Error> {
        let schema = schema.unwrap_or("main");
        let found: Option<String> =
            sqlx::query_scalar("SELECT name FROM pragma_database_list WHERE name = ?1")
                .bind(schema)
                .fetch_optional(&mut *conn)
                .await?;
        found.ok_or_else(|| {
            Error::NotFound(format!(
                "attached database {schema:?} does not exist; see ListSchemas (usually `main`)"
            ))
        })
    }
}

impl Engine for Pools {
    /// A `SELECT 1` on a read connection, so that a database file that cannot
    /// be opened is named (see [`Pools::open_error`]).
    async fn ping(&self) -> Result<(), Error> {
        let mut conn = self.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }

    /// What a read connection may do beyond reading: it is opened
    /// `SQLITE_OPEN_READONLY`, so only a `query_only` that is off is reported.
    async fn privileges(&self) -> Result<Privileges, Error> {
        let mut conn = self.acquire().await?;
        let query_only: i64 = sqlx::query_scalar("PRAGMA query_only")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Privileges {
            user: format!("file {}", self.file.display()),
            beyond_reading: (query_only != 1)
                .then(|| "the read connection is not query_only (PRAGMA query_only)".to_owned())
                .into_iter()
                .collect(),
        })
    }

    /// Always in a transaction, whatever `request.transaction` says: it costs
    /// no round trip in process.
    async fn query(&self, request: Read<'_>) -> Result<Rows, Error> {
        let mut conn = self.acquire().await?;
        // A plain BEGIN: the read connection is read-only (SQLITE_OPEN_READONLY,
        // query_only) already.
        pools::read_only::<Sqlite, _>(&mut conn, None, async |tx| {
            read(tx, request.statement, request.caps).await
        })
        .await
    }

    /// Reports the generated key of an INSERT that inserted a row only.
    async fn execute(&self, request: Write<'_>) -> Result<WriteOutcome, Error> {
        let deadline = self.deadline();
        let pool = self.pools.writer()?;
        let mut conn = pool.acquire().await.map_err(|e| self.open_error(e))?;
        arm(&mut conn, deadline).await?;
        load_schema(&mut conn).await?;
        let Statement { sql, params } = request.statement;
        #[allow(deprecated)] // fetch_many is the one call that yields both rows and the count
        let stream = bind(sqlx::query(sql), params).fetch_many(&mut *conn);
        collect_write(stream, request.caps, decode, |done| {
            let inserted = request.inserts && done.rows_affected() > 0;
            (
                done.rows_affected(),
                inserted.then(|| done.last_insert_rowid()),
            )
        })
        .await
    }

    async fn explain(&self, query: Statement<'_>, analyze: bool) -> Result<Plan, Error> {
        let Statement { sql, params } = query;
        if analyze {
            return Err(Error::InvalidArgument(
                "SQLite has no EXPLAIN ANALYZE; ask for the plan without analyze".to_owned(),
            ));
        }
        let statement = format!("EXPLAIN QUERY PLAN {sql}");
        let mut conn = self.acquire().await?;
        let rows = bind(sqlx::query(&statement), params)
            .fetch_all(&mut *conn)
            .await?;
        let mut steps = Vec::with_capacity(rows.len());
        for r in &rows {
            steps.push((
                r.try_get::<i64, _>(0)?,
                r.try_get::<i64, _>(1)?,
                r.try_get::<String, _>(3)?,
            ));
        }
        Ok(Plan {
            text: plan_tree(&steps),
            format: "text",
            analyzed: false,
            elapsed: Default::default(),
        })
    }

    /// Every attached database: SQLite has no system ones to leave out.
    async fn list_schemas(&self, _include_system: bool) -> Result<Vec<pb::Schema>, Error> {
        let mut conn = self.acquire().await?;
        let rows = sqlx::query("SELECT name, file FROM pragma_database_list ORDER BY seq")
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(0)?;
                Ok(pb::Schema {
                    is_default: name == "main",
                    name,
                    owner: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                    comment: String::new(),
                })
            })
            .collect()
    }

    async fn list_tables(&self, filter: TableFilter<'_>) -> Result<Tables, Error> {
        let mut conn = self.acquire().await?;
        let schema = self.schema(&mut conn, filter.schema).await?;
        // The schema name was checked against pragma_database_list above and is
        // quoted as an identifier: SQLite cannot take it as a parameter here.
        let listing = format!(
            "SELECT name, type FROM {}.sqlite_master
             WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
               AND (?1 IS NULL OR instr(lower(name), lower(?1)) > 0)
             ORDER BY name",
            quote(&schema)
        );
        let rows = sqlx::query(&listing)
            .bind(filter.name_contains)
            .fetch_all(&mut *conn)
            .await?;
        let mut tables = Vec::with_capacity(rows.len());
        for r in &rows {
            let name: String = r.try_get(0)?;
            let kind = if r.try_get::<String, _>(1)? == "view" {
                pb::TableKind::View
            } else {
                pb::TableKind::Table
            };
            let row_estimate = if kind == pb::TableKind::Table {
                let count = format!("SELECT count(*) FROM {}.{}", quote(&schema), quote(&name));
                Some(
                    sqlx::query_scalar::<_, i64>(&count)
                        .fetch_one(&mut *conn)
                        .await?,
                )
            } else {
                None
            };
            tables.push(pb::Table {
                schema: schema.clone(),
                name,
                kind: kind as i32,
                row_estimate,
                comment: String::new(),
            });
        }
        Ok((schema, tables))
    }

    async fn describe_table(&self, table: TableName<'_>) -> Result<pb::TableDescription, Error> {
        let mut conn = self.acquire().await?;
        let schema = self.schema(&mut conn, table.schema).await?;
        let kind_sql = format!(
            "SELECT type FROM {}.sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
            quote(&schema)
        );
        let kind: String = sqlx::query_scalar(&kind_sql)
            .bind(table.name)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| table_not_found(table.name, format_args!("{schema:?}")))?;
        let mut description = pb::TableDescription {
            schema: schema.clone(),
            name: table.name.to_owned(),
            kind: if kind == "view" {
                pb::TableKind::View
            } else {
                pb::TableKind::Table
            } as i32,
            ..Default::default()
        };

        // Each pragma below takes the table and the schema, in that order.
        let pragma = |sql| {
            sqlx::query::<Sqlite>(sql)
                .bind(table.name)
                .bind(schema.as_str())
        };
        let columns = pragma(
            "SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1, ?2) ORDER BY cid",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut pk: Vec<(i64, String)> = Vec::new();
        for r in &columns {
            let name: String = r.try_get(1)?;
            let key: i64 = r.try_get(5)?;
            if key > 0 {
                pk.push((key, name.clone()));
            }
            description.columns.push(pb::TableColumn {
                position: u32::try_from(r.try_get::<i64, _>(0)? + 1).unwrap_or(0),
                name,
                r#type: r.try_get(2)?,
                nullable: r.try_get::<i64, _>(3)? == 0 && key == 0,
                default: r.try_get(4)?,
                comment: String::new(),
            });
        }
        pk.sort();
        description.primary_key = pk.into_iter().map(|(_, name)| name).collect();

        let fks = pragma(
            "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete
             FROM pragma_foreign_key_list(?1, ?2) ORDER BY id, seq",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut current: Option<(i64, pb::ForeignKey)> = None;
        for r in &fks {
            let id: i64 = r.try_get(0)?;
            if current.as_ref().is_none_or(|(cid, _)| *cid != id) {
                if let Some((_, fk)) = current.take() {
                    description.foreign_keys.push(fk);
                }
                current = Some((
                    id,
                    pb::ForeignKey {
                        referenced_schema: schema.clone(),
                        referenced_table: r.try_get(1)?,
                        on_update: r.try_get(4)?,
                        on_delete: r.try_get(5)?,
                        ..Default::default()
                    },
                ));
            }
            if let Some((_, fk)) = current.as_mut() {
                fk.columns.push(r.try_get(2)?);
                fk.referenced_columns
                    .push(r.try_get::<Option<String>, _>(3)?.unwrap_or_default());
            }
        }
        if let Some((_, fk)) = current.take() {
            description.foreign_keys.push(fk);
        }

        let indexes =
            pragma("SELECT name, \"unique\", origin FROM pragma_index_list(?1, ?2) ORDER BY name")
                .fetch_all(&mut *conn)
                .await?;
        for r in &indexes {
            let name: String = r.try_get(0)?;
            let columns: Vec<Option<String>> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?1, ?2) ORDER BY seqno")
                    .bind(&name)
                    .bind(&schema)
                    .fetch_all(&mut *conn)
                    .await?;
            description.indexes.push(pb::Index {
                unique: r.try_get::<i64, _>(1)? != 0,
                primary: r.try_get::<String, _>(2)? == "pk",
                method: "btree".to_owned(),
                columns: columns
                    .into_iter()
                    .map(|c| c.unwrap_or_else(|| "(expression)".to_owned()))
                    .collect(),
                name,
            });
        }
        Ok(description)
    }

    type Db = Sqlite;

    fn pools(&self) -> &pools::Pair<Sqlite> {
        &self.pools
    }
}

/// Sets the progress handler that interrupts statements after `deadline`.
async fn arm(conn: &mut SqliteConnection, deadline: Instant) -> Result<(), Error> {
    let mut handle = conn.lock_handle().await?;
    handle.set_progress_handler(PROGRESS_OPS, move || Instant::now() < deadline);
    Ok(())
}

/// Runs a read inside the caller's transaction.
async fn read(
    conn: &mut SqliteConnection,
    Statement { sql, params }: Statement<'_>,
    caps: Caps,
) -> Result<Rows, Error> {
    // In the caller's transaction, so the schema read here is the one the
    // statement runs against.
    load_schema(conn).await?;
    pools::rows(conn, sql, bind(sqlx::query(sql), params), caps, decode).await
}

/// Brings the connection's copy of the schema up to date before a statement is
/// prepared. SQLite checks it only when a statement first reads, and re-prepares
/// a statement prepared against an old copy on the fly; sqlx keeps the columns it
/// saw at prepare time, so a table that gained a column since (changed by another
/// connection) gives rows longer than those columns, and sqlx's SQLite worker
/// thread panics. Any read loads the current schema.
async fn load_schema(conn: &mut SqliteConnection) -> Result<(), Error> {
    sqlx::query("SELECT 1 FROM sqlite_master LIMIT 1")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An identifier in double quotes, inner quotes doubled.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// EXPLAIN QUERY PLAN rows `(id, parent, detail)` as an indented tree.
fn plan_tree(steps: &[(i64, i64, String)]) -> String {
    fn walk(steps: &[(i64, i64, String)], parent: i64, depth: usize, out: &mut Vec<String>) {
        for (id, p, detail) in steps {
            if *p == parent {
                out.push(format!("{}{detail}", "  ".repeat(depth)));
                walk(steps, *id, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(steps, 0, 0, &mut out);
    out.join("\n")
}

/// Binds JSON parameters to `?` / `?N` placeholders in order.
///
/// The statement is not kept prepared: sqlx would keep its columns as first
/// seen, and after the table gained a column a row of the new shape overruns them
/// (see [`load_schema`]). Preparing is cheap in process.
fn bind<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    params: &[serde_json::Value],
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    let mut query = query.persistent(false);
    for param in params {
        query = match param {
            serde_json::Value::Null => query.bind(None::<String>),
            serde_json::Value::Bool(b) => query.bind(*b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => query.bind(i),
                (None, Some(f)) if n.is_f64() => query.bind(f),
                _ => query.bind(n.to_string()),
            },
            serde_json::Value::String(s) => query.bind(s.clone()),
            other => query.bind(other.to_string()),
        };
    }
    query
}

/// One value by its storage class, held to `cap`: text and blobs are read
/// borrowed from SQLite and cut.
pub(super) fn decode(
    row: &SqliteRow,
    i: usize,
    cap: &mut values::ValueCap,
) -> Result<Value, Error> {
    let raw = row.try_get_raw(i).map_err(|e| decode_error(row, i, e))?;
    if raw.is_null() {
        return Ok(values::null());
    }
    let storage = raw.type_info().name().to_owned();
    let err = |e: sqlx::Error| decode_error(row, i, e);
    Ok(match storage.as_str() {
        "INTEGER" | "BOOLEAN" => values::int(row.try_get_unchecked::<i64, _>(i).map_err(err)?),
        "REAL" => values::float(row.try_get_unchecked::<f64, _>(i).map_err(err)?),
        "BLOB" => cap.bytes(i, row.try_get_unchecked::<&[u8], _>(i).map_err(err)?),
        _ => cap.text(i, row.try_get_unchecked::<&str, _>(i).map_err(err)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_plans_are_indented_by_parent() {
        let steps = vec![
            (2, 0, "SCAN orders".to_owned()),
            (5, 0, "CORRELATED SCALAR SUBQUERY 1".to_owned()),
            (
                9,
                5,
                "SEARCH customers USING INTEGER PRIMARY KEY (rowid=?)".to_owned(),
            ),
        ];
        assert_eq!(
            plan_tree(&steps),
            "SCAN orders\nCORRELATED SCALAR SUBQUERY 1\n  SEARCH customers USING INTEGER PRIMARY KEY (rowid=?)"
        );
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote("main"), "\"main\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }
}
