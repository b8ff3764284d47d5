//! Reading Slack's JSON answers into the connector's messages.
//!
//! Slack's objects carry many optional fields whose presence varies by token,
//! scope and workspace plan, so reading is lenient: a missing or oddly typed field
//! becomes its empty value instead of failing the whole call. Only the
//! identifiers a tool cannot do without are checked by the callers.

use serde_json::Value;
use switchboard_proto::slack::v1::{Channel, Message, Reaction, User, UserProfile};

/// A string field (numbers are turned into text); empty when absent.
pub fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A boolean field; false when absent.
pub fn flag(value: &Value, pointer: &str) -> bool {
    value
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// An integer field (fractions truncated, clamped to `i64`); 0 when absent.
pub fn integer(value: &Value, pointer: &str) -> i64 {
    match value.pointer(pointer) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn int32(value: &Value, pointer: &str) -> i32 {
    i32::try_from(integer(value, pointer).max(0)).unwrap_or(i32::MAX)
}

/// The objects of an array field; empty when absent.
pub fn objects<'a>(value: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.is_object())
}

/// `response_metadata.next_cursor`: empty on the last page.
pub fn next_cursor(answer: &Value) -> String {
    text(answer, "/response_metadata/next_cursor")
}

/// A channel object (`conversations.list`, `conversations.create`, ...).
pub fn channel(value: &Value) -> Channel {
    Channel {
        id: text(value, "/id"),
        name: text(value, "/name"),
        is_private: flag(value, "/is_private") || flag(value, "/is_group"),
        is_archived: flag(value, "/is_archived"),
        is_member: flag(value, "/is_member"),
        num_members: int32(value, "/num_members"),
        topic: text(value, "/topic/value"),
        purpose: text(value, "/purpose/value"),
        created: rfc3339(integer(value, "/created")),
    }
}

/// A user object (`users.list`, `users.info`).
pub fn user(value: &Value) -> User {
    User {
        id: text(value, "/id"),
        name: text(value, "/name"),
        real_name: non_empty(text(value, "/profile/real_name"), || {
            text(value, "/real_name")
        }),
        display_name: text(value, "/profile/display_name"),
        is_bot: flag(value, "/is_bot") || text(value, "/id") == "USLACKBOT",
        deleted: flag(value, "/deleted"),
        is_admin: flag(value, "/is_admin"),
        time_zone: text(value, "/tz"),
        title: text(value, "/profile/title"),
        email: text(value, "/profile/email"),
    }
}

/// The name Slack shows for a user: display name, else real name, else handle.
pub fn shown_name(user: &User) -> String {
    [&user.display_name, &user.real_name, &user.name]
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .cloned()
        .unwrap_or_default()
}

/// A profile object (`users.profile.get`).
pub fn profile(user_id: &str, value: &Value) -> UserProfile {
    UserProfile {
        user_id: user_id.to_owned(),
        real_name: text(value, "/real_name"),
        display_name: text(value, "/display_name"),
        title: text(value, "/title"),
        email: text(value, "/email"),
        phone: text(value, "/phone"),
        status_text: text(value, "/status_text"),
        status_emoji: text(value, "/status_emoji"),
        pronouns: text(value, "/pronouns"),
    }
}

/// A message object, in channel `channel_id`. The author's name is filled in
/// later from the user directory; bot messages carry their own name.
pub fn message(value: &Value, channel_id: &str, channel_name: &str) -> Message {
    let ts = text(value, "/ts");
    let bot_name = non_empty(text(value, "/username"), || {
        text(value, "/bot_profile/name")
    });
    Message {
        time: ts_to_rfc3339(&ts),
        ts,
        channel_id: channel_id.to_owned(),
        channel_name: channel_name.to_owned(),
        user_id: text(value, "/user"),
        user_name: bot_name,
        text: text(value, "/text"),
        thread_ts: text(value, "/thread_ts"),
        reply_count: int32(value, "/reply_count"),
        subtype: text(value, "/subtype"),
        reactions: objects(value, "/reactions")
            .map(|r| Reaction {
                name: text(r, "/name"),
                count: int32(r, "/count"),
            })
            .collect(),
        permalink: text(value, "/permalink"),
        mentions: Vec::new(),
    }
}

/// The user IDs mentioned in mrkdwn text (`<@U0123ABCD>` or
/// `<@U0123ABCD|name>`), each once, in order of first mention.
pub fn mentioned_user_ids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let end = rest.find(['>', '|']).unwrap_or(rest.len());
        let id = &rest[..end];
        if crate::directory::is_user_id(id) && !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
        rest = &rest[end..];
    }
    ids
}

