//! What each tool does in the Slack workspace: resolve names, apply the
//! operator's policy, call the Web API method(s), and shape the answer.
//!
//! Arguments arrive here already checked by [`crate::service`]; answers leave as
//! the proto messages the service returns.

use std::sync::Arc;

use serde_json::Value;
use switchboard_proto::slack::v1::{
    AddReactionResponse, Channel, DeleteMessageResponse, GetUsersResponse, ListChannelsResponse,
    Message, MessagePage, SearchMessagesResponse, UserProfile,
};

use crate::api::{Call, SlackApi, Token, Verb};
use crate::config::Config;
use crate::directory::{Directory, ResolvedChannel};
use crate::error::Error;
use crate::model;
use crate::policy::Policy;

/// A message to post.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// Channel ID or name, or a user ID for a direct message.
    pub channel: String,
    /// Text in Slack mrkdwn.
    pub text: String,
    /// Block Kit blocks, already checked to be a JSON array.
    pub blocks: Option<Value>,
    /// Parent `ts` for a thread reply.
    pub thread_ts: Option<String>,
    /// Also show a thread reply in the channel.
    pub reply_broadcast: Option<bool>,
    /// Unfurl links.
    pub unfurl_links: Option<bool>,
}

/// Which page of a listing to read.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Items per page.
    pub limit: u32,
    /// Slack's cursor from the previous page; empty for the first page.
    pub cursor: String,
}

/// A history window.
#[derive(Debug, Clone, Default)]
pub struct HistoryRequest {
    /// Channel ID or name.
    pub channel: String,
    /// Only messages after this `ts`.
    pub oldest: Option<String>,
    /// Only messages before this `ts`.
    pub latest: Option<String>,
    /// The page.
    pub page: PageRequest,
}

/// Search result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchOrder {
    /// By relevance.
    #[default]
    Relevance,
    /// Newest first.
    Newest,
    /// Oldest first.
    Oldest,
}

/// A search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Slack search query.
    pub query: String,
    /// Results per page.
    pub count: u32,
    /// Page number from 1.
    pub page: u32,
    /// Order.
    pub order: SearchOrder,
}

/// The Slack workspace as the connector sees it.
#[derive(Debug)]
pub struct Workspace {
    api: Arc<SlackApi>,
    directory: Directory,
    policy: Policy,
}

