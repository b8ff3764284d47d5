//! OpenTelemetry traces across processes: a tools/call through the real router
//! to the real Jira connector, which calls a local Jira (wiremock), is one
//! trace at a real OTLP/HTTP receiver: the router's MCP server span, its gRPC
//! client span, the connector's server span and its HTTP client span, each the
//! parent of the next (the connector may have internal spans between its
//! server and client spans), in the client's trace, with the semantic
//! conventions' attribute names. And with no OTLP endpoint set the router runs
//! no exporter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use integration_tests::otlp::{ReceivedSpan, Receiver};
use integration_tests::process::{Connector, Process, binary, free_port, http_ok, wait_until};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use rmcp::model::{CallToolRequestParams, CallToolResult, MetaObject, RequestMetaObject};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{args, calculator, spec};

type Client = RunningService<RoleClient, ()>;

/// The client's trace: its id and the span the router's span continues.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
/// A value in the call's arguments that must never reach the router's spans.
const ARGUMENT: &str = "PROJ-417";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{CLIENT_SPAN}-01")
}

/// OTLP settings that export to `receiver` quickly (every 200 ms).
fn otlp_env(receiver: &Receiver, service: &str) -> Vec<(String, String)> {
    vec![
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".to_owned(),
            receiver.traces_url(),
        ),
        ("OTEL_SERVICE_NAME".to_owned(), service.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "200".to_owned()),
    ]
}

/// A local Jira: the credentials check, one issue, and a 404 for any other.
async fn local_jira() -> MockServer {
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accountId": "bot"})))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/rest/api/3/issue/{ARGUMENT}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "10417", "key": ARGUMENT,
            "fields": {"summary": "Traced", "status": {"name": "To Do"}}
        })))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "errorMessages": ["Issue does not exist or you do not have permission to see it."],
            "errors": {}
        })))
        .mount(&jira)
        .await;
    jira
}

/// The Jira connector against `jira`, exporting to `receiver`.
async fn jira_connector(jira: &MockServer, receiver: &Receiver) -> Connector {
    let base = jira.uri();
    let otlp = otlp_env(receiver, "jira-connector");
    let mut env: Vec<(&str, &str)> = vec![
        ("JIRA_BASE_URL", base.as_str()),
        ("JIRA_EMAIL", "agent@example.com"),
        ("JIRA_API_TOKEN", "not-a-real-token"),
    ];
    env.extend(otlp.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let connector = Connector::start("jira-connector", 0, &env)
        .await
        .expect("start jira");
    connector.wait_serving().await.expect("jira SERVING");
    connector
}

/// `switchboard` over HTTP on a fresh port with `env`, once it answers.
async fn http_router(connector: &str, env: &[(String, String)]) -> (Process, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port().expect("port")));
    let listen = addr.to_string();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let process = Process::spawn(
        "switchboard",
        &["--listen", &listen, "--connector", connector],
        &env,
    )
    .expect("start switchboard");
    let health = format!("http://{addr}/healthz");
    wait_until("switchboard /healthz", Duration::from_secs(30), || {
        let health = health.clone();
        async move { http_ok(&health).await }
    })
    .await
    .expect("router up");
    (process, addr)
}

/// `tools/call`, with `traceparent` in `params._meta` when given.
async fn call(
    client: &Client,
    tool: &str,
    arguments: serde_json::Value,
    traceparent: Option<&str>,
) -> CallToolResult {
    let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments));
    if let Some(traceparent) = traceparent {
        let mut meta = serde_json::Map::new();
        meta.insert("traceparent".to_owned(), json!(traceparent));
        params.meta = Some(RequestMetaObject(MetaObject(meta)));
    }
    client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool}: {e}"))
}

/// The one span of `spans` that `pick` selects.
fn one<'a>(
    spans: &'a [ReceivedSpan],
    what: &str,
    pick: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(found.len(), 1, "expected one {what} among {spans:#?}");
    found[0]
}

/// Whether the four spans of a Jira `GetIssue` tool call in trace `trace`
/// have arrived.
fn whole_call(trace: &str) -> impl Fn(&[ReceivedSpan]) -> bool + '_ {
    move |spans| {
        let of = |service: &str, kind: SpanKind| {
            spans
                .iter()
                .any(|s| s.trace_id() == trace && s.service == service && s.kind() == kind)
        };
        of("switchboard", SpanKind::Server)
            && of("switchboard", SpanKind::Client)
            && of("jira-connector", SpanKind::Server)
            && of("jira-connector", SpanKind::Client)
    }
}

