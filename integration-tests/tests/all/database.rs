//! The database connector through the router, on SQLite, PostgreSQL and MariaDB.
//!
//! Each engine gets a read-write connector (to set up and clean up a table of its
//! own) and a read-only one (what an agent normally gets), which on PostgreSQL
//! and MariaDB connects as a database user that can only read that table,
//! created through the read-write connector the way the README tells operators
//! to (the connector refuses to serve read-only as a user that can write): the
//! read-only tools work, Execute is not offered, writes and escape attempts
//! through Query are refused with a reason, and the data is unchanged afterwards.

use integration_tests::prism::in_ci;
use integration_tests::process::{Connector, scratch_dir};
use serde_json::{Value, json};

use crate::support::*;

/// A table name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Whether a local server answers on `port`; outside CI a missing one skips.
async fn service_up(name: &str, port: u16, how: &str) -> bool {
    if tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        return true;
    }
    assert!(!in_ci(), "{name} is not running on 127.0.0.1:{port}: {how}");
    eprintln!("\n*** SKIPPING the {name} test: nothing on 127.0.0.1:{port}. {how}\n");
    false
}

/// A database user that can only read `table`: the statements that create and
/// drop it, and the URL that connects as it.
struct Reader {
    create: Vec<String>,
    drop: Vec<String>,
    url: String,
}

/// The read-only user for `table` on `engine` (`None` on SQLite, which has none).
fn reader(engine: &str, table: &str) -> Option<Reader> {
    let user = format!("{table}_ro");
    match engine {
        "postgresql" => Some(Reader {
            create: vec![
                format!("CREATE ROLE {user} LOGIN"),
                format!("ALTER ROLE {user} SET default_transaction_read_only = on"),
                format!("GRANT SELECT ON {table} TO {user}"),
            ],
            drop: vec![format!("DROP ROLE {user}")],
            url: format!("postgres://{user}@127.0.0.1:5432/test"),
        }),
        "mariadb" => Some(Reader {
            create: vec![
                // No host: any host ('%').
                format!("CREATE USER {user}"),
                format!("GRANT SELECT ON test.{table} TO {user}"),
            ],
            drop: vec![format!("DROP USER {user}")],
            url: format!("mysql://{user}@127.0.0.1:3306/test"),
        }),
        _ => None,
    }
}

async fn exercise(engine: &str, url: &str, placeholder: &str) {
    let table = unique("sb_e2e");
    let rw = Connector::start(
        "database-connector",
        0,
        &[("DATABASE_URL", url), ("DB_ACCESS_MODE", "read-write")],
    )
    .await
    .expect("start read-write connector");

    let reader = reader(engine, &table);
    let mut setup = vec![
        format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, price DECIMAL(10,2))"
        ),
        format!(
            "INSERT INTO {table} (id, name, price) VALUES (1, 'widget', 9.99), (2, 'gadget', 24.50)"
        ),
    ];
    setup.extend(reader.iter().flat_map(|r| r.create.iter().cloned()));
    {
        let (admin, _) = stdio_client(&connector_args(&[spec("admin", &rw)])).await;
        for sql in &setup {
            let r = call(&admin, "admin_execute", json!({"sql": sql})).await;
            assert!(!is_error(&r), "{engine}: {sql}: {}", text(&r));
        }
    }

    let reader_url = reader.as_ref().map_or(url, |r| r.url.as_str());
    let ro = Connector::start("database-connector", 0, &[("DATABASE_URL", reader_url)])
        .await
        .expect("start read-only connector");
    let (client, _) = stdio_client(&connector_args(&[
        spec("admin", &rw),
        spec("database", &ro),
    ]))
    .await;

    let schemas = call(&client, "database_list_schemas", json!({})).await;
    assert!(!is_error(&schemas), "{engine}: {}", text(&schemas));
    let listed = schemas.structured_content.expect("structured");
    assert!(
        listed["schemas"].as_array().is_some_and(|s| !s.is_empty()),
        "{engine}: {listed}"
    );

    let tables = call(&client, "database_list_tables", json!({})).await;
    assert!(!is_error(&tables), "{engine}: {}", text(&tables));
    assert!(
        tables
            .structured_content
            .expect("structured")
            .to_string()
            .contains(&table),
        "{engine}"
    );

    let described = call(&client, "database_describe_table", json!({"table": table})).await;
    assert!(!is_error(&described), "{engine}: {}", text(&described));
    let description = described
        .structured_content
        .expect("structured")
        .to_string();
    assert!(
        description.contains("\"price\"") && description.contains("\"id\""),
        "{engine}: {description}"
    );

    let query = format!("SELECT name, price FROM {table} WHERE id = {placeholder}");
    let found = call(
        &client,
        "database_query",
        json!({"sql": query, "parameters": [2]}),
    )
    .await;
    assert!(!is_error(&found), "{engine}: {}", text(&found));
    let result = found.structured_content.expect("structured");
    assert_eq!(result["row_count"], 1, "{engine}: {result}");
    assert_eq!(result["rows"][0][0], "gadget", "{engine}: {result}");
    let price = &result["rows"][0][1];
    assert!(
        price == &json!("24.50") || price == &json!("24.5") || price == &json!(24.5),
        "{engine}: decimal {price}"
    );

    let plan = call(
        &client,
        "database_explain",
        json!({"sql": format!("SELECT * FROM {table}")}),
    )
    .await;
    assert!(!is_error(&plan), "{engine}: {}", text(&plan));

    // The read-only connector does not offer Execute at all; the read-write one does.
    let names = tool_names(&client).await;
    assert!(
        names.iter().any(|n| n == "admin_execute")
            && !names.iter().any(|n| n == "database_execute"),
        "{engine}: {names:?}"
    );

    // Writes and escapes through the read-only connector are refused, with a reason.
    for (tool, sql) in [
        ("database_query", format!("DELETE FROM {table}")),
        ("database_query", format!("COMMIT; DROP TABLE {table}")),
        (
            "database_query",
            format!("WITH gone AS (DELETE FROM {table} RETURNING *) SELECT * FROM gone"),
        ),
        (
            "database_query",
            format!("SELECT * FROM {table} FOR UPDATE"),
        ),
    ] {
        let r = call(&client, tool, json!({"sql": sql})).await;
        assert!(is_error(&r), "{engine}: {tool} {sql} must be refused");
        // The guard's refusal names its reason.
        assert!(
            text(&r).contains("refused: "),
            "{engine}: the refusal says why: {}",
            text(&r)
        );
    }
    let count = call(
        &client,
        "database_query",
        json!({"sql": format!("SELECT COUNT(*) FROM {table}")}),
    )
    .await;
    let rows: Value = count.structured_content.expect("structured")["rows"].clone();
    assert_eq!(
        rows[0][0].as_f64(),
        Some(2.0),
        "{engine}: data unchanged, got {rows}"
    );

    let cleanup = std::iter::once(format!("DROP TABLE {table}"))
        .chain(reader.iter().flat_map(|r| r.drop.iter().cloned()));
    for sql in cleanup {
        let r = call(&client, "admin_execute", json!({"sql": sql})).await;
        assert!(!is_error(&r), "{engine}: cleanup: {sql}: {}", text(&r));
    }
}

