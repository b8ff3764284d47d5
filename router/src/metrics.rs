//! The router's Prometheus metrics, served at `GET /metrics`.
//!
//! Names follow the OpenTelemetry semantic conventions for MCP servers where
//! they exist (`mcp_server_operation_duration_seconds`,
//! `mcp_server_session_duration_seconds`, labels `mcp_method_name`,
//! `gen_ai_tool_name`, `error_type`), and RPC clients for the hop to a
//! connector; the rest are `switchboard_*`. Every label has bounded
//! cardinality: a tool label is only ever a tool of the catalog (a call of an
//! unknown name is recorded without one), never arguments, ids or URIs.
//!
//! Connector health and catalog sizes are read from the catalog at scrape
//! time, so they are never stale. A scraper asking for
//! `application/openmetrics-text` gets OpenMetrics; anything else the
//! Prometheus text format 0.0.4 (what `promtool check metrics` reads).

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use switchboard_telemetry::prometheus;

use crate::catalog::{ConnectorStatus, ToolCatalog};

/// Duration buckets (seconds): the MCP convention's 0.01 s … 300 s, plus finer
/// ones below 10 ms, where the router's own hop is.
pub const DURATION_BUCKETS: [f64; 20] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0, 30.0, 60.0, 120.0, 300.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Labels of `mcp_server_operation_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    mcp_method_name: &'static str,
    gen_ai_tool_name: String,
    error_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    connector: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Labels of the gRPC hop (OpenTelemetry RPC client conventions).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    connector: String,
    rpc_method: String,
    rpc_grpc_status_code: u32,
}

type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

struct Metrics {
    registry: Mutex<Registry>,
    operations: Durations<OperationLabels>,
    sessions: Histogram,
    up: Family<ConnectorLabels, Gauge>,
    state: Family<StateLabels, Gauge>,
    tools: Family<ConnectorLabels, Gauge>,
    denials: Family<ReasonLabels, Counter>,
    rejections: Family<ReasonLabels, Counter>,
    shared_calls: Counter,
    in_flight: Family<ConnectorLabels, Gauge>,
    grpc: Durations<GrpcLabels>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics {
        registry: Mutex::new(Registry::default()),
        operations: Family::new_with_constructor(duration_histogram),
        sessions: Histogram::new([
            1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 43200.0, 86400.0,
        ]),
        up: Family::default(),
        state: Family::default(),
        tools: Family::default(),
        denials: Family::default(),
        rejections: Family::default(),
        shared_calls: Counter::default(),
        in_flight: Family::default(),
        grpc: Family::new_with_constructor(duration_histogram),
    };
    {
        let mut registry = metrics
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.register(
            "mcp_server_operation_duration_seconds",
            "Duration of MCP requests the router served, by method, tool and error type (empty when it succeeded)",
            metrics.operations.clone(),
        );
        registry.register(
            "mcp_server_session_duration_seconds",
            "Duration of MCP sessions (2025-11-25 era), from initialize to their end",
            metrics.sessions.clone(),
        );
        registry.register(
            "switchboard_connector_up",
            "1 while the connector is SERVING, else 0",
            metrics.up.clone(),
        );
        registry.register(
            "switchboard_connector_state",
            "1 for the connector's current state (starting, serving, not_serving, unreachable)",
            metrics.state.clone(),
        );
        registry.register(
            "switchboard_catalog_tools",
            "Tools the router offers from each connector",
            metrics.tools.clone(),
        );
        registry.register(
            "switchboard_policy_denials",
            "Requests refused by authentication or the policy, by reason (unauthenticated, hidden, insufficient_scope)",
            metrics.denials.clone(),
        );
        registry.register(
            "switchboard_rate_limit_rejections",
            "Calls refused by a limit, by the limit's setting name",
            metrics.rejections.clone(),
        );
        registry.register(
            "switchboard_shared_calls",
            "Read-only tool calls answered with the result of an identical call already in flight",
            metrics.shared_calls.clone(),
        );
        registry.register(
            "switchboard_connector_in_flight_calls",
            "Tool calls in flight to each connector",
            metrics.in_flight.clone(),
        );
        registry.register(
            "rpc_client_call_duration_seconds",
            "Duration of the router's gRPC calls to connectors, by connector, method and gRPC status code",
            metrics.grpc.clone(),
        );
    }
    metrics
});

/// Records one MCP request: `method` (e.g. `tools/call`), the tool when it is
/// one of the catalog (else empty), and its error type (empty on success;
/// `tool_error` for an `isError` result; a JSON-RPC code otherwise).
pub fn record_operation(method: &'static str, tool: &str, error_type: &str, elapsed: Duration) {
    METRICS
        .operations
        .get_or_create(&OperationLabels {
            mcp_method_name: method,
            gen_ai_tool_name: tool.to_owned(),
            error_type: error_type.to_owned(),
        })
        .observe(elapsed.as_secs_f64());
}

/// Records the end of an MCP session that lasted `lived`.
pub fn record_session(lived: Duration) {
    METRICS.sessions.observe(lived.as_secs_f64());
}

/// Counts a request refused by authentication or the policy.
pub fn record_denial(reason: &'static str) {
    METRICS
        .denials
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// Counts a call refused by the limit named by its setting.
pub fn record_rejection(setting: &'static str) {
    METRICS
        .rejections
        .get_or_create(&ReasonLabels { reason: setting })
        .inc();
}

/// Counts a read-only call that joined an identical one in flight.
pub fn record_shared_call() {
    METRICS.shared_calls.inc();
}

/// Records one gRPC call to `connector`'s `method` that ended with `code`.
pub fn record_grpc(connector: &str, method: &str, code: tonic::Code, elapsed: Duration) {
    METRICS
        .grpc
        .get_or_create(&GrpcLabels {
            connector: connector.to_owned(),
            rpc_method: method.to_owned(),
            rpc_grpc_status_code: code as u32,
        })
        .observe(elapsed.as_secs_f64());
}

/// A call in flight to a connector, counted until dropped.
pub struct InFlight(Gauge);

impl InFlight {
    /// Counts a call to `connector` from now until the guard is dropped.
    pub fn start(connector: &str) -> Self {
        let gauge = METRICS
            .in_flight
            .get_or_create(&ConnectorLabels {
                connector: connector.to_owned(),
            })
            .clone();
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn state_name(status: &ConnectorStatus) -> &'static str {
    match status {
        ConnectorStatus::Starting => "starting",
        ConnectorStatus::Serving => "serving",
        ConnectorStatus::NotServing => "not_serving",
        ConnectorStatus::Unreachable(_) => "unreachable",
    }
}

/// Sets the connector gauges from the catalog.
fn refresh(catalog: &ToolCatalog) {
    for (connector, status, tools) in catalog.statuses() {
        let current = state_name(&status);
        METRICS
            .up
            .get_or_create(&ConnectorLabels {
                connector: connector.clone(),
            })
            .set(i64::from(current == "serving"));
        for state in ["starting", "serving", "not_serving", "unreachable"] {
            METRICS
                .state
                .get_or_create(&StateLabels {
                    connector: connector.clone(),
                    state,
                })
                .set(i64::from(state == current));
        }
        METRICS
            .tools
            .get_or_create(&ConnectorLabels { connector })
            .set(i64::try_from(tools).unwrap_or(i64::MAX));
    }
}

/// Every metric in the OpenMetrics text format (ends with `# EOF`).
pub fn encode_openmetrics(catalog: &ToolCatalog) -> String {
    refresh(catalog);
    let registry = METRICS
        .registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    prometheus::openmetrics(&registry)
}

