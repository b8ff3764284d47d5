//! An OTLP/HTTP trace receiver on a loopback port, for the tracing tests and
//! the bench: it answers `POST /v1/traces` the way a collector does, decoding
//! each `ExportTraceServiceRequest` (protobuf) and keeping its spans, or
//! discarding them ([`Receiver::discarding`], for measuring the exporter's
//! cost without a collector's).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;

/// One received span and the `service.name` of the process that sent it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the span's resource.
    pub service: String,
    /// The span as sent.
    pub span: Span,
}

impl ReceivedSpan {
    /// The span's name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The trace id, in hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id, in hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent's span id, in hex (empty for a root span).
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// The span's kind.
    pub fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }

    /// The value of attribute `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    /// A string attribute.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.attribute(key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attribute(key) {
            Some(Value::IntValue(i)) => Some(*i),
            _ => None,
        }
    }

    /// The attribute keys.
    pub fn keys(&self) -> Vec<&str> {
        self.span
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect()
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Kept = Arc<Mutex<Vec<ReceivedSpan>>>;

/// The receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    spans: Option<Kept>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// A receiver that keeps every span it is sent.
    pub async fn start() -> anyhow::Result<Self> {
        Self::listen(Some(Kept::default())).await
    }

    /// A receiver that decodes nothing and keeps nothing.
    pub async fn discarding() -> anyhow::Result<Self> {
        Self::listen(None).await
    }

    async fn listen(spans: Option<Kept>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the OTLP receiver")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (kept, counted) = (spans.clone(), Arc::clone(&requests));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kept, counted) = (kept.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (kept, counted) = (kept.clone(), Arc::clone(&counted));
                        async move { answer(request, kept.as_ref(), &counted).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            spans,
            requests,
            task,
        })
    }

    /// The traces endpoint, for `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// How many export requests arrived.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans
            .as_ref()
            .map(|kept| kept.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Waits up to `timeout` until the spans received satisfy `done`, and
    /// returns them.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> anyhow::Result<Vec<ReceivedSpan>> {
        crate::process::wait_until(what, timeout, || {
            let ready = done(&self.spans());
            async move { ready }
        })
        .await
        .with_context(|| format!("spans received: {:#?}", self.spans()))?;
        Ok(self.spans())
    }
}

/// Answers one request: an export to `/v1/traces`, or 404.
async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    kept: Option<&Kept>,
    counted: &std::sync::atomic::AtomicUsize,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let respond = |status: u16, body: Vec<u8>| {
        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() =
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/x-protobuf"),
        );
        response
    };
    if request.method() != hyper::Method::POST || request.uri().path() != "/v1/traces" {
        return Ok(respond(404, Vec::new()));
    }
    let body = request.into_body().collect().await?.to_bytes();
    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if let Some(kept) = kept {
        let Ok(export) = ExportTraceServiceRequest::decode(body) else {
            return Ok(respond(400, Vec::new()));
        };
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                kept.push(ReceivedSpan {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    Ok(respond(
        200,
        ExportTraceServiceResponse::default().encode_to_vec(),
    ))
}
