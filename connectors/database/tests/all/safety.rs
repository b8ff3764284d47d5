//! Escape attempts against the read-only promise, on PostgreSQL, MariaDB and
//! SQLite. Each one must be refused with its reason, and the data must be
//! exactly as before afterwards.

use database_connector::{AccessMode, Database};
use switchboard_proto::database::v1::{ExecuteRequest, ExplainRequest, QueryRequest};
use tonic::Code;

use crate::support::{ENGINES, Engine, Fixture, Running};

/// Attacks for one engine: (SQL, a word the refusal must contain).
fn attacks(f: &Fixture) -> Vec<(String, &'static str)> {
    let t = f.t("accounts");
    let mut list = vec![
        // The reference Postgres MCP server escape.
        (format!("COMMIT; DROP TABLE {t}"), "exactly one"),
        (format!("SELECT 1; DELETE FROM {t}"), "exactly one"),
        (format!("select 1;\nDROP TABLE {t}; -- bye"), "exactly one"),
        (
            format!("ROLLBACK; UPDATE {t} SET balance = 0"),
            "exactly one",
        ),
        (format!("DELETE FROM {t}"), "DELETE"),
        (
            format!("/* harmless */ UPDATE {t} SET balance = 0"),
            "UPDATE",
        ),
        (
            format!("INSERT INTO {t} (id, owner, balance) VALUES (9, 'mallory', 1)"),
            "INSERT",
        ),
        (format!("DROP TABLE {t}"), "DROP TABLE"),
        (format!("CREATE TABLE {}_copy (a int)", t), "CREATE TABLE"),
        ("COMMIT".to_owned(), "COMMIT"),
    ];
    match f.engine {
        Engine::Postgres => list.extend([
            (
                format!("WITH gone AS (DELETE FROM {t} RETURNING *) SELECT count(*) FROM gone"),
                "data-modifying",
            ),
            (
                format!("SELECT * INTO {}.stolen FROM {t}", f.schema),
                "INTO",
            ),
            (format!("SELECT * FROM {t} FOR UPDATE"), "locking"),
            (format!("TRUNCATE {t}"), "TRUNCATE"),
            ("SET default_transaction_read_only = off".to_owned(), "SET"),
            (
                "SELECT set_config('default_transaction_read_only', 'off', false)".to_owned(),
                "set_config",
            ),
            ("SELECT pg_sleep(30)".to_owned(), "pg_sleep"),
            (
                "SELECT pg_read_file('/etc/passwd')".to_owned(),
                "pg_read_file",
            ),
            ("SELECT lo_import('/etc/passwd')".to_owned(), "lo_import"),
            (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity".to_owned(),
                "pg_terminate_backend",
            ),
            (
                format!("SELECT query_to_xml('DELETE FROM {t}', true, true, '')"),
                "query_to_xml",
            ),
            (format!("EXPLAIN ANALYZE DELETE FROM {t}"), "Explain tool"),
            (format!("COPY {t} TO '/tmp/stolen'"), "COPY"),
        ]),
        Engine::MariaDb => list.extend([
            (format!("SELECT * FROM {t} FOR UPDATE"), "locking"),
            (format!("TRUNCATE TABLE {t}"), "TRUNCATE"),
            ("SET SESSION TRANSACTION READ WRITE".to_owned(), "SET"),
            ("SELECT SLEEP(30)".to_owned(), "sleep"),
            ("SELECT LOAD_FILE('/etc/passwd')".to_owned(), "load_file"),
            ("SELECT GET_LOCK('x', 10)".to_owned(), "get_lock"),
            (
                format!("REPLACE INTO {t} (id, owner, balance) VALUES (1, 'mallory', 0)"),
                "REPLACE",
            ),
        ]),
        Engine::Sqlite => list.extend([
            (
                "ATTACH DATABASE '/tmp/evil.sqlite3' AS evil".to_owned(),
                "ATTACH",
            ),
            ("PRAGMA query_only = 0".to_owned(), "PRAGMA"),
            (
                "SELECT load_extension('/tmp/evil')".to_owned(),
                "load_extension",
            ),
            (
                format!("REPLACE INTO {t} (id, owner, balance) VALUES (1, 'mallory', 0)"),
                "INSERT",
            ),
            ("VACUUM".to_owned(), "VACUUM"),
        ]),
    }
    list
}

