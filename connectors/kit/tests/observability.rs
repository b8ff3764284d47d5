//! Metrics and traces of a real connector server: gRPC calls over loopback, the
//! metrics scraped over HTTP (and checked by `promtool`), spans received by an
//! OTLP/HTTP receiver.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector_kit::ConnectorServer;
use connector_kit::metrics::MetricsConfig;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const SET: &[u8] = switchboard_proto::FILE_DESCRIPTOR_SET;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A connector server on loopback port 0; stop it by sending on the channel.
async fn start_server() -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        ConnectorServer::new("observed", SET)
            .with_shutdown_grace(Duration::from_millis(100))
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    (addr, stop, server)
}

async fn health_client(addr: SocketAddr) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
}

fn check(service: &str) -> tonic::Request<HealthCheckRequest> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.metadata_mut().insert(
        "traceparent",
        tonic::metadata::MetadataValue::from_static(TRACEPARENT),
    );
    request
}

/// The value of the sample line starting with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_calls_per_method_and_status_and_pass_promtool() {
    let metrics_addr = connector_kit::metrics::spawn(
        MetricsConfig {
            addr: Some("127.0.0.1:0".parse().expect("address")),
            ..MetricsConfig::default()
        },
        std::future::pending(),
    )
    .await
    .expect("metrics listener")
    .expect("bound address");
    let (addr, stop, server) = start_server().await;
    let mut client = health_client(addr).await;
    for _ in 0..3 {
        client.check(check("")).await.expect("health check");
    }
    let unknown = client
        .check(check("no.such.Service"))
        .await
        .expect_err("an unknown service is NOT_FOUND");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    // A path that is not served: recorded, but under `unknown`, not its own name.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let unserved: Result<tonic::Response<HealthCheckRequest>, _> = grpc
        .unary(
            tonic::Request::new(HealthCheckRequest::default()),
            tonic::codegen::http::uri::PathAndQuery::from_static("/attacker.Chosen/Id12345"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(
        unserved.expect_err("not served").code(),
        tonic::Code::Unimplemented
    );

    let scrape = |accept: &'static str| async move {
        let response = reqwest::Client::new()
            .get(format!("http://{metrics_addr}/metrics"))
            .header("accept", accept)
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (content_type, response.text().await.expect("body"))
    };
    let (content_type, text) = scrape("text/plain").await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let ok = r#"rpc_server_call_duration_seconds_count{rpc_service="grpc.health.v1.Health",rpc_method="Check",rpc_grpc_status_code="0"}"#;
    let not_found = r#"rpc_server_call_duration_seconds_count{rpc_service="grpc.health.v1.Health",rpc_method="Check",rpc_grpc_status_code="5"}"#;
    let unimplemented = r#"rpc_server_call_duration_seconds_count{rpc_service="unknown",rpc_method="unknown",rpc_grpc_status_code="12"}"#;
    assert_eq!(sample(&text, ok), Some(3.0), "{text}");
    assert_eq!(sample(&text, not_found), Some(1.0), "{text}");
    assert_eq!(sample(&text, unimplemented), Some(1.0), "{text}");
    assert!(
        !text.contains("attacker") && !text.contains("Id12345"),
        "{text}"
    );
    // Fine resolution below 10 ms.
    assert!(
        text.contains(r#"le="0.001""#) && text.contains(r#"le="0.005""#),
        "{text}"
    );
    assert_eq!(
        sample(&text, "switchboard_connector_up "),
        Some(1.0),
        "{text}"
    );

    let (content_type, openmetrics) = scrape("application/openmetrics-text; version=1.0.0").await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    // Only GET /metrics is answered.
    let other = reqwest::get(format!("http://{metrics_addr}/debug"))
        .await
        .expect("request");
    assert_eq!(other.status(), 404);

    promtool_check(&text);
    let _ = stop.send(());
    let _ = server.await;
    let (_, text) = scrape("text/plain").await;
    assert_eq!(
        sample(&text, "switchboard_connector_up "),
        Some(0.0),
        "down once shut down: {text}"
    );
}

/// `promtool check metrics` on `text`; skipped loudly without promtool (fails in CI).
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            let reason = format!(
                "promtool is not installed ({error}); scripts/install-tools.sh installs it"
            );
            assert!(!in_ci(), "this test needs promtool: {reason}");
            eprintln!("\n*** SKIPPING promtool check: {reason}\n");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_slow_client_cannot_hold_a_metrics_connection_without_sending_headers() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let metrics_addr = connector_kit::metrics::spawn(
        MetricsConfig {
            addr: Some("127.0.0.1:0".parse().expect("address")),
            header_timeout: Duration::from_millis(300),
            ..MetricsConfig::default()
        },
        std::future::pending(),
    )
    .await
    .expect("metrics listener")
    .expect("bound address");
    let mut stream = tokio::net::TcpStream::connect(metrics_addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial head");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the server should close a connection whose headers never end"
    );

    // A head larger than the limit is refused, not buffered.
    let mut stream = tokio::net::TcpStream::connect(metrics_addr)
        .await
        .expect("connect");
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "an oversized head must be refused: {answer}"
    );
}

/// An OTLP/HTTP receiver: every decoded export request.
type Received =
    Arc<Mutex<Vec<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>>>;

