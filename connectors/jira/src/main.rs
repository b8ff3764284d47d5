//! `jira-connector`: reads the configuration from the environment and serves.
//! Everything else is in the library (`jira_connector::serve`) and the kit.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    connector_kit::run(
        connector_kit::ConnectorSpec {
            binary: "jira-connector",
            about: "Jira Cloud / Data Center as gRPC tools (Switchboard connector)",
            default_listen_addr: "0.0.0.0:50051",
        },
        |listener, shutdown| async move {
            let config = jira_connector::Config::from_env()?;
            jira_connector::serve(listener, config, shutdown).await
        },
    )
    .await
}
