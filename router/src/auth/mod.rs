//! Authentication of HTTP clients: the router as an OAuth 2.1 resource server.
//!
//! # Securing the router
//!
//! Over stdio the router serves the local user who started it, trusted like their
//! shell ([`Principal::local`]). Over HTTP, without an issuer, it is for localhost
//! only. With an issuer every request to `/mcp` needs a bearer token from it:
//!
//! | setting (`[auth]` key) | flag / variable | default | meaning |
//! |---|---|---|---|
//! | `issuer` | `--auth-issuer`, `SWITCHBOARD_AUTH_ISSUER` | unset: auth off | OAuth 2.0 / OIDC issuer; its metadata (`/.well-known/openid-configuration`, else RFC 8414 `/.well-known/oauth-authorization-server`) gives `jwks_uri` |
//! | `public_url` | `--public-url`, `SWITCHBOARD_PUBLIC_URL` | required with `issuer` | the router's external URL; the resource is `<public_url>/mcp` |
//! | `audience` | `--auth-audience`, `SWITCHBOARD_AUTH_AUDIENCE` (comma-separated) | `<public_url>/mcp` (RFC 8707) | accepted `aud` values |
//! | `forward_claims` | — | none | claims sent to connectors as `switchboard-principal-<claim>` metadata (names: `a-z0-9_-`) |
//! | `leeway_secs` | — | 30 | clock skew allowed on `exp`/`nbf` |
//! | `max_token_bytes` | — | 16384 | largest `Authorization` header |
//! | `max_jwks_bytes` | — | 262144 | largest metadata or JWKS document |
//! | `max_jwks_keys` | — | 64 | most keys kept from the JWKS |
//! | `fetch_timeout_secs` | — | 5 | timeout of a fetch from the issuer |
//! | `jwks_min_refetch_secs` | — | 30 | at most one JWKS refetch per this period for unknown `kid`s |
//! | `jwks_refresh_secs` | — | 300 | background JWKS refresh period |
//! | `max_forwarded_claim_bytes` | — | 1024 | largest forwarded claim value (a larger `sub` rejects the token) |
//! | `verified_token_cache` | — | 4096 | tokens remembered as verified (by SHA-256); `0`: verify every request |
//!
//! Issuer, `jwks_uri` and public URL must be `https`, except on loopback
//! (`localhost`, 127.0.0.0/8, `::1`).
//!
//! What is enforced on every token: the `Authorization: Bearer` scheme, its size,
//! a signature by a key of the issuer's JWKS with an algorithm from the allow-list
//! (RS256, PS256, ES256, EdDSA — never `none`, never HS*, and only one the key
//! itself is for; keys a token names itself via `jku`, `jwk` or `x5u` are
//! never fetched nor used), `iss` equal to the issuer, `aud` among the accepted
//! audiences, `exp` and `nbf` within the leeway, and a string `sub`. A refused
//! request gets 401 with `WWW-Authenticate: Bearer resource_metadata="…"`
//! (plus `error="invalid_token"` when a token was given, and `scope="…"` when a
//! policy names scopes) and a one-sentence body saying what was wrong; the token
//! is never echoed, logged, or passed on. Connectors learn who calls from
//! [`principal_metadata`] instead.
//!
//! A client sends the same token with every request, so a verified token is
//! remembered (at most `verified_token_cache` of them, keyed
//! by the token's SHA-256, never by the token itself): its next request skips
//! the signature and claim checks, and is still refused once `exp` (plus the
//! leeway) has passed. A remembered token is verified again after any JWKS
//! fetch (a key the issuer dropped stops working at the next refresh, as
//! without the cache) and at the latest after `jwks_refresh_secs`.
//!
//! # Wiring (for the HTTP front door and the call pipeline)
//!
//! ```ignore
//! // start-up
//! let settings = config.auth.settings()?;                  // Option<AuthSettings>
//! let auth = match settings {
//!     Some(s) => Some(Arc::new(Authenticator::discover(s, policy.scopes_supported()).await?)),
//!     None => None,                                       // warn: localhost only
//! };
//! // routes: unauthenticated metadata next to /mcp
//! app = app.merge(auth.metadata().routes());
//! // middleware on /mcp: the Principal lands in the request's extensions
//! mcp_routes = mcp_routes.route_layer(axum::middleware::from_fn_with_state(auth.clone(), auth::require_bearer));
//! // (or by hand: auth.authenticate(headers).await gives Principal or AuthRejection: IntoResponse)
//! // without an issuer (localhost only) and over stdio: Principal::local()
//! // call stage: policy decision → 403 with auth.insufficient_scope(scopes)
//! // upstream call: request.metadata_mut().extend(auth.forwarded_metadata(&principal))
//! ```

