//! The read-only guard against the real servers: every statement of a corpus of
//! escapes (the forms where an engine and the guard's parser read the same text
//! differently, plus a bounded sample of generated ones) is sent through the
//! connector's query path on PostgreSQL, MariaDB and SQLite. Each one must be
//! refused by the guard, or, when the guard accepts it, prove harmless on the
//! real server: the canary table is unchanged, no advisory or user lock is held
//! afterwards, no file was written, and it did not run past the statement
//! timeout.

use std::time::{Duration, Instant};

use database_connector::AccessMode;
use proptest::prelude::prop;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use switchboard_proto::database::v1::QueryRequest;
use tonic::Code;

use crate::support::{ENGINES, Engine, Fixture, Running};

/// The advisory lock key (PostgreSQL) and lock name (MariaDB) the corpus tries to take.
const LOCK_KEY: i64 = 424_242;
const LOCK_NAME: &str = "sb_differential_lock";

/// The statement timeout the connector runs under here.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Statements for one engine; `{t}` is the canary table, `{f}` a file path
/// that must never appear.
fn corpus(engine: Engine) -> Vec<&'static str> {
    let mut list = vec![
        // Writes, plain and dressed.
        "DELETE FROM {t}",
        "/* x */ UPDATE {t} SET balance = 0",
        "WITH x AS (SELECT 9 AS id) INSERT INTO {t} (id, owner, balance) SELECT id, 'm', 1 FROM x",
        "SELECT 1; DELETE FROM {t}",
        "SELECT 1 /* ; */ ; DROP TABLE {t}",
        "SELECT * FROM {t} FOR UPDATE",
        // Comment and whitespace forms the engines read differently.
        "SELECT 1 --\u{a0}, 2",
        "SELECT 1 --\r, 2",
        "SELECT\u{200b}1",
        "SELECT 1 /* /* */ , 2 */",
        "SELECT 1 /* never closed",
        "SELECT 1 /*!, 2 */",
        "SELECT 1 /*M!, 2 */",
        "SELECT /*+ MAX_EXECUTION_TIME(100000) */ 1",
        "SELECT 1 # , 2",
        "SELECT {fn lower('A')}",
        "SELECT E'\\'' , 2 -- '",
        "SELECT U&'\\0041'",
        "SELECT 1e1x",
        // Harmless and accepted: each proves the accepted path is checked too.
        "SELECT count(*) FROM {t}",
        "SELECT 1 -- ; DELETE FROM {t}",
        "SELECT 1 /* ; DELETE FROM {t} */",
        "SELECT '; DELETE FROM {t}'",
        "SELECT owner, balance FROM {t} WHERE id IN (SELECT id FROM {t} WHERE balance > 10) ORDER BY owner",
    ];
    match engine {
        Engine::Postgres => list.extend([
            "SELECT U&\"pg\\005fsleep\"(5)",
            "SELECT U&\"pg\\005fadvisory\\005flock\"(424242)",
            "SELECT * FROM U&\"pg\\005fadvisory\\005flock\"(424242)",
            "SELECT * FROM pg_advisory_lock(424242)",
            "SELECT (2.5).pg_sleep",
            "SELECT (424242::bigint).pg_advisory_lock",
            "SELECT (x).pg_advisory_lock FROM (SELECT 424242::bigint AS x) s",
            "SELECT pg_catalog.pg_advisory_lock(424242)",
            "SELECT \"pg_sleep\"(5)",
            "SELECT count(*) FROM {t} WHERE pg_sleep(5) IS NULL",
            "SELECT * FROM ts_stat('SELECT to_tsvector(pg_advisory_lock(424242)::text)')",
            "SELECT query_to_xml('SELECT pg_advisory_lock(424242)', true, true, '')",
            "SELECT ts_rewrite('a'::tsquery, 'SELECT pg_advisory_lock(424242)')",
            "SELECT set_config('statement_timeout', '0', false)",
            "EXPLAIN ANALYZE SELECT pg_sleep(5)",
            "EXPLAIN (ANALYZE) SELECT count(*) FROM {t}",
            "EXPLAIN (ANALYZE true, BUFFERS) SELECT count(*) FROM {t}",
            "EXPLAIN (ANALYZE 1) SELECT count(*) FROM {t}",
            "SELECT $$ $$, pg_sleep(5)",
            "SELECT $q$ ; DELETE FROM {t}; $q$",
            "SELECT E'\\x41'",
            "WITH gone AS (DELETE FROM {t} RETURNING *) SELECT count(*) FROM gone",
            "SELECT * INTO {t}_copy FROM {t}",
            "SELECT lo_export(lo_from_bytea(0, 'x'), '{f}')",
            "COPY {t} TO '{f}'",
            "SELECT 1 OPERATOR(pg_catalog.+) 2",
            // Accepted: a comment PostgreSQL nests holds the call for both readers.
            "SELECT 1 -- pg_sleep(5)\n",
            "SELECT 'pg_sleep(5)'",
            "SELECT date_trunc('day', now()), string_agg(owner, ',') FROM {t}",
            "EXPLAIN SELECT count(*) FROM {t}",
        ]),
        Engine::MariaDb => list.extend([
            "SELECT 1 /*M!100000 , SLEEP(5) */",
            "SELECT 1 /*!50000 , GET_LOCK('sb_differential_lock', 0) */",
            "SELECT 1 /*M! , GET_LOCK('sb_differential_lock', 0) */",
            "SELECT /*+ SET_VAR(max_statement_time=0) */ SLEEP(5)",
            "SELECT 1 --\u{a0}, SLEEP(5)",
            "SELECT 1 --\u{2003}, GET_LOCK('sb_differential_lock', 0)",
            "SELECT 1 --, SLEEP(5)",
            "SELECT 1 # , SLEEP(5)",
            "SELECT 'a\\' , SLEEP(5), '",
            "SELECT \"a\\\" , GET_LOCK('sb_differential_lock', 0), \"",
            "SELECT GET_LOCK('sb_differential_lock', 0)",
            "SELECT `sleep`(5)",
            "SELECT count(*) FROM {t} WHERE SLEEP(5) = 0",
            "SELECT BENCHMARK(100000000, md5('x'))",
            "SELECT * FROM {t} INTO OUTFILE '{f}'",
            "SELECT * FROM {t} LOCK IN SHARE MODE",
            "SELECT @x := 1",
            "EXPLAIN ANALYZE SELECT SLEEP(5)",
            "ANALYZE SELECT SLEEP(5)",
            "SELECT LOAD_FILE('/etc/passwd')",
            // Accepted: comments both readers agree on.
            "SELECT 1 -- , SLEEP(5)",
            "SELECT 1 /* , SLEEP(5) */",
            "SELECT 'SLEEP(5)', \"GET_LOCK\"",
            "SELECT group_concat(owner SEPARATOR ','), date_format(now(), '%Y') FROM {t}",
        ]),
        Engine::Sqlite => list.extend([
            "SELECT load_extension('/tmp/evil')",
            "SELECT writefile('{f}', 'x')",
            "ATTACH DATABASE '{f}' AS evil",
            "PRAGMA query_only = 0",
            "SELECT [a FROM {t}",
            "SELECT randomblob(8) FROM {t} WHERE randomblob(8) = x'00'",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
            // Accepted.
            "SELECT name FROM pragma_table_info('accounts')",
            "SELECT strftime('%Y', 'now'), group_concat(owner, ',') FROM {t}",
        ]),
    }
    list
}

