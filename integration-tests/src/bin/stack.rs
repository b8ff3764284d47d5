//! `stack`: runs the whole Switchboard stack locally (`make run`): every
//! connector of deploy/connectors.toml and the router, logs prefixed by
//! service, Ctrl-C stops everything.

use std::process::ExitCode;

use clap::Parser;
use integration_tests::process::bin_dir;
use integration_tests::stack::{Stack, StackConfig};

/// Run Switchboard's connectors and router as local processes.
#[derive(Debug, Parser)]
struct Args {
    /// Address of the router's Streamable HTTP endpoint.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
}

/// What the settings in the environment leave switched off, one line each.
fn setting_notes() -> String {
    use connector_kit::env;
    let mut notes = String::new();
    if env::var("JIRA_BASE_URL").is_none() {
        notes.push_str("Jira stays NOT_SERVING (tools hidden) until JIRA_BASE_URL and JIRA_EMAIL + JIRA_API_TOKEN (or JIRA_PAT) are set.\n");
    }
    if env::var("SLACK_BOT_TOKEN").is_none() {
        notes.push_str("Slack stays NOT_SERVING (tools hidden) until SLACK_BOT_TOKEN is set.\n");
    } else if !env::flag("SLACK_ALLOW_WRITES", false).unwrap_or(false) {
        notes.push_str("Slack's writing tools are not offered until SLACK_ALLOW_WRITES=true.\n");
    }
    // Only the default is described here: a value set is the connector's to parse.
    if env::var("DB_ACCESS_MODE").is_none() {
        notes.push_str("The database connector is read-only: DB_ACCESS_MODE=read-write also offers database_execute.\n");
    }
    notes
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let workdir = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let mut config = match StackConfig::local(workdir) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("stack: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    config.router_addr = args.listen;
    let mut stack = match Stack::start(config).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("stack: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let router = bin_dir().join("switchboard");
    let stdio = stack.config().stdio_args().join(" ");
    eprintln!(
        "\nSwitchboard is running: MCP over HTTP at {url}\n\n\
         Point Claude Code at it (HTTP):\n  claude mcp add --transport http switchboard {url}\n\n\
         or let Claude Code start the router itself (stdio):\n  claude mcp add switchboard -- {router} {stdio}\n\n\
         {notes}See README.md. Press Ctrl-C to stop everything.\n",
        url = stack.mcp_url(),
        router = router.display(),
        notes = setting_notes(),
    );
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    // Ctrl-C, and SIGTERM too (timeout, a service manager): stopping the runner
    // without its processes would leave them holding the ports.
    let stop = connector_kit::shutdown::signal();
    tokio::pin!(stop);
    let failed = loop {
        tokio::select! {
            () = &mut stop => break None,
            _ = interval.tick() => {
                let exited = stack.exited();
                if !exited.is_empty() {
                    break Some(exited);
                }
            }
        }
    };
    eprintln!("stack: stopping");
    stack.stop().await;
    match failed {
        None => ExitCode::SUCCESS,
        Some(names) => {
            eprintln!(
                "stack: {} exited unexpectedly; everything was stopped",
                names.join(", ")
            );
            ExitCode::FAILURE
        }
    }
}
