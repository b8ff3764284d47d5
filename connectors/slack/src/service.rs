//! The `switchboard.slack.v1.Slack` gRPC service: checks each request's
//! arguments, hands them to the [`Workspace`], and returns its answer.
//!
//! Argument errors name the field and say what is expected, since the caller is
//! usually a model that can correct itself. Nothing here speaks HTTP.

use std::future::Future;
use std::sync::Arc;

use connector_kit::ToolNames;
use switchboard_proto::slack::v1::slack_server::Slack;
use switchboard_proto::slack::v1::{
    AddReactionRequest, AddReactionResponse, Channel, CreateChannelRequest, DeleteMessageRequest,
    DeleteMessageResponse, GetChannelHistoryRequest, GetThreadRepliesRequest,
    GetUserProfileRequest, GetUsersRequest, GetUsersResponse, ListChannelsRequest,
    ListChannelsResponse, Message, MessagePage, SearchMessagesRequest, SearchMessagesResponse,
    SearchSort, SendMessageRequest, UpdateMessageRequest, UserProfile,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::error::Error;
use crate::prompts::TOOLS;
use crate::workspace::{
    HistoryRequest, NewMessage, PageRequest, SearchOrder, SearchRequest, Workspace,
};

/// Slack's limit on message text.
const MAX_TEXT_CHARS: usize = 40_000;

/// Runs one tool's work in a span and logs its outcome and duration.
/// Errors name tools as the router names them (see [`crate::prompts::TOOLS`]).
async fn traced<T>(
    tools: &ToolNames<'_>,
    tool: &'static str,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<Response<T>, Status> {
    let started = std::time::Instant::now();
    let result = work
        .instrument(tracing::info_span!("slack_tool", connector = "slack", tool))
        .await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &result {
        Ok(_) => tracing::info!(tool, elapsed_ms, "tool call succeeded"),
        Err(error) => tracing::warn!(tool, elapsed_ms, error = %error, "tool call failed"),
    }
    result
        .map(Response::new)
        .map_err(|error| tools.apply_to_status(error.into()))
}

/// The gRPC face of the Slack workspace.
#[derive(Debug, Clone)]
pub struct SlackService {
    workspace: Arc<Workspace>,
}

impl SlackService {
    /// A service over `workspace`.
    pub fn new(workspace: Arc<Workspace>) -> Self {
        Self { workspace }
    }
}

/// A required text field, trimmed.
fn required(field: &'static str, value: &str, expected: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        Err(Error::invalid(field, format!("required: {expected}")))
    } else {
        Ok(value.to_owned())
    }
}

fn channel_arg(field: &'static str, value: &str) -> Result<String, Error> {
    required(
        field,
        value,
        "a channel ID such as C0123ABCD or a name such as #general",
    )
}

/// Whether `ts` looks like a Slack timestamp: digits, optionally `.` and digits.
fn is_ts(ts: &str) -> bool {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    !secs.is_empty()
        && !frac.is_empty()
        && secs.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
}

fn ts_arg(field: &'static str, value: &str) -> Result<String, Error> {
    let ts = required(field, value, "a message ts such as 1712345678.123456")?;
    if is_ts(&ts) {
        Ok(ts)
    } else {
        Err(Error::invalid(
            field,
            format!("{ts:?} is not a Slack ts; expected digits such as 1712345678.123456"),
        ))
    }
}

fn optional_ts(field: &'static str, value: Option<String>) -> Result<Option<String>, Error> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(ts) if is_ts(ts) => Ok(Some(ts.to_owned())),
        Some(ts) => Err(Error::invalid(
            field,
            format!("{ts:?} is not a time; expected a ts or Unix seconds such as 1712345678"),
        )),
    }
}

fn text_arg(text: &str, has_blocks: bool) -> Result<String, Error> {
    if text.trim().is_empty() && !has_blocks {
        return Err(Error::invalid(
            "text",
            "required: the message text in Slack mrkdwn",
        ));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(Error::invalid(
            "text",
            format!(
                "{chars} characters is over Slack's limit of {MAX_TEXT_CHARS}; split the message"
            ),
        ));
    }
    Ok(text.to_owned())
}

/// Block Kit JSON: must be a JSON array; the parsed array (checked for
/// broadcast mentions, then sent as compact JSON).
fn blocks_arg(blocks: Option<String>) -> Result<Option<serde_json::Value>, Error> {
    let Some(raw) = blocks.filter(|b| !b.trim().is_empty()) else {
        return Ok(None);
    };
    match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(value @ serde_json::Value::Array(_)) => Ok(Some(value)),
        Ok(_) => Err(Error::invalid(
            "blocks_json",
            "expected a JSON array of Block Kit blocks, e.g. [{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":\"hi\"}}]",
        )),
        Err(e) => Err(Error::invalid(
            "blocks_json",
            format!("not valid JSON: {e}"),
        )),
    }
}

