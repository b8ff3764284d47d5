//! Resources, prompts and completions of every connector, as one MCP server.
//!
//! A connector that serves the generic `switchboard.mcp.v1.Resources` or
//! `Prompts` service (found by reflection, like its tools) has them aggregated
//! here. Lists are paged connector by connector: the router's cursor names the
//! connector and carries that connector's own cursor. Resource URIs and prompt
//! names are namespaced with the connector's prefix (see [`crate::content`]) and
//! mapped back when a client reads, gets, completes or subscribes. Reads are
//! cached for the TTL the connector returns; a subscription is a
//! `WatchResource` stream whose messages become
//! `notifications/resources/updated` (and evict the cached read).

use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Reference,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json, json};
use switchboard_proto::mcp::v1 as pb;
use tonic::{Code, Status};

use super::authorize::{Surface, unknown};
use super::status::protocol_error;
use super::{Caller, Pipeline};
use crate::content::{
    completion_values, has_terminal_control, insert_text, inward_name, inward_uri, outward_name,
    outward_uri, prompt_content, resource_contents_json, terminal_safe,
};
use crate::trace::Hop;
use crate::upstream::Upstream;

/// Largest number of completion values passed on (the MCP limit).
const MAX_COMPLETIONS: usize = 100;
/// The generic services' full names, as their client spans carry them.
const RESOURCES_SERVICE: &str = "switchboard.mcp.v1.Resources";
const PROMPTS_SERVICE: &str = "switchboard.mcp.v1.Prompts";

/// A list request to `upstream`, carrying the list's span context when
/// traces are on (lists forward no caller: every caller sees the same list).
fn listing_request<T>(upstream: &Upstream, message: T, traceparent: &str) -> tonic::Request<T> {
    let mut request = upstream.request(message);
    if !traceparent.is_empty() {
        crate::upstream::carry(&mut request, traceparent, &Default::default());
    }
    request
}

/// The gRPC status of a call's answer, for its client span.
fn code_of<T>(answer: &Result<T, Status>) -> Code {
    answer.as_ref().map_or_else(Status::code, |_| Code::Ok)
}

/// A cached `resources/read` answer and how long it may be served.
#[derive(Debug, Clone)]
pub struct CachedRead {
    result: Arc<ReadResourceResult>,
    ttl: Duration,
}

/// Per-entry expiry: each read lives for the TTL its connector gave.
struct ReadExpiry;

impl moka::Expiry<String, CachedRead> for ReadExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &CachedRead,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The shared cache of resource reads, keyed by client-facing URI.
pub fn read_cache() -> moka::sync::Cache<String, CachedRead> {
    moka::sync::Cache::builder()
        .max_capacity(1024)
        .expire_after(ReadExpiry)
        .build()
}

/// What a paged list aggregates.
#[derive(Debug, Clone, Copy)]
enum Listing {
    Resources,
    Templates,
    Prompts,
}

/// A result from its JSON, marked complete (2026-07-28 clients require
/// `resultType`; rmcp strips it for older ones).
fn from_json<T: DeserializeOwned>(mut value: Json) -> Result<T, McpError> {
    if let Json::Object(map) = &mut value {
        map.entry("resultType").or_insert_with(|| json!("complete"));
    }
    serde_json::from_value(value).map_err(|e| {
        McpError::internal_error(format!("invalid result from a connector: {e}"), None)
    })
}

/// The answer to a completion of something unknown or hidden: no values.
pub(crate) fn no_completions() -> Result<CompleteResult, McpError> {
    from_json(json!({ "completion": { "values": [], "hasMore": false } }))
}

impl Pipeline {
    /// Serving connectors that offer `feature`, in configuration order.
    fn owners(&self, feature: impl Fn(&crate::catalog::Features) -> bool) -> Vec<Upstream> {
        self.catalog()
            .serving_with(feature)
            .iter()
            .filter_map(|name| self.upstream(name).cloned())
            .collect()
    }

    /// One page of a connector's list, in a client span (a child of the
    /// request's span, whose context the connector receives).
    async fn list_page(
        &self,
        listing: Listing,
        upstream: &Upstream,
        cursor: String,
    ) -> Result<(Vec<Json>, String), Status> {
        let (service, method) = match listing {
            Listing::Resources => (RESOURCES_SERVICE, "ListResources"),
            Listing::Templates => (RESOURCES_SERVICE, "ListResourceTemplates"),
            Listing::Prompts => (PROMPTS_SERVICE, "ListPrompts"),
        };
        let hop = Hop::rpc(service, method, "");
        let page = Self::list_page_in(listing, upstream, cursor, hop.traceparent("")).await;
        hop.end(code_of(&page));
        page
    }

