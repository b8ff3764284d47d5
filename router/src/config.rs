//! Router configuration: which connectors to front and how to serve MCP.
//!
//! Read once in `main` from flags, environment variables and an optional TOML file
//! into [`Config`]; tests build the struct directly. Connectors come from, in this
//! order (a later source replaces an earlier connector of the same name):
//! `--config FILE` (`[[connectors]]` tables), `SWITCHBOARD_CONNECTORS`, `--connector`.
//!
//! A connector spec is `NAME=URL[,URL...]`; in `SWITCHBOARD_CONNECTORS` several
//! specs are separated by commas too (`jira=http://a:50051,slack=http://b:50052`): an
//! item without `=` adds a URL to the connector before it. Several URLs are load
//! balanced.
//!
//! Limits on tool calls (`[[limit]]` tables, `limits_redis`, a connector's
//! `max_in_flight` and `queue_timeout`) are described in [`crate::rate`] and
//! [`crate::call::limit`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::audit::AuditConfig;
use crate::auth::AuthConfig;

/// Default per-call deadline.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest wait for a place among a capped connector's calls (`queue_timeout`).
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default wait for connectors before the first `tools/list` is answered.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a down connector's tools stay listed before they are withdrawn.
pub const DEFAULT_TOOL_GRACE: Duration = Duration::from_secs(60);
/// Default limit of an MCP request body over HTTP.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default interval at which connector host names are resolved again.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(10);
/// Default largest message a connector may answer a call with (`max_message_bytes`).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Default largest reflection answer (`reflection_max_message_bytes`).
pub const DEFAULT_REFLECTION_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Default largest number of descriptor files read from one connector (`max_reflection_files`).
pub const DEFAULT_MAX_REFLECTION_FILES: usize = 256;
/// Default largest JSON Schema of one tool's input or output, in bytes (`max_schema_bytes`).
pub const DEFAULT_MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// Default largest number of `$defs` in one tool's schema (`max_schema_defs`).
pub const DEFAULT_MAX_SCHEMA_DEFS: usize = 256;
/// Default largest number of messages one streamed call may return (`max_stream_messages`).
pub const DEFAULT_MAX_STREAM_MESSAGES: usize = 10_000;
/// Default largest total size of the messages of one streamed call (`max_stream_bytes`).
pub const DEFAULT_MAX_STREAM_BYTES: usize = 16 * 1024 * 1024;

/// Bounds on what the router accepts from a connector, so that a misbehaving or
/// hostile connector cannot exhaust the router's memory or stall it. Each field
/// is a setting of the same name (flag `--max-message-bytes`, variable
/// `SWITCHBOARD_MAX_MESSAGE_BYTES`, config file key `max_message_bytes`, ...),
/// and every error that enforces one names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// Largest message of a call's answer (each streamed message, too), and of
    /// the generic Resources, Prompts and Interactions services.
    pub max_message_bytes: usize,
    /// Largest answer of the reflection service (one batch of descriptor files).
    pub reflection_max_message_bytes: usize,
    /// Descriptor files read from one connector, dependencies included.
    pub max_reflection_files: usize,
    /// Largest generated JSON Schema of one tool's input or output; a tool over
    /// it is left out of the catalog (and logged), not the whole connector.
    pub max_schema_bytes: usize,
    /// Largest number of message definitions (`$defs`) in one tool's schema.
    pub max_schema_defs: usize,
    /// Messages one server-streaming call may stream before it is cancelled.
    pub max_stream_messages: usize,
    /// Total encoded bytes one server-streaming call may stream before it is cancelled.
    pub max_stream_bytes: usize,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            reflection_max_message_bytes: DEFAULT_REFLECTION_MAX_MESSAGE_BYTES,
            max_reflection_files: DEFAULT_MAX_REFLECTION_FILES,
            max_schema_bytes: DEFAULT_MAX_SCHEMA_BYTES,
            max_schema_defs: DEFAULT_MAX_SCHEMA_DEFS,
            max_stream_messages: DEFAULT_MAX_STREAM_MESSAGES,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
        }
    }
}

/// Default most HTTP connections open at once (`max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default time a client has to send a request's headers (`header_read_timeout`).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default total of request bodies being read at once (`max_body_bytes_in_flight`).
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: usize = 64 * 1024 * 1024;
/// Default time a client has to send a request's body (`body_read_timeout`).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default most MCP sessions open at once over HTTP (`max_sessions`).
pub const DEFAULT_MAX_SESSIONS: usize = 1000;
/// Default largest `initialize` parameters a session keeps, as JSON
/// (`max_initialize_bytes`): about fifty times what known clients send.
pub const DEFAULT_MAX_INITIALIZE_BYTES: usize = 16 * 1024;
/// Default time after which a session nobody uses is closed (`session_idle_timeout`).
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default most tool calls one session runs at once (`max_calls_per_session`).
pub const DEFAULT_MAX_CALLS_PER_SESSION: usize = 32;
/// Default most resource subscriptions of one session (`max_subscriptions_per_session`).
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION: usize = 64;
/// Default most notifications waiting to be sent for one tool call (`notification_queue`).
pub const DEFAULT_NOTIFICATION_QUEUE: usize = 256;
/// Default most calls in one REST batch, `POST /api/v1/batch` (`max_batch_calls`).
pub const DEFAULT_MAX_BATCH_CALLS: usize = 64;

