//! The span and the duration metric of every served gRPC call.
//!
//! [`ObserveLayer`] wraps every service of a [`crate::ConnectorServer`]. Each call
//! runs inside a `call` span that is an OpenTelemetry server span continuing the
//! caller's W3C trace context (`traceparent` in the gRPC metadata), with the RPC
//! semantic-convention attributes `rpc.system=grpc`, `rpc.service`, `rpc.method`
//! and, once the call ends, `rpc.grpc.status_code`. When the call ends (its
//! trailers are sent, or the response is dropped) its duration is recorded in
//! `rpc_server_call_duration_seconds{rpc_service, rpc_method, rpc_grpc_status_code}`.
//!
//! Labels are bounded by construction: a path that is not one of the served
//! methods (a client can send any path) is recorded as service and method
//! `unknown`. Arguments and results never reach the span.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::Frame;
use tonic::codegen::http;
use tonic::codegen::{Body as HttpBody, Bytes};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// What an unserved path is recorded as.
const UNKNOWN: &str = "unknown";

/// The layer; `methods` holds the served paths (`/package.Service/Method`).
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    methods: Arc<HashSet<String>>,
}

impl ObserveLayer {
    /// A layer that labels the calls of `methods` (paths such as
    /// `/grpc.health.v1.Health/Check`) by their service and method.
    pub fn new(methods: HashSet<String>) -> Self {
        Self {
            methods: Arc::new(methods),
        }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            methods: Arc::clone(&self.methods),
        }
    }
}

/// The service made by [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    methods: Arc<HashSet<String>>,
}

/// `(service, method)` of a served path; `unknown` for anything else.
fn labels<'a>(methods: &HashSet<String>, path: &'a str) -> (&'a str, &'a str) {
    if methods.contains(path)
        && let Some((service, method)) = path.trim_start_matches('/').split_once('/')
    {
        return (service, method);
    }
    (UNKNOWN, UNKNOWN)
}

/// The span of one call. `method` and `trace_id` keep the log lines of a call
/// tied to the router's trace even when traces are not exported.
fn call_span(path: &str, service: &str, method: &str, headers: &http::HeaderMap) -> tracing::Span {
    let parent = crate::telemetry::extract(headers);
    let trace_id = {
        use opentelemetry::trace::TraceContextExt as _;
        let context = parent.span().span_context().clone();
        if context.is_valid() {
            context.trace_id().to_string()
        } else {
            String::new()
        }
    };
    let span = tracing::info_span!(
        "call",
        otel.name = %format!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        method = %path,
        trace_id = %trace_id,
    );
    // Nothing to continue when the caller sent no context.
    if !trace_id.is_empty() {
        let _ = span.set_parent(parent);
    }
    span
}

/// A call being served: ends exactly once, when its status is known.
struct Ending {
    span: tracing::Span,
    service: String,
    method: String,
    started: Instant,
    done: bool,
}

impl Ending {
    fn end(&mut self, code: i32) {
        if self.done {
            return;
        }
        self.done = true;
        self.span.record("rpc.grpc.status_code", code);
        if code != 0 {
            self.span.record("otel.status_code", "ERROR");
        }
        crate::metrics::record_rpc(&self.service, &self.method, code, self.started.elapsed());
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        // Dropped before its status was sent: the caller went away.
        self.end(tonic::Code::Cancelled as i32);
    }
}

/// The `grpc-status` in `headers`, if any.
fn status_in(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Observe<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let (service, method) = labels(&self.methods, &path);
        let span = call_span(&path, service, method, request.headers());
        let mut ending = Ending {
            span: span.clone(),
            service: service.to_owned(),
            method: method.to_owned(),
            started: Instant::now(),
            done: false,
        };
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let response = future.await;
                if let Ok(response) = &response
                    && let Some(code) = status_in(response.headers())
                {
                    // A trailers-only answer: the status is in the headers.
                    ending.end(code);
                }
                response.map(|response| {
                    response.map(|body| {
                        tonic::body::Body::new(ObservedBody {
                            inner: Box::pin(body),
                            ending,
                        })
                    })
                })
            }
            .instrument(span),
        )
    }
}

/// A response body that ends its call when the trailers go out.
struct ObservedBody<B> {
    inner: Pin<Box<B>>,
    ending: Ending,
}

impl<B> HttpBody for ObservedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in) {
                    self.ending.end(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.ending.end(tonic::Code::Internal as i32),
            Poll::Ready(None) => self.ending.end(tonic::Code::Ok as i32),
            Poll::Pending => {}
        }
        polled.map(|frame| frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Every method path of the encoded descriptor sets `sets`.
pub(crate) fn served_methods(sets: &[&[u8]]) -> HashSet<String> {
    let mut methods = HashSet::new();
    for set in sets {
        let Ok(pool) = crate::descriptors::decode(set) else {
            continue;
        };
        for service in pool.services() {
            for method in service.methods() {
                methods.insert(format!("/{}/{}", service.full_name(), method.name()));
            }
        }
    }
    methods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_get_their_own_labels() {
        let methods = served_methods(&[tonic_health::pb::FILE_DESCRIPTOR_SET]);
        assert_eq!(
            labels(&methods, "/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        // A client can send any path: it must not create a series of its own.
        assert_eq!(
            labels(&methods, "/grpc.health.v1.Health/ATTACKER-ID-1234"),
            (UNKNOWN, UNKNOWN)
        );
        assert_eq!(labels(&methods, "/x.Y/Z"), (UNKNOWN, UNKNOWN));
    }
}
