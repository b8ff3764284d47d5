//! Questions for stateless clients: input-required rounds (SEP-2322).
//!
//! A client with a session is asked a connector's question with a
//! server-to-client request ([`crate::interact`]). A stateless (2026-07-28)
//! request has no way back to the client, so the tool call is *parked*
//! instead: the request is answered with an `InputRequiredResult` carrying
//! the question and a `requestState` that names the parked call; the client
//! asks its user (or model) and sends the `tools/call` again with the answer
//! and the state; the router hands the answer to the connector and waits for
//! the call again, until it ends or asks once more.
//!
//! The state is `<replica>.<128 random bits>`: unguessable, bound to the
//! principal that made the call (another principal's retry finds nothing),
//! and with replicas sharing a session store, the retry may reach any of
//! them: it is relayed to the one holding the parked call
//! ([`crate::session::relay`]). At most [`MAX_PARKED`] calls wait per
//! replica, [`MAX_PARKED_PER_PRINCIPAL`] of them one principal's (so one
//! principal cannot take every place and have everyone else's questions
//! refused), each at most [`PARK_TIMEOUT`] for its retry (the connector's call
//! timeout usually ends it sooner).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolResponse, CallToolResult, ClientCapabilities, InputRequest, InputRequests,
    InputRequiredResult, InputResponses, ProgressToken, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::{ErrorData as McpError, Peer, RoleServer};
use serde_json::json;
use switchboard_proto::mcp::v1 as pb;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::call::{CallError, Notice};
use crate::interact;
use crate::limits::LimitLog;
use crate::session::SharedSessions;
use crate::session::relay::{Relayed, RelayedBody};
use crate::session::resume::RelayedEvent;
use crate::upstream::Upstream;

/// Calls waiting for their client's answer, per replica.
pub const MAX_PARKED: usize = 1024;
/// Calls of one principal waiting for their answers, per replica.
pub const MAX_PARKED_PER_PRINCIPAL: usize = 64;
/// How long a parked call waits for the retry that answers it.
pub const PARK_TIMEOUT: Duration = Duration::from_secs(600);
/// The key of the one question an `InputRequiredResult` carries.
const QUESTION: &str = "question";

static PARKED_REFUSED: LimitLog = LimitLog::new("parked calls");
static PRINCIPAL_PARKED_REFUSED: LimitLog = LimitLog::new("parked calls per principal");

/// A tool call running beside the requests that drive it.
pub struct Running {
    /// The pipeline's call.
    pub call: tokio::task::JoinHandle<Result<CallToolResult, CallError>>,
    /// Its progress, logs and questions.
    pub queue: mpsc::Receiver<Notice>,
    /// Cancels the call (it outlives any one request).
    pub cancel: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A call nobody drives any more (its retry never came, the client
        // went away) is cancelled at its connector.
        self.cancel.cancel();
    }
}

/// A call waiting for the answer to `ask`.
struct Parked {
    running: Running,
    ask: pb::ClientRequest,
    upstream: Upstream,
    /// Who made the call (the limits' principal key).
    owner: String,
    since: Instant,
}

/// The calls of this replica waiting for answers.
pub struct Parking {
    replica: String,
    parked: Mutex<HashMap<String, Parked>>,
}

impl std::fmt::Debug for Parking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parking")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// Where a round's progress and logs go, and what its client can be asked.
pub struct Outlet<'a> {
    /// The request being served (stateless: its own stream), or the replica
    /// it reached (the round was relayed here).
    pub to: Via<'a>,
    /// Its progress token, if it sent one.
    pub token: Option<ProgressToken>,
    /// What the client can be asked (its `_meta` capabilities).
    pub capabilities: Option<ClientCapabilities>,
}

/// How a round's notifications reach the client.
pub enum Via<'a> {
    /// The request's own peer.
    Peer(&'a Peer<RoleServer>),
    /// Feed `feed` of replica `replica`, which serves the request.
    Relay {
        shared: &'a SharedSessions,
        replica: String,
        feed: u64,
    },
}

impl Outlet<'_> {
    async fn notify(&self, notification: ServerNotification) {
        match &self.to {
            Via::Peer(peer) => {
                let _ = peer.send_notification(notification).await;
            }
            Via::Relay {
                shared,
                replica,
                feed,
            } => {
                let message = Relayed {
                    session: String::new(),
                    body: RelayedBody::Event {
                        feed: *feed,
                        event: RelayedEvent::message(ServerJsonRpcMessage::notification(
                            notification,
                        )),
                    },
                };
                let _ = shared.relay(replica, &message).await;
            }
        }
    }
}

