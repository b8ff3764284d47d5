//! `conformance-connector`: serves over gRPC exactly the fixtures that the
//! official MCP conformance suite (`@modelcontextprotocol/conformance`) expects
//! of a server (`test_simple_text`, `test_image_content`, `test://static-text`,
//! `test_simple_prompt`, ...), so that the suite can run against the router in
//! front of it. Every MCP feature goes through the router's generic path: tools
//! return the shared `switchboard.mcp.v1.ToolResult` or stream `StreamEvent`s,
//! resources and prompts are the generic `Resources` and `Prompts` services.
//!
//! The tool service `switchboard.testkit.conformance.v1.Conformance` is
//! described by a descriptor built here (its methods take no arguments except
//! `json_schema_2020_12_tool`), because this crate's build script compiles only
//! the calculator proto. The router must be configured with an empty prefix for
//! this connector so that names match the suite's (`prefix = ""`).
//!
//! Environment: `LISTEN_ADDR` (default 127.0.0.1:50060); `WATCH_OPEN_DELAY_MS`
//! (default 0): how long a `WatchResource` takes to open, so tests can show
//! that no update is lost while a watch is being opened.
//!
//! One tool is not a suite fixture: `update_watched_resource` changes
//! `test://watched-resource`, so tests can see `notifications/resources/updated`.
//! The asking tools (`test_sampling`, `test_elicitation`, ...) stream an `ask`
//! event and wait for the router's `Interactions/Reply`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use prost::Message;
use switchboard_proto::mcp::v1 as pb;
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

const PACKAGE: &str = "switchboard.testkit.conformance.v1";
const SERVICE: &str = "Conformance";
const FILE: &str = "testkit/conformance/v1/conformance.proto";

/// A 1x1 red pixel PNG.
const PNG: [u8; 70] = [
    0x89, 0x50, 0x4e, 0x47, 0xd, 0xa, 0x1a, 0xa, 0x0, 0x0, 0x0, 0xd, 0x49, 0x48, 0x44, 0x52, 0x0,
    0x0, 0x0, 0x1, 0x0, 0x0, 0x0, 0x1, 0x8, 0x6, 0x0, 0x0, 0x0, 0x1f, 0x15, 0xc4, 0x89, 0x0, 0x0,
    0x0, 0xd, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xfc, 0xcf, 0xc0, 0xf0, 0x1f, 0x0, 0x5,
    0x5, 0x2, 0x0, 0x5f, 0xc8, 0xf1, 0xd2, 0x0, 0x0, 0x0, 0x0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42,
    0x60, 0x82,
];

/// A WAV file of eight silent 16-bit samples at 8 kHz.
const WAV: [u8; 60] = [
    0x52, 0x49, 0x46, 0x46, 0x34, 0x0, 0x0, 0x0, 0x57, 0x41, 0x56, 0x45, 0x66, 0x6d, 0x74, 0x20,
    0x10, 0x0, 0x0, 0x0, 0x1, 0x0, 0x1, 0x0, 0x40, 0x1f, 0x0, 0x0, 0x80, 0x3e, 0x0, 0x0, 0x2, 0x0,
    0x10, 0x0, 0x64, 0x61, 0x74, 0x61, 0x10, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
];

/// The input schema the `json-schema-2020-12` scenario checks is preserved.
const JSON_SCHEMA_2020_12: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "$defs": {
    "address": {
      "type": "object",
      "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
    }
  },
  "properties": {
    "name": { "type": "string" },
    "address": { "$ref": "#/$defs/address" }
  },
  "additionalProperties": false
}"##;

/// How a method is served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// No arguments, returns a `ToolResult`.
    Unary,
    /// Takes `JsonSchemaToolRequest`, returns a `ToolResult`.
    Schema,
    /// No arguments, streams `StreamEvent`s.
    Stream,
    /// Takes the named request message, asks the client a question and streams
    /// `StreamEvent`s.
    Ask(&'static str),
}

