//! Tracing set-up for the router binary: logs, and OpenTelemetry traces when asked.
//!
//! Logs always go to stderr: over stdio, stdout carries the MCP protocol.
//! `LOG_FORMAT=json` gives one JSON object per line; `RUST_LOG` filters (default `info`).
//!
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! is set ([`TracesConfig::from_env`]), the router's OpenTelemetry spans (those
//! [`crate::trace`] makes: one server span per MCP request, one client span per
//! gRPC call to a connector) are exported over OTLP, whatever `RUST_LOG` says.
//! Only those spans are exported, made with the SDK directly, and no log
//! events: the router's `tracing` spans and its log lines (audit lines with
//! arguments among them) never reach a trace. With no endpoint set there is no exporter, no
//! background thread, and [`crate::trace`] makes no span at all.
//!
//! The router reads these variables itself (not through a connector's kit: the
//! router depends on no connector crate), with the same meaning as the SDKs'.
//! The log output and the OTLP exporter are built by `switchboard-telemetry`,
//! which the connectors' kit uses too.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracer};
use switchboard_telemetry::logs;

pub use switchboard_telemetry::otlp::{OtlpProtocol, Telemetry};

/// The tracer of the installed OTLP exporter: [`crate::trace`] makes spans
/// only when there is one.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Whether spans are exported in this process.
pub fn exporting() -> bool {
    TRACER.get().is_some()
}

/// The tracer spans are made with, while they are exported.
pub(crate) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Which traces are kept (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio` with this ratio.
    Ratio(f64),
    /// `parentbased_always_on` (the default): the client's decision when it
    /// sent one, otherwise keep.
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with this ratio for new traces.
    ParentBasedRatio(f64),
}

impl Sampling {
    fn sampler(self) -> Sampler {
        let based = |root| Sampler::ParentBased(Box::new(root));
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::Ratio(ratio) => Sampler::TraceIdRatioBased(ratio),
            Self::ParentBasedAlwaysOn => based(Sampler::AlwaysOn),
            Self::ParentBasedAlwaysOff => based(Sampler::AlwaysOff),
            Self::ParentBasedRatio(ratio) => based(Sampler::TraceIdRatioBased(ratio)),
        }
    }
}

/// Where and how to export traces.
#[derive(Debug, Clone, PartialEq)]
pub struct TracesConfig {
    /// An explicit traces endpoint (the full URL, e.g. `http://127.0.0.1:4318/v1/traces`);
    /// `None` lets the exporter read `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` itself
    /// (it appends `/v1/traces` to the generic one, as the specification says).
    pub endpoint: Option<String>,
    /// The OTLP protocol.
    pub protocol: OtlpProtocol,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Which traces are kept.
    pub sampling: Sampling,
}

impl TracesConfig {
    /// The export settings from the standard `OTEL_*` variables, or `None` when
    /// no OTLP endpoint is set (or `OTEL_SDK_DISABLED=true`, or
    /// `OTEL_TRACES_EXPORTER=none`). A malformed value is an error naming its
    /// variable.
    pub fn from_env() -> Result<Option<Self>, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`TracesConfig::from_env`] over `lookup` (a variable's value, if set);
    /// empty values count as unset, as compose passes them.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        // Named `var` so that scripts/check-deploy finds the variables read here.
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        match var("OTEL_SDK_DISABLED").map(|v| v.to_ascii_lowercase()) {
            Some(v) if v == "true" => return Ok(None),
            Some(v) if v == "false" => {}
            Some(v) => {
                return Err(format!(
                    "OTEL_SDK_DISABLED: expected true or false, got {v:?}"
                ));
            }
            None => {}
        }
        match var("OTEL_TRACES_EXPORTER").as_deref() {
            Some("none") => return Ok(None),
            Some("otlp") | None => {}
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_EXPORTER: the router exports traces with otlp (or none), got {other:?}"
                ));
            }
        }
        if var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        let (name, raw) = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
            Some(raw) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raw),
            None => (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                var("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "http/protobuf".to_owned()),
            ),
        };
        let protocol = match raw.as_str() {
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            "grpc" => OtlpProtocol::Grpc,
            other => {
                return Err(format!(
                    "{name}: expected http/protobuf or grpc, got {other:?}"
                ));
            }
        };
        let ratio = || -> Result<f64, String> {
            let Some(raw) = var("OTEL_TRACES_SAMPLER_ARG") else {
                return Ok(1.0);
            };
            raw.parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!("OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1, got {raw:?}")
                })
        };
        let sampling = match var("OTEL_TRACES_SAMPLER").as_deref() {
            None | Some("parentbased_always_on") => Sampling::ParentBasedAlwaysOn,
            Some("always_on") => Sampling::AlwaysOn,
            Some("always_off") => Sampling::AlwaysOff,
            Some("traceidratio") => Sampling::Ratio(ratio()?),
            Some("parentbased_always_off") => Sampling::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => Sampling::ParentBasedRatio(ratio()?),
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER: expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, got {other:?}"
                ));
            }
        };
        Ok(Some(Self {
            endpoint: None,
            protocol,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "switchboard".to_owned()),
            sampling,
        }))
    }
}

