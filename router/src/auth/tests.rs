//! The authenticator against a real issuer on loopback: an axum server serving
//! OIDC metadata and a JWKS whose keys the test changes, counting JWKS fetches;
//! tokens signed with Ed25519 / P-256 keys made by aws-lc-rs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use axum::routing::get;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and its public JWK.
struct TestKey {
    alg: Algorithm,
    kid: Option<String>,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        Self {
            alg: Algorithm::EdDSA,
            kid: Some(kid.into()),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()), "kid": kid}),
        }
    }

    fn p256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("keygen");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("key");
        let point = pair.public_key().as_ref();
        Self {
            alg: Algorithm::ES256,
            kid: Some(kid.into()),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": kid}),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// An issuer on loopback whose JWKS the test controls.
struct TestIssuer {
    url: String,
    jwks: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Discovery {
    Oidc,
    Rfc8414Only,
}

impl TestIssuer {
    async fn start(keys: &[&TestKey], discovery: Discovery) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let jwks = Arc::new(Mutex::new(
            keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
        ));
        let fetches = Arc::new(AtomicUsize::new(0));
        let doc = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
        let (j, f) = (jwks.clone(), fetches.clone());
        let mut app = axum::Router::new().route(
            "/jwks",
            get(move || {
                f.fetch_add(1, Ordering::SeqCst);
                let keys = j.lock().expect("lock").clone();
                async move { axum::Json(json!({"keys": keys})) }
            }),
        );
        let d = doc.clone();
        app = app.route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { axum::Json(d) }),
        );
        if discovery == Discovery::Oidc {
            app = app.route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(doc) }),
            );
        }
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            jwks,
            fetches,
            server,
        }
    }

    fn settings(&self) -> AuthSettings {
        AuthConfig {
            issuer: Some(self.url.clone()),
            public_url: Some("http://127.0.0.1:8080".into()),
            forward_claims: vec!["email".into()],
            ..AuthConfig::default()
        }
        .settings()
        .expect("valid")
        .expect("on")
    }

    /// An authenticator that refetches the JWKS for every unknown kid (no
    /// minimum period between fetches).
    async fn refetching_authenticator(&self) -> Authenticator {
        let mut settings = self.settings();
        settings.jwks_min_refetch = std::time::Duration::ZERO;
        Authenticator::discover(settings, vec![])
            .await
            .expect("discover")
    }

    /// The issuer stops publishing key `kid`; a token with a kid `auth` has
    /// never seen makes it fetch the key set again.
    async fn drop_key_and_refetch(&self, auth: &Authenticator, kid: &str) {
        self.jwks.lock().expect("lock").retain(|k| k["kid"] != kid);
        let stranger = TestKey::ed25519("stranger");
        let _ = auth
            .authenticate(&bearer(&stranger.sign(&self.claims())))
            .await;
    }

    async fn authenticator(&self) -> Authenticator {
        Authenticator::discover(self.settings(), vec!["code:read".into()])
            .await
            .expect("discover")
    }

    fn claims(&self) -> Value {
        let now = now();
        json!({
            "iss": self.url, "sub": "user-1", "aud": "http://127.0.0.1:8080/mcp",
            "iat": now, "exp": now + 300, "scope": "code:read db:read", "email": "ana@example.com"
        })
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().map(|m| m.remove(key));
    claims
}

async fn refusal(auth: &Authenticator, headers: &HeaderMap) -> RejectionKind {
    auth.authenticate(headers).await.expect_err("refused").kind
}

#[tokio::test]
async fn a_valid_token_gives_its_principal_with_scopes() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let p = auth
        .authenticate(&bearer(&key.sign(&issuer.claims())))
        .await
        .expect("accepted");
    assert_eq!(p.kind, PrincipalKind::Token);
    assert_eq!(p.sub, "user-1");
    assert!(p.scopes.contains("code:read") && p.scopes.contains("db:read"));
    assert_eq!(p.claims["email"], "ana@example.com");
    let md = auth.forwarded_metadata(&p);
    assert_eq!(
        md.get(SUB_METADATA_KEY).and_then(|v| v.to_str().ok()),
        Some("user-1")
    );
    assert_eq!(
        md.get("switchboard-principal-email")
            .and_then(|v| v.to_str().ok()),
        Some("ana@example.com")
    );
}

#[tokio::test]
async fn es256_tokens_and_audience_arrays_are_accepted() {
    let key = TestKey::p256("ec");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let claims = with(
        issuer.claims(),
        "aud",
        json!(["other", "http://127.0.0.1:8080/mcp"]),
    );
    assert!(auth.authenticate(&bearer(&key.sign(&claims))).await.is_ok());
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let token = key.sign(&issuer.claims());
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("bEaReR   {token}")).expect("hv"),
    );
    assert!(auth.authenticate(&h).await.is_ok());
}

