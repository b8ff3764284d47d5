//! The REST front door (`/api/v1`) of a real `switchboard` process in front
//! of the calculator test connector: listing, calls, problem details for
//! every refusal, hostile paths and bodies, the OpenAPI document (checked by
//! the real `openapi-spec-validator`) and its ETag; with `--auth-issuer` and a
//! real OpenID provider, tokens and the policy apply as they do to `/mcp`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use integration_tests::oidc::{self, OpenIdProvider, TokenSpec};
use integration_tests::process::{
    Connector, HttpRouter, binary, free_port, http_ok, repo_root, scratch_dir, wait_until,
};
use serde_json::{Value, json};

use crate::support::*;

/// A calculator behind a router without auth, served as `calculator`.
async fn open_router() -> (Connector, HttpRouter) {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    (calc, router)
}

fn api(router: &HttpRouter, path: &str) -> String {
    format!("http://{}/api/v1{path}", router.addr)
}

/// POSTs `body` as JSON to `url`: the status, the content type and the body.
async fn post_json(url: &str, body: &str, bearer: Option<&str>) -> (u16, String, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    answer(request.send().await.expect("POST")).await
}

async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, body)
}

fn assert_problem(content_type: &str, body: &Value, status: u16) {
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].is_string(), "{body}");
    assert!(body["type"].is_string(), "{body}");
    assert!(body["detail"].is_string(), "{body}");
}