/// Why trace export could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter: {0}")]
pub struct TelemetryError(#[from] opentelemetry_otlp::ExporterBuildError);

/// Starts exporting the router's spans per `config` and returns the handle
/// that flushes them. From here on [`exporting`] is true and [`tracer`] gives
/// the tracer [`crate::trace`] makes its spans with.
///
/// The spans are made with the OpenTelemetry SDK directly, not through the
/// `tracing` bridge: the router makes two spans per call and sets their
/// parents and attributes explicitly, so the bridge's work on every span
/// entry, exit and record (a registry look-up and a lock per layer, each
/// time a call's future is polled) bought nothing and was most of what
/// tracing cost per call. Log events never reach a trace either way.
pub fn start_export(config: &TracesConfig) -> Result<Telemetry, TelemetryError> {
    let provider = switchboard_telemetry::otlp::tracer_provider(
        config.endpoint.as_deref(),
        config.protocol,
        &config.service_name,
        Some(config.sampling.sampler()),
    )?;
    let _ = TRACER.set(provider.tracer("switchboard-router"));
    Ok(Telemetry::from(provider))
}

/// Installs the global subscriber (logs; the same with traces on or off) and
/// starts trace export when `traces` is given. Later calls install nothing.
pub fn init(traces: Option<&TracesConfig>) -> Result<Telemetry, TelemetryError> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(logs::filter())
        .with_writer(std::io::stderr);
    let _ = if logs::json() {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    match traces {
        Some(traces) => start_export(traces),
        None => Ok(Telemetry::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<TracesConfig>, String> {
        TracesConfig::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn without_an_endpoint_nothing_is_exported() {
        assert_eq!(config(&[]), Ok(None));
        assert_eq!(
            config(&[
                ("OTEL_SERVICE_NAME", "router"),
                ("OTEL_TRACES_SAMPLER", "always_on"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "  "),
            ]),
            Ok(None),
            "an empty endpoint (compose's default) is no endpoint"
        );
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert_eq!(config(&[endpoint, ("OTEL_SDK_DISABLED", "true")]), Ok(None));
        assert_eq!(
            config(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]),
            Ok(None)
        );
    }

    #[test]
    fn the_standard_variables_choose_protocol_name_and_sampler() {
        let defaults = config(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        )])
        .expect("valid")
        .expect("exporting");
        assert_eq!(defaults.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(defaults.service_name, "switchboard");
        assert_eq!(defaults.sampling, Sampling::ParentBasedAlwaysOn);
        let chosen = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "edge-router"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .expect("valid")
        .expect("exporting");
        assert_eq!(
            chosen.protocol,
            OtlpProtocol::Grpc,
            "the traces variable wins"
        );
        assert_eq!(chosen.service_name, "edge-router");
        assert_eq!(chosen.sampling, Sampling::ParentBasedRatio(0.25));
    }

    #[test]
    fn a_malformed_variable_is_named() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        for (vars, named) in [
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                vec![
                    endpoint,
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (vec![("OTEL_SDK_DISABLED", "maybe")], "OTEL_SDK_DISABLED"),
            (
                vec![("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER",
            ),
        ] {
            let error = config(&vars).expect_err("malformed");
            assert!(error.starts_with(named), "{error}");
        }
    }
}
