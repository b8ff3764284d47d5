//! The router's security layer end to end: a real `switchboard` process with
//! `--auth-issuer` pointing at a real OpenID provider (`oauth2-mock-server`),
//! a policy shaped like the README's example over the calculator connector
//! (served as `calc`, so its tools are `calc_*`), and rmcp's Streamable HTTP
//! client sending the bearer token. The router's stderr (`LOG_FORMAT=json`) is
//! captured to check the audit lines. Skipped loudly when the provider is not
//! installed (an error under `CI=true`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use integration_tests::oidc::{self, OpenIdProvider, TokenSpec};
use integration_tests::process::{Connector, binary, free_port, http_ok, scratch_dir, wait_until};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ErrorData};
use rmcp::service::ServiceError;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::support::*;

/// The README's example policy, over the calculator's tools: `calc_add` and
/// `calc_echo` need `calc:read`; `calc_divide` is for analysts with `db:read`.
const POLICY: &str = r#"
[[allow]]
tools = ["calc_add", "calc_echo"]
scopes = ["calc:read"]
[[allow]]
tools = ["calc_divide"]
scopes = ["db:read"]
when = '"analysts" in jwt.groups'
"#;

/// A router process with auth on, its stderr going to a file.
struct SecuredRouter {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
    log: PathBuf,
}

impl SecuredRouter {
    async fn start(provider: &OpenIdProvider, connector: &Connector, extra: &[&str]) -> Self {
        let spec = format!("calc={}", connector.url());
        Self::start_with(provider, &spec, POLICY, extra).await
    }