#[tokio::test]
async fn rest_lists_the_tools_with_their_schemas() {
    let (_calc, router) = open_router().await;
    let response = reqwest::get(api(&router, "/tools")).await.expect("GET");
    let (status, _, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    let tools = body["tools"].as_array().expect("tools");
    let add = tools
        .iter()
        .find(|t| t["name"] == "calculator_add")
        .expect("calculator_add listed");
    assert_eq!(add["connector"], "calculator");
    assert_eq!(add["inputSchema"]["type"], "object");
    assert!(add["inputSchema"]["properties"]["a"].is_object(), "{add}");
    assert!(
        add["outputSchema"]["properties"]["sum"].is_object(),
        "{add}"
    );
}

#[tokio::test]
async fn rest_calls_a_tool_and_answers_its_structured_result() {
    let (_calc, router) = open_router().await;
    let (status, content_type, body) = post_json(
        &api(&router, "/tools/calculator_add"),
        r#"{"a": 40, "b": 2}"#,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    assert_eq!(body["result"], json!({"sum": 42}));
    assert_eq!(body["isError"], false);
    assert!(
        body["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("42")),
        "{body}"
    );
}

#[tokio::test]
async fn rest_bad_arguments_are_400_naming_the_field() {
    let (_calc, router) = open_router().await;
    let (status, content_type, body) =
        post_json(&api(&router, "/tools/calculator_add"), r#"{"a": 1}"#, None).await;
    assert_eq!(status, 400, "{body}");
    assert_problem(&content_type, &body, 400);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("missing required argument \"b\"")),
        "{body}"
    );
    let (status, _, body) = post_json(
        &api(&router, "/tools/calculator_add"),
        r#"{"a": 1, "b": 2, "c": 3}"#,
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("\"c\"")),
        "{body}"
    );
}

#[tokio::test]
async fn rest_connector_statuses_map_through_the_status_table() {
    let (_calc, router) = open_router().await;
    let cases = [
        ("INVALID_ARGUMENT", 400),
        ("NOT_FOUND", 404),
        ("FAILED_PRECONDITION", 422),
        ("PERMISSION_DENIED", 403),
        ("UNAVAILABLE", 503),
        ("INTERNAL", 502),
    ];
    for (code, http) in cases {
        let arguments = json!({"code": code, "message": "told to fail"}).to_string();
        let (status, content_type, body) =
            post_json(&api(&router, "/tools/calculator_fail"), &arguments, None).await;
        assert_eq!(status, http, "{code}: {body}");
        assert_problem(&content_type, &body, http);
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("told to fail")),
            "{body}"
        );
    }
    let (status, _, body) = post_json(
        &api(&router, "/tools/calculator_divide"),
        r#"{"dividend": 1, "divisor": 0}"#,
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn rest_unknown_tools_and_hostile_paths_are_refused() {
    let (_calc, router) = open_router().await;
    let (status, content_type, unknown) =
        post_json(&api(&router, "/tools/calculator_nope"), "{}", None).await;
    assert_eq!(status, 404, "{unknown}");
    assert_problem(&content_type, &unknown, 404);
    // Raw paths: reqwest would normalise `..`, so they are sent over TCP.
    for path in [
        "/api/v1/tools/..",
        "/api/v1/tools/../tools",
        "/api/v1/tools/calculator_add%2F..",
        "/api/v1/tools/%2e%2e%2Fopenapi.json",
        "/api/v1/tools/calculator_%C3%A4dd",
        "/api/v1/tools/calculator_add/extra",
        "/api/v1/tools/%00",
    ] {
        let (status, head) = raw_post(&router, path, "{\"a\":1,\"b\":2}").await;
        assert!((400..500).contains(&status), "{path}: {status}\n{head}");
        assert!(!head.contains("\"sum\""), "{path} reached the tool: {head}");
    }
    // The unknown answer gives nothing away about the name's shape.
    let (status, _, odd) = post_json(&api(&router, "/tools/a%20b"), "{}", None).await;
    assert_eq!(status, 404, "{odd}");
    assert_eq!(odd["code"], unknown["code"]);
}

/// Sends a POST with `path` exactly as written; the status and the response.
async fn raw_post(router: &HttpRouter, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        router.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[tokio::test]
async fn rest_bodies_are_checked_before_any_call() {
    let (_calc, router) = open_router().await;
    let url = api(&router, "/tools/calculator_add");
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"a": 1, "b": 2}"#)
        .send()
        .await
        .expect("POST");
    let (status, content_type, body) = answer(response).await;
    assert_eq!(status, 415, "{body}");
    assert_problem(&content_type, &body, 415);

    let (status, content_type, body) = post_json(&url, r#"{"a": 1,"#, None).await;
    assert_eq!(status, 400, "{body}");
    assert_problem(&content_type, &body, 400);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not valid JSON")),
        "{body}"
    );

    let (status, _, body) = post_json(&url, "[1, 2]", None).await;
    assert_eq!(status, 400, "{body}");

    // 10 MB, declared and chunked: refused once the limit is passed, the
    // rest of the body unread (so the client's writes may fail: ignored).
    let big = format!(r#"{{"a": 1, "b": 2, "pad": "{}"}}"#, "x".repeat(10 << 20));
    for chunked in [false, true] {
        let response = big_post(&router, big.as_bytes(), chunked).await;
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "{chunked}: {response}"
        );
        assert!(
            response.contains("application/problem+json") && response.contains("max_body_bytes"),
            "{response}"
        );
    }
}

/// POSTs `body` to `calculator_add` over raw TCP, writing while reading:
/// the response's head and whatever body arrived.
async fn big_post(router: &HttpRouter, body: &[u8], chunked: bool) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    let (mut read, mut write) = stream.into_split();
    let framing = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {}", body.len())
    };
    let head = format!(
        "POST /api/v1/tools/calculator_add HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n{framing}\r\n\r\n",
        router.addr
    );
    let body = body.to_vec();
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        for piece in body.chunks(64 << 10) {
            if chunked {
                write
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                write.write_all(piece).await?;
                write.write_all(b"\r\n").await?;
            } else {
                write.write_all(piece).await?;
            }
        }
        if chunked {
            write.write_all(b"0\r\n\r\n").await?;
        }
        std::io::Result::Ok(())
    });
    let mut response = Vec::new();
    let _ = read.read_to_end(&mut response).await;
    writer.abort();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn rest_openapi_document_validates_and_has_an_etag() {
    let (_calc, router) = open_router().await;
    let url = api(&router, "/openapi.json");
    let response = reqwest::get(&url).await.expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_owned();
    let text = response.text().await.expect("body");
    let document: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    let add = &document["paths"]["/tools/calculator_add"]["post"];
    assert_eq!(add["operationId"], "calculator_add");
    assert_eq!(add["tags"], json!(["calculator"]));
    assert!(document.get("security").is_none(), "no auth, no scheme");

    let again = reqwest::Client::new()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status().as_u16(), 304);
    let other = reqwest::Client::new()
        .get(&url)
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .expect("GET");
    assert_eq!(other.status().as_u16(), 200);

    validate(&text, "open");
}

