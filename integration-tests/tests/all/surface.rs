//! The MCP surface beyond JSON tools, end to end: rich content, progress and
//! log events, resources (namespacing, templates, caching, subscriptions),
//! prompts and completions, all served by the `conformance-connector` over gRPC
//! and reached through a real router process with the rmcp client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use integration_tests::process::{Connector, HttpRouter};
#[allow(deprecated)] // MCP logging: deprecated by SEP-2577, still what clients receive
use rmcp::model::LoggingMessageNotificationParam;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, GetPromptRequestParams,
    Implementation, NumberOrString, PaginatedRequestParams, ProgressNotificationParam,
    ProgressToken, ReadResourceRequestParams, RequestMetaObject, ResourceContents,
    ResourceUpdatedNotificationParam, SubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};

use crate::support::{args, is_error, text};

/// Records the notifications these tests look at.
#[derive(Clone)]
pub struct Observer {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    logs: Arc<Mutex<Vec<Value>>>,
    updated: watch::Sender<Vec<String>>,
}

impl Observer {
    fn new() -> Self {
        Self {
            progress: Arc::default(),
            logs: Arc::default(),
            updated: watch::channel(Vec::new()).0,
        }
    }
}

impl ClientHandler for Observer {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("switchboard-surface-tests", "0"),
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().await.push(params);
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let value = serde_json::to_value(&params).unwrap_or(Value::Null);
        self.logs.lock().await.push(value);
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.updated.send_modify(|seen| seen.push(params.uri));
    }
}

type Client = RunningService<RoleClient, Observer>;

/// The conformance connector and a router in front of it over HTTP.
pub struct Surface {
    pub router: HttpRouter,
    pub connector: Connector,
}

/// A per-test scratch directory.
pub fn scratch(name: &str) -> PathBuf {
    integration_tests::process::scratch_dir(&format!("surface-{name}"))
}

/// A router config naming the conformance connector with `prefix`.
pub fn router_config(connector: &Connector, prefix: &str, name: &str) -> PathBuf {
    let path = scratch(name).join("router.toml");
    std::fs::write(
        &path,
        format!(
            "[[connectors]]\nname = \"conformance\"\nurl = \"{}\"\nprefix = \"{prefix}\"\n",
            connector.url()
        ),
    )
    .expect("write router config");
    path
}

/// Starts the conformance connector and a router with the given tool prefix.
pub async fn surface(prefix: &str, name: &str) -> Surface {
    surface_with(prefix, name, &[]).await
}

/// [`surface`] with extra router arguments.
pub async fn surface_with(prefix: &str, name: &str, extra: &[&str]) -> Surface {
    let connector = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start conformance-connector");
    let config = router_config(&connector, prefix, name);
    let config = config.to_string_lossy().into_owned();
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    let router = HttpRouter::start(&[], &args).await.expect("start router");
    Surface { router, connector }
}

async fn client(surface: &Surface) -> (Client, Observer) {
    let observer = Observer::new();
    let transport = StreamableHttpClientTransport::from_uri(surface.router.mcp_url());
    let client = observer
        .clone()
        .serve(transport)
        .await
        .expect("MCP initialize over HTTP");
    (client, observer)
}

async fn call(client: &Client, tool: &str, arguments: Value) -> rmcp::model::CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("tools/call {tool} failed at the protocol level: {e}"))
}

#[allow(deprecated)]
async fn set_level(client: &Client, level: &str) {
    let params = serde_json::from_value(json!({ "level": level })).expect("level");
    client.set_level(params).await.expect("logging/setLevel");
}

async fn read_text(client: &Client, uri: &str) -> String {
    let result = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("resources/read {uri}: {e}"));
    match &result.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("expected text contents, got {other:?}"),
    }
}

