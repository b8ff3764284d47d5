//! The connectors' resources, prompts and completions through the router:
//! database table schemas, code-analysis files, and each connector's prompts.

use integration_tests::process::{Connector, scratch_dir};
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams, ResourceContents};
use serde_json::json;

use crate::support::*;

async fn read_text(client: &Client, uri: &str) -> String {
    let result = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("resources/read {uri}: {e}"));
    match &result.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn prompt_text(result: &rmcp::model::GetPromptResult) -> String {
    serde_json::to_string(&result.messages).unwrap_or_default()
}

#[tokio::test]
async fn database_schemas_are_resources_and_its_prompts_name_its_tools() {
    let dir = scratch_dir("demo");
    let demo = dir.join("demo.sqlite3").display().to_string();
    let db = Connector::start(
        "database-connector",
        0,
        &[("DATABASE_URL", ""), ("DB_DEMO_PATH", demo.as_str())],
    )
    .await
    .expect("start database connector");
    let (client, _) = stdio_client(&connector_args(&[spec("database", &db)])).await;

    let resources = client.list_all_resources().await.expect("resources/list");
    let uris: Vec<String> = resources.iter().map(|r| r.uri.clone()).collect();
    assert!(
        uris.contains(&"database+db://main/orders".to_owned()),
        "{uris:?}"
    );
    let schema = read_text(&client, "database+db://main/orders").await;
    assert!(schema.contains("customer_id"), "{schema}");

    let templates = client
        .list_all_resource_templates()
        .await
        .expect("templates");
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "database+db://{schema}/{table}"),
        "{templates:?}"
    );

    let prompts = client.list_all_prompts().await.expect("prompts/list");
    assert!(
        prompts.iter().any(|p| p.name == "database_write_query"),
        "{prompts:?}"
    );
    let rendered = client
        .get_prompt(
            GetPromptRequestParams::new("database_write_query")
                .with_arguments(args(json!({"question": "Top 3 countries by revenue?"}))),
        )
        .await
        .expect("prompts/get");
    let text = prompt_text(&rendered);
    assert!(
        text.contains("database_describe_table") && text.contains("orders"),
        "{text}"
    );
    let missing = client
        .get_prompt(GetPromptRequestParams::new("database_write_query"))
        .await
        .expect_err("question is required");
    assert!(missing.to_string().contains("question"), "{missing}");

    let tables = client
        .complete_prompt_simple("database_write_query", "schema", "ma")
        .await
        .expect("completion/complete");
    assert!(tables.iter().any(|v| v == "main"), "{tables:?}");
}

/// Two database connectors behind one router, named `analytics` and `app`: each
/// one's prompts name its own tools (`analytics_query`), not the conventional
/// `database_query`, which would send the agent to the wrong database.
#[tokio::test]
async fn prompts_name_the_tools_under_the_routers_prefix() {
    let dir = scratch_dir("prefixes");
    let mut connectors = Vec::new();
    for name in ["analytics", "app"] {
        let demo = dir.join(format!("{name}.sqlite3")).display().to_string();
        let db = Connector::start(
            "database-connector",
            0,
            &[("DATABASE_URL", ""), ("DB_DEMO_PATH", demo.as_str())],
        )
        .await
        .expect("start database connector");
        connectors.push((name, db));
    }
    let specs: Vec<String> = connectors.iter().map(|(n, c)| spec(n, c)).collect();
    let (client, _) = stdio_client(&connector_args(&specs)).await;

    let tools = client.list_all_tools().await.expect("tools/list");
    for (name, _) in &connectors {
        let rendered = client
            .get_prompt(
                GetPromptRequestParams::new(format!("{name}_write_query"))
                    .with_arguments(args(json!({"question": "Top 3 countries by revenue?"}))),
            )
            .await
            .expect("prompts/get");
        let text = prompt_text(&rendered);
        for tool in ["describe_table", "query", "explain", "list_tables"] {
            let full = format!("{name}_{tool}");
            assert!(text.contains(&full), "{full} missing from {text}");
            assert!(
                tools.iter().any(|t| t.name == full.as_str()),
                "{full} is not a tool"
            );
        }
        assert!(!text.contains("database_"), "{text}");
        assert!(
            text.contains("orders"),
            "table names stay as they are: {text}"
        );
    }
}