#[tokio::test]
async fn requests_without_a_bearer_token_are_refused_without_an_error_code() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let r = auth
        .authenticate(&HeaderMap::new())
        .await
        .expect_err("refused");
    assert_eq!(r.kind, RejectionKind::MissingToken);
    assert_eq!(
        r.challenge(),
        "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\", scope=\"code:read\""
    );
    let mut basic = HeaderMap::new();
    basic.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    assert_eq!(refusal(&auth, &basic).await, RejectionKind::NotBearer);
    let mut empty = HeaderMap::new();
    empty.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
    assert_eq!(refusal(&auth, &empty).await, RejectionKind::NotBearer);
}

#[tokio::test]
async fn malformed_tokens_are_refused_as_such() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    for garbage in [
        "garbage",
        "a.b",
        "a.b.c.d",
        "e30.e30.e30",
        "ü.ü.ü",
        "a..b",
        "!!.??.**",
    ] {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(format!("Bearer {garbage}").as_bytes()).expect("hv"),
        );
        assert_eq!(
            refusal(&auth, &h).await,
            RejectionKind::InvalidToken(TokenError::Malformed),
            "{garbage}"
        );
    }
}

#[tokio::test]
async fn an_oversized_header_is_refused_before_it_is_parsed() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let limit = auth.settings().max_token_bytes;
    let big = format!("{}.{}.{}", "a".repeat(limit), "b", "c");
    assert_eq!(
        refusal(&auth, &bearer(&big)).await,
        RejectionKind::InvalidToken(TokenError::TooLarge { limit })
    );
    // A valid token padded to exactly the bound still passes the size check.
    let token = key.sign(&issuer.claims());
    let pad = limit - "Bearer ".len() - token.len();
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}{}", " ".repeat(pad))).expect("hv"),
    );
    assert!(auth.authenticate(&h).await.is_ok());
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let token = key.sign(&issuer.claims());
    let mut h = bearer(&token);
    h.append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("hv"),
    );
    assert_eq!(
        refusal(&auth, &h).await,
        RejectionKind::InvalidToken(TokenError::Duplicated)
    );
}

#[tokio::test]
async fn unsigned_and_hmac_tokens_are_refused() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let payload = b64(issuer.claims().to_string().as_bytes());
    let none = format!(
        "{}.{payload}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#)
    );
    for unsigned in [none.clone(), format!("{none}AAAA")] {
        assert_eq!(
            refusal(&auth, &bearer(&unsigned)).await,
            RejectionKind::InvalidToken(TokenError::Unsigned)
        );
    }
    // HS256 keyed with the public key's bytes (the classic confusion attack).
    let x = issuer.jwks.lock().expect("lock")[0]["x"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let hs = encode(
        &header,
        &issuer.claims(),
        &EncodingKey::from_secret(x.as_bytes()).expect("key"),
    )
    .expect("sign");
    assert_eq!(
        refusal(&auth, &bearer(&hs)).await,
        RejectionKind::InvalidToken(TokenError::AlgorithmNotAccepted(Algorithm::HS256))
    );
}

