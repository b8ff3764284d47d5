//! The analysis engine: checks and parses sources, computes metrics and security
//! findings, caches both by content hash, and runs directory requests on worker
//! threads, streaming results as they come.
//!
//! Results are cached under (xxh3-128 of the content, language): an unchanged file
//! is neither parsed nor measured again, whatever its path. The cache holds the
//! DETAILED analysis; BASIC trims it, COMPREHENSIVE adds the review on top.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use big_code_analysis::{Ast, LANG, Source, tree_sitter};
use moka::sync::Cache;
use switchboard_proto::code_analysis::v1 as pb;
use tokio::sync::mpsc;
use tonic::Status;

use crate::code_root::{CodeRoot, Visit, WalkOptions};
use crate::config::Config;
use crate::error::Error;
use crate::security::RuleSet;
use crate::summary::PathTotals;
use crate::telemetry::{self, Kind};
use crate::{languages, metrics, review};

/// How much to report per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Basic,
    Detailed,
    Comprehensive,
}

/// Content hash, language, and which metrics the entry holds.
type Key = (u128, &'static str, metrics::Needs);

/// A directory (or file) request of AnalyzePath.
#[derive(Debug, Clone)]
pub struct PathRequest {
    pub path: String,
    pub walk: WalkOptions,
    pub depth: Depth,
    pub top_hotspots: usize,
    pub summary_only: bool,
}

/// A request of FindSecurityIssues over a path.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub path: String,
    pub walk: WalkOptions,
    /// Set when the caller has gone (deadline, cancellation): the walk stops.
    pub cancelled: Arc<AtomicBool>,
}

/// Most findings one request can return (the largest `max_findings`); a path scan
/// keeps no more than twice this many in memory.
pub const MAX_FINDINGS: usize = 2000;

/// Most skipped files one security scan reports; the rest set `truncated`.
pub const MAX_SKIPPED_REPORTED: usize = 1000;

/// The order findings are reported in: most severe first, then by path, line and
/// rule.
pub fn finding_order(a: &pb::Finding, b: &pb::Finding) -> std::cmp::Ordering {
    b.severity
        .cmp(&a.severity)
        .then_with(|| a.path.cmp(&b.path))
        .then_with(|| a.start_line.cmp(&b.start_line))
        .then_with(|| a.rule_id.cmp(&b.rule_id))
}

/// Findings over a path, before filtering by severity and cutting to max_findings;
/// already cut to the first [`MAX_FINDINGS`] in report order (and `truncated` set)
/// when there were more.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub findings: Vec<pb::Finding>,
    pub files_scanned: u64,
    pub skipped: Vec<pb::SkippedFile>,
    pub truncated: bool,
}

/// Metrics, findings and their caches; shared by all requests.
pub struct Analyzer {
    config: Config,
    root: CodeRoot,
    rules: RuleSet,
    analyses: Cache<Key, Arc<pb::FileAnalysis>>,
    findings: Cache<Key, Arc<Vec<pb::Finding>>>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("root", &self.root)
            .field("cached_analyses", &self.analyses.entry_count())
            .finish_non_exhaustive()
    }
}

enum Outcome {
    Analyzed(Box<pb::FileAnalysis>),
    Skipped(pb::SkippedFile),
}

