//! The Slack connector through the router, against a scripted fake of the Web API
//! (errors as HTTP 200 with ok:false, cursors, name resolution).

use integration_tests::process::Connector;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn ok(mut body: Value) -> ResponseTemplate {
    body["ok"] = json!(true);
    ResponseTemplate::new(200).set_body_json(body)
}

async fn fake_slack() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/api/auth.test"))
        .respond_with(ok(json!({"url": "https://acme.slack.com/", "team": "Acme", "user": "switchboard", "team_id": "T1", "user_id": "U0BOT"})))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.list"))
        .and(query_param("cursor", "page2"))
        .respond_with(ok(json!({"channels": [{"id": "C0DEPLOYS", "name": "deploys"}], "response_metadata": {"next_cursor": ""}})))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.list"))
        .respond_with(ok(json!({"channels": [{"id": "C0GENERAL", "name": "general"}], "response_metadata": {"next_cursor": "page2"}})))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.history"))
        .and(query_param("channel", "C0DEPLOYS"))
        .respond_with(ok(json!({"messages": [
            {"ts": "1712345678.000100", "user": "U0ALICE", "text": "shipping v2"}
        ], "response_metadata": {"next_cursor": "older"}})))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.history"))
        .and(query_param("channel", "C0SECRET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "not_in_channel"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/users.info"))
        .respond_with(ok(json!({"user": {"id": "U0ALICE", "name": "alice", "profile": {"display_name": "alice", "real_name": "Alice A"}}})))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn slack_tools_work_through_the_router() {
    let server = fake_slack().await;
    let base = format!("{}/api", server.uri());
    let slack = Connector::start(
        "slack-connector",
        0,
        &[
            ("SLACK_API_BASE_URL", base.as_str()),
            ("SLACK_BOT_TOKEN", "xoxb-test-token"),
            ("SLACK_ALLOW_WRITES", "false"),
        ],
    )
    .await
    .expect("start slack");
    slack.wait_serving().await.expect("slack SERVING");
    let (client, _) = stdio_client(&connector_args(&[spec("slack", &slack)])).await;

    // With writes off only the six reading tools are offered.
    let mut names = tool_names(&client).await;
    names.sort();
    assert_eq!(
        names,
        [
            "slack_get_channel_history",
            "slack_get_thread_replies",
            "slack_get_user_profile",
            "slack_get_users",
            "slack_list_channels",
            "slack_search_messages",
        ],
    );

    // A channel name on the second page of the listing is resolved; authors are named.
    let history = call(
        &client,
        "slack_get_channel_history",
        json!({"channel": "#deploys", "limit": 5}),
    )
    .await;
    assert!(!is_error(&history), "{}", text(&history));
    let page = history.structured_content.expect("structured");
    assert_eq!(page["messages"][0]["channel_name"], "deploys", "{page}");
    assert_eq!(page["messages"][0]["user_name"], "alice", "{page}");
    assert_eq!(page["next_page_token"], "older");

    // Slack's ok:false becomes a tool error that says what to do.
    let refused = call(
        &client,
        "slack_get_channel_history",
        json!({"channel": "C0SECRET"}),
    )
    .await;
    assert!(is_error(&refused));
    assert!(
        text(&refused).contains("not_in_channel") && text(&refused).contains("/invite"),
        "{}",
        text(&refused)
    );

    // Writes are off unless enabled: a writing tool is not there to call, and
    // nothing is sent.
    let send = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("slack_send_message")
                .with_arguments(args(json!({"channel": "C0DEPLOYS", "text": "hi"}))),
        )
        .await
        .expect_err("slack_send_message is not offered")
        .to_string();
    assert!(
        send.contains("\"slack_send_message\" is not offered")
            && send.contains("connector \"slack\" hides it"),
        "{send}"
    );
    let posted = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/api/chat.postMessage")
        .count();
    assert_eq!(posted, 0);
    assert!(!text(&refused).contains("xoxb-test-token") && !send.contains("xoxb-test-token"));
}

