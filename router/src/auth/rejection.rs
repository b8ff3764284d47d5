//! Why a request is refused, and the HTTP answer that says so: 401 with a
//! `WWW-Authenticate: Bearer` challenge pointing at the protected resource
//! metadata (RFC 9728 §5.1, RFC 6750 §3), or 403 `insufficient_scope` naming the
//! scopes a call needs. The body is one sentence; it never echoes the token.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use jsonwebtoken::Algorithm;

/// What is wrong with a presented bearer token. Each message is one sentence
/// for a person, with nothing taken from the token but known names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The `Authorization` header is larger than `max_token_bytes`.
    #[error(
        "the Authorization header is larger than {limit} bytes (auth setting `max_token_bytes`)"
    )]
    TooLarge {
        /// The bound.
        limit: usize,
    },
    /// Several `Authorization` headers.
    #[error("the request has more than one Authorization header")]
    Duplicated,
    /// Not three base64url segments, or a header that does not decode.
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    /// `alg: none`.
    #[error("the token is unsigned (alg none), which is never accepted")]
    Unsigned,
    /// An algorithm outside the allow-list (e.g. HS256).
    #[error(
        "the token is signed with {0:?}, which is not accepted (accepted: RS256, PS256, ES256, EdDSA)"
    )]
    AlgorithmNotAccepted(Algorithm),
    /// The key named by `kid` does not do the token's algorithm.
    #[error("the token's algorithm does not match its signing key")]
    AlgorithmKeyMismatch,
    /// No key with the token's `kid` at the issuer.
    #[error("the token is signed with a key the issuer does not publish (unknown kid)")]
    UnknownKey,
    /// No `kid`, and the issuer has more than one key.
    #[error("the token names no signing key (kid) and the issuer publishes several")]
    NoKid,
    /// The signature does not verify.
    #[error("the token's signature is not valid")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet (nbf is in the future)")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` has none of the accepted audiences.
    #[error("the token is not meant for this resource (wrong audience)")]
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is absent.
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(String),
    /// A claim of the wrong type.
    #[error("the token's claim `{0}` has the wrong type")]
    BadClaim(String),
    /// `sub` is too large to forward.
    #[error(
        "the token's subject is longer than {limit} bytes (auth setting `max_forwarded_claim_bytes`)"
    )]
    SubjectTooLong {
        /// The bound.
        limit: usize,
    },
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectionKind {
    /// No `Authorization` header.
    MissingToken,
    /// An `Authorization` header with another scheme than `Bearer`.
    NotBearer,
    /// A bearer token that is not valid.
    InvalidToken(TokenError),
    /// A valid token without the scopes the call needs (RFC 6750 `insufficient_scope`).
    InsufficientScope(Vec<String>),
}

/// A refused request, ready to be answered (`IntoResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    /// Why.
    pub kind: RejectionKind,
    /// `<public-url>/.well-known/oauth-protected-resource/mcp`.
    pub resource_metadata: String,
    /// Scopes to advertise in a 401 challenge (the policy's scopes), if any.
    pub scope_hint: Vec<String>,
}

/// Keeps only what may stand inside a quoted-string of the challenge.
fn quoted_safe(s: &str) -> String {
    s.chars()
        .filter(|c| (c.is_ascii_graphic() && *c != '"' && *c != '\\') || *c == ' ')
        .collect()
}

impl AuthRejection {
    /// The HTTP status: 403 for missing scopes, 401 otherwise.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::InsufficientScope(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` value.
    pub fn challenge(&self) -> String {
        let mut params = Vec::new();
        match &self.kind {
            RejectionKind::InsufficientScope(scopes) => {
                params.push("error=\"insufficient_scope\"".to_owned());
                params.push(format!("scope=\"{}\"", quoted_safe(&scopes.join(" "))));
            }
            RejectionKind::InvalidToken(_) => {
                params.push("error=\"invalid_token\"".to_owned());
            }
            RejectionKind::MissingToken | RejectionKind::NotBearer => {}
        }
        params.push(format!(
            "resource_metadata=\"{}\"",
            quoted_safe(&self.resource_metadata)
        ));
        if !matches!(self.kind, RejectionKind::InsufficientScope(_)) && !self.scope_hint.is_empty()
        {
            params.push(format!(
                "scope=\"{}\"",
                quoted_safe(&self.scope_hint.join(" "))
            ));
        }
        format!("Bearer {}", params.join(", "))
    }

    /// The one-sentence body.
    pub fn message(&self) -> String {
        match &self.kind {
            RejectionKind::MissingToken => {
                "this endpoint needs an OAuth bearer token in the Authorization header".to_owned()
            }
            RejectionKind::NotBearer => {
                "the Authorization header must use the Bearer scheme".to_owned()
            }
            RejectionKind::InvalidToken(e) => e.to_string(),
            RejectionKind::InsufficientScope(scopes) => format!(
                "this call needs a token with the scopes: {}",
                scopes.join(" ")
            ),
        }
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let challenge = HeaderValue::from_str(&self.challenge())
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        let mut response = (self.status(), format!("{}\n", self.message())).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    fn rejection(kind: RejectionKind, hint: &[&str]) -> AuthRejection {
        AuthRejection {
            kind,
            resource_metadata: META.into(),
            scope_hint: hint.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_missing_token_gets_a_challenge_without_an_error_code() {
        let r = rejection(RejectionKind::MissingToken, &[]);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.challenge(),
            format!("Bearer resource_metadata=\"{META}\"")
        );
        let r = rejection(RejectionKind::NotBearer, &["code:read", "db:read"]);
        assert_eq!(
            r.challenge(),
            format!("Bearer resource_metadata=\"{META}\", scope=\"code:read db:read\"")
        );
        assert!(r.message().contains("Bearer scheme"));
    }

    #[test]
    fn an_invalid_token_says_invalid_token_and_why() {
        let r = rejection(RejectionKind::InvalidToken(TokenError::Expired), &["a"]);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.challenge(),
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{META}\", scope=\"a\"")
        );
        assert_eq!(r.message(), "the token has expired");
    }

    #[test]
    fn missing_scopes_give_403_insufficient_scope_with_the_needed_scopes() {
        let r = rejection(
            RejectionKind::InsufficientScope(vec!["db:read".into(), "db:write".into()]),
            &["other"],
        );
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            r.challenge(),
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"db:read db:write\", resource_metadata=\"{META}\""
            )
        );
        assert!(r.message().ends_with("db:read db:write"));
    }

    #[test]
    fn the_challenge_cannot_be_broken_out_of() {
        let r = rejection(
            RejectionKind::InsufficientScope(vec!["a\"b\\c\r\nd".into()]),
            &[],
        );
        assert!(
            r.challenge().contains("scope=\"abcd\""),
            "{}",
            r.challenge()
        );
        assert!(HeaderValue::from_str(&r.challenge()).is_ok());
    }

    #[tokio::test]
    async fn the_response_carries_status_header_and_sentence() {
        let r = rejection(RejectionKind::InvalidToken(TokenError::WrongAudience), &[]);
        let response = r.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{META}\"").as_str()
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        assert_eq!(
            String::from_utf8_lossy(&body),
            "the token is not meant for this resource (wrong audience)\n"
        );
    }
}
