//! The shape stage: the connector's messages (or why there are none) as the
//! call's result. Methods returning the shared `ToolResult` speak MCP content
//! one to one; `StreamEvent` streams have their results joined; any other
//! message becomes JSON structured content. A gRPC status is read through the
//! one status table ([`super::status`]).

use prost_reflect::DynamicMessage;
use rmcp::model::CallToolResult;
use serde_json::{Value as Json, json};
use switchboard_proto::mcp::v1 as pb;

use super::decode::Target;
use super::invoke::Ended;
use super::status::describe_failure;
use super::{Failure, FailureKind};
use crate::catalog::{STREAM_EVENT, TOOL_RESULT, ToolEntry};
use crate::content::{self, decode, merge};
use crate::transcode::encode_result;

/// How a method's responses become a tool result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// Any message: JSON structuredContent plus a text block.
    Plain,
    /// `ToolResult`: MCP content one to one.
    Rich,
    /// `StreamEvent`s: progress and logs forwarded, results joined.
    Events,
}

impl ResultKind {
    /// The kind of `entry`'s method, from its output message.
    pub fn of(entry: &ToolEntry) -> Self {
        match entry.method.output().full_name() {
            TOOL_RESULT => Self::Rich,
            STREAM_EVENT if entry.server_streaming() => Self::Events,
            _ => Self::Plain,
        }
    }
}

/// The result of a call of `name` to `target` that ended with `outcome`.
pub fn result(
    name: &str,
    target: &Target,
    outcome: Result<Vec<DynamicMessage>, Ended>,
) -> Result<CallToolResult, Failure> {
    let connector = target.entry.connector.as_str();
    let messages = match outcome {
        Ok(messages) => messages,
        Err(Ended::Cancelled) => {
            return Err(Failure {
                kind: FailureKind::Cancelled,
                message: format!("{name}: cancelled by the client"),
                retry_after: None,
            });
        }
        Err(Ended::Status(status)) => {
            return Err(Failure {
                kind: FailureKind::Connector(status.code()),
                message: describe_failure(name, connector, &status),
                // An upstream rate limit says how long (REST: Retry-After).
                retry_after: super::status::upstream_rate_limited(&status)
                    .filter(|wait| !wait.is_zero()),
            });
        }
    };
    match target.kind {
        ResultKind::Plain => Ok(plain(&messages, target.entry.server_streaming())),
        ResultKind::Rich | ResultKind::Events => {
            let parts: Result<Vec<pb::ToolResult>, String> = if target.kind == ResultKind::Rich {
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
            let prefix = target.upstream.config().prefix.as_str();
            parts
                .and_then(|parts| content::tool_result(&merge(parts), prefix))
                .map_err(|e| Failure {
                    kind: FailureKind::Malformed,
                    message: format!(
                        "{name}: connector {connector} returned a malformed result: {e}"
                    ),
                    retry_after: None,
                })
        }
    }
}

/// Plain messages as structured content: a unary method's message itself (a
/// non-object under `result`), a stream's under `messages`.
fn plain(messages: &[DynamicMessage], streaming: bool) -> CallToolResult {
    let structured = if streaming {
        json!({ "messages": messages.iter().map(encode_result).collect::<Vec<_>>() })
    } else {
        match messages.first().map(encode_result) {
            Some(Json::Object(map)) => Json::Object(map),
            Some(other) => json!({ "result": other }),
            None => json!({}),
        }
    };
    CallToolResult::structured(structured)
}
