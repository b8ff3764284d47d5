//! A hostile HTTP client against the real router process: session floods,
//! slow headers, trickled bodies, malformed JSON, subscription floods and call
//! floods. Each bound is set small for the test (so it is quick), the client
//! that hits it gets an error naming the setting, and a well-behaved client
//! is served throughout.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use integration_tests::process::{Connector, HttpRouter, scratch_dir};
use rmcp::model::SubscribeRequestParams;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::scaleout_relay::{Events, RawSession};
use crate::support::*;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"flood","version":"1"}}}"#;

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

/// POSTs `body` to the router's MCP endpoint as an MCP client would.
async fn post_raw(http: &reqwest::Client, router: &HttpRouter, body: &str) -> (u16, String) {
    let response = http
        .post(router.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST /mcp");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The router's resident memory, in KiB.
fn rss_kib(router: &HttpRouter) -> u64 {
    let pid = router.process.id().expect("router pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// A well-behaved client is still served: its tools are listed.
async fn still_served(client: &Client, after: &str) {
    let names = tokio::time::timeout(Duration::from_secs(10), tool_names(client))
        .await
        .unwrap_or_else(|_| panic!("tools/list took over 10s after {after}"));
    assert!(
        names.contains(&"calculator_add".to_owned()),
        "after {after}: {names:?}"
    );
}

/// Reads from `stream` until the peer closes it (or `limit` passes), and
/// returns what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Instant>) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&received).into_owned(),
                    Some(Instant::now()),
                );
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), None),
        }
    }
}

#[tokio::test]
async fn ten_thousand_session_opens_leave_the_sessions_bounded() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &["--max-sessions", "20"])
        .await
        .expect("router");
    let (client, _) = http_client(&router).await;
    still_served(&client, "start-up").await;
    let rss_before = rss_kib(&router);

    let http = reqwest::Client::new();
    let outcomes: Vec<(u16, String)> = futures::stream::iter(0..10_000)
        .map(|_| post_raw(&http, &router, INIT))
        .buffer_unordered(32)
        .collect()
        .await;
    let opened = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<&String> = outcomes
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        opened, 19,
        "the well-behaved client holds one of the 20 sessions"
    );
    assert_eq!(opened + refused.len(), 10_000, "every open is answered");
    let refusal = message(refused[0]);
    assert_eq!(refusal["id"], 1, "{refusal}");
    assert_eq!(refusal["error"]["code"], -32000, "{refusal}");
    let text = refusal["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("max_sessions = 20"), "{refusal}");
    assert_eq!(refusal["error"]["data"]["setting"], "max_sessions");

    let rss_after = rss_kib(&router);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB over 10,000 session opens"
    );
    still_served(&client, "10,000 session opens").await;
}

#[tokio::test]
async fn an_initialize_larger_than_a_session_keeps_is_refused_and_holds_no_slot() {
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &["--max-sessions", "1", "--max-initialize-bytes", "4096"],
    )
    .await
    .expect("router");
    let http = reqwest::Client::new();
    // Capabilities a session would keep for its whole life (parsed, several
    // times their size), well within the body limit.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {"experimental": {"padding": {"x": "y".repeat(8000)}}},
        "clientInfo": {"name": "big", "version": "1"}}})
    .to_string();
    // Each refusal must free what it took: the router holds one session.
    for _ in 0..3 {
        let (status, body) = post_raw(&http, &router, &big).await;
        let refusal = message(&body);
        assert_eq!(status, 200, "{body}");
        assert_eq!(refusal["id"], 1, "{refusal}");
        assert_eq!(refusal["error"]["code"], -32602, "{refusal}");
        assert_eq!(refusal["error"]["data"]["setting"], "max_initialize_bytes");
        assert_eq!(refusal["error"]["data"]["limit"], 4096);
        let text = refusal["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains("max_initialize_bytes = 4096"), "{refusal}");
    }
    // A client of the usual size gets the one session and is served.
    let (client, _) = http_client(&router).await;
    still_served(&client, "three refused initializes").await;
}

#[tokio::test]
async fn a_closed_session_frees_its_slot() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &["--max-sessions", "1"])
        .await
        .expect("router");
    let http = reqwest::Client::new();
    let response = http
        .post(router.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT)
        .send()
        .await
        .expect("initialize");
    assert_eq!(response.status().as_u16(), 200);
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    drop(response.text().await);
    let (status, body) = post_raw(&http, &router, INIT).await;
    assert_eq!(status, 503, "the only slot is taken: {body}");
    // A session id rmcp cannot read is no session id: still no slot.
    let odd = http
        .post(router.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header(
            "mcp-session-id",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").expect("obs-text header"),
        )
        .body(INIT)
        .send()
        .await
        .expect("initialize with an odd session id");
    assert_eq!(odd.status().as_u16(), 503);

    let deleted = http
        .delete(router.mcp_url())
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("DELETE");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let (client, _) = http_client(&router).await;
    still_served(&client, "a session was closed").await;
}

