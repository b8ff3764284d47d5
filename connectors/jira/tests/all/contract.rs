//! Contract tests: every tool against Stoplight Prism serving the official Jira
//! Cloud platform OpenAPI spec in dynamic mode. Prism validates each request the
//! connector sends (path, query, body, auth) and answers 4xx with an
//! `sl-violations` header when the spec rejects it, which the connector reports
//! as an error; so a successful call is a call the spec accepts. Prism's log is
//! also checked for violations so a failure names the rule.

use prost_types::{Struct, Value as PbValue, value::Kind};
use switchboard_proto::jira::v1 as pb;

use crate::support::{self, Connector, Prism};

async fn connector(prism: &Prism) -> Connector {
    support::start(support::cloud(&prism.base_url)).await
}

async fn check<T>(
    prism: &Prism,
    tool: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> T {
    let from = prism.log_len();
    match call.await {
        Ok(response) => {
            let violations = prism.violations_since(from);
            assert!(
                violations.is_empty(),
                "{tool}: Prism reported request violations:\n{}",
                violations.join("\n")
            );
            response.into_inner()
        }
        Err(status) => {
            // Prism logs the violation just after answering.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            panic!(
                "{tool} failed against the spec mock: {:?}: {}\nPrism violations:\n{}",
                status.code(),
                status.message(),
                prism.violations_since(from).join("\n")
            )
        }
    }
}

fn number(n: f64) -> PbValue {
    PbValue {
        kind: Some(Kind::NumberValue(n)),
    }
}

async fn create_issue_request_matches_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    let custom = Struct {
        fields: [("customfield_10016".to_owned(), number(5.0))]
            .into_iter()
            .collect(),
    };
    let created = check(
        prism,
        "jira_create_issue",
        c.client.create_issue(pb::CreateIssueRequest {
            project_key: "PROJ".into(),
            summary: "Login fails on Safari".into(),
            description: Some("## Steps\n\n1. open\n2. **click**\n\n```js\nlogin()\n```".into()),
            issue_type: Some("Bug".into()),
            priority: Some("High".into()),
            assignee: Some("5b10ac8d82e05b22cc7d4ef5".into()),
            labels: vec!["safari".into()],
            components: vec!["Web".into()],
            parent_key: None,
            due_date: Some("2030-01-31".into()),
            custom_fields: Some(custom),
        }),
    )
    .await;
    // The browse link is built from the key Jira answered with.
    assert!(
        created.url.ends_with(&format!("/browse/{}", created.key)),
        "{created:?}"
    );
}

async fn get_issue_with_comments_and_transitions_matches_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    check(
        prism,
        "jira_get_issue",
        c.client.get_issue(pb::GetIssueRequest {
            key: "PROJ-1".into(),
            fields: vec!["customfield_10016".into()],
            include_comments: Some(true),
            include_transitions: Some(true),
        }),
    )
    .await;
}

async fn search_pages_match_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    let first = check(
        prism,
        "jira_search_issues",
        c.client.search_issues(pb::SearchIssuesRequest {
            jql: "project = PROJ ORDER BY created DESC".into(),
            max_results: Some(10),
            page_token: None,
            fields: vec!["description".into()],
        }),
    )
    .await;
    assert_eq!(first.jql, "project = PROJ ORDER BY created DESC");
    check(
        prism,
        "jira_search_issues (next page)",
        c.client.search_issues(pb::SearchIssuesRequest {
            jql: "project = PROJ".into(),
            max_results: None,
            page_token: Some("token-from-the-previous-page".into()),
            fields: vec![],
        }),
    )
    .await;
}

async fn update_issue_matches_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    let updated = check(
        prism,
        "jira_update_issue",
        c.client.update_issue(pb::UpdateIssueRequest {
            key: "PROJ-1".into(),
            summary: Some("New title".into()),
            description: Some("Now with a [link](https://example.com)".into()),
            priority: Some("Low".into()),
            add_labels: vec!["triaged".into()],
            remove_labels: vec!["new".into()],
            components: vec!["API".into()],
            due_date: None,
            custom_fields: None,
            notify_users: Some(false),
        }),
    )
    .await;
    assert_eq!(
        updated.updated_fields,
        vec!["components", "description", "labels", "priority", "summary"]
    );
}

async fn comments_match_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    check(
        prism,
        "jira_add_comment",
        c.client.add_comment(pb::AddCommentRequest {
            key: "PROJ-1".into(),
            body: "Thanks [@Ada](accountid:5b10ac8d82e05b22cc7d4ef5), see `logs`".into(),
        }),
    )
    .await;
    check(
        prism,
        "jira_list_comments",
        c.client.list_comments(pb::ListCommentsRequest {
            key: "PROJ-1".into(),
            max_results: Some(20),
            start_at: Some(0),
            newest_first: Some(true),
        }),
    )
    .await;
}

