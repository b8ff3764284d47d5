//! Limits on tool calls, end to end: `[[limit]]` rate limits (in process and
//! shared by two router processes through a real Redis), a connector's
//! `max_in_flight` cap, in-flight sharing of identical read-only calls, and
//! what happens when Redis goes away. The test connector counts the calls it
//! receives and the most Sleep calls it ran at once (asked directly over gRPC,
//! not through the router). Assertions are on counts, never on timing.
//!
//! Redis at 127.0.0.1:6379 (`make services`) and the `redis-server` binary are
//! needed by the shared-limit tests: with `CI=true` a missing one fails the
//! test, otherwise it is skipped loudly.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::pb::EchoRequest;
use integration_tests::pb::calculator_client::CalculatorClient;
use integration_tests::process::{Connector, HttpRouter, free_port, scratch_dir, wait_until};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::support::*;

const REDIS: &str = "127.0.0.1:6379";

/// Whether Redis answers at `addr`; a failure under CI, a loud skip elsewhere.
async fn redis_available(addr: &str) -> bool {
    let up = matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    );
    if !up {
        let message = format!("Redis is not reachable at {addr}: start it with `make services`");
        assert!(!in_ci(), "CI=true: {message}");
        eprintln!("SKIPPED (not passed): {message}");
    }
    up
}

/// What the test connector reports: calls received by method, and the most
/// Sleep calls it ran at once.
async fn counters(connector: &Connector) -> (HashMap<String, u64>, u32) {
    let mut client = CalculatorClient::connect(connector.url())
        .await
        .expect("connect to the test connector");
    let echo = client
        .echo(EchoRequest {
            message: "counters".into(),
            ..Default::default()
        })
        .await
        .expect("Echo")
        .into_inner();
    (echo.calls, echo.most_sleeping)
}

