//! `database-connector`: the database connector as a process (see the library).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    connector_kit::run(
        connector_kit::ConnectorSpec {
            binary: "database-connector",
            about: "PostgreSQL, MySQL/MariaDB and SQLite as safe gRPC tools",
            default_listen_addr: "0.0.0.0:50053",
        },
        |listener, shutdown| async move {
            let config = database_connector::Config::from_env()?;
            database_connector::serve(listener, config, shutdown).await
        },
    )
    .await
}
