//! Health follows the database: a TCP proxy in front of the real PostgreSQL is
//! cut and restored, and the connector's grpc.health.v1 status must follow.

use std::net::SocketAddr;
use std::time::Duration;

use database_connector::{AccessMode, Config, Target};
use secrecy::SecretString;
use switchboard_proto::database::v1::QueryRequest;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{Engine, Fixture, POSTGRES_ADDR, Running};

/// Forwards TCP to `upstream` while open; when cut, drops every connection and
/// refuses new ones (accepts and closes them at once), like a database that died.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &'static str, cut_at_start: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cut, cut_rx) = watch::channel(cut_at_start);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut, task }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits on the Watch stream until `wanted` arrives (bounded, so a broken
/// connector fails the test instead of hanging it).
async fn wait_for_status(
    updates: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    wanted: ServingStatus,
) {
    let result = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(update) = updates.message().await.expect("health stream") {
            if update.status() == wanted {
                return;
            }
        }
        panic!("health stream ended before {wanted:?}");
    })
    .await;
    assert!(result.is_ok(), "health never became {wanted:?}");
}

#[tokio::test]
async fn health_follows_a_database_that_goes_down_and_comes_back() {
    let Some(f) = Fixture::new(Engine::Postgres).await else {
        return;
    };
    // The database is unreachable when the connector starts.
    let proxy = Proxy::start(POSTGRES_ADDR, true).await;
    let reader = f.reader.as_deref().unwrap_or_default();
    let mut config = Config::new(Target::Url(SecretString::from(format!(
        "postgres://{reader}@{}/test",
        proxy.addr
    ))));
    config.health_interval = Duration::from_millis(100);
    config.connect_timeout = Duration::from_millis(500);
    config.access_mode = AccessMode::ReadOnly;
    let running = Running::start(config).await;
    let mut health = running.health().await;
    let mut updates = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch health")
        .into_inner();
    let mut client = running.client().await;

    wait_for_status(&mut updates, ServingStatus::NotServing).await;
    let status = client
        .query(QueryRequest {
            sql: "SELECT 1".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("database is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    proxy.set_cut(false);
    wait_for_status(&mut updates, ServingStatus::Serving).await;
    let per_service = health
        .check(HealthCheckRequest {
            service: "switchboard.database.v1.Database".to_owned(),
        })
        .await
        .expect("check")
        .into_inner();
    assert_eq!(per_service.status(), ServingStatus::Serving);
    client
        .query(QueryRequest {
            sql: "SELECT 1".to_owned(),
            ..Default::default()
        })
        .await
        .expect("database is back");

    proxy.set_cut(true);
    wait_for_status(&mut updates, ServingStatus::NotServing).await;
    proxy.set_cut(false);
    wait_for_status(&mut updates, ServingStatus::Serving).await;
    let rows = client
        .query(QueryRequest {
            sql: "SELECT 2 AS two".to_owned(),
            ..Default::default()
        })
        .await
        .expect("database is back again")
        .into_inner();
    assert_eq!(rows.row_count, 1);

    // An open Watch stream holds a graceful shutdown open: close ours first.
    drop((updates, health, client));
    running.stop().await.expect("clean shutdown");
    f.cleanup().await;
}

#[tokio::test]
async fn the_database_password_never_appears_in_errors() {
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let mut config = Config::new(Target::Url(SecretString::from(format!(
        "postgres://app:hunter2-secret@127.0.0.1:{closed}/shop"
    ))));
    config.connect_timeout = Duration::from_millis(300);
    let running = Running::start(config).await;
    let mut client = running.client().await;
    let status = client
        .query(QueryRequest {
            sql: "SELECT 1".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("nothing listens there");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        !status.message().contains("hunter2"),
        "{}",
        status.message()
    );
    let status = client
        .list_schemas(switchboard_proto::database::v1::ListSchemasRequest::default())
        .await
        .expect_err("nothing listens there");
    assert!(
        !status.message().contains("hunter2"),
        "{}",
        status.message()
    );
    drop(running);
}
