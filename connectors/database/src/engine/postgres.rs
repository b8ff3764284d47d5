//! PostgreSQL: connection options, value decoding and catalog queries.
//!
//! Read connections start with `default_transaction_read_only=on`,
//! `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout`
//! set as startup options, so even a statement that slipped past everything
//! else would run read-only and be cancelled in time; before a connection is
//! reused its advisory locks, LISTENs and SET values are cleared. The privilege
//! check reads role attributes and `has_*_privilege` over the schemas the user
//! can reach.

use prost_types::Value;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgValueRef;
use sqlx::postgres::types::{Oid, PgInterval, PgMoney, PgTimeTz};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, Postgres};
use sqlx::{Connection, Executor, Row, TypeInfo, ValueRef};
use switchboard_proto::database::v1 as pb;

use super::postgres_params::Prepared;
use super::{
    Engine, Plan, Privileges, Read, Rows, Settings, Statement, TableFilter, TableName, Tables,
    Write, WriteOutcome, collect, collect_write, columns_of, decode_error, fk_action, pools,
    schema_not_found, table_not_found,
};
use crate::error::Error;
use crate::values;

pub(super) struct Pools {
    pools: pools::Pair<Postgres>,
}

impl Pools {
    pub(super) fn open(url: &str, settings: &Settings) -> Result<Self, Error> {
        let base: PgConnectOptions = pools::connect_options(url, "PostgreSQL")?;
        let timeout_ms = settings.statement_timeout.as_millis().max(1).to_string();
        let lock_ms = settings.lock_timeout().as_millis().max(1).to_string();
        let idle_ms = (settings.statement_timeout.as_millis() * 2)
            .max(1000)
            .to_string();
        let common = base
            .application_name("switchboard-database-connector")
            .options([
                ("statement_timeout", timeout_ms.as_str()),
                ("lock_timeout", lock_ms.as_str()),
                ("idle_in_transaction_session_timeout", idle_ms.as_str()),
            ]);
        let read_options = common
            .clone()
            .options([("default_transaction_read_only", "on")]);
        let release_timeout = settings.release_timeout();
        let pool = || {
            pools::options::<Postgres>(settings).after_release(move |conn, _meta| {
                Box::pin(async move { Ok(reset_session(conn, release_timeout).await) })
            })
        };
        let read = pool().connect_lazy_with(read_options);
        Ok(Self {
            pools: pools::Pair::new(settings, read, || pool().connect_lazy_with(common)),
        })
    }

    async fn schema_or_default(&self, schema: Option<&str>) -> Result<String, Error> {
        let row = sqlx::query(
            "SELECT n.nspname::text FROM pg_catalog.pg_namespace n
             WHERE n.nspname = COALESCE($1, current_schema())",
        )
        .bind(schema)
        .fetch_optional(&self.pools.read)
        .await?;
        match row {
            Some(row) => Ok(row.try_get(0)?),
            None => Err(schema_not_found(schema, "schema", "current schema")),
        }
    }
}

