//! The Slack connector: the Slack Web API as the gRPC service
//! `switchboard.slack.v1.Slack`, which the Switchboard router offers as MCP tools
//! (`slack_send_message`, `slack_get_channel_history`, ...).
//!
//! - [`config`]: settings from the environment.
//! - [`service`]: the gRPC service; checks arguments.
//! - [`workspace`]: what each tool does: names, policy, Web API calls.
//! - [`directory`]: lazily filled channel and user name caches.
//! - [`prompts`]: the MCP prompts (`switchboard.mcp.v1.Prompts`) and their
//!   argument completion.
//! - [`policy`]: write switch and channel allow/deny lists.
//! - [`api`]: the HTTP client: auth, retries, `ok: false` errors.
//! - [`pacing`]: per-method pacing by Slack's rate-limit tiers.
//! - [`model`]: Slack's JSON into the service's messages.
//! - [`error`]: the error type and its gRPC status codes.
//!
//! [`serve`] runs it all on a bound listener until shut down; health is
//! NOT_SERVING until `auth.test` succeeds with the bot token, and re-checked
//! every `SLACK_HEALTH_INTERVAL`.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod directory;
pub mod error;
pub mod mentions;
pub mod model;
pub mod pacing;
pub mod policy;
pub mod prompts;
pub mod service;
pub mod since;
pub mod workspace;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use connector_kit::{Cadence, ConnectorServer, Health, Probe, follow_upstream};
use switchboard_proto::mcp::v1::prompts_server::PromptsServer;
use switchboard_proto::slack::v1::slack_server::{self, SlackServer};
use tokio::net::TcpListener;

pub use config::Config;
use prompts::SlackPrompts;
use service::SlackService;
use workspace::Workspace;

/// Serves the Slack connector on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let workspace = Arc::new(Workspace::new(&config).context("cannot build the HTTP client")?);
    let mut server = ConnectorServer::new("slack", switchboard_proto::FILE_DESCRIPTOR_SET)
        .add_service(SlackServer::new(SlackService::new(workspace.clone())))
        .add_service(PromptsServer::new(SlackPrompts::new(workspace.clone())));
    if !config.allow_writes {
        // The writing tools would only be refused: the agent is not offered them.
        server = server.hide_writing_tools(slack_server::SERVICE_NAME);
    }
    let health = server.health();
    let checker = tokio::spawn(watch_health(workspace, health, config.health_interval));
    let served = server.serve(listener, shutdown).await;
    checker.abort();
    served.context("slack connector failed")
}

/// Keeps the connector's health in step with `auth.test`: SERVING while the bot
/// token works, NOT_SERVING while it is missing, rejected, or Slack unreachable.
async fn watch_health(workspace: Arc<Workspace>, health: Health, interval: Duration) {
    if !workspace.api().has_bot_token() {
        tracing::warn!("SLACK_BOT_TOKEN is not set; the slack connector stays NOT_SERVING");
        health.set_not_serving().await;
        return;
    }
    let checks = || async {
        match workspace.check_auth().await {
            Ok(identity) => {
                tracing::debug!(identity = %identity, "slack auth.test succeeded");
                Probe::Up
            }
            Err(error) => Probe::Down(error),
        }
    };
    // A check never answers Stop, so the loop never ends.
    follow_upstream(&health, "slack", Cadence::every(interval), checks).await;
}
