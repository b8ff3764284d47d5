//! The router's OpenTelemetry spans, after the MCP and RPC semantic conventions.
//!
//! Two spans per tool call, both made only while traces are exported
//! ([`crate::telemetry::exporting`]; otherwise nothing here allocates or
//! records anything):
//!
//! * [`mcp_request`]: the server span of every MCP request the router
//!   answers (`initialize`, the lists, `tools/call`, `resources/read`,
//!   subscriptions, `prompts/get`, completions, `logging/setLevel`), named
//!   `{mcp.method.name} {target}` (`tools/call database_query`; the method
//!   alone when there is no target or the target is a URI), continuing the client's trace context from
//!   `params._meta.traceparent` (SEP-414) or, over HTTP, the `traceparent`
//!   header. [`answered`] records how it ended (`error.type`).
//! * [`Hop`]: the client span of the gRPC call to the connector, a child of
//!   the request's span (or, for a front door without a span of its own, of
//!   the client's context), whose context is the `traceparent` the connector
//!   receives, so the connector's server span is its child.
//!
//! Tool arguments and results never reach a span: only names, ids, versions
//! and outcomes do.

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use serde_json::Value as Json;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::catalog::ToolEntry;

/// The header and `_meta` key of W3C trace context.
const TRACEPARENT: &str = "traceparent";
/// Vendor trace state, travelling with `traceparent`.
const TRACESTATE: &str = "tracestate";
/// The session header of Streamable HTTP.
const SESSION_HEADER: &str = "mcp-session-id";

/// Whether spans are made (an exporter is installed).
fn on() -> bool {
    crate::telemetry::exporting()
}

/// The W3C `traceparent` of `context`'s span, if it has a valid one.
pub(crate) fn traceparent_of(context: &opentelemetry::Context) -> Option<String> {
    let span = context.span();
    let span = span.span_context();
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

/// The `traceparent` a call continues while traces are exported, for
/// [`crate::call::Caller`]: the current span's when it is an exported one
/// (the front door's server span), else the client's `incoming` one as it
/// came. `None` while traces are off, or without any valid context.
pub(crate) fn continued(incoming: Option<&str>) -> Option<String> {
    if !on() {
        return None;
    }
    traceparent_of(&tracing::Span::current().context())
        .or_else(|| traceparent_of(&extract(incoming, None)))
}

/// The server span of one MCP request: `method` (`tools/call`,
/// `resources/read`, `prompts/get`) of `target` (the tool, the resource's
/// URI, the prompt). [`tracing::Span::none`] while traces are off.
pub(crate) fn mcp_request(
    method: &'static str,
    target: &str,
    context: &RequestContext<RoleServer>,
) -> tracing::Span {
    if !on() {
        return tracing::Span::none();
    }
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
    let span = tracing::info_span!(
        "mcp_request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = Empty,
        mcp.method.name = method,
        gen_ai.tool.name = Empty,
        gen_ai.operation.name = Empty,
        gen_ai.prompt.name = Empty,
        mcp.resource.uri = Empty,
        jsonrpc.request.id = %context.id,
        mcp.session.id = Empty,
        mcp.protocol.version = Empty,
        network.transport = if parts.is_some() { "tcp" } else { "pipe" },
        network.protocol.name = Empty,
        error.type = Empty,
        rpc.response.status_code = Empty,
    );
    match method {
        "tools/call" => {
            span.record("gen_ai.tool.name", target);
            span.record("gen_ai.operation.name", "execute_tool");
        }
        "prompts/get" => {
            span.record("gen_ai.prompt.name", target);
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            span.record("mcp.resource.uri", target);
        }
        _ => {}
    }
    if let Some(version) = context.protocol_version() {
        span.record("mcp.protocol.version", version.as_str());
    }
    if parts.is_some() {
        span.record("network.protocol.name", "http");
    }
    if let Some(session) = header(context, SESSION_HEADER) {
        span.record("mcp.session.id", session);
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
    if client.span().span_context().is_valid() {
        let _ = span.set_parent(client);
    }
    span
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

/// Records on an MCP request's span how it ended: `error_type` is empty on
/// success, `tool_error` for a result with `isError`, else the JSON-RPC error
/// code (also `rpc.response.status_code`).
pub(crate) fn answered(span: &tracing::Span, error_type: &str) {
    if span.is_none() || error_type.is_empty() {
        return;
    }
    span.record("error.type", error_type);
    span.record("otel.status_code", "ERROR");
    if error_type != "tool_error" {
        span.record("rpc.response.status_code", error_type);
    }
}

/// The gRPC call of a tool call to its connector, as a client span.
#[derive(Debug)]
pub(crate) struct Hop {
    span: tracing::Span,
    traceparent: Option<String>,
}

impl Hop {
    /// The client span of calling `entry`, a child of the caller's
    /// `traceparent` (the front door's server span); nothing while traces are
    /// off.
    pub(crate) fn start(entry: &ToolEntry, traceparent: &str) -> Self {
        if !on() {
            return Self::off();
        }
        Self::rpc(
            entry.method.parent_service().full_name(),
            entry.method.name(),
            traceparent,
        )
    }

    /// The client span of calling `service`/`method` (the generic resource
    /// and prompt services: reads, prompt gets, completions, watches), a
    /// child of `traceparent`; nothing while traces are off.
    pub(crate) fn rpc(service: &str, method: &str, traceparent: &str) -> Self {
        if !on() {
            return Self::off();
        }
        let span = tracing::info_span!(
            "grpc_call",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "client",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = Empty,
            error.type = Empty,
        );
        let parent = extract(Some(traceparent), None);
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
        let traceparent = traceparent_of(&span.context());
        Self { span, traceparent }
    }

    /// No span: traces are off.
    fn off() -> Self {
        Self {
            span: tracing::Span::none(),
            traceparent: None,
        }
    }

    /// The span (instrument the call with it).
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The `traceparent` the connector receives: this span's context, or
    /// `otherwise` (the caller's) while traces are off.
    pub(crate) fn traceparent<'a>(&'a self, otherwise: &'a str) -> &'a str {
        self.traceparent.as_deref().unwrap_or(otherwise)
    }

    /// Records the call's gRPC status (`CANCELLED` when the caller gave up)
    /// and ends the span.
    pub(crate) fn end(self, code: tonic::Code) {
        if self.span.is_none() {
            return;
        }
        self.span.record("rpc.grpc.status_code", code as i64);
        if code != tonic::Code::Ok {
            self.span.record("error.type", code_name(code));
            self.span.record("otel.status_code", "ERROR");
        }
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
    fn grpc_codes_have_their_canonical_names() {
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(code_name(tonic::Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