impl Engine for Pools {
    /// What the connector's database user may do beyond reading: role
    /// attributes, write-capable predefined roles, CREATE on the database or a
    /// schema, and INSERT/UPDATE/DELETE/TRUNCATE (or ownership) on any relation
    /// of a schema it can use. Each finding says how to take it away.
    async fn privileges(&self) -> Result<Privileges, Error> {
        // One more than is listed, to know there are more.
        let row = sqlx::query(PRIVILEGES_SQL)
            .bind(i64::try_from(MAX_FINDINGS + 1).unwrap_or(i64::MAX))
            .fetch_one(&self.pools.read)
            .await?;
        let user: String = row.try_get(0)?;
        let role = quote_ident(&user);
        let mut findings = Vec::new();
        for (column, attribute, fix) in [
            (1, "rolsuper", "NOSUPERUSER"),
            (2, "rolcreaterole", "NOCREATEROLE"),
            (3, "rolcreatedb", "NOCREATEDB"),
            (4, "rolreplication", "NOREPLICATION"),
        ] {
            if row.try_get::<bool, _>(column)? {
                let what = match attribute {
                    "rolsuper" => "is a superuser",
                    "rolcreaterole" => "may create roles",
                    "rolcreatedb" => "may create databases",
                    _ => "may start replication",
                };
                findings.push(format!("it {what} ({attribute}; ALTER ROLE {role} {fix})"));
            }
        }
        if row.try_get::<bool, _>(5)? {
            findings.push(format!(
                "it may CREATE in this database (REVOKE CREATE ON DATABASE {} FROM {role}, and from PUBLIC)",
                quote_ident(&row.try_get::<String, _>(6)?)
            ));
        }
        for predefined in row.try_get::<Vec<String>, _>(7)? {
            findings.push(format!(
                "it is a member of {predefined} (REVOKE {predefined} FROM {role})"
            ));
        }
        for schema in row
            .try_get::<Vec<String>, _>(8)?
            .into_iter()
            .take(MAX_FINDINGS)
        {
            findings.push(format!(
                "it may CREATE in schema {schema} (REVOKE CREATE ON SCHEMA {schema} FROM {role}, and from PUBLIC)"
            ));
        }
        let mut grants = row.try_get::<Vec<String>, _>(9)?;
        if !grants.is_empty() {
            if grants.len() > MAX_FINDINGS {
                grants.truncate(MAX_FINDINGS);
                grants.push("…".to_owned());
            }
            findings.push(format!(
                "it can change relations: {} (REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA <schema> FROM {role}; an owner keeps every right, so connect as a role that owns nothing)",
                grants.join(", ")
            ));
        }
        Ok(Privileges {
            user,
            beyond_reading: findings,
        })
    }

    async fn query(&self, request: Read<'_>) -> Result<Rows, Error> {
        pools::retried_once(|| async move {
            let mut conn = self.pools.read.acquire().await?;
            with_fresh_plans!(conn, read(&mut conn, request).await)
        })
        .await
    }

    /// Reports no generated key: PostgreSQL has none but what `RETURNING` returns.
    async fn execute(&self, request: Write<'_>) -> Result<WriteOutcome, Error> {
        let mut conn = self.pools.writer()?.acquire().await?;
        with_fresh_plans!(conn, write(&mut conn, request).await)
    }

