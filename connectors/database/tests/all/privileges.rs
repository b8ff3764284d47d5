//! The database enforces read-only too: the connector refuses to serve
//! read-only as a database user that can write (unless the operator says
//! `DB_ALLOW_PRIVILEGED=true`), connections carry read-only session settings
//! and timeouts, and what a statement leaves on its session (advisory and named
//! locks) is gone before the connection serves the next call. On the real
//! PostgreSQL and MariaDB; each fixture has its own read-only user.

use std::time::Duration;

use database_connector::{AccessMode, Config, Database, Target};
use secrecy::SecretString;
use switchboard_proto::database::v1::QueryRequest;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{Engine, Fixture, Running, js};

/// The engines with users and privileges (SQLite has files).
const SERVERS: [Engine; 2] = [Engine::Postgres, Engine::MariaDb];

/// A read-only config that connects as the fixture's administrator.
fn read_only_as_admin(f: &Fixture) -> Config {
    Config {
        target: Target::Url(SecretString::from(f.url.clone())),
        ..f.config(AccessMode::ReadOnly)
    }
}

#[tokio::test]
async fn starting_read_only_as_a_superuser_is_refused_naming_the_user_the_privilege_and_the_fix() {
    for engine in SERVERS {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let running = Running::start(read_only_as_admin(&f)).await;
        let ended = running
            .ended_within(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("{engine:?}: the connector served as a superuser"));
        let message = format!("{:#}", ended.expect_err("a superuser must be refused"));
        let (user, privilege) = match engine {
            Engine::Postgres => (
                "\"postgres\"",
                "is a superuser (rolsuper; ALTER ROLE postgres NOSUPERUSER)",
            ),
            _ => ("\"root@", "ALL PRIVILEGES on *.*"),
        };
        for needed in [
            "refusing to serve read-only (DB_ACCESS_MODE=read-only) as database user",
            user,
            privilege,
            "How read-only is enforced",
            "DB_ALLOW_PRIVILEGED=true",
        ] {
            assert!(
                message.contains(needed),
                "{engine:?}: {needed:?} missing from: {message}"
            );
        }
        f.cleanup().await;
    }
}

#[tokio::test]
async fn a_user_granted_one_write_privilege_is_refused_naming_it() {
    for engine in SERVERS {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let reader = f.reader.clone().expect("server fixtures have a reader");
        let accounts = f.t("accounts");
        let schema = &f.schema;
        // (grant, revoke, what the refusal must name)
        let cases: Vec<(String, String, String)> = match engine {
            Engine::Postgres => vec![
                (
                    format!("GRANT UPDATE (owner) ON {accounts} TO {reader}"),
                    format!("REVOKE UPDATE (owner) ON {accounts} FROM {reader}"),
                    format!("UPDATE on {accounts}"),
                ),
                (
                    format!("GRANT CREATE ON SCHEMA {schema} TO {reader}"),
                    format!("REVOKE CREATE ON SCHEMA {schema} FROM {reader}"),
                    format!("CREATE in schema {schema}"),
                ),
            ],
            _ => vec![
                (
                    format!("GRANT INSERT ON {schema}.accounts TO '{reader}'@'%'"),
                    format!("REVOKE INSERT ON {schema}.accounts FROM '{reader}'@'%'"),
                    format!("INSERT on `{schema}`.`accounts`"),
                ),
                (
                    format!("GRANT SELECT ON {schema}.* TO '{reader}'@'%' WITH GRANT OPTION"),
                    format!("REVOKE GRANT OPTION ON {schema}.* FROM '{reader}'@'%'"),
                    "WITH GRANT OPTION".to_owned(),
                ),
            ],
        };
        for (grant, revoke, named) in cases {
            f.admin.exec(&grant).await;
            let db = Database::open(&f.config(AccessMode::ReadOnly))
                .await
                .expect("open");
            let error = db
                .check_access()
                .await
                .expect_err("a write privilege is refused")
                .to_string();
            assert!(
                error.contains(&named),
                "{engine:?}: {named:?} missing: {error}"
            );
            db.close().await;
            f.admin.exec(&revoke).await;
        }
        // With every extra grant taken back, the same user passes.
        let db = Database::open(&f.config(AccessMode::ReadOnly))
            .await
            .expect("open");
        db.check_access().await.expect("read-only again");
        db.close().await;
        f.cleanup().await;
    }
}

