//! Prometheus metrics: one registry per process, served on `METRICS_ADDR`.
//!
//! The kit registers what every connector has (gRPC call durations per method and
//! status, upstream HTTP durations and 429s, a `switchboard_connector_up` gauge);
//! a connector adds its own with [`register`] (keep the metric handle, register it
//! once, e.g. from a `LazyLock`). Labels must have bounded cardinality: method,
//! status and operation names, never arguments, ids or URLs.
//!
//! The listener is off unless `METRICS_ADDR` is set. It answers `GET /metrics`
//! only, with no request body read, headers bounded in size and time, and a
//! bounded number of connections (see [`MetricsConfig`]). A scraper asking for
//! `application/openmetrics-text` gets OpenMetrics; anything else gets the
//! Prometheus text format 0.0.4.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use switchboard_telemetry::prometheus;
use tokio::net::TcpListener;

use crate::env::EnvError;

/// Histogram buckets (seconds) for call durations: fine below 10 ms, where a
/// healthy connector answers, then coarse up to the 30 s of a slow upstream.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
    30.0,
];

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// Registers a connector's own metric in the process registry. `name` follows
/// Prometheus conventions (unit suffix such as `_seconds`; a counter's `_total`
/// is added by the encoder, so leave it off). Register each name once.
pub fn register(name: &str, help: &str, metric: impl Metric) {
    let mut registry = REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registry.register(name, help, metric);
}

/// A histogram with [`DURATION_BUCKETS`], for a connector's own duration metrics.
pub fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Labels of `rpc_server_call_duration_seconds` (OpenTelemetry RPC conventions).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc_service: String,
    rpc_method: String,
    rpc_grpc_status_code: u32,
}

/// Labels of the upstream metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    connector: &'static str,
    operation: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLimitedLabels {
    connector: &'static str,
    operation: String,
}

type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics the kit itself records.
struct KitMetrics {
    rpc: Durations<RpcLabels>,
    upstream: Durations<UpstreamLabels>,
    rate_limited: Family<RateLimitedLabels, Counter>,
    up: Gauge,
}

static KIT: LazyLock<KitMetrics> = LazyLock::new(|| {
    let kit = KitMetrics {
        rpc: Family::new_with_constructor(duration_histogram),
        upstream: Family::new_with_constructor(duration_histogram),
        rate_limited: Family::default(),
        up: Gauge::default(),
    };
    register(
        "rpc_server_call_duration_seconds",
        "Duration of gRPC calls served by the connector, by service, method and gRPC status code",
        kit.rpc.clone(),
    );
    register(
        "switchboard_upstream_request_duration_seconds",
        "Duration of the connector's HTTP requests to its upstream API, by operation and status class",
        kit.upstream.clone(),
    );
    register(
        "switchboard_upstream_rate_limited",
        "Upstream answers 429 Too Many Requests, by operation",
        kit.rate_limited.clone(),
    );
    register(
        "switchboard_connector_up",
        "1 while the connector's gRPC server serves, 0 once it is shutting down",
        kit.up.clone(),
    );
    kit
});

/// Records one served gRPC call.
pub(crate) fn record_rpc(service: &str, method: &str, code: i32, elapsed: Duration) {
    KIT.rpc
        .get_or_create(&RpcLabels {
            rpc_service: service.to_owned(),
            rpc_method: method.to_owned(),
            rpc_grpc_status_code: u32::try_from(code).unwrap_or(2),
        })
        .observe(elapsed.as_secs_f64());
}

/// Records one upstream HTTP request. `status_class` is `2xx`..`5xx`, or `error`
/// when no answer came.
pub(crate) fn record_upstream(
    connector: &'static str,
    operation: &str,
    status_class: &'static str,
    elapsed: Duration,
) {
    KIT.upstream
        .get_or_create(&UpstreamLabels {
            connector,
            operation: operation.to_owned(),
            status_class,
        })
        .observe(elapsed.as_secs_f64());
}

/// Counts one upstream 429.
pub(crate) fn record_rate_limited(connector: &'static str, operation: &str) {
    KIT.rate_limited
        .get_or_create(&RateLimitedLabels {
            connector,
            operation: operation.to_owned(),
        })
        .inc();
}

