//! The connector's MCP prompts, served as the generic gRPC service
//! `switchboard.mcp.v1.Prompts` (the router offers them as `slack_<name>`):
//!
//! - `summarize_channel`: read a channel (and its threads) and summarise its
//!   decisions, open questions and action items, posting nothing.
//! - `draft_announcement`: draft a message for a channel and post it with
//!   `slack_send_message` only once the user approves it.
//!
//! Completion of the `channel` argument comes from the lazily filled channel
//! name cache only (never a listing started just to complete), filtered by
//! `SLACK_CHANNELS_ALLOW` / `SLACK_CHANNELS_DENY`; `since` completes from a few
//! usual windows. Rendering calls Slack never: the prompt tells the model which
//! tools to call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use connector_kit::Toolset;
use switchboard_proto::mcp::v1 as pb;
use tonic::{Request, Response, Status};

use crate::directory::is_channel_id;
use crate::error::Error;
use crate::model;
use crate::workspace::Workspace;

/// This connector's tools, as its prompt texts and error messages name them.
pub(crate) static TOOLS: std::sync::LazyLock<Toolset> = std::sync::LazyLock::new(|| {
    Toolset::new(
        "slack",
        switchboard_proto::slack::v1::slack_server::SERVICE_NAME,
    )
});

/// Prompt name: summarise a channel.
pub const SUMMARIZE_CHANNEL: &str = "summarize_channel";
/// Prompt name: draft an announcement.
pub const DRAFT_ANNOUNCEMENT: &str = "draft_announcement";

/// At most this many completion values are returned (the router passes 100 on).
const MAX_COMPLETIONS: usize = 100;

/// Usual `since` windows offered by completion.
const SINCE_SUGGESTIONS: [&str; 6] = ["24h", "48h", "7d", "14d", "30d", "1h"];

/// Longest `since` window accepted, in seconds (about ten years).
const MAX_WINDOW_SECS: i64 = 10 * 366 * 86_400;

/// Longest channel argument accepted (Slack names have at most 80 characters).
const MAX_CHANNEL_LEN: usize = 100;

/// Longest topic accepted, in characters.
const MAX_TOPIC_LEN: usize = 4000;

const CHANNEL_HELP: &str =
    "a channel name such as general or #general, or a channel ID such as C0123ABCD";

/// The Prompts service over the connector's workspace.
#[derive(Debug, Clone)]
pub struct SlackPrompts {
    workspace: Arc<Workspace>,
}

impl SlackPrompts {
    /// Prompts rendered with what `workspace` knows (policy, name cache).
    pub fn new(workspace: Arc<Workspace>) -> Self {
        Self { workspace }
    }
}

fn argument(name: &str, title: &str, description: &str, required: bool) -> pb::PromptArgument {
    pb::PromptArgument {
        name: name.to_owned(),
        title: title.to_owned(),
        description: description.to_owned(),
        required,
    }
}

/// The prompts this connector offers, with their arguments.
pub fn catalogue() -> Vec<pb::Prompt> {
    vec![
        pb::Prompt {
            name: SUMMARIZE_CHANNEL.to_owned(),
            title: "Summarise a Slack channel".to_owned(),
            description: "Reads a Slack channel's recent messages and their threads, then \
                summarises the decisions, open questions and action items with who said what. \
                Read-only: nothing is posted."
                .to_owned(),
            arguments: vec![
                argument(
                    "channel",
                    "Channel",
                    "The channel to summarise: a name such as general or #general, or an ID \
                     such as C0123ABCD. The Slack app must be a member of it to read it.",
                    true,
                ),
                argument(
                    "since",
                    "Since",
                    "How far back to read: a duration back from now (90m, 24h, 7d, 2w), a \
                     date (2024-05-01, midnight UTC), a time (2024-05-01T09:00:00+02:00) or \
                     Unix seconds. Default: the latest 200 messages, whatever their age.",
                    false,
                ),
            ],
        },
        pb::Prompt {
            name: DRAFT_ANNOUNCEMENT.to_owned(),
            title: "Draft a Slack announcement".to_owned(),
            description: "Drafts an announcement for a Slack channel in the channel's tone, \
                shows it to the user, and posts it with slack_send_message only after the \
                user approves it (posting needs SLACK_ALLOW_WRITES=true on the connector)."
                .to_owned(),
            arguments: vec![
                argument(
                    "channel",
                    "Channel",
                    "The channel to announce in: a name such as general or #general, or an \
                     ID such as C0123ABCD.",
                    true,
                ),
                argument(
                    "topic",
                    "Topic",
                    "What to announce: the news and every fact that must be in it (dates, \
                     links, owners, who is affected, what they must do).",
                    true,
                ),
            ],
        },
    ]
}