/// Bounds on what MCP clients may hold in the router, so that no client (or
/// flood of clients) can exhaust its memory, tasks or connections. Each field
/// is a setting of the same name (flag `--max-sessions`, variable
/// `SWITCHBOARD_MAX_SESSIONS`, config file key `max_sessions`, ...), and every
/// error that enforces one names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// HTTP connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time to send a request's headers, and the longest an idle keep-alive
    /// connection is kept; then the connection is closed.
    pub header_read_timeout: Duration,
    /// Time to send a request's whole body; then 408 and the connection is closed.
    pub body_read_timeout: Duration,
    /// Bytes of request bodies being read at once, all connections together;
    /// a body that would go over it is answered 503.
    pub max_body_bytes_in_flight: usize,
    /// MCP sessions open at once over HTTP; one more `initialize` is answered 503.
    pub max_sessions: usize,
    /// Bytes of a client's `initialize` parameters (as JSON), which its session
    /// keeps for its life (and a session store keeps for replicas); larger ones
    /// are refused and no session is kept. Parsed, they take several times
    /// their size, so without it `max_sessions` clients could each pin up to
    /// `max_body_bytes` of it many times over.
    pub max_initialize_bytes: usize,
    /// A session with no request or message for this long is closed.
    pub session_idle_timeout: Duration,
    /// Tool calls one session runs at once; one more is answered with a tool error.
    pub max_calls_per_session: usize,
    /// Resource subscriptions (each a connector stream) one session holds.
    pub max_subscriptions_per_session: usize,
    /// Progress and log notifications of one tool call waiting to be sent to
    /// a slow client; beyond it they are dropped (never the result).
    pub notification_queue: usize,
    /// Calls in one REST batch (`POST /api/v1/batch`); a bigger batch is
    /// refused with 413 before any of its calls runs. A batch runs at most
    /// `max_calls_per_session` of them at once.
    pub max_batch_calls: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_body_bytes_in_flight: DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_initialize_bytes: DEFAULT_MAX_INITIALIZE_BYTES,
            session_idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
            max_calls_per_session: DEFAULT_MAX_CALLS_PER_SESSION,
            max_subscriptions_per_session: DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION,
            notification_queue: DEFAULT_NOTIFICATION_QUEUE,
            max_batch_calls: DEFAULT_MAX_BATCH_CALLS,
        }
    }
}

/// Parses a timeout given on the command line (see [`parse_duration`]), which
/// must be longer than zero.
pub fn parse_timeout(raw: &str) -> Result<Duration, String> {
    match parse_duration(raw)? {
        d if d.is_zero() => Err(format!("{raw:?}: a timeout must be longer than zero")),
        d => Ok(d),
    }
}

/// Parses a limit (a count or a number of bytes), which must be at least 1.
pub fn parse_limit(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(0) => Err(format!("{raw:?}: a limit must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{raw:?} is not a whole number")),
    }
}

/// One connector the router fronts.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorConfig {
    /// Name, used in tool names (`<prefix>_<method>`), logs and errors.
    pub name: String,
    /// gRPC endpoints (`http://host:port`); calls are balanced over them.
    pub urls: Vec<String>,
    /// Deadline of each call to this connector.
    pub timeout: Duration,
    /// Tool-name prefix; defaults to the name. Empty means no prefix.
    pub prefix: String,
    /// Most calls in flight to this connector at once (`max_in_flight`);
    /// unlimited when `None`.
    pub max_in_flight: Option<usize>,
    /// How long a call waits for a place when `max_in_flight` are running.
    pub queue_timeout: Duration,
}

impl ConnectorConfig {
    /// A connector with the default timeout and its name as prefix.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            prefix: name.clone(),
            name,
            urls: vec![url.into()],
            timeout: DEFAULT_CALL_TIMEOUT,
            max_in_flight: None,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }
}

