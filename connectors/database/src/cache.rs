//! The query cache: identical read queries within their `cache_ttl` are answered
//! without touching the database.
//!
//! In process (moka, bounded by bytes, per-entry TTL) by default; with
//! `CACHE_REDIS_URL`, in Redis, so several replicas of the connector share hits.
//! Keys hash the database identity (URL without password), the SQL and the
//! parameters with SHA-256 (cut to 128 bits): the SQL and parameters are the
//! caller's, and one caller's result must never be served to another's
//! query, which a hash made for speed (one whose collisions can be built)
//! would allow to whoever crafts a colliding query. Writes through Execute invalidate: the in-process cache is
//! cleared, and in Redis a per-database generation number that is part of every
//! key is incremented, orphaning the old entries until their TTL ends. A cache
//! that fails (Redis down) is a miss, never a failed query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::Instrument as _;

use crate::telemetry::{self, CacheBackend, CacheResult};

/// How long a Redis round trip may take before the cache is skipped.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// A cached, encoded `QueryResult`.
#[derive(Clone)]
struct Entry {
    bytes: Arc<Vec<u8>>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<u128, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &u128,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

enum Store {
    Memory(moka::future::Cache<u128, Entry>),
    Redis {
        client: redis::Client,
        connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    },
}

/// The cache of one database's query results.
pub struct QueryCache {
    store: Store,
    /// Hash of the database identity, so databases never share entries.
    scope: String,
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.store {
            Store::Memory(_) => "memory",
            Store::Redis { .. } => "redis",
        };
        f.debug_struct("QueryCache")
            .field("store", &kind)
            .finish_non_exhaustive()
    }
}

