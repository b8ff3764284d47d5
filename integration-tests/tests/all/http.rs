//! Streamable HTTP: both protocol eras, HTTP hygiene and the orchestrator probes.

use integration_tests::process::{HttpRouter, http_get_status, wait_until};
use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

use crate::support::*;

const META: &str = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

async fn post(router: &HttpRouter, headers: &[(&str, &str)], body: Value) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(router.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.body(body.to_string()).send().await.expect("POST /mcp");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The JSON-RPC message in a JSON or SSE body.
fn message(body: &str) -> Value {
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(body);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON-RPC: {e}: {body}"))
}

fn stateless(id: &str, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = serde_json::from_str(META).expect("meta");
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test]
async fn http_serves_tools_to_an_initializing_client() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let (client, _) = http_client(&router).await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"calculator_add".to_owned()), "{names:?}");
    let result = call(&client, "calculator_add", json!({"a": 40, "b": 2})).await;
    assert_eq!(result.structured_content, Some(json!({"sum": 42})));
    let bad = call(&client, "calculator_add", json!({"a": 1})).await;
    assert!(
        is_error(&bad) && text(&bad).contains("missing required argument \"b\""),
        "{}",
        text(&bad)
    );
}

#[tokio::test]
async fn http_serves_tools_to_a_discovering_client() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let transport = StreamableHttpClientTransport::from_uri(router.mcp_url());
    let client = Recorder::new()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover lifecycle");
    let names = tool_names(&client).await;
    assert!(names.contains(&"calculator_echo".to_owned()), "{names:?}");
    let result = call(&client, "calculator_echo", json!({"message": "stateless"})).await;
    assert_eq!(
        result.structured_content.expect("result")["message"],
        "stateless"
    );
    let _ = client.cancel().await;
}

#[tokio::test]
async fn server_discover_with_a_string_id_is_answered() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let (status, body) = post(
        &router,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "server/discover"),
        ],
        stateless("probe-1", "server/discover", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let msg = message(&body);
    assert_eq!(msg["id"], "probe-1");
    let result = &msg["result"];
    assert!(
        result["supportedVersions"]
            .to_string()
            .contains("2026-07-28")
            || result.to_string().contains("2026-07-28"),
        "{result}"
    );
    assert!(result.to_string().contains("switchboard"), "{result}");
}

#[tokio::test]
async fn unknown_methods_get_a_json_rpc_error_at_once() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let (_, body) = post(
        &router,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "bogus/thing"),
        ],
        stateless("b-1", "bogus/thing", json!({})),
    )
    .await;
    let msg = message(&body);
    assert_eq!(msg["id"], "b-1");
    assert_eq!(msg["error"]["code"], -32601, "{msg}");
    assert!(
        msg["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bogus/thing"),
        "{msg}"
    );
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, body) = post(&router, &[("host", "attacker.example")], init.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        &router,
        &[("origin", "http://attacker.example")],
        init.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        &router,
        &[("origin", "http://localhost:5173")],
        init.clone(),
    )
    .await;
    assert_eq!(status, 200, "local origins are allowed: {body}");

    // A compose service name is admitted once configured.
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &["--allowed-host", "switchboard"],
    )
    .await
    .expect("router");
    let (status, body) = post(&router, &[("host", "switchboard:8080")], init).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &["--max-body-bytes", "1024"])
        .await
        .expect("router");
    let big = "x".repeat(4096);
    let (status, _) = post(
        &router,
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"pad": big}}),
    )
    .await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn probes_report_liveness_and_readiness() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    assert_eq!(
        http_get_status(&format!("http://{}/healthz", router.addr)).await,
        Some(200)
    );
    let ready = format!("http://{}/readyz", router.addr);
    wait_until("readyz 200", std::time::Duration::from_secs(15), || {
        let ready = ready.clone();
        async move { http_get_status(&ready).await == Some(200) }
    })
    .await
    .expect("ready");
    let body = reqwest::get(format!("http://{}/readyz", router.addr))
        .await
        .expect("readyz")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["connectors"][0]["name"], "calculator");
}

