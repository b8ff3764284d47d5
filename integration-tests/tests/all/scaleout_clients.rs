//! Real MCP clients through a real HAProxy (round robin, no stickiness) in
//! front of two router replicas sharing sessions through a real Redis: the
//! Rust SDK (rmcp), the MCP Inspector's proxy (its TypeScript SDK client
//! holding the session) and the official Python SDK in its handshake
//! (legacy) mode initialize once, then 50 tool calls, a resource subscription and its
//! update, `logging/setLevel` honoured, progress-streaming calls and
//! elicitation round trips, each request landing on whichever replica the
//! balancer picks. The Python SDK's default (auto) mode negotiates the
//! stateless 2026-07-28 protocol: its calls, progress, log opt-ins and a
//! `subscriptions/listen` stream with a resource's update go over the same
//! balancer.

use std::sync::Arc;
use std::time::Duration;

use integration_tests::haproxy::Balancer;
use integration_tests::process::{Connector, HttpRouter, repo_root};
#[allow(deprecated)] // MCP logging: deprecated by SEP-2577, still what clients receive
use rmcp::model::LoggingMessageNotificationParam;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    Implementation, NumberOrString, ProgressNotificationParam, ProgressToken, RequestMetaObject,
    ResourceUpdatedNotificationParam, SubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};

use crate::scaleout::{counts, fresh_prefix, node_path, node_tool, parts_available, replicas};
use crate::support::{args, calculator, in_ci, is_error, spec, text};

/// Two replicas in front of the calculator and the conformance connector,
/// and a balancer in front of them.
async fn balanced(test: &str) -> (Connector, Connector, Vec<HttpRouter>, Balancer) {
    let calc = calculator().await;
    let conformance = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start conformance-connector");
    let specs = [spec("calculator", &calc), spec("conformance", &conformance)];
    let routers = replicas(2, &specs, &fresh_prefix(test), &[]).await;
    let balancer = Balancer::start(&routers.iter().map(|r| r.addr).collect::<Vec<_>>())
        .await
        .expect("haproxy");
    (calc, conformance, routers, balancer)
}

/// An rmcp client that answers questions and records what it is told.
#[derive(Clone)]
struct Participant {
    logs: watch::Sender<Vec<String>>,
    updated: watch::Sender<Vec<String>>,
    progress: Arc<Mutex<Vec<f64>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Participant {
    fn new() -> Self {
        Self {
            logs: watch::channel(Vec::new()).0,
            updated: watch::channel(Vec::new()).0,
            progress: Arc::default(),
            asked: Arc::default(),
        }
    }
}

impl ClientHandler for Participant {
    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities =
            serde_json::from_value(json!({ "elicitation": {} })).expect("capabilities");
        ClientConfig::new(
            capabilities,
            Implementation::new("scaleout-participant", "0"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let mut asked = self.asked.lock().await;
        asked.push(serde_json::to_value(&request).unwrap_or(Value::Null)["message"].to_string());
        let answer = json!({
            "action": "accept",
            "content": { "username": format!("ada-{}", asked.len()), "email": "ada@example.org" }
        });
        Ok(serde_json::from_value(answer).expect("an elicitation answer"))
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let level = serde_json::to_value(params.level).unwrap_or(Value::Null);
        self.logs
            .send_modify(|logs| logs.push(level.as_str().unwrap_or_default().to_owned()));
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.updated.send_modify(|seen| seen.push(params.uri));
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().await.push(params.progress);
    }
}

async fn call(
    client: &RunningService<RoleClient, Participant>,
    tool: &str,
    arguments: Value,
) -> rmcp::model::CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool} failed at the protocol level: {e}"))
}

#[tokio::test]
async fn the_rust_sdk_does_everything_a_session_does_through_two_replicas() {
    if !parts_available().await {
        return;
    }
    let (_calc, _conformance, routers, balancer) = balanced("rmcp-all").await;
    let config = StreamableHttpClientTransportConfig::with_uri(balancer.mcp_url());
    let served = rmcp_scenario(config, &routers).await;
    assert_eq!(served, [25, 25], "round robin, no stickiness: {served:?}");
}

