//! Who is calling: a [`Principal`], built from a validated token's claims (HTTP)
//! or standing for the local user (stdio), and the gRPC metadata that tells a
//! connector who it is ([`principal_metadata`]). The token itself never leaves
//! the router.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};

/// Metadata key carrying the principal's subject.
pub const SUB_METADATA_KEY: &str = "switchboard-principal-sub";
/// Prefix of the metadata keys carrying forwarded claims.
pub const CLAIM_METADATA_PREFIX: &str = "switchboard-principal-";
/// Metadata key listing forwarded claims left out because they were too large.
pub const OMITTED_METADATA_KEY: &str = "switchboard-principal-omitted";
/// The subject recorded for the local stdio user.
pub const STDIO_SUBJECT: &str = "stdio";

/// How the principal was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The local user who started the router over stdio: trusted like their shell.
    Local,
    /// A bearer token from the configured issuer, validated.
    Token,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// How it was established.
    pub kind: PrincipalKind,
    /// The token's `sub` (or [`STDIO_SUBJECT`]).
    pub sub: String,
    /// Every claim of the token (empty for the local user). Shared: a
    /// principal is cloned into every request it makes.
    pub claims: Arc<Map<String, Value>>,
    /// Granted scopes: `scope` (space-separated) and `scp` (array or space-separated).
    pub scopes: Arc<BTreeSet<String>>,
    /// The SHA-256 of the bearer token it came from (set by the
    /// authenticator): its claims never change, so a policy may remember its
    /// decisions about this principal by it.
    pub token: Option<[u8; 32]>,
}

impl Principal {
    /// The local stdio user.
    pub fn local() -> Self {
        Self {
            kind: PrincipalKind::Local,
            sub: STDIO_SUBJECT.to_owned(),
            claims: Arc::default(),
            scopes: Arc::default(),
            token: None,
        }
    }

    /// A principal from validated claims; `None` without a string `sub`.
    pub fn from_claims(claims: Map<String, Value>) -> Option<Self> {
        let sub = claims.get("sub")?.as_str()?.to_owned();
        let scopes = Arc::new(scopes_of(&claims));
        Some(Self {
            kind: PrincipalKind::Token,
            sub,
            claims: Arc::new(claims),
            scopes,
            token: None,
        })
    }

    /// Whether every scope in `needed` was granted.
    pub fn has_scopes<'a>(&self, needed: impl IntoIterator<Item = &'a String>) -> bool {
        needed.into_iter().all(|s| self.scopes.contains(s))
    }
}

