//! The generic `switchboard.mcp.v1.Prompts` service over gRPC: listing, rendering
//! with and without the required arguments, the connector's policies
//! (JIRA_PROJECTS, JIRA_READ_ONLY) in the prompts, and argument completion.
//! Prompts never call Jira, so these run on an unconfigured connector.

use std::collections::HashMap;

use jira_connector::Config;
use switchboard_proto::mcp::v1 as pb;
use tonic::Code;

use crate::support;

fn config(read_only: bool, projects: &[&str]) -> Config {
    let mut config = Config::new(None);
    config.read_only = read_only;
    config.projects = projects.iter().map(|p| (*p).to_owned()).collect();
    config
}

fn get(name: &str, arguments: &[(&str, &str)]) -> pb::GetPromptRequest {
    pb::GetPromptRequest {
        name: name.to_owned(),
        arguments: arguments
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
    }
}

/// The single user text message of a rendered prompt.
fn text(response: pb::GetPromptResponse) -> String {
    assert_eq!(response.messages.len(), 1, "{response:?}");
    let message = &response.messages[0];
    assert_eq!(message.role, pb::Role::User as i32);
    match message.content.as_ref().and_then(|c| c.kind.as_ref()) {
        Some(pb::content::Kind::Text(t)) => t.text.clone(),
        other => panic!("expected text content, got {other:?}"),
    }
}

fn complete_prompt(prompt: &str, argument: &str, value: &str) -> pb::CompleteRequest {
    pb::CompleteRequest {
        r#ref: Some(pb::complete_request::Ref::Prompt(prompt.to_owned())),
        argument: argument.to_owned(),
        value: value.to_owned(),
        context: HashMap::new(),
    }
}

#[tokio::test]
async fn lists_both_prompts_with_their_arguments() {
    let mut c = support::start(config(false, &["PROJ", "OPS"])).await;
    let list = c
        .prompts
        .list_prompts(pb::ListPromptsRequest::default())
        .await
        .expect("list prompts")
        .into_inner();
    assert!(list.next_cursor.is_empty());
    let names: Vec<&str> = list.prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["triage_issue", "summarize_search"]);
    let triage = &list.prompts[0];
    assert_eq!(triage.arguments.len(), 1);
    assert_eq!(triage.arguments[0].name, "key");
    assert!(triage.arguments[0].required);
    assert!(
        triage.arguments[0].description.contains("PROJ, OPS")
            && triage.arguments[0].description.contains("JIRA_PROJECTS"),
        "{}",
        triage.arguments[0].description
    );
    let summary = &list.prompts[1];
    let required: Vec<(&str, bool)> = summary
        .arguments
        .iter()
        .map(|a| (a.name.as_str(), a.required))
        .collect();
    assert_eq!(required, [("jql", true), ("max_issues", false)]);
    assert!(
        list.prompts
            .iter()
            .flat_map(|p| p.arguments.iter())
            .all(|a| !a.description.is_empty())
    );

    let err = c
        .prompts
        .list_prompts(pb::ListPromptsRequest {
            cursor: "page-2".into(),
        })
        .await
        .expect_err("there is no second page");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("cursor"), "{}", err.message());
}

#[tokio::test]
async fn triage_names_the_tools_and_explains_before_writing() {
    let mut c = support::start(config(false, &[])).await;
    let response = c
        .prompts
        .get_prompt(get("triage_issue", &[("key", " proj-42 ")]))
        .await
        .expect("render triage_issue")
        .into_inner();
    assert!(
        response.description.contains("PROJ-42"),
        "{}",
        response.description
    );
    let text = text(response);
    for needle in [
        "PROJ-42",
        r#"`jira_get_issue` with {"include_comments":true,"include_transitions":true,"key":"PROJ-42"}"#,
        "`jira_search_issues`",
        "project = PROJ AND issue != PROJ-42 AND summary ~",
        "`jira_update_issue`",
        "`jira_assign_issue`",
        "`jira_transition_issue`",
        "`jira_find_users`",
        "Before each write",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("JIRA_READ_ONLY"), "{text}");
}

#[tokio::test]
async fn read_only_triage_says_writes_are_disabled() {
    let mut c = support::start(config(true, &[])).await;
    let list = c
        .prompts
        .list_prompts(pb::ListPromptsRequest::default())
        .await
        .expect("list prompts")
        .into_inner();
    assert!(
        list.prompts[0].description.contains("read-only"),
        "{}",
        list.prompts[0].description
    );
    let text = text(
        c.prompts
            .get_prompt(get("triage_issue", &[("key", "PROJ-1")]))
            .await
            .expect("render triage_issue")
            .into_inner(),
    );
    assert!(
        text.contains("read-only (JIRA_READ_ONLY=true)")
            && text.contains("Do not try to call them"),
        "{text}"
    );
    assert!(!text.contains("Before each write"), "{text}");
}