    /// A router in front of the connector `spec` (`name=url`) under `policy`.
    async fn start_with(
        provider: &OpenIdProvider,
        spec: &str,
        policy: &str,
        extra: &[&str],
    ) -> Self {
        let port = free_port().expect("port");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let dir = scratch_dir("auth-http");
        let text = policy;
        let policy = dir.join(format!("policy-{port}.toml"));
        std::fs::write(&policy, text).expect("write policy");
        let log = dir.join(format!("router-{port}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = tokio::process::Command::new(binary("switchboard").expect("switchboard"))
            .args(["--listen", &addr.to_string()])
            .args(["--connector", spec])
            .args(["--auth-issuer", &provider.issuer])
            .args(["--public-url", &format!("http://{addr}")])
            .args(["--policy", &policy.display().to_string()])
            .args(extra)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,audit=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
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
        Self { child, addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn resource(&self) -> String {
        self.url("/mcp")
    }

    fn metadata_url(&self) -> String {
        self.url("/.well-known/oauth-protected-resource/mcp")
    }

    /// The audit lines written so far (JSON objects with target `audit`).
    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .collect()
    }
}

impl Drop for SecuredRouter {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A token for `sub` with `scope` and extra claims, meant for the router.
fn token(
    provider: &OpenIdProvider,
    router: &SecuredRouter,
    sub: &str,
    scope: &str,
    extra: Value,
) -> String {
    let mut claims = json!({"sub": sub, "aud": router.resource(), "scope": scope});
    if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        c.extend(extra);
    }
    provider
        .mint(&TokenSpec {
            claims,
            ..TokenSpec::default()
        })
        .expect("mint")
}

async fn client_with(router: &SecuredRouter, token: &str) -> Client {
    let config =
        StreamableHttpClientTransportConfig::with_uri(router.resource()).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    Recorder::new()
        .serve(transport)
        .await
        .expect("MCP initialize with a bearer token")
}

async fn setup() -> Option<(OpenIdProvider, Connector, SecuredRouter)> {
    let provider = oidc::start().expect("provider")?;
    let calc = calculator().await;
    let router = SecuredRouter::start(&provider, &calc, &[]).await;
    Some((provider, calc, router))
}

async fn post_initialize(router: &SecuredRouter, bearer: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(router.resource())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});
    request
        .body(body.to_string())
        .send()
        .await
        .expect("POST /mcp")
}

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The protocol error of a call that is refused at the JSON-RPC level.
async fn call_error(client: &Client, tool: &str, arguments: Value) -> ErrorData {
    match client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments)))
        .await
    {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("{tool}: expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_token_mcp_is_401_with_the_challenge_and_probes_stay_open() {
    let Some((_provider, _calc, router)) = setup().await else {
        return;
    };
    let response = post_initialize(&router, None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenge(&response),
        format!(
            "Bearer resource_metadata=\"{}\", scope=\"calc:read db:read\"",
            router.metadata_url()
        )
    );
    let get = reqwest::Client::new()
        .get(router.resource())
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /mcp");
    assert_eq!(get.status(), 401, "the SSE stream needs a token too");
    for probe in ["/healthz", "/readyz"] {
        assert!(
            http_ok(&router.url(probe)).await,
            "{probe} answers without a token"
        );
    }
    let audit = router.audit_lines();
    assert!(
        audit.iter().any(|l| l["outcome"] == "unauthenticated"
            && l["principal"] == ""
            && l["front_door"] == "http"),
        "a 401 is audited: {audit:?}"
    );
}

#[tokio::test]
async fn protected_resource_metadata_is_served_at_both_well_known_paths() {
    let Some((provider, _calc, router)) = setup().await else {
        return;
    };
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = reqwest::get(router.url(path)).await.expect("GET metadata");
        assert_eq!(response.status(), 200, "{path} without a token");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body,
            json!({
                "resource": router.resource(),
                "authorization_servers": [provider.issuer],
                "scopes_supported": ["calc:read", "db:read"],
                "bearer_methods_supported": ["header"],
            }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_401_invalid_token_and_a_valid_one_calls_a_tool() {
    let Some((provider, _calc, router)) = setup().await else {
        return;
    };
    let expired = provider
        .mint(&TokenSpec {
            claims: json!({"sub": "alice", "aud": router.resource(), "scope": "calc:read"}),
            expires_in: Some(-3600),
            ..TokenSpec::default()
        })
        .expect("mint");
    let response = post_initialize(&router, Some(&expired)).await;
    assert_eq!(response.status(), 401);
    let header = challenge(&response);
    assert!(
        header.starts_with("Bearer error=\"invalid_token\""),
        "{header}"
    );
    assert!(
        response
            .text()
            .await
            .unwrap_or_default()
            .contains("expired"),
        "the body says why"
    );

    let valid = token(&provider, &router, "alice", "calc:read", json!({}));
    let client = client_with(&router, &valid).await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"calc_add".to_owned()), "{names:?}");
    let result = call(&client, "calc_add", json!({"a": 40, "b": 2})).await;
    assert!(!is_error(&result), "{result:?}");
    assert!(text(&result).contains("42"), "{}", text(&result));

    let audit = router.audit_lines();
    let line = audit
        .iter()
        .find(|l| l["tool"] == "calc_add")
        .unwrap_or_else(|| panic!("the call is audited: {audit:?}"));
    assert_eq!(line["principal"], "alice");
    assert_eq!(line["front_door"], "http");
    assert_eq!(line["connector"], "calc");
    assert_eq!(line["outcome"], "ok");
    assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    assert!(line["duration_ms"].is_number(), "{line}");
    assert!(
        line.get("arguments").is_none(),
        "arguments are not logged without --audit-args: {line}"
    );
    let log = std::fs::read_to_string(&router.log).unwrap_or_default();
    assert!(!log.contains(&valid), "the token never reaches the log");
}

#[tokio::test]
async fn the_policy_lists_steps_up_and_hides_per_principal() {
    let Some((provider, _calc, router)) = setup().await else {
        return;
    };
    // No groups: the add/echo rule only; divide is hidden.
    let bob = client_with(
        &router,
        &token(&provider, &router, "bob", "calc:read", json!({})),
    )
    .await;
    let mut listed = tool_names(&bob).await;
    listed.sort();
    assert_eq!(listed, ["calc_add", "calc_echo"]);
    let hidden = call_error(&bob, "calc_divide", json!({"dividend": 7, "divisor": 2})).await;
    let unknown = call_error(&bob, "calc_nope", json!({"dividend": 7, "divisor": 2})).await;
    assert_eq!(hidden.code, unknown.code);
    assert_eq!(
        hidden.message.replace("calc_divide", "NAME"),
        unknown.message.replace("calc_nope", "NAME"),
        "a hidden tool is answered exactly as an unknown one"
    );
    assert_eq!(hidden.data, unknown.data);

    // An analyst without db:read sees divide, and is told which scope to get.
    let carol_token = token(
        &provider,
        &router,
        "carol",
        "calc:read",
        json!({"groups": ["analysts"]}),
    );
    let carol = client_with(&router, &carol_token).await;
    let mut listed = tool_names(&carol).await;
    listed.sort();
    assert_eq!(listed, ["calc_add", "calc_divide", "calc_echo"]);
    let response = post_call(
        &router,
        &carol_token,
        "calc_divide",
        json!({"dividend": 7, "divisor": 2}),
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        challenge(&response),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"db:read\", resource_metadata=\"{}\"",
            router.metadata_url()
        )
    );

    // With db:read the same call goes through.
    let alice = client_with(
        &router,
        &token(
            &provider,
            &router,
            "alice",
            "calc:read db:read",
            json!({"groups": ["analysts"]}),
        ),
    )
    .await;
    let result = call(&alice, "calc_divide", json!({"dividend": 7, "divisor": 2})).await;
    assert!(!is_error(&result), "{result:?}");

    let audit = router.audit_lines();
    let has = |sub: &str, tool: &str, outcome: &str| {
        audit
            .iter()
            .any(|l| l["principal"] == sub && l["tool"] == tool && l["outcome"] == outcome)
    };
    assert!(has("bob", "calc_divide", "denied"), "{audit:?}");
    assert!(has("carol", "calc_divide", "denied"), "{audit:?}");
    assert!(has("alice", "calc_divide", "ok"), "{audit:?}");
}