#[tokio::test]
async fn an_algorithm_the_key_is_not_for_is_refused() {
    let ed = TestKey::ed25519("k1");
    let ec = TestKey::p256("k2");
    let issuer = TestIssuer::start(&[&ed], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    // ES256 signature naming the Ed25519 key's kid.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let token = encode(&header, &issuer.claims(), &ec.encoding).expect("sign");
    assert_eq!(
        refusal(&auth, &bearer(&token)).await,
        RejectionKind::InvalidToken(TokenError::AlgorithmKeyMismatch)
    );
}

#[tokio::test]
async fn each_bad_claim_is_refused_with_its_reason() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let c = issuer.claims();
    let n = now();
    let cases = [
        (with(c.clone(), "exp", json!(n - 120)), TokenError::Expired),
        (
            with(c.clone(), "nbf", json!(n + 120)),
            TokenError::NotYetValid,
        ),
        (
            with(c.clone(), "iss", json!("http://127.0.0.1:1")),
            TokenError::WrongIssuer,
        ),
        (
            with(c.clone(), "aud", json!("http://127.0.0.1:8080/other")),
            TokenError::WrongAudience,
        ),
        (
            without(c.clone(), "aud"),
            TokenError::MissingClaim("aud".into()),
        ),
        (
            without(c.clone(), "exp"),
            TokenError::MissingClaim("exp".into()),
        ),
        (
            without(c.clone(), "iss"),
            TokenError::MissingClaim("iss".into()),
        ),
        (
            without(c.clone(), "sub"),
            TokenError::MissingClaim("sub".into()),
        ),
        (
            with(c.clone(), "sub", json!(42)),
            TokenError::MissingClaim("sub".into()),
        ),
        (
            with(c.clone(), "sub", json!("s".repeat(1025))),
            TokenError::SubjectTooLong { limit: 1024 },
        ),
    ];
    for (claims, reason) in cases {
        assert_eq!(
            refusal(&auth, &bearer(&key.sign(&claims))).await,
            RejectionKind::InvalidToken(reason.clone()),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn exp_and_nbf_allow_the_leeway() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let n = now();
    let just_expired = with(issuer.claims(), "exp", json!(n - 10));
    assert!(
        auth.authenticate(&bearer(&key.sign(&just_expired)))
            .await
            .is_ok()
    );
    let almost_valid = with(issuer.claims(), "nbf", json!(n + 10));
    assert!(
        auth.authenticate(&bearer(&key.sign(&almost_valid)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_forged_signature_is_refused() {
    let key = TestKey::ed25519("k1");
    let forger = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    assert_eq!(
        refusal(&auth, &bearer(&forger.sign(&issuer.claims()))).await,
        RejectionKind::InvalidToken(TokenError::BadSignature)
    );
    // A valid token with its payload swapped.
    let good = key.sign(&issuer.claims());
    let parts: Vec<&str> = good.split('.').collect();
    let evil = b64(with(issuer.claims(), "sub", json!("admin"))
        .to_string()
        .as_bytes());
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    assert_eq!(
        refusal(&auth, &bearer(&tampered)).await,
        RejectionKind::InvalidToken(TokenError::BadSignature)
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_then_accepted() {
    let old = TestKey::ed25519("old");
    let issuer = TestIssuer::start(&[&old], Discovery::Oidc).await;
    let auth = issuer.refetching_authenticator().await;
    assert_eq!(auth.jwks_fetches(), 1);
    let new = TestKey::p256("new");
    issuer.jwks.lock().expect("lock").push(new.jwk.clone());
    assert!(
        auth.authenticate(&bearer(&new.sign(&issuer.claims())))
            .await
            .is_ok()
    );
    assert_eq!(auth.jwks_fetches(), 2, "one refetch for the unknown kid");
    assert!(
        auth.authenticate(&bearer(&new.sign(&issuer.claims())))
            .await
            .is_ok()
    );
    assert_eq!(auth.jwks_fetches(), 2, "a known kid needs no fetch");
    // A key the issuer drops stops verifying on the next fetch.
    issuer.drop_key_and_refetch(&auth, "old").await;
    assert_eq!(
        refusal(&auth, &bearer(&old.sign(&issuer.claims()))).await,
        RejectionKind::InvalidToken(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn a_remembered_token_is_checked_again_once_its_key_is_dropped() {
    let old = TestKey::ed25519("old");
    let issuer = TestIssuer::start(&[&old], Discovery::Oidc).await;
    let auth = issuer.refetching_authenticator().await;
    let token = old.sign(&issuer.claims());
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
    assert!(
        auth.authenticate(&bearer(&token)).await.is_ok(),
        "answered from memory"
    );
    // The issuer drops the key; a token with a kid never seen makes the
    // router fetch the key set again.
    issuer.drop_key_and_refetch(&auth, "old").await;
    assert_eq!(auth.jwks_fetches(), 2);
    // What was remembered under the old key set is not taken any more.
    assert_eq!(
        refusal(&auth, &bearer(&token)).await,
        RejectionKind::InvalidToken(TokenError::UnknownKey)
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_period() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = Arc::new(issuer.authenticator().await);
    // The start-up fetch was just now: within the period no refetch at all.
    let stranger = TestKey::ed25519("unknown-1");
    assert_eq!(
        refusal(&auth, &bearer(&stranger.sign(&issuer.claims()))).await,
        RejectionKind::InvalidToken(TokenError::UnknownKey)
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
    // With the period over, 50 concurrent unknown kids cause exactly one fetch.
    let mut settings = issuer.settings();
    settings.jwks_min_refetch = std::time::Duration::from_millis(1000);
    let auth = Arc::new(
        Authenticator::discover(settings, vec![])
            .await
            .expect("discover"),
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = issuer.fetches.load(Ordering::SeqCst);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let auth = auth.clone();
        let token = TestKey::ed25519(&format!("flood-{i}")).sign(&issuer.claims());
        tasks.push(tokio::spawn(async move {
            auth.authenticate(&bearer(&token)).await
        }));
    }
    for t in tasks {
        assert!(t.await.expect("join").is_err());
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn keys_named_by_the_token_itself_are_never_fetched() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let attacker_key = TestKey::ed25519("evil");
    let attacker = TestIssuer::start(&[&attacker_key], Discovery::Oidc).await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("evil".into());
    header.jku = Some(format!("{}/jwks", attacker.url));
    header.jwk = serde_json::from_value(attacker_key.jwk.clone()).ok();
    let token = encode(&header, &issuer.claims(), &attacker_key.encoding).expect("sign");
    assert_eq!(
        refusal(&auth, &bearer(&token)).await,
        RejectionKind::InvalidToken(TokenError::UnknownKey)
    );
    assert_eq!(attacker.fetches.load(Ordering::SeqCst), 0, "jku is ignored");
}

#[tokio::test]
async fn a_token_without_kid_uses_the_single_key_without_kid() {
    let mut key = TestKey::ed25519("k1");
    key.kid = None;
    key.jwk.as_object_mut().map(|m| m.remove("kid"));
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    assert!(
        auth.authenticate(&bearer(&key.sign(&issuer.claims())))
            .await
            .is_ok()
    );
    let other = TestKey::ed25519("x");
    issuer.jwks.lock().expect("lock").push(other.jwk.clone());
    let fresh = issuer.authenticator().await;
    let eager = issuer.refetching_authenticator().await;
    for auth in [&fresh, &eager] {
        assert_eq!(
            refusal(auth, &bearer(&key.sign(&issuer.claims()))).await,
            RejectionKind::InvalidToken(TokenError::NoKid)
        );
        assert_eq!(
            auth.jwks_fetches(),
            1,
            "a missing kid never causes a refetch"
        );
    }
}

#[tokio::test]
async fn keys_are_refreshed_in_the_background_until_the_authenticator_is_dropped() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let mut settings = issuer.settings();
    settings.jwks_refresh = std::time::Duration::from_millis(100);
    let auth = Authenticator::discover(settings, vec![])
        .await
        .expect("discover");
    // A key added at the issuer becomes known without any token asking for it.
    let added = TestKey::ed25519("added");
    issuer.jwks.lock().expect("lock").push(added.jwk.clone());
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let fetched = issuer.fetches.load(Ordering::SeqCst);
    assert!(fetched >= 2, "refreshed: {fetched} fetches");
    assert!(
        auth.authenticate(&bearer(&added.sign(&issuer.claims())))
            .await
            .is_ok()
    );
    drop(auth);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let after_drop = issuer.fetches.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        after_drop,
        "the refresh stopped"
    );
}

#[tokio::test]
async fn an_issuer_that_goes_down_leaves_the_known_keys_working() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let mut settings = issuer.settings();
    settings.jwks_refresh = std::time::Duration::from_millis(50);
    settings.jwks_min_refetch = std::time::Duration::ZERO;
    let auth = Authenticator::discover(settings, vec![])
        .await
        .expect("discover");
    issuer.server.abort();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        auth.authenticate(&bearer(&key.sign(&issuer.claims())))
            .await
            .is_ok()
    );
    let stranger = TestKey::ed25519("stranger");
    assert_eq!(
        refusal(&auth, &bearer(&stranger.sign(&issuer.claims()))).await,
        RejectionKind::InvalidToken(TokenError::UnknownKey)
    );
    assert!(
        auth.authenticate(&bearer(&key.sign(&issuer.claims())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_streamed_jwks_beyond_the_bound_is_cut_off() {
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1000]));
    let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let doc = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
    let body = Arc::new(Mutex::new(Some(body)));
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(doc) }),
        )
        .route(
            "/jwks",
            get(move || {
                let b = body.lock().expect("lock").take().unwrap_or_default();
                async move { axum::response::Response::new(b) }
            }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let err = Authenticator::discover(settings_for(&url), vec![])
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("max_jwks_bytes"), "{err}");
    server.abort();
}

#[tokio::test]
async fn discovery_falls_back_to_rfc_8414_metadata() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Rfc8414Only).await;
    let auth = issuer.authenticator().await;
    assert!(
        auth.authenticate(&bearer(&key.sign(&issuer.claims())))
            .await
            .is_ok()
    );
    assert_eq!(
        auth.metadata().authorization_servers,
        vec![issuer.url.clone()]
    );
    assert_eq!(auth.metadata().resource, "http://127.0.0.1:8080/mcp");
    assert_eq!(
        auth.metadata().scopes_supported,
        vec!["code:read".to_owned()]
    );
}

/// Serves `doc` at every metadata path and `jwks` at `/jwks`, raw.
async fn raw_issuer(
    metadata: impl Fn(&str) -> Value + Send + Sync + 'static,
    jwks: axum::response::Response<String>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let doc = metadata(&url);
    let jwks = Arc::new(Mutex::new(Some(jwks)));
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(doc) }),
        )
        .route(
            "/jwks",
            get(move || {
                let r = jwks.lock().expect("lock").take();
                async move { r.unwrap_or_default() }
            }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

fn settings_for(url: &str) -> AuthSettings {
    AuthConfig {
        issuer: Some(url.into()),
        public_url: Some("http://localhost:8080".into()),
        max_jwks_bytes: 4096,
        ..AuthConfig::default()
    }
    .settings()
    .expect("valid")
    .expect("on")
}

#[tokio::test]
async fn discovery_refuses_metadata_naming_another_issuer() {
    let (url, server) = raw_issuer(
        |_| json!({"issuer": "https://evil.example.com", "jwks_uri": "https://evil.example.com/jwks"}),
        Default::default(),
    )
    .await;
    let err = Authenticator::discover(settings_for(&url), vec![])
        .await
        .expect_err("refused");
    assert!(
        matches!(err, DiscoveryError::IssuerMismatch { .. }),
        "{err}"
    );
    server.abort();
}

#[tokio::test]
async fn discovery_refuses_a_plain_http_jwks_uri_off_loopback() {
    let (url, server) = raw_issuer(
        |url| json!({"issuer": url, "jwks_uri": "http://keys.example.com/jwks"}),
        Default::default(),
    )
    .await;
    let err = Authenticator::discover(settings_for(&url), vec![])
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("jwks_uri"), "{err}");
    server.abort();
}

#[tokio::test]
async fn an_oversized_jwks_is_refused_naming_the_bound() {
    let body = json!({"keys": [], "pad": "x".repeat(5000)}).to_string();
    let (url, server) = raw_issuer(
        |url| json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}),
        axum::response::Response::new(body),
    )
    .await;
    let err = Authenticator::discover(settings_for(&url), vec![])
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("max_jwks_bytes"), "{err}");
    server.abort();
}

#[tokio::test]
async fn a_redirecting_jwks_is_not_followed() {
    let redirect = axum::response::Response::builder()
        .status(302)
        .header("location", "http://evil.example.com/jwks")
        .body(String::new())
        .expect("response");
    let (url, server) = raw_issuer(
        |url| json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}),
        redirect,
    )
    .await;
    let err = Authenticator::discover(settings_for(&url), vec![])
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("302"), "{err}");
    server.abort();
}