mod config;
mod jwks;
mod metadata;
mod principal;
mod rejection;

use std::sync::Arc;

use base64::Engine as _;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::{Map, Value};
use tonic::metadata::MetadataMap;

pub use config::{AuthConfig, AuthConfigError, AuthSettings, split_list};
pub use jwks::{ALLOWED_ALGORITHMS, DiscoveryError, FetchError, KeySource};
pub use metadata::{ProtectedResourceMetadata, RESOURCE_METADATA_PATH, ROOT_METADATA_PATH};
pub use principal::{
    CLAIM_METADATA_PREFIX, OMITTED_METADATA_KEY, Principal, PrincipalKind, STDIO_SUBJECT,
    SUB_METADATA_KEY, encode_claim, principal_metadata, scopes_of,
};
pub use rejection::{AuthRejection, RejectionKind, TokenError};

use jwks::KeyLookupError;

/// Validates bearer tokens against the configured issuer.
#[derive(Debug)]
pub struct Authenticator {
    settings: AuthSettings,
    keys: Arc<KeySource>,
    verified: VerifiedTokens,
    scopes_supported: Vec<String>,
    refresh: tokio::task::JoinHandle<()>,
}

impl Drop for Authenticator {
    fn drop(&mut self) {
        self.refresh.abort();
    }
}

impl Authenticator {
    /// Reads the issuer's metadata, fetches its JWKS once, and starts the
    /// background refresh. `scopes_supported` (from the policy) goes into the
    /// protected resource metadata and the 401 challenge. Must run inside a
    /// tokio runtime.
    pub async fn discover(
        settings: AuthSettings,
        scopes_supported: Vec<String>,
    ) -> Result<Self, DiscoveryError> {
        let client = jwks::http_client(&settings)?;
        let jwks_uri = jwks::discover_jwks_uri(&client, &settings).await?;
        let keys = KeySource::start(client, jwks_uri, &settings).await?;
        let refresh = KeySource::spawn_refresh(&keys, settings.jwks_refresh);
        tracing::info!(issuer = %settings.issuer, jwks_uri = %keys.jwks_uri(), resource = %settings.resource, "bearer token authentication on");
        let verified = VerifiedTokens::new(settings.verified_token_cache, settings.jwks_refresh);
        Ok(Self {
            settings,
            keys,
            verified,
            scopes_supported,
            refresh,
        })
    }

    /// The checked settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// How many times the JWKS has been fetched (start-up, unknown `kid`s, refreshes).
    pub fn jwks_fetches(&self) -> u64 {
        self.keys.fetches()
    }

    /// The RFC 9728 document for this resource.
    pub fn metadata(&self) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata::new(
            self.settings.resource.clone(),
            self.settings.issuer.clone(),
            self.scopes_supported.clone(),
        )
    }

    /// A refusal of `kind`, with this resource's challenge parameters.
    pub fn reject(&self, kind: RejectionKind) -> AuthRejection {
        AuthRejection {
            kind,
            resource_metadata: self.settings.resource_metadata_url.clone(),
            scope_hint: self.scopes_supported.clone(),
        }
    }

    /// The 403 for a call the policy allows only with more scopes.
    pub fn insufficient_scope(&self, scopes: Vec<String>) -> AuthRejection {
        self.reject(RejectionKind::InsufficientScope(scopes))
    }

    /// The gRPC metadata telling a connector who calls (see [`principal_metadata`]).
    pub fn forwarded_metadata(&self, principal: &Principal) -> MetadataMap {
        principal_metadata(
            principal,
            &self.settings.forward_claims,
            self.settings.max_forwarded_claim_bytes,
        )
    }

    /// The principal behind the request's bearer token, or why there is none.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthRejection> {
        self.validate(headers)
            .await
            .map_err(|kind| self.reject(kind))
    }

    async fn validate(&self, headers: &HeaderMap) -> Result<Principal, RejectionKind> {
        let invalid = RejectionKind::InvalidToken;
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(RejectionKind::MissingToken);
        };
        if values.next().is_some() {
            return Err(invalid(TokenError::Duplicated));
        }
        let limit = self.settings.max_token_bytes;
        if value.len() > limit {
            return Err(invalid(TokenError::TooLarge { limit }));
        }
        let value = value.to_str().map_err(|_| invalid(TokenError::Malformed))?;
        let token = bearer_token(value).ok_or(RejectionKind::NotBearer)?;
        // RFC 6750 b64token, and exactly the three base64url segments of a JWS.
        let well_formed = token.split('.').count() == 3
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !well_formed {
            return Err(invalid(TokenError::Malformed));
        }
        let digest = VerifiedTokens::digest(token);
        let generation = self.keys.generation();
        if let Some(principal) = self.verified.get(&digest, generation) {
            return Ok(principal);
        }
        let header = decode_header(token).map_err(|_| {
            invalid(if declares_alg_none(token) {
                TokenError::Unsigned
            } else {
                TokenError::Malformed
            })
        })?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(invalid(TokenError::AlgorithmNotAccepted(header.alg)));
        }
        let key = self.keys.key(header.kid.as_deref()).await.map_err(|e| {
            invalid(match e {
                KeyLookupError::Unknown => TokenError::UnknownKey,
                KeyLookupError::NoKid => TokenError::NoKid,
            })
        })?;
        if !key.algorithms.contains(&header.alg) {
            return Err(invalid(TokenError::AlgorithmKeyMismatch));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        let data = decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| invalid(token_error(e.kind())))?;
        let mut principal = Principal::from_claims(data.claims)
            .ok_or_else(|| invalid(TokenError::BadClaim("sub".into())))?;
        principal.token = Some(digest);
        let limit = self.settings.max_forwarded_claim_bytes;
        if encode_claim(&Value::String(principal.sub.clone())).len() > limit {
            return Err(invalid(TokenError::SubjectTooLong { limit }));
        }
        let leeway = self.settings.leeway.as_secs();
        if let Some(exp) = principal.claims.get("exp").and_then(Value::as_u64) {
            self.verified
                .insert(digest, &principal, exp.saturating_add(leeway), generation);
        }
        Ok(principal)
    }
}

