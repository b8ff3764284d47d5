//! MCP sessions that any replica of the router can serve (`--session-store`).
//!
//! Without a store a 2025-11-25 session lives in the memory of the replica
//! that opened it (rmcp's local session manager, wrapped by `polling`), and
//! only one replica can serve it. With `--session-store redis://...` what a
//! replica needs to take a session over is kept in Redis, one hash per
//! session under `<prefix>s:<id>`, expiring after `session_idle_timeout`
//! without a request (every request renews it):
//!
//! * `init`: the client's `initialize` parameters (rmcp's [`SessionState`]).
//!   A replica that receives a request for a session it does not hold loads
//!   them and replays the handshake into a fresh local session (rmcp's
//!   restore seam, `SessionManager::restore_session`), so the client never
//!   initializes again, whichever replica it reaches or dies.
//! * `owner`: who opened the session (with an issuer): an HMAC-SHA256 of the
//!   token's `sub` under the newest `--session-key` (SHA-256 without one), so
//!   Redis holds no principal's name. Every replica checks it before it
//!   serves or restores the session, so a session answers only its principal
//!   everywhere.
//!
//! Existence in Redis is the truth: every request naming a session renews its
//! key first ([`guard`]); a session gone from Redis (a `DELETE` on any
//! replica, expiry) is closed on this replica too and answered `404`. Redis
//! not answering is never taken for "gone": such a request is answered `503`
//! "session store unavailable", and no new 2025-11-25 session is opened,
//! while stateless 2026-07-28 requests (no session) are served as ever.
//!
//! [`SessionState`]: rmcp::transport::streamable_http_server::session::SessionState

pub(crate) mod guard;
mod keys;
pub mod listen;
pub mod relay;
pub mod resume;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

pub use keys::{SessionKeys, parse_session_keys};

/// How long one request to Redis may take before the store counts as
/// unavailable.
const STORE_TIMEOUT: Duration = Duration::from_millis(500);
/// Whether `id` can be a session id this router handed out (rmcp's: a
/// UUID, 36 characters of hex digits and dashes). Anything else names no
/// session anywhere, so it never becomes a Redis key or a cache entry: a
/// client cannot make the router send Redis a key of its choosing.
pub fn plausible_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The key prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "switchboard:";

/// Why the session store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Redis is down, unreachable or too slow.
    #[error(
        "session store unavailable ({0}): sessions cannot be served or opened until it answers again; clients of protocol 2026-07-28 (no session) are served"
    )]
    Unavailable(String),
    /// Redis holds something the router did not write.
    #[error("the session store holds malformed data for this session ({0})")]
    Malformed(String),
}

/// What a request learns of its session when renewing it.
#[derive(Debug, Clone, Default)]
pub struct Renewed {
    /// The session's log level (`logging/setLevel` on any replica), if set.
    pub log_level: Option<String>,
}

/// The settings of replica-shared sessions.
#[derive(Clone)]
pub struct StoreSettings {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: SecretString,
    /// Prefix of every key and channel (`--session-prefix`).
    pub prefix: String,
    /// How long a session lives in Redis without a request.
    pub ttl: Duration,
    /// Keys for the owner binding, newest first.
    pub keys: SessionKeys,
    /// Largest `initialize` parameters kept, as JSON (`max_initialize_bytes`).
    pub max_initialize_bytes: usize,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: redis::Client,
    connection: RwLock<Option<MultiplexedConnection>>,
    up: AtomicBool,
    wake: tokio::sync::Notify,
    prefix: String,
    /// This replica's random name, in the event ids it writes.
    replica: String,
    ttl_secs: u64,
    keys: SessionKeys,
    max_initialize_bytes: usize,
    /// Why the store is down, for `/readyz` (`None` while up).
    down_reason: Mutex<Option<String>>,
}

impl Inner {
    fn down(&self, reason: String) {
        let was_up = self.up.swap(false, Ordering::Relaxed);
        if let Ok(mut slot) = self.connection.write() {
            *slot = None;
        }
        if was_up {
            tracing::warn!(%reason, "session store unavailable: requests naming a session are refused until it answers again");
        }
        *self
            .down_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason);
        self.wake.notify_one();
    }

    fn set_up(&self, connection: MultiplexedConnection) {
        if let Ok(mut slot) = self.connection.write() {
            *slot = Some(connection);
        }
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("sessions are shared through redis");
        }
        *self
            .down_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// The Redis store of replica-shared sessions; cheap to clone.
