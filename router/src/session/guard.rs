//! The check in front of every request that names a shared session: the
//! session's key in Redis is renewed first, and only a session Redis still
//! holds is served (restored on this replica if need be).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value as Json, json};

use super::{SharedSessions, StoreError};
use crate::admission::{LIMIT_REACHED, rpc_error};
use crate::polling::PollingSessions;

/// JSON-RPC: the request names a session that does not exist.
const INVALID_REQUEST: i64 = -32600;

/// What [`guard`] needs.
#[derive(Debug)]
pub struct SessionGuard {
    shared: SharedSessions,
    sessions: Arc<PollingSessions>,
}

impl SessionGuard {
    /// Checks requests against `shared`, closing sessions of `sessions`
    /// that Redis no longer holds.
    pub fn new(shared: SharedSessions, sessions: Arc<PollingSessions>) -> Self {
        Self { shared, sessions }
    }
}

/// The JSON-RPC id of a POSTed request, put in its extensions by the
/// admission guard (which reads the body), so an error answered here is the
/// answer to that request: a client cannot match an error without an id.
#[derive(Debug, Clone)]
pub struct MessageId(pub Json);

fn message_id(request: &Request) -> Json {
    request
        .extensions()
        .get::<MessageId>()
        .map(|m| m.0.clone())
        .unwrap_or(Json::Null)
}

/// The answer to request `id` (`null` when unknown) naming a session while
/// the store is unavailable.
pub fn unavailable(error: &StoreError, id: Json) -> Response {
    let mut response = rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        LIMIT_REACHED,
        error.to_string(),
        json!({ "setting": "session_store" }),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The session id a request names, if it is one rmcp would read.
fn session_of(request: &Request) -> Option<String> {
    let id = request.headers().get("mcp-session-id")?.to_str().ok()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// Whether the request speaks a stateless protocol version (2026-07-28 and
/// later), which has no session whatever headers it carries.
fn stateless(request: &Request) -> bool {
    request
        .headers()
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() >= "2026-07-28")
}

/// The middleware on `/mcp` with a session store (see the module docs).
pub async fn guard(
    State(guard): State<Arc<SessionGuard>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(id) = session_of(&request) else {
        return next.run(request).await;
    };
    if stateless(&request) || !super::plausible_id(&id) {
        // No session (2026-07-28), or an id no replica hands out: rmcp
        // answers the latter as the unknown session it is, without a Redis
        // round trip on a key the client chose.
        return next.run(request).await;
    }
    let message = message_id(&request);
    match guard.shared.touch(&id).await {
        Ok(Some(renewed)) => {
            // What the session's handler reads of it (its log level).
            let mut request = request;
            request.extensions_mut().insert(renewed);
            if request.method() == axum::http::Method::GET {
                // A listen stream: the session's subscriptions are watched
                // for its principal where it is held.
                let principal = request
                    .extensions()
                    .get::<crate::auth::Principal>()
                    .cloned();
                return super::listen::LISTENER
                    .scope(principal, next.run(request))
                    .await;
            }
            next.run(request).await
        }
        Ok(None) => {
            // Closed on another replica (DELETE) or expired: not served here
            // either.
            guard.sessions.close_local(&id).await;
            rpc_error(
                StatusCode::NOT_FOUND,
                message,
                INVALID_REQUEST,
                "session not found: initialize a new session".to_owned(),
                Json::Null,
            )
        }
        Err(error) => unavailable(&error, message),
    }
}
