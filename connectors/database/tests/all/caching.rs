//! The query cache: hits within the TTL say so, writes invalidate, replicas
//! share hits through Redis, and a dead Redis is only a miss.

use database_connector::AccessMode;
use secrecy::SecretString;
use serde_json::json;
use switchboard_proto::database::v1::{ExecuteRequest, QueryRequest};

use crate::support::{Engine, Fixture, REDIS_ADDR, Running, js, server_available};

fn owner_of_1(f: &Fixture, ttl: Option<u32>) -> QueryRequest {
    QueryRequest {
        sql: format!(
            "SELECT owner FROM {} WHERE id = {}",
            f.t("accounts"),
            f.p(1)
        ),
        parameters: vec![crate::support::pv(json!(1))],
        cache_ttl: ttl,
        ..Default::default()
    }
}

#[tokio::test]
async fn repeated_queries_within_the_ttl_come_from_the_cache_until_a_write() {
    let Some(f) = Fixture::new(Engine::Sqlite).await else {
        return;
    };
    let running = Running::start(f.config(AccessMode::ReadWrite)).await;
    let mut client = running.client().await;

    let first = client
        .query(owner_of_1(&f, Some(60)))
        .await
        .expect("query")
        .into_inner();
    assert!(!first.cached);
    // Changed behind the connector's back: a cached answer still shows the old value.
    f.admin
        .exec("UPDATE accounts SET owner = 'alicia' WHERE id = 1")
        .await;
    let second = client
        .query(owner_of_1(&f, Some(60)))
        .await
        .expect("query")
        .into_inner();
    assert!(
        second.cached,
        "the second identical query should be a cache hit"
    );
    assert!(!second.cached_at.is_empty());
    assert_eq!(js(&second.rows[0].values[0]), json!("alice"));
    // Without cache_ttl the database is asked.
    let fresh = client
        .query(owner_of_1(&f, None))
        .await
        .expect("query")
        .into_inner();
    assert!(!fresh.cached);
    assert_eq!(js(&fresh.rows[0].values[0]), json!("alicia"));

    // A write through Execute invalidates.
    client
        .execute(ExecuteRequest {
            sql: "UPDATE accounts SET owner = 'alice' WHERE id = 1".to_owned(),
            ..Default::default()
        })
        .await
        .expect("execute");
    let after = client
        .query(owner_of_1(&f, Some(60)))
        .await
        .expect("query")
        .into_inner();
    assert!(!after.cached, "a write must invalidate cached results");
    assert_eq!(js(&after.rows[0].values[0]), json!("alice"));
    drop(running);
    f.cleanup().await;
}

#[tokio::test]
async fn replicas_share_hits_through_redis_and_writes_invalidate_them() {
    if !server_available(
        "Redis",
        REDIS_ADDR,
        "service redis-server start (see DEVELOPERS.md)",
    )
    .await
    {
        return;
    }
    let Some(f) = Fixture::new(Engine::Sqlite).await else {
        return;
    };
    let mut config = f.config(AccessMode::ReadWrite);
    config.cache_redis_url = Some(SecretString::from(format!("redis://{REDIS_ADDR}")));
    let a = Running::start(config.clone()).await;
    let b = Running::start(config).await;
    let (mut a_client, mut b_client) = (a.client().await, b.client().await);

    let miss = a_client
        .query(owner_of_1(&f, Some(60)))
        .await
        .expect("query")
        .into_inner();
    assert!(!miss.cached);
    let hit = b_client
        .query(owner_of_1(&f, Some(60)))
        .await
        .expect("query")
        .into_inner();
    assert!(
        hit.cached,
        "replica B should be answered from A's entry in Redis"
    );
    assert_eq!(js(&hit.rows[0].values[0]), json!("alice"));

    a_client
        .execute(ExecuteRequest {
            sql: "UPDATE accounts SET owner = 'alicia' WHERE id = 1".to_owned(),
            ..Default::default()
        })
        .await
        .expect("execute");
    let after = b_client
        .query(owner_of_1(&f, Some(60)))
        .await
        .expect("query")
        .into_inner();
    assert!(!after.cached, "a write on A must invalidate B's view too");
    assert_eq!(js(&after.rows[0].values[0]), json!("alicia"));
    drop((a, b));
    f.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_miss_not_an_error() {
    let Some(f) = Fixture::new(Engine::Sqlite).await else {
        return;
    };
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let mut config = f.config(AccessMode::ReadOnly);
    config.cache_redis_url = Some(SecretString::from(format!(
        "redis://:redispass@127.0.0.1:{closed}"
    )));
    let running = Running::start(config).await;
    let mut client = running.client().await;
    for _ in 0..2 {
        let result = client
            .query(owner_of_1(&f, Some(60)))
            .await
            .expect("query")
            .into_inner();
        assert!(!result.cached);
        assert_eq!(js(&result.rows[0].values[0]), json!("alice"));
    }
    drop(running);
    f.cleanup().await;
}
