//! The code-analysis connector through the router, on this repository and its samples.

use integration_tests::process::{Connector, repo_root};
use rmcp::model::{CallToolRequestParams, NumberOrString, ProgressToken, RequestMetaObject};
use serde_json::{Value, json};

use crate::support::*;

async fn code_analysis() -> (Connector, Client, Recorder) {
    let root = repo_root().display().to_string();
    let connector = Connector::start(
        "code-analysis-connector",
        0,
        &[("CODE_ROOT", root.as_str())],
    )
    .await
    .expect("start code-analysis connector");
    let (client, recorder) =
        stdio_client(&connector_args(&[spec("code_analysis", &connector)])).await;
    (connector, client, recorder)
}

fn function<'a>(file: &'a Value, name: &str) -> &'a Value {
    file["functions"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("function {name} not in {file}"))
}

#[tokio::test]
async fn code_analysis_tools_work_on_samples_and_on_this_repository() {
    let (_connector, client, recorder) = code_analysis().await;

    let names = tool_names(&client).await;
    for tool in [
        "code_analysis_analyze_code",
        "code_analysis_analyze_path",
        "code_analysis_find_security_issues",
        "code_analysis_list_languages",
    ] {
        assert!(
            names.contains(&tool.to_owned()),
            "{tool} missing: {names:?}"
        );
        let t = find_tool(&client, tool).await;
        assert_eq!(
            t.annotations.and_then(|a| a.read_only_hint),
            Some(true),
            "{tool}"
        );
    }

    let languages = call(&client, "code_analysis_list_languages", json!({})).await;
    assert!(!is_error(&languages), "{}", text(&languages));
    let text_out = languages
        .structured_content
        .expect("structured")
        .to_string();
    for language in [
        "rust",
        "python",
        "javascript",
        "typescript",
        "go",
        "java",
        "cpp",
    ] {
        assert!(
            text_out.contains(&format!("\"{language}\"")),
            "{language} in {text_out}"
        );
    }

    // Metrics of a sample file, whose reference numbers come from lizard.
    let sample = std::fs::read_to_string(
        repo_root().join("connectors/code-analysis/tests/samples/sample.py"),
    )
    .expect("sample.py");
    let analysed = call(
        &client,
        "code_analysis_analyze_code",
        json!({"file_name": "sample.py", "code": sample, "analysis_depth": "comprehensive"}),
    )
    .await;
    assert!(!is_error(&analysed), "{}", text(&analysed));
    let file = analysed.structured_content.expect("structured");
    assert_eq!(file["language"], "python");
    let valid = function(&file, "count_valid");
    assert_eq!(valid["cyclomatic"], 6, "{valid}");
    assert_eq!(valid["arguments"], 3, "{valid}");
    assert_eq!(function(&file, "classify")["cyclomatic"], 3);

    let unknown = call(
        &client,
        "code_analysis_analyze_code",
        json!({"language": "cobol", "code": "x"}),
    )
    .await;
    assert!(
        is_error(&unknown) && text(&unknown).contains("unknown language"),
        "{}",
        text(&unknown)
    );

    // A whole directory of this repository, streamed, with progress per message.
    let mut params = CallToolRequestParams::new("code_analysis_analyze_path").with_arguments(args(
        json!({"path": "connectors/code-analysis/src", "top_hotspots": 3}),
    ));
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::String("scan".into()),
    )));
    let scanned = client.call_tool(params).await.expect("tools/call");
    assert!(!is_error(&scanned), "{}", text(&scanned));
    let messages = scanned.structured_content.expect("structured")["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let summary = messages
        .iter()
        .find_map(|m| m.get("summary").filter(|s| !s.is_null()))
        .expect("a summary message");
    assert!(
        summary["files_analyzed"].as_u64().unwrap_or(0) >= 5,
        "{summary}"
    );
    assert_eq!(summary["languages"][0]["language"], "rust");
    assert_eq!(summary["hotspots"].as_array().map(Vec::len), Some(3));
    assert!(
        recorder
            .progress_count
            .load(std::sync::atomic::Ordering::SeqCst)
            >= messages.len(),
        "each streamed message was reported as progress"
    );

    let outside = call(
        &client,
        "code_analysis_analyze_path",
        json!({"path": "../"}),
    )
    .await;
    assert!(
        is_error(&outside) && text(&outside).contains("outside"),
        "{}",
        text(&outside)
    );

    let findings = call(
        &client,
        "code_analysis_find_security_issues",
        json!({"language": "python", "code": "import subprocess\nsubprocess.run(cmd, shell=True)\n# eval(x) in a comment is fine\n"}),
    )
    .await;
    assert!(!is_error(&findings), "{}", text(&findings));
    let found = findings.structured_content.expect("structured");
    let list = found["findings"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        list.len(),
        1,
        "only the real call, not the comment: {found}"
    );
    assert_eq!(list[0]["cwe"], "CWE-78");
}
