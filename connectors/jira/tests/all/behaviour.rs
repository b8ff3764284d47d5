//! Behaviour the spec cannot show, against a scripted fake Jira (wiremock) that
//! checks method, path, auth header and body and answers with real shapes.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_proto::jira::v1 as pb;
use tonic::Code;
use wiremock::matchers::{body_partial_json, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, Connector};

async fn fake_jira() -> MockServer {
    let jira = MockServer::start().await;
    // The health check; not what these tests are about.
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accountId": "bot"})))
        .with_priority(10)
        .mount(&jira)
        .await;
    jira
}

async fn requests_to(jira: &MockServer, p: &str) -> Vec<wiremock::Request> {
    jira.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

fn issue_json(key: &str) -> Value {
    json!({"id": "1", "key": key, "fields": {"summary": format!("Issue {key}"), "status": {"name": "To Do"}}})
}

async fn search(
    c: &mut Connector,
    jql: &str,
    token: Option<String>,
) -> Result<pb::SearchIssuesResponse, tonic::Status> {
    c.client
        .search_issues(pb::SearchIssuesRequest {
            jql: jql.into(),
            max_results: Some(2),
            page_token: token,
            fields: vec![],
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn search_pages_through_next_page_tokens_until_the_last_page() {
    let jira = fake_jira().await;
    let pages = [
        (None, vec!["PROJ-1", "PROJ-2"], Some("page-2")),
        (Some("page-2"), vec!["PROJ-3", "PROJ-4"], Some("page-3")),
        (Some("page-3"), vec!["PROJ-5"], None),
    ];
    for (token, keys, next) in &pages {
        let mut body = json!({"jql": "project = PROJ", "maxResults": 2});
        if let Some(token) = token {
            body["nextPageToken"] = json!(token);
        }
        let mut answer = json!({"issues": keys.iter().map(|k| issue_json(k)).collect::<Vec<_>>(), "isLast": next.is_none()});
        if let Some(next) = next {
            answer["nextPageToken"] = json!(next);
        }
        Mock::given(method("POST"))
            .and(path("/rest/api/3/search/jql"))
            .and(header(
                "authorization",
                support::basic_auth_header().as_str(),
            ))
            .and(body_partial_json(body))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .with_priority(if token.is_some() { 1 } else { 2 })
            .expect(1)
            .mount(&jira)
            .await;
    }
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages_read = 0;
    loop {
        let page = search(&mut c, "project = PROJ", token)
            .await
            .expect("search page");
        pages_read += 1;
        seen.extend(page.issues.iter().map(|i| i.key.clone()));
        match page.next_page_token {
            Some(next) => {
                assert!(!page.is_last);
                token = Some(next);
            }
            None => {
                assert!(page.is_last);
                break;
            }
        }
    }
    assert_eq!(pages_read, 3);
    assert_eq!(seen, vec!["PROJ-1", "PROJ-2", "PROJ-3", "PROJ-4", "PROJ-5"]);
    let first = &requests_to(&jira, "/rest/api/3/search/jql").await[0];
    let body: Value = serde_json::from_slice(&first.body).expect("json body");
    assert!(
        body["fields"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("summary")))
    );
}

#[tokio::test]
async fn a_search_error_is_an_error_not_an_empty_page() {
    let jira = fake_jira().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorMessages": ["Error in the JQL Query: The character '=' is a reserved JQL character."],
            "errors": {}
        })))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let err = search(&mut c, "summary = = x", None)
        .await
        .expect_err("bad JQL");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("reserved JQL character"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_retry_after_delay() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-9"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-9"))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue_json("PROJ-9")))
        .with_priority(2)
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let issue = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-9".into(),
            ..Default::default()
        })
        .await
        .expect("succeeds after the retry")
        .into_inner();
    assert_eq!(issue.summary, "Issue PROJ-9");
    assert_eq!(
        requests_to(&jira, "/rest/api/3/issue/PROJ-9").await.len(),
        2
    );
}

#[tokio::test]
async fn persistent_rate_limits_end_as_resource_exhausted() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/field"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let err = c
        .client
        .list_fields(pb::ListFieldsRequest::default())
        .await
        .expect_err("rate limited");
    assert_eq!(err.code(), Code::ResourceExhausted);
    // The first attempt and three retries.
    assert_eq!(requests_to(&jira, "/rest/api/3/field").await.len(), 4);
}