/// A connector that accepts connections but never answers keeps the router not
/// ready (until the startup wait is over): /readyz says 503 and the healthcheck
/// subcommand exits 1, while /healthz stays 200.
#[tokio::test]
async fn a_silent_connector_keeps_the_router_not_ready() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let router = HttpRouter::start(&[format!("silent={url}")], &["--startup-timeout", "120s"])
        .await
        .expect("router");
    assert_eq!(
        http_get_status(&format!("http://{}/healthz", router.addr)).await,
        Some(200)
    );
    let response = reqwest::get(format!("http://{}/readyz", router.addr))
        .await
        .expect("readyz");
    assert_eq!(response.status().as_u16(), 503);
    let body = response.json::<Value>().await.expect("json");
    assert_eq!(body["ready"], false, "{body}");
    let bin = integration_tests::process::binary("switchboard").expect("switchboard");
    let code = std::process::Command::new(&bin)
        .args(["healthcheck", &router.addr.to_string()])
        .output()
        .expect("run healthcheck")
        .status
        .code();
    assert_eq!(code, Some(1));
    drop(silent);
}

#[tokio::test]
async fn the_healthcheck_subcommand_reports_readiness_by_exit_code() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let bin = integration_tests::process::binary("switchboard").expect("switchboard");
    let ready = format!("http://{}/readyz", router.addr);
    wait_until("readyz 200", std::time::Duration::from_secs(15), || {
        let ready = ready.clone();
        async move { http_get_status(&ready).await == Some(200) }
    })
    .await
    .expect("ready");
    let code = |args: &[&str]| {
        std::process::Command::new(&bin)
            .args(args)
            .output()
            .expect("run healthcheck")
            .status
            .code()
    };
    let addr = router.addr.to_string();
    assert_eq!(code(&["healthcheck", &addr]), Some(0));
    assert_eq!(code(&["healthcheck", &addr, "--live"]), Some(0));
    let nothing = format!(
        "127.0.0.1:{}",
        integration_tests::process::free_port().expect("port")
    );
    assert_eq!(code(&["healthcheck", &nothing]), Some(2));
}

#[tokio::test]
async fn empty_settings_mean_defaults() {
    let calc = calculator().await;
    let port = integration_tests::process::free_port().expect("port");
    let listen = format!("127.0.0.1:{port}");
    let connectors = format!("calculator={}", calc.url());
    let _router = integration_tests::process::Process::spawn(
        "switchboard",
        &["--listen", &listen],
        &[
            ("SWITCHBOARD_CONNECTORS", connectors.as_str()),
            ("SWITCHBOARD_STARTUP_TIMEOUT", ""),
            ("SWITCHBOARD_TOOL_GRACE", ""),
            ("SWITCHBOARD_ALLOWED_HOSTS", ""),
            ("SWITCHBOARD_MAX_BODY_BYTES", ""),
            ("SWITCHBOARD_CONFIG", ""),
        ],
    )
    .expect("spawn router");
    let health = format!("http://{listen}/readyz");
    wait_until(
        "the router to be ready",
        std::time::Duration::from_secs(15),
        || {
            let health = health.clone();
            async move { http_get_status(&health).await == Some(200) }
        },
    )
    .await
    .expect("a router configured with empty variables serves");
    // Empty SWITCHBOARD_ALLOWED_HOSTS means the default hosts, not none: an MCP
    // client on 127.0.0.1 gets through the Host check.
    let (client, _) = http_client_at(&format!("http://{listen}/mcp")).await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"calculator_add".to_owned()), "{names:?}");
}

/// A stateless tools/call: the response's content type and body.
async fn stateless_call(
    router: &HttpRouter,
    tool: &str,
    arguments: Value,
    progress: bool,
) -> (String, String) {
    let mut params = json!({"name": tool, "arguments": arguments});
    if progress {
        params["_meta"] = serde_json::from_str(META).expect("meta");
        params["_meta"]["progressToken"] = json!("p-1");
    }
    let body = if progress {
        json!({"jsonrpc": "2.0", "id": "c-1", "method": "tools/call", "params": params})
    } else {
        stateless("c-1", "tools/call", params)
    };
    let response = reqwest::Client::new()
        .post(router.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(body.to_string())
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (content_type, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_stateless_answer_is_one_json_body_and_a_call_with_progress_still_streams() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let (content_type, body) =
        stateless_call(&router, "calculator_add", json!({"a": 40, "b": 2}), false).await;
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {body}"
    );
    let answer: Value = serde_json::from_str(&body).expect("one JSON-RPC message");
    assert_eq!(answer["id"], "c-1");
    assert_eq!(answer["result"]["structuredContent"], json!({"sum": 42}));

    // Progress comes before the answer: the whole sequence streams.
    let (content_type, body) =
        stateless_call(&router, "calculator_count", json!({"to": 3}), true).await;
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}: {body}"
    );
    let messages: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON-RPC in SSE"))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{body}"
    );
    assert_eq!(
        messages.last().map(|m| m["id"].clone()),
        Some(json!("c-1")),
        "{body}"
    );
}
