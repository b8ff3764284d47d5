//! Channel and user names, resolved to IDs and back, cached lazily.
//!
//! Nothing is listed at start: a large workspace's listing takes minutes under
//! Slack's rate limits. The caches fill from every channel and user the
//! connector sees (listings the caller asked for, `conversations.info` and
//! `users.info` for single IDs) and, only when a name is not known yet, from a
//! full paged listing. A full listing runs at most once per
//! [`RELIST_INTERVAL`] per kind, one at a time, so a mistyped name cannot
//! start a storm of listings.
//!
//! Channels get renamed. A channel's name is trusted for the channel name TTL
//! (`SLACK_CHANNEL_NAME_TTL`) after it was last seen; past that, a name given
//! by the caller is confirmed with `conversations.info` of the channel it
//! pointed to before it is used (a message for `#general` must not go to the
//! channel that was called general yesterday), and so is the name of a
//! channel given by ID when the channel lists need it. A rename seen drops
//! the old name.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use switchboard_proto::slack::v1::{Channel, Mention, Message, User};
use tokio::time::Instant;

use crate::api::{Call, SlackApi};
use crate::error::Error;
use crate::model;

/// Minimum time between two full listings of the same kind.
pub const RELIST_INTERVAL: Duration = Duration::from_secs(30);

/// Page size of full listings (Slack's maximum is 1000; it may return fewer).
const LISTING_PAGE: &str = "1000";

/// Minimum time between two full channel listings when a cached name turned
/// out to belong to no channel any more (a rename): short, since a name the
/// caller gave is waiting, but a floor, so that a Slack whose listing and
/// `conversations.info` disagree cannot make every call list.
pub const RENAMED_RELIST_INTERVAL: Duration = Duration::from_secs(1);

/// Upper bound of pages in one full listing, so a misbehaving cursor cannot
/// keep a call paging forever (200 pages: up to 200,000 channels or users).
const MAX_LISTING_PAGES: usize = 200;

/// The cursor to continue a full listing with, or `None` when it is done: on the
/// last page, after [`MAX_LISTING_PAGES`], or when Slack repeats a cursor.
fn continue_listing(answer: &Value, previous: &str, pages: usize, what: &str) -> Option<String> {
    let next = model::next_cursor(answer);
    if next.is_empty() {
        return None;
    }
    if next == previous || pages >= MAX_LISTING_PAGES {
        tracing::warn!(what, pages, "stopping a full listing early");
        return None;
    }
    Some(next)
}

/// A channel as resolved from the caller's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedChannel {
    /// The channel ID.
    pub id: String,
    /// The channel name without `#`; empty when unknown (e.g. a direct message).
    pub name: String,
}

/// Whether `s` is shaped like a Slack ID with one of these prefixes: an
/// uppercase letter prefix followed by uppercase letters and digits (names are
/// lowercase, so the two cannot be confused).
fn looks_like_id(s: &str, prefixes: &[char]) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| prefixes.contains(&c))
        && s.len() >= 3
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Whether `s` is a conversation ID (`C...`, `G...` or `D...`).
pub fn is_channel_id(s: &str) -> bool {
    looks_like_id(s, &['C', 'G', 'D'])
}

/// Whether `s` is a user ID (`U...` or `W...`).
pub fn is_user_id(s: &str) -> bool {
    looks_like_id(s, &['U', 'W'])
}

/// Default of `SLACK_CHANNEL_NAME_TTL`.
pub const DEFAULT_CHANNEL_NAME_TTL: Duration = Duration::from_secs(60);

/// A channel's name and when it was last seen.
#[derive(Debug, Clone)]
struct Named {
    name: String,
    seen: Instant,
}

#[derive(Debug, Default)]
struct ChannelNames {
    by_id: HashMap<String, Named>,
    by_name: HashMap<String, String>,
}

impl ChannelNames {
    /// Forgets that `name` (lower case) is the channel `id`, if it still is.
    fn drop_name(&mut self, name: &str, id: &str) {
        if self.by_name.get(name).map(String::as_str) == Some(id) {
            self.by_name.remove(name);
        }
    }
}

/// The name caches, with the API to fill them.
#[derive(Debug)]
pub struct Directory {
    api: Arc<SlackApi>,
    channels: RwLock<ChannelNames>,
    users: RwLock<HashMap<String, User>>,
    channel_listing: tokio::sync::Mutex<Option<Instant>>,
    user_listing: tokio::sync::Mutex<Option<Instant>>,
    name_ttl: Duration,
}

