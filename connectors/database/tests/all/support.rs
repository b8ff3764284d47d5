//! Shared test fixtures: the connector in-process on an ephemeral port, and a
//! uniquely named schema (PostgreSQL), database (MariaDB) or file (SQLite) per
//! test, so parallel tests never collide. On PostgreSQL and MariaDB each
//! fixture also has a database user of its own that can only read its schema,
//! created the way the README tells operators to: read-only configs connect as
//! that user (the connector refuses to serve read-only as a user that can
//! write), read-write configs as the administrator.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use database_connector::{AccessMode, Config, Target};
use secrecy::SecretString;
use sqlx::{Executor, Row};
use switchboard_proto::database::v1::database_client::DatabaseClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub const POSTGRES_ADDR: &str = "127.0.0.1:5432";
/// The administrator (superuser) of the test PostgreSQL.
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The administrator of the test MariaDB.
pub const MARIADB_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";
pub const MARIADB_ADDR: &str = "127.0.0.1:3306";
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// Which engine a fixture runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MariaDb,
    Sqlite,
}

pub const ENGINES: [Engine; 3] = [Engine::Postgres, Engine::MariaDb, Engine::Sqlite];

/// Whether a local server is listening; without it the test fails under CI=true
/// and is skipped loudly elsewhere.
pub async fn server_available(what: &str, addr: &str, how_to_start: &str) -> bool {
    let reachable = matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    );
    if !reachable {
        let message = format!("{what} is not reachable at {addr}; start it with: {how_to_start}");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("SKIPPED (not passed): {message}");
    }
    reachable
}

pub async fn engine_available(engine: Engine) -> bool {
    match engine {
        Engine::Postgres => {
            server_available(
                "PostgreSQL",
                POSTGRES_ADDR,
                "service postgresql start (see DEVELOPERS.md)",
            )
            .await
        }
        Engine::MariaDb => {
            server_available(
                "MariaDB",
                MARIADB_ADDR,
                "service mariadb start (see DEVELOPERS.md)",
            )
            .await
        }
        Engine::Sqlite => true,
    }
}

