//! `switchboard`: the MCP router binary. Parses configuration, starts the
//! connector watchers and serves MCP over stdio or Streamable HTTP.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use std::sync::Arc;
use switchboard_router::config::{self, Config};

use switchboard_router::Security;
use switchboard_router::auth::Authenticator;
use switchboard_router::policy::Policy;
use switchboard_router::{telemetry, transport};
use tokio_util::sync::CancellationToken;

/// One MCP endpoint in front of Switchboard's gRPC connectors.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Speak MCP over stdin/stdout (for `claude mcp add switchboard -- switchboard --stdio ...`).
    #[arg(long)]
    stdio: bool,
    /// Serve Streamable HTTP on this address (endpoint /mcp). Ignored with --stdio.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// A connector: NAME=URL[,URL...] (repeatable). Several URLs are load balanced.
    #[arg(long = "connector", value_name = "NAME=URL")]
    connectors: Vec<String>,
    /// Connectors as NAME=URL entries separated by commas.
    #[arg(
        long = "connectors",
        env = "SWITCHBOARD_CONNECTORS",
        value_name = "LIST"
    )]
    connectors_list: Option<String>,
    /// TOML file with `[[connectors]]` (name, url or urls, timeout, prefix) and settings.
    #[arg(long, env = "SWITCHBOARD_CONFIG", value_parser = maybe(|s: &str| Ok::<_, String>(PathBuf::from(s))))]
    config: Option<Maybe<PathBuf>>,
    /// How long the first tools/list waits for connectors (e.g. 10s) [default: 10s].
    #[arg(long, env = "SWITCHBOARD_STARTUP_TIMEOUT", value_parser = maybe(config::parse_duration))]
    startup_timeout: Option<Maybe<std::time::Duration>>,
    /// Deadline of each call to a connector given with --connector [default: 60s].
    #[arg(long, env = "SWITCHBOARD_CALL_TIMEOUT", value_parser = maybe(config::parse_duration))]
    call_timeout: Option<Maybe<std::time::Duration>>,
    /// How long a down connector's tools stay listed before they are withdrawn [default: 60s].
    #[arg(long, env = "SWITCHBOARD_TOOL_GRACE", value_parser = maybe(config::parse_duration))]
    tool_grace: Option<Maybe<std::time::Duration>>,
    /// Accepted Host header values over HTTP, comma-separated [default: localhost, 127.0.0.1, ::1].
    #[arg(
        long = "allowed-host",
        env = "SWITCHBOARD_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// Accepted Origin header values over HTTP, comma-separated [default: local http(s) origins].
    #[arg(
        long = "allowed-origin",
        env = "SWITCHBOARD_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Largest accepted HTTP request body, and message over stdio, in bytes [default: 4194304].
    #[arg(long, env = "SWITCHBOARD_MAX_BODY_BYTES", value_parser = maybe(parse_bytes))]
    max_body_bytes: Option<Maybe<usize>>,
    /// Over HTTP, close the SSE stream of a tool call still running after this
    /// long (e.g. 30s); the client resumes it with Last-Event-ID [default: off].
    #[arg(long, env = "SWITCHBOARD_SSE_POLL_AFTER", value_parser = maybe(config::parse_duration))]
    sse_poll_after: Option<Maybe<std::time::Duration>>,
    /// On SIGTERM over HTTP, how long new connections are still served while /readyz says
    /// the router is draining, for balancers to notice (e.g. 5s) [default: 0s].
    #[arg(long, env = "SWITCHBOARD_DRAIN_DELAY", value_parser = maybe(config::parse_duration))]
    drain_delay: Option<Maybe<std::time::Duration>>,
    /// On SIGTERM over HTTP, how long requests in flight may take to finish before they are
    /// cancelled [default: 20s].
    #[arg(long, env = "SWITCHBOARD_DRAIN_TIMEOUT", value_parser = maybe(config::parse_duration))]
    drain_timeout: Option<Maybe<std::time::Duration>>,
    /// How often connector host names are resolved again, to follow replicas [default: 10s].
    #[arg(long, env = "SWITCHBOARD_DNS_REFRESH", value_parser = maybe(config::parse_duration))]
    dns_refresh: Option<Maybe<std::time::Duration>>,
    /// Largest message a connector may answer a call with, in bytes; a bigger one is a tool error [default: 16777216].
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_BYTES", value_parser = maybe(config::parse_limit))]
    max_message_bytes: Option<Maybe<usize>>,
    /// Largest reflection answer (descriptor files) read from a connector, in bytes [default: 4194304].
    #[arg(long, env = "SWITCHBOARD_REFLECTION_MAX_MESSAGE_BYTES", value_parser = maybe(config::parse_limit))]
    reflection_max_message_bytes: Option<Maybe<usize>>,
    /// Most descriptor files read from one connector, dependencies included [default: 256].
    #[arg(long, env = "SWITCHBOARD_MAX_REFLECTION_FILES", value_parser = maybe(config::parse_limit))]
    max_reflection_files: Option<Maybe<usize>>,
    /// Largest generated JSON Schema of a tool, in bytes; a tool over it is left out [default: 262144].
    #[arg(long, env = "SWITCHBOARD_MAX_SCHEMA_BYTES", value_parser = maybe(config::parse_limit))]
    max_schema_bytes: Option<Maybe<usize>>,
    /// Most message definitions ($defs) in a tool's schema; a tool over it is left out [default: 256].
    #[arg(long, env = "SWITCHBOARD_MAX_SCHEMA_DEFS", value_parser = maybe(config::parse_limit))]
    max_schema_defs: Option<Maybe<usize>>,
    /// Most messages a server-streaming call may return; then it is cancelled with a tool error [default: 10000].
    #[arg(long, env = "SWITCHBOARD_MAX_STREAM_MESSAGES", value_parser = maybe(config::parse_limit))]
    max_stream_messages: Option<Maybe<usize>>,
    /// Most bytes a server-streaming call may return in total; then it is cancelled with a tool error [default: 16777216].
    #[arg(long, env = "SWITCHBOARD_MAX_STREAM_BYTES", value_parser = maybe(config::parse_limit))]
    max_stream_bytes: Option<Maybe<usize>>,
    /// Most HTTP connections open at once; one more is answered 503 and closed [default: 1024].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", value_parser = maybe(config::parse_limit))]
    max_connections: Option<Maybe<usize>>,
    /// Time a client has to send a request's headers; also how long an idle connection is kept [default: 10s].
    #[arg(long, env = "SWITCHBOARD_HEADER_READ_TIMEOUT", value_parser = maybe(config::parse_timeout))]
    header_read_timeout: Option<Maybe<std::time::Duration>>,
    /// Time a client has to send a request's body; then 408 and the connection is closed [default: 30s].
    #[arg(long, env = "SWITCHBOARD_BODY_READ_TIMEOUT", value_parser = maybe(config::parse_timeout))]
    body_read_timeout: Option<Maybe<std::time::Duration>>,
    /// Bytes of request bodies being read at once, all clients together; more is answered 503 [default: 67108864].
    #[arg(long, env = "SWITCHBOARD_MAX_BODY_BYTES_IN_FLIGHT", value_parser = maybe(config::parse_limit))]
    max_body_bytes_in_flight: Option<Maybe<usize>>,
    /// Most MCP sessions open at once over HTTP; one more initialize is answered 503 [default: 1000].
    #[arg(long, env = "SWITCHBOARD_MAX_SESSIONS", value_parser = maybe(config::parse_limit))]
    max_sessions: Option<Maybe<usize>>,
    /// Largest initialize parameters (JSON bytes) a session keeps; larger is refused [default: 16384].
    #[arg(long, env = "SWITCHBOARD_MAX_INITIALIZE_BYTES", value_parser = maybe(config::parse_limit))]
    max_initialize_bytes: Option<Maybe<usize>>,
    /// A session unused for this long is closed; its client must initialize again [default: 300s].
    #[arg(long, env = "SWITCHBOARD_SESSION_IDLE_TIMEOUT", value_parser = maybe(config::parse_timeout))]
    session_idle_timeout: Option<Maybe<std::time::Duration>>,
    /// Most tool calls one session runs at once; one more is a tool error [default: 32].
    #[arg(long, env = "SWITCHBOARD_MAX_CALLS_PER_SESSION", value_parser = maybe(config::parse_limit))]
    max_calls_per_session: Option<Maybe<usize>>,
    /// Most resource subscriptions one session holds; one more is a JSON-RPC error [default: 64].
    #[arg(long, env = "SWITCHBOARD_MAX_SUBSCRIPTIONS_PER_SESSION", value_parser = maybe(config::parse_limit))]
    max_subscriptions_per_session: Option<Maybe<usize>>,
    /// Progress and log notifications of one call kept for a slow client; more are dropped [default: 256].
    #[arg(long, env = "SWITCHBOARD_NOTIFICATION_QUEUE", value_parser = maybe(config::parse_limit))]
    notification_queue: Option<Maybe<usize>>,
    /// Most calls in one REST batch (POST /api/v1/batch); a bigger one is answered 413 [default: 64].
    #[arg(long, env = "SWITCHBOARD_MAX_BATCH_CALLS", value_parser = maybe(config::parse_limit))]
    max_batch_calls: Option<Maybe<usize>>,
    /// A rate limit on every tool per principal, e.g. 300/min (added after the config file's [[limit]] tables) [default: none].
    #[arg(long, env = "SWITCHBOARD_RATE_LIMIT", value_parser = maybe(|s: &str| switchboard_router::rate::Rate::parse(s).map(|_| s.trim().to_owned())))]
    rate_limit: Option<Maybe<String>>,
    /// Calls --rate-limit lets through at once after a quiet period [default: the rate's count].
    #[arg(long, env = "SWITCHBOARD_RATE_LIMIT_BURST", value_parser = maybe(config::parse_limit))]
    rate_limit_burst: Option<Maybe<usize>>,
    /// Redis that router replicas share rate limits through (redis://host:6379); when it is down,
    /// limits are counted in each replica [default: none, limits counted in this replica].
    #[arg(long, env = "SWITCHBOARD_LIMITS_REDIS", value_parser = maybe(|s: &str| Ok::<_, String>(s.trim().to_owned())))]
    limits_redis: Option<Maybe<String>>,
    /// Redis that router replicas share MCP sessions through (redis://host:6379): any replica serves
    /// any session, no affinity needed [default: none, sessions live in this replica].
    #[arg(long, env = "SWITCHBOARD_SESSION_STORE", value_parser = maybe(|s: &str| Ok::<_, String>(s.trim().to_owned())))]
    session_store: Option<Maybe<String>>,
    /// Prefix of the session store's keys and channels [default: switchboard:].
    #[arg(long, env = "SWITCHBOARD_SESSION_PREFIX", value_parser = maybe(config::parse_session_prefix))]
    session_prefix: Option<Maybe<String>>,
    /// Keys (64 hex digits each; a comma-separated list to rotate, newest first) binding shared
    /// sessions to their principal [default: none, a plain hash].
    #[arg(long, env = "SWITCHBOARD_SESSION_KEY", hide_env_values = true, value_parser = maybe(switchboard_router::session::parse_session_keys))]
    session_key: Option<Maybe<switchboard_router::session::SessionKeys>>,
    /// Most calls in flight to each connector given with --connector or SWITCHBOARD_CONNECTORS [default: unlimited].
    #[arg(long, env = "SWITCHBOARD_MAX_IN_FLIGHT", value_parser = maybe(config::parse_limit))]
    max_in_flight: Option<Maybe<usize>>,
    /// How long a call waits for a place at a connector at its max_in_flight [default: 5s].
    #[arg(long, env = "SWITCHBOARD_QUEUE_TIMEOUT", value_parser = maybe(config::parse_timeout))]
    queue_timeout: Option<Maybe<std::time::Duration>>,
    /// Let identical read-only calls in flight share one connector call [default: true].
    #[arg(long, env = "SWITCHBOARD_SHARE_IN_FLIGHT", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = maybe(parse_bool))]
    share_in_flight: Option<Maybe<bool>>,
    /// OAuth 2.0 / OpenID issuer whose bearer tokens HTTP clients must present [default: none, HTTP unauthenticated].
    #[arg(long, env = "SWITCHBOARD_AUTH_ISSUER", value_parser = maybe(|s: &str| Ok::<_, String>(s.trim().to_owned())))]
    auth_issuer: Option<Maybe<String>>,
    /// The router's external URL (required with --auth-issuer); the protected resource is `URL/mcp`.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL", value_parser = maybe(|s: &str| Ok::<_, String>(s.trim().to_owned())))]
    public_url: Option<Maybe<String>>,
    /// Accepted token audiences, repeatable or comma-separated [default: the public URL followed by /mcp].
    #[arg(
        long = "auth-audience",
        env = "SWITCHBOARD_AUTH_AUDIENCE",
        value_delimiter = ','
    )]
    auth_audience: Vec<String>,
    /// Authorization policy (TOML allow rules); without one every valid token may use every tool.
    #[arg(long, env = "SWITCHBOARD_POLICY", value_parser = maybe(|s: &str| Ok::<_, String>(PathBuf::from(s))))]
    policy: Option<Maybe<PathBuf>>,
    /// Serve Prometheus /metrics on this address of its own (for --stdio, or to keep metrics off
    /// the public listener) [default: /metrics on the HTTP listener when no issuer is set].
    #[arg(long, env = "SWITCHBOARD_METRICS_LISTEN", value_parser = maybe(config::parse_listen))]
    metrics_listen: Option<Maybe<std::net::SocketAddr>>,
    /// Log each call's arguments (secrets redacted, cut) in the audit lines [default: off].
    #[arg(long, env = "SWITCHBOARD_AUDIT_ARGS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = maybe(parse_bool))]
    audit_args: Option<Maybe<bool>>,
    /// Threads running the router's tasks, 1 to 256 [default: 1 with --stdio,
    /// otherwise TOKIO_WORKER_THREADS or one per CPU].
    #[arg(long, env = "SWITCHBOARD_WORKER_THREADS", value_parser = maybe(config::parse_worker_threads))]
    worker_threads: Option<Maybe<usize>>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check a running router over HTTP (for container health checks): exit 0
    /// when ready (GET /readyz answers 200; /healthz with --live), 1 when it
    /// answers otherwise, 2 when it cannot be reached.
    Healthcheck {
        /// Address of the router (default: --listen / SWITCHBOARD_LISTEN, an
        /// unspecified IP such as 0.0.0.0 checked on loopback).
        addr: Option<String>,
        /// Only check that the process serves HTTP (GET /healthz).
        #[arg(long)]
        live: bool,
    },
    /// Check or explain an authorization policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, clap::Subcommand)]