    async fn explain(&self, query: Statement<'_>, analyze: bool) -> Result<Plan, Error> {
        let Statement { sql, params } = query;
        let options = if analyze {
            "ANALYZE, BUFFERS, FORMAT TEXT"
        } else {
            "FORMAT TEXT"
        };
        let statement = format!("EXPLAIN ({options}) {sql}");
        let mut conn = self.pools.read.acquire().await?;
        let rows = with_fresh_plans!(conn, plan(&mut conn, &statement, params).await)?;
        let lines = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            text: lines.join("\n"),
            format: "text",
            analyzed: analyze,
            elapsed: Default::default(),
        })
    }

    async fn list_schemas(&self, include_system: bool) -> Result<Vec<pb::Schema>, Error> {
        let query = sqlx::query(
            "SELECT n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner)::text,
                    COALESCE(pg_catalog.obj_description(n.oid, 'pg_namespace'), ''),
                    n.nspname = current_schema()
             FROM pg_catalog.pg_namespace n
             WHERE $1 OR (n.nspname NOT IN ('pg_catalog', 'information_schema')
                          AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%')
             ORDER BY 1",
        )
        .bind(include_system);
        self.pools
            .each_row(query, |r| {
                Ok(pb::Schema {
                    name: r.try_get(0)?,
                    owner: r.try_get(1)?,
                    comment: r.try_get(2)?,
                    is_default: r.try_get::<Option<bool>, _>(3)?.unwrap_or(false),
                })
            })
            .await
    }

    async fn list_tables(&self, filter: TableFilter<'_>) -> Result<Tables, Error> {
        let schema = self.schema_or_default(filter.schema).await?;
        let query = sqlx::query(
            "SELECT c.relname::text, c.relkind::text,
                    CASE WHEN c.relkind IN ('r', 'm', 'f', 'p') AND c.reltuples >= 0
                         THEN c.reltuples::int8 END,
                    COALESCE(pg_catalog.obj_description(c.oid, 'pg_class'), '')
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT c.relispartition
               AND ($2::text IS NULL OR strpos(lower(c.relname), lower($2::text)) > 0)
             ORDER BY c.relname",
        )
        .bind(&schema)
        .bind(filter.name_contains);
        let tables = self
            .pools
            .each_row(query, |r| {
                Ok(pb::Table {
                    schema: schema.clone(),
                    name: r.try_get(0)?,
                    kind: relkind(&r.try_get::<String, _>(1)?) as i32,
                    row_estimate: r.try_get(2)?,
                    comment: r.try_get(3)?,
                })
            })
            .await?;
        Ok((schema, tables))
    }

    async fn describe_table(&self, table: TableName<'_>) -> Result<pb::TableDescription, Error> {
        let schema = self.schema_or_default(table.schema).await?;
        let relation = sqlx::query(
            "SELECT c.oid, c.relkind::text, COALESCE(pg_catalog.obj_description(c.oid, 'pg_class'), '')
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')",
        )
        .bind(&schema)
        .bind(table.name)
        .fetch_optional(&self.pools.read)
        .await?
        .ok_or_else(|| table_not_found(table.name, format_args!("schema {schema:?}")))?;
        let oid: Oid = relation.try_get(0)?;
        let mut description = pb::TableDescription {
            schema: schema.clone(),
            name: table.name.to_owned(),
            kind: relkind(&relation.try_get::<String, _>(1)?) as i32,
            comment: relation.try_get(2)?,
            ..Default::default()
        };

        let columns = sqlx::query(
            "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                    pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                    COALESCE(pg_catalog.col_description(a.attrelid, a.attnum), ''), a.attnum::int4
             FROM pg_catalog.pg_attribute a
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
        )
        .bind(oid);
        description.columns = self
            .pools
            .each_row(columns, |r| {
                Ok(pb::TableColumn {
                    name: r.try_get(0)?,
                    r#type: r.try_get(1)?,
                    nullable: r.try_get(2)?,
                    default: r.try_get(3)?,
                    comment: r.try_get(4)?,
                    position: r.try_get::<i32, _>(5)?.try_into().unwrap_or(0),
                })
            })
            .await?;

        let pk = sqlx::query(
            "SELECT a.attname::text
             FROM pg_catalog.pg_index i
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = $1 AND i.indisprimary
             ORDER BY k.ord",
        )
        .bind(oid);
        description.primary_key = self.pools.each_row(pk, |r| Ok(r.try_get(0)?)).await?;

        let fks = sqlx::query(
            "SELECT con.conname::text,
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(n, o)
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                          ORDER BY k.o),
                    fn.nspname::text, fc.relname::text,
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(n, o)
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                          ORDER BY k.o),
                    con.confdeltype::text, con.confupdtype::text
             FROM pg_catalog.pg_constraint con
             JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
             JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
             WHERE con.conrelid = $1 AND con.contype = 'f'
             ORDER BY con.conname",
        )
        .bind(oid);
        description.foreign_keys = self
            .pools
            .each_row(fks, |r| {
                Ok(pb::ForeignKey {
                    name: r.try_get(0)?,
                    columns: r.try_get(1)?,
                    referenced_schema: r.try_get(2)?,
                    referenced_table: r.try_get(3)?,
                    referenced_columns: r.try_get(4)?,
                    on_delete: fk_action(&r.try_get::<String, _>(5)?),
                    on_update: fk_action(&r.try_get::<String, _>(6)?),
                })
            })
            .await?;

        let indexes = sqlx::query(
            "SELECT ic.relname::text, i.indisunique, i.indisprimary, am.amname::text,
                    ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k.o::int4, true)
                          FROM generate_series(1, i.indnkeyatts::int4) AS k(o) ORDER BY k.o)
             FROM pg_catalog.pg_index i
             JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_catalog.pg_am am ON am.oid = ic.relam
             WHERE i.indrelid = $1
             ORDER BY ic.relname",
        )
        .bind(oid);
        description.indexes = self
            .pools
            .each_row(indexes, |r| {
                Ok(pb::Index {
                    name: r.try_get(0)?,
                    unique: r.try_get(1)?,
                    primary: r.try_get(2)?,
                    method: r.try_get(3)?,
                    columns: r.try_get(4)?,
                })
            })
            .await?;
        Ok(description)
    }

    type Db = Postgres;

    fn pools(&self) -> &pools::Pair<Postgres> {
        &self.pools
    }
}

