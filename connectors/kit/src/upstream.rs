//! One HTTP request to a connector's upstream API, observed: an OpenTelemetry
//! client span, the trace context for the request's headers, and the upstream
//! metrics.
//!
//! ```ignore
//! let call = UpstreamCall::start("slack", "conversations.history", "GET", url.as_str());
//! let response = http.get(url).headers(call.trace_headers()).send().instrument(call.span().clone()).await;
//! call.finish(response.as_ref().ok().map(|r| r.status().as_u16()));
//! ```
//!
//! The span `upstream` carries `http.request.method`, `server.address`, `url.full`
//! (without user info, query or fragment, where secrets could sit) and, at the
//! end, `http.response.status_code`. The metrics are
//! `switchboard_upstream_request_duration_seconds{connector, operation, status_class}`
//! and `switchboard_upstream_rate_limited_total{connector, operation}` (a 429).
//! `operation` must be a name from code (an API method or an endpoint template
//! such as `issue/{key}`), never the raw URL: it is a label.

use std::time::Instant;

use tonic::codegen::http;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// One upstream request in flight.
#[derive(Debug)]
pub struct UpstreamCall {
    connector: &'static str,
    operation: String,
    started: Instant,
    span: tracing::Span,
}

impl UpstreamCall {
    /// Starts observing a request of `connector` doing `operation` (a bounded
    /// name) with HTTP `method` to `url`.
    pub fn start(connector: &'static str, operation: &str, method: &str, url: &str) -> Self {
        let (address, full) = redacted_url(url);
        let span = tracing::info_span!(
            "upstream",
            otel.name = %method,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            server.address = %address,
            url.full = %full,
            http.response.status_code = tracing::field::Empty,
            connector,
            operation = %operation,
        );
        Self {
            connector,
            operation: operation.to_owned(),
            started: Instant::now(),
            span,
        }
    }

    /// The request's span (instrument the request's future with it).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The W3C `traceparent` / `tracestate` headers continuing this span's trace
    /// (empty when traces are off).
    pub fn trace_headers(&self) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        crate::telemetry::inject(&self.span.context(), &mut headers);
        headers
    }

    /// Ends the request: `status` is the HTTP status answered, `None` when no
    /// answer came (connection failure, timeout).
    pub fn finish(self, status: Option<u16>) {
        let class = status_class(status);
        if let Some(status) = status {
            self.span
                .record("http.response.status_code", i64::from(status));
            if status >= 400 {
                self.span.record("otel.status_code", "ERROR");
            }
            if status == 429 {
                crate::metrics::record_rate_limited(self.connector, &self.operation);
            }
        } else {
            self.span.record("otel.status_code", "ERROR");
        }
        crate::metrics::record_upstream(
            self.connector,
            &self.operation,
            class,
            self.started.elapsed(),
        );
    }
}

/// `1xx`..`5xx`, or `error` when there was no answer.
fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}

/// The host and the URL without user info, query or fragment.
fn redacted_url(url: &str) -> (String, String) {
    let without_fragment = url.split('#').next().unwrap_or_default();
    let without_query = without_fragment.split('?').next().unwrap_or_default();
    match without_query.parse::<http::Uri>() {
        Ok(uri) => {
            let host = uri.host().unwrap_or_default().to_owned();
            let authority = match uri.port_u16() {
                Some(port) => format!("{host}:{port}"),
                None => host.clone(),
            };
            let scheme = uri.scheme_str().unwrap_or("https");
            (host, format!("{scheme}://{authority}{}", uri.path()))
        }
        Err(_) => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_in_a_span_has_no_credentials_query_or_fragment() {
        let (host, full) = redacted_url(
            "https://user:secret@example.atlassian.net:8443/rest/api/3/search?token=s3cret#frag",
        );
        assert_eq!(host, "example.atlassian.net");
        assert_eq!(full, "https://example.atlassian.net:8443/rest/api/3/search");
        assert!(!full.contains("secret"));
    }

    #[test]
    fn statuses_are_grouped_by_class() {
        assert_eq!(status_class(Some(200)), "2xx");
        assert_eq!(status_class(Some(429)), "4xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "error");
        assert_eq!(status_class(Some(999)), "error");
    }
}
