//! The `[auth]` settings: what the operator writes ([`AuthConfig`], plain and
//! `serde`-deserializable so `config.rs` can embed it and fill it from flags and
//! environment), and what the router runs with ([`AuthSettings`], checked once at
//! start-up: URLs parsed, `https` enforced off loopback, bounds non-zero).

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

/// Default of [`AuthConfig::leeway_secs`].
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Default of [`AuthConfig::max_token_bytes`].
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Default of [`AuthConfig::max_jwks_bytes`].
pub const DEFAULT_MAX_JWKS_BYTES: usize = 256 * 1024;
/// Default of [`AuthConfig::max_jwks_keys`].
pub const DEFAULT_MAX_JWKS_KEYS: usize = 64;
/// Default of [`AuthConfig::fetch_timeout_secs`].
pub const DEFAULT_FETCH_TIMEOUT_SECS: u64 = 5;
/// Default of [`AuthConfig::jwks_min_refetch_secs`].
pub const DEFAULT_JWKS_MIN_REFETCH_SECS: u64 = 30;
/// Default of [`AuthConfig::jwks_refresh_secs`].
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;
/// Default of [`AuthConfig::verified_token_cache`].
pub const DEFAULT_VERIFIED_TOKEN_CACHE: usize = 4096;
/// Default of [`AuthConfig::max_forwarded_claim_bytes`].
pub const DEFAULT_MAX_FORWARDED_CLAIM_BYTES: usize = 1024;

/// The `[auth]` section as written (TOML, or filled from `--auth-*` flags and
/// `SWITCHBOARD_AUTH_*` variables). Authentication is off while `issuer` is unset.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The OAuth 2.0 / OIDC issuer (`--auth-issuer`, `SWITCHBOARD_AUTH_ISSUER`).
    /// Unset: authentication is off.
    pub issuer: Option<String>,
    /// The router's canonical external URL (`--public-url`, `SWITCHBOARD_PUBLIC_URL`);
    /// the protected resource is `<public_url>/mcp`.
    pub public_url: Option<String>,
    /// Accepted `aud` values (`--auth-audience`, `SWITCHBOARD_AUTH_AUDIENCE`, comma-separated).
    /// Empty: the canonical resource `<public_url>/mcp` (RFC 8707).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Claims forwarded to connectors as `switchboard-principal-<claim>` gRPC metadata
    /// (the subject always is, as `switchboard-principal-sub`).
    #[serde(deserialize_with = "one_or_many")]
    pub forward_claims: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Largest `Authorization` header accepted, in bytes.
    pub max_token_bytes: usize,
    /// Largest JWKS or metadata document fetched from the issuer, in bytes.
    pub max_jwks_bytes: usize,
    /// Most keys kept from the issuer's JWKS.
    pub max_jwks_keys: usize,
    /// Timeout of one fetch from the issuer (metadata or JWKS), in seconds.
    pub fetch_timeout_secs: u64,
    /// Shortest time between two JWKS fetches caused by tokens with an unknown `kid`, in seconds.
    pub jwks_min_refetch_secs: u64,
    /// Period of the background JWKS refresh, in seconds.
    pub jwks_refresh_secs: u64,
    /// Largest value of one forwarded claim (after encoding), in bytes; a larger
    /// claim is left out, a larger `sub` rejects the token.
    pub max_forwarded_claim_bytes: usize,
    /// Most tokens remembered as verified (by their SHA-256), so a client's
    /// next request with the same token skips the signature check until the
    /// token expires or the JWKS is refetched. `0` turns the cache off.
    pub verified_token_cache: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            public_url: None,
            audience: Vec::new(),
            forward_claims: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_jwks_bytes: DEFAULT_MAX_JWKS_BYTES,
            max_jwks_keys: DEFAULT_MAX_JWKS_KEYS,
            fetch_timeout_secs: DEFAULT_FETCH_TIMEOUT_SECS,
            jwks_min_refetch_secs: DEFAULT_JWKS_MIN_REFETCH_SECS,
            jwks_refresh_secs: DEFAULT_JWKS_REFRESH_SECS,
            max_forwarded_claim_bytes: DEFAULT_MAX_FORWARDED_CLAIM_BYTES,
            verified_token_cache: DEFAULT_VERIFIED_TOKEN_CACHE,
        }
    }
}