#[tokio::test]
async fn a_503_on_a_create_is_not_retried() {
    let jira = fake_jira().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let err = c
        .client
        .create_issue(pb::CreateIssueRequest {
            project_key: "PROJ".into(),
            summary: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("unavailable");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(requests_to(&jira, "/rest/api/3/issue").await.len(), 1);
}

#[tokio::test]
async fn a_401_says_which_credentials_to_check_without_showing_them() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-1"))
        .respond_with(ResponseTemplate::new(401).set_body_string("Unauthorized"))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let err = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("401");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("JIRA_API_TOKEN"),
        "{}",
        err.message()
    );
    support::assert_no_secret(&err);
}

#[tokio::test]
async fn error_bodies_name_each_rejected_field() {
    let jira = fake_jira().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorMessages": [],
            "errors": {"priority": "Specify a valid priority", "components": "Component name 'Nope' is not valid"}
        })))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let err = c
        .client
        .create_issue(pb::CreateIssueRequest {
            project_key: "PROJ".into(),
            summary: "x".into(),
            priority: Some("Urgent".into()),
            components: vec!["Nope".into()],
            ..Default::default()
        })
        .await
        .expect_err("rejected");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("field `priority`: Specify a valid priority"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("field `components`"),
        "{}",
        err.message()
    );
    support::assert_no_secret(&err);
}

#[tokio::test]
async fn a_404_says_what_was_not_found() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/project/NOPE"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"errorMessages": ["No project could be found with key 'NOPE'."]}),
        ))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let err = c
        .client
        .get_project(pb::GetProjectRequest { key: "nope".into() })
        .await
        .expect_err("404");
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("project NOPE")
            && err.message().contains("No project could be found"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn markdown_goes_to_jira_as_adf_and_comes_back_as_markdown() {
    let jira = fake_jira().await;
    let markdown = "## Steps\n\n1. open the page\n2. click **Login**\n\n```js\nlogin()\n```\n\nCc [@Ada](accountid:abc123), see [docs](https://example.com).";
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue"))
        .and(body_partial_json(json!({"fields": {
            "project": {"key": "PROJ"},
            "issuetype": {"name": "Bug"},
            "description": {"type": "doc", "version": 1}
        }})))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "10010", "key": "PROJ-10", "self": "x"})),
        )
        .expect(1)
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let created = c
        .client
        .create_issue(pb::CreateIssueRequest {
            project_key: "proj".into(),
            summary: "Login broken".into(),
            description: Some(markdown.into()),
            issue_type: Some("Bug".into()),
            ..Default::default()
        })
        .await
        .expect("created")
        .into_inner();
    assert_eq!(created.key, "PROJ-10");
    assert_eq!(created.url, format!("{}/browse/PROJ-10", jira.uri()));

    // What Jira received is ADF with the mention and code block as nodes…
    let sent: Value =
        serde_json::from_slice(&requests_to(&jira, "/rest/api/3/issue").await[0].body)
            .expect("json");
    let description = sent["fields"]["description"].clone();
    let text = description.to_string();
    assert!(
        text.contains(r#""type":"mention""#) && text.contains(r#""id":"abc123""#),
        "{text}"
    );
    assert!(
        text.contains(r#""type":"codeBlock""#) && text.contains(r#""language":"js""#),
        "{text}"
    );

    // …and the same ADF read back is the same Markdown.
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-10"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "10010", "key": "PROJ-10", "fields": {"summary": "Login broken", "description": description}
        })))
        .mount(&jira)
        .await;
    let issue = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-10".into(),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(issue.description, markdown);
    assert!(issue.description_warnings.is_empty());
}

