//! `router-bench`: what the router adds to a tool call.
//!
//! Starts the calculator test connector and the router (both from the same build
//! directory as this binary), then makes the same small call (`Add`) in three
//! ways, sequentially, after a warm-up: directly over gRPC (the baseline), through
//! the router over MCP stdio, and through the router over MCP Streamable HTTP.
//! Prints p50/p99 latency, calls/s and the ratio to the baseline, plus the
//! router's resident memory, as a Markdown table. Run it in release
//! (`make bench`); figures are only comparable within one run.

// The report is this program's output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use integration_tests::pb::AddRequest;
use integration_tests::pb::calculator_client::CalculatorClient;
use integration_tests::process::{Connector, HttpRouter, binary};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// Calls per path (after the warm-up).
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Warm-up calls per path.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
}

struct Figures {
    name: &'static str,
    latencies: Vec<Duration>,
    total: Duration,
}

impl Figures {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.total.as_secs_f64()
    }
}

async fn measure<F, Fut>(name: &'static str, args: &Args, mut call: F) -> anyhow::Result<Figures>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for i in 0..args.warmup {
        call(i).await?;
    }
    let mut latencies = Vec::with_capacity(args.calls);
    let started = Instant::now();
    for i in 0..args.calls {
        let t = Instant::now();
        call(i).await?;
        latencies.push(t.elapsed());
    }
    Ok(Figures {
        name,
        latencies,
        total: started.elapsed(),
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn arguments(i: usize) -> serde_json::Map<String, serde_json::Value> {
    match json!({"a": i as f64, "b": 0.5}) {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let connector = Connector::start("test-connector", 0, &[]).await?;
    let spec = format!("calculator={}", connector.url());

    // Baseline: the generated gRPC client straight to the connector.
    let grpc = CalculatorClient::connect(connector.url()).await?;
    let direct = measure("direct gRPC (baseline)", &args, |i| {
        let mut grpc = grpc.clone();
        async move {
            let r = grpc
                .add(AddRequest {
                    a: i as f64,
                    b: 0.5,
                })
                .await?;
            anyhow::ensure!(r.into_inner().sum == i as f64 + 0.5, "wrong sum");
            Ok(())
        }
    })
    .await?;
    drop(grpc);

    // MCP over stdio.
    let mut cmd = tokio::process::Command::new(binary("switchboard")?);
    cmd.args(["--stdio", "--connector", &spec])
        .env("RUST_LOG", "warn");
    let child = TokioChildProcess::new(cmd)?;
    let stdio_pid = child.id();
    let client = ().serve(child).await.context("stdio initialize")?;
    client.list_all_tools().await?;
    let stdio = measure("MCP stdio via router", &args, |i| {
        let client = &client;
        async move {
            let r = client
                .call_tool(
                    CallToolRequestParams::new("calculator_add").with_arguments(arguments(i)),
                )
                .await?;
            anyhow::ensure!(r.is_error != Some(true), "tool error");
            Ok(())
        }
    })
    .await?;
    let stdio_rss = stdio_pid.and_then(rss_kib);
    let _ = client.cancel().await;

    // MCP over Streamable HTTP.
    let router = HttpRouter::start(std::slice::from_ref(&spec), &[]).await?;
    let http_pid = router.process.id();
    let client = ().serve(StreamableHttpClientTransport::from_uri(router.mcp_url())).await?;
    client.list_all_tools().await?;
    let http = measure("MCP HTTP via router", &args, |i| {
        let client = &client;
        async move {
            let r = client
                .call_tool(
                    CallToolRequestParams::new("calculator_add").with_arguments(arguments(i)),
                )
                .await?;
            anyhow::ensure!(r.is_error != Some(true), "tool error");
            Ok(())
        }
    })
    .await?;
    let http_rss = http_pid.and_then(rss_kib);
    let _ = client.cancel().await;

    let base_p50 = direct.percentile(0.5).as_secs_f64();
    println!("| path | p50 | p99 | calls/s | p50 vs baseline |");
    println!("|---|---|---|---|---|");
    for f in [&direct, &stdio, &http] {
        println!(
            "| {} | {:.0} µs | {:.0} µs | {:.0} | {:.1}x |",
            f.name,
            f.percentile(0.5).as_secs_f64() * 1e6,
            f.percentile(0.99).as_secs_f64() * 1e6,
            f.per_second(),
            f.percentile(0.5).as_secs_f64() / base_p50,
        );
    }
    println!();
    println!(
        "{} sequential calls per path after {} warm-up calls. Router resident memory after the run: stdio {} MiB, HTTP {} MiB.",
        args.calls,
        args.warmup,
        stdio_rss.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        http_rss.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
    );
    Ok(())
}
