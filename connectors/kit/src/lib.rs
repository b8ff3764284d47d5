//! What every Switchboard connector shares, so that a connector's `main` is a few lines.
//!
//! - [`run`]: the whole binary: `serve` (default) or `healthcheck [ADDR]`, tracing set-up,
//!   `LISTEN_ADDR`, graceful shutdown on SIGTERM/SIGINT.
//! - [`ConnectorServer`]: a tonic server with grpc.health.v1 and server reflection
//!   (v1 and v1alpha) next to the connector's own services.
//! - [`descriptors`]: the served descriptors adjusted to the configuration (a
//!   read-only deployment's writing tools hidden from the catalog).
//! - [`catch_panic`]: a handler that panics answers INTERNAL naming the method
//!   (logged at error level); the connector keeps serving. Applied to every
//!   service of [`ConnectorServer`]; [`catch_panic::spawn_stream`] does the same
//!   for a server stream fed by a task.
//! - [`Health`]: the connector's serving status, flipped by the code that knows.
//! - [`follow`]: health that follows the upstream: [`follow_upstream`] checks it on
//!   a [`Cadence`] and flips [`Health`] when the answer changes.
//! - [`retry`]: exponential backoff with jitter for upstream HTTP calls, honouring
//!   `Retry-After`.
//! - [`env`]: typed environment variables with errors that name the variable.
//! - [`metrics`]: Prometheus metrics on `METRICS_ADDR` (off when unset): every gRPC
//!   call's duration in `rpc_server_call_duration_seconds{rpc_service, rpc_method,
//!   rpc_grpc_status_code}`, the upstream metrics of [`upstream`], and a connector's
//!   own through [`metrics::register`]. Listener bounds: `METRICS_HEADER_TIMEOUT`
//!   (5 s), `METRICS_CONNECTION_TIMEOUT` (30 s), `METRICS_MAX_CONNECTIONS` (16),
//!   request head 8 KiB; only `GET /metrics` is answered.
//! - [`telemetry`]: logs (`LOG_FORMAT`, `RUST_LOG`) and, when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set,
//!   OpenTelemetry traces over OTLP (`OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf` or
//!   `grpc`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, ...). Every gRPC call is a
//!   server span continuing the caller's W3C `traceparent`, with `rpc.system`,
//!   `rpc.service`, `rpc.method` and `rpc.grpc.status_code`; nothing is exported,
//!   and no exporter runs, when the variables are unset.
//! - [`upstream`]: a connector's HTTP request to its upstream API as a client span
//!   (trace context injected into the request) and the metrics
//!   `switchboard_upstream_request_duration_seconds{connector, operation, status_class}`
//!   and `switchboard_upstream_rate_limited_total{connector, operation}`;
//!   [`upstream::read_body`] reads an answer's body within the connector's bound.
//! - [`tool_names`]: the names the agent sees for this connector's tools, for texts
//!   that mention them (prompts, hints in errors).
#![forbid(unsafe_code)]

pub mod catch_panic;
pub mod descriptors;
pub mod env;
pub mod follow;
pub mod health;
pub mod healthcheck;
pub mod metrics;
mod observe;
pub mod retry;
mod run;
mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tool_names;
pub mod upstream;

pub use follow::{Cadence, Probe, follow_upstream};
pub use health::Health;
pub use run::{ConnectorSpec, run};
pub use server::ConnectorServer;
pub use tool_names::{ToolNames, Toolset};

/// An error and its causes, outermost first: `request failed: connection refused`.
/// (An HTTP client's error chain is what tells a refused connection from a TLS or
/// DNS failure; its top line alone often does not.)
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Re-exported so connectors name the same versions as the kit.
pub use tonic;
pub use tonic_health::ServingStatus;