#[tokio::test]
async fn unconvertible_adf_is_kept_and_flagged() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-3/comment"))
        .and(query_param("orderBy", "created"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "startAt": 0, "maxResults": 50, "total": 1,
            "comments": [{"id": "7", "author": {"accountId": "a1", "displayName": "Ada"}, "created": "2024-05-01T10:00:00.000+0000",
                "body": {"type": "doc", "version": 1, "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "Screenshot:"}]},
                    {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "m1", "type": "file", "collection": "c"}}]}
                ]}}]
        })))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let page = c
        .client
        .list_comments(pb::ListCommentsRequest {
            key: "PROJ-3".into(),
            ..Default::default()
        })
        .await
        .expect("comments")
        .into_inner();
    assert_eq!(page.total, 1);
    assert_eq!(page.next_start_at, None);
    let comment = &page.comments[0];
    assert!(
        comment.body.starts_with("Screenshot:\n\n```adf\n"),
        "{}",
        comment.body
    );
    assert!(comment.body.contains(r#""id":"m1""#));
    assert_eq!(comment.body_warnings.len(), 1);
    assert!(comment.body_warnings[0].contains("mediaSingle"));
}

#[tokio::test]
async fn a_project_restriction_wraps_jql_and_refuses_other_projects() {
    let jira = fake_jira().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_partial_json(json!({"jql": "project in (\"PROJ\") AND (project = SECRET OR assignee = currentUser()) ORDER BY updated DESC"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": [issue_json("PROJ-1")], "isLast": true})))
        .expect(1)
        .mount(&jira)
        .await;
    let mut config = support::cloud(&jira.uri());
    config.projects = vec!["PROJ".into()];
    let mut c = support::start(config).await;
    let page = search(
        &mut c,
        "project = SECRET OR assignee = currentUser() ORDER BY updated DESC",
        None,
    )
    .await
    .expect("restricted search");
    assert_eq!(page.issues.len(), 1);

    // A query that would close the wrapping parenthesis is refused before Jira sees it.
    let err = search(&mut c, "status = Done) OR (project = SECRET", None)
        .await
        .expect_err("escape attempt");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("`jql`"), "{}", err.message());
    assert_eq!(requests_to(&jira, "/rest/api/3/search/jql").await.len(), 1);

    let err = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "SECRET-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("other project");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("JIRA_PROJECTS"), "{}", err.message());
    let err = c
        .client
        .link_issues(pb::LinkIssuesRequest {
            link_type: "Blocks".into(),
            from_key: "PROJ-1".into(),
            to_key: "SECRET-2".into(),
            comment: None,
        })
        .await
        .expect_err("other project");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        requests_to(&jira, "/rest/api/3/issue/SECRET-1")
            .await
            .is_empty()
    );
    assert!(requests_to(&jira, "/rest/api/3/issueLink").await.is_empty());
}

#[tokio::test]
async fn an_issue_moved_out_of_the_allowed_projects_is_refused_by_its_old_key() {
    // Jira keeps a moved issue answering to its old key: PROJ-5 is now
    // SECRET-12, PROJ-7 is now OPS-3. PROJ-1 links to issues in both.
    let jira = fake_jira().await;
    for (old, now) in [("PROJ-5", "SECRET-12"), ("PROJ-7", "OPS-3")] {
        Mock::given(method("GET"))
            .and(path(format!("/rest/api/3/issue/{old}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(issue_json(now)))
            .mount(&jira)
            .await;
    }
    let mut linked = issue_json("PROJ-1");
    linked["fields"]["parent"] = json!({"key": "SECRET-1"});
    linked["fields"]["issuelinks"] = json!([
        {"type": {"name": "Blocks", "outward": "blocks"}, "outwardIssue": {"key": "SECRET-9", "fields": {"summary": "Acquire Initech", "status": {"name": "To Do"}}}},
        {"type": {"name": "Relates", "inward": "relates to"}, "inwardIssue": {"key": "OPS-2", "fields": {"summary": "Rotate keys", "status": {"name": "Done"}}}}
    ]);
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(linked.clone()))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/rest/api/3/issue/[A-Z]+-[0-9]+/comment$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "9", "author": {"accountId": "bot"}, "created": "2024-05-01T10:00:00.000+0000", "body": {"type": "doc", "version": 1, "content": []}})))
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"issues": [linked], "isLast": true})),
        )
        .mount(&jira)
        .await;
    let mut config = support::cloud(&jira.uri());
    config.projects = vec!["PROJ".into(), "OPS".into()];
    let mut c = support::start(config).await;

    let err = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-5".into(),
            ..Default::default()
        })
        .await
        .expect_err("moved out");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("PROJ-5")
            && err.message().contains("JIRA_PROJECTS")
            && !err.message().contains("SECRET"),
        "{}",
        err.message()
    );
    let comment = |key: &str| pb::AddCommentRequest {
        key: key.into(),
        body: "noted".into(),
    };
    let err = c
        .client
        .add_comment(comment("PROJ-5"))
        .await
        .expect_err("moved out");
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    // Arguments are checked before Jira is asked where the issue is.
    let err = c
        .client
        .add_comment(pb::AddCommentRequest {
            key: "PROJ-7".into(),
            body: " ".into(),
        })
        .await
        .expect_err("no body");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        requests_to(&jira, "/rest/api/3/issue/PROJ-7")
            .await
            .is_empty()
    );
    // Moved within the allowed projects: written where it is now.
    c.client
        .add_comment(comment("PROJ-7"))
        .await
        .expect("moved within");
    let posted: Vec<String> = jira
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/comment"))
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(posted, ["/rest/api/3/issue/OPS-3/comment"]);

    // What an allowed issue shows of issues outside is withheld.
    let issue = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-1".into(),
            ..Default::default()
        })
        .await
        .expect("allowed")
        .into_inner();
    let keys: Vec<&str> = issue.links.iter().map(|l| l.issue_key.as_str()).collect();
    assert_eq!(keys, ["OPS-2"]);
    assert_eq!(issue.parent_key, "");
    let page = search(&mut c, "status = Done", None).await.expect("search");
    assert_eq!(page.issues[0].links.len(), 1);
    assert!(format!("{page:?}").find("Initech").is_none(), "{page:?}");

    // Without JIRA_PROJECTS nothing is looked up first or withheld.
    let mut open = support::start(support::cloud(&jira.uri())).await;
    open.client
        .add_comment(comment("PROJ-5"))
        .await
        .expect("unrestricted");
    assert!(
        requests_to(&jira, "/rest/api/3/issue/PROJ-5/comment")
            .await
            .len()
            == 1,
        "written by the key given"
    );
    let issue = open
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-1".into(),
            ..Default::default()
        })
        .await
        .expect("unrestricted")
        .into_inner();
    assert_eq!(
        (issue.links.len(), issue.parent_key.as_str()),
        (2, "SECRET-1")
    );
}

