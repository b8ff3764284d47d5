//! Rate limits shared by every replica of the router, counted in Redis
//! (`--limits-redis`).
//!
//! One call is one round trip: a Lua script ([`GCRA`]) checks every rule that
//! covers the call and, only when all allow it, moves each rule's theoretical
//! arrival time on, atomically, with Redis's own clock (so replicas need no
//! synchronised clocks). Keys expire once their allowance is full again.
//!
//! Calls never wait on Redis: a check that does not answer within
//! [`REDIS_TIMEOUT`] (or fails) is counted in process instead, the store is
//! marked down, and until a background task has reconnected and Redis answers
//! a `PING` every check is counted in process without asking Redis at all.
//! Each change between shared and local counting is logged once and shown in
//! `/readyz` ([`readiness`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::LimitRule;

/// How long a call's check may wait for Redis before it is counted in process.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// GCRA over several keys at once. KEYS: one per rule covering the call.
/// ARGV: for each key its emission interval and its burst tolerance
/// (interval × burst), in microseconds. Returns `{1, 0, 0}` when every rule
/// allows the call (and counts it in each), otherwise `{0, i, wait}`: the
/// first rule (1-based) that refuses and the microseconds until it would allow.
const GCRA: &str = r"
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next_tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local next_tat = tat + interval
  local wait = next_tat - now - tolerance
  if wait > 0 then
    return {0, i, wait}
  end
  next_tats[i] = next_tat
end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((next_tats[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', next_tats[i]), 'PX', ttl)
end
return {1, 0, 0}
";

/// One rule's counter for one call: its Redis key and its GCRA parameters.
#[derive(Debug, Clone)]
pub struct Cell {
    key: String,
    interval_us: u64,
    tolerance_us: u64,
}

impl Cell {
    /// The counter of rule number `index` (`rule`) for `subject` (a
    /// principal, a tool, or empty for a global rule). The key hashes the
    /// rule's definition, so replicas with the same rule share it, and the
    /// subject, so no principal's name is stored.
    pub fn new(index: usize, rule: &LimitRule, subject: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(format!("{index}\0{}\0", rule.describe()).as_bytes());
        hash.update(subject.as_bytes());
        let digest = hash.finalize();
        let mut key = String::with_capacity(18 + 32);
        key.push_str("switchboard:limit:");
        for byte in &digest[..16] {
            key.push_str(&format!("{byte:02x}"));
        }
        let interval_us = u64::try_from(rule.rate.interval().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            key,
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(rule.burst.get())),
        }
    }
}

/// Where the limits are counted now, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Counting {
    /// Not connected yet.
    Starting,
    /// In Redis, shared by the replicas.
    Shared,
    /// In process, because Redis failed with this reason.
    Local(String),
}

/// The state of this process's shared limits, for `/readyz`.
static COUNTING: Mutex<Option<Counting>> = Mutex::new(None);

/// `/readyz` detail on the limits store: `None` without `--limits-redis`;
/// otherwise whether limits are shared now, and why not.
pub fn readiness() -> Option<Json> {
    let counting = COUNTING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()?;
    Some(match counting {
        Counting::Starting => {
            json!({ "store": "redis", "shared": false, "detail": "connecting to redis; limits are counted in this replica meanwhile" })
        }
        Counting::Shared => json!({ "store": "redis", "shared": true }),
        Counting::Local(reason) => json!({
            "store": "redis",
            "shared": false,
            "detail": format!("redis is unavailable ({reason}); limits are counted in this replica only until it answers again"),
        }),
    })
}

struct Inner {
    client: redis::Client,
    connection: RwLock<Option<MultiplexedConnection>>,
    up: AtomicBool,
    wake: tokio::sync::Notify,
    script: redis::Script,
    counting: Mutex<Counting>,
}

impl Inner {
    /// Records where limits are counted; logs a change once.
    fn set(&self, now: Counting) {
        let mut counting = self
            .counting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *counting == now
            || matches!((&*counting, &now), (Counting::Local(_), Counting::Local(_)))
        {
            return;
        }
        match &now {
            Counting::Shared => {
                tracing::info!("limits are shared through redis");
            }
            Counting::Local(reason) => tracing::warn!(
                %reason,
                "redis for shared limits is unavailable: limits are counted in this replica only until it answers again"
            ),
            Counting::Starting => {}
        }
        counting.clone_from(&now);
        *COUNTING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(now);
    }

    /// A call's check failed: count in process until Redis answers again.
    fn down(&self, reason: String) {
        self.up.store(false, Ordering::Relaxed);
        if let Ok(mut slot) = self.connection.write() {
            *slot = None;
        }
        self.set(Counting::Local(reason));
        self.wake.notify_one();
    }
}

/// The Redis store of shared limits; cheap to clone.
#[derive(Clone)]
pub struct SharedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("up", &self.inner.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    /// A store at `url` (`redis://[user:password@]host:port[/db]`), connected
    /// by a background task until `shutdown`; checks count in process until
    /// it is. Only a malformed URL is an error (naming the setting, never the
    /// URL, which may hold a password).
    pub fn start(url: &SecretString, shutdown: CancellationToken) -> Result<Self, String> {
        let client = redis::Client::open(url.expose_secret()).map_err(|e| {
            format!(
                "--limits-redis / SWITCHBOARD_LIMITS_REDIS / limits_redis is not a valid Redis URL ({})",
                e.category()
            )
        })?;
        let inner = Arc::new(Inner {
            client,
            connection: RwLock::new(None),
            up: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            script: redis::Script::new(GCRA),
            counting: Mutex::new(Counting::Starting),
        });
        *COUNTING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Counting::Starting);
        tokio::spawn(crate::redis_link::keep_connected(inner.clone(), shutdown));
        Ok(Self { inner })
    }

    /// Whether checks go to Redis now.
    pub fn is_shared(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Checks and counts `cells` in Redis: `Some(Ok)` when all allow the
    /// call, `Some(Err((position, wait)))` naming the first cell that refuses,
    /// `None` when Redis is not usable now (count in process).
    pub async fn check(&self, cells: &[Cell]) -> Option<Result<(), (usize, Duration)>> {
        if !self.inner.up.load(Ordering::Relaxed) {
            return None;
        }
        let mut connection = self.inner.connection.read().ok()?.clone()?;
        let mut invocation = self.inner.script.prepare_invoke();
        for cell in cells {
            invocation.key(&cell.key);
        }
        for cell in cells {
            invocation.arg(cell.interval_us).arg(cell.tolerance_us);
        }
        let answer = tokio::time::timeout(
            REDIS_TIMEOUT,
            invocation.invoke_async::<(i64, i64, i64)>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok((1, _, _))) => Some(Ok(())),
            Ok(Ok((_, position, wait_us))) => {
                let position = usize::try_from(position.max(1) - 1).unwrap_or(0);
                let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
                Some(Err((position.min(cells.len().saturating_sub(1)), wait)))
            }
            Ok(Err(error)) => {
                self.inner.down(error.category().to_owned());
                None
            }
            Err(_) => {
                self.inner
                    .down(format!("no answer within {} ms", REDIS_TIMEOUT.as_millis()));
                None
            }
        }
    }
}

