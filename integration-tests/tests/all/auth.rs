//! The router's bearer-token authentication and policy against a real OpenID
//! provider (`oauth2-mock-server`): discovery, JWKS, every kind of bad token,
//! key rotation, the refetch bound, and the example policy's three principals.
//! Through the library API, so each refusal reason is checked on its own; the
//! same paths through a real router process are in `auth_http.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use integration_tests::oidc::{self, OpenIdProvider, TokenSpec};
use serde_json::{Value, json};
use switchboard_router::auth::{
    AuthConfig, Authenticator, PrincipalKind, RejectionKind, TokenError,
};
use switchboard_router::policy::{Decision, Policy, ToolRef};

const PUBLIC_URL: &str = "http://127.0.0.1:8080";
const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
const METADATA: &str = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp";

const EXAMPLE_POLICY: &str = r#"
[[allow]]
tools = ["code_analysis_*"]
scopes = ["code:read"]
[[allow]]
tools = ["database_*"]
scopes = ["db:read"]
when = '"analysts" in jwt.groups'
"#;

fn config(provider: &OpenIdProvider) -> AuthConfig {
    AuthConfig {
        issuer: Some(provider.issuer.clone()),
        public_url: Some(PUBLIC_URL.into()),
        forward_claims: vec!["email".into(), "groups".into()],
        ..AuthConfig::default()
    }
}

async fn authenticator(config: AuthConfig, scopes: Vec<String>) -> Authenticator {
    let settings = config.settings().expect("valid").expect("auth on");
    Authenticator::discover(settings, scopes)
        .await
        .expect("discovery against the provider")
}

/// The provider and an authenticator with default settings; `None` when the
/// provider is not installed (outside CI).
async fn setup() -> Option<(OpenIdProvider, Authenticator)> {
    let provider = oidc::start().expect("provider")?;
    let auth = authenticator(config(&provider), vec![]).await;
    Some((provider, auth))
}

