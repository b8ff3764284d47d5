//! `--session-key`: the keys that bind a shared session to its principal.
//!
//! Redis keeps, for each session opened with a bearer token, a tag of the
//! token's `sub`: `<key id>.<HMAC-SHA256(key, sub)>` under the newest key,
//! so what Redis holds names no principal and cannot be forged by someone
//! who can write to Redis but does not hold a key. Older keys of the list
//! still open the sessions tagged under them, so keys rotate without cutting
//! sessions off: put the new key first, keep the old one until sessions
//! tagged under it have expired (`session_idle_timeout`), then drop it.
//! Without a key the tag is a plain SHA-256 of `sub` (`sha256.<hex>`).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// One key: 32 bytes.
#[derive(Clone)]
struct Key {
    id: String,
    bytes: [u8; 32],
}

/// The session keys, newest first; redacted in `Debug`.
#[derive(Clone, Default)]
pub struct SessionKeys(Vec<Key>);

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.0.iter().map(|k| k.id.as_str()).collect();
        f.debug_tuple("SessionKeys").field(&ids).finish()
    }
}

/// Parses `--session-key`: 64 hex digits (32 bytes), or a comma-separated
/// list of them, newest first. The error names the setting and the position,
/// never the key.
pub fn parse_session_keys(raw: &str) -> Result<SessionKeys, String> {
    let mut keys = Vec::new();
    for (i, part) in raw.split(',').map(str::trim).enumerate() {
        let bad = || {
            format!(
                "--session-key / SWITCHBOARD_SESSION_KEY: key #{} is not 64 hex digits (32 bytes; generate one with `openssl rand -hex 32`)",
                i + 1
            )
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(part, &mut bytes).map_err(|_| bad())?;
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        keys.push(Key { id, bytes });
    }
    Ok(SessionKeys(keys))
}

impl SessionKeys {
    /// Whether any key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tag of `sub` under the newest key.
    pub fn seal(&self, sub: &str) -> String {
        match self.0.first() {
            Some(key) => format!(
                "{}.{}",
                key.id,
                hex::encode(mac(key, sub).finalize().into_bytes())
            ),
            None => format!("sha256.{}", hex::encode(Sha256::digest(sub.as_bytes()))),
        }
    }

    /// Whether `tag` (as [`Self::seal`] wrote it, under any key of the list)
    /// is the tag of `sub`.
    pub fn opens(&self, tag: &str, sub: &str) -> bool {
        let Some((id, value)) = tag.split_once('.') else {
            return false;
        };
        let Ok(value) = hex::decode(value) else {
            return false;
        };
        if id == "sha256" {
            // No secret in it: a plain comparison reveals nothing.
            return self.is_empty() && value[..] == Sha256::digest(sub.as_bytes())[..];
        }
        self.0
            .iter()
            .filter(|key| key.id == id)
            .any(|key| mac(key, sub).verify_slice(&value).is_ok())
    }
}

/// HMAC-SHA256 of `sub` under `key`, to finalize or to verify a tag against
/// (in constant time: `verify_slice`).
fn mac(key: &Key, sub: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.bytes)
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(sub.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const NEW: &str = "abababababababababababababababababababababababababababababababab";

    #[test]
    fn a_tag_opens_for_its_principal_only() {
        let keys = parse_session_keys(NEW).expect("one key");
        let tag = keys.seal("alice");
        assert!(keys.opens(&tag, "alice"));
        assert!(!keys.opens(&tag, "bob"));
        assert!(!tag.contains("alice"), "{tag}");
    }

    #[test]
    fn a_rotated_key_still_opens_what_the_old_one_sealed() {
        let old = parse_session_keys(OLD).expect("old key");
        let tag = old.seal("alice");
        let rotated = parse_session_keys(&format!("{NEW}, {OLD}")).expect("two keys");
        assert!(rotated.opens(&tag, "alice"), "the old key still opens");
        assert_ne!(rotated.seal("alice"), tag, "new tags use the newest key");
        let dropped = parse_session_keys(NEW).expect("new key alone");
        assert!(!dropped.opens(&tag, "alice"), "a dropped key opens nothing");
    }

    #[test]
    fn without_a_key_tags_are_plain_hashes_and_keyed_tags_do_not_mix() {
        let none = SessionKeys::default();
        let tag = none.seal("alice");
        assert!(tag.starts_with("sha256."));
        assert!(none.opens(&tag, "alice"));
        let keyed = parse_session_keys(NEW).expect("key");
        assert!(
            !keyed.opens(&tag, "alice"),
            "with keys, an unkeyed tag (which anyone could write) opens nothing"
        );
    }

    #[test]
    fn malformed_keys_are_refused_naming_their_position_not_their_value() {
        let error = parse_session_keys(&format!("{NEW},zz{}", &OLD[2..])).expect_err("bad hex");
        assert!(error.contains("key #2"), "{error}");
        assert!(!error.contains("zz"), "{error}");
        assert!(parse_session_keys("abcd").is_err(), "too short");
        assert!(parse_session_keys("").is_err(), "empty");
        assert!(
            parse_session_keys(&"+f".repeat(32)).is_err(),
            "a sign is no hex digit (from_str_radix would take it)"
        );
        assert!(
            parse_session_keys(&format!("{}é", &NEW[..62])).is_err(),
            "not ASCII"
        );
    }
}
