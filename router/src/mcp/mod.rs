//! The MCP front door: one [`McpHandler`] per session, all sharing one
//! [`Pipeline`].
//!
//! It translates MCP into the pipeline's requests and the outcomes back, and
//! holds what belongs to an MCP session: its log level, resource
//! subscriptions and call slots (each bounded by [`ClientLimits`]). A tool
//! call becomes a [`ToolCall`]; its notices become `notifications/progress`
//! and `notifications/message`, and questions become `elicitation/create` or
//! `sampling/createMessage` ([`crate::interact`]). A failure on the way is a
//! tool result with `isError: true` a model can act on; only an unknown (or
//! hidden) tool, resource or prompt is a protocol error. Catalog changes
//! reach sessions as `notifications/*/list_changed` (initialize-era sessions)
//! or through `subscriptions/listen` (stateless-era clients).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

#[allow(deprecated)] // logging/setLevel: deprecated by SEP-2577, still what clients send
use rmcp::model::SetLevelRequestParams;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock, CustomRequest, CustomResult, ErrorCode, GetPromptRequestParams,
    GetPromptResponse, Implementation, InitializeRequestParams, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

use crate::audit::FrontDoor;
use crate::call::{CallError, CallSlots, Caller, Notices, Pipeline, Security, ToolCall};
use crate::catalog::ToolCatalog;
use crate::config::{ClientLimits, Config};
use crate::content::severity;
use crate::limits::LimitLog;
use crate::upstream::Upstream;

mod notices;
mod subscriptions;

use notices::{Notifier, forward_notices};
pub(crate) use notices::{log_notification, progress_notification};

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
    /// When a client's session began (`None` for the template every session
    /// is made from).
    opened: Option<std::time::Instant>,
    log_level: AtomicU8,
    watches: Mutex<HashMap<String, Watch>>,
    /// One slot per tool call in flight (`max_calls_per_session`).
    calls: CallSlots,
}

impl Session {
    fn new(limits: &ClientLimits) -> Self {
        Self {
            opened: None,
            log_level: AtomicU8::new(severity(DEFAULT_LOG_LEVEL)),
            watches: Mutex::default(),
            calls: CallSlots::new(limits.max_calls_per_session),
        }
    }