fn limit_arg(
    field: &'static str,
    value: Option<i32>,
    default: u32,
    max: u32,
) -> Result<u32, Error> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n.unsigned_abs() <= max => Ok(n.unsigned_abs()),
        Some(n) => Err(Error::invalid(
            field,
            format!("{n} is out of range; expected 1 to {max}"),
        )),
    }
}

fn page(limit: u32, token: Option<String>) -> PageRequest {
    PageRequest {
        limit,
        cursor: token.map(|t| t.trim().to_owned()).unwrap_or_default(),
    }
}

fn channel_name_arg(name: &str) -> Result<String, Error> {
    let name = required("name", name, "a channel name such as incident-2024-05-01")?;
    let name = name.trim_start_matches('#').to_owned();
    let valid = !name.is_empty()
        && name.chars().count() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "{name:?} is not a valid channel name; use at most 80 lowercase letters, digits, hyphens and underscores, e.g. {:?}",
                suggest_channel_name(&name)
            ),
        ))
    }
}

fn suggest_channel_name(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').chars().take(80).collect()
}

fn emoji_arg(emoji: &str) -> Result<String, Error> {
    let name = emoji.trim().trim_matches(':').to_owned();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(Error::invalid(
            "emoji",
            format!("{emoji:?} is not an emoji name; expected e.g. thumbsup or :eyes:"),
        ));
    }
    Ok(name)
}

