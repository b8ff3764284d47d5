//! What the HTTP front door lets through to the MCP endpoint.
//!
//! [`guard`] sits in front of rmcp's Streamable HTTP service on `/mcp`. For a
//! `POST` with a JSON body it reads the body itself, within
//! `body_read_timeout` and `max_body_bytes`, so a client that trickles its body
//! cannot hold a connection and a task forever, and within
//! `max_body_bytes_in_flight` for all bodies together, so many clients
//! sending large bodies at once cannot exhaust memory; it answers a body that is not
//! JSON with a JSON-RPC parse error (-32700) and one that is not an MCP
//! JSON-RPC message with an invalid-request error (-32600), instead of rmcp's
//! bare 415; and it gives every `initialize` that would open a session one of
//! the `max_sessions` slots of [`PollingSessions`], answering 503 with a
//! JSON-RPC error naming the setting when none is left. Everything else (GET
//! for SSE, DELETE, content negotiation) goes to rmcp untouched.
//!
//! With an issuer, [`authenticate`] runs first (before any body is read): a
//! request without a valid bearer token is answered 401 with the
//! `WWW-Authenticate` challenge and audited as `unauthenticated`; the
//! [`Principal`] of one with a token goes into the request's extensions, and
//! the `Authorization` header is taken off the request, so nothing behind the
//! front door can pass the token on. A JSON-RPC handler cannot set the HTTP
//! status, so the policy's step-up answer is decided here: a `tools/call`,
//! `resources/read` or `prompts/get` the policy allows only with more scopes
//! is answered 403 `insufficient_scope` naming them (and audited as
//! `denied`). What the policy hides is left to the call path, which answers it
//! exactly as an unknown tool.
//!
//! A session belongs to the principal that opened it ([`Gate`]): a request
//! naming a session opened by another `sub` (or one the router does not know
//! the owner of) is answered 404 like an unknown session, so a leaked session
//! id does not let another user read its stream or resume its calls. With a
//! session store the owner is recorded there too (`session`), so this holds
//! on every replica, for sessions restored from the store as well.
//!
//! Connections and header timeouts are bounded below this, where connections
//! are accepted (`transport`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use serde_json::{Map, Value as Json, json};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::audit::{FrontDoor, Outcome as Audited};
use crate::auth::{Principal, RejectionKind};
use crate::call::{Decided, Security};
use crate::catalog::ToolCatalog;
use crate::config::ClientLimits;
use crate::limits::LimitLog;
use crate::policy::Decision;
use crate::polling::PollingSessions;

/// JSON-RPC: the body is not JSON.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: the JSON is not a valid request.
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC, implementation-defined server error: a bound of the router was hit.
pub const LIMIT_REACHED: i64 = -32000;

static SESSIONS_REFUSED: LimitLog = LimitLog::new("max_sessions");
static SLOW_BODIES: LimitLog = LimitLog::new("body_read_timeout");

static BODIES_REFUSED: LimitLog = LimitLog::new("max_body_bytes_in_flight");

/// What [`guard`] needs: the session slots, the body budget and the bounds.
#[derive(Debug)]
pub struct Admission {
    sessions: Arc<PollingSessions>,
    limits: ClientLimits,
    max_body_bytes: usize,
    bodies: BodyBudget,
    security: Security,
    catalog: Option<Arc<ToolCatalog>>,
}