/// Runs `openapi-spec-validator` on `document`; skipped loudly when it is not
/// installed (`scripts/install-tools.sh python`), a failure under `CI=true`.
fn validate(document: &str, name: &str) {
    let validator = repo_root().join(".tools/venv/bin/openapi-spec-validator");
    if !validator.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openapi-spec-validator is not installed: run scripts/install-tools.sh python"
        );
        eprintln!(
            "SKIPPED: openapi-spec-validator not installed (scripts/install-tools.sh python); the OpenAPI document was not validated"
        );
        return;
    }
    let path = scratch_dir("rest").join(format!("openapi-{name}-{}.json", std::process::id()));
    std::fs::write(&path, document).expect("write document");
    let output = std::process::Command::new(&validator)
        .arg(&path)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        output.status.success(),
        "openapi-spec-validator rejected the document:\n{}\n{}\n{document}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `calc_add` needs `calc:read`; `calc_divide` is for analysts only.
const POLICY: &str = r#"
[[allow]]
tools = ["calc_add", "calc_echo"]
scopes = ["calc:read"]
[[allow]]
tools = ["calc_divide"]
scopes = ["db:read"]
when = '"analysts" in jwt.groups'
"#;

/// A router with auth on in front of `connector` served as `calc`.
struct SecuredRouter {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
}

