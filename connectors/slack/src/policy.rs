//! The operator's safety settings: whether writes are allowed, and which channels
//! may be used at all.
//!
//! Channels in `SLACK_CHANNELS_ALLOW` / `SLACK_CHANNELS_DENY` may be given by ID
//! (`C0123ABCD`) or by name (`general`, `#general`); both are compared without
//! case. The deny list wins. An empty allow list allows every channel.

use serde_json::Value;

use crate::error::Error;
use crate::mentions;

/// What the operator allows this connector to do.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow_writes: bool,
    allow_broadcast: bool,
    allow: Vec<String>,
    deny: Vec<String>,
}

/// Why a channel is refused.
pub const NOT_ALLOWED: &str = "it is not in SLACK_CHANNELS_ALLOW";
/// Why a channel is refused.
pub const DENIED: &str = "it is in SLACK_CHANNELS_DENY";

fn normalize(channel: &str) -> String {
    channel.trim().trim_start_matches('#').to_lowercase()
}

impl Policy {
    /// A policy from the configured switches and lists.
    pub fn new(allow_writes: bool, allow: &[String], deny: &[String]) -> Self {
        let list = |l: &[String]| {
            l.iter()
                .map(|c| normalize(c))
                .filter(|c| !c.is_empty())
                .collect()
        };
        Self {
            allow_writes,
            allow_broadcast: false,
            allow: list(allow),
            deny: list(deny),
        }
    }

    /// The same policy, allowing messages with broadcast mentions or not
    /// (`SLACK_ALLOW_BROADCAST_MENTIONS`).
    pub fn with_broadcast_mentions(mut self, allow: bool) -> Self {
        self.allow_broadcast = allow;
        self
    }

    /// Refuses a message whose text or blocks notify many people at once
    /// (see [`mentions`]) unless the operator allows that.
    pub fn check_mentions(&self, text: &str, blocks: Option<&Value>) -> Result<(), Error> {
        if self.allow_broadcast {
            return Ok(());
        }
        let found = mentions::in_text(text).map(|b| ("text", b)).or_else(|| {
            blocks
                .and_then(mentions::in_blocks)
                .map(|b| ("blocks_json", b))
        });
        match found {
            None => Ok(()),
            Some((field, broadcast)) => Err(Error::BroadcastMention {
                field,
                mention: broadcast.mention,
                whom: broadcast.whom,
            }),
        }
    }

    /// Refuses a writing tool unless writes are enabled.
    pub fn check_write(&self, tool: &'static str) -> Result<(), Error> {
        if self.allow_writes {
            Ok(())
        } else {
            Err(Error::WritesDisabled { tool })
        }
    }

    /// Whether the operator enabled the writing tools (SLACK_ALLOW_WRITES).
    pub fn allows_writes(&self) -> bool {
        self.allow_writes
    }

    /// Whether messages may notify many people at once
    /// (SLACK_ALLOW_BROADCAST_MENTIONS).
    pub fn allows_broadcast_mentions(&self) -> bool {
        self.allow_broadcast
    }

    /// Whether any channel list is configured (so channel names matter).
    pub fn has_channel_lists(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }

    /// Whether the channel with this ID and name (empty when unknown) may be used;
    /// the reason when not.
    pub fn channel_verdict(&self, id: &str, name: &str) -> Result<(), &'static str> {
        let keys: Vec<String> = [id, name]
            .iter()
            .map(|k| normalize(k))
            .filter(|k| !k.is_empty())
            .collect();
        if keys.iter().any(|k| self.deny.contains(k)) {
            return Err(DENIED);
        }
        if !self.allow.is_empty() && !keys.iter().any(|k| self.allow.contains(k)) {
            return Err(NOT_ALLOWED);
        }
        Ok(())
    }

    /// Refuses a channel the lists exclude; `shown` is how the caller named it.
    pub fn check_channel(&self, shown: &str, id: &str, name: &str) -> Result<(), Error> {
        self.channel_verdict(id, name)
            .map_err(|reason| Error::ChannelRefused {
                channel: shown.to_owned(),
                reason,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(allow: &[&str], deny: &[&str]) -> Policy {
        let own = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Policy::new(false, &own(allow), &own(deny))
    }

    #[test]
    fn empty_lists_allow_every_channel() {
        assert_eq!(lists(&[], &[]).channel_verdict("C1", "general"), Ok(()));
    }

    #[test]
    fn channels_match_by_id_or_name_with_or_without_hash() {
        let policy = lists(&["#General", "C0002"], &[]);
        assert_eq!(policy.channel_verdict("C0001", "general"), Ok(()));
        assert_eq!(policy.channel_verdict("C0002", ""), Ok(()));
        assert_eq!(policy.channel_verdict("C0003", "random"), Err(NOT_ALLOWED));
    }

    #[test]
    fn deny_wins_over_allow() {
        let policy = lists(&["general"], &["c0001"]);
        assert_eq!(policy.channel_verdict("C0001", "general"), Err(DENIED));
    }

    #[test]
    fn broadcast_mentions_are_refused_unless_allowed() {
        let policy = Policy::new(true, &[], &[]);
        let err = policy
            .check_mentions("release is out <!here>", None)
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("text"), "{message}");
        assert!(message.contains("\"<!here>\""), "{message}");
        assert!(
            message.contains("SLACK_ALLOW_BROADCAST_MENTIONS=true"),
            "{message}"
        );
        let blocks = serde_json::json!([{"type": "section", "text": {"type": "mrkdwn", "text": "<!channel>"}}]);
        let err = policy
            .check_mentions("fallback", Some(&blocks))
            .unwrap_err();
        assert!(err.to_string().contains("blocks_json"), "{err}");
        assert!(policy.check_mentions("hi <@U0123>", None).is_ok());
        let allowing = policy.with_broadcast_mentions(true);
        assert!(allowing.check_mentions("<!here>", Some(&blocks)).is_ok());
    }

    #[test]
    fn writes_are_refused_unless_enabled() {
        let err = lists(&[], &[])
            .check_write("slack_send_message")
            .unwrap_err();
        assert!(err.to_string().contains("SLACK_ALLOW_WRITES=true"), "{err}");
        assert!(
            Policy::new(true, &[], &[])
                .check_write("slack_send_message")
                .is_ok()
        );
    }
}
