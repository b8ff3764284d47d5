//! The REST front door: the router's tools over plain HTTP under `/api/v1`,
//! for callers that speak no MCP (scripts, CI jobs, services).
//!
//! ```text
//! GET  /api/v1/tools           the tools this caller may use
//! POST /api/v1/tools/{name}    call one: body = arguments, 200 = result envelope
//!                              (a server-streaming tool streams SSE events when
//!                              the caller accepts text/event-stream: [`stream`])
//! POST /api/v1/batch           several calls at once, answered in order ([`batch`])
//! GET  /api/v1/resources?uri=  read a resource      ([`surface`])
//! GET  /api/v1/prompts/{name}  get a prompt, its arguments as the query
//! GET  /api/v1/openapi.json    OpenAPI 3.1 of exactly those tools (ETag, 304)
//! ```
//!
//! Like the MCP handler this only translates: an HTTP request becomes a
//! [`ToolCall`] for the [`Pipeline`] (which authorizes, limits, decodes,
//! invokes, shapes and audits), and the outcome becomes either the envelope
//! `{"result": <structuredContent or null>, "content": [...], "isError": false}`
//! or an RFC 9457 problem ([`problem`]) whose status comes from the one table
//! of gRPC status meanings ([`crate::call::status::http_status`]).
//! Authentication is the same `admission::authenticate` layer as `/mcp`,
//! mounted in `transport`; here the principal is read from the request's
//! extensions, exactly as the MCP side does.
//!
//! The front door is inside the same bounds as MCP over HTTP ([`Bounds`]):
//! request bodies are read within `max_body_bytes` and `body_read_timeout`
//! and count against the `max_body_bytes_in_flight` budget shared with
//! `/mcp`; a REST request is a session of its own for the limit stage (as a
//! stateless MCP request is), so its calls hold `max_calls_per_session` slots
//! and a batch runs at most that many at once. The OpenAPI document is
//! cached per catalog version and set of visible tools ([`openapi::Documents`]).

mod batch;
mod openapi;
mod problem;
mod stream;
mod surface;

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::model::{CallToolResult, Tool};
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

use crate::admission::{BodyBudget, BodyError, read_body};
use crate::auth::Principal;
use crate::call::{CallError, CallSlots, Caller, FailureKind, Pipeline, Refusal, ToolCall};
use crate::config::ClientLimits;
use crate::limits::LimitLog;
use problem::Problem;

/// The longest tool or prompt name looked up; anything longer is unknown.
const MAX_TOOL_NAME: usize = 256;

static BODIES_REFUSED: LimitLog = LimitLog::new("max_body_bytes_in_flight");
static SLOW_BODIES: LimitLog = LimitLog::new("body_read_timeout");

/// The bounds the REST front door shares with MCP over HTTP.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Largest request body (`max_body_bytes`).
    pub max_body_bytes: usize,
    /// The client limits: `body_read_timeout`, `max_calls_per_session`,
    /// `notification_queue`, `max_batch_calls`.
    pub limits: ClientLimits,
    /// The bytes of request bodies being read at once, shared with `/mcp`
    /// (`max_body_bytes_in_flight`).
    pub bodies: BodyBudget,
}

/// What the handlers share.
#[derive(Clone)]
struct Rest {
    pipeline: Pipeline,
    bounds: Arc<Bounds>,
    documents: Arc<openapi::Documents>,
}

impl Rest {
    /// The call slots of one REST request: like a stateless MCP request, it
    /// is a session of its own (`max_calls_per_session`).
    fn slots(&self) -> CallSlots {
        CallSlots::new(self.bounds.limits.max_calls_per_session)
    }
}

/// The `/api/v1` routes over `pipeline`, within `bounds`. Mount them behind
/// the same authentication layer as `/mcp`.
pub fn routes(pipeline: Pipeline, bounds: Bounds) -> axum::Router {
    let documents = Arc::new(openapi::Documents::new(pipeline.catalog()));
    axum::Router::new()
        .route("/tools", get(list))
        .route("/tools/{name}", post(call))
        .route("/batch", post(batch::run))
        .route("/resources", get(surface::resource))
        .route("/prompts/{name}", get(surface::prompt))
        .route("/openapi.json", get(openapi_document))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint: the API is described at /api/v1/openapi.json",
            )
        })
        .with_state(Rest {
            pipeline,
            bounds: Arc::new(bounds),
            documents,
        })
}