#[tokio::test]
async fn audit_args_logs_arguments_with_secrets_redacted() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let calc = calculator().await;
    let router = SecuredRouter::start(&provider, &calc, &["--audit-args"]).await;
    let client = client_with(
        &router,
        &token(&provider, &router, "dana", "calc:read", json!({})),
    )
    .await;
    let result = call(&client, "calc_echo", json!({"message": "hello"})).await;
    assert!(!is_error(&result), "{result:?}");
    let audit = router.audit_lines();
    let line = audit
        .iter()
        .find(|l| l["tool"] == "calc_echo" && l["principal"] == "dana")
        .unwrap_or_else(|| panic!("audited: {audit:?}"));
    assert_eq!(line["arguments"], r#"{"message":"hello"}"#, "{line}");

    // A secret among the arguments never reaches the log, whatever the call's fate.
    let _ = client
        .call_tool(CallToolRequestParams::new("calc_echo").with_arguments(args(
            json!({"message": "hi", "api_token": "hunter2-secret"}),
        )))
        .await;
    let audit = router.audit_lines();
    let line = audit
        .iter()
        .filter(|l| l["tool"] == "calc_echo")
        .nth(1)
        .unwrap_or_else(|| panic!("second call audited: {audit:?}"));
    assert!(
        line["arguments"]
            .as_str()
            .is_some_and(|a| a.contains("[redacted]")),
        "{line}"
    );
    let log = std::fs::read_to_string(&router.log).unwrap_or_default();
    assert!(!log.contains("hunter2-secret"), "the secret is not logged");

    // Refused at the front door (an analyst without db:read): the line shows
    // the arguments too, redacted.
    let erin = token(
        &provider,
        &router,
        "erin",
        "calc:read",
        json!({"groups": ["analysts"]}),
    );
    let response = post_call(
        &router,
        &erin,
        "calc_divide",
        json!({"dividend": 7, "divisor": 2, "password": "front-door-secret"}),
    )
    .await;
    assert_eq!(response.status(), 403);
    let audit = router.audit_lines();
    let line = audit
        .iter()
        .find(|l| l["principal"] == "erin")
        .unwrap_or_else(|| panic!("the refusal audited: {audit:?}"));
    assert_eq!(line["outcome"], "denied", "{line}");
    assert_eq!(
        line["arguments"], r#"{"dividend":7,"divisor":2,"password":"[redacted]"}"#,
        "{line}"
    );
    let log = std::fs::read_to_string(&router.log).unwrap_or_default();
    assert!(
        !log.contains("front-door-secret"),
        "the secret is not logged"
    );
}

/// One stateless (2026-07-28) `tools/call` POSTed with `bearer`.
async fn post_call(
    router: &SecuredRouter,
    bearer: &str,
    name: &str,
    arguments: Value,
) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": name, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    reqwest::Client::new()
        .post(router.resource())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(bearer)
        .body(body.to_string())
        .send()
        .await
        .expect("POST tools/call")
}

/// A policy over the echo's arguments: loud echoes need `calc:loud`, and
/// user 7 is not served at all.
const ARGS_POLICY: &str = r#"
[[allow]]
tools = ["calc_echo"]
scopes = ["calc:read"]
when = '(!has(args.volume) || args.volume != "VOLUME_LOUD") && (!has(args.user_id) || args.user_id != 7)'
[[allow]]
tools = ["calc_echo"]
scopes = ["calc:read", "calc:loud"]
when = 'has(args.volume) && args.volume == "VOLUME_LOUD" && (!has(args.user_id) || args.user_id != 7)'
"#;