/// A unique lowercase name for this test's objects.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// A direct connection for setting up and checking data, bypassing the connector.
pub enum Admin {
    Postgres(sqlx::PgPool),
    MariaDb(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

impl Admin {
    pub async fn exec(&self, sql: &str) {
        let result = match self {
            Admin::Postgres(p) => p.execute(sqlx::raw_sql(sql)).await.map(|_| ()),
            Admin::MariaDb(p) => p.execute(sqlx::raw_sql(sql)).await.map(|_| ()),
            Admin::Sqlite(p) => p.execute(sqlx::raw_sql(sql)).await.map(|_| ()),
        };
        if let Err(e) = result {
            panic!("admin statement failed: {sql}: {e}");
        }
    }

    /// The first column of the first row, as text.
    pub async fn text(&self, sql: &str) -> Option<String> {
        let result = match self {
            Admin::Postgres(p) => sqlx::query(sql)
                .fetch_optional(p)
                .await
                .map(|r| r.map(|r| r.get::<Option<String>, _>(0))),
            Admin::MariaDb(p) => sqlx::query(sql)
                .fetch_optional(p)
                .await
                .map(|r| r.map(|r| r.get::<Option<String>, _>(0))),
            Admin::Sqlite(p) => sqlx::query(sql)
                .fetch_optional(p)
                .await
                .map(|r| r.map(|r| r.get::<Option<String>, _>(0))),
        };
        match result {
            Ok(v) => v.flatten(),
            Err(e) => panic!("admin query failed: {sql}: {e}"),
        }
    }
}

/// A test's own corner of one engine, with a table `accounts` of three rows.
pub struct Fixture {
    pub engine: Engine,
    /// Schema (PostgreSQL), database (MariaDB) or `main` (SQLite).
    pub schema: String,
    /// The database as its administrator (a superuser on PostgreSQL, root on MariaDB).
    pub url: String,
    /// The fixture's read-only user (PostgreSQL role, MariaDB user); `None` on SQLite.
    pub reader: Option<String>,
    /// The database as [`Self::reader`] (the SQLite file itself on SQLite).
    pub reader_url: String,
    pub admin: Admin,
    /// Kept for its Drop: removes the SQLite file.
    _sqlite_dir: Option<tempfile::TempDir>,
    cleaned: bool,
}

impl Fixture {
    /// A fresh fixture, or `None` when the engine's server is absent (skipped).
    pub async fn new(engine: Engine) -> Option<Self> {
        if !engine_available(engine).await {
            return None;
        }
        let name = unique_name("sbt");
        let fixture = match engine {
            Engine::Postgres => {
                let pool = sqlx::PgPool::connect(POSTGRES_ADMIN_URL)
                    .await
                    .expect("connect to PostgreSQL as postgres");
                let admin = Admin::Postgres(pool);
                admin.exec(&format!("CREATE SCHEMA {name}")).await;
                let reader = format!("{name}_ro");
                // The README's read-only role, scoped to this fixture's schema.
                // CONNECT on `test` comes from PUBLIC: granting it per role would
                // have parallel tests update the database's one ACL at once.
                admin
                    .exec(&format!(
                        "CREATE ROLE {reader} LOGIN;
                         ALTER ROLE {reader} SET default_transaction_read_only = on;
                         GRANT USAGE ON SCHEMA {name} TO {reader};
                         ALTER DEFAULT PRIVILEGES IN SCHEMA {name} GRANT SELECT ON TABLES TO {reader};"
                    ))
                    .await;
                Fixture {
                    engine,
                    url: POSTGRES_ADMIN_URL.to_owned(),
                    reader_url: format!("postgres://{reader}@127.0.0.1:5432/test"),
                    reader: Some(reader),
                    schema: name,
                    admin,
                    _sqlite_dir: None,
                    cleaned: false,
                }
            }
            Engine::MariaDb => {
                let pool = sqlx::MySqlPool::connect(MARIADB_ADMIN_URL)
                    .await
                    .expect("connect to MariaDB as root");
                pool.execute(sqlx::raw_sql(&format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                // The README's read-only user, scoped to this fixture's database.
                let reader = format!("{name}_ro");
                pool.execute(sqlx::raw_sql(&format!(
                    "CREATE USER '{reader}'@'%'; GRANT SELECT, SHOW VIEW ON {name}.* TO '{reader}'@'%'"
                )))
                .await
                .expect("create the read-only user");
                pool.close().await;
                let url = format!("mysql://root@127.0.0.1:3306/{name}");
                let pool = sqlx::MySqlPool::connect(&url)
                    .await
                    .expect("connect to test database");
                Fixture {
                    engine,
                    reader_url: format!("mysql://{reader}@127.0.0.1:3306/{name}"),
                    reader: Some(reader),
                    url,
                    schema: name,
                    admin: Admin::MariaDb(pool),
                    _sqlite_dir: None,
                    cleaned: false,
                }
            }
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join(format!("{name}.sqlite3"));
                let url = format!("sqlite:{}", path.display());
                let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("sqlite url");
                let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
                    .await
                    .expect("create SQLite file");
                Fixture {
                    engine,
                    reader_url: url.clone(),
                    reader: None,
                    url,
                    schema: "main".to_owned(),
                    admin: Admin::Sqlite(pool),
                    _sqlite_dir: Some(dir),
                    cleaned: false,
                }
            }
        };
        let accounts = fixture.t("accounts");
        fixture
            .admin
            .exec(&format!(
                "CREATE TABLE {accounts} (id INTEGER PRIMARY KEY, owner VARCHAR(50) NOT NULL, balance DECIMAL(12,2) NOT NULL)"
            ))
            .await;
        fixture
            .admin
            .exec(&format!(
                "INSERT INTO {accounts} (id, owner, balance) VALUES (1, 'alice', 100.50), (2, 'bob', 20.00), (3, 'carol', 7.25)"
            ))
            .await;
        Some(fixture)
    }

    /// `table` qualified with the fixture's schema where the engine needs it.
    pub fn t(&self, table: &str) -> String {
        match self.engine {
            Engine::Postgres => format!("{}.{table}", self.schema),
            Engine::MariaDb | Engine::Sqlite => table.to_owned(),
        }
    }

    /// The `n`-th placeholder (1-based) in the engine's syntax.
    pub fn p(&self, n: usize) -> String {
        match self.engine {
            Engine::Postgres => format!("${n}"),
            Engine::MariaDb | Engine::Sqlite => "?".to_owned(),
        }
    }

    /// A connector config for this fixture's database: read-only as the
    /// fixture's read-only user, read-write as the administrator.
    pub fn config(&self, mode: AccessMode) -> Config {
        let url = match mode {
            AccessMode::ReadOnly => &self.reader_url,
            AccessMode::ReadWrite => &self.url,
        };
        let mut config = Config::new(Target::Url(SecretString::from(url.clone())));
        config.access_mode = mode;
        config.statement_timeout = Duration::from_secs(3);
        config.pool_size = 2;
        config
    }

    /// Everything in `accounts`, as one text, to prove it did not change.
    pub async fn accounts_fingerprint(&self) -> String {
        let accounts = self.t("accounts");
        let sql = match self.engine {
            Engine::Postgres => format!(
                "SELECT string_agg(id || ':' || owner || ':' || balance::text, ',' ORDER BY id) FROM {accounts}"
            ),
            Engine::MariaDb => format!(
                "SELECT GROUP_CONCAT(CONCAT(id, ':', owner, ':', balance) ORDER BY id SEPARATOR ',') FROM {accounts}"
            ),
            Engine::Sqlite => format!(
                "SELECT group_concat(id || ':' || owner || ':' || printf('%.2f', balance), ',') FROM (SELECT * FROM {accounts} ORDER BY id)"
            ),
        };
        self.admin.text(&sql).await.unwrap_or_default()
    }

    /// Whether a table named `name` exists in the fixture's schema.
    pub async fn table_exists(&self, name: &str) -> bool {
        let sql = match self.engine {
            Engine::Postgres => format!(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = '{}' AND table_name = '{name}'",
                self.schema
            ),
            Engine::MariaDb => format!(
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = '{}' AND table_name = '{name}'",
                self.schema
            ),
            Engine::Sqlite => format!("SELECT name FROM sqlite_master WHERE name = '{name}'"),
        };
        self.admin.text(&sql).await.is_some()
    }

    pub const ORIGINAL_ACCOUNTS: &'static str = "1:alice:100.50,2:bob:20.00,3:carol:7.25";

    /// Drops what the fixture created.
    pub async fn cleanup(mut self) {
        match &self.admin {
            Admin::Postgres(_) | Admin::MariaDb(_) => {
                for statement in self.drop_statements() {
                    self.admin.exec(&statement).await;
                }
            }
            Admin::Sqlite(p) => p.close().await,
        }
        self.cleaned = true;
    }

    /// The statements that remove the fixture's schema (or database) and user.
    fn drop_statements(&self) -> Vec<String> {
        let schema = &self.schema;
        let reader = self.reader.as_deref().unwrap_or_default();
        match self.engine {
            Engine::Postgres => vec![
                format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                format!(
                    "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{reader}') THEN
                        EXECUTE 'DROP OWNED BY {reader}'; EXECUTE 'DROP ROLE {reader}'; END IF; END $$"
                ),
            ],
            Engine::MariaDb => vec![
                format!("DROP DATABASE IF EXISTS {schema}"),
                format!("DROP USER IF EXISTS '{reader}'@'%'"),
            ],
            Engine::Sqlite => Vec::new(),
        }
    }
}

impl Drop for Fixture {
    /// A test that failed before `cleanup` still drops its schema or database,
    /// on a thread of its own (the test's runtime may be unwinding).
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let statements = self.drop_statements();
        if statements.is_empty() {
            return;
        }
        let engine = self.engine;
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                for statement in &statements {
                    match engine {
                        Engine::Postgres => {
                            if let Ok(pool) = sqlx::PgPool::connect(POSTGRES_ADMIN_URL).await {
                                let _ = pool.execute(sqlx::raw_sql(statement)).await;
                            }
                        }
                        _ => {
                            if let Ok(pool) = sqlx::MySqlPool::connect(MARIADB_ADMIN_URL).await {
                                let _ = pool.execute(sqlx::raw_sql(statement)).await;
                            }
                        }
                    }
                }
            });
        })
        .join();
    }
}

