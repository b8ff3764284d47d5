//! A real Prometheus scrapes the stack: the database and code-analysis connectors
//! (with `METRICS_ADDR`) behind a router, some tool calls through the router, and
//! PromQL over Prometheus's HTTP API must return the counts those calls made.
//!
//! `prometheus` is Debian's `prometheus` package (`scripts/install-tools.sh
//! promtool` installs it). With `CI=true` a missing server fails the test;
//! elsewhere the test is skipped loudly. The router is scraped too (its
//! `/metrics` on the HTTP listener), and its text must pass `promtool check
//! metrics`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use integration_tests::process::{Connector, HttpRouter, free_port, http_get_status, scratch_dir};
use integration_tests::process::{repo_root, wait_until};
use serde_json::{Value, json};

use crate::support::*;

/// Whether the `prometheus` server is installed; says how to install it when not.
fn prometheus_installed() -> bool {
    match std::process::Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => true,
        outcome => {
            let reason = format!(
                "the prometheus server is not installed ({outcome:?}); scripts/install-tools.sh promtool installs it (Debian package prometheus, as root)"
            );
            assert!(!in_ci(), "CI=true: this test needs prometheus: {reason}");
            eprintln!(
                "\n*** SKIPPED (not passed): prometheus_counts_the_tool_calls_made: {reason}\n"
            );
            false
        }
    }
}