#[tokio::test]
async fn an_unreachable_issuer_fails_start_up_with_its_name() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let err = Authenticator::discover(settings_for(&url), vec![])
        .await
        .expect_err("refused");
    assert!(matches!(err, DiscoveryError::NoMetadata { .. }));
    assert!(err.to_string().contains(&url), "{err}");
}

/// The wiring the HTTP front door uses, over real HTTP: metadata open, `/mcp`
/// behind [`require_bearer`], answers as a client sees them.
#[tokio::test]
async fn over_http_refusals_carry_the_challenge_and_never_echo_the_token() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = Arc::new(issuer.authenticator().await);
    let mcp = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(
                |axum::Extension(p): axum::Extension<Principal>| async move {
                    format!("hello {}", p.sub)
                },
            ),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            require_bearer,
        ));
    let app = mcp.merge(auth.metadata().routes());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::new();
    let challenge = |r: &reqwest::Response| {
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };

    let none = client
        .post(format!("{base}/mcp"))
        .send()
        .await
        .expect("post");
    assert_eq!(none.status(), 401);
    assert_eq!(
        challenge(&none),
        "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\", scope=\"code:read\""
    );

    let expired = key.sign(&with(issuer.claims(), "exp", json!(now() - 600)));
    let refused = client
        .post(format!("{base}/mcp"))
        .bearer_auth(&expired)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    assert!(challenge(&refused).starts_with("Bearer error=\"invalid_token\""));
    let body = refused.text().await.expect("body");
    assert_eq!(body, "the token has expired\n");
    assert!(!body.contains(&expired[..20]));

    let ok = client
        .post(format!("{base}/mcp"))
        .bearer_auth(key.sign(&issuer.claims()))
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "hello user-1");

    let metadata: Value = client
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(metadata["resource"], "http://127.0.0.1:8080/mcp");
    assert_eq!(metadata["authorization_servers"], json!([issuer.url]));
    server.abort();
}