enum PolicyCommand {
    /// Check a policy file: exit 0 and summarize its rules when valid, 1 naming
    /// the rule and the reason when not.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Say, rule by rule, whether a principal with these claims may call a tool:
    /// exit 0 when allowed, 1 otherwise.
    Explain {
        /// The policy file.
        #[arg(long)]
        policy: PathBuf,
        /// A JSON file with the token's claims (at least a string `sub`).
        #[arg(long)]
        claims: PathBuf,
        /// The tool (or prompt, or resource) name as the router lists it.
        #[arg(long)]
        tool: String,
        /// The tool's connector, for conditions on `tool.connector`.
        #[arg(long, default_value = "")]
        connector: String,
        /// The call's arguments as JSON.
        #[arg(long, default_value = "{}")]
        args: String,
    },
}

/// A setting that may be given empty (as compose does with `${VAR:-}`), which
/// means "use the default", like an unset variable.
#[derive(Debug, Clone)]
struct Maybe<T>(Option<T>);

fn maybe<T: Clone + Send + Sync + 'static>(
    parse: impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
) -> impl Fn(&str) -> Result<Maybe<T>, String> + Clone + Send + Sync + 'static {
    move |raw: &str| {
        if raw.trim().is_empty() {
            Ok(Maybe(None))
        } else {
            parse(raw).map(|v| Maybe(Some(v)))
        }
    }
}