/// A bounded, deterministic sample of generated statements: a write or a
/// dangerous call whose tokens are separated by whitespace, comments (some of
/// which comment the rest out) and characters the engines disagree on, or
/// hidden in a string. Some are harmless and accepted; none may do harm.
fn generated(engine: Engine, count: usize) -> Vec<String> {
    let payloads = prop::sample::select(match engine {
        Engine::Postgres => vec![
            "SELECT pg_advisory_lock ( 424242 )",
            "SELECT U&\"pg\\005fsleep\" ( 5 )",
            "SELECT pg_sleep ( 5 )",
            "DELETE FROM {t}",
            "SELECT * FROM pg_advisory_lock ( 424242 )",
        ],
        Engine::MariaDb => vec![
            "SELECT GET_LOCK ( 'sb_differential_lock' , 0 )",
            "SELECT SLEEP ( 5 )",
            "DELETE FROM {t}",
            "SELECT 1 , SLEEP ( 5 )",
        ],
        Engine::Sqlite => vec![
            "DELETE FROM {t}",
            "SELECT writefile ( '{f}' , 'x' )",
            "UPDATE {t} SET balance = 0",
        ],
    });
    let separators = prop::collection::vec(
        prop::sample::select(vec![
            " ", "\n", "\t", "/* c */", " -- c\n", " --", " -- ", " #", "/*", "*/", "/*!", "/*M!",
            "\u{a0}", "\u{200b}", "\r", "'", "\"", "`", "\\", "$$", ";",
        ]),
        12,
    );
    let statements = (payloads, separators).prop_map(|(payload, seps)| {
        let mut sql = String::from("SELECT 1");
        for (i, word) in payload.split(' ').enumerate() {
            sql.push_str(seps[i % seps.len()]);
            sql.push(' ');
            sql.push_str(word);
        }
        sql
    });
    let mut runner = TestRunner::deterministic();
    (0..count)
        .filter_map(|_| statements.new_tree(&mut runner).ok().map(|t| t.current()))
        .collect()
}

