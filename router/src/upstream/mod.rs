//! Connections to the connectors.
//!
//! One [`Upstream`] per configured connector owns a tonic channel (balanced over
//! all its URLs, following DNS: [`crate::dns`]) and what every request to it
//! carries (deadline, tool prefix, trace context). The rest is split by job:
//!
//! - [`watch`]: follows the connector's grpc.health.v1 `Watch` and keeps its
//!   entry in the [`crate::catalog::ToolCatalog`] current: on SERVING it reads
//!   the descriptors again (it may have been upgraded) and publishes its tools;
//!   on NOT_SERVING or a broken stream it marks the connector down, so calls fail
//!   at once with a clear message, and withdraws its tools once it has been down
//!   for longer than the grace period.
//! - [`discover`]: reads a connector's services and descriptors over gRPC
//!   server reflection, within the router's limits.
//! - [`call`]: makes a tool's gRPC call with a deadline and W3C trace context,
//!   retried with backoff only when the method is read-only or idempotent and the
//!   connector answered UNAVAILABLE, and bounded in what it reads back.

mod call;
mod discover;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::config::{ConnectorConfig, UpstreamLimits};
use switchboard_proto::mcp::v1 as pb;

/// Timeouts and keep-alive of every connection to a connector.
fn configure_endpoint(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
}

/// A connector as the router reaches it.
#[derive(Debug, Clone)]
pub struct Upstream {
    config: Arc<ConnectorConfig>,
    channel: Channel,
    limits: UpstreamLimits,
}

/// Request metadata telling a connector the prefix of its tool names, so texts it
/// writes for the agent (prompts, hints in errors) can name the tools as the agent
/// sees them. Sent on every call; empty when the connector's tools are unprefixed.
pub const TOOL_PREFIX_METADATA: &str = "switchboard-tool-prefix";

/// Puts the trace context and `extra` metadata on a request to a connector.
pub(crate) fn carry<T>(
    request: &mut tonic::Request<T>,
    traceparent: &str,
    extra: &tonic::metadata::MetadataMap,
) {
    for entry in extra.iter() {
        if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
    }
    if let Ok(value) = MetadataValue::try_from(traceparent) {
        request.metadata_mut().insert("traceparent", value);
    }
}

impl Upstream {
    /// Adds the metadata every call to this connector carries ([`TOOL_PREFIX_METADATA`]).
    pub fn annotate<T>(&self, request: &mut tonic::Request<T>) {
        if let Ok(value) = MetadataValue::try_from(self.config.prefix.as_str()) {
            request.metadata_mut().insert(TOOL_PREFIX_METADATA, value);
        }
    }

    /// A request to this connector with its call deadline and metadata.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.config.timeout);
        self.annotate(&mut request);
        request
    }

    /// [`Upstream::request`] with the trace context and `extra` metadata (who
    /// calls: `switchboard-principal-*`, built by the router, never client
    /// headers).
    pub fn request_with<T>(
        &self,
        message: T,
        traceparent: &str,
        extra: &tonic::metadata::MetadataMap,
    ) -> tonic::Request<T> {
        let mut request = self.request(message);
        carry(&mut request, traceparent, extra);
        request
    }

    /// A client of the connector's generic `Resources` service.
    pub fn resources(&self) -> pb::resources_client::ResourcesClient<Channel> {
        pb::resources_client::ResourcesClient::new(self.channel())
            .max_decoding_message_size(self.limits.max_message_bytes)
    }

    /// A client of the connector's generic `Prompts` service.
    pub fn prompts(&self) -> pb::prompts_client::PromptsClient<Channel> {
        pb::prompts_client::PromptsClient::new(self.channel())
            .max_decoding_message_size(self.limits.max_message_bytes)
    }

    /// A client of the connector's generic `Interactions` service.
    pub fn interactions(&self) -> pb::interactions_client::InteractionsClient<Channel> {
        pb::interactions_client::InteractionsClient::new(self.channel())
            .max_decoding_message_size(self.limits.max_message_bytes)
    }

    /// Creates the (lazily connecting) channel for a connector. A single URL with
    /// an IP address gets a plain channel (a down connector fails fast); host
    /// names, and several URLs, get a channel balanced over every address they
    /// resolve to, resolved again every `dns_refresh` until `shutdown`.
    pub fn new(
        config: ConnectorConfig,
        dns_refresh: Duration,
        shutdown: CancellationToken,
    ) -> Result<Self, String> {
        let single_ip = match config.urls.as_slice() {
            [url] => url
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| {
                    u.host().map(|h| {
                        h.trim_matches(['[', ']'])
                            .parse::<std::net::IpAddr>()
                            .is_ok()
                    })
                })
                .unwrap_or(false),
            _ => false,
        };
        let channel = if single_ip {
            let url = &config.urls[0];
            configure_endpoint(
                Endpoint::from_shared(url.clone())
                    .map_err(|e| format!("connector {}: invalid URL {url}: {e}", config.name))?,
            )
            .connect_lazy()
        } else {
            crate::dns::balanced_channel(
                config.urls.clone(),
                dns_refresh,
                configure_endpoint,
                shutdown,
            )
            .map_err(|e| format!("connector {}: {e}", config.name))?
        };
        Ok(Self {
            config: Arc::new(config),
            channel,
            limits: UpstreamLimits::default(),
        })
    }

    /// The same connector, held to `limits` instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: UpstreamLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The connector's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The connector's configuration.
    pub fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// The channel to the connector, for typed clients of the generic services.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// A gRPC status in a few words, for logs and the connector's status.
fn describe_status(status: &Status) -> String {
    let message = status.message();
    if message.is_empty() {
        format!("{}", status.code())
    } else {
        // Transport errors are long chains; the first line says enough.
        message.lines().next().unwrap_or(message).to_owned()
    }
}
