//! Tool calls: one gRPC call of a tool's method, as the router makes it.
//!
//! The request is a dynamic message; unary and server-streaming methods are
//! both called as a stream. Every call has a deadline, carries the trace context
//! and the caller's metadata, is retried with backoff only when the method is
//! read-only or idempotent and the connector answered UNAVAILABLE, and is bounded
//! in the messages and bytes it reads back.

use std::time::{Duration, Instant};

use prost::Message;
use prost_reflect::DynamicMessage;
use tokio_retry::strategy::{ExponentialBackoff, jitter};
use tonic::{Code, Status};

use super::{Upstream, carry};
use crate::catalog::ToolEntry;
use crate::config::UpstreamLimits;
use crate::transcode::DynamicCodec;

impl Upstream {
    /// Calls a method. Streamed messages are passed to `on_message` as they arrive
    /// and returned all together at the end. A message over `max_message_bytes`,
    /// or a stream over `max_stream_messages` / `max_stream_bytes`, ends the call
    /// (the stream is dropped, which cancels it at the connector) with
    /// RESOURCE_EXHAUSTED naming the limit.
    pub async fn call(
        &self,
        entry: &ToolEntry,
        request: DynamicMessage,
        traceparent: &str,
        on_message: impl FnMut(&DynamicMessage, usize),
    ) -> Result<Vec<DynamicMessage>, Status> {
        let none = tonic::metadata::MetadataMap::new();
        self.call_with(entry, request, traceparent, &none, on_message)
            .await
    }

    /// [`Upstream::call`], with `extra` metadata on the request (who calls:
    /// `switchboard-principal-*`, built by the router, never client headers).
    pub async fn call_with(
        &self,
        entry: &ToolEntry,
        request: DynamicMessage,
        traceparent: &str,
        extra: &tonic::metadata::MetadataMap,
        mut on_message: impl FnMut(&DynamicMessage, usize),
    ) -> Result<Vec<DynamicMessage>, Status> {
        let timeout = self.config.timeout;
        let path: http::uri::PathAndQuery = entry
            .path
            .parse()
            .map_err(|e| Status::internal(format!("invalid method path {}: {e}", entry.path)))?;
        let codec = DynamicCodec::new(entry.method.output());
        let make_request = || {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            self.annotate(&mut req);
            carry(&mut req, traceparent, extra);
            req
        };
        let attempts = if entry.retryable { 3 } else { 0 };
        let strategy = ExponentialBackoff::from_millis(2)
            .factor(25)
            .map(jitter)
            .take(attempts);

        // Unary and server-streaming calls look the same on the wire, so both are
        // made as a stream: a unary method answers with exactly one message.
        let streaming = entry.server_streaming();
        let limits = self.limits;
        let work = async {
            let mut stream = tokio_retry::RetryIf::start(
                strategy,
                || {
                    let mut grpc = tonic::client::Grpc::new(self.channel.clone())
                        .max_decoding_message_size(limits.max_message_bytes);
                    let req = make_request();
                    let path = path.clone();
                    let codec = codec.clone();
                    async move {
                        grpc.ready()
                            .await
                            .map_err(|e| Status::unavailable(e.to_string()))?;
                        grpc.server_streaming(req, path, codec).await
                    }
                },
                |s: &Status| s.code() == Code::Unavailable,
            )
            .await
            .map_err(|s| over_message_limit(s, &limits))?
            .into_inner();
            let mut out = Vec::new();
            let mut bytes = 0usize;
            while let Some(message) = stream
                .message()
                .await
                .map_err(|s| over_message_limit(s, &limits))?
            {
                bytes = bytes.saturating_add(message.encoded_len());
                if out.len() >= limits.max_stream_messages {
                    return Err(Status::resource_exhausted(format!(
                        "the connector streamed more than {} messages, the router's limit \
                         max_stream_messages (SWITCHBOARD_MAX_STREAM_MESSAGES); the call was \
                         cancelled: ask for less",
                        limits.max_stream_messages
                    )));
                }
                if bytes > limits.max_stream_bytes {
                    return Err(Status::resource_exhausted(format!(
                        "the connector streamed more than {} bytes, the router's limit \
                         max_stream_bytes (SWITCHBOARD_MAX_STREAM_BYTES); the call was \
                         cancelled: ask for less",
                        limits.max_stream_bytes
                    )));
                }
                if streaming {
                    on_message(&message, out.len());
                }
                out.push(message);
            }
            if !streaming && out.len() != 1 {
                return Err(Status::internal(format!(
                    "{} answered a unary call with {} messages",
                    entry.path,
                    out.len()
                )));
            }
            Ok(out)
        };
        let started = Instant::now();
        match tokio::time::timeout(timeout + Duration::from_millis(250), work).await {
            // The deadline travels as grpc-timeout; a tonic server enforcing it
            // ends the call as CANCELLED, which would read as the connector's
            // doing. Past the deadline, it is the deadline.
            Ok(Err(status)) if status.code() == Code::Cancelled && started.elapsed() >= timeout => {
                Err(Status::deadline_exceeded(format!(
                    "no answer within {timeout:?}"
                )))
            }
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer within {timeout:?}"
            ))),
        }
    }
}

/// tonic refuses a message over the decoding limit with OUT_OF_RANGE, which
/// would read as the caller's fault: it becomes RESOURCE_EXHAUSTED naming the
/// router's setting. Other statuses pass unchanged.
fn over_message_limit(status: Status, limits: &UpstreamLimits) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("message length too large") {
        return Status::resource_exhausted(format!(
            "the connector answered with a message larger than {} bytes, the router's limit \
             max_message_bytes (SWITCHBOARD_MAX_MESSAGE_BYTES): ask for less, or ask the \
             operator to raise it ({})",
            limits.max_message_bytes,
            status.message()
        ));
    }
    status
}
