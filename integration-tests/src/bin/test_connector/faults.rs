//! The test connector's misbehaving modes (`TEST_FAULTS`), for the router's
//! fault tests: a connector that answers too much, too long or never, flaps its
//! health, or serves descriptors that a naive reflection client loops on.
//!
//! Every mode serves the `switchboard.testkit.faults.v1.Faults` service, whose
//! descriptors are built here in code (prost-types) and served by a reflection
//! service of our own, so a mode can serve what no protobuf compiler would
//! produce (a file answered under another name, an endless dependency chain, a
//! 5 MiB file).
//! The messages are written by hand with prost's derive, and the service by
//! hand on tonic's server building blocks (what generated code does).
//!
//! Methods: `Big {size_bytes}` answers one message of that many bytes, `Flood
//! {count, filler_bytes}` streams `count` messages, `Hang {}` never answers,
//! `Stats {}` reports how many Flood and Hang calls are running (so a test sees
//! a cancellation arrive), and in `deep-diamond` mode `Deep(D0)` takes a
//! diamond of shared messages `D0 .. D<levels>`, each with two fields (`left`,
//! `right`) of the next level's type.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, MethodDescriptorProto,
    ServiceDescriptorProto,
};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{BoxFuture, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tonic_prost::ProstCodec;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::server_reflection_server::{
    ServerReflection, ServerReflectionServer,
};
use tonic_reflection::pb::v1::{
    ErrorResponse, FileDescriptorResponse, ListServiceResponse, ServerReflectionRequest,
    ServerReflectionResponse, ServiceResponse,
};

const PACKAGE: &str = "switchboard.testkit.faults.v1";
const SERVICE: &str = "switchboard.testkit.faults.v1.Faults";
const FILE: &str = "switchboard/testkit/faults/faults.proto";
/// The name the `self-dependent` file gives to its own dependency.
const ALIAS: &str = "switchboard/testkit/faults/alias.proto";
/// Largest `Big` answer, so a typo cannot take the machine's memory.
const MAX_BIG_BYTES: u64 = 256 * 1024 * 1024;

/// How the connector misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Serves Big, Flood, Hang and Stats, healthy.
    Misbehave,
    /// The same, with its health flipping between SERVING and NOT_SERVING every 10 ms.
    Flap,
    /// Its file depends on itself under another name: asked for that name,
    /// reflection answers with the file itself.
    SelfDependent,
    /// Its file depends on `chain/1.proto`, which depends on `chain/2.proto`, ... without end.
    EndlessDependencies,
    /// Its file carries a 5 MiB comment, over the router's default reflection limit.
    HugeDescriptor,
    /// Adds `Deep(D0)`, a diamond of `levels` levels of shared messages.
    DeepDiamond {
        /// Levels below D0.
        levels: u32,
    },
    /// Adds methods whose names no protobuf compiler writes, or whose messages
    /// have such names: a space, a non-ASCII letter, 200 characters, a field
    /// with a right-to-left override, an enum value with a space, a field
    /// named like another's JSON name. All take `Empty` or an odd message.
    OddNames,
}

impl Fault {
    /// Parses `TEST_FAULTS` (and `TEST_DIAMOND_LEVELS`, default 40).
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(raw) = connector_kit::env::var("TEST_FAULTS") else {
            return Ok(None);
        };
        Ok(Some(match raw.trim() {
            "misbehave" => Self::Misbehave,
            "flap" => Self::Flap,
            "self-dependent" => Self::SelfDependent,
            "endless-dependencies" => Self::EndlessDependencies,
            "huge-descriptor" => Self::HugeDescriptor,
            "odd-names" => Self::OddNames,
            "deep-diamond" => Self::DeepDiamond {
                levels: connector_kit::env::parse::<u32>("TEST_DIAMOND_LEVELS", 40)?.min(10_000),
            },
            other => anyhow::bail!(
                "environment variable TEST_FAULTS: expected misbehave, flap, self-dependent, \
                 endless-dependencies, huge-descriptor, deep-diamond or odd-names, got {other:?}"
            ),
        }))
    }
}

#[derive(Clone, PartialEq, Message)]
struct BigRequest {
    #[prost(uint64, tag = "1")]
    size_bytes: u64,
}