/// Everything the router needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The connectors, in the order their tools are listed.
    pub connectors: Vec<ConnectorConfig>,
    /// How long the first `tools/list` waits for connectors to answer.
    pub startup_timeout: Duration,
    /// How long a down connector's tools stay listed (calls fail fast meanwhile).
    pub tool_grace: Duration,
    /// Host header values accepted over HTTP (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Origin header values accepted over HTTP (requests without Origin pass).
    pub allowed_origins: Vec<String>,
    /// Largest accepted HTTP request body, and message over stdio.
    pub max_body_bytes: usize,
    /// Over HTTP, close the SSE stream of a tool call still running after this
    /// long; the client resumes it with Last-Event-ID (SEP-1699). Off when `None`.
    pub sse_poll_after: Option<Duration>,
    /// How often connector host names are resolved again, so calls spread over
    /// replicas that come and go (compose `--scale`, headless Kubernetes Services).
    pub dns_refresh: Duration,
    /// Bounds on what connectors may send the router.
    pub limits: UpstreamLimits,
    /// Bounds on what MCP clients may hold in the router.
    pub client_limits: ClientLimits,
    /// Bearer-token authentication of HTTP clients (`[auth]`); off without an issuer.
    pub auth: AuthConfig,
    /// The authorization policy file (`--policy`, `SWITCHBOARD_POLICY`, key `policy`);
    /// without one every authenticated principal may use every tool.
    pub policy: Option<std::path::PathBuf>,
    /// The audit trail (`[audit]`, `--audit-args`).
    pub audit: AuditConfig,
    /// Where `/metrics` is served on its own (`--metrics-listen`,
    /// `SWITCHBOARD_METRICS_LISTEN`). Without it, `/metrics` is on the HTTP
    /// listener when no issuer is set, and nowhere otherwise.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Rate limits on tool calls (`[[limit]]`, `--rate-limit`), in order.
    pub rate_limits: Vec<crate::rate::LimitRule>,
    /// Redis that replicas share principal, tool and global limits through
    /// (`--limits-redis`, `SWITCHBOARD_LIMITS_REDIS`, `limits_redis`); the
    /// URL may hold a password.
    pub limits_redis: Option<secrecy::SecretString>,
    /// Whether identical read-only calls in flight are shared
    /// (`--share-in-flight`, `SWITCHBOARD_SHARE_IN_FLIGHT`, `share_in_flight`).
    pub share_in_flight: bool,
    /// Redis that replicas share 2025-11-25 sessions through
    /// (`--session-store`, `SWITCHBOARD_SESSION_STORE`, `session_store`);
    /// single-replica sessions without it. The URL may hold a password.
    pub session_store: Option<secrecy::SecretString>,
    /// Prefix of the session store's keys and channels (`--session-prefix`,
    /// `SWITCHBOARD_SESSION_PREFIX`, `session_prefix`).
    pub session_prefix: String,
    /// Keys binding shared sessions to their principal, newest first
    /// (`--session-key`, `SWITCHBOARD_SESSION_KEY`; never in the file).
    pub session_keys: crate::session::SessionKeys,
    /// On SIGTERM over HTTP: how long new connections are still served while
    /// `/readyz` says the router is draining, for balancers to notice
    /// (`--drain-delay`, `SWITCHBOARD_DRAIN_DELAY`, `drain_delay`).
    pub drain_delay: Duration,
    /// On SIGTERM over HTTP: how long requests in flight may take to finish
    /// before they are cancelled (`--drain-timeout`,
    /// `SWITCHBOARD_DRAIN_TIMEOUT`, `drain_timeout`).
    pub drain_timeout: Duration,
    /// Threads running the router's tasks (`--worker-threads`,
    /// `SWITCHBOARD_WORKER_THREADS`, `worker_threads`); `None` for the
    /// default of the transport ([`Config::workers`]).
    pub worker_threads: Option<usize>,
}

/// Most [`Config::worker_threads`]: more threads than this is a typo, not a
/// deployment.
pub const MAX_WORKER_THREADS: usize = 256;

/// A worker thread count: 1 to [`MAX_WORKER_THREADS`].
pub fn parse_worker_threads(raw: &str) -> Result<usize, String> {
    let n = raw
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("{raw:?} is not a whole number"))?;
    check_worker_threads(n)
}

fn check_worker_threads(n: usize) -> Result<usize, String> {
    match n {
        0 => Err("worker_threads: a thread count must be at least 1".into()),
        n if n > MAX_WORKER_THREADS => Err(format!(
            "worker_threads: {n} is more than {MAX_WORKER_THREADS} threads"
        )),
        n => Ok(n),
    }
}

/// Default of [`Config::drain_delay`]: none (nothing in front to notice).
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::ZERO;
/// Default of [`Config::drain_timeout`]: within Kubernetes' default 30 s
/// termination grace with a few seconds of delay before it.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

impl Default for Config {
    fn default() -> Self {
        Self {
            connectors: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            tool_grace: DEFAULT_TOOL_GRACE,
            allowed_hosts: default_allowed_hosts(),
            allowed_origins: default_allowed_origins(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            sse_poll_after: None,
            dns_refresh: DEFAULT_DNS_REFRESH,
            limits: UpstreamLimits::default(),
            client_limits: ClientLimits::default(),
            auth: AuthConfig::default(),
            policy: None,
            audit: AuditConfig::default(),
            metrics_listen: None,
            rate_limits: Vec::new(),
            limits_redis: None,
            share_in_flight: true,
            session_store: None,
            session_prefix: crate::session::DEFAULT_PREFIX.to_owned(),
            session_keys: crate::session::SessionKeys::default(),
            drain_delay: DEFAULT_DRAIN_DELAY,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            worker_threads: None,
        }
    }
}

/// A session store key prefix: 1 to 64 printable ASCII characters without
/// spaces (every key and channel starts with it).
pub fn parse_session_prefix(raw: &str) -> Result<String, String> {
    let prefix = raw.trim();
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "session_prefix: {raw:?} is not 1 to 64 printable ASCII characters without spaces"
        ));
    }
    Ok(prefix.to_owned())
}

