//! `code-analysis-connector`: code metrics and security findings as gRPC tools.
//! Configuration: see `config.rs` (CODE_ROOT, MAX_FILE_BYTES, ...).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    connector_kit::run(
        connector_kit::ConnectorSpec {
            binary: "code-analysis-connector",
            about: "Code metrics, security findings and hotspots as gRPC tools",
            default_listen_addr: "0.0.0.0:50054",
        },
        |listener, shutdown| async move {
            let config = code_analysis_connector::Config::from_env()?;
            code_analysis_connector::serve(listener, config, shutdown).await
        },
    )
    .await
}
