//! In-flight sharing: identical read-only calls that arrive while one is
//! running wait for its result instead of each sending a gRPC call.
//!
//! Only unary methods marked `idempotency_level = NO_SIDE_EFFECTS` (the tools
//! listed with `readOnlyHint`) are shared, never writes; "identical" is the
//! same tool, the same arguments (keys sorted, so their order does not
//! matter) and the same principal ([`key`]). The first call starts a
//! *flight*: the connector's call runs in a task of its own, and every
//! identical call arriving before it ends joins as a waiter. Each waiter keeps
//! its own cancellation: one that gives up leaves, and only when every waiter
//! has left is the connector's call cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::catalog::ToolEntry;

/// Whether calls of `entry` may be shared: unary and read-only.
pub fn shareable(entry: &ToolEntry) -> bool {
    !entry.server_streaming()
        && entry
            .tool
            .annotations
            .as_ref()
            .is_some_and(|a| a.read_only_hint == Some(true))
}

/// Deepest arguments a key is made of; deeper ones are not shared.
const MAX_KEY_DEPTH: usize = 64;

/// The sharing key of a call of `tool` by `principal` with `arguments`:
/// `None` when the arguments are nested too deep to be worth it. A flight
/// keeps its key for the call's life, so the key is the SHA-256 of the
/// canonical text, not the text (arguments may be up to `max_body_bytes`);
/// the digest resists collisions, so no client can craft arguments that
/// join another call's flight.
pub fn key(principal: &str, tool: &str, arguments: Option<&Map<String, Json>>) -> Option<String> {
    let mut out = String::with_capacity(principal.len() + tool.len() + 64);
    out.push_str(principal);
    out.push('\0');
    out.push_str(tool);
    out.push('\0');
    match arguments {
        Some(map) => canonical_object(map, &mut out, 0)?,
        None => out.push_str("{}"),
    }
    Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        out.as_bytes(),
    )))
}

/// JSON with object keys sorted, so that key order does not matter.
fn canonical(value: &Json, out: &mut String, depth: usize) -> Option<()> {
    match value {
        Json::Object(map) => canonical_object(map, out, depth),
        Json::Array(items) => {
            if depth >= MAX_KEY_DEPTH {
                return None;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out, depth + 1)?;
            }
            out.push(']');
            Some(())
        }
        scalar => {
            out.push_str(&scalar.to_string());
            Some(())
        }
    }
}

fn canonical_object(map: &Map<String, Json>, out: &mut String, depth: usize) -> Option<()> {
    if depth >= MAX_KEY_DEPTH {
        return None;
    }
    let mut entries: Vec<(&String, &Json)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (name, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Json::String(name.clone()).to_string());
        out.push(':');
        canonical(value, out, depth + 1)?;
    }
    out.push('}');
    Some(())
}

/// One call in flight: its result once there is one, how many wait for it,
/// and how to cancel it when none does any more.
struct Flight<T> {
    /// Tells this flight from a later one under the same key.
    id: u64,
    result: watch::Sender<Option<T>>,
    waiters: usize,
    cancel: CancellationToken,
}

/// The flights in progress, by key.
pub struct Flights<T> {
    flights: Mutex<HashMap<String, Flight<T>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl<T> std::fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.lock().len())
            .finish()
    }
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            flights: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// How a waiter's call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined<T> {
    /// The flight's result; `led` when this waiter started it.
    Done {
        /// The result.
        result: T,
        /// Whether this call started the flight (the others shared it).
        led: bool,
    },
    /// This waiter was cancelled (the flight goes on for the others).
    Cancelled,
}

impl<T> Flights<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight<T>>> {
        self.flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// Waits for the result of the flight under `key`, starting it with
    /// `start` (given the flight's own cancellation) when there is none;
    /// [`Joined::Cancelled`] as soon as `cancel` fires.
    pub async fn run<F, Fut>(
        self: &Arc<Self>,
        key: String,
        cancel: &CancellationToken,
        start: F,
    ) -> Joined<T>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (mut result, led, id) = {
            let mut flights = self.lock();
            match flights.get_mut(&key) {
                Some(flight) => {
                    flight.waiters += 1;
                    (flight.result.subscribe(), false, flight.id)
                }
                None => {
                    let (sender, receiver) = watch::channel(None);
                    let token = CancellationToken::new();
                    let work = start(token.clone());
                    let id = self
                        .next_id
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    flights.insert(
                        key.clone(),
                        Flight {
                            id,
                            result: sender,
                            waiters: 1,
                            cancel: token,
                        },
                    );
                    let this = self.clone();
                    let flight_key = key.clone();
                    tokio::spawn(async move {
                        let out = work.await;
                        // Out of the map first, so no one joins a flight
                        // that has already answered.
                        let mut flights = this.lock();
                        if flights.get(&flight_key).is_some_and(|f| f.id == id)
                            && let Some(flight) = flights.remove(&flight_key)
                        {
                            flight.result.send_replace(Some(out));
                        }
                    });
                    (receiver, true, id)
                }
            }
        };
        let _waiting = Waiting {
            flights: self,
            key,
            id,
        };
        tokio::select! {
            () = cancel.cancelled() => Joined::Cancelled,
            answered = result.wait_for(Option::is_some) => match answered {
                Ok(value) => match value.clone() {
                    Some(result) => Joined::Done { result, led },
                    None => Joined::Cancelled,
                },
                // Every flight answers or is cancelled with none waiting.
                Err(_) => Joined::Cancelled,
            },
        }
    }
}

