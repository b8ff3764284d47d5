//! The REST front door: the router's tools over plain HTTP under `/api/v1`,
//! for callers that speak no MCP (scripts, CI jobs, services).
//!
//! ```text
//! GET  /api/v1/tools          the tools this caller may use
//! POST /api/v1/tools/{name}   call one: body = arguments, 200 = result envelope
//! GET  /api/v1/openapi.json   OpenAPI 3.1 of exactly those tools (ETag, 304)
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

mod openapi;
mod problem;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::model::{CallToolResult, Tool};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::call::{CallError, Caller, FailureKind, Pipeline, Refusal, ToolCall};
use problem::Problem;

/// The longest tool name looked up; anything longer is unknown.
const MAX_TOOL_NAME: usize = 256;

/// What the handlers share.
#[derive(Clone)]
struct Rest {
    pipeline: Pipeline,
    max_body_bytes: usize,
    body_read_timeout: Duration,
}

/// The `/api/v1` routes over `pipeline`: bodies of at most `max_body_bytes`,
/// read within `body_read_timeout`. Mount them behind the same
/// authentication layer as `/mcp`.
pub fn routes(
    pipeline: Pipeline,
    max_body_bytes: usize,
    body_read_timeout: Duration,
) -> axum::Router {
    axum::Router::new()
        .route("/tools", get(list))
        .route("/tools/{name}", post(call))
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
            max_body_bytes,
            body_read_timeout,
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
    Caller::new(principal, traceparent)
}

/// The tools `caller` may use, each with its connector's name.
async fn visible_tools(rest: &Rest, caller: &Caller) -> Vec<(Tool, String)> {
    let catalog = rest.pipeline.catalog();
    rest.pipeline
        .tools(caller.principal.as_ref())
        .await
        .into_iter()
        .filter_map(|tool| {
            let connector = catalog.resolve(&tool.name)?.entry.connector.clone();
            Some((tool, connector))
        })
        .collect()
}

/// `GET /tools`.
async fn list(State(rest): State<Rest>, request: Request) -> Response {
    let caller = caller(&rest, &request);
    let tools: Vec<Json> = visible_tools(&rest, &caller)
        .await
        .into_iter()
        .map(|(tool, connector)| {
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
        })
        .collect();
    axum::Json(json!({ "tools": tools })).into_response()
}

/// `GET /openapi.json`: the document for this caller's tools, with a strong
/// `ETag` (a hash of the bytes) and `304` for a matching `If-None-Match`.
/// Built per request from the live catalog, so it changes with it.
async fn openapi_document(State(rest): State<Rest>, request: Request) -> Response {
    let caller = caller(&rest, &request);
    let tools = visible_tools(&rest, &caller).await;
    let security = rest.pipeline.security();
    let site = openapi::Site {
        issuer: security.auth.as_ref().map(|a| a.settings().issuer.clone()),
        scopes: security.policy.scopes_supported(),
    };
    let body = openapi::document(&tools, &site).to_string();
    let etag = etag(body.as_bytes());
    if matches(request.headers(), &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "private, no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// A strong entity tag for `bytes`.
fn etag(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
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

/// Whether `name` could be a tool's name at all; anything else is answered
/// as unknown without reaching the pipeline.
fn plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
}

/// `POST /tools/{name}`.
async fn call(State(rest): State<Rest>, Path(name): Path<String>, request: Request) -> Response {
    if !plausible_name(&name) {
        return unknown_tool(&name).into_response();
    }
    let caller = caller(&rest, &request);
    let arguments = match arguments(&rest, request).await {
        Ok(arguments) => arguments,
        Err(problem) => return problem.into_response(),
    };
    // The connector's call is dropped when the client goes away: this future
    // is dropped with the connection, and the guard cancels the call.
    let cancel = CancellationToken::new();
    let _guard = cancel.clone().drop_guard();
    let call = ToolCall {
        caller,
        name: name.clone(),
        arguments: Some(arguments),
        cancel,
        slots: None,
        notices: None,
    };
    match rest.pipeline.call_tool(call).await {
        Ok(result) if result.is_error == Some(true) => tool_error(&name, &result).into_response(),
        Ok(result) => axum::Json(json!({
            "result": result.structured_content,
            "content": result.content,
            "isError": false,
        }))
        .into_response(),
        Err(CallError::Refused(refusal)) => refused(&rest, refusal).into_response(),
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
                problem = problem.with_header(header::RETRY_AFTER, "1");
            }
            problem.into_response()
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
        Refusal::InsufficientScope { name, scopes } => {
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
    }
}

/// The arguments in `request`'s body: a JSON object (an empty body is no
/// arguments), of at most `max_body_bytes`, sent as `application/json`.
async fn arguments(rest: &Rest, request: Request) -> Result<Map<String, Json>, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the body is larger than the router accepts (max_body_bytes = {})",
                rest.max_body_bytes
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > rest.max_body_bytes as u64) {
        return Err(too_large());
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
            "send the arguments as a JSON object with Content-Type: application/json",
        )
        .with_header(HeaderName::from_static("accept-post"), "application/json")
    };
    if json_type == Some(false) {
        return Err(unsupported());
    }
    let body = read_body(rest, request.into_body())
        .await
        .map_err(|e| match e {
            BodyRead::TooLarge => too_large(),
            BodyRead::Slow => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "slow_body",
                format!(
                    "the body was not sent within body_read_timeout ({}s)",
                    rest.body_read_timeout.as_secs_f64()
                ),
            ),
        })?;
    if body.is_empty() {
        return Ok(Map::new());
    }
    if json_type != Some(true) {
        return Err(unsupported());
    }
    match serde_json::from_slice::<Json>(&body) {
        Ok(Json::Object(arguments)) => Ok(arguments),
        Ok(other) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "arguments",
            format!(
                "the body must be a JSON object of the tool's arguments, not {}",
                kind_of(&other)
            ),
        )),
        Err(error) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "arguments",
            format!("the body is not valid JSON: {error}"),
        )),
    }
}

/// Why a body could not be read.
enum BodyRead {
    TooLarge,
    Slow,
}

/// Reads `body`, at most `max_body_bytes` within `body_read_timeout`.
async fn read_body(rest: &Rest, body: Body) -> Result<Bytes, BodyRead> {
    match tokio::time::timeout(
        rest.body_read_timeout,
        axum::body::to_bytes(body, rest.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        // Over the limit, or broken off: either way nothing to call with.
        Ok(Err(_)) => Err(BodyRead::TooLarge),
        Err(_) => Err(BodyRead::Slow),
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
        let tag = etag(b"doc");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{tag}")).unwrap(),
        );
        assert!(matches(&headers, &tag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!matches(&headers, &tag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches(&headers, &tag));
    }

    #[test]
    fn json_content_types_with_parameters_are_json() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
    }
}
