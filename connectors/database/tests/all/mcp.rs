//! The MCP resources (table schemas) and prompts, over gRPC: listing, paging,
//! reading, templates, completion, watching, and prompt rendering.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use database_connector::{AccessMode, Config, Target};
use futures::StreamExt as _;
use switchboard_proto::mcp::v1::prompts_client::PromptsClient;
use switchboard_proto::mcp::v1::resources_client::ResourcesClient;
use switchboard_proto::mcp::v1::{
    CompleteRequest, GetPromptRequest, GetPromptResponse, ListPromptsRequest,
    ListResourceTemplatesRequest, ListResourcesRequest, ReadResourceRequest, WatchResourceRequest,
    complete_request, content, resource_contents,
};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{Engine, Fixture, Running};

const TEMPLATE: &str = "db://{schema}/{table}";

async fn demo() -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("demo.sqlite3");
    (Running::start(Config::new(Target::Demo(path))).await, dir)
}

async fn clients(running: &Running) -> (ResourcesClient<Channel>, PromptsClient<Channel>) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the connector");
    (
        ResourcesClient::new(channel.clone()),
        PromptsClient::new(channel),
    )
}

async fn read_text(resources: &mut ResourcesClient<Channel>, uri: &str) -> (String, u32) {
    let read = resources
        .read_resource(ReadResourceRequest {
            uri: uri.to_owned(),
        })
        .await
        .expect("read")
        .into_inner();
    assert_eq!(read.contents.len(), 1);
    let contents = &read.contents[0];
    assert_eq!(contents.uri, uri);
    assert_eq!(contents.mime_type, "text/markdown");
    match &contents.body {
        Some(resource_contents::Body::Text(text)) => (text.clone(), read.ttl_seconds),
        other => panic!("expected text, got {other:?}"),
    }
}

fn complete_template(argument: &str, value: &str, schema: Option<&str>) -> CompleteRequest {
    CompleteRequest {
        r#ref: Some(complete_request::Ref::ResourceTemplate(TEMPLATE.to_owned())),
        argument: argument.to_owned(),
        value: value.to_owned(),
        context: schema
            .map(|s| HashMap::from([("schema".to_owned(), s.to_owned())]))
            .unwrap_or_default(),
    }
}

fn prompt_text(rendered: &GetPromptResponse) -> &str {
    assert_eq!(rendered.messages.len(), 1);
    match rendered.messages[0]
        .content
        .as_ref()
        .and_then(|c| c.kind.as_ref())
    {
        Some(content::Kind::Text(text)) => &text.text,
        other => panic!("expected text, got {other:?}"),
    }
}

fn get(name: &str, args: &[(&str, &str)]) -> GetPromptRequest {
    GetPromptRequest {
        name: name.to_owned(),
        arguments: args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[tokio::test]
async fn every_demo_table_is_a_resource_with_its_row_count() {
    let (running, _dir) = demo().await;
    let (mut resources, _) = clients(&running).await;
    let page = resources
        .list_resources(ListResourcesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.next_cursor, "");
    let uris: Vec<&str> = page.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "db://main/customers",
            "db://main/order_items",
            "db://main/order_totals",
            "db://main/orders",
            "db://main/products"
        ]
    );
    let orders = &page.resources[3];
    assert_eq!(orders.name, "main.orders");
    assert_eq!(orders.mime_type, "text/markdown");
    assert!(orders.description.contains("120 rows"), "{orders:?}");
    assert!(
        page.resources[2].description.contains("view"),
        "{:?}",
        page.resources[2]
    );
}

#[tokio::test]
async fn reading_a_table_gives_its_schema_as_markdown_with_a_ttl() {
    let (running, _dir) = demo().await;
    let (mut resources, _) = clients(&running).await;
    let (text, ttl) = read_text(&mut resources, "db://main/orders").await;
    assert_eq!(ttl, 60);
    assert!(text.starts_with("# Table `main.orders`"), "{text}");
    assert!(text.contains("In SQL: `\"main\".\"orders\"`"), "{text}");
    assert!(text.contains("Rows: 120 rows"), "{text}");
    assert!(text.contains("| `customer_id` |"), "{text}");
    assert!(text.contains("→ `main.customers` (`id`)"), "{text}");
}