impl Admission {
    /// Admission to the sessions of `sessions` under `limits`.
    pub fn new(
        sessions: Arc<PollingSessions>,
        limits: ClientLimits,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            sessions,
            limits,
            max_body_bytes,
            bodies: BodyBudget::new(limits.max_body_bytes_in_flight),
            security: Security::default(),
            catalog: None,
        }
    }

    /// The budget of request bodies being read (`max_body_bytes_in_flight`),
    /// which the REST front door's bodies count against too.
    pub(crate) fn bodies(&self) -> BodyBudget {
        self.bodies.clone()
    }

    /// Answers calls the policy of `security` allows only with more scopes
    /// with 403 (tools are looked up in `catalog` for their connector).
    pub fn with_security(mut self, security: Security, catalog: Arc<ToolCatalog>) -> Self {
        self.security = security;
        self.catalog = Some(catalog);
        self
    }

    /// The 403 for a request the policy allows only with more scopes, if it
    /// is one (`Err`); otherwise the decision made on a tool call, which the
    /// call's authorize stage then takes instead of deciding again.
    fn step_up(
        &self,
        parts: &http::request::Parts,
        message: &mut ClientJsonRpcMessage,
    ) -> Result<Option<Decided>, Box<Response>> {
        let Some(auth) = self.security.auth.as_ref() else {
            return Ok(None);
        };
        if !self.security.policy.is_enforcing() {
            return Ok(None);
        }
        let Some(principal) = parts.extensions.get::<Principal>() else {
            return Ok(None);
        };
        let JsonRpcMessage::Request(request) = message else {
            return Ok(None);
        };
        let (name, connector, entry) = match &request.request {
            ClientRequest::CallToolRequest(call) => {
                let name = call.params.name.to_string();
                let Some(resolved) = self.catalog.as_ref().and_then(|c| c.resolve(&name)) else {
                    return Ok(None);
                };
                (name, resolved.entry.connector.clone(), Some(resolved.entry))
            }
            ClientRequest::ReadResourceRequest(read) => {
                (read.params.uri.clone(), String::new(), None)
            }
            ClientRequest::GetPromptRequest(get) => (get.params.name.clone(), String::new(), None),
            _ => return Ok(None),
        };
        // A tool call's arguments as the call path will read them (canonical),
        // made so before they are read: by the decision when a condition reads
        // them, by the refusal's audit line when it logs them. Whether they fit
        // is the call path's to say.
        let make_canonical = |request: &mut ClientRequest| {
            if let (Some(entry), ClientRequest::CallToolRequest(call)) = (&entry, request) {
                let _ = crate::call::decode::canonical(entry, &mut call.params.arguments);
            }
        };
        let reads_args = self.security.policy.reads_args();
        if reads_args {
            make_canonical(&mut request.request);
        }
        let no_arguments = Map::new();
        let args = match &request.request {
            ClientRequest::CallToolRequest(call) => {
                call.params.arguments.as_ref().unwrap_or(&no_arguments)
            }
            _ => &no_arguments,
        };
        let started = std::time::Instant::now();
        let decision = self
            .security
            .decide(Some(principal), &name, &connector, args);
        if let Decision::InsufficientScope(scopes) = decision {
            if !reads_args && self.security.audit.log_arguments {
                make_canonical(&mut request.request);
            }
            let shown = match &request.request {
                ClientRequest::CallToolRequest(call) => self
                    .security
                    .audit
                    .arguments_text(call.params.arguments.as_ref()),
                _ => None,
            };
            self.security.audit(
                Some(principal),
                FrontDoor::Http,
                &name,
                &connector,
                Audited::Denied,
                started,
                None,
                shown.as_deref(),
            );
            crate::metrics::record_denial("insufficient_scope");
            return Err(Box::new(auth.insufficient_scope(scopes).into_response()));
        }
        let tool_call = matches!(request.request, ClientRequest::CallToolRequest(_));
        Ok(tool_call.then_some(Decided {
            tool: name,
            decision,
        }))
    }
}

/// The header naming an MCP session.
const SESSION_HEADER: &str = "mcp-session-id";

/// What [`authenticate`] needs: the security settings, and which principal
/// (`sub`) opened each session.
#[derive(Debug)]
pub struct Gate {
    security: Security,
    /// The front door it guards (`/mcp` or `/api/v1`), for the audit line.
    front_door: FrontDoor,
    owners: moka::sync::Cache<String, Arc<str>>,
    /// With a session store: where the owners of sessions opened on other
    /// replicas are found.
    shared: Option<crate::session::SharedSessions>,
}

