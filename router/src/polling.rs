//! SSE polling (SEP-1699): a tool call that runs long does not hold its HTTP
//! response open. After `sse_poll_after`, the router closes the call's POST SSE
//! stream (the client was told a retry interval in the priming event); the
//! client reconnects with `GET` and `Last-Event-ID` and gets the rest, result
//! included, from the session's message cache.
//!
//! rmcp's [`LocalSessionManager`] closes a stream only by its internal HTTP
//! request id, which a request handler never sees, so [`PollingSessions`] wraps
//! it: it opens each `tools/call` stream itself and remembers which stream
//! carries which JSON-RPC request of which session (only when polling is on,
//! at most `max_calls_per_session` per session, each forgotten when its call
//! ends).
//!
//! The same wrapper bounds sessions: each open session holds one of
//! `max_sessions` slots from the moment it is created until it closes (by
//! DELETE, by idle expiry after `session_idle_timeout`, or at shutdown). The
//! HTTP front door takes the slot with [`PollingSessions::try_admit`] before
//! it serves an `initialize` (so it can answer 503 when none is left) and
//! hands it down with [`PollingSessions::admitting`]; `create_session` seats
//! it under the new session's id. A slot whose request is dropped before the
//! session exists is given back with it; a session created any other way takes
//! its own slot or is refused.
//!
//! With a session store (`session`), rmcp restores here a session another
//! replica opened (`restore_session`, which takes a slot like a new one), and
//! [`PollingSessions::close_local`] lets go of a session Redis no longer holds
//! without deleting it there.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ClientLimits;
use crate::session::relay;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{Stream, StreamExt as _};
use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, InitializedNotification,
    JsonRpcMessage, RequestId,
};
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

/// The open tool-call streams of each session, by JSON-RPC request id.
type Streams = HashMap<String, HashMap<String, u64>>;

/// rmcp's local session manager, bounded, remembering the stream of every
/// tool call in flight when polling is on.
pub struct PollingSessions {
    inner: LocalSessionManager,
    streams: Mutex<Streams>,
    /// Whether tool-call streams are remembered (`sse_poll_after` is set).
    polling: bool,
    /// Most streams remembered per session (`max_calls_per_session`).
    max_streams: usize,
    /// One permit per session that may open (`max_sessions`).
    slots: Arc<Semaphore>,
    max_sessions: usize,
    /// The permits of open sessions, by session id.
    seated: Mutex<HashMap<String, OwnedSemaphorePermit>>,
    /// The store sessions are shared through, if any.
    shared: Option<crate::session::SharedSessions>,
    /// With a store: the listen streams this replica holds.
    listeners: Option<Arc<crate::session::listen::Listeners>>,
    /// With a store: the request streams this replica resumes from others,
    /// and the rounds it relays.
    feeds: Arc<crate::session::resume::Feeds>,
    /// With a store: stateless calls parked here, for rounds relayed here.
    parking: Option<Arc<crate::rounds::Parking>>,
}

impl std::fmt::Debug for PollingSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollingSessions").finish_non_exhaustive()
    }
}

/// A slot for one more session, taken before its `initialize` is served.
#[derive(Debug)]
pub struct SessionSlot(OwnedSemaphorePermit);

tokio::task_local! {
    /// The slot of the `initialize` being served in this task: rmcp creates
    /// the session inside the request's future, so the slot travels with it.
    static ADMITTED: RefCell<Option<SessionSlot>>;
}

/// Why the session manager refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    /// `max_sessions` sessions are open.
    #[error(
        "the router has {max} MCP sessions open, the most it allows (max_sessions = {max}): retry later"
    )]
    Full {
        /// The setting's value.
        max: usize,
    },
    /// rmcp's session manager failed.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    /// The session store did not answer.
    #[error(transparent)]
    Store(#[from] crate::session::StoreError),
}

impl From<rmcp::transport::streamable_http_server::session::local::SessionError> for SessionsError {
    fn from(error: rmcp::transport::streamable_http_server::session::local::SessionError) -> Self {
        Self::Local(error.into())
    }
}