mod properties {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::*;

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn any_json() -> impl Strategy<Value = Value> {
        crate::testjson::any_json("[a-z]{1,4}".prop_map(String::from))
    }

    /// Whatever the Authorization header holds, the answer is a refusal, never a panic.
    #[test]
    fn arbitrary_authorization_headers_are_refused_without_panic() {
        let rt = runtime();
        let key = TestKey::ed25519("k1");
        let (_issuer, auth) = rt.block_on(async {
            let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
            let auth = issuer.authenticator().await;
            (issuer, auth)
        });
        let alg = prop_oneof![
            Just(json!("none")),
            Just(json!("HS256")),
            Just(json!("EdDSA")),
            Just(json!("RS256")),
            any_json(),
        ];
        let shaped =
            (alg, any_json(), any_json(), any::<Vec<u8>>()).prop_map(|(alg, kid, payload, sig)| {
                let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
                format!(
                    "Bearer {}.{}.{}",
                    b64(header.to_string().as_bytes()),
                    b64(payload.to_string().as_bytes()),
                    b64(&sig)
                )
                .into_bytes()
            });
        let strategy = prop_oneof![any::<Vec<u8>>(), shaped];
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            ..Config::default()
        });
        runner
            .run(&strategy, |bytes| {
                if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                    let mut headers = HeaderMap::new();
                    headers.insert(AUTHORIZATION, value);
                    let answer = rt.block_on(auth.authenticate(&headers));
                    prop_assert!(answer.is_err());
                }
                Ok(())
            })
            .expect("every header refused");
    }

    /// Correctly signed tokens with arbitrary claims: accepted only when every
    /// checked claim holds.
    #[test]
    fn signed_tokens_with_arbitrary_claims_are_accepted_only_when_valid() {
        let rt = runtime();
        let key = TestKey::ed25519("k1");
        let (issuer, auth) = rt.block_on(async {
            let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
            let auth = issuer.authenticator().await;
            (issuer, auth)
        });
        let valid = issuer.claims();
        let field = prop_oneof![
            Just("iss"),
            Just("sub"),
            Just("aud"),
            Just("exp"),
            Just("nbf")
        ];
        let strategy = prop::collection::vec((field, prop::option::of(any_json())), 0..4);
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            ..Config::default()
        });
        runner
            .run(&strategy, |changes| {
                let mut claims = valid.clone();
                for (name, value) in &changes {
                    match value {
                        Some(v) => claims[*name] = v.clone(),
                        None => claims = without(claims, name),
                    }
                }
                let answer = rt.block_on(auth.authenticate(&bearer(&key.sign(&claims))));
                if let Ok(p) = answer {
                    let n = now() as f64;
                    prop_assert_eq!(&claims["iss"], &valid["iss"]);
                    prop_assert_eq!(Some(p.sub.as_str()), claims["sub"].as_str());
                    prop_assert!(claims["exp"].as_f64().is_some_and(|e| e + 30.0 >= n));
                    prop_assert!(
                        claims
                            .get("nbf")
                            .is_none_or(|v| v.as_f64().is_some_and(|b| b - 30.0 <= n))
                    );
                    let aud_ok = match &claims["aud"] {
                        Value::String(a) => a == "http://127.0.0.1:8080/mcp",
                        Value::Array(items) => {
                            items.iter().any(|a| a == "http://127.0.0.1:8080/mcp")
                        }
                        _ => false,
                    };
                    prop_assert!(aud_ok, "accepted aud {}", claims["aud"]);
                }
                Ok(())
            })
            .expect("only valid claims accepted");
    }
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let c = AuthConfig::default();
    assert_eq!(c.leeway_secs, 30);
    assert_eq!(c.max_token_bytes, 16_384);
    assert_eq!(c.max_jwks_bytes, 262_144);
    assert_eq!(c.max_jwks_keys, 64);
    assert_eq!(c.fetch_timeout_secs, 5);
    assert_eq!(c.jwks_min_refetch_secs, 30);
    assert_eq!(c.jwks_refresh_secs, 300);
    assert_eq!(c.verified_token_cache, 4096);
    assert_eq!(c.max_forwarded_claim_bytes, 1024);
}

