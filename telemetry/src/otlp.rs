//! The OpenTelemetry span exporter over OTLP, and the handle that flushes it.
//!
//! A binary decides which spans it exports and from which variables (the
//! router and the connectors differ there); the exporter, its batch processor
//! and its `service.name` are built the same way for all of them.

use opentelemetry_otlp::{ExporterBuildError, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// How spans are exported over OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `http/protobuf` (the default).
    HttpProtobuf,
    /// `grpc`.
    Grpc,
}

/// A tracer provider exporting in batches over OTLP with `protocol`, under
/// `service_name`. `endpoint` is the full traces URL (e.g.
/// `http://127.0.0.1:4318/v1/traces`); `None` lets the exporter read
/// `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` itself. `sampler` `None` leaves the
/// choice to the SDK (which reads `OTEL_TRACES_SAMPLER`).
pub fn tracer_provider(
    endpoint: Option<&str>,
    protocol: OtlpProtocol,
    service_name: &str,
    sampler: Option<Sampler>,
) -> Result<SdkTracerProvider, ExporterBuildError> {
    let exporter = match protocol {
        OtlpProtocol::HttpProtobuf => {
            let builder = SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            match endpoint {
                Some(endpoint) => builder.with_endpoint(endpoint).build()?,
                None => builder.build()?,
            }
        }
        OtlpProtocol::Grpc => {
            let builder = SpanExporter::builder().with_tonic();
            match endpoint {
                Some(endpoint) => builder.with_endpoint(endpoint).build()?,
                None => builder.build()?,
            }
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource);
    let provider = match sampler {
        Some(sampler) => provider.with_sampler(sampler),
        None => provider,
    };
    Ok(provider.build())
}

/// The running trace export; [`Telemetry::shutdown`] sends what is buffered.
/// The default exports nothing.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl From<SdkTracerProvider> for Telemetry {
    fn from(provider: SdkTracerProvider) -> Self {
        Self {
            provider: Some(provider),
        }
    }
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered and stops the exporter (blocks briefly:
    /// call at exit, or from `spawn_blocking`).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "trace exporter did not shut down cleanly");
        }
    }
}
