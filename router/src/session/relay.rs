//! Server-to-client traffic between the replicas that share a session.
//!
//! A shared session has a copy on every replica that served it, and what
//! one copy sends the client must sometimes leave through another replica:
//!
//! * a resource's update notification is sent by the copy whose replica took
//!   the `resources/subscribe` (it watches the connector), but the client
//!   hears it only on its listen stream (`GET`), which may be held by another
//!   replica: the replica that opens a listen stream records itself as the
//!   session's `listen` field, and the others publish the notification to it;
//! * a question (`elicitation/create`, `sampling/createMessage`) is asked by
//!   the copy whose replica runs the call, but the client's answer is a POST
//!   that the balancer may send to any replica: the ids of the questions a
//!   replica asks name that replica (`<replica>.<n>`, [`answer_to`]), and an
//!   answer reaching another replica is published to the one that asked.
//!
//! Every replica subscribes to one Redis channel of its own,
//! `<prefix>r:<replica>`, and delivers what arrives there ([`listen`]): an
//! answer into its copy of the session, a notification onto the session's
//! listen stream it holds. Nothing else is broadcast, so a replica hears only
//! what is for it. With Redis down nothing is relayed (sessions are refused
//! then anyway); a replica that is gone has no subscriber, and the
//! publishing replica falls back to its own copy.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rmcp::model::{ClientJsonRpcMessage, NumberOrString, RequestId, ServerJsonRpcMessage};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{SharedSessions, StoreError};
use crate::polling::PollingSessions;

/// What one replica sends another about a session.
#[derive(Debug, Serialize, Deserialize)]
pub struct Relayed {
    /// The session it belongs to.
    pub session: String,
    /// The message.
    #[serde(flatten)]
    pub body: RelayedBody,
}

/// The message of a [`Relayed`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayedBody {
    /// The client's answer to a question the receiving replica asked.
    Answer(ClientJsonRpcMessage),
    /// A notification for the listen stream the receiving replica holds.
    Notice(ServerJsonRpcMessage),
    /// The session subscribed to this resource: watch it for the listen
    /// stream the receiving replica holds.
    Watch(String),
    /// As [`Self::Watch`], then an [`Self::End`] for feed `feed` of replica
    /// `from` once the watch is in place: the subscribing request answers
    /// only when an update right after it cannot be missed.
    WatchThenTell {
        uri: String,
        from: String,
        feed: u64,
    },
    /// The session unsubscribed from this resource.
    Unwatch(String),
    /// Resume the stream of `request` after rmcp's event `local` here, and
    /// pass its events to feed `feed` of replica `from`
    /// ([`super::resume`]).
    Resume {
        from: String,
        feed: u64,
        local: String,
        request: RequestId,
    },
    /// The next event of feed `feed` of the receiving replica.
    Event {
        feed: u64,
        event: super::resume::RelayedEvent,
    },
    /// Feed `feed` of the receiving replica ended.
    End { feed: u64 },
    /// Answer the call parked under `state` with `responses` (a stateless
    /// client's retry reached replica `from`), for the principal `owner`
    /// (sealed with the session key), and pass what follows to feed `feed`
    /// of `from` ([`crate::rounds`]).
    Round {
        from: String,
        feed: u64,
        state: String,
        responses: Option<rmcp::model::InputResponses>,
        owner: String,
        token: Option<rmcp::model::ProgressToken>,
        capabilities: Option<rmcp::model::ClientCapabilities>,
    },
    /// The outcome of a relayed round: the request's answer.
    Outcome {
        feed: u64,
        outcome: serde_json::Value,
    },
}

impl SharedSessions {
    /// The channel replica `replica` listens on.
    pub(super) fn channel(&self, replica: &str) -> String {
        format!("{}r:{replica}", self.inner.prefix)
    }

    /// Sends `message` to replica `replica`: `false` when no replica listens
    /// there (it is gone).
    pub async fn relay(&self, replica: &str, message: &Relayed) -> Result<bool, StoreError> {
        let payload = serde_json::to_string(message)
            .map_err(|e| StoreError::Malformed(format!("relayed message: {e}")))?;
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.channel(replica)).arg(payload);
        let receivers: i64 = self.cmd(command).await?;
        Ok(receivers > 0)
    }

    /// Sets `field` of session `id` to `value`, only while Redis holds the
    /// session: a key recreated here would have no expiry.
    pub(super) async fn set_field(
        &self,
        id: &str,
        field: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let mut command = redis::cmd("EVAL");
        command
            .arg(
                "if redis.call('EXISTS', KEYS[1]) == 1 then \
                 redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 0",
            )
            .arg(1)
            .arg(self.key(id))
            .arg(field)
            .arg(value);
        let _: i64 = self.cmd(command).await?;
        Ok(())
    }

    /// Records this replica as the holder of session `id`'s listen stream.
    pub async fn hold_listen_stream(&self, id: &str) -> Result<(), StoreError> {
        self.set_field(id, "listen", self.replica()).await
    }

    /// The replica holding session `id`'s listen stream, if one recorded it.
    pub async fn listen_stream_holder(&self, id: &str) -> Result<Option<String>, StoreError> {
        let mut command = redis::cmd("HGET");
        command.arg(self.key(id)).arg("listen");
        self.cmd(command).await
    }

    /// Records session `id`'s log level (`logging/setLevel`), for the calls
    /// every replica runs.
    pub async fn set_log_level(&self, id: &str, level: &str) -> Result<(), StoreError> {
        self.set_field(id, "level", level).await
    }

    /// Sends `notification` of session `id` to the client: through the
    /// replica that holds the session's listen stream when that is another
    /// one, else through `local` (this replica's copy). Whether it was sent.
    pub async fn notify<F, Fut>(
        &self,
        id: &str,
        notification: ServerJsonRpcMessage,
        local: F,
    ) -> bool
    where
        F: FnOnce(ServerJsonRpcMessage) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        match self.listen_stream_holder(id).await {
            Ok(Some(holder)) if holder != self.replica() => {
                let message = Relayed {
                    session: id.to_owned(),
                    body: RelayedBody::Notice(notification),
                };
                match self.relay(&holder, &message).await {
                    Ok(true) => return true,
                    Ok(false) => {
                        tracing::debug!(
                            "the replica that held a session's listen stream is gone: the notification is sent here"
                        );
                    }
                    Err(error) => {
                        tracing::debug!(%error, "a notification could not be relayed");
                    }
                }
                let RelayedBody::Notice(notification) = message.body else {
                    return false;
                };
                local(notification).await
            }
            _ => local(notification).await,
        }
    }
}