/// Accepts `"a, b"` (as from an environment variable) or `["a", "b"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => split_list(&s),
        OneOrMany::Many(v) => v,
    })
}

/// Splits a comma-separated list (`SWITCHBOARD_AUTH_AUDIENCE`), dropping empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A setting of `[auth]` that cannot be used, naming the setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthConfigError {
    /// A URL setting does not parse.
    #[error("auth setting `{setting}` is not a valid URL ({value:?}): {reason}")]
    InvalidUrl {
        /// The setting, e.g. `issuer`.
        setting: &'static str,
        /// What was given.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A URL is plain `http` (or another scheme) on a host that is not loopback.
    #[error(
        "auth setting `{setting}` must be an https URL (plain http is only accepted on localhost, 127.0.0.0/8 and ::1): {value}"
    )]
    NotHttps {
        /// The setting.
        setting: &'static str,
        /// What was given.
        value: String,
    },
    /// `issuer` is set but `public_url` is not.
    #[error(
        "auth setting `public_url` (--public-url, SWITCHBOARD_PUBLIC_URL) is required when `issuer` is set: it names the protected resource"
    )]
    MissingPublicUrl,
    /// A URL carries a query or fragment where none is allowed.
    #[error("auth setting `{setting}` must not have a query or fragment: {value}")]
    UnexpectedQuery {
        /// The setting.
        setting: &'static str,
        /// What was given.
        value: String,
    },
    /// A bound is zero.
    #[error("auth setting `{setting}` must be greater than zero")]
    ZeroBound {
        /// The setting.
        setting: &'static str,
    },
    /// A forwarded claim name that cannot be a gRPC metadata key.
    #[error(
        "auth setting `forward_claims` has {claim:?}: claim names forwarded to connectors use only a-z, 0-9, `_` and `-` (at most 64 characters), and not `sub` (always forwarded) or `omitted` (names claims left out)"
    )]
    BadForwardedClaim {
        /// The claim as given.
        claim: String,
    },
}

/// Checked authentication settings (see [`AuthConfig`] for each field's meaning).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The issuer as configured (tokens' `iss` must equal it exactly).
    pub issuer: String,
    /// The issuer as a URL (where its metadata is fetched).
    pub issuer_url: Url,
    /// The canonical URL of the protected resource: `<public_url>/mcp`.
    pub resource: String,
    /// Where the protected resource metadata is served:
    /// `<public_url>/.well-known/oauth-protected-resource/mcp`.
    pub resource_metadata_url: String,
    /// Accepted `aud` values.
    pub audience: Vec<String>,
    /// Claims forwarded to connectors.
    pub forward_claims: Vec<String>,
    /// See [`AuthConfig::leeway_secs`].
    pub leeway: Duration,
    /// See [`AuthConfig::max_token_bytes`].
    pub max_token_bytes: usize,
    /// See [`AuthConfig::max_jwks_bytes`].
    pub max_jwks_bytes: usize,
    /// See [`AuthConfig::max_jwks_keys`].
    pub max_jwks_keys: usize,
    /// See [`AuthConfig::fetch_timeout_secs`].
    pub fetch_timeout: Duration,
    /// See [`AuthConfig::jwks_min_refetch_secs`].
    pub jwks_min_refetch: Duration,
    /// See [`AuthConfig::jwks_refresh_secs`].
    pub jwks_refresh: Duration,
    /// See [`AuthConfig::max_forwarded_claim_bytes`].
    pub max_forwarded_claim_bytes: usize,
    /// See [`AuthConfig::verified_token_cache`].
    pub verified_token_cache: usize,
}

