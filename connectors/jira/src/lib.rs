//! The Jira connector: Jira Cloud (REST v3) and Jira Data Center (REST v2) as the
//! gRPC service `switchboard.jira.v1.Jira`, which the Switchboard router turns
//! into MCP tools (`jira_create_issue`, `jira_search_issues`, ...), plus the
//! generic `switchboard.mcp.v1.Prompts` service ([`prompts`]) the router shows as
//! MCP prompts (`jira_triage_issue`, `jira_summarize_search`).
//!
//! [`serve`] is the whole connector on a bound listener: the service, health and
//! reflection (from the connector kit), and a background task that checks the
//! credentials with `GET /myself` and flips health accordingly. `main.rs` only
//! reads [`Config`] and calls it; tests call it on `127.0.0.1:0`.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod jira;
pub mod prompts;
pub mod richtext;
pub mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connector_kit::{Cadence, Health, Probe, follow_upstream};
use switchboard_proto::jira::v1::jira_server::{self, JiraServer};
use switchboard_proto::mcp::v1::prompts_server::PromptsServer;
use tokio::net::TcpListener;

pub use config::{Config, Credentials, Flavor, JiraSite};
pub use error::Error;

use crate::jira::api::Jira;
use crate::jira::client::JiraHttp;
use crate::jira::scope::ProjectScope;
use crate::prompts::JiraPrompts;
use crate::service::JiraService;

/// Serves the connector on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let jira = match &config.site {
        Some(site) => Some(Arc::new(
            Jira::new(
                JiraHttp::new(
                    site,
                    config.retry,
                    config.request_timeout,
                    config.max_response_bytes,
                )
                .context("cannot build the HTTP client")?,
                config.fields_ttl,
            )
            .with_max_nesting_depth(config.max_nesting_depth),
        )),
        None => {
            tracing::warn!("JIRA_BASE_URL is not set: serving NOT_SERVING until configured");
            None
        }
    };
    let scope = ProjectScope::new(config.projects.clone());
    let prompts = JiraPrompts::new(config.read_only, scope.clone());
    let service = JiraService::new(jira.clone(), config.read_only, scope);
    let mut server =
        connector_kit::ConnectorServer::new("jira", switchboard_proto::FILE_DESCRIPTOR_SET)
            .add_service(JiraServer::new(service))
            .add_service(PromptsServer::new(prompts));
    if config.read_only {
        // The writing tools would only be refused: the agent is not offered them.
        server = server.hide_writing_tools(jira_server::SERVICE_NAME);
    }
    let health = server.health();
    let watcher = jira.map(|jira| tokio::spawn(watch_health(jira, health, config.health_interval)));
    let result = server.serve(listener, shutdown).await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    result.map_err(Into::into)
}

/// Checks the credentials now and every `interval` (at most every 15 s while
/// failing, so recovery is noticed soon): SERVING after a successful
/// `GET /myself`, NOT_SERVING after any failure (a false alarm beats a silent one).
async fn watch_health(jira: Arc<Jira>, health: Health, interval: Duration) {
    let while_failing = interval.min(Duration::from_secs(15));
    let cadence = Cadence::every(interval).retrying(while_failing, while_failing);
    let checks = || async {
        match jira.myself().await {
            Ok(_) => Probe::Up,
            Err(error) => Probe::Down(error),
        }
    };
    // A check never answers Stop, so the loop never ends.
    follow_upstream(&health, "jira", cadence, checks).await;
}