/// Error hints name tools as the router names them (its prefix comes in the
/// `switchboard-tool-prefix` metadata).
#[tokio::test]
async fn errors_name_tools_under_the_routers_prefix() {
    let jira = fake_jira().await;
    let mut config = support::cloud(&jira.uri());
    config.read_only = true;
    let mut c = support::start(config).await;
    let comment = || pb::AddCommentRequest {
        key: "PROJ-1".into(),
        body: "hi".into(),
    };
    let mut request = tonic::Request::new(comment());
    request
        .metadata_mut()
        .insert("switchboard-tool-prefix", "tickets".parse().expect("ascii"));
    let renamed = c.client.add_comment(request).await.expect_err("read-only");
    assert!(
        renamed
            .message()
            .starts_with("tickets_add_comment changes Jira"),
        "{}",
        renamed.message()
    );
    let plain = c
        .client
        .add_comment(comment())
        .await
        .expect_err("read-only");
    assert!(
        plain.message().starts_with("jira_add_comment changes Jira"),
        "{}",
        plain.message()
    );
}

#[tokio::test]
async fn read_only_refuses_every_write_without_calling_jira() {
    let jira = fake_jira().await;
    let mut config = support::cloud(&jira.uri());
    config.read_only = true;
    let mut c = support::start(config).await;
    let statuses = [
        c.client
            .create_issue(pb::CreateIssueRequest {
                project_key: "PROJ".into(),
                summary: "x".into(),
                ..Default::default()
            })
            .await
            .expect_err("create"),
        c.client
            .update_issue(pb::UpdateIssueRequest {
                key: "PROJ-1".into(),
                summary: Some("y".into()),
                ..Default::default()
            })
            .await
            .expect_err("update"),
        c.client
            .add_comment(pb::AddCommentRequest {
                key: "PROJ-1".into(),
                body: "hi".into(),
            })
            .await
            .expect_err("comment"),
        c.client
            .transition_issue(pb::TransitionIssueRequest {
                key: "PROJ-1".into(),
                transition: "Done".into(),
                ..Default::default()
            })
            .await
            .expect_err("transition"),
        c.client
            .assign_issue(pb::AssignIssueRequest {
                key: "PROJ-1".into(),
                unassign: Some(true),
                ..Default::default()
            })
            .await
            .expect_err("assign"),
        c.client
            .link_issues(pb::LinkIssuesRequest {
                link_type: "Blocks".into(),
                from_key: "PROJ-1".into(),
                to_key: "PROJ-2".into(),
                comment: None,
            })
            .await
            .expect_err("link"),
    ];
    for status in &statuses {
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("JIRA_READ_ONLY"),
            "{}",
            status.message()
        );
    }
    let calls: Vec<_> = jira
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() != "/rest/api/3/myself")
        .collect();
    assert!(calls.is_empty(), "{calls:?}");
}

