//! Questions a running tool call asks the MCP client (`StreamEvent.ask`).
//!
//! The connector streams a `ClientRequest` (an elicitation or a sampling
//! request); the router sends it to the client as `elicitation/create` or
//! `sampling/createMessage`, and delivers the answer (or why there is none) with
//! `switchboard.mcp.v1.Interactions/Reply` on the same connector, whose call
//! then carries on. A client without the capability gets no request: the
//! connector is told at once, so the tool can fall back.

use base64::Engine as _;
use prost_reflect::{DynamicMessage, ReflectMessage};
use rmcp::{Peer, RoleServer};
use serde_json::{Map, Value as Json, json};
use switchboard_proto::mcp::v1 as pb;

use crate::content::{content_json, struct_json};
use crate::upstream::Upstream;

/// Asks the client and delivers the answer to the connector.
pub async fn answer(peer: &Peer<RoleServer>, upstream: &Upstream, ask: pb::ClientRequest) {
    let reply = match ask.request {
        Some(pb::client_request::Request::Elicit(e)) => elicit(peer, e).await,
        Some(pb::client_request::Request::Sample(s)) => {
            sample(peer, s, &upstream.config().prefix).await
        }
        None => Err("the connector asked nothing (empty ClientRequest)".to_owned()),
    };
    let reply = reply.unwrap_or_else(pb::reply_request::Reply::Error);
    deliver(upstream, ask.id, reply).await;
}

/// Tells the connector that its question will not be put to the client, and
/// why, so the tool can fall back instead of waiting.
pub async fn refuse(upstream: &Upstream, ask: pb::ClientRequest, why: &str) {
    deliver(
        upstream,
        ask.id,
        pb::reply_request::Reply::Error(why.to_owned()),
    )
    .await;
}

/// Delivers `reply` to question `id` of the connector behind `upstream`.
pub async fn deliver(upstream: &Upstream, id: String, reply: pb::reply_request::Reply) {
    let request = upstream.request(pb::ReplyRequest {
        id,
        reply: Some(reply),
    });
    if let Err(status) = upstream.interactions().reply(request).await {
        tracing::warn!(code = ?status.code(), error = status.message(), "could not deliver the client's answer to the connector");
    }
}

async fn elicit(
    peer: &Peer<RoleServer>,
    e: pb::Elicitation,
) -> Result<pb::reply_request::Reply, String> {
    let supported = peer
        .peer_info()
        .is_some_and(|info| info.capabilities.elicitation.is_some());
    if !supported {
        return Err("the MCP client does not support elicitation (user input)".into());
    }
    let params = serde_json::from_value(elicitation_params(&e)).map_err(|err| {
        format!("the connector's elicitation schema is not one MCP allows: {err}")
    })?;
    let result = peer
        .create_elicitation(params)
        .await
        .map_err(|err| format!("elicitation failed: {err}"))?;
    let result = serde_json::to_value(result).map_err(|err| err.to_string())?;
    Ok(elicitation_reply(&result))
}

/// The `elicitation/create` params of a connector's elicitation.
pub fn elicitation_params(e: &pb::Elicitation) -> Json {
    let schema = e
        .requested_schema
        .as_ref()
        .map(struct_json)
        .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
    json!({
        "mode": "form",
        "message": crate::content::terminal_safe(&e.message),
        "requestedSchema": schema,
    })
}

/// The connector's reply for the client's elicitation `result`.
pub fn elicitation_reply(result: &Json) -> pb::reply_request::Reply {
    pb::reply_request::Reply::Elicit(pb::ElicitationResult {
        action: result["action"].as_str().unwrap_or("cancel").to_owned(),
        content: match &result["content"] {
            Json::Object(map) => Some(json_struct(map)),
            _ => None,
        },
    })
}

#[allow(deprecated)] // sampling: deprecated by SEP-2577, still what current clients offer
async fn sample(
    peer: &Peer<RoleServer>,
    s: pb::Sampling,
    prefix: &str,
) -> Result<pb::reply_request::Reply, String> {
    let supported = peer
        .peer_info()
        .is_some_and(|info| info.capabilities.sampling.is_some());
    if !supported {
        return Err("the MCP client does not support sampling (LLM completions)".into());
    }
    let params = serde_json::from_value(sampling_params(&s, prefix))
        .map_err(|err| format!("the connector's sampling request is not one MCP allows: {err}"))?;
    let result = peer
        .create_message(params)
        .await
        .map_err(|err| format!("sampling failed: {err}"))?;
    let result = serde_json::to_value(result).map_err(|err| err.to_string())?;
    Ok(sampling_reply(&result))
}

