//! `POST /api/v1/batch`: several tool calls in one request.
//!
//! ```text
//! {"calls": [{"tool": "calculator_add", "arguments": {"a": 1, "b": 2}}, ...]}
//! → 200 {"results": [{"tool": "calculator_add", "status": 200, "result": {...},
//!                     "content": [...], "isError": false},
//!                    {"tool": "calculator_nope", "status": 404, "problem": {...}}]}
//! ```
//!
//! Each call goes through the pipeline on its own (authorized, limited,
//! audited), exactly as `POST /tools/{name}` would send it, and its answer is
//! the status and body that call alone would have got; one failing call does
//! not fail the others. The calls run concurrently, at most
//! `max_calls_per_session` at once (the batch is a session of its own for
//! the limit stage), and are answered in the order given. A batch of more
//! than `max_batch_calls` calls is refused whole with 413 before any runs;
//! a body that is not such an object is refused whole with 400.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

use super::problem::Problem;
use super::{Rest, caller, plausible_name, read_json, reply, unknown_tool};
use crate::call::{CallSlots, Caller, ToolCall};
use crate::limits::LimitLog;

static BATCHES_REFUSED: LimitLog = LimitLog::new("max_batch_calls");

/// The body of a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    calls: Vec<Call>,
}

/// One call of a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    tool: String,
    #[serde(default)]
    arguments: Option<Map<String, Json>>,
}

/// `POST /batch`.
pub(super) async fn run(State(rest): State<Rest>, request: Request) -> Response {
    let caller = caller(&rest, &request);
    let body = match read_json(&rest, request).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            return bad_batch(
                "the body is empty: send {\"calls\": [{\"tool\": ..., \"arguments\": {...}}, ...]}"
                    .into(),
            )
            .into_response();
        }
        Err(problem) => return problem.into_response(),
    };
    let batch: Batch = match serde_json::from_value(body) {
        Ok(batch) => batch,
        Err(error) => {
            return bad_batch(format!(
                "the body must be {{\"calls\": [{{\"tool\": <name>, \"arguments\": {{...}}}}, ...]}}: {error}"
            ))
            .into_response();
        }
    };
    let max = rest.bounds.limits.max_batch_calls;
    if batch.calls.len() > max {
        BATCHES_REFUSED.hit(
            max,
            "a REST batch had more calls than allowed; batches refused",
        );
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the batch has {} calls, more than the router runs in one batch (max_batch_calls = {max}): split it",
                batch.calls.len()
            ),
        )
        .into_response();
    }
    // Every call is dropped when the client goes away: this future is
    // dropped with the connection, and the guard cancels them all.
    let cancel = CancellationToken::new();
    let _guard = cancel.clone().drop_guard();
    let slots = rest.slots();
    let at_once = rest.bounds.limits.max_calls_per_session.max(1);
    let results: Vec<Json> = futures::stream::iter(batch.calls)
        .map(|call| one(&rest, &caller, &slots, &cancel, call))
        .buffered(at_once)
        .collect()
        .await;
    axum::Json(json!({ "results": results })).into_response()
}

/// One call of the batch, answered as `POST /tools/{name}` would answer it.
async fn one(
    rest: &Rest,
    caller: &Caller,
    slots: &CallSlots,
    cancel: &CancellationToken,
    call: Call,
) -> Json {
    let name = call.tool;
    let outcome = if plausible_name(&name) {
        let call = ToolCall {
            caller: Caller {
                // Each call is a span of the caller's trace.
                traceparent: crate::call::traceparent(Some(&caller.traceparent)),
                ..caller.clone()
            },
            name: name.clone(),
            arguments: Some(call.arguments.unwrap_or_default()),
            cancel: cancel.child_token(),
            slots: Some(slots.clone()),
            notices: None,
        };
        reply(rest, &name, rest.pipeline.call_tool(call).await)
    } else {
        Err(unknown_tool(&name))
    };
    match outcome {
        Ok(Json::Object(envelope)) => {
            let mut answer = Map::new();
            answer.insert("tool".into(), json!(name));
            answer.insert("status".into(), json!(200));
            answer.extend(envelope);
            Json::Object(answer)
        }
        Ok(other) => json!({ "tool": name, "status": 200, "result": other }),
        Err(problem) => json!({
            "tool": name,
            "status": problem.status().as_u16(),
            "problem": problem.body(),
        }),
    }
}

/// 400 for a body that is no batch.
fn bad_batch(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "arguments", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_names_what_is_wrong_with_it() {
        let unknown = serde_json::from_value::<Batch>(json!({"calls": [], "extra": 1}))
            .expect_err("unknown field");
        assert!(unknown.to_string().contains("extra"), "{unknown}");
        let wrong = serde_json::from_value::<Batch>(json!({"calls": [{"tool": 3}]}))
            .expect_err("tool must be a string");
        assert!(wrong.to_string().contains("string"), "{wrong}");
        let arguments =
            serde_json::from_value::<Batch>(json!({"calls": [{"tool": "t", "arguments": []}]}))
                .expect_err("arguments must be an object");
        assert!(arguments.to_string().contains("map"), "{arguments}");
        let fine = serde_json::from_value::<Batch>(json!({"calls": [{"tool": "t"}]}))
            .expect("arguments may be left out");
        assert!(fine.calls[0].arguments.is_none());
    }
}
