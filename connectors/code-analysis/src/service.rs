//! The CodeAnalysis gRPC service: checks arguments, applies defaults and limits,
//! and maps between the proto messages and the [`Analyzer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use switchboard_proto::code_analysis::v1 as pb;
use switchboard_proto::code_analysis::v1::code_analysis_server::CodeAnalysis;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::analyzer::{Analyzer, Depth, PathRequest, ScanRequest};
use crate::code_root::WalkOptions;
use crate::error::Error;
use crate::languages;

const DEFAULT_TOP_HOTSPOTS: u32 = 10;
const MAX_TOP_HOTSPOTS: u32 = 100;
const DEFAULT_MAX_FINDINGS: u32 = 200;
const MAX_MAX_FINDINGS: u32 = crate::analyzer::MAX_FINDINGS as u32;

/// The gRPC face of the analyzer.
#[derive(Debug, Clone)]
pub struct CodeAnalysisService {
    analyzer: Arc<Analyzer>,
}

impl CodeAnalysisService {
    pub fn new(analyzer: Arc<Analyzer>) -> Self {
        Self { analyzer }
    }

    fn walk_options(
        &self,
        include: Vec<String>,
        exclude: Vec<String>,
        respect_gitignore: bool,
        max_files: Option<u32>,
    ) -> WalkOptions {
        let limit = self.analyzer.config().max_path_files;
        WalkOptions {
            include: include
                .into_iter()
                .filter(|g| !g.trim().is_empty())
                .collect(),
            exclude: exclude
                .into_iter()
                .filter(|g| !g.trim().is_empty())
                .collect(),
            respect_gitignore,
            max_files: max_files.map_or(limit, |m| (m as usize).min(limit)),
            threads: self.analyzer.config().analysis_threads,
        }
    }
}

fn depth(raw: Option<i32>, default: Depth) -> Result<Depth, Error> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match pb::AnalysisDepth::try_from(raw) {
        Ok(pb::AnalysisDepth::Unspecified) => Ok(default),
        Ok(pb::AnalysisDepth::Basic) => Ok(Depth::Basic),
        Ok(pb::AnalysisDepth::Detailed) => Ok(Depth::Detailed),
        Ok(pb::AnalysisDepth::Comprehensive) => Ok(Depth::Comprehensive),
        Err(_) => Err(Error::InvalidArgument(format!(
            "analysis_depth {raw} is not one of BASIC, DETAILED, COMPREHENSIVE"
        ))),
    }
}

fn min_severity(raw: Option<i32>) -> Result<pb::Severity, Error> {
    match raw.map(pb::Severity::try_from) {
        None => Ok(pb::Severity::Low),
        Some(Ok(pb::Severity::Unspecified)) => Ok(pb::Severity::Low),
        Some(Ok(severity)) => Ok(severity),
        Some(Err(_)) => Err(Error::InvalidArgument(
            "min_severity must be one of LOW, MEDIUM, HIGH, CRITICAL".to_owned(),
        )),
    }
}

/// Sets the flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tonic::async_trait]
impl CodeAnalysis for CodeAnalysisService {
    async fn analyze_code(
        &self,
        request: Request<pb::AnalyzeCodeRequest>,
    ) -> Result<Response<pb::FileAnalysis>, Status> {
        let request = request.into_inner();
        let lang = languages::resolve(request.language.as_deref(), request.file_name.as_deref())?;
        let depth = depth(request.analysis_depth, Depth::Detailed)?;
        let analyzer = Arc::clone(&self.analyzer);
        let path = request.file_name.unwrap_or_default();
        let mut analysis = self
            .analyzer
            .run_admitted(move || analyzer.analyze_code(lang, &request.code, &path, depth))
            .await?;
        if depth == Depth::Basic {
            analysis.functions.clear();
        }
        Ok(Response::new(analysis))
    }

    type AnalyzePathStream = ReceiverStream<Result<pb::AnalyzePathEvent, Status>>;

    async fn analyze_path(
        &self,
        request: Request<pb::AnalyzePathRequest>,
    ) -> Result<Response<Self::AnalyzePathStream>, Status> {
        let request = request.into_inner();
        let depth = depth(request.analysis_depth, Depth::Basic)?;
        let top = request
            .top_hotspots
            .unwrap_or(DEFAULT_TOP_HOTSPOTS)
            .min(MAX_TOP_HOTSPOTS);
        let path_request = PathRequest {
            walk: self.walk_options(
                request.include,
                request.exclude,
                request.respect_gitignore.unwrap_or(true),
                request.max_files,
            ),
            path: request.path,
            depth,
            top_hotspots: top as usize,
            summary_only: request.summary_only.unwrap_or(false),
        };
        let admitted = self.analyzer.admit().await?;
        let events = self.analyzer.analyze_path(path_request, admitted)?;
        Ok(Response::new(ReceiverStream::new(events)))
    }