#[tonic::async_trait]
impl Slack for SlackService {
    async fn send_message(
        &self,
        request: Request<SendMessageRequest>,
    ) -> Result<Response<Message>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let blocks = blocks_arg(r.blocks_json)?;
        let new = NewMessage {
            channel: channel_arg("channel", &r.channel)?,
            text: text_arg(&r.text, blocks.is_some())?,
            blocks,
            thread_ts: optional_ts("thread_ts", r.thread_ts)?,
            reply_broadcast: r.reply_broadcast,
            unfurl_links: r.unfurl_links,
        };
        traced(&tools, "send_message", self.workspace.send_message(new)).await
    }

    async fn update_message(
        &self,
        request: Request<UpdateMessageRequest>,
    ) -> Result<Response<Message>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let channel = channel_arg("channel", &r.channel)?;
        let ts = ts_arg("ts", &r.ts)?;
        let blocks = blocks_arg(r.blocks_json)?;
        let text = text_arg(&r.text, blocks.is_some())?;
        traced(
            &tools,
            "update_message",
            self.workspace.update_message(&channel, ts, text, blocks),
        )
        .await
    }

    async fn delete_message(
        &self,
        request: Request<DeleteMessageRequest>,
    ) -> Result<Response<DeleteMessageResponse>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let channel = channel_arg("channel", &r.channel)?;
        let ts = ts_arg("ts", &r.ts)?;
        traced(
            &tools,
            "delete_message",
            self.workspace.delete_message(&channel, ts),
        )
        .await
    }

    async fn add_reaction(
        &self,
        request: Request<AddReactionRequest>,
    ) -> Result<Response<AddReactionResponse>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let channel = channel_arg("channel", &r.channel)?;
        let ts = ts_arg("ts", &r.ts)?;
        let emoji = emoji_arg(&r.emoji)?;
        traced(
            &tools,
            "add_reaction",
            self.workspace.add_reaction(&channel, ts, emoji),
        )
        .await
    }

    async fn list_channels(
        &self,
        request: Request<ListChannelsRequest>,
    ) -> Result<Response<ListChannelsResponse>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let limit = limit_arg("limit", r.limit, 200, 1000)?;
        let listing = self.workspace.list_channels(
            r.include_private.unwrap_or(false),
            r.include_archived.unwrap_or(false),
            page(limit, r.page_token),
        );
        traced(&tools, "list_channels", listing).await
    }

    async fn create_channel(
        &self,
        request: Request<CreateChannelRequest>,
    ) -> Result<Response<Channel>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let name = channel_name_arg(&r.name)?;
        let creation = self
            .workspace
            .create_channel(name, r.is_private.unwrap_or(false));
        traced(&tools, "create_channel", creation).await
    }

    async fn get_channel_history(
        &self,
        request: Request<GetChannelHistoryRequest>,
    ) -> Result<Response<MessagePage>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let history = HistoryRequest {
            channel: channel_arg("channel", &r.channel)?,
            oldest: optional_ts("oldest", r.oldest)?,
            latest: optional_ts("latest", r.latest)?,
            page: page(limit_arg("limit", r.limit, 50, 1000)?, r.page_token),
        };
        traced(
            &tools,
            "get_channel_history",
            self.workspace.channel_history(history),
        )
        .await
    }

    async fn get_thread_replies(
        &self,
        request: Request<GetThreadRepliesRequest>,
    ) -> Result<Response<MessagePage>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let channel = channel_arg("channel", &r.channel)?;
        let thread_ts = ts_arg("thread_ts", &r.thread_ts)?;
        let page = page(limit_arg("limit", r.limit, 100, 1000)?, r.page_token);
        traced(
            &tools,
            "get_thread_replies",
            self.workspace.thread_replies(&channel, thread_ts, page),
        )
        .await
    }

    async fn get_users(
        &self,
        request: Request<GetUsersRequest>,
    ) -> Result<Response<GetUsersResponse>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let page = page(limit_arg("limit", r.limit, 200, 1000)?, r.page_token);
        let listing = self.workspace.users(
            page,
            r.include_deleted.unwrap_or(false),
            r.include_bots.unwrap_or(false),
        );
        traced(&tools, "get_users", listing).await
    }

    async fn get_user_profile(
        &self,
        request: Request<GetUserProfileRequest>,
    ) -> Result<Response<UserProfile>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let user = required(
            "user",
            &r.user,
            "a user ID such as U0123ABCD, a handle such as @alice, a name or an email",
        )?;
        traced(
            &tools,
            "get_user_profile",
            self.workspace.user_profile(&user),
        )
        .await
    }

    async fn search_messages(
        &self,
        request: Request<SearchMessagesRequest>,
    ) -> Result<Response<SearchMessagesResponse>, Status> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let order = match r.sort.map(SearchSort::try_from) {
            None | Some(Ok(SearchSort::Unspecified | SearchSort::Relevance)) => {
                SearchOrder::Relevance
            }
            Some(Ok(SearchSort::Newest)) => SearchOrder::Newest,
            Some(Ok(SearchSort::Oldest)) => SearchOrder::Oldest,
            Some(Err(_)) => {
                return Err(Error::invalid(
                    "sort",
                    "expected SEARCH_SORT_RELEVANCE, SEARCH_SORT_NEWEST or SEARCH_SORT_OLDEST",
                )
                .into());
            }
        };
        let search = SearchRequest {
            query: required(
                "query",
                &r.query,
                "a Slack search query such as \"deploy in:#ops\"",
            )?,
            count: limit_arg("count", r.count, 20, 100)?,
            page: limit_arg("page", r.page, 1, 100)?,
            order,
        };
        traced(&tools, "search_messages", self.workspace.search(search)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_must_be_digits_with_an_optional_fraction() {
        assert!(is_ts("1712345678.123456"));
        assert!(is_ts("1712345678"));
        assert!(!is_ts("1712345678."));
        assert!(!is_ts("yesterday"));
        let err = ts_arg("ts", "p1712345678123456").unwrap_err();
        assert!(err.to_string().contains("invalid argument ts"), "{err}");
    }

    #[test]
    fn blocks_must_be_a_json_array() {
        assert_eq!(
            blocks_arg(Some(" [ {\"type\": \"divider\"} ] ".to_owned()))
                .unwrap()
                .map(|b| b.to_string()),
            Some("[{\"type\":\"divider\"}]".to_owned())
        );
        assert!(blocks_arg(Some("{\"type\":\"divider\"}".to_owned())).is_err());
        assert!(blocks_arg(Some("[".to_owned())).is_err());
        assert_eq!(blocks_arg(None).unwrap(), None);
    }

    #[test]
    fn channel_names_are_checked_with_a_suggestion() {
        assert_eq!(channel_name_arg("#incident-42").unwrap(), "incident-42");
        let err = channel_name_arg("Incident 42!").unwrap_err().to_string();
        assert!(err.contains("\"incident-42\""), "{err}");
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        assert_eq!(limit_arg("limit", None, 50, 1000).unwrap(), 50);
        assert_eq!(limit_arg("limit", Some(1000), 50, 1000).unwrap(), 1000);
        assert!(limit_arg("limit", Some(0), 50, 1000).is_err());
        assert!(limit_arg("limit", Some(1001), 50, 1000).is_err());
    }

    #[test]
    fn text_is_required_unless_blocks_are_given() {
        assert!(text_arg("  ", false).is_err());
        assert!(text_arg("", true).is_ok());
        assert!(text_arg(&"x".repeat(MAX_TEXT_CHARS + 1), false).is_err());
    }

    #[test]
    fn emoji_names_lose_their_colons() {
        assert_eq!(emoji_arg(":eyes:").unwrap(), "eyes");
        assert!(emoji_arg("thumbs up").is_err());
    }
}
