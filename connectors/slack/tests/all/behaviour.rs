//! Behaviour against a scripted Slack (wiremock): `ok: false` errors, cursors,
//! 429 + Retry-After, name resolution, author names, the write switch, channel
//! lists, search tokens and health.

use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard_proto::slack::v1::{
    AddReactionRequest, CreateChannelRequest, DeleteMessageRequest, GetChannelHistoryRequest,
    GetThreadRepliesRequest, GetUserProfileRequest, GetUsersRequest, ListChannelsRequest,
    SearchMessagesRequest, SearchSort, SendMessageRequest, UpdateMessageRequest,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{BOT_TOKEN, Connector, USER_TOKEN, assert_no_secret, config};

/// A Slack answer with `ok: true` added.
fn ok(body: Value) -> ResponseTemplate {
    let mut body = body;
    body["ok"] = json!(true);
    ResponseTemplate::new(200).set_body_json(body)
}

/// An `ok: false` answer, HTTP 200 as Slack sends it.
fn refused(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code}))
}

/// A fake Slack at `<uri>/api` whose `auth.test` succeeds.
async fn slack() -> (MockServer, String) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/auth.test"))
        .and(header("authorization", format!("Bearer {BOT_TOKEN}").as_str()))
        .respond_with(ok(json!({"url": "https://acme.slack.com/", "team": "Acme", "user": "switchboard", "team_id": "T1", "user_id": "U0BOT"})))
        .mount(&server)
        .await;
    let base = format!("{}/api", server.uri());
    (server, base)
}