#[tokio::test]
async fn every_slack_tool_answers_through_the_router_with_writes_enabled() {
    let server = fake_slack().await;
    let routes = [
        (
            "chat.postMessage",
            json!({"channel": "C0DEPLOYS", "ts": "1712345678.000200", "message": {"text": "hi", "user": "U0BOT"}}),
        ),
        (
            "chat.update",
            json!({"channel": "C0DEPLOYS", "ts": "1712345678.000200", "text": "edited", "message": {"text": "edited"}}),
        ),
        (
            "chat.delete",
            json!({"channel": "C0DEPLOYS", "ts": "1712345678.000200"}),
        ),
        ("reactions.add", json!({})),
        (
            "conversations.create",
            json!({"channel": {"id": "C0NEW", "name": "incident-42", "is_private": false}}),
        ),
        (
            "conversations.replies",
            json!({"messages": [{"ts": "1712345678.000100", "user": "U0ALICE", "text": "root", "thread_ts": "1712345678.000100"}], "has_more": false}),
        ),
        (
            "users.list",
            json!({"members": [{"id": "U0ALICE", "name": "alice", "profile": {"display_name": "alice", "real_name": "Alice A"}}], "response_metadata": {"next_cursor": ""}}),
        ),
        (
            "users.profile.get",
            json!({"profile": {"display_name": "alice", "real_name": "Alice A", "email": "alice@example.com", "title": "SRE"}}),
        ),
        (
            "search.messages",
            json!({"query": "deploy", "messages": {"total": 1, "matches": [{"ts": "1712345678.000100", "user": "U0ALICE", "text": "deploy done", "channel": {"id": "C0DEPLOYS", "name": "deploys"}, "permalink": "https://acme.slack.com/archives/C0DEPLOYS/p1712345678000100"}], "paging": {"count": 20, "total": 1, "page": 1, "pages": 1}}}),
        ),
    ];
    for (method_name, body) in routes {
        Mock::given(path(format!("/api/{method_name}")))
            .respond_with(ok(body))
            .mount(&server)
            .await;
    }
    let base = format!("{}/api", server.uri());
    let slack = Connector::start(
        "slack-connector",
        0,
        &[
            ("SLACK_API_BASE_URL", base.as_str()),
            ("SLACK_BOT_TOKEN", "xoxb-test-token"),
            ("SLACK_USER_TOKEN", "xoxp-test-token"),
            ("SLACK_ALLOW_WRITES", "true"),
        ],
    )
    .await
    .expect("start slack");
    slack.wait_serving().await.expect("slack SERVING");
    let (client, _) = stdio_client(&connector_args(&[spec("slack", &slack)])).await;

    let names = tool_names(&client).await;
    assert_eq!(names.len(), 11, "{names:?}");
    let delete = find_tool(&client, "slack_delete_message").await;
    assert_eq!(
        delete.annotations.and_then(|a| a.destructive_hint),
        Some(true)
    );

    let ts = "1712345678.000200";
    for (tool, arguments) in [
        ("slack_list_channels", json!({"limit": 10})),
        ("slack_get_channel_history", json!({"channel": "C0DEPLOYS"})),
        (
            "slack_get_thread_replies",
            json!({"channel": "C0DEPLOYS", "thread_ts": "1712345678.000100"}),
        ),
        ("slack_get_users", json!({})),
        ("slack_get_user_profile", json!({"user": "U0ALICE"})),
        ("slack_search_messages", json!({"query": "deploy"})),
        (
            "slack_send_message",
            json!({"channel": "#deploys", "text": "Deploy of *api* finished"}),
        ),
        (
            "slack_update_message",
            json!({"channel": "C0DEPLOYS", "ts": ts, "text": "edited"}),
        ),
        (
            "slack_add_reaction",
            json!({"channel": "C0DEPLOYS", "ts": ts, "emoji": "white_check_mark"}),
        ),
        (
            "slack_delete_message",
            json!({"channel": "C0DEPLOYS", "ts": ts}),
        ),
        ("slack_create_channel", json!({"name": "incident-42"})),
    ] {
        let result = call(&client, tool, arguments.clone()).await;
        assert!(!is_error(&result), "{tool} {arguments}: {}", text(&result));
        assert!(result.structured_content.is_some(), "{tool}");
    }
    let sent = server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.url.path() == "/api/chat.postMessage")
        .expect("chat.postMessage was sent");
    let auth = sent
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(auth, "Bearer xoxb-test-token", "writes use the bot token");
    let body = String::from_utf8_lossy(&sent.body);
    assert!(
        body.contains("C0DEPLOYS"),
        "the channel name was resolved to its id: {body}"
    );
}