#[derive(Clone)]
pub struct SharedSessions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSessions")
            .field("prefix", &self.inner.prefix)
            .field("up", &self.inner.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SharedSessions {
    /// A store as `settings` say, connected (and reconnected) by a background
    /// task until `shutdown`. Only a malformed URL is an error, naming the
    /// setting, never the URL (it may hold a password).
    pub fn start(settings: &StoreSettings, shutdown: CancellationToken) -> Result<Self, String> {
        let client = redis::Client::open(settings.url.expose_secret()).map_err(|e| {
            format!(
                "--session-store / SWITCHBOARD_SESSION_STORE / session_store is not a valid Redis URL ({})",
                e.category()
            )
        })?;
        let inner = Arc::new(Inner {
            client,
            connection: RwLock::new(None),
            up: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            prefix: settings.prefix.clone(),
            replica: hex::encode(rand::random::<[u8; 6]>()),
            ttl_secs: settings.ttl.as_secs().max(1),
            keys: settings.keys.clone(),
            max_initialize_bytes: settings.max_initialize_bytes,
            down_reason: Mutex::new(Some("connecting".to_owned())),
        });
        tokio::spawn(crate::redis_link::keep_connected(inner.clone(), shutdown));
        Ok(Self { inner })
    }

    /// Waits up to `wait` for the first connection, so a router that starts
    /// next to a running Redis serves sessions from its first request.
    pub async fn connected(&self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.is_up() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Whether Redis answered the last request.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Why the store is unavailable now, if it is.
    pub fn unavailable(&self) -> Option<StoreError> {
        if self.is_up() {
            return None;
        }
        let reason = self
            .inner
            .down_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .unwrap_or_else(|| "not connected".to_owned());
        Some(StoreError::Unavailable(reason))
    }

    /// This replica's name among those sharing the store: random, chosen at
    /// start.
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// The key prefix (`--session-prefix`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn key(&self, id: &str) -> String {
        format!("{}s:{id}", self.inner.prefix)
    }

    fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(error) = self.unavailable() {
            return Err(error);
        }
        self.inner
            .connection
            .read()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| StoreError::Unavailable("not connected".to_owned()))
    }

    /// Runs `command` within [`STORE_TIMEOUT`]; a failure marks the store down.
    async fn query<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection()?;
        match tokio::time::timeout(STORE_TIMEOUT, command(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let reason = error.category().to_owned();
                self.inner.down(reason.clone());
                Err(StoreError::Unavailable(reason))
            }
            Err(_) => {
                let reason = format!("no answer within {} ms", STORE_TIMEOUT.as_millis());
                self.inner.down(reason.clone());
                Err(StoreError::Unavailable(reason))
            }
        }
    }

    /// Runs one command (see [`Self::query`]).
    async fn cmd<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, StoreError> {
        self.query(|mut c| async move { command.query_async(&mut c).await })
            .await
    }

    /// Runs a transaction (see [`Self::query`]).
    async fn pipe(&self, pipe: redis::Pipeline) -> Result<(), StoreError> {
        self.query(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    /// Renews session `id` for another `session_idle_timeout` and reads
    /// what every request needs of it (one round trip): `None` when Redis
    /// does not hold it (closed on another replica, or expired).
    pub async fn touch(&self, id: &str) -> Result<Option<Renewed>, StoreError> {
        let key = self.key(id);
        let mut pipe = redis::pipe();
        pipe.cmd("EXPIRE")
            .arg(&key)
            .arg(self.inner.ttl_secs)
            .cmd("HGET")
            .arg(&key)
            .arg("level");
        let (renewed, level): (i64, Option<String>) = self
            .query(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        Ok((renewed == 1).then_some(Renewed { log_level: level }))
    }

    /// Records that `sub` opened session `id`.
    pub async fn set_owner(&self, id: &str, sub: &str) -> Result<(), StoreError> {
        let key = self.key(id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("owner")
            .arg(self.inner.keys.seal(sub))
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.inner.ttl_secs)
            .ignore();
        self.pipe(pipe).await
    }

    /// Whether `sub` opened session `id` (`false` for a session with no
    /// recorded owner or none at all).
    pub async fn is_owner(&self, id: &str, sub: &str) -> Result<bool, StoreError> {
        let mut command = redis::cmd("HGET");
        command.arg(self.key(id)).arg("owner");
        let owner: Option<String> = self.cmd(command).await?;
        Ok(owner.is_some_and(|owner| self.inner.keys.opens(&owner, sub)))
    }

    /// `sub` sealed with the newest session key, to name a principal to
    /// another replica without naming it to Redis.
    pub fn seal(&self, sub: &str) -> String {
        self.inner.keys.seal(sub)
    }

    /// Whether `sealed` (from [`Self::seal`], on any replica) names `sub`.
    pub fn opens(&self, sealed: &str, sub: &str) -> bool {
        self.inner.keys.opens(sealed, sub)
    }

    /// `/readyz` detail on sessions with a store.
    pub fn readiness(&self) -> Json {
        match self.unavailable() {
            None => json!({
                "mode": "shared via redis",
                "store": "up",
                "replica": self.replica(),
                "detail": "any replica serves any session",
            }),
            Some(error) => json!({
                "mode": "shared via redis",
                "store": "unavailable",
                "replica": self.replica(),
                "detail": error.to_string(),
            }),
        }
    }
}

/// `/readyz` detail on sessions without a store.
pub fn single_replica_readiness() -> Json {
    json!({
        "mode": "single replica",
        "detail": "sessions live in this process: run one replica, or set --session-store to share them",
    })
}

impl crate::redis_link::Reconnecting for Inner {
    fn client(&self) -> &redis::Client {
        &self.client
    }
    fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
    fn wake(&self) -> &tokio::sync::Notify {
        &self.wake
    }
    fn connected(&self, connection: MultiplexedConnection) {
        self.set_up(connection);
    }
    fn unreachable(&self, reason: String) {
        *self
            .down_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::plausible_id;

    #[test]
    fn only_ids_shaped_like_the_ones_handed_out_reach_the_store() {
        // What rmcp's session managers hand out.
        let handed_out = rmcp::transport::common::server_side_http::session_id();
        assert!(plausible_id(&handed_out), "{handed_out}");
        for hostile in [
            "",
            "abc",
            &"a".repeat(36 * 1000),
            "0123456789abcdef0123456789abcdef012\u{e9}",
            "0123456789abcdef-0123456789abcdef-*12",
            "switchboard:s:*x-0123456789abcdef01234",
        ] {
            assert!(!plausible_id(hostile), "{hostile:?}");
        }
    }
}