#[tokio::test]
async fn slow_headers_are_cut_after_the_header_timeout() {
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &["--header-read-timeout", "1s"],
    )
    .await
    .expect("router");
    let (client, _) = http_client(&router).await;

    // Twenty clients that send their headers one byte every 200 ms.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let addr = router.addr;
        slow.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let started = Instant::now();
            let head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for byte in head.bytes() {
                if stream.write_all(&[byte]).await.is_err() {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("the router read slow headers for {:?}", started.elapsed());
        }));
    }
    // An idle connection that sends nothing at all is closed too.
    let mut idle = TcpStream::connect(router.addr).await.expect("connect");
    still_served(&client, "slow clients connected").await;
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "an idle connection is closed after the header timeout"
    );
    for handle in slow {
        let lasted = handle.await.expect("slow client");
        assert!(
            lasted < Duration::from_secs(4),
            "a slow client was cut only after {lasted:?}"
        );
    }
    still_served(&client, "slow headers").await;
}

#[tokio::test]
async fn a_body_trickled_at_one_byte_a_second_is_cut_after_the_body_timeout() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &["--body-read-timeout", "2s"])
        .await
        .expect("router");
    let (client, _) = http_client(&router).await;

    let stream = TcpStream::connect(router.addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        INIT.len()
    );
    write.write_all(head.as_bytes()).await.expect("headers");
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for byte in INIT.bytes() {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut received = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the router answers and closes within 10s");
    let lasted = started.elapsed();
    trickle.abort();
    let response = String::from_utf8_lossy(&received).into_owned();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body_read_timeout"), "{response}");
    assert!(
        lasted >= Duration::from_millis(1900) && lasted < Duration::from_secs(5),
        "cut after {lasted:?}"
    );
    still_served(&client, "a trickled body").await;
}

#[tokio::test]
async fn a_truncated_json_body_gets_a_json_rpc_parse_error() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let (client, _) = http_client(&router).await;
    let http = reqwest::Client::new();
    let (status, body) = post_raw(&http, &router, &INIT[..INIT.len() / 2]).await;
    assert_eq!(status, 400, "{body}");
    let error = message(&body);
    assert_eq!(error["jsonrpc"], "2.0", "{error}");
    assert_eq!(error["id"], Value::Null, "{error}");
    assert_eq!(error["error"]["code"], -32700, "{error}");

    // Deep nesting is a parse error too, not a crash.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, body) = post_raw(&http, &router, &deep).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(message(&body)["error"]["code"], -32700, "{body}");

    // JSON that is no JSON-RPC message is an invalid request, with its id.
    let (status, body) = post_raw(&http, &router, r#"{"jsonrpc":"2.0","id":"x-1"}"#).await;
    assert_eq!(status, 400, "{body}");
    let error = message(&body);
    assert_eq!(error["id"], "x-1", "{error}");
    assert_eq!(error["error"]["code"], -32600, "{error}");
    still_served(&client, "malformed bodies").await;
}

#[tokio::test]
async fn connections_over_the_limit_are_told_and_closed() {
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &["--max-connections", "8", "--header-read-timeout", "3s"],
    )
    .await
    .expect("router");
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(router.addr).await.expect("connect"));
    }
    let mut extra = TcpStream::connect(router.addr).await.expect("connect");
    let (response, closed) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(closed.is_some(), "the connection over the limit is closed");
    assert!(response.starts_with("HTTP/1.1 503"), "told why: {response}");
    assert!(response.contains("max_connections = 8"), "{response}");
    drop(held);
    // The slots are free again once those connections are gone.
    let (client, _) = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut probe = TcpStream::connect(router.addr).await.expect("connect");
            probe
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await
                .expect("write");
            let (answer, _) = read_until_closed(&mut probe, Duration::from_secs(2)).await;
            if answer.starts_with("HTTP/1.1 200") {
                break http_client(&router).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("served again within 10s");
    still_served(&client, "a connection flood").await;
}

