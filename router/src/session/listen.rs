//! The listen streams (`GET /mcp`) a replica holds for shared sessions, and
//! the resource subscriptions that go with them.
//!
//! With a session store, a session's resource subscriptions are recorded in
//! its Redis hash (`sub:<uri>` fields), and the connector is watched by the
//! one replica that holds the client's listen stream, for the principal that
//! opened it: the updates are written onto the stream where they are
//! produced. When the stream moves (the client reconnects to another
//! replica after one dies or drains), the new holder reads the session's
//! subscriptions and watches them itself, and the old holder's watches end
//! with its stream: no subscription is lost with a replica, and none is
//! watched twice. A `resources/subscribe` or `unsubscribe` that reaches
//! another replica is recorded there and relayed to the holder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::ServerJsonRpcMessage;
use tokio::sync::mpsc;

use super::SharedSessions;
use crate::auth::Principal;
use crate::call::{Caller, Pipeline};
use crate::limits::LimitLog;

/// How many notifications wait for one listen stream (relayed from other
/// replicas, or resource updates watched here); more are dropped (logged
/// once), like any notification of a client that reads too slowly.
pub const LISTEN_QUEUE: usize = 64;

static LISTEN_DROPPED: LimitLog = LimitLog::new("listen queue");

tokio::task_local! {
    /// The principal of the `GET` being served in this task (set by the
    /// session guard): whom the session's subscriptions are watched for.
    pub static LISTENER: Option<Principal>;
}

/// One listen stream this replica holds.
struct Listening {
    /// Which stream (a newer one of the session replaces an older one).
    number: u64,
    /// Where its notifications go.
    sender: mpsc::Sender<ServerJsonRpcMessage>,
    /// Whom its subscriptions are watched for.
    caller: Caller,
    /// The connector watches of the session's subscriptions, by URI.
    watches: HashMap<String, tokio::task::JoinHandle<()>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        for watch in self.watches.values() {
            watch.abort();
        }
    }
}

/// The listen streams of this replica, by session.
pub struct Listeners {
    shared: SharedSessions,
    pipeline: Pipeline,
    streams: Mutex<HashMap<String, Listening>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners").finish_non_exhaustive()
    }
}

/// Forgets a listen stream (and ends its watches) when dropped, unless a
/// newer stream of the session replaced it.
pub struct Registration {
    listeners: Arc<Listeners>,
    session: String,
    number: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut streams = self.listeners.streams();
        if streams
            .get(&self.session)
            .is_some_and(|listening| listening.number == self.number)
        {
            streams.remove(&self.session);
        }
    }
}

impl SharedSessions {
    fn subscription_field(uri: &str) -> String {
        format!("sub:{uri}")
    }

    /// The resource URIs session `id` is subscribed to.
    pub async fn subscriptions(&self, id: &str) -> Result<Vec<String>, super::StoreError> {
        let mut command = redis::cmd("HKEYS");
        command.arg(self.key(id));
        let fields: Vec<String> = self.cmd(command).await?;
        Ok(fields
            .into_iter()
            .filter_map(|field| field.strip_prefix("sub:").map(str::to_owned))
            .collect())
    }

    /// Records that session `id` is subscribed to `uri`, unless it holds
    /// `max` subscriptions already: whether it is subscribed now. Checked
    /// and written in one step, so subscribes racing on several replicas
    /// cannot overshoot `max`.
    pub async fn add_subscription(
        &self,
        id: &str,
        uri: &str,
        max: usize,
    ) -> Result<bool, super::StoreError> {
        let mut command = redis::cmd("EVAL");
        command
            .arg(
                "if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end \
                 if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end \
                 local n = 0 \
                 for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do \
                   if string.sub(f, 1, 4) == 'sub:' then n = n + 1 end \
                 end \
                 if n >= tonumber(ARGV[2]) then return 0 end \
                 redis.call('HSET', KEYS[1], ARGV[1], '1') return 1",
            )
            .arg(1)
            .arg(self.key(id))
            .arg(Self::subscription_field(uri))
            .arg(max);
        let added: i64 = self.cmd(command).await?;
        Ok(added == 1)
    }

    /// Records that session `id` is no longer subscribed to `uri`.
    pub async fn remove_subscription(&self, id: &str, uri: &str) -> Result<(), super::StoreError> {
        let mut command = redis::cmd("HDEL");
        command.arg(self.key(id)).arg(Self::subscription_field(uri));
        let _: i64 = self.cmd(command).await?;
        Ok(())
    }
}

