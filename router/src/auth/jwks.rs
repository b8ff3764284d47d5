//! The issuer's signing keys: discovery of `jwks_uri` from the issuer's metadata
//! (OIDC discovery, then RFC 8414), and a [`KeySource`] that keeps the JWKS.
//!
//! The key set is replaced as a whole on every fetch (a key the issuer dropped
//! stops verifying at once), so it is one `Arc` swapped under a lock rather than
//! a per-key cache. A token with an unknown `kid` triggers a refetch, at most
//! once per `jwks_min_refetch` whatever the number of such tokens (one fetch in
//! flight, the others wait for it); a background task refreshes the set every
//! `jwks_refresh`. Every fetch is bounded: timeout, no redirects, document size,
//! number of keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde_json::Value;
use tokio::sync::Mutex;

use super::config::{AuthConfigError, AuthSettings, secure_url};

/// The signature algorithms accepted, whatever the issuer offers. Never `none`,
/// never HS* (a shared secret has no place in a public key set).
pub const ALLOWED_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// Why the issuer's metadata or keys could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Network failure or timeout.
    #[error("cannot fetch {url}: {reason}")]
    Http {
        /// What was fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// A non-2xx answer.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// The status.
        status: u16,
    },
    /// A document larger than `max_jwks_bytes`.
    #[error("{url} sent more than {limit} bytes (auth setting `max_jwks_bytes`)")]
    TooLarge {
        /// What was fetched.
        url: String,
        /// The bound.
        limit: usize,
    },
    /// Not JSON, or not the expected shape.
    #[error("{url} did not send a valid document: {reason}")]
    Invalid {
        /// What was fetched.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Why authentication could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Neither metadata document could be fetched.
    #[error(
        "cannot read the metadata of issuer {issuer} (tried /.well-known/openid-configuration and /.well-known/oauth-authorization-server): {reason}"
    )]
    NoMetadata {
        /// The issuer.
        issuer: String,
        /// The last failure.
        reason: String,
    },
    /// The metadata names another issuer (RFC 8414 §3.3).
    #[error("the metadata at {url} names issuer {found:?}, not the configured {expected:?}")]
    IssuerMismatch {
        /// Where the metadata was.
        url: String,
        /// The configured issuer.
        expected: String,
        /// The metadata's `issuer`.
        found: String,
    },
    /// The metadata has no usable `jwks_uri`.
    #[error("the metadata of issuer {issuer} has no `jwks_uri`")]
    NoJwksUri {
        /// The issuer.
        issuer: String,
    },
    /// `jwks_uri` is not https off loopback.
    #[error(transparent)]
    InsecureJwksUri(#[from] AuthConfigError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the issuer: {0}")]
    Client(String),
    /// The first JWKS fetch failed.
    #[error(transparent)]
    Keys(#[from] FetchError),
}

/// A verification key from the JWKS and the algorithms it may verify.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    pub(crate) key: DecodingKey,
    pub(crate) algorithms: Vec<Algorithm>,
}

/// One fetched JWKS.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, VerificationKey>,
    /// Keys without a `kid`: used only when the token has none either and this is the only key.
    without_kid: Vec<VerificationKey>,
}

/// Why no key verifies a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyLookupError {
    /// No key with this `kid`, even after a refetch (or a refetch was too recent).
    Unknown,
    /// No `kid` in the token and not exactly one key without `kid`.
    NoKid,
}