/// Why a retry's `requestState` opens nothing here.
pub fn unknown_state() -> McpError {
    McpError::invalid_params(
        "requestState names no call waiting for an answer (it ended, expired, or is another principal's): call the tool again without it",
        Some(json!({ "setting": "requestState" })),
    )
}

impl Parking {
    /// Parked calls of the replica named `replica` (in every state it hands
    /// out).
    pub fn new(replica: String) -> Self {
        Self {
            replica,
            parked: Mutex::default(),
        }
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The replica a `requestState` names, and its key there.
    pub fn split(state: &str) -> Option<(&str, &str)> {
        state.split_once('.')
    }

    /// Whether `state` names a call of this replica.
    pub fn is_mine(&self, state: &str) -> bool {
        Self::split(state).is_some_and(|(replica, _)| replica == self.replica)
    }

    /// Drives `running` for the request whose outlet is `outlet`: passes its
    /// progress and logs on, and answers with its result, or with an
    /// `InputRequiredResult` when it asks a question (the call is parked,
    /// for `owner`). `request_cancelled` fires when the client gives up on
    /// this request (the call is cancelled then).
    pub async fn drive(
        &self,
        mut running: Running,
        outlet: &Outlet<'_>,
        owner: &str,
        request_cancelled: &CancellationToken,
    ) -> Result<CallToolResponse, McpError> {
        loop {
            let notice = tokio::select! {
                notice = running.queue.recv() => notice,
                () = request_cancelled.cancelled() => {
                    running.cancel.cancel();
                    return Err(McpError::internal_error("the request was cancelled", None));
                }
            };
            let Some(notice) = notice else {
                // The call ended: every notice is passed on before its result.
                let result = (&mut running.call).await;
                return Ok(match result {
                    Ok(Ok(result)) => result.into(),
                    Ok(Err(CallError::Failed(failure))) => {
                        CallToolResult::error(vec![rmcp::model::ContentBlock::text(
                            failure.message,
                        )])
                        .into()
                    }
                    Ok(Err(CallError::Refused(refusal))) => return Err(refusal.into()),
                    Err(_) => {
                        return Err(McpError::internal_error(
                            "the tool call stopped unexpectedly",
                            None,
                        ));
                    }
                });
            };
            match notice {
                Notice::Progress {
                    progress,
                    total,
                    message,
                } => {
                    let Some(token) = outlet.token.clone() else {
                        continue;
                    };
                    outlet
                        .notify(crate::mcp::progress_notification(
                            token, progress, total, message,
                        ))
                        .await;
                }
                Notice::Log {
                    level,
                    logger,
                    data,
                } => {
                    if let Some(log) = crate::mcp::log_notification(level, logger, data) {
                        outlet.notify(log).await;
                    }
                }
                Notice::Ask { ask, upstream } => {
                    match question(&ask, &upstream, outlet.capabilities.as_ref()) {
                        Ok(request) => {
                            let state = self.park(Parked {
                                running,
                                ask,
                                upstream,
                                owner: owner.to_owned(),
                                since: Instant::now(),
                            })?;
                            let mut requests = InputRequests::new();
                            requests.insert(QUESTION.to_owned(), request);
                            return Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
                                Some(requests),
                                Some(state),
                            )));
                        }
                        Err(why) => interact::refuse(&upstream, ask, &why).await,
                    }
                }
            }
        }
    }

    /// Parks `parked`: its `requestState`, or an error when its principal
    /// has [`MAX_PARKED_PER_PRINCIPAL`] calls waiting, or [`MAX_PARKED`] calls
    /// wait already (the call is cancelled).
    fn park(&self, parked: Parked) -> Result<String, McpError> {
        let mut calls = self.parked();
        calls.retain(|_, p| p.since.elapsed() < PARK_TIMEOUT && !p.running.call.is_finished());
        let principals = calls.values().filter(|p| p.owner == parked.owner).count();
        if principals >= MAX_PARKED_PER_PRINCIPAL {
            PRINCIPAL_PARKED_REFUSED.hit(
                MAX_PARKED_PER_PRINCIPAL,
                "a principal has as many tool calls waiting for its answers as the router allows one; its questions refused",
            );
            return Err(McpError::internal_error(
                format!(
                    "{MAX_PARKED_PER_PRINCIPAL} of your tool calls already wait for your answers on this router, the most it allows one principal (parked calls per principal): answer them (retry each with its requestState), or wait until they expire"
                ),
                Some(json!({
                    "setting": "parked calls per principal",
                    "limit": MAX_PARKED_PER_PRINCIPAL
                })),
            ));
        }
        if calls.len() >= MAX_PARKED {
            PARKED_REFUSED.hit(
                MAX_PARKED,
                "as many tool calls wait for their clients' answers as the router allows; questions refused",
            );
            return Err(McpError::internal_error(
                format!(
                    "the router has {MAX_PARKED} tool calls waiting for their clients' answers, the most it allows: retry later"
                ),
                Some(json!({ "setting": "parked calls", "limit": MAX_PARKED })),
            ));
        }
        let key = hex::encode(rand::random::<[u8; 16]>());
        calls.insert(key.clone(), parked);
        Ok(format!("{}.{key}", self.replica))
    }

    /// Answers the question of the call `state` names with `responses`, if
    /// `owner` accepts the principal that made it, and gives the call (and
    /// that principal) back to be driven on.
    pub async fn resume(
        &self,
        state: &str,
        responses: Option<&InputResponses>,
        owner: impl Fn(&str) -> bool,
    ) -> Result<(Running, String), McpError> {
        let Some((_, key)) = Self::split(state) else {
            return Err(unknown_state());
        };
        let parked = {
            let mut calls = self.parked();
            match calls.get(key) {
                Some(parked) if owner(&parked.owner) => calls.remove(key),
                _ => None,
            }
        };
        let Some(parked) = parked else {
            return Err(unknown_state());
        };
        let answer = responses.and_then(|r| r.get(QUESTION));
        let reply = match (answer, &parked.ask.request) {
            (None, _) => pb::reply_request::Reply::Error(
                "the client answered without a response to the question".to_owned(),
            ),
            (Some(answer), Some(pb::client_request::Request::Elicit(_))) => {
                interact::elicitation_reply(answer)
            }
            (Some(answer), Some(pb::client_request::Request::Sample(_))) => {
                interact::sampling_reply(answer)
            }
            (Some(_), None) => {
                pb::reply_request::Reply::Error("the connector asked nothing".to_owned())
            }
        };
        interact::deliver(&parked.upstream, parked.ask.id.clone(), reply).await;
        Ok((parked.running, parked.owner))
    }
}