#[tokio::test]
async fn unknown_tables_and_foreign_uris_are_not_found() {
    let (running, _dir) = demo().await;
    let (mut resources, _) = clients(&running).await;
    for uri in [
        "db://main/no_such_table",
        "db://nowhere/orders",
        "file:///etc/passwd",
        "db://main",
    ] {
        let status = resources
            .read_resource(ReadResourceRequest {
                uri: uri.to_owned(),
            })
            .await
            .expect_err("no such resource");
        assert_eq!(status.code(), Code::NotFound, "{uri}: {status:?}");
    }
    let status = resources
        .watch_resource(WatchResourceRequest {
            uri: "db://main/no_such_table".to_owned(),
        })
        .await
        .expect_err("cannot watch what does not exist");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn the_template_completes_schema_and_table_names() {
    let (running, _dir) = demo().await;
    let (mut resources, _) = clients(&running).await;
    let templates = resources
        .list_resource_templates(ListResourceTemplatesRequest::default())
        .await
        .expect("templates")
        .into_inner();
    assert_eq!(templates.templates.len(), 1);
    assert_eq!(templates.templates[0].uri_template, TEMPLATE);
    assert_eq!(templates.templates[0].mime_type, "text/markdown");

    let schemas = resources
        .complete(complete_template("schema", "ma", None))
        .await
        .expect("complete schema")
        .into_inner();
    assert_eq!(schemas.values, ["main"]);

    let tables = resources
        .complete(complete_template("table", "ORD", Some("main")))
        .await
        .expect("complete table")
        .into_inner();
    assert_eq!(tables.values, ["order_items", "order_totals", "orders"]);
    assert_eq!(tables.total, Some(3));

    // A schema that does not exist (yet) offers nothing rather than failing.
    let none = resources
        .complete(complete_template("table", "", Some("mai")))
        .await
        .expect("complete table of a partial schema")
        .into_inner();
    assert!(none.values.is_empty());

    let status = resources
        .complete(complete_template("column", "", None))
        .await
        .expect_err("no such parameter");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("column"), "{status:?}");
}

#[tokio::test]
async fn pages_walk_every_table_once_and_bad_cursors_are_refused() {
    let Some(fixture) = Fixture::new(Engine::Sqlite).await else {
        return;
    };
    let statements: String = (0..205)
        .map(|i| format!("CREATE TABLE t{i:03} (id INTEGER PRIMARY KEY);"))
        .collect();
    fixture.admin.exec(&statements).await;
    let running = Running::start(fixture.config(AccessMode::ReadOnly)).await;
    let (mut resources, _) = clients(&running).await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = resources
            .list_resources(ListResourcesRequest {
                cursor: cursor.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.resources.len() <= 200);
        seen.extend(page.resources.into_iter().map(|r| r.uri));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), 206);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 206);
    assert!(seen.contains(&"db://main/accounts".to_owned()));
    assert!(seen.contains(&"db://main/t204".to_owned()));

    let status = resources
        .list_resources(ListResourcesRequest {
            cursor: "garbage".to_owned(),
        })
        .await
        .expect_err("bad cursor");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("cursor"), "{status:?}");
    fixture.cleanup().await;
}

#[tokio::test]
async fn a_watched_table_reports_a_schema_change_and_its_drop() {
    let Some(fixture) = Fixture::new(Engine::Postgres).await else {
        return;
    };
    let mut config = fixture.config(AccessMode::ReadOnly);
    config.schema_watch_interval = Duration::from_millis(50);
    let running = Running::start(config).await;
    let (mut resources, _) = clients(&running).await;
    let uri = format!("db://{}/accounts", fixture.schema);

    let (before, _) = read_text(&mut resources, &uri).await;
    assert!(before.contains("| `owner` |"), "{before}");
    assert!(!before.contains("opened_on"), "{before}");

    let mut updates = resources
        .watch_resource(WatchResourceRequest { uri: uri.clone() })
        .await
        .expect("watch")
        .into_inner();
    fixture
        .admin
        .exec(&format!(
            "ALTER TABLE {} ADD COLUMN opened_on DATE",
            fixture.t("accounts")
        ))
        .await;
    // Bounded only so that a broken watch fails instead of hanging the suite.
    let update = tokio::time::timeout(Duration::from_secs(60), updates.next())
        .await
        .expect("an update within a minute")
        .expect("the stream stays open")
        .expect("an update, not an error");
    assert_eq!(update.uri, uri);
    let (after, _) = read_text(&mut resources, &uri).await;
    assert!(after.contains("| `opened_on` | date |"), "{after}");

    // Dropping the table is reported, and then the watch ends. (A poll between
    // the two statements may also report the content change of the row
    // estimate, so more than one update may come before the end.)
    fixture
        .admin
        .exec(&format!("DROP TABLE {}", fixture.t("accounts")))
        .await;
    let mut updates_after_drop = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), updates.next())
            .await
            .expect("an update or the end within a minute");
        match next {
            Some(update) => {
                let update = update.expect("an update, not an error");
                assert_eq!(update.uri, uri);
                updates_after_drop += 1;
                assert!(
                    updates_after_drop <= 5,
                    "the watch must end once the table is gone"
                );
            }
            None => break,
        }
    }
    assert!(
        updates_after_drop >= 1,
        "the drop is reported before the watch ends"
    );
    running.stop().await.expect("clean shutdown");
    fixture.cleanup().await;
}