fn non_empty(first: String, otherwise: impl FnOnce() -> String) -> String {
    if first.trim().is_empty() {
        otherwise()
    } else {
        first
    }
}

/// A Slack `ts` (`1712345678.123456`) as RFC 3339 UTC with microseconds; empty
/// when it is not a timestamp.
pub fn ts_to_rfc3339(ts: &str) -> String {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let Ok(secs) = secs.parse::<i64>() else {
        return String::new();
    };
    let base = rfc3339(secs);
    if base.is_empty() || frac.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
        return base;
    }
    let micros: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    format!("{}.{micros}Z", base.trim_end_matches('Z'))
}

/// Unix seconds as RFC 3339 UTC (`2024-04-05T19:34:38Z`); empty for 0 or
/// negative values, which Slack uses for "unknown".
pub fn rfc3339(unix: i64) -> String {
    if unix <= 0 {
        return String::new();
    }
    let days = unix.div_euclid(86_400);
    let rem = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A proleptic Gregorian date to days since 1970-01-01 (H. Hinnant's algorithm);
/// the inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_and_days_convert_both_ways() {
        for days in [-1, 0, 59, 60, 11_016, 19_844, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2024, 5, 1) * 86_400, 1_714_521_600);
    }

    #[test]
    fn timestamps_become_rfc3339() {
        assert_eq!(rfc3339(0), "");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_503_435_956), "2017-08-22T21:05:56Z");
        assert_eq!(
            ts_to_rfc3339("1503435956.000247"),
            "2017-08-22T21:05:56.000247Z"
        );
        assert_eq!(ts_to_rfc3339("1503435956"), "2017-08-22T21:05:56Z");
        assert_eq!(ts_to_rfc3339("soon"), "");
    }

    #[test]
    fn messages_read_leniently() {
        let m = message(
            &json!({"ts": "1503435956.000247", "user": "U1", "text": "hi", "reply_count": 2.0,
                    "reactions": [{"name": "eyes", "count": 3}, "junk"], "thread_ts": 5}),
            "C1",
            "general",
        );
        assert_eq!(m.user_id, "U1");
        assert_eq!(m.reply_count, 2);
        assert_eq!(m.thread_ts, "5");
        assert_eq!(m.reactions.len(), 1);
        assert_eq!(m.reactions[0].count, 3);
        assert_eq!(m.channel_name, "general");
    }

    #[test]
    fn mentions_are_found_once_each_in_order() {
        assert_eq!(
            mentioned_user_ids(
                "<@U0B2> and <@W0A1|egon>, again <@U0B2>; not <#C0C1|general> or <@here"
            ),
            ["U0B2", "W0A1"]
        );
        assert!(mentioned_user_ids("no one").is_empty());
    }

    #[test]
    fn bot_messages_carry_the_bot_name() {
        let m = message(
            &json!({"ts": "1.0", "bot_id": "B1", "bot_profile": {"name": "deploy-bot"}}),
            "C1",
            "",
        );
        assert_eq!(m.user_name, "deploy-bot");
    }

    #[test]
    fn shown_name_prefers_the_display_name() {
        let u = user(
            &json!({"id": "U1", "name": "egon", "profile": {"real_name": "Egon Spengler", "display_name": ""}}),
        );
        assert_eq!(shown_name(&u), "Egon Spengler");
        let u = user(&json!({"id": "U1", "name": "egon", "profile": {"display_name": "spengler"}}));
        assert_eq!(shown_name(&u), "spengler");
    }
}