#[tokio::test]
async fn tool_results_carry_every_content_kind_one_to_one() {
    let s = surface("", "content").await;
    let (client, _) = client(&s).await;

    let mixed = call(&client, "test_multiple_content_types", json!({})).await;
    let blocks = serde_json::to_value(&mixed.content).expect("content as JSON");
    assert_eq!(
        blocks[0],
        json!({"type": "text", "text": "Multiple content types test:"})
    );
    assert_eq!(blocks[1]["type"], "image");
    assert_eq!(blocks[1]["mimeType"], "image/png");
    assert!(
        blocks[1]["data"]
            .as_str()
            .is_some_and(|d| d.starts_with("iVBORw0KGgo")),
        "base64 of the PNG bytes: {}",
        blocks[1]
    );
    assert_eq!(
        blocks[2]["resource"],
        json!({"uri": "test://mixed-content-resource", "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"})
    );
    assert_eq!(
        mixed.structured_content, None,
        "no structured result was given"
    );

    let audio = call(&client, "test_audio_content", json!({})).await;
    let block = serde_json::to_value(&audio.content[0]).expect("json");
    assert_eq!(
        (block["type"].as_str(), block["mimeType"].as_str()),
        (Some("audio"), Some("audio/wav"))
    );

    let failed = call(&client, "test_error_handling", json!({})).await;
    assert!(is_error(&failed));
    assert_eq!(
        text(&failed),
        "This tool intentionally returns an error for testing"
    );

    // A tool returning ToolResult has no output schema (its structured part is free-form).
    let tools = client.list_all_tools().await.expect("tools/list");
    let simple = tools
        .iter()
        .find(|t| t.name == "test_simple_text")
        .expect("listed");
    assert!(simple.output_schema.is_none());
    assert_eq!(
        simple.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(true)
    );
}

#[tokio::test]
async fn stream_events_become_progress_and_log_notifications_in_order() {
    let s = surface("", "progress").await;
    let (client, observer) = client(&s).await;

    let token = ProgressToken(NumberOrString::String("p-1".into()));
    let mut params = CallToolRequestParams::new("test_tool_with_progress");
    params.meta = Some(RequestMetaObject::with_progress_token(token));
    let result = client.call_tool(params).await.expect("tools/call");
    assert_eq!(text(&result), "Progress tool completed");
    let seen: Vec<(f64, Option<f64>)> = observer
        .progress
        .lock()
        .await
        .iter()
        .map(|p| (p.progress, p.total))
        .collect();
    assert_eq!(
        seen,
        [
            (0.0, Some(100.0)),
            (50.0, Some(100.0)),
            (100.0, Some(100.0))
        ]
    );

    // Logs at info pass the default level, in order, with their logger.
    let result = call(&client, "test_tool_with_logging", json!({})).await;
    assert_eq!(text(&result), "Logging tool completed");
    let logs = observer.logs.lock().await.clone();
    let data: Vec<&str> = logs.iter().filter_map(|l| l["data"].as_str()).collect();
    assert_eq!(
        data,
        [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed"
        ]
    );
    assert!(
        logs.iter()
            .all(|l| l["level"] == "info" && l["logger"] == "conformance")
    );

    // Raised above info, the same call logs nothing.
    set_level(&client, "warning").await;
    let result = call(&client, "test_tool_with_logging", json!({})).await;
    assert!(!is_error(&result));
    assert_eq!(
        observer.logs.lock().await.len(),
        3,
        "info logs filtered at warning"
    );
}

#[tokio::test]
async fn a_question_to_a_client_without_the_capability_fails_the_tool_readably() {
    let s = surface("", "ask").await;
    // This client declares neither elicitation nor sampling.
    let (client, _) = client(&s).await;

    let result = call(
        &client,
        "test_elicitation",
        json!({"message": "Who are you?"}),
    )
    .await;
    assert!(is_error(&result), "{}", text(&result));
    assert!(
        text(&result).contains("does not support elicitation"),
        "{}",
        text(&result)
    );
    let result = call(&client, "test_sampling", json!({"prompt": "Hi"})).await;
    assert!(is_error(&result));
    assert!(
        text(&result).contains("does not support sampling"),
        "{}",
        text(&result)
    );
    // The argument is required, as the proto says.
    let tools = client.list_all_tools().await.expect("tools/list");
    let sampling = tools
        .iter()
        .find(|t| t.name == "test_sampling")
        .expect("listed");
    assert_eq!(
        sampling.input_schema.get("required"),
        Some(&json!(["prompt"]))
    );
}

