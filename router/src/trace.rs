//! The router's OpenTelemetry spans, after the MCP and RPC semantic conventions.
//!
//! Two spans per tool call, both made only while traces are exported
//! ([`crate::telemetry::exporting`]; otherwise nothing here allocates or
//! records anything), with the OpenTelemetry SDK directly (see
//! [`crate::telemetry::start_export`] for why not through `tracing`):
//!
//! * [`mcp_request`]: the server span of every MCP request the router
//!   answers (`initialize`, the lists, `tools/call`, `resources/read`,
//!   subscriptions, `prompts/get`, completions, `logging/setLevel`), named
//!   `{mcp.method.name} {target}` (`tools/call database_query`; the method
//!   alone when there is no target or the target is a URI), continuing the client's trace context from
//!   `params._meta.traceparent` (SEP-414) or, over HTTP, the `traceparent`
//!   header. [`ServerSpan::answered`] records how it ended (`error.type`) and
//!   ends it.
//! * [`Hop`]: the client span of the gRPC call to the connector, a child of
//!   the request's span (or, for a front door without a span of its own, of
//!   the client's context), whose context is the `traceparent` the connector
//!   receives, so the connector's server span is its child. It lasts from
//!   [`Hop::start`] to [`Hop::end`].
//!
//! Parents are explicit (a `traceparent` the caller carries), never the
//! "current" span, so nothing has to be entered while a call is polled. A
//! span dropped before it is ended (its request cancelled) ends then.
//!
//! Tool arguments and results never reach a span: only names, ids, versions
//! and outcomes do.

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::Span;
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use serde_json::Value as Json;

use crate::catalog::ToolEntry;

/// The header and `_meta` key of W3C trace context.
const TRACEPARENT: &str = "traceparent";
/// Vendor trace state, travelling with `traceparent`.
const TRACESTATE: &str = "tracestate";
/// The session header of Streamable HTTP.
const SESSION_HEADER: &str = "mcp-session-id";

/// The W3C `traceparent` of `context`'s span, if it has a valid one.
pub(crate) fn traceparent_of(context: &opentelemetry::Context) -> Option<String> {
    w3c(context.span().span_context())
}

/// `span` as a W3C `traceparent`, if it is valid.
fn w3c(span: &opentelemetry::trace::SpanContext) -> Option<String> {
    span.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.trace_flags().to_u8()
        )
    })
}

/// The trace context a client sent with an MCP request: `_meta` first
/// (SEP-414), then the HTTP headers.
pub(crate) fn incoming_traceparent(context: &RequestContext<RoleServer>) -> Option<&str> {
    context
        .meta
        .0
        .get(TRACEPARENT)
        .and_then(Json::as_str)
        .or_else(|| header(context, TRACEPARENT))
}

/// A header of the HTTP request that carried `context` (none over stdio).
fn header<'a>(context: &'a RequestContext<RoleServer>, name: &str) -> Option<&'a str> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.headers.get(name))
        .and_then(|value| value.to_str().ok())
}

/// The OpenTelemetry context of W3C `traceparent` / `tracestate` values
/// (empty when they are missing or malformed).
fn extract(traceparent: Option<&str>, tracestate: Option<&str>) -> opentelemetry::Context {
    struct Carrier<'a>(Option<&'a str>, Option<&'a str>);
    impl opentelemetry::propagation::Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                TRACEPARENT => self.0,
                TRACESTATE => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec![TRACEPARENT, TRACESTATE]
        }
    }
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&Carrier(traceparent, tracestate))
}

tokio::task_local! {
    /// The `traceparent` of the server span of the request being answered,
    /// while traces are exported ([`ServerSpan::scope`],
    /// [`ServerSpan::in_scope`]): what the request's gRPC calls are children
    /// of. A task-local costs a thread-local swap per poll, where entering a
    /// `tracing` span costs a look-up and a lock in every layer.
    static REQUEST: String;
}

/// The current request's server span as a `traceparent`, if there is one.
fn current() -> Option<String> {
    REQUEST.try_with(Clone::clone).ok()
}

/// The `traceparent` a call continues while traces are exported, for
/// [`crate::call::Caller`]: the current request's server span's (see
/// [`ServerSpan::in_scope`]), else the client's `incoming` one as it came.
/// `None` while traces are off, or without any valid context.
pub(crate) fn continued(incoming: Option<&str>) -> Option<String> {
    if !crate::telemetry::exporting() {
        return None;
    }
    current().or_else(|| traceparent_of(&extract(incoming, None)))
}