    async fn list_page_in(
        listing: Listing,
        upstream: &Upstream,
        cursor: String,
        traceparent: &str,
    ) -> Result<(Vec<Json>, String), Status> {
        let prefix = upstream.config().prefix.as_str();
        match listing {
            Listing::Resources => {
                let page = upstream
                    .resources()
                    .list_resources(listing_request(
                        upstream,
                        pb::ListResourcesRequest { cursor },
                        traceparent,
                    ))
                    .await?
                    .into_inner();
                let items = page
                    .resources
                    .iter()
                    .filter(|r| !has_terminal_control(&r.uri))
                    .map(|r| {
                        let mut m = Map::new();
                        m.insert("uri".into(), json!(outward_uri(prefix, &r.uri)));
                        m.insert("name".into(), json!(terminal_safe(&r.name)));
                        insert_text(&mut m, "title", &r.title);
                        insert_text(&mut m, "description", &r.description);
                        insert_text(&mut m, "mimeType", &r.mime_type);
                        if let Some(size) = r.size {
                            m.insert("size".into(), json!(size));
                        }
                        Json::Object(m)
                    })
                    .collect();
                Ok((items, page.next_cursor))
            }
            Listing::Templates => {
                let page = upstream
                    .resources()
                    .list_resource_templates(listing_request(
                        upstream,
                        pb::ListResourceTemplatesRequest { cursor },
                        traceparent,
                    ))
                    .await?
                    .into_inner();
                let items = page
                    .templates
                    .iter()
                    .filter(|t| !has_terminal_control(&t.uri_template))
                    .map(|t| {
                        let mut m = Map::new();
                        m.insert(
                            "uriTemplate".into(),
                            json!(outward_uri(prefix, &t.uri_template)),
                        );
                        m.insert("name".into(), json!(terminal_safe(&t.name)));
                        insert_text(&mut m, "title", &t.title);
                        insert_text(&mut m, "description", &t.description);
                        insert_text(&mut m, "mimeType", &t.mime_type);
                        Json::Object(m)
                    })
                    .collect();
                Ok((items, page.next_cursor))
            }
            Listing::Prompts => {
                let page = upstream
                    .prompts()
                    .list_prompts(listing_request(
                        upstream,
                        pb::ListPromptsRequest { cursor },
                        traceparent,
                    ))
                    .await?
                    .into_inner();
                // A name is the prompt's identity: one a terminal would act
                // on is left out rather than renamed.
                let items = page
                    .prompts
                    .iter()
                    .filter(|p| {
                        !has_terminal_control(&p.name)
                            && !p.arguments.iter().any(|a| has_terminal_control(&a.name))
                    })
                    .map(|p| {
                        let mut m = Map::new();
                        m.insert("name".into(), json!(outward_name(prefix, &p.name)));
                        insert_text(&mut m, "title", &p.title);
                        insert_text(&mut m, "description", &p.description);
                        let arguments: Vec<Json> = p
                            .arguments
                            .iter()
                            .map(|a| {
                                let mut arg = Map::new();
                                arg.insert("name".into(), json!(a.name));
                                insert_text(&mut arg, "title", &a.title);
                                insert_text(&mut arg, "description", &a.description);
                                arg.insert("required".into(), json!(a.required));
                                Json::Object(arg)
                            })
                            .collect();
                        if !arguments.is_empty() {
                            m.insert("arguments".into(), Json::Array(arguments));
                        }
                        Json::Object(m)
                    })
                    .collect();
                Ok((items, page.next_cursor))
            }
        }
    }