/// The tools: method name (also the tool name), shape, read-only, description.
const TOOLS: [(&str, Shape, bool, &str); 15] = [
    (
        "test_simple_text",
        Shape::Unary,
        true,
        "Returns a simple text block.",
    ),
    (
        "test_image_content",
        Shape::Unary,
        true,
        "Returns a 1x1 PNG image.",
    ),
    (
        "test_audio_content",
        Shape::Unary,
        true,
        "Returns a short WAV audio clip.",
    ),
    (
        "test_embedded_resource",
        Shape::Unary,
        true,
        "Returns an embedded text resource.",
    ),
    (
        "test_multiple_content_types",
        Shape::Unary,
        true,
        "Returns text, an image and an embedded JSON resource.",
    ),
    (
        "test_error_handling",
        Shape::Unary,
        true,
        "Always fails with an error result.",
    ),
    (
        "test_tool_with_logging",
        Shape::Stream,
        true,
        "Sends three info log messages while it runs.",
    ),
    (
        "test_tool_with_progress",
        Shape::Stream,
        true,
        "Reports progress 0, 50 and 100 of 100 while it runs.",
    ),
    (
        "json_schema_2020_12_tool",
        Shape::Schema,
        true,
        "Tool with JSON Schema 2020-12 features.",
    ),
    (
        "update_watched_resource",
        Shape::Unary,
        false,
        "Changes test://watched-resource, so subscribers are notified.",
    ),
    (
        "test_reconnection",
        Shape::Stream,
        true,
        "Runs for a second, long enough for the router to close its SSE stream (with --sse-poll-after) and the client to resume it.",
    ),
    (
        "test_sampling",
        Shape::Ask("SamplingToolRequest"),
        true,
        "Asks the client's LLM to answer the prompt and returns its answer.",
    ),
    (
        "test_elicitation",
        Shape::Ask("ElicitationToolRequest"),
        true,
        "Asks the user for a username and an email address.",
    ),
    (
        "test_elicitation_sep1034_defaults",
        Shape::Ask("NoArguments"),
        true,
        "Asks the user for input with a default for every primitive type.",
    ),
    (
        "test_elicitation_sep1330_enums",
        Shape::Ask("NoArguments"),
        true,
        "Asks the user to choose from the five kinds of enum.",
    ),
];

/// Arguments of `json_schema_2020_12_tool`.
#[derive(Clone, PartialEq, Message)]
struct JsonSchemaToolRequest {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    address: Option<Address>,
}

/// An address.
#[derive(Clone, PartialEq, Message)]
struct Address {
    #[prost(string, tag = "1")]
    street: String,
    #[prost(string, tag = "2")]
    city: String,
}

// ---------------------------------------------------------------------------
// The descriptor, built by hand (with the tool options the router reads).
// ---------------------------------------------------------------------------

fn field(name: &str, number: i32, type_name: Option<&str>) -> prost_types::FieldDescriptorProto {
    use prost_types::field_descriptor_proto::{Label, Type};
    prost_types::FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(if type_name.is_some() {
            Type::Message as i32
        } else {
            Type::String as i32
        }),
        type_name: type_name.map(str::to_owned),
        json_name: Some(name.into()),
        ..Default::default()
    }
}

fn message(
    name: &str,
    fields: Vec<prost_types::FieldDescriptorProto>,
) -> prost_types::DescriptorProto {
    prost_types::DescriptorProto {
        name: Some(name.into()),
        field: fields,
        ..Default::default()
    }
}

fn length_delimited(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    prost::encoding::bytes::encode(tag, &bytes.to_vec(), out);
}