/// The `sampling/createMessage` params of a connector's sampling request
/// (URIs in its content under the connector's `prefix`).
pub fn sampling_params(s: &pb::Sampling, prefix: &str) -> Json {
    let messages: Vec<Json> = s
        .messages
        .iter()
        .map(|m| {
            let role = crate::content::role_name(m.role).unwrap_or("user");
            let content = m
                .content
                .as_ref()
                .and_then(|c| content_json(c, prefix))
                .unwrap_or_else(|| json!({ "type": "text", "text": "" }));
            json!({ "role": role, "content": content })
        })
        .collect();
    let mut params = json!({ "messages": messages, "maxTokens": s.max_tokens.max(1) });
    if !s.system_prompt.is_empty() {
        params["systemPrompt"] = json!(s.system_prompt);
    }
    params
}

/// The connector's reply for the client's sampling `result`.
pub fn sampling_reply(result: &Json) -> pb::reply_request::Reply {
    let message = if result.get("content").is_some() {
        result
    } else {
        &result["message"]
    };
    let content = match &message["content"] {
        Json::Array(blocks) => blocks.first().cloned().unwrap_or(Json::Null),
        other => other.clone(),
    };
    pb::reply_request::Reply::Sample(pb::SamplingResult {
        role: if message["role"] == "user" {
            pb::Role::User as i32
        } else {
            pb::Role::Assistant as i32
        },
        content: content_from_json(&content),
        model: result["model"].as_str().unwrap_or_default().to_owned(),
        stop_reason: result["stopReason"].as_str().unwrap_or_default().to_owned(),
    })
}

/// An MCP content block (text, image or audio) as the shared proto message.
pub fn content_from_json(block: &Json) -> Option<pb::Content> {
    let decode = |data: &Json| {
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap_or_default()
    };
    let media = |block: &Json| pb::MediaContent {
        data: decode(&block["data"]),
        mime_type: block["mimeType"].as_str().unwrap_or_default().to_owned(),
    };
    let kind = match block["type"].as_str()? {
        "text" => pb::content::Kind::Text(pb::TextContent {
            text: block["text"].as_str().unwrap_or_default().to_owned(),
        }),
        "image" => pb::content::Kind::Image(media(block)),
        "audio" => pb::content::Kind::Audio(media(block)),
        _ => return None,
    };
    Some(pb::Content {
        kind: Some(kind),
        annotations: None,
    })
}

/// A JSON object as `google.protobuf.Struct`, by the proto3 JSON mapping.
pub fn json_struct(map: &Map<String, Json>) -> prost_types::Struct {
    let descriptor = prost_types::Struct::default().descriptor();
    // Every JSON object is a valid Struct; the fallbacks are never taken.
    DynamicMessage::deserialize(descriptor, Json::Object(map.clone()))
        .ok()
        .and_then(|message| message.transcode_to().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elicitation_message_cannot_act_on_the_client_s_terminal() {
        let params = elicitation_params(&pb::Elicitation {
            message: "Approve?\u{1b}[1A\u{1b}[2K(it deletes everything)".into(),
            ..Default::default()
        });
        assert_eq!(
            params["message"],
            "Approve?\u{241b}[1A\u{241b}[2K(it deletes everything)"
        );
    }

    #[test]
    fn json_round_trips_through_struct() {
        let value =
            json!({"name": "Ada", "age": 36, "tags": ["a", true, null], "nested": {"x": 1.5}});
        let Json::Object(map) = &value else {
            unreachable!()
        };
        assert_eq!(struct_json(&json_struct(map)), value);
    }

    #[test]
    fn values_follow_the_tool_result_number_rule() {
        use crate::content::value_json;
        use prost_types::value::Kind;
        let number = |n: f64| prost_types::Value {
            kind: Some(Kind::NumberValue(n)),
        };
        assert_eq!(value_json(&number(41.0)), json!(41));
        assert_eq!(value_json(&number(2.5)), json!(2.5));
        // Beyond 2^53 a double is not an exact integer: it stays a double.
        assert_eq!(value_json(&number(1.0e16)), json!(1.0e16));
        assert_eq!(value_json(&prost_types::Value { kind: None }), Json::Null);
    }

    #[test]
    fn sampled_content_becomes_proto_content() {
        let text = content_from_json(&json!({"type": "text", "text": "hi"}));
        assert!(
            matches!(text.and_then(|c| c.kind), Some(pb::content::Kind::Text(t)) if t.text == "hi")
        );
        let image =
            content_from_json(&json!({"type": "image", "data": "AQID", "mimeType": "image/png"}));
        assert!(
            matches!(image.and_then(|c| c.kind), Some(pb::content::Kind::Image(m)) if m.data == [1, 2, 3])
        );
        assert!(content_from_json(&json!({"type": "tool_use"})).is_none());
    }
}
