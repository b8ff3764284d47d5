//! `test-connector`: the calculator connector used by the end-to-end tests and the
//! benchmarks. Environment: `LISTEN_ADDR` (default 127.0.0.1:50059),
//! `TEST_PROTO_VERSION=2` to advertise the proto with the added method,
//! `TEST_NOT_SERVING=true` to report NOT_SERVING like an unconfigured connector,
//! `TEST_FAULTS=MODE` to serve a misbehaving connector instead of the calculator
//! (see [`faults`]: `misbehave`, `flap`, `self-dependent`, `endless-dependencies`,
//! `huge-descriptor`, `deep-diamond` with `TEST_DIAMOND_LEVELS`, default 40),
//! `TEST_READ_DELAY_MS=N` to have Add and Divide (read-only) take N ms.

#[path = "test_connector/faults.rs"]
mod faults;

use std::process::ExitCode;

use integration_tests::calculator::{ProtoVersion, serve_with};

#[tokio::main]
async fn main() -> ExitCode {
    connector_kit::run(
        connector_kit::ConnectorSpec {
            binary: "test-connector",
            about: "Calculator connector for Switchboard's tests and benchmarks",
            default_listen_addr: "127.0.0.1:50059",
        },
        |listener, shutdown| async move {
            if let Some(fault) = faults::Fault::from_env()? {
                return faults::serve(listener, fault, shutdown).await;
            }
            let version = match connector_kit::env::parse::<u8>("TEST_PROTO_VERSION", 1)? {
                1 => ProtoVersion::V1,
                2 => ProtoVersion::V2,
                other => anyhow::bail!(
                    "environment variable TEST_PROTO_VERSION: expected 1 or 2, got {other}"
                ),
            };
            let serving = !connector_kit::env::flag("TEST_NOT_SERVING", false)?;
            let read_delay = std::time::Duration::from_millis(connector_kit::env::parse::<u64>(
                "TEST_READ_DELAY_MS",
                0,
            )?);
            serve_with(listener, version, serving, read_delay, shutdown).await
        },
    )
    .await
}