    /// One page of an aggregated list. The cursor is `<connector>|<its cursor>`.
    async fn aggregate(
        &self,
        listing: Listing,
        cursor: Option<String>,
    ) -> Result<(Vec<Json>, Option<String>), McpError> {
        self.catalog().wait_ready().await;
        let owners = self.owners(|f| match listing {
            Listing::Resources | Listing::Templates => f.resources,
            Listing::Prompts => f.prompts,
        });
        let (mut index, mut inner) = match cursor.as_deref() {
            None | Some("") => (0, String::new()),
            Some(raw) => {
                let (name, inner) = raw.split_once('|').ok_or_else(|| {
                    McpError::invalid_params(
                        format!(
                            "invalid cursor {raw:?}: pass back the nextCursor of the previous page"
                        ),
                        None,
                    )
                })?;
                let index = owners.iter().position(|u| u.name() == name).ok_or_else(|| {
                    McpError::invalid_params(
                        format!("cursor {raw:?} names connector {name:?}, which is not serving now: list again from the start"),
                        None,
                    )
                })?;
                (index, inner.to_owned())
            }
        };
        let mut items = Vec::new();
        while index < owners.len() {
            let upstream = &owners[index];
            match self
                .list_page(listing, upstream, std::mem::take(&mut inner))
                .await
            {
                Ok((page, next)) => {
                    items.extend(page);
                    if !next.is_empty() {
                        return Ok((items, Some(format!("{}|{next}", upstream.name()))));
                    }
                }
                Err(status) => {
                    tracing::warn!(connector = upstream.name(), ?listing, code = ?status.code(), error = status.message(), "listing failed, connector skipped");
                }
            }
            index += 1;
            // Stop at a connector boundary once there is something to return.
            if !items.is_empty() && index < owners.len() {
                return Ok((items, Some(format!("{}|", owners[index].name()))));
            }
        }
        Ok((items, None))
    }

    /// `resources/list`.
    pub(crate) async fn list_resources_page(
        &self,
        cursor: Option<String>,
    ) -> Result<ListResourcesResult, McpError> {
        let (items, next) = self.aggregate(Listing::Resources, cursor).await?;
        from_json(json!({ "resources": items, "nextCursor": next }))
    }

    /// `resources/templates/list`.
    pub(crate) async fn list_templates_page(
        &self,
        cursor: Option<String>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let (items, next) = self.aggregate(Listing::Templates, cursor).await?;
        from_json(json!({ "resourceTemplates": items, "nextCursor": next }))
    }

    /// `prompts/list`.
    pub(crate) async fn list_prompts_page(
        &self,
        cursor: Option<String>,
    ) -> Result<ListPromptsResult, McpError> {
        let (items, next) = self.aggregate(Listing::Prompts, cursor).await?;
        from_json(json!({ "prompts": items, "nextCursor": next }))
    }

    /// Connectors that may own a client-facing resource URI, with their own
    /// URI: prefixed connectors whose prefix matches first, then unprefixed ones.
    fn resource_candidates(&self, uri: &str) -> Vec<(Upstream, String)> {
        self.candidates(|f| f.resources, |prefix| inward_uri(prefix, uri))
    }

    /// Connectors that may own a client-facing prompt name, with their own name.
    fn prompt_candidates(&self, name: &str) -> Vec<(Upstream, String)> {
        self.candidates(|f| f.prompts, |prefix| inward_name(prefix, name))
    }

