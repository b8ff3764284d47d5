//! Mentions that notify many people at once, found in a message before it is
//! posted (refused unless `SLACK_ALLOW_BROADCAST_MENTIONS=true`).
//!
//! An agent writing to a team's Slack should not page a whole channel, the
//! workspace or a user group because a model wrote `<!channel>`. In mrkdwn
//! (the `text` and every string in `blocks_json`) Slack's special commands
//! start with `<!`: `<!here>`, `<!channel>`, `<!everyone>`, `<!group>`,
//! `<!subteam^ID>`, each also with a `|label`. The only one that notifies
//! nobody is `<!date^...>` (a date shown in the reader's time zone), so that
//! is the one allowed: any other `<!` is refused, whatever follows it, so a
//! form Slack adds later is refused rather than let through. In Block Kit's
//! rich text the same mentions are the elements of type `broadcast` and
//! `usergroup`. A mention of one person (`<@U0123>`, a `user` element) is
//! not a broadcast.
//!
//! Slack also turns a plain `@here`, `@channel`, `@everyone` or `@group` into
//! that mention where it parses text for people (a mrkdwn text object without
//! `verbatim: true`, `parse=full`, `link_names`, a person typing it). The
//! connector sends no `parse` or `link_names`, but rather than depend on where
//! Slack parses, such a word counts as a broadcast wherever it appears: `@`
//! at the start or after a character that is not an ASCII letter or digit
//! (`ops@channel.example` is an address, not a mention), one of the four
//! words in any case, then the end or a character that is not an ASCII letter
//! or digit. Writing the word without its `@` says the same without paging
//! anyone. A literal `<!channel>` can still be shown: Slack reads
//! `&lt;!channel&gt;` as text.

use serde_json::Value;

/// A broadcast mention found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// The mention as written, quoted and cut to a few dozen characters.
    pub mention: String,
    /// Who it notifies.
    pub whom: &'static str,
}

/// At most this many characters of a mention are shown in an error.
const SHOWN_CHARS: usize = 40;

/// The words Slack turns into a broadcast when written after `@`.
const PLAIN_BROADCASTS: [&str; 4] = ["here", "channel", "everyone", "group"];

/// The first broadcast mention in mrkdwn text, if any: a special command
/// other than a date, or a plain `@here`, `@channel`, `@everyone`, `@group`.
pub fn in_text(text: &str) -> Option<Broadcast> {
    let bytes = text.as_bytes();
    for (at, byte) in bytes.iter().enumerate() {
        match byte {
            b'<' if bytes.get(at + 1) == Some(&b'!') => {
                let command = &text[at + 2..];
                if !command.starts_with("date^") {
                    return Some(Broadcast {
                        mention: shown(&text[at..]),
                        whom: whom(command),
                    });
                }
            }
            b'@' if at == 0 || !bytes[at - 1].is_ascii_alphanumeric() => {
                let word = &bytes[at + 1..];
                let plain = PLAIN_BROADCASTS.iter().find(|w| {
                    word.len() >= w.len()
                        && word[..w.len()].eq_ignore_ascii_case(w.as_bytes())
                        && word.get(w.len()).is_none_or(|c| !c.is_ascii_alphanumeric())
                });
                if let Some(plain) = plain {
                    return Some(Broadcast {
                        mention: format!("\"@{plain}\""),
                        whom: whom(plain),
                    });
                }
            }
            _ => {}
        }
    }
    None
}

/// The first broadcast mention anywhere in Block Kit blocks: in any string
/// (mrkdwn text objects can be nested in sections, fields, context and
/// accessories) or as a rich text `broadcast` or `usergroup` element. The
/// walk keeps its own stack, so deep nesting costs memory bounded by the
/// blocks' size, not the thread's stack.
pub fn in_blocks(blocks: &Value) -> Option<Broadcast> {
    let mut stack = vec![blocks];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => {
                if let Some(found) = in_text(s) {
                    return Some(found);
                }
            }
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Object(map) => {
                match map.get("type").and_then(Value::as_str) {
                    Some("broadcast") => {
                        let range = map.get("range").and_then(Value::as_str).unwrap_or("");
                        return Some(Broadcast {
                            mention: shown(&format!("broadcast element, range {range}")),
                            whom: whom(range),
                        });
                    }
                    Some("usergroup") => {
                        return Some(Broadcast {
                            mention: "a usergroup element".to_owned(),
                            whom: "every member of the user group",
                        });
                    }
                    _ => {}
                }
                stack.extend(map.values().rev());
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    None
}

/// Who a special command (what follows `<!`) or a broadcast range notifies.
fn whom(command: &str) -> &'static str {
    let name: String = command
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    match name.as_str() {
        "here" => "every active member of the channel",
        "channel" | "group" => "every member of the channel",
        "everyone" => "every member of the workspace",
        "subteam" => "every member of the user group",
        _ => "possibly many people (a Slack special command)",
    }
}

