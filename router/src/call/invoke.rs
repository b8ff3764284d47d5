//! The invoke stage: the gRPC call to the connector, with its deadline and
//! retries ([`Upstream::call_with`]), the caller's cancellation, the trace
//! context and the principal in its metadata. Streamed messages become notices
//! ([`Notices`]) as they arrive: progress for plain and `ToolResult` streams
//! (when the caller asked for it), and a `StreamEvent` stream's progress, logs
//! and questions.

use prost_reflect::DynamicMessage;
use serde_json::Value as Json;
use switchboard_proto::mcp::v1 as pb;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::metadata::MetadataMap;

use super::decode::Target;
use super::events::{Notice, Notices};
use super::shape::ResultKind;
use crate::content::{decode, level_name, severity, value_json};
use crate::transcode::encode_result;
use crate::upstream::Upstream;

/// Why a call returned no messages.
#[derive(Debug)]
pub enum Ended {
    /// The caller cancelled it (the stream to the connector was dropped,
    /// which cancels it there too).
    Cancelled,
    /// The connector (or the way to it) answered with this status.
    Status(Status),
}

/// Calls `target` with `message`, the trace context `traceparent` and the
/// principal's metadata `forwarded`, until it ends or `cancel` fires.
pub async fn run(
    target: &Target,
    message: DynamicMessage,
    traceparent: &str,
    forwarded: &MetadataMap,
    cancel: &CancellationToken,
    notices: Option<Notices>,
) -> Result<Vec<DynamicMessage>, Ended> {
    let kind = target.kind;
    let progress = notices.as_ref().is_some_and(|n| n.progress);
    let min_level = notices.as_ref().map_or(u8::MAX, |n| n.min_log_level);
    let notify = |notice: Notice| {
        let handed_back = match &notices {
            Some(queue) => queue.push(notice),
            None => match notice {
                Notice::Ask { ask, upstream } => Some((
                    ask,
                    upstream,
                    "this caller cannot answer questions (it takes no notifications)".to_owned(),
                )),
                _ => None,
            },
        };
        if let Some((ask, upstream, why)) = handed_back {
            // A question must be answered, or the connector waits for
            // nothing: it is told at once that it was not asked.
            tokio::spawn(async move {
                crate::interact::refuse(&upstream, ask, &why).await;
            });
        }
    };
    let on_message = |message: &DynamicMessage, index: usize| {
        on_message(
            kind,
            progress,
            min_level,
            &target.upstream,
            message,
            index,
            &notify,
        );
    };
    let connector = target.entry.connector.as_str();
    let in_flight = crate::metrics::InFlight::start(connector);
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        () = cancel.cancelled() => Err(Ended::Cancelled),
        r = target.upstream.call_with(&target.entry, message, traceparent, forwarded, on_message) => {
            r.map_err(Ended::Status)
        }
    };
    let code = match &outcome {
        Ok(_) => tonic::Code::Ok,
        Err(Ended::Cancelled) => tonic::Code::Cancelled,
        Err(Ended::Status(status)) => status.code(),
    };
    crate::metrics::record_grpc(
        connector,
        target.entry.method.full_name(),
        code,
        started.elapsed(),
    );
    drop(in_flight);
    if let Some(queue) = notices {
        queue.close();
    }
    outcome
}

/// What one streamed message tells the caller before the result.
fn on_message(
    kind: ResultKind,
    progress: bool,
    min_level: u8,
    upstream: &Upstream,
    message: &DynamicMessage,
    index: usize,
    notify: &impl Fn(Notice),
) {
    match kind {
        ResultKind::Plain | ResultKind::Rich => {
            if progress {
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
                Some(pb::stream_event::Event::Progress(p)) if progress => {
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
                    notify(Notice::Ask {
                        ask,
                        upstream: upstream.clone(),
                    });
                }
                _ => {}
            }
        }
    }
}