#[tokio::test]
async fn the_policy_reads_arguments_as_the_connector_will_receive_them() {
    // The transcoder accepts a field by its JSON name, an enum by its number
    // or short name, an int64 as a string or a whole float. A policy reading
    // `args` as the client spelled them would let each spelling through a
    // rule written against the schema's names and values; the router makes
    // the arguments canonical before the policy reads them, at the front door
    // (its 403 step-up) and in the call pipeline (REST here) alike.
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let calc = calculator().await;
    let spec = format!("calc={}", calc.url());
    let router = SecuredRouter::start_with(&provider, &spec, ARGS_POLICY, &["--audit-args"]).await;
    let reader = token(&provider, &router, "rita", "calc:read", json!({}));
    let loud = token(&provider, &router, "lou", "calc:read calc:loud", json!({}));
    let rest = |bearer: &str, arguments: &Value| {
        reqwest::Client::new()
            .post(router.url("/api/v1/tools/calc_echo"))
            .header("content-type", "application/json")
            .bearer_auth(bearer)
            .body(arguments.to_string())
            .send()
    };

    // Loud, however spelled: a reader is told to step up, on both paths.
    for volume in [json!("VOLUME_LOUD"), json!("LOUD"), json!("loud"), json!(2)] {
        let arguments = json!({"message": "hi", "volume": volume});
        let response = post_call(&router, &reader, "calc_echo", arguments.clone()).await;
        assert_eq!(response.status(), 403, "MCP, volume {volume}");
        assert!(
            challenge(&response).contains("calc:loud"),
            "MCP, volume {volume}: {}",
            challenge(&response)
        );
        let response = rest(&reader, &arguments).await.expect("REST call");
        assert_eq!(response.status(), 403, "REST, volume {volume}");
        // With the scope, it is served loud: what the policy read is what ran.
        let response = rest(&loud, &arguments).await.expect("REST call");
        assert_eq!(response.status(), 200, "REST, volume {volume}, calc:loud");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["result"]["message"], "HI", "{body}");
    }

    // User 7, however spelled, is served to no one; user 8 is.
    for user in [
        json!({"user_id": 7}),
        json!({"userId": 7}),
        json!({"user_id": "7"}),
        json!({"userId": "+7"}),
        json!({"user_id": 7.0}),
    ] {
        let mut arguments = json!({"message": "hi"});
        if let (Some(a), Value::Object(user)) = (arguments.as_object_mut(), user.clone()) {
            a.extend(user);
        }
        let params = json!({"name": "calc_echo", "arguments": arguments});
        let answer = stateless_call_as(&router, &loud, 11, &params).await;
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("calc_echo")),
            "MCP, {user}: {answer}"
        );
        let response = rest(&loud, &arguments).await.expect("REST call");
        assert_eq!(response.status(), 404, "REST, {user}");
    }
    let arguments = json!({"message": "hi", "userId": "8", "volume": 1});
    let params = json!({"name": "calc_echo", "arguments": arguments});
    let answer = stateless_call_as(&router, &reader, 12, &params).await;
    assert_eq!(
        answer["result"]["structuredContent"]["recipient"], "user #8",
        "{answer}"
    );
    let response = rest(&reader, &arguments).await.expect("REST call");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["result"]["recipient"], "user #8", "{body}");
    assert_eq!(body["result"]["message"], "hi", "{body}");

    // The audit lines show the arguments as they were decided on.
    let audit = router.audit_lines();
    let arguments_of = |sub: &str, outcome: &str| -> Vec<String> {
        audit
            .iter()
            .filter(|l| l["principal"] == sub && l["outcome"] == outcome)
            .filter_map(|l| l["arguments"].as_str().map(str::to_owned))
            .collect()
    };
    let refused = arguments_of("lou", "denied");
    assert_eq!(refused.len(), 10, "{audit:?}");
    // Each line says which front door the call came through: MCP over HTTP
    // (refused at its front door or in the pipeline) or REST.
    let through = |sub: &str, door: &str| {
        audit
            .iter()
            .filter(|l| {
                l["principal"] == sub && l["outcome"] == "denied" && l["front_door"] == door
            })
            .count()
    };
    assert_eq!(
        (through("lou", "http"), through("lou", "rest")),
        (5, 5),
        "{audit:?}"
    );
    assert_eq!(
        (through("rita", "http"), through("rita", "rest")),
        (4, 4),
        "{audit:?}"
    );
    assert!(
        refused
            .iter()
            .all(|a| a.contains(r#""user_id":7"#) && !a.contains("userId")),
        "{refused:?}"
    );
    let served = arguments_of("rita", "ok");
    assert!(
        served
            .iter()
            .any(|a| a.contains(r#""user_id":8"#) && a.contains(r#""volume":"VOLUME_NORMAL""#)),
        "{served:?}"
    );
}

#[tokio::test]
async fn a_resource_policy_glob_cannot_be_walked_out_of() {
    // The policy matches resource URIs as given, `*` spanning `/`; the
    // code-analysis connector reads a URI only when it spells the file's own
    // path, so `src/../keys/...` cannot reach what `src/*` does not allow.
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let root = scratch_dir("resource-policy").join(format!("root-{}", free_port().expect("port")));
    std::fs::create_dir_all(root.join("src")).expect("mkdir src");
    std::fs::create_dir_all(root.join("keys")).expect("mkdir keys");
    std::fs::write(root.join("src/app.py"), "print('hi')\n").expect("write");
    std::fs::write(root.join("keys/deploy.pem"), "PRIVATE KEY\n").expect("write");
    let root_text = root.display().to_string();
    let connector = Connector::start(
        "code-analysis-connector",
        0,
        &[("CODE_ROOT", root_text.as_str())],
    )
    .await
    .expect("start code-analysis connector");
    let spec = format!("code={}", connector.url());
    let policy = "[[allow]]\ntools = [\"code+file:///src/*\"]\n";
    let router = SecuredRouter::start_with(&provider, &spec, policy, &[]).await;
    let bearer = token(&provider, &router, "sam", "", json!({}));
    let client = client_with(&router, &bearer).await;
    let read = |uri: &'static str| {
        let client = &client;
        async move {
            client
                .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
                .await
        }
    };
    let allowed = read("code+file:///src/app.py")
        .await
        .expect("src/ is allowed");
    assert!(format!("{allowed:?}").contains("print('hi')"));
    for uri in [
        "code+file:///src/../keys/deploy.pem",
        "code+file:///src/%2e%2e/keys/deploy.pem",
        "code+file:///src/x/../../keys/deploy.pem",
    ] {
        let outcome = read(uri).await;
        assert!(
            !format!("{outcome:?}").contains("PRIVATE KEY"),
            "{uri} read the key: {outcome:?}"
        );
        assert!(outcome.is_err(), "{uri}: {outcome:?}");
    }
    let denied = read("code+file:///keys/deploy.pem").await;
    assert!(denied.is_err(), "keys/ is not allowed: {denied:?}");
}

fn run_policy(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(binary("switchboard").expect("switchboard"))
        .arg("policy")
        .args(args)
        .output()
        .expect("run switchboard policy");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn policy_check_and_explain_through_the_binary() {
    let dir = scratch_dir("policy-cli");
    let good = dir.join("policy.toml");
    std::fs::write(&good, POLICY).expect("write");
    let (ok, out, _) = run_policy(&["check", &good.display().to_string()]);
    assert!(ok, "{out}");
    assert!(out.contains("is valid: 2 rules"), "{out}");
    assert!(out.contains("scopes_supported: calc:read db:read"), "{out}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[allow]]\ntools = [\"x\"]\nwhen = 'jwt.groups +'\n").expect("write");
    let (ok, _, err) = run_policy(&["check", &bad.display().to_string()]);
    assert!(!ok, "an invalid policy exits non-zero");
    assert!(err.contains("policy rule 1"), "names the rule: {err}");

    let claims = dir.join("carol.json");
    std::fs::write(
        &claims,
        json!({"sub": "carol", "scope": "calc:read", "groups": ["analysts"]}).to_string(),
    )
    .expect("write");
    let (good, claims) = (good.display().to_string(), claims.display().to_string());
    let explain_with = |tool: &str, extra: &[&str]| {
        let mut args = vec![
            "explain", "--policy", &good, "--claims", &claims, "--tool", tool,
        ];
        args.extend_from_slice(extra);
        run_policy(&args)
    };
    let explain = |tool: &str| explain_with(tool, &[]);
    let (ok, out, _) = explain("calc_add");
    assert!(ok, "{out}");
    assert!(out.contains("decision: allow (rule 1)"), "{out}");
    let (ok, out, _) = explain("calc_divide");
    assert!(!ok, "nothing allows it with these scopes");
    assert!(out.contains("insufficient_scope"), "{out}");
    assert!(out.contains("db:read"), "{out}");
    // A tool's arguments are an object (`args` in a condition): anything else
    // is refused, saying so.
    let (ok, _, err) = explain_with("calc_add", &["--args", "[1, 2]"]);
    assert!(!ok);
    assert!(err.contains("--args is not a JSON object"), "{err}");
}

#[tokio::test]
async fn a_policy_that_does_not_check_stops_start_up_naming_the_rule() {
    let dir = scratch_dir("policy-startup");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[allow]]\ntools = []\n").expect("write");
    let output = tokio::process::Command::new(binary("switchboard").expect("switchboard"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--policy",
            &bad.display().to_string(),
        ])
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("policy rule 1"), "{err}");
    assert!(err.contains("`tools` is empty"), "{err}");
}

/// Resources and prompts of the conformance connector (served as `conf`):
/// one resource and one prompt open to any token, one prompt needing a scope.
const SURFACE_POLICY: &str = r#"
[[allow]]
tools = ["conf+test://static-text", "conf_test_simple_prompt"]
[[allow]]
tools = ["conf_test_prompt_with_arguments"]
scopes = ["prompts:extra"]
"#;

#[tokio::test]
async fn the_policy_governs_resources_and_prompts_like_tools() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let connector = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start conformance-connector");
    let spec = format!("conf={}", connector.url());
    let router = SecuredRouter::start_with(&provider, &spec, SURFACE_POLICY, &[]).await;
    let erin_token = token(&provider, &router, "erin", "", json!({}));
    let erin = client_with(&router, &erin_token).await;

    let resources: Vec<String> = erin
        .list_resources(None)
        .await
        .expect("resources/list")
        .resources
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert_eq!(resources, ["conf+test://static-text"]);
    let templates = erin
        .list_resource_templates(None)
        .await
        .expect("templates")
        .resource_templates;
    assert!(
        templates.is_empty(),
        "no rule names a template: {templates:?}"
    );
    let mut prompts: Vec<String> = erin
        .list_prompts(None)
        .await
        .expect("prompts/list")
        .prompts
        .into_iter()
        .map(|p| p.name)
        .collect();
    prompts.sort();
    assert_eq!(
        prompts,
        ["conf_test_prompt_with_arguments", "conf_test_simple_prompt"]
    );

    let read = erin
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "conf+test://static-text",
        ))
        .await
        .expect("an allowed resource is read");
    assert!(!read.contents.is_empty());
    let read_error = |uri: &'static str| {
        let erin = &erin;
        async move {
            match erin
                .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
                .await
            {
                Err(ServiceError::McpError(e)) => e,
                other => panic!("{uri}: expected an error, got {other:?}"),
            }
        }
    };
    let hidden = read_error("conf+test://static-binary").await;
    let unknown = read_error("conf+test://nothing-here").await;
    assert_eq!(hidden.code, unknown.code);
    assert_eq!(
        hidden.message.replace("conf+test://static-binary", "URI"),
        unknown.message.replace("conf+test://nothing-here", "URI"),
    );
    assert_eq!(
        hidden
            .data
            .map(|d| d.to_string().replace("conf+test://static-binary", "URI")),
        unknown
            .data
            .map(|d| d.to_string().replace("conf+test://nothing-here", "URI")),
    );

    let get_error = |name: &'static str| {
        let erin = &erin;
        async move {
            match erin
                .get_prompt(rmcp::model::GetPromptRequestParams::new(name))
                .await
            {
                Err(ServiceError::McpError(e)) => e,
                other => panic!("{name}: expected an error, got {other:?}"),
            }
        }
    };
    let hidden = get_error("conf_test_prompt_with_image").await;
    let unknown = get_error("conf_no_such_prompt").await;
    assert_eq!(hidden.code, unknown.code);
    assert_eq!(
        hidden
            .message
            .replace("conf_test_prompt_with_image", "NAME"),
        unknown.message.replace("conf_no_such_prompt", "NAME"),
    );

    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "prompts/get",
        "params": {"name": "conf_test_prompt_with_arguments", "arguments": {"arg1": "a", "arg2": "b"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let response = reqwest::Client::new()
        .post(router.resource())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(&erin_token)
        .body(body.to_string())
        .send()
        .await
        .expect("POST prompts/get");
    assert_eq!(response.status(), 403);
    assert!(
        challenge(&response).contains("scope=\"prompts:extra\""),
        "{}",
        challenge(&response)
    );

    let audit = router.audit_lines();
    let has = |tool: &str, outcome: &str| {
        audit
            .iter()
            .any(|l| l["principal"] == "erin" && l["tool"] == tool && l["outcome"] == outcome)
    };
    assert!(has("conf+test://static-text", "ok"), "{audit:?}");
    assert!(has("conf+test://static-binary", "denied"), "{audit:?}");
    assert!(has("conf_test_prompt_with_image", "denied"), "{audit:?}");
    assert!(
        has("conf_test_prompt_with_arguments", "denied"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn empty_security_variables_mean_auth_off_and_the_router_serves_as_before() {
    let calc = calculator().await;
    let port = free_port().expect("port");
    let addr = format!("127.0.0.1:{port}");
    let _router = tokio::process::Command::new(binary("switchboard").expect("switchboard"))
        .args([
            "--listen",
            &addr,
            "--connector",
            &format!("calc={}", calc.url()),
        ])
        .env("RUST_LOG", "warn")
        .envs(
            [
                "SWITCHBOARD_AUTH_ISSUER",
                "SWITCHBOARD_PUBLIC_URL",
                "SWITCHBOARD_AUTH_AUDIENCE",
                "SWITCHBOARD_POLICY",
                "SWITCHBOARD_AUDIT_ARGS",
            ]
            .map(|k| (k, "")),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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
    let (client, _) = http_client_at(&format!("http://{addr}/mcp")).await;
    let result = call(&client, "calc_add", json!({"a": 1, "b": 2})).await;
    assert!(
        !is_error(&result),
        "no token needed without an issuer: {result:?}"
    );
    let metadata = reqwest::get(format!(
        "http://{addr}/.well-known/oauth-protected-resource/mcp"
    ))
    .await
    .expect("GET");
    assert_eq!(metadata.status(), 404, "no metadata without an issuer");
}

#[tokio::test]
async fn a_session_answers_only_the_principal_that_opened_it() {
    let Some((provider, _calc, router)) = setup().await else {
        return;
    };
    let alice = token(&provider, &router, "alice", "calc:read", json!({}));
    let mallory = token(&provider, &router, "mallory", "calc:read", json!({}));
    let opened = post_initialize(&router, Some(&alice)).await;
    assert_eq!(opened.status(), 200);
    let session = opened
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    drop(opened);
    let stream = |bearer: String| {
        let (url, session) = (router.resource(), session.clone());
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
        }
    };
    assert_eq!(
        stream(mallory.clone()).await,
        404,
        "another user's valid token cannot attach to the session"
    );
    let delete = reqwest::Client::new()
        .delete(router.resource())
        .header("mcp-session-id", &session)
        .bearer_auth(&mallory)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete.status(), 404, "nor close it");
    assert_eq!(stream(alice.clone()).await, 200, "its owner still can");
}

#[tokio::test]
async fn stateless_requests_are_authorized_with_their_own_token() {
    let Some((provider, _calc, router)) = setup().await else {
        return;
    };
    let bob = token(&provider, &router, "bob", "calc:read", json!({}));
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    let post = |method: &str, params: Value| {
        let mut params = params;
        params["_meta"] = meta.clone();
        let body = json!({"jsonrpc": "2.0", "id": "s-1", "method": method, "params": params});
        let mut request = reqwest::Client::new()
            .post(router.resource())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .bearer_auth(&bob)
            .body(body.to_string());
        if let Some(name) = params["name"].as_str() {
            request = request.header("mcp-name", name);
        }
        async move {
            let response = request.send().await.expect("POST");
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            assert_eq!(status, 200, "{text}");
            let json = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or(&text)
                .to_owned();
            serde_json::from_str::<Value>(&json).unwrap_or_else(|e| panic!("{e}: {text}"))
        }
    };
    let listed = post("tools/list", json!({})).await;
    let mut names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["calc_add", "calc_echo"], "{listed}");
    let called = post(
        "tools/call",
        json!({"name": "calc_add", "arguments": {"a": 2, "b": 3}}),
    )
    .await;
    assert_ne!(called["result"]["isError"], true, "{called}");
    assert!(called["result"].to_string().contains('5'), "{called}");
    let hidden = post(
        "tools/call",
        json!({"name": "calc_divide", "arguments": {"dividend": 1, "divisor": 1}}),
    )
    .await;
    assert!(
        hidden["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("unknown tool \"calc_divide\"")),
        "{hidden}"
    );
}

/// The metadata of every call the recording calculator received.
type Received = std::sync::Arc<std::sync::Mutex<Vec<tonic::metadata::MetadataMap>>>;

/// The calculator, in process, recording the metadata of each call.
async fn recording_calculator() -> (String, Received, tokio::task::JoinHandle<()>) {
    use integration_tests::calculator::CalculatorService;
    use integration_tests::pb::calculator_server::CalculatorServer;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let received = Received::default();
    let record = received.clone();
    let service = CalculatorServer::with_interceptor(
        CalculatorService::default(),
        move |request: tonic::Request<()>| {
            if let Ok(mut all) = record.lock() {
                all.push(request.metadata().clone());
            }
            Ok(request)
        },
    );
    let server =
        connector_kit::ConnectorServer::new("calculator", integration_tests::CALCULATOR_V1)
            .add_service(service);
    let health = server.health();
    let task = tokio::spawn(async move {
        health.set_serving().await;
        let _ = server.serve(listener, std::future::pending()).await;
    });
    (url, received, task)
}

#[tokio::test]
async fn connectors_learn_the_principal_and_never_see_the_token() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let (url, received, server) = recording_calculator().await;
    let dir = scratch_dir("forward-claims");
    let config = dir.join("router.toml");
    std::fs::write(&config, "[auth]\nforward_claims = [\"email\"]\n").expect("write");
    let router = SecuredRouter::start_with(
        &provider,
        &format!("calc={url}"),
        POLICY,
        &["--config", &config.display().to_string()],
    )
    .await;
    let bearer = token(
        &provider,
        &router,
        "alice",
        "calc:read",
        json!({"email": "alice@example.com"}),
    );
    let client = client_with(&router, &bearer).await;
    let result = call(&client, "calc_add", json!({"a": 1, "b": 1})).await;
    assert!(!is_error(&result), "{result:?}");
    let calls = received.lock().map(|r| r.clone()).unwrap_or_default();
    let last = calls.last().expect("the connector got the call");
    let get = |k: &str| last.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(get("switchboard-principal-sub").as_deref(), Some("alice"));
    assert_eq!(
        get("switchboard-principal-email").as_deref(),
        Some("alice@example.com")
    );
    assert!(last.get("authorization").is_none(), "{last:?}");
    assert!(
        !format!("{last:?}").contains(&bearer),
        "the token is in no metadata value"
    );
    server.abort();
}

