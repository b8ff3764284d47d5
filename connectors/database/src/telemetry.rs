//! What the database connector reports beyond the kit's gRPC metrics: its pools
//! and its query cache as Prometheus metrics, and every database operation as an
//! OpenTelemetry client span.
//!
//! Pool metrics follow the OpenTelemetry database client conventions and are read
//! from the live pools when `/metrics` is scraped (nothing polls them):
//!
//! - `db_client_connection_count{db_system, db_client_connection_pool_name,
//!   db_client_connection_state}`: open connections, `idle` or `used`
//!   (their sum is the pool's size);
//! - `db_client_connection_max{db_system, db_client_connection_pool_name}`: the
//!   pool's limit (`DB_POOL_SIZE`);
//! - `db_client_connection_pending_requests{db_system, db_client_connection_pool_name}`:
//!   operations waiting for a connection, counted as the operations in flight on
//!   the pool beyond the connections in use (sqlx does not expose its waiters).
//!
//! The pool name is `read` (every read, Explain and the catalog) or `write`
//! (Execute, read-write mode only). `db_system` is `postgresql`, `mysql` (MySQL and
//! MariaDB) or `sqlite`.
//!
//! The cache counts `switchboard_cache_requests_total{cache="query", backend,
//! result}`: `backend` `memory` (moka) or `redis`, `result` `hit`, `miss`, or
//! `error` (Redis failed; the query ran as on a miss).
//!
//! Spans: each operation on the database is a client span named `{db.operation}
//! {db.name}` with `db.system`, `db.operation` (the statement's SQL keyword, such
//! as `SELECT`; `SELECT` for the catalog reads), `db.name`, `server.address`,
//! `server.port` and, on failure, `error.type`. The statement text is left out
//! unless `DB_TRACE_STATEMENTS=true` (then `db.statement`): it can hold literal
//! values. Each Redis command of the cache is a client span with
//! `db.system=redis` and `db.operation` (`GET`, `SET`, `INCR`). Labels and span
//! names hold only names from code, never SQL, parameters or URLs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::engine::EngineKind;
use crate::error::Error;

/// Which pool an operation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PoolName {
    /// Reads, Explain and the catalog.
    Read,
    /// Execute (read-write mode).
    Write,
}

impl PoolName {
    fn label(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// `db.system` of an engine (OpenTelemetry's well-known values).
pub fn db_system(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Postgres => "postgresql",
        EngineKind::MySql => "mysql",
        EngineKind::Sqlite => "sqlite",
    }
}

/// One pool, as the metrics read it.
struct PoolProbe {
    name: PoolName,
    /// `(open connections, idle connections)` right now.
    state: Box<dyn Fn() -> (u32, usize) + Send + Sync>,
    max: u32,
    in_flight: AtomicI64,
}

/// The pools of one [`crate::Database`], watched while it lives.
pub struct PoolWatch {
    system: &'static str,
    pools: Vec<PoolProbe>,
}

impl std::fmt::Debug for PoolWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolWatch")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

/// Operations in flight on one pool; counted down when dropped.
#[derive(Debug)]
pub struct InFlight<'a>(Option<&'a AtomicI64>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.0 {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl PoolWatch {
    /// Counts one operation on `pool` until the returned guard is dropped.
    pub fn in_flight(&self, pool: PoolName) -> InFlight<'_> {
        let probe = self.pools.iter().find(|p| p.name == pool);
        let count = probe.map(|p| &p.in_flight);
        if let Some(count) = count {
            count.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(count)
    }
}

/// Starts watching the pools `(name, pool)` of a database of `kind`; the
/// metrics see them as long as the returned watch lives.
pub fn watch_pools<DB: sqlx::Database>(
    kind: EngineKind,
    pools: impl IntoIterator<Item = (PoolName, sqlx::Pool<DB>)>,
) -> Arc<PoolWatch> {
    LazyLock::force(&METRICS);
    let watch = Arc::new(PoolWatch {
        system: db_system(kind),
        pools: pools
            .into_iter()
            .map(|(name, pool)| PoolProbe {
                name,
                max: pool.options().get_max_connections(),
                state: Box::new(move || (pool.size(), pool.num_idle())),
                in_flight: AtomicI64::new(0),
            })
            .collect(),
    });
    let mut watched = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    watched.retain(|w| w.strong_count() > 0);
    watched.push(Arc::downgrade(&watch));
    watch
}

/// Every pool watch that may still be alive (several in tests, one in a deployment).
static WATCHED: Mutex<Vec<Weak<PoolWatch>>> = Mutex::new(Vec::new());

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    db_system: &'static str,
    db_client_connection_pool_name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStateLabels {
    db_system: &'static str,
    db_client_connection_pool_name: &'static str,
    db_client_connection_state: &'static str,
}

/// One reading of every watched pool, summed per (system, pool) so that two
/// databases of one engine in a process still give one series each.
#[derive(Debug, Default, Clone, Copy)]
struct PoolReading {
    used: i64,
    idle: i64,
    max: i64,
    pending: i64,
}

fn read_pools() -> BTreeMap<(&'static str, PoolName), PoolReading> {
    let watches: Vec<Arc<PoolWatch>> = WATCHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    read(&watches)
}

fn read(watches: &[Arc<PoolWatch>]) -> BTreeMap<(&'static str, PoolName), PoolReading> {
    let mut readings = BTreeMap::new();
    for watch in watches {
        for probe in &watch.pools {
            let (size, idle) = (probe.state)();
            let idle = i64::try_from(idle).unwrap_or(i64::MAX);
            let used = (i64::from(size) - idle).max(0);
            let in_flight = probe.in_flight.load(Ordering::Relaxed).max(0);
            let reading: &mut PoolReading = readings.entry((watch.system, probe.name)).or_default();
            reading.used += used;
            reading.idle += idle;
            reading.max += i64::from(probe.max);
            reading.pending += (in_flight - used).max(0);
        }
    }
    readings
}

/// Which pool metric a [`PoolGauge`] encodes.
#[derive(Debug, Clone, Copy)]
enum PoolGaugeKind {
    Count,
    Max,
    Pending,
}

/// A gauge family read from the live pools at scrape time.
#[derive(Debug)]
struct PoolGauge(PoolGaugeKind);

impl EncodeMetric for PoolGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for ((system, pool), reading) in read_pools() {
            let labels = |state| PoolStateLabels {
                db_system: system,
                db_client_connection_pool_name: pool.label(),
                db_client_connection_state: state,
            };
            let pool_labels = PoolLabels {
                db_system: system,
                db_client_connection_pool_name: pool.label(),
            };
            match self.0 {
                PoolGaugeKind::Count => {
                    for (state, value) in [("idle", reading.idle), ("used", reading.used)] {
                        encoder
                            .encode_family(&labels(state))?
                            .encode_gauge(&value)?;
                    }
                }
                PoolGaugeKind::Max => encoder
                    .encode_family(&pool_labels)?
                    .encode_gauge(&reading.max)?,
                PoolGaugeKind::Pending => encoder
                    .encode_family(&pool_labels)?
                    .encode_gauge(&reading.pending)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        read_pools().is_empty()
    }
}

/// Where a cache answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBackend {
    /// The in-process cache (moka).
    Memory,
    /// Redis (`CACHE_REDIS_URL`).
    Redis,
}

/// What a cache lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// An entry was there.
    Hit,
    /// No entry.
    Miss,
    /// The cache failed (Redis down or slow); treated as a miss.
    Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    backend: &'static str,
    result: &'static str,
}

