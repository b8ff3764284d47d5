//! The gRPC service: argument checking and mapping between proto messages and
//! the engine. No SQL is built here.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use switchboard_proto::database::v1 as pb;
use tonic::{Request, Response, Status};

use crate::cache::{self, QueryCache};
use crate::engine::{Database, Rows};
use crate::error::Error;
use crate::values;

/// Rows returned when the caller does not say.
pub const DEFAULT_MAX_ROWS: u32 = 100;

/// Implements `switchboard.database.v1.Database`.
#[derive(Debug, Clone)]
pub struct DatabaseService {
    db: Arc<Database>,
    cache: Arc<QueryCache>,
}

impl DatabaseService {
    /// A service over `db`, caching query results in `cache`.
    pub fn new(db: Arc<Database>, cache: Arc<QueryCache>) -> Self {
        Self { db, cache }
    }

    fn engine(&self) -> i32 {
        self.db.kind().proto() as i32
    }
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, Error> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Err(Error::InvalidArgument(format!(
            "`{field}` is required and must not be empty"
        )))
    } else {
        Ok(trimmed)
    }
}

fn optional(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn parameters(values: &[prost_types::Value]) -> Vec<serde_json::Value> {
    values.iter().map(values::to_json).collect()
}

fn columns(rows: &Rows) -> Vec<pb::Column> {
    rows.columns
        .iter()
        .map(|(name, ty)| pb::Column {
            name: name.clone(),
            r#type: ty.clone(),
        })
        .collect()
}

/// Runs one call inside a span and logs its duration and outcome (never its
/// SQL or parameters above debug level).
async fn observed<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<Response<T>, Status> {
    let span = tracing::info_span!("database_call", method);
    let started = std::time::Instant::now();
    let result = tracing::Instrument::instrument(call, span.clone()).await;
    let elapsed_ms = millis(started.elapsed());
    let _entered = span.enter();
    match result {
        Ok(value) => {
            tracing::info!(elapsed_ms, outcome = "ok", "call finished");
            Ok(Response::new(value))
        }
        Err(error) => {
            let status = Status::from(error);
            tracing::info!(elapsed_ms, outcome = ?status.code(), reason = status.message(), "call failed");
            Err(status)
        }
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl DatabaseService {
    async fn run_query(&self, request: pb::QueryRequest) -> Result<pb::QueryResult, Error> {
        let sql = required(&request.sql, "sql")?;
        let params = parameters(&request.parameters);
        let row_limit = self.db.settings().max_rows;
        let max_rows = match request.max_rows {
            None => DEFAULT_MAX_ROWS.min(row_limit),
            Some(0) => {
                return Err(Error::InvalidArgument(
                    "`max_rows` must be at least 1 (leave it out for the default of 100)"
                        .to_owned(),
                ));
            }
            Some(n) => n.min(row_limit),
        };
        let ttl = request
            .cache_ttl
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t.into()));
        let key = ttl.map(|_| cache::key(self.db.identity(), sql, &params, max_rows));

        if let Some(key) = key
            && let Some(bytes) = self.cache.get(key).await
            && let Ok(mut hit) = pb::QueryResult::decode(bytes.as_slice())
        {
            hit.cached = true;
            tracing::debug!(rows = hit.row_count, "query answered from cache");
            return Ok(hit);
        }

        let rows = self.db.query(sql, &params, max_rows).await?;
        let result = pb::QueryResult {
            columns: columns(&rows),
            row_count: rows.rows.len() as u64,
            truncated: rows.truncated.is_some(),
            truncated_reason: rows.truncated.clone().unwrap_or_default(),
            elapsed_ms: millis(rows.elapsed),
            cached: false,
            cached_at: String::new(),
            engine: self.engine(),
            row_limit,
            rows: rows.rows,
        };
        if let (Some(key), Some(ttl)) = (key, ttl) {
            let mut stored = result.clone();
            stored.cached_at =
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            self.cache.put(key, stored.encode_to_vec(), ttl).await;
        }
        Ok(result)
    }

    async fn run_execute(&self, request: pb::ExecuteRequest) -> Result<pb::ExecuteResult, Error> {
        let sql = required(&request.sql, "sql")?;
        let params = parameters(&request.parameters);
        let outcome = self.db.execute(sql, &params).await;
        // Even a failed statement may have changed something (DDL on MySQL
        // commits as it goes): forget cached results either way once it ran.
        if !matches!(
            outcome,
            Err(Error::NotAllowed(_) | Error::Refused(_) | Error::InvalidArgument(_))
        ) {
            self.cache.invalidate().await;
        }
        let outcome = outcome?;
        tracing::info!(rows_affected = outcome.rows_affected, "statement executed");
        Ok(pb::ExecuteResult {
            rows_affected: outcome.rows_affected,
            last_insert_id: outcome.last_insert_id,
            elapsed_ms: millis(outcome.rows.elapsed),
            engine: self.engine(),
            columns: columns(&outcome.rows),
            truncated_reason: outcome.rows.truncated.unwrap_or_default(),
            rows: outcome.rows.rows,
        })
    }

    async fn run_list_schemas(
        &self,
        request: pb::ListSchemasRequest,
    ) -> Result<pb::ListSchemasResponse, Error> {
        let schemas = self
            .db
            .list_schemas(request.include_system.unwrap_or(false))
            .await?;
        Ok(pb::ListSchemasResponse {
            schemas,
            engine: self.engine(),
        })
    }

    async fn run_list_tables(
        &self,
        request: pb::ListTablesRequest,
    ) -> Result<pb::ListTablesResponse, Error> {
        let (schema, tables) = self
            .db
            .list_tables(
                optional(request.schema.as_deref()),
                optional(request.name_contains.as_deref()),
            )
            .await?;
        Ok(pb::ListTablesResponse {
            schema,
            tables,
            engine: self.engine(),
        })
    }

    async fn run_describe_table(
        &self,
        request: pb::DescribeTableRequest,
    ) -> Result<pb::TableDescription, Error> {
        let table = required(&request.table, "table")?;
        let description = self
            .db
            .describe_table(optional(request.schema.as_deref()), table)
            .await?;
        Ok(description)
    }

    async fn run_explain(&self, request: pb::ExplainRequest) -> Result<pb::ExplainResult, Error> {
        let sql = required(&request.sql, "sql")?;
        let params = parameters(&request.parameters);
        let plan = self
            .db
            .explain(sql, &params, request.analyze.unwrap_or(false))
            .await?;
        Ok(pb::ExplainResult {
            plan: plan.text,
            format: plan.format.to_owned(),
            analyzed: plan.analyzed,
            elapsed_ms: millis(plan.elapsed),
            engine: self.engine(),
        })
    }
}

#[tonic::async_trait]
impl pb::database_server::Database for DatabaseService {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResult>, Status> {
        observed("query", self.run_query(request.into_inner())).await
    }

    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResult>, Status> {
        observed("execute", self.run_execute(request.into_inner())).await
    }

    async fn list_schemas(
        &self,
        request: Request<pb::ListSchemasRequest>,
    ) -> Result<Response<pb::ListSchemasResponse>, Status> {
        observed("list_schemas", self.run_list_schemas(request.into_inner())).await
    }

    async fn list_tables(
        &self,
        request: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        observed("list_tables", self.run_list_tables(request.into_inner())).await
    }

    async fn describe_table(
        &self,
        request: Request<pb::DescribeTableRequest>,
    ) -> Result<Response<pb::TableDescription>, Status> {
        observed(
            "describe_table",
            self.run_describe_table(request.into_inner()),
        )
        .await
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResult>, Status> {
        observed("explain", self.run_explain(request.into_inner())).await
    }
}