/// A connector serving one resource and one prompt (and the calculator, so it
/// has a tool), in process, recording the metadata of every request.
mod docs {
    use switchboard_proto::mcp::v1 as pb;
    use tonic::{Request, Response, Status};

    use super::Received;

    #[derive(Clone)]
    pub struct Docs(pub Received);

    impl Docs {
        fn record<T>(&self, request: &Request<T>) {
            if let Ok(mut all) = self.0.lock() {
                all.push(request.metadata().clone());
            }
        }
    }

    #[tonic::async_trait]
    impl pb::resources_server::Resources for Docs {
        async fn list_resources(
            &self,
            _request: Request<pb::ListResourcesRequest>,
        ) -> Result<Response<pb::ListResourcesResponse>, Status> {
            Ok(Response::new(pb::ListResourcesResponse::default()))
        }

        async fn list_resource_templates(
            &self,
            _request: Request<pb::ListResourceTemplatesRequest>,
        ) -> Result<Response<pb::ListResourceTemplatesResponse>, Status> {
            Ok(Response::new(pb::ListResourceTemplatesResponse::default()))
        }

        async fn read_resource(
            &self,
            request: Request<pb::ReadResourceRequest>,
        ) -> Result<Response<pb::ReadResourceResponse>, Status> {
            self.record(&request);
            Ok(Response::new(pb::ReadResourceResponse {
                contents: vec![pb::ResourceContents {
                    uri: request.into_inner().uri,
                    mime_type: "text/plain".into(),
                    body: Some(pb::resource_contents::Body::Text("the handbook".into())),
                }],
                ttl_seconds: 0,
            }))
        }

