//! Result limits hold while rows stream, the first row included: one huge
//! value is cut to `DB_MAX_VALUE_BYTES` with a note naming the limit and the
//! column, and a first row bigger than `DB_MAX_RESULT_BYTES` is not returned.
//! On the real PostgreSQL and MariaDB and on SQLite.

use database_connector::AccessMode;
use prost_types::value::Kind;
use switchboard_proto::database::v1::QueryRequest;

use crate::support::{ENGINES, Engine, Fixture, Running};

/// Text of `n` 'x' characters, then a second column, in the engine's SQL.
fn huge_text(engine: Engine, n: usize) -> String {
    match engine {
        Engine::Postgres => format!("SELECT repeat('x', {n}) AS big, 7 AS small"),
        Engine::MariaDb => format!("SELECT REPEAT('x', {n}) AS big, 7 AS small"),
        Engine::Sqlite => format!("SELECT printf('%.*c', {n}, 'x') AS big, 7 AS small"),
    }
}

/// `n` bytes as a binary value.
fn huge_binary(engine: Engine, n: usize) -> String {
    match engine {
        Engine::Postgres => format!("SELECT decode(repeat('00', {n}), 'hex') AS big"),
        Engine::MariaDb => format!("SELECT CAST(REPEAT(CHAR(0), {n}) AS BINARY) AS big"),
        Engine::Sqlite => format!("SELECT CAST(printf('%.*c', {n}, 'x') AS BLOB) AS big"),
    }
}

fn string_of(value: &prost_types::Value) -> &str {
    match &value.kind {
        Some(Kind::StringValue(s)) => s,
        other => panic!("expected a string, got {other:?}"),
    }
}

#[tokio::test]
async fn a_single_huge_value_in_the_first_row_is_cut_to_the_value_cap_and_named() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = f.config(AccessMode::ReadOnly);
        config.max_value_bytes = 1000;
        let running = Running::start(config).await;
        let mut client = running.client().await;
        let result = client
            .query(QueryRequest {
                sql: huge_text(engine, 5_000_000),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert_eq!(result.row_count, 1, "{engine:?}");
        let row = &result.rows[0].values;
        assert_eq!(string_of(&row[0]), "x".repeat(1000), "{engine:?}");
        assert!(result.truncated, "{engine:?}");
        for needed in [
            "DB_MAX_VALUE_BYTES (1000 bytes)",
            "\"big\" (up to 5000000 bytes)",
        ] {
            assert!(
                result.truncated_reason.contains(needed),
                "{engine:?}: {needed:?} missing: {}",
                result.truncated_reason
            );
        }
        assert!(
            !result.truncated_reason.contains("small"),
            "{}",
            result.truncated_reason
        );

        let binary = client
            .query(QueryRequest {
                sql: huge_binary(engine, 3_000_000),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        let base64 = string_of(&binary.rows[0].values[0]);
        assert!(
            base64.len() <= 1000 && base64.len() > 900,
            "{engine:?}: {}",
            base64.len()
        );
        assert!(
            binary.truncated_reason.contains("DB_MAX_VALUE_BYTES"),
            "{engine:?}"
        );
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn values_within_the_cap_are_whole_and_nothing_is_said() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = f.config(AccessMode::ReadOnly);
        config.max_value_bytes = 1000;
        let running = Running::start(config).await;
        let mut client = running.client().await;
        let result = client
            .query(QueryRequest {
                sql: huge_text(engine, 1000),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert_eq!(
            string_of(&result.rows[0].values[0]).len(),
            1000,
            "{engine:?}"
        );
        assert!(!result.truncated, "{engine:?}: {}", result.truncated_reason);
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn a_first_row_bigger_than_the_result_cap_is_not_returned() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = f.config(AccessMode::ReadOnly);
        config.max_result_bytes = 10_000;
        config.max_value_bytes = 8_000;
        let running = Running::start(config).await;
        let mut client = running.client().await;
        // Two values of 8000 bytes each: 16 kB in the first row.
        let sql = match engine {
            Engine::Postgres => "SELECT repeat('a', 8000) AS a, repeat('b', 8000) AS b",
            Engine::MariaDb => "SELECT REPEAT('a', 8000) AS a, REPEAT('b', 8000) AS b",
            Engine::Sqlite => {
                "SELECT printf('%.*c', 8000, 'a') AS a, printf('%.*c', 8000, 'b') AS b"
            }
        };
        let result = client
            .query(QueryRequest {
                sql: sql.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert_eq!(result.row_count, 0, "{engine:?}");
        assert!(result.truncated, "{engine:?}");
        assert!(
            result.truncated_reason.contains("DB_MAX_RESULT_BYTES")
                && result.truncated_reason.contains("after 0 row(s)"),
            "{engine:?}: {}",
            result.truncated_reason
        );
        assert_eq!(
            result.columns.len(),
            2,
            "{engine:?}: the columns are still described"
        );
        drop(running);
        f.cleanup().await;
    }
}