#[derive(Clone, PartialEq, Message)]
struct BigReply {
    #[prost(bytes = "vec", tag = "1")]
    payload: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct FloodRequest {
    #[prost(uint64, tag = "1")]
    count: u64,
    #[prost(uint32, tag = "2")]
    filler_bytes: u32,
}

#[derive(Clone, PartialEq, Message)]
struct FloodReply {
    #[prost(uint64, tag = "1")]
    n: u64,
    #[prost(string, tag = "2")]
    filler: String,
}

/// Also what `Deep` decodes its argument as: prost skips the unknown fields.
#[derive(Clone, PartialEq, Message)]
struct Empty {}

#[derive(Clone, PartialEq, Message)]
struct StatsReply {
    #[prost(uint32, tag = "1")]
    floods_running: u32,
    #[prost(uint32, tag = "2")]
    hangs_running: u32,
}

fn field(name: &str, number: i32, kind: Type, type_name: Option<String>) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(kind as i32),
        type_name,
        json_name: Some(name.to_owned()),
        ..Default::default()
    }
}

fn message(name: &str, fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
    DescriptorProto {
        name: Some(name.to_owned()),
        field: fields,
        ..Default::default()
    }
}

fn method(name: &str, input: &str, output: &str, streaming: bool) -> MethodDescriptorProto {
    MethodDescriptorProto {
        name: Some(name.to_owned()),
        input_type: Some(format!(".{PACKAGE}.{input}")),
        output_type: Some(format!(".{PACKAGE}.{output}")),
        server_streaming: Some(streaming),
        ..Default::default()
    }
}

