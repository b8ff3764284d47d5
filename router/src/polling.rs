//! SSE polling (SEP-1699): a tool call that runs long does not hold its HTTP
//! response open. After `sse_poll_after`, the router closes the call's POST SSE
//! stream (the client was told a retry interval in the priming event); the
//! client reconnects with `GET` and `Last-Event-ID` and gets the rest, result
//! included, from the session's message cache.
//!
//! rmcp's [`LocalSessionManager`] closes a stream only by its internal HTTP
//! request id, which a request handler never sees, so [`PollingSessions`] wraps
//! it: it opens each `tools/call` stream itself and remembers which stream
//! carries which JSON-RPC request of which session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, RequestId};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::{RestoreOutcome, SessionManager};
use tokio_stream::wrappers::ReceiverStream;

/// Which session and request a stream answers.
type StreamKey = (String, String);

fn key(session: &str, request: &RequestId) -> StreamKey {
    (
        session.to_owned(),
        serde_json::to_string(request).unwrap_or_default(),
    )
}

/// rmcp's local session manager, remembering the stream of every tool call.
#[derive(Default)]
pub struct PollingSessions {
    inner: LocalSessionManager,
    streams: Mutex<HashMap<StreamKey, u64>>,
}

impl std::fmt::Debug for PollingSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollingSessions").finish_non_exhaustive()
    }
}

impl PollingSessions {
    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, u64>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SessionManager for PollingSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<rmcp::model::ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.streams()
            .retain(|(session, _), _| session.as_str() != id.as_ref());
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let handle = self
            .inner
            .sessions
            .read()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| LocalSessionManagerError::SessionNotFound(id.clone()))?;
        let receiver = handle.establish_request_wise_channel().await?;
        if let (JsonRpcMessage::Request(request), Some(stream)) =
            (&message, receiver.http_request_id)
            && matches!(request.request, ClientRequest::CallToolRequest(_))
        {
            self.streams().insert(key(id, &request.id), stream);
        }
        handle
            .push_message(message, receiver.http_request_id)
            .await?;
        Ok(ReceiverStream::new(receiver.inner))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }
}

/// When and how long tool calls get their streams closed.
#[derive(Debug, Clone)]
pub struct SsePolling {
    sessions: Arc<PollingSessions>,
    after: Duration,
    retry: Duration,
}

impl SsePolling {
    /// Closes tool-call streams still open after `after`, telling clients to
    /// come back after `retry`.
    pub fn new(sessions: Arc<PollingSessions>, after: Duration, retry: Duration) -> Self {
        Self {
            sessions,
            after,
            retry,
        }
    }

    /// Starts the timer of one tool call; abort the task when the call ends.
    /// `None` when the request did not come over a session of this server.
    pub fn watch(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let session = context
            .extensions
            .get::<http::request::Parts>()?
            .headers
            .get("mcp-session-id")?
            .to_str()
            .ok()?
            .to_owned();
        let stream_key = key(&session, &context.id);
        let this = self.clone();
        Some(tokio::spawn(async move {
            tokio::time::sleep(this.after).await;
            let Some(stream) = this.sessions.streams().remove(&stream_key) else {
                return;
            };
            let handle = this
                .sessions
                .inner
                .sessions
                .read()
                .await
                .get(session.as_str())
                .cloned();
            if let Some(handle) = handle
                && let Err(error) = handle.close_sse_stream(stream, Some(this.retry)).await
            {
                tracing::debug!(%error, "could not close a tool call's SSE stream");
            }
        }))
    }

    /// Forgets a finished call's stream.
    pub fn forget(&self, context: &RequestContext<RoleServer>) {
        let session = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok());
        if let Some(session) = session {
            self.sessions.streams().remove(&key(session, &context.id));
        }
    }
}