async fn start_receiver() -> (SocketAddr, Received) {
    use prost::Message as _;
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body)
                    .expect("an OTLP protobuf body");
                sink.lock().expect("received").push(request);
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::default()
                    .encode_to_vec()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, received)
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_is_exported_as_a_server_span_in_the_callers_trace() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let (receiver, received) = start_receiver().await;
    let config = connector_kit::telemetry::TracingConfig {
        endpoint: Some(format!("http://{receiver}/v1/traces")),
        protocol: connector_kit::telemetry::OtlpProtocol::HttpProtobuf,
        service_name: "observed-connector".to_owned(),
    };
    let (layer, telemetry) = connector_kit::telemetry::otel_layer(&config).expect("exporter");
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);

    let (addr, stop, server) = start_server().await;
    let mut client = health_client(addr).await;
    client.check(check("")).await.expect("health check");
    let _ = stop.send(());
    let _ = server.await;
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("flush");

    let requests = received.lock().expect("received").clone();
    let spans: Vec<_> = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let call = spans
        .iter()
        .find(|span| span.name == "grpc.health.v1.Health/Check")
        .unwrap_or_else(|| panic!("no server span among {spans:#?}"));
    assert_eq!(
        hex(&call.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "the caller's trace continues"
    );
    assert_eq!(
        hex(&call.parent_span_id),
        "00f067aa0ba902b7",
        "the caller's span is the parent"
    );
    assert_eq!(
        call.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
    );
    let attribute = |key: &str| {
        call.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.clone())
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    assert_eq!(
        attribute("rpc.system"),
        Some(Value::StringValue("grpc".into()))
    );
    assert_eq!(
        attribute("rpc.service"),
        Some(Value::StringValue("grpc.health.v1.Health".into()))
    );
    assert_eq!(
        attribute("rpc.method"),
        Some(Value::StringValue("Check".into()))
    );
    assert_eq!(attribute("rpc.grpc.status_code"), Some(Value::IntValue(0)));
    let resource_names: Vec<_> = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| kv.value.as_ref().and_then(|v| v.value.clone()))
        .collect();
    assert!(
        resource_names.contains(&Value::StringValue("observed-connector".into())),
        "{resource_names:?}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn an_upstream_request_is_a_client_span_whose_context_goes_upstream() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let (receiver, received) = start_receiver().await;
    let config = connector_kit::telemetry::TracingConfig {
        endpoint: Some(format!("http://{receiver}/v1/traces")),
        protocol: connector_kit::telemetry::OtlpProtocol::HttpProtobuf,
        service_name: "observed-connector".to_owned(),
    };
    let (layer, telemetry) = connector_kit::telemetry::otel_layer(&config).expect("exporter");
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    // A fake upstream that answers 429 and remembers the traceparent it got.
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let remember = Arc::clone(&seen);
    let upstream = axum::Router::new().route(
        "/api/chat.postMessage",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let remember = Arc::clone(&remember);
            async move {
                *remember.lock().expect("seen") = headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                axum::http::StatusCode::TOO_MANY_REQUESTS
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, upstream).await;
    });

    let count = r#"switchboard_upstream_rate_limited_total{connector="kit-test",operation="chat.postMessage"}"#;
    let before = sample(&connector_kit::metrics::encode_prometheus(), count).unwrap_or(0.0);
    let url = format!("http://{upstream_addr}/api/chat.postMessage?token=secret-in-query");
    let call =
        connector_kit::upstream::UpstreamCall::start("kit-test", "chat.postMessage", "GET", &url);
    let response = {
        use tracing::Instrument as _;
        reqwest::Client::new()
            .get(&url)
            .headers(call.trace_headers())
            .send()
            .instrument(call.span().clone())
            .await
            .expect("upstream answers")
    };
    call.finish(Some(response.status().as_u16()));
    let after = sample(&connector_kit::metrics::encode_prometheus(), count).unwrap_or(0.0);
    assert_eq!(after - before, 1.0, "the 429 is counted");
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("flush");

    let traceparent = seen
        .lock()
        .expect("seen")
        .clone()
        .expect("the upstream request carried a traceparent");
    let requests = received.lock().expect("received").clone();
    let span = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .find(|span| {
            span.kind == opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32
        })
        .expect("a client span was exported")
        .clone();
    assert!(
        traceparent.contains(&format!("-{}-{}-", hex(&span.trace_id), hex(&span.span_id))),
        "the upstream got the client span's context: {traceparent}"
    );
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let attribute = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.clone())
    };
    assert_eq!(
        attribute("http.request.method"),
        Some(Value::StringValue("GET".into()))
    );
    assert_eq!(
        attribute("server.address"),
        Some(Value::StringValue("127.0.0.1".into()))
    );
    assert_eq!(
        attribute("url.full"),
        Some(Value::StringValue(format!(
            "http://{upstream_addr}/api/chat.postMessage"
        )))
    );
    assert_eq!(
        attribute("http.response.status_code"),
        Some(Value::IntValue(429))
    );
    let everything = format!("{requests:?}");
    assert!(
        !everything.contains("secret-in-query"),
        "a query secret reached the spans"
    );
}

/// An OTLP/gRPC receiver: every export request it got.
#[derive(Clone, Default)]
struct GrpcReceiver(Received);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for GrpcReceiver
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        self.0.lock().expect("received").push(request.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn spans_are_exported_over_otlp_grpc_too() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let receiver = GrpcReceiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver_addr = listener.local_addr().expect("addr");
    let service =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(
            receiver.clone(),
        );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let config = connector_kit::telemetry::TracingConfig {
        endpoint: Some(format!("http://{receiver_addr}")),
        protocol: connector_kit::telemetry::OtlpProtocol::Grpc,
        service_name: "observed-connector".to_owned(),
    };
    let (layer, telemetry) = connector_kit::telemetry::otel_layer(&config).expect("exporter");
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let (addr, stop, server) = start_server().await;
    let mut client = health_client(addr).await;
    client.check(check("")).await.expect("health check");
    let _ = stop.send(());
    let _ = server.await;
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("flush");

    let requests = receiver.0.lock().expect("received").clone();
    let call = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .find(|span| span.name == "grpc.health.v1.Health/Check")
        .expect("the server span arrived over gRPC");
    assert_eq!(hex(&call.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
}
