//! A misbehaving connector behind the router: one that answers 60 MiB, streams
//! 100,000 messages, never answers, flaps its health every 10 ms, or serves
//! descriptors built to loop or blow up a naive reader (a file that depends on
//! itself under another name, an endless dependency chain, a 40-level diamond
//! of shared messages). For each, the router stays up, answers within its
//! bounds with an error naming the limit, keeps serving a well-behaved
//! connector beside it, and its memory (VmRSS) stays under a ceiling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use integration_tests::process::{Connector, HttpRouter, wait_until};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::support::*;

/// What the router may hold at most while a connector misbehaves.
const RSS_CEILING_BYTES: u64 = 300 * 1024 * 1024;

/// A connector misbehaving in `mode` (see the test connector's `TEST_FAULTS`).
async fn faulty(mode: &str) -> Connector {
    Connector::start("test-connector", 0, &[("TEST_FAULTS", mode)])
        .await
        .unwrap_or_else(|e| panic!("start test connector in fault mode {mode}: {e:#}"))
}

/// A router over HTTP in front of a faulty connector (`faults`) and the
/// calculator (`calc`), with `extra` arguments.
async fn router(faults: &Connector, calc: &Connector, extra: &[&str]) -> HttpRouter {
    HttpRouter::start(&[spec("faults", faults), spec("calc", calc)], extra)
        .await
        .expect("start the router")
}