/// Only local names: a browser page elsewhere cannot rebind DNS onto the router.
pub fn default_allowed_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "::1", "[::1]"]
        .map(String::from)
        .to_vec()
}

/// Only local pages may call the router from a browser.
pub fn default_allowed_origins() -> Vec<String> {
    [
        "http://localhost:*",
        "http://127.0.0.1:*",
        "http://[::1]:*",
        "https://localhost:*",
        "https://127.0.0.1:*",
    ]
    .map(String::from)
    .to_vec()
}

/// A configuration value that cannot be used; the message names its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A malformed connector spec.
    #[error("{source_name}: {message}")]
    Connector {
        /// Where the spec came from (flag, variable or file).
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Parses `NAME=URL[,URL...][,NAME=URL...]` specs (see the module docs).
pub fn parse_connector_specs(
    raw: &str,
    source_name: &str,
) -> Result<Vec<ConnectorConfig>, ConfigError> {
    let err = |message: String| ConfigError::Connector {
        source_name: source_name.to_owned(),
        message,
    };
    let mut out: Vec<ConnectorConfig> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some((name, url)) => {
                let name = name.trim();
                validate_name(name).map_err(&err)?;
                let url = normalize_url(url.trim()).map_err(&err)?;
                out.push(ConnectorConfig::new(name, url));
            }
            None => match out.last_mut() {
                Some(last) => last.urls.push(normalize_url(item).map_err(&err)?),
                None => {
                    return Err(err(format!(
                        "expected NAME=URL (e.g. jira=http://127.0.0.1:50051), got {item:?}"
                    )));
                }
            },
        }
    }
    Ok(out)
}