    /// Serving connectors with `feature` for which `inward` maps the client's name
    /// to theirs, prefixed connectors first (in configuration order).
    fn candidates<'n>(
        &self,
        feature: impl Fn(&crate::catalog::Features) -> bool,
        inward: impl Fn(&str) -> Option<&'n str>,
    ) -> Vec<(Upstream, String)> {
        let mut owners = self.owners(feature);
        // A stable sort keeps configuration order within each group.
        owners.sort_by_key(|u| u.config().prefix.is_empty());
        owners
            .into_iter()
            .filter_map(|u| {
                let inner = inward(&u.config().prefix)?.to_owned();
                Some((u, inner))
            })
            .collect()
    }

    /// `resources/read`, from the cache when the connector allowed it.
    pub(crate) async fn read_resource_cached(
        &self,
        caller: &Caller,
        uri: &str,
    ) -> Result<ReadResourceResult, McpError> {
        if let Some(hit) = self.reads().get(uri) {
            return Ok((*hit.result).clone());
        }
        self.catalog().wait_ready().await;
        let candidates = self.resource_candidates(uri);
        let single_owner = candidates.len() == 1;
        for (upstream, inner) in candidates {
            let hop = Hop::rpc(RESOURCES_SERVICE, "ReadResource", &caller.traceparent);
            let answer = upstream
                .resources()
                .read_resource(upstream.request_with(
                    pb::ReadResourceRequest { uri: inner },
                    hop.traceparent(&caller.traceparent),
                    &self.forwarded(caller),
                ))
                .await;
            hop.end(code_of(&answer));
            match answer {
                Ok(response) => {
                    let response = response.into_inner();
                    let prefix = upstream.config().prefix.as_str();
                    let contents: Vec<Json> = response
                        .contents
                        .iter()
                        .map(|c| resource_contents_json(c, prefix))
                        .collect();
                    let result: ReadResourceResult = from_json(json!({ "contents": contents }))?;
                    if response.ttl_seconds > 0 {
                        self.reads().insert(
                            uri.to_owned(),
                            CachedRead {
                                result: Arc::new(result.clone()),
                                ttl: Duration::from_secs(u64::from(response.ttl_seconds)),
                            },
                        );
                    }
                    return Ok(result);
                }
                // With one possible owner, its reason (ignored, hidden, ...) is the answer.
                Err(status) if status.code() == Code::NotFound && !single_owner => continue,
                Err(status) => {
                    return Err(protocol_error(
                        upstream.name(),
                        &format!("reading {uri} failed"),
                        &status,
                    ));
                }
            }
        }
        Err(unknown(Surface::Resource, uri))
    }

    /// `prompts/get`.
    pub(crate) async fn get_prompt_from_owner(
        &self,
        caller: &Caller,
        name: &str,
        arguments: Option<Map<String, Json>>,
    ) -> Result<GetPromptResult, McpError> {
        self.catalog().wait_ready().await;
        let mut values = std::collections::HashMap::new();
        for (key, value) in arguments.unwrap_or_default() {
            let text = match value {
                Json::String(s) => s,
                Json::Null => continue,
                other => other.to_string(),
            };
            values.insert(key, text);
        }
        for (upstream, inner) in self.prompt_candidates(name) {
            let hop = Hop::rpc(PROMPTS_SERVICE, "GetPrompt", &caller.traceparent);
            let answer = upstream
                .prompts()
                .get_prompt(upstream.request_with(
                    pb::GetPromptRequest {
                        name: inner,
                        arguments: values.clone(),
                    },
                    hop.traceparent(&caller.traceparent),
                    &self.forwarded(caller),
                ))
                .await;
            hop.end(code_of(&answer));
            match answer {
                Ok(response) => {
                    let response = response.into_inner();
                    let prefix = upstream.config().prefix.as_str();
                    let messages: Vec<Json> = response
                        .messages
                        .iter()
                        .map(|m| {
                            let role = crate::content::role_name(m.role).unwrap_or("user");
                            json!({ "role": role, "content": prompt_content(m.content.as_ref(), prefix) })
                        })
                        .collect();
                    let mut out = Map::new();
                    insert_text(&mut out, "description", &response.description);
                    out.insert("messages".into(), Json::Array(messages));
                    return from_json(Json::Object(out));
                }
                Err(status) if status.code() == Code::NotFound => continue,
                Err(status) => {
                    return Err(protocol_error(
                        upstream.name(),
                        &format!("prompt {name} failed"),
                        &status,
                    ));
                }
            }
        }
        Err(unknown(Surface::Prompt, name))
    }

    /// `completion/complete`, forwarded to the connector that owns the prompt
    /// or resource template. A connector without completions gives none.
    pub(crate) async fn complete_from_owner(
        &self,
        caller: &Caller,
        request: CompleteRequestParams,
    ) -> Result<CompleteResult, McpError> {
        self.catalog().wait_ready().await;
        let context = request
            .context
            .and_then(|c| c.arguments)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let (candidates, is_prompt) = match &request.r#ref {
            Reference::Prompt(p) => (self.prompt_candidates(&p.name), true),
            Reference::Resource(r) => (self.resource_candidates(&r.uri), false),
            _ => (Vec::new(), false),
        };
        for (upstream, inner) in candidates {
            let message = pb::CompleteRequest {
                r#ref: Some(if is_prompt {
                    pb::complete_request::Ref::Prompt(inner)
                } else {
                    pb::complete_request::Ref::ResourceTemplate(inner)
                }),
                argument: request.argument.name.clone(),
                value: request.argument.value.clone(),
                context: std::collections::HashMap::clone(&context),
            };
            let service = if is_prompt {
                PROMPTS_SERVICE
            } else {
                RESOURCES_SERVICE
            };
            let hop = Hop::rpc(service, "Complete", &caller.traceparent);
            let request = upstream.request_with(
                message,
                hop.traceparent(&caller.traceparent),
                &self.forwarded(caller),
            );
            let answer = if is_prompt {
                upstream.prompts().complete(request).await
            } else {
                upstream.resources().complete(request).await
            };
            hop.end(code_of(&answer));
            match answer {
                Ok(response) => {
                    let response = response.into_inner();
                    let has_more = response.has_more || response.values.len() > MAX_COMPLETIONS;
                    let values = completion_values(&response.values, MAX_COMPLETIONS);
                    let mut completion = Map::new();
                    completion.insert("values".into(), json!(values));
                    if let Some(total) = response.total {
                        completion.insert("total".into(), json!(total));
                    }
                    completion.insert("hasMore".into(), json!(has_more));
                    return from_json(json!({ "completion": completion }));
                }
                Err(status) if status.code() == Code::NotFound => continue,
                Err(status) if status.code() == Code::Unimplemented => break,
                Err(status) => {
                    return Err(protocol_error(
                        upstream.name(),
                        "completion failed",
                        &status,
                    ));
                }
            }
        }
        no_completions()
    }

    /// Starts watching a resource for a session: the first answer of the
    /// connector's `WatchResource` must arrive (so an unknown resource is an
    /// error now); later changes evict the cached read and are passed to
    /// `on_update` (the changed URI), until it returns `false`.
    pub(crate) async fn watch_resource<F, Fut>(
        &self,
        caller: &Caller,
        uri: &str,
        mut on_update: F,
    ) -> Result<tokio::task::JoinHandle<()>, McpError>
    where
        F: FnMut(String) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        self.catalog().wait_ready().await;
        for (upstream, inner) in self.resource_candidates(uri) {
            // The stream lives as long as the subscription: no deadline.
            let mut request = tonic::Request::new(pb::WatchResourceRequest { uri: inner });
            upstream.annotate(&mut request);
            // The span covers opening the watch (until its first answer).
            let hop = Hop::rpc(RESOURCES_SERVICE, "WatchResource", &caller.traceparent);
            crate::upstream::carry(
                &mut request,
                hop.traceparent(&caller.traceparent),
                &self.forwarded(caller),
            );
            // Opening it (until the connector answers with its headers) is
            // bounded by the connector's call timeout: a connector that never
            // answers must not hold the subscribing request, or the relay
            // queue of the replica opening it, forever.
            let opening = upstream.config().timeout;
            let answer = tokio::time::timeout(opening, upstream.resources().watch_resource(request))
                .await
                .unwrap_or_else(|_| {
                    Err(tonic::Status::deadline_exceeded(format!(
                        "the connector did not open the watch within {opening:?} (the connector's timeout)"
                    )))
                });
            hop.end(code_of(&answer));
            match answer {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    let reads = self.reads().clone();
                    let prefix = upstream.config().prefix.clone();
                    let connector = upstream.name().to_owned();
                    let subscribed = uri.to_owned();
                    return Ok(tokio::spawn(async move {
                        loop {
                            match stream.message().await {
                                Ok(Some(update)) => {
                                    let changed = if update.uri.is_empty() {
                                        subscribed.clone()
                                    } else {
                                        outward_uri(&prefix, &update.uri)
                                    };
                                    reads.invalidate(&changed);
                                    if !on_update(changed).await {
                                        return;
                                    }
                                }
                                Ok(None) => {
                                    tracing::debug!(%connector, uri = %subscribed, "resource watch ended");
                                    return;
                                }
                                Err(status) => {
                                    tracing::warn!(%connector, uri = %subscribed, code = ?status.code(), error = status.message(), "resource watch failed");
                                    return;
                                }
                            }
                        }
                    }));
                }
                Err(status) if status.code() == Code::NotFound => continue,
                Err(status) => {
                    return Err(protocol_error(
                        upstream.name(),
                        &format!("subscribing to {uri} failed"),
                        &status,
                    ));
                }
            }
        }
        Err(McpError::resource_not_found(
            format!(
                "no connector has the resource {uri:?}: resources/list shows the resources available now"
            ),
            Some(json!({ "uri": uri })),
        ))
    }
}