/// A required argument, trimmed; INVALID_ARGUMENT naming it when missing or blank.
fn required<'a>(
    arguments: &'a HashMap<String, String>,
    name: &'static str,
    what: &str,
) -> Result<&'a str, Error> {
    match arguments.get(name).map(|v| v.trim()) {
        Some(value) if !value.is_empty() => Ok(value),
        Some(_) => Err(Error::invalid(name, format!("is empty; pass {what}"))),
        None => Err(Error::invalid(
            name,
            format!("is required and missing; pass {what}"),
        )),
    }
}

/// Checks the shape of a channel argument (not whether it exists: that is the
/// tools' job, and would need Slack).
fn check_channel_shape(channel: &str) -> Result<(), Error> {
    let bare = channel.trim_start_matches('#');
    if bare.is_empty() {
        return Err(Error::invalid(
            "channel",
            format!("is only '#'; pass {CHANNEL_HELP}"),
        ));
    }
    if channel.chars().count() > MAX_CHANNEL_LEN
        || channel
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>|\"'`@,".contains(c))
    {
        return Err(Error::invalid(
            "channel",
            format!("{channel:?} is not a channel; pass {CHANNEL_HELP}"),
        ));
    }
    Ok(())
}

/// Refuses a channel the channel lists exclude, as far as the name cache knows,
/// as a bad `channel` argument: to an MCP client it is an invalid parameter of
/// the prompt (JSON-RPC invalid params), not a failure of the server.
fn check_channel_allowed(workspace: &Workspace, channel: &str) -> Result<(), Error> {
    workspace
        .check_channel_cached(channel)
        .map_err(|refused| Error::invalid("channel", format!("{refused}; pick another channel")))
}

/// How the prompt names the channel to the model: `#name` or the ID.
fn shown_channel(channel: &str) -> String {
    if is_channel_id(channel) {
        channel.to_owned()
    } else {
        format!("#{}", channel.trim_start_matches('#').to_lowercase())
    }
}

/// A JSON string literal of `s`, for tool-call examples in prompt text.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Seconds since the Unix epoch now.
fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

const SINCE_HELP: &str = "pass a duration back from now (90m, 24h, 7d, 2w), a date (2024-05-01), \
    a time (2024-05-01T09:00:00Z or with an offset such as +02:00) or Unix seconds";

/// Parses a `since` argument into Unix seconds, relative to `now`.
pub fn parse_since(since: &str, now: i64) -> Result<i64, Error> {
    let since = since.trim();
    let bad = || Error::invalid("since", format!("{since:?} is not a time; {SINCE_HELP}"));
    let oldest = if let Some(oldest) = parse_duration_ago(since, now) {
        oldest?
    } else if since.chars().all(|c| c.is_ascii_digit() || c == '.') {
        // Unix seconds or a Slack ts; short numbers are durations missing a unit.
        let secs = since.split('.').next().unwrap_or_default();
        if secs.len() < 9 {
            return Err(Error::invalid(
                "since",
                format!("{since:?} has no unit; write e.g. {since}h or {since}d, or {SINCE_HELP}"),
            ));
        }
        secs.parse::<i64>().map_err(|_| bad())?
    } else {
        parse_date_time(since).ok_or_else(bad)?
    };
    if oldest > now {
        return Err(Error::invalid(
            "since",
            format!(
                "{since:?} is in the future ({}); pass a time in the past",
                model::rfc3339(oldest)
            ),
        ));
    }
    Ok(oldest)
}