#[tokio::test]
async fn every_escape_attempt_through_query_is_refused_and_the_data_is_unchanged() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        // Read-write mode, so the refusals come from the read path itself.
        let running = Running::start(f.config(AccessMode::ReadWrite)).await;
        let mut client = running.client().await;
        for (sql, reason) in attacks(&f) {
            let status = client
                .query(QueryRequest {
                    sql: sql.clone(),
                    ..Default::default()
                })
                .await
                .expect_err(&format!("{engine:?} accepted {sql:?}"));
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{engine:?} {sql:?}: {status:?}"
            );
            assert!(
                status.message().starts_with("refused: "),
                "{engine:?} {sql:?}: {}",
                status.message()
            );
            assert!(
                status
                    .message()
                    .to_lowercase()
                    .contains(&reason.to_lowercase()),
                "{engine:?} {sql:?}: refusal should name {reason:?}: {}",
                status.message()
            );
        }
        assert_eq!(
            f.accounts_fingerprint().await,
            Fixture::ORIGINAL_ACCOUNTS,
            "{engine:?}"
        );
        assert!(f.table_exists("accounts").await, "{engine:?}");
        assert!(!f.table_exists("accounts_copy").await, "{engine:?}");
        assert!(!f.table_exists("stolen").await, "{engine:?}");
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn explain_refuses_writes_even_with_analyze() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(f.config(AccessMode::ReadWrite)).await;
        let mut client = running.client().await;
        let t = f.t("accounts");
        for analyze in [false, true] {
            for sql in [
                format!("DELETE FROM {t}"),
                format!("SELECT 1; DROP TABLE {t}"),
            ] {
                let status = client
                    .explain(ExplainRequest {
                        sql: sql.clone(),
                        analyze: Some(analyze),
                        ..Default::default()
                    })
                    .await
                    .expect_err(&format!("{engine:?} explained {sql:?}"));
                assert_eq!(
                    status.code(),
                    Code::InvalidArgument,
                    "{engine:?} {sql:?}: {status:?}"
                );
                assert!(
                    status.message().starts_with("refused: "),
                    "{}",
                    status.message()
                );
            }
        }
        assert_eq!(
            f.accounts_fingerprint().await,
            Fixture::ORIGINAL_ACCOUNTS,
            "{engine:?}"
        );
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn execute_is_refused_in_read_only_mode_and_nothing_runs() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(f.config(AccessMode::ReadOnly)).await;
        let mut client = running.client().await;
        let t = f.t("accounts");
        for sql in [
            format!("DELETE FROM {t}"),
            format!("DROP TABLE {t}"),
            format!("UPDATE {t} SET balance = 0"),
        ] {
            let status = client
                .execute(ExecuteRequest {
                    sql,
                    ..Default::default()
                })
                .await
                .expect_err("execute must be refused in read-only mode");
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "{engine:?}: {status:?}"
            );
            assert!(
                status.message().contains("DB_ACCESS_MODE=read-write"),
                "{}",
                status.message()
            );
        }
        assert_eq!(
            f.accounts_fingerprint().await,
            Fixture::ORIGINAL_ACCOUNTS,
            "{engine:?}"
        );
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn execute_refuses_several_statements_in_one_call() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(f.config(AccessMode::ReadWrite)).await;
        let mut client = running.client().await;
        let t = f.t("accounts");
        let status = client
            .execute(ExecuteRequest {
                sql: format!("UPDATE {t} SET owner = 'x' WHERE id = 1; DROP TABLE {t}"),
                ..Default::default()
            })
            .await
            .expect_err("two statements");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{engine:?}: {status:?}"
        );
        assert!(
            status.message().contains("exactly one"),
            "{}",
            status.message()
        );
        assert_eq!(
            f.accounts_fingerprint().await,
            Fixture::ORIGINAL_ACCOUNTS,
            "{engine:?}"
        );
        drop(running);
        f.cleanup().await;
    }
}

