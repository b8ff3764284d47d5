//! A server-streaming tool called with `Accept: text/event-stream`: each
//! message as a server-sent event while the call runs, then its result.
//!
//! ```text
//! event: message    a streamed message of a plain stream, as JSON
//! event: progress   {"progress": 2, "total": 10, "message": "..."}
//! event: log        {"level": "info", "logger": "...", "data": ...}
//! event: result     the 200 envelope, last
//! event: error      a problem document, last, when the call failed after
//!                   the stream began
//! ```
//!
//! The invoke stage pushes the call's notices into the same bounded queue as
//! for MCP (`notification_queue`: when the client reads too slowly, progress
//! and logs are dropped, never the result). A call that fails before it has
//! told anything is answered like a plain call, with its problem and status,
//! so a caller still gets 400, 404 or 503 for what is wrong before anything
//! ran. A connector's question (elicitation, sampling) is refused to it: a
//! REST caller cannot answer. When the client goes away the stream is
//! dropped, and with it the guard that cancels the connector's call.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rmcp::model::CallToolResult;
use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::DropGuard;

use super::problem::Problem;
use super::{Rest, reply};
use crate::call::shape::ResultKind;
use crate::call::{CallError, Notice, Notices, ToolCall};
use crate::content::severity;

/// The outcome of the call, from the task running it.
type Outcome = Result<CallToolResult, CallError>;

/// Answers `call` as an event stream; `guard` cancels the call when the
/// answer is dropped.
pub(super) async fn respond(rest: &Rest, mut call: ToolCall, guard: DropGuard) -> Response {
    let name = call.name.clone();
    let plain = rest
        .pipeline
        .catalog()
        .resolve(&name)
        .is_some_and(|r| ResultKind::of(&r.entry) == ResultKind::Plain);
    let (notices, mut rx) = Notices::new(
        rest.bounds.limits.notification_queue,
        true,
        severity("debug"),
    );
    call.notices = Some(notices);
    let (done_tx, done_rx) = oneshot::channel();
    let pipeline = rest.pipeline.clone();
    // The call runs on its own, so a slow reader of the stream does not
    // hold it up: its notices wait in the bounded queue.
    tokio::spawn(async move {
        let _ = done_tx.send(pipeline.call_tool(call).await);
    });
    let first = match rx.recv().await {
        Some(notice) => notice,
        None => {
            // Ended without telling anything: a failure keeps its status.
            match answer(rest, &name, done_rx).await {
                Err(problem) => return problem.into_response(),
                Ok(envelope) => {
                    let only = futures::stream::iter([Ok::<_, Infallible>(
                        Event::default().event("result").data(envelope.to_string()),
                    )]);
                    drop(guard);
                    return Sse::new(only).into_response();
                }
            }
        }
    };
    let flow = Flow {
        first: Some(first),
        rx,
        done: Some(done_rx),
        rest: rest.clone(),
        name,
        plain,
        _guard: guard,
    };
    let events = futures::stream::unfold(Some(flow), |flow| async move {
        let mut flow = flow?;
        loop {
            let notice = match flow.first.take() {
                Some(notice) => Some(notice),
                None => flow.rx.recv().await,
            };
            match notice {
                Some(notice) => {
                    if let Some(event) = event(notice, flow.plain) {
                        return Some((Ok::<_, Infallible>(event), Some(flow)));
                    }
                }
                None => {
                    let done = flow.done.take()?;
                    let last = match answer(&flow.rest, &flow.name, done).await {
                        Ok(envelope) => Event::default().event("result").data(envelope.to_string()),
                        Err(problem) => Event::default()
                            .event("error")
                            .data(problem.body().to_string()),
                    };
                    return Some((Ok(last), None));
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What the stream holds between events.
struct Flow {
    first: Option<Notice>,
    rx: mpsc::Receiver<Notice>,
    done: Option<oneshot::Receiver<Outcome>>,
    rest: Rest,
    name: String,
    plain: bool,
    _guard: DropGuard,
}

/// How REST answers the outcome the call's task sent; a task that ended
/// without one (it panicked) is a malformed answer.
async fn answer(
    rest: &Rest,
    name: &str,
    done: oneshot::Receiver<Outcome>,
) -> Result<Json, Problem> {
    match done.await {
        Ok(outcome) => reply(rest, name, outcome),
        Err(_) => Err(Problem::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "malformed",
            format!("{name}: the call ended without an answer (a bug of the router: report it)"),
        )),
    }
}

/// The event for one notice; none for a question, which is refused to the
/// connector (a REST caller cannot answer it).
fn event(notice: Notice, plain: bool) -> Option<Event> {
    match notice {
        // A plain stream's progress carries the streamed message as JSON.
        Notice::Progress {
            message: Some(message),
            ..
        } if plain => Some(Event::default().event("message").data(message)),
        Notice::Progress {
            progress,
            total,
            message,
        } => {
            let mut data = json!({ "progress": progress });
            if let Some(total) = total {
                data["total"] = json!(total);
            }
            if let Some(message) = message {
                data["message"] = json!(message);
            }
            Some(Event::default().event("progress").data(data.to_string()))
        }
        Notice::Log {
            level,
            logger,
            data,
        } => {
            let mut body = json!({ "level": level, "data": data });
            if !logger.is_empty() {
                body["logger"] = Json::String(logger);
            }
            Some(Event::default().event("log").data(body.to_string()))
        }
        Notice::Ask { ask, upstream } => {
            tokio::spawn(async move {
                crate::interact::refuse(
                    &upstream,
                    ask,
                    "this caller cannot answer questions (a REST call)",
                )
                .await;
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_become_named_events() {
        let plain = Notice::Progress {
            progress: 1.0,
            total: None,
            message: Some(r#"{"n":1}"#.into()),
        };
        let text = format!("{:?}", event(plain, true).expect("an event"));
        assert!(text.contains("message"), "{text}");
        let progress = Notice::Progress {
            progress: 2.0,
            total: Some(4.0),
            message: Some("half way".into()),
        };
        let text = format!("{:?}", event(progress, false).expect("an event"));
        assert!(
            text.contains("progress") && text.contains("half way"),
            "{text}"
        );
        let log = Notice::Log {
            level: "info",
            logger: String::new(),
            data: json!("hello"),
        };
        let text = format!("{:?}", event(log, false).expect("an event"));
        assert!(text.contains("log") && text.contains("hello"), "{text}");
    }
}