/// The resident memory of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Samples a process's VmRSS every 20 ms and keeps the highest value.
struct RssPeak {
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl RssPeak {
    fn watch(router: &HttpRouter) -> Self {
        let pid = router.process.id().expect("router running");
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid)));
        let sampler = tokio::spawn({
            let peak = peak.clone();
            async move {
                loop {
                    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                        && let Some(kb) = status
                            .lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| {
                                v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
                            })
                    {
                        peak.fetch_max(kb * 1024, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self { peak, sampler }
    }

    /// Asserts the peak stayed under [`RSS_CEILING_BYTES`].
    fn assert_bounded(self, what: &str) {
        self.sampler.abort();
        let peak = self.peak.load(Ordering::SeqCst);
        assert!(
            peak < RSS_CEILING_BYTES,
            "{what}: the router's VmRSS peaked at {} MiB, over the {} MiB ceiling",
            peak / (1024 * 1024),
            RSS_CEILING_BYTES / (1024 * 1024)
        );
    }
}

/// The router still answers and the calculator behind it still computes.
async fn others_still_served(client: &Client, router: &HttpRouter) {
    let sum = call(client, "calc_add", json!({"a": 20, "b": 22})).await;
    assert_eq!(
        sum.structured_content,
        Some(json!({"sum": 42})),
        "{}",
        text(&sum)
    );
    assert!(
        integration_tests::process::http_ok(&format!("http://{}/healthz", router.addr)).await,
        "the router's /healthz stopped answering"
    );
}

async fn wait_for_tool(client: &Client, name: &str) {
    let listed = wait_until(
        &format!("tool {name} listed"),
        Duration::from_secs(30),
        || async { tool_names(client).await.iter().any(|t| t == name) },
    )
    .await;
    if let Err(e) = listed {
        panic!("{e:#}; tools: {:?}", tool_names(client).await);
    }
}

/// The faults connector's running Flood and Hang calls.
async fn running(client: &Client) -> (u64, u64) {
    let stats = call(client, "faults_stats", json!({})).await;
    let Some(s) = stats.structured_content.clone() else {
        panic!("faults_stats: {}", text(&stats));
    };
    (
        s["floods_running"].as_u64().unwrap_or(u64::MAX),
        s["hangs_running"].as_u64().unwrap_or(u64::MAX),
    )
}

/// The faults connector's entry in /readyz once it has a status containing `needle`.
async fn readyz_status_containing(router: &HttpRouter, needle: &str) -> String {
    let url = format!("http://{}/readyz", router.addr);
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = reqwest::get(&url).await
            && let Ok(body) = response.json::<Value>().await
            && let Some(status) = body["connectors"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| c["name"] == "faults")
                    .and_then(|c| c["status"].as_str())
            })
        {
            last = status.to_owned();
            if last.contains(needle) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the faults connector's status never contained {needle:?}; last: {last:?}");
}

#[tokio::test]
async fn a_60_mib_reply_is_a_tool_error_naming_max_message_bytes() {
    let (faults, calc) = (faulty("misbehave").await, calculator().await);
    let router = router(&faults, &calc, &[]).await;
    let (client, _) = http_client(&router).await;
    wait_for_tool(&client, "faults_big").await;
    let rss = RssPeak::watch(&router);

    let big = call(
        &client,
        "faults_big",
        json!({"size_bytes": 60 * 1024 * 1024}),
    )
    .await;
    assert!(
        is_error(&big),
        "a 60 MiB reply was accepted: {}",
        text(&big)
    );
    let message = text(&big);
    assert!(message.contains("max_message_bytes"), "{message}");
    assert!(message.contains("16777216 bytes"), "{message}");
    assert!(message.contains("ResourceExhausted"), "{message}");

    // Under the limit the same method answers, so it is the size that is refused.
    let small = call(&client, "faults_big", json!({"size_bytes": 1024})).await;
    assert!(!is_error(&small), "{}", text(&small));
    others_still_served(&client, &router).await;
    rss.assert_bounded("a 60 MiB reply");
}

#[tokio::test]
async fn max_message_bytes_is_configurable() {
    let (faults, calc) = (faulty("misbehave").await, calculator().await);
    let router = router(&faults, &calc, &["--max-message-bytes", "4096"]).await;
    let (client, _) = http_client(&router).await;
    wait_for_tool(&client, "faults_big").await;
    let over = call(&client, "faults_big", json!({"size_bytes": 8192})).await;
    assert!(is_error(&over), "{}", text(&over));
    assert!(text(&over).contains("4096 bytes"), "{}", text(&over));
    let under = call(&client, "faults_big", json!({"size_bytes": 1000})).await;
    assert!(!is_error(&under), "{}", text(&under));
}

#[tokio::test]
async fn a_stream_of_100k_messages_is_cancelled_at_max_stream_messages() {
    let (faults, calc) = (faulty("misbehave").await, calculator().await);
    let router = router(&faults, &calc, &[]).await;
    let (client, _) = http_client(&router).await;
    wait_for_tool(&client, "faults_flood").await;
    let rss = RssPeak::watch(&router);

    let flood = call(
        &client,
        "faults_flood",
        json!({"count": 100_000, "filler_bytes": 0}),
    )
    .await;
    assert!(is_error(&flood), "100,000 messages were collected");
    let message = text(&flood);
    assert!(message.contains("more than 10000 messages"), "{message}");
    assert!(message.contains("max_stream_messages"), "{message}");

    // The router dropped the stream: the connector sees the call cancelled.
    wait_until(
        "the flood to stop at the connector",
        Duration::from_secs(10),
        || async { running(&client).await.0 == 0 },
    )
    .await
    .expect("the connector kept streaming after the router gave up");

    // Under the limit a stream is collected whole.
    let ok = call(
        &client,
        "faults_flood",
        json!({"count": 500, "filler_bytes": 0}),
    )
    .await;
    assert!(!is_error(&ok), "{}", text(&ok));
    let messages = ok.structured_content.expect("structured")["messages"]
        .as_array()
        .map(Vec::len);
    assert_eq!(messages, Some(500));
    others_still_served(&client, &router).await;
    rss.assert_bounded("a flood of 100,000 streamed messages");
}

#[tokio::test]
async fn a_stream_over_max_stream_bytes_is_cancelled_naming_it() {
    let (faults, calc) = (faulty("misbehave").await, calculator().await);
    let router = router(&faults, &calc, &["--max-stream-bytes", "1048576"]).await;
    let (client, _) = http_client(&router).await;
    wait_for_tool(&client, "faults_flood").await;
    let rss = RssPeak::watch(&router);

    // 1,000 messages of 64 KiB: 64 MiB if the router kept them all.
    let flood = call(
        &client,
        "faults_flood",
        json!({"count": 1000, "filler_bytes": 65536}),
    )
    .await;
    assert!(is_error(&flood), "64 MiB of stream were collected");
    let message = text(&flood);
    assert!(message.contains("more than 1048576 bytes"), "{message}");
    assert!(message.contains("max_stream_bytes"), "{message}");
    wait_until(
        "the flood to stop at the connector",
        Duration::from_secs(10),
        || async { running(&client).await.0 == 0 },
    )
    .await
    .expect("the connector kept streaming after the router gave up");
    others_still_served(&client, &router).await;
    rss.assert_bounded("a stream of 64 MiB");
}

#[tokio::test]
async fn a_call_never_answered_is_ended_by_the_deadline_while_others_answer() {
    let (faults, calc) = (faulty("misbehave").await, calculator().await);
    let router = router(&faults, &calc, &["--call-timeout", "1s"]).await;
    let (client, _) = http_client(&router).await;
    wait_for_tool(&client, "faults_hang").await;

    let started = Instant::now();
    let hung = {
        let client = &client;
        async move { call(client, "faults_hang", json!({})).await }
    };
    // While one call hangs, the other connector answers at once.
    let beside = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        others_still_served(&client, &router).await;
        t.elapsed()
    };
    let (hung, beside) = tokio::join!(hung, beside);
    let elapsed = started.elapsed();
    assert!(is_error(&hung), "{}", text(&hung));
    let message = text(&hung);
    assert!(
        message.contains("DeadlineExceeded") && message.contains("took too long"),
        "{message}"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "the deadline of 1s answered after {elapsed:?}"
    );
    assert!(
        beside < Duration::from_millis(900),
        "the calculator waited for the hung call: {beside:?}"
    );
    wait_until(
        "the hung call to be cancelled at the connector",
        Duration::from_secs(10),
        || async { running(&client).await.1 == 0 },
    )
    .await
    .expect("the hung call stayed open at the connector");
}

#[tokio::test]
async fn a_file_depending_on_itself_under_another_name_is_refused_not_looped_on() {
    let (faults, calc) = (faulty("self-dependent").await, calculator().await);
    // The faulty connector never settles: the first tools/list waits 1 s, not 10.
    let router = router(&faults, &calc, &["--startup-timeout", "1s"]).await;
    let rss = RssPeak::watch(&router);
    let status = readyz_status_containing(&router, "another name").await;
    assert!(
        status.contains("unreachable (reflection failed"),
        "{status}"
    );
    assert!(
        status.contains("switchboard/testkit/faults/alias.proto"),
        "the error names the file asked for: {status}"
    );
    let (client, _) = http_client(&router).await;
    let names = tool_names(&client).await;
    assert!(names.iter().all(|n| !n.starts_with("faults_")), "{names:?}");
    others_still_served(&client, &router).await;
    rss.assert_bounded("a self-dependent descriptor file");
}

#[tokio::test]
async fn an_endless_dependency_chain_stops_at_max_reflection_files() {
    let (faults, calc) = (faulty("endless-dependencies").await, calculator().await);
    let router = router(
        &faults,
        &calc,
        &["--max-reflection-files", "50", "--startup-timeout", "1s"],
    )
    .await;
    let rss = RssPeak::watch(&router);
    let status = readyz_status_containing(&router, "max_reflection_files").await;
    assert!(status.contains("more than 50 files"), "{status}");
    let (client, _) = http_client(&router).await;
    others_still_served(&client, &router).await;
    rss.assert_bounded("an endless dependency chain");
}

#[tokio::test]
async fn a_reflection_answer_over_reflection_max_message_bytes_is_refused_naming_it() {
    let (faults, calc) = (faulty("huge-descriptor").await, calculator().await);
    let router = router(&faults, &calc, &["--startup-timeout", "1s"]).await;
    let rss = RssPeak::watch(&router);
    let status = readyz_status_containing(&router, "reflection_max_message_bytes").await;
    assert!(status.contains("larger than 4194304 bytes"), "{status}");
    let (client, _) = http_client(&router).await;
    others_still_served(&client, &router).await;
    rss.assert_bounded("a 5 MiB reflection answer");

    // Raised above the file's size, the same connector is read.
    let raised = HttpRouter::start(
        &[spec("faults", &faults)],
        &["--reflection-max-message-bytes", "8388608"],
    )
    .await
    .expect("start the router");
    let (client, _) = http_client(&raised).await;
    wait_for_tool(&client, "faults_big").await;
}

#[tokio::test]
async fn a_deep_diamond_of_shared_messages_gets_a_linear_schema() {
    let (faults, calc) = (faulty("deep-diamond").await, calculator().await);
    let router = router(&faults, &calc, &[]).await;
    let (client, _) = http_client(&router).await;
    let rss = RssPeak::watch(&router);
    wait_for_tool(&client, "faults_deep").await;
    let tool = find_tool(&client, "faults_deep").await;
    let schema = Value::Object((*tool.input_schema).clone());
    let defs = schema["$defs"].as_object().expect("$defs");
    assert_eq!(defs.len(), 40, "one definition per shared level");
    let size = schema.to_string().len();
    assert!(
        size < 32 * 1024,
        "the schema of a 40-level diamond is {size} bytes"
    );

    // Arguments through the shared levels still transcode and reach the connector.
    let deep = call(
        &client,
        "faults_deep",
        json!({"left": {"right": {"left": {}}}, "right": {}}),
    )
    .await;
    assert!(!is_error(&deep), "{}", text(&deep));
    let wrong = call(
        &client,
        "faults_deep",
        json!({"left": {"right": {"middle": {}}}}),
    )
    .await;
    assert!(is_error(&wrong), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("left.right.middle"),
        "{}",
        text(&wrong)
    );
    others_still_served(&client, &router).await;
    rss.assert_bounded("a 40-level diamond of shared messages");
}

#[tokio::test]
async fn a_tool_over_max_schema_defs_is_left_out_and_the_rest_of_its_connector_stays() {
    let (faults, calc) = (faulty("deep-diamond").await, calculator().await);
    let router = router(&faults, &calc, &["--max-schema-defs", "10"]).await;
    let (client, _) = http_client(&router).await;
    wait_for_tool(&client, "faults_big").await;
    let names = tool_names(&client).await;
    assert!(
        !names.contains(&"faults_deep".to_owned()),
        "a tool needing 40 definitions is listed with max_schema_defs 10: {names:?}"
    );
    for kept in ["faults_flood", "faults_hang", "faults_stats", "calc_add"] {
        assert!(
            names.contains(&kept.to_owned()),
            "{kept} missing: {names:?}"
        );
    }
}

#[tokio::test]
async fn tools_with_names_no_compiler_writes_are_left_out_and_the_rest_stay() {
    // A tool name outside the MCP specification's characters or length, or a
    // field or enum value name that is no protobuf identifier, would reach
    // clients and model APIs that refuse it (one such tool name can fail every
    // request an agent makes); a field named like another's JSON name could
    // not be given unambiguously. Each such tool is left out.
    let (faults, calc) = (faulty("odd-names").await, calculator().await);
    let router = router(&faults, &calc, &[]).await;
    let (client, _) = http_client(&router).await;
    wait_for_tool(&client, "faults_big").await;
    let names = tool_names(&client).await;
    for odd in ["drop", "berblick", "long", "spoof", "twin", "mood"] {
        assert!(
            !names.iter().any(|n| n.to_lowercase().contains(odd)),
            "a tool with an odd name ({odd}) is listed: {names:?}"
        );
    }
    for name in &names {
        assert!(
            !name.is_empty()
                && name.len() <= 128
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
            "{name:?} is not a tool name the MCP specification allows"
        );
    }
    for kept in ["faults_flood", "faults_hang", "faults_stats", "calc_add"] {
        assert!(
            names.contains(&kept.to_owned()),
            "{kept} missing: {names:?}"
        );
    }
    let stats = call(&client, "faults_stats", json!({})).await;
    assert!(!is_error(&stats), "{}", text(&stats));
    others_still_served(&client, &router).await;
}

#[tokio::test]
async fn a_connector_flapping_its_health_every_10ms_does_not_disturb_the_others() {
    let (faults, calc) = (faulty("flap").await, calculator().await);
    let router = router(&faults, &calc, &[]).await;
    let (client, _) = http_client(&router).await;
    let rss = RssPeak::watch(&router);
    let until = Instant::now() + Duration::from_secs(3);
    let mut calls = 0;
    while Instant::now() < until {
        others_still_served(&client, &router).await;
        // A call to the flapping connector answers quickly either way: a
        // result, or the error saying it cannot be called now.
        // result, the tool error saying it cannot be called now, or (before
        // its tools are first read) an unknown tool.
        let stats = tokio::time::timeout(
            Duration::from_secs(5),
            client.call_tool(
                CallToolRequestParams::new("faults_stats").with_arguments(args(json!({}))),
            ),
        )
        .await
        .expect("a call to the flapping connector hung");
        match stats {
            Ok(result) if is_error(&result) => {
                let message = text(&result);
                assert!(message.contains("faults"), "{message}");
            }
            Ok(result) => assert!(result.structured_content.is_some()),
            Err(e) => assert!(e.to_string().contains("unknown tool"), "{e}"),
        }
        calls += 1;
    }
    assert!(calls > 5, "only {calls} rounds in 3 s");
    rss.assert_bounded("a connector flapping every 10 ms");
}