impl crate::redis_link::Reconnecting for Inner {
    fn client(&self) -> &redis::Client {
        &self.client
    }
    fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
    fn wake(&self) -> &tokio::sync::Notify {
        &self.wake
    }
    fn connected(&self, connection: MultiplexedConnection) {
        if let Ok(mut slot) = self.connection.write() {
            *slot = Some(connection);
        }
        self.up.store(true, Ordering::Relaxed);
        self.set(Counting::Shared);
    }
    fn unreachable(&self, reason: String) {
        self.set(Counting::Local(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::Per;

    #[test]
    fn cells_of_the_same_rule_and_subject_share_a_key_and_hide_the_subject() {
        let rule =
            LimitRule::new(vec!["jira_*".into()], Per::Principal, "10/s", Some(5)).expect("rule");
        let a = Cell::new(0, &rule, "alice@example.com");
        assert_eq!(a.key, Cell::new(0, &rule, "alice@example.com").key);
        assert_ne!(a.key, Cell::new(0, &rule, "bob").key);
        assert_ne!(a.key, Cell::new(1, &rule, "alice@example.com").key);
        assert!(a.key.starts_with("switchboard:limit:"), "{}", a.key);
        assert!(!a.key.contains("alice"));
        assert_eq!(a.interval_us, 100_000);
        assert_eq!(a.tolerance_us, 500_000);
    }

    #[test]
    fn a_malformed_url_names_the_setting_not_the_url() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let url = SecretString::from("http://user:hunter2@host");
            let error = SharedStore::start(&url, CancellationToken::new()).expect_err("not redis");
            assert!(error.contains("SWITCHBOARD_LIMITS_REDIS"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        });
    }
}