#[tokio::test]
async fn a_missing_or_bad_key_is_refused_by_name() {
    let mut c = support::start(config(false, &["PROJ"])).await;
    for arguments in [vec![], vec![("key", "  ")]] {
        let err = c
            .prompts
            .get_prompt(get("triage_issue", &arguments))
            .await
            .expect_err("key is required");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains("key") && err.message().contains("required"),
            "{}",
            err.message()
        );
    }

    let err = c
        .prompts
        .get_prompt(get("triage_issue", &[("key", "SECRET-9")]))
        .await
        .expect_err("outside JIRA_PROJECTS");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("SECRET") && err.message().contains("JIRA_PROJECTS"),
        "{}",
        err.message()
    );

    for bad in ["PROJ", "../PROJ-1", "10001"] {
        let err = c
            .prompts
            .get_prompt(get("triage_issue", &[("key", bad)]))
            .await
            .expect_err("not an issue key");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert!(err.message().contains("`key`"), "{}", err.message());
    }

    let err = c
        .prompts
        .get_prompt(get("triage_issue", &[("key", "PROJ-1"), ("ky", "x")]))
        .await
        .expect_err("unknown argument");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("ky"), "{}", err.message());
}

#[tokio::test]
async fn summarize_search_requires_jql_and_keeps_the_project_restriction() {
    let mut c = support::start(config(false, &["PROJ"])).await;
    let err = c
        .prompts
        .get_prompt(get("summarize_search", &[]))
        .await
        .expect_err("jql is required");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("jql"), "{}", err.message());

    let text = text(
        c.prompts
            .get_prompt(get(
                "summarize_search",
                &[("jql", "status = Open ORDER BY rank")],
            ))
            .await
            .expect("render summarize_search")
            .into_inner(),
    );
    for needle in [
        "`status = Open ORDER BY rank`",
        "project in (\"PROJ\") AND (status = Open) ORDER BY rank",
        "JIRA_PROJECTS",
        "`jira_search_issues`",
        "next_page_token",
        "do not change any issue",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }

    let err = c
        .prompts
        .get_prompt(get(
            "summarize_search",
            &[("jql", "x = 1) OR (project = SECRET")],
        ))
        .await
        .expect_err("could escape the restriction");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("jql"), "{}", err.message());
}

#[tokio::test]
async fn an_unknown_prompt_is_not_found() {
    let mut c = support::start(config(false, &[])).await;
    let err = c
        .prompts
        .get_prompt(get("triage", &[("key", "PROJ-1")]))
        .await
        .expect_err("no such prompt");
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("triage_issue") && err.message().contains("summarize_search"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn key_completion_offers_the_allowed_projects() {
    let mut c = support::start(config(false, &["PROJ", "OPS"])).await;
    let mut complete = async |prompt: &str, argument: &str, value: &str| {
        c.prompts
            .complete(complete_prompt(prompt, argument, value))
            .await
            .map(|r| r.into_inner())
    };
    let all = complete("triage_issue", "key", "").await.expect("complete");
    assert_eq!(all.values, ["PROJ-", "OPS-"]);
    assert_eq!(all.total, Some(2));
    assert!(!all.has_more);
    let ops = complete("triage_issue", "key", "o")
        .await
        .expect("complete");
    assert_eq!(ops.values, ["OPS-"]);
    let number = complete("triage_issue", "key", "OPS-1")
        .await
        .expect("complete");
    assert!(number.values.is_empty(), "{number:?}");

    let jql = complete("summarize_search", "jql", "project = proj and cr")
        .await
        .expect("complete");
    assert_eq!(
        jql.values,
        ["project = PROJ AND created >= -7d ORDER BY created DESC"]
    );

    let err = complete("nope", "key", "P")
        .await
        .expect_err("no such prompt");
    assert_eq!(err.code(), Code::NotFound);

    let err = c
        .prompts
        .complete(pb::CompleteRequest {
            r#ref: Some(pb::complete_request::Ref::ResourceTemplate(
                "jira://issue/{key}".into(),
            )),
            argument: "key".into(),
            value: "P".into(),
            context: HashMap::new(),
        })
        .await
        .expect_err("no resources");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn without_jira_projects_key_completion_is_empty_and_calls_nothing() {
    // No Jira is configured at all: a completion that tried to call it would fail.
    let mut c = support::start(config(false, &[])).await;
    let response = c
        .prompts
        .complete(complete_prompt("triage_issue", "key", "PR"))
        .await
        .expect("complete")
        .into_inner();
    assert!(response.values.is_empty(), "{response:?}");
}