/// Outside the authentication layer: its 401 / 403 (a plain-text sentence
/// and `WWW-Authenticate`) becomes a problem document with the same status,
/// sentence and headers, so every REST error has one shape.
pub async fn auth_problems(request: Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(problem::PROBLEM_JSON.as_bytes()));
    if !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let sentence = axum::body::to_bytes(body, 16 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = if status == StatusCode::UNAUTHORIZED {
        "unauthenticated"
    } else {
        "insufficient_scope"
    };
    let mut problem = Problem::new(status, code, sentence);
    if let Some(challenge) = parts
        .headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
    {
        problem = problem.with_header(header::WWW_AUTHENTICATE, challenge);
    }
    problem.into_response()
}

/// The caller of `request`, as the MCP side sees it (see
/// [`crate::call::Security::principal`]): the authenticated principal; the
/// local user without an issuer; nobody when an issuer is set and none was
/// established.
fn caller(rest: &Rest, request: &Request) -> Caller {
    let principal = match (
        request.extensions().get::<Principal>().cloned(),
        &rest.pipeline.security().auth,
    ) {
        (Some(principal), _) => Some(principal),
        (None, Some(_)) => None,
        (None, None) => Some(Principal::local()),
    };
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    Caller::new(principal, crate::audit::FrontDoor::Rest, traceparent)
}

/// A tool `caller` may use, with its connector's name.
#[derive(Debug, Clone)]
struct Offered {
    tool: Tool,
    connector: String,
    /// A server-streaming method: it can answer with SSE events.
    streaming: bool,
}

/// The tools `caller` may use.
async fn visible_tools(rest: &Rest, caller: &Caller) -> Vec<Offered> {
    let catalog = rest.pipeline.catalog();
    rest.pipeline
        .tools(caller.principal.as_ref())
        .await
        .into_iter()
        .filter_map(|tool| {
            let entry = catalog.resolve(&tool.name)?.entry;
            Some(Offered {
                connector: entry.connector.clone(),
                streaming: entry.server_streaming(),
                tool,
            })
        })
        .collect()
}

/// `GET /tools`.
async fn list(State(rest): State<Rest>, request: Request) -> Response {
    let caller = caller(&rest, &request);
    let tools: Vec<Json> = visible_tools(&rest, &caller)
        .await
        .into_iter()
        .map(
            |Offered {
                 tool, connector, ..
             }| {
                let mut entry = json!({
                    "name": tool.name,
                    "connector": connector,
                    "inputSchema": *tool.input_schema,
                });
                if let Some(title) = &tool.title {
                    entry["title"] = json!(title);
                }
                if let Some(description) = &tool.description {
                    entry["description"] = json!(description);
                }
                if let Some(output) = &tool.output_schema {
                    entry["outputSchema"] = json!(**output);
                }
                if let Some(annotations) = &tool.annotations
                    && let Ok(value) = serde_json::to_value(annotations)
                {
                    entry["annotations"] = value;
                }
                entry
            },
        )
        .collect();
    axum::Json(json!({ "tools": tools })).into_response()
}

/// `GET /openapi.json`: the document for this caller's tools, with a strong
/// `ETag` (a hash of the bytes) and `304` for a matching `If-None-Match`.
/// Built once per catalog version and set of visible tools, then served
/// from the cache.
async fn openapi_document(State(rest): State<Rest>, request: Request) -> Response {
    let caller = caller(&rest, &request);
    // The version is read before the tools: a change in between is caught
    // by the next request.
    let version = rest.documents.version();
    let tools = visible_tools(&rest, &caller).await;
    let security = rest.pipeline.security();
    let document = rest.documents.get_or_build(version, &tools, || {
        let site = openapi::Site {
            issuer: security.auth.as_ref().map(|a| a.settings().issuer.clone()),
            scopes: security.policy.scopes_supported(),
            max_batch_calls: rest.bounds.limits.max_batch_calls,
        };
        openapi::document(&tools, &site).to_string()
    });
    if matches(request.headers(), &document.etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, document.etag.clone())],
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::ETAG, document.etag.clone()),
            (header::CACHE_CONTROL, "private, no-cache".to_owned()),
        ],
        document.body.clone(),
    )
        .into_response()
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

/// The answer to a tool that is not offered, or that the policy hides from
/// the caller: the same bytes either way.
fn unknown_tool(name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "unknown_tool",
        format!(
            "no tool named {name:?} is offered: GET /api/v1/tools lists the tools you may call"
        ),
    )
}

/// Whether `name` could be a tool's (or prompt's) name at all; anything else
/// is answered as unknown without reaching the pipeline.
fn plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
}

/// The name in a `{name}` path segment; one that does not decode (not
/// UTF-8) is no name at all.
fn path_name(path: Result<Path<String>, PathRejection>) -> String {
    path.map(|Path(name)| name).unwrap_or_default()
}

