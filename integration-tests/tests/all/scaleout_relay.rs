//! Server-to-client traffic between router replicas that share a session
//! (through a real Redis), placed by hand: the test speaks raw Streamable
//! HTTP straight to each replica, so it knows which replica holds the
//! client's listen stream, which one took the subscription, which one asks
//! a question and which one gets the answer. What a real client does
//! through the balancer (where the placement is the balancer's) is in
//! `scaleout.rs`.

use std::time::Duration;

use integration_tests::process::{Connector, HttpRouter};
use serde_json::{Value, json};

use crate::scaleout::{fresh_prefix, parts_available, readyz, replicas};
use crate::support::{answering_client_meta, spec};

const PROTOCOL: &str = "2025-11-25";
/// The conformance connector's tool that changes its watched resource.
const UPDATE: &str = "conformance_update_watched_resource";
/// Its tool that logs three lines at info.
const LOGGING: &str = "conformance_test_tool_with_logging";

/// One session spoken to in raw HTTP, on whichever replica each request
/// names.
pub(crate) struct RawSession {
    http: reqwest::Client,
    id: String,
}

impl RawSession {
    /// Initializes a session on `router`, declaring elicitation.
    pub(crate) async fn open(router: &HttpRouter) -> Self {
        let http = reqwest::Client::new();
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": { "elicitation": {} },
                "clientInfo": { "name": "relay-test", "version": "0" }
            }
        });
        let response = http
            .post(router.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init.to_string())
            .send()
            .await
            .expect("initialize");
        assert_eq!(response.status().as_u16(), 200, "initialize");
        let id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("a session id")
            .to_owned();
        drop(response.text().await);
        let session = Self { http, id };
        let accepted = session
            .post(
                router,
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert_eq!(accepted.status().as_u16(), 202);
        session
    }

    /// POSTs `message` to `router` in this session.
    pub(crate) async fn post(&self, router: &HttpRouter, message: Value) -> reqwest::Response {
        self.http
            .post(router.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", PROTOCOL)
            .body(message.to_string())
            .send()
            .await
            .expect("POST")
    }

    /// A request's answer, read whole from its stream.
    async fn request(&self, router: &HttpRouter, id: u64, method: &str, params: Value) -> Value {
        let response = self
            .post(
                router,
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
            )
            .await;
        assert_eq!(response.status().as_u16(), 200, "{method}");
        let mut events = Events::new(response);
        loop {
            let message = events.next().await.expect("the request's answer");
            if message.get("id") == Some(&json!(id)) {
                return message;
            }
        }
    }

    /// Subscribes to `uri` through `router`.
    async fn subscribe(&self, router: &HttpRouter, id: u64, uri: &str) {
        let subscribed = self
            .request(router, id, "resources/subscribe", json!({ "uri": uri }))
            .await;
        assert!(subscribed.get("result").is_some(), "{subscribed}");
    }

    /// Calls `tool` (no arguments) through `router`; it must succeed.
    async fn call(&self, router: &HttpRouter, id: u64, tool: &str) {
        let answer = self
            .request(
                router,
                id,
                "tools/call",
                json!({"name": tool, "arguments": {}}),
            )
            .await;
        assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    }

    /// Opens the session's listen stream on `router`.
    async fn listen(&self, router: &HttpRouter) -> Events {
        let response = self
            .http
            .get(router.mcp_url())
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", PROTOCOL)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status().as_u16(), 200, "listen stream");
        Events::new(response)
    }
}

/// The JSON-RPC messages of a server-sent event stream, one at a time.
pub(crate) struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next message (events without data are skipped); `None` when the
    /// stream ends or nothing comes within 20 s.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() || data.iter().all(|d| d.is_empty()) {
                    continue;
                }
                return Some(serde_json::from_str(&data.join("\n")).expect("JSON event data"));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }
}

async fn conformance_replicas(test: &str) -> (Connector, Vec<HttpRouter>) {
    conformance_replicas_with(test, &[]).await
}

/// [`conformance_replicas`] with the connector's environment `env`.
async fn conformance_replicas_with(
    test: &str,
    env: &[(&str, &str)],
) -> (Connector, Vec<HttpRouter>) {
    let connector = Connector::start("conformance-connector", 0, env)
        .await
        .expect("start conformance-connector");
    let specs = [spec("conformance", &connector)];
    let routers = replicas(2, &specs, &fresh_prefix(test), &[]).await;
    (connector, routers)
}