fn set<T>(value: Option<Maybe<T>>) -> Option<T> {
    value.and_then(|m| m.0)
}

/// A switch given as a value (`SWITCHBOARD_AUDIT_ARGS=true`).
fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{raw:?} is not true or false")),
    }
}

fn parse_bytes(raw: &str) -> Result<usize, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of bytes"))
}

const EXAMPLES: &str = "Examples:
  switchboard --connector code_analysis=http://127.0.0.1:50054 --listen 127.0.0.1:8080
  switchboard --stdio --connector jira=http://127.0.0.1:50051 --connector database=http://127.0.0.1:50053
  SWITCHBOARD_CONNECTORS=jira=http://jira:50051,slack=http://slack:50052 switchboard --listen 0.0.0.0:8080
  switchboard --connector jira=http://jira:50051 --rate-limit 300/min --max-in-flight 8 --limits-redis redis://redis:6379
  switchboard --listen 0.0.0.0:8080 --session-store redis://redis:6379 --session-key $(openssl rand -hex 32) --connector jira=http://jira:50051
  switchboard --listen 0.0.0.0:8080 --auth-issuer https://kc.example.com/realms/acme --public-url https://mcp.example.com --policy policy.toml --connector jira=http://jira:50051
  switchboard policy explain --policy policy.toml --claims claims.json --tool database_query";

