//! Resource subscriptions of a session (`resources/subscribe`, and the
//! URIs a stateless `subscriptions/listen` names): watched here, or with a
//! session store by the replica holding the client's listen stream.

use rmcp::service::{RequestContext, SubscriptionContext, SubscriptionSendError};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::json;

use super::{McpHandler, SUBSCRIPTIONS_REFUSED};
use crate::call::Caller;

/// The refusal of a subscription to `uri` over a session's `max` (logged).
pub(super) fn subscriptions_full(uri: &str, max: usize) -> McpError {
    SUBSCRIPTIONS_REFUSED.hit(
        max,
        "a session hit its limit of resource subscriptions; subscriptions refused",
    );
    McpError::invalid_request(
        format!(
            "cannot subscribe to {uri:?}: this session already holds {max} resource subscriptions, the most the router allows (max_subscriptions_per_session = {max}); unsubscribe from one first"
        ),
        Some(json!({ "setting": "max_subscriptions_per_session", "limit": max })),
    )
}

/// Tasks aborted when this is dropped.
pub(super) struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// How long a subscription waits for the replica holding the session's
/// listen stream to confirm it watches the resource (the subscription holds
/// either way; only an update before the watch starts could be missed).
const WATCH_CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl McpHandler {
    /// Subscribes this session to `uri` (`resources/subscribe`): within
    /// `max_subscriptions_per_session`, one connector stream per URI.
    pub(super) async fn subscribe_to(
        &self,
        uri: String,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let caller = self.caller(context);
        self.pipeline.may_subscribe(&caller, &uri)?;
        if let Some((shared, id)) = self.shared_session(context) {
            return self.subscribe_shared(shared, id, &caller, uri).await;
        }
        {
            let mut watches = self.session.watches();
            if watches.contains_key(&uri) {
                return Ok(());
            }
            let max = self.limits.max_subscriptions_per_session;
            if watches.len() >= max {
                // Watches whose stream has ended hold no connector stream.
                watches.retain(|_, w| w.as_ref().is_none_or(|h| !h.is_finished()));
            }
            if watches.len() >= max {
                return Err(subscriptions_full(&uri, max));
            }
            // Hold the slot while the connector is asked.
            watches.insert(uri.clone(), None);
        }
        // With a session store the client may listen on another replica:
        // the update goes where its listen stream is.
        let notifier = self.notifier(context);
        let notify = move |changed: String| {
            let notifier = notifier.clone();
            async move {
                let param = rmcp::model::ResourceUpdatedNotificationParam::new(changed);
                notifier
                    .send(
                        rmcp::model::ServerNotification::ResourceUpdatedNotification(
                            rmcp::model::ResourceUpdatedNotification::new(param),
                        ),
                    )
                    .await
            }
        };
        match self.pipeline.watch_resource(&caller, &uri, notify).await {
            Ok(watch) => {
                match self.session.watches().get_mut(&uri) {
                    Some(slot) => *slot = Some(watch),
                    // Unsubscribed meanwhile.
                    None => watch.abort(),
                }
                Ok(())
            }
            Err(error) => {
                let mut watches = self.session.watches();
                if watches.get(&uri).is_some_and(Option::is_none) {
                    watches.remove(&uri);
                }
                Err(error)
            }
        }
    }

    /// [`Self::subscribe_to`] for a session shared between replicas: the
    /// subscription is recorded in the store, and watched by the replica
    /// holding the client's listen stream (see [`crate::session::listen`]).
    async fn subscribe_shared(
        &self,
        shared: &crate::session::SharedSessions,
        id: &str,
        caller: &Caller,
        uri: String,
    ) -> Result<(), McpError> {
        let store = |error: crate::session::StoreError| {
            McpError::internal_error(
                error.to_string(),
                Some(json!({ "setting": "session_store" })),
            )
        };
        let subscribed = shared.subscriptions(id).await.map_err(store)?;
        if subscribed.contains(&uri) {
            return Ok(());
        }
        let max = self.limits.max_subscriptions_per_session;
        if subscribed.len() >= max {
            return Err(subscriptions_full(&uri, max));
        }
        // The connector must know the resource: asked here, so an unknown
        // one is this request's error, wherever it will be watched.
        self.pipeline
            .watch_resource(caller, &uri, |_| std::future::ready(false))
            .await?
            .abort();
        if !shared
            .add_subscription(id, &uri, max)
            .await
            .map_err(store)?
        {
            return Err(subscriptions_full(&uri, max));
        }
        self.watch_where_listened(shared, id, uri).await;
        Ok(())
    }

    /// Has the replica holding session `id`'s listen stream (this one,
    /// another one, or none: the next listen stream reads the
    /// subscriptions) watch `uri`, and waits until it does (within
    /// [`WATCH_CONFIRM_TIMEOUT`]), so that an update right after the
    /// subscription is not missed.
    pub(super) async fn watch_where_listened(
        &self,
        shared: &crate::session::SharedSessions,
        id: &str,
        uri: String,
    ) {
        use crate::session::relay::RelayedBody;
        if let Some(listeners) = self.listeners.as_ref().filter(|l| l.holds(id)) {
            listeners.watch(id, &uri).await;
            return;
        }
        let Some(holder) = other_holder(shared, id).await else {
            return;
        };
        let Some(feeds) = self.feeds.as_deref() else {
            relay_change(shared, &holder, id, RelayedBody::Watch(uri)).await;
            return;
        };
        let (feed, mut confirmed) = feeds.open();
        let from = shared.replica().to_owned();
        let body = RelayedBody::WatchThenTell { uri, from, feed };
        if relay_change(shared, &holder, id, body).await
            && tokio::time::timeout(WATCH_CONFIRM_TIMEOUT, confirmed.recv())
                .await
                .is_err()
        {
            tracing::info!(
                %holder,
                timeout = ?WATCH_CONFIRM_TIMEOUT,
                "the listen stream's replica did not confirm a new watch in time; updates until it starts may be missed"
            );
        }
        feeds.close(feed);
    }

    /// Has the replica holding session `id`'s listen stream stop watching
    /// `uri`.
    pub(super) async fn unwatch_where_listened(
        &self,
        shared: &crate::session::SharedSessions,
        id: &str,
        uri: String,
    ) {
        if let Some(listeners) = self.listeners.as_ref().filter(|l| l.holds(id)) {
            listeners.unwatch(id, &uri);
        } else if let Some(holder) = other_holder(shared, id).await {
            let body = crate::session::relay::RelayedBody::Unwatch(uri);
            relay_change(shared, &holder, id, body).await;
        }
    }

    /// Watches the resources a `subscriptions/listen` stream accepted, for
    /// its caller, each update sent on the stream; the watches end when the
    /// returned guard drops. A resource the caller may not see, or that no
    /// connector has, is left out (and logged).
    pub(super) async fn watch_for_listen(&self, context: &SubscriptionContext) -> AbortOnDrop {
        let mut watches = Vec::new();
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        if uris.is_empty() {
            return AbortOnDrop(watches);
        }
        let caller = self.caller(context.request_context());
        for uri in uris {
            if let Err(error) = self.pipeline.may_subscribe(&caller, &uri) {
                tracing::info!(%uri, error = %error.message, "a listen stream's resource subscription was refused");
                continue;
            }
            let sink = context.sink().clone();
            let notify = move |changed: String| {
                let sink = sink.clone();
                async move {
                    // An update of a URI the stream did not name (a
                    // connector reporting a child) is skipped, the watch
                    // goes on; a closed stream ends it.
                    match sink.notify_resource_updated(changed).await {
                        Ok(()) | Err(SubscriptionSendError::NotificationNotAccepted(_)) => true,
                        Err(_) => false,
                    }
                }
            };
            match self.pipeline.watch_resource(&caller, &uri, notify).await {
                Ok(watch) => watches.push(watch),
                Err(error) => {
                    tracing::info!(%uri, error = %error.message, "a listen stream's resource cannot be watched");
                }
            }
        }
        AbortOnDrop(watches)
    }
}

/// The other replica holding session `id`'s listen stream, if one does.
async fn other_holder(shared: &crate::session::SharedSessions, id: &str) -> Option<String> {
    match shared.listen_stream_holder(id).await {
        Ok(Some(holder)) if holder != shared.replica() => Some(holder),
        _ => None,
    }
}

/// Relays a subscription change for session `id` to replica `holder`:
/// whether a replica received it.
async fn relay_change(
    shared: &crate::session::SharedSessions,
    holder: &str,
    id: &str,
    body: crate::session::relay::RelayedBody,
) -> bool {
    let message = crate::session::relay::Relayed {
        session: id.to_owned(),
        body,
    };
    match shared.relay(holder, &message).await {
        Ok(received) => received,
        Err(error) => {
            tracing::debug!(%error, "a subscription change could not be relayed to the listen stream's replica");
            false
        }
    }
}
