//! The Jira connector through the router, against Prism validating every request
//! against the official Jira Cloud platform spec.

use integration_tests::prism;
use integration_tests::process::Connector;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn unconfigured_jira_and_slack_keep_their_tools_hidden() {
    let jira = Connector::start(
        "jira-connector",
        0,
        &[("JIRA_BASE_URL", ""), ("JIRA_PAT", "")],
    )
    .await
    .expect("start jira");
    let slack = Connector::start("slack-connector", 0, &[("SLACK_BOT_TOKEN", "")])
        .await
        .expect("start slack");
    let calc = calculator().await;
    let (client, _) = stdio_client(&connector_args(&[
        spec("jira", &jira),
        spec("slack", &slack),
        spec("calculator", &calc),
    ]))
    .await;
    let names = tool_names(&client).await;
    assert!(
        names.iter().all(|n| n.starts_with("calculator_")),
        "{names:?}"
    );
    assert!(!names.is_empty());
}

#[tokio::test]
async fn jira_tools_work_through_the_router_against_the_spec() {
    let Some(prism) = prism::start("jira-cloud-platform.v3.json").expect("prism") else {
        return;
    };
    let jira = Connector::start(
        "jira-connector",
        0,
        &[
            ("JIRA_BASE_URL", prism.base_url.as_str()),
            ("JIRA_EMAIL", "agent@example.com"),
            ("JIRA_API_TOKEN", "not-a-real-token"),
        ],
    )
    .await
    .expect("start jira");
    jira.wait_serving().await.expect("jira SERVING");
    // The same site through a read-only connector, beside it.
    let read_only = Connector::start(
        "jira-connector",
        0,
        &[
            ("JIRA_BASE_URL", prism.base_url.as_str()),
            ("JIRA_EMAIL", "agent@example.com"),
            ("JIRA_API_TOKEN", "not-a-real-token"),
            ("JIRA_READ_ONLY", "true"),
        ],
    )
    .await
    .expect("start read-only jira");
    read_only
        .wait_serving()
        .await
        .expect("read-only jira SERVING");
    let (client, _) = stdio_client(&connector_args(&[
        spec("jira", &jira),
        spec("jira_ro", &read_only),
    ]))
    .await;

    let names = tool_names(&client).await;
    // The read-only connector offers the reading tools only.
    let mut reading: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix("jira_ro_"))
        .collect();
    reading.sort_unstable();
    assert_eq!(
        reading,
        [
            "find_users",
            "get_issue",
            "get_project",
            "list_comments",
            "list_fields",
            "list_projects",
            "search_issues",
        ]
    );
    let read = call(&client, "jira_ro_get_issue", json!({"key": "PROJ-1"})).await;
    assert!(!is_error(&read), "{}", text(&read));

    for tool in [
        "jira_create_issue",
        "jira_get_issue",
        "jira_search_issues",
        "jira_update_issue",
        "jira_add_comment",
        "jira_list_comments",
        "jira_transition_issue",
        "jira_assign_issue",
        "jira_list_projects",
        "jira_get_project",
        "jira_find_users",
        "jira_list_fields",
        "jira_link_issues",
    ] {
        assert!(
            names.contains(&tool.to_owned()),
            "{tool} missing from {names:?}"
        );
    }
    let get = find_tool(&client, "jira_get_issue").await;
    assert_eq!(get.annotations.and_then(|a| a.read_only_hint), Some(true));

    let search = call(
        &client,
        "jira_search_issues",
        json!({"jql": "project = PROJ ORDER BY created DESC", "max_results": 5}),
    )
    .await;
    assert!(!is_error(&search), "{}", text(&search));
    let found = search.structured_content.expect("structured");
    assert!(
        found["issues"].is_array() && found["is_last"].is_boolean(),
        "{found}"
    );

    let created = call(
        &client,
        "jira_create_issue",
        json!({"project_key": "PROJ", "summary": "From MCP", "description": "## Steps\n\n1. open\n2. **click**"}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));

    for (tool, arguments) in [
        (
            "jira_get_issue",
            json!({"key": "PROJ-1", "include_comments": true}),
        ),
        (
            "jira_add_comment",
            json!({"key": "PROJ-1", "body": "Looks good to me"}),
        ),
        ("jira_list_comments", json!({"key": "PROJ-1"})),
        ("jira_list_projects", json!({})),
        ("jira_get_project", json!({"key": "PROJ"})),
        ("jira_find_users", json!({"query": "ann"})),
        ("jira_list_fields", json!({})),
    ] {
        let result = call(&client, tool, arguments.clone()).await;
        assert!(!is_error(&result), "{tool} {arguments}: {}", text(&result));
    }

    for (tool, arguments) in [
        (
            "jira_update_issue",
            json!({"key": "PROJ-1", "summary": "Renamed", "add_labels": ["triaged"]}),
        ),
        (
            "jira_assign_issue",
            json!({"key": "PROJ-1", "unassign": true}),
        ),
    ] {
        let result = call(&client, tool, arguments.clone()).await;
        assert!(!is_error(&result), "{tool} {arguments}: {}", text(&result));
    }
    // Prism invents the site's transitions and link types, so a name may not
    // exist there: then the error must list what does.
    let transition = call(
        &client,
        "jira_transition_issue",
        json!({"key": "PROJ-1", "transition": "Done"}),
    )
    .await;
    assert!(
        !is_error(&transition) || text(&transition).to_lowercase().contains("transitions"),
        "{}",
        text(&transition)
    );
    let link = call(
        &client,
        "jira_link_issues",
        json!({"link_type": "Blocks", "from_key": "PROJ-1", "to_key": "PROJ-2"}),
    )
    .await;
    assert!(
        !is_error(&link) || text(&link).to_lowercase().contains("link type"),
        "{}",
        text(&link)
    );

    let wrong = call(
        &client,
        "jira_search_issues",
        json!({"jql": "x", "max_results": "ten"}),
    )
    .await;
    assert!(
        is_error(&wrong) && text(&wrong).contains("max_results"),
        "{}",
        text(&wrong)
    );

    assert!(prism.requests_seen() > 5, "the calls reached the mock");
    assert_eq!(
        prism.violations(),
        Vec::<String>::new(),
        "every request conforms to the Jira spec"
    );
}
