//! Resources and prompts over REST, through the same authorize stage, audit
//! and connectors as `resources/read` and `prompts/get` over MCP:
//!
//! ```text
//! GET /api/v1/resources?uri=<prefix>+<uri>        → {"contents": [...]}
//! GET /api/v1/prompts/{name}?<argument>=<value>…  → {"description", "messages": [...]}
//! ```
//!
//! The answers are the MCP results as JSON. What the caller may not see is
//! answered 404 exactly like what does not exist; a token without the
//! scopes a rule asks for gets 403 with the step-up challenge; a connector's
//! refusal keeps its meaning (400 for bad arguments, 404 for not found, 502
//! otherwise), with the same message as over MCP.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::ErrorData as McpError;
use rmcp::model::ErrorCode;
use serde_json::{Map, Value as Json};

use super::problem::Problem;
use super::{Rest, caller, insufficient_scope, path_name, plausible_name};
use crate::call::Surface;
use crate::call::authorize::unknown;

/// The most arguments a prompt is given.
const MAX_PROMPT_ARGUMENTS: usize = 64;

/// `GET /resources?uri=`.
pub(super) async fn resource(State(rest): State<Rest>, request: Request) -> Response {
    let caller = caller(&rest, &request);
    let uris: Vec<String> = query(&request)
        .into_iter()
        .filter(|(key, _)| key == "uri")
        .map(|(_, value)| value)
        .collect();
    let uri = match uris.as_slice() {
        [uri] if !uri.is_empty() => uri,
        _ => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "arguments",
                "name the resource once, as the query parameter uri (percent-encoded): GET /api/v1/resources?uri=<prefix>+<uri>",
            )
            .into_response();
        }
    };
    match rest.pipeline.read_resource(&caller, uri).await {
        Ok(result) => axum::Json(result).into_response(),
        Err(error) => problem(&rest, Surface::Resource, uri, error).into_response(),
    }
}

/// `GET /prompts/{name}`, the prompt's arguments as the query.
pub(super) async fn prompt(
    State(rest): State<Rest>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let name = path_name(path);
    if !plausible_name(&name) {
        return problem(
            &rest,
            Surface::Prompt,
            &name,
            unknown(Surface::Prompt, &name),
        )
        .into_response();
    }
    let caller = caller(&rest, &request);
    let mut arguments = Map::new();
    for (key, value) in query(&request) {
        if arguments.len() == MAX_PROMPT_ARGUMENTS {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "arguments",
                format!("a prompt takes at most {MAX_PROMPT_ARGUMENTS} arguments"),
            )
            .into_response();
        }
        if arguments.insert(key.clone(), Json::String(value)).is_some() {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "arguments",
                format!("the argument {key:?} is given more than once: give each once"),
            )
            .into_response();
        }
    }
    match rest
        .pipeline
        .get_prompt(&caller, &name, Some(arguments))
        .await
    {
        Ok(result) => axum::Json(result).into_response(),
        Err(error) => problem(&rest, Surface::Prompt, &name, error).into_response(),
    }
}

/// The query's parameters of `request`.
fn query(request: &Request) -> Vec<(String, String)> {
    decode_query(request.uri().query().unwrap_or_default())
}

/// A query's parameters, percent-decoded. A `+` stays a `+` (it joins a
/// connector's prefix to a resource URI, `docs+file:///a`); a space is `%20`.
fn decode_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.replace('+', "%2B").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The problem for a read or get of `name` that ended with `error`.
fn problem(rest: &Rest, surface: Surface, name: &str, error: McpError) -> Problem {
    let code = match surface {
        Surface::Resource => "unknown_resource",
        _ => "unknown_prompt",
    };
    // Unknown and hidden alike: the pipeline's own "unknown" answer.
    if error == unknown(surface, name) {
        let list = match surface {
            Surface::Resource => "resources/list over MCP lists the resources available",
            _ => "prompts/list over MCP lists the prompts available",
        };
        return Problem::new(
            StatusCode::NOT_FOUND,
            code,
            format!("nothing named {name:?} is offered: {list}"),
        );
    }
    if error.code == ErrorCode::INVALID_REQUEST
        && let Some(data) = error.data.as_ref()
        && data.get("error").and_then(Json::as_str) == Some("insufficient_scope")
    {
        let scopes = data
            .get("scope")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        return insufficient_scope(rest, name, scopes);
    }
    let (status, code) = match error.code {
        ErrorCode::RESOURCE_NOT_FOUND => (StatusCode::NOT_FOUND, code),
        ErrorCode::INVALID_PARAMS => (StatusCode::BAD_REQUEST, "arguments"),
        _ => (StatusCode::BAD_GATEWAY, "tool_error"),
    };
    Problem::new(status, code, error.message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded_and_a_plus_stays_a_plus() {
        let pairs = decode_query("uri=docs%2Bfile%3A%2F%2F%2Fa%20b&x=%C3%A4&plain=calc+mem://x");
        assert_eq!(
            pairs,
            [
                ("uri".to_owned(), "docs+file:///a b".to_owned()),
                ("x".to_owned(), "ä".to_owned()),
                ("plain".to_owned(), "calc+mem://x".to_owned()),
            ]
        );
    }
}
