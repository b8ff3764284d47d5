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
