//! A request's stream resumed on another replica than the one running it.
//!
//! A client resumes a stream (`GET` with `Last-Event-ID`) wherever the
//! balancer sends it: after `--sse-poll-after` closed its tool call's stream,
//! or after its connection broke. The events are where the request runs, so
//! the replica the client reached (B) asks that one (A) to resume the stream
//! there (`Resume`, over A's channel) and to pass every event on
//! (`Event`, over B's channel, then `End`); B writes them to the client. A
//! stream of a replica that is gone (nobody listens on its channel) is
//! answered at once with `replica_lost`, and so is one whose replica dies
//! while B waits: B checks every [`LIVENESS_EVERY`] that A still listens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use rmcp::model::{RequestId, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::SharedSessions;
use super::relay::{Relayed, RelayedBody};

/// Events of one resumed stream waiting to be written to its client; a
/// client that reads slower than this is cut off, and resumes again from
/// the last event it got.
pub const FEED_QUEUE: usize = 256;
/// How often a replica waiting for another one's events checks that it is
/// still there.
pub const LIVENESS_EVERY: Duration = Duration::from_secs(2);

/// One SSE event, as replicas pass it on.
#[derive(Debug, Serialize, Deserialize)]
pub struct RelayedEvent {
    event_id: Option<String>,
    message: Option<ServerJsonRpcMessage>,
    retry_ms: Option<u64>,
}

impl RelayedEvent {
    /// An event carrying `message` alone.
    pub fn message(message: ServerJsonRpcMessage) -> Self {
        Self {
            event_id: None,
            message: Some(message),
            retry_ms: None,
        }
    }

    /// The message it carries.
    pub fn into_message(self) -> Option<ServerJsonRpcMessage> {
        self.message
    }
}

impl From<&ServerSseMessage> for RelayedEvent {
    fn from(event: &ServerSseMessage) -> Self {
        Self {
            event_id: event.event_id.clone(),
            message: event.message.as_deref().cloned(),
            retry_ms: event
                .retry
                .map(|r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

impl From<RelayedEvent> for ServerSseMessage {
    fn from(event: RelayedEvent) -> Self {
        let mut out = ServerSseMessage::default();
        out.event_id = event.event_id;
        out.message = event.message.map(Arc::new);
        out.retry = event.retry_ms.map(Duration::from_millis);
        out
    }
}

/// What a feed receives.
#[derive(Debug)]
pub enum FeedItem {
    /// The next event.
    Event(Box<RelayedEvent>),
    /// The stream ended.
    End,
    /// The answer to a request relayed to another replica (JSON: a result,
    /// or `{"error": ...}`).
    Outcome(serde_json::Value),
}

/// The streams this replica is resuming for its clients from other
/// replicas, by feed number.
#[derive(Debug, Default)]
pub struct Feeds {
    next: AtomicU64,
    feeds: Mutex<HashMap<u64, mpsc::Sender<FeedItem>>>,
}

impl Feeds {
    fn feeds(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<FeedItem>>> {
        self.feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new feed: its number and what arrives for it.
    pub fn open(&self) -> (u64, mpsc::Receiver<FeedItem>) {
        let feed = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, items) = mpsc::channel(FEED_QUEUE);
        self.feeds().insert(feed, sender);
        (feed, items)
    }

    /// Forgets feed `feed`.
    pub fn close(&self, feed: u64) {
        self.feeds().remove(&feed);
    }

    /// Passes what another replica sent on to feed `feed`; a feed whose
    /// client does not keep up is cut off.
    pub fn deliver(&self, feed: u64, item: FeedItem) {
        let mut feeds = self.feeds();
        let Some(sender) = feeds.get(&feed) else {
            return;
        };
        if sender.try_send(item).is_err() {
            tracing::info!(
                "a client did not keep up with a stream resumed from another replica: it is closed, and the client resumes it again"
            );
            feeds.remove(&feed);
        }
    }
}

/// The error that answers request `request` whose replica is gone.
pub fn replica_lost(request: RequestId) -> ServerSseMessage {
    let lost = ServerJsonRpcMessage::error(
        rmcp::model::ErrorData::new(
            rmcp::model::ErrorCode(crate::admission::LIMIT_REACHED as i32),
            "the router replica that was running this request stopped (or the connection to it was lost) before it answered: its answer is lost, and the request may or may not have taken effect; retry it (the session goes on, on another replica)",
            Some(serde_json::json!({ "reason": "replica_lost" })),
        ),
        Some(request),
    );
    ServerSseMessage::from_message(lost)
}

/// Resumes, from replica `replica`, the stream of request `request` of
/// session `session` after its event `local` (rmcp's id there). `None` when
/// that replica is gone (or Redis does not answer): the request's answer is
/// lost.
pub async fn from_replica(
    shared: &SharedSessions,
    feeds: &Arc<Feeds>,
    session: &str,
    replica: &str,
    request: RequestId,
    local: &str,
) -> Option<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static> {
    let (feed, mut items) = feeds.open();
    let asked = Relayed {
        session: session.to_owned(),
        body: RelayedBody::Resume {
            from: shared.replica().to_owned(),
            feed,
            local: local.to_owned(),
            request: request.clone(),
        },
    };
    if !matches!(shared.relay(replica, &asked).await, Ok(true)) {
        feeds.close(feed);
        return None;
    }
    // Written to the client from a task of its own, which ends when the
    // client goes away (its stream is dropped) or the feed ends.
    let (out, events) = mpsc::channel(FEED_QUEUE);
    let (shared, feeds, replica) = (shared.clone(), feeds.clone(), replica.to_owned());
    tokio::spawn(async move {
        let mut check = tokio::time::interval(LIVENESS_EVERY);
        check.tick().await;
        loop {
            let item = tokio::select! {
                item = items.recv() => item,
                () = out.closed() => break,
                _ = check.tick() => {
                    if matches!(shared.listens(&replica).await, Ok(false)) {
                        tracing::info!("the replica running a resumed request stopped: answered that its answer is lost");
                        let _ = out.send(replica_lost(request.clone())).await;
                        break;
                    }
                    continue;
                }
            };
            match item {
                Some(FeedItem::Event(event)) => {
                    if out.send((*event).into()).await.is_err() {
                        break;
                    }
                }
                Some(FeedItem::End | FeedItem::Outcome(_)) | None => break,
            }
        }
        feeds.close(feed);
    });
    Some(ReceiverStream::new(events))
}

/// Passes the events of `stream` (a stream resumed here for replica `to`)
/// to feed `feed` there, then its end.
pub fn forward(
    shared: SharedSessions,
    session: String,
    to: String,
    feed: u64,
    stream: impl Stream<Item = ServerSseMessage> + Send + 'static,
) {
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let message = Relayed {
                session: session.clone(),
                body: RelayedBody::Event {
                    feed,
                    event: RelayedEvent::from(&event),
                },
            };
            if !matches!(shared.relay(&to, &message).await, Ok(true)) {
                // The replica that asked is gone.
                return;
            }
        }
        let end = Relayed {
            session,
            body: RelayedBody::End { feed },
        };
        let _ = shared.relay(&to, &end).await;
    });
}

impl SharedSessions {
    /// Whether replica `replica` listens on its channel (is alive).
    pub async fn listens(&self, replica: &str) -> Result<bool, super::StoreError> {
        let mut command = redis::cmd("PUBSUB");
        command.arg("NUMSUB").arg(self.channel(replica));
        let answer: (String, i64) = self.cmd(command).await?;
        Ok(answer.1 > 0)
    }
}