struct Metrics {
    cache: Family<CacheLabels, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics {
        cache: Family::default(),
    };
    for (name, help, kind) in [
        (
            "db_client_connection_count",
            "Open connections of the database connector's pools, by state (idle or used)",
            PoolGaugeKind::Count,
        ),
        (
            "db_client_connection_max",
            "Most connections a pool may open (DB_POOL_SIZE)",
            PoolGaugeKind::Max,
        ),
        (
            "db_client_connection_pending_requests",
            "Operations waiting for a connection of the pool",
            PoolGaugeKind::Pending,
        ),
    ] {
        connector_kit::metrics::register(name, help, PoolGauge(kind));
    }
    connector_kit::metrics::register(
        "switchboard_cache_requests",
        "Query cache lookups, by backend (memory or redis) and result (hit, miss, error)",
        metrics.cache.clone(),
    );
    metrics
});

/// Counts one query cache lookup.
pub fn record_cache(backend: CacheBackend, result: CacheResult) {
    METRICS
        .cache
        .get_or_create(&CacheLabels {
            cache: "query",
            backend: match backend {
                CacheBackend::Memory => "memory",
                CacheBackend::Redis => "redis",
            },
            result: match result {
                CacheResult::Hit => "hit",
                CacheResult::Miss => "miss",
                CacheResult::Error => "error",
            },
        })
        .inc();
}

/// Where the database is, for span attributes (never the password).
#[derive(Debug, Clone, Default)]
pub struct DbTarget {
    /// `db.system`.
    pub system: &'static str,
    /// `db.name`: the database of a network URL, the file name of SQLite.
    pub name: String,
    /// `server.address`, for a network database.
    pub address: Option<String>,
    /// `server.port`, when the URL gives one.
    pub port: Option<u16>,
}

impl DbTarget {
    /// The target of `url` (read with the password ignored).
    pub fn of(kind: EngineKind, url: &str) -> Self {
        let system = db_system(kind);
        match url::Url::parse(url) {
            Ok(parsed) if parsed.has_host() => Self {
                system,
                name: parsed.path().trim_start_matches('/').to_owned(),
                address: parsed.host_str().map(str::to_owned),
                port: parsed.port(),
            },
            _ => {
                let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
                let path = path.split('?').next().unwrap_or_default();
                let name = std::path::Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Self {
                    system,
                    name,
                    address: None,
                    port: None,
                }
            }
        }
    }
}