/// Opens a session whose listen stream replica A holds, subscribes through
/// replica B and changes the resource through B right away: the update must
/// reach A's listen stream.
async fn an_update_through_b_reaches_the_listen_stream_on_a(routers: &[HttpRouter]) {
    let (a, b) = (&routers[0], &routers[1]);
    let session = RawSession::open(a).await;
    let mut listen = session.listen(a).await;
    // The subscription is taken, and the connector watched, by replica B.
    let uri = "conformance+test://watched-resource";
    session.subscribe(b, 1, uri).await;
    session.call(b, 2, UPDATE).await;
    let updated = async {
        loop {
            let message = listen.next().await.expect("the listen stream goes on");
            if message["method"] == "notifications/resources/updated" {
                return message;
            }
        }
    };
    let message = tokio::time::timeout(Duration::from_secs(10), updated)
        .await
        .expect("notifications/resources/updated on the listen stream replica A holds");
    assert_eq!(message["params"]["uri"], uri, "{message}");
}

#[tokio::test]
async fn a_resource_update_reaches_the_listen_stream_another_replica_holds() {
    if !parts_available().await {
        return;
    }
    let (_connector, routers) = conformance_replicas("relay-update").await;
    an_update_through_b_reaches_the_listen_stream_on_a(&routers).await;
}

#[tokio::test]
async fn an_update_right_after_a_subscription_is_not_lost_while_another_replica_opens_the_watch() {
    if !parts_available().await {
        return;
    }
    // Opening a watch takes the connector half a second: a subscription
    // that answered before the listen stream's replica had opened its
    // watch would let the update go unseen.
    let (_connector, routers) =
        conformance_replicas_with("relay-watch-open", &[("WATCH_OPEN_DELAY_MS", "500")]).await;
    an_update_through_b_reaches_the_listen_stream_on_a(&routers).await;
}

#[tokio::test]
async fn a_log_level_set_on_one_replica_filters_the_calls_of_another() {
    if !parts_available().await {
        return;
    }
    let (_connector, routers) = conformance_replicas("relay-level").await;
    let (a, b) = (&routers[0], &routers[1]);
    let session = RawSession::open(a).await;
    // rmcp sends a call's log notifications on the session's listen stream,
    // here held by replica A; B's are relayed to it.
    let mut listen = session.listen(a).await;
    let uri = "conformance+test://watched-resource";
    session.subscribe(b, 1, uri).await;
    // What the listen stream carries until the next resource update: the
    // levels of the log notifications on it.
    async fn logs_until_update(listen: &mut Events) -> Vec<Value> {
        let mut logs = Vec::new();
        loop {
            let message = listen.next().await.expect("a notification");
            match message["method"].as_str() {
                Some("notifications/message") => logs.push(message["params"]["level"].clone()),
                Some("notifications/resources/updated") => return logs,
                _ => {}
            }
        }
    }
    session.call(b, 2, LOGGING).await;
    session.call(b, 3, UPDATE).await;
    assert_eq!(
        logs_until_update(&mut listen).await,
        [json!("info"), json!("info"), json!("info")],
        "info logs of B's call pass the default level and reach A's listen stream"
    );

    // Raised on B: A's call logs nothing.
    let set = session
        .request(b, 4, "logging/setLevel", json!({"level": "warning"}))
        .await;
    assert!(set.get("result").is_some(), "{set}");
    session.call(a, 5, LOGGING).await;
    // Lowered again on A: B (which was told "warning" itself) logs again.
    let set = session
        .request(a, 6, "logging/setLevel", json!({"level": "info"}))
        .await;
    assert!(set.get("result").is_some(), "{set}");
    session.call(b, 7, LOGGING).await;
    session.call(b, 8, UPDATE).await;
    assert_eq!(
        logs_until_update(&mut listen).await,
        [json!("info"), json!("info"), json!("info")],
        "none of A's call at warning, all of B's at info"
    );
}