impl PollingSessions {
    /// Sessions bounded by `limits`; tool-call streams are remembered for
    /// [`SsePolling`] only when `polling` is set.
    pub fn new(limits: &ClientLimits, polling: bool) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(limits.session_idle_timeout);
        Self {
            inner,
            streams: Mutex::default(),
            polling,
            max_streams: limits.max_calls_per_session,
            slots: Arc::new(Semaphore::new(limits.max_sessions)),
            max_sessions: limits.max_sessions,
            seated: Mutex::default(),
            shared: None,
            listeners: None,
            feeds: Arc::default(),
            parking: None,
        }
    }

    /// Sessions shared with other replicas through `shared`, their listen
    /// streams held here registered with `listeners`.
    pub fn with_store(
        mut self,
        shared: crate::session::SharedSessions,
        listeners: Arc<crate::session::listen::Listeners>,
        parking: Arc<crate::rounds::Parking>,
    ) -> Self {
        self.shared = Some(shared);
        self.listeners = Some(listeners);
        self.parking = Some(parking);
        self
    }

    /// The requests this replica relays to others, waiting for answers.
    pub fn feeds(&self) -> Arc<crate::session::resume::Feeds> {
        self.feeds.clone()
    }

    /// Why no session can be opened now: the session store is configured
    /// and unavailable.
    pub fn store_unavailable(&self) -> Option<crate::session::StoreError> {
        self.shared.as_ref()?.unavailable()
    }

    /// Closes this replica's copy of session `id`, if it has one, leaving
    /// the store alone.
    pub async fn close_local(&self, id: &str) {
        let id: SessionId = id.to_owned().into();
        if let Ok(true) = self.inner.has_session(&id).await
            && let Err(error) = self.close_session(&id).await
        {
            tracing::debug!(%error, "closing a session gone from the store failed");
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn seated(&self) -> std::sync::MutexGuard<'_, HashMap<String, OwnedSemaphorePermit>> {
        self.seated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn forget(&self, (session, request): &StreamKey) -> Option<u64> {
        let mut streams = self.streams();
        let calls = streams.get_mut(session)?;
        let stream = calls.remove(request);
        if calls.is_empty() {
            streams.remove(session);
        }
        stream
    }

    /// A slot for a new session, or `None` when `max_sessions` are open.
    pub fn try_admit(&self) -> Option<SessionSlot> {
        self.slots.clone().try_acquire_owned().ok().map(SessionSlot)
    }

    /// Runs `request` (the serving of one `initialize`) with `slot` for the
    /// session it creates; the slot is given back if it creates none.
    pub async fn admitting<F: Future>(slot: SessionSlot, request: F) -> F::Output {
        ADMITTED.scope(RefCell::new(Some(slot)), request).await
    }

    /// The slot for a session being created: the one admitted in this task,
    /// or a free one.
    fn take_slot(&self) -> Result<SessionSlot, SessionsError> {
        ADMITTED
            .try_with(|slot| slot.borrow_mut().take())
            .ok()
            .flatten()
            .or_else(|| self.try_admit())
            .ok_or(SessionsError::Full {
                max: self.max_sessions,
            })
    }

    /// How many sessions are open (or being opened).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.max_sessions
            .saturating_sub(self.slots.available_permits())
    }
}