impl Directory {
    /// Empty caches over `api`, trusting a channel's name for `name_ttl`
    /// after it was seen.
    pub fn new(api: Arc<SlackApi>, name_ttl: Duration) -> Self {
        Self {
            api,
            name_ttl,
            channels: RwLock::default(),
            users: RwLock::default(),
            channel_listing: tokio::sync::Mutex::new(None),
            user_listing: tokio::sync::Mutex::new(None),
        }
    }

    /// Remembers a channel seen in an answer.
    pub fn remember_channel(&self, channel: &Channel) {
        if channel.id.is_empty() || channel.name.is_empty() {
            return;
        }
        if let Ok(mut names) = self.channels.write() {
            let named = Named {
                name: channel.name.clone(),
                seen: Instant::now(),
            };
            if let Some(old) = names.by_id.insert(channel.id.clone(), named) {
                names.drop_name(&old.name.to_lowercase(), &channel.id);
            }
            names
                .by_name
                .insert(channel.name.to_lowercase(), channel.id.clone());
        }
    }

    /// Forgets that `name` is the channel `id` (it was not, when asked).
    fn forget_name(&self, name: &str, id: &str) {
        if let Ok(mut names) = self.channels.write() {
            names.drop_name(name, id);
        }
    }

    /// Remembers a user seen in an answer.
    pub fn remember_user(&self, user: &User) {
        if user.id.is_empty() {
            return;
        }
        if let Ok(mut users) = self.users.write() {
            users.insert(user.id.clone(), user.clone());
        }
    }

    /// The channels in the cache now, as (ID, name) pairs sorted by name. Never
    /// calls Slack: it holds what listings and lookups have filled in so far.
    pub fn cached_channels(&self) -> Vec<(String, String)> {
        let Ok(names) = self.channels.read() else {
            return Vec::new();
        };
        let mut channels: Vec<(String, String)> = names
            .by_id
            .iter()
            .map(|(id, named)| (id.clone(), named.name.clone()))
            .collect();
        channels.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        channels
    }

    /// The channel given by ID, `name` or `#name` as far as the cache knows it,
    /// without calling Slack: (ID, name), either empty when unknown.
    pub fn cached_channel(&self, channel: &str) -> (String, String) {
        let channel = channel.trim();
        if is_channel_id(channel) {
            let name = self.cached_channel_name(channel).unwrap_or_default();
            return (channel.to_owned(), name);
        }
        let name = channel.trim_start_matches('#').to_lowercase();
        let id = self.cached_channel_id(&name).unwrap_or_default();
        (id, name)
    }

    fn cached_channel_name(&self, id: &str) -> Option<String> {
        Some(self.cached_named(id)?.name)
    }

    fn cached_named(&self, id: &str) -> Option<Named> {
        self.channels.read().ok()?.by_id.get(id).cloned()
    }

    /// Whether a name seen at `seen` is still trusted.
    fn fresh(&self, seen: Instant) -> bool {
        seen.elapsed() < self.name_ttl
    }

    fn cached_channel_id(&self, name: &str) -> Option<String> {
        self.channels.read().ok()?.by_name.get(name).cloned()
    }

    fn cached_user(&self, id: &str) -> Option<User> {
        self.users.read().ok()?.get(id).cloned()
    }