/// Sets `switchboard_connector_up` (1 while serving).
pub(crate) fn set_up(up: bool) {
    KIT.up.set(i64::from(up));
}

/// The registry in the OpenMetrics text format (ends with `# EOF`).
pub fn encode_openmetrics() -> String {
    LazyLock::force(&KIT);
    let registry = REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    prometheus::openmetrics(&registry)
}

/// The registry in the Prometheus text format 0.0.4 (what `promtool check
/// metrics` and older scrapers read): OpenMetrics without `# EOF`, a counter's
/// HELP and TYPE lines named like its `_total` sample.
pub fn encode_prometheus() -> String {
    prometheus::prometheus_text(&encode_openmetrics())
}

/// Default for `METRICS_HEADER_TIMEOUT`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for `METRICS_CONNECTION_TIMEOUT`.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for `METRICS_MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// Largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The metrics listener's settings.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `METRICS_ADDR`: where to serve `/metrics`; `None` (unset) serves nothing.
    pub addr: Option<SocketAddr>,
    /// `METRICS_HEADER_TIMEOUT` (seconds, default 5): time for a request's headers.
    pub header_timeout: Duration,
    /// `METRICS_CONNECTION_TIMEOUT` (seconds, default 30): a connection's whole life.
    pub connection_timeout: Duration,
    /// `METRICS_MAX_CONNECTIONS` (default 16): connections served at once; more wait
    /// in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            addr: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl MetricsConfig {
    /// Reads `METRICS_ADDR`, `METRICS_HEADER_TIMEOUT`, `METRICS_CONNECTION_TIMEOUT`
    /// and `METRICS_MAX_CONNECTIONS`.
    pub fn from_env() -> Result<Self, EnvError> {
        let addr = match crate::env::var("METRICS_ADDR") {
            None => None,
            Some(raw) => Some(raw.trim().parse().map_err(|_| {
                EnvError::new(
                    "METRICS_ADDR",
                    format!("expected an address like 0.0.0.0:9090, got {raw:?}"),
                )
            })?),
        };
        let max_connections =
            crate::env::parse("METRICS_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)?;
        if max_connections == 0 {
            return Err(EnvError::new(
                "METRICS_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        Ok(Self {
            addr,
            header_timeout: crate::env::seconds("METRICS_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT)?,
            connection_timeout: crate::env::seconds(
                "METRICS_CONNECTION_TIMEOUT",
                DEFAULT_CONNECTION_TIMEOUT,
            )?,
            max_connections,
        })
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: MetricsConfig,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    tracing::info!(addr = ?listener.local_addr().ok(), "metrics listening");
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let config = config.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(config.header_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .keep_alive(true);
            let connection = http.serve_connection(
                hyper_util::rt::TokioIo::new(stream),
                hyper::service::service_fn(answer),
            );
            if tokio::time::timeout(config.connection_timeout, connection)
                .await
                .is_err()
            {
                tracing::debug!("metrics connection closed after METRICS_CONNECTION_TIMEOUT");
            }
        });
    }
}

/// Binds `config.addr` (if set) and serves there in a task; returns the bound
/// address. Errors name `METRICS_ADDR`.
pub async fn spawn(
    config: MetricsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<SocketAddr>, std::io::Error> {
    let Some(addr) = config.addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot listen on {addr} (METRICS_ADDR): {error}"),
        )
    })?;
    let bound = listener.local_addr().ok();
    tokio::spawn(serve(listener, config, shutdown));
    Ok(bound)
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let respond = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        Ok(response)
    };
    if request.uri().path() != "/metrics" {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "only /metrics is served\n".into(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        );
    }
    let openmetrics = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    if openmetrics {
        respond(
            StatusCode::OK,
            prometheus::OPENMETRICS_CONTENT_TYPE,
            encode_openmetrics(),
        )
    } else {
        respond(
            StatusCode::OK,
            prometheus::PROMETHEUS_CONTENT_TYPE,
            encode_prometheus(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_with_total_in_the_prometheus_text() {
        record_rate_limited("t", "unit.test");
        let text = encode_prometheus();
        assert!(
            text.contains("# TYPE switchboard_upstream_rate_limited_total counter\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(encode_openmetrics().ends_with("# EOF\n"));
    }
}
