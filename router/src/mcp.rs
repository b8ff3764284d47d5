//! The MCP side: one [`Router`] handler per session, all sharing the catalog.
//!
//! `tools/list` serves the catalog (waiting a bounded time for connectors at
//! start); `tools/call` resolves the tool by name, checks its connector is up
//! (failing fast with a readable message if not), transcodes the arguments,
//! calls the connector and transcodes the answer back. Failures downstream are
//! tool results with `isError: true` that a model can act on; only an unknown tool
//! is a protocol error. Catalog changes reach sessions as
//! `notifications/tools/list_changed` (initialize-era sessions) or through
//! `subscriptions/listen` (stateless-era clients).
//!
//! Authorization ([`Security`]): each request's principal is the one the HTTP
//! front door put in its extensions (or the local user over stdio and on
//! HTTP without an issuer; with an issuer, a request without one is allowed
//! nothing). Listings keep what [`Policy::visible`] allows; a call, read, get,
//! subscription or completion of something [`Policy::decide`] hides is
//! answered exactly as for something unknown. Every call, read and get writes
//! one audit line, and a tool call carries the principal to its connector as
//! `switchboard-principal-*` metadata built here, never from client headers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use rand::Rng;
#[allow(deprecated)] // logging/setLevel: deprecated by SEP-2577, still what clients send
use rmcp::model::SetLevelRequestParams;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock, CustomRequest, CustomResult, ErrorCode, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value as Json, json};
use tokio::sync::{Semaphore, mpsc};
use tonic::{Code, Status};
use tracing::Instrument;

use crate::aggregate::{CachedRead, read_cache, unknown_prompt, unknown_resource};
use crate::audit::{AuditConfig, AuditEvent, Outcome as Audited};
use crate::auth::{Authenticator, Principal, principal_metadata};
use crate::catalog::{ConnectorStatus, STREAM_EVENT, TOOL_RESULT, ToolCatalog};
use crate::config::ClientLimits;
use crate::content::{self, decode, level_name, merge, severity, value_json};
use crate::limits::LimitLog;
use crate::policy::{Decision, Policy, ToolRef};
use crate::transcode::{decode_arguments, encode_result};
use crate::upstream::Upstream;
use switchboard_proto::mcp::v1 as pb;

const INSTRUCTIONS: &str = "Switchboard gives you the tools of the connectors it fronts. \
A tool's name starts with its connector's prefix (usually the connector's name). Read-only \
tools are marked readOnlyHint; tools marked destructiveHint change or delete data. When a \
call fails, the error says which connector and what to do. Resources and prompts carry the \
same prefix (resource URIs as `<prefix>+<uri>`).";

/// Log notifications below this level are not sent until the client sets one.
const DEFAULT_LOG_LEVEL: &str = "info";

/// A resource subscription: its watch task, or `None` while the connector is
/// being asked (the slot is held, so concurrent subscribes cannot overshoot
/// `max_subscriptions_per_session`).
type Watch = Option<tokio::task::JoinHandle<()>>;

/// What belongs to one MCP session: its log level, resource subscriptions and
/// tool calls in flight, each bounded by [`ClientLimits`].
#[derive(Debug)]
struct Session {
    log_level: AtomicU8,
    watches: Mutex<HashMap<String, Watch>>,
    /// One permit per tool call in flight (`max_calls_per_session`).
    calls: Semaphore,
}

impl Session {
    fn new(limits: &ClientLimits) -> Self {
        Self {
            log_level: AtomicU8::new(severity(DEFAULT_LOG_LEVEL)),
            watches: Mutex::default(),
            calls: Semaphore::new(limits.max_calls_per_session),
        }
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watch>> {
        self.watches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for watch in self.watches().drain().filter_map(|(_, w)| w) {
            watch.abort();
        }
    }
}

/// Warnings about per-session bounds being hit (see [`crate::limits`]).
static CALLS_REFUSED: LimitLog = LimitLog::new("max_calls_per_session");
static SUBSCRIPTIONS_REFUSED: LimitLog = LimitLog::new("max_subscriptions_per_session");
static NOTIFICATIONS_DROPPED: LimitLog = LimitLog::new("notification_queue");

/// How a method's responses become a tool result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultKind {
    /// Any message: JSON structuredContent plus a text block.
    Plain,
    /// `ToolResult`: MCP content one to one.
    Rich,
    /// `StreamEvent`s: progress and logs forwarded, results joined.
    Events,
}

/// Something to tell the client while a call runs.
enum Notice {
    Progress {
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    },
    Log {
        level: &'static str,
        logger: String,
        data: Json,
    },
    Ask(pb::ClientRequest),
}

/// The notices of one tool call on their way to the client: a bounded queue
/// (`notification_queue`). When it is full, progress and logs are dropped and
/// counted; a question is handed back, to be refused to the connector.
struct NoticeQueue {
    tx: Option<mpsc::Sender<Notice>>,
    capacity: usize,
    dropped: std::sync::atomic::AtomicUsize,
}