#[tokio::test]
async fn transitions_by_name_use_the_matching_id_and_unknown_names_list_the_valid_ones() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-5/transitions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"transitions": [
                {"id": "11", "name": "Start Progress", "to": {"name": "In Progress"}},
                {"id": "31", "name": "Done", "to": {"name": "Done"}}
            ]})),
        )
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issue/PROJ-5/transitions"))
        .and(body_partial_json(json!({"transition": {"id": "11"}})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let done = c
        .client
        .transition_issue(pb::TransitionIssueRequest {
            key: "PROJ-5".into(),
            transition: "start progress".into(),
            ..Default::default()
        })
        .await
        .expect("transitioned")
        .into_inner();
    assert_eq!(
        (done.transition_id.as_str(), done.to_status.as_str()),
        ("11", "In Progress")
    );

    let err = c
        .client
        .transition_issue(pb::TransitionIssueRequest {
            key: "PROJ-5".into(),
            transition: "Close".into(),
            ..Default::default()
        })
        .await
        .expect_err("no such transition");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("\"Start Progress\" (id 11)")
            && err.message().contains("\"Done\" (id 31)"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn custom_fields_given_by_name_are_sent_by_id() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/field"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "summary", "name": "Summary", "custom": false, "schema": {"type": "string"}},
            {"id": "customfield_10016", "name": "Story Points", "custom": true, "schema": {"type": "number"}}
        ])))
        .expect(1)
        .mount(&jira)
        .await;
    Mock::given(method("PUT"))
        .and(path("/rest/api/3/issue/PROJ-2"))
        .and(body_partial_json(
            json!({"fields": {"customfield_10016": 8}, "update": {"labels": [{"add": "sized"}]}}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let custom = prost_types::Struct {
        fields: [(
            "story points".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(8.0)),
            },
        )]
        .into_iter()
        .collect(),
    };
    let updated = c
        .client
        .update_issue(pb::UpdateIssueRequest {
            key: "PROJ-2".into(),
            add_labels: vec!["sized".into()],
            custom_fields: Some(custom),
            ..Default::default()
        })
        .await
        .expect("updated")
        .into_inner();
    assert_eq!(updated.updated_fields, vec!["customfield_10016", "labels"]);
    // The field list is fetched once and reused.
    let fields = c
        .client
        .list_fields(pb::ListFieldsRequest {
            query: Some("story".into()),
            custom_only: Some(true),
        })
        .await
        .expect("fields")
        .into_inner()
        .fields;
    assert_eq!(fields.len(), 1);
    assert_eq!(
        (fields[0].id.as_str(), fields[0].r#type.as_str()),
        ("customfield_10016", "number")
    );
}

#[tokio::test]
async fn bad_arguments_are_refused_with_the_field_named() {
    let jira = fake_jira().await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let err = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "../../admin".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad key");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("`key`"), "{}", err.message());
    let err = search(&mut c, "", None).await.expect_err("empty jql");
    assert!(err.message().contains("`jql`"), "{}", err.message());
    let err = c
        .client
        .search_issues(pb::SearchIssuesRequest {
            jql: "project = PROJ".into(),
            max_results: Some(1000),
            ..Default::default()
        })
        .await
        .expect_err("page too big");
    assert!(err.message().contains("`max_results`"), "{}", err.message());
    let err = c
        .client
        .assign_issue(pb::AssignIssueRequest {
            key: "PROJ-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("no assignee");
    assert!(err.message().contains("`assignee`"), "{}", err.message());
    let err = c
        .client
        .update_issue(pb::UpdateIssueRequest {
            key: "PROJ-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("nothing to change");
    assert!(
        err.message().contains("nothing to change"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn data_center_uses_api_v2_a_bearer_token_wiki_markup_and_start_at_paging() {
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "bot"})))
        .mount(&jira)
        .await;
    let bearer = format!("Bearer {}", support::TOKEN);
    Mock::given(method("POST"))
        .and(path("/rest/api/2/issue/PROJ-1/comment"))
        .and(header("authorization", bearer.as_str()))
        .and(body_partial_json(json!({"body": "h2. Done\n\n* *fixed* in {{main}}"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "5", "body": "h2. Done\n\n* *fixed* in {{main}}", "author": {"name": "bot", "key": "JIRAUSER1", "displayName": "Bot"}
        })))
        .expect(1)
        .mount(&jira)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/2/search"))
        .and(header("authorization", bearer.as_str()))
        .and(body_partial_json(json!({"jql": "project = PROJ", "startAt": 2, "maxResults": 2})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "startAt": 2, "maxResults": 2, "total": 5, "issues": [issue_json("PROJ-3"), issue_json("PROJ-4")]
        })))
        .expect(1)
        .mount(&jira)
        .await;
    let mut c = support::start(support::datacenter(&jira.uri())).await;
    let comment = c
        .client
        .add_comment(pb::AddCommentRequest {
            key: "PROJ-1".into(),
            body: "## Done\n\n- **fixed** in `main`".into(),
        })
        .await
        .expect("comment")
        .into_inner();
    // Jira stored wiki markup; the tool gives Markdown back.
    assert_eq!(comment.body, "## Done\n\n- **fixed** in `main`");
    assert_eq!(comment.author.map(|a| a.name), Some("bot".to_owned()));
    let page = search(&mut c, "project = PROJ", Some("2".into()))
        .await
        .expect("page 2");
    assert_eq!(page.issues.len(), 2);
    assert_eq!(page.next_page_token.as_deref(), Some("4"));
}

#[tokio::test]
async fn an_unknown_link_type_error_lists_the_link_types() {
    let jira = fake_jira().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/issueLink"))
        .and(body_partial_json(json!({"type": {"name": "Blocker"}, "inwardIssue": {"key": "PROJ-1"}, "outwardIssue": {"key": "PROJ-2"}})))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"errorMessages": ["No issue link type with name 'Blocker' found."]})))
        .expect(1)
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issueLinkType"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"issueLinkTypes": [
                {"id": "10000", "name": "Blocks", "inward": "is blocked by", "outward": "blocks"},
                {"id": "10001", "name": "Relates", "inward": "relates to", "outward": "relates to"}
            ]})),
        )
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let err = c
        .client
        .link_issues(pb::LinkIssuesRequest {
            link_type: "Blocker".into(),
            from_key: "PROJ-1".into(),
            to_key: "PROJ-2".into(),
            comment: None,
        })
        .await
        .expect_err("unknown type");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("\"Blocks\" (blocks / is blocked by)"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn get_issue_asks_for_comments_and_transitions_and_maps_them() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-4"))
        .and(query_param("expand", "transitions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "4", "key": "PROJ-4",
            "fields": {
                "summary": "With extras",
                "parent": {"key": "PROJ-1"},
                "customfield_10016": 3,
                "comment": {"total": 1, "comments": [{"id": "9", "author": {"accountId": "a1", "displayName": "Ada"},
                    "body": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "done", "marks": [{"type": "strong"}]}]}]}}]}
            },
            "transitions": [{"id": "31", "name": "Done", "to": {"name": "Done"}}]
        })))
        .expect(1)
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let issue = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "proj-4".into(),
            fields: vec!["customfield_10016".into()],
            include_comments: Some(true),
            include_transitions: Some(true),
        })
        .await
        .expect("issue")
        .into_inner();
    assert_eq!(issue.parent_key, "PROJ-1");
    assert_eq!(issue.comments.len(), 1);
    assert_eq!(issue.comments[0].body, "**done**");
    assert_eq!(issue.transitions[0].name, "Done");
    let other = issue.other_fields.expect("custom field");
    assert!(other.fields.contains_key("customfield_10016"));
    let request = &requests_to(&jira, "/rest/api/3/issue/PROJ-4").await[0];
    let fields = request
        .url
        .query_pairs()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    for wanted in ["summary", "description", "comment", "customfield_10016"] {
        assert!(
            fields.split(',').any(|f| f == wanted),
            "{wanted} missing from {fields}"
        );
    }
}