/// The server span of one MCP request (see the module's documentation).
/// Ends when answered, or when dropped.
#[derive(Debug, Default)]
pub(crate) struct ServerSpan {
    span: Option<Span>,
    traceparent: Option<String>,
}

impl ServerSpan {
    /// Runs `f` as part of this request: the calls it makes are children of
    /// this span.
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.traceparent {
            Some(traceparent) => REQUEST.sync_scope(traceparent.clone(), f),
            None => f(),
        }
    }

    /// `work` as part of this request (see [`Self::in_scope`]).
    pub(crate) async fn scope<T>(&self, work: impl Future<Output = T>) -> T {
        match &self.traceparent {
            Some(traceparent) => REQUEST.scope(traceparent.clone(), work).await,
            None => work.await,
        }
    }

    /// Records how the request ended and ends the span: `error_type` is
    /// empty on success, `tool_error` for a result with `isError`, else the
    /// JSON-RPC error code (also `rpc.response.status_code`).
    pub(crate) fn answered(self, error_type: &str) {
        let Some(mut span) = self.span else {
            return;
        };
        if !error_type.is_empty() {
            span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
            if error_type != "tool_error" {
                span.set_attribute(KeyValue::new(
                    "rpc.response.status_code",
                    error_type.to_owned(),
                ));
            }
            span.set_status(Status::error(""));
        }
        span.end();
    }
}

/// The server span of one MCP request: `method` (`tools/call`,
/// `resources/read`, `prompts/get`) of `target` (the tool, the resource's
/// URI, the prompt). No span while traces are off.
pub(crate) fn mcp_request(
    method: &'static str,
    target: &str,
    context: &RequestContext<RoleServer>,
) -> ServerSpan {
    let Some(tracer) = crate::telemetry::tracer() else {
        return ServerSpan::default();
    };
    let parts = context.extensions.get::<http::request::Parts>();
    // A client names the target: keep what reaches the span (and the
    // collector) short, whatever it sent.
    let target = bounded(target);
    let target = target.as_ref();
    // A URI is no span name: unbounded, and it may say more than a name.
    let name = match method {
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => method.to_owned(),
        _ if target.is_empty() => method.to_owned(),
        _ => format!("{method} {target}"),
    };
    let mut attributes = Vec::with_capacity(10);
    attributes.push(KeyValue::new("mcp.method.name", method));
    match method {
        "tools/call" => {
            attributes.push(KeyValue::new("gen_ai.tool.name", target.to_owned()));
            attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        }
        "prompts/get" => {
            attributes.push(KeyValue::new("gen_ai.prompt.name", target.to_owned()));
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            attributes.push(KeyValue::new("mcp.resource.uri", target.to_owned()));
        }
        _ => {}
    }
    attributes.push(KeyValue::new("jsonrpc.request.id", request_id(&context.id)));
    if let Some(version) = context.protocol_version() {
        attributes.push(KeyValue::new(
            "mcp.protocol.version",
            version.as_str().to_owned(),
        ));
    }
    if parts.is_some() {
        attributes.push(KeyValue::new("network.transport", "tcp"));
        attributes.push(KeyValue::new("network.protocol.name", "http"));
    } else {
        attributes.push(KeyValue::new("network.transport", "pipe"));
    }
    if let Some(session) = header(context, SESSION_HEADER) {
        attributes.push(KeyValue::new("mcp.session.id", session.to_owned()));
    }
    let client = extract(
        incoming_traceparent(context),
        context
            .meta
            .0
            .get(TRACESTATE)
            .and_then(Json::as_str)
            .or_else(|| header(context, TRACESTATE)),
    );
    let builder = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes);
    let span = tracer.build_with_context(builder, &client);
    let traceparent = span_traceparent(&span);
    ServerSpan {
        span: Some(span),
        traceparent,
    }
}

/// A JSON-RPC request id as the span carries it (a string, as the
/// conventions ask; a number keeps its digits), cut like a target: a client
/// chooses it, and every exported span would carry it whole.
fn request_id(id: &rmcp::model::RequestId) -> Value {
    Value::from(bounded(&id.to_string()).into_owned())
}

/// The W3C `traceparent` of a span of ours, if its context is valid.
fn span_traceparent(span: &Span) -> Option<String> {
    w3c(span.span_context())
}

/// Longest target (tool or prompt name, resource URI) put in a span, in characters.
const MAX_SPAN_TARGET_CHARS: usize = 256;