async fn transition_by_id_matches_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    let done = check(
        prism,
        "jira_transition_issue",
        c.client.transition_issue(pb::TransitionIssueRequest {
            key: "PROJ-1".into(),
            transition: "31".into(),
            comment: Some("Fixed in **1.2**".into()),
            resolution: Some("Done".into()),
        }),
    )
    .await;
    assert_eq!(done.transition_id, "31");
}

async fn assign_and_unassign_match_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    check(
        prism,
        "jira_assign_issue",
        c.client.assign_issue(pb::AssignIssueRequest {
            key: "PROJ-1".into(),
            assignee: Some("5b10ac8d82e05b22cc7d4ef5".into()),
            unassign: None,
        }),
    )
    .await;
    check(
        prism,
        "jira_assign_issue (unassign)",
        c.client.assign_issue(pb::AssignIssueRequest {
            key: "PROJ-1".into(),
            assignee: None,
            unassign: Some(true),
        }),
    )
    .await;
}

async fn project_tools_match_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    check(
        prism,
        "jira_list_projects",
        c.client.list_projects(pb::ListProjectsRequest {
            query: Some("plat".into()),
            max_results: Some(100),
            start_at: Some(0),
        }),
    )
    .await;
    check(
        prism,
        "jira_get_project",
        c.client
            .get_project(pb::GetProjectRequest { key: "PROJ".into() }),
    )
    .await;
}

async fn restricted_project_listing_matches_the_spec(prism: &'static Prism) {
    let mut config = support::cloud(&prism.base_url);
    config.projects = vec!["PROJ".into(), "OPS".into()];
    let mut c = support::start(config).await;
    check(
        prism,
        "jira_list_projects (restricted)",
        c.client.list_projects(pb::ListProjectsRequest::default()),
    )
    .await;
    let page = check(
        prism,
        "jira_search_issues (restricted)",
        c.client.search_issues(pb::SearchIssuesRequest {
            jql: "status = Done".into(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(
        page.jql,
        "project in (\"PROJ\", \"OPS\") AND (status = Done)"
    );
}

async fn users_fields_and_links_match_the_spec(prism: &'static Prism) {
    let mut c = connector(prism).await;
    check(
        prism,
        "jira_find_users",
        c.client.find_users(pb::FindUsersRequest {
            query: "ada".into(),
            max_results: Some(5),
        }),
    )
    .await;
    check(
        prism,
        "jira_list_fields",
        c.client.list_fields(pb::ListFieldsRequest {
            query: None,
            custom_only: Some(true),
        }),
    )
    .await;
    check(
        prism,
        "jira_link_issues",
        c.client.link_issues(pb::LinkIssuesRequest {
            link_type: "Blocks".into(),
            from_key: "PROJ-1".into(),
            to_key: "PROJ-2".into(),
            comment: Some("Blocked until the API ships".into()),
        }),
    )
    .await;
}

async fn health_check_request_matches_the_spec_and_turns_serving(prism: &'static Prism) {
    let mut c = connector(prism).await;
    crate::health::wait_for(
        &mut c.health,
        tonic_health::pb::health_check_response::ServingStatus::Serving,
    )
    .await;
}

type Check = fn(&'static Prism) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Every tool, one after the other against one Prism (starting Prism on the
/// 2.4 MB spec takes seconds, and test runners such as nextest run each test in
/// its own process). Each check runs as its own task so one failure does not
/// hide the others; running them in turn keeps each Prism violation next to the
/// call that caused it.
#[tokio::test]
async fn every_tool_request_matches_the_jira_cloud_spec() {
    let Some(prism) = support::prism() else {
        return;
    };
    macro_rules! checks {
        ($($name:ident),* $(,)?) => {
            [$((stringify!($name), (|p| Box::pin($name(p))) as Check)),*]
        };
    }
    let mut failures = Vec::new();
    for (name, check) in checks![
        create_issue_request_matches_the_spec,
        get_issue_with_comments_and_transitions_matches_the_spec,
        search_pages_match_the_spec,
        update_issue_matches_the_spec,
        comments_match_the_spec,
        transition_by_id_matches_the_spec,
        assign_and_unassign_match_the_spec,
        project_tools_match_the_spec,
        restricted_project_listing_matches_the_spec,
        users_fields_and_links_match_the_spec,
        health_check_request_matches_the_spec_and_turns_serving,
    ] {
        if let Err(error) = tokio::spawn(check(prism)).await {
            failures.push(format!("{name}: {error}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} contract check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
