//! Discovery: a connector's services and descriptors, read over gRPC server
//! reflection v1 within the router's limits.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use prost::Message;
use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorProto;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use super::describe_status;
use crate::config::UpstreamLimits;

/// Services every connector serves that are plumbing, not tools.
const PLUMBING_PREFIXES: [&str; 2] = ["grpc.health.", "grpc.reflection."];

/// Why descriptors could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The reflection call failed.
    #[error("reflection call failed: {0}")]
    Rpc(String),
    /// The answer was not what reflection promises.
    #[error("unexpected reflection answer: {0}")]
    Protocol(String),
    /// The descriptors do not form a valid set.
    #[error("invalid descriptors: {0}")]
    Descriptors(String),
    /// A reflection answer was over `reflection_max_message_bytes`.
    #[error(
        "a reflection answer is larger than {limit} bytes, the router's limit \
         reflection_max_message_bytes (SWITCHBOARD_REFLECTION_MAX_MESSAGE_BYTES)"
    )]
    AnswerTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connector's descriptors span more files than `max_reflection_files`.
    #[error(
        "the connector's descriptors need more than {limit} files, the router's limit \
         max_reflection_files (SWITCHBOARD_MAX_REFLECTION_FILES)"
    )]
    TooManyFiles {
        /// The limit.
        limit: usize,
    },
}

/// An answer of the wrong kind, named by its kind only (its content may be large).
fn unexpected(response: &MessageResponse) -> DiscoveryError {
    let kind = match response {
        MessageResponse::FileDescriptorResponse(_) => "file descriptors",
        MessageResponse::AllExtensionNumbersResponse(_) => "extension numbers",
        MessageResponse::ListServicesResponse(_) => "a service list",
        MessageResponse::ErrorResponse(_) => "an error",
    };
    DiscoveryError::Protocol(format!("got {kind} where another answer was expected"))
}

fn reflection_failure(status: &Status, limits: &UpstreamLimits) -> DiscoveryError {
    if status.code() == Code::OutOfRange && status.message().contains("message length too large") {
        return DiscoveryError::AnswerTooLarge {
            limit: limits.reflection_max_message_bytes,
        };
    }
    DiscoveryError::Rpc(describe_status(status))
}

async fn next_response(
    responses: &mut tonic::Streaming<tonic_reflection::pb::v1::ServerReflectionResponse>,
    limits: &UpstreamLimits,
) -> Result<MessageResponse, DiscoveryError> {
    match tokio::time::timeout(Duration::from_secs(10), responses.message()).await {
        Err(_) => Err(DiscoveryError::Rpc("no answer within 10s".into())),
        Ok(Err(s)) => Err(reflection_failure(&s, limits)),
        Ok(Ok(None)) => Err(DiscoveryError::Protocol("stream ended early".into())),
        Ok(Ok(Some(r))) => r
            .message_response
            .ok_or_else(|| DiscoveryError::Protocol("empty response".into())),
    }
}

/// Descriptor files read so far, by name: the decoded proto (for names and
/// dependencies) and the raw bytes, which the pool is built from so that custom
/// options survive (prost's own descriptor types drop extension fields). Holds at
/// most `limit` files; the first file seen under a name is kept.
struct FileSet {
    files: HashMap<String, (FileDescriptorProto, Vec<u8>)>,
    limit: usize,
}

impl FileSet {
    fn new(limit: usize) -> Self {
        Self {
            files: HashMap::new(),
            limit,
        }
    }