impl NoticeQueue {
    fn new(capacity: usize) -> (Self, mpsc::Receiver<Notice>) {
        let (tx, rx) = mpsc::channel(capacity);
        let queue = Self {
            tx: Some(tx),
            capacity,
            dropped: std::sync::atomic::AtomicUsize::new(0),
        };
        (queue, rx)
    }

    /// Queues `notice`; a question that cannot be queued comes back with why.
    fn push(&self, notice: Notice) -> Option<(pb::ClientRequest, String)> {
        let tx = self.tx.as_ref()?;
        let (notice, why) = match tx.try_send(notice) {
            Ok(()) => return None,
            Err(mpsc::error::TrySendError::Full(notice)) => (
                notice,
                format!(
                    "the router's notification queue for this call is full (notification_queue = {}): the question was not put to the client",
                    self.capacity
                ),
            ),
            Err(mpsc::error::TrySendError::Closed(notice)) => (
                notice,
                "the MCP client is gone: the question was not put to it".to_owned(),
            ),
        };
        match notice {
            Notice::Ask(ask) => Some((ask, why)),
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Ends the queue (the forwarder then finishes); how many were dropped.
    fn close(mut self) -> usize {
        self.tx = None;
        self.dropped.into_inner()
    }
}

/// Sends one log notification (MCP logging is deprecated by SEP-2577 in rmcp,
/// but clients of the current protocol versions use it).
#[allow(deprecated)]
async fn send_log(peer: &rmcp::Peer<RoleServer>, level: &str, logger: String, data: Json) -> bool {
    let mut param = json!({ "level": level, "data": data });
    if !logger.is_empty() {
        param["logger"] = json!(logger);
    }
    match serde_json::from_value::<rmcp::model::LoggingMessageNotificationParam>(param) {
        Ok(param) => peer.notify_logging_message(param).await.is_ok(),
        Err(_) => true,
    }
}

/// Who may do what, shared by every session: the authenticator (HTTP with an
/// issuer), the policy, and the audit settings. The default lets everyone do
/// everything (stdio, and HTTP on localhost without an issuer) and audits
/// without arguments.
#[derive(Debug, Clone)]
pub struct Security {
    /// Set when HTTP clients must present a bearer token: then a request
    /// without an authenticated principal is allowed nothing.
    pub auth: Option<Arc<Authenticator>>,
    /// The authorization policy ([`Policy::allow_all`] without `--policy`).
    pub policy: Arc<Policy>,
    /// The audit trail settings.
    pub audit: Arc<AuditConfig>,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            auth: None,
            policy: Arc::new(Policy::allow_all()),
            audit: Arc::new(AuditConfig::default()),
        }
    }
}

/// Largest forwarded claim for the local user, who has no claims but `sub`.
const LOCAL_CLAIM_BYTES: usize = 1024;

impl Security {
    /// The principal of a request whose HTTP parts rmcp put in `extensions`
    /// (the front door's `require_bearer` put the [`Principal`] there). Without
    /// HTTP parts or an issuer: the local user. `None` when an issuer is set
    /// and the request carries no principal: such a request is allowed nothing.
    pub fn principal(&self, extensions: &rmcp::model::Extensions) -> Option<Principal> {
        let found = extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned();
        match (found, &self.auth) {
            (Some(principal), _) => Some(principal),
            (None, Some(_)) => None,
            (None, None) => Some(Principal::local()),
        }
    }

    /// The gRPC metadata telling a connector who calls.
    pub fn forwarded(&self, principal: &Principal) -> tonic::metadata::MetadataMap {
        match &self.auth {
            Some(auth) => auth.forwarded_metadata(principal),
            None => principal_metadata(principal, &[], LOCAL_CLAIM_BYTES),
        }
    }

    /// The policy's answer for `principal` using `name` of `connector`;
    /// [`Decision::Hidden`] when there is no principal.
    pub fn decide(
        &self,
        principal: Option<&Principal>,
        name: &str,
        connector: &str,
        args: &Json,
    ) -> Decision {
        match principal {
            Some(p) => self.policy.decide(p, &ToolRef { name, connector }, args),
            None => Decision::Hidden,
        }
    }

    /// Whether `name` of `connector` is listed for `principal`.
    pub fn visible(&self, principal: Option<&Principal>, name: &str, connector: &str) -> bool {
        principal.is_some_and(|p| self.policy.visible(p, &ToolRef { name, connector }))
    }

    /// Writes one audit line.
    #[allow(clippy::too_many_arguments)]
    pub fn audit(
        &self,
        principal: Option<&Principal>,
        tool: &str,
        connector: &str,
        outcome: Audited,
        started: std::time::Instant,
        trace_id: Option<&str>,
        arguments: Option<&Json>,
    ) {
        AuditEvent {
            principal: principal.map(|p| p.sub.as_str()),
            tool,
            connector,
            outcome,
            duration: started.elapsed(),
            trace_id,
            arguments,
        }
        .emit(&self.audit);
    }
}