impl Analyzer {
    /// Loads every grammar and compiles every security rule; fails on a broken rule.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let rules = RuleSet::load(&languages::SUPPORTED).map_err(anyhow::Error::msg)?;
        // Parse a line of each language once, so a grammar that cannot load fails
        // here (before the connector reports SERVING) rather than on a request.
        for lang in languages::SUPPORTED {
            Ast::parse(Source::new(lang, b"x"))
                .map_err(|e| anyhow::anyhow!("grammar {} does not load: {e}", lang.name()))?;
        }
        Ok(Self {
            root: CodeRoot::new(config.code_root.clone()),
            analyses: Cache::new(config.cache_max_entries),
            findings: Cache::new(config.cache_max_entries),
            rules,
            config,
        })
    }

    /// The security rules (for ListLanguages).
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The code root.
    pub fn root(&self) -> &CodeRoot {
        &self.root
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks that `bytes` is acceptable source text: size limit, no NUL bytes, UTF-8.
    fn check_source<'a>(&self, what: &str, bytes: &'a [u8]) -> Result<&'a str, Error> {
        let size = bytes.len() as u64;
        if size > self.config.max_file_bytes {
            return Err(Error::TooLarge {
                what: what.to_owned(),
                size,
                limit: self.config.max_file_bytes,
            });
        }
        if bytes.iter().take(8192).any(|&b| b == 0) {
            return Err(Error::Binary(what.to_owned()));
        }
        std::str::from_utf8(bytes).map_err(|e| {
            Error::InvalidArgument(format!(
                "{what} is not valid UTF-8 text ({e}); re-encode it as UTF-8"
            ))
        })
    }

    /// Metrics of code given as text.
    pub fn analyze_code(
        &self,
        lang: LANG,
        code: &str,
        path: &str,
        depth: Depth,
    ) -> Result<pb::FileAnalysis, Error> {
        let code = self.check_source(
            if path.is_empty() { "the code" } else { path },
            code.as_bytes(),
        )?;
        self.analyze_source(lang, code, path, depth, metrics::Needs::All)
    }

    /// The analysis of `code`, from the cache when it holds one with what
    /// `needs` asks for (an entry with every metric serves any request).
    fn analyze_source(
        &self,
        lang: LANG,
        code: &str,
        path: &str,
        depth: Depth,
        needs: metrics::Needs,
    ) -> Result<pb::FileAnalysis, Error> {
        let limits = metrics::Limits::from_config(&self.config);
        let hash = xxhash_rust::xxh3::xxh3_128(code.as_bytes());
        let complete = (needs == metrics::Needs::Summary)
            .then(|| self.analyses.get(&(hash, lang.name(), metrics::Needs::All)))
            .flatten();
        let (base, from_cache) = match complete {
            Some(entry) => {
                telemetry::record_file(lang.name(), Kind::Metrics, code.len(), true);
                (entry, true)
            }
            None => cached(
                &self.analyses,
                Kind::Metrics,
                (hash, lang, needs),
                code,
                || {
                    let ast = parse(lang, code, self.config.parse_timeout)?;
                    metrics::measure_only(&ast, "", limits, needs).map(Arc::new)
                },
            )
            .map_err(|e| label_too_deep(e, path))?,
        };
        let mut result = (*base).clone();
        result.path = path.to_owned();
        result.from_cache = from_cache;
        if depth == Depth::Comprehensive {
            review::add_review(&mut result, code);
            metrics::fit_result(&mut result, limits.max_result_bytes);
        }
        Ok(result)
    }

    /// Security findings in code given as text, labelled with `path`.
    pub fn scan_code(&self, lang: LANG, code: &str, path: &str) -> Result<Vec<pb::Finding>, Error> {
        let code = self.check_source(
            if path.is_empty() { "the code" } else { path },
            code.as_bytes(),
        )?;
        self.scan_source(lang, code, path)
    }

    fn scan_source(&self, lang: LANG, code: &str, path: &str) -> Result<Vec<pb::Finding>, Error> {
        let limit = self.config.max_nesting_depth;
        let key = (
            xxhash_rust::xxh3::xxh3_128(code.as_bytes()),
            lang,
            metrics::Needs::All,
        );
        let (findings, _) = cached(&self.findings, Kind::Security, key, code, || {
            let ast = parse(lang, code, self.config.parse_timeout)?;
            // Query matching slows down with the square of the depth: the same
            // limit as the metrics keeps a scan's work bounded.
            if metrics::tree_depth(ast.as_tree_sitter(), limit) > limit {
                return Err(Error::TooDeep {
                    what: String::new(),
                    limit,
                });
            }
            Ok(Arc::new(self.rules.scan(
                lang,
                ast.as_tree_sitter(),
                ast.source(),
            )))
        })
        .map_err(|e| label_too_deep(e, path))?;
        Ok(findings
            .iter()
            .cloned()
            .map(|mut f| {
                f.path = path.to_owned();
                f
            })
            .collect())
    }

    /// Reads a file as source text under the same limits as an analysis: at most
    /// MAX_FILE_BYTES, no NUL bytes (binary), valid UTF-8. `relative` labels errors.
    pub fn read_text(&self, path: &Path, relative: &str) -> Result<String, Error> {
        let unreadable = |e: std::io::Error| Error::Unreadable {
            path: relative.to_owned(),
            message: e.to_string(),
        };
        let size = std::fs::metadata(path).map_err(unreadable)?.len();
        if size > self.config.max_file_bytes {
            return Err(Error::TooLarge {
                what: relative.to_owned(),
                size,
                limit: self.config.max_file_bytes,
            });
        }
        let bytes = std::fs::read(path).map_err(unreadable)?;
        self.check_source(relative, &bytes)?;
        String::from_utf8(bytes)
            .map_err(|_| Error::InvalidArgument(format!("{relative} is not valid UTF-8 text")))
    }

    /// Reads one walked file, or says why it was skipped.
    fn read(&self, path: &Path, relative: &str) -> Result<String, String> {
        self.read_text(path, relative).map_err(|e| match e {
            Error::Binary(_) => "binary file".to_owned(),
            Error::TooLarge { size, limit, .. } => {
                format!("file too large ({size} bytes, limit {limit} set by MAX_FILE_BYTES)")
            }
            Error::Unreadable { message, .. } => format!("unreadable: {message}"),
            _ => "not valid UTF-8 source".to_owned(),
        })
    }

    /// Reads and analyses one file (through the cache); the error is the reason to
    /// report it as skipped (too large, binary, unreadable, not UTF-8).
    pub fn analyze_file(
        &self,
        path: &Path,
        relative: &str,
        language: LANG,
        depth: Depth,
    ) -> Result<pb::FileAnalysis, String> {
        self.analyze_file_for(path, relative, language, depth, metrics::Needs::All)
    }

    fn analyze_file_for(
        &self,
        path: &Path,
        relative: &str,
        language: LANG,
        depth: Depth,
        needs: metrics::Needs,
    ) -> Result<pb::FileAnalysis, String> {
        let code = self.read(path, relative)?;
        self.analyze_source(language, &code, relative, depth, needs)
            .map_err(|e| e.to_string())
    }

    fn analyze_visit(&self, visit: Visit, depth: Depth, needs: metrics::Needs) -> Outcome {
        match visit {
            Visit::Refused { relative, reason } => Outcome::Skipped(pb::SkippedFile {
                path: relative,
                reason,
            }),
            Visit::Source {
                path,
                relative,
                language,
            } => match self.analyze_file_for(&path, &relative, language, depth, needs) {
                Ok(file) => Outcome::Analyzed(Box::new(file)),
                Err(reason) => Outcome::Skipped(pb::SkippedFile {
                    path: relative,
                    reason,
                }),
            },
        }
    }

    /// Where a path request starts (under the code root), and its relative name; a
    /// single file must be in a supported language.
    fn resolve_walk_start(&self, path: &str) -> Result<(std::path::PathBuf, String), Error> {
        let (start, relative) = self.root.resolve(path)?;
        if start.is_file() && languages::from_path(&start).is_none() {
            return Err(Error::InvalidArgument(format!(
                "{relative} is not in a supported language (by its extension); supported: {}",
                languages::supported_names()
            )));
        }
        Ok((start, relative))
    }

    /// Resolves the request's path, then analyses on worker threads; the returned
    /// stream yields one event per file (unless summary_only) and then the summary.
    pub fn analyze_path(
        self: &Arc<Self>,
        request: PathRequest,
    ) -> Result<mpsc::Receiver<Result<pb::AnalyzePathEvent, Status>>, Error> {
        let (start, relative) = self.resolve_walk_start(&request.path)?;
        let started = Instant::now();
        let (file_tx, mut file_rx) = mpsc::channel::<Outcome>(64);
        let (event_tx, event_rx) = mpsc::channel(64);

        let analyzer = Arc::clone(self);
        let walk = tokio::task::spawn_blocking(move || {
            analyzer.root.walk(&start, &request.walk, |visit| {
                // The DETAILED analysis is needed for hotspots even at BASIC depth;
                // the forwarding task trims it.
                let depth = if request.depth == Depth::Comprehensive {
                    Depth::Comprehensive
                } else {
                    Depth::Detailed
                };
                // A summary alone needs fewer metrics than files sent whole.
                let needs = if request.summary_only && depth != Depth::Comprehensive {
                    metrics::Needs::Summary
                } else {
                    metrics::Needs::All
                };
                file_tx
                    .blocking_send(analyzer.analyze_visit(visit, depth, needs))
                    .is_ok()
            })
        });

        tokio::spawn(async move {
            let mut totals = PathTotals::new(request.top_hotspots);
            while let Some(outcome) = file_rx.recv().await {
                let event = match outcome {
                    Outcome::Analyzed(mut file) => {
                        totals.add_file(&file);
                        if request.depth == Depth::Basic {
                            file.functions.clear();
                        }
                        pb::analyze_path_event::Event::File(*file)
                    }
                    Outcome::Skipped(skipped) => {
                        totals.add_skipped();
                        pb::analyze_path_event::Event::Skipped(skipped)
                    }
                };
                if !request.summary_only
                    && event_tx
                        .send(Ok(pb::AnalyzePathEvent { event: Some(event) }))
                        .await
                        .is_err()
                {
                    // The caller went away; dropping the receiver stops the walk.
                    return;
                }
            }
            let truncated = match walk.await {
                Ok(Ok(truncated)) => truncated,
                Ok(Err(error)) => {
                    let _ = event_tx.send(Err(Status::from(error))).await;
                    return;
                }
                Err(join) => {
                    let _ = event_tx
                        .send(Err(Status::from(Error::Internal(format!(
                            "analysis worker failed: {join}"
                        )))))
                        .await;
                    return;
                }
            };
            let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let summary = totals.finish(relative, truncated, elapsed);
            tracing::debug!(path = %summary.path, files = summary.files_analyzed, cached = summary.files_from_cache, elapsed_ms = elapsed, "path analysed");
            let _ = event_tx
                .send(Ok(pb::AnalyzePathEvent {
                    event: Some(pb::analyze_path_event::Event::Summary(summary)),
                }))
                .await;
        });
        Ok(event_rx)
    }

    /// Scans every supported file under the request's path (blocking; run it on a
    /// blocking thread).
    pub fn scan_path(&self, request: &ScanRequest) -> Result<ScanResult, Error> {
        let (start, _) = self.resolve_walk_start(&request.path)?;
        let result = std::sync::Mutex::new(ScanResult::default());
        let truncated = self.root.walk(&start, &request.walk, |visit| {
            if request.cancelled.load(Ordering::Relaxed) {
                return false;
            }
            let outcome = match visit {
                Visit::Refused { relative, reason } => Err(pb::SkippedFile {
                    path: relative,
                    reason,
                }),
                Visit::Source {
                    path,
                    relative,
                    language,
                } => self
                    .read(&path, &relative)
                    .and_then(|code| {
                        self.scan_source(language, &code, &relative)
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|reason| pb::SkippedFile {
                        path: relative,
                        reason,
                    }),
            };
            let Ok(mut result) = result.lock() else {
                return false;
            };
            match outcome {
                Ok(findings) => {
                    result.files_scanned += 1;
                    result.findings.extend(findings);
                    // Only the first MAX_FINDINGS in report order can be returned.
                    if result.findings.len() > 2 * MAX_FINDINGS {
                        result.findings.sort_by(finding_order);
                        result.findings.truncate(MAX_FINDINGS);
                        result.truncated = true;
                    }
                }
                Err(_) if result.skipped.len() >= MAX_SKIPPED_REPORTED => {
                    result.truncated = true;
                }
                Err(skipped) => result.skipped.push(skipped),
            }
            true
        })?;
        let mut result = result
            .into_inner()
            .map_err(|_| Error::Internal("a scan worker panicked".to_owned()))?;
        result.truncated |= truncated;
        Ok(result)
    }
}