/// The values of `key` in a form-encoded body.
fn form_values(request: &Request, key: &str) -> Vec<String> {
    let body = String::from_utf8_lossy(&request.body);
    reqwest::Url::parse(&format!("http://form/?{body}"))
        .map(|u| {
            u.query_pairs()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Matches a form-encoded body holding `key=value`.
fn form(key: &'static str, value: &'static str) -> impl Fn(&Request) -> bool + Send + Sync {
    move |request: &Request| form_values(request, key).iter().any(|v| v == value)
}

/// Requests the fake received for a Web API method.
async fn calls(server: &MockServer, method_name: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == format!("/api/{method_name}"))
        .collect()
}

fn history(channel: &str) -> GetChannelHistoryRequest {
    GetChannelHistoryRequest {
        channel: channel.to_owned(),
        ..Default::default()
    }
}

async fn mount_users_info(server: &MockServer, id: &str, display_name: &str) {
    Mock::given(method("GET"))
        .and(path("/api/users.info"))
        .and(query_param("user", id))
        .respond_with(ok(json!({"user": {"id": id, "name": "handle", "profile": {"display_name": display_name, "real_name": "Real Name"}}})))
        .mount(server)
        .await;
}

#[tokio::test]
async fn not_in_channel_says_to_invite_the_app() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.history"))
        .respond_with(refused("not_in_channel"))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let status = connector
        .client()
        .get_channel_history(history("C0123ABCD"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("not_in_channel"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("/invite"), "{}", status.message());
}

#[tokio::test]
async fn missing_scope_names_the_scope_to_add() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.history"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": false, "error": "missing_scope", "needed": "channels:history", "provided": "chat:write,channels:read"
        })))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let status = connector
        .client()
        .get_channel_history(history("C0123ABCD"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("missing_scope"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("channels:history"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("reinstall"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn channel_not_found_is_not_found() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.replies"))
        .respond_with(refused("channel_not_found"))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let status = connector
        .client()
        .get_thread_replies(GetThreadRepliesRequest {
            channel: "C0GONE000".to_owned(),
            thread_ts: "1712345678.000100".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("channel_not_found"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("slack_list_channels"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn invalid_auth_points_at_the_token_without_showing_it() {
    let server = MockServer::start().await;
    Mock::given(path("/api/auth.test"))
        .respond_with(refused("invalid_auth"))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.list"))
        .respond_with(refused("invalid_auth"))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&format!("{}/api", server.uri()))).await;
    let status = connector
        .client()
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("invalid_auth"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("SLACK_BOT_TOKEN"),
        "{}",
        status.message()
    );
    assert_no_secret(&status);
}

#[tokio::test]
async fn listings_follow_slack_cursors_through_page_tokens() {
    let (server, base) = slack().await;
    Mock::given(method("GET"))
        .and(path("/api/conversations.list"))
        .and(query_param_is_missing("cursor"))
        .and(query_param("limit", "2"))
        .respond_with(ok(json!({
            "channels": [{"id": "C01", "name": "general", "is_member": true}, {"id": "C02", "name": "random"}],
            "response_metadata": {"next_cursor": "dGVhbTpDMDM="}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/conversations.list"))
        .and(query_param("cursor", "dGVhbTpDMDM="))
        .respond_with(ok(json!({
            "channels": [{"id": "C03", "name": "ops", "topic": {"value": "on call"}, "num_members": 7, "created": 1503435956}],
            "response_metadata": {"next_cursor": ""}
        })))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let mut client = connector.client();

    let first = client
        .list_channels(ListChannelsRequest {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = first.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["general", "random"]);
    assert!(first.channels[0].is_member);
    assert_eq!(first.next_page_token, "dGVhbTpDMDM=");

    let second = client
        .list_channels(ListChannelsRequest {
            limit: Some(2),
            page_token: Some(first.next_page_token),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.channels.len(), 1);
    assert_eq!(second.channels[0].id, "C03");
    assert_eq!(second.channels[0].topic, "on call");
    assert_eq!(second.channels[0].num_members, 7);
    assert_eq!(second.channels[0].created, "2017-08-22T21:05:56Z");
    assert_eq!(second.next_page_token, "", "the last page has no token");
}

#[tokio::test]
async fn users_are_paged_and_filtered() {
    let (server, base) = slack().await;
    Mock::given(path("/api/users.list"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ok(json!({
            "members": [
                {"id": "U1", "name": "alice", "profile": {"display_name": "Alice", "real_name": "Alice A"}, "tz": "Europe/Paris"},
                {"id": "U2", "name": "gone", "deleted": true},
                {"id": "B1", "name": "deploybot", "is_bot": true}
            ],
            "response_metadata": {"next_cursor": "next=="}
        })))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let page = connector
        .client()
        .get_users(GetUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.users.len(),
        1,
        "deleted users and bots are left out by default"
    );
    assert_eq!(page.users[0].display_name, "Alice");
    assert_eq!(page.users[0].time_zone, "Europe/Paris");
    assert_eq!(page.next_page_token, "next==");

    let all = connector
        .client()
        .get_users(GetUsersRequest {
            include_deleted: Some(true),
            include_bots: Some(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.users.len(), 3);
}

#[tokio::test]
async fn rate_limited_calls_wait_for_retry_after_then_succeed() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.history"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.history"))
        .respond_with(ok(
            json!({"messages": [{"ts": "1712345678.000100", "text": "after the wait"}]}),
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let page = connector
        .client()
        .get_channel_history(history("C0123ABCD"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.messages[0].text, "after the wait");
    assert_eq!(calls(&server, "conversations.history").await.len(), 2);
}

#[tokio::test]
async fn writes_that_hit_429_are_retried_too() {
    let (server, base) = slack().await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(ok(json!({"channel": "C0123ABCD", "ts": "1712345678.000200", "message": {"text": "hi", "bot_id": "B1", "username": "switchboard"}})))
        .with_priority(2)
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let sent = connector
        .client()
        .send_message(SendMessageRequest {
            channel: "C0123ABCD".to_owned(),
            text: "hi".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.ts, "1712345678.000200");
    assert_eq!(calls(&server, "chat.postMessage").await.len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_is_resource_exhausted_at_once() {
    let (server, base) = slack().await;
    Mock::given(path("/api/users.list"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let status = connector
        .client()
        .get_users(GetUsersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("3600 s"), "{}", status.message());
    assert_eq!(calls(&server, "users.list").await.len(), 1);
}

#[tokio::test]
async fn server_errors_on_reads_are_retried() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.replies"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.replies"))
        .and(query_param("ts", "1712345678.000100"))
        .respond_with(ok(json!({"messages": [
            {"ts": "1712345678.000100", "thread_ts": "1712345678.000100", "reply_count": 1, "text": "parent"},
            {"ts": "1712345679.000100", "thread_ts": "1712345678.000100", "text": "reply"}
        ]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let page = connector
        .client()
        .get_thread_replies(GetThreadRepliesRequest {
            channel: "C0123ABCD".to_owned(),
            thread_ts: "1712345678.000100".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.messages.len(), 2);
    assert_eq!(page.messages[0].reply_count, 1);
    assert_eq!(page.messages[1].text, "reply");
}

#[tokio::test]
async fn server_errors_on_posts_are_not_repeated() {
    let (server, base) = slack().await;
    Mock::given(path("/api/chat.postMessage"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let status = connector
        .client()
        .send_message(SendMessageRequest {
            channel: "C0123ABCD".to_owned(),
            text: "once only".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        calls(&server, "chat.postMessage").await.len(),
        1,
        "a message must not be posted twice"
    );
}

#[tokio::test]
async fn channel_names_resolve_across_listing_pages_and_authors_are_named() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.list"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ok(json!({
            "channels": [{"id": "C0GENERAL", "name": "general"}],
            "response_metadata": {"next_cursor": "page2"}
        })))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.list"))
        .and(query_param("cursor", "page2"))
        .respond_with(ok(
            json!({"channels": [{"id": "C0DEPLOYS", "name": "deploys"}]}),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.history"))
        .and(query_param("channel", "C0DEPLOYS"))
        .respond_with(ok(json!({"messages": [
            {"ts": "1712345678.000100", "user": "U0ALICE", "text": "shipping v2, thanks <@U0BOB>", "reactions": [{"name": "rocket", "count": 2}]},
            {"ts": "1712345600.000100", "user": "U0ALICE", "text": "starting deploy"},
            {"ts": "1712345500.000100", "bot_id": "B1", "username": "ci-bot", "subtype": "bot_message", "text": "build green"}
        ], "response_metadata": {"next_cursor": "older"}})))
        .mount(&server)
        .await;
    mount_users_info(&server, "U0ALICE", "alice").await;
    mount_users_info(&server, "U0BOB", "bob").await;
    let connector = Connector::start(config(&base)).await;
    let mut client = connector.client();

    let page = client
        .get_channel_history(history("#deploys"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.messages.len(), 3);
    let first = &page.messages[0];
    assert_eq!(first.channel_id, "C0DEPLOYS");
    assert_eq!(first.channel_name, "deploys");
    assert_eq!(first.user_id, "U0ALICE");
    assert_eq!(first.user_name, "alice");
    assert_eq!(first.time, "2024-04-05T19:34:38.000100Z");
    assert_eq!(first.reactions[0].name, "rocket");
    assert_eq!(first.mentions.len(), 1);
    assert_eq!(
        (
            first.mentions[0].user_id.as_str(),
            first.mentions[0].user_name.as_str()
        ),
        ("U0BOB", "bob")
    );
    assert_eq!(page.messages[2].user_name, "ci-bot");
    assert_eq!(page.next_page_token, "older");

    // Names and authors are cached: a second read lists nothing and asks no user.
    client
        .get_channel_history(history("deploys"))
        .await
        .unwrap();
    assert_eq!(calls(&server, "conversations.list").await.len(), 2);
    assert_eq!(calls(&server, "users.info").await.len(), 2);
}

#[tokio::test]
async fn a_renamed_channel_is_not_reached_or_judged_by_its_old_name() {
    let (server, base) = slack().await;
    // Before: C0OLDGENL is #general, C0RANDOM0 is #random.
    Mock::given(path("/api/conversations.list"))
        .respond_with(ok(json!({"channels": [
            {"id": "C0OLDGENL", "name": "general"}, {"id": "C0RANDOM0", "name": "random"}
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ok(
            json!({"ts": "1712345679.000200", "message": {"text": "hi", "user": "U0BOT"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.info"))
        .and(query_param("channel", "C0RANDOM0"))
        .respond_with(ok(
            json!({"channel": {"id": "C0RANDOM0", "name": "random"}}),
        ))
        .mount(&server)
        .await;
    mount_users_info(&server, "U0BOT", "Switchboard").await;
    let connector = Connector::start(slack_connector::Config {
        channels_deny: vec!["secret".to_owned()],
        channel_name_ttl: std::time::Duration::ZERO,
        ..config(&base)
    })
    .await;
    let mut client = connector.client();
    let to = |channel: &str| SendMessageRequest {
        channel: channel.to_owned(),
        text: "hi".to_owned(),
        ..Default::default()
    };
    client.send_message(to("#general")).await.unwrap();
    client.send_message(to("C0RANDOM0")).await.unwrap();

    // Then #general becomes #general-old, a new #general is made, and #random
    // becomes #secret, which the deny list names.
    Mock::given(path("/api/conversations.list"))
        .respond_with(ok(json!({"channels": [
            {"id": "C0OLDGENL", "name": "general-old"}, {"id": "C0NEWGENL", "name": "general"},
            {"id": "C0RANDOM0", "name": "secret"}
        ]})))
        .with_priority(1)
        .mount(&server)
        .await;
    for (id, name) in [("C0OLDGENL", "general-old"), ("C0RANDOM0", "secret")] {
        Mock::given(path("/api/conversations.info"))
            .and(query_param("channel", id))
            .respond_with(ok(json!({"channel": {"id": id, "name": name}})))
            .with_priority(1)
            .mount(&server)
            .await;
    }
    // A listing ran a moment ago; the one a rename calls for waits its floor.
    tokio::time::sleep(slack_connector::directory::RENAMED_RELIST_INTERVAL).await;
    client.send_message(to("#general")).await.unwrap();
    let refused = client.send_message(to("C0RANDOM0")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("SLACK_CHANNELS_DENY"),
        "{refused:?}"
    );

    let posted: Vec<String> = calls(&server, "chat.postMessage")
        .await
        .iter()
        .flat_map(|r| form_values(r, "channel"))
        .collect();
    assert_eq!(posted, ["C0OLDGENL", "C0RANDOM0", "C0NEWGENL"]);
}

#[tokio::test]
async fn an_unknown_channel_name_is_not_found_with_a_hint() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.list"))
        .respond_with(ok(
            json!({"channels": [{"id": "C0GENERAL", "name": "general"}]}),
        ))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let status = connector
        .client()
        .get_channel_history(history("#nope"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("#nope"), "{}", status.message());
    assert!(
        status.message().contains("slack_list_channels"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn user_names_resolve_to_profiles() {
    let (server, base) = slack().await;
    Mock::given(path("/api/users.list"))
        .respond_with(ok(json!({"members": [
            {"id": "W012A3CDE", "name": "spengler", "profile": {"real_name": "Egon Spengler", "display_name": "spengler", "email": "egon@ghostbusters.example.com"}},
            {"id": "W07QCRPA4", "name": "glinda", "profile": {"real_name": "Glinda Southgood"}}
        ]})))
        .mount(&server)
        .await;
    Mock::given(path("/api/users.profile.get"))
        .and(query_param("user", "W012A3CDE"))
        .respond_with(ok(json!({"profile": {
            "real_name": "Egon Spengler", "display_name": "spengler", "title": "Scientist",
            "email": "egon@ghostbusters.example.com", "status_text": "Print is dead", "status_emoji": ":books:"
        }})))
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let mut client = connector.client();
    for who in [
        "@spengler",
        "Egon Spengler",
        "egon@ghostbusters.example.com",
    ] {
        let profile = client
            .get_user_profile(GetUserProfileRequest {
                user: who.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(profile.user_id, "W012A3CDE", "resolving {who}");
        assert_eq!(profile.title, "Scientist");
        assert_eq!(profile.status_text, "Print is dead");
    }
    let status = client
        .get_user_profile(GetUserProfileRequest {
            user: "@venkman".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("slack_get_users"),
        "{}",
        status.message()
    );
}

/// Error hints name tools as the router names them (its prefix comes in the
/// `switchboard-tool-prefix` metadata); without it, by their conventional names.
#[tokio::test]
async fn errors_name_tools_under_the_routers_prefix() {
    let (_server, base) = slack().await;
    let connector = Connector::start(slack_connector::Config {
        allow_writes: false,
        ..config(&base)
    })
    .await;
    let mut client = connector.client();
    let send = || SendMessageRequest {
        channel: "C0123ABCD".to_owned(),
        text: "hi".to_owned(),
        ..Default::default()
    };
    let mut request = tonic::Request::new(send());
    request
        .metadata_mut()
        .insert("switchboard-tool-prefix", "team".parse().expect("ascii"));
    let renamed = client.send_message(request).await.unwrap_err();
    assert!(
        renamed
            .message()
            .starts_with("team_send_message changes Slack"),
        "{}",
        renamed.message()
    );
    let plain = client.send_message(send()).await.unwrap_err();
    assert!(
        plain
            .message()
            .starts_with("slack_send_message changes Slack"),
        "{}",
        plain.message()
    );
}

#[tokio::test]
async fn writes_are_refused_unless_allowed() {
    let (server, base) = slack().await;
    let connector = Connector::start(slack_connector::Config {
        allow_writes: false,
        ..config(&base)
    })
    .await;
    let mut client = connector.client();
    let send = client
        .send_message(SendMessageRequest {
            channel: "C0123ABCD".to_owned(),
            text: "hi".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let update = client
        .update_message(UpdateMessageRequest {
            channel: "C0123ABCD".to_owned(),
            ts: "1712345678.000100".to_owned(),
            text: "edited".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let delete = client
        .delete_message(DeleteMessageRequest {
            channel: "C0123ABCD".to_owned(),
            ts: "1712345678.000100".to_owned(),
        })
        .await
        .unwrap_err();
    let react = client
        .add_reaction(AddReactionRequest {
            channel: "C0123ABCD".to_owned(),
            ts: "1712345678.000100".to_owned(),
            emoji: "eyes".to_owned(),
        })
        .await
        .unwrap_err();
    let create = client
        .create_channel(CreateChannelRequest {
            name: "new-room".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    for status in [send, update, delete, react, create] {
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(
            status.message().contains("SLACK_ALLOW_WRITES=true"),
            "{}",
            status.message()
        );
    }
    let requests = server.received_requests().await.unwrap_or_default();
    assert!(
        requests.iter().all(|r| r.url.path() == "/api/auth.test"),
        "a refused write must not reach Slack: {:?}",
        requests
            .iter()
            .map(|r| r.url.path().to_owned())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_deny_list_refuses_a_channel_and_hides_it() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.list"))
        .respond_with(ok(json!({"channels": [
            {"id": "C0GENERAL", "name": "general"}, {"id": "C0SECRET0", "name": "secret"}
        ]})))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.info"))
        .and(query_param("channel", "C0SECRET0"))
        .respond_with(ok(
            json!({"channel": {"id": "C0SECRET0", "name": "secret"}}),
        ))
        .mount(&server)
        .await;
    let connector = Connector::start(slack_connector::Config {
        channels_deny: vec!["#secret".to_owned()],
        ..config(&base)
    })
    .await;
    let mut client = connector.client();
    for channel in ["#secret", "C0SECRET0"] {
        let status = client
            .get_channel_history(history(channel))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{channel}");
        assert!(
            status.message().contains("SLACK_CHANNELS_DENY"),
            "{}",
            status.message()
        );
    }
    let listed = client
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["general"]);
    assert!(calls(&server, "conversations.history").await.is_empty());
}

#[tokio::test]
async fn the_allow_list_limits_tools_to_its_channels() {
    let (server, base) = slack().await;
    Mock::given(path("/api/conversations.info"))
        .and(query_param("channel", "C0RANDOM0"))
        .respond_with(ok(
            json!({"channel": {"id": "C0RANDOM0", "name": "random"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.info"))
        .and(query_param("channel", "C0GENERAL"))
        .respond_with(ok(
            json!({"channel": {"id": "C0GENERAL", "name": "general"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/api/chat.postMessage"))
        .and(form("channel", "C0GENERAL"))
        .respond_with(ok(json!({"channel": "C0GENERAL", "ts": "1712345678.000300", "message": {"text": "hello"}})))
        .mount(&server)
        .await;
    let connector = Connector::start(slack_connector::Config {
        channels_allow: vec!["general".to_owned()],
        ..config(&base)
    })
    .await;
    let mut client = connector.client();
    let send = |channel: &str| SendMessageRequest {
        channel: channel.to_owned(),
        text: "hello".to_owned(),
        ..Default::default()
    };
    let status = client.send_message(send("C0RANDOM0")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("SLACK_CHANNELS_ALLOW"),
        "{}",
        status.message()
    );
    let sent = client
        .send_message(send("C0GENERAL"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.channel_name, "general");
    assert_eq!(calls(&server, "chat.postMessage").await.len(), 1);
}

#[tokio::test]
async fn messages_are_posted_as_forms_with_the_bearer_token() {
    let (server, base) = slack().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", format!("Bearer {BOT_TOKEN}").as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(form("channel", "C0123ABCD"))
        .and(form("text", "Deploy *done* & dusted"))
        .and(form("thread_ts", "1712345678.000100"))
        .and(form("blocks", r#"[{"type":"divider"}]"#))
        .respond_with(ok(json!({
            "channel": "C0123ABCD", "ts": "1712345679.000200",
            "message": {"text": "Deploy *done* & dusted", "user": "U0BOT", "bot_id": "B1", "thread_ts": "1712345678.000100"}
        })))
        .mount(&server)
        .await;
    mount_users_info(&server, "U0BOT", "Switchboard").await;
    let connector = Connector::start(config(&base)).await;
    let sent = connector
        .client()
        .send_message(SendMessageRequest {
            channel: "C0123ABCD".to_owned(),
            text: "Deploy *done* & dusted".to_owned(),
            blocks_json: Some(r#"[ {"type": "divider"} ]"#.to_owned()),
            thread_ts: Some("1712345678.000100".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.ts, "1712345679.000200");
    assert_eq!(sent.thread_ts, "1712345678.000100");
    assert_eq!(sent.user_name, "Switchboard");
    let posted = calls(&server, "chat.postMessage").await;
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].url.query().is_none(),
        "nothing, least of all the token, in the URL"
    );
}

#[tokio::test]
async fn messages_that_notify_everyone_are_refused_unless_allowed() {
    let (server, base) = slack().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(ok(json!({
            "channel": "C0123ABCD", "ts": "1712345679.000200",
            "message": {"text": "sent", "user": "U0BOT"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .respond_with(ok(json!({"channel": "C0123ABCD", "ts": "1712345678.000100", "message": {"text": "edited"}})))
        .mount(&server)
        .await;
    mount_users_info(&server, "U0BOT", "Switchboard").await;
    let send = |text: &str, blocks: Option<&str>| SendMessageRequest {
        channel: "C0123ABCD".to_owned(),
        text: text.to_owned(),
        blocks_json: blocks.map(str::to_owned),
        ..Default::default()
    };
    let broadcasts = [
        send("Deploy done <!channel>", None),
        send("<!here|here> standup", None),
        send("<!EVERYONE>", None),
        send("oncall: <!subteam^S0123|@oncall>", None),
        send("@channel deploy done", None),
        send(
            "fallback",
            Some(r#"[{"type":"section","text":{"type":"mrkdwn","text":"*all*: <!here>"}}]"#),
        ),
        send(
            "fallback",
            Some(r#"[{"type":"section","text":{"type":"mrkdwn","text":"heads up @Everyone"}}]"#),
        ),
        send(
            "fallback",
            Some(
                r#"[{"type":"rich_text","elements":[{"type":"rich_text_section","elements":[{"type":"broadcast","range":"channel"}]}]}]"#,
            ),
        ),
        send(
            "fallback",
            Some(
                r#"[{"type":"rich_text","elements":[{"type":"rich_text_section","elements":[{"type":"usergroup","usergroup_id":"S0123"}]}]}]"#,
            ),
        ),
    ];
    let guarded = Connector::start(config(&base)).await;
    let mut client = guarded.client();
    for request in broadcasts.clone() {
        let shown = format!("{:?} {:?}", request.text, request.blocks_json);
        let status = client.send_message(request).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{shown}");
        assert!(
            status
                .message()
                .contains("SLACK_ALLOW_BROADCAST_MENTIONS=true")
                && status.message().contains("notifies every"),
            "{shown}: {}",
            status.message()
        );
    }
    let edit = client
        .update_message(UpdateMessageRequest {
            channel: "C0123ABCD".to_owned(),
            ts: "1712345678.000100".to_owned(),
            text: "now <!channel>".to_owned(),
            blocks_json: None,
        })
        .await
        .unwrap_err();
    assert_eq!(edit.code(), Code::PermissionDenied);
    assert!(
        calls(&server, "chat.postMessage").await.is_empty()
            && calls(&server, "chat.update").await.is_empty(),
        "a refused message must not reach Slack"
    );
    // A person's mention, a date, an escaped command, an address and the
    // word without its @ are not broadcasts.
    client
        .send_message(send(
            "<@U0B2> by <!date^1712345678^{date_short}|Apr 5>; shown: &lt;!here&gt;, \
             mail ops@channel.example, tell the channel",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(calls(&server, "chat.postMessage").await.len(), 1);

    let allowing = Connector::start(slack_connector::Config {
        allow_broadcast_mentions: true,
        ..config(&base)
    })
    .await;
    let mut client = allowing.client();
    for request in broadcasts {
        client.send_message(request).await.unwrap();
    }
    let posted = calls(&server, "chat.postMessage").await;
    assert_eq!(posted.len(), 10);
    assert!(form("text", "Deploy done <!channel>")(&posted[1]));
}

#[tokio::test]
async fn update_delete_react_and_create_call_their_methods() {
    let (server, base) = slack().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.update"))
        .and(form("ts", "1712345678.000100"))
        .and(form("text", "edited"))
        .respond_with(ok(json!({"channel": "C0123ABCD", "ts": "1712345678.000100", "text": "edited", "message": {"text": "edited"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.delete"))
        .and(form("ts", "1712345678.000100"))
        .respond_with(ok(
            json!({"channel": "C0123ABCD", "ts": "1712345678.000100"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/reactions.add"))
        .and(form("name", "eyes"))
        .and(form("timestamp", "1712345678.000100"))
        .respond_with(refused("already_reacted"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/conversations.create"))
        .and(form("name", "incident-42"))
        .and(form("is_private", "true"))
        .respond_with(ok(json!({"channel": {"id": "G0NEW0000", "name": "incident-42", "is_private": true, "is_member": true}})))
        .expect(1)
        .mount(&server)
        .await;
    let connector = Connector::start(config(&base)).await;
    let mut client = connector.client();
    let updated = client
        .update_message(UpdateMessageRequest {
            channel: "C0123ABCD".to_owned(),
            ts: "1712345678.000100".to_owned(),
            text: "edited".to_owned(),
            blocks_json: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.text, "edited");
    let deleted = client
        .delete_message(DeleteMessageRequest {
            channel: "C0123ABCD".to_owned(),
            ts: "1712345678.000100".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.ts, "1712345678.000100");
    let reacted = client
        .add_reaction(AddReactionRequest {
            channel: "C0123ABCD".to_owned(),
            ts: "1712345678.000100".to_owned(),
            emoji: ":eyes:".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        reacted.already_reacted,
        "already_reacted is reported, not failed"
    );
    let created = client
        .create_channel(CreateChannelRequest {
            name: "#incident-42".to_owned(),
            is_private: Some(true),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, "G0NEW0000");
    assert!(created.is_private);

    // The new channel's name resolves without a listing.
    Mock::given(path("/api/conversations.history"))
        .and(query_param("channel", "G0NEW0000"))
        .respond_with(ok(json!({"messages": []})))
        .expect(1)
        .mount(&server)
        .await;
    client
        .get_channel_history(history("incident-42"))
        .await
        .unwrap();
    assert!(calls(&server, "conversations.list").await.is_empty());
}

#[tokio::test]
async fn search_without_a_user_token_is_refused_clearly() {
    let (server, base) = slack().await;
    let connector = Connector::start(config(&base)).await;
    let search = SearchMessagesRequest {
        query: "deploy".to_owned(),
        ..Default::default()
    };
    let status = connector
        .client()
        .search_messages(search.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("SLACK_USER_TOKEN"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("search:read"),
        "{}",
        status.message()
    );

    // A bot token put where the user token belongs is named as such.
    let misconfigured = Connector::start(slack_connector::Config {
        user_token: Some(SecretString::from("xoxb-000-not-a-user-token")),
        ..config(&base)
    })
    .await;
    let status = misconfigured
        .client()
        .search_messages(search)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("bot token"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("xoxb-000-not-a-user-token"));
    assert!(calls(&server, "search.messages").await.is_empty());
}

#[tokio::test]
async fn slack_refusing_a_bot_token_for_search_is_explained() {
    let (server, base) = slack().await;
    Mock::given(path("/api/search.messages"))
        .respond_with(refused("not_allowed_token_type"))
        .mount(&server)
        .await;
    let connector = Connector::start(slack_connector::Config {
        user_token: Some(SecretString::from(USER_TOKEN)),
        ..config(&base)
    })
    .await;
    let status = connector
        .client()
        .search_messages(SearchMessagesRequest {
            query: "deploy".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("not_allowed_token_type"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("user token"),
        "{}",
        status.message()
    );
    assert_no_secret(&status);
}

#[tokio::test]
async fn search_uses_the_user_token_and_hides_denied_channels() {
    let (server, base) = slack().await;
    Mock::given(method("GET"))
        .and(path("/api/search.messages"))
        .and(header("authorization", format!("Bearer {USER_TOKEN}").as_str()))
        .and(query_param("query", "meaning of life"))
        .and(query_param("sort", "timestamp"))
        .and(query_param("sort_dir", "desc"))
        .respond_with(ok(json!({"query": "meaning of life", "messages": {
            "matches": [
                {"channel": {"id": "C12345678", "name": "general"}, "ts": "1508284197.000015", "user": "U2U85N1RV", "username": "roach",
                 "text": "The meaning of life is 42.", "permalink": "https://acme.slack.com/archives/C12345678/p1508284197000015"},
                {"channel": {"id": "C0SECRET0", "name": "secret"}, "ts": "1508284198.000015", "user": "U2U85N1RV", "text": "hidden"}
            ],
            "paging": {"count": 20, "page": 1, "pages": 1, "total": 2}
        }})))
        .mount(&server)
        .await;
    mount_users_info(&server, "U2U85N1RV", "Roach").await;
    let connector = Connector::start(slack_connector::Config {
        user_token: Some(SecretString::from(USER_TOKEN)),
        channels_deny: vec!["secret".to_owned()],
        ..config(&base)
    })
    .await;
    let found = connector
        .client()
        .search_messages(SearchMessagesRequest {
            query: "meaning of life".to_owned(),
            sort: Some(SearchSort::Newest as i32),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.matches.len(), 1);
    let hit = &found.matches[0];
    assert_eq!(hit.channel_name, "general");
    assert_eq!(hit.user_name, "Roach");
    assert!(hit.permalink.ends_with("p1508284197000015"));
    assert_eq!(found.total, 2);
    assert_eq!(found.page_count, 1);
}

#[tokio::test]
async fn bad_arguments_name_the_field() {
    let (server, base) = slack().await;
    let connector = Connector::start(config(&base)).await;
    let mut client = connector.client();
    let status = client
        .get_thread_replies(GetThreadRepliesRequest {
            channel: "C0123ABCD".to_owned(),
            thread_ts: "yesterday".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("thread_ts"),
        "{}",
        status.message()
    );
    let status = client
        .send_message(SendMessageRequest {
            channel: "#general".to_owned(),
            text: "x".to_owned(),
            blocks_json: Some("{not json".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("blocks_json"),
        "{}",
        status.message()
    );
    let status = client
        .get_channel_history(GetChannelHistoryRequest {
            channel: " ".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("channel"), "{}", status.message());
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .all(|r| r.url.path() == "/api/auth.test"),
        "invalid arguments never reach Slack"
    );
}

#[tokio::test]
async fn an_unconfigured_connector_is_not_serving_and_names_the_variable() {
    let (server, base) = slack().await;
    let connector = Connector::start(slack_connector::Config {
        bot_token: None,
        ..config(&base)
    })
    .await;
    let status = connector
        .client()
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("SLACK_BOT_TOKEN"),
        "{}",
        status.message()
    );
    assert_eq!(connector.health().await, ServingStatus::NotServing);
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn health_turns_serving_once_auth_test_succeeds() {
    let (server, base) = slack().await;
    let connector = Connector::start(config(&base)).await;
    connector.wait_for_health(ServingStatus::Serving).await;
    assert!(!calls(&server, "auth.test").await.is_empty());
    // Startup lists nothing: name caches fill lazily.
    assert!(calls(&server, "conversations.list").await.is_empty());
    assert!(calls(&server, "users.list").await.is_empty());
}

#[tokio::test]
async fn an_answer_larger_than_the_connector_reads_fails_the_call_naming_the_variable() {
    let (server, base) = slack().await;
    let messages: Vec<Value> = (0..20)
        .map(|i| json!({"type": "message", "user": "U1", "ts": format!("1700000000.{i:06}"), "text": "x".repeat(8 * 1024)}))
        .collect();
    Mock::given(path("/api/conversations.history"))
        .respond_with(ok(json!({"messages": messages, "has_more": false})))
        .mount(&server)
        .await;
    let connector = Connector::start(slack_connector::Config {
        max_response_bytes: 64 * 1024,
        ..config(&base)
    })
    .await;
    let status = connector
        .client()
        .get_channel_history(history("C0123ABCD"))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("SLACK_MAX_RESPONSE_BYTES") && status.message().contains("65536"),
        "{}",
        status.message()
    );
    assert_no_secret(&status);

    // The same answer within the default bound is read.
    let connector = Connector::start(config(&base)).await;
    let history = connector
        .client()
        .get_channel_history(history("C0123ABCD"))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(history.messages.len(), 20);
}