/// The answer to a call of a tool the router does not offer; a tool the
/// policy hides from the caller gets exactly this answer too.
pub fn unknown_tool(name: &str) -> McpError {
    McpError::invalid_params(
        format!("unknown tool {name:?}; call tools/list for the tools available now"),
        None,
    )
}

/// The call-path answer to a use the policy allows only with more scopes (over
/// HTTP the front door has already answered it 403; this covers the rest).
fn insufficient_scope(name: &str, scopes: &[String]) -> McpError {
    McpError::invalid_request(
        format!("{name} needs a token with the scopes: {}", scopes.join(" ")),
        Some(json!({ "error": "insufficient_scope", "scope": scopes.join(" ") })),
    )
}

/// The trace id of a W3C `traceparent`.
fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

/// The MCP handler; cheap to clone (one per session).
#[derive(Clone)]
pub struct Router {
    catalog: Arc<ToolCatalog>,
    upstreams: Arc<HashMap<String, Upstream>>,
    reads: moka::sync::Cache<String, CachedRead>,
    session: Arc<Session>,
    limits: ClientLimits,
    polling: Option<crate::polling::SsePolling>,
    security: Security,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("connectors", &self.upstreams.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A handler over `catalog`, calling through `upstreams`.
    pub fn new(catalog: Arc<ToolCatalog>, upstreams: impl IntoIterator<Item = Upstream>) -> Self {
        Self {
            catalog,
            upstreams: Arc::new(
                upstreams
                    .into_iter()
                    .map(|u| (u.name().to_owned(), u))
                    .collect(),
            ),
            reads: read_cache(),
            session: Arc::new(Session::new(&ClientLimits::default())),
            limits: ClientLimits::default(),
            polling: None,
            security: Security::default(),
        }
    }

    /// Authenticates, authorizes and audits with `security` (default: everyone
    /// may do everything, as over stdio).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// The security settings shared by all sessions.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// Bounds what each session may hold (calls in flight, subscriptions,
    /// queued notifications); the defaults of [`ClientLimits`] otherwise.
    pub fn with_limits(mut self, limits: ClientLimits) -> Self {
        self.session = Arc::new(Session::new(&limits));
        self.limits = limits;
        self
    }

    /// Closes the SSE streams of long tool calls for clients to resume (HTTP).
    pub fn with_polling(mut self, polling: crate::polling::SsePolling) -> Self {
        self.polling = Some(polling);
        self
    }

    /// A handler for a new MCP session: same catalog, connectors and read
    /// cache, its own log level and subscriptions.
    pub fn session(&self) -> Self {
        Self {
            catalog: self.catalog.clone(),
            upstreams: self.upstreams.clone(),
            reads: self.reads.clone(),
            session: Arc::new(Session::new(&self.limits)),
            limits: self.limits,
            polling: self.polling.clone(),
            security: self.security.clone(),
        }
    }

    /// The connector named `name`.
    pub(crate) fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.get(name)
    }

    /// The cache of resource reads shared by all sessions.
    pub(crate) fn reads(&self) -> &moka::sync::Cache<String, CachedRead> {
        &self.reads
    }

