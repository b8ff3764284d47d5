//! Tracing set-up shared by every binary: logs, and OpenTelemetry traces when asked.
//!
//! Logs go to stderr (stdout may carry a protocol, as with MCP over stdio).
//! `LOG_FORMAT=json` switches to one JSON object per line for log collectors;
//! `RUST_LOG` filters as usual (default `info`).
//!
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! is set, `tracing` spans at info level and above (whatever `RUST_LOG` says) are
//! exported over OTLP as OpenTelemetry spans: `OTEL_EXPORTER_OTLP_PROTOCOL` (or
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`) `http/protobuf` (default) or `grpc`,
//! `OTEL_SERVICE_NAME` (default: the binary's name), `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`),
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_SDK_DISABLED=true`
//! turns it off. With none set there is no exporter and no background thread.
//! Trace context travels as W3C `traceparent` / `tracestate` ([`extract`], [`inject`]).
//!
//! The log output and the OTLP exporter are built by `switchboard-telemetry`,
//! the same way as the router's; which spans are exported and the variables
//! read are the kit's.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use switchboard_telemetry::otlp::{OtlpProtocol, Telemetry};

use crate::env::EnvError;

/// Where and how to export traces.
#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// An explicit traces endpoint (the full URL, e.g. `http://127.0.0.1:4318/v1/traces`);
    /// `None` lets the exporter read `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` itself.
    pub endpoint: Option<String>,
    /// The OTLP protocol.
    pub protocol: OtlpProtocol,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl TracingConfig {
    /// The export settings from the standard `OTEL_*` variables, or `None` when no
    /// OTLP endpoint is set (or `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`).
    pub fn from_env(default_service_name: &str) -> Result<Option<Self>, EnvError> {
        if crate::env::flag("OTEL_SDK_DISABLED", false)?
            || crate::env::var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
        {
            return Ok(None);
        }
        if crate::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && crate::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        let (name, raw) = match crate::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
            Some(raw) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raw),
            None => (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                crate::env::string("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ),
        };
        let protocol = match raw.trim() {
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            "grpc" => OtlpProtocol::Grpc,
            other => {
                return Err(EnvError::new(
                    name,
                    format!("expected http/protobuf or grpc, got {other:?}"),
                ));
            }
        };
        Ok(Some(Self {
            endpoint: None,
            protocol,
            service_name: crate::env::string("OTEL_SERVICE_NAME", default_service_name),
        }))
    }
}

/// Why trace export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A variable is malformed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The OTLP exporter could not be built.
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// A `tracing` layer exporting spans as OpenTelemetry spans per `config`, and the
/// handle that flushes it.
pub fn otel_layer<S>(config: &TracingConfig) -> Result<(impl Layer<S>, Telemetry), TelemetryError>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    // No sampler of our own: the SDK reads OTEL_TRACES_SAMPLER(_ARG) itself.
    let provider = switchboard_telemetry::otlp::tracer_provider(
        config.endpoint.as_deref(),
        config.protocol,
        &config.service_name,
        None,
    )?;
    let tracer = provider.tracer("switchboard-connector-kit");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);
    Ok((layer, Telemetry::from(provider)))
}

/// Installs the global subscriber (logs only). Safe to call more than once (later
/// calls are no-ops).
pub fn init() {
    let _ = install(None);
}

/// Installs the global subscriber with logs and, when the `OTEL_*` variables ask
/// for it, trace export under `service_name` (unless `OTEL_SERVICE_NAME` says
/// otherwise). A malformed variable is reported and traces stay off.
pub fn init_with_traces(service_name: &str) -> Telemetry {
    let config = TracingConfig::from_env(service_name);
    match config {
        Ok(config) => match install(config.as_ref()) {
            Ok(telemetry) => telemetry,
            Err(error) => {
                let _ = install(None);
                tracing::error!(%error, "traces are not exported");
                Telemetry::default()
            }
        },
        Err(error) => {
            let _ = install(None);
            tracing::error!(%error, "traces are not exported");
            Telemetry::default()
        }
    }
}

fn install(traces: Option<&TracingConfig>) -> Result<Telemetry, TelemetryError> {
    let logs = switchboard_telemetry::logs::layer();
    let (otel, telemetry) = match traces {
        Some(config) => {
            let (layer, telemetry) = otel_layer(config)?;
            (Some(layer), telemetry)
        }
        None => (None, Telemetry::default()),
    };
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init();
    Ok(telemetry)
}

/// The OpenTelemetry context a caller sent in W3C `traceparent` / `tracestate`
/// headers (empty when there are none or they are malformed).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `context` as W3C `traceparent` / `tracestate` into `headers` (nothing
/// when the context has no sampled-or-not span, e.g. when traces are off).
pub fn inject(context: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
}

use tonic::codegen::http;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
