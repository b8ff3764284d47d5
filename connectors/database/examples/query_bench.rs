//! Benchmark of the database connector against the local PostgreSQL.
//!
//! Measures, in one run: a small indexed query through the connector (gRPC) vs
//! the same query with a plain sqlx pool (p50/p99 and the p50 ratio), a cache
//! hit's latency, and rows/s for a 100k-row result fetched up to the row cap.
//! Run it in release with `scripts/bench-database.sh`. Needs PostgreSQL at
//! 127.0.0.1:5432 (or `BENCH_DATABASE_URL`); creates and drops its own schema.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use database_connector::{AccessMode, Config, Target};
use secrecy::SecretString;
use sqlx::{Executor, Row};
use switchboard_proto::database::v1::QueryRequest;
use switchboard_proto::database::v1::database_client::DatabaseClient;

const ROWS: i64 = 100_000;
const ITERATIONS: usize = 2_000;
const WARM_UP: usize = 200;

/// A small deterministic generator for ids (xorshift64*).
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> i64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % ROWS as u64) as i64 + 1
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (p50, p99)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("sb_bench_{}", std::process::id());
    let plain = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .context("connect to PostgreSQL (set BENCH_DATABASE_URL or start it)")?;
    plain
        .execute(sqlx::raw_sql(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, created timestamptz NOT NULL);
             INSERT INTO {schema}.items SELECT i, 'item ' || i, (i % 1000) / 10.0, timestamptz '2025-01-01' + i * interval '1 minute'
               FROM generate_series(1, {ROWS}) AS i;
             ANALYZE {schema}.items;"
        )))
        .await
        .context("create the benchmark table")?;
    let result = run(&url, &schema, &plain).await;
    plain
        .execute(sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .context("drop the benchmark schema")?;
    result
}

async fn run(url: &str, schema: &str, plain: &sqlx::PgPool) -> anyhow::Result<()> {
    let mut config = Config::new(Target::Url(SecretString::from(url.to_owned())));
    config.access_mode = AccessMode::ReadOnly;
    config.pool_size = 4;
    config.max_rows = ROWS as u32;
    config.max_result_bytes = 256 * 1024 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(database_connector::serve(listener, config, async {
        let _ = stopped.await;
    }));
    let mut client = DatabaseClient::connect(format!("http://{addr}"))
        .await?
        .max_decoding_message_size(512 * 1024 * 1024);

    let sql = format!("SELECT id, name, price FROM {schema}.items WHERE id = $1");
    let mut ids = Ids(0x9E37_79B9_7F4A_7C15);

    // Plain sqlx, the same prepared statement on a pool.
    let mut plain_samples = Vec::with_capacity(ITERATIONS);
    for i in 0..WARM_UP + ITERATIONS {
        let id = ids.next();
        let started = Instant::now();
        let row = sqlx::query(&sql).bind(id).fetch_one(plain).await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(row.get::<i32, _>(0) as i64 == id, "wrong row");
        if i >= WARM_UP {
            plain_samples.push(elapsed);
        }
    }

    // Through the connector: parser guard, read-only transaction, decoding, gRPC.
    let mut grpc_samples = Vec::with_capacity(ITERATIONS);
    for i in 0..WARM_UP + ITERATIONS {
        let id = ids.next();
        let request = QueryRequest {
            sql: sql.clone(),
            parameters: vec![database_connector::values::int(id)],
            ..Default::default()
        };
        let started = Instant::now();
        let result = client.query(request).await?.into_inner();
        let elapsed = started.elapsed();
        anyhow::ensure!(result.row_count == 1, "wrong row count");
        if i >= WARM_UP {
            grpc_samples.push(elapsed);
        }
    }

    // Cache hits: the same query with cache_ttl, after one miss.
    let cached = QueryRequest {
        sql: sql.clone(),
        parameters: vec![database_connector::values::int(42)],
        cache_ttl: Some(600),
        ..Default::default()
    };
    client.query(cached.clone()).await?;
    let mut hit_samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let result = client.query(cached.clone()).await?.into_inner();
        hit_samples.push(started.elapsed());
        anyhow::ensure!(result.cached, "expected a cache hit");
    }

    // 100k rows up to the cap, through the connector and plainly.
    let big = format!("SELECT id, name, price, created FROM {schema}.items ORDER BY id");
    let mut big_samples = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let result = client
            .query(QueryRequest {
                sql: big.clone(),
                max_rows: Some(ROWS as u32),
                ..Default::default()
            })
            .await?
            .into_inner();
        big_samples.push(started.elapsed());
        anyhow::ensure!(
            result.row_count == ROWS as u64 && !result.truncated,
            "expected all rows"
        );
    }
    let mut plain_big = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let rows = sqlx::query(&big).fetch_all(plain).await?;
        plain_big.push(started.elapsed());
        anyhow::ensure!(rows.len() == ROWS as usize, "expected all rows");
    }

    let (plain_p50, plain_p99) = percentiles(plain_samples);
    let (grpc_p50, grpc_p99) = percentiles(grpc_samples);
    let (hit_p50, hit_p99) = percentiles(hit_samples);
    let (big_p50, _) = percentiles(big_samples);
    let (plain_big_p50, _) = percentiles(plain_big);
    println!(
        "database connector benchmark ({ITERATIONS} iterations after {WARM_UP} warm-up, PostgreSQL on loopback)"
    );
    println!();
    println!("| measurement | p50 | p99 |");
    println!("| --- | --- | --- |");
    println!(
        "| indexed point query, plain sqlx | {} | {} |",
        ms(plain_p50),
        ms(plain_p99)
    );
    println!(
        "| indexed point query, connector over gRPC | {} | {} |",
        ms(grpc_p50),
        ms(grpc_p99)
    );
    println!(
        "| cache hit over gRPC | {} | {} |",
        ms(hit_p50),
        ms(hit_p99)
    );
    println!();
    println!(
        "p50 ratio connector / plain sqlx: {:.2}x",
        grpc_p50.as_secs_f64() / plain_p50.as_secs_f64()
    );
    println!(
        "100k-row result through the connector: {} (median of 3), {:.0} rows/s",
        ms(big_p50),
        ROWS as f64 / big_p50.as_secs_f64()
    );
    println!(
        "100k-row result with plain sqlx (no decoding to JSON): {}, {:.0} rows/s",
        ms(plain_big_p50),
        ROWS as f64 / plain_big_p50.as_secs_f64()
    );

    drop(client);
    let _ = stop.send(());
    server.await??;
    Ok(())
}