/// Whether the caller asked for an event stream (`Accept: text/event-stream`).
fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// `POST /tools/{name}`.
async fn call(
    State(rest): State<Rest>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let name = path_name(path);
    if !plausible_name(&name) {
        return unknown_tool(&name).into_response();
    }
    let caller = caller(&rest, &request);
    let events = wants_events(request.headers());
    let arguments = match read_json(&rest, request).await.and_then(arguments_of) {
        Ok(arguments) => arguments,
        Err(problem) => return problem.into_response(),
    };
    // The connector's call is dropped when the client goes away: this future
    // (or the event stream) is dropped with the connection, and the guard
    // cancels the call.
    let cancel = CancellationToken::new();
    let call = ToolCall {
        caller,
        name: name.clone(),
        arguments: Some(arguments),
        cancel: cancel.clone(),
        slots: Some(rest.slots()),
        notices: None,
    };
    // Whether the tool streams is the catalog's to say: until every
    // connector has answered (at most the startup deadline, as the call
    // itself waits) a tool may not be known yet, and an event stream asked
    // for would be answered as a plain call.
    rest.pipeline.catalog().wait_ready().await;
    let streaming = rest
        .pipeline
        .catalog()
        .resolve(&name)
        .is_some_and(|r| r.entry.server_streaming());
    if events && streaming {
        return stream::respond(&rest, call, cancel.drop_guard()).await;
    }
    let _guard = cancel.drop_guard();
    match reply(&rest, &name, rest.pipeline.call_tool(call).await) {
        Ok(body) => axum::Json(body).into_response(),
        Err(problem) => problem.into_response(),
    }
}

/// The 200 body of a call that returned `result`.
fn envelope(result: &CallToolResult) -> Json {
    json!({
        "result": result.structured_content,
        "content": result.content,
        "isError": false,
    })
}

/// How REST answers a tool call that ended with `outcome`: the envelope, or
/// the problem with its status.
fn reply(
    rest: &Rest,
    name: &str,
    outcome: Result<CallToolResult, CallError>,
) -> Result<Json, Problem> {
    match outcome {
        Ok(result) if result.is_error == Some(true) => Err(tool_error(name, &result)),
        Ok(result) => Ok(envelope(&result)),
        Err(CallError::Refused(refusal)) => Err(refused(rest, refusal)),
        Err(CallError::Failed(failure)) => {
            let (status, code) = match failure.kind {
                FailureKind::Arguments => (StatusCode::BAD_REQUEST, "arguments"),
                FailureKind::Limited => (StatusCode::TOO_MANY_REQUESTS, "limited"),
                FailureKind::Unavailable | FailureKind::Cancelled => {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
                FailureKind::Malformed => (StatusCode::BAD_GATEWAY, "malformed"),
                FailureKind::Connector(code) => {
                    let status = StatusCode::from_u16(crate::call::status::http_status(code))
                        .unwrap_or(StatusCode::BAD_GATEWAY);
                    let name = match status {
                        StatusCode::GATEWAY_TIMEOUT => "deadline",
                        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                        StatusCode::TOO_MANY_REQUESTS => "limited",
                        StatusCode::BAD_REQUEST => "arguments",
                        _ => "tool_error",
                    };
                    (status, name)
                }
            };
            let mut problem = Problem::new(status, code, failure.message);
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) {
                // A rate limit says when it allows the call again.
                let secs = failure.retry_after.map_or(1, |d| d.as_secs().max(1));
                problem = problem.with_header(header::RETRY_AFTER, &secs.to_string());
            }
            Err(problem)
        }
    }
}

/// A result the tool itself marked as an error: 502, its text as `detail`,
/// its content blocks kept.
fn tool_error(name: &str, result: &CallToolResult) -> Problem {
    let text: Vec<&str> = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect();
    let detail = if text.is_empty() {
        format!("{name} reported an error")
    } else {
        text.join("\n")
    };
    Problem::new(StatusCode::BAD_GATEWAY, "tool_error", detail)
        .with_member("content", json!(result.content))
}

/// A call the authorize stage refused.
fn refused(rest: &Rest, refusal: Refusal) -> Problem {
    match refusal {
        Refusal::Unknown { name, .. } => unknown_tool(&name),
        Refusal::Disabled { name, connector } => Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_tool",
            format!(
                "tool {name:?} is not offered: connector {connector:?} hides it, as its configuration turns such tools off; GET /api/v1/tools lists the tools available now"
            ),
        ),
        Refusal::InsufficientScope { name, scopes } => insufficient_scope(rest, &name, scopes),
    }
}

