//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document that tells an
//! MCP client which authorization server to get a token from, for which
//! resource, with which scopes. Served at `/.well-known/oauth-protected-resource/mcp`
//! (the resource's own path) and `/.well-known/oauth-protected-resource`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

/// Path of the metadata for the `/mcp` resource (RFC 9728 §3.1).
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
/// Path of the metadata at the host's root (clients that do not insert the path).
pub const ROOT_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The RFC 9728 document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    /// The canonical resource: `<public-url>/mcp`.
    pub resource: String,
    /// The issuer.
    pub authorization_servers: Vec<String>,
    /// Every scope a policy rule asks for (left out when there is no policy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Always `["header"]`: tokens in query strings or bodies are not read.
    pub bearer_methods_supported: Vec<String>,
}

impl ProtectedResourceMetadata {
    /// The document for `resource`, protected by tokens from `issuer`.
    pub fn new(resource: String, issuer: String, scopes_supported: Vec<String>) -> Self {
        Self {
            resource,
            authorization_servers: vec![issuer],
            scopes_supported,
            bearer_methods_supported: vec!["header".to_owned()],
        }
    }

    /// Routes serving the document at both well-known paths (unauthenticated,
    /// as clients read it before they have a token). Merge into the HTTP router.
    pub fn routes<S: Clone + Send + Sync + 'static>(self) -> axum::Router<S> {
        let root = self.clone();
        axum::Router::new()
            .route(RESOURCE_METADATA_PATH, get(move || async move { self }))
            .route(ROOT_METADATA_PATH, get(move || async move { root }))
    }
}

impl IntoResponse for ProtectedResourceMetadata {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_document_has_the_rfc_9728_fields() {
        let m = ProtectedResourceMetadata::new(
            "https://mcp.example.com/mcp".into(),
            "https://idp.example.com".into(),
            vec!["code:read".into(), "db:read".into()],
        );
        assert_eq!(
            serde_json::to_value(&m).expect("json"),
            json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://idp.example.com"],
                "scopes_supported": ["code:read", "db:read"],
                "bearer_methods_supported": ["header"]
            })
        );
        let without = ProtectedResourceMetadata::new("r".into(), "i".into(), vec![]);
        assert!(
            serde_json::to_value(&without)
                .expect("json")
                .get("scopes_supported")
                .is_none()
        );
    }

    #[tokio::test]
    async fn both_well_known_paths_serve_it_over_http() {
        let m = ProtectedResourceMetadata::new(
            "http://127.0.0.1:1/mcp".into(),
            "http://127.0.0.1:2".into(),
            vec!["s".into()],
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app: axum::Router = m.clone().routes();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        for path in [RESOURCE_METADATA_PATH, ROOT_METADATA_PATH] {
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .expect("get");
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{path}"
            );
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body, serde_json::to_value(&m).expect("json"), "{path}");
        }
        let missing = client
            .get(format!(
                "http://{addr}/.well-known/oauth-protected-resource/other"
            ))
            .send()
            .await
            .expect("get");
        assert_eq!(missing.status(), 404);
        server.abort();
    }
}