impl Cli {
    fn listen_addr(&self) -> String {
        if self.listen.trim().is_empty() {
            "127.0.0.1:8080".to_owned()
        } else {
            self.listen.trim().to_owned()
        }
    }

    fn into_config(self) -> anyhow::Result<(Config, bool, String)> {
        let listen = self.listen_addr();
        let mut config = Config::default();
        if let Some(path) = set(self.config) {
            config.merge_file(&path)?;
        }
        let max_in_flight = set(self.max_in_flight);
        let queue_timeout = set(self.queue_timeout);
        let capped = |mut c: config::ConnectorConfig| {
            c.max_in_flight = max_in_flight.or(c.max_in_flight);
            c.queue_timeout = queue_timeout.unwrap_or(c.queue_timeout);
            c
        };
        if let Some(list) = &self.connectors_list {
            for c in config::parse_connector_specs(list, "SWITCHBOARD_CONNECTORS")? {
                config.upsert(capped(c));
            }
        }
        let call_timeout = set(self.call_timeout);
        for spec in &self.connectors {
            for mut c in config::parse_connector_specs(spec, "--connector")? {
                if let Some(timeout) = call_timeout {
                    c.timeout = timeout;
                }
                config.upsert(capped(c));
            }
        }
        let burst = set(self.rate_limit_burst);
        if let Some(rate) = set(self.rate_limit) {
            let burst = burst
                .map(|b| {
                    u32::try_from(b)
                        .map_err(|_| anyhow::anyhow!("--rate-limit-burst: {b} is too large"))
                })
                .transpose()?;
            let rule = switchboard_router::rate::LimitRule::new(
                Vec::new(),
                switchboard_router::rate::Per::Principal,
                &rate,
                burst,
            )
            .map_err(|e| anyhow::anyhow!("--rate-limit / SWITCHBOARD_RATE_LIMIT: {e}"))?;
            config.rate_limits.push(rule);
        } else if burst.is_some() {
            anyhow::bail!("--rate-limit-burst / SWITCHBOARD_RATE_LIMIT_BURST needs --rate-limit");
        }
        if let Some(url) = set(self.limits_redis) {
            config.limits_redis = Some(url.into());
        }
        if let Some(url) = set(self.session_store) {
            config.session_store = Some(url.into());
        }
        if let Some(prefix) = set(self.session_prefix) {
            config.session_prefix = prefix;
        }
        if let Some(delay) = set(self.drain_delay) {
            config.drain_delay = delay;
        }
        if let Some(timeout) = set(self.drain_timeout) {
            config.drain_timeout = timeout;
        }
        if let Some(keys) = set(self.session_key) {
            config.session_keys = keys;
        }
        if !config.session_keys.is_empty() && config.session_store.is_none() {
            tracing::info!(
                "--session-key is set without --session-store: it is used only with a store"
            );
        }
        if let Some(share) = set(self.share_in_flight) {
            config.share_in_flight = share;
        }
        if let Some(t) = set(self.startup_timeout) {
            config.startup_timeout = t;
        }
        if let Some(t) = set(self.tool_grace) {
            config.tool_grace = t;
        }
        let hosts: Vec<String> = self
            .allowed_hosts
            .into_iter()
            .filter(|h| !h.trim().is_empty())
            .collect();
        if !hosts.is_empty() {
            config.allowed_hosts = hosts;
        }
        let origins: Vec<String> = self
            .allowed_origins
            .into_iter()
            .filter(|o| !o.trim().is_empty())
            .collect();
        if !origins.is_empty() {
            config.allowed_origins = origins;
        }
        if let Some(b) = set(self.max_body_bytes) {
            config.max_body_bytes = b;
        }
        if let Some(after) = set(self.sse_poll_after) {
            config.sse_poll_after = Some(after);
        }
        if let Some(refresh) = set(self.dns_refresh) {
            config.dns_refresh = refresh;
        }
        if let Some(n) = set(self.max_message_bytes) {
            config.limits.max_message_bytes = n;
        }
        if let Some(n) = set(self.reflection_max_message_bytes) {
            config.limits.reflection_max_message_bytes = n;
        }
        if let Some(n) = set(self.max_reflection_files) {
            config.limits.max_reflection_files = n;
        }
        if let Some(n) = set(self.max_schema_bytes) {
            config.limits.max_schema_bytes = n;
        }
        if let Some(n) = set(self.max_schema_defs) {
            config.limits.max_schema_defs = n;
        }
        if let Some(n) = set(self.max_stream_messages) {
            config.limits.max_stream_messages = n;
        }
        if let Some(n) = set(self.max_stream_bytes) {
            config.limits.max_stream_bytes = n;
        }
        let clients = &mut config.client_limits;
        if let Some(n) = set(self.max_connections) {
            clients.max_connections = n;
        }
        if let Some(t) = set(self.header_read_timeout) {
            clients.header_read_timeout = t;
        }
        if let Some(t) = set(self.body_read_timeout) {
            clients.body_read_timeout = t;
        }
        if let Some(n) = set(self.max_body_bytes_in_flight) {
            clients.max_body_bytes_in_flight = n;
        }
        if let Some(n) = set(self.max_sessions) {
            clients.max_sessions = n;
        }
        if let Some(n) = set(self.max_initialize_bytes) {
            clients.max_initialize_bytes = n;
        }
        if let Some(t) = set(self.session_idle_timeout) {
            clients.session_idle_timeout = t;
        }
        if let Some(n) = set(self.max_calls_per_session) {
            clients.max_calls_per_session = n;
        }
        if let Some(n) = set(self.max_subscriptions_per_session) {
            clients.max_subscriptions_per_session = n;
        }
        if let Some(n) = set(self.notification_queue) {
            clients.notification_queue = n;
        }
        if let Some(n) = set(self.max_batch_calls) {
            clients.max_batch_calls = n;
        }
        if let Some(issuer) = set(self.auth_issuer) {
            config.auth.issuer = Some(issuer);
        }
        if let Some(url) = set(self.public_url) {
            config.auth.public_url = Some(url);
        }
        let audience: Vec<String> = self
            .auth_audience
            .iter()
            .flat_map(|a| switchboard_router::auth::split_list(a))
            .collect();
        if !audience.is_empty() {
            config.auth.audience = audience;
        }
        if let Some(policy) = set(self.policy) {
            config.policy = Some(policy);
        }
        if let Some(on) = set(self.audit_args) {
            config.audit.log_arguments = on;
        }
        if let Some(addr) = set(self.metrics_listen) {
            config.metrics_listen = Some(addr);
        }
        if let Some(n) = set(self.worker_threads) {
            config.worker_threads = Some(n);
        }
        Ok((config, self.stdio, listen))
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::Healthcheck { addr, live }) => {
            let addr = addr.unwrap_or_else(|| cli.listen_addr());
            return run_on(
                tokio::runtime::Builder::new_current_thread(),
                healthcheck(&addr, live),
            );
        }
        Some(Command::Policy(command)) => return policy_command(command),
        None => {}
    }
    // The settings decide how many threads the runtime has, so they are read
    // before it starts; an error is reported once logging is up, like any.
    let prepared = cli.into_config();
    let workers = match &prepared {
        Ok((config, stdio, _)) => config.workers(*stdio),
        Err(_) => Some(1),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    run_on(builder, serve(prepared))
}