/// A config file with `text`, for `--config`.
fn config_file(text: &str) -> String {
    let path = scratch_dir("limits").join("router.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// `POST /api/v1/tools/{tool}` with `arguments`: the status and `Retry-After`.
async fn rest_call(
    http: &reqwest::Client,
    router: &HttpRouter,
    tool: &str,
    arguments: Value,
) -> (u16, Option<String>, Value) {
    let response = http
        .post(format!("http://{}/api/v1/tools/{tool}", router.addr))
        .header("content-type", "application/json")
        .body(arguments.to_string())
        .send()
        .await
        .expect("REST call");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// The `limits` part of a router's `/readyz`.
async fn readyz_limits(router: &HttpRouter) -> Value {
    let body: Value = reqwest::get(format!("http://{}/readyz", router.addr))
        .await
        .expect("GET /readyz")
        .json()
        .await
        .expect("JSON");
    body["limits"].clone()
}

/// Waits until the router counts its limits in Redis.
async fn wait_shared(router: &HttpRouter, shared: bool) {
    wait_until(
        &format!("/readyz limits.shared = {shared}"),
        Duration::from_secs(20),
        || async { readyz_limits(router).await["shared"] == json!(shared) },
    )
    .await
    .expect("the router's limits store state");
}

/// A rule no earlier run of this test has used: Redis keys hash the rule, so
/// a rerun within the allowance's lifetime starts from a full allowance.
fn fresh_rule(rate: &str, burst: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "[[limit]]\ntools = [\"calculator_add\", \"never-matches-{nanos}-{}\"]\nper = \"principal\"\nrate = \"{rate}\"\nburst = {burst}\n",
        std::process::id()
    )
}

#[tokio::test]
async fn a_principals_limit_holds_across_two_routers_sharing_redis() {
    if !redis_available(REDIS).await {
        return;
    }
    let calc = calculator().await;
    let config = config_file(&format!(
        "limits_redis = \"redis://{REDIS}\"\n{}",
        fresh_rule("1/min", 10)
    ));
    let specs = [spec("calculator", &calc)];
    let one = HttpRouter::start(&specs, &["--config", &config])
        .await
        .expect("first router");
    let two = HttpRouter::start(&specs, &["--config", &config])
        .await
        .expect("second router");
    wait_shared(&one, true).await;
    wait_shared(&two, true).await;
    // REST without an issuer: every call is the local user's, on both.
    let http = reqwest::Client::new();
    let (mut admitted, mut limited) = (0, 0);
    for i in 0..40 {
        let router = if i % 2 == 0 { &one } else { &two };
        let (status, retry_after, body) =
            rest_call(&http, router, "calculator_add", json!({"a": 1, "b": 2})).await;
        match status {
            200 => admitted += 1,
            429 => {
                limited += 1;
                let detail = body["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("rate limited"), "{body}");
                assert!(detail.contains("retry after"), "{body}");
                let secs: u64 = retry_after
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .expect("Retry-After in seconds");
                assert!((1..=60).contains(&secs), "{secs}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    // One allowance for both (10, plus one more if a minute went by); each
    // router alone would have let 10 through.
    assert!((10..=11).contains(&admitted), "admitted {admitted}");
    assert_eq!(admitted + limited, 40);
    let (calls, _) = counters(&calc).await;
    assert_eq!(calls.get("Add").copied(), Some(admitted), "{calls:?}");
}

#[tokio::test]
async fn only_the_hot_principal_is_throttled() {
    let calc = calculator().await;
    let config = config_file(
        "[[limit]]\ntools = [\"calculator_add\"]\nper = \"principal\"\nrate = \"1/min\"\nburst = 150\n",
    );
    let router = HttpRouter::start(&[spec("calculator", &calc)], &["--config", &config])
        .await
        .expect("router");
    // Without tokens each MCP session is a principal: one hot client makes
    // 200 calls, three others 100 each, all at the same time.
    let mut clients = Vec::new();
    for calls in [200usize, 100, 100, 100] {
        let (client, _) = http_client(&router).await;
        clients.push(tokio::spawn(async move {
            let (mut ok, mut limited) = (0usize, 0usize);
            for i in 0..calls {
                let r = call(&client, "calculator_add", json!({"a": i, "b": 1})).await;
                if is_error(&r) {
                    assert!(text(&r).contains("rate limited"), "{}", text(&r));
                    assert!(text(&r).contains("retry after"), "{}", text(&r));
                    limited += 1;
                } else {
                    ok += 1;
                }
            }
            (ok, limited)
        }));
    }
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.push(client.await.expect("client task"));
    }
    assert!(
        outcomes[0].1 >= 49 && outcomes[0].0 <= 151,
        "the hot principal is throttled: {outcomes:?}"
    );
    for cool in &outcomes[1..] {
        assert_eq!(*cool, (100, 0), "the others are not: {outcomes:?}");
    }
}

#[tokio::test]
async fn a_capped_connector_never_runs_more_than_its_limit() {
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &[
            "--max-in-flight",
            "4",
            "--queue-timeout",
            "1s",
            "--max-calls-per-session",
            "64",
        ],
    )
    .await
    .expect("router");
    let (client, _) = http_client(&router).await;
    let client = std::sync::Arc::new(client);
    // 50 naps of 400 ms: 4 at a time, at most 12 start within the 1 s queue
    // timeout, so some must be refused.
    let mut naps = Vec::new();
    for _ in 0..50 {
        let client = client.clone();
        naps.push(tokio::spawn(async move {
            call(&client, "calculator_nap", json!({"ms": 400})).await
        }));
    }
    let (mut ok, mut refused) = (0u64, 0u64);
    for nap in naps {
        let r = nap.await.expect("nap task");
        if is_error(&r) {
            let message = text(&r);
            assert!(
                message.contains("connector calculator is at its limit of 4 concurrent calls"),
                "{message}"
            );
            refused += 1;
        } else {
            ok += 1;
        }
    }
    let (calls, most) = counters(&calc).await;
    assert!(most <= 4, "{most} naps ran at once at the connector");
    assert_eq!(most, 4, "the cap was used");
    assert!(ok >= 4 && refused >= 1, "ok {ok}, refused {refused}");
    assert_eq!(ok + refused, 50);
    assert_eq!(
        calls.get("Sleep").copied(),
        Some(ok),
        "refused calls never reached it"
    );
}

#[tokio::test]
async fn identical_read_only_calls_reach_the_connector_once_and_writes_every_time() {
    let slow = Connector::start("test-connector", 0, &[("TEST_READ_DELAY_MS", "1000")])
        .await
        .expect("slow test connector");
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &slow)])).await;
    let client = std::sync::Arc::new(client);
    let mut divides = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        divides.push(tokio::spawn(async move {
            // Keys in either order are the same call.
            call(
                &client,
                "calculator_divide",
                json!({"divisor": 2, "dividend": 7}),
            )
            .await
        }));
    }
    for divide in divides {
        let r = divide.await.expect("divide task");
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(r.structured_content.expect("structured")["quotient"], 3);
    }
    let mut naps = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        naps.push(tokio::spawn(async move {
            call(&client, "calculator_nap", json!({"ms": 200})).await
        }));
    }
    for nap in naps {
        assert!(!is_error(&nap.await.expect("nap task")));
    }
    let (calls, _) = counters(&slow).await;
    assert_eq!(calls.get("Divide").copied(), Some(1), "{calls:?}");
    assert_eq!(calls.get("Sleep").copied(), Some(20), "{calls:?}");
}