/// What the server holds or has after a statement, to compare with before.
async fn locks_held(f: &Fixture) -> String {
    match f.engine {
        Engine::Postgres => f
            .admin
            .text(&format!(
                "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid = {LOCK_KEY}"
            ))
            .await
            .unwrap_or_default(),
        Engine::MariaDb => f
            .admin
            .text(&format!(
                "SELECT CAST(IS_USED_LOCK('{LOCK_NAME}') AS CHAR)"
            ))
            .await
            .unwrap_or_else(|| "none".to_owned()),
        Engine::Sqlite => "none".to_owned(),
    }
}

#[tokio::test]
async fn what_the_guard_accepts_is_harmless_on_the_real_servers() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        // Read-write mode, as in safety.rs, so nothing but the read path and
        // its layers stands between a statement and the data.
        let mut config = f.config(AccessMode::ReadWrite);
        config.statement_timeout = TIMEOUT;
        config.explain_analyze = false;
        let running = Running::start(config).await;
        let mut client = running.client().await;
        let file = std::env::temp_dir().join(format!(
            "{}.out",
            crate::support::unique_name("sb_differential")
        ));
        let file_text = file.display().to_string();
        let no_locks = locks_held(&f).await;
        let t = f.t("accounts");
        let mut statements: Vec<String> = corpus(engine).into_iter().map(str::to_owned).collect();
        statements.extend(generated(engine, 64));
        let (mut refused, mut accepted) = (0, 0);
        for template in &statements {
            let sql = template.replace("{t}", &t).replace("{f}", &file_text);
            let started = Instant::now();
            let answer = client
                .query(QueryRequest {
                    sql: sql.clone(),
                    ..Default::default()
                })
                .await;
            let took = started.elapsed();
            match &answer {
                Err(status)
                    if status.code() == Code::InvalidArgument
                        && status.message().starts_with("refused: ") =>
                {
                    refused += 1;
                    continue;
                }
                _ => accepted += 1,
            }
            // The guard let it through: the servers must prove it harmless.
            assert!(
                took < TIMEOUT + Duration::from_secs(2),
                "{engine:?}: {sql:?} ran {took:?}, past the statement timeout: {answer:?}"
            );
            assert_eq!(
                f.accounts_fingerprint().await,
                Fixture::ORIGINAL_ACCOUNTS,
                "{engine:?}: {sql:?} changed the canary table: {answer:?}"
            );
            assert_eq!(
                locks_held(&f).await,
                no_locks,
                "{engine:?}: {sql:?} left a lock held: {answer:?}"
            );
            assert!(
                !file.exists(),
                "{engine:?}: {sql:?} wrote {file_text}: {answer:?}"
            );
            assert!(f.table_exists("accounts").await, "{engine:?}: {sql:?}");
            assert!(
                !f.table_exists("accounts_copy").await,
                "{engine:?}: {sql:?}"
            );
        }
        // Both paths were exercised: the corpus holds refused escapes and
        // accepted statements that really ran.
        assert!(refused >= 20, "{engine:?}: only {refused} refused");
        assert!(accepted >= 4, "{engine:?}: only {accepted} accepted");
        drop(running);
        f.cleanup().await;
    }
}