impl AuthConfig {
    /// Checks the settings. `Ok(None)`: authentication is off (no issuer).
    pub fn settings(&self) -> Result<Option<AuthSettings>, AuthConfigError> {
        let Some(issuer) = self.issuer.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let issuer_url = secure_url("issuer", issuer)?;
        if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
            return Err(AuthConfigError::UnexpectedQuery {
                setting: "issuer",
                value: issuer.to_owned(),
            });
        }
        let public = self
            .public_url
            .as_deref()
            .map(str::trim)
            .ok_or(AuthConfigError::MissingPublicUrl)?;
        let public_url = secure_url("public_url", public)?;
        if public_url.query().is_some() || public_url.fragment().is_some() {
            return Err(AuthConfigError::UnexpectedQuery {
                setting: "public_url",
                value: public.to_owned(),
            });
        }
        let base = public_url.as_str().trim_end_matches('/');
        let resource = format!("{base}/mcp");
        let origin = public_url.origin().ascii_serialization();
        let path = public_url.path().trim_end_matches('/');
        // RFC 9728 §3.1: the well-known segment goes between host and path.
        let resource_metadata_url =
            format!("{origin}/.well-known/oauth-protected-resource{path}/mcp");
        let audience = if self.audience.is_empty() {
            vec![resource.clone()]
        } else {
            self.audience.clone()
        };
        for claim in &self.forward_claims {
            let ok = !claim.is_empty()
                && claim.len() <= 64
                && claim != "sub"
                && claim != "omitted"
                && claim.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok {
                return Err(AuthConfigError::BadForwardedClaim {
                    claim: claim.clone(),
                });
            }
        }
        let nonzero = |setting: &'static str, v: u64| {
            if v == 0 {
                Err(AuthConfigError::ZeroBound { setting })
            } else {
                Ok(v)
            }
        };
        Ok(Some(AuthSettings {
            issuer: issuer.to_owned(),
            issuer_url,
            resource,
            resource_metadata_url,
            audience,
            forward_claims: self.forward_claims.clone(),
            leeway: Duration::from_secs(self.leeway_secs),
            max_token_bytes: nonzero("max_token_bytes", self.max_token_bytes as u64)? as usize,
            max_jwks_bytes: nonzero("max_jwks_bytes", self.max_jwks_bytes as u64)? as usize,
            max_jwks_keys: nonzero("max_jwks_keys", self.max_jwks_keys as u64)? as usize,
            fetch_timeout: Duration::from_secs(nonzero(
                "fetch_timeout_secs",
                self.fetch_timeout_secs,
            )?),
            jwks_min_refetch: Duration::from_secs(self.jwks_min_refetch_secs),
            jwks_refresh: Duration::from_secs(nonzero(
                "jwks_refresh_secs",
                self.jwks_refresh_secs,
            )?),
            max_forwarded_claim_bytes: nonzero(
                "max_forwarded_claim_bytes",
                self.max_forwarded_claim_bytes as u64,
            )? as usize,
            verified_token_cache: self.verified_token_cache,
        }))
    }
}

