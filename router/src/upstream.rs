//! Connections to the connectors: discovery by reflection, health watching, calls.
//!
//! One [`Upstream`] per configured connector owns a tonic channel (balanced over
//! all its URLs) and a watcher task. The watcher follows grpc.health.v1 `Watch`:
//! on SERVING it reads the connector's descriptors over server reflection (it may
//! have been upgraded) and publishes its tools in the [`ToolCatalog`]; on
//! NOT_SERVING or a broken stream it marks the connector down, so calls fail at
//! once with a clear message, and withdraws its tools once it has been down for
//! longer than the grace period. Calls carry a deadline, W3C trace context, and
//! are retried with backoff only when the method is read-only or idempotent and
//! the connector answered UNAVAILABLE.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use prost_types::FileDescriptorProto;
use tokio::sync::mpsc;
use tokio_retry::strategy::{ExponentialBackoff, jitter};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::catalog::{ConnectorStatus, Features, ToolCatalog, ToolEntry, tools_for_connector};
use crate::config::{ConnectorConfig, UpstreamLimits};
use crate::transcode::DynamicCodec;
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

/// Services every connector serves that are plumbing, not tools.
const PLUMBING_PREFIXES: [&str; 2] = ["grpc.health.", "grpc.reflection."];

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
            crate::resolve::balanced_channel(
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

    /// Starts the watcher that keeps this connector's entry in `catalog` current.
    pub fn spawn_watcher(
        &self,
        catalog: Arc<ToolCatalog>,
        grace: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.watch(catalog, grace, shutdown).await })
    }

    async fn watch(self, catalog: Arc<ToolCatalog>, grace: Duration, shutdown: CancellationToken) {
        let name = self.config.name.clone();
        let mut backoff = Duration::from_millis(50);
        let mut down_since: Option<Instant> = Some(Instant::now());
        let mut serving = false;
        loop {
            let mut client = HealthClient::new(self.channel.clone());
            let request = HealthCheckRequest {
                service: String::new(),
            };
            let watched = tokio::select! {
                () = shutdown.cancelled() => return,
                r = client.watch(request) => r,
            };
            match watched {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    loop {
                        let grace_timer = grace_deadline(down_since, grace);
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = grace_timer => {
                                withdraw_after_grace(&catalog, &name, grace);
                                down_since = None;
                                continue;
                            }
                            next = stream.next() => match next {
                                Some(Ok(update)) => {
                                    if update.status() == ServingStatus::Serving {
                                        if !serving {
                                            serving = self.on_serving(&catalog).await;
                                            if serving {
                                                down_since = None;
                                                backoff = Duration::from_millis(50);
                                            } else {
                                                // The descriptors could not be read (a replica
                                                // went away mid-way): watch again after the
                                                // backoff, which retries the discovery too
                                                // (and grows while it keeps failing, so a
                                                // connector with broken descriptors is not
                                                // asked for them in a tight loop).
                                                break;
                                            }
                                        }
                                    } else {
                                        if serving || !matches!(catalog.status(&name), Some((ConnectorStatus::NotServing, _))) {
                                            tracing::warn!(connector = %name, status = update.status().as_str_name(), "connector not serving");
                                        }
                                        serving = false;
                                        backoff = Duration::from_millis(50);
                                        down_since.get_or_insert_with(Instant::now);
                                        catalog.set_status(&name, ConnectorStatus::NotServing);
                                    }
                                }
                                Some(Err(status)) => {
                                    self.on_down(&catalog, &mut serving, &mut down_since, describe_status(&status));
                                    break;
                                }
                                None => {
                                    self.on_down(&catalog, &mut serving, &mut down_since, "health stream ended".into());
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(status) if status.code() == Code::Unimplemented => {
                    // No health service: treat reachable as serving and poll.
                    if !serving {
                        serving = self.on_serving(&catalog).await;
                        if serving {
                            down_since = None;
                        }
                    }
                    backoff = Duration::from_secs(5);
                }
                Err(status) => {
                    self.on_down(
                        &catalog,
                        &mut serving,
                        &mut down_since,
                        describe_status(&status),
                    );
                }
            }
            let grace_timer = grace_deadline(down_since, grace);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
                () = grace_timer => {
                    withdraw_after_grace(&catalog, &name, grace);
                    down_since = None;
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn on_down(
        &self,
        catalog: &ToolCatalog,
        serving: &mut bool,
        down_since: &mut Option<Instant>,
        reason: String,
    ) {
        if *serving {
            tracing::warn!(connector = %self.config.name, %reason, "connector went away");
        } else {
            tracing::debug!(connector = %self.config.name, %reason, "connector unreachable");
        }
        *serving = false;
        down_since.get_or_insert_with(Instant::now);
        catalog.set_status(&self.config.name, ConnectorStatus::Unreachable(reason));
    }

    /// Reads descriptors and publishes tools; returns whether that worked.
    async fn on_serving(&self, catalog: &ToolCatalog) -> bool {
        let name = &self.config.name;
        match discover(self.channel.clone(), &self.limits).await {
            Ok((pool, services)) => {
                let tools =
                    tools_for_connector(name, &self.config.prefix, &pool, &services, &self.limits);
                tracing::info!(connector = %name, tools = tools.tools.len(), hidden = tools.hidden.len(), withheld = tools.withheld.len(), services = ?services, "connector serving, catalog refreshed");
                catalog.publish(name, tools, Features::of(&services));
                true
            }
            Err(error) => {
                tracing::warn!(connector = %name, %error, "cannot read connector descriptors");
                catalog.set_status(
                    name,
                    ConnectorStatus::Unreachable(format!("reflection failed: {error}")),
                );
                false
            }
        }
    }

    /// Calls a method. Streamed messages are passed to `on_message` as they arrive
    /// and returned all together at the end. A message over `max_message_bytes`,
    /// or a stream over `max_stream_messages` / `max_stream_bytes`, ends the call
    /// (the stream is dropped, which cancels it at the connector) with
    /// RESOURCE_EXHAUSTED naming the limit.
    pub async fn call(
        &self,
        entry: &ToolEntry,
        request: DynamicMessage,
        traceparent: &str,
        on_message: impl FnMut(&DynamicMessage, usize),
    ) -> Result<Vec<DynamicMessage>, Status> {
        let none = tonic::metadata::MetadataMap::new();
        self.call_with(entry, request, traceparent, &none, on_message)
            .await
    }

    /// [`Upstream::call`], with `extra` metadata on the request (who calls:
    /// `switchboard-principal-*`, built by the router, never client headers).
    pub async fn call_with(
        &self,
        entry: &ToolEntry,
        request: DynamicMessage,
        traceparent: &str,
        extra: &tonic::metadata::MetadataMap,
        mut on_message: impl FnMut(&DynamicMessage, usize),
    ) -> Result<Vec<DynamicMessage>, Status> {
        let timeout = self.config.timeout;
        let path: http::uri::PathAndQuery = entry
            .path
            .parse()
            .map_err(|e| Status::internal(format!("invalid method path {}: {e}", entry.path)))?;
        let codec = DynamicCodec::new(entry.method.output());
        let make_request = || {
            let mut req = tonic::Request::new(request.clone());
            req.set_timeout(timeout);
            self.annotate(&mut req);
            carry(&mut req, traceparent, extra);
            req
        };
        let attempts = if entry.retryable { 3 } else { 0 };
        let strategy = ExponentialBackoff::from_millis(2)
            .factor(25)
            .map(jitter)
            .take(attempts);

        // Unary and server-streaming calls look the same on the wire, so both are
        // made as a stream: a unary method answers with exactly one message.
        let streaming = entry.server_streaming();
        let limits = self.limits;
        let work = async {
            let mut stream = tokio_retry::RetryIf::start(
                strategy,
                || {
                    let mut grpc = tonic::client::Grpc::new(self.channel.clone())
                        .max_decoding_message_size(limits.max_message_bytes);
                    let req = make_request();
                    let path = path.clone();
                    let codec = codec.clone();
                    async move {
                        grpc.ready()
                            .await
                            .map_err(|e| Status::unavailable(e.to_string()))?;
                        grpc.server_streaming(req, path, codec).await
                    }
                },
                |s: &Status| s.code() == Code::Unavailable,
            )
            .await
            .map_err(|s| over_message_limit(s, &limits))?
            .into_inner();
            let mut out = Vec::new();
            let mut bytes = 0usize;
            while let Some(message) = stream
                .message()
                .await
                .map_err(|s| over_message_limit(s, &limits))?
            {
                bytes = bytes.saturating_add(message.encoded_len());
                if out.len() >= limits.max_stream_messages {
                    return Err(Status::resource_exhausted(format!(
                        "the connector streamed more than {} messages, the router's limit \
                         max_stream_messages (SWITCHBOARD_MAX_STREAM_MESSAGES); the call was \
                         cancelled: ask for less",
                        limits.max_stream_messages
                    )));
                }
                if bytes > limits.max_stream_bytes {
                    return Err(Status::resource_exhausted(format!(
                        "the connector streamed more than {} bytes, the router's limit \
                         max_stream_bytes (SWITCHBOARD_MAX_STREAM_BYTES); the call was \
                         cancelled: ask for less",
                        limits.max_stream_bytes
                    )));
                }
                if streaming {
                    on_message(&message, out.len());
                }
                out.push(message);
            }
            if !streaming && out.len() != 1 {
                return Err(Status::internal(format!(
                    "{} answered a unary call with {} messages",
                    entry.path,
                    out.len()
                )));
            }
            Ok(out)
        };
        let started = Instant::now();
        match tokio::time::timeout(timeout + Duration::from_millis(250), work).await {
            // The deadline travels as grpc-timeout; a tonic server enforcing it
            // ends the call as CANCELLED, which would read as the connector's
            // doing. Past the deadline, it is the deadline.
            Ok(Err(status)) if status.code() == Code::Cancelled && started.elapsed() >= timeout => {
                Err(Status::deadline_exceeded(format!(
                    "no answer within {timeout:?}"
                )))
            }
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer within {timeout:?}"
            ))),
        }
    }
}

/// tonic refuses a message over the decoding limit with OUT_OF_RANGE, which
/// would read as the caller's fault: it becomes RESOURCE_EXHAUSTED naming the
/// router's setting. Other statuses pass unchanged.
fn over_message_limit(status: Status, limits: &UpstreamLimits) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("message length too large") {
        return Status::resource_exhausted(format!(
            "the connector answered with a message larger than {} bytes, the router's limit \
             max_message_bytes (SWITCHBOARD_MAX_MESSAGE_BYTES): ask for less, or ask the \
             operator to raise it ({})",
            limits.max_message_bytes,
            status.message()
        ));
    }
    status
}

fn describe_status(status: &Status) -> String {
    let message = status.message();
    if message.is_empty() {
        format!("{}", status.code())
    } else {
        // Transport errors are long chains; the first line says enough.
        message.lines().next().unwrap_or(message).to_owned()
    }
}

async fn grace_deadline(down_since: Option<Instant>, grace: Duration) {
    match down_since {
        Some(since) => {
            tokio::time::sleep_until(tokio::time::Instant::from_std(since + grace)).await
        }
        None => std::future::pending().await,
    }
}

fn withdraw_after_grace(catalog: &ToolCatalog, name: &str, grace: Duration) {
    if let Some((status, _)) = catalog.status(name)
        && status != ConnectorStatus::Serving
    {
        tracing::warn!(connector = %name, grace = ?grace, "connector down past the grace period, tools withdrawn");
        catalog.withdraw(name);
    }
}

/// Why descriptors could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The reflection call failed.
    #[error("reflection call failed: {0}")]
    Rpc(String),
    /// The answer was not what reflection promises.
    #[error("unexpected reflection answer: {0}")]
    Protocol(String),
    /// The descriptors do not form a valid set.
    #[error("invalid descriptors: {0}")]
    Descriptors(String),
    /// A reflection answer was over `reflection_max_message_bytes`.
    #[error(
        "a reflection answer is larger than {limit} bytes, the router's limit \
         reflection_max_message_bytes (SWITCHBOARD_REFLECTION_MAX_MESSAGE_BYTES)"
    )]
    AnswerTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connector's descriptors span more files than `max_reflection_files`.
    #[error(
        "the connector's descriptors need more than {limit} files, the router's limit \
         max_reflection_files (SWITCHBOARD_MAX_REFLECTION_FILES)"
    )]
    TooManyFiles {
        /// The limit.
        limit: usize,
    },
}