/// What [`reset_session`] sends: one round trip, after each use of a connection.
pub const SESSION_RESET: &str = "SELECT pg_catalog.pg_advisory_unlock_all(); UNLISTEN *; RESET ALL";

/// Clears what a statement may have left on its session before the connection
/// is used again: session-level advisory locks (which outlive the ROLLBACK of
/// the read's transaction), LISTEN registrations and settings changed with SET
/// (back to the values the connection started with). True when the connection
/// is clean; false closes it instead of returning it to the pool.
async fn reset_session(conn: &mut PgConnection, timeout: std::time::Duration) -> bool {
    let reset = conn.execute(sqlx::raw_sql(SESSION_RESET));
    pools::cleaned(reset, timeout, "reset").await
}

/// Findings listed per kind (schemas, relations) before the check stops looking.
const MAX_FINDINGS: usize = 5;

/// The user's role attributes and every write-capable privilege, each list
/// cut at `$1` entries. Schemas named `pg_*` and `information_schema` are the
/// system's and left out.
const PRIVILEGES_SQL: &str = "
WITH usable AS (
    SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n
    WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
      AND has_schema_privilege(n.oid, 'USAGE')
)
SELECT current_user::text, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
       has_database_privilege(current_database(), 'CREATE'), current_database()::text,
       ARRAY(SELECT g.rolname::text FROM pg_catalog.pg_roles g
             WHERE g.rolname IN ('pg_write_all_data', 'pg_write_server_files', 'pg_execute_server_program')
               AND pg_has_role(current_user, g.oid, 'MEMBER')
             ORDER BY 1),
       ARRAY(SELECT quote_ident(u.nspname) FROM usable u
             WHERE has_schema_privilege(u.oid, 'CREATE') ORDER BY 1 LIMIT $1),
       ARRAY(SELECT w.what FROM (
                SELECT format('%s on %I.%I', p.privilege, u.nspname, c.relname) AS what
                FROM usable u
                JOIN pg_catalog.pg_class c ON c.relnamespace = u.oid
                CROSS JOIN (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('ownership')) AS p(privilege)
                WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm', 'S')
                  AND CASE p.privilege
                        WHEN 'ownership' THEN pg_has_role(c.relowner, 'USAGE')
                        WHEN 'INSERT' THEN c.relkind <> 'S' AND has_any_column_privilege(c.oid, 'INSERT')
                        WHEN 'UPDATE' THEN CASE WHEN c.relkind = 'S'
                                                THEN has_sequence_privilege(c.oid, 'UPDATE')
                                                ELSE has_any_column_privilege(c.oid, 'UPDATE') END
                        ELSE c.relkind <> 'S' AND has_table_privilege(c.oid, p.privilege)
                      END
                LIMIT $1) AS w)
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/// An identifier quoted for SQL shown in a message.
fn quote_ident(identifier: &str) -> String {
    if !identifier.is_empty()
        && identifier
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !identifier.starts_with(|c: char| c.is_ascii_digit())
    {
        identifier.to_owned()
    } else {
        format!("\"{}\"", identifier.replace('"', "\"\""))
    }
}