#[tokio::test]
async fn resources_are_listed_read_and_templated_and_unknown_ones_are_not_found() {
    let s = surface("", "resources").await;
    let (client, _) = client(&s).await;

    let resources = client.list_all_resources().await.expect("resources/list");
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "test://static-text",
            "test://static-binary",
            "test://watched-resource"
        ]
    );
    let templates = client
        .list_all_resource_templates()
        .await
        .expect("resources/templates/list");
    assert_eq!(templates[0].uri_template, "test://template/{id}/data");

    assert_eq!(
        read_text(&client, "test://static-text").await,
        "This is the content of the static text resource."
    );
    assert_eq!(
        read_text(&client, "test://template/42/data").await,
        r#"{"id":"42","templateTest":true,"data":"Data for ID: 42"}"#
    );
    let binary = client
        .read_resource(ReadResourceRequestParams::new("test://static-binary"))
        .await
        .expect("read binary");
    assert!(
        matches!(&binary.contents[0], ResourceContents::BlobResourceContents { blob, mime_type, .. }
            if blob.starts_with("iVBORw0KGgo") && mime_type.as_deref() == Some("image/png")),
        "{binary:?}"
    );
    let missing = client
        .read_resource(ReadResourceRequestParams::new("test://nothing-here"))
        .await
        .expect_err("unknown resource");
    assert!(
        missing.to_string().contains("test://nothing-here"),
        "{missing}"
    );
}

#[tokio::test]
#[allow(deprecated)]
async fn subscribers_hear_of_changes_and_the_cached_read_is_refreshed() {
    let s = surface("", "subscribe").await;
    let (client, observer) = client(&s).await;

    // The read is cached for an hour by the connector's TTL...
    let before = read_text(&client, "test://watched-resource").await;
    assert_eq!(before, "Watched resource, version 1");
    client
        .subscribe(SubscribeRequestParams::new("test://watched-resource"))
        .await
        .expect("resources/subscribe");
    let missing = client
        .subscribe(SubscribeRequestParams::new("test://nothing-here"))
        .await
        .expect_err("cannot subscribe to an unknown resource");
    assert!(
        missing.to_string().contains("test://nothing-here"),
        "{missing}"
    );

    let changed = call(&client, "update_watched_resource", json!({})).await;
    assert!(!is_error(&changed), "{}", text(&changed));
    let mut rx = observer.updated.subscribe();
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|seen| !seen.is_empty()),
    )
    .await
    .expect("notifications/resources/updated within 20s")
    .expect("observer alive");
    assert_eq!(
        observer.updated.borrow().clone(),
        ["test://watched-resource"]
    );
    // ...and the update evicted it.
    assert_eq!(
        read_text(&client, "test://watched-resource").await,
        "Watched resource, version 2"
    );
}

#[tokio::test]
async fn prompts_render_with_arguments_and_complete_them() {
    let s = surface("", "prompts").await;
    let (client, _) = client(&s).await;

    let prompts = client.list_all_prompts().await.expect("prompts/list");
    let with_args = prompts
        .iter()
        .find(|p| p.name == "test_prompt_with_arguments")
        .expect("listed");
    let names: Vec<&str> = with_args
        .arguments
        .iter()
        .flatten()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["arg1", "arg2"]);

    let rendered = client
        .get_prompt(
            GetPromptRequestParams::new("test_prompt_with_arguments")
                .with_arguments(args(json!({"arg1": "x", "arg2": "y"}))),
        )
        .await
        .expect("prompts/get");
    let message = serde_json::to_value(&rendered.messages[0]).expect("json");
    assert_eq!(message["role"], "user");
    assert_eq!(
        message["content"]["text"],
        "Prompt with arguments: arg1='x', arg2='y'"
    );

    let missing = client
        .get_prompt(
            GetPromptRequestParams::new("test_prompt_with_arguments")
                .with_arguments(args(json!({"arg1": "x"}))),
        )
        .await
        .expect_err("arg2 is required");
    assert!(missing.to_string().contains("arg2"), "{missing}");

    let values = client
        .complete_prompt_simple("test_prompt_with_arguments", "arg1", "par")
        .await
        .expect("completion/complete");
    assert_eq!(values, ["paris", "park", "party"]);
    let ids = client
        .complete_resource_simple("test://template/{id}/data", "id", "4")
        .await
        .expect("completion/complete for a template");
    assert_eq!(ids, ["456"]);
}

