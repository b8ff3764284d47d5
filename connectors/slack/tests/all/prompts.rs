//! The MCP prompts over gRPC (`switchboard.mcp.v1.Prompts`): the list, rendering
//! with and without the required arguments, unknown prompts, and completion of
//! `channel` from the name cache only, under the channel lists.

use std::collections::HashMap;

use serde_json::{Value, json};
use switchboard_proto::mcp::v1::{
    CompleteRequest, CompleteResponse, GetPromptRequest, GetPromptResponse, ListPromptsRequest,
    complete_request, content,
};
use switchboard_proto::slack::v1::ListChannelsRequest;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Connector, config};

/// A fake Slack whose `auth.test` succeeds and whose channel listing holds
/// #general, #random, #gen-ops and #secret; returns it with its base URL.
async fn slack() -> (MockServer, String) {
    let server = MockServer::start().await;
    let ok = |body: Value| {
        let mut body = body;
        body["ok"] = json!(true);
        ResponseTemplate::new(200).set_body_json(body)
    };
    Mock::given(method("GET"))
        .and(path("/api/auth.test"))
        .respond_with(ok(
            json!({"team": "Acme", "user": "switchboard", "user_id": "U0BOT"}),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.list"))
        .respond_with(ok(json!({"channels": [
            {"id": "C0000GEN1", "name": "general", "is_member": true},
            {"id": "C0000RAND", "name": "random", "is_member": true},
            {"id": "C000GOPS1", "name": "gen-ops", "is_member": true},
            {"id": "C0SECRET1", "name": "secret", "is_member": true},
            {"id": "C0000DEV1", "name": "dev-general", "is_member": true}
        ], "response_metadata": {"next_cursor": ""}})))
        .mount(&server)
        .await;
    let base = format!("{}/api", server.uri());
    (server, base)
}

/// How many times the fake was asked for a Web API method.
async fn count(server: &MockServer, method_name: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == format!("/api/{method_name}"))
        .count()
}

fn arguments(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn get(
    connector: &Connector,
    name: &str,
    pairs: &[(&str, &str)],
) -> Result<GetPromptResponse, tonic::Status> {
    connector
        .prompts()
        .get_prompt(GetPromptRequest {
            name: name.to_owned(),
            arguments: arguments(pairs),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The rendered prompt's text (its one user message).
fn text(rendered: &GetPromptResponse) -> String {
    assert_eq!(rendered.messages.len(), 1, "{rendered:?}");
    match rendered.messages[0]
        .content
        .as_ref()
        .and_then(|c| c.kind.as_ref())
    {
        Some(content::Kind::Text(t)) => t.text.clone(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

async fn complete(
    connector: &Connector,
    prompt: &str,
    argument: &str,
    value: &str,
) -> Result<CompleteResponse, tonic::Status> {
    connector
        .prompts()
        .complete(CompleteRequest {
            r#ref: Some(complete_request::Ref::Prompt(prompt.to_owned())),
            argument: argument.to_owned(),
            value: value.to_owned(),
            context: HashMap::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Lists channels through the tool, which fills the name cache.
async fn fill_cache(connector: &Connector) {
    connector
        .client()
        .list_channels(ListChannelsRequest::default())
        .await
        .expect("list_channels");
}

#[tokio::test]
async fn the_prompts_are_listed_with_described_arguments() {
    let (_server, base) = slack().await;
    let connector = Connector::start(config(&base)).await;
    let listed = connector
        .prompts()
        .list_prompts(ListPromptsRequest::default())
        .await
        .expect("list prompts")
        .into_inner();
    assert!(listed.next_cursor.is_empty());
    let shape: Vec<(String, Vec<(String, bool)>)> = listed
        .prompts
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.arguments
                    .iter()
                    .map(|a| (a.name.clone(), a.required))
                    .collect(),
            )
        })
        .collect();
    let own = |s: &str| s.to_owned();
    assert_eq!(
        shape,
        vec![
            (
                own("summarize_channel"),
                vec![(own("channel"), true), (own("since"), false)]
            ),
            (
                own("draft_announcement"),
                vec![(own("channel"), true), (own("topic"), true)]
            ),
        ]
    );
    for prompt in &listed.prompts {
        assert!(!prompt.title.is_empty() && !prompt.description.is_empty());
    }

    let bad_cursor = connector
        .prompts()
        .list_prompts(ListPromptsRequest {
            cursor: "next".to_owned(),
        })
        .await
        .expect_err("a cursor is refused");
    assert_eq!(bad_cursor.code(), Code::InvalidArgument);
    assert!(bad_cursor.message().contains("cursor"), "{bad_cursor:?}");
}

#[tokio::test]
async fn the_prompts_service_is_registered_with_health() {
    let (_server, base) = slack().await;
    let connector = Connector::start(config(&base)).await;
    connector.wait_for_health(ServingStatus::Serving).await;
    let status = HealthClient::new(connector.channel())
        .check(HealthCheckRequest {
            service: "switchboard.mcp.v1.Prompts".to_owned(),
        })
        .await
        .expect("health of the Prompts service")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn summarize_channel_reads_with_the_history_tools_and_posts_nothing() {
    let (server, base) = slack().await;
    let connector = Connector::start(config(&base)).await;

    let rendered = get(&connector, "summarize_channel", &[("channel", "#General")])
        .await
        .expect("render without since");
    let body = text(&rendered);
    for wanted in [
        "#general",
        "slack_get_channel_history",
        "{\"channel\": \"#General\", \"limit\": 200}",
        "slack_get_thread_replies",
        "Decisions",
        "Open questions",
        "Action items",
        "user_name",
        "do not call slack_send_message",
        "not_in_channel",
    ] {
        assert!(body.contains(wanted), "{wanted:?} missing from:\n{body}");
    }
    assert!(!body.contains("\"oldest\""), "no window was asked:\n{body}");

    let rendered = get(
        &connector,
        "summarize_channel",
        &[("channel", "C0123ABCD"), ("since", "2024-05-01")],
    )
    .await
    .expect("render with a date");
    let body = text(&rendered);
    assert!(
        body.contains("\"oldest\": \"1714521600\""),
        "the window becomes Unix seconds:\n{body}"
    );
    assert!(body.contains("2024-05-01T00:00:00Z"), "{body}");
    assert!(
        body.contains("Summarise the Slack channel C0123ABCD"),
        "{body}"
    );
    assert!(rendered.description.contains("C0123ABCD"), "{rendered:?}");

    let rendered = get(
        &connector,
        "summarize_channel",
        &[("channel", "general"), ("since", "24h")],
    )
    .await
    .expect("render with a duration");
    assert!(text(&rendered).contains("\"oldest\": \""), "{rendered:?}");

    // Rendering is text only: no Slack call is made for it.
    assert_eq!(count(&server, "conversations.list").await, 0);
    assert_eq!(count(&server, "conversations.info").await, 0);
    assert_eq!(count(&server, "conversations.history").await, 0);
}

#[tokio::test]
async fn missing_or_bad_arguments_are_refused_by_name() {
    let (_server, base) = slack().await;
    let connector = Connector::start(config(&base)).await;
    // (prompt, arguments, the argument the refusal must name)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        ("summarize_channel", &[], "channel"),
        ("summarize_channel", &[("channel", "  ")], "channel"),
        ("summarize_channel", &[("channel", "two words")], "channel"),
        (
            "summarize_channel",
            &[("channel", "general"), ("since", "yesterday")],
            "since",
        ),
        (
            "summarize_channel",
            &[("channel", "general"), ("since", "2999-01-01")],
            "since",
        ),
        ("draft_announcement", &[("channel", "general")], "topic"),
        (
            "draft_announcement",
            &[("topic", "Friday deploy freeze")],
            "channel",
        ),
    ];
    for (prompt, pairs, argument) in cases {
        let status = get(&connector, prompt, pairs).await.expect_err("refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{prompt} {pairs:?}: {status:?}"
        );
        assert!(
            status
                .message()
                .starts_with(&format!("invalid argument {argument}: ")),
            "{prompt} {pairs:?}: {status:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_prompt_is_not_found() {
    let (_server, base) = slack().await;
    let connector = Connector::start(config(&base)).await;
    let status = get(&connector, "triage_issue", &[("channel", "general")])
        .await
        .expect_err("unknown prompt");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("triage_issue"), "{status:?}");
    assert!(status.message().contains("summarize_channel"), "{status:?}");

    let status = complete(&connector, "triage_issue", "channel", "")
        .await
        .expect_err("unknown prompt");
    assert_eq!(status.code(), Code::NotFound);

    let status = connector
        .prompts()
        .complete(CompleteRequest {
            r#ref: Some(complete_request::Ref::ResourceTemplate(
                "slack://{channel}".to_owned(),
            )),
            argument: "channel".to_owned(),
            value: String::new(),
            context: HashMap::new(),
        })
        .await
        .expect_err("no resource templates");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn draft_announcement_asks_before_posting_and_tells_whether_it_can() {
    let (_server, base) = slack().await;
    let topic = "Deploy freeze from Friday 18:00 UTC; ask in #ops";

    let writer = Connector::start(config(&base)).await;
    let body = text(
        &get(
            &writer,
            "draft_announcement",
            &[("channel", "#general"), ("topic", topic)],
        )
        .await
        .expect("render"),
    );
    for wanted in [
        topic,
        "#general",
        "slack_get_channel_history",
        "Do not call `slack_send_message` before the user has explicitly",
        "SLACK_ALLOW_WRITES=true",
        "post it with `slack_send_message`, arguments {\"channel\": \"#general\"",
        "this connector refuses such messages (SLACK_ALLOW_BROADCAST_MENTIONS is not true)",
    ] {
        assert!(body.contains(wanted), "{wanted:?} missing from:\n{body}");
    }

    let broadcaster = Connector::start(slack_connector::Config {
        allow_broadcast_mentions: true,
        ..config(&base)
    })
    .await;
    let body = text(
        &get(
            &broadcaster,
            "draft_announcement",
            &[("channel", "general"), ("topic", topic)],
        )
        .await
        .expect("render"),
    );
    assert!(
        body.contains("Notify the whole channel (<!here> for those active"),
        "{body}"
    );
    assert!(!body.contains("SLACK_ALLOW_BROADCAST_MENTIONS"), "{body}");

    let reader = Connector::start(slack_connector::Config {
        allow_writes: false,
        ..config(&base)
    })
    .await;
    let body = text(
        &get(
            &reader,
            "draft_announcement",
            &[("channel", "general"), ("topic", topic)],
        )
        .await
        .expect("render"),
    );
    assert!(body.contains("writes disabled"), "{body}");
    assert!(body.contains("Do not call slack_send_message."), "{body}");
    assert!(!body.contains("post it with"), "{body}");
}

#[tokio::test]
async fn channel_completion_uses_the_cache_only_and_the_channel_lists() {
    let (server, base) = slack().await;
    let connector = Connector::start(slack_connector::Config {
        channels_deny: vec!["#secret".to_owned()],
        ..config(&base)
    })
    .await;

    // Nothing seen yet: an empty answer, and no listing started for it.
    let empty = complete(&connector, "summarize_channel", "channel", "gen")
        .await
        .expect("complete");
    assert!(empty.values.is_empty(), "{empty:?}");
    assert_eq!(count(&server, "conversations.list").await, 0);

    fill_cache(&connector).await;
    assert_eq!(count(&server, "conversations.list").await, 1);

    let found = complete(&connector, "summarize_channel", "channel", "#GEN")
        .await
        .expect("complete");
    // Names starting with what was typed come first, then names containing it.
    assert_eq!(found.values, ["gen-ops", "general", "dev-general"]);
    assert_eq!(found.total, Some(3));
    assert!(!found.has_more);

    let all = complete(&connector, "draft_announcement", "channel", "")
        .await
        .expect("complete");
    assert_eq!(
        all.values,
        ["dev-general", "gen-ops", "general", "random"],
        "the denied channel is never offered"
    );
    assert_eq!(
        count(&server, "conversations.list").await,
        1,
        "completion lists nothing"
    );

    let since = complete(&connector, "summarize_channel", "since", "2")
        .await
        .expect("complete since");
    assert_eq!(since.values, ["24h"]);
    let topic = complete(&connector, "draft_announcement", "topic", "dep")
        .await
        .expect("complete topic");
    assert!(topic.values.is_empty(), "{topic:?}");
}

#[tokio::test]
async fn channel_completion_and_prompts_respect_the_allow_list() {
    let (_server, base) = slack().await;
    let connector = Connector::start(slack_connector::Config {
        channels_allow: vec!["general".to_owned(), "C0000RAND".to_owned()],
        channels_deny: vec!["secret".to_owned()],
        ..config(&base)
    })
    .await;
    fill_cache(&connector).await;
    let all = complete(&connector, "summarize_channel", "channel", "")
        .await
        .expect("complete");
    assert_eq!(all.values, ["general", "random"]);

    // A channel the lists exclude is refused before the model starts reading.
    for channel in ["#secret", "C0SECRET1", "gen-ops"] {
        let status = get(&connector, "summarize_channel", &[("channel", channel)])
            .await
            .expect_err("excluded channel");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{channel}: {status:?}"
        );
        assert!(
            status.message().starts_with("invalid argument channel: ")
                && status.message().contains("SLACK_CHANNELS_"),
            "{status:?}"
        );
    }
    // Allowed, or not known to the cache yet: rendered (the tools check again).
    for channel in ["general", "C0000RAND", "C0NEWCHAN"] {
        get(&connector, "summarize_channel", &[("channel", channel)])
            .await
            .unwrap_or_else(|e| panic!("{channel}: {e:?}"));
    }
}