/// A `prometheus` process on a loopback port, killed when dropped.
struct Prometheus {
    _child: tokio::process::Child,
    api: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` (`(job, host:port)`) every second, with
    /// its data in `dir`.
    async fn start(dir: &Path, jobs: &[(&str, String)]) -> Self {
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, target) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port().expect("a free port");
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let api = format!("http://127.0.0.1:{port}");
        let ready = format!("{api}/-/ready");
        wait_until("prometheus to be ready", Duration::from_secs(60), || {
            let ready = ready.clone();
            async move { http_get_status(&ready).await == Some(200) }
        })
        .await
        .expect("prometheus answers /-/ready");
        Self { _child: child, api }
    }

    /// The value of the instant query `promql`, when it has exactly one sample.
    async fn value(&self, promql: &str) -> Option<f64> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.api))
            .query(&[("query", promql)])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        let samples = body["data"]["result"].as_array()?;
        match samples.as_slice() {
            [sample] => sample["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Waits until `promql` evaluates to `expected` (scrapes come every second),
    /// and fails naming the query and the last value seen.
    async fn expect(&self, promql: &str, expected: f64) {
        let waited = wait_until(
            &format!("{promql} == {expected}"),
            Duration::from_secs(60),
            || async move { self.value(promql).await == Some(expected) },
        )
        .await;
        if let Err(error) = waited {
            panic!("{error}; last value: {:?}", self.value(promql).await);
        }
    }
}

/// A loopback `METRICS_ADDR` for one connector.
fn metrics_addr() -> String {
    format!("127.0.0.1:{}", free_port().expect("a free port"))
}

#[tokio::test]
async fn prometheus_counts_the_tool_calls_made() {
    if !prometheus_installed() {
        return;
    }
    let dir = scratch_dir("prometheus");
    let demo = dir.join("demo.sqlite3").display().to_string();
    let root = repo_root().display().to_string();
    let (db_metrics, code_metrics) = (metrics_addr(), metrics_addr());
    let database = Connector::start(
        "database-connector",
        0,
        &[
            ("DATABASE_URL", ""),
            ("DB_DEMO_PATH", demo.as_str()),
            ("METRICS_ADDR", db_metrics.as_str()),
        ],
    )
    .await
    .expect("start the database connector");
    let code = Connector::start(
        "code-analysis-connector",
        0,
        &[
            ("CODE_ROOT", root.as_str()),
            ("METRICS_ADDR", code_metrics.as_str()),
        ],
    )
    .await
    .expect("start the code-analysis connector");
    let router = HttpRouter::start(
        &[spec("database", &database), spec("code_analysis", &code)],
        &[],
    )
    .await
    .expect("start the router");
    let router_metrics = format!("http://{}/metrics", router.addr);
    assert_eq!(
        http_get_status(&router_metrics).await,
        Some(200),
        "the router serves {router_metrics} (no issuer set)"
    );
    let jobs = vec![
        ("database", db_metrics.clone()),
        ("code_analysis", code_metrics.clone()),
        ("router", router.addr.to_string()),
    ];
    let prometheus = Prometheus::start(&dir, &jobs).await;

    let (client, recorder) = http_client(&router).await;
    wait_for_tools(&client, &recorder, "both connectors' tools", |names| {
        names.iter().any(|n| n == "database_query")
            && names.iter().any(|n| n == "code_analysis_analyze_code")
    })
    .await;
    // Three identical cached queries: one miss, then two hits.
    for _ in 0..3 {
        let result = call(
            &client,
            "database_query",
            json!({"sql": "SELECT COUNT(*) AS n FROM customers", "cache_ttl": 300}),
        )
        .await;
        assert!(!is_error(&result), "{}", text(&result));
    }
    // The same code twice: parsed once, then from the cache.
    let source = "def f(x):\n    if x:\n        return 1\n    return 2\n";
    for _ in 0..2 {
        let result = call(
            &client,
            "code_analysis_analyze_code",
            json!({"language": "python", "code": source}),
        )
        .await;
        assert!(!is_error(&result), "{}", text(&result));
    }

    for job in jobs.iter().map(|(job, _)| job) {
        prometheus
            .expect(&format!("up{{job=\"{job}\"}}"), 1.0)
            .await;
    }
    // The kit's gRPC server metric, per method and status.
    prometheus
        .expect(
            r#"sum(rpc_server_call_duration_seconds_count{job="database",rpc_method="Query",rpc_grpc_status_code="0"})"#,
            3.0,
        )
        .await;
    prometheus
        .expect(
            r#"sum(rpc_server_call_duration_seconds_count{job="code_analysis",rpc_method="AnalyzeCode",rpc_grpc_status_code="0"})"#,
            2.0,
        )
        .await;
    // The database connector's query cache and pool.
    prometheus
        .expect(
            r#"switchboard_cache_requests_total{job="database",cache="query",backend="memory",result="miss"}"#,
            1.0,
        )
        .await;
    prometheus
        .expect(
            r#"switchboard_cache_requests_total{job="database",cache="query",backend="memory",result="hit"}"#,
            2.0,
        )
        .await;
    prometheus
        .expect(
            r#"db_client_connection_max{job="database",db_system="sqlite",db_client_connection_pool_name="read"}"#,
            5.0,
        )
        .await;
    // The code-analysis connector's files, bytes and cache.
    prometheus
        .expect(
            r#"switchboard_code_files_analyzed_total{job="code_analysis",language="python",kind="metrics"}"#,
            2.0,
        )
        .await;
    prometheus
        .expect(
            r#"switchboard_code_bytes_analyzed_total{job="code_analysis",language="python",kind="metrics"}"#,
            2.0 * source.len() as f64,
        )
        .await;
    prometheus
        .expect(
            r#"switchboard_cache_requests_total{job="code_analysis",cache="analysis",result="hit"}"#,
            1.0,
        )
        .await;
    prometheus
        .expect(
            r#"sum(mcp_server_operation_duration_seconds_count{job="router",mcp_method_name="tools/call",gen_ai_tool_name="database_query",error_type=""})"#,
            3.0,
        )
        .await;
    prometheus
        .expect(
            r#"sum(mcp_server_operation_duration_seconds_count{job="router",mcp_method_name="tools/call",gen_ai_tool_name="code_analysis_analyze_code"})"#,
            2.0,
        )
        .await;
    prometheus
        .expect(
            r#"sum(rpc_client_call_duration_seconds_count{job="router",connector="database",rpc_grpc_status_code="0"})"#,
            3.0,
        )
        .await;
    prometheus
        .expect(
            r#"switchboard_connector_up{job="router",connector="code_analysis"}"#,
            1.0,
        )
        .await;
    prometheus
        .expect(
            r#"switchboard_connector_in_flight_calls{job="router",connector="database"}"#,
            0.0,
        )
        .await;
    let text = reqwest::get(&router_metrics)
        .await
        .expect("scrape the router")
        .text()
        .await
        .expect("metrics text");
    promtool_check(&text);
    let _ = client.cancel().await;
}

/// `promtool check metrics` on `text` (format and naming lint); skipped loudly
/// without promtool (fails in CI).
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
                "promtool is not installed ({error}); scripts/install-tools.sh promtool installs it"
            );
            assert!(!in_ci(), "this test needs promtool: {reason}");
            eprintln!("\n*** SKIPPING promtool check: {reason}\n");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics failed on the router's metrics:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