#[tokio::test]
async fn principals_share_a_call_only_of_tools_the_policy_says_answer_everyone_alike() {
    let Some(provider) = integration_tests::oidc::start().expect("provider") else {
        return;
    };
    let slow = Connector::start("test-connector", 0, &[("TEST_READ_DELAY_MS", "1000")])
        .await
        .expect("slow test connector");
    let policy = scratch_dir("limits").join(format!("shared-{}.toml", std::process::id()));
    std::fs::write(
        &policy,
        "shared_results = [\"calculator_divide\"]\n[[allow]]\ntools = [\"calculator_*\"]\n",
    )
    .expect("write policy");
    let policy = policy.display().to_string();
    let router = HttpRouter::start(
        &[spec("calculator", &slow)],
        &[
            "--auth-issuer",
            &provider.issuer,
            "--public-url",
            "http://127.0.0.1:9",
            "--auth-audience",
            "sharing-test",
            "--policy",
            &policy,
        ],
    )
    .await
    .expect("router with auth and a policy");
    let http = reqwest::Client::new();
    let mut calls = Vec::new();
    for sub in ["ana", "ben"] {
        let token = provider
            .mint(&integration_tests::oidc::TokenSpec {
                claims: json!({"sub": sub, "aud": "sharing-test"}),
                ..Default::default()
            })
            .expect("mint");
        for (tool, arguments) in [
            ("calculator_divide", json!({"dividend": 9, "divisor": 3})),
            ("calculator_add", json!({"a": 4, "b": 5})),
        ] {
            for _ in 0..3 {
                let request = http
                    .post(format!("http://{}/api/v1/tools/{tool}", router.addr))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(arguments.to_string());
                calls.push(tokio::spawn(async move {
                    request.send().await.map(|r| r.status().as_u16())
                }));
            }
        }
    }
    for call in calls {
        assert_eq!(call.await.expect("task").expect("REST call"), 200);
    }
    let (received, _) = counters(&slow).await;
    assert_eq!(
        received.get("Divide").copied(),
        Some(1),
        "a shared_results tool: one connector call for both principals: {received:?}"
    );
    assert_eq!(
        received.get("Add").copied(),
        Some(2),
        "any other read-only tool: one connector call per principal: {received:?}"
    );
}

