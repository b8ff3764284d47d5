//! The call pipeline: every use of a connector, from any front door, is one
//! value flowing through the same ordered stages.
//!
//! ```text
//! front door ─▶ authorize ─▶ limit ─▶ decode ─▶ invoke (gRPC) ─▶ shape ─▶ result
//!               (policy)     (slots,  (JSON→    (deadline, retry, (content,
//!                             rates,   proto)    cancel, trace)     errors)
//!                             share, caps)
//!               audit line + tracing span around the whole call
//! ```
//!
//! A front door (MCP over stdio or HTTP in [`crate::mcp`]) only translates its
//! wire format into a [`ToolCall`] (or a resource read, prompt get, completion)
//! and the outcome back; nothing about security, limits or connectors lives
//! there. Each stage is a small module, testable alone:
//! [`authorize`], [`limit`], [`decode`], [`invoke`], [`shape`]; gRPC statuses
//! are read through one table ([`status`]). Resources, prompts and completions
//! go through the same authorize stage and audit ([`aggregate`] does their
//! invoke and shape). The principal reaches connectors as gRPC metadata on
//! every request, never from client headers.

pub(crate) mod aggregate;
pub mod authorize;
pub(crate) mod decode;
pub mod events;
pub(crate) mod invoke;
pub mod limit;
pub(crate) mod shape;
pub(crate) mod share;
pub(crate) mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolResult, CompleteRequestParams, CompleteResult, GetPromptResult, ReadResourceResult,
    Tool,
};
use serde_json::{Map, Value as Json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::audit::{FrontDoor, Outcome as Audited};
use crate::auth::Principal;
use crate::catalog::ToolCatalog;
use crate::upstream::Upstream;
use aggregate::CachedRead;
pub use authorize::{Decided, Refusal, Security, Surface};
pub use events::{Notice, Notices};
pub use limit::{CallLimits, CallSlots};

/// Who is asking, as the front door established it: the principal (`None`
/// when an issuer is set and the request carried no valid token: allowed
/// nothing) and the W3C trace context of this request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated principal.
    pub principal: Option<Principal>,
    /// The front door the request came through (for the audit line).
    pub front_door: FrontDoor,
    /// The `traceparent` sent to connectors: the client's trace id when it
    /// sent one, with a new span id; otherwise a new trace. While traces are
    /// exported, the context of the front door's server span.
    pub traceparent: String,
    /// The client's session as the front door knows it (e.g. `session <id>`),
    /// whom rate limits count against when clients do not authenticate.
    pub client: Option<String>,
    /// The policy's decision on this tool call, when the front door already
    /// made it (taken by the authorize stage instead of deciding again).
    pub decided: Option<Decided>,
}

impl Caller {
    /// A caller at `front_door` continuing the client's `traceparent`, if it
    /// sent one (and, while traces are exported, the current server span).
    pub fn new(
        principal: Option<Principal>,
        front_door: FrontDoor,
        incoming_traceparent: Option<&str>,
    ) -> Self {
        Self {
            principal,
            front_door,
            client: None,
            decided: None,
            traceparent: crate::trace::continued(incoming_traceparent)
                .unwrap_or_else(|| traceparent(incoming_traceparent)),
        }
    }

    /// The same caller, known to the front door as `client` (its session).
    pub fn with_client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// The same caller, with the policy decision the front door made for
    /// this request's tool call.
    pub fn with_decided(mut self, decided: Option<Decided>) -> Self {
        self.decided = decided;
        self
    }

    /// The trace id, for the audit line.
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent.split('-').nth(1)
    }
}

/// One tool call on its way through the pipeline.
#[derive(Debug)]
pub struct ToolCall {
    /// Who calls.
    pub caller: Caller,
    /// The tool's router name.
    pub name: String,
    /// The arguments, a JSON object.
    pub arguments: Option<Map<String, Json>>,
    /// Fires when the caller gives up; the connector's call is then dropped.
    pub cancel: CancellationToken,
    /// The calling session's slots (`max_calls_per_session`), if it has any.
    pub slots: Option<CallSlots>,
    /// Where progress, logs and questions go; without, they are dropped and
    /// questions refused to the connector.
    pub notices: Option<Notices>,
}

/// Why a call that reached the pipeline has no result from its connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A limit refused it (the limit stage).
    Limited,
    /// The connector is not serving.
    Unavailable,
    /// The arguments do not fit the tool's input schema.
    Arguments,
    /// The caller cancelled it.
    Cancelled,
    /// The connector answered with this gRPC status.
    Connector(tonic::Code),
    /// The connector's answer could not be read.
    Malformed,
}