impl SessionManager for PollingSessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let slot = self.take_slot()?;
        let (id, transport) = self.inner.create_session().await?;
        self.seated().insert(id.to_string(), slot.0);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<rmcp::model::ServerJsonRpcMessage, Self::Error> {
        let replayed = is_replay(&message);
        let response = self.inner.initialize_session(id, message).await?;
        // A refused handshake (an error answer) has ended the session. Its
        // slot is free before the refusal is answered: the client may retry
        // at once (rmcp drops the session itself only later, from its task).
        let opened = matches!(response, JsonRpcMessage::Response(_));
        if !opened {
            self.streams().remove(id.as_ref());
            self.seated().remove(id.as_ref());
        }
        if self.shared.is_some() && !replayed && opened {
            // The client's `notifications/initialized` may reach another
            // replica: each copy of a shared session is told it by the
            // replica that holds it (here for the one that opened it; rmcp's
            // restore replays it for the others), and the client's own is
            // dropped (`accept_message`), so each copy runs it once.
            let initialized = ClientJsonRpcMessage::notification(
                ClientNotification::InitializedNotification(InitializedNotification::default()),
            );
            self.inner.accept_message(id, initialized).await?;
        }
        Ok(response)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.streams().remove(id.as_ref());
        self.seated().remove(id.as_ref());
        Ok(self.inner.close_session(id).await?)
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
        if let (true, JsonRpcMessage::Request(request), Some(stream)) =
            (self.polling, &message, receiver.http_request_id)
            && matches!(request.request, ClientRequest::CallToolRequest(_))
        {
            let (session, call) = key(id, &request.id);
            let mut streams = self.streams();
            let calls = streams.entry(session).or_default();
            // Bounded by construction: a call over the limit is refused
            // anyway, and its stream is simply not closed early.
            if calls.len() < self.max_streams {
                calls.insert(call, stream);
            }
        }
        let request = match &message {
            JsonRpcMessage::Request(request) => Some(request.id.clone()),
            _ => None,
        };
        handle
            .push_message(message, receiver.http_request_id)
            .await?;
        let tag = self.replica_tag(request.as_ref());
        Ok(tagged(ReceiverStream::new(receiver.inner), tag))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        let client_initialized = matches!(&message, JsonRpcMessage::Notification(n)
            if matches!(n.notification, ClientNotification::InitializedNotification(_)))
            && !is_replay(&message);
        if self.shared.is_some() && client_initialized {
            return Ok(());
        }
        let mut message = message;
        if let Some(shared) = &self.shared
            && let Some((replica, local)) = answer_id(&mut message)
                .and_then(|asked| relay::answer_to(asked))
                .map(|(replica, local)| (replica.to_owned(), local))
        {
            if replica != shared.replica() {
                // A question another replica asked: its answer goes there.
                let relayed = relay::Relayed {
                    session: id.to_string(),
                    body: relay::RelayedBody::Answer(message),
                };
                if !shared.relay(&replica, &relayed).await? {
                    tracing::info!(
                        "a client answered a question of a router replica that is gone: the call that asked it failed (replica_lost) and is retried by the client"
                    );
                }
                return Ok(());
            }
            if let Some(asked) = answer_id(&mut message) {
                *asked = local;
            }
        }
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_standalone_stream(id).await?;
        Ok(self.listen_stream(id, stream).await)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.resume_stream(id, last_event_id).await
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        let slot = self.take_slot()?;
        let outcome = self.inner.restore_session(id.clone()).await?;
        if matches!(outcome, RestoreOutcome::Restored(_)) {
            self.seated().insert(id.to_string(), slot.0);
        }
        Ok(outcome)
    }
}

/// A stream of SSE events of any origin.
type SseStream = std::pin::Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync + 'static>>;

impl PollingSessions {
    /// See [`SessionManager::resume`]: with a session store, event ids say
    /// which replica wrote them ([`ReplicaEvent`]).
    async fn resume_stream(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<SseStream, SessionsError> {
        let Some(shared) = &self.shared else {
            return Ok(Box::pin(self.inner.resume(id, last_event_id).await?));
        };
        let Some(event) = ReplicaEvent::parse(&last_event_id) else {
            // Not an id this router wrote: rmcp answers it as ever.
            return Ok(Box::pin(self.inner.resume(id, last_event_id).await?));
        };
        if event.replica == shared.replica() {
            let stream = self.inner.resume(id, event.local.to_owned()).await?;
            if event.request.is_none() {
                return Ok(self.listen_stream(id, stream).await);
            }
            let tag = self.replica_tag(event.request.as_ref());
            return Ok(Box::pin(tagged(stream, tag)));
        }
        // The stream was another replica's: the balancer sent the
        // reconnection here, or that replica died. Its events are there.
        match event.request {
            Some(request) => {
                let resumed = crate::session::resume::from_replica(
                    shared,
                    &self.feeds,
                    id,
                    event.replica,
                    request.clone(),
                    event.local,
                )
                .await;
                match resumed {
                    Some(stream) => Ok(Box::pin(stream)),
                    None => {
                        tracing::info!(
                            "a client resumed a request stream of a replica that is gone: answered that the request's answer is lost"
                        );
                        Ok(Box::pin(futures::stream::iter([
                            crate::session::resume::replica_lost(request),
                        ])))
                    }
                }
            }
            None => {
                // The listen stream: open it here; what the other replica
                // had queued for it is lost.
                let stream = self.inner.create_standalone_stream(id).await?;
                Ok(self.listen_stream(id, stream).await)
            }
        }
    }
}

impl PollingSessions {
    /// How this replica marks what it sends on the streams of `request`
    /// (the listen stream: `None`), with a session store; `None` without one
    /// (ids stay rmcp's).
    fn replica_tag(&self, request: Option<&RequestId>) -> Option<Marks> {
        let shared = self.shared.as_ref()?;
        let request = request
            .and_then(|r| serde_json::to_vec(r).ok())
            .map(|r| URL_SAFE_NO_PAD.encode(r))
            .unwrap_or_default();
        Some(Marks {
            event_prefix: format!("{}.{request}.", shared.replica()),
            replica: shared.replica().to_owned(),
        })
    }

