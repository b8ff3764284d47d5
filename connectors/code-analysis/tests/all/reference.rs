//! Cyclomatic complexity and parameter counts checked against lizard 1.24.3, the
//! field's common yardstick.
//!
//! `tests/samples/lizard-expected.txt` holds lizard's output for the samples (the
//! command is in its header). Where both tools count by the same definition (if/else
//! chains, loops, && and ||, C `case`, Java `catch`, ?:) the numbers must be equal.
//! Where the counting rules differ, the test asserts this connector's documented
//! rule (see README, "Differences from lizard") through `DOCUMENTED_DIFFERENCES`.

use std::collections::HashMap;

use crate::support;

/// (file, function, this connector's cyclomatic complexity, why it differs from lizard)
const DOCUMENTED_DIFFERENCES: &[(&str, &str, u64, &str)] = &[
    // 3 cases + 1 = 4 for lizard; a bare `case _:` is the default branch, not a
    // decision (like `default:` in a C switch, which lizard does not count either).
    (
        "sample.py",
        "classify",
        3,
        "bare `case _` is not a decision",
    ),
    // lizard counts `finally` as a branch; it always runs, so it adds no path.
    ("sample.py", "cleanup", 1, "`finally` is not a decision"),
    // `assert` can raise, an extra exit path (lizard does not count it); `with`
    // counts for neither tool.
    (
        "sample.py",
        "checked",
        2,
        "`assert` is a decision, `with` is not",
    ),
];

struct Expected {
    file: String,
    function: String,
    ccn: u64,
    params: u64,
}

fn lizard_expected() -> Vec<Expected> {
    let text = std::fs::read_to_string(support::samples().join("lizard-expected.txt"))
        .expect("recorded lizard output");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let location = cols[5];
            let mut parts = location.split('@');
            let function = parts
                .next()
                .expect("name")
                .rsplit("::")
                .next()
                .expect("name")
                .to_owned();
            let _lines = parts.next();
            let file = parts
                .next()
                .expect("file")
                .trim_start_matches("samples/")
                .to_owned();
            Expected {
                file,
                function,
                ccn: cols[1].parse().expect("ccn"),
                params: cols[3].parse().expect("params"),
            }
        })
        .collect()
}

#[tokio::test]
async fn cyclomatic_complexity_and_parameters_match_lizard_or_the_documented_rule() {
    let expected = lizard_expected();
    assert!(
        expected.len() >= 35,
        "the recorded lizard output looks truncated"
    );
    let mut connector = support::start(&support::samples()).await;
    let mut ours: HashMap<(String, String), (u64, u64)> = HashMap::new();
    let files: std::collections::BTreeSet<&str> =
        expected.iter().map(|e| e.file.as_str()).collect();
    for file in files {
        let code = std::fs::read_to_string(support::samples().join(file)).expect("sample");
        let analysis = connector
            .client
            .analyze_code(support::code_request(&code, file))
            .await
            .expect("analysed")
            .into_inner();
        for f in analysis.functions {
            ours.insert(
                (file.to_owned(), f.name.clone()),
                (f.cyclomatic, f.arguments),
            );
        }
    }
    let mut report = Vec::new();
    for e in &expected {
        let Some(&(ccn, params)) = ours.get(&(e.file.clone(), e.function.clone())) else {
            report.push(format!(
                "{}::{}: not found by the connector",
                e.file, e.function
            ));
            continue;
        };
        let documented = DOCUMENTED_DIFFERENCES
            .iter()
            .find(|d| d.0 == e.file && d.1 == e.function);
        let want = documented.map_or(e.ccn, |d| d.2);
        if ccn != want {
            report.push(format!(
                "{}::{}: cyclomatic {ccn}, expected {want} (lizard {})",
                e.file, e.function, e.ccn
            ));
        }
        if params != e.params {
            report.push(format!(
                "{}::{}: parameters {params}, lizard {}",
                e.file, e.function, e.params
            ));
        }
    }
    assert!(
        report.is_empty(),
        "differences from lizard:\n{}",
        report.join("\n")
    );
}

/// Re-runs lizard on the samples so the recorded numbers cannot drift from the tool.
#[test]
fn recorded_lizard_output_matches_a_fresh_lizard_run() {
    let lizard =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/lizard");
    if !lizard.exists() {
        let message =
            "lizard is not installed (.tools/venv/bin/lizard); run scripts/install-tools.sh";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}");
        }
        eprintln!("SKIPPED recorded_lizard_output_matches_a_fresh_lizard_run: {message}");
        return;
    }
    let files = [
        "sample.c",
        "sample.cpp",
        "sample.go",
        "Sample.java",
        "sample.js",
        "sample.py",
        "sample.rs",
        "sample.ts",
    ];
    let output = std::process::Command::new(&lizard)
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"))
        .args(files.iter().map(|f| format!("samples/{f}")))
        .output()
        .expect("lizard runs");
    let fresh: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("@samples/"))
        .map(str::to_owned)
        .collect();
    let recorded: Vec<String> =
        std::fs::read_to_string(support::samples().join("lizard-expected.txt"))
            .expect("recorded")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
    assert_eq!(
        fresh, recorded,
        "re-record lizard-expected.txt with the command in its header"
    );
}