/// The Faults file for `fault`, encoded.
fn faults_file(fault: Fault) -> Vec<u8> {
    let mut messages = vec![
        message(
            "BigRequest",
            vec![field("size_bytes", 1, Type::Uint64, None)],
        ),
        message("BigReply", vec![field("payload", 1, Type::Bytes, None)]),
        message(
            "FloodRequest",
            vec![
                field("count", 1, Type::Uint64, None),
                field("filler_bytes", 2, Type::Uint32, None),
            ],
        ),
        message(
            "FloodReply",
            vec![
                field("n", 1, Type::Uint64, None),
                field("filler", 2, Type::String, None),
            ],
        ),
        message("Empty", vec![]),
        message(
            "StatsReply",
            vec![
                field("floods_running", 1, Type::Uint32, None),
                field("hangs_running", 2, Type::Uint32, None),
            ],
        ),
    ];
    let mut methods = vec![
        method("Big", "BigRequest", "BigReply", false),
        method("Flood", "FloodRequest", "FloodReply", true),
        method("Hang", "Empty", "Empty", false),
        method("Stats", "Empty", "StatsReply", false),
    ];
    if let Fault::DeepDiamond { levels } = fault {
        for level in 0..levels {
            let next = Some(format!(".{PACKAGE}.D{}", level + 1));
            messages.push(message(
                &format!("D{level}"),
                vec![
                    field("left", 1, Type::Message, next.clone()),
                    field("right", 2, Type::Message, next),
                ],
            ));
        }
        messages.push(message(
            &format!("D{levels}"),
            vec![field("leaf", 1, Type::String, None)],
        ));
        methods.push(method("Deep", "D0", "Empty", false));
    }
    if fault == Fault::OddNames {
        let long = "Long".repeat(50);
        for name in ["Drop Tables", "Überblick", long.as_str()] {
            methods.push(method(name, "Empty", "Empty", false));
        }
        messages.push(message(
            "Spoof",
            vec![field("admin\u{202e}resu", 1, Type::String, None)],
        ));
        methods.push(method("Spoof", "Spoof", "Empty", false));
        let mut twin = message(
            "Twin",
            vec![
                field("foo", 1, Type::String, None),
                field("bar", 2, Type::String, None),
            ],
        );
        twin.field[0].json_name = Some("bar".to_owned());
        twin.field[1].json_name = Some("baz".to_owned());
        messages.push(twin);
        methods.push(method("Twin", "Twin", "Empty", false));
        messages.push(message(
            "Level",
            vec![field(
                "level",
                1,
                Type::Enum,
                Some(format!(".{PACKAGE}.Mood")),
            )],
        ));
        methods.push(method("Mood", "Level", "Empty", false));
    }
    let enum_type = (fault == Fault::OddNames)
        .then(|| prost_types::EnumDescriptorProto {
            name: Some("Mood".to_owned()),
            value: ["MOOD_UNSPECIFIED", "MOOD_VERY HAPPY"]
                .iter()
                .enumerate()
                .map(|(n, name)| prost_types::EnumValueDescriptorProto {
                    name: Some((*name).to_owned()),
                    number: Some(n as i32),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .into_iter()
        .collect();
    let dependency = match fault {
        Fault::SelfDependent => vec![ALIAS.to_owned()],
        Fault::EndlessDependencies => vec!["chain/1.proto".to_owned()],
        _ => Vec::new(),
    };
    FileDescriptorProto {
        name: Some(FILE.to_owned()),
        package: Some(PACKAGE.to_owned()),
        dependency,
        message_type: messages,
        enum_type,
        service: vec![ServiceDescriptorProto {
            name: Some("Faults".to_owned()),
            method: methods,
            ..Default::default()
        }],
        syntax: Some("proto3".to_owned()),
        // The comment of the service: what reflection sends, the router keeps.
        source_code_info: (fault == Fault::HugeDescriptor).then(|| prost_types::SourceCodeInfo {
            location: vec![prost_types::source_code_info::Location {
                path: vec![6, 0],
                span: vec![0, 0, 0],
                leading_comments: Some("x".repeat(5 * 1024 * 1024)),
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A reflection service answering from `faults_file`, with the mode's twists.
#[derive(Debug, Clone)]
struct FaultReflection {
    fault: Fault,
    file: Arc<Vec<u8>>,
}

impl FaultReflection {
    fn answer(&self, request: ServerReflectionRequest) -> ServerReflectionResponse {
        let files = |files: Vec<Vec<u8>>| {
            MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                file_descriptor_proto: files,
            })
        };
        let not_found = |what: String| {
            MessageResponse::ErrorResponse(ErrorResponse {
                error_code: tonic::Code::NotFound as i32,
                error_message: format!("{what} not found"),
            })
        };
        let response = match request.message_request.clone() {
            Some(MessageRequest::ListServices(_)) => {
                MessageResponse::ListServicesResponse(ListServiceResponse {
                    service: vec![ServiceResponse {
                        name: SERVICE.to_owned(),
                    }],
                })
            }
            Some(MessageRequest::FileContainingSymbol(symbol)) => {
                if symbol.starts_with(PACKAGE) {
                    files(vec![self.file.to_vec()])
                } else {
                    not_found(format!("symbol {symbol}"))
                }
            }
            Some(MessageRequest::FileByFilename(name)) => match self.fault {
                _ if name == FILE => files(vec![self.file.to_vec()]),
                // Itself, under the name it depends on.
                Fault::SelfDependent if name == ALIAS => files(vec![self.file.to_vec()]),
                Fault::EndlessDependencies => match name
                    .strip_prefix("chain/")
                    .and_then(|n| n.strip_suffix(".proto"))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    Some(n) => files(vec![
                        FileDescriptorProto {
                            name: Some(name.clone()),
                            package: Some(format!("chain.c{n}")),
                            dependency: vec![format!("chain/{}.proto", n + 1)],
                            syntax: Some("proto3".to_owned()),
                            ..Default::default()
                        }
                        .encode_to_vec(),
                    ]),
                    None => not_found(format!("file {name}")),
                },
                _ => not_found(format!("file {name}")),
            },
            _ => not_found("extensions".to_owned()),
        };
        ServerReflectionResponse {
            valid_host: request.host.clone(),
            original_request: Some(request),
            message_response: Some(response),
        }
    }
}

type ReflectionStream =
    Pin<Box<dyn Stream<Item = Result<ServerReflectionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ServerReflection for FaultReflection {
    type ServerReflectionInfoStream = ReflectionStream;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        let mut inbound = request.into_inner();
        let this = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(Some(request)) = inbound.message().await {
                if tx.send(Ok(this.answer(request))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Counts one running call until dropped (also when the call is cancelled).
struct Running(Arc<AtomicU32>);

impl Running {
    fn start(counter: &Arc<AtomicU32>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The Faults service, written the way tonic's generated servers are.
#[derive(Debug, Clone, Default)]
struct FaultsServer {
    floods: Arc<AtomicU32>,
    hangs: Arc<AtomicU32>,
}

impl NamedService for FaultsServer {
    const NAME: &'static str = SERVICE;
}

struct Big;

impl UnaryService<BigRequest> for Big {
    type Response = BigReply;
    type Future = BoxFuture<Response<BigReply>, Status>;

    fn call(&mut self, request: Request<BigRequest>) -> Self::Future {
        Box::pin(async move {
            let size = request.into_inner().size_bytes;
            if size > MAX_BIG_BYTES {
                return Err(Status::invalid_argument("size_bytes is at most 256 MiB"));
            }
            Ok(Response::new(BigReply {
                payload: vec![b'x'; size as usize],
            }))
        })
    }
}

struct Flood(Arc<AtomicU32>);

type FloodStream = Pin<Box<dyn Stream<Item = Result<FloodReply, Status>> + Send>>;

impl ServerStreamingService<FloodRequest> for Flood {
    type Response = FloodReply;
    type ResponseStream = FloodStream;
    type Future = BoxFuture<Response<FloodStream>, Status>;

    fn call(&mut self, request: Request<FloodRequest>) -> Self::Future {
        let running = Running::start(&self.0);
        Box::pin(async move {
            let r = request.into_inner();
            let filler = "x".repeat(r.filler_bytes.min(1024 * 1024) as usize);
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(async move {
                let _running = running;
                for n in 1..=r.count {
                    let reply = FloodReply {
                        n,
                        filler: filler.clone(),
                    };
                    // The router dropping the stream is the cancellation.
                    if tx.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
            });
            let stream: FloodStream = Box::pin(ReceiverStream::new(rx));
            Ok(Response::new(stream))
        })
    }
}

struct Hang(Arc<AtomicU32>);

impl UnaryService<Empty> for Hang {
    type Response = Empty;
    type Future = BoxFuture<Response<Empty>, Status>;

    fn call(&mut self, _request: Request<Empty>) -> Self::Future {
        let running = Running::start(&self.0);
        Box::pin(async move {
            let _running = running;
            std::future::pending::<()>().await;
            Ok(Response::new(Empty {}))
        })
    }
}

struct Stats(FaultsServer);

impl UnaryService<Empty> for Stats {
    type Response = StatsReply;
    type Future = BoxFuture<Response<StatsReply>, Status>;

    fn call(&mut self, _request: Request<Empty>) -> Self::Future {
        let reply = StatsReply {
            floods_running: self.0.floods.load(Ordering::SeqCst),
            hangs_running: self.0.hangs.load(Ordering::SeqCst),
        };
        Box::pin(async move { Ok(Response::new(reply)) })
    }
}

struct Deep;

impl UnaryService<Empty> for Deep {
    type Response = Empty;
    type Future = BoxFuture<Response<Empty>, Status>;

    fn call(&mut self, _request: Request<Empty>) -> Self::Future {
        Box::pin(async move { Ok(Response::new(Empty {})) })
    }
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for FaultsServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let method = path.strip_prefix(&format!("/{SERVICE}/")).unwrap_or("");
            Ok(match method {
                "Big" => Grpc::new(ProstCodec::default()).unary(Big, request).await,
                "Flood" => {
                    Grpc::new(ProstCodec::default())
                        .server_streaming(Flood(this.floods.clone()), request)
                        .await
                }
                "Hang" => {
                    Grpc::new(ProstCodec::default())
                        .unary(Hang(this.hangs.clone()), request)
                        .await
                }
                "Stats" => {
                    Grpc::new(ProstCodec::default())
                        .unary(Stats(this), request)
                        .await
                }
                "Deep" => Grpc::new(ProstCodec::default()).unary(Deep, request).await,
                _ => Status::unimplemented(format!("no method {path}")).into_http(),
            })
        })
    }
}

/// Serves the Faults service in mode `fault` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    fault: Fault,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
    let flapper = (fault == Fault::Flap).then(|| {
        let health = health.clone();
        tokio::spawn(async move {
            let mut serving = true;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                serving = !serving;
                let status = if serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                health.set_service_status("", status).await;
            }
        })
    });
    let reflection = ServerReflectionServer::new(FaultReflection {
        fault,
        file: Arc::new(faults_file(fault)),
    });
    tracing::info!(fault = ?fault, addr = ?listener.local_addr().ok(), "faults connector listening");
    let result = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(FaultsServer::default())
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await;
    if let Some(flapper) = flapper {
        flapper.abort();
    }
    result.map_err(anyhow::Error::from)
}