#[tokio::test]
async fn the_inspector_proxy_carries_one_session_through_two_replicas() {
    if !parts_available().await {
        return;
    }
    let Some(server) = node_tool(
        ".tools/node/node_modules/@modelcontextprotocol/inspector-server/build/index.js",
        "the MCP Inspector",
    ) else {
        return;
    };
    let (_calc, _conformance, routers, balancer) = balanced("inspector-all").await;
    // The Inspector's proxy: its own MCP client (the TypeScript SDK's
    // Streamable HTTP transport) holds one session with the router through
    // the balancer, and passes every message of the client below through.
    let port = integration_tests::process::free_port().expect("port");
    let token = "scaleout-inspector-token";
    let mut inspector = tokio::process::Command::new("node");
    inspector
        .arg(&server)
        .env("PATH", node_path())
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("MCP_PROXY_TOKEN", token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let _inspector = inspector.spawn().expect("start the Inspector's proxy");
    let health = format!("http://127.0.0.1:{port}/health");
    integration_tests::process::wait_until(
        "the Inspector's proxy",
        Duration::from_secs(30),
        || {
            let health = health.clone();
            async move { integration_tests::process::http_ok(&health).await }
        },
    )
    .await
    .expect("the Inspector's proxy is up");
    let url = format!(
        "http://127.0.0.1:{port}/mcp?transportType=streamable-http&url={}",
        balancer.mcp_url()
    );
    let mut headers = std::collections::HashMap::new();
    headers.insert(
        http::HeaderName::from_static("x-mcp-proxy-auth"),
        http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers);
    let served = rmcp_scenario(config, &routers).await;
    assert!(
        served.iter().all(|&n| n >= 20),
        "the Inspector's session spread over both replicas: {served:?}"
    );
}

/// One session's worth of everything, through `config`'s endpoint: 50
/// calls, a subscription and its update, the log level honoured wherever
/// calls land, progress, and questions answered. How many of the 50 calls
/// each replica served.
#[allow(deprecated)]
async fn rmcp_scenario(
    config: StreamableHttpClientTransportConfig,
    routers: &[HttpRouter],
) -> Vec<u64> {
    let participant = Participant::new();
    let client = participant
        .clone()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("initialize through the balancer");
    let before = counts(routers, "calculator_add").await;

    // 50 calls.
    for i in 0..50 {
        let sum = call(&client, "calculator_add", json!({"a": i, "b": 1})).await;
        assert_eq!(
            sum.structured_content,
            Some(json!({"sum": i + 1})),
            "call {i}"
        );
    }
    let after = counts(routers, "calculator_add").await;
    let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();

    // A subscription and its update, wherever either lands.
    let uri = "conformance+test://watched-resource";
    client
        .subscribe(SubscribeRequestParams::new(uri))
        .await
        .expect("resources/subscribe");
    let changed = call(&client, "conformance_update_watched_resource", json!({})).await;
    assert!(!is_error(&changed), "{}", text(&changed));
    let mut updated = participant.updated.subscribe();
    tokio::time::timeout(Duration::from_secs(20), updated.wait_for(|u| !u.is_empty()))
        .await
        .expect("notifications/resources/updated within 20 s")
        .expect("participant alive");
    assert_eq!(participant.updated.borrow().clone(), [uri]);

    // The log level holds on both replicas: two logging calls at warning
    // log nothing, two at info log three lines each.
    let level = |name: &str| serde_json::from_value(json!({ "level": name })).expect("level");
    client.set_level(level("warning")).await.expect("setLevel");
    for _ in 0..2 {
        call(&client, "conformance_test_tool_with_logging", json!({})).await;
    }
    client.set_level(level("info")).await.expect("setLevel");
    for _ in 0..2 {
        call(&client, "conformance_test_tool_with_logging", json!({})).await;
    }
    let mut logs = participant.logs.subscribe();
    tokio::time::timeout(Duration::from_secs(20), logs.wait_for(|l| l.len() >= 6))
        .await
        .expect("the info calls' logs arrive")
        .expect("participant alive");
    assert_eq!(
        participant.logs.borrow().clone(),
        vec!["info"; 6],
        "none of the calls at warning logged"
    );

    // Progress of two streaming calls.
    for round in 0..2 {
        let mut params = CallToolRequestParams::new("conformance_test_tool_with_progress");
        params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
            NumberOrString::String(format!("p-{round}").into()),
        )));
        let result = client.call_tool(params).await.expect("tools/call");
        assert_eq!(text(&result), "Progress tool completed");
    }
    // Through a proxy, progress may come on the listen stream, after the
    // call's result: wait for it.
    integration_tests::process::wait_until(
        "the progress of both calls",
        Duration::from_secs(20),
        || async { participant.progress.lock().await.len() >= 6 },
    )
    .await
    .expect("six progress notifications");
    assert_eq!(
        participant.progress.lock().await.clone(),
        [0.0, 50.0, 100.0, 0.0, 50.0, 100.0]
    );

    // Questions asked by either replica, answered through the balancer
    // (the answer lands on either).
    for round in 1..=4 {
        let answered = call(
            &client,
            "conformance_test_elicitation",
            json!({"message": format!("Who are you ({round})?")}),
        )
        .await;
        let said = text(&answered);
        assert!(
            said.starts_with("User response: action=accept")
                && said.contains(&format!("ada-{round}")),
            "round {round}: {said}"
        );
    }
    client.cancel().await.expect("close the session");
    served
}