#[tokio::test]
async fn a_superuser_is_served_when_the_operator_allows_it() {
    for engine in SERVERS {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = read_only_as_admin(&f);
        config.allow_privileged = true;
        let running = Running::start(config).await;
        let mut client = running.client().await;
        let rows = client
            .query(QueryRequest {
                sql: format!("SELECT owner FROM {} ORDER BY id", f.t("accounts")),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{engine:?}: {s:?}"))
            .into_inner();
        assert_eq!(rows.row_count, 3, "{engine:?}");
        // Still read-only through the connector's own layers.
        let db = Database::open(&{
            let mut c = read_only_as_admin(&f);
            c.allow_privileged = true;
            c
        })
        .await
        .expect("open");
        db.check_access()
            .await
            .expect("allowed by DB_ALLOW_PRIVILEGED");
        let found = db.privileges().await.expect("privileges");
        assert!(!found.beyond_reading.is_empty(), "{engine:?}: {found:?}");
        db.close().await;
        drop(running);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn the_read_only_user_starts_serves_and_has_nothing_beyond_reading() {
    for engine in [Engine::Postgres, Engine::MariaDb, Engine::Sqlite] {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let db = Database::open(&f.config(AccessMode::ReadOnly))
            .await
            .expect("open");
        let found = db.privileges().await.expect("privileges");
        assert_eq!(
            found.beyond_reading,
            Vec::<String>::new(),
            "{engine:?}: {found:?}"
        );
        if let Some(reader) = &f.reader {
            assert!(
                found.user.starts_with(reader.as_str()),
                "{engine:?}: {found:?}"
            );
        }
        db.close().await;

        let running = Running::start(f.config(AccessMode::ReadOnly)).await;
        let mut health = running.health().await;
        let serving = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let status = health
                    .check(HealthCheckRequest::default())
                    .await
                    .map(|r| r.into_inner().status)
                    .ok();
                if status == Some(ServingStatus::Serving as i32) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            serving.is_ok(),
            "{engine:?}: the read-only user was not served"
        );
        running.stop().await.expect("clean shutdown");
        f.cleanup().await;
    }
}

/// A listener that holds connections unanswered until `open`, then forwards
/// them to `target`: a database that comes up after the connector.
struct LateDatabase {
    addr: std::net::SocketAddr,
    open: tokio::sync::oneshot::Sender<()>,
}

impl LateDatabase {
    async fn start(target: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (open, opened) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            if opened.await.is_err() {
                return;
            }
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, open }
    }
}

#[tokio::test]
async fn a_superuser_database_that_comes_up_after_the_connector_is_never_served() {
    let Some(f) = Fixture::new(Engine::Postgres).await else {
        return;
    };
    let late = LateDatabase::start(crate::support::POSTGRES_ADDR).await;
    let mut config = Config::new(Target::Url(SecretString::from(format!(
        "postgres://postgres@{}/test",
        late.addr
    ))));
    config.connect_timeout = Duration::from_millis(300);
    config.health_interval = Duration::from_millis(100);
    let running = Running::start(config).await;
    let mut health = running.health().await;
    // Down at start: the connector runs, not serving.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = health
        .check(HealthCheckRequest::default())
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    let _ = late.open.send(());
    let ended = running
        .ended_within(Duration::from_secs(15))
        .await
        .expect("the connector must stop once it sees it runs as a superuser");
    let message = format!("{:#}", ended.expect_err("refused"));
    assert!(message.contains("rolsuper"), "{message}");
    assert!(message.contains("DB_ALLOW_PRIVILEGED"), "{message}");
    f.cleanup().await;
}

#[tokio::test]
async fn the_read_only_role_itself_refuses_writes_even_in_a_read_write_transaction() {
    for engine in SERVERS {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let accounts = f.t("accounts");
        // Straight to the server as the read-only user: no connector layer at all.
        let error = match engine {
            Engine::Postgres => {
                let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&f.reader_url)
                    .await
                    .expect("connect");
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::raw_sql(&format!(
                        "BEGIN READ WRITE; UPDATE {accounts} SET balance = 0; COMMIT"
                    )),
                )
                .await
                .expect_err("the role has SELECT only")
                .to_string()
            }
            _ => {
                let mut conn: sqlx::MySqlConnection = sqlx::Connection::connect(&f.reader_url)
                    .await
                    .expect("connect");
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::raw_sql(&format!("UPDATE {accounts} SET balance = 0")),
                )
                .await
                .expect_err("the user has SELECT only")
                .to_string()
            }
        };
        assert!(
            error.contains("permission denied") || error.contains("command denied"),
            "{engine:?}: refused for another reason: {error}"
        );
        assert_eq!(f.accounts_fingerprint().await, Fixture::ORIGINAL_ACCOUNTS);
        f.cleanup().await;
    }
}

#[tokio::test]
async fn a_write_below_the_parser_guard_fails_on_the_server_as_the_read_only_user() {
    for engine in SERVERS {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let db = Database::open(&f.config(AccessMode::ReadOnly))
            .await
            .expect("open");
        let t = f.t("accounts");
        for sql in [
            format!("INSERT INTO {t} (id, owner, balance) VALUES (9, 'mallory', 1)"),
            format!("UPDATE {t} SET balance = 0"),
            format!("DELETE FROM {t}"),
        ] {
            let error = db
                .query_without_parser_guard(&sql, &[], 10)
                .await
                .expect_err("the server refuses the write")
                .to_string();
            assert!(
                [
                    "read-only transaction",
                    "READ ONLY transaction",
                    "permission denied",
                    "command denied"
                ]
                .iter()
                .any(|layer| error.contains(layer)),
                "{engine:?}: {sql}: refused for another reason: {error}"
            );
        }
        assert_eq!(f.accounts_fingerprint().await, Fixture::ORIGINAL_ACCOUNTS);
        db.close().await;
        f.cleanup().await;
    }
}