/// The encoded `FileDescriptorSet` of the conformance service (its own file only;
/// the shared `switchboard.mcp.v1` files come from switchboard-proto).
fn descriptor_set() -> Vec<u8> {
    let file = prost_types::FileDescriptorProto {
        name: Some(FILE.into()),
        package: Some(PACKAGE.into()),
        dependency: vec![
            "switchboard/mcp/v1/content.proto".into(),
            "switchboard/mcp/v1/options.proto".into(),
        ],
        message_type: vec![
            message("NoArguments", vec![]),
            message("SamplingToolRequest", vec![field("prompt", 1, None)]),
            message("ElicitationToolRequest", vec![field("message", 1, None)]),
            message(
                "Address",
                vec![field("street", 1, None), field("city", 2, None)],
            ),
            message(
                "JsonSchemaToolRequest",
                vec![
                    field("name", 1, None),
                    field("address", 2, Some(&format!(".{PACKAGE}.Address"))),
                ],
            ),
        ],
        source_code_info: Some(prost_types::SourceCodeInfo {
            location: std::iter::once(prost_types::source_code_info::Location {
                path: vec![6, 0],
                span: vec![0, 0, 0],
                leading_comments: Some(" The MCP conformance suite's fixture tools.\n".into()),
                ..Default::default()
            })
            .chain(TOOLS.iter().enumerate().map(|(i, (_, _, _, doc))| {
                prost_types::source_code_info::Location {
                    path: vec![6, 0, 2, i as i32],
                    span: vec![0, 0, 0],
                    leading_comments: Some(format!(" {doc}\n")),
                    ..Default::default()
                }
            }))
            .collect(),
        }),
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    let mut service = Vec::new();
    prost::encoding::string::encode(1, &SERVICE.to_owned(), &mut service);
    for (name, shape, read_only, _) in TOOLS {
        let method = prost_types::MethodDescriptorProto {
            name: Some(name.into()),
            input_type: Some(match shape {
                Shape::Schema => format!(".{PACKAGE}.JsonSchemaToolRequest"),
                Shape::Ask(input) => format!(".{PACKAGE}.{input}"),
                Shape::Unary | Shape::Stream => format!(".{PACKAGE}.NoArguments"),
            }),
            output_type: Some(match shape {
                Shape::Stream | Shape::Ask(_) => ".switchboard.mcp.v1.StreamEvent".into(),
                Shape::Unary | Shape::Schema => ".switchboard.mcp.v1.ToolResult".into(),
            }),
            server_streaming: Some(matches!(shape, Shape::Stream | Shape::Ask(_))),
            ..Default::default()
        };
        let mut options = Vec::new();
        if read_only {
            // MethodOptions.idempotency_level = NO_SIDE_EFFECTS
            prost::encoding::int32::encode(34, &1, &mut options);
        }
        if shape == Shape::Schema {
            let tool = pb::ToolOptions {
                input_schema: JSON_SCHEMA_2020_12.into(),
                ..Default::default()
            };
            length_delimited(51001, &tool.encode_to_vec(), &mut options);
        }
        let mut method_bytes = method.encode_to_vec();
        length_delimited(4, &options, &mut method_bytes);
        length_delimited(2, &method_bytes, &mut service);
    }
    let mut file_bytes = file.encode_to_vec();
    length_delimited(6, &service, &mut file_bytes);
    let mut set = Vec::new();
    length_delimited(1, &file_bytes, &mut set);
    set
}

// ---------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------

fn text(t: impl Into<String>) -> pb::Content {
    pb::Content {
        kind: Some(pb::content::Kind::Text(pb::TextContent { text: t.into() })),
        annotations: None,
    }
}

fn media(image: bool, data: &[u8], mime_type: &str) -> pb::Content {
    let media = pb::MediaContent {
        data: data.to_vec(),
        mime_type: mime_type.into(),
    };
    pb::Content {
        kind: Some(if image {
            pb::content::Kind::Image(media)
        } else {
            pb::content::Kind::Audio(media)
        }),
        annotations: None,
    }
}

fn text_resource(uri: &str, mime_type: &str, body: &str) -> pb::ResourceContents {
    pb::ResourceContents {
        uri: uri.into(),
        mime_type: mime_type.into(),
        body: Some(pb::resource_contents::Body::Text(body.into())),
    }
}

fn embedded(contents: pb::ResourceContents) -> pb::Content {
    pb::Content {
        kind: Some(pb::content::Kind::Resource(contents)),
        annotations: None,
    }
}

fn result(content: Vec<pb::Content>) -> pb::ToolResult {
    pb::ToolResult {
        content,
        structured: None,
        is_error: false,
    }
}

/// State shared by the services: the watched resource's version and watchers.
#[derive(Clone)]
struct Fixtures {
    watched_version: Arc<AtomicU64>,
    watched_changes: broadcast::Sender<u64>,
    /// Questions asked by running calls, by id, waiting for Interactions/Reply.
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<pb::ReplyRequest>>>>,
    asked: Arc<AtomicU64>,
    /// How long opening a watch takes (`WATCH_OPEN_DELAY_MS`).
    watch_open_delay: Duration,
}

impl Fixtures {
    fn new() -> Self {
        Self {
            watched_version: Arc::new(AtomicU64::new(1)),
            watched_changes: broadcast::channel(16).0,
            pending: Arc::default(),
            asked: Arc::default(),
            watch_open_delay: Duration::from_millis(
                std::env::var("WATCH_OPEN_DELAY_MS")
                    .ok()
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0),
            ),
        }
    }

    fn unary(&self, method: &str, request: &[u8]) -> Result<pb::ToolResult, Status> {
        Ok(match method {
            "test_simple_text" => result(vec![text("This is a simple text response for testing.")]),
            "test_image_content" => result(vec![media(true, &PNG, "image/png")]),
            "test_audio_content" => result(vec![media(false, &WAV, "audio/wav")]),
            "test_embedded_resource" => result(vec![embedded(text_resource(
                "test://embedded-resource",
                "text/plain",
                "This is an embedded resource content.",
            ))]),
            "test_multiple_content_types" => result(vec![
                text("Multiple content types test:"),
                media(true, &PNG, "image/png"),
                embedded(text_resource(
                    "test://mixed-content-resource",
                    "application/json",
                    r#"{"test":"data","value":123}"#,
                )),
            ]),
            "test_error_handling" => pb::ToolResult {
                content: vec![text("This tool intentionally returns an error for testing")],
                structured: None,
                is_error: true,
            },
            "json_schema_2020_12_tool" => {
                let request = JsonSchemaToolRequest::decode(request)
                    .map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))?;
                let city = request.address.map(|a| a.city).unwrap_or_default();
                result(vec![text(format!(
                    "Received name={:?}, city={city:?}",
                    request.name
                ))])
            }
            "update_watched_resource" => {
                let version = self.watched_version.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = self.watched_changes.send(version);
                result(vec![text(format!(
                    "test://watched-resource is now version {version}"
                ))])
            }
            other => return Err(Status::unimplemented(format!("no method {other}"))),
        })
    }

    /// The events of a streaming tool, about 50 ms apart.
    fn stream(
        &self,
        method: &str,
        request: &[u8],
    ) -> Result<mpsc::Receiver<Result<pb::StreamEvent, Status>>, Status> {
        if let Some(question) = self.question(method, request)? {
            return Ok(self.ask(question));
        }
        if method == "test_reconnection" {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = result(vec![text("Reconnection test completed")]);
                let event = pb::StreamEvent {
                    event: Some(pb::stream_event::Event::Result(done)),
                };
                let _ = tx.send(Ok(event)).await;
            });
            return Ok(rx);
        }
        let events: Vec<pb::stream_event::Event> = match method {
            "test_tool_with_progress" => [0.0, 50.0, 100.0]
                .into_iter()
                .map(|p| {
                    pb::stream_event::Event::Progress(pb::Progress {
                        progress: p,
                        total: Some(100.0),
                        message: String::new(),
                    })
                })
                .chain(std::iter::once(pb::stream_event::Event::Result(result(
                    vec![text("Progress tool completed")],
                ))))
                .collect(),
            "test_tool_with_logging" => [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ]
            .into_iter()
            .map(|message| {
                pb::stream_event::Event::Log(pb::LogMessage {
                    level: pb::LogLevel::Info as i32,
                    logger: "conformance".into(),
                    data: Some(prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(message.into())),
                    }),
                })
            })
            .chain(std::iter::once(pb::stream_event::Event::Result(result(
                vec![text("Logging tool completed")],
            ))))
            .collect(),
            other => {
                return Err(Status::unimplemented(format!(
                    "no streaming method {other}"
                )));
            }
        };
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            for (i, event) in events.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if tx
                    .send(Ok(pb::StreamEvent { event: Some(event) }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// What an asking tool asks, and how its answer is reported.
struct Question {
    request: pb::client_request::Request,
    /// `LLM response: ...` or `User response: ...`: the result's first words.
    report: &'static str,
}

/// Arguments of `test_sampling`.
#[derive(Clone, PartialEq, Message)]
struct SamplingToolRequest {
    #[prost(string, tag = "1")]
    prompt: String,
}

/// Arguments of `test_elicitation`.
#[derive(Clone, PartialEq, Message)]
struct ElicitationToolRequest {
    #[prost(string, tag = "1")]
    message: String,
}

fn json_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn json_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
    }
}

