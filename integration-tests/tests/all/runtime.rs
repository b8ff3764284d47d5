//! How many threads run the router: one over stdio unless told otherwise,
//! the setting when given (`--worker-threads`, `SWITCHBOARD_WORKER_THREADS`),
//! and a clear refusal of a count no runtime should have.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use integration_tests::process::{binary, free_port};

use crate::support::{calculator, spec};

const WAIT: Duration = Duration::from_secs(20);

fn router(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary("switchboard").expect("switchboard binary"));
    command
        .args(args)
        .env_remove("SWITCHBOARD_WORKER_THREADS")
        .env_remove("TOKIO_WORKER_THREADS")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn,switchboard::runtime=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The `workers` the router logs at start-up.
async fn workers_logged(mut command: Command) -> usize {
    let mut child = command.spawn().expect("spawn switchboard");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("read the router's log") {
            if let Some(rest) = line.split("workers=").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                return digits.parse::<usize>().ok();
            }
        }
        None
    })
    .await
    .expect("the router logs its runtime in time");
    let _ = child.kill().await;
    found.expect("a `runtime started` line with workers=N")
}

/// The router's error when it refuses to start.
async fn refusal(mut command: Command) -> String {
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .expect("the router exits in time")
        .expect("run switchboard");
    assert!(!output.status.success(), "started anyway");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn over_http_the_setting_sets_the_worker_threads() {
    let connector = calculator().await;
    let connector = spec("calculator", &connector);
    let listen = format!("127.0.0.1:{}", free_port().expect("a free port"));
    let by_flag = router(
        &[
            "--listen",
            &listen,
            "--connector",
            &connector,
            "--worker-threads",
            "3",
        ],
        &[],
    );
    assert_eq!(workers_logged(by_flag).await, 3);
    let by_env = router(
        &["--listen", &listen, "--connector", &connector],
        &[("SWITCHBOARD_WORKER_THREADS", "2")],
    );
    assert_eq!(workers_logged(by_env).await, 2);
    // Over stdio the default is one; the setting still wins.
    let stdio = router(&["--stdio", "--connector", &connector], &[]);
    assert_eq!(workers_logged(stdio).await, 1);
    let stdio_set = router(
        &[
            "--stdio",
            "--connector",
            &connector,
            "--worker-threads",
            "2",
        ],
        &[],
    );
    assert_eq!(workers_logged(stdio_set).await, 2);
}

#[tokio::test]
async fn a_thread_count_out_of_range_is_refused_with_its_bounds() {
    let connector = calculator().await;
    let connector = spec("calculator", &connector);
    let base = ["--stdio", "--connector", connector.as_str()];
    for (flag, variable, said) in [
        (Some("0"), None, "at least 1"),
        (None, Some("100000"), "more than 256 threads"),
        (Some("many"), None, "not a whole number"),
    ] {
        let mut args = base.to_vec();
        if let Some(value) = flag {
            args.extend(["--worker-threads", value]);
        }
        let env: Vec<(&str, &str)> = variable
            .map(|value| ("SWITCHBOARD_WORKER_THREADS", value))
            .into_iter()
            .collect();
        let refused = refusal(router(&args, &env)).await;
        assert!(refused.contains(said), "{refused}");
    }
}