/// The connector running in-process; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(database_connector::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> DatabaseClient<Channel> {
        DatabaseClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to the connector")
    }

    pub async fn health(&self) -> tonic_health::pb::health_client::HealthClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the connector");
        tonic_health::pb::health_client::HealthClient::new(channel)
    }

    /// Waits up to `within` for the connector to stop by itself (without
    /// asking it to) and returns how `serve` ended, or `None` if it still runs.
    pub async fn ended_within(mut self, within: Duration) -> Option<anyhow::Result<()>> {
        let task = self.task.take()?;
        match tokio::time::timeout(within, task).await {
            Ok(joined) => Some(joined.expect("serve task panicked")),
            Err(_) => None,
        }
    }

    /// Stops the connector and returns how `serve` ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("serve task panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// JSON as a protobuf value, for parameters.
/// Query `sql` with JSON `params`, the result or the status.
pub async fn query(
    client: &mut DatabaseClient<Channel>,
    sql: &str,
    params: &[serde_json::Value],
) -> Result<switchboard_proto::database::v1::QueryResult, tonic::Status> {
    client
        .query(switchboard_proto::database::v1::QueryRequest {
            sql: sql.to_owned(),
            parameters: params.iter().cloned().map(pv).collect(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

pub fn pv(json: serde_json::Value) -> prost_types::Value {
    database_connector::values::from_json(&json)
}

/// A protobuf value as JSON, for assertions.
pub fn js(value: &prost_types::Value) -> serde_json::Value {
    database_connector::values::to_json(value)
}