/// The escapes the review confirmed on PostgreSQL 15 and MariaDB 10.11 are
/// refused by the guard itself (not merely harmless by luck of the other layers).
#[tokio::test]
async fn the_confirmed_escapes_are_refused_by_the_guard() {
    for engine in ENGINES {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = f.config(AccessMode::ReadWrite);
        config.statement_timeout = TIMEOUT;
        config.explain_analyze = false;
        let running = Running::start(config).await;
        let mut client = running.client().await;
        let t = f.t("accounts");
        let mut escapes = vec![
            format!(
                "WITH x AS (SELECT 9 AS id) INSERT INTO {t} (id, owner, balance) SELECT id, 'm', 1 FROM x"
            ),
            "SELECT 1 /*M! , 2 */".to_owned(),
            "SELECT /*+ MAX_EXECUTION_TIME(100000) */ 1".to_owned(),
        ];
        match engine {
            Engine::Postgres => escapes.extend([
                "SELECT U&\"pg\\005fsleep\"(5)".to_owned(),
                "SELECT U&\"pg\\005fadvisory\\005flock\"(424242)".to_owned(),
                "SELECT * FROM ts_stat('SELECT to_tsvector(owner) FROM accounts')".to_owned(),
                "SELECT query_to_xml('SELECT 1', true, true, '')".to_owned(),
                "SELECT * FROM pg_sleep(5)".to_owned(),
                "SELECT (5.0).pg_sleep".to_owned(),
                "SELECT (424242::bigint).pg_advisory_lock".to_owned(),
                format!("EXPLAIN (ANALYZE) SELECT * FROM {t}"),
                format!("EXPLAIN (ANALYZE true, VERBOSE) SELECT * FROM {t}"),
            ]),
            Engine::MariaDb => escapes.extend([
                "SELECT 1 /*M!100000 , SLEEP(5) */".to_owned(),
                "SELECT /*+ SET_VAR(max_statement_time=0) */ 1".to_owned(),
                "SELECT 1 --\u{a0}, SLEEP(5)".to_owned(),
                format!("EXPLAIN ANALYZE SELECT * FROM {t}"),
            ]),
            Engine::Sqlite => {}
        }
        for sql in escapes {
            let status = client
                .query(QueryRequest {
                    sql: sql.clone(),
                    ..Default::default()
                })
                .await
                .expect_err(&format!("{engine:?} accepted {sql:?}"));
            assert_eq!(status.code(), Code::InvalidArgument, "{engine:?} {sql:?}");
            assert!(
                status.message().starts_with("refused: "),
                "{engine:?} {sql:?}: {}",
                status.message()
            );
        }
        assert_eq!(f.accounts_fingerprint().await, Fixture::ORIGINAL_ACCOUNTS);
        drop(running);
        f.cleanup().await;
    }
}

/// An operator's DB_ALLOW_FUNCTIONS entry reaches the guard through the
/// configuration: the function runs on the real server.
#[tokio::test]
async fn an_allowed_function_runs_and_others_stay_refused() {
    let Some(f) = Fixture::new(Engine::Postgres).await else {
        return;
    };
    let mut config = f.config(AccessMode::ReadWrite);
    config.allow_functions =
        database_connector::guard::functions::parse_allowed(&["pg_backend_pid".to_owned()])
            .expect("a valid name");
    let running = Running::start(config).await;
    let mut client = running.client().await;
    let rows = client
        .query(QueryRequest {
            sql: "SELECT pg_backend_pid() > 0 AS ok".to_owned(),
            ..Default::default()
        })
        .await
        .expect("an allowed function runs")
        .into_inner();
    assert_eq!(rows.row_count, 1);
    let status = client
        .query(QueryRequest {
            sql: "SELECT pg_postmaster_start_time()".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("not allowed");
    assert!(
        status
            .message()
            .contains("DB_ALLOW_FUNCTIONS=pg_postmaster_start_time"),
        "{}",
        status.message()
    );
    drop(running);
    f.cleanup().await;
}