/// The span of one operation on the database.
pub fn operation_span(
    target: &DbTarget,
    operation: &str,
    statement: Option<&str>,
) -> tracing::Span {
    let name = if target.name.is_empty() {
        operation.to_owned()
    } else {
        format!("{operation} {}", target.name)
    };
    let span = tracing::info_span!(
        "db",
        otel.name = %name,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system = target.system,
        db.operation = %operation,
        db.name = %target.name,
        db.statement = tracing::field::Empty,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if let Some(address) = &target.address {
        span.record("server.address", address.as_str());
    }
    if let Some(port) = target.port {
        span.record("server.port", i64::from(port));
    }
    if let Some(statement) = statement {
        span.record("db.statement", statement);
    }
    span
}

/// The span of one Redis command of the query cache.
pub fn redis_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "redis",
        otel.name = operation,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system = "redis",
        db.operation = operation,
        error.type = tracing::field::Empty,
    )
}

/// Marks `span` failed with `error_type` (a bounded name).
pub fn record_failure(span: &tracing::Span, error_type: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_type);
}

/// Records the outcome of the operation of `span`.
pub fn record_outcome<T>(span: &tracing::Span, result: &Result<T, Error>) {
    if let Err(error) = result {
        record_failure(span, error.kind());
    }
}

/// The SQL keyword a statement starts with (`SELECT`, `WITH`, `INSERT` ...), or
/// `OTHER`: the `db.operation` of a span. Leading comments, blanks and
/// parentheses are skipped; only known keywords are returned, so the value set
/// stays small whatever the input.
pub fn sql_operation(sql: &str) -> &'static str {
    const KEYWORDS: &[&str] = &[
        "SELECT", "WITH", "VALUES", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "TABLE", "INSERT",
        "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "CREATE", "ALTER", "DROP", "TRUNCATE",
        "RENAME", "COMMENT", "GRANT", "REVOKE", "CALL", "DO", "PRAGMA", "ANALYZE", "VACUUM",
        "REINDEX", "SET", "COPY", "LOCK",
    ];
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(comment) = trimmed.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            rest = trimmed;
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .take(16)
        .collect::<String>()
        .to_ascii_uppercase();
    KEYWORDS
        .iter()
        .find(|keyword| **keyword == word)
        .copied()
        .unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_is_the_leading_keyword_and_nothing_else() {
        assert_eq!(sql_operation("select 1"), "SELECT");
        assert_eq!(
            sql_operation("  -- note\n /* x */ (SELECT 1) UNION (SELECT 2)"),
            "SELECT"
        );
        assert_eq!(
            sql_operation("WITH t AS (SELECT 1) SELECT * FROM t"),
            "WITH"
        );
        assert_eq!(sql_operation("insert into t values (1)"), "INSERT");
        // Anything else, however long or odd, is one value.
        assert_eq!(sql_operation("secret_table_name"), "OTHER");
        assert_eq!(sql_operation("SELECTED"), "OTHER");
        assert_eq!(sql_operation(""), "OTHER");
        assert_eq!(sql_operation("/* unterminated"), "OTHER");
    }

    #[test]
    fn targets_never_hold_the_password() {
        let target = DbTarget::of(
            EngineKind::Postgres,
            "postgres://app:s3cret@db.internal:5433/shop?sslmode=require",
        );
        assert_eq!(target.system, "postgresql");
        assert_eq!(target.name, "shop");
        assert_eq!(target.address.as_deref(), Some("db.internal"));
        assert_eq!(target.port, Some(5433));
        let sqlite = DbTarget::of(EngineKind::Sqlite, "sqlite:///data/shop.sqlite3?mode=ro");
        assert_eq!(sqlite.name, "shop.sqlite3");
        assert_eq!(sqlite.address, None);
    }

    #[tokio::test]
    async fn pool_metrics_read_the_live_pool() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(3)
            .connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite opens");
        let watch = watch_pools(EngineKind::Sqlite, [(PoolName::Read, pool.clone())]);
        let held = pool.acquire().await.expect("a connection");
        // Two operations on the pool, one of them holding the one connection in use.
        let (_first, _second) = (
            watch.in_flight(PoolName::Read),
            watch.in_flight(PoolName::Read),
        );
        let reading = read(std::slice::from_ref(&watch))[&("sqlite", PoolName::Read)];
        assert_eq!((reading.used, reading.max, reading.pending), (1, 3, 1));
        let text = connector_kit::metrics::encode_prometheus();
        for family in [
            "# TYPE db_client_connection_count gauge",
            "db_client_connection_max{db_system=\"sqlite\",db_client_connection_pool_name=\"read\"}",
            "db_client_connection_pending_requests{db_system=\"sqlite\"",
        ] {
            assert!(text.contains(family), "{family} in {text}");
        }
        drop(held);
        pool.close().await;
    }

    #[test]
    fn cache_lookups_are_counted_by_backend_and_result() {
        record_cache(CacheBackend::Redis, CacheResult::Error);
        let text = connector_kit::metrics::encode_prometheus();
        assert!(
            text.contains("switchboard_cache_requests_total{cache=\"query\",backend=\"redis\",result=\"error\"}"),
            "{text}"
        );
    }
}