#[tokio::test]
async fn an_answer_posted_to_another_replica_resolves_the_question_of_the_call_that_asked() {
    if !parts_available().await {
        return;
    }
    let (_connector, routers) = conformance_replicas("relay-answer").await;
    let (a, b) = (&routers[0], &routers[1]);
    let session = RawSession::open(a).await;
    let replica_a = readyz(a).await["sessions"]["replica"]
        .as_str()
        .expect("/readyz names the replica")
        .to_owned();
    for (round, (asks, answers)) in [(a, b), (b, a), (a, a)].into_iter().enumerate() {
        let id = 10 + round as u64;
        let response = session
            .post(
                asks,
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                    "name": "conformance_test_elicitation",
                    "arguments": {"message": "Who are you?"}
                }}),
            )
            .await;
        assert_eq!(response.status().as_u16(), 200);
        let mut events = Events::new(response);
        let question = events.next().await.expect("the question");
        assert_eq!(question["method"], "elicitation/create", "{question}");
        let asked = question["id"].clone();
        if round == 0 {
            assert!(
                asked
                    .as_str()
                    .is_some_and(|id| id.starts_with(&format!("{replica_a}."))),
                "a question's id names the replica that asked it: {asked}"
            );
        }
        let answer = session
            .post(
                answers,
                json!({"jsonrpc": "2.0", "id": asked, "result": {
                    "action": "accept",
                    "content": {"username": format!("ada-{round}"), "email": "ada@example.org"}
                }}),
            )
            .await;
        assert_eq!(answer.status().as_u16(), 202, "the answer is accepted");
        let result = events.next().await.expect("the call's result");
        assert_eq!(result["id"], json!(id), "{result}");
        let text = result["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            text.starts_with("User response: action=accept")
                && text.contains(&format!("ada-{round}")),
            "round {round}: {result}"
        );
    }
}

/// Reads `listen` until a resource update (true) or a log notification
/// (false) comes.
async fn update_before_log(listen: &mut Events) -> bool {
    loop {
        let message = listen.next().await.expect("a notification");
        match message["method"].as_str() {
            Some("notifications/resources/updated") => return true,
            Some("notifications/message") => return false,
            _ => {}
        }
    }
}

#[tokio::test]
async fn subscriptions_follow_the_listen_stream_and_an_unsubscribe_anywhere_ends_them() {
    if !parts_available().await {
        return;
    }
    let (_connector, mut routers) = conformance_replicas("relay-subscriptions").await;
    let session = RawSession::open(&routers[0]).await;
    let uri = "conformance+test://watched-resource";

    // Listening on A, subscribed through B: A watches.
    let mut listen = session.listen(&routers[0]).await;
    session.subscribe(&routers[1], 1, uri).await;
    // Twice, through the other replica: still one watch, one notification.
    session.subscribe(&routers[0], 2, uri).await;
    session.call(&routers[1], 3, UPDATE).await;
    assert!(update_before_log(&mut listen).await, "the update arrives");
    session.call(&routers[0], 4, LOGGING).await;
    assert!(
        !update_before_log(&mut listen).await,
        "one subscription, one notification per change"
    );

    // Replica A dies; the client listens again, on B: B watches now.
    routers[0].process.kill().await.expect("SIGKILL replica A");
    let mut listen = session.listen(&routers[1]).await;
    // Its watches start beside the stream: until the first update arrives,
    // an update may come before the watch is open, so ask again.
    let mut seen = false;
    for attempt in 0..20 {
        session.call(&routers[1], 10 + attempt, UPDATE).await;
        let message = tokio::time::timeout(Duration::from_millis(500), listen.next()).await;
        if let Ok(Some(message)) = message
            && message["method"] == "notifications/resources/updated"
        {
            seen = true;
            break;
        }
    }
    assert!(
        seen,
        "the subscription outlived the replica that watched it for the client"
    );

    // Whatever the attempts above left in flight arrives now.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), listen.next()).await {}

    // Unsubscribed: no more updates (the next notification is the log of a
    // call made after the update).
    let unsubscribed = session
        .request(
            &routers[1],
            40,
            "resources/unsubscribe",
            json!({ "uri": uri }),
        )
        .await;
    assert!(unsubscribed.get("result").is_some(), "{unsubscribed}");
    session.call(&routers[1], 41, UPDATE).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    session.call(&routers[1], 42, LOGGING).await;
    assert!(
        !update_before_log(&mut listen).await,
        "no update after the unsubscribe"
    );
    drop(routers.remove(0));
}