fn value_json(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 => serde_json::json!(*n as i64),
        Some(Kind::NumberValue(n)) => serde_json::json!(n),
        Some(Kind::StringValue(s)) => serde_json::json!(s),
        Some(Kind::BoolValue(b)) => serde_json::json!(b),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_json).collect())
        }
    }
}

fn struct_json(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn elicitation(message: &str, schema: serde_json::Value) -> pb::client_request::Request {
    let serde_json::Value::Object(schema) = schema else {
        unreachable!("the fixture schemas are objects")
    };
    pb::client_request::Request::Elicit(pb::Elicitation {
        message: message.into(),
        requested_schema: Some(json_struct(&schema)),
    })
}

impl Fixtures {
    /// The question an asking tool puts to the client, if `method` is one.
    fn question(&self, method: &str, request: &[u8]) -> Result<Option<Question>, Status> {
        let malformed =
            |e: prost::DecodeError| Status::invalid_argument(format!("malformed request: {e}"));
        let (request, report) = match method {
            "test_sampling" => {
                let prompt = SamplingToolRequest::decode(request)
                    .map_err(malformed)?
                    .prompt;
                let request = pb::client_request::Request::Sample(pb::Sampling {
                    messages: vec![pb::SamplingMessage {
                        role: pb::Role::User as i32,
                        content: Some(text(prompt)),
                    }],
                    system_prompt: String::new(),
                    max_tokens: 100,
                });
                (request, "LLM response")
            }
            "test_elicitation" => {
                let message = ElicitationToolRequest::decode(request)
                    .map_err(malformed)?
                    .message;
                let schema = serde_json::json!({
                    "type": "object",
                    "properties": {
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"}
                    },
                    "required": ["username", "email"]
                });
                (elicitation(&message, schema), "User response")
            }
            "test_elicitation_sep1034_defaults" => {
                let schema = serde_json::json!({
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "default": "John Doe"},
                        "age": {"type": "integer", "default": 30},
                        "score": {"type": "number", "default": 95.5},
                        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
                        "verified": {"type": "boolean", "default": true}
                    }
                });
                (
                    elicitation("Please review your details", schema),
                    "Elicitation completed",
                )
            }
            "test_elicitation_sep1330_enums" => {
                let schema = serde_json::json!({
                    "type": "object",
                    "properties": {
                        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                        "titledSingle": {"type": "string", "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"}
                        ]},
                        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"]},
                        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                        "titledMulti": {"type": "array", "items": {"anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"}
                        ]}}
                    }
                });
                (
                    elicitation("Please choose", schema),
                    "Elicitation completed",
                )
            }
            _ => return Ok(None),
        };
        Ok(Some(Question { request, report }))
    }

    /// Streams the question, waits for its Reply (30 s at most) and streams the result.
    fn ask(&self, question: Question) -> mpsc::Receiver<Result<pb::StreamEvent, Status>> {
        let (tx, rx) = mpsc::channel(8);
        // A real connector makes this unguessable; a test fixture may count.
        let id = format!(
            "ask-{}-{}",
            std::process::id(),
            self.asked.fetch_add(1, Ordering::SeqCst)
        );
        let pending = self.pending.clone();
        tokio::spawn(async move {
            let (reply_tx, reply_rx) = oneshot::channel();
            pending.lock().await.insert(id.clone(), reply_tx);
            let ask = pb::ClientRequest {
                id: id.clone(),
                request: Some(question.request),
            };
            let event = pb::StreamEvent {
                event: Some(pb::stream_event::Event::Ask(ask)),
            };
            if tx.send(Ok(event)).await.is_err() {
                pending.lock().await.remove(&id);
                return;
            }
            let reply = tokio::time::timeout(Duration::from_secs(30), reply_rx).await;
            pending.lock().await.remove(&id);
            let outcome = match reply {
                Ok(Ok(reply)) => match reply.reply {
                    Some(pb::reply_request::Reply::Sample(s)) => {
                        let answer = match s.content.and_then(|c| c.kind) {
                            Some(pb::content::Kind::Text(t)) => t.text,
                            _ => "(no text)".into(),
                        };
                        result(vec![text(format!("{}: {answer}", question.report))])
                    }
                    Some(pb::reply_request::Reply::Elicit(e)) => {
                        let content = e
                            .content
                            .as_ref()
                            .map_or(serde_json::Value::Null, struct_json);
                        result(vec![text(format!(
                            "{}: action={}, content={content}",
                            question.report, e.action
                        ))])
                    }
                    Some(pb::reply_request::Reply::Error(error)) => pb::ToolResult {
                        content: vec![text(format!("No answer from the client: {error}"))],
                        structured: None,
                        is_error: true,
                    },
                    None => pb::ToolResult {
                        content: vec![text("The reply was empty")],
                        structured: None,
                        is_error: true,
                    },
                },
                _ => pb::ToolResult {
                    content: vec![text("No answer from the client within 30s")],
                    structured: None,
                    is_error: true,
                },
            };
            let event = pb::StreamEvent {
                event: Some(pb::stream_event::Event::Result(outcome)),
            };
            let _ = tx.send(Ok(event)).await;
        });
        rx
    }
}