impl Workspace {
    /// The workspace reached with `config`'s tokens.
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        let api = Arc::new(SlackApi::new(config)?);
        Ok(Self {
            directory: Directory::new(api.clone(), config.channel_name_ttl),
            api,
            policy: Policy::new(
                config.allow_writes,
                &config.channels_allow,
                &config.channels_deny,
            )
            .with_broadcast_mentions(config.allow_broadcast_mentions),
        })
    }

    /// The Web API client (for health checks).
    pub fn api(&self) -> &SlackApi {
        &self.api
    }

    /// Whether the writing tools are enabled (SLACK_ALLOW_WRITES).
    pub fn writes_allowed(&self) -> bool {
        self.policy.allows_writes()
    }

    /// Whether messages may notify a whole channel, the workspace or a user
    /// group (SLACK_ALLOW_BROADCAST_MENTIONS).
    pub fn broadcast_mentions_allowed(&self) -> bool {
        self.policy.allows_broadcast_mentions()
    }

    /// Names of cached channels the channel lists allow, starting with (then
    /// containing) `typed` (without `#`, no case); never calls Slack, so an
    /// empty answer only means no channel has been seen yet.
    pub fn complete_channel_name(&self, typed: &str) -> Vec<String> {
        let typed = typed.trim().trim_start_matches('#').to_lowercase();
        let allowed: Vec<String> = self
            .directory
            .cached_channels()
            .into_iter()
            .filter(|(id, name)| self.policy.channel_verdict(id, name).is_ok())
            .map(|(_, name)| name)
            .collect();
        let (mut starting, mut containing) = (Vec::new(), Vec::new());
        for name in allowed {
            if name.starts_with(&typed) {
                starting.push(name);
            } else if name.contains(&typed) {
                containing.push(name);
            }
        }
        starting.extend(containing);
        starting
    }

    /// Refuses a channel the channel lists exclude, judged only from what the
    /// name cache knows (no Slack call): for checks before any tool runs.
    pub fn check_channel_cached(&self, channel: &str) -> Result<(), Error> {
        let (id, name) = self.directory.cached_channel(channel);
        match self.policy.channel_verdict(&id, &name) {
            Ok(()) => Ok(()),
            // A deny-list match is certain; an allow-list miss only when both the
            // ID and the name are known (the list may name the other one).
            Err(reason)
                if reason == crate::policy::DENIED || (!id.is_empty() && !name.is_empty()) =>
            {
                Err(Error::ChannelRefused {
                    channel: channel.trim().to_owned(),
                    reason,
                })
            }
            Err(_) => Ok(()),
        }
    }

    /// Resolves a channel and applies the channel lists to it.
    async fn usable_channel(&self, channel: &str) -> Result<ResolvedChannel, Error> {
        let resolved = self
            .directory
            .resolve_channel(channel, self.policy.has_channel_lists())
            .await?;
        self.policy
            .check_channel(channel, &resolved.id, &resolved.name)?;
        Ok(resolved)
    }

    /// `chat.postMessage`.
    pub async fn send_message(&self, new: NewMessage) -> Result<Message, Error> {
        self.policy.check_write("slack_send_message")?;
        self.policy.check_mentions(&new.text, new.blocks.as_ref())?;
        let channel = self.usable_channel(&new.channel).await?;
        let mut params = vec![("channel", channel.id.clone()), ("text", new.text)];
        push_opt(&mut params, "blocks", new.blocks.map(|b| b.to_string()));
        push_opt(&mut params, "thread_ts", new.thread_ts);
        push_opt(
            &mut params,
            "reply_broadcast",
            new.reply_broadcast.map(|b| b.to_string()),
        );
        push_opt(
            &mut params,
            "unfurl_links",
            new.unfurl_links.map(|b| b.to_string()),
        );
        let answer = self
            .api
            .call(Call::write("chat.postMessage", false, &params))
            .await?;
        Ok(self.posted_message(&answer, &channel).await)
    }

    /// `chat.update`.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: String,
        text: String,
        blocks: Option<Value>,
    ) -> Result<Message, Error> {
        self.policy.check_write("slack_update_message")?;
        self.policy.check_mentions(&text, blocks.as_ref())?;
        let channel = self.usable_channel(channel).await?;
        let mut params = vec![("channel", channel.id.clone()), ("ts", ts), ("text", text)];
        push_opt(&mut params, "blocks", blocks.map(|b| b.to_string()));
        let answer = self
            .api
            .call(Call::write("chat.update", true, &params))
            .await?;
        Ok(self.posted_message(&answer, &channel).await)
    }

    /// The message in a `chat.postMessage` / `chat.update` answer.
    async fn posted_message(&self, answer: &Value, channel: &ResolvedChannel) -> Message {
        let empty = Value::Null;
        let mut message = model::message(
            answer.get("message").unwrap_or(&empty),
            &channel.id,
            &channel.name,
        );
        let answered_channel = model::text(answer, "/channel");
        if !answered_channel.is_empty() {
            // A direct message to a user ID lands in a D... conversation.
            message.channel_id = answered_channel;
        }
        let ts = model::text(answer, "/ts");
        if !ts.is_empty() {
            message.time = model::ts_to_rfc3339(&ts);
            message.ts = ts;
        }
        if message.text.is_empty() {
            message.text = model::text(answer, "/text");
        }
        self.directory
            .name_people(std::slice::from_mut(&mut message))
            .await;
        message
    }

    /// `chat.delete`.
    pub async fn delete_message(
        &self,
        channel: &str,
        ts: String,
    ) -> Result<DeleteMessageResponse, Error> {
        self.policy.check_write("slack_delete_message")?;
        let channel = self.usable_channel(channel).await?;
        let params = [("channel", channel.id.clone()), ("ts", ts.clone())];
        self.api
            .call(Call::write("chat.delete", true, &params))
            .await?;
        Ok(DeleteMessageResponse {
            channel_id: channel.id,
            ts,
        })
    }

    /// `reactions.add`; reacting twice is not an error.
    pub async fn add_reaction(
        &self,
        channel: &str,
        ts: String,
        emoji: String,
    ) -> Result<AddReactionResponse, Error> {
        self.policy.check_write("slack_add_reaction")?;
        let channel = self.usable_channel(channel).await?;
        let params = [
            ("channel", channel.id.clone()),
            ("name", emoji.clone()),
            ("timestamp", ts.clone()),
        ];
        let already_reacted = match self
            .api
            .call(Call::write("reactions.add", true, &params))
            .await
        {
            Ok(_) => false,
            Err(e) if e.slack_code() == Some("already_reacted") => true,
            Err(e) => return Err(e),
        };
        Ok(AddReactionResponse {
            channel_id: channel.id,
            ts,
            emoji,
            already_reacted,
        })
    }

    /// `conversations.list`, one page, without the channels the policy hides.
    pub async fn list_channels(
        &self,
        include_private: bool,
        include_archived: bool,
        page: PageRequest,
    ) -> Result<ListChannelsResponse, Error> {
        let types = if include_private {
            "public_channel,private_channel"
        } else {
            "public_channel"
        };
        let mut params = vec![
            ("types", types.to_owned()),
            ("exclude_archived", (!include_archived).to_string()),
            ("limit", page.limit.to_string()),
        ];
        push_cursor(&mut params, page.cursor);
        let answer = self
            .api
            .call(Call::read("conversations.list", &params))
            .await?;
        let mut channels = Vec::new();
        for channel in model::objects(&answer, "/channels").map(model::channel) {
            self.directory.remember_channel(&channel);
            if self
                .policy
                .channel_verdict(&channel.id, &channel.name)
                .is_ok()
            {
                channels.push(channel);
            }
        }
        Ok(ListChannelsResponse {
            channels,
            next_page_token: model::next_cursor(&answer),
        })
    }

    /// `conversations.create`.
    pub async fn create_channel(&self, name: String, is_private: bool) -> Result<Channel, Error> {
        self.policy.check_write("slack_create_channel")?;
        self.policy.check_channel(&name, "", &name)?;
        let params = [("name", name), ("is_private", is_private.to_string())];
        let answer = self
            .api
            .call(Call::write("conversations.create", false, &params))
            .await?;
        let channel = model::channel(answer.get("channel").unwrap_or(&Value::Null));
        self.directory.remember_channel(&channel);
        Ok(channel)
    }

    /// `conversations.history`, one page, authors named.
    pub async fn channel_history(&self, request: HistoryRequest) -> Result<MessagePage, Error> {
        let channel = self.usable_channel(&request.channel).await?;
        let mut params = vec![
            ("channel", channel.id.clone()),
            ("limit", request.page.limit.to_string()),
        ];
        push_opt(&mut params, "oldest", request.oldest);
        push_opt(&mut params, "latest", request.latest);
        push_cursor(&mut params, request.page.cursor);
        let answer = self
            .api
            .call(Call::read("conversations.history", &params))
            .await?;
        Ok(self.message_page(&answer, &channel).await)
    }

    /// `conversations.replies`, one page, authors named.
    pub async fn thread_replies(
        &self,
        channel: &str,
        thread_ts: String,
        page: PageRequest,
    ) -> Result<MessagePage, Error> {
        let channel = self.usable_channel(channel).await?;
        let mut params = vec![
            ("channel", channel.id.clone()),
            ("ts", thread_ts),
            ("limit", page.limit.to_string()),
        ];
        push_cursor(&mut params, page.cursor);
        let answer = self
            .api
            .call(Call::read("conversations.replies", &params))
            .await?;
        Ok(self.message_page(&answer, &channel).await)
    }

    async fn message_page(&self, answer: &Value, channel: &ResolvedChannel) -> MessagePage {
        let mut messages: Vec<Message> = model::objects(answer, "/messages")
            .map(|m| model::message(m, &channel.id, &channel.name))
            .collect();
        self.directory.name_people(&mut messages).await;
        MessagePage {
            messages,
            next_page_token: model::next_cursor(answer),
        }
    }

    /// `users.list`, one page, filtered.
    pub async fn users(
        &self,
        page: PageRequest,
        include_deleted: bool,
        include_bots: bool,
    ) -> Result<GetUsersResponse, Error> {
        let mut params = vec![("limit", page.limit.to_string())];
        push_cursor(&mut params, page.cursor);
        let answer = self.api.call(Call::read("users.list", &params)).await?;
        let mut users = Vec::new();
        for user in model::objects(&answer, "/members").map(model::user) {
            self.directory.remember_user(&user);
            if (include_deleted || !user.deleted) && (include_bots || !user.is_bot) {
                users.push(user);
            }
        }
        Ok(GetUsersResponse {
            users,
            next_page_token: model::next_cursor(&answer),
        })
    }

    /// `users.profile.get` for a user given by ID or name.
    pub async fn user_profile(&self, user: &str) -> Result<UserProfile, Error> {
        let id = self.directory.resolve_user(user).await?;
        let params = [("user", id.clone())];
        let answer = self
            .api
            .call(Call::read("users.profile.get", &params))
            .await?;
        Ok(model::profile(
            &id,
            answer.get("profile").unwrap_or(&Value::Null),
        ))
    }

    /// `search.messages` with the user token, without matches the policy hides.
    pub async fn search(&self, request: SearchRequest) -> Result<SearchMessagesResponse, Error> {
        let mut params = vec![
            ("query", request.query),
            ("count", request.count.to_string()),
            ("page", request.page.to_string()),
        ];
        match request.order {
            SearchOrder::Relevance => params.push(("sort", "score".to_owned())),
            SearchOrder::Newest => {
                params.push(("sort", "timestamp".to_owned()));
                params.push(("sort_dir", "desc".to_owned()));
            }
            SearchOrder::Oldest => {
                params.push(("sort", "timestamp".to_owned()));
                params.push(("sort_dir", "asc".to_owned()));
            }
        }
        let answer = self
            .api
            .call(Call {
                method: "search.messages",
                verb: Verb::Get,
                token: Token::User,
                idempotent: true,
                params: &params,
            })
            .await?;
        let mut matches: Vec<Message> = model::objects(&answer, "/messages/matches")
            .map(|m| {
                model::message(
                    m,
                    &model::text(m, "/channel/id"),
                    &model::text(m, "/channel/name"),
                )
            })
            .filter(|m| {
                self.policy
                    .channel_verdict(&m.channel_id, &m.channel_name)
                    .is_ok()
            })
            .collect();
        if self.api.has_bot_token() {
            self.directory.name_people(&mut matches).await;
        }
        let paging = |field: &str| {
            let n = model::integer(&answer, &format!("/messages/paging/{field}"));
            i32::try_from(n.max(0)).unwrap_or(i32::MAX)
        };
        Ok(SearchMessagesResponse {
            matches,
            total: paging("total"),
            page: paging("page"),
            page_count: paging("pages"),
        })
    }

    /// `auth.test` with the bot token: whether the connector can work.
    pub async fn check_auth(&self) -> Result<String, Error> {
        let answer = self
            .api
            .call(Call {
                method: "auth.test",
                verb: Verb::Get,
                token: Token::Bot,
                idempotent: true,
                params: &[],
            })
            .await?;
        Ok(format!(
            "{} in {}",
            model::text(&answer, "/user"),
            model::text(&answer, "/team")
        ))
    }
}

fn push_opt(params: &mut Vec<(&'static str, String)>, name: &'static str, value: Option<String>) {
    if let Some(value) = value {
        params.push((name, value));
    }
}

fn push_cursor(params: &mut Vec<(&'static str, String)>, cursor: String) {
    if !cursor.is_empty() {
        params.push(("cursor", cursor));
    }
}