impl Gate {
    /// The gate of `front_door`. Sessions are remembered while they can
    /// live: at most `max_sessions` of them, each until
    /// `session_idle_timeout` without a request.
    pub fn new(security: Security, front_door: FrontDoor, limits: &ClientLimits) -> Self {
        Self {
            security,
            front_door,
            owners: moka::sync::Cache::builder()
                .max_capacity(limits.max_sessions as u64)
                .time_to_idle(limits.session_idle_timeout)
                .build(),
            shared: None,
        }
    }

    /// Owners recorded in, and looked up from, `shared` too, so a session
    /// answers only its principal on every replica.
    pub fn with_store(mut self, shared: Option<crate::session::SharedSessions>) -> Self {
        self.shared = shared;
        self
    }

    /// Whether `sub` opened session `id`: this replica's memory first, then
    /// the store. `Err` is the answer when the store cannot tell.
    async fn owned_by(&self, id: &str, sub: &Arc<str>) -> Result<bool, Response> {
        if !crate::session::plausible_id(id) {
            // Not an id any replica hands out: nobody's session.
            return Ok(false);
        }
        if let Some(owner) = self.owners.get(id) {
            return Ok(owner == *sub);
        }
        let Some(shared) = &self.shared else {
            return Ok(false);
        };
        match shared.is_owner(id, sub).await {
            Ok(true) => {
                self.owners.insert(id.to_owned(), sub.clone());
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(error) => Err(crate::session::guard::unavailable(&error, Json::Null)),
        }
    }
}

/// 404 for a session that is not the caller's, as rmcp answers an unknown one.
fn not_your_session() -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        Json::Null,
        INVALID_REQUEST,
        "session not found: initialize a new session".to_owned(),
        Json::Null,
    )
}

/// The middleware on `/mcp` when an issuer is set (see the module docs).
pub async fn authenticate(
    State(gate): State<Arc<Gate>>,
    mut request: Request,
    next: Next,
) -> Response {
    let security = &gate.security;
    let Some(auth) = &security.auth else {
        return next.run(request).await;
    };
    let started = std::time::Instant::now();
    match auth.authenticate(request.headers()).await {
        Ok(principal) => {
            request.headers_mut().remove(header::AUTHORIZATION);
            let session = request
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let sub: Arc<str> = Arc::from(principal.sub.as_str());
            if let Some(id) = &session {
                match gate.owned_by(id, &sub).await {
                    Ok(true) => {}
                    Err(unavailable) => return unavailable,
                    Ok(false) => {
                        security.audit(
                            Some(&principal),
                            gate.front_door,
                            "",
                            "",
                            Audited::Denied,
                            started,
                            None,
                            None,
                        );
                        crate::metrics::record_denial("not_session_owner");
                        return not_your_session();
                    }
                }
            }
            let closing = request.method() == Method::DELETE;
            request.extensions_mut().insert(principal);
            let response = next.run(request).await;
            match (&session, closing) {
                (Some(id), true) if response.status().is_success() => gate.owners.invalidate(id),
                (None, _) => {
                    if let Some(id) = response
                        .headers()
                        .get(SESSION_HEADER)
                        .and_then(|v| v.to_str().ok())
                    {
                        if let Some(shared) = &gate.shared
                            && let Err(error) = shared.set_owner(id, &sub).await
                        {
                            // Other replicas then refuse the session: it
                            // fails closed.
                            tracing::warn!(%error, "the owner of a new session could not be recorded in the session store");
                        }
                        gate.owners.insert(id.to_owned(), sub);
                    }
                }
                _ => {}
            }
            response
        }
        Err(rejection) => {
            if let RejectionKind::InvalidToken(reason) = &rejection.kind {
                tracing::info!(%reason, "bearer token refused");
            }
            security.audit(
                None,
                gate.front_door,
                "",
                "",
                Audited::Unauthenticated,
                started,
                None,
                None,
            );
            crate::metrics::record_denial("unauthenticated");
            rejection.into_response()
        }
    }
}