#[tonic::async_trait]
impl pb::interactions_server::Interactions for Fixtures {
    async fn reply(
        &self,
        request: Request<pb::ReplyRequest>,
    ) -> Result<Response<pb::ReplyResponse>, Status> {
        let reply = request.into_inner();
        let waiting = self.pending.lock().await.remove(&reply.id);
        match waiting {
            Some(tx) => {
                let _ = tx.send(reply);
                Ok(Response::new(pb::ReplyResponse {}))
            }
            None => Err(Status::not_found(format!(
                "no running call waits for an answer to {:?}",
                reply.id
            ))),
        }
    }
}

/// Raw request bytes: each method decodes its own arguments.
#[derive(Clone, PartialEq, Message)]
struct RawRequest {}

/// A unary call of one method.
struct UnaryCall {
    fixtures: Fixtures,
    method: String,
}

impl tonic::server::UnaryService<prost::bytes::Bytes> for UnaryCall {
    type Response = pb::ToolResult;
    type Future = BoxFuture<Response<pb::ToolResult>, Status>;

    fn call(&mut self, request: Request<prost::bytes::Bytes>) -> Self::Future {
        let outcome = self
            .fixtures
            .unary(&self.method, request.get_ref())
            .map(Response::new);
        Box::pin(async move { outcome })
    }
}

