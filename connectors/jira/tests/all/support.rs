//! Shared test plumbing: the connector started in-process on `127.0.0.1:0`, its
//! gRPC clients, configurations for a fake Jira, and the shared Prism mock.

use std::sync::OnceLock;
use std::time::Duration;

use connector_kit::retry::RetryPolicy;
use jira_connector::{Config, Credentials, Flavor, JiraSite};
use secrecy::SecretString;
use switchboard_proto::jira::v1::jira_client::JiraClient;
use switchboard_proto::mcp::v1::prompts_client::PromptsClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

/// The API token the tests configure; it must never appear in any output.
pub const TOKEN: &str = "tok-s3cret-never-shown";
pub const EMAIL: &str = "bot@example.com";

/// A running connector; stops when dropped.
pub struct Connector {
    pub client: JiraClient<Channel>,
    pub health: HealthClient<Channel>,
    pub prompts: PromptsClient<Channel>,
    _stop: oneshot::Sender<()>,
}

/// Starts the connector with `config` on an ephemeral port.
pub async fn start(config: Config) -> Connector {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(error) = jira_connector::serve(listener, config, shutdown).await {
            eprintln!("connector failed: {error:#}");
        }
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the connector");
    Connector {
        client: JiraClient::new(channel.clone()),
        health: HealthClient::new(channel.clone()),
        prompts: PromptsClient::new(channel),
        _stop: stop,
    }
}

/// A Cloud configuration for a fake Jira at `base_url`, with fast retries.
pub fn cloud(base_url: &str) -> Config {
    let mut config = Config::new(Some(JiraSite {
        base_url: base_url.trim_end_matches('/').to_owned(),
        flavor: Flavor::Cloud,
        credentials: Credentials::Basic {
            email: EMAIL.to_owned(),
            token: SecretString::from(TOKEN),
        },
    }));
    config.retry = RetryPolicy {
        max_retries: 3,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total_delay: Duration::from_secs(5),
    };
    config.request_timeout = Duration::from_secs(20);
    config
}

/// A Data Center configuration (bearer PAT) for a fake Jira at `base_url`.
pub fn datacenter(base_url: &str) -> Config {
    let mut config = cloud(base_url);
    if let Some(site) = config.site.as_mut() {
        site.flavor = Flavor::DataCenter;
        site.credentials = Credentials::Bearer(SecretString::from(TOKEN));
    }
    config
}

/// `Basic base64(email:token)` as the connector must send it.
pub fn basic_auth_header() -> String {
    format!("Basic {}", base64(format!("{EMAIL}:{TOKEN}").as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Asserts that no part of a status shows the API token.
pub fn assert_no_secret(status: &tonic::Status) {
    assert!(
        !status.message().contains(TOKEN),
        "token leaked: {}",
        status.message()
    );
    assert!(
        !format!("{status:?}").contains(TOKEN),
        "token leaked in details"
    );
}

// ------------------------------------------------------------------ Prism

pub use integration_tests::prism::Prism;

/// The shared Prism validating mock of the Jira Cloud spec, started on first use;
/// `None` (after a loud message) when Prism or the spec is missing outside CI. In
/// CI (`CI=true`) a missing piece fails the test. It lives for the whole test
/// process and goes with it (see `integration_tests::prism`).
pub fn prism() -> Option<&'static Prism> {
    static PRISM: OnceLock<Option<Prism>> = OnceLock::new();
    PRISM
        .get_or_init(
            || match integration_tests::prism::start("jira-cloud-platform.v3.json") {
                Ok(prism) => prism,
                Err(error) => panic!("contract tests need Prism: {error:#}"),
            },
        )
        .as_ref()
}