    /// Session `id`'s listen stream `local`, held by this replica: with a
    /// store, registered as held here (which watches the session's
    /// subscriptions for it) and joined by what other replicas relay to it,
    /// until `local` ends.
    async fn listen_stream(
        &self,
        id: &SessionId,
        local: impl Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    ) -> SseStream {
        let marks = self.replica_tag(None);
        let Some(listeners) = &self.listeners else {
            return Box::pin(tagged(local, marks));
        };
        let (sender, relayed) = tokio::sync::mpsc::channel(crate::session::listen::LISTEN_QUEUE);
        let registration = listeners.open(id, sender).await;
        // The relayed part ends with the local one (rmcp closing it, the
        // client going away), and the registration with both.
        let local = tagged(local, marks)
            .map(Some)
            .chain(futures::stream::iter([None]));
        let relayed = ReceiverStream::new(relayed)
            .map(|message| Some(ServerSseMessage::from_message(message)));
        Box::pin(
            futures::stream::select(local, relayed)
                .take_while(|event| std::future::ready(event.is_some()))
                .filter_map(move |event| {
                    let _held = &registration;
                    std::future::ready(event)
                }),
        )
    }

    /// Delivers what another replica relayed to this one.
    pub async fn deliver(&self, relayed: relay::Relayed) {
        let session: SessionId = relayed.session.into();
        match relayed.body {
            relay::RelayedBody::Answer(mut message) => {
                let local = answer_id(&mut message)
                    .and_then(|asked| relay::answer_to(asked))
                    .filter(|(replica, _)| {
                        self.shared
                            .as_ref()
                            .is_some_and(|shared| shared.replica() == *replica)
                    })
                    .map(|(_, local)| local);
                let (Some(local), Some(asked)) = (local, answer_id(&mut message)) else {
                    tracing::debug!(
                        "a relayed answer to a question this replica did not ask was dropped"
                    );
                    return;
                };
                *asked = local;
                if let Err(error) = self.inner.accept_message(&session, message).await {
                    tracing::debug!(%error, "a relayed answer found no session here (closed meanwhile)");
                }
            }
            relay::RelayedBody::Notice(message) => {
                let held = self
                    .listeners
                    .as_ref()
                    .is_some_and(|listeners| listeners.notify(&session, message));
                if !held {
                    tracing::debug!(
                        "a relayed notification for a listen stream this replica no longer holds was dropped"
                    );
                }
            }
            relay::RelayedBody::Watch(uri) => {
                if let Some(listeners) = &self.listeners {
                    listeners.watch(&session, &uri).await;
                }
            }
            relay::RelayedBody::WatchThenTell { uri, from, feed } => {
                if let Some(listeners) = &self.listeners {
                    listeners.watch(&session, &uri).await;
                }
                if let Some(shared) = &self.shared {
                    let done = relay::Relayed {
                        session: session.to_string(),
                        body: relay::RelayedBody::End { feed },
                    };
                    if let Err(error) = shared.relay(&from, &done).await {
                        tracing::debug!(%error, "a watch could not be confirmed to the subscribing replica");
                    }
                }
            }
            relay::RelayedBody::Unwatch(uri) => {
                if let Some(listeners) = &self.listeners {
                    listeners.unwatch(&session, &uri);
                }
            }
            relay::RelayedBody::Resume {
                from,
                feed,
                local,
                request,
            } => {
                let Some(shared) = &self.shared else { return };
                let stream: SseStream = match self.inner.resume(&session, local).await {
                    Ok(stream) => Box::pin(tagged(stream, self.replica_tag(Some(&request)))),
                    Err(error) => {
                        tracing::info!(%error, "a request stream another replica asked for cannot be resumed here");
                        Box::pin(futures::stream::iter([
                            crate::session::resume::replica_lost(request),
                        ]))
                    }
                };
                crate::session::resume::forward(
                    shared.clone(),
                    session.to_string(),
                    from,
                    feed,
                    stream,
                );
            }
            relay::RelayedBody::Event { feed, event } => {
                self.feeds.deliver(
                    feed,
                    crate::session::resume::FeedItem::Event(Box::new(event)),
                );
            }
            relay::RelayedBody::End { feed } => {
                self.feeds
                    .deliver(feed, crate::session::resume::FeedItem::End);
            }
            relay::RelayedBody::Outcome { feed, outcome } => {
                self.feeds
                    .deliver(feed, crate::session::resume::FeedItem::Outcome(outcome));
            }
            relay::RelayedBody::Round {
                from,
                feed,
                state,
                responses,
                owner,
                token,
                capabilities,
            } => {
                if let (Some(parking), Some(shared)) = (&self.parking, &self.shared) {
                    crate::rounds::serve_round(
                        parking.clone(),
                        shared.clone(),
                        crate::rounds::RoundAsked {
                            from,
                            feed,
                            state,
                            responses,
                            owner,
                            token,
                            capabilities,
                        },
                    );
                }
            }
        }
    }