/// The scopes a token grants: `scope` as a space-separated string (RFC 8693 /
/// RFC 9068), `scp` as an array or a space-separated string (Azure AD, Okta).
pub fn scopes_of(claims: &Map<String, Value>) -> BTreeSet<String> {
    let mut scopes = BTreeSet::new();
    for key in ["scope", "scp"] {
        match claims.get(key) {
            Some(Value::String(s)) => {
                scopes.extend(s.split_ascii_whitespace().map(str::to_owned));
            }
            Some(Value::Array(items)) => {
                scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
    }
    scopes
}

/// Encodes a claim value as printable ASCII for gRPC metadata: a string as is,
/// an array of strings as its items joined by `,`, anything else as compact JSON;
/// every byte outside `!`..=`~`, and `%` and `,` inside an item, as `%XX` (UTF-8).
pub fn encode_claim(value: &Value) -> String {
    match value {
        Value::String(s) => percent_encode(s),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => percent_encode(s),
                other => percent_encode(&other.to_string()),
            })
            .collect::<Vec<_>>()
            .join(","),
        other => percent_encode(&other.to_string()),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'%' && b != b',' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The gRPC metadata that tells a connector who calls: `switchboard-principal-sub`
/// always, and `switchboard-principal-<claim>` for each claim in `forward` that the
/// token has. A claim whose encoding exceeds `max_value_bytes` is left out and
/// named in `switchboard-principal-omitted`; a subject that large is cut to
/// `max_value_bytes` (the authenticator rejects such tokens before this point).
/// Claim names are checked at start-up (`AuthConfig::settings`); a name that
/// still is no valid key is skipped.
pub fn principal_metadata(
    principal: &Principal,
    forward: &[String],
    max_value_bytes: usize,
) -> MetadataMap {
    let mut map = MetadataMap::new();
    let mut sub = percent_encode(&principal.sub);
    if sub.len() > max_value_bytes {
        sub.truncate(max_value_bytes);
        // Never end on half an escape.
        if let Some(pos) = sub.rfind('%').filter(|p| sub.len() - p < 3) {
            sub.truncate(pos);
        }
    }
    if let Ok(v) = AsciiMetadataValue::try_from(sub.as_str()) {
        map.insert(SUB_METADATA_KEY, v);
    }
    let mut omitted = Vec::new();
    for claim in forward {
        let Some(value) = principal.claims.get(claim) else {
            continue;
        };
        let encoded = encode_claim(value);
        if encoded.len() > max_value_bytes {
            omitted.push(claim.as_str());
            continue;
        }
        let key = format!("{CLAIM_METADATA_PREFIX}{claim}");
        if let (Ok(key), Ok(value)) = (
            AsciiMetadataKey::from_bytes(key.as_bytes()),
            AsciiMetadataValue::try_from(encoded.as_str()),
        ) {
            map.insert(key, value);
        }
    }
    if !omitted.is_empty()
        && let Ok(v) = AsciiMetadataValue::try_from(omitted.join(",").as_str())
    {
        map.insert(OMITTED_METADATA_KEY, v);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(claims: Value) -> Principal {
        let Value::Object(map) = claims else {
            panic!("claims are an object")
        };
        Principal::from_claims(map).expect("has sub")
    }

    fn get<'a>(map: &'a MetadataMap, key: &str) -> Option<&'a str> {
        map.get(key).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn scopes_come_from_scope_and_scp_in_both_shapes() {
        let p = principal(json!({"sub": "a", "scope": "code:read  db:read", "scp": ["x", 1, "y"]}));
        assert_eq!(
            p.scopes.iter().map(String::as_str).collect::<Vec<_>>(),
            ["code:read", "db:read", "x", "y"]
        );
        let p = principal(json!({"sub": "a", "scp": "one two"}));
        assert!(p.has_scopes(&["one".to_owned(), "two".to_owned()]));
        assert!(!p.has_scopes(&["one".to_owned(), "three".to_owned()]));
        let p = principal(json!({"sub": "a", "scope": 5}));
        assert!(p.scopes.is_empty());
    }

    #[test]
    fn a_token_without_a_string_sub_is_no_principal() {
        let Value::Object(map) = json!({"sub": 5}) else {
            unreachable!()
        };
        assert!(Principal::from_claims(map).is_none());
        let Value::Object(map) = json!({"email": "a@b"}) else {
            unreachable!()
        };
        assert!(Principal::from_claims(map).is_none());
    }

    #[test]
    fn the_local_principal_is_stdio_without_claims() {
        let p = Principal::local();
        assert_eq!(p.kind, PrincipalKind::Local);
        assert_eq!(p.sub, "stdio");
        assert!(p.claims.is_empty());
    }

    #[test]
    fn claims_are_encoded_as_printable_ascii() {
        assert_eq!(
            encode_claim(&json!("alice@example.com")),
            "alice@example.com"
        );
        assert_eq!(encode_claim(&json!("Zoë 100%")), "Zo%C3%AB%20100%25");
        assert_eq!(encode_claim(&json!(["a,b", "c"])), "a%2Cb,c");
        assert_eq!(encode_claim(&json!([1, "x"])), "1,x");
        assert_eq!(encode_claim(&json!(true)), "true");
        assert_eq!(encode_claim(&json!({"k": "v w"})), "{\"k\":\"v%20w\"}");
        assert_eq!(encode_claim(&json!("a\r\nb\u{0}")), "a%0D%0Ab%00");
    }

    #[test]
    fn metadata_carries_sub_and_only_the_forwarded_claims() {
        let p = principal(json!({
            "sub": "user-1", "email": "ana@example.com", "groups": ["analysts", "ops"],
            "secret_claim": "not forwarded"
        }));
        let forward = vec![
            "email".to_owned(),
            "groups".to_owned(),
            "missing".to_owned(),
        ];
        let map = principal_metadata(&p, &forward, 1024);
        assert_eq!(get(&map, SUB_METADATA_KEY), Some("user-1"));
        assert_eq!(
            get(&map, "switchboard-principal-email"),
            Some("ana@example.com")
        );
        assert_eq!(
            get(&map, "switchboard-principal-groups"),
            Some("analysts,ops")
        );
        assert!(map.get("switchboard-principal-secret_claim").is_none());
        assert!(map.get("switchboard-principal-missing").is_none());
        assert!(map.get(OMITTED_METADATA_KEY).is_none());
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn an_oversized_claim_is_omitted_and_named() {
        let p = principal(json!({"sub": "u", "groups": vec!["g".repeat(50); 10], "email": "e"}));
        let forward = vec!["groups".to_owned(), "email".to_owned()];
        let map = principal_metadata(&p, &forward, 100);
        assert!(map.get("switchboard-principal-groups").is_none());
        assert_eq!(get(&map, OMITTED_METADATA_KEY), Some("groups"));
        assert_eq!(get(&map, "switchboard-principal-email"), Some("e"));
        let exact = principal(json!({"sub": "u", "email": "e".repeat(100)}));
        let map = principal_metadata(&exact, &["email".to_owned()], 100);
        assert!(
            map.get("switchboard-principal-email").is_some(),
            "a value of exactly the bound passes"
        );
    }

    #[test]
    fn a_non_ascii_sub_is_encoded_and_bounded() {
        let p = principal(json!({"sub": "ünï"}));
        let map = principal_metadata(&p, &[], 1024);
        assert_eq!(get(&map, SUB_METADATA_KEY), Some("%C3%BCn%C3%AF"));
        let long = principal(json!({"sub": "s".repeat(50)}));
        let map = principal_metadata(&long, &[], 10);
        assert_eq!(get(&map, SUB_METADATA_KEY), Some("ssssssssss"));
        let escaped = principal(json!({"sub": "ab ü"}));
        let map = principal_metadata(&escaped, &[], 7);
        assert_eq!(
            get(&map, SUB_METADATA_KEY),
            Some("ab%20"),
            "cut before a partial escape"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn decode(s: &str) -> Vec<u8> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]

        /// Any string claim becomes a valid metadata value that decodes back to it.
        #[test]
        fn string_claims_encode_to_metadata_and_back(s in any::<String>()) {
            let encoded = encode_claim(&Value::String(s.clone()));
            prop_assert!(encoded.bytes().all(|b| (b'!'..=b'~').contains(&b)));
            prop_assert!(AsciiMetadataValue::try_from(encoded.as_str()).is_ok());
            prop_assert_eq!(decode(&encoded), s.into_bytes());
        }

        /// A list of strings keeps its items apart: splitting on `,` and decoding gives them back.
        #[test]
        fn list_claims_keep_their_items(items in prop::collection::vec(any::<String>(), 1..5)) {
            let encoded = encode_claim(&json!(items));
            let back: Vec<Vec<u8>> = encoded.split(',').map(decode).collect();
            let expected: Vec<Vec<u8>> = items.iter().map(|s| s.clone().into_bytes()).collect();
            prop_assert_eq!(back, expected);
        }

        /// Whatever the claims, the metadata stays within its bound per value.
        #[test]
        fn metadata_values_stay_within_the_bound(sub in any::<String>(), email in any::<String>(), max in 1usize..64) {
            let Value::Object(map) = json!({"sub": sub, "email": email}) else { unreachable!() };
            let p = Principal::from_claims(map).expect("sub");
            let md = principal_metadata(&p, &["email".to_owned()], max);
            for kv in md.iter() {
                if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv
                    && k.as_str() != OMITTED_METADATA_KEY
                {
                    prop_assert!(v.len() <= max, "{} is {} bytes", k, v.len());
                }
            }
            prop_assert!(md.get(SUB_METADATA_KEY).is_some());
        }
    }
}