/// The connector's question `ask` as an input request for a client with
/// `capabilities`, or why it cannot be put.
fn question(
    ask: &pb::ClientRequest,
    upstream: &Upstream,
    capabilities: Option<&ClientCapabilities>,
) -> Result<InputRequest, String> {
    let (method, params, what, supported) = match &ask.request {
        Some(pb::client_request::Request::Elicit(e)) => (
            "elicitation/create",
            interact::elicitation_params(e),
            "elicitation (user input)",
            capabilities.is_some_and(|c| c.elicitation.is_some()),
        ),
        Some(pb::client_request::Request::Sample(s)) => (
            "sampling/createMessage",
            interact::sampling_params(s, &upstream.config().prefix),
            "sampling (LLM completions)",
            capabilities.is_some_and(|c| c.sampling.is_some()),
        ),
        None => return Err("the connector asked nothing (empty ClientRequest)".to_owned()),
    };
    if !supported {
        return Err(format!("the MCP client does not support {what}"));
    }
    serde_json::from_value(json!({ "method": method, "params": params }))
        .map_err(|err| format!("the connector's question is not one MCP allows: {err}"))
}

/// Whether a request's answers are given in input-required rounds: a
/// stateless request (2026-07-28 or later).
pub fn applies(protocol: Option<&rmcp::model::ProtocolVersion>) -> bool {
    protocol.is_some_and(|v| v.as_str() >= rmcp::model::ProtocolVersion::V_2026_07_28.as_str())
}

/// The error of a round whose call was on a replica that is gone.
fn replica_lost() -> McpError {
    McpError::new(
        rmcp::model::ErrorCode(crate::admission::LIMIT_REACHED as i32),
        "the router replica holding this tool call (waiting for the answer) stopped before it answered: the answer is lost, and the call may or may not have taken effect; call the tool again",
        Some(json!({ "reason": "replica_lost" })),
    )
}

/// The outcome of a round as JSON, for the replica that relayed it.
fn outcome_json(outcome: Result<CallToolResponse, McpError>) -> serde_json::Value {
    match outcome {
        Ok(response) => serde_json::to_value(rmcp::model::ServerResult::from(response))
            .unwrap_or_else(|error| {
                json!({ "error": McpError::internal_error(format!("unreadable answer: {error}"), None) })
            }),
        Err(error) => json!({ "error": error }),
    }
}