    /// The state of a client's session, opened now.
    fn opened(limits: &ClientLimits) -> Self {
        let mut session = Self::new(limits);
        session.opened = Some(std::time::Instant::now());
        session
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watch>> {
        self.watches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(opened) = self.opened {
            crate::metrics::record_session(opened.elapsed());
        }
        for watch in self.watches().drain().filter_map(|(_, w)| w) {
            watch.abort();
        }
    }
}

pub(super) static SUBSCRIPTIONS_REFUSED: LimitLog = LimitLog::new("max_subscriptions_per_session");
static INITIALIZE_REFUSED: LimitLog = LimitLog::new("max_initialize_bytes");

/// The `error.type` of a request answered with `result`: its JSON-RPC error
/// code, empty on success.
fn json_rpc_error_type<T>(result: &Result<T, McpError>) -> String {
    result
        .as_ref()
        .err()
        .map(|error| error.code.0.to_string())
        .unwrap_or_default()
}

/// Runs `work`, the answer to an MCP request of `method` about `target`
/// (empty when it names nothing), inside the request's server span, and
/// records how it ended.
async fn traced<T>(
    method: &'static str,
    target: &str,
    context: &RequestContext<RoleServer>,
    work: impl Future<Output = Result<T, McpError>>,
) -> Result<T, McpError> {
    let span = crate::trace::mcp_request(method, target, context);
    let result = span.scope(work).await;
    span.answered(&json_rpc_error_type(&result));
    result
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// The MCP handler; cheap to clone (one per session).
#[derive(Clone)]
pub struct McpHandler {
    pipeline: Pipeline,
    session: Arc<Session>,
    limits: ClientLimits,
    polling: Option<crate::polling::SsePolling>,
    /// The store sessions are shared through between replicas, if any.
    shared: Option<crate::session::SharedSessions>,
    /// With a store: the listen streams this replica holds.
    listeners: Option<Arc<crate::session::listen::Listeners>>,
    /// Cancelled when the router starts draining: listen streams end, so
    /// clients listen again on another replica.
    draining: CancellationToken,
    /// Stateless calls waiting for their clients' answers.
    parking: Arc<crate::rounds::Parking>,
    /// With a store: requests relayed to other replicas, waiting for
    /// their answers.
    feeds: Option<Arc<crate::session::resume::Feeds>>,
}

impl std::fmt::Debug for McpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHandler")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl McpHandler {
    /// Connects to the configured connectors: creates an upstream for each
    /// and the shared tool catalog, and starts watching every connector's
    /// health and descriptors (watchers stop when `shutdown` is cancelled).
    /// The handler this returns is what every front door serves.
    pub fn connect(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        let catalog = Arc::new(ToolCatalog::new(
            config.connectors.iter().map(|c| c.name.clone()),
            config.startup_timeout,
        ));
        let mut upstreams = Vec::new();
        for connector in &config.connectors {
            let upstream = Upstream::new(
                connector.clone(),
                config.dns_refresh,
                shutdown.child_token(),
            )
            .map_err(anyhow::Error::msg)?
            .with_limits(config.limits);
            upstream.spawn_watcher(catalog.clone(), config.tool_grace, shutdown.child_token());
            upstreams.push(upstream);
        }
        if config.connectors.is_empty() {
            tracing::warn!(
                "no connectors configured: use --connector NAME=URL, SWITCHBOARD_CONNECTORS or --config"
            );
        }
        Ok(Self::new(catalog, upstreams).with_limits(config.client_limits))
    }

    /// A handler over `catalog`, calling through `upstreams`.
    pub fn new(catalog: Arc<ToolCatalog>, upstreams: impl IntoIterator<Item = Upstream>) -> Self {
        Self {
            pipeline: Pipeline::new(catalog, upstreams),
            session: Arc::new(Session::new(&ClientLimits::default())),
            limits: ClientLimits::default(),
            polling: None,
            shared: None,
            listeners: None,
            draining: CancellationToken::new(),
            parking: Arc::new(crate::rounds::Parking::new(hex::encode(rand::random::<
                [u8; 6],
            >()))),
            feeds: None,
        }
    }

    /// Authenticates, authorizes and audits with `security` (default: everyone
    /// may do everything, as over stdio).
    pub fn with_security(mut self, security: Security) -> Self {
        self.pipeline = self.pipeline.with_security(security);
        self
    }

    /// Limits every session's calls with `limits` (rates, connector caps,
    /// in-flight sharing).
    pub fn with_call_limits(mut self, limits: crate::call::CallLimits) -> Self {
        self.pipeline = self.pipeline.with_call_limits(limits);
        self
    }

    /// The security settings shared by all sessions.
    pub fn security(&self) -> &Security {
        self.pipeline.security()
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

    /// Shares sessions with other replicas through `shared`: log levels,
    /// resource subscriptions (watched by the replica holding the listen
    /// stream, one of `listeners` when it is this one), notifications for a
    /// listen stream another replica holds.
    pub fn with_shared_sessions(
        mut self,
        shared: crate::session::SharedSessions,
        listeners: Arc<crate::session::listen::Listeners>,
        parking: Arc<crate::rounds::Parking>,
        feeds: Arc<crate::session::resume::Feeds>,
    ) -> Self {
        // Parked calls are named after the replica, so other replicas relay
        // their retries here.
        self.parking = parking;
        self.feeds = Some(feeds);
        self.shared = Some(shared);
        self.listeners = Some(listeners);
        self
    }

    /// Ends every `subscriptions/listen` stream when `draining` is
    /// cancelled (the router is shutting down: clients listen again
    /// elsewhere).
    pub fn with_draining(mut self, draining: CancellationToken) -> Self {
        self.draining = draining;
        self
    }

    /// The shared session a request belongs to, with a session store.
    fn shared_session<'a>(
        &'a self,
        context: &'a RequestContext<RoleServer>,
    ) -> Option<(&'a crate::session::SharedSessions, &'a str)> {
        let shared = self.shared.as_ref()?;
        let id = context
            .extensions
            .get::<http::request::Parts>()?
            .headers
            .get("mcp-session-id")?
            .to_str()
            .ok()?;
        Some((shared, id))
    }

    /// Where the notifications of `context`'s session go.
    fn notifier(&self, context: &RequestContext<RoleServer>) -> Notifier {
        Notifier {
            peer: context.peer.clone(),
            shared: self
                .shared_session(context)
                .map(|(shared, id)| (shared.clone(), id.to_owned())),
        }
    }

    /// The least severe log level a request's call sends: for a 2026-07-28
    /// request the one it opts in to (none without); for a session, its
    /// level, with a session store as any replica last set it (read with
    /// the request's renewal of the session).
    fn log_level(&self, context: &RequestContext<RoleServer>) -> u8 {
        let modern = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= rmcp::model::ProtocolVersion::V_2026_07_28.as_str());
        if modern {
            // 2026-07-28 (SEP-2575/2577): logs only for a request that opts in
            // with `io.modelcontextprotocol/logLevel`, at or above that level.
            return match context.meta.log_level() {
                Some(level) => serde_json::to_value(level)
                    .ok()
                    .and_then(|v| v.as_str().map(severity))
                    .unwrap_or(u8::MAX),
                None => u8::MAX,
            };
        }
        let shared = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::session::Renewed>())
            .and_then(|renewed| renewed.log_level.as_deref());
        if let Some(level) = shared {
            self.session
                .log_level
                .store(severity(level), Ordering::Relaxed);
        }
        self.session.log_level.load(Ordering::Relaxed)
    }

    /// A handler for a new MCP session: same pipeline, its own log level,
    /// subscriptions and call slots.
    pub fn session(&self) -> Self {
        Self {
            pipeline: self.pipeline.clone(),
            session: Arc::new(Session::opened(&self.limits)),
            limits: self.limits,
            polling: self.polling.clone(),
            shared: self.shared.clone(),
            listeners: self.listeners.clone(),
            draining: self.draining.clone(),
            parking: self.parking.clone(),
            feeds: self.feeds.clone(),
        }
    }

    /// The shared catalog.
    pub fn catalog(&self) -> &Arc<ToolCatalog> {
        self.pipeline.catalog()
    }

    /// `tools/call` of a stateless client that can answer questions: the
    /// call's questions become input-required rounds ([`crate::rounds`]).
    async fn call_tool_in_rounds(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
        capabilities: Option<rmcp::model::ClientCapabilities>,
    ) -> Result<CallToolResponse, McpError> {
        let span = crate::trace::mcp_request("tools/call", &request.name, &context);
        let caller = span.in_scope(|| self.caller(&context));
        let owner = caller
            .principal
            .as_ref()
            .map(|p| p.sub.clone())
            .unwrap_or_default();
        let outlet = crate::rounds::Outlet {
            to: crate::rounds::Via::Peer(&context.peer),
            token: context.meta.get_progress_token(),
            capabilities,
        };
        let running = match &request.request_state {
            Some(state) => {
                if !self.parking.is_mine(state) {
                    // Another replica's call: the retry is relayed there.
                    let Some((shared, feeds)) = self.shared.as_ref().zip(self.feeds.as_deref())
                    else {
                        return Err(crate::rounds::unknown_state());
                    };
                    return crate::rounds::relay_round(
                        shared,
                        feeds,
                        &outlet,
                        state,
                        request.input_responses,
                        &owner,
                        &context.ct,
                    )
                    .await;
                }
                self.parking
                    .resume(state, request.input_responses.as_ref(), |parked| {
                        parked == owner
                    })
                    .await?
                    .0
            }
            None => {
                let (notices, queue) = Notices::new(
                    self.limits.notification_queue,
                    outlet.token.is_some(),
                    self.log_level(&context),
                );
                // The call outlives this request when it asks a question.
                let cancel = CancellationToken::new();
                let call = ToolCall {
                    caller,
                    name: request.name.to_string(),
                    arguments: request.arguments,
                    cancel: cancel.clone(),
                    slots: Some(self.session.calls.clone()),
                    notices: Some(notices),
                };
                let pipeline = self.pipeline.clone();
                let call = tokio::spawn(async move {
                    let result = pipeline.call_tool(call).await;
                    span.answered(&crate::call::error_type(&result));
                    result
                });
                crate::rounds::Running {
                    call,
                    queue,
                    cancel,
                }
            }
        };
        self.parking
            .drive(running, &outlet, &owner, &context.ct)
            .await
    }

    /// The pipeline every session calls through, for other front doors.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Who asks, from a request's context: the principal the HTTP front door
    /// established (or the local user), and the client's trace context.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Caller {
        let security = self.pipeline.security();
        // Only the HTTP transport puts the request's parts in the context.
        let parts = context.extensions.get::<http::request::Parts>();
        let front_door = if parts.is_some() {
            FrontDoor::Http
        } else {
            FrontDoor::Stdio
        };
        let caller = Caller::new(
            security.principal(&context.extensions),
            front_door,
            crate::trace::incoming_traceparent(context),
        )
        .with_decided(security.decided(&context.extensions));
        // Without tokens, each MCP session is its own principal for limits.
        let session = parts
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|id| id.to_str().ok());
        match session {
            Some(id) => caller.with_client(format!("session {id}")),
            None => caller,
        }
    }
}