/// The bytes all request bodies being read may hold together
/// (`max_body_bytes_in_flight`): one permit per byte, held until the request
/// has been handed on.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl BodyBudget {
    fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
        }
    }

    /// Takes `n` more bytes into `held`.
    fn take(&self, n: usize, held: &mut Option<OwnedSemaphorePermit>) -> Result<(), BodyError> {
        let busy = BodyError::Busy { total: self.total };
        let n = u32::try_from(n).map_err(|_| busy.clone())?;
        let permit = self
            .bytes
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| busy)?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A JSON-RPC error as an HTTP response with `status`.
pub fn rpc_error(status: StatusCode, id: Json, code: i64, message: String, data: Json) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if !data.is_null() {
        error["data"] = data;
    }
    let body = json!({ "jsonrpc": "2.0", "id": id, "error": error });
    (status, axum::Json(body)).into_response()
}

/// Why a request body could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum BodyError {
    #[error(
        "the router is reading as many request bodies as it allows ({total} bytes together, max_body_bytes_in_flight = {total}): retry in a moment"
    )]
    Busy { total: usize },
    #[error(
        "the request body is larger than {max} bytes, the most the router accepts (max_body_bytes = {max})"
    )]
    TooLarge { max: usize },
    #[error("the request body did not arrive within {}s (body_read_timeout = {}s)", .timeout.as_secs_f64(), .timeout.as_secs_f64())]
    TimedOut { timeout: Duration },
    #[error("the request body could not be read: {0}")]
    Read(String),
}

impl BodyError {
    fn into_response(self) -> Response {
        let (status, data) = match &self {
            Self::Busy { total } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "setting": "max_body_bytes_in_flight", "limit": total }),
            ),
            Self::TooLarge { max } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "setting": "max_body_bytes", "limit": max }),
            ),
            Self::TimedOut { timeout } => (
                StatusCode::REQUEST_TIMEOUT,
                json!({ "setting": "body_read_timeout", "limit_seconds": timeout.as_secs_f64() }),
            ),
            Self::Read(_) => (StatusCode::BAD_REQUEST, Json::Null),
        };
        let mut response = rpc_error(status, Json::Null, INVALID_REQUEST, self.to_string(), data);
        // The rest of the body is still on the wire: the connection cannot
        // carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// A body read whole, and its share of the body budget.
pub(crate) type ReadBody = (Vec<u8>, Option<OwnedSemaphorePermit>);

/// How much of a body over `max_body_bytes` is read to tell whether it is a
/// client's answer, and to which question: clients write an answer's `id`
/// before its `result`, in the first few dozen bytes.
const ANSWER_PREFIX_BYTES: usize = 4096;

/// The id of the client's answer a body over `max_body_bytes` begins with,
/// from at most its first [`ANSWER_PREFIX_BYTES`], read within `timeout`;
/// the rest is not read (the connection is closed after the 413).
async fn oversized_answer(body: Body, timeout: Duration) -> Option<rmcp::model::RequestId> {
    let scan = async {
        let mut scanner = crate::stdio::Scanner::default();
        let mut read = 0;
        let mut chunks = body.into_data_stream();
        while read < ANSWER_PREFIX_BYTES {
            let chunk = chunks.next().await?.ok()?;
            let take = chunk.len().min(ANSWER_PREFIX_BYTES - read);
            scanner.feed(&chunk[..take]);
            read += take;
            if let Some(id) = scanner.answer_so_far() {
                return Some(id);
            }
        }
        None
    };
    tokio::time::timeout(timeout, scan).await.ok().flatten()
}