#[tokio::test]
#[allow(deprecated)]
async fn a_connector_that_never_opens_a_watch_fails_the_subscription_at_its_timeout() {
    // The connector takes a minute to open any watch; the router gives it
    // its call timeout, one second.
    let connector = Connector::start(
        "conformance-connector",
        0,
        &[("WATCH_OPEN_DELAY_MS", "60000")],
    )
    .await
    .expect("start conformance-connector");
    let config = scratch_dir("abuse-watch-open").join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[[connectors]]\nname = \"conformance\"\nurl = \"{}\"\nprefix = \"\"\ntimeout = 1\n",
            connector.url()
        ),
    )
    .expect("write router config");
    let router = HttpRouter::start(&[], &["--config", &config.display().to_string()])
        .await
        .expect("start router");
    let (client, _) = http_client(&router).await;
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        client.subscribe(SubscribeRequestParams::new("test://watched-resource")),
    )
    .await
    .expect("the subscription is answered, not held while the connector never opens the watch")
    .expect_err("the watch did not open")
    .to_string();
    assert!(error.contains("did not open the watch"), "{error}");
    // The session goes on: its tools are still listed.
    let names = tokio::time::timeout(Duration::from_secs(10), tool_names(&client))
        .await
        .expect("tools/list after a watch that never opened");
    assert!(
        names.contains(&"update_watched_resource".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
#[allow(deprecated)]
async fn a_thousand_subscriptions_stop_at_the_per_session_limit() {
    let s = crate::surface::surface_with(
        "",
        "abuse-subscriptions",
        &["--max-subscriptions-per-session", "1"],
    )
    .await;
    let (client, _) = http_client(&s.router).await;
    client
        .subscribe(SubscribeRequestParams::new("test://watched-resource"))
        .await
        .expect("the first subscription is accepted");
    let started = Instant::now();
    for i in 0..1000 {
        let error = client
            .subscribe(SubscribeRequestParams::new(format!(
                "test://watched-resource?variant={i}"
            )))
            .await
            .expect_err("over the limit");
        let error = error.to_string();
        assert!(
            error.contains("max_subscriptions_per_session = 1"),
            "{error}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "refusals are quick: {:?}",
        started.elapsed()
    );
    // The same URI again is no new subscription.
    client
        .subscribe(SubscribeRequestParams::new("test://watched-resource"))
        .await
        .expect("subscribing twice is idempotent");
    // Unsubscribing frees the slot: the next one reaches the connector (which
    // knows no such resource).
    client
        .unsubscribe(rmcp::model::UnsubscribeRequestParams::new(
            "test://watched-resource",
        ))
        .await
        .expect("unsubscribe");
    let error = client
        .subscribe(SubscribeRequestParams::new("test://nothing-here"))
        .await
        .expect_err("unknown resource")
        .to_string();
    assert!(!error.contains("max_subscriptions_per_session"), "{error}");
    assert!(error.contains("test://nothing-here"), "{error}");
    let resources = client
        .list_all_resources()
        .await
        .expect("resources/list after the flood");
    assert!(!resources.is_empty());
    assert!(
        !tool_names(&client).await.is_empty(),
        "tools/list after the flood"
    );
}

#[tokio::test]
async fn calls_beyond_the_per_session_cap_are_refused_at_once() {
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &["--max-calls-per-session", "4"],
    )
    .await
    .expect("router");
    let (flooder, _) = http_client(&router).await;
    let (other, _) = http_client(&router).await;
    still_served(&other, "start-up").await;
    let flooder = std::sync::Arc::new(flooder);
    let mut sleepers = Vec::new();
    for _ in 0..4 {
        let flooder = flooder.clone();
        sleepers.push(tokio::spawn(async move {
            call(&flooder, "calculator_nap", json!({"ms": 3000})).await
        }));
    }
    // Let the four calls start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let refused: Vec<_> = futures::future::join_all(
        (0..50).map(|i| call(&flooder, "calculator_add", json!({"a": i, "b": 1}))),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refusals do not wait for the running calls: {:?}",
        started.elapsed()
    );
    for result in &refused {
        assert!(is_error(result), "{:?}", result);
        assert!(
            text(result).contains("max_calls_per_session = 4"),
            "{}",
            text(result)
        );
    }
    // Another session is not limited by this one's calls.
    let sum = call(&other, "calculator_add", json!({"a": 40, "b": 2})).await;
    assert_eq!(sum.structured_content, Some(json!({"sum": 42})));
    for sleeper in sleepers {
        let result = sleeper.await.expect("sleeper");
        assert!(!is_error(&result), "{}", text(&result));
    }
    // Once they are done, the session calls again.
    let sum = call(&flooder, "calculator_add", json!({"a": 1, "b": 2})).await;
    assert_eq!(sum.structured_content, Some(json!({"sum": 3})));
}

#[tokio::test]
async fn an_idle_session_expires_and_gives_its_slot_back() {
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &["--max-sessions", "1", "--session-idle-timeout", "1s"],
    )
    .await
    .expect("router");
    let http = reqwest::Client::new();
    let response = http
        .post(router.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT)
        .send()
        .await
        .expect("initialize");
    assert_eq!(response.status().as_u16(), 200);
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    drop(response.text().await);
    let (status, _) = post_raw(&http, &router, INIT).await;
    assert_eq!(status, 503, "the only slot is taken");

    // Abandoned without a DELETE: after the idle timeout the session is gone
    // and its slot free for a new client.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gone = http
        .post(router.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
        .send()
        .await
        .expect("ping");
    assert_eq!(gone.status().as_u16(), 404, "the idle session expired");
    let (client, _) = http_client(&router).await;
    still_served(&client, "an idle session expired").await;
}

#[tokio::test]
async fn sigterm_stops_the_router_promptly_despite_open_sessions_and_slow_clients() {
    let calc = calculator().await;
    // A client with an open session and its SSE stream: sessions are
    // cancelled first, so the stream ends at once.
    let mut router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let (client, _) = http_client(&router).await;
    still_served(&client, "start-up").await;
    let started = Instant::now();
    let status = router.process.terminate().await.expect("terminate");
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?} to stop with an open session",
        started.elapsed()
    );

    // A client stuck half-way through its headers delays the stop by the
    // shutdown grace at most, not by the header timeout.
    let mut router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &["--header-read-timeout", "60s"],
    )
    .await
    .expect("router");
    let mut slow = TcpStream::connect(router.addr).await.expect("connect");
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("half a head");
    let started = Instant::now();
    let status = router.process.terminate().await.expect("terminate");
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} to stop with a slow client",
        started.elapsed()
    );
}