/// A streaming call of one method.
struct StreamCall {
    fixtures: Fixtures,
    method: String,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::StreamEvent, Status>> + Send>>;

impl tonic::server::ServerStreamingService<prost::bytes::Bytes> for StreamCall {
    type Response = pb::StreamEvent;
    type ResponseStream = EventStream;
    type Future = BoxFuture<Response<EventStream>, Status>;

    fn call(&mut self, request: Request<prost::bytes::Bytes>) -> Self::Future {
        let outcome = self
            .fixtures
            .stream(&self.method, request.get_ref())
            .map(|rx| {
                let stream: EventStream = Box::pin(ReceiverStream::new(rx));
                Response::new(stream)
            });
        Box::pin(async move { outcome })
    }
}

/// Request bytes passed through undecoded (the method decodes them).
#[derive(Debug, Clone, Default)]
struct BytesDecoder;

impl tonic::codec::Decoder for BytesDecoder {
    type Item = prost::bytes::Bytes;
    type Error = Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Encodes `T`, decodes raw bytes.
#[derive(Debug, Clone)]
struct FixtureCodec<T>(std::marker::PhantomData<T>);

impl<T> Default for FixtureCodec<T> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T: Message + Send + 'static> tonic::codec::Codec for FixtureCodec<T> {
    type Encode = T;
    type Decode = prost::bytes::Bytes;
    type Encoder = <tonic_prost::ProstCodec<T, RawRequest> as tonic::codec::Codec>::Encoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic::codec::Codec::encoder(&mut tonic_prost::ProstCodec::<T, RawRequest>::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// The hand-written tonic service of the tool methods.
#[derive(Clone)]
struct ConformanceServer {
    fixtures: Fixtures,
}

impl NamedService for ConformanceServer {
    const NAME: &'static str = "switchboard.testkit.conformance.v1.Conformance";
}

impl<B> tonic::codegen::Service<http::Request<B>> for ConformanceServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .strip_prefix(&format!("/{PACKAGE}.{SERVICE}/"))
            .unwrap_or_default()
            .to_owned();
        let fixtures = self.fixtures.clone();
        let shape = TOOLS
            .iter()
            .find(|(name, ..)| *name == method)
            .map(|(_, shape, ..)| *shape);
        Box::pin(async move {
            Ok(match shape {
                Some(Shape::Stream | Shape::Ask(_)) => {
                    let mut grpc =
                        tonic::server::Grpc::new(FixtureCodec::<pb::StreamEvent>::default());
                    grpc.server_streaming(StreamCall { fixtures, method }, req)
                        .await
                }
                Some(Shape::Unary | Shape::Schema) => {
                    let mut grpc =
                        tonic::server::Grpc::new(FixtureCodec::<pb::ToolResult>::default());
                    grpc.unary(UnaryCall { fixtures, method }, req).await
                }
                None => Status::unimplemented(format!("no method {method:?}")).into_http(),
            })
        })
    }
}

// ---------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------

const TEMPLATE: &str = "test://template/{id}/data";

fn resource(uri: &str, name: &str, description: &str, mime_type: &str) -> pb::Resource {
    pb::Resource {
        uri: uri.into(),
        name: name.into(),
        title: String::new(),
        description: description.into(),
        mime_type: mime_type.into(),
        size: None,
    }
}

/// `test://template/{id}/data` parameter, if `uri` matches the template.
fn template_id(uri: &str) -> Option<&str> {
    uri.strip_prefix("test://template/")?
        .strip_suffix("/data")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

fn completions(candidates: &[&str], typed: &str) -> pb::CompleteResponse {
    let values: Vec<String> = candidates
        .iter()
        .filter(|c| c.starts_with(typed))
        .map(|c| (*c).to_owned())
        .collect();
    pb::CompleteResponse {
        total: Some(values.len() as i32),
        values,
        has_more: false,
    }
}

#[tonic::async_trait]
impl pb::resources_server::Resources for Fixtures {
    async fn list_resources(
        &self,
        _request: Request<pb::ListResourcesRequest>,
    ) -> Result<Response<pb::ListResourcesResponse>, Status> {
        Ok(Response::new(pb::ListResourcesResponse {
            resources: vec![
                resource(
                    "test://static-text",
                    "static-text",
                    "A static text resource.",
                    "text/plain",
                ),
                resource(
                    "test://static-binary",
                    "static-binary",
                    "A static binary resource (a PNG image).",
                    "image/png",
                ),
                resource(
                    "test://watched-resource",
                    "watched-resource",
                    "A resource that changes when update_watched_resource is called; subscribe to it.",
                    "text/plain",
                ),
            ],
            next_cursor: String::new(),
        }))
    }

    async fn list_resource_templates(
        &self,
        _request: Request<pb::ListResourceTemplatesRequest>,
    ) -> Result<Response<pb::ListResourceTemplatesResponse>, Status> {
        Ok(Response::new(pb::ListResourceTemplatesResponse {
            templates: vec![pb::ResourceTemplate {
                uri_template: TEMPLATE.into(),
                name: "template-data".into(),
                title: String::new(),
                description: "Data for an id, substituted into the URI.".into(),
                mime_type: "application/json".into(),
            }],
            next_cursor: String::new(),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::ReadResourceRequest>,
    ) -> Result<Response<pb::ReadResourceResponse>, Status> {
        let uri = request.into_inner().uri;
        let (contents, ttl_seconds) = match uri.as_str() {
            "test://static-text" => (
                text_resource(
                    &uri,
                    "text/plain",
                    "This is the content of the static text resource.",
                ),
                60,
            ),
            "test://static-binary" => (
                pb::ResourceContents {
                    uri: uri.clone(),
                    mime_type: "image/png".into(),
                    body: Some(pb::resource_contents::Body::Blob(PNG.to_vec())),
                },
                60,
            ),
            "test://watched-resource" => (
                text_resource(
                    &uri,
                    "text/plain",
                    &format!(
                        "Watched resource, version {}",
                        self.watched_version.load(Ordering::SeqCst)
                    ),
                ),
                // Cached until it changes: the router evicts it on the update.
                3600,
            ),
            other => match template_id(other) {
                Some(id) => (
                    text_resource(
                        other,
                        "application/json",
                        &format!(
                            r#"{{"id":"{id}","templateTest":true,"data":"Data for ID: {id}"}}"#
                        ),
                    ),
                    0,
                ),
                None => return Err(Status::not_found(format!("no resource {other}"))),
            },
        };
        Ok(Response::new(pb::ReadResourceResponse {
            contents: vec![contents],
            ttl_seconds,
        }))
    }

    type WatchResourceStream =
        Pin<Box<dyn Stream<Item = Result<pb::ResourceUpdated, Status>> + Send>>;

    async fn watch_resource(
        &self,
        request: Request<pb::WatchResourceRequest>,
    ) -> Result<Response<Self::WatchResourceStream>, Status> {
        let uri = request.into_inner().uri;
        if uri != "test://watched-resource" {
            return Err(Status::not_found(format!(
                "{uri} cannot be watched; only test://watched-resource changes"
            )));
        }
        // Changes made while the watch opens are not seen by it.
        tokio::time::sleep(self.watch_open_delay).await;
        let mut changes = self.watched_changes.subscribe();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok(_version) = changes.recv().await {
                if tx
                    .send(Ok(pb::ResourceUpdated { uri: uri.clone() }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        let request = request.into_inner();
        match request.r#ref {
            Some(pb::complete_request::Ref::ResourceTemplate(t))
                if t == TEMPLATE && request.argument == "id" =>
            {
                Ok(Response::new(completions(
                    &["123", "456", "789"],
                    &request.value,
                )))
            }
            _ => Err(Status::not_found("no such resource template or parameter")),
        }
    }
}

// ---------------------------------------------------------------------------
// Prompts
// ---------------------------------------------------------------------------

fn argument(name: &str, description: &str) -> pb::PromptArgument {
    pb::PromptArgument {
        name: name.into(),
        title: String::new(),
        description: description.into(),
        required: true,
    }
}

fn user(content: pb::Content) -> pb::PromptMessage {
    pb::PromptMessage {
        role: pb::Role::User as i32,
        content: Some(content),
    }
}

fn required<'a>(arguments: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Status> {
    arguments
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| Status::invalid_argument(format!("argument {name} is required")))
}

#[tonic::async_trait]
impl pb::prompts_server::Prompts for Fixtures {
    async fn list_prompts(
        &self,
        _request: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        let prompt =
            |name: &str, description: &str, arguments: Vec<pb::PromptArgument>| pb::Prompt {
                name: name.into(),
                title: String::new(),
                description: description.into(),
                arguments,
            };
        Ok(Response::new(pb::ListPromptsResponse {
            prompts: vec![
                prompt(
                    "test_simple_prompt",
                    "A simple prompt without arguments.",
                    vec![],
                ),
                prompt(
                    "test_prompt_with_arguments",
                    "A prompt with two required arguments.",
                    vec![
                        argument("arg1", "First test argument"),
                        argument("arg2", "Second test argument"),
                    ],
                ),
                prompt(
                    "test_prompt_with_embedded_resource",
                    "A prompt that embeds a resource.",
                    vec![argument("resourceUri", "URI of the resource to embed")],
                ),
                prompt("test_prompt_with_image", "A prompt with an image.", vec![]),
            ],
            next_cursor: String::new(),
        }))
    }

    async fn get_prompt(
        &self,
        request: Request<pb::GetPromptRequest>,
    ) -> Result<Response<pb::GetPromptResponse>, Status> {
        let request = request.into_inner();
        let arguments = &request.arguments;
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![user(text("This is a simple prompt for testing."))],
            "test_prompt_with_arguments" => {
                let (arg1, arg2) = (required(arguments, "arg1")?, required(arguments, "arg2")?);
                vec![user(text(format!(
                    "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
                )))]
            }
            "test_prompt_with_embedded_resource" => {
                let uri = required(arguments, "resourceUri")?;
                vec![
                    user(embedded(text_resource(
                        uri,
                        "text/plain",
                        "Embedded resource content for testing.",
                    ))),
                    user(text("Please process the embedded resource above.")),
                ]
            }
            "test_prompt_with_image" => vec![
                user(media(true, &PNG, "image/png")),
                user(text("Please analyze the image above.")),
            ],
            other => return Err(Status::not_found(format!("no prompt {other}"))),
        };
        Ok(Response::new(pb::GetPromptResponse {
            description: String::new(),
            messages,
        }))
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        let request = request.into_inner();
        match request.r#ref {
            Some(pb::complete_request::Ref::Prompt(p)) if p == "test_prompt_with_arguments" => {
                let candidates: &[&str] = match request.argument.as_str() {
                    "arg1" => &["paris", "park", "party"],
                    "arg2" => &["red", "green", "blue"],
                    _ => &[],
                };
                Ok(Response::new(completions(candidates, &request.value)))
            }
            _ => Err(Status::not_found("no such prompt argument")),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    connector_kit::run(
        connector_kit::ConnectorSpec {
            binary: "conformance-connector",
            about: "The MCP conformance suite's fixtures as a gRPC connector",
            default_listen_addr: "127.0.0.1:50060",
        },
        |listener, shutdown| async move {
            let fixtures = Fixtures::new();
            // Built once per process; reflection needs it for the process's life.
            let descriptors: &'static [u8] = Box::leak(descriptor_set().into_boxed_slice());
            let server = connector_kit::ConnectorServer::new(
                "conformance",
                switchboard_proto::FILE_DESCRIPTOR_SET,
            )
            .with_descriptors(descriptors)
            .add_service(ConformanceServer {
                fixtures: fixtures.clone(),
            })
            .add_service(pb::resources_server::ResourcesServer::new(fixtures.clone()))
            .add_service(pb::prompts_server::PromptsServer::new(fixtures.clone()))
            .add_service(pb::interactions_server::InteractionsServer::new(fixtures));
            server.health().set_serving().await;
            server.serve(listener, shutdown).await?;
            Ok(())
        },
    )
    .await
}
