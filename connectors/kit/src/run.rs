//! The whole connector binary: argument parsing, tracing, binding, shutdown.
//!
//! ```text
//! <connector>                        serve on LISTEN_ADDR (default per connector)
//! <connector> healthcheck [ADDR]     exit 0 SERVING, 1 NOT_SERVING, 2 unreachable
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::healthcheck;

/// What the binary is called and where it listens by default.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorSpec {
    /// Binary name, e.g. `jira-connector`.
    pub binary: &'static str,
    /// One line on what the connector does (shown by `--help`).
    pub about: &'static str,
    /// Default for `LISTEN_ADDR`, e.g. `0.0.0.0:50051`.
    pub default_listen_addr: &'static str,
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC on LISTEN_ADDR (the default).
    Serve,
    /// Check a running connector's grpc.health.v1 status: exit 0 when SERVING,
    /// 1 when NOT_SERVING, 2 when unreachable.
    Healthcheck {
        /// Address or URL to check (default: LISTEN_ADDR, unspecified IP as loopback).
        addr: Option<String>,
        /// Service to check (default: the whole connector).
        #[arg(long, default_value = "")]
        service: String,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 3.0)]
        timeout: f64,
    },
}

/// A shutdown signal handed to the connector's serve function.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the connector binary. `serve` gets the bound listener and the shutdown
/// signal; it reads its own configuration (so errors name the variable) and returns
/// when shut down.
pub async fn run<F, Fut>(spec: ConnectorSpec, serve: F) -> ExitCode
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let command = Cli::command()
        .name(spec.binary)
        .about(spec.about)
        .after_help(format!(
            "Environment: LISTEN_ADDR (default {}), SHUTDOWN_GRACE (seconds, default 10), METRICS_ADDR (off by default), LOG_FORMAT=json, RUST_LOG, OTEL_EXPORTER_OTLP_ENDPOINT and the other OTEL_* variables",
            spec.default_listen_addr
        ));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let listen = crate::env::string("LISTEN_ADDR", spec.default_listen_addr);

    match cli.command.unwrap_or(Command::Serve) {
        Command::Healthcheck {
            addr,
            service,
            timeout,
        } => {
            let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(Duration::from_secs(3));
            let outcome =
                healthcheck::check(addr.as_deref().unwrap_or(&listen), &service, timeout).await;
            eprintln!("{}: {outcome}", spec.binary);
            outcome.exit_code()
        }
        Command::Serve => {
            let telemetry = crate::telemetry::init_with_traces(spec.binary);
            let outcome = serve_on(&listen, serve).await;
            // Send the spans still buffered (a blocking call, off the runtime's threads).
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(
                        connector = spec.binary,
                        error = format!("{error:#}"),
                        "connector failed"
                    );
                    eprintln!("{}: {error:#}", spec.binary);
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve_on<F, Fut>(listen: &str, serve: F) -> anyhow::Result<()>
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use anyhow::Context as _;
    // Metrics first: a malformed METRICS_ADDR stops the connector at start.
    let metrics = crate::metrics::MetricsConfig::from_env()?;
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    crate::metrics::spawn(metrics, async move {
        let _ = metrics_stopped.await;
    })
    .await?;
    let addr: SocketAddr = listen.parse().with_context(|| {
        format!("environment variable LISTEN_ADDR: {listen:?} is not an address like 0.0.0.0:50051")
    })?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (LISTEN_ADDR)"))?;
    let served = serve(listener, Box::pin(crate::shutdown::signal())).await;
    let _ = metrics_stop.send(());
    served
}