#[tokio::test]
async fn code_analysis_serves_files_and_a_review_prompt() {
    let root = scratch_dir("code");
    std::fs::create_dir_all(root.join("src")).expect("src");
    std::fs::write(root.join("src/app.py"), "def f(x):\n    return x + 1\n").expect("app.py");
    std::fs::write(root.join(".gitignore"), "build/\n").expect(".gitignore");
    std::fs::create_dir_all(root.join("build")).expect("build");
    std::fs::write(root.join("build/gen.py"), "x = 1\n").expect("gen.py");
    let root_s = root.display().to_string();
    let ca = Connector::start(
        "code-analysis-connector",
        0,
        &[("CODE_ROOT", root_s.as_str())],
    )
    .await
    .expect("start code-analysis connector");
    let (client, _) = stdio_client(&connector_args(&[spec("code_analysis", &ca)])).await;

    assert_eq!(
        read_text(&client, "code_analysis+file:///src/app.py").await,
        "def f(x):\n    return x + 1\n"
    );
    let ignored = client
        .read_resource(ReadResourceRequestParams::new(
            "code_analysis+file:///build/gen.py",
        ))
        .await
        .expect_err("ignored files are not served");
    assert!(ignored.to_string().contains("gen.py"), "{ignored}");

    let paths = client
        .complete_resource_simple("code_analysis+file:///{path}", "path", "src/a")
        .await
        .expect("completion/complete");
    assert_eq!(paths, ["src/app.py"]);

    let review = client
        .get_prompt(
            GetPromptRequestParams::new("code_analysis_review_file")
                .with_arguments(args(json!({"path": "src/app.py"}))),
        )
        .await
        .expect("prompts/get");
    let text = prompt_text(&review);
    assert!(
        text.contains("code_analysis_find_security_issues"),
        "{text}"
    );
    assert!(
        text.contains("code_analysis+file:///src/app.py"),
        "the file is embedded with its namespaced URI: {text}"
    );
}

#[tokio::test]
async fn jira_prompts_respect_its_project_list() {
    let Some(prism) =
        integration_tests::prism::start("jira-cloud-platform.v3.json").expect("prism")
    else {
        return;
    };
    let jira = Connector::start(
        "jira-connector",
        0,
        &[
            ("JIRA_BASE_URL", prism.base_url.as_str()),
            ("JIRA_EMAIL", "agent@example.com"),
            ("JIRA_API_TOKEN", "not-a-real-token"),
            ("JIRA_PROJECTS", "PROJ,OPS"),
        ],
    )
    .await
    .expect("start jira");
    jira.wait_serving().await.expect("jira SERVING");
    let (client, _) = stdio_client(&connector_args(&[spec("jira", &jira)])).await;
    let triage = client
        .get_prompt(
            GetPromptRequestParams::new("jira_triage_issue")
                .with_arguments(args(json!({"key": "PROJ-5"}))),
        )
        .await
        .expect("prompts/get");
    let text = prompt_text(&triage);
    assert!(
        text.contains("jira_get_issue") && text.contains("PROJ-5"),
        "{text}"
    );
    let outside = client
        .get_prompt(
            GetPromptRequestParams::new("jira_triage_issue")
                .with_arguments(args(json!({"key": "SECRET-1"}))),
        )
        .await
        .expect_err("outside JIRA_PROJECTS");
    assert!(outside.to_string().contains("JIRA_PROJECTS"), "{outside}");
    let keys = client
        .complete_prompt_simple("jira_triage_issue", "key", "o")
        .await
        .expect("completion/complete");
    assert_eq!(keys, ["OPS-"]);
}

#[tokio::test]
async fn bounds_out_of_range_are_refused_at_start_naming_the_variable() {
    let root = integration_tests::process::repo_root();
    for (connector, variable, value) in [
        ("code-analysis-connector", "MAX_CONCURRENT_ANALYSES", "0"),
        ("code-analysis-connector", "MAX_CONCURRENT_ANALYSES", "5000"),
        ("code-analysis-connector", "MAX_QUEUED_ANALYSES", "2000000"),
        ("code-analysis-connector", "MAX_QUEUED_ANALYSES", "some"),
        ("jira-connector", "JIRA_MAX_RESPONSE_BYTES", "0"),
        ("slack-connector", "SLACK_MAX_RESPONSE_BYTES", "0"),
    ] {
        let binary = integration_tests::process::binary(connector).expect("binary");
        let output = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio::process::Command::new(&binary)
                .env("LISTEN_ADDR", "127.0.0.1:0")
                .env("CODE_ROOT", &root)
                .env(variable, value)
                .stdin(std::process::Stdio::null())
                .output(),
        )
        .await
        .expect("the connector stops at once")
        .expect("the connector runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{connector}: {variable}={value} accepted"
        );
        assert!(
            stderr.contains(variable),
            "{connector}: {variable}={value}: {stderr}"
        );
    }
}