    /// The shared catalog.
    pub fn catalog(&self) -> &Arc<ToolCatalog> {
        &self.catalog
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let name = request.name.to_string();
        let Some(resolved) = self.catalog.resolve(&name) else {
            if let Some(connector) = self.catalog.hidden_by(&name) {
                return Err(McpError::invalid_params(
                    format!(
                        "tool {name:?} is not offered: connector {connector:?} hides it, as its configuration turns such tools off (e.g. writes on a read-only deployment); call tools/list for the tools available now, or ask the operator"
                    ),
                    None,
                ));
            }
            return Err(unknown_tool(&name));
        };
        let entry = resolved.entry;
        let connector = entry.connector.clone();
        if resolved.status != ConnectorStatus::Serving {
            return Ok(tool_error(format!(
                "{name} cannot be called now: connector {connector:?} is {} (for {}s). \
                 Calls fail immediately until it is back; retry later, or ask the operator \
                 to check that the {connector} connector is running and healthy.",
                resolved.status,
                resolved.for_duration.as_secs()
            )));
        }
        let Some(upstream) = self.upstreams.get(&connector) else {
            return Err(McpError::internal_error(
                format!("no upstream for connector {connector}"),
                None,
            ));
        };
        let message = match decode_arguments(&entry.method.input(), request.arguments) {
            Ok(m) => m,
            Err(e) => return Ok(tool_error(format!("{name}: {e}"))),
        };

        let kind = match entry.method.output().full_name() {
            TOOL_RESULT => ResultKind::Rich,
            STREAM_EVENT if entry.server_streaming() => ResultKind::Events,
            _ => ResultKind::Plain,
        };
        let prefix = upstream.config().prefix.clone();

        // Streamed messages become progress (and log) notifications, in order.
        let progress_token = context.meta.get_progress_token();
        let min_level = self.session.log_level.load(Ordering::Relaxed);
        // Bounded: a client that reads slowly loses progress and log
        // notifications (counted, logged once), never the result.
        let (notices, mut notice_rx) = NoticeQueue::new(self.limits.notification_queue);
        let notify = |notice: Notice| {
            if let Some((ask, why)) = notices.push(notice) {
                // A question must be answered, or the connector waits for
                // nothing: it is told at once that it was not asked.
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    crate::interact::refuse(&upstream, ask, &why).await;
                });
            }
        };
        let forwarder = (progress_token.is_some() || kind == ResultKind::Events).then(|| {
            let peer = context.peer.clone();
            let token = progress_token.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                while let Some(notice) = notice_rx.recv().await {
                    let sent = match notice {
                        Notice::Progress {
                            progress,
                            total,
                            message,
                        } => {
                            let Some(token) = token.clone() else { continue };
                            let mut param = ProgressNotificationParam::new(token, progress);
                            if let Some(total) = total {
                                param = param.with_total(total);
                            }
                            if let Some(message) = message {
                                param = param.with_message(message);
                            }
                            peer.notify_progress(param).await.is_ok()
                        }
                        Notice::Log {
                            level,
                            logger,
                            data,
                        } => send_log(&peer, level, logger, data).await,
                        // Answered beside the stream, which goes on meanwhile.
                        Notice::Ask(ask) => {
                            let (peer, upstream) = (peer.clone(), upstream.clone());
                            tokio::spawn(async move {
                                crate::interact::answer(&peer, &upstream, ask).await;
                            });
                            true
                        }
                    };
                    if !sent {
                        break;
                    }
                }
            })
        });
        let on_message = |message: &prost_reflect::DynamicMessage, index: usize| match kind {
            ResultKind::Plain | ResultKind::Rich => {
                if progress_token.is_some() {
                    notify(Notice::Progress {
                        progress: (index + 1) as f64,
                        total: None,
                        message: (kind == ResultKind::Plain)
                            .then(|| encode_result(message).to_string()),
                    });
                }
            }
            ResultKind::Events => {
                let Ok(event) = decode::<pb::StreamEvent>(message) else {
                    return;
                };
                match event.event {
                    Some(pb::stream_event::Event::Progress(p)) if progress_token.is_some() => {
                        notify(Notice::Progress {
                            progress: p.progress,
                            total: p.total,
                            message: (!p.message.is_empty()).then_some(p.message),
                        });
                    }
                    Some(pb::stream_event::Event::Log(log)) => {
                        let level = level_name(log.level);
                        if severity(level) >= min_level {
                            notify(Notice::Log {
                                level,
                                logger: log.logger,
                                data: log.data.as_ref().map_or(Json::Null, value_json),
                            });
                        }
                    }
                    Some(pb::stream_event::Event::Ask(ask)) => {
                        notify(Notice::Ask(ask));
                    }
                    _ => {}
                }
            }
        };

        let traceparent = traceparent(context.meta.0.get("traceparent").and_then(Json::as_str));
        // Who calls, as the router established it: never the client's headers.
        let forwarded = self
            .security
            .principal(&context.extensions)
            .map(|p| self.security.forwarded(&p))
            .unwrap_or_default();
        let span = tracing::info_span!(
            "tool_call",
            tool = %name,
            connector = %connector,
            method = %entry.method.full_name(),
            traceparent = %traceparent,
        );
        let started = std::time::Instant::now();
        let poll_timer = self.polling.as_ref().and_then(|p| p.watch(&context));
        let outcome = tokio::select! {
            () = context.ct.cancelled() => {
                tracing::info!(parent: &span, "tool call cancelled by the client");
                return Ok(tool_error(format!("{name}: cancelled by the client")));
            }
            r = upstream.call_with(&entry, message, &traceparent, &forwarded, on_message).instrument(span.clone()) => r,
        };
        let dropped = notices.close();
        if let Some(timer) = poll_timer {
            timer.abort();
        }
        if let Some(f) = forwarder {
            let _ = f.await;
        }
        if dropped > 0 {
            NOTIFICATIONS_DROPPED.hit(
                self.limits.notification_queue,
                "a slow client lost progress or log notifications of a tool call",
            );
            tracing::debug!(parent: &span, dropped, "notifications dropped");
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(messages) if kind != ResultKind::Plain => {
                tracing::info!(parent: &span, elapsed_ms, outcome = "ok", "tool call");
                let parts: Result<Vec<pb::ToolResult>, String> = if kind == ResultKind::Rich {
                    messages.iter().map(decode::<pb::ToolResult>).collect()
                } else {
                    messages
                        .iter()
                        .map(decode::<pb::StreamEvent>)
                        .filter_map(|e| match e {
                            Ok(pb::StreamEvent {
                                event: Some(pb::stream_event::Event::Result(r)),
                            }) => Some(Ok(r)),
                            Ok(_) => None,
                            Err(e) => Some(Err(e)),
                        })
                        .collect()
                };
                match parts.and_then(|parts| content::tool_result(&merge(parts), &prefix)) {
                    Ok(result) => Ok(result),
                    Err(e) => Ok(tool_error(format!(
                        "{name}: connector {connector} returned a malformed result: {e}"
                    ))),
                }
            }
            Ok(messages) => {
                tracing::info!(parent: &span, elapsed_ms, outcome = "ok", "tool call");
                let structured = if entry.server_streaming() {
                    json!({ "messages": messages.iter().map(encode_result).collect::<Vec<_>>() })
                } else {
                    match messages.first().map(encode_result) {
                        Some(Json::Object(map)) => Json::Object(map),
                        Some(other) => json!({ "result": other }),
                        None => json!({}),
                    }
                };
                Ok(CallToolResult::structured(structured))
            }
            Err(status) => {
                tracing::info!(parent: &span, elapsed_ms, outcome = "error", code = ?status.code(), "tool call");
                Ok(tool_error(describe_failure(&name, &connector, &status)))
            }
        }
    }
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// Turns a connector's gRPC status into a message a model can act on. The
/// one place where status codes are interpreted.
pub fn describe_failure(tool: &str, connector: &str, status: &Status) -> String {
    // tonic reports a stream reset at the HTTP/2 level (RST_STREAM) with a code
    // taken from the reset reason and this message: the connection failed, no
    // handler of the connector said anything.
    let reset = status.message().starts_with("h2 protocol error");
    let hint = match status.code() {
        Code::Internal | Code::Cancelled | Code::Unknown if reset => {
            "The connection to the connector broke off mid-call (the stream was reset; not a cancellation by you): retry in a little while; if it keeps happening, ask the operator to check the connector."
        }
        Code::InvalidArgument | Code::OutOfRange => {
            "The arguments were rejected: correct them and call again."
        }
        Code::NotFound => {
            "The target does not exist: check the identifier (a list or search tool can find it)."
        }
        Code::AlreadyExists => "It already exists: use the existing one or pick another name.",
        Code::PermissionDenied => {
            "Refused by policy or permissions; retrying will not help. Ask the operator if this access is needed."
        }
        Code::Unauthenticated => {
            "The connector's credentials were rejected by its upstream service; the operator must fix its configuration."
        }
        Code::FailedPrecondition => {
            "The connector or the target is not in a state that allows this; see the message for what to change."
        }
        Code::ResourceExhausted => {
            "A rate limit or size limit was hit: wait before retrying, or ask for less."
        }
        Code::Unavailable => {
            "The connector or its upstream is temporarily unavailable: retry in a little while."
        }
        Code::DeadlineExceeded => "It took too long: retry, or narrow the request.",
        // The client's own cancellation is answered before any status is read,
        // so a Cancelled status means the connector's side ended the call (a
        // reset stream, a connector shutting down), not the caller.
        Code::Cancelled => {
            "The connector ended the call before it finished (not a cancellation by you): retry; if it keeps happening, ask the operator to check the connector's logs."
        }
        Code::Internal => {
            "The connector hit a bug while handling this call: retrying with the same arguments will probably fail the same way; report it to the operator (the connector's logs have the details)."
        }
        Code::DataLoss => {
            "The connector reported lost or corrupted data: do not retry blindly; ask the operator to check the connector and its upstream."
        }
        Code::Unimplemented => {
            "The connector does not implement this method (it may be a different version): list the tools again."
        }
        Code::Aborted => {
            "It conflicted with a concurrent change: fetch the current state and retry."
        }
        _ => {
            "The connector failed unexpectedly; retrying may help, otherwise ask the operator to check its logs."
        }
    };
    let message = status.message().trim();
    let message = if message.is_empty() {
        "(no details)"
    } else {
        message
    };
    format!(
        "{tool} failed: {message}\n[connector {connector}, gRPC status {:?}] {hint}",
        status.code()
    )
}

