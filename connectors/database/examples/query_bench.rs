//! Benchmark of the database connector against the local PostgreSQL.
//!
//! Measures, in one run: a small indexed query through the connector (gRPC) vs
//! the same query with a plain sqlx pool (p50/p99 and the p50 ratio), a cache
//! hit's latency, and rows/s for a 100k-row result fetched up to the row cap,
//! against plain sqlx fetching the same rows and encoding them as JSON with
//! serde_json. The connector runs as a read-only role the bench creates (the
//! way it is meant to be deployed), and a second connector as the
//! administrator with `DB_ALLOW_PRIVILEGED=true`, which keeps the READ ONLY
//! transaction around every read; the read-only layers in force are printed.
//! Run it in release with `scripts/bench-database.sh`. Needs PostgreSQL at
//! 127.0.0.1:5432 (or `BENCH_DATABASE_URL`, as a user that may create roles);
//! creates and drops its own schema and role.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use futures::TryStreamExt as _;

use anyhow::Context as _;
use database_connector::{AccessMode, Config, Target};
use secrecy::SecretString;
use sqlx::{Executor, Row};
use switchboard_proto::database::v1::QueryRequest;
use switchboard_proto::database::v1::database_client::DatabaseClient;

const ROWS: i64 = 100_000;
const ITERATIONS: usize = 2_000;
const WARM_UP: usize = 200;
/// The point-query paths are measured in this many alternating batches.
const BATCHES: usize = 10;

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
    let reader = format!("{schema}_ro");
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
             ANALYZE {schema}.items;
             CREATE ROLE {reader} LOGIN;
             ALTER ROLE {reader} SET default_transaction_read_only = on;
             GRANT USAGE ON SCHEMA {schema} TO {reader};
             GRANT SELECT ON {schema}.items TO {reader};"
        )))
        .await
        .context("create the benchmark table and its read-only role")?;
    let reader_url = with_user(&url, &reader)?;
    let result = run(&url, &reader_url, &schema, &plain).await;
    plain
        .execute(sqlx::raw_sql(&format!(
            "DROP SCHEMA {schema} CASCADE; DROP ROLE {reader}"
        )))
        .await
        .context("drop the benchmark schema and role")?;
    result
}

/// `url` with its user replaced by `user` (no password: the bench's database
/// trusts local connections).
fn with_user(url: &str, user: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("BENCH_DATABASE_URL")?;
    parsed
        .set_username(user)
        .map_err(|()| anyhow::anyhow!("BENCH_DATABASE_URL cannot have a user"))?;
    parsed
        .set_password(None)
        .map_err(|()| anyhow::anyhow!("BENCH_DATABASE_URL cannot have a password"))?;
    Ok(parsed.to_string())
}