/// `90m`, `24h`, `7d`, `2w` (also `24 hours`, `7days`...) back from `now`; `None`
/// when `s` is not shaped like a duration.
fn parse_duration_ago(s: &str, now: i64) -> Option<Result<i64, Error>> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    let unit = s[digits.len()..].trim().to_lowercase();
    let seconds = match unit.as_str() {
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        "w" | "wk" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    };
    let window = digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds))
        .filter(|w| *w <= MAX_WINDOW_SECS);
    Some(match window {
        Some(window) => Ok(now - window),
        None => Err(Error::invalid(
            "since",
            format!("{s:?} reaches back more than ten years; pass a shorter window"),
        )),
    })
}

/// Parses `N` digits at the start of `s`.
fn number(s: &str, len: usize) -> Option<i64> {
    let part = s.get(..len)?;
    if part.chars().all(|c| c.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DD[T ]HH:MM[:SS[.frac]][Z|±HH:MM]`
/// (UTC when no offset is given), as Unix seconds.
fn parse_date_time(s: &str) -> Option<i64> {
    let year = number(s, 4)?;
    let month = number(s.get(5..)?, 2)?;
    let day = number(s.get(8..)?, 2)?;
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !(1..=12).contains(&month) {
        return None;
    }
    let days_in_month = model::days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1)
        - model::days_from_civil(year, month, 1);
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    let midnight = model::days_from_civil(year, month, day) * 86_400;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(midnight);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour = number(rest, 2)?;
    let minute = number(rest.get(3..)?, 2)?;
    if rest.get(2..3)? != ":" || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &rest[5..];
    let mut second = 0;
    if let Some(after) = rest.strip_prefix(':') {
        second = number(after, 2)?;
        if second > 60 {
            return None;
        }
        rest = &after[2..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let zone = &rest[1..];
            let (h, m) = match zone.len() {
                5 if zone.get(2..3)? == ":" => (number(zone, 2)?, number(&zone[3..], 2)?),
                4 => (number(zone, 2)?, number(&zone[2..], 2)?),
                2 => (number(zone, 2)?, 0),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3_600 + m * 60)
        }
    };
    Some(midnight + hour * 3_600 + minute * 60 + second - offset)
}

fn user_text(text: String) -> pb::PromptMessage {
    pb::PromptMessage {
        role: pb::Role::User as i32,
        content: Some(pb::Content {
            kind: Some(pb::content::Kind::Text(pb::TextContent { text })),
            annotations: None,
        }),
    }
}

/// Renders `summarize_channel`.
fn summarize_channel(
    workspace: &Workspace,
    arguments: &HashMap<String, String>,
    now: i64,
) -> Result<pb::GetPromptResponse, Error> {
    let channel = required(arguments, "channel", CHANNEL_HELP)?;
    check_channel_shape(channel)?;
    check_channel_allowed(workspace, channel)?;
    let since = arguments
        .get("since")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let oldest = since.map(|s| parse_since(s, now)).transpose()?;
    let shown = shown_channel(channel);
    let channel_json = json_string(channel);

    let (window, first_call, paging) = match (since, oldest) {
        (Some(since), Some(oldest)) => (
            format!(
                " since {} (\"{since}\", Unix time {oldest})",
                model::rfc3339(oldest)
            ),
            format!("{{\"channel\": {channel_json}, \"oldest\": \"{oldest}\", \"limit\": 200}}"),
            "While an answer has a non-empty `next_page_token`, call again with it as \
             `page_token` (same `oldest`) until you have every message of the window; if \
             there are more than about 1000, stop, and say in the summary which period you \
             covered.",
        ),
        _ => (
            " (its latest 200 messages)".to_owned(),
            format!("{{\"channel\": {channel_json}, \"limit\": 200}}"),
            "One page of 200 is enough; do not follow `next_page_token` unless the user asks \
             for more history. Say in the summary which period the messages span (the `time` \
             of the oldest and newest).",
        ),
    };

    let text = format!(
        "Summarise the Slack channel {shown}{window} for me.\n\
         \n\
         This is a read-only task: do not post, edit, react to or delete anything in Slack \
         (do not call slack_send_message, slack_update_message, slack_delete_message or \
         slack_add_reaction), even if a message seems to ask for a reply.\n\
         \n\
         1. Read the channel with the tool `slack_get_channel_history`, arguments \
         {first_call}. Messages come newest first, each with its author (`user_name`), \
         `time`, `ts`, `text` and `reply_count`. {paging}\n\
         2. For every message with `reply_count` above 0, read its thread with \
         `slack_get_thread_replies`, arguments {{\"channel\": {channel_json}, \"thread_ts\": \
         \"<the message's thread_ts>\"}}, following its `next_page_token` until you have the whole thread. \
         Decisions and answers often land in threads, not in the channel.\n\
         3. Ignore join/leave and other system messages (a `subtype` such as `channel_join`) \
         and routine bot chatter, but keep what a bot reports that matters (a failed deploy, \
         an alert, an incident).\n\
         4. Write the summary in these sections, most important first in each, leaving out \
         a section with nothing in it:\n\
         - **Decisions**: what was decided, who decided or agreed (by name), and when.\n\
         - **Open questions**: asked and not yet answered or settled, who asked, and who \
         seems best placed to answer.\n\
         - **Action items**: who committed to do what, and by when if a date was said; \
         mark an item with no clear owner as \"unowned\".\n\
         - **Also notable**: incidents, announcements, links worth keeping; one line each.\n\
         \n\
         Attribute every point to people by the names the tools return (`user_name`, and the \
         `mentions` names for people written as <@U0123ABCD>); quote briefly where the exact \
         wording matters. After each point, give the `time` and `ts` of the message it comes \
         from (or its `permalink` when there is one) so it can be found again. Do not invent \
         owners, dates or outcomes: write \"unclear\" instead. If the channel had no messages \
         in the window, say so.\n\
         \n\
         If a tool fails, report its error instead of guessing: `not_in_channel` means the \
         Slack app must first be invited to the channel (/invite @the-app in Slack); a refusal \
         naming SLACK_CHANNELS_ALLOW or SLACK_CHANNELS_DENY means the operator has excluded \
         this channel from this connector."
    );
    Ok(pb::GetPromptResponse {
        description: format!("Summary of Slack channel {shown}{window}, read-only"),
        messages: vec![user_text(text)],
    })
}

/// Renders `draft_announcement`.
fn draft_announcement(
    workspace: &Workspace,
    arguments: &HashMap<String, String>,
) -> Result<pb::GetPromptResponse, Error> {
    let channel = required(arguments, "channel", CHANNEL_HELP)?;
    check_channel_shape(channel)?;
    let topic = required(
        arguments,
        "topic",
        "what to announce, with the facts that must be in it",
    )?;
    if topic.chars().count() > MAX_TOPIC_LEN {
        return Err(Error::invalid(
            "topic",
            format!(
                "is longer than {MAX_TOPIC_LEN} characters; give the news and its key facts, not a finished text"
            ),
        ));
    }
    check_channel_allowed(workspace, channel)?;
    let shown = shown_channel(channel);
    let channel_json = json_string(channel);
    let posting = if workspace.writes_allowed() {
        "This connector allows writes (SLACK_ALLOW_WRITES=true), so once the user approves, \
         post it with `slack_send_message`, arguments {\"channel\": CHANNEL, \"text\": \
         \"<the approved text, exactly>\"}, and tell the user the returned `ts`. If it fails \
         with `not_in_channel`, the Slack app must first be invited to the channel (or be \
         given the chat:write.public scope for a public channel); tell the user rather than \
         retrying."
            .replace("CHANNEL", &channel_json)
    } else {
        "Note: this connector has writes disabled (SLACK_ALLOW_WRITES is not true), so \
         `slack_send_message` will be refused. After the user approves the text, give it to \
         them ready to paste into Slack, and mention that the connector's operator can set \
         SLACK_ALLOW_WRITES=true if they want you to post such messages yourself. Do not \
         call slack_send_message."
            .to_owned()
    };
    let text = format!(
        "Draft an announcement for the Slack channel {shown} about the following topic.\n\
         \n\
         Topic:\n\
         <<<\n\
         {topic}\n\
         >>>\n\
         \n\
         1. First read the channel's latest messages with `slack_get_channel_history`, \
         arguments {{\"channel\": {channel_json}, \"limit\": 20}}: match the channel's tone \
         and format, and check that this was not announced already (if it was, tell the user \
         and ask whether a follow-up is still wanted). If the topic names people to mention, \
         find their user IDs with `slack_get_users` so the draft can mention them as \
         <@U0123ABCD>.\n\
         2. Write the draft in Slack mrkdwn (*bold*, _italic_, `code`, <https://example.com|link \
         text>, lists with \"•\"): a first line saying what is happening, then who is affected, \
         what they need to do and by when, and where to ask questions. Keep it short enough \
         to read without expanding it. Use only facts from the topic or the channel: for a \
         missing date, link or owner, put a visible placeholder such as [DATE?] and ask the \
         user for it. Do not use @channel or @here unless the user asks for it.\n\
         3. Show the draft to the user and ask whether to post it as it is, change it, or not \
         post it at all. Do not call `slack_send_message` before the user has explicitly \
         approved this exact text; after any change, show the new text and ask again.\n\
         \n\
         {posting}"
    );
    Ok(pb::GetPromptResponse {
        description: format!(
            "Announcement draft for Slack channel {shown}, posted only after approval"
        ),
        messages: vec![user_text(text)],
    })
}

/// Completion values for `argument` of `prompt`; NOT_FOUND for an unknown prompt.
fn complete(
    workspace: &Workspace,
    prompt: &str,
    argument: &str,
    value: &str,
) -> Result<pb::CompleteResponse, Error> {
    if !catalogue().iter().any(|p| p.name == prompt) {
        return Err(Error::NameNotFound {
            what: format!(
                "the slack connector has no prompt {prompt}; it has {SUMMARIZE_CHANNEL} and {DRAFT_ANNOUNCEMENT}"
            ),
        });
    }
    let values: Vec<String> = match argument {
        "channel" => workspace.complete_channel_name(value),
        "since" if prompt == SUMMARIZE_CHANNEL => {
            let typed = value.trim().to_lowercase();
            SINCE_SUGGESTIONS
                .iter()
                .filter(|s| s.starts_with(&typed))
                .map(|s| (*s).to_owned())
                .collect()
        }
        _ => Vec::new(),
    };
    let total = values.len();
    Ok(pb::CompleteResponse {
        values: values.into_iter().take(MAX_COMPLETIONS).collect(),
        total: Some(i32::try_from(total).unwrap_or(i32::MAX)),
        has_more: total > MAX_COMPLETIONS,
    })
}

#[tonic::async_trait]
impl pb::prompts_server::Prompts for SlackPrompts {
    async fn list_prompts(
        &self,
        request: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        if !request.get_ref().cursor.is_empty() {
            return Err(Error::invalid(
                "cursor",
                "the slack connector lists its prompts in one page; pass an empty cursor",
            )
            .into());
        }
        Ok(Response::new(pb::ListPromptsResponse {
            prompts: catalogue(),
            next_cursor: String::new(),
        }))
    }

    async fn get_prompt(
        &self,
        request: Request<pb::GetPromptRequest>,
    ) -> Result<Response<pb::GetPromptResponse>, Status> {
        let names = TOOLS.for_request(request.metadata());
        let request = request.into_inner();
        let rendered = match request.name.as_str() {
            SUMMARIZE_CHANNEL => summarize_channel(&self.workspace, &request.arguments, now_unix()),
            DRAFT_ANNOUNCEMENT => draft_announcement(&self.workspace, &request.arguments),
            other => Err(Error::NameNotFound {
                what: format!(
                    "the slack connector has no prompt {other}; it has {SUMMARIZE_CHANNEL} and {DRAFT_ANNOUNCEMENT}"
                ),
            }),
        };
        match &rendered {
            Ok(_) => tracing::debug!(prompt = %request.name, "prompt rendered"),
            Err(error) => tracing::info!(prompt = %request.name, error = %error, "prompt refused"),
        }
        names.prompt_reply(rendered)
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        let request = request.into_inner();
        match request.r#ref {
            Some(pb::complete_request::Ref::Prompt(prompt)) => Ok(Response::new(complete(
                &self.workspace,
                &prompt,
                &request.argument,
                &request.value,
            )?)),
            Some(pb::complete_request::Ref::ResourceTemplate(template)) => {
                Err(Error::NameNotFound {
                    what: format!(
                        "the slack connector has no resource template {template}; it serves prompts only"
                    ),
                }
                .into())
            }
            None => Err(Error::invalid("ref", "name the prompt whose argument to complete").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_600_000; // 2024-05-01T21:46:40Z

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse_since("24h", NOW).ok(), Some(NOW - 86_400));
        assert_eq!(parse_since("90m", NOW).ok(), Some(NOW - 5_400));
        assert_eq!(parse_since("7d", NOW).ok(), Some(NOW - 7 * 86_400));
        assert_eq!(parse_since("2 weeks", NOW).ok(), Some(NOW - 14 * 86_400));
        assert_eq!(parse_since(" 3 Hours ", NOW).ok(), Some(NOW - 3 * 3_600));
    }

    #[test]
    fn dates_times_and_unix_seconds_are_absolute() {
        assert_eq!(parse_since("2024-05-01", NOW).ok(), Some(1_714_521_600));
        assert_eq!(
            parse_since("2024-05-01T09:30:00Z", NOW).ok(),
            Some(1_714_521_600 + 9 * 3_600 + 1_800)
        );
        assert_eq!(
            parse_since("2024-05-01T09:30+02:00", NOW).ok(),
            Some(1_714_521_600 + 7 * 3_600 + 1_800)
        );
        assert_eq!(
            parse_since("2024-05-01 09:30:15.250-0100", NOW).ok(),
            Some(1_714_521_600 + 10 * 3_600 + 1_815)
        );
        assert_eq!(parse_since("1714521600", NOW).ok(), Some(1_714_521_600));
        assert_eq!(
            parse_since("1714521600.123456", NOW).ok(),
            Some(1_714_521_600)
        );
    }

    #[test]
    fn bad_or_future_times_name_the_argument_and_the_fix() {
        for bad in [
            "yesterday",
            "24",
            "2024-13-01",
            "2024-02-30",
            "2024-05-01T25:00",
            "2024-05-01T09:00+2",
            "5 fortnights",
            "99999999999999999999d",
            "2030-01-01",
        ] {
            let Err(error) = parse_since(bad, NOW) else {
                panic!("{bad:?} was accepted");
            };
            let message = error.to_string();
            assert!(message.starts_with("invalid argument since: "), "{message}");
            assert!(message.contains(bad.trim()), "{message}");
        }
        let Err(error) = parse_since("24", NOW) else {
            panic!("24 was accepted");
        };
        assert!(error.to_string().contains("24h"), "{error}");
    }

    #[test]
    fn leap_days_are_dates() {
        assert!(parse_since("2024-02-29", NOW).is_ok());
        assert!(parse_since("2023-02-29", NOW).is_err());
    }

    #[test]
    fn channel_arguments_are_checked_for_shape_only() {
        assert!(check_channel_shape("general").is_ok());
        assert!(check_channel_shape("#dev-ops_2").is_ok());
        assert!(check_channel_shape("C0123ABCD").is_ok());
        for bad in ["#", "two words", "<#C0123|general>", "@alice"] {
            assert!(check_channel_shape(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(shown_channel("General"), "#general");
        assert_eq!(shown_channel("#ops"), "#ops");
        assert_eq!(shown_channel("C0123ABCD"), "C0123ABCD");
    }

    #[test]
    fn every_argument_is_described() {
        for prompt in catalogue() {
            assert!(prompt.description.len() > 40, "{}", prompt.name);
            for argument in prompt.arguments {
                assert!(
                    argument.description.len() > 30,
                    "{}.{}",
                    prompt.name,
                    argument.name
                );
            }
        }
    }
}