/// Runs `work` to its end on a runtime built by `builder`.
fn run_on(
    mut builder: tokio::runtime::Builder,
    work: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(work),
        Err(error) => {
            eprintln!("switchboard: cannot start the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(prepared: anyhow::Result<(Config, bool, String)>) -> ExitCode {
    // OTLP trace export only when the standard OTEL_* variables ask for it.
    let telemetry = match telemetry::TracesConfig::from_env()
        .map_err(anyhow::Error::msg)
        .and_then(|traces| Ok(telemetry::init(traces.as_ref())?))
    {
        Ok(telemetry) => telemetry,
        Err(error) => {
            let _ = telemetry::init(None);
            eprintln!("switchboard: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        target: "switchboard::runtime",
        workers = tokio::runtime::Handle::current().metrics().num_workers(),
        "runtime started"
    );
    let outcome = match prepared {
        Ok((config, stdio, listen)) => run(config, stdio, listen).await,
        Err(error) => Err(error),
    };
    // Send the spans still buffered (a blocking call, off the runtime's threads).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "switchboard failed");
            eprintln!("switchboard: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Largest claims file `policy explain` reads.
const MAX_CLAIMS_BYTES: u64 = 1024 * 1024;

/// `switchboard policy check|explain`: prints the library's text.
fn policy_command(command: PolicyCommand) -> ExitCode {
    use switchboard_router::policy::{self, Decision, Policy, ToolRef};
    match command {
        PolicyCommand::Check { file } => match policy::check(&file) {
            Ok(text) => {
                let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("switchboard: {error}");
                ExitCode::FAILURE
            }
        },
        PolicyCommand::Explain {
            policy: path,
            claims,
            tool,
            connector,
            args,
        } => {
            let loaded = match Policy::load(&path) {
                Ok(p) => p,
                Err(error) => {
                    eprintln!("switchboard: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let claims = match read_json(&claims) {
                Ok(c) => c,
                Err(error) => {
                    eprintln!("switchboard: --claims {}: {error}", claims.display());
                    return ExitCode::FAILURE;
                }
            };
            // A tool's arguments are a JSON object, as `args` in a condition.
            let args: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(&args)
            {
                Ok(a) => a,
                Err(error) => {
                    eprintln!("switchboard: --args is not a JSON object: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let target = ToolRef {
                name: &tool,
                connector: &connector,
            };
            match policy::explain(&loaded, &claims, &target, &args) {
                Ok(text) => {
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
                    let allowed = serde_json::from_value(claims)
                        .ok()
                        .and_then(switchboard_router::auth::Principal::from_claims)
                        .is_some_and(|p| {
                            matches!(loaded.decide(&p, &target, &args), Decision::Allow { .. })
                        });
                    if allowed {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(error) => {
                    eprintln!("switchboard: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Reads a JSON file of at most [`MAX_CLAIMS_BYTES`].
fn read_json(path: &std::path::Path) -> Result<serde_json::Value, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(MAX_CLAIMS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_CLAIMS_BYTES {
        return Err(format!("larger than {MAX_CLAIMS_BYTES} bytes"));
    }
    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))
}

/// `switchboard healthcheck`: a plain HTTP/1.1 GET with no extra tools.
async fn healthcheck(addr: &str, live: bool) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = match addr.parse::<std::net::SocketAddr>() {
        Ok(mut a) => {
            if a.ip().is_unspecified() {
                a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            a.to_string()
        }
        Err(_) => addr.to_owned(),
    };
    let path = if live { "/healthz" } else { "/readyz" };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&target).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&head[..n]).into_owned())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), exchange).await {
        Ok(Ok(head)) => {
            let status = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
            eprintln!("switchboard: {target}{path} answered {status}");
            if status == "200" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Ok(Err(e)) => {
            eprintln!("switchboard: cannot reach {target}: {e}");
            ExitCode::from(2)
        }
        Err(_) => {
            eprintln!("switchboard: no answer from {target} within 3s");
            ExitCode::from(2)
        }
    }
}

async fn run(config: Config, stdio: bool, listen: String) -> anyhow::Result<()> {
    let security = security(&config, stdio).await?;
    let shutdown = CancellationToken::new();
    let limits = switchboard_router::CallLimits::from_config(&config, &shutdown)
        .map_err(anyhow::Error::msg)?;
    let router = switchboard_router::McpHandler::connect(&config, &shutdown)?
        .with_security(security)
        .with_call_limits(limits);
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-listen: cannot listen on {addr}"))?;
        let catalog = router.catalog().clone();
        let limits = config.client_limits;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            transport::serve_metrics(listener, catalog, &limits, stop.cancelled_owned()).await;
        });
    }
    let result = if stdio {
        transport::serve_stdio(router, config.max_body_bytes, shutdown_signal()).await
    } else {
        let addr = config::parse_listen(&listen)
            .map_err(anyhow::Error::msg)
            .context("--listen / SWITCHBOARD_LISTEN")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        transport::serve_http(router, listener, &config, shutdown_signal()).await
    };
    shutdown.cancel();
    result
}

/// Loads the policy and, with an issuer, discovers it: any error stops start-up.
async fn security(config: &Config, stdio: bool) -> anyhow::Result<Security> {
    let policy = match &config.policy {
        Some(path) => {
            let policy = Policy::load(path).context("--policy / SWITCHBOARD_POLICY")?;
            tracing::info!(policy = %path.display(), rules = policy.len(), "authorization policy loaded");
            policy
        }
        None => Policy::allow_all(),
    };
    let settings = config
        .auth
        .settings()
        .context("--auth-issuer / --public-url / [auth]")?;
    let auth = match settings {
        Some(_) if stdio => {
            tracing::info!(
                "over stdio the local user is trusted: --auth-issuer applies to HTTP only"
            );
            None
        }
        Some(settings) => Some(Arc::new(
            Authenticator::discover(settings, policy.scopes_supported())
                .await
                .context("cannot use the issuer (--auth-issuer)")?,
        )),
        None => None,
    };
    if auth.is_none() && policy.is_enforcing() && !stdio {
        tracing::warn!(
            "a policy is set but no --auth-issuer: HTTP clients are the trusted local user and the policy does not restrict them"
        );
    }
    Ok(Security {
        auth,
        policy: Arc::new(policy),
        audit: Arc::new(config.audit.clone()),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
