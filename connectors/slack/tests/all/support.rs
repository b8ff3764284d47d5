//! Shared test plumbing: the connector served in-process on an ephemeral port,
//! a gRPC client for it, and configuration builders.

use std::time::Duration;

use connector_kit::retry::RetryPolicy;
use secrecy::SecretString;
use slack_connector::Config;
use switchboard_proto::mcp::v1::prompts_client::PromptsClient;
use switchboard_proto::slack::v1::slack_client::SlackClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The bot token every test connector uses; asserted never to leak.
pub const BOT_TOKEN: &str = "xoxb-000000000-test-bot-secret";
/// The user token tests configure for search.
pub const USER_TOKEN: &str = "xoxp-000000000-test-user-secret";

/// A configuration against `base_url` with the test bot token, writes allowed
/// and quick retries.
pub fn config(base_url: &str) -> Config {
    Config {
        bot_token: Some(SecretString::from(BOT_TOKEN)),
        user_token: None,
        base_url: slack_connector::config::parse_base_url(base_url).expect("test base URL"),
        allow_writes: true,
        retry: RetryPolicy {
            max_retries: 3,
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_total_delay: Duration::from_secs(10),
        },
        ..Config::default()
    }
}

/// The connector running in this process until dropped.
pub struct Connector {
    pub client: SlackClient<Channel>,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Connector {
    /// Serves the connector with `config` on 127.0.0.1:0.
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = slack_connector::serve(listener, config, shutdown).await {
                eprintln!("slack connector stopped with an error: {e:#}");
            }
        });
        // The listener is bound already: connecting cannot race the server start.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the connector");
        Self {
            client: SlackClient::new(channel.clone()),
            channel,
            shutdown: Some(tx),
        }
    }

    /// A client for a fresh call (clients are cheap clones of one channel).
    pub fn client(&self) -> SlackClient<Channel> {
        self.client.clone()
    }

    /// The gRPC channel to the connector, for other clients.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A client of the connector's generic Prompts service.
    pub fn prompts(&self) -> PromptsClient<Channel> {
        PromptsClient::new(self.channel.clone())
    }

    /// The connector's overall health now.
    pub async fn health(&self) -> ServingStatus {
        let mut health = HealthClient::new(self.channel.clone());
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        ServingStatus::try_from(status).expect("known status")
    }

    /// Waits (by watching, not polling) until the health is `wanted`.
    pub async fn wait_for_health(&self, wanted: ServingStatus) {
        let mut health = HealthClient::new(self.channel.clone());
        let mut updates = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health watch")
            .into_inner();
        while let Some(update) = updates.next().await {
            let update = update.expect("health update");
            if update.status == wanted as i32 {
                return;
            }
        }
        panic!("health stream ended before reaching {wanted:?}");
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts that a status neither shows a configured token nor any `xox` secret.
pub fn assert_no_secret(status: &tonic::Status) {
    let message = status.message();
    assert!(
        !message.contains(BOT_TOKEN) && !message.contains(USER_TOKEN),
        "a token leaked into an error: {message}"
    );
}