#[tokio::test]
async fn read_connections_carry_read_only_and_timeout_session_settings() {
    for engine in SERVERS {
        let Some(f) = Fixture::new(engine).await else {
            continue;
        };
        let mut config = f.config(AccessMode::ReadOnly);
        config.statement_timeout = Duration::from_secs(4);
        let db = Database::open(&config).await.expect("open");
        let sql = match engine {
            Engine::Postgres => {
                "SELECT current_setting('default_transaction_read_only'), current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')"
            }
            _ => {
                "SELECT @@session.tx_read_only, @@session.max_statement_time, @@session.lock_wait_timeout, @@session.innodb_lock_wait_timeout"
            }
        };
        let rows = db
            .query_without_parser_guard(sql, &[], 1)
            .await
            .expect("settings");
        let got: Vec<serde_json::Value> = rows.rows[0].values.iter().map(js).collect();
        let expected = match engine {
            Engine::Postgres => serde_json::json!(["on", "4s", "2s", "8s"]),
            _ => serde_json::json!([1, 4, 2, 2]),
        };
        assert_eq!(serde_json::Value::Array(got), expected, "{engine:?}");
        db.close().await;
        f.cleanup().await;
    }
}

#[tokio::test]
async fn an_advisory_lock_taken_by_a_query_is_released_before_the_connection_is_reused() {
    let Some(f) = Fixture::new(Engine::Postgres).await else {
        return;
    };
    let mut config = f.config(AccessMode::ReadOnly);
    // One connection: the second call gets the very session the first used.
    config.pool_size = 1;
    let db = Database::open(&config).await.expect("open");
    let key = i64::from(std::process::id()) * 1000 + 7;
    // Below the parser guard (which refuses pg_advisory_lock): the pool's
    // cleanup is what is under test.
    db.query_without_parser_guard(&format!("SELECT pg_advisory_lock({key})"), &[], 1)
        .await
        .expect("take a session-level advisory lock");
    let held_here = db
        .query_without_parser_guard(
            "SELECT count(*)::int8 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            &[],
            1,
        )
        .await
        .expect("count own advisory locks");
    assert_eq!(js(&held_here.rows[0].values[0]), serde_json::json!(0));
    let held_anywhere = f
        .admin
        .text(&format!(
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND ((classid::int8 << 32) | objid::int8) = {key}"
        ))
        .await;
    assert_eq!(
        held_anywhere.as_deref(),
        Some("0"),
        "seen from another session"
    );
    db.close().await;
    f.cleanup().await;
}

#[tokio::test]
async fn a_named_lock_taken_by_a_query_is_released_before_the_connection_is_reused() {
    let Some(f) = Fixture::new(Engine::MariaDb).await else {
        return;
    };
    let mut config = f.config(AccessMode::ReadOnly);
    config.pool_size = 1;
    let db = Database::open(&config).await.expect("open");
    let name = format!("{}_lock", f.schema);
    db.query_without_parser_guard(&format!("SELECT GET_LOCK('{name}', 0)"), &[], 1)
        .await
        .expect("take a named lock");
    let holder = db
        .query_without_parser_guard(&format!("SELECT IS_USED_LOCK('{name}')"), &[], 1)
        .await
        .expect("who holds it");
    assert_eq!(js(&holder.rows[0].values[0]), serde_json::Value::Null);
    let free = f
        .admin
        .text(&format!("SELECT CAST(IS_FREE_LOCK('{name}') AS CHAR)"))
        .await;
    assert_eq!(free.as_deref(), Some("1"), "seen from another session");
    db.close().await;
    f.cleanup().await;
}

#[tokio::test]
async fn a_statement_that_lifts_its_own_timeout_is_killed_on_the_server_at_the_deadline() {
    let Some(f) = Fixture::new(Engine::MariaDb).await else {
        return;
    };
    let mut config = f.config(AccessMode::ReadOnly);
    config.statement_timeout = Duration::from_secs(1);
    let db = Database::open(&config).await.expect("open");
    // Below the parser guard (which refuses SET): in a prepared statement,
    // MariaDB's SET STATEMENT lifts the session's max_statement_time for it.
    let marker = format!("{}_sleeper", f.schema);
    let started = std::time::Instant::now();
    let error = db
        .query_without_parser_guard(
            &format!("SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(30) AS {marker}"),
            &[],
            1,
        )
        .await
        .expect_err("cut off at the deadline");
    assert!(
        matches!(error, database_connector::error::Error::Timeout { .. }),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Killed on the server, not merely abandoned by the client.
    let running = format!(
        "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE CONCAT('%', '{marker}', '%')"
    );
    let mut still = f.admin.text(&running).await;
    for _ in 0..40 {
        if still.as_deref() == Some("0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        still = f.admin.text(&running).await;
    }
    assert_eq!(
        still.as_deref(),
        Some("0"),
        "the statement still runs on the server"
    );
    db.close().await;
    f.cleanup().await;
}