impl SecuredRouter {
    async fn start(provider: &OpenIdProvider, connector: &Connector) -> Self {
        let port = free_port().expect("port");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let policy: PathBuf = scratch_dir("rest").join(format!("policy-{port}.toml"));
        std::fs::write(&policy, POLICY).expect("write policy");
        let child = tokio::process::Command::new(binary("switchboard").expect("switchboard"))
            .args(["--listen", &addr.to_string()])
            .args(["--connector", &format!("calc={}", connector.url())])
            .args(["--auth-issuer", &provider.issuer])
            .args(["--public-url", &format!("http://{addr}")])
            .args(["--policy", &policy.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start switchboard");
        let health = format!("http://{addr}/healthz");
        wait_until("switchboard /healthz", Duration::from_secs(30), || {
            let health = health.clone();
            async move { http_ok(&health).await }
        })
        .await
        .expect("router up");
        Self { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn token(&self, provider: &OpenIdProvider, sub: &str, scope: &str) -> String {
        provider
            .mint(&TokenSpec {
                claims: json!({"sub": sub, "aud": self.url("/mcp"), "scope": scope}),
                ..TokenSpec::default()
            })
            .expect("mint")
    }
}

impl Drop for SecuredRouter {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn rest_with_auth_needs_a_token_and_hides_what_the_policy_hides() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let calc = calculator().await;
    let router = SecuredRouter::start(&provider, &calc).await;

    // No token: 401 with the challenge, for every endpoint.
    for (method, path) in [
        ("GET", "/api/v1/tools"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/tools/calc_add"),
    ] {
        let response = reqwest::Client::new()
            .request(method.parse().expect("method"), router.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 401, "{path}");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{path}: {challenge}");
        let (_, content_type, body) = answer(response).await;
        assert_problem(&content_type, &body, 401);
    }

    let token = router.token(&provider, "dana", "calc:read");
    let (status, _, body) = post_json(
        &router.url("/api/v1/tools/calc_add"),
        r#"{"a": 2, "b": 3}"#,
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], json!({"sum": 5}));

    // calc_divide exists but the policy hides it from dana: the same answer
    // as a tool that does not exist at all.
    let (hidden_status, _, hidden) =
        post_json(&router.url("/api/v1/tools/calc_divide"), "{}", Some(&token)).await;
    let (unknown_status, _, unknown) =
        post_json(&router.url("/api/v1/tools/calc_nope"), "{}", Some(&token)).await;
    assert_eq!(hidden_status, 404, "{hidden}");
    assert_eq!(unknown_status, 404, "{unknown}");
    let strip = |v: &Value, name: &str| v.to_string().replace(name, "NAME");
    assert_eq!(strip(&hidden, "calc_divide"), strip(&unknown, "calc_nope"));

    // The listing and the document show only what dana may call.
    let listed = reqwest::Client::new()
        .get(router.url("/api/v1/tools"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    let (_, _, listed) = answer(listed).await;
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"calc_add"), "{names:?}");
    assert!(!names.contains(&"calc_divide"), "{names:?}");
    let document = reqwest::Client::new()
        .get(router.url("/api/v1/openapi.json"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let parsed: Value = serde_json::from_str(&document).expect("JSON");
    assert!(parsed["paths"]["/tools/calc_add"].is_object());
    assert!(parsed["paths"].get("/tools/calc_divide").is_none());
    assert_eq!(parsed["security"], json!([{ "bearer": [] }]));
    assert_eq!(
        parsed["components"]["securitySchemes"]["issuer"]["type"],
        "openIdConnect"
    );
    validate(&document, "secured");
}

#[tokio::test]
async fn rest_openapi_document_of_a_real_connector_with_shared_definitions_validates() {
    // The code-analysis connector's schemas share definitions ($defs), also
    // inside a streaming tool's output: they must all resolve in the document.
    let root = repo_root().display().to_string();
    let connector = Connector::start(
        "code-analysis-connector",
        0,
        &[("CODE_ROOT", root.as_str())],
    )
    .await
    .expect("start code-analysis connector");
    let router = HttpRouter::start(&[spec("code_analysis", &connector)], &[])
        .await
        .expect("router");
    let text = reqwest::get(api(&router, "/openapi.json"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let document: Value = serde_json::from_str(&text).expect("JSON");
    assert!(
        document["paths"]["/tools/code_analysis_analyze_path"]["post"].is_object(),
        "{text}"
    );
    assert!(!text.contains("#/$defs/"), "a $ref left pointing at $defs");
    assert!(
        document["components"]["schemas"]
            .as_object()
            .is_some_and(|s| s.keys().any(|k| k.starts_with("switchboard.code_analysis"))),
        "{text}"
    );
    validate(&text, "code-analysis");
}

/// How many calls the router has made to connectors so far (its
/// `rpc_client_call_duration_seconds` histogram: every gRPC call of a tool
/// call, retries included), read from `/metrics`.
async fn connector_calls(router: &HttpRouter) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", router.addr))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("rpc_client_call_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn rest_bad_input_is_a_clear_4xx_and_never_reaches_a_connector() {
    let (_calc, router) = open_router().await;
    let add = api(&router, "/tools/calculator_add");
    let before = connector_calls(&router).await;
    let client = reqwest::Client::new();
    // Wrong content type, invalid JSON, not an object, wrong types, unknown
    // fields: each a problem document with a 4xx naming what is wrong.
    let cases: [(&str, &str, u16, &str); 6] = [
        ("text/plain", r#"{"a": 1, "b": 2}"#, 415, "application/json"),
        ("application/json", r#"{"a": 1,"#, 400, "not valid JSON"),
        ("application/json", "[1, 2]", 400, "JSON object"),
        ("application/json", r#"{"a": "one", "b": 2}"#, 400, "\"a\""),
        (
            "application/json",
            r#"{"a": 1, "b": 2, "c": 3}"#,
            400,
            "\"c\"",
        ),
        (
            "application/json",
            r#"{"a": {"deep": []}, "b": 2}"#,
            400,
            "\"a\"",
        ),
    ];
    for (content_type, body, status, says) in cases {
        let response = client
            .post(&add)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        let (got, got_type, problem) = answer(response).await;
        assert_eq!(got, status, "{body}: {problem}");
        assert_problem(&got_type, &problem, status);
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.contains(says)),
            "{body}: {problem}"
        );
    }
    // 10 MB, `..`, percent-encoded slashes, unicode and NUL in the name.
    let big = format!(r#"{{"a": 1, "b": 2, "pad": "{}"}}"#, "x".repeat(10 << 20));
    assert!(
        big_post(&router, big.as_bytes(), false)
            .await
            .starts_with("HTTP/1.1 413")
    );
    for path in [
        "/api/v1/tools/..",
        "/api/v1/tools/%2e%2e",
        "/api/v1/tools/..%2Fopenapi.json",
        "/api/v1/tools/calculator_add%2F..%2F..",
        "/api/v1/tools/calculator%2Fadd",
        "/api/v1/tools/calculator_%C3%A4dd",
        "/api/v1/tools/%E2%9E%95",
        "/api/v1/tools/%FF%FE",
        "/api/v1/tools/%00",
        "/api/v1/../api/v1/tools/calculator_add",
    ] {
        let (status, head) = raw_post(&router, path, r#"{"a":1,"b":2}"#).await;
        assert!((400..500).contains(&status), "{path}: {status}\n{head}");
        assert!(head.contains("application/problem+json"), "{path}: {head}");
    }
    // A batch of bad calls: each answered on its own, none reaches it.
    let (status, _, body) = post_json(
        &api(&router, "/batch"),
        r#"{"calls": [{"tool": "calculator_add", "arguments": {"a": "x", "b": 1}},
                      {"tool": "../calculator_add"}, {"tool": "calculator_ädd"}]}"#,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<&Value> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(statuses, [&json!(400), &json!(404), &json!(404)], "{body}");
    assert_eq!(
        connector_calls(&router).await,
        before,
        "a bad request reached the connector"
    );
    // The count does move for a call that is fine.
    let (status, _, _) = post_json(&add, r#"{"a": 1, "b": 2}"#, None).await;
    assert_eq!(status, 200);
    assert_eq!(connector_calls(&router).await, before + 1.0);
}

#[tokio::test]
async fn rest_batch_runs_calls_concurrently_and_answers_each_in_order() {
    let (_calc, router) = open_router().await;
    let batch = json!({"calls": [
        {"tool": "calculator_add", "arguments": {"a": 40, "b": 2}},
        {"tool": "calculator_nope", "arguments": {}},
        {"tool": "calculator_add", "arguments": {"a": 1}},
        {"tool": "calculator_fail", "arguments": {"code": "UNAVAILABLE", "message": "told to fail"}},
        {"tool": "calculator_nap", "arguments": {"ms": 1000}},
        {"tool": "calculator_nap", "arguments": {"ms": 1000}},
        {"tool": "calculator_nap", "arguments": {"ms": 1000}},
        {"tool": "calculator_nap", "arguments": {"ms": 1000}},
        {"tool": "calculator_echo"},
    ]});
    let started = std::time::Instant::now();
    let (status, content_type, body) =
        post_json(&api(&router, "/batch"), &batch.to_string(), None).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 9, "{body}");
    let tools: Vec<&str> = results.iter().filter_map(|r| r["tool"].as_str()).collect();
    assert_eq!(tools[0], "calculator_add");
    assert_eq!(tools[1], "calculator_nope");
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[0]["result"], json!({"sum": 42}));
    assert_eq!(results[0]["isError"], false);
    assert_eq!(results[1]["status"], 404);
    assert_eq!(results[1]["problem"]["code"], "unknown_tool");
    assert_eq!(results[2]["status"], 400);
    assert!(
        results[2]["problem"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("missing required argument \"b\"")),
        "{body}"
    );
    assert_eq!(results[3]["status"], 503);
    assert!(
        results[3]["problem"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("told to fail")),
        "{body}"
    );
    for nap in &results[4..8] {
        assert_eq!(nap["status"], 200, "{body}");
    }
    // Arguments may be left out: the call is decoded, and says what it lacks.
    assert_eq!(results[8]["status"], 400, "{body}");
    assert!(
        results[8]["problem"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("\"message\"")),
        "{body}"
    );
    // Four naps of a second each, run at once: well under their sum.
    assert!(took < Duration::from_millis(3000), "took {took:?}");
}

#[tokio::test]
async fn rest_batch_runs_at_most_max_calls_per_session_at_once() {
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &["--max-calls-per-session", "2"],
    )
    .await
    .expect("router");
    let nap = json!({"tool": "calculator_nap", "arguments": {"ms": 400}});
    let started = std::time::Instant::now();
    let (status, _, body) = post_json(
        &api(&router, "/batch"),
        &json!({"calls": [nap, nap, nap, nap, nap, nap]}).to_string(),
        None,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<&Value> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| &r["status"])
        .collect();
    // None is refused: the batch waits for a slot instead of overrunning them.
    assert_eq!(statuses, [&json!(200); 6], "{body}");
    // Six naps of 400 ms, two at a time: three rounds at least, not one.
    assert!(took >= Duration::from_millis(1150), "took {took:?}");
}

#[tokio::test]
async fn rest_batch_over_max_batch_calls_is_refused_whole() {
    let calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &["--max-batch-calls", "2"])
        .await
        .expect("router");
    let before = connector_calls(&router).await;
    let call = json!({"tool": "calculator_add", "arguments": {"a": 1, "b": 2}});
    let (status, content_type, body) = post_json(
        &api(&router, "/batch"),
        &json!({"calls": [call, call, call]}).to_string(),
        None,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_problem(&content_type, &body, 413);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("max_batch_calls = 2") && d.contains("3 calls")),
        "{body}"
    );
    assert_eq!(connector_calls(&router).await, before, "no call of it ran");
    // What is no batch is refused whole too, naming what is wrong.
    for (bad, says) in [
        (json!({"calls": [call], "extra": true}), "extra"),
        (json!({"calls": {"tool": "calculator_add"}}), "sequence"),
        (
            json!({"calls": [{"tool": "calculator_add", "args": {}}]}),
            "args",
        ),
        (json!({"calls": [{"tool": 7}]}), "string"),
        (json!([call]), "calls"),
    ] {
        let (status, content_type, body) =
            post_json(&api(&router, "/batch"), &bad.to_string(), None).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_problem(&content_type, &body, 400);
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(says)),
            "{bad}: {body}"
        );
    }
    // Two different calls: identical read-only calls in flight share one.
    let other = json!({"tool": "calculator_add", "arguments": {"a": 1, "b": 3}});
    let (status, _, body) = post_json(
        &api(&router, "/batch"),
        &json!({"calls": [call, other]}).to_string(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(connector_calls(&router).await, before + 2.0);
}

/// The server-sent events of a response: (event, data) pairs.
fn sse_events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = String::new();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.trim_start().to_owned());
                }
            }
            (!event.is_empty()).then(|| (event, data.join("\n")))
        })
        .collect()
}

