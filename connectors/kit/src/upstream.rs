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
//!
//! [`read_body`] reads a response's body within a connector's bound on it, so a
//! hostile or broken upstream (or anything between) cannot make the connector
//! hold a body of any size.

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

    /// A server on loopback answering every connection with `head` and then
    /// `chunks` chunk-encoded (or, when `head` declares a length, raw) bytes
    /// of `chunk` size: its URL.
    async fn answering(head: &'static str, chunk: usize, chunks: usize) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let chunked = head.contains("chunked");
                    let _ = socket.write_all(head.as_bytes()).await;
                    let data = vec![b'x'; chunk];
                    for _ in 0..chunks {
                        let sent = if chunked {
                            let mut framed = format!("{chunk:x}\r\n").into_bytes();
                            framed.extend_from_slice(&data);
                            framed.extend_from_slice(b"\r\n");
                            socket.write_all(&framed).await
                        } else {
                            socket.write_all(&data).await
                        };
                        if sent.is_err() {
                            return;
                        }
                    }
                    if chunked {
                        let _ = socket.write_all(b"0\r\n\r\n").await;
                    }
                });
            }
        });
        format!("http://{addr}/")
    }

    async fn read(url: &str, limit: usize) -> Result<Vec<u8>, BodyError> {
        let response = reqwest::get(url).await.expect("a response");
        read_body(response, limit, "TEST_MAX_RESPONSE_BYTES").await
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_naming_the_setting() {
        const CHUNKED: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        // Streaming far past the limit (a GiB would follow): refused at the limit.
        let url = answering(CHUNKED, 64 * 1024, 16 * 1024).await;
        let error = read(&url, 1 << 20).await.expect_err("too large");
        assert!(
            matches!(error, BodyError::TooLarge { declared: None, .. }),
            "{error}"
        );
        let text = error.to_string();
        assert!(
            text.contains("TEST_MAX_RESPONSE_BYTES") && text.contains("1048576"),
            "{text}"
        );

        // Declared too large: refused before reading.
        let url = answering(
            "HTTP/1.1 200 OK\r\ncontent-length: 5000000000\r\n\r\n",
            1024,
            1,
        )
        .await;
        let error = read(&url, 1 << 20).await.expect_err("declared too large");
        assert!(
            matches!(
                error,
                BodyError::TooLarge {
                    declared: Some(5_000_000_000),
                    ..
                }
            ),
            "{error}"
        );

        // Exactly at the limit, chunked or declared: read whole.
        let url = answering(CHUNKED, 1024, 4).await;
        assert_eq!(read(&url, 4096).await.expect("within").len(), 4096);
        let url = answering("HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n", 4096, 1).await;
        assert_eq!(read(&url, 4096).await.expect("within").len(), 4096);
        // One byte over, as it streams.
        let url = answering(CHUNKED, 4097, 1).await;
        assert!(read(&url, 4096).await.is_err());
    }

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

/// Most of a declared length reserved before the body arrives: a lying
/// `Content-Length` within the limit reserves no more than this.
const MAX_RESERVED: usize = 1 << 20;

/// Why [`read_body`] gave no body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is over the limit: declared so (`Content-Length`, not read) or
    /// found so as it arrived (what was read is dropped).
    #[error(
        "the upstream's answer is larger than {limit} bytes{}, the most the connector reads ({setting}): ask for less (fewer results or fields), or raise {setting}",
        declared.map(|n| format!(" ({n} bytes)")).unwrap_or_default()
    )]
    TooLarge {
        limit: usize,
        setting: &'static str,
        declared: Option<u64>,
    },
    /// The body could not be read.
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// Reads `response`'s body whole, at most `limit` bytes; `setting` names the
/// bound in the error.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    setting: &'static str,
) -> Result<Vec<u8>, BodyError> {
    let too_large = |declared| BodyError::TooLarge {
        limit,
        setting,
        declared,
    };
    let declared = response.content_length();
    if let Some(n) = declared.filter(|&n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large(Some(n)));
    }
    let reserve = declared
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(MAX_RESERVED);
    let mut body = Vec::with_capacity(reserve);
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > limit - body.len() {
            return Err(too_large(None));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