/// The issuer's keys, fetched and kept current.
pub struct KeySource {
    client: reqwest::Client,
    jwks_uri: Url,
    max_bytes: usize,
    max_keys: usize,
    min_refetch: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// When the last fetch started; held while fetching, so one fetch runs at a time.
    last_fetch: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    /// Bumped each time a fetched key set replaces the previous one.
    generation: AtomicU64,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySource")
            .field("jwks_uri", &self.jwks_uri.as_str())
            .field("fetches", &self.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The HTTP client for the issuer: bounded in time, no redirects (a redirect
/// could lead off https).
pub(crate) fn http_client(settings: &AuthSettings) -> Result<reqwest::Client, DiscoveryError> {
    reqwest::Client::builder()
        .timeout(settings.fetch_timeout)
        .connect_timeout(settings.fetch_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DiscoveryError::Client(e.to_string()))
}

/// GETs `url` and parses it as JSON, reading at most `max_bytes`.
pub(crate) async fn fetch_json(
    client: &reqwest::Client,
    url: &Url,
    max_bytes: usize,
) -> Result<Value, FetchError> {
    let http = |e: reqwest::Error| FetchError::Http {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let mut response = client
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(http)?;
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: response.status().as_u16(),
        });
    }
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit: max_bytes,
    };
    if response
        .content_length()
        .is_some_and(|len| len > max_bytes as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::Invalid {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// The metadata URLs to try for `issuer`: OIDC discovery (appended to the
/// issuer), then RFC 8414 (inserted between host and path).
pub(crate) fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let base = issuer.as_str().trim_end_matches('/');
    let path = issuer.path().trim_end_matches('/');
    let origin = issuer.origin().ascii_serialization();
    [
        format!("{base}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ]
    .iter()
    .filter_map(|u| Url::parse(u).ok())
    .collect()
}

/// Finds the issuer's `jwks_uri` from its metadata.
pub(crate) async fn discover_jwks_uri(
    client: &reqwest::Client,
    settings: &AuthSettings,
) -> Result<Url, DiscoveryError> {
    let mut last = String::from("no metadata URL");
    for url in metadata_urls(&settings.issuer_url) {
        match fetch_json(client, &url, settings.max_jwks_bytes).await {
            Ok(doc) => {
                let found = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
                if found.trim_end_matches('/') != settings.issuer.trim_end_matches('/') {
                    return Err(DiscoveryError::IssuerMismatch {
                        url: url.to_string(),
                        expected: settings.issuer.clone(),
                        found: found.to_owned(),
                    });
                }
                let jwks = doc.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| {
                    DiscoveryError::NoJwksUri {
                        issuer: settings.issuer.clone(),
                    }
                })?;
                return Ok(secure_url("jwks_uri", jwks)?);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(DiscoveryError::NoMetadata {
        issuer: settings.issuer.clone(),
        reason: last,
    })
}

/// The algorithms a JWK may verify: its key type's algorithms in the allow-list,
/// narrowed to its `alg` when it names one. `None`: the key is not for us
/// (symmetric, encryption, an unsupported curve or algorithm).
pub(crate) fn key_algorithms(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[Algorithm::RS256, Algorithm::PS256],
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            &[Algorithm::ES256]
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        _ => return None,
    };
    let named = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => return None,
    };
    let algorithms: Vec<Algorithm> = by_type
        .iter()
        .copied()
        .filter(|a| named.is_none_or(|n| n == *a))
        .collect();
    (!algorithms.is_empty()).then_some(algorithms)
}

/// Builds a key set from a JWKS document, keeping at most `max_keys` usable keys.
fn key_set(doc: &Value, max_keys: usize, url: &Url) -> Result<KeySet, FetchError> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| FetchError::Invalid {
            url: url.to_string(),
            reason: "no `keys` array".into(),
        })?;
    let mut set = KeySet::default();
    let mut kept = 0usize;
    for raw in keys {
        if kept == max_keys {
            tracing::warn!(jwks_uri = %url, limit = max_keys, "jwks has more keys than max_jwks_keys, the rest are ignored");
            break;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        let Some(algorithms) = key_algorithms(&jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let entry = VerificationKey { key, algorithms };
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, entry);
            }
            None => set.without_kid.push(entry),
        }
        kept += 1;
    }
    Ok(set)
}

impl KeySource {
    /// Fetches the key set once; fails when that first fetch fails.
    pub(crate) async fn start(
        client: reqwest::Client,
        jwks_uri: Url,
        settings: &AuthSettings,
    ) -> Result<Arc<Self>, FetchError> {
        let source = Arc::new(Self {
            client,
            jwks_uri,
            max_bytes: settings.max_jwks_bytes,
            max_keys: settings.max_jwks_keys,
            min_refetch: settings.jwks_min_refetch,
            keys: RwLock::new(Arc::new(KeySet::default())),
            last_fetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        });
        {
            let mut last = source.last_fetch.lock().await;
            source.fetch(&mut last).await?;
        }
        Ok(source)
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Which key set is current: changes whenever a fetch replaces it. A
    /// token verified while this was `g` was verified with set `g` or older.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Where the keys come from.
    pub fn jwks_uri(&self) -> &Url {
        &self.jwks_uri
    }

    async fn fetch(&self, last: &mut Option<Instant>) -> Result<(), FetchError> {
        *last = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let doc = fetch_json(&self.client, &self.jwks_uri, self.max_bytes).await?;
        let set = key_set(&doc, self.max_keys, &self.jwks_uri)?;
        tracing::debug!(jwks_uri = %self.jwks_uri, keys = set.by_kid.len() + set.without_kid.len(), "jwks fetched");
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(set);
        }
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().map(|k| Arc::clone(&k)).unwrap_or_default()
    }

    fn find(set: &KeySet, kid: Option<&str>) -> Result<VerificationKey, KeyLookupError> {
        match kid {
            Some(kid) => set.by_kid.get(kid).cloned().ok_or(KeyLookupError::Unknown),
            None => match set.without_kid.as_slice() {
                [only] if set.by_kid.is_empty() => Ok(only.clone()),
                _ => Err(KeyLookupError::NoKid),
            },
        }
    }