/// An answer of the wrong kind, named by its kind only (its content may be large).
fn unexpected(response: &MessageResponse) -> DiscoveryError {
    let kind = match response {
        MessageResponse::FileDescriptorResponse(_) => "file descriptors",
        MessageResponse::AllExtensionNumbersResponse(_) => "extension numbers",
        MessageResponse::ListServicesResponse(_) => "a service list",
        MessageResponse::ErrorResponse(_) => "an error",
    };
    DiscoveryError::Protocol(format!("got {kind} where another answer was expected"))
}

fn reflection_failure(status: &Status, limits: &UpstreamLimits) -> DiscoveryError {
    if status.code() == Code::OutOfRange && status.message().contains("message length too large") {
        return DiscoveryError::AnswerTooLarge {
            limit: limits.reflection_max_message_bytes,
        };
    }
    DiscoveryError::Rpc(describe_status(status))
}

async fn next_response(
    responses: &mut tonic::Streaming<tonic_reflection::pb::v1::ServerReflectionResponse>,
    limits: &UpstreamLimits,
) -> Result<MessageResponse, DiscoveryError> {
    match tokio::time::timeout(Duration::from_secs(10), responses.message()).await {
        Err(_) => Err(DiscoveryError::Rpc("no answer within 10s".into())),
        Ok(Err(s)) => Err(reflection_failure(&s, limits)),
        Ok(Ok(None)) => Err(DiscoveryError::Protocol("stream ended early".into())),
        Ok(Ok(Some(r))) => r
            .message_response
            .ok_or_else(|| DiscoveryError::Protocol("empty response".into())),
    }
}