        type WatchResourceStream =
            tokio_stream::wrappers::ReceiverStream<Result<pb::ResourceUpdated, Status>>;

        async fn watch_resource(
            &self,
            request: Request<pb::WatchResourceRequest>,
        ) -> Result<Response<Self::WatchResourceStream>, Status> {
            self.record(&request);
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            // Held open until the subscription ends.
            tokio::spawn(async move { tx.closed().await });
            Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
                rx,
            )))
        }

        async fn complete(
            &self,
            request: Request<pb::CompleteRequest>,
        ) -> Result<Response<pb::CompleteResponse>, Status> {
            self.record(&request);
            Ok(Response::new(pb::CompleteResponse::default()))
        }
    }

    #[tonic::async_trait]
    impl pb::prompts_server::Prompts for Docs {
        async fn list_prompts(
            &self,
            _request: Request<pb::ListPromptsRequest>,
        ) -> Result<Response<pb::ListPromptsResponse>, Status> {
            Ok(Response::new(pb::ListPromptsResponse::default()))
        }

        async fn get_prompt(
            &self,
            request: Request<pb::GetPromptRequest>,
        ) -> Result<Response<pb::GetPromptResponse>, Status> {
            self.record(&request);
            Ok(Response::new(pb::GetPromptResponse {
                description: "a prompt".into(),
                messages: vec![pb::PromptMessage {
                    role: pb::Role::User as i32,
                    content: Some(pb::Content {
                        kind: Some(pb::content::Kind::Text(pb::TextContent {
                            text: "hello".into(),
                        })),
                        ..Default::default()
                    }),
                }],
            }))
        }

        async fn complete(
            &self,
            request: Request<pb::CompleteRequest>,
        ) -> Result<Response<pb::CompleteResponse>, Status> {
            self.record(&request);
            Ok(Response::new(pb::CompleteResponse::default()))
        }
    }
}