/// The Python SDK's scenario (`mode`: `legacy` or `auto`), printing a JSON
/// report.
const PYTHON_CLIENT: &str = r#"
import asyncio, json, sys
import mcp_types as types
from mcp.client.client import Client

async def main(url, mode):
    logs, updates, progress, asked = [], [], [], []

    async def on_log(params):
        logs.append(str(params.level))

    async def on_message(message):
        if isinstance(message, Exception):
            return
        root = getattr(message, "root", message)
        if getattr(root, "method", "") == "notifications/resources/updated":
            updates.append(str(root.params.uri))

    async def on_elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(
            action="accept",
            content={"username": f"ada-{len(asked)}", "email": "ada@example.org"},
        )

    async def on_progress(value, total, message):
        progress.append(value)

    report = {"errors": []}
    log_level = "warning" if mode == "auto" else None
    async with Client(url, mode=mode, logging_callback=on_log, message_handler=on_message,
                      elicitation_callback=on_elicit, log_level=log_level) as client:
        report["protocol_version"] = str(client.session.protocol_version)
        sums = []
        for i in range(50):
            result = await client.call_tool("calculator_add", {"a": i, "b": 1})
            if result.is_error:
                report["errors"].append(result.content[0].text)
            else:
                sums.append(result.structured_content["sum"])
        report["sums"] = sums
        for _ in range(2):
            await client.call_tool("conformance_test_tool_with_progress", {}, progress_callback=on_progress)
        report["progress"] = progress
        if mode == "legacy":
            uri = "conformance+test://watched-resource"
            await client.subscribe_resource(uri)
            await client.call_tool("conformance_update_watched_resource", {})
            for _ in range(200):
                if updates:
                    break
                await asyncio.sleep(0.1)
            report["updates"] = updates
            await client.session.set_logging_level("warning")
            for _ in range(2):
                await client.call_tool("conformance_test_tool_with_logging", {})
            await client.session.set_logging_level("info")
            for _ in range(2):
                await client.call_tool("conformance_test_tool_with_logging", {})
            for _ in range(200):
                if len(logs) >= 6:
                    break
                await asyncio.sleep(0.1)
            report["logs"] = logs
            answers = []
            for round in range(1, 5):
                result = await client.call_tool("conformance_test_elicitation", {"message": f"Who are you ({round})?"})
                answers.append(result.content[0].text)
            report["answers"] = answers
        else:
            uri = "conformance+test://watched-resource"
            async with client.listen(tools_list_changed=True, resource_subscriptions=[uri]) as subscription:
                report["listen_honored"] = bool(subscription.honored.tools_list_changed)
                report["listen_uris"] = list(subscription.honored.resource_subscriptions or [])
                await client.call_tool("conformance_update_watched_resource", {})

                async def first_update():
                    async for event in subscription:
                        if type(event).__name__ == "ResourceUpdated":
                            return str(event.uri)

                report["updates"] = [await asyncio.wait_for(first_update(), 20)]
            # The client opts in at warning: the info logs of these two calls
            # are not sent; these two opt in at info themselves.
            for _ in range(2):
                await client.call_tool("conformance_test_tool_with_logging", {})
            for _ in range(2):
                await client.call_tool("conformance_test_tool_with_logging", {},
                                       meta={"io.modelcontextprotocol/logLevel": "info"})
            report["logs"] = logs
            # Questions come back as input-required results; the SDK asks
            # the callback and sends the call again, to whichever replica.
            answers = []
            for round in range(1, 5):
                result = await client.call_tool("conformance_test_elicitation", {"message": f"Who are you ({round})?"})
                answers.append(result.content[0].text)
            report["answers"] = answers
    print(json.dumps(report))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