    /// Adds the files of one answer; returns their names, in order.
    fn add(&mut self, answer: Vec<Vec<u8>>) -> Result<Vec<String>, DiscoveryError> {
        let mut names = Vec::with_capacity(answer.len());
        for raw in answer {
            let file = FileDescriptorProto::decode(raw.as_slice())
                .map_err(|e| DiscoveryError::Descriptors(e.to_string()))?;
            let name = file.name().to_owned();
            if !self.files.contains_key(&name) {
                if self.files.len() >= self.limit {
                    return Err(DiscoveryError::TooManyFiles { limit: self.limit });
                }
                self.files.insert(name.clone(), (file, raw));
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Whether a file read so far declares `service` (a full name).
    fn declares(&self, service: &str) -> bool {
        self.files.values().any(|(file, _)| {
            file.service.iter().any(|s| {
                let full = if file.package().is_empty() {
                    s.name().to_owned()
                } else {
                    format!("{}.{}", file.package(), s.name())
                };
                full == service
            })
        })
    }

    /// Dependencies named by the files read so far that are not among them.
    fn missing(&self) -> BTreeSet<String> {
        self.files
            .values()
            .flat_map(|(f, _)| f.dependency.iter())
            .filter(|d| !self.files.contains_key(*d))
            .cloned()
            .collect()
    }

    /// An encoded FileDescriptorSet: its files as repeated field 1.
    fn encode(&self) -> Vec<u8> {
        let mut set = Vec::new();
        for (_, raw) in self.files.values() {
            prost::encoding::bytes::encode(1, raw, &mut set);
        }
        set
    }
}

/// Reads a connector's services and their descriptors (with dependencies) over
/// gRPC server reflection v1. The dependency walk is iterative: every file name
/// is asked for at most once, an answer must contain the file asked for (a file
/// served under another name than the one it was asked by, e.g. one depending on
/// itself under an alias, is an error rather than a loop), and the walk stops at
/// `max_reflection_files` files. Each answer is read with the
/// `reflection_max_message_bytes` limit.
pub async fn discover(
    channel: Channel,
    limits: &UpstreamLimits,
) -> Result<(DescriptorPool, Vec<String>), DiscoveryError> {
    let mut client = ServerReflectionClient::new(channel)
        .max_decoding_message_size(limits.reflection_max_message_bytes);
    let (tx, rx) = mpsc::channel::<ServerReflectionRequest>(16);
    let send = |req: MessageRequest| {
        let tx = tx.clone();
        async move {
            tx.send(ServerReflectionRequest {
                host: String::new(),
                message_request: Some(req),
            })
            .await
            .map_err(|_| DiscoveryError::Rpc("reflection stream closed".into()))
        }
    };
    send(MessageRequest::ListServices(String::new())).await?;
    let mut responses = tokio::time::timeout(
        Duration::from_secs(10),
        client.server_reflection_info(ReceiverStream::new(rx)),
    )
    .await
    .map_err(|_| DiscoveryError::Rpc("no answer within 10s".into()))?
    .map_err(|s| reflection_failure(&s, limits))?
    .into_inner();

    let services: Vec<String> = match next_response(&mut responses, limits).await? {
        MessageResponse::ListServicesResponse(list) => list
            .service
            .into_iter()
            .map(|s| s.name)
            .filter(|n| !PLUMBING_PREFIXES.iter().any(|p| n.starts_with(p)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        MessageResponse::ErrorResponse(e) => return Err(DiscoveryError::Rpc(e.error_message)),
        other => return Err(unexpected(&other)),
    };

    let mut files = FileSet::new(limits.max_reflection_files);
    for service in &services {
        // A service declared in a file already read needs no round trip; so the
        // number of requests is bounded by the number of files.
        if files.declares(service) {
            continue;
        }
        send(MessageRequest::FileContainingSymbol(service.clone())).await?;
        match next_response(&mut responses, limits).await? {
            MessageResponse::FileDescriptorResponse(r) => {
                files.add(r.file_descriptor_proto)?;
            }
            MessageResponse::ErrorResponse(e) => {
                return Err(DiscoveryError::Rpc(format!(
                    "{service}: {}",
                    e.error_message
                )));
            }
            other => return Err(unexpected(&other)),
        }
        if !files.declares(service) {
            return Err(DiscoveryError::Protocol(format!(
                "the file served for {service} does not declare it"
            )));
        }
    }
    // Fetch every dependency the server did not include, each name once.
    let mut asked: HashSet<String> = HashSet::new();
    loop {
        let missing = files.missing();
        if missing.is_empty() {
            break;
        }
        for name in missing {
            if !asked.insert(name.clone()) {
                // Unreachable while every answer must contain the file asked
                // for; kept so that the walk ends whatever a connector sends.
                return Err(DiscoveryError::Descriptors(format!(
                    "dependency {name} was asked for already and is still missing"
                )));
            }
            send(MessageRequest::FileByFilename(name.clone())).await?;
            match next_response(&mut responses, limits).await? {
                MessageResponse::FileDescriptorResponse(r) => {
                    let answered = files.add(r.file_descriptor_proto)?;
                    if !answered.contains(&name) {
                        return Err(DiscoveryError::Descriptors(format!(
                            "asked for dependency {name}, the connector answered with {} \
                             (a file served under another name than its own)",
                            if answered.is_empty() {
                                "no file".to_owned()
                            } else {
                                answered.join(", ")
                            }
                        )));
                    }
                }
                MessageResponse::ErrorResponse(e) => {
                    return Err(DiscoveryError::Descriptors(format!(
                        "dependency {name} unavailable: {}",
                        e.error_message
                    )));
                }
                other => return Err(unexpected(&other)),
            }
        }
    }
    drop(tx);

    let mut pool = DescriptorPool::new();
    pool.decode_file_descriptor_set(files.encode().as_slice())
        .map_err(|e| DiscoveryError::Descriptors(e.to_string()))?;
    Ok((pool, services))
}