#[tokio::test]
#[allow(deprecated)] // resources/subscribe: what 2025-11-25 sessions use
async fn resource_reads_prompt_gets_and_completions_carry_the_principal_too() {
    use integration_tests::calculator::CalculatorService;
    use integration_tests::pb::calculator_server::CalculatorServer;
    use switchboard_proto::mcp::v1 as pb;
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let received = Received::default();
    let docs = docs::Docs(received.clone());
    let server =
        connector_kit::ConnectorServer::new("calculator", integration_tests::CALCULATOR_V1)
            .with_descriptors(switchboard_proto::FILE_DESCRIPTOR_SET)
            .add_service(CalculatorServer::new(CalculatorService::default()))
            .add_service(pb::resources_server::ResourcesServer::new(docs.clone()))
            .add_service(pb::prompts_server::PromptsServer::new(docs));
    let health = server.health();
    let task = tokio::spawn(async move {
        health.set_serving().await;
        let _ = server.serve(listener, std::future::pending()).await;
    });
    let policy = "[[allow]]\ntools = [\"calc_*\", \"calc+*\"]\n";
    let router = SecuredRouter::start_with(&provider, &format!("calc={url}"), policy, &[]).await;
    let bearer = token(&provider, &router, "bob", "", json!({}));
    let client = client_with(&router, &bearer).await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    let read: rmcp::model::ReadResourceRequestParams = serde_json::from_value(json!({
        "uri": "calc+docs://handbook",
        "_meta": { "traceparent": traceparent },
    }))
    .expect("read params");
    let contents = client.read_resource(read).await.expect("resources/read");
    assert!(
        format!("{contents:?}").contains("the handbook"),
        "{contents:?}"
    );
    let prompt = client
        .get_prompt(rmcp::model::GetPromptRequestParams::new("calc_greeting"))
        .await
        .expect("prompts/get");
    assert_eq!(prompt.messages.len(), 1);
    client
        .subscribe(rmcp::model::SubscribeRequestParams::new(
            "calc+docs://handbook",
        ))
        .await
        .expect("resources/subscribe");

    let calls = received.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(calls.len(), 3, "read, get and watch reached the connector");
    for metadata in &calls {
        let get = |k: &str| {
            metadata
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            get("switchboard-principal-sub").as_deref(),
            Some("bob"),
            "{metadata:?}"
        );
        assert!(get("traceparent").is_some(), "{metadata:?}");
        assert!(metadata.get("authorization").is_none(), "{metadata:?}");
        assert!(!format!("{metadata:?}").contains(&bearer));
    }
    let first = calls[0]
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        first.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "the client's trace continues: {first}"
    );
    let audited: Vec<(String, String)> = router
        .audit_lines()
        .iter()
        .map(|l| {
            (
                l["tool"].as_str().unwrap_or_default().to_owned(),
                l["trace_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        audited.contains(&(
            "calc+docs://handbook".to_owned(),
            "0af7651916cd43dd8448eb211c80319c".to_owned()
        )),
        "the read's audit line has the client's trace id: {audited:?}"
    );
    task.abort();
}