/// A depth refusal names what was refused: the path, or "the code" for text.
fn label_too_deep(error: Error, path: &str) -> Error {
    let what = || if path.is_empty() { "the code" } else { path }.to_owned();
    match error {
        Error::TooDeep { limit, .. } => Error::TooDeep {
            what: what(),
            limit,
        },
        Error::ParseTimeout { secs, .. } => Error::ParseTimeout { what: what(), secs },
        other => other,
    }
}

/// The cached value for `code` in `lang`, computing it on a miss (once, however many
/// requests ask at the same time); the flag says whether it came from the cache.
/// Counted in the metrics as one file served as `kind`.
fn cached<V: Clone + Send + Sync + 'static>(
    cache: &Cache<Key, V>,
    kind: Kind,
    (hash, lang, needs): (u128, LANG, metrics::Needs),
    code: &str,
    compute: impl FnOnce() -> Result<V, Error>,
) -> Result<(V, bool), Error> {
    let key = (hash, lang.name(), needs);
    let entry = cache
        .entry(key)
        .or_try_insert_with(compute)
        // The error is shared with any request that waited on the same computation.
        .map_err(|e: Arc<Error>| {
            telemetry::record_lookup(kind, false);
            Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone())
        })?;
    let from_cache = !entry.is_fresh();
    telemetry::record_file(lang.name(), kind, code.len(), from_cache);
    Ok((entry.into_value(), from_cache))
}