/// Runs `$run` (an expression using connection `$conn`), and once more after
/// forgetting the statements kept on the connection when PostgreSQL refuses one
/// because a table it reads changed shape since it was prepared.
macro_rules! with_fresh_plans {
    ($conn:ident, $run:expr) => {
        match $run {
            Err(error) if stale_plan(&error) => {
                tracing::debug!("a table changed shape; preparing its statements again");
                $conn.clear_cached_statements().await?;
                $run
            }
            other => other,
        }
    };
}
use with_fresh_plans;

/// "cached plan must not change result type": a kept statement outlived the shape
/// of a table it reads.
fn stale_plan(error: &Error) -> bool {
    matches!(error, Error::Database(message) if message.contains("cached plan must not change result type"))
}

/// How a read's transaction begins.
const BEGIN_READ_ONLY: &str = "BEGIN TRANSACTION READ ONLY";

/// A read in a read-only transaction: one that is always rolled back, or the
/// statement's own, read-only by the session (see [`ReadTransaction`](super::ReadTransaction)).
async fn read(conn: &mut PgConnection, request: Read<'_>) -> Result<Rows, Error> {
    let Statement { sql, params } = request.statement;
    pools::read::<Postgres, _>(conn, request.transaction, BEGIN_READ_ONLY, async |tx| {
        let prepared = Prepared::new(tx, sql, params).await?;
        let mut rows = collect(prepared.query(sql).fetch(&mut *tx), request.caps, decode).await?;
        if rows.columns.is_empty() {
            // No row came back: the columns PostgreSQL announced instead.
            rows.columns = columns_of(prepared.columns());
        }
        Ok(rows)
    })
    .await
}

/// A write, committed by itself.
async fn write(conn: &mut PgConnection, request: Write<'_>) -> Result<WriteOutcome, Error> {
    let Statement { sql, params } = request.statement;
    let prepared = Prepared::new(conn, sql, params).await?;
    #[allow(deprecated)] // fetch_many is the one call that yields both rows and the count
    let stream = prepared.query(sql).fetch_many(&mut *conn);
    collect_write(stream, request.caps, decode, |done| {
        (done.rows_affected(), None)
    })
    .await
}

/// The rows of an EXPLAIN `statement`, in a read-only transaction rolled back.
async fn plan(
    conn: &mut PgConnection,
    statement: &str,
    params: &[serde_json::Value],
) -> Result<Vec<PgRow>, Error> {
    pools::read_only::<Postgres, _>(conn, Some(BEGIN_READ_ONLY), async |tx| {
        let prepared = Prepared::new(tx, statement, params).await?;
        Ok(prepared.query(statement).fetch_all(&mut *tx).await?)
    })
    .await
}

fn relkind(kind: &str) -> pb::TableKind {
    match kind {
        "r" => pb::TableKind::Table,
        "v" => pb::TableKind::View,
        "m" => pb::TableKind::MaterializedView,
        "f" => pb::TableKind::ForeignTable,
        "p" => pb::TableKind::PartitionedTable,
        _ => pb::TableKind::Unspecified,
    }
}