/// Connector names become tool-name prefixes, so they must be valid there.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 32 {
        return Err(format!(
            "connector name {name:?} must be 1 to 32 characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "connector name {name:?} may only contain letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

/// Accepts `host:port` and adds `http://`; checks the URL is usable by tonic.
pub fn normalize_url(url: &str) -> Result<String, String> {
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid connector URL {url:?}: {e}"))?;
    match parsed.scheme_str() {
        Some("http" | "https") if parsed.authority().is_some() => Ok(url),
        _ => Err(format!(
            "invalid connector URL {url:?}: expected http://host:port or https://host:port"
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    connectors: Vec<FileConnector>,
    startup_timeout: Option<f64>,
    tool_grace: Option<f64>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    max_body_bytes: Option<usize>,
    /// Seconds.
    sse_poll_after: Option<f64>,
    dns_refresh: Option<f64>,
    max_message_bytes: Option<usize>,
    reflection_max_message_bytes: Option<usize>,
    max_reflection_files: Option<usize>,
    max_schema_bytes: Option<usize>,
    max_schema_defs: Option<usize>,
    max_stream_messages: Option<usize>,
    max_stream_bytes: Option<usize>,
    max_connections: Option<usize>,
    /// Seconds.
    header_read_timeout: Option<f64>,
    /// Seconds.
    body_read_timeout: Option<f64>,
    max_body_bytes_in_flight: Option<usize>,
    max_sessions: Option<usize>,
    max_initialize_bytes: Option<usize>,
    /// Seconds.
    session_idle_timeout: Option<f64>,
    max_calls_per_session: Option<usize>,
    max_subscriptions_per_session: Option<usize>,
    notification_queue: Option<usize>,
    max_batch_calls: Option<usize>,
    auth: Option<AuthConfig>,
    policy: Option<String>,
    audit: Option<AuditConfig>,
    #[serde(default)]
    limit: Vec<crate::rate::FileLimit>,
    limits_redis: Option<String>,
    share_in_flight: Option<bool>,
    session_store: Option<String>,
    session_prefix: Option<String>,
    /// Seconds.
    drain_delay: Option<f64>,
    /// Seconds.
    drain_timeout: Option<f64>,
    worker_threads: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConnector {
    name: String,
    url: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
    /// Seconds.
    timeout: Option<f64>,
    prefix: Option<String>,
    max_in_flight: Option<usize>,
    /// Seconds.
    queue_timeout: Option<f64>,
}

impl Config {
    /// How many threads run the router's tasks: the setting when given;
    /// otherwise one over stdio, where a single client's calls gain nothing
    /// from a second thread but pay for waking it (a task handed to an idle
    /// worker is a futex wake and a context switch on every hop of a call);
    /// over HTTP `None`, the runtime's default (`TOKIO_WORKER_THREADS`, or
    /// one per CPU), for many clients at once.
    pub fn workers(&self, stdio: bool) -> Option<usize> {
        self.worker_threads.or(stdio.then_some(1))
    }

    /// Applies a TOML config file on top of `self`.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let file_err = |message: String| ConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        for c in file.connectors {
            validate_name(&c.name).map_err(&file_err)?;
            let mut urls: Vec<String> = c.url.into_iter().chain(c.urls).collect();
            if urls.is_empty() {
                return Err(file_err(format!(
                    "connector {:?} needs `url` or `urls`",
                    c.name
                )));
            }
            for url in &mut urls {
                *url = normalize_url(url).map_err(&file_err)?;
            }
            let timeout = match c.timeout {
                Some(secs) => seconds(secs).map_err(&file_err)?,
                None => DEFAULT_CALL_TIMEOUT,
            };
            let queue_timeout = match c.queue_timeout {
                Some(secs) => match seconds(secs) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) => {
                        return Err(file_err(format!(
                            "connector {:?}: queue_timeout: a timeout must be longer than zero",
                            c.name
                        )));
                    }
                    Err(e) => {
                        return Err(file_err(format!(
                            "connector {:?}: queue_timeout: {e}",
                            c.name
                        )));
                    }
                },
                None => DEFAULT_QUEUE_TIMEOUT,
            };
            if c.max_in_flight == Some(0) {
                return Err(file_err(format!(
                    "connector {:?}: max_in_flight: a limit must be at least 1",
                    c.name
                )));
            }
            if let Some(prefix) = c.prefix.as_deref().filter(|p| !p.is_empty()) {
                // A prefix starts every tool name of the connector.
                validate_name(prefix).map_err(|e| {
                    file_err(format!(
                        "connector {:?}: prefix: {}",
                        c.name,
                        e.replace("connector name", "a prefix")
                    ))
                })?;
            }
            self.upsert(ConnectorConfig {
                prefix: c.prefix.unwrap_or_else(|| c.name.clone()),
                name: c.name,
                urls,
                timeout,
                max_in_flight: c.max_in_flight,
                queue_timeout,
            });
        }
        if let Some(auth) = file.auth {
            self.auth = auth;
        }
        if let Some(policy) = file.policy.filter(|p| !p.trim().is_empty()) {
            self.policy = Some(policy.into());
        }
        for (i, limit) in file.limit.into_iter().enumerate() {
            let rule = limit
                .rule()
                .map_err(|e| file_err(format!("[[limit]] #{}: {e}", i + 1)))?;
            self.rate_limits.push(rule);
        }
        if let Some(url) = file.limits_redis.filter(|u| !u.trim().is_empty()) {
            self.limits_redis = Some(url.trim().to_owned().into());
        }
        if let Some(share) = file.share_in_flight {
            self.share_in_flight = share;
        }
        if let Some(url) = file.session_store.filter(|u| !u.trim().is_empty()) {
            self.session_store = Some(url.trim().to_owned().into());
        }
        if let Some(prefix) = file.session_prefix {
            self.session_prefix = parse_session_prefix(&prefix).map_err(&file_err)?;
        }
        if let Some(audit) = file.audit {
            if audit.max_argument_bytes == 0 {
                return Err(file_err(
                    "audit.max_argument_bytes: a limit must be at least 1".into(),
                ));
            }
            self.audit = audit;
        }
        if let Some(s) = file.startup_timeout {
            self.startup_timeout = seconds(s).map_err(&file_err)?;
        }
        if let Some(s) = file.tool_grace {
            self.tool_grace = seconds(s).map_err(&file_err)?;
        }
        if !file.allowed_hosts.is_empty() {
            self.allowed_hosts = file.allowed_hosts;
        }
        if !file.allowed_origins.is_empty() {
            self.allowed_origins = file.allowed_origins;
        }
        if let Some(b) = file.max_body_bytes {
            self.max_body_bytes = b;
        }
        if let Some(s) = file.dns_refresh {
            self.dns_refresh = seconds(s).map_err(&file_err)?;
        }
        if let Some(s) = file.sse_poll_after {
            self.sse_poll_after = Some(seconds(s).map_err(&file_err)?);
        }
        if let Some(s) = file.drain_delay {
            self.drain_delay = seconds(s).map_err(&file_err)?;
        }
        if let Some(s) = file.drain_timeout {
            self.drain_timeout = seconds(s).map_err(&file_err)?;
        }
        if let Some(n) = file.worker_threads {
            self.worker_threads = Some(check_worker_threads(n).map_err(&file_err)?);
        }
        let limits = &mut self.limits;
        for (key, value, slot) in [
            (
                "max_message_bytes",
                file.max_message_bytes,
                &mut limits.max_message_bytes,
            ),
            (
                "reflection_max_message_bytes",
                file.reflection_max_message_bytes,
                &mut limits.reflection_max_message_bytes,
            ),
            (
                "max_reflection_files",
                file.max_reflection_files,
                &mut limits.max_reflection_files,
            ),
            (
                "max_schema_bytes",
                file.max_schema_bytes,
                &mut limits.max_schema_bytes,
            ),
            (
                "max_schema_defs",
                file.max_schema_defs,
                &mut limits.max_schema_defs,
            ),
            (
                "max_stream_messages",
                file.max_stream_messages,
                &mut limits.max_stream_messages,
            ),
            (
                "max_stream_bytes",
                file.max_stream_bytes,
                &mut limits.max_stream_bytes,
            ),
        ] {
            match value {
                Some(0) => return Err(file_err(format!("{key}: a limit must be at least 1"))),
                Some(n) => *slot = n,
                None => {}
            }
        }
        let clients = &mut self.client_limits;
        for (key, value, slot) in [
            (
                "max_connections",
                file.max_connections,
                &mut clients.max_connections,
            ),
            ("max_sessions", file.max_sessions, &mut clients.max_sessions),
            (
                "max_initialize_bytes",
                file.max_initialize_bytes,
                &mut clients.max_initialize_bytes,
            ),
            (
                "max_body_bytes_in_flight",
                file.max_body_bytes_in_flight,
                &mut clients.max_body_bytes_in_flight,
            ),
            (
                "max_calls_per_session",
                file.max_calls_per_session,
                &mut clients.max_calls_per_session,
            ),
            (
                "max_subscriptions_per_session",
                file.max_subscriptions_per_session,
                &mut clients.max_subscriptions_per_session,
            ),
            (
                "notification_queue",
                file.notification_queue,
                &mut clients.notification_queue,
            ),
            (
                "max_batch_calls",
                file.max_batch_calls,
                &mut clients.max_batch_calls,
            ),
        ] {
            match value {
                Some(0) => return Err(file_err(format!("{key}: a limit must be at least 1"))),
                Some(n) => *slot = n,
                None => {}
            }
        }
        for (key, value, slot) in [
            (
                "header_read_timeout",
                file.header_read_timeout,
                &mut clients.header_read_timeout,
            ),
            (
                "body_read_timeout",
                file.body_read_timeout,
                &mut clients.body_read_timeout,
            ),
            (
                "session_idle_timeout",
                file.session_idle_timeout,
                &mut clients.session_idle_timeout,
            ),
        ] {
            if let Some(secs) = value {
                match seconds(secs) {
                    Ok(d) if !d.is_zero() => *slot = d,
                    Ok(_) => {
                        return Err(file_err(format!(
                            "{key}: a timeout must be longer than zero"
                        )));
                    }
                    Err(e) => return Err(file_err(format!("{key}: {e}"))),
                }
            }
        }
        Ok(())
    }

    /// Adds a connector, replacing one of the same name.
    pub fn upsert(&mut self, connector: ConnectorConfig) {
        match self
            .connectors
            .iter_mut()
            .find(|c| c.name == connector.name)
        {
            Some(existing) => *existing = connector,
            None => self.connectors.push(connector),
        }
    }
}

/// Parses a number of seconds (fractions allowed).
pub fn seconds(secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{secs} is not a valid number of seconds"))
}

/// Parses a duration given on the command line: `30`, `0.5`, `30s`, `500ms`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, scale) = if let Some(ms) = raw.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = raw.strip_suffix('s') {
        (s, 1.0)
    } else {
        (raw, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 10, 2.5s or 500ms"))?;
    seconds(value * scale)
}

/// Parses a listen address for `--listen`.
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not an address like 127.0.0.1:8080"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_separate_connectors_and_extra_urls() {
        let specs = parse_connector_specs(
            "jira=http://a:50051, code_analysis=b:50054,http://c:50054",
            "SWITCHBOARD_CONNECTORS",
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "jira");
        assert_eq!(specs[0].urls, ["http://a:50051"]);
        assert_eq!(specs[1].prefix, "code_analysis");
        assert_eq!(specs[1].urls, ["http://b:50054", "http://c:50054"]);
    }

    #[test]
    fn malformed_specs_name_their_source() {
        let err = parse_connector_specs("http://a:1", "--connector").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--connector: expected NAME=URL"),
            "{err}"
        );
        let err = parse_connector_specs("bad name=http://a:1", "--connector").unwrap_err();
        assert!(err.to_string().contains("may only contain"), "{err}");
        let err = parse_connector_specs("x=ftp://a:1", "--connector").unwrap_err();
        assert!(
            err.to_string().contains("expected http://host:port"),
            "{err}"
        );
    }

    #[test]
    fn config_file_sets_connectors_and_limits() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("router.toml");
        std::fs::write(
            &path,
            r#"
startup_timeout = 2.5
sse_poll_after = 30
allowed_hosts = ["router"]
[[connectors]]
name = "jira"
url = "jira:50051"
timeout = 5
prefix = "tickets"
"#,
        )
        .unwrap();
        let mut config = Config::default();
        config.merge_file(&path).unwrap();
        assert_eq!(config.startup_timeout, Duration::from_millis(2500));
        assert_eq!(config.sse_poll_after, Some(Duration::from_secs(30)));
        assert_eq!(
            Config::default().sse_poll_after,
            None,
            "off unless asked for"
        );
        assert_eq!(config.allowed_hosts, ["router"]);
        assert_eq!(config.connectors[0].urls, ["http://jira:50051"]);
        assert_eq!(config.connectors[0].timeout, Duration::from_secs(5));
        assert_eq!(config.connectors[0].prefix, "tickets");

        std::fs::write(&path, "[[connectors]]\nname = \"x\"\nurll = \"a\"\n").unwrap();
        let err = Config::default().merge_file(&path).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");

        // A prefix starts every tool name: it follows the connector name's rules.
        let long = format!("\"{}\"", "t".repeat(33));
        for bad in [
            r#""ti ckets""#,
            r#""tickets/""#,
            r#""\u202Etickets""#,
            &long,
        ] {
            std::fs::write(
                &path,
                format!("[[connectors]]\nname = \"x\"\nurl = \"a:1\"\nprefix = {bad}\n"),
            )
            .unwrap();
            let err = Config::default().merge_file(&path).unwrap_err().to_string();
            assert!(err.contains("connector \"x\": prefix: a prefix"), "{err}");
        }
        std::fs::write(
            &path,
            "[[connectors]]\nname = \"x\"\nurl = \"a:1\"\nprefix = \"\"\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.merge_file(&path).unwrap();
        assert_eq!(
            config.connectors[0].prefix, "",
            "an empty prefix means none"
        );
    }

    #[test]
    fn config_file_sets_upstream_limits_and_refuses_zero() {
        let dir = std::env::temp_dir().join(format!("sb-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("router.toml");
        std::fs::write(
            &path,
            "max_message_bytes = 1000\nreflection_max_message_bytes = 2000\nmax_reflection_files = 3\n\
             max_schema_bytes = 4000\nmax_schema_defs = 5\nmax_stream_messages = 6\nmax_stream_bytes = 7000\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.merge_file(&path).unwrap();
        assert_eq!(
            config.limits,
            UpstreamLimits {
                max_message_bytes: 1000,
                reflection_max_message_bytes: 2000,
                max_reflection_files: 3,
                max_schema_bytes: 4000,
                max_schema_defs: 5,
                max_stream_messages: 6,
                max_stream_bytes: 7000,
            }
        );
        std::fs::write(&path, "max_stream_messages = 0\n").unwrap();
        let err = Config::default().merge_file(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("max_stream_messages: a limit must be at least 1"),
            "{err}"
        );
        assert_eq!(Config::default().limits.max_message_bytes, 16 * 1024 * 1024);
        assert!(parse_limit("0").is_err());
        assert!(parse_limit("ten").is_err());
        assert_eq!(parse_limit(" 12 "), Ok(12));
    }

    #[test]
    fn config_file_sets_client_limits_and_refuses_zero() {
        let dir = std::env::temp_dir().join(format!("sb-client-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("router.toml");
        std::fs::write(
            &path,
            "max_connections = 10\nheader_read_timeout = 1.5\nbody_read_timeout = 2\n\
             max_sessions = 3\nsession_idle_timeout = 60\nmax_calls_per_session = 4\n\
             max_subscriptions_per_session = 5\nnotification_queue = 6\n\
             max_body_bytes_in_flight = 7000\nmax_initialize_bytes = 8000\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.merge_file(&path).unwrap();
        assert_eq!(
            config.client_limits,
            ClientLimits {
                max_connections: 10,
                header_read_timeout: Duration::from_millis(1500),
                body_read_timeout: Duration::from_secs(2),
                max_body_bytes_in_flight: 7000,
                max_sessions: 3,
                max_initialize_bytes: 8000,
                session_idle_timeout: Duration::from_secs(60),
                max_calls_per_session: 4,
                max_subscriptions_per_session: 5,
                notification_queue: 6,
                max_batch_calls: DEFAULT_MAX_BATCH_CALLS,
            }
        );
        std::fs::write(&path, "max_sessions = 0\n").unwrap();
        let err = Config::default().merge_file(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("max_sessions: a limit must be at least 1"),
            "{err}"
        );
        std::fs::write(&path, "header_read_timeout = 0\n").unwrap();
        let err = Config::default().merge_file(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("header_read_timeout: a timeout must be longer than zero"),
            "{err}"
        );
        assert_eq!(Config::default().client_limits.max_sessions, 1000);
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn config_file_sets_auth_policy_and_audit() {
        let dir = std::env::temp_dir().join(format!("sb-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("router.toml");
        std::fs::write(
            &path,
            "policy = \"/etc/switchboard/policy.toml\"\n\
             [auth]\nissuer = \"https://idp.example.com/realms/x\"\n\
             public_url = \"https://mcp.example.com\"\naudience = \"a, b\"\n\
             forward_claims = [\"email\"]\n\
             [audit]\nlog_arguments = true\n",
        )
        .unwrap();
        let mut config = Config::default();
        assert!(config.auth.issuer.is_none(), "auth is off by default");
        assert!(
            !config.audit.log_arguments,
            "arguments are not logged by default"
        );
        config.merge_file(&path).unwrap();
        assert_eq!(
            config.auth.issuer.as_deref(),
            Some("https://idp.example.com/realms/x")
        );
        assert_eq!(config.auth.audience, ["a", "b"]);
        assert_eq!(config.auth.forward_claims, ["email"]);
        assert_eq!(
            config.policy.as_deref(),
            Some(Path::new("/etc/switchboard/policy.toml"))
        );
        assert!(config.audit.log_arguments);
        std::fs::write(&path, "[auth]\nissuer = \"x\"\naudiences = \"a\"\n").unwrap();
        let err = Config::default().merge_file(&path).unwrap_err();
        assert!(err.to_string().contains("audiences"), "{err}");
    }

    #[test]
    fn config_file_sets_rate_limits_and_connector_caps() {
        let dir = std::env::temp_dir().join(format!("sb-rate-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("router.toml");
        std::fs::write(
            &path,
            r#"
limits_redis = "redis://127.0.0.1:6379"
share_in_flight = false
[[connectors]]
name = "jira"
url = "jira:50051"
max_in_flight = 4
queue_timeout = 2.5
[[connectors]]
name = "slack"
url = "slack:50052"
[[limit]]
tools = ["jira_*"]
per = "principal"
rate = "300/min"
burst = 20
[[limit]]
rate = "10/s"
"#,
        )
        .unwrap();
        let mut config = Config::default();
        assert!(config.share_in_flight, "shared by default");
        config.merge_file(&path).unwrap();
        assert_eq!(config.connectors[0].max_in_flight, Some(4));
        assert_eq!(
            config.connectors[0].queue_timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(config.connectors[1].max_in_flight, None);
        assert_eq!(config.connectors[1].queue_timeout, DEFAULT_QUEUE_TIMEOUT);
        assert!(config.limits_redis.is_some());
        assert!(!config.share_in_flight);
        assert_eq!(config.rate_limits.len(), 2);
        let jira = &config.rate_limits[0];
        assert_eq!(jira.tools, ["jira_*"]);
        assert_eq!(jira.per, crate::rate::Per::Principal);
        assert_eq!(jira.rate.to_string(), "300/min");
        assert_eq!(jira.burst.get(), 20);
        let all = &config.rate_limits[1];
        assert_eq!(
            (all.tools.as_slice(), all.burst.get()),
            (&["*".to_owned()][..], 10)
        );
        assert!(
            !format!("{config:?}").contains("6379"),
            "the Redis URL (it may hold a password) is not in Debug output"
        );

        for (text, expected) in [
            (
                "[[limit]]\nrate = \"10 per second\"\n",
                "[[limit]] #1: rate: ",
            ),
            (
                "[[limit]]\nrate = \"1/s\"\nper = \"team\"\n",
                "unknown variant `team`",
            ),
            (
                "[[limit]]\nrate = \"1/s\"\nburst = 0\n",
                "[[limit]] #1: burst: must be at least 1",
            ),
            (
                "[[limit]]\nrate = \"1/s\"\ntool = [\"x\"]\n",
                "unknown field `tool`",
            ),
            (
                "[[connectors]]\nname = \"x\"\nurl = \"a:1\"\nmax_in_flight = 0\n",
                "max_in_flight: a limit must be at least 1",
            ),
            (
                "[[connectors]]\nname = \"x\"\nurl = \"a:1\"\nqueue_timeout = 0\n",
                "queue_timeout: a timeout must be longer than zero",
            ),
            (
                "worker_threads = 0\n",
                "worker_threads: a thread count must be at least 1",
            ),
            (
                "worker_threads = 1000\n",
                "worker_threads: 1000 is more than 256 threads",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::default().merge_file(&path).unwrap_err();
            assert!(err.to_string().contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn worker_threads_default_to_one_over_stdio_and_the_runtimes_over_http() {
        let mut config = Config::default();
        assert_eq!(config.workers(true), Some(1));
        assert_eq!(config.workers(false), None);
        let dir = std::env::temp_dir().join(format!("sb-workers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("router.toml");
        std::fs::write(&path, "worker_threads = 4\n").unwrap();
        config.merge_file(&path).unwrap();
        assert_eq!(config.workers(true), Some(4));
        assert_eq!(config.workers(false), Some(4));
        assert_eq!(parse_worker_threads(" 8 "), Ok(8));
        assert!(parse_worker_threads("-1").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }
}