async fn post_events(url: &str, body: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

#[tokio::test]
async fn rest_streaming_tool_streams_each_message_as_an_event_when_asked() {
    let (_calc, router) = open_router().await;
    let url = api(&router, "/tools/calculator_count");
    let (status, content_type, text) = post_events(&url, r#"{"to": 3, "delay_ms": 20}"#).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["message", "message", "message", "result"], "{text}");
    let second: Value = serde_json::from_str(&events[1].1).expect("JSON message");
    assert_eq!(second, json!({"n": 2}));
    let result: Value = serde_json::from_str(&events[3].1).expect("JSON result");
    assert_eq!(
        result["result"]["messages"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(result["isError"], false);

    // Without the Accept header: the collected result.
    let (status, content_type, body) = post_json(&url, r#"{"to": 3}"#, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    assert_eq!(body["result"]["messages"][2], json!({"n": 3}));

    // What is wrong before anything streamed keeps its status.
    let (status, content_type, text) = post_events(&url, r#"{"to": 0}"#).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(content_type, "application/problem+json");
    let (status, _, _) = post_events(&api(&router, "/tools/calculator_nope"), "{}").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn rest_a_client_leaving_an_event_stream_cancels_the_connectors_call() {
    let (_calc, router) = open_router().await;
    let mut response = reqwest::Client::new()
        .post(api(&router, "/tools/calculator_count"))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(r#"{"to": 1000, "delay_ms": 50}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let first = response
        .chunk()
        .await
        .expect("read")
        .expect("a first event");
    assert!(
        String::from_utf8_lossy(&first).contains("event: message"),
        "{first:?}"
    );
    drop(response);
    // The router's gRPC call ends as cancelled (status 1), long before the
    // 50 s the stream would take.
    let metrics = format!("http://{}/metrics", router.addr);
    let mut cancelled = false;
    for _ in 0..100 {
        let text = reqwest::get(&metrics)
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics");
        cancelled = text.lines().any(|l| {
            l.starts_with("rpc_client_call_duration_seconds_count")
                && l.contains("Count")
                && l.contains("rpc_grpc_status_code=\"1\"")
        });
        if cancelled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cancelled, "the connector's stream was not cancelled");
}

#[tokio::test]
async fn rest_progress_and_logs_of_a_stream_event_tool_are_events() {
    let surface = crate::surface::surface("docs", "rest-events").await;
    let url = |path: &str| format!("http://{}/api/v1{path}", surface.router.addr);
    let (status, _, text) = post_events(&url("/tools/docs_test_tool_with_progress"), "{}").await;
    assert_eq!(status, 200, "{text}");
    let events = sse_events(&text);
    let progress: Vec<Value> = events
        .iter()
        .filter(|(e, _)| e == "progress")
        .map(|(_, d)| serde_json::from_str(d).expect("JSON progress"))
        .collect();
    assert_eq!(progress.len(), 3, "{text}");
    assert_eq!(progress[1], json!({"progress": 50.0, "total": 100.0}));
    let (last, data) = events.last().expect("events");
    assert_eq!(last, "result", "{text}");
    assert!(data.contains("Progress tool completed"), "{data}");

    let (status, _, text) = post_events(&url("/tools/docs_test_tool_with_logging"), "{}").await;
    assert_eq!(status, 200, "{text}");
    let logs: Vec<Value> = sse_events(&text)
        .iter()
        .filter(|(e, _)| e == "log")
        .map(|(_, d)| serde_json::from_str(d).expect("JSON log"))
        .collect();
    assert_eq!(logs.len(), 3, "{text}");
    assert_eq!(
        logs[0],
        json!({"level": "info", "logger": "conformance", "data": "Tool execution started"})
    );
}

#[tokio::test]
async fn rest_reads_resources_and_gets_prompts_through_the_pipeline() {
    let surface = crate::surface::surface("docs", "rest-surface").await;
    let url = |path: &str| format!("http://{}/api/v1{path}", surface.router.addr);
    let get = |path: String| async move { answer(reqwest::get(path).await.expect("GET")).await };

    let (status, _, body) = get(url("/resources?uri=docs%2Btest%3A%2F%2Fstatic-text")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contents"][0]["uri"], "docs+test://static-text");
    assert!(body["contents"][0]["text"].is_string(), "{body}");
    // A `+` written as is stays a `+`.
    let (status, _, again) = get(url("/resources?uri=docs+test://static-text")).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, body);

    let (status, content_type, body) = get(url("/resources?uri=docs%2Btest%3A%2F%2Fnope")).await;
    assert_eq!(status, 404, "{body}");
    assert_problem(&content_type, &body, 404);
    let (status, content_type, body) = get(url("/resources")).await;
    assert_eq!(status, 400, "{body}");
    assert_problem(&content_type, &body, 400);
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("uri")),
        "{body}"
    );

    let (status, _, body) = get(url(
        "/prompts/docs_test_prompt_with_arguments?arg1=one&arg2=two%20words",
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(text, "Prompt with arguments: arg1='one', arg2='two words'");
    assert_eq!(body["messages"][0]["role"], "user");

    let (status, content_type, body) =
        get(url("/prompts/docs_test_prompt_with_arguments?arg1=one")).await;
    assert_eq!(status, 400, "{body}");
    assert_problem(&content_type, &body, 400);
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("arg2")),
        "{body}"
    );
    let (status, _, body) = get(url(
        "/prompts/docs_test_prompt_with_arguments?arg1=a&arg1=b&arg2=c",
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, unknown) = get(url("/prompts/docs_nope")).await;
    assert_eq!(status, 404, "{unknown}");
    assert_eq!(unknown["code"], "unknown_prompt");
    let (status, _, odd) = get(url("/prompts/%E2%9E%95")).await;
    assert_eq!(status, 404, "{odd}");
}

#[tokio::test]
async fn rest_bodies_count_against_the_body_budget_shared_with_mcp() {
    use tokio::io::AsyncWriteExt as _;
    let calc = calculator().await;
    let router = HttpRouter::start(
        &[spec("calculator", &calc)],
        &[
            "--max-body-bytes",
            "1000",
            "--max-body-bytes-in-flight",
            "1000",
        ],
    )
    .await
    .expect("router");
    // An MCP client holds 900 bytes of the budget with a body it has not
    // finished sending.
    let mut slow = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n",
        router.addr
    );
    slow.write_all(head.as_bytes()).await.expect("write head");
    slow.write_all(&[b' '; 900]).await.expect("write body");
    slow.flush().await.expect("flush");
    let add = api(&router, "/tools/calculator_add");
    let body = format!(r#"{{"a": 1, "b": 2{}}}"#, " ".repeat(200));
    let mut refused = None;
    for _ in 0..50 {
        let (status, content_type, problem) = post_json(&add, &body, None).await;
        if status == 503 {
            refused = Some((content_type, problem));
            break;
        }
        // The slow body may not have reached the router yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (content_type, problem) = refused.expect("a REST body over the shared budget is refused");
    assert_problem(&content_type, &problem, 503);
    assert_eq!(problem["code"], "busy");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("max_body_bytes_in_flight = 1000")),
        "{problem}"
    );
    // Once the MCP body is gone, its bytes are given back.
    drop(slow);
    let mut answered = 0;
    for _ in 0..50 {
        let (status, _, _) = post_json(&add, &body, None).await;
        if status == 200 {
            answered = status;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, 200);
}

#[tokio::test]
async fn rest_openapi_document_is_rebuilt_only_when_the_catalog_changes() {
    let mut calc = calculator().await;
    let router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let url = api(&router, "/openapi.json");
    let etag_of = |url: String| async move {
        let response = reqwest::get(url).await.expect("GET");
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.expect("body");
        (etag, body)
    };
    let (first, body) = etag_of(url.clone()).await;
    let (second, again) = etag_of(url.clone()).await;
    assert_eq!(first, second);
    assert_eq!(body, again, "the same bytes while the catalog is unchanged");
    assert!(!body.contains("calculator_power"));
    // The connector comes back with a method added: a new document.
    restart(&mut calc, &[("TEST_PROTO_VERSION", "2")]).await;
    let mut changed = None;
    for _ in 0..100 {
        let (etag, body) = etag_of(url.clone()).await;
        if body.contains("/tools/calculator_power") {
            changed = Some(etag);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let changed = changed.expect("the document shows the new tool");
    assert_ne!(changed, first);
    let text = reqwest::get(&url)
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    validate(&text, "upgraded");
}