#[tokio::test]
async fn bodies_read_at_once_stay_within_their_total() {
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &[
            "--max-body-bytes",
            "1000",
            "--max-body-bytes-in-flight",
            "1000",
            "--body-read-timeout",
            "10s",
        ],
    )
    .await
    .expect("router");
    let (client, _) = http_client(&router).await;

    // A client sends 800 of the 900 bytes it announced, and waits.
    let mut holder = TcpStream::connect(router.addr).await.expect("connect");
    let head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Accept: application/json, text/event-stream\r\nContent-Length: 900\r\n\r\n";
    holder.write_all(head.as_bytes()).await.expect("head");
    holder.write_all(&[b' '; 800]).await.expect("800 bytes");

    // Another body that would go over the total is refused at once...
    let http = reqwest::Client::new();
    let padded = format!("{INIT}{}", " ".repeat(300 - INIT.len().min(300)));
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (status, body) = post_raw(&http, &router, &padded).await;
            if status == 503 {
                break body;
            }
            // The holder's bytes may not have been read yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("refused within 5s");
    let error = message(&refused);
    assert_eq!(
        error["error"]["data"]["setting"],
        "max_body_bytes_in_flight"
    );
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_body_bytes_in_flight = 1000"),
        "{error}"
    );
    // ...while small requests still fit.
    still_served(&client, "bodies holding most of the budget").await;
    drop(holder);
}

#[tokio::test]
async fn a_client_answer_over_max_body_bytes_ends_the_call_that_asked() {
    // As over stdio: the answer to the router's question is refused (413),
    // and the call that asked ends at once saying why, instead of waiting for
    // an answer that never comes until its deadline.
    let connector = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start conformance-connector");
    let router = HttpRouter::start(
        &[spec("conformance", &connector)],
        &["--max-body-bytes", "20000"],
    )
    .await
    .expect("router");
    let session = RawSession::open(&router).await;
    let asked = session
        .post(
            &router,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "conformance_test_elicitation", "arguments": {"message": "Who?"}
            }}),
        )
        .await;
    assert_eq!(asked.status().as_u16(), 200);
    let mut events = Events::new(asked);
    let question = events.next().await.expect("the question");
    assert_eq!(question["method"], "elicitation/create", "{question}");
    let refused = session
        .post(
            &router,
            json!({"jsonrpc": "2.0", "id": question["id"], "result": {
                "action": "accept", "content": {"name": "n".repeat(30_000)}
            }}),
        )
        .await;
    assert_eq!(refused.status().as_u16(), 413);
    let answer = loop {
        let message = events
            .next()
            .await
            .expect("the call ends within seconds, not at its deadline");
        if message.get("id") == Some(&json!(1)) {
            break message;
        }
    };
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        answer.to_string().contains("max_body_bytes = 20000"),
        "the call says why: {answer}"
    );
    // The session goes on.
    let again = session
        .post(
            &router,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}),
        )
        .await;
    assert_eq!(again.status().as_u16(), 200);
}