#[tokio::test]
async fn project_pages_point_to_the_next_start() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/project/search"))
        .and(query_param("startAt", "0"))
        .and(query_param("maxResults", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "startAt": 0, "maxResults": 2, "total": 3, "isLast": false,
            "values": [{"id": "1", "key": "AAA", "name": "Alpha", "projectTypeKey": "software"}, {"id": "2", "key": "BBB", "name": "Beta"}]
        })))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let page = c
        .client
        .list_projects(pb::ListProjectsRequest {
            max_results: Some(2),
            ..Default::default()
        })
        .await
        .expect("projects")
        .into_inner();
    assert_eq!(page.projects.len(), 2);
    assert_eq!(page.projects[0].project_type, "software");
    assert_eq!(page.next_start_at, Some(2));
}

#[tokio::test]
async fn a_field_created_after_the_list_was_read_is_found_by_name() {
    let jira = fake_jira().await;
    let field = |id: &str, name: &str| json!({"id": id, "name": name, "custom": true, "schema": {"type": "string"}});
    // The list as first read, then with a field created since.
    Mock::given(method("GET"))
        .and(path("/rest/api/3/field"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([field("customfield_10016", "Story Points")])),
        )
        .up_to_n_times(1)
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/field"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            field("customfield_10016", "Story Points"),
            field("customfield_10020", "Sprint Goal")
        ])))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue_json("PROJ-1")))
        .mount(&jira)
        .await;
    let mut config = support::cloud(&jira.uri());
    // A name missing from a list older than 0.2 s fetches it again.
    config.fields_ttl = Duration::from_secs(2);
    let mut c = support::start(config).await;
    get_with_field(&mut c, "Story Points")
        .await
        .expect("a field of the first list");
    tokio::time::sleep(Duration::from_millis(300)).await;
    get_with_field(&mut c, "Sprint Goal")
        .await
        .expect("found after fetching the list again");
    let requested = requests_to(&jira, "/rest/api/3/issue/PROJ-1").await;
    assert!(
        requested
            .last()
            .and_then(|r| r.url.query())
            .is_some_and(|q| q.contains("customfield_10020")),
        "{requested:?}"
    );
    // A name that is nowhere, asked at once again, is refused from the fresh list
    // without fetching it a third time.
    let err = get_with_field(&mut c, "No Such Field")
        .await
        .expect_err("unknown field");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("jira_list_fields"),
        "{}",
        err.message()
    );
    assert_eq!(requests_to(&jira, "/rest/api/3/field").await.len(), 2);
}