    /// The key for `kid`, refetching the set once if it is unknown and the last
    /// fetch is older than `jwks_min_refetch`.
    pub(crate) async fn key(&self, kid: Option<&str>) -> Result<VerificationKey, KeyLookupError> {
        let err = match Self::find(&self.current(), kid) {
            Ok(key) => return Ok(key),
            Err(e) => e,
        };
        if kid.is_none() {
            return Err(err);
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have refetched while this one waited.
        if let Ok(key) = Self::find(&self.current(), kid) {
            return Ok(key);
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return Err(err);
        }
        if let Err(e) = self.fetch(&mut last).await {
            tracing::warn!(error = %e, "jwks refetch for an unknown kid failed");
        }
        drop(last);
        Self::find(&self.current(), kid)
    }

    /// Refetches now (the background refresh), keeping the old set on failure.
    async fn refresh(&self) {
        let mut last = self.last_fetch.lock().await;
        if let Err(e) = self.fetch(&mut last).await {
            tracing::warn!(error = %e, "background jwks refresh failed, keeping the previous keys");
        }
    }

    /// Refreshes the keys every `period` while the source is alive; the task
    /// ends by itself once the last `Arc` is dropped.
    pub(crate) fn spawn_refresh(
        source: &Arc<Self>,
        period: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(source);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(source) = weak.upgrade() else { break };
                source.refresh().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwk(v: Value) -> Jwk {
        serde_json::from_value(v).expect("jwk")
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn rsa_keys_verify_rs256_and_ps256_unless_they_name_one() {
        let k = jwk(json!({"kty": "RSA", "n": N, "e": "AQAB"}));
        assert_eq!(
            key_algorithms(&k),
            Some(vec![Algorithm::RS256, Algorithm::PS256])
        );
        let k = jwk(json!({"kty": "RSA", "n": N, "e": "AQAB", "alg": "PS256"}));
        assert_eq!(key_algorithms(&k), Some(vec![Algorithm::PS256]));
    }

    #[test]
    fn keys_outside_the_allow_list_are_not_kept() {
        // An RSA key marked for RS512, a symmetric key, an encryption key, a P-384 key.
        for v in [
            json!({"kty": "RSA", "n": N, "e": "AQAB", "alg": "RS512"}),
            json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}),
            json!({"kty": "RSA", "n": N, "e": "AQAB", "use": "enc"}),
            json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
        ] {
            assert_eq!(key_algorithms(&jwk(v.clone())), None, "{v}");
        }
        let sig = jwk(json!({"kty": "RSA", "n": N, "e": "AQAB", "use": "sig"}));
        assert!(key_algorithms(&sig).is_some());
        let ec = jwk(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}));
        assert_eq!(key_algorithms(&ec), Some(vec![Algorithm::ES256]));
        let ed = jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"}));
        assert_eq!(key_algorithms(&ed), Some(vec![Algorithm::EdDSA]));
    }

    #[test]
    fn a_key_set_keeps_at_most_max_keys_and_skips_unusable_ones() {
        let url = Url::parse("https://idp.example.com/jwks").expect("url");
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "unknown", "kid": "odd"},
            {"kty": "RSA", "n": N, "e": "AQAB", "kid": "a"},
            {"kty": "RSA", "n": N, "e": "AQAB", "kid": "b"},
            {"kty": "RSA", "n": N, "e": "AQAB", "kid": "c"},
        ]});
        let set = key_set(&doc, 2, &url).expect("set");
        let mut kids: Vec<_> = set.by_kid.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["a", "b"]);
        assert!(matches!(
            key_set(&json!({"nokeys": []}), 2, &url),
            Err(FetchError::Invalid { .. })
        ));
    }

    #[test]
    fn a_token_without_kid_uses_the_only_key_without_kid() {
        let url = Url::parse("https://idp.example.com/jwks").expect("url");
        let one = key_set(
            &json!({"keys": [{"kty": "RSA", "n": N, "e": "AQAB"}]}),
            8,
            &url,
        )
        .expect("set");
        assert!(KeySource::find(&one, None).is_ok());
        assert_eq!(
            KeySource::find(&one, Some("x")).err(),
            Some(KeyLookupError::Unknown)
        );
        let two = key_set(
            &json!({"keys": [{"kty": "RSA", "n": N, "e": "AQAB"}, {"kty": "RSA", "n": N, "e": "AQAB"}]}),
            8,
            &url,
        )
        .expect("set");
        assert_eq!(
            KeySource::find(&two, None).err(),
            Some(KeyLookupError::NoKid)
        );
        let mixed = key_set(
            &json!({"keys": [{"kty": "RSA", "n": N, "e": "AQAB"}, {"kty": "RSA", "n": N, "e": "AQAB", "kid": "k"}]}),
            8,
            &url,
        )
        .expect("set");
        assert_eq!(
            KeySource::find(&mixed, None).err(),
            Some(KeyLookupError::NoKid)
        );
    }

    #[test]
    fn metadata_urls_follow_oidc_then_rfc_8414() {
        let urls = metadata_urls(&Url::parse("https://idp.example.com").expect("url"));
        assert_eq!(
            urls.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "https://idp.example.com/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server"
            ]
        );
        let urls = metadata_urls(&Url::parse("https://idp.example.com/tenant/1/").expect("url"));
        assert_eq!(
            urls.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "https://idp.example.com/tenant/1/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server/tenant/1"
            ]
        );
    }
}