    /// Users whose handle, display name, real name or email is `query` (no case).
    fn cached_users_named(&self, query: &str) -> Vec<User> {
        let query = query.to_lowercase();
        let Ok(users) = self.users.read() else {
            return Vec::new();
        };
        let mut found: Vec<User> = users
            .values()
            .filter(|u| {
                [&u.name, &u.display_name, &u.real_name, &u.email]
                    .iter()
                    .any(|n| !n.is_empty() && n.to_lowercase() == query)
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    /// Resolves a channel given by ID, `name` or `#name`. With `need_name`, the
    /// name of a channel given by ID is looked up (`conversations.info`) when not
    /// cached or no longer trusted, and a failure to learn it is an error;
    /// otherwise it is best effort. A name given by the caller is confirmed
    /// when the cache's knowledge of it is no longer trusted.
    pub async fn resolve_channel(
        &self,
        channel: &str,
        need_name: bool,
    ) -> Result<ResolvedChannel, Error> {
        let channel = channel.trim();
        if is_channel_id(channel) || is_user_id(channel) {
            let id = channel.to_owned();
            let cached = self.cached_named(&id);
            if let Some(named) = &cached
                && (!need_name || self.fresh(named.seen))
            {
                return Ok(ResolvedChannel {
                    id,
                    name: named.name.clone(),
                });
            }
            if is_user_id(&id) || id.starts_with('D') {
                // Direct messages have no name.
                return Ok(ResolvedChannel {
                    id,
                    name: String::new(),
                });
            }
            let name = match self.channel_info(&id).await {
                Ok(info) => info.name,
                Err(e) if need_name => return Err(e),
                Err(e) => {
                    tracing::debug!(channel = %id, error = %e, "channel name unknown");
                    cached.map(|named| named.name).unwrap_or_default()
                }
            };
            return Ok(ResolvedChannel { id, name });
        }

        let name = channel.trim_start_matches('#').to_lowercase();
        if name.is_empty() {
            return Err(Error::invalid(
                "channel",
                "expected a channel ID such as C0123ABCD or a name such as #general",
            ));
        }
        if let Some(id) = self.cached_channel_id(&name) {
            let fresh = self
                .cached_named(&id)
                .is_some_and(|named| self.fresh(named.seen));
            if fresh {
                return Ok(ResolvedChannel { id, name });
            }
            // Not seen lately: is the channel still called that?
            match self.channel_info(&id).await {
                Ok(info) if info.name.to_lowercase() == name => {
                    return Ok(ResolvedChannel { id, name });
                }
                // Renamed (the new name is remembered, the old one dropped),
                // or gone: find who is called `name` now, with a listing even
                // if one ran lately (it knew the old name).
                Ok(_) => self.forget_name(&name, &id),
                Err(e) if e.slack_code() == Some("channel_not_found") => {
                    self.forget_name(&name, &id);
                }
                Err(e) => return Err(e),
            }
            self.list_all_channels(true).await?;
        } else {
            self.list_all_channels(false).await?;
        }
        match self.cached_channel_id(&name) {
            Some(id) => Ok(ResolvedChannel { id, name }),
            None => Err(Error::NameNotFound {
                what: format!(
                    "no channel named #{name} is visible to the Slack app; slack_list_channels shows the channels it can see (private channels only once the app is invited)"
                ),
            }),
        }
    }

    /// `conversations.info` for one channel; remembers it.
    async fn channel_info(&self, id: &str) -> Result<Channel, Error> {
        let params = [("channel", id.to_owned())];
        let answer = self
            .api
            .call(Call::read("conversations.info", &params))
            .await?;
        let channel = model::channel(answer.get("channel").unwrap_or(&Value::Null));
        self.remember_channel(&channel);
        Ok(channel)
    }

    /// Lists every channel into the cache, unless that was done within
    /// [`RELIST_INTERVAL`] (within [`RENAMED_RELIST_INTERVAL`] when `forced`
    /// by a rename).
    async fn list_all_channels(&self, forced: bool) -> Result<(), Error> {
        let mut last = self.channel_listing.lock().await;
        let interval = if forced {
            RENAMED_RELIST_INTERVAL
        } else {
            RELIST_INTERVAL
        };
        if last.is_some_and(|at| at.elapsed() < interval) {
            return Ok(());
        }
        let mut types = "public_channel,private_channel";
        let mut cursor = String::new();
        let mut count = 0usize;
        let mut pages = 0usize;
        loop {
            let mut params = vec![
                ("types", types.to_owned()),
                ("exclude_archived", "false".to_owned()),
                ("limit", LISTING_PAGE.to_owned()),
            ];
            if !cursor.is_empty() {
                params.push(("cursor", cursor.clone()));
            }
            let answer = match self
                .api
                .call(Call::read("conversations.list", &params))
                .await
            {
                Ok(answer) => answer,
                // Without groups:read, private channels cannot be listed; public
                // ones still can.
                Err(e) if e.slack_code() == Some("missing_scope") && types.contains("private") => {
                    types = "public_channel";
                    cursor.clear();
                    continue;
                }
                Err(e) => return Err(e),
            };
            for channel in model::objects(&answer, "/channels").map(model::channel) {
                self.remember_channel(&channel);
                count += 1;
            }
            pages += 1;
            match continue_listing(&answer, &cursor, pages, "channels") {
                Some(next) => cursor = next,
                None => break,
            }
        }
        tracing::info!(channels = count, "channel names listed");
        *last = Some(Instant::now());
        Ok(())
    }

    /// Lists every user into the cache, unless that was done recently.
    async fn list_all_users(&self) -> Result<(), Error> {
        let mut last = self.user_listing.lock().await;
        if last.is_some_and(|at| at.elapsed() < RELIST_INTERVAL) {
            return Ok(());
        }
        let mut cursor = String::new();
        let mut count = 0usize;
        let mut pages = 0usize;
        loop {
            let mut params = vec![("limit", LISTING_PAGE.to_owned())];
            if !cursor.is_empty() {
                params.push(("cursor", cursor.clone()));
            }
            let answer = self.api.call(Call::read("users.list", &params)).await?;
            for user in model::objects(&answer, "/members").map(model::user) {
                self.remember_user(&user);
                count += 1;
            }
            pages += 1;
            match continue_listing(&answer, &cursor, pages, "users") {
                Some(next) => cursor = next,
                None => break,
            }
        }
        tracing::info!(users = count, "user names listed");
        *last = Some(Instant::now());
        Ok(())
    }

    /// Resolves a user given by ID, `@handle`, display name, real name or email.
    pub async fn resolve_user(&self, user: &str) -> Result<String, Error> {
        let user = user.trim();
        if is_user_id(user) {
            return Ok(user.to_owned());
        }
        let query = user.trim_start_matches('@');
        if query.is_empty() {
            return Err(Error::invalid(
                "user",
                "expected a user ID such as U0123ABCD, a handle such as @alice, a name or an email",
            ));
        }
        let mut found = self.cached_users_named(query);
        if found.is_empty() {
            self.list_all_users().await?;
            found = self.cached_users_named(query);
        }
        match found.as_slice() {
            [] => Err(Error::NameNotFound {
                what: format!(
                    "no user named {user} in the workspace; slack_get_users lists members with their IDs, handles and names"
                ),
            }),
            [one] => Ok(one.id.clone()),
            many => Err(Error::invalid(
                "user",
                format!(
                    "{user} matches several users ({}); pass the user ID",
                    many.iter()
                        .map(|u| format!("{} {}", u.id, model::shown_name(u)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Fills in `user_name` of messages whose author is a person, and the
    /// `mentions` of each text, looking up people not seen yet (`users.info`).
    /// Best effort: a failed lookup (e.g. without users:read) leaves a name
    /// empty rather than failing the read.
    pub async fn name_people(&self, messages: &mut [Message]) {
        let mentioned: Vec<Vec<String>> = messages
            .iter()
            .map(|m| model::mentioned_user_ids(&m.text))
            .collect();
        let unknown: HashSet<String> = messages
            .iter()
            .map(|m| &m.user_id)
            .chain(mentioned.iter().flatten())
            .filter(|id| !id.is_empty() && self.cached_user(id).is_none())
            .cloned()
            .collect();
        let mut unknown: Vec<String> = unknown.into_iter().collect();
        unknown.sort();
        for id in unknown {
            let params = [("user", id.clone())];
            match self.api.call(Call::read("users.info", &params)).await {
                Ok(answer) => {
                    let mut user = model::user(answer.get("user").unwrap_or(&Value::Null));
                    if user.id.is_empty() {
                        user.id = id;
                    }
                    self.remember_user(&user);
                }
                Err(e) if e.slack_code() == Some("user_not_found") => {
                    tracing::debug!(user = %id, "message author not found");
                }
                Err(e) => {
                    // Likely the same for every author (scope, token, rate limit).
                    tracing::warn!(user = %id, error = %e, "cannot name message authors");
                    break;
                }
            }
        }
        let name_of = |id: &str| {
            self.cached_user(id)
                .map(|u| model::shown_name(&u))
                .unwrap_or_default()
        };
        for (message, mentioned) in messages.iter_mut().zip(mentioned) {
            let name = name_of(&message.user_id);
            if !name.is_empty() {
                message.user_name = name;
            }
            message.mentions = mentioned
                .into_iter()
                .map(|user_id| Mention {
                    user_name: name_of(&user_id),
                    user_id,
                })
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_listings_stop_on_the_last_page_a_repeated_cursor_or_the_cap() {
        let page = |cursor: &str| serde_json::json!({"response_metadata": {"next_cursor": cursor}});
        assert_eq!(continue_listing(&page(""), "", 1, "users"), None);
        assert_eq!(
            continue_listing(&page("abc"), "", 1, "users").as_deref(),
            Some("abc")
        );
        assert_eq!(continue_listing(&page("abc"), "abc", 2, "users"), None);
        assert_eq!(
            continue_listing(&page("def"), "abc", MAX_LISTING_PAGES, "users"),
            None
        );
    }

    #[test]
    fn ids_and_names_are_told_apart() {
        assert!(is_channel_id("C0123ABCD"));
        assert!(is_channel_id("G0123ABCD"));
        assert!(!is_channel_id("general"));
        assert!(!is_channel_id("Cats"));
        assert!(!is_channel_id("C"));
        assert!(is_user_id("U0123ABCD"));
        assert!(is_user_id("W012A3CDE"));
        assert!(!is_user_id("@alice"));
        assert!(!is_user_id("Ursula"));
    }
}
