//! Every tool on every engine: typed rows, caps, schema exploration, plans,
//! writes in read-write mode.

use database_connector::{AccessMode, Config, Target};
use secrecy::SecretString;
use serde_json::json;
use switchboard_proto::database::v1::{
    DescribeTableRequest, Engine as ProtoEngine, ExecuteRequest, ExplainRequest,
    ListSchemasRequest, ListTablesRequest, QueryRequest, QueryResult, TableKind,
};
use tonic::Code;

use crate::support::{ENGINES, Engine, Fixture, Running, js, pv, query};

/// Adds `customers` and `orders` (with a foreign key and an index) to a fixture.
async fn add_shop(f: &Fixture) {
    let customers = f.t("customers");
    let orders = f.t("orders");
    let (text, ts) = match f.engine {
        Engine::Postgres => ("TEXT", "TIMESTAMPTZ"),
        Engine::MariaDb => ("VARCHAR(100)", "DATETIME"),
        Engine::Sqlite => ("TEXT", "TEXT"),
    };
    f.admin
        .exec(&format!("CREATE TABLE {customers} (id INTEGER PRIMARY KEY, name {text} NOT NULL, country CHAR(2))"))
        .await;
    f.admin
        .exec(&format!(
            "CREATE TABLE {orders} (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, total DECIMAL(10,2) NOT NULL DEFAULT 0, placed_at {ts}, \
             CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES {customers} (id) ON DELETE CASCADE)"
        ))
        .await;
    let index = match f.engine {
        Engine::Postgres => format!("CREATE INDEX orders_placed_at ON {orders} (placed_at)"),
        _ => format!("CREATE INDEX orders_placed_at ON {orders} (placed_at)"),
    };
    f.admin.exec(&index).await;
    f.admin
        .exec(&format!("INSERT INTO {customers} (id, name, country) VALUES (1, 'Ada', 'GB'), (2, 'Grace', 'US')"))
        .await;
    f.admin
        .exec(&format!(
            "INSERT INTO {orders} (id, customer_id, total, placed_at) VALUES (10, 1, 12.50, '2025-03-01 10:00:00'), (11, 2, 99.99, '2025-03-02 11:30:00')"
        ))
        .await;
    if f.engine == Engine::Postgres {
        f.admin.exec(&format!("ANALYZE {customers}")).await;
        f.admin
            .exec(&format!("COMMENT ON TABLE {customers} IS 'people who buy'"))
            .await;
    }
}