    /// Closes the listen stream of every session this replica holds, telling
    /// clients to reconnect after `retry` (to another replica, when this one
    /// is shutting down).
    pub async fn close_listen_streams(&self, retry: Duration) {
        let handles: Vec<_> = self.inner.sessions.read().await.values().cloned().collect();
        for handle in handles {
            if let Err(error) = handle.close_standalone_sse_stream(Some(retry)).await {
                tracing::debug!(%error, "could not close a session's listen stream");
            }
        }
    }
}

/// The id of a client's answer (a response or error), if `message` is one.
fn answer_id(message: &mut ClientJsonRpcMessage) -> Option<&mut RequestId> {
    match message {
        JsonRpcMessage::Response(response) => Some(&mut response.id),
        JsonRpcMessage::Error(error) => error.id.as_mut(),
        _ => None,
    }
}

/// How a replica sharing sessions marks what it sends: event ids start with
/// the replica and request ([`ReplicaEvent`]), and the ids of questions to
/// the client name the replica ([`relay::question_id`]).
#[derive(Debug, Clone)]
struct Marks {
    event_prefix: String,
    replica: String,
}

/// Whether `message` is rmcp's replay of a handshake into a session restored
/// from the store (not the client's).
fn is_replay(message: &ClientJsonRpcMessage) -> bool {
    use rmcp::model::GetExtensions as _;
    use rmcp::transport::streamable_http_server::session::SessionRestoreMarker;
    match message {
        JsonRpcMessage::Request(r) => r
            .request
            .extensions()
            .get::<SessionRestoreMarker>()
            .is_some(),
        JsonRpcMessage::Notification(n) => n
            .notification
            .extensions()
            .get::<SessionRestoreMarker>()
            .is_some(),
        _ => false,
    }
}

/// With a session store, event ids say which replica wrote them and for
/// which request: `<replica>.<request id, base64url of its JSON>.<rmcp's id>`
/// (empty request for the listen stream). A replica asked to resume another
/// one's stream can then answer the request with an error instead of
/// leaving the client to reconnect forever to a stream it does not have.
#[derive(Debug)]
struct ReplicaEvent<'a> {
    replica: &'a str,
    request: Option<RequestId>,
    local: &'a str,
}

impl<'a> ReplicaEvent<'a> {
    fn parse(id: &'a str) -> Option<Self> {
        let (replica, rest) = id.split_once('.')?;
        let (request, local) = rest.split_once('.')?;
        let request = if request.is_empty() {
            None
        } else {
            let raw = URL_SAFE_NO_PAD.decode(request).ok()?;
            Some(serde_json::from_slice(&raw).ok()?)
        };
        Some(Self {
            replica,
            request,
            local,
        })
    }
}