/// One waiter of a flight; leaving (dropped: answered, cancelled, or its
/// future dropped) cancels the flight when no one else waits.
struct Waiting<'a, T> {
    flights: &'a Flights<T>,
    key: String,
    id: u64,
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock();
        let Some(flight) = flights.get_mut(&self.key).filter(|f| f.id == self.id) else {
            return;
        };
        flight.waiters = flight.waiters.saturating_sub(1);
        if flight.waiters == 0
            && let Some(flight) = flights.remove(&self.key)
        {
            flight.cancel.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn object(value: Json) -> Map<String, Json> {
        match value {
            Json::Object(map) => map,
            _ => unreachable!("an object literal"),
        }
    }

    #[test]
    fn keys_ignore_argument_order_but_not_values_principals_or_tools() {
        let a = object(json!({"b": [1, {"y": 2, "x": 1}], "a": "s"}));
        let b = object(json!({"a": "s", "b": [1, {"x": 1, "y": 2}]}));
        assert_eq!(key("p", "t", Some(&a)), key("p", "t", Some(&b)));
        assert_ne!(key("p", "t", Some(&a)), key("q", "t", Some(&a)));
        assert_ne!(key("p", "t", Some(&a)), key("p", "u", Some(&a)));
        let c = object(json!({"a": "s", "b": [1, {"x": 1, "y": 3}]}));
        assert_ne!(key("p", "t", Some(&a)), key("p", "t", Some(&c)));
        assert_eq!(key("p", "t", None), key("p", "t", Some(&Map::new())));
        // A string cannot pose as structure.
        let tricky = object(json!({"a": "1,\"b\":2"}));
        let plain = object(json!({"a": 1, "b": 2}));
        assert_ne!(key("p", "t", Some(&tricky)), key("p", "t", Some(&plain)));
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        assert_eq!(key("p", "t", Some(&object(json!({"d": deep})))), None);
        // What a flight keeps is a digest, whatever the arguments' size.
        let big = object(json!({"text": "x".repeat(1 << 20)}));
        assert_eq!(key("p", "t", Some(&big)).map(|k| k.len()), Some(64));
    }

    #[tokio::test]
    async fn identical_calls_share_one_flight_and_each_may_leave_alone() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let started = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let flight_cancelled = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        let mut cancels = Vec::new();
        for _ in 0..5 {
            let (flights, started, release, flight_cancelled) = (
                flights.clone(),
                started.clone(),
                release.clone(),
                flight_cancelled.clone(),
            );
            let cancel = CancellationToken::new();
            cancels.push(cancel.clone());
            waiters.push(tokio::spawn(async move {
                flights
                    .run("k".into(), &cancel, move |token| async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        tokio::select! {
                            () = release.notified() => 42,
                            () = token.cancelled() => {
                                flight_cancelled.fetch_add(1, Ordering::SeqCst);
                                0
                            }
                        }
                    })
                    .await
            }));
        }
        // Wait until all five wait on one flight.
        for _ in 0..200 {
            if flights.lock().get("k").is_some_and(|f| f.waiters == 5) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(flights.lock().get("k").map(|f| f.waiters), Some(5));
        // The first caller (the leader) and another one give up.
        cancels[0].cancel();
        cancels[3].cancel();
        assert_eq!(waiters.remove(3).await.expect("task"), Joined::Cancelled);
        assert_eq!(waiters.remove(0).await.expect("task"), Joined::Cancelled);
        assert_eq!(
            flight_cancelled.load(Ordering::SeqCst),
            0,
            "others still wait"
        );
        release.notify_one();
        for waiter in waiters {
            match waiter.await.expect("task") {
                Joined::Done { result, led } => {
                    assert_eq!(result, 42);
                    assert!(!led);
                }
                Joined::Cancelled => panic!("a waiter that stayed was cancelled"),
            }
        }
        assert_eq!(started.load(Ordering::SeqCst), 1, "one call for all");
        assert!(flights.lock().is_empty());
    }

    #[tokio::test]
    async fn the_flight_is_cancelled_when_its_last_waiter_leaves() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cancel = CancellationToken::new();
        let waiter = {
            let (flights, cancel) = (flights.clone(), cancel.clone());
            tokio::spawn(async move {
                flights
                    .run("k".into(), &cancel, move |token| async move {
                        token.cancelled().await;
                        let _ = tx.send(());
                        0
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancel.cancel();
        assert_eq!(waiter.await.expect("task"), Joined::Cancelled);
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("the connector's call is cancelled")
            .expect("sent");
        // A new identical call starts a new flight.
        let fresh = flights
            .run("k".into(), &CancellationToken::new(), |_| async { 7 })
            .await;
        assert_eq!(
            fresh,
            Joined::Done {
                result: 7,
                led: true
            }
        );
    }
}