fn spec(claims: Value) -> TokenSpec {
    let mut base = json!({"sub": "alice", "aud": RESOURCE});
    if let (Some(b), Value::Object(extra)) = (base.as_object_mut(), claims) {
        b.extend(extra);
    }
    TokenSpec {
        claims: base,
        ..TokenSpec::default()
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

/// Asserts a 401 `invalid_token` refusal for `reason`, and what the client sees.
async fn assert_invalid(auth: &Authenticator, headers: &HeaderMap, reason: TokenError) {
    let rejection = auth.authenticate(headers).await.expect_err("refused");
    assert_eq!(rejection.kind, RejectionKind::InvalidToken(reason.clone()));
    assert_eq!(rejection.status(), 401);
    assert_eq!(
        rejection.challenge(),
        format!("Bearer error=\"invalid_token\", resource_metadata=\"{METADATA}\"")
    );
    assert_eq!(rejection.message(), reason.to_string());
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_token_from_the_provider_is_accepted_with_its_claims() {
    let Some((provider, auth)) = setup().await else {
        return;
    };
    let token = provider
        .mint(&spec(json!({"scope": "code:read db:read", "email": "alice@example.com", "groups": ["analysts"]})))
        .expect("token");
    let principal = auth.authenticate(&bearer(&token)).await.expect("accepted");
    assert_eq!(principal.kind, PrincipalKind::Token);
    assert_eq!(principal.sub, "alice");
    assert!(principal.scopes.contains("code:read") && principal.scopes.contains("db:read"));
    let metadata = auth.forwarded_metadata(&principal);
    let get = |k: &str| {
        metadata
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(get("switchboard-principal-sub").as_deref(), Some("alice"));
    assert_eq!(
        get("switchboard-principal-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        get("switchboard-principal-groups").as_deref(),
        Some("analysts")
    );
    assert!(
        metadata
            .iter()
            .all(|kv| !format!("{kv:?}").contains(&token)),
        "the token itself is never forwarded"
    );
}

#[tokio::test]
async fn an_audience_chosen_by_the_operator_replaces_the_resource() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let mut c = config(&provider);
    c.audience = vec!["api://switchboard".into()];
    let auth = authenticator(c, vec![]).await;
    let mut s = spec(json!({}));
    s.claims["aud"] = json!("api://switchboard");
    assert!(
        auth.authenticate(&bearer(&provider.mint(&s).expect("token")))
            .await
            .is_ok()
    );
    let default_aud = provider.mint(&spec(json!({}))).expect("token");
    assert_invalid(&auth, &bearer(&default_aud), TokenError::WrongAudience).await;
}

#[tokio::test]
async fn a_request_without_a_token_learns_where_the_metadata_is() {
    let Some((_provider, auth)) = setup().await else {
        return;
    };
    let rejection = auth
        .authenticate(&HeaderMap::new())
        .await
        .expect_err("refused");
    assert_eq!(rejection.kind, RejectionKind::MissingToken);
    assert_eq!(rejection.status(), 401);
    assert_eq!(
        rejection.challenge(),
        format!("Bearer resource_metadata=\"{METADATA}\"")
    );
}

#[tokio::test]
async fn garbage_after_bearer_is_an_invalid_token() {
    let Some((_provider, auth)) = setup().await else {
        return;
    };
    assert_invalid(&auth, &bearer("garbage"), TokenError::Malformed).await;
    assert_invalid(&auth, &bearer("not.a.jwt"), TokenError::Malformed).await;
}

#[tokio::test]
async fn an_unsigned_token_is_refused() {
    let Some((provider, auth)) = setup().await else {
        return;
    };
    let real = provider.mint(&spec(json!({}))).expect("token");
    let payload = real.split('.').nth(1).expect("payload");
    let header = b64(br#"{"alg":"none","typ":"JWT","kid":"initial"}"#);
    assert_invalid(
        &auth,
        &bearer(&format!("{header}.{payload}.")),
        TokenError::Unsigned,
    )
    .await;
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let Some((provider, auth)) = setup().await else {
        return;
    };
    let jwks = provider.jwks().expect("jwks");
    let n = jwks[0]["n"].as_str().expect("an RSA modulus");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("initial".into());
    let claims =
        json!({"sub": "mallory", "aud": RESOURCE, "iss": provider.issuer, "exp": now() + 300});
    let key = jsonwebtoken::EncodingKey::from_secret(n.as_bytes()).expect("hmac key");
    let forged = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
    assert_invalid(
        &auth,
        &bearer(&forged),
        TokenError::AlgorithmNotAccepted(jsonwebtoken::Algorithm::HS256),
    )
    .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let Some((provider, auth)) = setup().await else {
        return;
    };
    let mut s = spec(json!({}));
    s.expires_in = Some(-120);
    assert_invalid(
        &auth,
        &bearer(&provider.mint(&s).expect("token")),
        TokenError::Expired,
    )
    .await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let Some((provider, auth)) = setup().await else {
        return;
    };
    let token = provider
        .mint(&spec(json!({"nbf": now() + 120})))
        .expect("token");
    assert_invalid(&auth, &bearer(&token), TokenError::NotYetValid).await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let Some((provider, auth)) = setup().await else {
        return;
    };
    let token = provider
        .mint(&spec(json!({"iss": "http://localhost:1"})))
        .expect("token");
    assert_invalid(&auth, &bearer(&token), TokenError::WrongIssuer).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let Some((provider, auth)) = setup().await else {
        return;
    };
    let token = provider
        .mint(&spec(json!({"aud": "http://127.0.0.1:9999/mcp"})))
        .expect("token");
    assert_invalid(&auth, &bearer(&token), TokenError::WrongAudience).await;
}

#[tokio::test]
async fn a_token_signed_by_a_key_from_another_key_set_is_refused() {
    let Some((provider, auth)) = setup().await else {
        return;
    };
    let token = provider.mint_foreign(&spec(json!({}))).expect("token");
    assert_invalid(&auth, &bearer(&token), TokenError::UnknownKey).await;
    // Same kid as the issuer's key, other key material: a bad signature.
    let mut s = spec(json!({}));
    s.kid = Some("initial".into());
    let impostor = provider.mint_foreign(&s).expect("token");
    assert_invalid(&auth, &bearer(&impostor), TokenError::BadSignature).await;
}

#[tokio::test]
async fn a_one_megabyte_header_is_refused_by_size() {
    let Some((_provider, auth)) = setup().await else {
        return;
    };
    let huge = format!("{}.{}.{}", "a".repeat(1 << 20), "b", "c");
    let limit = auth.settings().max_token_bytes;
    assert_invalid(&auth, &bearer(&huge), TokenError::TooLarge { limit }).await;
}

#[tokio::test]
async fn a_token_signed_with_a_newly_added_key_is_accepted_after_a_refetch() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let mut c = config(&provider);
    c.jwks_min_refetch_secs = 1;
    let auth = authenticator(c, vec![]).await;
    assert_eq!(
        provider.jwks_fetches().expect("count"),
        1,
        "discovery fetched the JWKS once"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (alg, kid) in [
        ("ES256", "rotated-ec"),
        ("PS256", "rotated-ps"),
        ("EdDSA", "rotated-ed"),
    ] {
        provider.add_key(alg, kid).expect("key");
        let mut s = spec(json!({}));
        s.kid = Some(kid.into());
        let token = provider.mint(&s).expect("token");
        let principal = auth.authenticate(&bearer(&token)).await;
        assert!(principal.is_ok(), "{alg}: {principal:?}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(
        provider.jwks_fetches().expect("count"),
        4,
        "one refetch per new key"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_does_not_refetch_more_than_once_per_period() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    // Default period (30 s): the discovery fetch just happened, so no refetch at all.
    let auth = Arc::new(authenticator(config(&provider), vec![]).await);
    let mut tokens = Vec::new();
    for i in 0..40 {
        let mut s = spec(json!({}));
        s.kid = Some(format!("flood-{}", i % 4));
        tokens.push(provider.mint_foreign(&s).expect("token"));
    }
    let flood = |auth: Arc<Authenticator>, tokens: Vec<String>| async move {
        let tasks: Vec<_> = tokens
            .into_iter()
            .map(|t| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.authenticate(&bearer(&t)).await })
            })
            .collect();
        for t in tasks {
            let refused = t.await.expect("join").expect_err("unknown kid");
            assert_eq!(
                refused.kind,
                RejectionKind::InvalidToken(TokenError::UnknownKey)
            );
        }
    };
    flood(auth.clone(), tokens.clone()).await;
    assert_eq!(provider.jwks_fetches().expect("count"), 1);
    // A short period, over: the whole flood causes exactly one refetch.
    let mut c = config(&provider);
    c.jwks_min_refetch_secs = 2;
    let short = Arc::new(authenticator(c, vec![]).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = provider.jwks_fetches().expect("count");
    flood(short.clone(), tokens.clone()).await;
    flood(short, tokens).await;
    assert_eq!(provider.jwks_fetches().expect("count") - before, 1);
}

#[tokio::test]
async fn the_protected_resource_metadata_names_issuer_and_policy_scopes() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let policy = Policy::from_toml(EXAMPLE_POLICY).expect("policy");
    let auth = authenticator(config(&provider), policy.scopes_supported()).await;
    let m = auth.metadata();
    assert_eq!(m.resource, RESOURCE);
    assert_eq!(m.authorization_servers, vec![provider.issuer.clone()]);
    assert_eq!(m.scopes_supported, ["code:read", "db:read"]);
    assert_eq!(m.bearer_methods_supported, ["header"]);
    let rejection = auth
        .authenticate(&HeaderMap::new())
        .await
        .expect_err("refused");
    assert_eq!(
        rejection.challenge(),
        format!("Bearer resource_metadata=\"{METADATA}\", scope=\"code:read db:read\"")
    );
}

#[tokio::test]
async fn the_example_policy_with_three_principals() {
    let Some(provider) = oidc::start().expect("provider") else {
        return;
    };
    let policy = Policy::from_toml(EXAMPLE_POLICY).expect("policy");
    let auth = authenticator(config(&provider), policy.scopes_supported()).await;
    let query = ToolRef {
        name: "database_query",
        connector: "database",
    };
    let symbols = ToolRef {
        name: "code_analysis_find_symbols",
        connector: "code_analysis",
    };
    let slack = ToolRef {
        name: "slack_post_message",
        connector: "slack",
    };
    let mut args = serde_json::Map::new();
    args.insert("sql".into(), json!("select 1"));
    let principal = |claims: Value| {
        let token = provider.mint(&spec(claims)).expect("token");
        let auth = &auth;
        async move { auth.authenticate(&bearer(&token)).await.expect("accepted") }
    };

    // No groups: code analysis only; the database is hidden like an unknown tool.
    let dev = principal(json!({"scope": "code:read db:read"})).await;
    assert!(policy.visible(&dev, &symbols));
    assert!(!policy.visible(&dev, &query));
    assert!(!policy.visible(&dev, &slack));
    assert_eq!(
        policy.decide(&dev, &symbols, &args),
        Decision::Allow { rule: Some(1) }
    );
    assert_eq!(policy.decide(&dev, &query, &args), Decision::Hidden);

    // An analyst without db:read: the database is listed, a call needs a step-up.
    let analyst = principal(json!({"scope": "code:read", "groups": ["analysts"]})).await;
    assert!(policy.visible(&analyst, &query));
    let Decision::InsufficientScope(scopes) = policy.decide(&analyst, &query, &args) else {
        panic!("expected insufficient_scope")
    };
    assert_eq!(scopes, ["db:read"]);
    let rejection = auth.insufficient_scope(scopes);
    assert_eq!(rejection.status(), 403);
    assert_eq!(
        rejection.challenge(),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"db:read\", resource_metadata=\"{METADATA}\""
        )
    );

    // An analyst with db:read: allowed.
    let stepped_up = principal(json!({"scope": "code:read db:read", "groups": ["analysts"]})).await;
    assert_eq!(
        policy.decide(&stepped_up, &query, &args),
        Decision::Allow { rule: Some(2) }
    );
    assert!(!policy.visible(&stepped_up, &slack));
}