/// `stream` marked by `marks` (unchanged without).
fn tagged(
    stream: impl Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    marks: Option<Marks>,
) -> impl Stream<Item = ServerSseMessage> + Send + Sync + 'static {
    stream.map(move |mut event| {
        let Some(marks) = &marks else {
            return event;
        };
        if let Some(id) = &event.event_id {
            event.event_id = Some(format!("{}{id}", marks.event_prefix));
        }
        if let Some(message) = &event.message
            && let JsonRpcMessage::Request(question) = message.as_ref()
            && let Some(asked) = relay::question_id(&marks.replica, &question.id)
        {
            let mut question = question.clone();
            question.id = asked;
            event.message = Some(Arc::new(JsonRpcMessage::Request(question)));
        }
        event
    })
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
            let Some(stream) = this.sessions.forget(&stream_key) else {
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

    /// Forgets the call's stream when the returned guard drops, however the
    /// call ends.
    pub fn forget_when_done(&self, context: &RequestContext<RoleServer>) -> ForgetStream {
        let session = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok());
        ForgetStream {
            sessions: self.sessions.clone(),
            key: session.map(|session| key(session, &context.id)),
        }
    }
}

/// Forgets one tool call's stream when dropped.
#[derive(Debug)]
pub struct ForgetStream {
    sessions: Arc<PollingSessions>,
    key: Option<StreamKey>,
}

impl Drop for ForgetStream {
    fn drop(&mut self) {
        if let Some(key) = &self.key {
            self.sessions.forget(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_sessions: usize, max_calls_per_session: usize) -> ClientLimits {
        ClientLimits {
            max_sessions,
            max_calls_per_session,
            ..ClientLimits::default()
        }
    }

    #[tokio::test]
    async fn sessions_take_a_slot_until_they_close() {
        let sessions = PollingSessions::new(&limits(2, 4), false);
        let (a, _ta) = sessions.create_session().await.expect("session a");
        let (_b, _tb) = sessions.create_session().await.expect("session b");
        assert_eq!(sessions.open(), 2);
        assert!(sessions.try_admit().is_none(), "max_sessions = 2 are open");
        let Err(error) = sessions.create_session().await else {
            panic!("a third session was created");
        };
        assert!(error.to_string().contains("max_sessions = 2"), "{error}");
        sessions.close_session(&a).await.expect("close a");
        assert_eq!(sessions.open(), 1);
        assert!(
            sessions.create_session().await.is_ok(),
            "a closed session frees its slot"
        );
    }

    #[tokio::test]
    async fn an_admitted_slot_is_the_one_the_session_holds() {
        let sessions = PollingSessions::new(&limits(1, 4), false);
        let slot = sessions.try_admit().expect("slot");
        let (a, _ta) = PollingSessions::admitting(slot, sessions.create_session())
            .await
            .expect("the admitted slot is used, not a second one");
        assert!(sessions.try_admit().is_none());
        sessions.close_session(&a).await.expect("close");
        // A request dropped before it created its session gives the slot back.
        let slot = sessions.try_admit().expect("slot again");
        drop(PollingSessions::admitting(
            slot,
            std::future::pending::<()>(),
        ));
        assert!(sessions.try_admit().is_some(), "the slot is not leaked");
    }

    #[test]
    fn event_ids_name_their_replica_and_request() {
        let request = RequestId::Number(7);
        let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&request).expect("JSON"));
        let id = format!("a1b2c3.{encoded}.3/2");
        let event = ReplicaEvent::parse(&id).expect("a replica's id");
        assert_eq!(event.replica, "a1b2c3");
        assert_eq!(event.request, Some(request));
        assert_eq!(event.local, "3/2", "rmcp's own id is kept whole");
        let listen = ReplicaEvent::parse("a1b2c3..4").expect("a listen stream's id");
        assert_eq!(listen.request, None);
        assert!(
            ReplicaEvent::parse("3/2").is_none(),
            "rmcp's ids are left to rmcp"
        );
        assert!(
            ReplicaEvent::parse("a1.!!.3").is_none(),
            "a malformed request part is no replica's"
        );
    }

    #[test]
    fn remembered_streams_are_bounded_per_session_and_forgotten() {
        let sessions = PollingSessions::new(&limits(1, 2), true);
        {
            let mut streams = sessions.streams();
            let calls = streams.entry("s".to_owned()).or_default();
            calls.insert("1".to_owned(), 1);
            calls.insert("2".to_owned(), 2);
        }
        assert_eq!(sessions.forget(&("s".to_owned(), "1".to_owned())), Some(1));
        assert_eq!(sessions.forget(&("s".to_owned(), "2".to_owned())), Some(2));
        assert!(
            sessions.streams().is_empty(),
            "a session without calls in flight leaves no entry"
        );
    }
}