/// The outcome [`outcome_json`] wrote.
fn outcome_of(outcome: serde_json::Value) -> Result<CallToolResponse, McpError> {
    let unreadable = |error: serde_json::Error| {
        McpError::internal_error(
            format!("another replica answered this round unreadably: {error}"),
            None,
        )
    };
    if let Some(error) = outcome.get("error") {
        return Err(serde_json::from_value(error.clone()).map_err(unreadable)?);
    }
    if outcome["resultType"] == "input_required" {
        let result: InputRequiredResult = serde_json::from_value(outcome).map_err(unreadable)?;
        return Ok(CallToolResponse::InputRequired(result));
    }
    let result: CallToolResult = serde_json::from_value(outcome).map_err(unreadable)?;
    Ok(result.into())
}

/// Forgets a feed when dropped.
struct FeedGuard<'a> {
    feeds: &'a crate::session::resume::Feeds,
    feed: u64,
}

impl Drop for FeedGuard<'_> {
    fn drop(&mut self) {
        self.feeds.close(self.feed);
    }
}

/// A stateless client's retry that reached this replica for a call parked
/// on another one (`state` names it): relayed there, its progress and logs
/// passed on to `outlet`, its answer returned.
pub async fn relay_round(
    shared: &SharedSessions,
    feeds: &crate::session::resume::Feeds,
    outlet: &Outlet<'_>,
    state: &str,
    responses: Option<InputResponses>,
    owner: &str,
    cancelled: &CancellationToken,
) -> Result<CallToolResponse, McpError> {
    use crate::session::resume::{FeedItem, LIVENESS_EVERY};
    let Some((replica, _)) = Parking::split(state) else {
        return Err(unknown_state());
    };
    let (feed, mut items) = feeds.open();
    let _guard = FeedGuard { feeds, feed };
    let asked = Relayed {
        session: String::new(),
        body: RelayedBody::Round {
            from: shared.replica().to_owned(),
            feed,
            state: state.to_owned(),
            responses,
            owner: shared.seal(owner),
            token: outlet.token.clone(),
            capabilities: outlet.capabilities.clone(),
        },
    };
    match shared.relay(replica, &asked).await {
        Ok(true) => {}
        Ok(false) => return Err(replica_lost()),
        Err(error) => {
            return Err(McpError::internal_error(
                error.to_string(),
                Some(json!({ "setting": "session_store" })),
            ));
        }
    }
    let mut check = tokio::time::interval(LIVENESS_EVERY);
    check.tick().await;
    loop {
        tokio::select! {
            item = items.recv() => match item {
                Some(FeedItem::Event(event)) => {
                    if let Some(rmcp::model::JsonRpcMessage::Notification(n)) = event.into_message() {
                        outlet.notify(n.notification).await;
                    }
                }
                Some(FeedItem::Outcome(outcome)) => return outcome_of(outcome),
                Some(FeedItem::End) | None => return Err(replica_lost()),
            },
            _ = check.tick() => {
                if matches!(shared.listens(replica).await, Ok(false)) {
                    return Err(replica_lost());
                }
            }
            () = cancelled.cancelled() => {
                return Err(McpError::internal_error("the request was cancelled", None));
            }
        }
    }
}

/// What a relayed round carries.
pub struct RoundAsked {
    /// The replica the retry reached, and its feed there.
    pub from: String,
    pub feed: u64,
    /// The parked call's state, the client's answers.
    pub state: String,
    pub responses: Option<InputResponses>,
    /// The retrying principal, sealed ([`SharedSessions::seal`]).
    pub owner: String,
    pub token: Option<ProgressToken>,
    pub capabilities: Option<ClientCapabilities>,
}

/// Serves a round another replica relayed here: answers the parked call,
/// drives it on, and sends the outcome back.
pub fn serve_round(parking: std::sync::Arc<Parking>, shared: SharedSessions, asked: RoundAsked) {
    tokio::spawn(async move {
        let outlet = Outlet {
            to: Via::Relay {
                shared: &shared,
                replica: asked.from.clone(),
                feed: asked.feed,
            },
            token: asked.token,
            capabilities: asked.capabilities,
        };
        let resumed = parking
            .resume(&asked.state, asked.responses.as_ref(), |parked| {
                shared.opens(&asked.owner, parked)
            })
            .await;
        let outcome = match resumed {
            Ok((running, owner)) => {
                parking
                    .drive(running, &outlet, &owner, &CancellationToken::new())
                    .await
            }
            Err(error) => Err(error),
        };
        let answer = Relayed {
            session: String::new(),
            body: RelayedBody::Outcome {
                feed: asked.feed,
                outcome: outcome_json(outcome),
            },
        };
        if let Err(error) = shared.relay(&asked.from, &answer).await {
            tracing::warn!(%error, "the outcome of a relayed round could not be sent back");
        }
    });
}