impl Listeners {
    /// Listen streams of sessions shared through `shared`, whose
    /// subscriptions are watched through `pipeline`.
    pub fn new(shared: SharedSessions, pipeline: Pipeline) -> Self {
        Self {
            shared,
            pipeline,
            streams: Mutex::default(),
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, Listening>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers session `id`'s listen stream, fed by `sender`, as held
    /// here (in Redis too), and starts watching the session's subscriptions
    /// for the principal of the `GET` being served.
    pub async fn open(
        self: &Arc<Self>,
        id: &str,
        sender: mpsc::Sender<ServerJsonRpcMessage>,
    ) -> Registration {
        let principal = LISTENER.try_with(Clone::clone).ok().flatten();
        let caller = Caller::new(
            self.pipeline.security().principal_or_local(principal),
            crate::audit::FrontDoor::Http,
            None,
        )
        .with_client(format!("session {id}"));
        let number = rand::random::<u64>();
        let replaced = self.streams().insert(
            id.to_owned(),
            Listening {
                number,
                sender,
                caller,
                watches: HashMap::new(),
            },
        );
        drop(replaced);
        if let Err(error) = self.shared.hold_listen_stream(id).await {
            tracing::debug!(%error, "could not record the listen stream's replica: notifications of other replicas may not reach it");
        }
        match self.shared.subscriptions(id).await {
            Ok(uris) if !uris.is_empty() => {
                // Beside the stream: each watch waits for its connector.
                let (listeners, id) = (self.clone(), id.to_owned());
                tokio::spawn(async move {
                    for uri in uris {
                        listeners.watch(&id, &uri).await;
                    }
                });
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "could not read a session's subscriptions: they are watched again when its client next listens");
            }
        }
        Registration {
            listeners: self.clone(),
            session: id.to_owned(),
            number,
        }
    }

    /// Puts `message` on session `id`'s listen stream, if this replica
    /// holds it: whether it does.
    pub fn notify(&self, id: &str, message: ServerJsonRpcMessage) -> bool {
        let sender = self.streams().get(id).map(|l| l.sender.clone());
        match sender {
            Some(sender) => {
                if let Err(mpsc::error::TrySendError::Full(_)) = sender.try_send(message) {
                    LISTEN_DROPPED.hit(
                        LISTEN_QUEUE,
                        "a client's listen stream did not keep up with its notifications; notifications dropped",
                    );
                }
                true
            }
            None => false,
        }
    }

    /// Whether this replica holds session `id`'s listen stream.
    pub fn holds(&self, id: &str) -> bool {
        self.streams().contains_key(id)
    }

    /// Watches `uri` for session `id`'s listen stream held here (nothing
    /// if it is not, or if `uri` is watched already).
    pub async fn watch(self: &Arc<Self>, id: &str, uri: &str) {
        let (caller, number) = {
            let streams = self.streams();
            let Some(listening) = streams.get(id) else {
                return;
            };
            if listening.watches.contains_key(uri) {
                return;
            }
            (listening.caller.clone(), listening.number)
        };
        let notify = {
            let (listeners, id) = (Arc::downgrade(self), id.to_owned());
            move |changed: String| {
                let (listeners, id) = (listeners.clone(), id.clone());
                async move {
                    let param = rmcp::model::ResourceUpdatedNotificationParam::new(changed);
                    let message = ServerJsonRpcMessage::notification(
                        rmcp::model::ServerNotification::ResourceUpdatedNotification(
                            rmcp::model::ResourceUpdatedNotification::new(param),
                        ),
                    );
                    listeners
                        .upgrade()
                        .is_some_and(|listeners| listeners.notify(&id, message))
                }
            }
        };
        match self.pipeline.watch_resource(&caller, uri, notify).await {
            Ok(watch) => {
                let mut streams = self.streams();
                match streams.get_mut(id) {
                    Some(listening) if listening.number == number => {
                        if let Some(older) = listening.watches.insert(uri.to_owned(), watch) {
                            older.abort();
                        }
                    }
                    // The stream ended (or was replaced) meanwhile.
                    _ => watch.abort(),
                }
            }
            Err(error) => {
                tracing::warn!(uri, error = %error.message, "a session's subscription could not be watched for its listen stream");
            }
        }
    }

    /// Stops watching `uri` for session `id`, if this replica does.
    pub fn unwatch(&self, id: &str, uri: &str) {
        if let Some(watch) = self
            .streams()
            .get_mut(id)
            .and_then(|listening| listening.watches.remove(uri))
        {
            watch.abort();
        }
    }
}