/// Reads a whole body, at most `max` bytes, within `timeout` from now, taking
/// its bytes from `budget` as they arrive.
pub(crate) async fn read_body(
    body: Body,
    max: usize,
    timeout: Duration,
    budget: &BodyBudget,
) -> Result<ReadBody, BodyError> {
    let read = async {
        let mut collected = Vec::new();
        let mut held = None;
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
            if chunk.len() > max.saturating_sub(collected.len()) {
                return Err(BodyError::TooLarge { max });
            }
            budget.take(chunk.len(), &mut held)?;
            collected.extend_from_slice(&chunk);
        }
        Ok((collected, held))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut { timeout }))
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// Checks a JSON body before rmcp sees it; the error response when it is not
/// an MCP JSON-RPC message.
fn parse(body: &[u8]) -> Result<ClientJsonRpcMessage, Box<Response>> {
    match serde_json::from_slice::<ClientJsonRpcMessage>(body) {
        Ok(message) => Ok(message),
        Err(error) => Err(Box::new(match serde_json::from_slice::<Json>(body) {
            Err(e) => rpc_error(
                StatusCode::BAD_REQUEST,
                Json::Null,
                PARSE_ERROR,
                format!("parse error: the request body is not valid JSON ({e})"),
                Json::Null,
            ),
            Ok(value) => {
                let id = match value.get("id") {
                    Some(id @ (Json::String(_) | Json::Number(_))) => id.clone(),
                    _ => Json::Null,
                };
                let what = if value.is_array() {
                    "JSON-RPC batches are not accepted: send one message per request".to_owned()
                } else {
                    format!("not a valid MCP JSON-RPC message: {error}")
                };
                rpc_error(
                    StatusCode::BAD_REQUEST,
                    id,
                    INVALID_REQUEST,
                    format!("invalid request: {what}"),
                    Json::Null,
                )
            }
        })),
    }
}