/// A W3C `traceparent` for the outgoing call: the client's trace id when it sent
/// one in `_meta`, with a new span id; otherwise a new trace.
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

impl ServerHandler for Router {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            #[allow(deprecated)]
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new(
            "switchboard",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.catalog.wait_ready().await;
        let principal = self.security.principal(&context.extensions);
        let tools = self
            .catalog
            .tools()
            .into_iter()
            .filter(|tool| {
                let connector = self
                    .catalog
                    .resolve(&tool.name)
                    .map(|r| r.entry.connector.clone())
                    .unwrap_or_default();
                self.security
                    .visible(principal.as_ref(), &tool.name, &connector)
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        if let Some(problem) = misshapen_params(&request.method, request.params.as_ref()) {
            return Err(McpError::new(
                ErrorCode::INVALID_PARAMS,
                format!(
                    "invalid params for {}: {problem}; see the MCP specification of {} for their shape",
                    request.method, request.method
                ),
                None,
            ));
        }
        Err(McpError::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!(
                "method not found: {}; Switchboard serves tools, resources, prompts, completions and logging",
                request.method
            ),
            None,
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.catalog.tool(name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // Whatever way the call ends, its SSE stream is forgotten.
        let _stream = self.polling.as_ref().map(|p| p.forget_when_done(&context));
        let started = std::time::Instant::now();
        let principal = self.security.principal(&context.extensions);
        let name = request.name.to_string();
        let arguments = request.arguments.clone().map(Json::Object);
        // One trace id for the connector call and the audit line.
        let traceparent = traceparent(context.meta.0.get("traceparent").and_then(Json::as_str));
        context
            .meta
            .0
            .insert("traceparent".to_owned(), Json::String(traceparent.clone()));
        let audit = |connector: &str, outcome: Audited| {
            self.security.audit(
                principal.as_ref(),
                &name,
                connector,
                outcome,
                started,
                trace_id_of(&traceparent),
                arguments.as_ref(),
            );
        };
        let Ok(_in_flight) = self.session.calls.try_acquire() else {
            audit("", Audited::RateLimited);
            let max = self.limits.max_calls_per_session;
            CALLS_REFUSED.hit(
                max,
                "a session hit its limit of tool calls at once; calls refused",
            );
            return Ok(CallToolResponse::from(tool_error(format!(
                "{}: refused: this session already runs {max} tool calls at once, the most the router allows (max_calls_per_session = {max}); wait for one to finish, then call again",
                request.name
            ))));
        };
        self.catalog.wait_ready().await;
        let connector = self
            .catalog
            .resolve(&name)
            .map(|r| r.entry.connector.clone())
            .unwrap_or_default();
        let args = arguments.clone().unwrap_or_else(|| json!({}));
        match self
            .security
            .decide(principal.as_ref(), &name, &connector, &args)
        {
            Decision::Allow { .. } => {}
            Decision::Hidden => {
                audit("", Audited::Denied);
                return Err(unknown_tool(&name));
            }
            // Over HTTP the front door answers this with 403 before rmcp;
            // this is the same decision, should a request get here anyway.
            Decision::InsufficientScope(scopes) => {
                audit(&connector, Audited::Denied);
                return Err(insufficient_scope(&name, &scopes));
            }
        }
        let result = self.call(request, context).await;
        let outcome = match &result {
            Ok(r) if r.is_error == Some(true) => Audited::ToolError,
            Ok(_) => Audited::Ok,
            Err(_) => Audited::ToolError,
        };
        audit(&connector, outcome);
        result.map(CallToolResponse::from)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut page = self
            .list_resources_page(request.and_then(|r| r.cursor))
            .await?;
        let principal = self.security.principal(&context.extensions);
        page.resources
            .retain(|r| self.security.visible(principal.as_ref(), &r.uri, ""));
        Ok(page)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let mut page = self
            .list_templates_page(request.and_then(|r| r.cursor))
            .await?;
        let principal = self.security.principal(&context.extensions);
        page.resource_templates.retain(|t| {
            self.security
                .visible(principal.as_ref(), &t.uri_template, "")
        });
        Ok(page)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let started = std::time::Instant::now();
        let principal = self.security.principal(&context.extensions);
        let uri = request.uri;
        let audit = |outcome: Audited| {
            self.security
                .audit(principal.as_ref(), &uri, "", outcome, started, None, None);
        };
        let empty = json!({});
        match self.security.decide(principal.as_ref(), &uri, "", &empty) {
            Decision::Allow { .. } => {}
            Decision::Hidden => {
                audit(Audited::Denied);
                return Err(unknown_resource(&uri));
            }
            Decision::InsufficientScope(scopes) => {
                audit(Audited::Denied);
                return Err(insufficient_scope(&uri, &scopes));
            }
        }
        let result = self.read_resource_cached(&uri).await;
        audit(if result.is_ok() {
            Audited::Ok
        } else {
            Audited::ToolError
        });
        result.map(ReadResourceResponse::from)
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let uri = request.uri;
        let principal = self.security.principal(&context.extensions);
        match self
            .security
            .decide(principal.as_ref(), &uri, "", &json!({}))
        {
            Decision::Allow { .. } => {}
            Decision::Hidden => return Err(unknown_resource(&uri)),
            Decision::InsufficientScope(scopes) => return Err(insufficient_scope(&uri, &scopes)),
        }
        {
            let mut watches = self.session.watches();
            if watches.contains_key(&uri) {
                return Ok(());
            }
            let max = self.limits.max_subscriptions_per_session;
            if watches.len() >= max {
                // Watches whose stream has ended hold no connector stream.
                watches.retain(|_, w| w.as_ref().is_none_or(|h| !h.is_finished()));
            }
            if watches.len() >= max {
                SUBSCRIPTIONS_REFUSED.hit(
                    max,
                    "a session hit its limit of resource subscriptions; subscriptions refused",
                );
                return Err(McpError::invalid_request(
                    format!(
                        "cannot subscribe to {uri:?}: this session already holds {max} resource subscriptions, the most the router allows (max_subscriptions_per_session = {max}); unsubscribe from one first"
                    ),
                    Some(json!({ "setting": "max_subscriptions_per_session", "limit": max })),
                ));
            }
            // Hold the slot while the connector is asked.
            watches.insert(uri.clone(), None);
        }
        match self.watch_resource(&uri, context.peer.clone()).await {
            Ok(watch) => {
                match self.session.watches().get_mut(&uri) {
                    Some(slot) => *slot = Some(watch),
                    // Unsubscribed meanwhile.
                    None => watch.abort(),
                }
                Ok(())
            }
            Err(error) => {
                let mut watches = self.session.watches();
                if watches.get(&uri).is_some_and(Option::is_none) {
                    watches.remove(&uri);
                }
                Err(error)
            }
        }
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if let Some(Some(watch)) = self.session.watches().remove(&request.uri) {
            watch.abort();
        }
        Ok(())
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let mut page = self
            .list_prompts_page(request.and_then(|r| r.cursor))
            .await?;
        let principal = self.security.principal(&context.extensions);
        page.prompts
            .retain(|p| self.security.visible(principal.as_ref(), &p.name, ""));
        Ok(page)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let started = std::time::Instant::now();
        let principal = self.security.principal(&context.extensions);
        let name = request.name;
        let audit = |outcome: Audited| {
            self.security
                .audit(principal.as_ref(), &name, "", outcome, started, None, None);
        };
        match self
            .security
            .decide(principal.as_ref(), &name, "", &json!({}))
        {
            Decision::Allow { .. } => {}
            Decision::Hidden => {
                audit(Audited::Denied);
                return Err(unknown_prompt(&name));
            }
            Decision::InsufficientScope(scopes) => {
                audit(Audited::Denied);
                return Err(insufficient_scope(&name, &scopes));
            }
        }
        let result = self.get_prompt_from_owner(&name, request.arguments).await;
        audit(if result.is_ok() {
            Audited::Ok
        } else {
            Audited::ToolError
        });
        result.map(GetPromptResponse::from)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let principal = self.security.principal(&context.extensions);
        let name = match &request.r#ref {
            rmcp::model::Reference::Prompt(p) => Some(p.name.as_str()),
            rmcp::model::Reference::Resource(r) => Some(r.uri.as_str()),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        // What the caller cannot see completes like what does not exist: nothing.
        if name.is_some_and(|n| !self.security.visible(principal.as_ref(), n, "")) {
            return serde_json::from_value(
                json!({ "completion": { "values": [], "hasMore": false } }),
            )
            .map_err(|e| McpError::internal_error(e.to_string(), None));
        }
        self.complete_from_owner(request).await
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let level = serde_json::to_value(request.level)
            .ok()
            .and_then(|v| v.as_str().map(severity))
            .unwrap_or_else(|| severity(DEFAULT_LOG_LEVEL));
        self.session.log_level.store(level, Ordering::Relaxed);
        Ok(())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut changes = self.catalog.subscribe();
        changes.mark_unchanged();
        let peer = context.peer.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if peer.is_transport_closed() || peer.notify_tool_list_changed().await.is_err() {
                    break;
                }
            }
        });
        let mut surface = self.catalog.subscribe_surface();
        surface.mark_unchanged();
        let peer = context.peer.clone();
        tokio::spawn(async move {
            while surface.changed().await.is_ok() {
                if peer.is_transport_closed()
                    || peer.notify_resource_list_changed().await.is_err()
                    || peer.notify_prompt_list_changed().await.is_err()
                {
                    break;
                }
            }
        });
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let _ = requested;
        Some(
            SubscriptionFilter::builder()
                .tools_list_changed()
                .prompts_list_changed()
                .resources_list_changed()
                .build(),
        )
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changes = self.catalog.subscribe();
        changes.mark_unchanged();
        let mut surface = self.catalog.subscribe_surface();
        surface.mark_unchanged();
        let accepted = context.accepted().clone();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if accepted.tools_list_changed == Some(true)
                        && context.sink().notify_tool_list_changed().await.is_err()
                    {
                        return Ok(());
                    }
                }
                changed = surface.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let sink = context.sink();
                    if (accepted.resources_list_changed == Some(true)
                        && sink.notify_resource_list_changed().await.is_err())
                        || (accepted.prompts_list_changed == Some(true)
                            && sink.notify_prompt_list_changed().await.is_err())
                    {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Why the params of a standard MCP request could not be read: rmcp hands such
/// a request on as a custom one, which would otherwise be answered "method not
/// found" for a method the router serves. `None` for methods MCP does not define.
// logging/setLevel is deprecated in the newest protocol, still served for older ones.
#[allow(deprecated)]
fn misshapen_params(method: &str, params: Option<&Json>) -> Option<String> {
    fn reason<T: serde::de::DeserializeOwned>(params: Option<&Json>) -> String {
        match serde_json::from_value::<T>(params.cloned().unwrap_or(Json::Null)) {
            Err(error) => error.to_string(),
            Ok(_) => "they do not match the request's schema".to_owned(),
        }
    }
    Some(match method {
        "tools/call" => reason::<CallToolRequestParams>(params),
        "resources/read" => reason::<ReadResourceRequestParams>(params),
        "resources/subscribe" => reason::<SubscribeRequestParams>(params),
        "resources/unsubscribe" => reason::<UnsubscribeRequestParams>(params),
        "prompts/get" => reason::<GetPromptRequestParams>(params),
        "completion/complete" => reason::<CompleteRequestParams>(params),
        "logging/setLevel" => reason::<SetLevelRequestParams>(params),
        "initialize"
        | "ping"
        | "tools/list"
        | "resources/list"
        | "resources/templates/list"
        | "prompts/list" => "they do not match the request's schema".to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misshapen_params_of_a_served_method_say_what_is_wrong() {
        let problem = misshapen_params("tools/call", Some(&json!({"name": 3})))
            .expect("tools/call is an MCP method");
        assert!(problem.contains("invalid type: integer"), "{problem}");
        let problem = misshapen_params("tools/call", Some(&json!(5))).expect("known");
        assert!(problem.contains("expected"), "{problem}");
        let problem = misshapen_params("resources/read", Some(&json!({}))).expect("known");
        assert!(problem.contains("uri"), "{problem}");
        assert!(misshapen_params("ping", None).is_some());
        assert_eq!(misshapen_params("tools/frobnicate", Some(&json!({}))), None);
        assert_eq!(misshapen_params("", None), None);
    }

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
    }

    #[test]
    fn failures_name_tool_connector_and_what_to_do() {
        let text = describe_failure(
            "jira_get_issue",
            "jira",
            &Status::not_found("issue PROJ-9 does not exist"),
        );
        assert!(
            text.contains("jira_get_issue failed: issue PROJ-9 does not exist"),
            "{text}"
        );
        assert!(text.contains("connector jira"), "{text}");
        assert!(text.contains("check the identifier"), "{text}");
    }

    fn progress(n: f64) -> Notice {
        Notice::Progress {
            progress: n,
            total: None,
            message: None,
        }
    }

    #[test]
    fn a_full_notice_queue_drops_progress_and_hands_questions_back() {
        let (queue, mut rx) = NoticeQueue::new(2);
        assert!(queue.push(progress(1.0)).is_none());
        assert!(queue.push(progress(2.0)).is_none());
        for n in 3..1000 {
            assert!(queue.push(progress(f64::from(n))).is_none());
        }
        let ask = pb::ClientRequest {
            id: "q-1".to_owned(),
            request: None,
        };
        let (back, why) = queue
            .push(Notice::Ask(ask))
            .expect("a question is never dropped");
        assert_eq!(back.id, "q-1");
        assert!(why.contains("notification_queue = 2"), "{why}");
        // What was queued is what the client gets, in order.
        assert!(matches!(rx.try_recv(), Ok(Notice::Progress { progress, .. }) if progress == 1.0));
        assert!(queue.push(progress(1000.0)).is_none(), "room again");
        assert_eq!(queue.close(), 997, "997 progress notices did not fit");
    }

    #[test]
    fn a_question_for_a_client_that_is_gone_is_handed_back() {
        let (queue, rx) = NoticeQueue::new(4);
        drop(rx);
        let ask = pb::ClientRequest {
            id: "q-2".to_owned(),
            request: None,
        };
        let (_, why) = queue.push(Notice::Ask(ask)).expect("handed back");
        assert!(why.contains("client is gone"), "{why}");
    }

    #[test]
    fn an_internal_status_says_the_connector_hit_a_bug() {
        let text = describe_failure(
            "calculator_divide",
            "calculator",
            &Status::internal("the handler panicked"),
        );
        assert!(text.contains("the handler panicked"), "{text}");
        assert!(text.contains("hit a bug"), "{text}");
        assert!(!text.contains("retrying may help"), "{text}");
    }

    #[test]
    fn a_reset_stream_is_not_called_a_cancellation_by_the_client() {
        let text = describe_failure(
            "calculator_sleep",
            "calculator",
            &Status::cancelled("stream reset by the connector"),
        );
        assert!(text.contains("not a cancellation by you"), "{text}");
        assert!(!text.contains("The call was cancelled"), "{text}");
        let unknown = describe_failure("t", "c", &Status::unknown("no grpc-status"));
        assert!(unknown.contains("failed unexpectedly"), "{unknown}");
        assert!(!unknown.contains("hit a bug"), "{unknown}");
        // An HTTP/2 reset is reported as Internal by tonic: not a bug of the
        // connector's handler, and not the client's cancellation either.
        let reset = describe_failure(
            "t",
            "c",
            &Status::internal(
                "h2 protocol error: stream error received: unspecific protocol error detected",
            ),
        );
        assert!(reset.contains("stream was reset"), "{reset}");
        assert!(reset.contains("not a cancellation by you"), "{reset}");
        assert!(!reset.contains("hit a bug"), "{reset}");
    }
}