#[test]
fn forwarded_claim_names_may_have_digits() {
    let c = AuthConfig {
        issuer: Some("https://idp.example.com".into()),
        public_url: Some("https://m.example".into()),
        forward_claims: vec!["tier2".into(), "0".into()],
        ..AuthConfig::default()
    };
    let s = c.settings().expect("valid").expect("on");
    assert_eq!(s.forward_claims, ["tier2", "0"]);
}

#[test]
fn an_octet_key_pair_on_another_curve_than_ed25519_is_not_kept() {
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(json!({"kty": "OKP", "crv": "P-256", "x": "AA"})).expect("jwk");
    assert_eq!(jwks::key_algorithms(&jwk), None);
}

/// A JWKS document with no keys, padded with spaces to exactly `len` bytes.
fn padded_jwks(len: usize) -> String {
    let doc = r#"{"keys": []}"#;
    format!("{doc}{}", " ".repeat(len - doc.len()))
}

#[tokio::test]
async fn a_jwks_of_exactly_the_bound_is_accepted_whole_or_streamed() {
    // settings_for: max_jwks_bytes = 4096.
    let (url, server) = raw_issuer(
        |url| json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}),
        axum::response::Response::new(padded_jwks(4096)),
    )
    .await;
    assert!(
        Authenticator::discover(settings_for(&url), vec![])
            .await
            .is_ok(),
        "a 4096-byte document with its length given"
    );
    server.abort();

    // The same without a length: chunks that add up to the bound.
    let body = padded_jwks(4096).into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let body = Arc::new(Mutex::new(Some(axum::body::Body::from_stream(
        futures::stream::iter(chunks),
    ))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let doc = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(doc) }),
        )
        .route(
            "/jwks",
            get(move || {
                let b = body.lock().expect("lock").take().unwrap_or_default();
                async move { axum::response::Response::new(b) }
            }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let auth = Authenticator::discover(settings_for(&url), vec![]).await;
    assert!(auth.is_ok(), "streamed: {:?}", auth.err());
    server.abort();
}

#[tokio::test]
async fn the_debug_form_names_the_jwks_uri_and_no_key_material() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let shown = format!("{auth:?}");
    assert!(
        shown.contains(&format!("jwks_uri: \"{}/jwks\"", issuer.url)),
        "{shown}"
    );
    assert!(shown.contains("fetches: 1"), "{shown}");
    let x = key.jwk["x"].as_str().unwrap_or("-");
    assert!(!shown.contains(x), "{shown}");
}