#[tokio::test]
async fn database_tools_work_on_sqlite() {
    let dir = scratch_dir("sqlite");
    let file = dir.join("e2e.sqlite3");
    std::fs::File::create(&file).expect("create the database file");
    let url = format!("sqlite://{}", file.display());
    exercise("sqlite", &url, "?").await;
}

#[tokio::test]
async fn database_tools_work_on_postgresql() {
    if service_up(
        "PostgreSQL",
        5432,
        "start it (scripts/ensure-services.sh) or `docker compose -f deploy/compose/test-services.yaml up -d --wait`",
    )
    .await
    {
        exercise(
            "postgresql",
            "postgres://postgres@127.0.0.1:5432/test",
            "$1",
        )
        .await;
    }
}

#[tokio::test]
async fn database_tools_work_on_mariadb() {
    if service_up("MariaDB", 3306, "start it (scripts/ensure-services.sh)").await {
        exercise("mariadb", "mysql://root@127.0.0.1:3306/test", "?").await;
    }
}

#[tokio::test]
async fn the_embedded_demo_database_answers_out_of_the_box() {
    let dir = scratch_dir("demo");
    let demo = dir.join("demo.sqlite3").display().to_string();
    let db = Connector::start(
        "database-connector",
        0,
        &[("DATABASE_URL", ""), ("DB_DEMO_PATH", demo.as_str())],
    )
    .await
    .expect("start demo connector");
    let (client, _) = stdio_client(&connector_args(&[spec("database", &db)])).await;
    let r = call(
        &client,
        "database_query",
        json!({"sql": "SELECT COUNT(*) AS n FROM customers"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let n = &r.structured_content.expect("structured")["rows"][0][0];
    assert!(n.as_f64().unwrap_or(0.0) > 0.0, "demo data present: {n}");
}

#[tokio::test]
async fn a_comment_with_terminal_escapes_reaches_clients_as_visible_text() {
    // Whoever can comment a table decides text a client may print in a
    // terminal: an ANSI sequence in it could clear the screen or hide what
    // follows from the person while the model reads it. The router hands
    // clients such text with the control characters made visible.
    if !service_up("PostgreSQL", 5432, "start it (scripts/ensure-services.sh)").await {
        return;
    }
    let table = unique("sb_ansi");
    let db = Connector::start(
        "database-connector",
        0,
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
            ("DB_ACCESS_MODE", "read-write"),
        ],
    )
    .await
    .expect("start connector");
    let (client, _) = stdio_client(&connector_args(&[spec("db", &db)])).await;
    for sql in [
        format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY)"),
        format!("COMMENT ON TABLE {table} IS E'safe\\x1b[2J\\x1b[1Ahidden\\x07'"),
    ] {
        let r = call(&client, "db_execute", json!({ "sql": sql })).await;
        assert!(!is_error(&r), "{sql}: {}", text(&r));
    }
    let uri = format!("db+db://public/{table}");
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri.clone()))
        .await
        .expect("resources/read");
    let shown = serde_json::to_value(&read).expect("JSON").to_string();
    let listed = client.list_all_resources().await.expect("resources/list");
    let described = listed
        .iter()
        .find(|r| r.uri == uri)
        .and_then(|r| r.description.clone())
        .unwrap_or_default();
    let r = call(
        &client,
        "db_execute",
        json!({ "sql": format!("DROP TABLE {table}") }),
    )
    .await;
    assert!(!is_error(&r), "drop: {}", text(&r));

    assert!(
        shown.contains("safe\u{241b}[2J\u{241b}[1Ahidden\u{2407}"),
        "the comment is shown with its escapes visible: {shown}"
    );
    assert!(!shown.contains("\\u001b"), "{shown}");
    assert!(
        described.contains("\u{241b}[2J") && !described.contains('\u{1b}'),
        "{described:?}"
    );
}
