//! `switchboard`: the MCP router binary. Parses configuration, starts the
//! connector watchers and serves MCP over stdio or Streamable HTTP.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use switchboard_router::config::{self, Config};
use switchboard_router::{telemetry, transport};
use tokio_util::sync::CancellationToken;

/// One MCP endpoint in front of Switchboard's gRPC connectors.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, after_help = EXAMPLES)]
struct Cli {
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
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// How long the first tools/list waits for connectors (e.g. 10s) [default: 10s].
    #[arg(long, env = "SWITCHBOARD_STARTUP_TIMEOUT", value_parser = config::parse_duration)]
    startup_timeout: Option<std::time::Duration>,
    /// Deadline of each call to a connector given with --connector [default: 60s].
    #[arg(long, env = "SWITCHBOARD_CALL_TIMEOUT", value_parser = config::parse_duration)]
    call_timeout: Option<std::time::Duration>,
    /// How long a down connector's tools stay listed before they are withdrawn [default: 60s].
    #[arg(long, env = "SWITCHBOARD_TOOL_GRACE", value_parser = config::parse_duration)]
    tool_grace: Option<std::time::Duration>,
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
    /// Largest accepted HTTP request body in bytes [default: 4194304].
    #[arg(long, env = "SWITCHBOARD_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Over HTTP, close the SSE stream of a tool call still running after this
    /// long (e.g. 30s); the client resumes it with Last-Event-ID [default: off].
    #[arg(long, env = "SWITCHBOARD_SSE_POLL_AFTER", value_parser = config::parse_duration)]
    sse_poll_after: Option<std::time::Duration>,
}

const EXAMPLES: &str = "Examples:
  switchboard --connector code_analysis=http://127.0.0.1:50054 --listen 127.0.0.1:8080
  switchboard --stdio --connector jira=http://127.0.0.1:50051 --connector database=http://127.0.0.1:50053
  SWITCHBOARD_CONNECTORS=jira=http://jira:50051,slack=http://slack:50052 switchboard --listen 0.0.0.0:8080";

impl Cli {
    fn into_config(self) -> anyhow::Result<(Config, bool, String)> {
        let mut config = Config::default();
        if let Some(path) = &self.config {
            config.merge_file(path)?;
        }
        if let Some(list) = &self.connectors_list {
            for c in config::parse_connector_specs(list, "SWITCHBOARD_CONNECTORS")? {
                config.upsert(c);
            }
        }
        for spec in &self.connectors {
            for mut c in config::parse_connector_specs(spec, "--connector")? {
                if let Some(timeout) = self.call_timeout {
                    c.timeout = timeout;
                }
                config.upsert(c);
            }
        }
        if let Some(t) = self.startup_timeout {
            config.startup_timeout = t;
        }
        if let Some(t) = self.tool_grace {
            config.tool_grace = t;
        }
        if !self.allowed_hosts.is_empty() {
            config.allowed_hosts = self.allowed_hosts;
        }
        if !self.allowed_origins.is_empty() {
            config.allowed_origins = self.allowed_origins;
        }
        if let Some(b) = self.max_body_bytes {
            config.max_body_bytes = b;
        }
        if let Some(after) = self.sse_poll_after {
            config.sse_poll_after = Some(after);
        }
        Ok((config, self.stdio, self.listen))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "switchboard failed");
            eprintln!("switchboard: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (config, stdio, listen) = cli.into_config()?;
    let shutdown = CancellationToken::new();
    let router = transport::start(&config, &shutdown)?;
    let result = if stdio {
        transport::serve_stdio(router, shutdown_signal()).await
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