impl ServerHandler for McpHandler {
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

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        traced("initialize", "", &context, async {
            // A session keeps its client's parameters for its whole life: a
            // refusal here ends the session before it holds anything.
            let limit = self.limits.max_initialize_bytes;
            if initialize_over(&request, limit) {
                INITIALIZE_REFUSED.hit(
                    limit,
                    "an initialize was refused: its parameters are larger than a session keeps",
                );
                return Err(McpError::invalid_params(
                    format!(
                        "the initialize parameters are more than {limit} bytes as JSON, the most a session keeps (max_initialize_bytes = {limit}): send smaller capabilities, or raise the setting"
                    ),
                    Some(json!({ "setting": "max_initialize_bytes", "limit": limit })),
                ));
            }
            context.peer.set_peer_info(request.clone());
            self.negotiate_initialize(&request)
        })
        .await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        traced("tools/list", "", &context, async {
            let principal = self.security().principal(&context.extensions);
            let tools = self.pipeline.tools(principal.as_ref()).await;
            Ok(ListToolsResult::with_all_items(tools))
        })
        .await
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
        self.catalog().tool(name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if crate::rounds::applies(context.protocol_version().as_ref()) {
            let capabilities = context.meta.client_capabilities();
            let can_answer = capabilities
                .as_ref()
                .is_some_and(|c| c.elicitation.is_some() || c.sampling.is_some());
            if request.request_state.is_some() || can_answer {
                return self
                    .call_tool_in_rounds(request, context, capabilities)
                    .await;
            }
        }
        // Whatever way the call ends, its SSE stream is forgotten.
        let _stream = self.polling.as_ref().map(|p| p.forget_when_done(&context));
        let progress_token = context.meta.get_progress_token();
        // Bounded: a client that reads slowly loses progress and log
        // notifications (counted, logged once), never the result.
        let (notices, queue) = Notices::new(
            self.limits.notification_queue,
            progress_token.is_some(),
            self.log_level(&context),
        );
        let forwarder = forward_notices(self.notifier(&context), progress_token, queue);
        let poll_timer = self.polling.as_ref().and_then(|p| p.watch(&context));
        let span = crate::trace::mcp_request("tools/call", &request.name, &context);
        let call = ToolCall {
            caller: span.in_scope(|| self.caller(&context)),
            name: request.name.to_string(),
            arguments: request.arguments,
            cancel: context.ct.clone(),
            slots: Some(self.session.calls.clone()),
            notices: Some(notices),
        };
        let call = async {
            let result = self.pipeline.call_tool(call).await;
            span.answered(&crate::call::error_type(&result));
            if let Some(timer) = poll_timer {
                timer.abort();
            }
            result
        };
        // Every notice is sent before the result.
        let (result, ()) = tokio::join!(call, forwarder);
        match result {
            Ok(result) => Ok(result.into()),
            Err(CallError::Failed(failure)) => Ok(tool_error(failure.message).into()),
            Err(CallError::Refused(refusal)) => Err(refusal.into()),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        traced("resources/list", "", &context, async {
            let mut page = self
                .pipeline
                .list_resources_page(request.and_then(|r| r.cursor))
                .await?;
            let principal = self.security().principal(&context.extensions);
            page.resources
                .retain(|r| self.pipeline.visible(principal.as_ref(), &r.uri, ""));
            Ok(page)
        })
        .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        traced("resources/templates/list", "", &context, async {
            let mut page = self
                .pipeline
                .list_templates_page(request.and_then(|r| r.cursor))
                .await?;
            let principal = self.security().principal(&context.extensions);
            page.resource_templates.retain(|t| {
                self.pipeline
                    .visible(principal.as_ref(), &t.uri_template, "")
            });
            Ok(page)
        })
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let span = crate::trace::mcp_request("resources/read", &request.uri, &context);
        let caller = span.in_scope(|| self.caller(&context));
        let result = self.pipeline.read_resource(&caller, &request.uri).await;
        span.answered(&json_rpc_error_type(&result));
        result.map(ReadResourceResponse::from)
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let uri = request.uri.clone();
        traced(
            "resources/subscribe",
            &uri,
            &context,
            self.subscribe_to(uri.clone(), &context),
        )
        .await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        traced("resources/unsubscribe", &request.uri, &context, async {
            if let Some((shared, id)) = self.shared_session(&context) {
                shared
                    .remove_subscription(id, &request.uri)
                    .await
                    .map_err(|error| {
                        McpError::internal_error(
                            error.to_string(),
                            Some(json!({ "setting": "session_store" })),
                        )
                    })?;
                self.unwatch_where_listened(shared, id, request.uri.clone())
                    .await;
                return Ok(());
            }
            if let Some(Some(watch)) = self.session.watches().remove(&request.uri) {
                watch.abort();
            }
            Ok(())
        })
        .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        traced("prompts/list", "", &context, async {
            let mut page = self
                .pipeline
                .list_prompts_page(request.and_then(|r| r.cursor))
                .await?;
            let principal = self.security().principal(&context.extensions);
            page.prompts
                .retain(|p| self.pipeline.visible(principal.as_ref(), &p.name, ""));
            Ok(page)
        })
        .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let span = crate::trace::mcp_request("prompts/get", &request.name, &context);
        let caller = span.in_scope(|| self.caller(&context));
        let result = self
            .pipeline
            .get_prompt(&caller, &request.name, request.arguments)
            .await;
        span.answered(&json_rpc_error_type(&result));
        result.map(GetPromptResponse::from)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        traced("completion/complete", "", &context, async {
            let caller = self.caller(&context);
            self.pipeline.complete(&caller, request).await
        })
        .await
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        traced("logging/setLevel", "", &context, async {
            let name = serde_json::to_value(request.level)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
            if let Some((shared, id)) = self.shared_session(&context) {
                // Every replica's calls of the session filter at this level.
                shared.set_log_level(id, &name).await.map_err(|error| {
                    McpError::internal_error(
                        error.to_string(),
                        Some(json!({ "setting": "session_store" })),
                    )
                })?;
            }
            self.session
                .log_level
                .store(severity(&name), Ordering::Relaxed);
            Ok(())
        })
        .await
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut changes = self.catalog().subscribe();
        changes.mark_unchanged();
        let peer = context.peer.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if peer.is_transport_closed() || peer.notify_tool_list_changed().await.is_err() {
                    break;
                }
            }
        });
        let mut surface = self.catalog().subscribe_surface();
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
        // Resource updates of at most `max_subscriptions_per_session` URIs
        // per listen stream (the first ones asked for); whether the caller
        // may see each is decided when the stream starts.
        let mut uris: Vec<String> = Vec::new();
        for uri in requested.resource_subscriptions.iter().flatten() {
            if uris.len() >= self.limits.max_subscriptions_per_session {
                SUBSCRIPTIONS_REFUSED.hit(
                    self.limits.max_subscriptions_per_session,
                    "a listen stream asked for more resource subscriptions than allowed; the rest are not honoured",
                );
                break;
            }
            if !uris.contains(uri) {
                uris.push(uri.clone());
            }
        }
        let mut accepted = SubscriptionFilter::builder()
            .tools_list_changed()
            .prompts_list_changed()
            .resources_list_changed();
        if !uris.is_empty() {
            accepted = accepted.resource_subscriptions(uris);
        }
        Some(accepted.build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        // The resources this stream hears of: watched for as long as it
        // lasts (stateless: on whichever replica the stream is).
        let _watches = self.watch_for_listen(&context).await;
        let mut changes = self.catalog().subscribe();
        changes.mark_unchanged();
        let mut surface = self.catalog().subscribe_surface();
        surface.mark_unchanged();
        let accepted = context.accepted().clone();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                () = self.draining.cancelled() => return Ok(()),
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

/// Whether `params`, as JSON, are more than `limit` bytes. Counting stops
/// just past the limit, so a huge value costs no more than a small one.
pub(crate) fn initialize_over(params: &InitializeRequestParams, limit: usize) -> bool {
    /// Counts what is written, failing once past `limit`.
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written = self.written.saturating_add(buf.len());
            if self.written > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, limit };
    // Parameters that were parsed from JSON serialize again; should they not,
    // they are refused too.
    serde_json::to_writer(&mut counter, params).is_err()
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
    fn initialize_parameters_are_measured_as_json_up_to_the_limit() {
        let params: InitializeRequestParams = serde_json::from_value(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"experimental": {"x": {"y": "é".repeat(100)}}},
            "clientInfo": {"name": "c", "version": "1"}
        }))
        .expect("initialize parameters");
        let size = serde_json::to_vec(&params).expect("JSON").len();
        assert!(size > 200, "two bytes per é: {size}");
        assert!(!initialize_over(&params, size));
        assert!(initialize_over(&params, size - 1));
        assert!(initialize_over(&params, 1));
    }

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
}