thread_local! {
    /// The parser this thread reuses across files (its buffers stay grown).
    static PARSER: std::cell::RefCell<tree_sitter::Parser> =
        std::cell::RefCell::new(tree_sitter::Parser::new());
}

/// Parses `code` within `budget`. tree-sitter's error recovery can run for
/// minutes on heavily broken input (nested constructs with stray characters), so
/// the parse is ours, with a progress callback that stops it at the deadline, and
/// the library adopts the finished tree.
fn parse(lang: LANG, code: &str, budget: std::time::Duration) -> Result<Ast, Error> {
    let internal = |e: &dyn std::fmt::Display| {
        Error::Internal(format!("cannot parse as {}: {e}", lang.name()))
    };
    let language = lang.tree_sitter_language().map_err(|e| internal(&e))?;
    let deadline = Instant::now() + budget;
    let bytes = code.as_bytes();
    let tree = PARSER.with(|parser| {
        let mut parser = parser.borrow_mut();
        parser.set_language(&language).map_err(|e| internal(&e))?;
        let mut past_deadline = |_: &tree_sitter::ParseState| {
            if Instant::now() >= deadline {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        };
        let tree = parser.parse_with_options(
            &mut |at, _| bytes.get(at..).unwrap_or_default(),
            None,
            Some(tree_sitter::ParseOptions::new().progress_callback(&mut past_deadline)),
        );
        // A stopped parse keeps its state for resuming; the next file starts afresh.
        parser.reset();
        tree.ok_or(Error::ParseTimeout {
            what: String::new(),
            secs: budget.as_secs(),
        })
    })?;
    Ast::from_tree_sitter(lang, tree, bytes.to_vec(), None).map_err(|e| internal(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_keyed_by_content_and_language() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("root");
        let analyzer = Analyzer::new(Config::with_root(root)).expect("analyzer");
        let code = "x = 1\n";
        let cached = |lang: LANG| {
            analyzer
                .analyze_code(lang, code, "", Depth::Basic)
                .expect("analysis")
                .from_cache
        };
        assert!(!cached(LANG::Python));
        assert!(
            !cached(LANG::Javascript),
            "another language is another entry"
        );
        assert!(cached(LANG::Python));
        assert!(cached(LANG::Javascript));
    }

    #[test]
    fn a_summary_computes_fewer_metrics_and_a_complete_entry_serves_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("root");
        let analyzer = Analyzer::new(Config::with_root(root)).expect("analyzer");
        let code = "def f(a, b):\n    if a:\n        return b\n    return a + b\n";
        let analyse = |needs| {
            analyzer
                .analyze_source(LANG::Python, code, "f.py", Depth::Detailed, needs)
                .expect("analysis")
        };
        let summary = analyse(metrics::Needs::Summary);
        assert!(!summary.from_cache);
        assert_eq!(summary.functions[0].cyclomatic, 2);
        assert_eq!(
            summary.functions[0].arguments, 0,
            "not computed for a summary"
        );
        let complete = analyse(metrics::Needs::All);
        assert!(
            !complete.from_cache,
            "a summary entry does not serve a full request"
        );
        assert_eq!(complete.functions[0].arguments, 2);
        assert!(
            complete
                .metrics
                .and_then(|m| m.halstead)
                .is_some_and(|h| h.length > 0)
        );
        let again = analyse(metrics::Needs::Summary);
        assert!(again.from_cache);
        assert_eq!(
            again.functions[0].arguments, 2,
            "served by the complete entry"
        );
    }

    #[test]
    fn a_cancelled_scan_stops_walking() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("f{i}.py")), "eval(x)\n").expect("write");
        }
        let root = dir.path().canonicalize().expect("root");
        let analyzer = Analyzer::new(Config::with_root(root)).expect("analyzer");
        let request = |cancelled: bool| ScanRequest {
            path: ".".into(),
            walk: WalkOptions {
                respect_gitignore: true,
                max_files: 100,
                threads: 1,
                ..Default::default()
            },
            cancelled: Arc::new(AtomicBool::new(cancelled)),
        };
        assert_eq!(
            analyzer
                .scan_path(&request(false))
                .expect("scan")
                .files_scanned,
            5
        );
        let stopped = analyzer.scan_path(&request(true)).expect("scan");
        assert_eq!(stopped.files_scanned, 0);
        assert!(stopped.findings.is_empty());
    }
}