/// The middleware on `/mcp` (see the module docs).
pub async fn guard(
    State(admission): State<Arc<Admission>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || !is_json(&request) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = admission.max_body_bytes;
    let timeout = admission.limits.body_read_timeout;
    if let Some(declared) = declared.filter(|&n| n > max as u64) {
        // A client's answer to a question of the router (elicitation,
        // sampling) ends the call that asked, as over stdio, rather than
        // leaving it to wait for its deadline.
        if parts.headers.contains_key(SESSION_HEADER)
            && let Some(id) = oversized_answer(body, timeout).await
        {
            let error = crate::stdio::too_large("the client's answer", declared, max);
            let answer = ClientJsonRpcMessage::error(error, Some(id));
            if let Ok(text) = serde_json::to_vec(&answer) {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
                parts
                    .extensions
                    .insert(crate::session::guard::MessageId(Json::Null));
                let relayed = next.run(Request::from_parts(parts, Body::from(text))).await;
                if !relayed.status().is_success() {
                    tracing::debug!(status = %relayed.status(), "the call's question could not be ended");
                }
            }
        }
        return BodyError::TooLarge { max }.into_response();
    }
    let (body, _budget) = match read_body(body, max, timeout, &admission.bodies).await {
        Ok(read) => read,
        Err(error) => {
            match &error {
                BodyError::TimedOut { .. } => SLOW_BODIES.hit(
                    format!("{}s", timeout.as_secs_f64()),
                    "a client did not send its request body in time; requests cut",
                ),
                BodyError::Busy { total } => BODIES_REFUSED.hit(
                    total,
                    "request bodies being read at once reached their total; requests refused",
                ),
                _ => false,
            };
            return error.into_response();
        }
    };
    let mut message = match parse(&body) {
        Ok(message) => message,
        Err(response) => return *response,
    };
    match admission.step_up(&parts, &mut message) {
        Err(response) => return *response,
        Ok(Some(decided)) => {
            parts.extensions.insert(decided);
        }
        Ok(None) => {}
    }
    // rmcp reads a session id that is not visible ASCII as none at all.
    let opens_session = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .is_none()
        && matches!(&message, JsonRpcMessage::Request(r)
            if matches!(r.request, ClientRequest::InitializeRequest(_)));
    let message_id = match &message {
        JsonRpcMessage::Request(r) => serde_json::to_value(&r.id).unwrap_or(Json::Null),
        _ => Json::Null,
    };
    if opens_session && let Some(error) = admission.sessions.store_unavailable() {
        // A session opened now could be served by no replica.
        return crate::session::guard::unavailable(&error, message_id);
    }
    parts
        .extensions
        .insert(crate::session::guard::MessageId(message_id));
    let slot = if opens_session {
        match admission.sessions.try_admit() {
            Some(slot) => Some(slot),
            None => {
                let max = admission.limits.max_sessions;
                SESSIONS_REFUSED.hit(
                    max,
                    "the router has as many MCP sessions as it allows; new sessions refused",
                );
                let id = match &message {
                    JsonRpcMessage::Request(r) => serde_json::to_value(&r.id).unwrap_or(Json::Null),
                    _ => Json::Null,
                };
                let mut response = rpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    id,
                    LIMIT_REACHED,
                    format!(
                        "the router has {max} MCP sessions open, the most it allows (max_sessions = {max}): retry later, or close sessions that are no longer used (HTTP DELETE with their Mcp-Session-Id)"
                    ),
                    json!({ "setting": "max_sessions", "limit": max }),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return response;
            }
        }
    } else {
        None
    };
    let request = Request::from_parts(parts, Body::from(body));
    match slot {
        // The session rmcp creates while serving it holds this slot.
        Some(slot) => PollingSessions::admitting(slot, next.run(request)).await,
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> Json {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON body")
    }

    #[tokio::test]
    async fn truncated_json_is_a_json_rpc_parse_error() {
        let response =
            *parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/li"#).expect_err("truncated");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], PARSE_ERROR, "{body}");
        assert_eq!(body["id"], Json::Null);
    }

    #[tokio::test]
    async fn json_that_is_no_message_is_an_invalid_request_with_its_id() {
        let response = *parse(br#"{"jsonrpc":"2.0","id":7,"params":{}}"#)
            .expect_err("neither a request nor a response");
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], INVALID_REQUEST, "{body}");
        assert_eq!(body["id"], 7);
        let response = *parse(b"[1,2]").expect_err("batch");
        let body = body_json(response).await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("batches"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_trickled_body_is_cut_at_the_body_read_timeout() {
        let (tx, rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        let body = Body::from_stream(rx);
        let started = std::time::Instant::now();
        let keep = tx; // never sends, never closes
        let error = read_body(
            body,
            1024,
            Duration::from_millis(100),
            &BodyBudget::new(4096),
        )
        .await
        .expect_err("times out");
        assert!(matches!(error, BodyError::TimedOut { .. }), "{error}");
        assert!(error.to_string().contains("body_read_timeout"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(keep);
    }

    #[tokio::test]
    async fn bodies_together_stay_within_the_budget_until_handed_on() {
        let budget = BodyBudget::new(100);
        let (first, held) = read_body(
            Body::from(vec![b'a'; 60]),
            1024,
            Duration::from_secs(5),
            &budget,
        )
        .await
        .expect("fits the budget");
        assert_eq!(first.len(), 60);
        let error = read_body(
            Body::from(vec![b'b'; 60]),
            1024,
            Duration::from_secs(5),
            &budget,
        )
        .await
        .expect_err("60 + 60 bytes are over a budget of 100");
        assert!(
            error.to_string().contains("max_body_bytes_in_flight = 100"),
            "{error}"
        );
        drop(held);
        assert!(
            read_body(
                Body::from(vec![b'c'; 60]),
                1024,
                Duration::from_secs(5),
                &budget
            )
            .await
            .is_ok(),
            "the first body's bytes are given back"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_naming_the_setting() {
        let body = Body::from(vec![b'x'; 2048]);
        let error = read_body(body, 1024, Duration::from_secs(5), &BodyBudget::new(4096))
            .await
            .expect_err("too large");
        assert!(
            error.to_string().contains("max_body_bytes = 1024"),
            "{error}"
        );
    }
}