/// 403 for `name`, which the policy allows only with `scopes`; with an
/// issuer, the same step-up challenge as `/mcp`.
fn insufficient_scope(rest: &Rest, name: &str, scopes: Vec<String>) -> Problem {
    let detail = format!("{name} needs a token with the scopes: {}", scopes.join(" "));
    let problem = Problem::new(StatusCode::FORBIDDEN, "insufficient_scope", detail);
    match &rest.pipeline.security().auth {
        Some(auth) => problem.with_header(
            header::WWW_AUTHENTICATE,
            &auth.insufficient_scope(scopes).challenge(),
        ),
        None => problem,
    }
}

/// The arguments of a call: a JSON object, or none for an empty body.
fn arguments_of(body: Option<Json>) -> Result<Map<String, Json>, Problem> {
    match body {
        None => Ok(Map::new()),
        Some(Json::Object(arguments)) => Ok(arguments),
        Some(other) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "arguments",
            format!(
                "the body must be a JSON object of the tool's arguments, not {}",
                kind_of(&other)
            ),
        )),
    }
}

/// The JSON in `request`'s body (`None` for an empty one), sent as
/// `application/json`, of at most `max_body_bytes`, read within
/// `body_read_timeout` and within the body budget shared with `/mcp`
/// (`max_body_bytes_in_flight`), whose share is given back once the body is
/// parsed.
async fn read_json(rest: &Rest, request: Request) -> Result<Option<Json>, Problem> {
    let max = rest.bounds.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(body_problem(BodyError::TooLarge { max }));
    }
    let json_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(is_json);
    let unsupported = || {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
        .with_header(HeaderName::from_static("accept-post"), "application/json")
    };
    if json_type == Some(false) {
        return Err(unsupported());
    }
    let timeout = rest.bounds.limits.body_read_timeout;
    let (body, _share) = read_body(request.into_body(), max, timeout, &rest.bounds.bodies)
        .await
        .map_err(|error| {
            match &error {
                BodyError::TimedOut { .. } => SLOW_BODIES.hit(
                    format!("{}s", timeout.as_secs_f64()),
                    "a REST client did not send its request body in time; requests cut",
                ),
                BodyError::Busy { total } => BODIES_REFUSED.hit(
                    total,
                    "request bodies being read at once reached their total; REST requests refused",
                ),
                _ => false,
            };
            body_problem(error)
        })?;
    if body.is_empty() {
        return Ok(None);
    }
    if json_type != Some(true) {
        return Err(unsupported());
    }
    serde_json::from_slice::<Json>(&body)
        .map(Some)
        .map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "arguments",
                format!("the body is not valid JSON: {error}"),
            )
        })
}

/// The problem for a body that could not be read. The rest of such a body
/// may still be on the wire: the connection is closed.
fn body_problem(error: BodyError) -> Problem {
    let (status, code) = match &error {
        BodyError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        BodyError::TimedOut { .. } => (StatusCode::REQUEST_TIMEOUT, "slow_body"),
        BodyError::Read(_) => (StatusCode::BAD_REQUEST, "unreadable_body"),
    };
    let problem =
        Problem::new(status, code, error.to_string()).with_header(header::CONNECTION, "close");
    match error {
        BodyError::Busy { .. } => problem.with_header(header::RETRY_AFTER, "1"),
        _ => problem,
    }
}

/// Whether a `Content-Type` is JSON (`application/json`, with parameters).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// What JSON value `value` is, for a message.
fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_plausible_names_reach_the_pipeline() {
        assert!(plausible_name("calculator_add"));
        assert!(plausible_name("code_analysis_scan"));
        for name in [
            "",
            "..",
            "a/b",
            "a b",
            "añadir",
            ".hidden",
            &"x".repeat(300),
        ] {
            assert!(!plausible_name(name), "{name:?}");
        }
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let tag = "\"abc\"";
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"other\", W/\"abc\""),
        );
        assert!(matches(&headers, tag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!matches(&headers, tag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches(&headers, tag));
    }

    #[test]
    fn json_content_types_with_parameters_are_json() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
    }

    #[test]
    fn an_event_stream_is_sent_only_when_accepted() {
        let mut headers = HeaderMap::new();
        assert!(!wants_events(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_events(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, Text/Event-Stream;q=0.9"),
        );
        assert!(wants_events(&headers));
    }

    #[test]
    fn a_body_the_budget_cannot_take_is_503_naming_the_setting() {
        let problem = body_problem(BodyError::Busy { total: 100 });
        let body = problem.body();
        assert_eq!(body["status"], 503);
        assert_eq!(body["code"], "busy");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("max_body_bytes_in_flight = 100")),
            "{body}"
        );
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