/// A connector serving `url` on a free port, with the bench's limits.
struct Connector {
    client: DatabaseClient<tonic::transport::Channel>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Connector {
    async fn start(url: &str, allow_privileged: bool) -> anyhow::Result<Self> {
        let mut config = Config::new(Target::Url(SecretString::from(url.to_owned())));
        config.access_mode = AccessMode::ReadOnly;
        config.allow_privileged = allow_privileged;
        config.pool_size = 4;
        config.max_rows = ROWS as u32;
        config.max_result_bytes = 256 * 1024 * 1024;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(database_connector::serve(listener, config, async {
            let _ = stopped.await;
        }));
        let client = DatabaseClient::connect(format!("http://{addr}"))
            .await?
            .max_decoding_message_size(512 * 1024 * 1024);
        Ok(Self {
            client,
            stop,
            server,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        drop(self.client);
        let _ = self.stop.send(());
        self.server.await?
    }
}

/// The read-only layers a connector configured like `url` runs reads under,
/// once its start-up check has run.
async fn layers(url: &str, allow_privileged: bool) -> anyhow::Result<Vec<String>> {
    let mut config = Config::new(Target::Url(SecretString::from(url.to_owned())));
    config.access_mode = AccessMode::ReadOnly;
    config.allow_privileged = allow_privileged;
    config.max_rows = ROWS as u32;
    config.max_result_bytes = 256 * 1024 * 1024;
    let db = database_connector::engine::Database::open(&config).await?;
    db.check_access().await?;
    let layers = db.read_only_layers();
    db.close().await;
    Ok(layers)
}

/// The latencies of `n` point queries through `client`, after `warm_up` more.
async fn point_queries(
    client: &mut DatabaseClient<tonic::transport::Channel>,
    sql: &str,
    ids: &mut Ids,
    (warm_up, n): (usize, usize),
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..warm_up + n {
        let id = ids.next();
        let request = QueryRequest {
            sql: sql.to_owned(),
            parameters: vec![database_connector::values::int(id)],
            ..Default::default()
        };
        let started = Instant::now();
        let result = client.query(request).await?.into_inner();
        let elapsed = started.elapsed();
        anyhow::ensure!(result.row_count == 1, "wrong row count");
        if i >= warm_up {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}

/// The latencies of `n` plain sqlx point queries on `pool`, after `warm_up` more.
async fn plain_queries(
    pool: &sqlx::PgPool,
    sql: &str,
    ids: &mut Ids,
    (warm_up, n): (usize, usize),
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..warm_up + n {
        let id = ids.next();
        let started = Instant::now();
        let row = sqlx::query(sql).bind(id).fetch_one(pool).await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(row.get::<i32, _>(0) as i64 == id, "wrong row");
        if i >= warm_up {
            samples.push(elapsed);
        }
    }
    Ok(samples)
}

/// The 100k rows fetched with plain sqlx and encoded as a JSON array of rows
/// with serde_json, values as the connector gives them (NUMERIC as an exact
/// string, timestamps ISO 8601): the baseline for the connector's rows/s.
async fn plain_json(pool: &sqlx::PgPool, sql: &str) -> anyhow::Result<Vec<u8>> {
    let mut rows = sqlx::query(sql).fetch(pool);
    let mut out = Vec::with_capacity(16 * 1024 * 1024);
    out.push(b'[');
    let mut first = true;
    while let Some(row) = rows.try_next().await? {
        let id: i32 = row.try_get(0)?;
        let name: &str = row.try_get(1)?;
        let price: bigdecimal::BigDecimal = row.try_get(2)?;
        let created: chrono::DateTime<chrono::Utc> = row.try_get(3)?;
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(
            &mut out,
            &serde_json::json!([
                id,
                name,
                price.with_scale(2).to_plain_string(),
                created.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ]),
        )?;
    }
    out.push(b']');
    Ok(out)
}

/// Stops what the bench started, after a profiling run.
async fn profiled(
    unchecked: sqlx::PgPool,
    reader: Connector,
    admin: Connector,
) -> anyhow::Result<()> {
    unchecked.close().await;
    reader.stop().await?;
    admin.stop().await
}

async fn run(
    url: &str,
    reader_url: &str,
    schema: &str,
    plain: &sqlx::PgPool,
) -> anyhow::Result<()> {
    let reader_layers = layers(reader_url, false).await?;
    let admin_layers = layers(url, true).await?;
    let mut reader = Connector::start(reader_url, false).await?;
    let mut admin = Connector::start(url, true).await?;
    let client = &mut reader.client;
    // The same pool as `plain` without its liveness check before each use.
    let unchecked = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect(url)
        .await?;
    // The same again, each connection cleaned after use as the connector
    // cleans its own (one more round trip, after the answer): the database
    // work a read through the connector cannot do without.
    let cleaned = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .after_release(|conn, _meta| {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(
                    database_connector::engine::POSTGRES_SESSION_RESET,
                ))
                .await?;
                Ok(true)
            })
        })
        .connect(url)
        .await?;

    let sql = format!("SELECT id, name, price FROM {schema}.items WHERE id = $1");
    let mut ids = Ids(0x9E37_79B9_7F4A_7C15);
    let big = format!("SELECT id, name, price, created FROM {schema}.items ORDER BY id");

    // `BENCH_PROFILE=point` or `rows`: only that work through the connector, at
    // length, for a profiler attached to this process (see the README).
    match std::env::var("BENCH_PROFILE").as_deref() {
        Ok("point") => {
            point_queries(client, &sql, &mut ids, (WARM_UP, 10 * ITERATIONS)).await?;
            return profiled(unchecked, reader, admin).await;
        }
        Ok("rows") => {
            for _ in 0..20 {
                let request = QueryRequest {
                    sql: big.clone(),
                    max_rows: Some(ROWS as u32),
                    ..Default::default()
                };
                client.query(request).await?;
            }
            return profiled(unchecked, reader, admin).await;
        }
        _ => {}
    }

    // Point queries: plain sqlx, the same prepared statement on a pool
    // (sqlx's defaults: a ping before every use of a pooled connection), then
    // without the ping, then with the connector's session clean-up; through
    // the connector (parser guard, read-only layers, decoding, gRPC) as the
    // read-only role and as the administrator (READ ONLY transaction around
    // each read); and cache hits (the same query with cache_ttl, after one
    // miss). Each path in `BATCHES` alternating batches, so a machine getting
    // busier or quieter weighs on all of them alike.
    let cached = QueryRequest {
        sql: sql.clone(),
        parameters: vec![database_connector::values::int(42)],
        cache_ttl: Some(600),
        ..Default::default()
    };
    client.query(cached.clone()).await?;
    let mut samples: [Vec<Duration>; 6] = Default::default();
    for batch in 0..BATCHES {
        let shape = (if batch == 0 { WARM_UP } else { 0 }, ITERATIONS / BATCHES);
        samples[0].extend(plain_queries(plain, &sql, &mut ids, shape).await?);
        samples[1].extend(plain_queries(&unchecked, &sql, &mut ids, shape).await?);
        samples[2].extend(plain_queries(&cleaned, &sql, &mut ids, shape).await?);
        samples[3].extend(point_queries(client, &sql, &mut ids, shape).await?);
        samples[4].extend(point_queries(&mut admin.client, &sql, &mut ids, shape).await?);
        for _ in 0..shape.1 {
            let started = Instant::now();
            let result = client.query(cached.clone()).await?.into_inner();
            samples[5].push(started.elapsed());
            anyhow::ensure!(result.cached, "expected a cache hit");
        }
    }
    let [
        plain_samples,
        unchecked_samples,
        cleaned_samples,
        grpc_samples,
        admin_samples,
        hit_samples,
    ] = samples;

    // 100k rows up to the cap, through the connector and plainly.
    let mut big_samples = Vec::new();
    for _ in 0..5 {
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
    for _ in 0..5 {
        let started = Instant::now();
        let rows = sqlx::query(&big).fetch_all(plain).await?;
        plain_big.push(started.elapsed());
        anyhow::ensure!(rows.len() == ROWS as usize, "expected all rows");
    }
    let mut json_big = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let json = plain_json(plain, &big).await?;
        json_big.push(started.elapsed());
        anyhow::ensure!(json.len() > ROWS as usize * 20, "expected all rows");
    }

    let (plain_p50, plain_p99) = percentiles(plain_samples);
    let (unchecked_p50, unchecked_p99) = percentiles(unchecked_samples);
    let (cleaned_p50, cleaned_p99) = percentiles(cleaned_samples);
    let (grpc_p50, grpc_p99) = percentiles(grpc_samples);
    let (admin_p50, admin_p99) = percentiles(admin_samples);
    let (json_big_p50, _) = percentiles(json_big);
    let (hit_p50, hit_p99) = percentiles(hit_samples);
    let (big_p50, _) = percentiles(big_samples);
    let (plain_big_p50, _) = percentiles(plain_big);
    println!(
        "database connector benchmark ({ITERATIONS} point queries per path after {WARM_UP} warm-up, in {BATCHES} alternating batches; PostgreSQL on loopback)"
    );
    println!();
    println!("read-only layers, connector as the read-only role:");
    for layer in &reader_layers {
        println!("  - {layer}");
    }
    println!("read-only layers, connector as the administrator (DB_ALLOW_PRIVILEGED=true):");
    for layer in &admin_layers {
        println!("  - {layer}");
    }
    println!();
    println!("| measurement | p50 | p99 | p50 vs plain sqlx |");
    println!("| --- | --- | --- | --- |");
    let row = |what: &str, p50: Duration, p99: Duration| {
        println!(
            "| {what} | {} | {} | {:.2}x |",
            ms(p50),
            ms(p99),
            p50.as_secs_f64() / plain_p50.as_secs_f64()
        );
    };
    row(
        "indexed point query, plain sqlx pool (baseline)",
        plain_p50,
        plain_p99,
    );
    row(
        "indexed point query, plain sqlx pool without its ping before each use",
        unchecked_p50,
        unchecked_p99,
    );
    row(
        "indexed point query, plain sqlx pool without the ping, the connector's session clean-up after each use",
        cleaned_p50,
        cleaned_p99,
    );
    row(
        "indexed point query, connector over gRPC, read-only role",
        grpc_p50,
        grpc_p99,
    );
    row(
        "indexed point query, connector over gRPC, administrator (READ ONLY transaction per read)",
        admin_p50,
        admin_p99,
    );
    row("cache hit over gRPC", hit_p50, hit_p99);
    println!();
    let ratio = grpc_p50.as_secs_f64() / plain_p50.as_secs_f64();
    println!(
        "p50 ratio connector (read-only role) / plain sqlx: {ratio:.2}x (target at most 1.3x: {})",
        if ratio <= 1.3 { "met" } else { "NOT met" }
    );
    // What the connector cannot go below: its gRPC hop (a cache hit: the
    // same request and answer without the database) plus the database work
    // of a read with the clean-up the read-only layers require.
    let floor = hit_p50 + cleaned_p50;
    println!(
        "the gRPC hop alone (a cache hit) is {:.2}x plain sqlx; hop + the plain query with the session clean-up: {} ({:.2}x plain sqlx); the connector's read is {:.2}x that floor",
        hit_p50.as_secs_f64() / plain_p50.as_secs_f64(),
        ms(floor),
        floor.as_secs_f64() / plain_p50.as_secs_f64(),
        grpc_p50.as_secs_f64() / floor.as_secs_f64(),
    );
    let rate = |d: Duration| ROWS as f64 / d.as_secs_f64();
    println!();
    println!(
        "| 100k rows, 4 columns (median of 5) | time | rows/s | time vs plain sqlx + serde_json |"
    );
    println!("| --- | --- | --- | --- |");
    let big_row = |what: &str, d: Duration| {
        println!(
            "| {what} | {} | {:.0} | {:.2}x |",
            ms(d),
            rate(d),
            d.as_secs_f64() / json_big_p50.as_secs_f64()
        );
    };
    big_row("connector over gRPC, read-only role", big_p50);
    big_row("plain sqlx + serde_json encoding (baseline)", json_big_p50);
    big_row("plain sqlx, rows only (no encoding)", plain_big_p50);
    let vs_json = big_p50.as_secs_f64() / json_big_p50.as_secs_f64();
    println!();
    println!(
        "100k rows: {:.0} rows/s (target at least 1.5M: {}), {vs_json:.2}x the time of plain sqlx + serde_json (target at most 2x: {})",
        rate(big_p50),
        if rate(big_p50) >= 1_500_000.0 {
            "met"
        } else {
            "NOT met"
        },
        if vs_json <= 2.0 { "met" } else { "NOT met" }
    );
    println!(
        "plain sqlx fetching the same rows and encoding nothing reads {:.0} rows/s here: the most any path that also decodes, encodes and sends them can reach",
        rate(plain_big_p50)
    );

    unchecked.close().await;
    cleaned.close().await;
    reader.stop().await?;
    admin.stop().await?;
    Ok(())
}