/// `target` cut to [`MAX_SPAN_TARGET_CHARS`] characters (marked with `…`).
fn bounded(target: &str) -> std::borrow::Cow<'_, str> {
    match target.char_indices().nth(MAX_SPAN_TARGET_CHARS) {
        None => std::borrow::Cow::Borrowed(target),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &target[..end])),
    }
}

/// The gRPC call of a tool call to its connector, as a client span.
#[derive(Debug)]
pub(crate) struct Hop {
    span: Option<Span>,
    traceparent: Option<String>,
}

impl Hop {
    /// The client span of calling `entry`, a child of the caller's
    /// `traceparent` (the front door's server span); nothing while traces are
    /// off.
    pub(crate) fn start(entry: &ToolEntry, traceparent: &str) -> Self {
        Self::rpc(
            entry.method.parent_service().full_name(),
            entry.method.name(),
            traceparent,
        )
    }

    /// The client span of calling `service`/`method` (the generic resource
    /// and prompt services: reads, prompt gets, completions, watches), a
    /// child of `traceparent` (of the current request's span when it is
    /// empty); nothing while traces are off.
    pub(crate) fn rpc(service: &str, method: &str, traceparent: &str) -> Self {
        let Some(tracer) = crate::telemetry::tracer() else {
            return Self::off();
        };
        let builder = tracer
            .span_builder(format!("{service}/{method}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_owned()),
                KeyValue::new("rpc.method", method.to_owned()),
            ]);
        // No `traceparent` given: a child of the request being answered.
        let parent = match traceparent {
            "" => current(),
            given => Some(given.to_owned()),
        };
        let span = tracer.build_with_context(builder, &extract(parent.as_deref(), None));
        let traceparent = span_traceparent(&span);
        Self {
            span: Some(span),
            traceparent,
        }
    }

    /// No span: traces are off.
    fn off() -> Self {
        Self {
            span: None,
            traceparent: None,
        }
    }

    /// The `traceparent` the connector receives: this span's context, or
    /// `otherwise` (the caller's) while traces are off.
    pub(crate) fn traceparent<'a>(&'a self, otherwise: &'a str) -> &'a str {
        self.traceparent.as_deref().unwrap_or(otherwise)
    }

    /// Records the call's gRPC status (`CANCELLED` when the caller gave up)
    /// and ends the span.
    pub(crate) fn end(self, code: tonic::Code) {
        let Some(mut span) = self.span else {
            return;
        };
        span.set_attribute(KeyValue::new("rpc.grpc.status_code", code as i64));
        if code != tonic::Code::Ok {
            span.set_attribute(KeyValue::new("error.type", code_name(code)));
            span.set_status(Status::error(""));
        }
        span.end();
    }
}

/// The canonical name of a gRPC status code, as `error.type` carries it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_target_is_cut_at_a_character_bound_whatever_the_client_sent() {
        assert_eq!(bounded("jira_get_issue"), "jira_get_issue");
        let exact = "é".repeat(MAX_SPAN_TARGET_CHARS);
        assert_eq!(bounded(&exact), exact);
        let huge = "é".repeat(1_000_000);
        let cut = bounded(&huge);
        assert_eq!(cut.chars().count(), MAX_SPAN_TARGET_CHARS + 1);
        assert!(cut.ends_with("é…"), "cut between characters, marked");
    }

    #[test]
    fn a_clients_trace_context_is_read_and_written_back_the_w3c_way() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = extract(Some(incoming), Some("vendor=1"));
        assert_eq!(traceparent_of(&context).as_deref(), Some(incoming));
        assert_eq!(
            context.span().span_context().trace_state().header(),
            "vendor=1"
        );
        for malformed in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            assert_eq!(
                traceparent_of(&extract(Some(malformed), None)),
                None,
                "{malformed}"
            );
        }
        assert_eq!(traceparent_of(&extract(None, None)), None);
    }

    #[test]
    fn a_clients_request_id_reaches_a_span_bounded() {
        let long = rmcp::model::RequestId::String("é".repeat(100_000).into());
        let Value::String(id) = request_id(&long) else {
            panic!("a string");
        };
        assert_eq!(id.as_str().chars().count(), MAX_SPAN_TARGET_CHARS + 1);
        let number = rmcp::model::RequestId::Number(42);
        assert_eq!(request_id(&number), Value::from("42"));
    }

    #[test]
    fn grpc_codes_have_their_canonical_names() {
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