/// The id under which this replica asks the client question `local` (its
/// copy's own id): `<replica>.<n>`, so that the answer finds its way back
/// whichever replica it reaches. Ids that are not numbers stay as they are.
pub fn question_id(replica: &str, local: &RequestId) -> Option<RequestId> {
    match local {
        NumberOrString::Number(n) => Some(NumberOrString::String(format!("{replica}.{n}").into())),
        NumberOrString::String(_) => None,
    }
}

/// Which replica asked the question an answer with id `id` answers, and the
/// id the asking copy knows it by; `None` for ids this router did not hand
/// out.
pub fn answer_to(id: &RequestId) -> Option<(&str, RequestId)> {
    let NumberOrString::String(id) = id else {
        return None;
    };
    let (replica, n) = id.split_once('.')?;
    let replica_shaped = replica.len() == 12 && replica.bytes().all(|b| b.is_ascii_hexdigit());
    let n: i64 = n.parse().ok()?;
    replica_shaped.then_some((replica, NumberOrString::Number(n)))
}

/// How long the relay waits before subscribing again after losing Redis.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);
/// Largest relayed message read; a larger one is not this router's.
const MAX_RELAYED_BYTES: usize = 16 * 1024 * 1024;

/// Delivers what other replicas relay to this one, until `shutdown`:
/// subscribed to this replica's channel, again after every loss of Redis.
pub async fn listen(
    shared: SharedSessions,
    sessions: Arc<PollingSessions>,
    shutdown: CancellationToken,
) {
    let channel = shared.channel(shared.replica());
    loop {
        let subscribed = async {
            let mut pubsub = shared.inner.client.get_async_pubsub().await?;
            pubsub.subscribe(channel.as_str()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            () = shutdown.cancelled() => return,
            subscribed = tokio::time::timeout(crate::redis_link::CONNECT_TIMEOUT, subscribed) => subscribed,
        };
        match pubsub {
            Ok(Ok(pubsub)) => {
                tracing::debug!("listening for other replicas' messages");
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        () = shutdown.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let payload: &[u8] = message.get_payload_bytes();
                    if payload.len() > MAX_RELAYED_BYTES {
                        tracing::warn!(
                            bytes = payload.len(),
                            "a relayed message over {MAX_RELAYED_BYTES} bytes was dropped"
                        );
                        continue;
                    }
                    match serde_json::from_slice::<Relayed>(payload) {
                        Ok(relayed) => sessions.deliver(relayed).await,
                        Err(error) => {
                            tracing::warn!(%error, "a relayed message this router cannot read was dropped");
                        }
                    }
                }
                tracing::info!(
                    "lost the subscription to other replicas' messages: subscribing again"
                );
            }
            Ok(Err(error)) => {
                tracing::debug!(
                    error = error.category(),
                    "could not subscribe to other replicas' messages"
                );
            }
            Err(_) => tracing::debug!("subscribing to other replicas' messages timed out"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RESUBSCRIBE_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_s_id_names_its_replica_and_comes_back_whole() {
        let asked = question_id("0123456789ab", &NumberOrString::Number(7)).expect("numbered");
        assert_eq!(asked, NumberOrString::String("0123456789ab.7".into()));
        assert_eq!(
            answer_to(&asked),
            Some(("0123456789ab", NumberOrString::Number(7)))
        );
        assert_eq!(
            question_id("0123456789ab", &NumberOrString::String("x".into())),
            None
        );
        for foreign in [
            NumberOrString::Number(7),
            NumberOrString::String("7".into()),
            NumberOrString::String("abc.7".into()),
            NumberOrString::String("0123456789ab.x".into()),
            NumberOrString::String("0123456789zz.7".into()),
            NumberOrString::String("0123456789ab.".into()),
        ] {
            assert_eq!(answer_to(&foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn relayed_messages_round_trip() {
        let answer: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "id": 3,
            "result": { "action": "accept", "content": { "name": "x" } }
        }))
        .expect("an elicitation answer");
        let relayed = Relayed {
            session: "s".to_owned(),
            body: RelayedBody::Answer(answer),
        };
        let raw = serde_json::to_string(&relayed).expect("serialize");
        let back: Relayed = serde_json::from_str(&raw).expect("deserialize");
        assert_eq!(back.session, "s");
        assert!(matches!(back.body, RelayedBody::Answer(_)), "{raw}");
    }
}