async fn get_with_field(c: &mut Connector, field: &str) -> Result<pb::Issue, tonic::Status> {
    c.client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-1".into(),
            fields: vec![field.to_owned()],
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

// ------------------------------------------------------------- hostile input

/// Markdown nested this deep used to be built into an ADF tree whose drop and
/// serialization recursed once per level and aborted the connector.
fn nested_quotes(depth: usize) -> String {
    format!("{}deep", "> ".repeat(depth))
}

fn nested_list(depth: usize) -> String {
    format!("{}deep", "- ".repeat(depth))
}

fn assert_refused_as_too_deep(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(
        status.message().contains("JIRA_MAX_NESTING_DEPTH")
            && status.message().contains(&format!("`{field}`")),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn deeply_nested_markdown_is_refused_before_jira_and_the_connector_keeps_serving() {
    let jira = fake_jira().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue_json("PROJ-1")))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let status = c
        .client
        .create_issue(pb::CreateIssueRequest {
            project_key: "PROJ".into(),
            summary: "deep".into(),
            description: Some(nested_quotes(20_000)),
            issue_type: Some("Task".into()),
            ..Default::default()
        })
        .await
        .expect_err("too deep");
    assert_refused_as_too_deep(&status, "description");
    let status = c
        .client
        .add_comment(pb::AddCommentRequest {
            key: "PROJ-1".into(),
            body: nested_list(20_000),
        })
        .await
        .expect_err("too deep");
    assert_refused_as_too_deep(&status, "body");
    let status = c
        .client
        .update_issue(pb::UpdateIssueRequest {
            key: "PROJ-1".into(),
            description: Some(format!("{}x", "1. ".repeat(20_000))),
            ..Default::default()
        })
        .await
        .expect_err("too deep");
    assert_refused_as_too_deep(&status, "description");
    let status = c
        .client
        .link_issues(pb::LinkIssuesRequest {
            link_type: "Blocks".into(),
            from_key: "PROJ-1".into(),
            to_key: "PROJ-2".into(),
            comment: Some(nested_quotes(20_000)),
        })
        .await
        .expect_err("too deep");
    assert_refused_as_too_deep(&status, "comment");

    // Nothing reached Jira, and the connector still answers.
    let writes: Vec<_> = jira
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method != wiremock::http::Method::GET)
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    let issue = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-1".into(),
            ..Default::default()
        })
        .await
        .expect("still serving")
        .into_inner();
    assert_eq!(issue.key, "PROJ-1");
}