#[tokio::test]
async fn a_prefixed_connector_has_its_uris_and_prompt_names_namespaced() {
    let s = surface("conformance", "namespaced").await;
    let (client, _) = client(&s).await;

    let resources = client.list_all_resources().await.expect("resources/list");
    assert!(
        !resources.is_empty()
            && resources
                .iter()
                .all(|r| r.uri.starts_with("conformance+test://")),
        "{resources:?}"
    );
    assert_eq!(
        read_text(&client, "conformance+test://static-text").await,
        "This is the content of the static text resource."
    );
    // The connector's own URI is not served under another namespace.
    let unprefixed = client
        .read_resource(ReadResourceRequestParams::new("test://static-text"))
        .await
        .expect_err("the unprefixed URI is unknown");
    assert!(
        unprefixed.to_string().contains("test://static-text"),
        "{unprefixed}"
    );
    // URIs inside tool results are namespaced the same way, so they can be read.
    let embedded = call(&client, "conformance_test_embedded_resource", json!({})).await;
    let block = serde_json::to_value(&embedded.content[0]).expect("json");
    assert_eq!(
        block["resource"]["uri"],
        "conformance+test://embedded-resource"
    );

    let prompts = client.list_all_prompts().await.expect("prompts/list");
    assert!(
        prompts
            .iter()
            .any(|p| p.name == "conformance_test_simple_prompt")
    );
    let simple = client
        .get_prompt(GetPromptRequestParams::new(
            "conformance_test_simple_prompt",
        ))
        .await
        .expect("prompts/get");
    let message = serde_json::to_value(&simple.messages[0]).expect("json");
    assert_eq!(
        message["content"]["text"],
        "This is a simple prompt for testing."
    );
    let values = client
        .complete_resource_simple("conformance+test://template/{id}/data", "id", "7")
        .await
        .expect("completion/complete");
    assert_eq!(values, ["789"]);
}

#[tokio::test]
async fn lists_page_connector_by_connector_and_reads_are_served_from_cache_for_their_ttl() {
    let left = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start left connector");
    let right = Connector::start("conformance-connector", 0, &[])
        .await
        .expect("start right connector");
    let config = scratch("two").join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[[connectors]]\nname = \"left\"\nurl = \"{}\"\n\n[[connectors]]\nname = \"right\"\nurl = \"{}\"\n",
            left.url(),
            right.url()
        ),
    )
    .expect("write config");
    let config = config.to_string_lossy().into_owned();
    let router = HttpRouter::start(&[], &["--config", &config])
        .await
        .expect("start router");
    let observer = Observer::new();
    let client = observer
        .serve(StreamableHttpClientTransport::from_uri(router.mcp_url()))
        .await
        .expect("MCP initialize");

    // One page per connector, in configuration order; the cursor leads on.
    let first = client
        .list_resources(None)
        .await
        .expect("resources/list, first page");
    assert!(
        !first.resources.is_empty() && first.resources.iter().all(|r| r.uri.starts_with("left+")),
        "{first:?}"
    );
    let cursor = first
        .next_cursor
        .clone()
        .expect("a cursor to the next connector");
    let second = client
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some(cursor)),
        ))
        .await
        .expect("resources/list, second page");
    assert!(
        !second.resources.is_empty()
            && second.resources.iter().all(|r| r.uri.starts_with("right+")),
        "{second:?}"
    );
    assert_eq!(second.next_cursor, None);
    let bad = client
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some("nowhere|x".into())),
        ))
        .await
        .expect_err("a cursor naming no connector");
    assert!(bad.to_string().contains("nowhere"), "{bad}");

    // The watched resource may be cached for an hour: without a subscriber to
    // evict it, a change on the connector is not seen until then...
    assert_eq!(
        read_text(&client, "left+test://watched-resource").await,
        "Watched resource, version 1"
    );
    let changed = call(&client, "left_update_watched_resource", json!({})).await;
    assert!(text(&changed).contains("version 2"), "{}", text(&changed));
    assert_eq!(
        read_text(&client, "left+test://watched-resource").await,
        "Watched resource, version 1",
        "served from the router's cache"
    );
    // ...while template reads (TTL 0) always reach the connector, and the other
    // connector's resource is its own.
    assert_eq!(
        read_text(&client, "right+test://watched-resource").await,
        "Watched resource, version 1"
    );
    assert!(
        read_text(&client, "right+test://template/9/data")
            .await
            .contains("Data for ID: 9")
    );
}

#[tokio::test]
async fn a_long_call_whose_stream_is_closed_is_resumed_by_the_client() {
    // Streams of calls running longer than 200 ms are closed (SEP-1699).
    let s = surface_with("", "polling", &["--sse-poll-after", "200ms"]).await;
    let (client, _) = client(&s).await;
    let result = call(&client, "test_reconnection", json!({})).await;
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(text(&result), "Reconnection test completed");
    // The session goes on normally afterwards.
    let again = call(&client, "test_simple_text", json!({})).await;
    assert_eq!(text(&again), "This is a simple text response for testing.");
}