#[tokio::test]
async fn query_binds_parameters_and_returns_typed_rows() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(f.config(AccessMode::ReadOnly)).await;
        let mut client = running.client().await;
        let sql = format!(
            "SELECT id, owner, balance FROM {} WHERE balance > {} AND owner <> {} ORDER BY id",
            f.t("accounts"),
            match engine {
                Engine::Postgres => "$1::numeric".to_owned(),
                _ => f.p(1),
            },
            f.p(2)
        );
        let result = client
            .query(QueryRequest {
                sql,
                parameters: vec![pv(json!(10)), pv(json!("carol"))],
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        let names: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "owner", "balance"], "{engine:?}");
        assert_eq!(result.row_count, 2, "{engine:?}");
        assert!(!result.truncated);
        let first: Vec<serde_json::Value> = result.rows[0].values.iter().map(js).collect();
        assert_eq!(first[0], json!(1), "{engine:?}");
        assert_eq!(first[1], json!("alice"), "{engine:?}");
        match engine {
            // Exact decimals stay exact, as strings.
            Engine::Postgres | Engine::MariaDb => {
                assert_eq!(first[2], json!("100.50"), "{engine:?}")
            }
            // SQLite stores DECIMAL as REAL.
            Engine::Sqlite => assert_eq!(first[2], json!(100.5)),
        }
        let expected_engine = match engine {
            Engine::Postgres => ProtoEngine::Postgresql,
            Engine::MariaDb => ProtoEngine::Mysql,
            Engine::Sqlite => ProtoEngine::Sqlite,
        };
        assert_eq!(result.engine(), expected_engine);
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn postgres_values_keep_their_types() {
    let Some(f) = Fixture::new(Engine::Postgres).await else {
        return;
    };
    let running = Running::start(f.config(AccessMode::ReadOnly)).await;
    let mut client = running.client().await;
    let result = client
        .query(QueryRequest {
            sql: "SELECT 42::int4 AS i, 9007199254740993::int8 AS big, 1.5::float8 AS f, 12.30::numeric(5,2) AS n, \
                  true AS b, 'x'::text AS t, NULL::int AS nothing, '\\x0102ff'::bytea AS raw, \
                  '2025-01-02T03:04:05.123Z'::timestamptz AS ts, '2025-01-02 03:04:05'::timestamp AS naive, \
                  '2025-01-02'::date AS d, '{\"a\": [1, 2]}'::jsonb AS j, \
                  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, ARRAY[1, 2, NULL]::int4[] AS arr, \
                  '1 day 02:00:00'::interval AS span, $1::text AS param, 'inf'::float8 AS infinite"
                .to_owned(),
            parameters: vec![pv(json!("bound"))],
            ..Default::default()
        })
        .await
        .expect("typed query")
        .into_inner();
    let row: Vec<serde_json::Value> = result.rows[0].values.iter().map(js).collect();
    let types: Vec<&str> = result.columns.iter().map(|c| c.r#type.as_str()).collect();
    assert_eq!(types[0], "INT4");
    assert_eq!(types[8], "TIMESTAMPTZ");
    assert_eq!(row[0], json!(42));
    assert_eq!(row[1], json!("9007199254740993"), "beyond 2^53 is a string");
    assert_eq!(row[2], json!(1.5));
    assert_eq!(row[3], json!("12.30"));
    assert_eq!(row[4], json!(true));
    assert_eq!(row[5], json!("x"));
    assert_eq!(row[6], json!(null));
    assert_eq!(row[7], json!("AQL/"), "bytea as base64");
    assert_eq!(row[8], json!("2025-01-02T03:04:05.123Z"));
    assert_eq!(row[9], json!("2025-01-02T03:04:05"));
    assert_eq!(row[10], json!("2025-01-02"));
    assert_eq!(row[11], json!({"a": [1, 2]}));
    assert_eq!(row[12], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(row[13], json!([1, 2, null]));
    assert_eq!(row[14], json!("P1DT2H"));
    assert_eq!(row[15], json!("bound"));
    assert_eq!(row[16], json!("Infinity"));
    drop(running);
    f.cleanup().await;
}

#[tokio::test]
async fn mariadb_and_sqlite_values_keep_their_types() {
    for engine in [Engine::MariaDb, Engine::Sqlite] {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(f.config(AccessMode::ReadOnly)).await;
        let mut client = running.client().await;
        let sql = match engine {
            Engine::MariaDb => {
                "SELECT 42 AS i, CAST(18446744073709551615 AS UNSIGNED) AS big, CAST(12.30 AS DECIMAL(5,2)) AS n, \
                                CAST('2025-01-02 03:04:05' AS DATETIME) AS ts, CAST('2025-01-02' AS DATE) AS d, \
                                X'0102FF' AS raw, NULL AS nil, ? AS param"
            }
            _ => {
                "SELECT 42 AS i, 9007199254740993 AS big, 1.5 AS n, '2025-01-02T03:04:05' AS ts, \
                  '2025-01-02' AS d, X'0102FF' AS raw, NULL AS nil, ? AS param"
            }
        };
        let result = client
            .query(QueryRequest {
                sql: sql.to_owned(),
                parameters: vec![pv(json!(7))],
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        let row: Vec<serde_json::Value> = result.rows[0].values.iter().map(js).collect();
        assert_eq!(row[0], json!(42), "{engine:?}");
        match engine {
            Engine::MariaDb => {
                assert_eq!(row[1], json!("18446744073709551615"));
                assert_eq!(row[2], json!("12.30"));
                assert_eq!(row[3], json!("2025-01-02T03:04:05"));
                assert_eq!(row[4], json!("2025-01-02"));
            }
            _ => {
                assert_eq!(row[1], json!("9007199254740993"));
                assert_eq!(row[2], json!(1.5));
                assert_eq!(row[3], json!("2025-01-02T03:04:05"));
            }
        }
        assert_eq!(row[5], json!("AQL/"), "{engine:?}: blobs as base64");
        assert_eq!(row[6], json!(null), "{engine:?}");
        assert_eq!(row[7], json!(7), "{engine:?}");
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn max_rows_truncates_and_says_so_and_empty_results_keep_their_columns() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(f.config(AccessMode::ReadOnly)).await;
        let mut client = running.client().await;
        let t = f.t("accounts");
        let result = client
            .query(QueryRequest {
                sql: format!("SELECT id FROM {t} ORDER BY id"),
                max_rows: Some(2),
                ..Default::default()
            })
            .await
            .expect("query")
            .into_inner();
        assert_eq!(result.row_count, 2, "{engine:?}");
        assert!(result.truncated, "{engine:?}");
        assert!(
            result.truncated_reason.contains("max_rows 2"),
            "{}",
            result.truncated_reason
        );

        let empty = client
            .query(QueryRequest {
                sql: format!("SELECT id, owner FROM {t} WHERE id < 0"),
                ..Default::default()
            })
            .await
            .expect("query")
            .into_inner();
        assert_eq!(empty.row_count, 0);
        assert!(!empty.truncated);
        let names: Vec<&str> = empty.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "owner"], "{engine:?}");

        let status = client
            .query(QueryRequest {
                sql: "  ".to_owned(),
                ..Default::default()
            })
            .await
            .expect_err("empty SQL");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("`sql`"), "{}", status.message());

        let status = client
            .query(QueryRequest {
                sql: format!("SELECT no_such_column FROM {t}"),
                ..Default::default()
            })
            .await
            .expect_err("bad column");
        assert_eq!(status.code(), Code::InvalidArgument, "{engine:?}");
        assert!(
            status.message().contains("no_such_column"),
            "{engine:?}: {}",
            status.message()
        );
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn the_result_size_cap_cuts_big_results() {
    let Some(f) = Fixture::new(Engine::Sqlite).await else {
        return;
    };
    let mut config = f.config(AccessMode::ReadOnly);
    config.max_result_bytes = 10_000;
    let running = Running::start(config).await;
    let mut client = running.client().await;
    let result = client
        .query(QueryRequest {
            sql: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT i, printf('%0100d', i) FROM n".to_owned(),
            max_rows: Some(1000),
            ..Default::default()
        })
        .await
        .expect("query")
        .into_inner();
    assert!(result.truncated);
    assert!(
        result.truncated_reason.contains("DB_MAX_RESULT_BYTES"),
        "{}",
        result.truncated_reason
    );
    assert!(
        result.row_count > 10 && result.row_count < 1000,
        "{}",
        result.row_count
    );
    drop(running);
    f.cleanup().await;
}

#[tokio::test]
async fn schemas_tables_and_descriptions_are_listed() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        add_shop(&f).await;
        let running = Running::start(f.config(AccessMode::ReadOnly)).await;
        let mut client = running.client().await;

        let schemas = client
            .list_schemas(ListSchemasRequest::default())
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert!(
            schemas.schemas.iter().any(|s| s.name == f.schema),
            "{engine:?}: {:?}",
            schemas.schemas
        );
        assert!(
            !schemas
                .schemas
                .iter()
                .any(|s| s.name == "information_schema"),
            "{engine:?}"
        );

        let tables = client
            .list_tables(ListTablesRequest {
                schema: Some(f.schema.clone()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert_eq!(tables.schema, f.schema);
        let names: Vec<&str> = tables.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["accounts", "customers", "orders"], "{engine:?}");
        let customers = &tables.tables[1];
        assert_eq!(customers.kind(), TableKind::Table);
        if engine != Engine::MariaDb {
            // PostgreSQL after ANALYZE, SQLite by counting; InnoDB estimates vary.
            assert_eq!(customers.row_estimate, Some(2), "{engine:?}");
        } else {
            assert!(customers.row_estimate.is_some());
        }
        if engine == Engine::Postgres {
            assert_eq!(customers.comment, "people who buy");
        }
        let filtered = client
            .list_tables(ListTablesRequest {
                schema: Some(f.schema.clone()),
                name_contains: Some("ORD".to_owned()),
            })
            .await
            .expect("filtered")
            .into_inner();
        let names: Vec<&str> = filtered.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["orders"], "{engine:?}");

        let orders = client
            .describe_table(DescribeTableRequest {
                table: "orders".to_owned(),
                schema: Some(f.schema.clone()),
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        let columns: Vec<&str> = orders.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            columns,
            ["id", "customer_id", "total", "placed_at"],
            "{engine:?}"
        );
        assert_eq!(orders.primary_key, ["id"], "{engine:?}");
        assert!(!orders.columns[1].nullable, "{engine:?}");
        assert!(orders.columns[3].nullable, "{engine:?}");
        assert!(
            orders.columns[2]
                .default
                .as_deref()
                .is_some_and(|d| d.contains('0')),
            "{engine:?}: {:?}",
            orders.columns[2]
        );
        assert!(
            orders.columns[2].r#type.to_lowercase().contains("decimal")
                || orders.columns[2].r#type.contains("numeric"),
            "{engine:?}"
        );
        assert_eq!(orders.foreign_keys.len(), 1, "{engine:?}");
        let fk = &orders.foreign_keys[0];
        assert_eq!(fk.columns, ["customer_id"]);
        assert_eq!(fk.referenced_table, "customers");
        assert_eq!(fk.referenced_columns, ["id"]);
        assert_eq!(fk.on_delete, "CASCADE", "{engine:?}");
        assert!(
            orders
                .indexes
                .iter()
                .any(|i| i.name == "orders_placed_at" && i.columns == ["placed_at"] && !i.unique),
            "{engine:?}: {:?}",
            orders.indexes
        );

        let status = client
            .describe_table(DescribeTableRequest {
                table: "nope".to_owned(),
                schema: Some(f.schema.clone()),
            })
            .await
            .expect_err("missing table");
        assert_eq!(status.code(), Code::NotFound, "{engine:?}");
        assert!(
            status.message().contains("ListTables"),
            "{}",
            status.message()
        );
        let status = client
            .list_tables(ListTablesRequest {
                schema: Some("no_such_schema_x".to_owned()),
                ..Default::default()
            })
            .await
            .expect_err("missing schema");
        assert_eq!(status.code(), Code::NotFound, "{engine:?}");
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn explain_shows_a_plan_and_analyze_runs_it_where_supported() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(f.config(AccessMode::ReadOnly)).await;
        let mut client = running.client().await;
        let sql = format!(
            "SELECT owner FROM {} WHERE id = {}",
            f.t("accounts"),
            f.p(1)
        );
        let plan = client
            .explain(ExplainRequest {
                sql: sql.clone(),
                parameters: vec![pv(json!(2))],
                analyze: None,
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert!(!plan.analyzed);
        assert!(plan.plan.contains("accounts"), "{engine:?}: {}", plan.plan);
        match engine {
            Engine::MariaDb => assert_eq!(plan.format, "json"),
            _ => assert_eq!(plan.format, "text"),
        }
        let analyzed = client
            .explain(ExplainRequest {
                sql,
                parameters: vec![pv(json!(2))],
                analyze: Some(true),
            })
            .await;
        match engine {
            Engine::Postgres => {
                let plan = analyzed.expect("analyze").into_inner();
                assert!(plan.analyzed);
                assert!(plan.plan.contains("actual"), "{}", plan.plan);
            }
            Engine::MariaDb => {
                let plan = analyzed.expect("analyze").into_inner();
                assert!(
                    plan.plan.contains("r_rows") || plan.plan.contains("r_total_time_ms"),
                    "{}",
                    plan.plan
                );
            }
            Engine::Sqlite => {
                let status = analyzed.expect_err("no analyze on SQLite");
                assert_eq!(status.code(), Code::InvalidArgument);
                assert!(
                    status.message().contains("EXPLAIN ANALYZE"),
                    "{}",
                    status.message()
                );
            }
        }
        // Only a query has a plan, however the statement is written.
        for not_a_query in ["/* plan */ EXPLAIN SELECT 1", "  explain select 1"] {
            let status = client
                .explain(ExplainRequest {
                    sql: not_a_query.to_owned(),
                    ..Default::default()
                })
                .await
                .expect_err("EXPLAIN of EXPLAIN");
            assert_eq!(status.code(), Code::InvalidArgument, "{engine:?}");
            assert!(
                status.message().contains("without EXPLAIN"),
                "{engine:?}: {}",
                status.message()
            );
        }
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn analyze_can_be_disabled_by_the_operator() {
    let Some(f) = Fixture::new(Engine::Sqlite).await else {
        return;
    };
    let mut config = f.config(AccessMode::ReadOnly);
    config.explain_analyze = false;
    let running = Running::start(config).await;
    let mut client = running.client().await;
    let status = client
        .explain(ExplainRequest {
            sql: "SELECT 1".to_owned(),
            analyze: Some(true),
            ..Default::default()
        })
        .await
        .expect_err("analyze disabled");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("DB_EXPLAIN_ANALYZE"),
        "{}",
        status.message()
    );
    drop(running);
    f.cleanup().await;
}

#[tokio::test]
async fn execute_writes_in_read_write_mode() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(f.config(AccessMode::ReadWrite)).await;
        let mut client = running.client().await;
        let t = f.t("accounts");
        let updated = client
            .execute(ExecuteRequest {
                sql: format!(
                    "UPDATE {t} SET balance = balance + 1 WHERE owner = {}",
                    f.p(1)
                ),
                parameters: vec![pv(json!("bob"))],
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert_eq!(updated.rows_affected, 1, "{engine:?}");
        let inserted = client
            .execute(ExecuteRequest {
                sql: format!(
                    "INSERT INTO {t} (id, owner, balance) VALUES ({}, {}, {}) RETURNING id, owner",
                    f.p(1),
                    f.p(2),
                    f.p(3),
                ),
                parameters: vec![pv(json!(4)), pv(json!("dave")), pv(json!(5))],
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert_eq!(inserted.rows_affected, 1, "{engine:?}");
        // RETURNING rows come back on every engine (MariaDB has it since 10.5).
        assert_eq!(inserted.rows.len(), 1, "{engine:?}");
        assert_eq!(js(&inserted.rows[0].values[1]), json!("dave"), "{engine:?}");
        if engine == Engine::Sqlite {
            assert_eq!(inserted.last_insert_id, Some(4));
        }
        assert_eq!(
            f.accounts_fingerprint().await,
            "1:alice:100.50,2:bob:21.00,3:carol:7.25,4:dave:5.00",
            "{engine:?}"
        );
        // Returned rows are capped like a query's; the statement still runs in full.
        // (MariaDB has no UPDATE ... RETURNING.)
        if engine != Engine::MariaDb {
            let connector = Running::start(database_connector::Config {
                max_rows: 2,
                ..f.config(AccessMode::ReadWrite)
            })
            .await;
            let mut capped = connector.client().await;
            let updated = capped
                .execute(ExecuteRequest {
                    sql: format!("UPDATE {t} SET balance = balance RETURNING id"),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
                .into_inner();
            assert_eq!(updated.rows_affected, 4, "{engine:?}");
            assert_eq!(updated.rows.len(), 2, "{engine:?}");
            assert!(
                updated.truncated_reason.contains("max_rows 2"),
                "{engine:?}: {updated:?}"
            );
        }
        // A failing write says why.
        let status = client
            .execute(ExecuteRequest {
                sql: format!("INSERT INTO {t} (id, owner, balance) VALUES (1, 'dup', 0)"),
                ..Default::default()
            })
            .await
            .expect_err("duplicate key");
        assert_eq!(status.code(), Code::InvalidArgument, "{engine:?}");
        // The database's own reason, not just that it refused.
        let reason = match engine {
            Engine::Postgres => "SQLSTATE 23505",
            Engine::MariaDb => "Duplicate entry",
            Engine::Sqlite => "UNIQUE constraint failed",
        };
        assert!(
            status.message().contains("rejected") && status.message().contains(reason),
            "{engine:?}: {}",
            status.message()
        );
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn null_parameters_and_show_statements_work() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let notes = f.t("notes");
        f.admin
            .exec(&format!(
                "CREATE TABLE {notes} (id INTEGER PRIMARY KEY, rating INTEGER, body VARCHAR(20))"
            ))
            .await;
        let running = Running::start(f.config(AccessMode::ReadWrite)).await;
        let mut client = running.client().await;
        // A null parameter takes the column's type (PostgreSQL infers it).
        client
            .execute(ExecuteRequest {
                sql: format!(
                    "INSERT INTO {notes} (id, rating, body) VALUES ({}, {}, {})",
                    f.p(1),
                    f.p(2),
                    f.p(3)
                ),
                parameters: vec![pv(json!(1)), pv(json!(null)), pv(json!(null))],
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"));
        let rows = client
            .query(QueryRequest {
                sql: format!("SELECT rating, body FROM {notes} WHERE rating IS NULL"),
                ..Default::default()
            })
            .await
            .expect("query")
            .into_inner();
        assert_eq!(rows.row_count, 1, "{engine:?}");
        assert_eq!(js(&rows.rows[0].values[0]), json!(null));
        let show = match engine {
            Engine::Postgres => Some("SHOW search_path"),
            Engine::MariaDb => Some("SHOW TABLES"),
            Engine::Sqlite => None,
        };
        if let Some(sql) = show {
            let result = client
                .query(QueryRequest {
                    sql: sql.to_owned(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
                .into_inner();
            assert!(result.row_count >= 1, "{engine:?}");
        }
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn a_missing_sqlite_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing.sqlite3");
    let url = format!("sqlite:{}", missing.display());
    let mut config = Config::new(Target::Url(SecretString::from(url)));
    config.access_mode = AccessMode::ReadWrite;
    let running = Running::start(config).await;
    let mut client = running.client().await;
    let status = query(&mut client, "SELECT 1", &[])
        .await
        .expect_err("the file does not exist");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("{} does not exist", missing.display())),
        "{status:?}"
    );
    assert!(status.message().contains("DATABASE_URL"), "{status:?}");
    assert!(
        !missing.exists(),
        "a read must not create the database file"
    );
}

#[tokio::test]
async fn one_statement_with_parameters_of_different_types_on_one_connection() {
    // The same SQL text with a string, a number, a string and a boolean parameter,
    // on one pooled connection: each run must bind its own value's type.
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = f.config(AccessMode::ReadOnly);
        config.pool_size = 1;
        let running = Running::start(config).await;
        let mut client = running.client().await;
        let sql = format!(
            "SELECT owner FROM {} WHERE owner = {} OR id = 3 ORDER BY id",
            f.t("accounts"),
            f.p(1)
        );
        for (value, owners) in [
            (json!("alice"), vec!["alice", "carol"]),
            (json!(5), vec!["carol"]),
            (json!("bob"), vec!["bob", "carol"]),
            (json!(true), vec!["carol"]),
        ] {
            // PostgreSQL compares the text column with the number or boolean as
            // text; MariaDB and SQLite compare by value. Neither matches alice or bob.
            let found: Vec<serde_json::Value> =
                query(&mut client, &sql, std::slice::from_ref(&value))
                    .await
                    .unwrap_or_else(|status| panic!("{engine:?} {value}: {status:?}"))
                    .rows
                    .iter()
                    .map(|r| js(&r.values[0]))
                    .collect();
            assert_eq!(
                found,
                owners.iter().map(|o| json!(o)).collect::<Vec<_>>(),
                "{engine:?} {value}"
            );
        }
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn postgres_parameters_take_the_type_of_their_column_without_casts() {
    let Some(f) = Fixture::new(Engine::Postgres).await else {
        return;
    };
    let events = f.t("events");
    f.admin
        .exec(&format!(
            "CREATE TABLE {events} (id INT4 PRIMARY KEY, day DATE, at TIMESTAMPTZ, ref UUID, amount NUMERIC(10,2), meta JSONB, note TEXT, done BOOL)"
        ))
        .await;
    f.admin
        .exec(&format!(
            "INSERT INTO {events} VALUES \
             (1, '2025-03-01', '2025-03-01T10:00:00Z', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 12.50, '{{\"k\": 1}}', '7', true), \
             (2, '2025-03-02', '2025-03-02T10:00:00Z', '67e55044-10b1-426f-9247-bb680e5fe0c8', 99.99, '{{\"k\": 2}}', 'x', false)"
        ))
        .await;
    let running = Running::start(f.config(AccessMode::ReadWrite)).await;
    let mut client = running.client().await;
    let ids = |result: QueryResult| -> Vec<serde_json::Value> {
        result.rows.iter().map(|r| js(&r.values[0])).collect()
    };
    for (condition, value) in [
        // A trailing semicolon is allowed, as everywhere.
        ("day = $1;", json!("2025-03-01")),
        ("at < $1", json!("2025-03-01T12:00:00+00:00")),
        ("at < $1", json!("2025-03-02")),
        ("ref = $1", json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        ("amount = $1", json!("12.50")),
        ("amount < $1", json!(13)),
        ("meta @> $1", json!("{\"k\": 1}")),
        ("meta @> $1", json!({"k": 1})),
        ("note = $1", json!(7)),
        ("done = $1", json!("true")),
        ("id = $1", json!("1")),
    ] {
        let sql = format!("SELECT id FROM {events} WHERE {condition}");
        let result = query(&mut client, &sql, std::slice::from_ref(&value))
            .await
            .unwrap_or_else(|s| panic!("{condition} with {value}: {s:?}"));
        assert_eq!(ids(result), [json!(1)], "{condition} with {value}");
    }

    // A write binds the same way.
    client
        .execute(ExecuteRequest {
            sql: format!(
                "INSERT INTO {events} (id, day, at, ref, amount) VALUES ($1, $2, $3, $4, $5)"
            ),
            parameters: vec![
                pv(json!(3)),
                pv(json!("2025-04-01")),
                pv(json!("2025-04-01 08:30:00+02")),
                pv(json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
                pv(json!("0.10")),
            ],
        })
        .await
        .expect("insert with typed parameters");
    let sql = format!("SELECT day, at, amount FROM {events} WHERE id = 3");
    let stored = query(&mut client, &sql, &[]).await.expect("read back");
    let row: Vec<serde_json::Value> = stored.rows[0].values.iter().map(js).collect();
    assert_eq!(
        row,
        [
            json!("2025-04-01"),
            json!("2025-04-01T06:30:00Z"),
            json!("0.10")
        ]
    );

    // A value that is not of the inferred type is refused by position.
    let sql = format!("SELECT id FROM {events} WHERE id = $1 AND day > $2");
    let status = query(&mut client, &sql, &[json!(1), json!("March 1st")])
        .await
        .expect_err("not a date");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("parameter $2 is used as DATE")
            && status.message().contains("$2::date"),
        "{}",
        status.message()
    );
    // One SQL text, on one connection, with values that bind as the inferred types
    // (timestamptz, text) and values that bind as others (a timestamp without a
    // zone, JSON as jsonb), mixed: each run must bind its own values' types, not
    // those of an earlier run of the same text.
    let mut one_connection = f.config(AccessMode::ReadOnly);
    one_connection.pool_size = 1;
    let single = Running::start(one_connection).await;
    let mut single_client = single.client().await;
    for (at, value, text) in [
        ("2025-03-01T00:00:00Z", json!("abc"), "abc"),
        ("2025-03-01", json!({"a": 1}), "{\"a\": 1}"),
        ("2025-03-01", json!("abc"), "abc"),
        ("2025-03-01", json!(5), "5"),
        ("2025-03-01T00:00:00Z", json!([1, 2]), "[1, 2]"),
        ("2025-03-01T00:00:00Z", json!(5), "5"),
    ] {
        let sql = "SELECT $1::timestamptz AS at, $2::text AS t";
        let result = query(&mut single_client, sql, &[json!(at), value.clone()])
            .await
            .unwrap_or_else(|s| panic!("{at} {value}: {s:?}"));
        assert_eq!(js(&result.rows[0].values[1]), json!(text), "{at} {value}");
    }
    drop(single);

    // An empty result still names its columns.
    let sql = format!("SELECT id, day FROM {events} WHERE day = $1");
    let empty = query(&mut client, &sql, &[json!("1999-01-01")])
        .await
        .expect("empty result");
    let names: Vec<&str> = empty.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "day"]);
    drop(running);
    f.cleanup().await;
}

#[tokio::test]
async fn a_query_run_again_after_its_table_changed_sees_the_new_columns() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = f.config(AccessMode::ReadOnly);
        config.pool_size = 1;
        let running = Running::start(config).await;
        let mut client = running.client().await;
        let accounts = f.t("accounts");
        let columns = |result: &QueryResult| -> Vec<String> {
            result.columns.iter().map(|c| c.name.clone()).collect()
        };
        let sql = format!("SELECT * FROM {accounts} WHERE id = {}", f.p(1));
        let before = query(&mut client, &sql, &[json!(1)])
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"));
        assert_eq!(columns(&before), ["id", "owner", "balance"], "{engine:?}");
        f.admin
            .exec(&format!(
                "ALTER TABLE {accounts} ADD COLUMN note VARCHAR(20)"
            ))
            .await;
        let after = query(&mut client, &sql, &[json!(1)])
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"));
        assert_eq!(
            columns(&after),
            ["id", "owner", "balance", "note"],
            "{engine:?}"
        );
        drop(running);
        f.cleanup().await;
    }
}