/// The key of one query: database, SQL, parameters and row limit, each
/// ended by a NUL (only the SQL can hold one, so the parts are told apart),
/// hashed with SHA-256 and cut to its first 128 bits.
pub fn key(identity: &str, sql: &str, params: &[serde_json::Value], max_rows: u32) -> u128 {
    let params = serde_json::Value::Array(params.to_vec()).to_string();
    let mut text = String::with_capacity(identity.len() + sql.len() + params.len() + 16);
    text.push_str(identity);
    text.push('\0');
    text.push_str(sql);
    text.push('\0');
    text.push_str(&params);
    text.push('\0');
    text.push_str(&max_rows.to_string());
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

impl QueryCache {
    /// An in-process cache holding at most `max_bytes` of results.
    pub fn memory(identity: &str, max_bytes: u64) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &u128, v: &Entry| u32::try_from(v.bytes.len() + 64).unwrap_or(u32::MAX))
            .expire_after(PerEntryTtl)
            .build();
        Self {
            store: Store::Memory(cache),
            scope: scope_of(identity),
        }
    }

    /// A Redis cache at `url`; connects on first use.
    pub fn redis(identity: &str, url: &SecretString) -> Result<Self, String> {
        // The URL may hold a password: the error names the variable, not the value.
        let client = redis::Client::open(url.expose_secret()).map_err(|e| {
            format!(
                "CACHE_REDIS_URL is not a valid Redis URL ({})",
                e.category()
            )
        })?;
        Ok(Self {
            store: Store::Redis {
                client,
                connection: Mutex::new(None),
            },
            scope: scope_of(identity),
        })
    }

    /// Whether this cache is shared through Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Redis { .. })
    }

    /// The encoded result cached under `key`, if any.
    pub async fn get(&self, key: u128) -> Option<Arc<Vec<u8>>> {
        match &self.store {
            Store::Memory(cache) => {
                let found = cache.get(&key).await.map(|e| e.bytes);
                let result = if found.is_some() {
                    CacheResult::Hit
                } else {
                    CacheResult::Miss
                };
                telemetry::record_cache(CacheBackend::Memory, result);
                found
            }
            Store::Redis { .. } => {
                let result: Result<Option<Vec<u8>>, String> = self
                    .on_redis("GET", |mut conn, scope: String| async move {
                        let generation: Option<u64> = redis::cmd("GET")
                            .arg(generation_key(&scope))
                            .query_async(&mut conn)
                            .await?;
                        redis::cmd("GET")
                            .arg(entry_key(&scope, generation.unwrap_or(0), key))
                            .query_async(&mut conn)
                            .await
                    })
                    .await;
                telemetry::record_cache(
                    CacheBackend::Redis,
                    match &result {
                        Ok(Some(_)) => CacheResult::Hit,
                        Ok(None) => CacheResult::Miss,
                        Err(_) => CacheResult::Error,
                    },
                );
                result.ok().flatten().map(Arc::new)
            }
        }
    }

    /// Caches `bytes` under `key` for `ttl`.
    pub async fn put(&self, key: u128, bytes: Vec<u8>, ttl: Duration) {
        match &self.store {
            Store::Memory(cache) => {
                cache
                    .insert(
                        key,
                        Entry {
                            bytes: Arc::new(bytes),
                            ttl,
                        },
                    )
                    .await;
            }
            Store::Redis { .. } => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let _: Result<(), String> = self
                    .on_redis("SET", |mut conn, scope: String| async move {
                        let generation: Option<u64> = redis::cmd("GET")
                            .arg(generation_key(&scope))
                            .query_async(&mut conn)
                            .await?;
                        redis::cmd("SET")
                            .arg(entry_key(&scope, generation.unwrap_or(0), key))
                            .arg(bytes)
                            .arg("PX")
                            .arg(ms)
                            .query_async(&mut conn)
                            .await
                    })
                    .await;
            }
        }
    }

    /// Forgets every cached result of this database (after a write).
    pub async fn invalidate(&self) {
        match &self.store {
            Store::Memory(cache) => cache.invalidate_all(),
            Store::Redis { .. } => {
                let _: Result<u64, String> = self
                    .on_redis("INCR", |mut conn, scope: String| async move {
                        redis::cmd("INCR")
                            .arg(generation_key(&scope))
                            .query_async(&mut conn)
                            .await
                    })
                    .await;
            }
        }
    }

    /// Runs one Redis operation (`command` names it for its span) on the
    /// shared connection, reconnecting when needed; failures are logged and
    /// returned as text, never as a query error.
    async fn on_redis<T, F, Fut>(&self, command: &'static str, operation: F) -> Result<T, String>
    where
        F: FnOnce(redis::aio::MultiplexedConnection, String) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let span = telemetry::redis_span(command);
        let result = self
            .redis_operation(operation)
            .instrument(span.clone())
            .await;
        if let Err(error) = &result {
            telemetry::record_failure(&span, error);
        }
        result
    }

    async fn redis_operation<T, F, Fut>(&self, operation: F) -> Result<T, String>
    where
        F: FnOnce(redis::aio::MultiplexedConnection, String) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Store::Redis { client, connection } = &self.store else {
            return Err("not a Redis cache".to_owned());
        };
        let conn = {
            let mut slot = connection.lock().await;
            match slot.as_ref() {
                Some(conn) => conn.clone(),
                None => {
                    let connect = tokio::time::timeout(
                        REDIS_TIMEOUT,
                        client.get_multiplexed_async_connection(),
                    )
                    .await;
                    match connect {
                        Ok(Ok(conn)) => {
                            *slot = Some(conn.clone());
                            conn
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(
                                error = e.category(),
                                "redis cache unavailable, skipping"
                            );
                            return Err(e.category().to_owned());
                        }
                        Err(_) => {
                            tracing::warn!("redis cache did not answer in time, skipping");
                            return Err("timeout".to_owned());
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(REDIS_TIMEOUT, operation(conn, self.scope.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                tracing::warn!(
                    error = e.category(),
                    "redis cache operation failed, skipping"
                );
                if e.is_io_error() || e.is_connection_dropped() {
                    *connection.lock().await = None;
                }
                Err(e.category().to_owned())
            }
            Err(_) => {
                tracing::warn!("redis cache did not answer in time, skipping");
                *connection.lock().await = None;
                Err("timeout".to_owned())
            }
        }
    }
}

fn scope_of(identity: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(identity.as_bytes()))
}

fn generation_key(scope: &str) -> String {
    format!("switchboard:database:{scope}:generation")
}

fn entry_key(scope: &str, generation: u64, key: u128) -> String {
    format!("switchboard:database:{scope}:{generation}:{key:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_database_sql_and_parameters() {
        let params = [serde_json::json!(1)];
        let base = key("postgres://a@h/db", "SELECT $1", &params, 100);
        assert_eq!(base, key("postgres://a@h/db", "SELECT $1", &params, 100));
        assert_ne!(base, key("postgres://a@h/other", "SELECT $1", &params, 100));
        assert_ne!(base, key("postgres://a@h/db", "SELECT $1 ", &params, 100));
        assert_ne!(
            base,
            key(
                "postgres://a@h/db",
                "SELECT $1",
                &[serde_json::json!(2)],
                100
            )
        );
        assert_ne!(base, key("postgres://a@h/db", "SELECT $1", &params, 10));
        // SHA-256 of the parts, each ended by a NUL, cut to 128 bits.
        assert_eq!(
            key("sqlite:x", "SELECT 1", &[], 5),
            u128::from_be_bytes(
                Sha256::digest(b"sqlite:x\x00SELECT 1\x00[]\x005")[..16]
                    .try_into()
                    .expect("16 bytes")
            )
        );
    }

    #[tokio::test]
    async fn memory_entries_expire_and_invalidate() {
        let cache = QueryCache::memory("sqlite:x", 1 << 20);
        cache.put(1, vec![1, 2, 3], Duration::from_secs(60)).await;
        assert_eq!(cache.get(1).await.as_deref(), Some(&vec![1, 2, 3]));
        cache.invalidate().await;
        assert_eq!(cache.get(1).await, None);
    }
}