#[tokio::test]
async fn cancelling_one_waiter_of_a_shared_call_leaves_the_others_their_result() {
    let slow = Connector::start("test-connector", 0, &[("TEST_READ_DELAY_MS", "2000")])
        .await
        .expect("slow test connector");
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &slow)])).await;
    let client = std::sync::Arc::new(client);
    let divide = |client: std::sync::Arc<Client>| async move {
        client
            .call_tool(
                CallToolRequestParams::new("calculator_divide")
                    .with_arguments(args(json!({"dividend": 9, "divisor": 4}))),
            )
            .await
    };
    // The first caller starts the connector's call...
    let first = tokio::spawn(divide(client.clone()));
    wait_until(
        "the connector to receive the call",
        Duration::from_secs(10),
        || async { counters(&slow).await.0.get("Divide").copied() == Some(1) },
    )
    .await
    .expect("the first call reached the connector");
    // ...two more join it, then the first gives up (its request future is
    // dropped: the client sends notifications/cancelled).
    let second = tokio::spawn(divide(client.clone()));
    let third = tokio::spawn(divide(client.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.abort();
    assert!(first.await.is_err(), "the first caller was cancelled");
    for waiter in [second, third] {
        let r = waiter.await.expect("task").expect("tools/call");
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(r.structured_content.expect("structured")["quotient"], 2);
    }
    let (calls, _) = counters(&slow).await;
    assert_eq!(calls.get("Divide").copied(), Some(1), "{calls:?}");
}

#[tokio::test]
async fn calls_go_on_under_local_limits_when_redis_is_killed() {
    let Some((mut redis, port)) = own_redis().await else {
        return;
    };
    let calc = calculator().await;
    let config = config_file(&format!(
        "limits_redis = \"redis://127.0.0.1:{port}\"\n[[limit]]\ntools = [\"calculator_add\"]\nrate = \"1/min\"\nburst = 3\n"
    ));
    let router = HttpRouter::start(&[spec("calculator", &calc)], &["--config", &config])
        .await
        .expect("router");
    wait_shared(&router, true).await;
    let http = reqwest::Client::new();
    let add = || rest_call(&http, &router, "calculator_add", json!({"a": 1, "b": 1}));
    for _ in 0..3 {
        assert_eq!(add().await.0, 200);
    }
    assert_eq!(
        add().await.0,
        429,
        "Redis counts the fourth call over the burst"
    );
    redis.kill().await.expect("kill redis-server");
    let _ = redis.wait().await;
    // Redis is gone: the next calls are counted in this router, which has
    // counted none yet, so its own burst of 3 goes through, then it refuses.
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(add().await.0);
        }
        out
    };
    assert_eq!(statuses, [200, 200, 200, 429, 429], "local limits apply");
    let limits = readyz_limits(&router).await;
    assert_eq!(limits["shared"], false, "{limits}");
    assert!(
        limits["detail"]
            .as_str()
            .is_some_and(|d| d.contains("counted in this replica")),
        "{limits}"
    );
    // Calls to tools no limit covers never noticed.
    let (status, _, _) =
        rest_call(&http, &router, "calculator_echo", json!({"message": "hi"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_router_whose_redis_never_answers_limits_locally_from_the_start() {
    let calc = calculator().await;
    let closed = free_port().expect("port");
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &[
            "--limits-redis",
            &format!("redis://127.0.0.1:{closed}"),
            "--rate-limit",
            "1/min",
            "--rate-limit-burst",
            "2",
        ],
    )
    .await
    .expect("router");
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            rest_call(&http, &router, "calculator_add", json!({"a": 1, "b": 1}))
                .await
                .0,
        );
    }
    assert_eq!(statuses, [200, 200, 429]);
    wait_until(
        "/readyz to say redis is unavailable",
        Duration::from_secs(20),
        || async {
            let limits = readyz_limits(&router).await;
            limits["shared"] == json!(false)
                && limits["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("redis is unavailable"))
        },
    )
    .await
    .expect("readyz detail");
}

#[tokio::test]
async fn an_upstream_rate_limit_is_reported_apart_from_the_routers_own() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let (client, _) = http_client(&router).await;
    let arguments = json!({"code": "UPSTREAM_RATE_LIMITED", "message": "Jira is rate limiting the connector (HTTP 429)"});
    let r = call(&client, "calculator_fail", arguments.clone()).await;
    assert!(is_error(&r));
    let message = text(&r);
    assert!(message.contains("Upstream rate limited"), "{message}");
    assert!(message.contains("not the router"), "{message}");
    assert!(message.contains("Retry after 7 s"), "{message}");
    assert!(!message.contains("the router's limit"), "{message}");
    // Over REST: 429 with the upstream's wait.
    let (status, retry_after, body) = rest_call(
        &reqwest::Client::new(),
        &router,
        "calculator_fail",
        arguments,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry_after.as_deref(), Some("7"));
}