#[tokio::test]
async fn a_tool_call_is_one_trace_from_the_client_through_the_connector_to_jira() {
    let receiver = Receiver::start().await.expect("OTLP receiver");
    let jira = local_jira().await;
    let connector = jira_connector(&jira, &receiver).await;
    let mut command = tokio::process::Command::new(binary("switchboard").expect("switchboard"));
    command
        .args(["--stdio", "--connector", &spec("jira", &connector)])
        .env("RUST_LOG", "warn")
        .envs(otlp_env(&receiver, "switchboard"));
    let client: Client =
        ().serve(TokioChildProcess::new(command).expect("spawn switchboard --stdio"))
            .await
            .expect("initialize over stdio");

    let incoming = traceparent();
    let result = call(
        &client,
        "jira_get_issue",
        json!({"key": ARGUMENT}),
        Some(&incoming),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let spans = receiver
        .wait_for(
            "the spans of the tool call",
            Duration::from_secs(20),
            whole_call(TRACE_ID),
        )
        .await
        .expect("one trace");
    let trace: Vec<ReceivedSpan> = spans
        .into_iter()
        .filter(|s| s.trace_id() == TRACE_ID)
        .collect();

    // The router's server span continues the client's span.
    let server = one(&trace, "router server span", |s| {
        s.service == "switchboard" && s.kind() == SpanKind::Server
    });
    assert_eq!(server.name(), "tools/call jira_get_issue");
    assert_eq!(server.parent_span_id(), CLIENT_SPAN);
    assert_eq!(server.text("mcp.method.name"), Some("tools/call"));
    assert_eq!(server.text("gen_ai.tool.name"), Some("jira_get_issue"));
    assert_eq!(server.text("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(server.text("network.transport"), Some("pipe"));
    assert!(
        server
            .text("jsonrpc.request.id")
            .is_some_and(|id| !id.is_empty()),
        "{server:#?}"
    );
    assert!(
        server
            .text("mcp.protocol.version")
            .is_some_and(|v| v.starts_with("20")),
        "{server:#?}"
    );
    assert_eq!(server.attribute("error.type"), None, "{server:#?}");
    assert_eq!(
        server.attribute("mcp.session.id"),
        None,
        "stdio has no session id"
    );

    // Its child: the gRPC client span of the hop.
    let hop = one(&trace, "router gRPC client span", |s| {
        s.service == "switchboard" && s.kind() == SpanKind::Client
    });
    assert_eq!(hop.parent_span_id(), server.span_id());
    assert_eq!(hop.name(), "switchboard.jira.v1.Jira/GetIssue");
    assert_eq!(hop.text("rpc.system"), Some("grpc"));
    assert_eq!(hop.text("rpc.service"), Some("switchboard.jira.v1.Jira"));
    assert_eq!(hop.text("rpc.method"), Some("GetIssue"));
    assert_eq!(hop.int("rpc.grpc.status_code"), Some(0));

    // The connector continues the hop's context, not the router's server span.
    let served = one(&trace, "connector server span", |s| {
        s.service == "jira-connector" && s.kind() == SpanKind::Server
    });
    assert_eq!(served.parent_span_id(), hop.span_id());
    assert_eq!(served.name(), "switchboard.jira.v1.Jira/GetIssue");
    assert_eq!(served.int("rpc.grpc.status_code"), Some(0));

    // And its call to Jira is the last link.
    let upstream = one(&trace, "connector HTTP client span", |s| {
        s.service == "jira-connector" && s.kind() == SpanKind::Client
    });
    // (through the connector's own internal spans, if any)
    let mut link = upstream;
    while link.parent_span_id() != served.span_id() {
        link = one(&trace, "the HTTP span's ancestor", |s| {
            s.span_id() == link.parent_span_id()
        });
        assert_eq!(link.kind(), SpanKind::Internal, "{link:#?}");
    }
    assert_eq!(upstream.text("http.request.method"), Some("GET"));
    assert_eq!(upstream.int("http.response.status_code"), Some(200));
    let seen_by_jira: Vec<String> = jira
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with(ARGUMENT))
        .filter_map(|r| r.headers.get("traceparent"))
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert_eq!(
        seen_by_jira,
        [format!("00-{TRACE_ID}-{}-01", upstream.span_id())],
        "Jira received the HTTP client span's context"
    );

    // Arguments and results stay out of the router's spans.
    for span in trace.iter().filter(|s| s.service == "switchboard") {
        let everything = format!("{:?}", span.span);
        assert!(
            !everything.contains(ARGUMENT) && !everything.contains("Traced"),
            "{span:#?}"
        );
    }
    let _ = client.cancel().await;
}

/// A local Jira, the Jira connector and an HTTP router exporting to one
/// receiver, and a client sending the client's `traceparent` header with
/// every request.
struct TracedOverHttp {
    receiver: Receiver,
    client: Client,
    _router: Process,
    _connector: Connector,
    _jira: MockServer,
}

async fn traced_over_http() -> TracedOverHttp {
    let receiver = Receiver::start().await.expect("OTLP receiver");
    let jira = local_jira().await;
    let connector = jira_connector(&jira, &receiver).await;
    let (router, addr) = http_router(
        &spec("jira", &connector),
        &otlp_env(&receiver, "switchboard"),
    )
    .await;
    let headers = HashMap::from([(
        http::HeaderName::from_static("traceparent"),
        http::HeaderValue::from_str(&traceparent()).expect("header value"),
    )]);
    let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
        .custom_headers(headers);
    let client: Client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("initialize over HTTP");
    TracedOverHttp {
        receiver,
        client,
        _router: router,
        _connector: connector,
        _jira: jira,
    }
}

#[tokio::test]
async fn over_http_the_header_context_the_session_and_a_tool_error_are_recorded() {
    let TracedOverHttp {
        receiver,
        client,
        _router,
        _connector,
        _jira,
    } = traced_over_http().await;
    // An issue the local Jira does not have: NOT_FOUND, a tool error.
    let result = call(&client, "jira_get_issue", json!({"key": "GONE-1"}), None).await;
    assert_eq!(result.is_error, Some(true), "{result:?}");

    let spans = receiver
        .wait_for(
            "the spans of the failed call",
            Duration::from_secs(20),
            whole_call(TRACE_ID),
        )
        .await
        .expect("one trace");
    // Every request carries the header, so initialize has its span in the
    // same trace: the call's is the one named after the tool.
    let server = one(&spans, "router server span", |s| {
        s.trace_id() == TRACE_ID
            && s.service == "switchboard"
            && s.kind() == SpanKind::Server
            && s.name() == "tools/call jira_get_issue"
    });
    assert_eq!(server.parent_span_id(), CLIENT_SPAN, "from the header");
    assert_eq!(server.text("network.transport"), Some("tcp"));
    assert_eq!(server.text("network.protocol.name"), Some("http"));
    assert!(
        server
            .text("mcp.session.id")
            .is_some_and(|id| !id.is_empty()),
        "{server:#?}"
    );
    assert_eq!(server.text("error.type"), Some("tool_error"));
    let hop = one(&spans, "router gRPC client span", |s| {
        s.trace_id() == TRACE_ID && s.service == "switchboard" && s.kind() == SpanKind::Client
    });
    assert_eq!(hop.parent_span_id(), server.span_id());
    assert_eq!(
        hop.int("rpc.grpc.status_code"),
        Some(tonic::Code::NotFound as i64)
    );
    assert_eq!(hop.text("error.type"), Some("NOT_FOUND"));

    // Every other MCP request has its server span too.
    client.list_all_tools().await.expect("tools/list");
    let spans = receiver
        .wait_for(
            "the spans of initialize and tools/list",
            Duration::from_secs(20),
            |spans: &[ReceivedSpan]| {
                ["initialize", "tools/list"].iter().all(|name| {
                    spans
                        .iter()
                        .any(|s| s.service == "switchboard" && s.name() == *name)
                })
            },
        )
        .await
        .expect("spans of the other requests");
    for method in ["initialize", "tools/list"] {
        let span = one(&spans, method, |s| {
            s.service == "switchboard" && s.kind() == SpanKind::Server && s.name() == method
        });
        assert_eq!(span.text("mcp.method.name"), Some(method));
        assert_eq!(
            span.parent_span_id(),
            CLIENT_SPAN,
            "{method}: from the header"
        );
        assert_eq!(span.text("network.transport"), Some("tcp"));
    }
    let _ = client.cancel().await;
}

#[tokio::test]
async fn prompt_lists_and_gets_reach_the_connector_in_client_spans_of_the_request() {
    let TracedOverHttp {
        receiver,
        client,
        _router,
        _connector,
        _jira,
    } = traced_over_http().await;
    let prompts = client.list_all_prompts().await.expect("prompts/list");
    let triage = prompts
        .iter()
        .find(|p| p.name.ends_with("triage_issue"))
        .unwrap_or_else(|| panic!("the Jira triage prompt among {prompts:?}"))
        .name
        .clone();
    let mut arguments = serde_json::Map::new();
    arguments.insert("key".to_owned(), json!(ARGUMENT));
    client
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new(triage.clone()).with_arguments(arguments),
        )
        .await
        .expect("prompts/get");

    let get_name = format!("prompts/get {triage}");
    let spans = receiver
        .wait_for(
            "the spans of prompts/list and prompts/get",
            Duration::from_secs(20),
            |spans: &[ReceivedSpan]| {
                let has = |service: &str, kind: SpanKind, name: &str| {
                    spans
                        .iter()
                        .any(|s| s.service == service && s.kind() == kind && s.name() == name)
                };
                has("switchboard", SpanKind::Server, "prompts/list")
                    && has("switchboard", SpanKind::Server, &get_name)
                    && ["ListPrompts", "GetPrompt"].iter().all(|method| {
                        let rpc = format!("switchboard.mcp.v1.Prompts/{method}");
                        has("switchboard", SpanKind::Client, &rpc)
                            && has("jira-connector", SpanKind::Server, &rpc)
                    })
            },
        )
        .await
        .expect("the spans of both requests");
    for (request, method) in [
        ("prompts/list", "ListPrompts"),
        (get_name.as_str(), "GetPrompt"),
    ] {
        let server = one(&spans, request, |s| {
            s.service == "switchboard" && s.kind() == SpanKind::Server && s.name() == request
        });
        assert_eq!(server.trace_id(), TRACE_ID, "{request}: the client's trace");
        let rpc = format!("switchboard.mcp.v1.Prompts/{method}");
        let hop = one(&spans, &rpc, |s| {
            s.service == "switchboard" && s.kind() == SpanKind::Client && s.name() == rpc
        });
        assert_eq!(
            hop.parent_span_id(),
            server.span_id(),
            "{rpc}: a child of {request}"
        );
        assert_eq!(hop.text("rpc.system"), Some("grpc"));
        assert_eq!(hop.text("rpc.service"), Some("switchboard.mcp.v1.Prompts"));
        assert_eq!(hop.text("rpc.method"), Some(method));
        assert_eq!(hop.int("rpc.grpc.status_code"), Some(0));
        let served = one(&spans, "connector server span", |s| {
            s.service == "jira-connector" && s.kind() == SpanKind::Server && s.name() == rpc
        });
        assert_eq!(
            served.parent_span_id(),
            hop.span_id(),
            "{rpc}: the connector continues the hop"
        );
        assert_eq!(served.trace_id(), TRACE_ID);
    }
    // Prompt arguments stay out of the router's spans.
    for span in spans.iter().filter(|s| s.service == "switchboard") {
        assert!(!format!("{:?}", span.span).contains(ARGUMENT), "{span:#?}");
    }
    let _ = client.cancel().await;
}

/// Threads of process `pid` whose name starts with `prefix`.
fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
                .filter(|name| name.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn without_an_otlp_endpoint_the_router_runs_no_exporter() {
    let calc = calculator().await;
    // Empty values, as compose passes unset ones, and a sampler: still off.
    let off = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
        ("OTEL_TRACES_SAMPLER", "always_on"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let (quiet, quiet_addr) = http_router(&spec("calculator", &calc), &off).await;
    let receiver = Receiver::start().await.expect("OTLP receiver");
    let (exporting, exporting_addr) = http_router(
        &spec("calculator", &calc),
        &otlp_env(&receiver, "switchboard"),
    )
    .await;
    for addr in [quiet_addr, exporting_addr] {
        let client: Client = ()
            .serve(StreamableHttpClientTransport::from_uri(format!(
                "http://{addr}/mcp"
            )))
            .await
            .expect("initialize");
        let sum = call(
            &client,
            "calculator_add",
            json!({"a": 1, "b": 2}),
            Some(&traceparent()),
        )
        .await;
        assert_ne!(sum.is_error, Some(true), "{sum:?}");
        let _ = client.cancel().await;
    }
    // The SDK's batch exporter runs on a thread named after it (Linux cuts
    // thread names to 15 bytes).
    let exporter = "OpenTelemetry";
    let exporting_pid = exporting.id().expect("running");
    assert_eq!(
        threads_named(exporting_pid, exporter),
        1,
        "with an endpoint there is an exporter thread (so the check can see one)"
    );
    receiver
        .wait_for(
            "the exporting router's spans",
            Duration::from_secs(20),
            |spans| spans.iter().any(|s| s.service == "switchboard"),
        )
        .await
        .expect("spans from the exporting router");
    assert_eq!(
        threads_named(quiet.id().expect("running"), exporter),
        0,
        "without an endpoint there is no exporter"
    );
}