/// A call that ended without a result, and the message a model can act on.
/// A front door answers it as a tool error (MCP `isError: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// What to tell the caller: what failed and what to do.
    pub message: String,
    /// When a limit refused it: how long to wait before calling again.
    pub retry_after: Option<std::time::Duration>,
}

/// How a tool call ended without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Refused before it reached any stage but authorize: a protocol error.
    Refused(Refusal),
    /// It failed on the way: a tool error.
    Failed(Failure),
}

impl From<Refusal> for CallError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<Failure> for CallError {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}

/// The pipeline and what its stages share: the catalog, a channel per
/// connector, the cache of resource reads, and the security settings. Cheap
/// to clone.
#[derive(Clone)]
pub struct Pipeline {
    catalog: Arc<ToolCatalog>,
    upstreams: Arc<HashMap<String, Upstream>>,
    reads: moka::sync::Cache<String, CachedRead>,
    security: Security,
    limits: CallLimits,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("connectors", &self.upstreams.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline over `catalog`, calling through `upstreams`, letting
    /// everyone do everything until [`Pipeline::with_security`].
    pub fn new(catalog: Arc<ToolCatalog>, upstreams: impl IntoIterator<Item = Upstream>) -> Self {
        Self {
            catalog,
            upstreams: Arc::new(
                upstreams
                    .into_iter()
                    .map(|u| (u.name().to_owned(), u))
                    .collect(),
            ),
            reads: aggregate::read_cache(),
            security: Security::default(),
            limits: CallLimits::default(),
        }
    }

    /// Limits calls with `limits` (default: no rate limits or caps, identical
    /// read-only calls shared).
    pub fn with_call_limits(mut self, limits: CallLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Authenticates, authorizes and audits with `security`.
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// The security settings.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The shared catalog.
    pub fn catalog(&self) -> &Arc<ToolCatalog> {
        &self.catalog
    }

    /// The connector named `name`.
    pub(crate) fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.get(name)
    }

    /// The cache of resource reads shared by all sessions.
    pub(crate) fn reads(&self) -> &moka::sync::Cache<String, CachedRead> {
        &self.reads
    }

    /// Whether `name` (of `connector`) is listed for `principal`.
    pub fn visible(&self, principal: Option<&Principal>, name: &str, connector: &str) -> bool {
        self.security.visible(principal, name, connector)
    }

    /// The tools `principal` may see (waiting a bounded time for connectors
    /// at start).
    pub async fn tools(&self, principal: Option<&Principal>) -> Vec<Tool> {
        self.catalog.wait_ready().await;
        self.catalog
            .tools()
            .into_iter()
            .filter(|tool| {
                let connector = self
                    .catalog
                    .resolve(&tool.name)
                    .map(|r| r.entry.connector.clone())
                    .unwrap_or_default();
                self.visible(principal, &tool.name, &connector)
            })
            .collect()
    }

    /// A tool call through every stage, in a tracing span, with its audit line.
    pub async fn call_tool(&self, mut call: ToolCall) -> Result<CallToolResult, CallError> {
        let started = Instant::now();
        // Their text as the audit line shows them (only when it logs them),
        // taken by the stages once canonical: the arguments themselves go to
        // the connector.
        let mut audited_arguments = None;
        let span = tracing::info_span!(
            "tool_call",
            tool = %call.name,
            connector = tracing::field::Empty,
            method = tracing::field::Empty,
            traceparent = %call.caller.traceparent,
        );
        let mut connector = String::new();
        let result = self
            .tool_stages(&mut call, &mut connector, &mut audited_arguments)
            .instrument(span.clone())
            .await;
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        // Only a tool of the catalog is a label value: names a client makes up
        // would make the metric's cardinality unbounded.
        let tool_label = if connector.is_empty() {
            ""
        } else {
            call.name.as_str()
        };
        crate::metrics::record_operation("tools/call", tool_label, &error_type(&result), elapsed);
        let outcome = match &result {
            Ok(r) if r.is_error == Some(true) => {
                tracing::info!(parent: &span, elapsed_ms, outcome = "tool_error", "tool call");
                Audited::ToolError
            }
            Ok(_) => {
                tracing::info!(parent: &span, elapsed_ms, outcome = "ok", "tool call");
                Audited::Ok
            }
            Err(CallError::Refused(refusal)) => {
                tracing::info!(parent: &span, elapsed_ms, outcome = "refused", "tool call");
                if let Some(reason) = refusal.denial() {
                    crate::metrics::record_denial(reason);
                }
                refusal.audited()
            }
            Err(CallError::Failed(failure)) => {
                match failure.kind {
                    FailureKind::Cancelled => {
                        tracing::info!(parent: &span, elapsed_ms, "tool call cancelled by the client");
                    }
                    FailureKind::Connector(code) => {
                        tracing::info!(parent: &span, elapsed_ms, outcome = "error", ?code, "tool call");
                    }
                    kind => {
                        tracing::info!(parent: &span, elapsed_ms, outcome = "error", ?kind, "tool call");
                    }
                }
                match failure.kind {
                    FailureKind::Limited => Audited::RateLimited,
                    _ => Audited::ToolError,
                }
            }
        };
        self.security.audit(
            call.caller.principal.as_ref(),
            call.caller.front_door,
            &call.name,
            &connector,
            outcome,
            started,
            call.caller.trace_id(),
            audited_arguments.as_deref(),
        );
        result
    }

    /// The stages in their order; `connector` is set once the tool is known.
    async fn tool_stages(
        &self,
        call: &mut ToolCall,
        connector: &mut String,
        audited_arguments: &mut Option<String>,
    ) -> Result<CallToolResult, CallError> {
        let name = call.name.as_str();
        self.catalog.wait_ready().await;
        // authorize: the policy decides on the tool, its connector and the
        // arguments; what it hides is answered as unknown.
        let resolved = self.catalog.resolve(name);
        // The arguments in their canonical form before anything reads them:
        // the policy decides on what the connector will run. Whether they fit
        // is told only to a caller the policy allows, after the limits.
        let mut checked = Ok(());
        if let Some(resolved) = &resolved {
            connector.clone_from(&resolved.entry.connector);
            checked = decode::canonical(&resolved.entry, &mut call.arguments);
        }
        *audited_arguments = self.security.audit.arguments_text(call.arguments.as_ref());
        let no_arguments = Map::new();
        self.security.authorize_given(
            call.caller.decided.take(),
            call.caller.principal.as_ref(),
            Surface::Tool,
            name,
            connector,
            call.arguments.as_ref().unwrap_or(&no_arguments),
        )?;
        let Some(resolved) = resolved else {
            return Err(match self.catalog.hidden_by(name) {
                Some(by) => Refusal::Disabled {
                    name: name.to_owned(),
                    connector: by,
                },
                None => Refusal::Unknown {
                    surface: Surface::Tool,
                    name: name.to_owned(),
                    hidden: false,
                },
            }
            .into());
        };
        // limit: the session's slots, then the rate limits
        let _slot = call.slots.as_ref().map(|s| s.admit(name)).transpose()?;
        let principal = limit::principal_key(&call.caller, self.security.auth.is_some());
        self.limits.admit(name, &principal).await?;
        // decode
        let target = decode::target(name, resolved, &self.upstreams)?;
        tracing::Span::current().record("method", target.entry.method.full_name());
        tracing::Span::current().record("connector", target.entry.connector.as_str());
        // Identical calls share one connector call per principal, or across
        // principals where the policy says the tool's results are the same
        // for everyone.
        let share_as = if self.security.policy.results_shared(name) {
            "\u{1}every principal"
        } else {
            principal.as_str()
        };
        let shared = self
            .limits
            .shared(&target.entry, share_as, name, call.arguments.as_ref());
        let message = decode::arguments(name, &target, call.arguments.take(), checked)?;
        // limit: an identical read-only call running now is joined; a
        // connector's cap lets this one wait for a place
        if let Some(shared) = shared {
            let forwarded = self.forwarded(&call.caller);
            drop(call.notices.take());
            let traceparent = call.caller.traceparent.clone();
            return Ok(shared
                .join(name, target, message, traceparent, forwarded, &call.cancel)
                .await?);
        }
        let _place = self
            .limits
            .enter(&target.entry.connector, name, &call.cancel)
            .await?;
        // invoke, carrying who calls (as the router established it), in the
        // gRPC client span whose context the connector continues
        let forwarded = self.forwarded(&call.caller);
        let hop = crate::trace::Hop::start(&target.entry, &call.caller.traceparent);
        let outcome = invoke::run(
            &target,
            message,
            hop.traceparent(&call.caller.traceparent),
            &forwarded,
            &call.cancel,
            call.notices.take(),
        )
        .await;
        hop.end(match &outcome {
            Ok(_) => tonic::Code::Ok,
            Err(invoke::Ended::Cancelled) => tonic::Code::Cancelled,
            Err(invoke::Ended::Status(status)) => status.code(),
        });
        // shape
        Ok(shape::result(name, &target, outcome)?)
    }

    /// The metadata telling a connector who calls.
    fn forwarded(&self, caller: &Caller) -> tonic::metadata::MetadataMap {
        caller
            .principal
            .as_ref()
            .map(|p| self.security.forwarded(p))
            .unwrap_or_default()
    }

    /// Runs `use_it` on `name` (a resource URI or prompt name) when the
    /// caller may, with its audit line.
    async fn audited<T, F>(
        &self,
        caller: &Caller,
        surface: Surface,
        name: &str,
        use_it: F,
    ) -> Result<T, McpError>
    where
        F: Future<Output = Result<T, McpError>>,
    {
        let started = Instant::now();
        let audit = |outcome| {
            self.security.audit(
                caller.principal.as_ref(),
                caller.front_door,
                name,
                "",
                outcome,
                started,
                caller.trace_id(),
                None,
            );
        };
        let method = match surface {
            Surface::Resource => "resources/read",
            Surface::Prompt => "prompts/get",
            Surface::Tool => "tools/call",
        };
        if let Err(refusal) =
            self.security
                .authorize(caller.principal.as_ref(), surface, name, "", &Map::new())
        {
            audit(refusal.audited());
            if let Some(reason) = refusal.denial() {
                crate::metrics::record_denial(reason);
            }
            let error = McpError::from(refusal);
            crate::metrics::record_operation(
                method,
                "",
                &error.code.0.to_string(),
                started.elapsed(),
            );
            return Err(error);
        }
        let result = use_it.await;
        audit(if result.is_ok() {
            Audited::Ok
        } else {
            Audited::ToolError
        });
        let error_type = result
            .as_ref()
            .err()
            .map(|e| e.code.0.to_string())
            .unwrap_or_default();
        crate::metrics::record_operation(method, "", &error_type, started.elapsed());
        result
    }

    /// `resources/read` of `uri`, authorized and audited.
    pub async fn read_resource(
        &self,
        caller: &Caller,
        uri: &str,
    ) -> Result<ReadResourceResult, McpError> {
        self.audited(
            caller,
            Surface::Resource,
            uri,
            self.read_resource_cached(caller, uri),
        )
        .await
    }

    /// `prompts/get` of `name`, authorized and audited.
    pub async fn get_prompt(
        &self,
        caller: &Caller,
        name: &str,
        arguments: Option<Map<String, Json>>,
    ) -> Result<GetPromptResult, McpError> {
        self.audited(
            caller,
            Surface::Prompt,
            name,
            self.get_prompt_from_owner(caller, name, arguments),
        )
        .await
    }

    /// `completion/complete`: what the caller cannot see completes like what
    /// does not exist, with nothing.
    pub async fn complete(
        &self,
        caller: &Caller,
        request: CompleteRequestParams,
    ) -> Result<CompleteResult, McpError> {
        let name = match &request.r#ref {
            rmcp::model::Reference::Prompt(p) => Some(p.name.as_str()),
            rmcp::model::Reference::Resource(r) => Some(r.uri.as_str()),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        if name.is_some_and(|n| !self.visible(caller.principal.as_ref(), n, "")) {
            return aggregate::no_completions();
        }
        self.complete_from_owner(caller, request).await
    }

    /// Whether the caller may subscribe to `uri`.
    pub fn may_subscribe(&self, caller: &Caller, uri: &str) -> Result<(), McpError> {
        self.security
            .authorize(
                caller.principal.as_ref(),
                Surface::Resource,
                uri,
                "",
                &Map::new(),
            )
            .map_err(McpError::from)
    }
}

/// The `error.type` of a tool call's outcome (OpenTelemetry MCP conventions):
/// empty on success, `tool_error` for a result with `isError` (which every
/// failure on the way is, to the client), the JSON-RPC error code otherwise.
pub(crate) fn error_type(result: &Result<CallToolResult, CallError>) -> String {
    match result {
        Ok(r) if r.is_error != Some(true) => String::new(),
        Ok(_) | Err(CallError::Failed(_)) => "tool_error".to_owned(),
        Err(CallError::Refused(refusal)) => McpError::from(refusal.clone()).code.0.to_string(),
    }
}

/// A W3C `traceparent` for the outgoing call: the client's trace id when it sent
/// one, with a new span id; otherwise a new trace.
pub fn traceparent(incoming: Option<&str>) -> String {
    let mut rng = rand::rng();
    let span: u64 = rng.random::<u64>().max(1);
    if let Some(trace) = incoming.and_then(|t| {
        let parts: Vec<&str> = t.split('-').collect();
        (parts.len() == 4
            && parts[1].len() == 32
            && parts[1].chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| parts[1].to_ascii_lowercase())
    }) {
        return format!("00-{trace}-{span:016x}-01");
    }
    let trace: u128 = rng.random::<u128>().max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_keeps_the_clients_trace_id() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let out = traceparent(Some(incoming));
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert_ne!(out, incoming, "a new span id is used");
        let fresh = traceparent(Some("garbage"));
        assert_eq!(fresh.len(), 55);
        let caller = Caller::new(None, FrontDoor::Http, Some(incoming));
        assert_eq!(caller.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    }
}
