//! Starts the connector on 127.0.0.1:0 over a given code root and connects a client.

use std::path::{Path, PathBuf};

use code_analysis_connector::Config;
use switchboard_proto::code_analysis::v1 as pb;
use switchboard_proto::code_analysis::v1::code_analysis_client::CodeAnalysisClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A running connector; stops when dropped.
pub struct Connector {
    pub client: CodeAnalysisClient<Channel>,
    pub channel: Channel,
    _stop: oneshot::Sender<()>,
}

pub async fn start(root: &Path) -> Connector {
    start_with(Config::with_root(root.canonicalize().expect("root exists"))).await
}

pub async fn start_with(config: Config) -> Connector {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = code_analysis_connector::serve(listener, config, shutdown).await {
            panic!("connector failed: {e:#}");
        }
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    Connector {
        client: CodeAnalysisClient::new(channel.clone()),
        channel,
        _stop: stop,
    }
}

/// The directory with the reference samples.
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples")
}

pub fn code_request(code: &str, file_name: &str) -> pb::AnalyzeCodeRequest {
    pb::AnalyzeCodeRequest {
        code: code.to_owned(),
        language: None,
        file_name: Some(file_name.to_owned()),
        analysis_depth: None,
    }
}

/// Collects an AnalyzePath stream: (files, skipped, summary).
pub async fn collect_path(
    client: &mut CodeAnalysisClient<Channel>,
    request: pb::AnalyzePathRequest,
) -> Result<(Vec<pb::FileAnalysis>, Vec<pb::SkippedFile>, pb::PathSummary), tonic::Status> {
    let mut stream = client.analyze_path(request).await?.into_inner();
    let (mut files, mut skipped, mut summary) = (Vec::new(), Vec::new(), None);
    while let Some(event) = stream.message().await? {
        assert!(summary.is_none(), "the summary must be the last message");
        match event.event.expect("event set") {
            pb::analyze_path_event::Event::File(f) => files.push(f),
            pb::analyze_path_event::Event::Skipped(s) => skipped.push(s),
            pb::analyze_path_event::Event::Summary(s) => summary = Some(s),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, skipped, summary.expect("a summary at the end")))
}