/// Parses `value` as an `https` URL, or `http` on a loopback host.
pub(crate) fn secure_url(setting: &'static str, value: &str) -> Result<Url, AuthConfigError> {
    let url = Url::parse(value).map_err(|e| AuthConfigError::InvalidUrl {
        setting,
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(AuthConfigError::NotHttps {
            setting,
            value: value.to_owned(),
        }),
    }
}

/// Whether the URL's host is `localhost`, in 127.0.0.0/8, or `::1`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(issuer: &str, public: &str) -> AuthConfig {
        AuthConfig {
            issuer: Some(issuer.into()),
            public_url: Some(public.into()),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn no_issuer_means_authentication_is_off() {
        assert!(AuthConfig::default().settings().expect("valid").is_none());
    }

    #[test]
    fn resource_and_metadata_url_derive_from_the_public_url() {
        let s = config("https://idp.example.com", "https://mcp.example.com/")
            .settings()
            .expect("valid")
            .expect("on");
        assert_eq!(s.resource, "https://mcp.example.com/mcp");
        assert_eq!(
            s.resource_metadata_url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(s.audience, vec!["https://mcp.example.com/mcp".to_owned()]);
    }

    #[test]
    fn a_public_url_with_a_path_keeps_it_after_the_well_known_segment() {
        let s = config("https://idp.example.com", "https://example.com/tools")
            .settings()
            .expect("valid")
            .expect("on");
        assert_eq!(s.resource, "https://example.com/tools/mcp");
        assert_eq!(
            s.resource_metadata_url,
            "https://example.com/.well-known/oauth-protected-resource/tools/mcp"
        );
    }

    #[test]
    fn configured_audiences_replace_the_default() {
        let mut c = config("https://idp.example.com", "https://mcp.example.com");
        c.audience = vec!["api://switchboard".into()];
        let s = c.settings().expect("valid").expect("on");
        assert_eq!(s.audience, vec!["api://switchboard".to_owned()]);
    }

    #[test]
    fn plain_http_is_refused_off_loopback_and_named() {
        let err = config("http://idp.example.com", "https://mcp.example.com")
            .settings()
            .expect_err("http issuer");
        assert_eq!(
            err,
            AuthConfigError::NotHttps {
                setting: "issuer",
                value: "http://idp.example.com".into()
            }
        );
        let err = config("https://idp.example.com", "http://mcp.example.com")
            .settings()
            .expect_err("http public url");
        assert!(matches!(
            err,
            AuthConfigError::NotHttps {
                setting: "public_url",
                ..
            }
        ));
    }

    #[test]
    fn plain_http_is_accepted_on_every_loopback_form() {
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "[::1]", "LOCALHOST"] {
            let url = format!("http://{host}:8080");
            assert!(config(&url, &url).settings().is_ok(), "{url} is loopback");
        }
        for host in ["128.0.0.1", "localhost.example.com", "[::2]", "10.0.0.1"] {
            let url = format!("http://{host}:8080");
            assert!(
                config(&url, "https://x.example").settings().is_err(),
                "{url} is not loopback"
            );
        }
    }

    #[test]
    fn other_schemes_and_garbage_are_refused() {
        assert!(matches!(
            config("ftp://idp.example.com", "https://m.example").settings(),
            Err(AuthConfigError::NotHttps { .. })
        ));
        assert!(matches!(
            config("not a url", "https://m.example").settings(),
            Err(AuthConfigError::InvalidUrl {
                setting: "issuer",
                ..
            })
        ));
        assert!(matches!(
            config("https://idp.example.com?x=1", "https://m.example").settings(),
            Err(AuthConfigError::UnexpectedQuery {
                setting: "issuer",
                ..
            })
        ));
        assert!(matches!(
            config("https://idp.example.com", "https://m.example#f").settings(),
            Err(AuthConfigError::UnexpectedQuery {
                setting: "public_url",
                ..
            })
        ));
    }

    #[test]
    fn an_issuer_without_a_public_url_is_refused() {
        let c = AuthConfig {
            issuer: Some("https://idp.example.com".into()),
            ..AuthConfig::default()
        };
        assert_eq!(
            c.settings().expect_err("no public url"),
            AuthConfigError::MissingPublicUrl
        );
    }

    #[test]
    fn zero_bounds_are_refused_by_name() {
        let mut c = config("https://idp.example.com", "https://m.example");
        c.max_token_bytes = 0;
        assert_eq!(
            c.settings().expect_err("zero"),
            AuthConfigError::ZeroBound {
                setting: "max_token_bytes"
            }
        );
        let mut c = config("https://idp.example.com", "https://m.example");
        c.fetch_timeout_secs = 0;
        assert_eq!(
            c.settings().expect_err("zero"),
            AuthConfigError::ZeroBound {
                setting: "fetch_timeout_secs"
            }
        );
    }

    #[test]
    fn forwarded_claim_names_are_an_allow_list() {
        for bad in [
            "Email",
            "sub",
            "omitted",
            "",
            "a b",
            "é",
            "x:y",
            &"a".repeat(65),
        ] {
            let mut c = config("https://idp.example.com", "https://m.example");
            c.forward_claims = vec![bad.to_owned()];
            assert!(
                matches!(c.settings(), Err(AuthConfigError::BadForwardedClaim { .. })),
                "{bad:?} refused"
            );
        }
        let mut c = config("https://idp.example.com", "https://m.example");
        c.forward_claims = vec![
            "email".into(),
            "groups".into(),
            "tenant_id".into(),
            "x-y".into(),
        ];
        assert!(c.settings().is_ok());
    }

    #[test]
    fn the_toml_section_takes_a_string_or_a_list_and_rejects_unknown_keys() {
        let c: AuthConfig = toml::from_str(
            "issuer = \"https://idp.example.com\"\npublic_url = \"https://m.example\"\naudience = \"a, b ,\"\nforward_claims = [\"email\"]\n",
        )
        .expect("parses");
        assert_eq!(c.audience, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(c.forward_claims, vec!["email".to_owned()]);
        assert_eq!(c.leeway_secs, DEFAULT_LEEWAY_SECS);
        let err = toml::from_str::<AuthConfig>("issuer = \"x\"\naudiences = []\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("audiences"), "{err}");
    }
}