/// One value of a row as JSON with its type kept faithfully, held to `cap`:
/// text, binary, JSON and text-like values are read borrowed and cut; an array
/// or number over the cap is omitted with a note.
pub(super) fn decode(row: &PgRow, i: usize, cap: &mut values::ValueCap) -> Result<Value, Error> {
    let raw = row.try_get_raw(i).map_err(|e| decode_error(row, i, e))?;
    if raw.is_null() {
        return Ok(values::null());
    }
    // Borrowed from the column (no copy per value); each value is decoded
    // from `raw` itself, the column's type being known to match.
    let info = raw.type_info();
    let type_name = info.name();
    let err = |e: BoxDynError| decode_error(row, i, e);
    let wire = raw.as_bytes().unwrap_or_default();
    if (type_name.ends_with("[]") || type_name == "NUMERIC") && !cap.fits(wire.len()) {
        return Ok(cap.omitted(i, wire.len()));
    }
    let value = match type_name {
        "BOOL" => values::boolean(get::<bool>(&raw).map_err(err)?),
        "INT2" => values::int(get::<i16>(&raw).map_err(err)?.into()),
        "INT4" => values::int(get::<i32>(&raw).map_err(err)?.into()),
        "INT8" => values::int(get::<i64>(&raw).map_err(err)?),
        "OID" => values::int(get::<Oid>(&raw).map_err(err)?.0.into()),
        "FLOAT4" => values::float(get::<f32>(&raw).map_err(err)?.into()),
        "FLOAT8" => values::float(get::<f64>(&raw).map_err(err)?),
        "NUMERIC" => values::string(match numeric_text(wire) {
            Some(text) => text,
            None => numeric_text_via_bigdecimal(row, i, wire)?,
        }),
        "MONEY" => values::string(
            get::<PgMoney>(&raw)
                .map_err(err)?
                .to_bigdecimal(2)
                .to_plain_string(),
        ),
        "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" | "UNKNOWN" | "CITEXT" => {
            cap.text(i, get::<&str>(&raw).map_err(err)?)
        }
        "BYTEA" => cap.bytes(i, get::<&[u8]>(&raw).map_err(err)?),
        "DATE" => values::string(
            get::<chrono::NaiveDate>(&raw)
                .map_err(err)?
                .format("%Y-%m-%d")
                .to_string(),
        ),
        "TIME" => values::string(
            get::<chrono::NaiveTime>(&raw)
                .map_err(err)?
                .format("%H:%M:%S%.f")
                .to_string(),
        ),
        "TIMETZ" => {
            let t = get::<PgTimeTz>(&raw).map_err(err)?;
            values::string(format!("{}{}", t.time.format("%H:%M:%S%.f"), t.offset))
        }
        "TIMESTAMP" => values::string(
            get::<chrono::NaiveDateTime>(&raw)
                .map_err(err)?
                .format("%Y-%m-%dT%H:%M:%S%.f")
                .to_string(),
        ),
        "TIMESTAMPTZ" => values::string(
            get::<chrono::DateTime<chrono::Utc>>(&raw)
                .map_err(err)?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        "INTERVAL" => {
            let v = get::<PgInterval>(&raw).map_err(err)?;
            values::string(values::iso_interval(v.months, v.days, v.microseconds))
        }
        "UUID" => values::string(get::<uuid::Uuid>(&raw).map_err(err)?.to_string()),
        "JSON" | "JSONB" if !cap.fits(wire.len()) => {
            // Binary JSONB is a version byte, then the text.
            let text = if type_name == "JSONB" {
                wire.get(1..).unwrap_or_default()
            } else {
                wire
            };
            cap.text_bytes(i, text)
        }
        "JSON" | "JSONB" => values::from_json(&get::<serde_json::Value>(&raw).map_err(err)?),
        "VOID" => values::null(),
        "BOOL[]" => list(
            get::<Vec<Option<bool>>>(&raw).map_err(err)?,
            values::boolean,
        ),
        "INT2[]" => list(get::<Vec<Option<i16>>>(&raw).map_err(err)?, |v| {
            values::int(v.into())
        }),
        "INT4[]" => list(get::<Vec<Option<i32>>>(&raw).map_err(err)?, |v| {
            values::int(v.into())
        }),
        "INT8[]" => list(get::<Vec<Option<i64>>>(&raw).map_err(err)?, values::int),
        "FLOAT4[]" => list(get::<Vec<Option<f32>>>(&raw).map_err(err)?, |v| {
            values::float(v.into())
        }),
        "FLOAT8[]" => list(get::<Vec<Option<f64>>>(&raw).map_err(err)?, values::float),
        "NUMERIC[]" => list(
            get::<Vec<Option<bigdecimal::BigDecimal>>>(&raw).map_err(err)?,
            |d| values::string(d.to_plain_string()),
        ),
        "TEXT[]" | "VARCHAR[]" | "BPCHAR[]" | "NAME[]" => list(
            get::<Vec<Option<String>>>(&raw).map_err(err)?,
            values::string,
        ),
        "UUID[]" => list(get::<Vec<Option<uuid::Uuid>>>(&raw).map_err(err)?, |u| {
            values::string(u.to_string())
        }),
        "INET" | "CIDR" => match raw.as_bytes().ok().and_then(inet_text) {
            Some(text) => values::string(text),
            None => values::bytes(raw.as_bytes().unwrap_or_default()),
        },
        // Enums, domains over text and other types whose binary form is text;
        // anything else comes back as base64 of its binary form.
        _ => {
            // Judged on the part that would be kept, so a huge value is not
            // scanned whole.
            let head = wire.get(..cap.max()).unwrap_or(wire);
            let text_prefix = match std::str::from_utf8(head) {
                Ok(text) => Some(text),
                // Cut through a character at the cap: the part before counts.
                Err(e) if e.error_len().is_none() && head.len() < wire.len() => {
                    std::str::from_utf8(&head[..e.valid_up_to()]).ok()
                }
                Err(_) => None,
            };
            match text_prefix {
                Some(text) if !text.contains('\0') => cap.text_bytes(i, wire),
                _ => cap.bytes(i, wire),
            }
        }
    };
    Ok(value)
}

/// `T` decoded from `raw` (whose type the caller has checked).
fn get<'r, T: sqlx::Decode<'r, Postgres>>(raw: &PgValueRef<'r>) -> Result<T, BoxDynError> {
    T::decode(raw.clone())
}

/// A NUMERIC as exact decimal text with the scale the database reports
/// (`12.30`, not `12.3` or `12.3000`), or `NaN` / `Infinity` / `-Infinity`,
/// written straight from the binary form: a header of four 16-bit fields
/// (number of digits, weight of the first digit as a power of 10000, sign,
/// display scale) and the base-10000 digits. `None` when the bytes are not
/// such a value (then [`numeric_text_via_bigdecimal`] decides).
fn numeric_text(binary: &[u8]) -> Option<String> {
    use std::fmt::Write as _;
    let field = |at: usize| {
        binary
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (ndigits, weight, sign, scale) = (
        usize::from(field(0)?),
        i64::from(field(2)? as i16),
        field(4)?,
        usize::from(field(6)?),
    );
    match sign {
        0xC000 => return Some("NaN".to_owned()),
        0xD000 => return Some("Infinity".to_owned()),
        0xF000 => return Some("-Infinity".to_owned()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    if binary.len() != 8 + 2 * ndigits {
        return None;
    }
    let digit = |index: i64| -> Option<u16> {
        let index = usize::try_from(index).ok()?;
        if index < ndigits {
            field(8 + 2 * index)
        } else {
            Some(0)
        }
    };
    let mut text = String::with_capacity(4 * (weight.max(0) as usize + 1) + scale + 2);
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for index in 0..=weight {
            let d = digit(index)?;
            if d > 9999 {
                return None;
            }
            if index == 0 {
                let _ = write!(text, "{d}");
            } else {
                let _ = write!(text, "{d:04}");
            }
        }
    }
    if scale > 0 {
        text.push('.');
        let fraction_start = text.len();
        let mut index = weight + 1;
        while text.len() - fraction_start < scale {
            let d = if index < 0 { 0 } else { digit(index)? };
            if d > 9999 {
                return None;
            }
            let _ = write!(text, "{d:04}");
            index += 1;
        }
        text.truncate(fraction_start + scale);
    }
    Some(text)
}

/// [`numeric_text`] by way of `BigDecimal`, for bytes it does not read.
fn numeric_text_via_bigdecimal(row: &PgRow, i: usize, binary: &[u8]) -> Result<String, Error> {
    // Binary NUMERIC header: ndigits, weight, sign, display scale (all 16-bit).
    let header = |at: usize| {
        binary
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    match header(4) {
        Some(0xC000) => return Ok("NaN".to_owned()),
        Some(0xD000) => return Ok("Infinity".to_owned()),
        Some(0xF000) => return Ok("-Infinity".to_owned()),
        _ => {}
    }
    let value = row
        .try_get::<bigdecimal::BigDecimal, _>(i)
        .map_err(|e| decode_error(row, i, e))?;
    Ok(match header(6) {
        Some(scale) => value.with_scale(i64::from(scale)).to_plain_string(),
        None => value.to_plain_string(),
    })
}

fn list<T>(items: Vec<Option<T>>, each: impl Fn(T) -> Value) -> Value {
    values::list(
        items
            .into_iter()
            .map(|v| v.map(&each).unwrap_or_else(values::null))
            .collect(),
    )
}

/// PostgreSQL's binary `inet`/`cidr`: family, bits, is_cidr, length, address.
fn inet_text(bytes: &[u8]) -> Option<String> {
    let (family, bits, len) = (*bytes.first()?, *bytes.get(1)?, *bytes.get(3)? as usize);
    let addr = bytes.get(4..4 + len)?;
    let ip = match (family, len) {
        (2, 4) => std::net::IpAddr::from(<[u8; 4]>::try_from(addr).ok()?),
        (3, 16) => std::net::IpAddr::from(<[u8; 16]>::try_from(addr).ok()?),
        _ => return None,
    };
    let full = if ip.is_ipv4() { 32 } else { 128 };
    Some(if bits == full {
        ip.to_string()
    } else {
        format!("{ip}/{bits}")
    })
}

#[cfg(test)]
mod tests {
    use super::numeric_text;

    /// The binary NUMERIC of base-10000 `digits` with `weight`, `sign` and `scale`.
    fn numeric(digits: &[u16], weight: i16, sign: u16, scale: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        let ndigits = u16::try_from(digits.len()).expect("few digits");
        for field in [ndigits, weight as u16, sign, scale] {
            bytes.extend_from_slice(&field.to_be_bytes());
        }
        for digit in digits {
            bytes.extend_from_slice(&digit.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn numerics_are_written_exactly_with_their_display_scale() {
        let cases: &[(&[u16], i16, u16, u16, &str)] = &[
            (&[12, 3000], 0, 0, 2, "12.30"),
            (&[500], -1, 0, 2, "0.05"),
            (&[5], -2, 0, 8, "0.00000005"),
            (&[10], 1, 0, 0, "100000"),
            (&[1, 5000], 0, 0x4000, 1, "-1.5"),
            (&[], 0, 0, 2, "0.00"),
            (&[], 0, 0, 0, "0"),
            (&[1, 0, 1], 2, 0, 0, "100000001"),
            (&[1], 2, 0, 3, "100000000.000"),
            (&[9999, 9999, 9999], 0, 0, 6, "9999.999999"),
            (&[1234, 5678], 0, 0, 4, "1234.5678"),
        ];
        for &(digits, weight, sign, scale, expected) in cases {
            assert_eq!(
                numeric_text(&numeric(digits, weight, sign, scale)).as_deref(),
                Some(expected),
                "{digits:?} weight {weight} scale {scale}"
            );
        }
        assert_eq!(
            numeric_text(&numeric(&[], 0, 0xC000, 0)).as_deref(),
            Some("NaN")
        );
        assert_eq!(numeric_text(&[0, 1]), None, "too short");
        assert_eq!(
            numeric_text(&numeric(&[10000], 0, 0, 0)),
            None,
            "not a digit"
        );
    }
}