/// A mention as shown in an error: up to its closing `>`, at most
/// [`SHOWN_CHARS`] characters, quoted with control characters escaped.
fn shown(mention: &str) -> String {
    let end = mention.find('>').map_or(mention.len(), |i| i + 1);
    let cut: String = mention[..end].chars().take(SHOWN_CHARS).collect();
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn special_commands_that_notify_are_found_whatever_their_case_or_label() {
        for (text, whom_) in [
            ("deploy done <!channel>", "every member of the channel"),
            ("<!here|here> look", "every active member of the channel"),
            ("<!EVERYONE>", "every member of the workspace"),
            ("<!group>", "every member of the channel"),
            (
                "ping <!subteam^S0123|@oncall>",
                "every member of the user group",
            ),
            (
                "<!somethingnew>",
                "possibly many people (a Slack special command)",
            ),
            ("<!", "possibly many people (a Slack special command)"),
            (
                "<!date^1392734382^{date}|Feb 18> then <!here>",
                "every active member of the channel",
            ),
        ] {
            let found = in_text(text).unwrap_or_else(|| panic!("{text:?} not found"));
            assert_eq!(found.whom, whom_, "{text:?}");
        }
        let found = in_text("hi <!subteam^S0123|@oncall> there").expect("found");
        assert_eq!(found.mention, "\"<!subteam^S0123|@oncall>\"");
    }

    #[test]
    fn text_without_a_broadcast_passes() {
        for text in [
            "",
            "the channel and here, without an @",
            "ops@channel.example.com and a@here",
            "@channels, @hereafter, @everyones, @groups are other words",
            "@alice and @chan",
            "<@U0123> and <#C0123|general> and <https://example.com|a link>",
            "<!date^1392734382^{date_short}|Feb 18, 2014>",
            "&lt;!channel&gt; shown literally",
            "a < b and c ! d",
        ] {
            assert_eq!(in_text(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_shown_mention_is_cut_and_escaped() {
        let long = format!("<!{}\u{202e}>", "x".repeat(100));
        let found = in_text(&long).expect("found");
        assert!(found.mention.chars().count() <= SHOWN_CHARS + 2);
        let odd = in_text("<!here\u{202e}\n>").expect("found");
        assert!(!odd.mention.contains('\n') && !odd.mention.contains('\u{202e}'));
    }

    #[test]
    fn blocks_are_searched_everywhere_a_string_or_element_can_be() {
        let section = json!([{"type": "section", "fields": [
            {"type": "plain_text", "text": "ok"},
            {"type": "mrkdwn", "text": "oncall: <!subteam^S1>"}
        ]}]);
        assert_eq!(
            in_blocks(&section).map(|b| b.whom),
            Some("every member of the user group")
        );
        let rich = json!([{"type": "rich_text", "elements": [{"type": "rich_text_section",
            "elements": [{"type": "text", "text": "all: "}, {"type": "broadcast", "range": "everyone"}]}]}]);
        assert_eq!(
            in_blocks(&rich).map(|b| b.whom),
            Some("every member of the workspace")
        );
        let group = json!([{"type": "rich_text", "elements": [{"type": "rich_text_section",
            "elements": [{"type": "usergroup", "usergroup_id": "S1"}]}]}]);
        assert!(in_blocks(&group).is_some());
        let person = json!([{"type": "rich_text", "elements": [{"type": "rich_text_section",
            "elements": [{"type": "user", "user_id": "U1"}, {"type": "text", "text": "<@U1>"}]}]}]);
        assert_eq!(in_blocks(&person), None);
    }

    #[test]
    fn deeply_nested_blocks_are_walked_without_recursion() {
        let mut value = Value::String("<!here>".to_owned());
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        assert!(in_blocks(&value).is_some());
        // serde_json's drop recurses: take the nesting apart by hand.
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            if let Value::Array(items) = v {
                stack.extend(items);
            }
        }
    }
}