/// With the parser guard out of the way, the prepared statement, the read-only
/// connection and the READ ONLY transaction must still refuse every write.
#[tokio::test]
async fn the_layers_below_the_parser_refuse_writes_on_their_own() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        // Read-write mode: a write pool exists, but reads must never use it.
        let db = Database::open(&f.config(AccessMode::ReadWrite))
            .await
            .expect("open database");
        let t = f.t("accounts");
        let mut attacks = vec![
            format!("DELETE FROM {t}"),
            format!("UPDATE {t} SET balance = 0"),
            format!("INSERT INTO {t} (id, owner, balance) VALUES (9, 'mallory', 1)"),
            format!("DROP TABLE {t}"),
            format!("CREATE TABLE {}_copy (a int)", t),
            // Several statements: refused by the protocol (PostgreSQL, MariaDB
            // prepared statements) or by the read-only connection (SQLite).
            format!("SELECT 1; DELETE FROM {t}"),
            format!("COMMIT; DROP TABLE {t}"),
        ];
        if engine == Engine::Postgres {
            attacks.push(format!(
                "WITH gone AS (DELETE FROM {t} RETURNING *) SELECT count(*) FROM gone"
            ));
            attacks.push(format!("SELECT * INTO {}.stolen FROM {t}", f.schema));
        }
        for sql in &attacks {
            let result = db.query_without_parser_guard(sql, &[], 100).await;
            let error = match result {
                Ok(rows) => panic!("{engine:?}: {sql:?} ran below the guard: {rows:?}"),
                Err(e) => e.to_string(),
            };
            // The refusal comes from a safety layer, not from some other failure.
            let layers = [
                "read-only transaction", // PostgreSQL READ ONLY transaction
                "READ ONLY transaction", // MariaDB session / transaction
                "readonly database",     // SQLite read-only connection
                "multiple commands",     // PostgreSQL extended protocol
                "SQLSTATE 42000",        // MariaDB: a prepared statement holds one statement
            ];
            assert!(
                layers.iter().any(|l| error.contains(l)),
                "{engine:?}: {sql:?} failed for another reason: {error}"
            );
        }
        assert_eq!(
            f.accounts_fingerprint().await,
            Fixture::ORIGINAL_ACCOUNTS,
            "{engine:?}"
        );
        assert!(f.table_exists("accounts").await, "{engine:?}");
        assert!(!f.table_exists("accounts_copy").await, "{engine:?}");
        db.close().await;
        f.cleanup().await;
    }
}

#[tokio::test]
async fn a_runaway_query_is_cancelled_by_the_statement_timeout() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = f.config(AccessMode::ReadOnly);
        config.statement_timeout = std::time::Duration::from_secs(1);
        let running = Running::start(config).await;
        let mut client = running.client().await;
        let sql = match engine {
            Engine::Postgres => "SELECT count(*) FROM generate_series(1, 10000000000)",
            Engine::MariaDb => {
                "SELECT count(*) FROM information_schema.columns a, information_schema.columns b, information_schema.columns c"
            }
            Engine::Sqlite => {
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000000) SELECT count(*) FROM n"
            }
        };
        let status = client
            .query(QueryRequest {
                sql: sql.to_owned(),
                ..Default::default()
            })
            .await
            .expect_err("the query should be cancelled");
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{engine:?}: {status:?}"
        );
        assert!(
            status.message().contains("DB_STATEMENT_TIMEOUT"),
            "{}",
            status.message()
        );
        // The connection is usable afterwards.
        let ok = client
            .query(QueryRequest {
                sql: "SELECT 1".to_owned(),
                ..Default::default()
            })
            .await
            .expect("a query after the timeout");
        assert_eq!(ok.into_inner().row_count, 1);
        drop(running);
        f.cleanup().await;
    }
}