#[tokio::test]
async fn over_stdio_the_local_user_is_allowed_everything_and_audited_as_stdio() {
    let calc = calculator().await;
    let dir = scratch_dir("stdio-audit");
    let policy = dir.join("policy.toml");
    // A policy that allows nothing to any token: the local user is not a token.
    std::fs::write(&policy, "[[allow]]\ntools = [\"nothing_*\"]\n").expect("write");
    let log = dir.join("router.log");
    let mut cmd = tokio::process::Command::new(binary("switchboard").expect("switchboard"));
    cmd.args(["--stdio", "--connector", &format!("calc={}", calc.url())])
        .args(["--policy", &policy.display().to_string()])
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,audit=info");
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn switchboard --stdio");
    let client = Recorder::new()
        .serve(transport)
        .await
        .expect("initialize over stdio");
    let names = tool_names(&client).await;
    assert!(names.contains(&"calc_divide".to_owned()), "{names:?}");
    let result = call(&client, "calc_add", json!({"a": 2, "b": 2})).await;
    assert!(!is_error(&result), "{result:?}");
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect();
    assert!(
        lines.iter().any(|l| l["principal"] == "stdio"
            && l["front_door"] == "stdio"
            && l["tool"] == "calc_add"
            && l["outcome"] == "ok"),
        "{lines:?}"
    );
}

/// A stateless (2026-07-28) `tools/call` of a client that can answer
/// questions, with `bearer`: the JSON-RPC answer.
async fn stateless_call_as(router: &SecuredRouter, bearer: &str, id: u64, params: &Value) -> Value {
    let mut params = params.clone();
    params["_meta"] = answering_client_meta();
    let response = reqwest::Client::new()
        .post(router.resource())
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", params["name"].as_str().unwrap_or_default())
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    // The whole body: the stream ends with the answer.
    let body = response.text().await.expect("the answer");
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(body.as_str()))
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no answer to {id} in {body}"))
}

#[tokio::test]
async fn one_principal_cannot_take_every_place_for_questions_waiting_for_answers() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let connector = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start conformance-connector");
    let spec = format!("conformance={}", connector.url());
    let policy = "[[allow]]\ntools = [\"conformance_*\"]\n";
    let router = SecuredRouter::start_with(&provider, &spec, policy, &[]).await;
    let alice = token(&provider, &router, "alice", "", json!({}));
    let bob = token(&provider, &router, "bob", "", json!({}));
    let ask = json!({"name": "conformance_test_elicitation", "arguments": {"message": "Who?"}});

    // Alice's unanswered questions take her 64 places.
    let asked: Vec<Value> =
        futures::future::join_all((0..64).map(|id| stateless_call_as(&router, &alice, id, &ask)))
            .await;
    for answer in &asked {
        assert_eq!(answer["result"]["resultType"], "input_required", "{answer}");
    }
    let refused = stateless_call_as(&router, &alice, 64, &ask).await;
    assert_eq!(
        refused["error"]["data"]["setting"], "parked calls per principal",
        "{refused}"
    );
    assert_eq!(refused["error"]["data"]["limit"], 64, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("requestState"),
        "says what to do: {refused}"
    );

    // Bob is asked as ever.
    let bobs = stateless_call_as(&router, &bob, 65, &ask).await;
    assert_eq!(bobs["result"]["resultType"], "input_required", "{bobs}");

    // Answering one of Alice's questions gives her a place back.
    let mut retry = ask.clone();
    retry["requestState"] = asked[0]["result"]["requestState"].clone();
    retry["inputResponses"] = json!({"question": {
        "action": "accept",
        "content": {"username": "ada", "email": "ada@example.org"}
    }});
    let answered = stateless_call_as(&router, &alice, 66, &retry).await;
    let text = answered["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("ada"), "{answered}");
    let again = stateless_call_as(&router, &alice, 67, &ask).await;
    assert_eq!(again["result"]["resultType"], "input_required", "{again}");
}