#[tokio::test]
async fn a_token_with_characters_outside_base64url_is_malformed_without_a_key_lookup() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.refetching_authenticator().await;
    // A well-formed header naming an unknown key, then a payload and signature
    // in the standard (not URL-safe) alphabet.
    let header = b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"unknown"}"#);
    let token = format!("{header}.ab+c/d==.e+f/");
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("hv"),
    );
    assert_eq!(
        refusal(&auth, &h).await,
        RejectionKind::InvalidToken(TokenError::Malformed)
    );
    assert_eq!(auth.jwks_fetches(), 1, "no refetch for a malformed token");
}

#[tokio::test]
async fn a_subject_of_exactly_the_forwarding_bound_is_accepted() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let claims = with(issuer.claims(), "sub", json!("s".repeat(1024)));
    let p = auth
        .authenticate(&bearer(&key.sign(&claims)))
        .await
        .expect("accepted");
    assert_eq!(p.sub.len(), 1024);
}

#[tokio::test]
async fn a_time_claim_of_the_wrong_type_is_named() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    // `nbf` is optional, so a string there is a claim of the wrong type (a
    // string `exp` counts as missing, as required claims must parse).
    let claims = with(issuer.claims(), "nbf", json!("tomorrow"));
    assert_eq!(
        refusal(&auth, &bearer(&key.sign(&claims))).await,
        RejectionKind::InvalidToken(TokenError::BadClaim("nbf".into()))
    );
}

#[test]
fn a_subject_cut_to_the_bound_keeps_a_whole_escape_at_its_end() {
    let Value::Object(claims) = json!({"sub": "ab ü"}) else {
        unreachable!()
    };
    let p = Principal::from_claims(claims).expect("sub");
    // "ab%20%C3%BC": five bytes end on the whole escape of the space.
    let md = principal_metadata(&p, &[], 5);
    assert_eq!(
        md.get(SUB_METADATA_KEY).and_then(|v| v.to_str().ok()),
        Some("ab%20")
    );
    let md = principal_metadata(&p, &[], 4);
    assert_eq!(
        md.get(SUB_METADATA_KEY).and_then(|v| v.to_str().ok()),
        Some("ab")
    );
}

#[test]
fn a_rejection_displays_its_sentence() {
    let r = AuthRejection {
        kind: RejectionKind::InvalidToken(TokenError::Expired),
        resource_metadata: "https://m.example/.well-known/oauth-protected-resource/mcp".into(),
        scope_hint: vec![],
    };
    assert_eq!(r.to_string(), "the token has expired");
    assert_eq!(r.to_string(), r.message());
}

#[tokio::test]
async fn dropping_the_authenticator_ends_its_background_refresh_at_once() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    // The next refresh is five minutes away: only the drop can end the task now.
    let auth = issuer.authenticator().await;
    assert!(metrics.num_alive_tasks() > before);
    drop(auth);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while metrics.num_alive_tasks() > before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        before,
        "the refresh task (and the fetch connections) are gone"
    );
}