/// A stateless (2026-07-28) `tools/call` POSTed to `router`, read whole:
/// its answer.
async fn stateless_call(router: &HttpRouter, id: u64, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = answering_client_meta();
    let response = reqwest::Client::new()
        .post(router.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", params["name"].as_str().unwrap_or_default())
        .body(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
                .to_string(),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let json = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json {
        return response.json().await.expect("a JSON answer");
    }
    let mut events = Events::new(response);
    loop {
        let message = events.next().await.expect("the call's answer");
        if message.get("id") == Some(&json!(id)) {
            return message;
        }
    }
}

#[tokio::test]
async fn a_stateless_call_s_question_is_answered_by_a_retry_to_any_replica() {
    if !parts_available().await {
        return;
    }
    let (_connector, routers) = conformance_replicas("relay-rounds").await;
    let (a, b) = (&routers[0], &routers[1]);
    let replica_a = readyz(a).await["sessions"]["replica"]
        .as_str()
        .expect("/readyz names the replica")
        .to_owned();
    let ask = json!({"name": "conformance_test_elicitation", "arguments": {"message": "Who?"}});
    for (round, retry_to) in [b, a].into_iter().enumerate() {
        let asked = stateless_call(a, 1, ask.clone()).await;
        let result = &asked["result"];
        assert_eq!(result["resultType"], "input_required", "{asked}");
        assert_eq!(
            result["inputRequests"]["question"]["method"], "elicitation/create",
            "{asked}"
        );
        let state = result["requestState"].as_str().expect("a requestState");
        assert!(
            state.starts_with(&format!("{replica_a}.")),
            "the state names the replica holding the call: {state}"
        );
        let mut retry = ask.clone();
        retry["requestState"] = json!(state);
        retry["inputResponses"] = json!({"question": {
            "action": "accept",
            "content": {"username": format!("ada-{round}"), "email": "ada@example.org"}
        }});
        let answered = stateless_call(retry_to, 2, retry.clone()).await;
        let text = answered["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            text.starts_with("User response: action=accept")
                && text.contains(&format!("ada-{round}")),
            "round {round}: {answered}"
        );
        // The state is spent: the same retry again finds nothing.
        let again = stateless_call(retry_to, 3, retry).await;
        assert!(
            again["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("requestState names no call")),
            "{again}"
        );
    }
}

#[tokio::test]
async fn one_router_without_a_store_answers_stateless_questions_in_rounds() {
    let connector = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start conformance-connector");
    let router = HttpRouter::start(&[spec("conformance", &connector)], &[])
        .await
        .expect("router");
    let ask = json!({"name": "conformance_test_elicitation", "arguments": {"message": "Who?"}});
    let asked = stateless_call(&router, 1, ask.clone()).await;
    let state = asked["result"]["requestState"]
        .as_str()
        .expect("an input-required result")
        .to_owned();
    let mut retry = ask;
    retry["requestState"] = json!(state);
    retry["inputResponses"] = json!({"question": {"action": "decline"}});
    let answered = stateless_call(&router, 2, retry).await;
    assert_eq!(
        answered["result"]["content"][0]["text"], "User response: action=decline, content=null",
        "{answered}"
    );
    // A made-up state opens nothing.
    let forged = stateless_call(
        &router,
        3,
        json!({"name": "conformance_test_elicitation", "arguments": {"message": "Who?"},
               "requestState": format!("{}.00000000000000000000000000000000", state.split('.').next().unwrap_or_default()),
               "inputResponses": {"question": {"action": "accept", "content": {}}}}),
    )
    .await;
    assert!(
        forged["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("requestState names no call")),
        "{forged}"
    );
}

#[tokio::test]
async fn subscribes_racing_on_several_replicas_cannot_overshoot_the_session_s_limit() {
    if !parts_available().await {
        return;
    }
    use switchboard_router::session::{SessionKeys, SharedSessions, StoreSettings};
    let settings = StoreSettings {
        url: "redis://127.0.0.1:6379".to_owned().into(),
        prefix: fresh_prefix("subscription-limit"),
        ttl: Duration::from_secs(60),
        keys: SessionKeys::default(),
        max_initialize_bytes: switchboard_router::config::DEFAULT_MAX_INITIALIZE_BYTES,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let shared = SharedSessions::start(&settings, shutdown.clone()).expect("a Redis URL");
    assert!(
        shared.connected(Duration::from_secs(5)).await,
        "Redis answers"
    );
    let id = "00000000-0000-4000-8000-000000000001";
    shared
        .set_owner(id, "someone")
        .await
        .expect("the session exists");
    // Twenty subscribes at once (as from as many replicas), a limit of three.
    let adds = (0..20).map(|i| {
        let shared = shared.clone();
        async move {
            shared
                .add_subscription(id, &format!("conformance+test://r{i}"), 3)
                .await
                .expect("Redis answers")
        }
    });
    let added = futures::future::join_all(adds).await;
    assert_eq!(added.iter().filter(|&&a| a).count(), 3, "{added:?}");
    let held = shared.subscriptions(id).await.expect("read");
    assert_eq!(held.len(), 3, "{held:?}");
    // One already held is no new one: accepted at the limit; another is not.
    for i in 0..20 {
        let uri = format!("conformance+test://r{i}");
        let again = shared
            .add_subscription(id, &uri, 3)
            .await
            .expect("Redis answers");
        assert_eq!(again, held.contains(&uri), "{uri}");
    }
    shutdown.cancel();
}
