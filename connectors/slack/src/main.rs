//! The `slack-connector` binary: reads the configuration and serves the Slack
//! connector (see the library for what it does).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    connector_kit::run(
        connector_kit::ConnectorSpec {
            binary: "slack-connector",
            about: "The Slack Web API as gRPC tools",
            default_listen_addr: "0.0.0.0:50052",
        },
        |listener, shutdown| async move {
            let config = slack_connector::Config::from_env()?;
            slack_connector::serve(listener, config, shutdown).await
        },
    )
    .await
}