/// Runs the Python scenario in `mode` through `balancer`; `None` (skipped
/// loudly) without the SDK outside CI.
async fn python_scenario(balancer: &Balancer, mode: &str) -> Option<Value> {
    let python = repo_root().join(".tools/venv/bin/python");
    if !python.exists() {
        let message = "the Python MCP SDK venv is missing: run scripts/install-tools.sh";
        assert!(!in_ci(), "CI=true: {message}");
        eprintln!("\n*** SKIPPED (not passed): {message}\n");
        return None;
    }
    let script = integration_tests::process::scratch_dir("scaleout-python").join("client.py");
    std::fs::write(&script, PYTHON_CLIENT).expect("write the client script");
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(&script)
        .arg(balancer.mcp_url())
        .arg(mode)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the Python client finished within 120 s")
        .expect("run the Python client");
    assert!(
        output.status.success(),
        "the Python SDK client ({mode}) failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("the Python client prints JSON"))
}

/// The report's four elicitation rounds were each answered by the client.
fn assert_answered(report: &Value) {
    let answers = report["answers"].as_array().cloned().unwrap_or_default();
    assert_eq!(answers.len(), 4, "{report}");
    for (i, answer) in answers.iter().enumerate() {
        let answer = answer.as_str().unwrap_or_default();
        assert!(
            answer.starts_with("User response: action=accept")
                && answer.contains(&format!("ada-{}", i + 1)),
            "{report}"
        );
    }
}

fn sums_one_to_fifty() -> Value {
    Value::Array((1..=50).map(|n| json!(n)).collect())
}

#[tokio::test]
async fn the_python_sdk_in_legacy_mode_does_everything_a_session_does_through_two_replicas() {
    if !parts_available().await {
        return;
    }
    let (_calc, _conformance, routers, balancer) = balanced("python-legacy").await;
    let Some(report) = python_scenario(&balancer, "legacy").await else {
        return;
    };
    assert_eq!(report["protocol_version"], "2025-11-25", "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["sums"], sums_one_to_fifty(), "{report}");
    assert_eq!(
        report["progress"],
        json!([0.0, 50.0, 100.0, 0.0, 50.0, 100.0]),
        "{report}"
    );
    assert_eq!(
        report["updates"],
        json!(["conformance+test://watched-resource"]),
        "{report}"
    );
    assert_eq!(
        report["logs"],
        json!(["info", "info", "info", "info", "info", "info"]),
        "the calls at warning logged nothing: {report}"
    );
    assert_answered(&report);
    // The SDK's own requests (its listen stream, notifications) take turns
    // in the rotation too, so the split is about even, not exact.
    let served = counts(&routers, "calculator_add").await;
    assert_eq!(served.iter().sum::<u64>(), 50, "{served:?}");
    assert!(
        served.iter().all(|&n| n >= 20),
        "round robin spreads the session's calls over both replicas: {served:?}"
    );
}

#[tokio::test]
async fn the_python_sdk_in_auto_mode_speaks_the_stateless_protocol_through_two_replicas() {
    if !parts_available().await {
        return;
    }
    let (_calc, _conformance, routers, balancer) = balanced("python-auto").await;
    let Some(report) = python_scenario(&balancer, "auto").await else {
        return;
    };
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["sums"], sums_one_to_fifty(), "{report}");
    assert_eq!(
        report["progress"],
        json!([0.0, 50.0, 100.0, 0.0, 50.0, 100.0]),
        "{report}"
    );
    assert_eq!(report["listen_honored"], json!(true), "{report}");
    let uri = "conformance+test://watched-resource";
    assert_eq!(report["listen_uris"], json!([uri]), "{report}");
    assert_eq!(
        report["updates"],
        json!([uri]),
        "the listen stream heard of the update: {report}"
    );
    assert_eq!(
        report["logs"],
        json!(["info", "info", "info", "info", "info", "info"]),
        "logs only for the calls that opted in at info: {report}"
    );
    assert_answered(&report);
    let served = counts(&routers, "calculator_add").await;
    assert_eq!(served.iter().sum::<u64>(), 50, "{served:?}");
    assert!(
        served.iter().all(|&n| n >= 20),
        "stateless calls spread over both replicas: {served:?}"
    );
}
