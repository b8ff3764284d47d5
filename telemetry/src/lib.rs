//! Observability plumbing that the router and every connector share.
//!
//! The router depends on no connector crate, and the connectors on no router
//! code, so what both need to observe themselves the same way lives here, in a
//! crate that depends on neither (nor on any other Switchboard crate):
//!
//! - [`logs`]: the log output of every binary (stderr, `LOG_FORMAT`, `RUST_LOG`).
//! - [`otlp`]: the OpenTelemetry span exporter over OTLP and the handle that
//!   flushes it at exit.
//! - [`prometheus`]: a metrics registry in the OpenMetrics and Prometheus 0.0.4
//!   text formats, and their content types.
//!
//! Which spans are exported, which variables configure the export and which
//! metrics exist stay with each binary: they differ between the router and the
//! connectors.
#![forbid(unsafe_code)]

pub mod logs;
pub mod otlp;
pub mod prometheus;