#[tokio::test]
async fn resources_list_and_read_on_every_engine() {
    for engine in crate::support::ENGINES {
        let Some(fixture) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(fixture.config(AccessMode::ReadOnly)).await;
        let (mut resources, mut prompts) = clients(&running).await;
        let uri = format!("db://{}/accounts", fixture.schema);

        let (text, _) = read_text(&mut resources, &uri).await;
        assert!(
            text.contains("## Primary key\n\n`id`"),
            "{engine:?}: {text}"
        );
        assert!(text.contains("| `balance` |"), "{engine:?}: {text}");

        let schemas = resources
            .complete(complete_template("schema", &fixture.schema, None))
            .await
            .expect("complete schema")
            .into_inner();
        assert_eq!(schemas.values.first(), Some(&fixture.schema), "{engine:?}");

        let rendered = prompts
            .get_prompt(get(
                "write_query",
                &[
                    ("question", "Who has the largest balance?"),
                    ("schema", &fixture.schema),
                ],
            ))
            .await
            .expect("prompt")
            .into_inner();
        let text = prompt_text(&rendered);
        assert!(text.contains("- `accounts`"), "{engine:?}: {text}");
        let placeholder = if engine == Engine::Postgres {
            "$1"
        } else {
            "?"
        };
        assert!(
            text.contains(&format!("placeholders are {placeholder}")),
            "{engine:?}: {text}"
        );
        running.stop().await.expect("clean shutdown");
        fixture.cleanup().await;
    }
}

#[tokio::test]
async fn prompts_are_listed_with_described_arguments() {
    let (running, _dir) = demo().await;
    let (_, mut prompts) = clients(&running).await;
    let list = prompts
        .list_prompts(ListPromptsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let names: Vec<&str> = list.prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["write_query", "explore_schema"]);
    let write_query = &list.prompts[0];
    let args: Vec<(&str, bool)> = write_query
        .arguments
        .iter()
        .map(|a| (a.name.as_str(), a.required))
        .collect();
    assert_eq!(args, [("question", true), ("schema", false)]);
    assert!(
        write_query
            .arguments
            .iter()
            .all(|a| !a.description.is_empty())
    );
}

#[tokio::test]
async fn write_query_guides_through_the_tools_with_the_real_tables() {
    let (running, _dir) = demo().await;
    let (_, mut prompts) = clients(&running).await;
    let rendered = prompts
        .get_prompt(get(
            "write_query",
            &[("question", "Which country brings the most revenue?")],
        ))
        .await
        .expect("prompt")
        .into_inner();
    assert!(
        rendered.description.contains("Which country"),
        "{rendered:?}"
    );
    let text = prompt_text(&rendered);
    for expected in [
        "> Which country brings the most revenue?",
        "`database_list_tables`",
        "`database_describe_table`",
        "`database_query`",
        "`database_explain`",
        "`parameters`",
        "- `orders` (~120 rows)",
        "- `order_totals` (view",
        "SQLite: placeholders are ?",
        "at most 10000",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("database_execute is enabled"), "{text}");
}

#[tokio::test]
async fn a_missing_or_bad_argument_is_named() {
    let (running, _dir) = demo().await;
    let (_, mut prompts) = clients(&running).await;
    for args in [&[][..], &[("question", "  ")][..]] {
        let status = prompts
            .get_prompt(get("write_query", args))
            .await
            .expect_err("question is required");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("`question`"), "{status:?}");
    }
    let status = prompts
        .get_prompt(get("write_query", &[("question", "x"), ("schema", "nope")]))
        .await
        .expect_err("no such schema");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("`schema`"), "{status:?}");

    let status = prompts
        .get_prompt(get("explore_schema", &[("scheme", "main")]))
        .await
        .expect_err("misspelt argument");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("scheme"), "{status:?}");

    let status = prompts
        .get_prompt(get("summarise_everything", &[]))
        .await
        .expect_err("no such prompt");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn explore_schema_needs_no_arguments_and_takes_a_focus() {
    let (running, _dir) = demo().await;
    let (_, mut prompts) = clients(&running).await;
    let plain = prompts
        .get_prompt(get("explore_schema", &[]))
        .await
        .expect("prompt")
        .into_inner();
    let text = prompt_text(&plain);
    assert!(text.contains("`main`"), "{text}");
    assert!(text.contains("`database_describe_table`"), "{text}");
    assert!(!text.contains("Concentrate on"), "{text}");

    let focused = prompts
        .get_prompt(get("explore_schema", &[("focus", "products and prices")]))
        .await
        .expect("prompt")
        .into_inner();
    assert!(
        prompt_text(&focused).contains("Concentrate on what concerns: products and prices"),
        "{focused:?}"
    );
}

#[tokio::test]
async fn prompt_arguments_complete() {
    let (running, _dir) = demo().await;
    let (_, mut prompts) = clients(&running).await;
    let complete = |prompt: &str, argument: &str, value: &str| CompleteRequest {
        r#ref: Some(complete_request::Ref::Prompt(prompt.to_owned())),
        argument: argument.to_owned(),
        value: value.to_owned(),
        context: HashMap::new(),
    };
    let schemas = prompts
        .complete(complete("write_query", "schema", "m"))
        .await
        .expect("complete")
        .into_inner();
    assert_eq!(schemas.values, ["main"]);

    let question = prompts
        .complete(complete("write_query", "question", "Which"))
        .await
        .expect("complete")
        .into_inner();
    assert!(question.values.is_empty());

    let status = prompts
        .complete(complete("nope", "schema", ""))
        .await
        .expect_err("no such prompt");
    assert_eq!(status.code(), Code::NotFound);
}