/// Descriptor files read so far, by name: the decoded proto (for names and
/// dependencies) and the raw bytes, which the pool is built from so that custom
/// options survive (prost's own descriptor types drop extension fields). Holds at
/// most `limit` files; the first file seen under a name is kept.
struct FileSet {
    files: HashMap<String, (FileDescriptorProto, Vec<u8>)>,
    limit: usize,
}

impl FileSet {
    fn new(limit: usize) -> Self {
        Self {
            files: HashMap::new(),
            limit,
        }
    }

    /// Adds the files of one answer; returns their names, in order.
    fn add(&mut self, answer: Vec<Vec<u8>>) -> Result<Vec<String>, DiscoveryError> {
        let mut names = Vec::with_capacity(answer.len());
        for raw in answer {
            let file = FileDescriptorProto::decode(raw.as_slice())
                .map_err(|e| DiscoveryError::Descriptors(e.to_string()))?;
            let name = file.name().to_owned();
            if !self.files.contains_key(&name) {
                if self.files.len() >= self.limit {
                    return Err(DiscoveryError::TooManyFiles { limit: self.limit });
                }
                self.files.insert(name.clone(), (file, raw));
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Whether a file read so far declares `service` (a full name).
    fn declares(&self, service: &str) -> bool {
        self.files.values().any(|(file, _)| {
            file.service.iter().any(|s| {
                let full = if file.package().is_empty() {
                    s.name().to_owned()
                } else {
                    format!("{}.{}", file.package(), s.name())
                };
                full == service
            })
        })
    }

    /// Dependencies named by the files read so far that are not among them.
    fn missing(&self) -> BTreeSet<String> {
        self.files
            .values()
            .flat_map(|(f, _)| f.dependency.iter())
            .filter(|d| !self.files.contains_key(*d))
            .cloned()
            .collect()
    }

    /// An encoded FileDescriptorSet: its files as repeated field 1.
    fn encode(&self) -> Vec<u8> {
        let mut set = Vec::new();
        for (_, raw) in self.files.values() {
            prost::encoding::bytes::encode(1, raw, &mut set);
        }
        set
    }
}

/// Reads a connector's services and their descriptors (with dependencies) over
/// gRPC server reflection v1. The dependency walk is iterative: every file name
/// is asked for at most once, an answer must contain the file asked for (a file
/// served under another name than the one it was asked by, e.g. one depending on
/// itself under an alias, is an error rather than a loop), and the walk stops at
/// `max_reflection_files` files. Each answer is read with the
/// `reflection_max_message_bytes` limit.
pub async fn discover(
    channel: Channel,
    limits: &UpstreamLimits,
) -> Result<(DescriptorPool, Vec<String>), DiscoveryError> {
    let mut client = ServerReflectionClient::new(channel)
        .max_decoding_message_size(limits.reflection_max_message_bytes);
    let (tx, rx) = mpsc::channel::<ServerReflectionRequest>(16);
    let send = |req: MessageRequest| {
        let tx = tx.clone();
        async move {
            tx.send(ServerReflectionRequest {
                host: String::new(),
                message_request: Some(req),
            })
            .await
            .map_err(|_| DiscoveryError::Rpc("reflection stream closed".into()))
        }
    };
    send(MessageRequest::ListServices(String::new())).await?;
    let mut responses = tokio::time::timeout(
        Duration::from_secs(10),
        client.server_reflection_info(ReceiverStream::new(rx)),
    )
    .await
    .map_err(|_| DiscoveryError::Rpc("no answer within 10s".into()))?
    .map_err(|s| reflection_failure(&s, limits))?
    .into_inner();

    let services: Vec<String> = match next_response(&mut responses, limits).await? {
        MessageResponse::ListServicesResponse(list) => list
            .service
            .into_iter()
            .map(|s| s.name)
            .filter(|n| !PLUMBING_PREFIXES.iter().any(|p| n.starts_with(p)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        MessageResponse::ErrorResponse(e) => return Err(DiscoveryError::Rpc(e.error_message)),
        other => return Err(unexpected(&other)),
    };

    let mut files = FileSet::new(limits.max_reflection_files);
    for service in &services {
        // A service declared in a file already read needs no round trip; so the
        // number of requests is bounded by the number of files.
        if files.declares(service) {
            continue;
        }
        send(MessageRequest::FileContainingSymbol(service.clone())).await?;
        match next_response(&mut responses, limits).await? {
            MessageResponse::FileDescriptorResponse(r) => {
                files.add(r.file_descriptor_proto)?;
            }
            MessageResponse::ErrorResponse(e) => {
                return Err(DiscoveryError::Rpc(format!(
                    "{service}: {}",
                    e.error_message
                )));
            }
            other => return Err(unexpected(&other)),
        }
        if !files.declares(service) {
            return Err(DiscoveryError::Protocol(format!(
                "the file served for {service} does not declare it"
            )));
        }
    }
    // Fetch every dependency the server did not include, each name once.
    let mut asked: HashSet<String> = HashSet::new();
    loop {
        let missing = files.missing();
        if missing.is_empty() {
            break;
        }
        for name in missing {
            if !asked.insert(name.clone()) {
                // Unreachable while every answer must contain the file asked
                // for; kept so that the walk ends whatever a connector sends.
                return Err(DiscoveryError::Descriptors(format!(
                    "dependency {name} was asked for already and is still missing"
                )));
            }
            send(MessageRequest::FileByFilename(name.clone())).await?;
            match next_response(&mut responses, limits).await? {
                MessageResponse::FileDescriptorResponse(r) => {
                    let answered = files.add(r.file_descriptor_proto)?;
                    if !answered.contains(&name) {
                        return Err(DiscoveryError::Descriptors(format!(
                            "asked for dependency {name}, the connector answered with {} \
                             (a file served under another name than its own)",
                            if answered.is_empty() {
                                "no file".to_owned()
                            } else {
                                answered.join(", ")
                            }
                        )));
                    }
                }
                MessageResponse::ErrorResponse(e) => {
                    return Err(DiscoveryError::Descriptors(format!(
                        "dependency {name} unavailable: {}",
                        e.error_message
                    )));
                }
                other => return Err(unexpected(&other)),
            }
        }
    }
    drop(tx);

    let mut pool = DescriptorPool::new();
    pool.decode_file_descriptor_set(files.encode().as_slice())
        .map_err(|e| DiscoveryError::Descriptors(e.to_string()))?;
    Ok((pool, services))
}