    async fn find_security_issues(
        &self,
        request: Request<pb::FindSecurityIssuesRequest>,
    ) -> Result<Response<pb::FindSecurityIssuesResponse>, Status> {
        let request = request.into_inner();
        let min_severity = min_severity(request.min_severity)?;
        let max_findings = request
            .max_findings
            .unwrap_or(DEFAULT_MAX_FINDINGS)
            .clamp(1, MAX_MAX_FINDINGS) as usize;
        let analyzer = Arc::clone(&self.analyzer);
        let mut result = match (request.code, request.path.filter(|p| !p.trim().is_empty())) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "give either `code` or `path`, not both".to_owned(),
                )
                .into());
            }
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "give `code` (with `language` or `file_name`) or a `path` under the code root"
                        .to_owned(),
                )
                .into());
            }
            (Some(code), None) => {
                let lang =
                    languages::resolve(request.language.as_deref(), request.file_name.as_deref())?;
                let path = request.file_name.unwrap_or_default();
                let findings = self
                    .analyzer
                    .run_admitted(move || analyzer.scan_code(lang, &code, &path))
                    .await?;
                crate::analyzer::ScanResult {
                    findings,
                    files_scanned: 1,
                    ..Default::default()
                }
            }
            (None, Some(path)) => {
                let scan = ScanRequest {
                    path,
                    walk: self.walk_options(request.include, request.exclude, true, None),
                    cancelled: Arc::new(AtomicBool::new(false)),
                };
                // Dropped with this future when the caller goes away: stops the walk.
                let _cancel_on_drop = CancelOnDrop(Arc::clone(&scan.cancelled));
                self.analyzer
                    .run_admitted(move || analyzer.scan_path(&scan))
                    .await?
            }
        };
        result
            .findings
            .retain(|f| f.severity >= min_severity as i32);
        result.findings.sort_by(crate::analyzer::finding_order);
        let truncated = result.truncated || result.findings.len() > max_findings;
        result.findings.truncate(max_findings);
        result.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Response::new(pb::FindSecurityIssuesResponse {
            findings: result.findings,
            files_scanned: result.files_scanned,
            truncated,
            skipped: result.skipped,
        }))
    }

    async fn list_languages(
        &self,
        _request: Request<pb::ListLanguagesRequest>,
    ) -> Result<Response<pb::ListLanguagesResponse>, Status> {
        let languages = languages::SUPPORTED
            .iter()
            .map(|lang| pb::Language {
                name: lang.name().to_owned(),
                extensions: lang.extensions().iter().map(|e| (*e).to_owned()).collect(),
                security_rules: u32::try_from(self.analyzer.rules().rule_count(*lang))
                    .unwrap_or(u32::MAX),
            })
            .collect();
        Ok(Response::new(pb::ListLanguagesResponse { languages }))
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;
    use tonic::Code;

    use super::*;
    use crate::config::Config;

    fn request() -> Request<pb::AnalyzeCodeRequest> {
        Request::new(pb::AnalyzeCodeRequest {
            code: "def f(a):\n    return a\n".to_owned(),
            language: Some("python".to_owned()),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn requests_past_the_places_wait_and_past_the_queue_are_refused_naming_the_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let analyzer = Arc::new(
            Analyzer::new(Config {
                max_concurrent_analyses: 1,
                max_queued_analyses: 1,
                ..Config::with_root(dir.path().canonicalize().expect("root"))
            })
            .expect("analyzer"),
        );
        let service = CodeAnalysisService::new(Arc::clone(&analyzer));
        let running = analyzer.admit().await.expect("the one place");

        // A caller that goes away while waiting leaves the queue.
        let gone = tokio::spawn({
            let service = service.clone();
            async move { service.analyze_code(request()).await }
        });
        tokio::task::yield_now().await;
        gone.abort();
        assert!(gone.await.expect_err("aborted").is_cancelled());

        // One waits for the place...
        let waiting = tokio::spawn({
            let service = service.clone();
            async move { service.analyze_code(request()).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "it waits");
        // ...and one more is refused at once.
        let refused = service
            .analyze_code(request())
            .now_or_never()
            .expect("answered at once")
            .expect_err("busy");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        for setting in ["MAX_CONCURRENT_ANALYSES", "MAX_QUEUED_ANALYSES"] {
            assert!(refused.message().contains(setting), "{}", refused.message());
        }

        // The place freed, the waiting one runs, and the places come back.
        drop(running);
        let answered = waiting.await.expect("joined").expect("analysed");
        assert_eq!(answered.get_ref().language, "python");
        service
            .analyze_code(request())
            .await
            .expect("a place again");
        service.analyze_code(request()).await.expect("and again");
    }
}