#[tokio::test]
async fn the_first_background_refresh_comes_one_period_after_start_up() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let mut settings = issuer.settings();
    settings.jwks_refresh = std::time::Duration::from_secs(2);
    let auth = Authenticator::discover(settings, vec![])
        .await
        .expect("discover");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        1,
        "only the start-up fetch so far"
    );
    drop(auth);
}

#[tokio::test]
async fn a_remembered_token_stops_working_once_the_issuer_drops_its_key() {
    let old = TestKey::ed25519("old");
    let issuer = TestIssuer::start(&[&old], Discovery::Oidc).await;
    let mut settings = issuer.settings();
    settings.jwks_refresh = std::time::Duration::from_millis(100);
    let auth = Authenticator::discover(settings, vec![])
        .await
        .expect("discover");
    let token = old.sign(&issuer.claims());
    for _ in 0..3 {
        assert!(
            auth.authenticate(&bearer(&token)).await.is_ok(),
            "remembered"
        );
    }
    let new = TestKey::ed25519("new");
    *issuer.jwks.lock().expect("lock") = vec![new.jwk.clone()];
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(
        refusal(&auth, &bearer(&token)).await,
        RejectionKind::InvalidToken(TokenError::UnknownKey),
        "verified again after the refresh, with the key gone"
    );
    assert!(
        auth.authenticate(&bearer(&new.sign(&issuer.claims())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_it_expires() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let mut settings = issuer.settings();
    settings.leeway = std::time::Duration::ZERO;
    let auth = Authenticator::discover(settings, vec![])
        .await
        .expect("discover");
    let token = key.sign(&with(issuer.claims(), "exp", json!(now() + 1)));
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        refusal(&auth, &bearer(&token)).await,
        RejectionKind::InvalidToken(TokenError::Expired)
    );
}

#[tokio::test]
async fn a_token_one_character_off_a_remembered_one_is_verified_on_its_own() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let token = key.sign(&issuer.claims());
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
    // Flip one character of the signature (not the last, whose low bits may be padding).
    let mut forged = token.into_bytes();
    let at = forged.len() - 5;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    assert_eq!(
        refusal(&auth, &bearer(&forged)).await,
        RejectionKind::InvalidToken(TokenError::BadSignature)
    );
}

#[test]
fn verified_tokens_answer_only_for_their_key_set_and_lifetime_and_can_be_off() {
    let principal =
        Principal::from_claims(json!({"sub": "ana"}).as_object().cloned().expect("object"))
            .expect("principal");
    let ttl = std::time::Duration::from_secs(60);
    let cache = VerifiedTokens::new(8, ttl);
    let digest = VerifiedTokens::digest("a.b.c");
    assert_ne!(digest, VerifiedTokens::digest("a.b.d"));
    cache.insert(digest, &principal, now() + 60, 3);
    assert_eq!(cache.get(&digest, 3).map(|p| p.sub), Some("ana".into()));
    assert!(cache.get(&digest, 4).is_none(), "another key set");
    assert!(cache.get(&digest, 3).is_none(), "forgotten once stale");
    cache.insert(digest, &principal, now().saturating_sub(1), 3);
    assert!(cache.get(&digest, 3).is_none(), "expired");
    let off = VerifiedTokens::new(0, ttl);
    off.insert(digest, &principal, now() + 60, 3);
    assert!(off.get(&digest, 3).is_none(), "0 turns the cache off");
}

#[tokio::test]
async fn a_verified_token_is_remembered_and_then_answered_from_memory() {
    let key = TestKey::ed25519("k1");
    let issuer = TestIssuer::start(&[&key], Discovery::Oidc).await;
    let auth = issuer.authenticator().await;
    let token = key.sign(&issuer.claims());
    let principal = auth.authenticate(&bearer(&token)).await.expect("accepted");
    let generation = auth.keys.generation();
    assert_eq!(
        auth.verified
            .get(&VerifiedTokens::digest(&token), generation)
            .map(|p| p.sub),
        Some(principal.sub.clone()),
        "remembered once verified"
    );
    assert_eq!(principal.token, Some(VerifiedTokens::digest(&token)));
    // What is remembered is answered without another check: a remembered
    // entry for a token no key signed is taken (only the cache can do that).
    let unsigned = format!("{}.{}.AAAA", "eyJhbGciOiJFZERTQSJ9", "eyJzdWIiOiJ4In0");
    auth.verified.insert(
        VerifiedTokens::digest(&unsigned),
        &principal,
        now() + 60,
        generation,
    );
    assert!(auth.authenticate(&bearer(&unsigned)).await.is_ok());
}