/// Tokens verified recently (see the module docs): SHA-256 of the token →
/// its principal, the last second it is valid in, and the key set generation
/// it was verified under.
#[derive(Debug)]
struct VerifiedTokens {
    cache: Option<moka::sync::Cache<[u8; 32], Arc<Verified>>>,
}

#[derive(Debug)]
struct Verified {
    principal: Principal,
    valid_until: u64,
    generation: u64,
}

impl VerifiedTokens {
    /// At most `capacity` tokens (`0`: none), each for at most `ttl`.
    fn new(capacity: usize, ttl: std::time::Duration) -> Self {
        let cache = (capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .time_to_live(ttl)
                .build()
        });
        Self { cache }
    }

    fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The principal of a token verified under key set `generation` that has
    /// not expired; anything else is forgotten and must be verified again.
    fn get(&self, digest: &[u8; 32], generation: u64) -> Option<Principal> {
        let cache = self.cache.as_ref()?;
        let hit = cache.get(digest)?;
        if hit.generation == generation && Self::now() <= hit.valid_until {
            Some(hit.principal.clone())
        } else {
            cache.invalidate(digest);
            None
        }
    }

    /// Remembers a token just verified: `valid_until` is its `exp` plus the leeway.
    fn insert(&self, digest: [u8; 32], principal: &Principal, valid_until: u64, generation: u64) {
        if let Some(cache) = &self.cache {
            cache.insert(
                digest,
                Arc::new(Verified {
                    principal: principal.clone(),
                    valid_until,
                    generation,
                }),
            );
        }
    }
}

/// Axum middleware for the protected routes: authenticates the request and
/// puts the [`Principal`] into its extensions for the handlers, or answers the
/// refusal (401 with the challenge). Wire it with
/// `route_layer(axum::middleware::from_fn_with_state(auth, auth::require_bearer))`.
pub async fn require_bearer(
    axum::extract::State(auth): axum::extract::State<Arc<Authenticator>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match auth.authenticate(request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(rejection) => {
            if let RejectionKind::InvalidToken(reason) = &rejection.kind {
                tracing::info!(%reason, "bearer token refused");
            }
            rejection.into_response()
        }
    }
}

/// The token of a `Bearer` credential (scheme case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ').trim_end();
    (!token.is_empty()).then_some(token)
}

/// Whether the token's header declares `alg: none`: only to say so in the
/// refusal; such a token is refused whatever this answers.
fn declares_alg_none(token: &str) -> bool {
    let Some(segment) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|alg| alg.eq_ignore_ascii_case("none"))
}

/// The refusal reason for a `jsonwebtoken` error.
fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
        ErrorKind::InvalidClaimFormat(c) => TokenError::BadClaim(c.clone()),
        ErrorKind::InvalidAlgorithm => TokenError::AlgorithmKeyMismatch,
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests;
