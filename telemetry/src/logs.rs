//! The log output every Switchboard binary writes.
//!
//! Logs go to stderr: stdout may carry a protocol, as with MCP over stdio.
//! `LOG_FORMAT=json` gives one JSON object per line for log collectors;
//! `RUST_LOG` filters as usual (default `info`).

use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// The log filter: `RUST_LOG`, or `info` when it is unset or malformed.
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Whether `LOG_FORMAT=json` asks for one JSON object per line.
pub fn json() -> bool {
    std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
}

/// A `tracing` layer writing log lines to stderr, in the format `LOG_FORMAT`
/// asks for, filtered by [`filter`] (the filter applies to this layer only, so
/// that a trace exporter beside it sees every span whatever `RUST_LOG` says).
pub fn layer<S>() -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if json() {
        logs.json().flatten_event(true).boxed()
    } else {
        logs.with_ansi(false).boxed()
    }
    .with_filter(filter())
}