#[tokio::test]
async fn data_center_refuses_deeply_nested_markdown_too() {
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/2/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "bot"})))
        .mount(&jira)
        .await;
    let mut c = support::start(support::datacenter(&jira.uri())).await;
    let status = c
        .client
        .add_comment(pb::AddCommentRequest {
            key: "PROJ-1".into(),
            body: nested_quotes(20_000),
        })
        .await
        .expect_err("too deep");
    assert_refused_as_too_deep(&status, "body");
    assert!(
        requests_to(&jira, "/rest/api/2/issue/PROJ-1/comment")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_description_nested_fifty_thousand_levels_deep_is_a_clear_error_not_a_crash() {
    let jira = fake_jira().await;
    let depth = 50_000;
    let description = format!(
        "{}{{\"type\":\"text\",\"text\":\"deep\"}}{}",
        "{\"type\":\"blockquote\",\"content\":[".repeat(depth),
        "]}".repeat(depth)
    );
    let body = format!(
        "{{\"id\":\"9\",\"key\":\"PROJ-9\",\"fields\":{{\"summary\":\"deep\",\"description\":{{\"type\":\"doc\",\"version\":1,\"content\":[{description}]}}}}}}"
    );
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-9"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&jira)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/issue/PROJ-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue_json("PROJ-1")))
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let status = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-9".into(),
            ..Default::default()
        })
        .await
        .expect_err("too deep to read");
    assert_eq!(status.code(), Code::Internal, "{}", status.message());
    assert!(
        status.message().contains("issue PROJ-9") && status.message().contains("128 levels"),
        "{}",
        status.message()
    );
    let issue = c
        .client
        .get_issue(pb::GetIssueRequest {
            key: "PROJ-1".into(),
            ..Default::default()
        })
        .await
        .expect("still serving")
        .into_inner();
    assert_eq!(issue.key, "PROJ-1");
}

#[tokio::test]
async fn restricted_jql_of_any_script_reaches_jira_wrapped_and_escapes_do_not() {
    let jira = fake_jira().await;
    let accepted = [
        "assignee = José",
        "summary ~ 🦀 AND labels = e\u{301}te\u{301}",
        "reporter = שלום ORDER BY créé DESC",
        "summary ~ \"a \\\" ) OR project = SECRET OR (b\"",
    ];
    for jql in accepted {
        let (query, order) = match jql.split_once(" ORDER BY ") {
            Some((query, order)) => (query, format!(" ORDER BY {order}")),
            None => (jql, String::new()),
        };
        Mock::given(method("POST"))
            .and(path("/rest/api/3/search/jql"))
            .and(body_partial_json(
                json!({"jql": format!("project in (\"PROJ\") AND ({query}){order}")}),
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"issues": [issue_json("PROJ-1")], "isLast": true})),
            )
            .expect(1)
            .mount(&jira)
            .await;
    }
    let mut config = support::cloud(&jira.uri());
    config.projects = vec!["PROJ".into()];
    let mut c = support::start(config).await;
    for jql in accepted {
        let page = search(&mut c, jql, None)
            .await
            .unwrap_or_else(|e| panic!("{jql:?}: {}", e.message()));
        assert_eq!(page.issues.len(), 1, "{jql:?}");
    }
    for (jql, says) in [
        (
            r"summary ~ a\' ) OR project = SECRET OR (summary ~ '\''",
            "backslash",
        ),
        ("x = 1\n) OR (project = SECRET", "`)`"),
        ("x = 1 ORDER BY key OR project = SECRET", "ORDER BY"),
        ("x = \"a\nb\") OR (y = \"", "control character"),
    ] {
        let status = search(&mut c, jql, None).await.expect_err("escape attempt");
        assert_eq!(status.code(), Code::InvalidArgument, "{jql:?}");
        assert!(
            status.message().contains("`jql`") && status.message().contains(says),
            "{jql:?}: {}",
            status.message()
        );
    }
    assert_eq!(
        requests_to(&jira, "/rest/api/3/search/jql").await.len(),
        accepted.len()
    );
}

#[tokio::test]
async fn an_answer_larger_than_the_connector_reads_fails_the_call_naming_the_variable() {
    let jira = fake_jira().await;
    // A valid search page whose issue descriptions outgrow the bound.
    let issues: Vec<Value> = (0..20)
        .map(|i| {
            let mut issue = issue_json(&format!("PROJ-{i}"));
            issue["fields"]["summary"] = json!("x".repeat(8 * 1024));
            issue
        })
        .collect();
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": issues})))
        .mount(&jira)
        .await;
    let mut config = support::cloud(&jira.uri());
    config.max_response_bytes = 64 * 1024;
    let mut c = support::start(config).await;
    let err = search(&mut c, "project = PROJ", None)
        .await
        .expect_err("over the bound");
    assert!(
        err.message().contains("JIRA_MAX_RESPONSE_BYTES") && err.message().contains("65536"),
        "{}",
        err.message()
    );
    support::assert_no_secret(&err);

    // The same page within the default bound is read.
    let mut c = support::start(support::cloud(&jira.uri())).await;
    let page = search(&mut c, "project = PROJ", None).await.expect("read");
    assert_eq!(page.issues.len(), 20);
}