/// Every metric in the Prometheus text format 0.0.4: OpenMetrics without
/// `# EOF` and `# UNIT`, a counter's HELP and TYPE named like its `_total`
/// sample.
pub fn encode_prometheus(catalog: &ToolCatalog) -> String {
    prometheus::prometheus_text(&encode_openmetrics(catalog))
}

/// The `/metrics` handler: OpenMetrics when the scraper accepts it.
pub async fn serve(
    axum::extract::State(catalog): axum::extract::State<std::sync::Arc<ToolCatalog>>,
    headers: http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let openmetrics = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                http::header::CONTENT_TYPE,
                prometheus::OPENMETRICS_CONTENT_TYPE,
            )],
            encode_openmetrics(&catalog),
        )
            .into_response()
    } else {
        (
            [(
                http::header::CONTENT_TYPE,
                prometheus::PROMETHEUS_CONTENT_TYPE,
            )],
            encode_prometheus(&catalog),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_counters_by_their_samples_and_has_no_eof() {
        let catalog = ToolCatalog::new(["calc".to_owned()], Duration::from_secs(1));
        record_denial("hidden");
        record_operation("tools/call", "calc_add", "", Duration::from_millis(2));
        let text = encode_prometheus(&catalog);
        assert!(
            text.contains("# TYPE switchboard_policy_denials_total counter"),
            "{text}"
        );
        assert!(text.contains("switchboard_policy_denials_total{reason=\"hidden\"}"));
        assert!(text.contains(
            "mcp_server_operation_duration_seconds_count{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"calc_add\",error_type=\"\"}"
        ), "{text}");
        assert!(text.contains("switchboard_connector_up{connector=\"calc\"} 0"));
        assert!(
            text.contains("switchboard_connector_state{connector=\"calc\",state=\"starting\"} 1")
        );
        assert!(!text.contains("# EOF"));
        assert!(encode_openmetrics(&catalog).ends_with("# EOF\n"));
    }

    #[test]
    fn an_in_flight_call_is_counted_until_it_ends() {
        let gauge = || {
            METRICS
                .in_flight
                .get_or_create(&ConnectorLabels {
                    connector: "inflight-test".to_owned(),
                })
                .get()
        };
        let call = InFlight::start("inflight-test");
        assert_eq!(gauge(), 1);
        drop(call);
        assert_eq!(gauge(), 0);
    }
}
