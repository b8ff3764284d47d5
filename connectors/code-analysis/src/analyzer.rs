//! The analysis engine: checks and parses sources, computes metrics and security
//! findings, caches both by content hash, and runs directory requests on worker
//! threads, streaming results as they come.
//!
//! Results are cached under ([`content_hash`] of the content, language): an
//! unchanged file is neither parsed nor measured again, whatever its path. The cache holds the
//! DETAILED analysis; BASIC trims it, COMPREHENSIVE adds the review on top. A
//! walked file whose `stat` is unchanged since it was last read is not even read:
//! the [`FileIndex`] gives its hash.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use big_code_analysis::{Ast, LANG, Source, tree_sitter};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use switchboard_proto::code_analysis::v1 as pb;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::Status;

use crate::code_root::{CodeRoot, Visit, WalkOptions};
use crate::config::Config;
use crate::error::Error;
use crate::file_index::FileIndex;
use crate::security::RuleSet;
use crate::summary::PathTotals;
use crate::telemetry::{self, Kind};
use crate::{languages, metrics, review};

/// The hash results are cached under: SHA-256 of the content, cut to its
/// first 128 bits. Inline `code` is the caller's, and the cache is every
/// caller's: with a hash made for speed (one whose collisions can be built), a
/// caller could craft code whose analysis is then served for a file of the
/// repository (its security findings, say). SHA-256 costs about a
/// millisecond per megabyte, against the parse's tens.
pub(crate) fn content_hash(code: &[u8]) -> u128 {
    let digest = Sha256::digest(code);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

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

/// What one cache entry costs besides its value: its key, the `Arc` and the
/// cache's own bookkeeping (estimated).
const ENTRY_OVERHEAD_BYTES: usize = 160;

/// A content-hash cache bounded both ways: at most `CACHE_MAX_ENTRIES`
/// entries and `CODE_CACHE_MAX_BYTES` of memory (as `bytes` estimates each value).
/// Every entry weighs at least `CODE_CACHE_MAX_BYTES / CACHE_MAX_ENTRIES` (rounded
/// up), so no more than `CACHE_MAX_ENTRIES` fit; the cache evicts past
/// `CODE_CACHE_MAX_BYTES` of weight. Either at 0 caches nothing.
fn weighed_cache<V>(config: &Config, bytes: fn(&V) -> usize) -> Cache<Key, V>
where
    V: Clone + Send + Sync + 'static,
{
    let (max_bytes, max_entries) = (config.cache_max_bytes, config.cache_max_entries);
    if max_bytes == 0 || max_entries == 0 {
        return Cache::new(0);
    }
    let floor = max_bytes.div_ceil(max_entries);
    Cache::builder()
        .max_capacity(max_bytes)
        .weigher(move |_key, value: &V| {
            let weight = u64::try_from(bytes(value).saturating_add(ENTRY_OVERHEAD_BYTES))
                .unwrap_or(u64::MAX)
                .max(floor);
            u32::try_from(weight).unwrap_or(u32::MAX)
        })
        .build()
}

/// The memory a cached analysis takes, estimated: its encoded size (each
/// string's bytes, a few per number) and the in-memory size of each message
/// in it (where a number takes 8 bytes, a string or a list 24 more).
fn analysis_bytes(analysis: &pb::FileAnalysis) -> usize {
    use std::mem::size_of;
    prost::Message::encoded_len(analysis)
        + size_of::<pb::FileAnalysis>()
        + analysis.functions.len() * size_of::<pb::FunctionMetrics>()
        + analysis.parse_errors.len() * size_of::<pb::SyntaxError>()
        + analysis.refactoring_opportunities.len() * size_of::<pb::RefactoringOpportunity>()
        + analysis.test_suggestions.len() * size_of::<pb::TestSuggestion>()
}

/// [`analysis_bytes`] for a file's findings.
fn findings_bytes(findings: &Arc<Vec<pb::Finding>>) -> usize {
    findings
        .iter()
        .map(|f| prost::Message::encoded_len(f) + std::mem::size_of::<pb::Finding>())
        .sum::<usize>()
        + std::mem::size_of::<Vec<pb::Finding>>()
}

/// Metrics, findings and their caches; shared by all requests.
pub struct Analyzer {
    config: Config,
    root: CodeRoot,
    rules: RuleSet,
    analyses: Cache<Key, Arc<pb::FileAnalysis>>,
    findings: Cache<Key, Arc<Vec<pb::Finding>>>,
    /// Content refused as deeper than the nesting limit, by hash, language and
    /// what was asked (the limit is the analyzer's for its lifetime, so the
    /// refusal is as deterministic as a result): a re-scan refuses it again
    /// without a parse, and a walked file the index knows without a read. A parse
    /// that ran out of time is not kept (the next may finish).
    too_deep: Cache<(u128, &'static str, Kind), usize>,
    index: FileIndex,
    /// Places of requests that parse: `running` at once, `admitted` running or
    /// waiting (see [`Analyzer::admit`]).
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    /// Files a walk has read (for tests and benchmarks: a file served by the
    /// index is not read).
    files_read: AtomicU64,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("root", &self.root)
            .field("cached_analyses", &self.analyses.entry_count())
            .field("cached_analyses_bytes", &self.analyses.weighted_size())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A request's place among those that parse ([`Analyzer::admit`]).
#[derive(Debug)]
pub struct Admitted {
    _running: OwnedSemaphorePermit,
    _admitted: OwnedSemaphorePermit,
}

enum Outcome {
    /// A file's analysis as the cache holds it (shared, not copied: a summary
    /// only reads it), with the file's path and whether it came from the cache.
    Shared {
        analysis: Arc<pb::FileAnalysis>,
        path: String,
        from_cache: bool,
    },
    Analyzed(Box<pb::FileAnalysis>),
    Skipped(pb::SkippedFile),
}

/// How a walked file's content is known.
enum Contents {
    /// By the hash the file index holds for it: its `stat` is unchanged since it
    /// was read, and it is not read again. `len` is its size in bytes.
    Indexed { hash: u128, len: u64 },
    /// Read, checked and hashed now.
    Read { code: String, hash: u128 },
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
            analyses: weighed_cache(&config, |a| analysis_bytes(a)),
            findings: weighed_cache(&config, findings_bytes),
            too_deep: Cache::new(config.cache_max_entries),
            index: FileIndex::new(config.file_index_max_entries),
            running: Arc::new(Semaphore::new(
                config
                    .max_concurrent_analyses
                    .clamp(1, Semaphore::MAX_PERMITS),
            )),
            admitted: Arc::new(Semaphore::new(
                config
                    .max_concurrent_analyses
                    .saturating_add(config.max_queued_analyses)
                    .clamp(1, Semaphore::MAX_PERMITS),
            )),
            files_read: AtomicU64::new(0),
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

    /// A place for one request that parses, held until the returned value is
    /// dropped (move it into the work): waits while `MAX_CONCURRENT_ANALYSES`
    /// run, and is refused at once ([`Error::Busy`]) when
    /// `MAX_QUEUED_ANALYSES` wait already. A caller that goes away while
    /// waiting leaves the queue.
    pub async fn admit(&self) -> Result<Admitted, Error> {
        let busy = || Error::Busy {
            running: self.config.max_concurrent_analyses,
            queued: self.config.max_queued_analyses,
        };
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the analysis places are closed".to_owned()))?;
        Ok(Admitted {
            _running: running,
            _admitted: admitted,
        })
    }

    /// Runs `work` (which parses) on the blocking pool in a place
    /// [`Analyzer::admit`] gives, held until the work ends, even when its
    /// caller has gone away.
    pub async fn run_admitted<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let admitted = self.admit().await?;
        tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
            work()
        })
        .await
        .map_err(|e| Error::Internal(format!("analysis worker failed: {e}")))?
    }

    /// Files read by path requests so far; a file whose `stat` is unchanged since
    /// it was read, and whose analysis is cached, is served without a read.
    pub fn files_read(&self) -> u64 {
        self.files_read.load(Ordering::Relaxed)
    }

    /// Paths the file index holds.
    pub fn indexed_files(&self) -> u64 {
        self.index.len()
    }

    /// Checks that `bytes` is acceptable source text (size limit, no NUL bytes)
    /// but for UTF-8, which the caller checks once as it makes the text.
    fn check_bytes(&self, what: &str, bytes: &[u8]) -> Result<(), Error> {
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
        Ok(())
    }

    /// Checks that `bytes` is acceptable source text: size limit, no NUL bytes, UTF-8.
    fn check_source<'a>(&self, what: &str, bytes: &'a [u8]) -> Result<&'a str, Error> {
        self.check_bytes(what, bytes)?;
        std::str::from_utf8(bytes).map_err(|e| not_utf8(what, &e))
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
        let hash = content_hash(code.as_bytes());
        let (base, from_cache) = self.analysis(lang, code, hash, path, metrics::Needs::All)?;
        Ok(self.finish(&base, from_cache, path, depth, code))
    }

    /// The analysis of `code` (whose [`content_hash`] is `hash`), from the cache when it
    /// holds one with what `needs` asks for (an entry with every metric serves
    /// any request), else computed and cached; the flag says whether it came from
    /// the cache. `path` labels errors.
    fn analysis(
        &self,
        lang: LANG,
        code: &str,
        hash: u128,
        path: &str,
        needs: metrics::Needs,
    ) -> Result<(Arc<pb::FileAnalysis>, bool), Error> {
        let complete = (needs == metrics::Needs::Summary)
            .then(|| self.analyses.get(&(hash, lang.name(), metrics::Needs::All)))
            .flatten();
        if let Some(entry) = complete {
            telemetry::record_file(lang.name(), Kind::Metrics, code.len(), true);
            return Ok((entry, true));
        }
        let limits = metrics::Limits::from_config(&self.config);
        self.cached(
            &self.analyses,
            Kind::Metrics,
            (hash, lang, needs),
            code,
            || {
                let ast = parse(lang, code, self.config.parse_timeout)?;
                metrics::measure_only(&ast, "", limits, needs).map(Arc::new)
            },
        )
        .map_err(|e| label_too_deep(e, path))
    }

    /// The cached value for `code` in `lang`, computing it on a miss (once,
    /// however many requests ask at the same time); the flag says whether it came
    /// from the cache. Counted in the metrics as one file served as `kind`. A
    /// refusal as too deep is kept in `too_deep` and given again without a parse.
    fn cached<V: Clone + Send + Sync + 'static>(
        &self,
        cache: &Cache<Key, V>,
        kind: Kind,
        (hash, lang, needs): (u128, LANG, metrics::Needs),
        code: &str,
        compute: impl FnOnce() -> Result<V, Error>,
    ) -> Result<(V, bool), Error> {
        if let Some(refusal) = self.refused(hash, lang, kind, "") {
            return Err(refusal);
        }
        let key = (hash, lang.name(), needs);
        let entry = cache
            .entry(key)
            .or_try_insert_with(compute)
            // The error is shared with any request that waited on the same computation.
            .map_err(|e: Arc<Error>| {
                telemetry::record_lookup(kind, false);
                let error = Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone());
                if let Error::TooDeep { limit, .. } = error {
                    self.too_deep.insert((hash, lang.name(), kind), limit);
                }
                error
            })?;
        let from_cache = !entry.is_fresh();
        telemetry::record_file(lang.name(), kind, code.len(), from_cache);
        Ok((entry.into_value(), from_cache))
    }

    /// The refusal of content hashing to `hash` as too deep for `kind`, labelled
    /// `what`, if it was refused before (counted as a cache hit).
    fn refused(&self, hash: u128, lang: LANG, kind: Kind, what: &str) -> Option<Error> {
        let limit = self.too_deep.get(&(hash, lang.name(), kind))?;
        telemetry::record_lookup(kind, true);
        Some(Error::TooDeep {
            what: what.to_owned(),
            limit,
        })
    }

    /// The cached analysis of content hashing to `hash` (`len` bytes) with what
    /// `needs` asks for, if the cache holds one; nothing is computed.
    fn cached_analysis(
        &self,
        lang: LANG,
        hash: u128,
        len: u64,
        needs: metrics::Needs,
    ) -> Option<Arc<pb::FileAnalysis>> {
        let found = self
            .analyses
            .get(&(hash, lang.name(), metrics::Needs::All))
            .or_else(|| {
                (needs == metrics::Needs::Summary)
                    .then(|| self.analyses.get(&(hash, lang.name(), needs)))
                    .flatten()
            })?;
        telemetry::record_file(
            lang.name(),
            Kind::Metrics,
            usize::try_from(len).unwrap_or(usize::MAX),
            true,
        );
        Some(found)
    }

    /// A copy of the cached analysis `base` labelled with `path`; COMPREHENSIVE
    /// adds the review of `code` (which must be the analysed text).
    fn finish(
        &self,
        base: &pb::FileAnalysis,
        from_cache: bool,
        path: &str,
        depth: Depth,
        code: &str,
    ) -> pb::FileAnalysis {
        let mut result = base.clone();
        result.path = path.to_owned();
        result.from_cache = from_cache;
        if depth == Depth::Comprehensive {
            review::add_review(&mut result, code);
            metrics::fit_result(&mut result, self.config.max_result_bytes);
        }
        result
    }

    /// Security findings in code given as text, labelled with `path`.
    pub fn scan_code(&self, lang: LANG, code: &str, path: &str) -> Result<Vec<pb::Finding>, Error> {
        let code = self.check_source(
            if path.is_empty() { "the code" } else { path },
            code.as_bytes(),
        )?;
        self.scan_source(lang, code, content_hash(code.as_bytes()), path)
    }

    /// The findings in `code`, whose [`content_hash`] is `hash`, labelled with `path`.
    fn scan_source(
        &self,
        lang: LANG,
        code: &str,
        hash: u128,
        path: &str,
    ) -> Result<Vec<pb::Finding>, Error> {
        let limit = self.config.max_nesting_depth;
        let key = (hash, lang, metrics::Needs::All);
        let (findings, _) = self
            .cached(&self.findings, Kind::Security, key, code, || {
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
        Ok(labelled(&findings, path))
    }

    /// Reads a file as source text under the same limits as an analysis: at most
    /// MAX_FILE_BYTES, no NUL bytes (binary), valid UTF-8. `relative` labels errors.
    pub fn read_text(&self, path: &Path, relative: &str) -> Result<String, Error> {
        let size = std::fs::metadata(path)
            .map_err(|e| unreadable(relative, &e))?
            .len();
        self.read_checked(path, relative, size)
    }

    /// [`Analyzer::read_text`] of a file whose `stat` gave `size` bytes: a file
    /// over the limit is not opened, and no more than the limit (and a byte) is
    /// read should it have grown since. UTF-8 is validated once.
    fn read_checked(&self, path: &Path, relative: &str, size: u64) -> Result<String, Error> {
        let limit = self.config.max_file_bytes;
        if size > limit {
            return Err(Error::TooLarge {
                what: relative.to_owned(),
                size,
                limit,
            });
        }
        let file = open_regular(path).map_err(|e| unreadable(relative, &e))?;
        let mut bytes = Vec::new();
        // The size is a hint (the file may change); +1 to see the end at once.
        let _ = bytes.try_reserve_exact(usize::try_from(size).unwrap_or(0).saturating_add(1));
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, limit.saturating_add(1)),
            &mut bytes,
        )
        .map_err(|e| unreadable(relative, &e))?;
        self.check_bytes(relative, &bytes)?;
        String::from_utf8(bytes).map_err(|e| not_utf8(relative, &e.utf8_error()))
    }

    /// A walked file's content: with `reuse`, from the file index when a `stat`
    /// shows the file unchanged since it was read (it is not read); else read,
    /// checked and hashed, and recorded in the index.
    fn contents(&self, path: &Path, relative: &str, reuse: bool) -> Result<Contents, Error> {
        // Before the stat: a write after this moment is not taken for unchanged.
        let before_stat = self.index.now();
        let meta = std::fs::metadata(path).map_err(|e| unreadable(relative, &e))?;
        if reuse && let Some(hash) = self.index.unchanged(path, &meta) {
            return Ok(Contents::Indexed {
                hash,
                len: meta.len(),
            });
        }
        let (code, hash) = self.read_recorded(path, relative, &meta, before_stat)?;
        Ok(Contents::Read { code, hash })
    }

    /// Reads, checks and hashes a walked file whose `stat` (taken after
    /// `before_stat`) gave `meta`, and records its hash in the index.
    fn read_recorded(
        &self,
        path: &Path,
        relative: &str,
        meta: &std::fs::Metadata,
        before_stat: SystemTime,
    ) -> Result<(String, u128), Error> {
        let code = self.read_checked(path, relative, meta.len())?;
        self.files_read.fetch_add(1, Ordering::Relaxed);
        let hash = content_hash(code.as_bytes());
        self.index.record(path, meta, hash, before_stat);
        Ok((code, hash))
    }

    /// A walked file's text and hash, read now (the index only learns from it).
    fn read_now(&self, path: &Path, relative: &str) -> Result<(String, u128), Error> {
        let before_stat = self.index.now();
        let meta = std::fs::metadata(path).map_err(|e| unreadable(relative, &e))?;
        self.read_recorded(path, relative, &meta, before_stat)
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
        let (analysis, from_cache, code) =
            self.analyze_walked(path, relative, language, depth, metrics::Needs::All)?;
        Ok(self.finish(
            &analysis,
            from_cache,
            relative,
            depth,
            code.as_deref().unwrap_or_default(),
        ))
    }

    /// The cached analysis of a walked file (computed on a miss), whether it came
    /// from the cache, and the file's text when it was read: below COMPREHENSIVE,
    /// a file the index knows unchanged whose analysis is cached is not read
    /// (COMPREHENSIVE reads every file: the review needs the text).
    fn analyze_walked(
        &self,
        path: &Path,
        relative: &str,
        language: LANG,
        depth: Depth,
        needs: metrics::Needs,
    ) -> Result<(Arc<pb::FileAnalysis>, bool, Option<String>), String> {
        let reuse = depth != Depth::Comprehensive;
        let (code, hash) = match self.contents(path, relative, reuse).map_err(skip_reason)? {
            Contents::Indexed { hash, len } => {
                if let Some(refusal) = self.refused(hash, language, Kind::Metrics, relative) {
                    return Err(refusal.to_string());
                }
                match self.cached_analysis(language, hash, len, needs) {
                    Some(analysis) => return Ok((analysis, true, None)),
                    // The analysis left the cache: read the file.
                    None => self.read_now(path, relative).map_err(skip_reason)?,
                }
            }
            Contents::Read { code, hash } => (code, hash),
        };
        let (analysis, from_cache) = self
            .analysis(language, &code, hash, relative, needs)
            .map_err(|e| e.to_string())?;
        Ok((analysis, from_cache, Some(code)))
    }

    fn analyze_visit(&self, visit: Visit, depth: Depth, needs: metrics::Needs) -> Outcome {
        let (path, relative, language) = match visit {
            Visit::Refused { relative, reason } => {
                return Outcome::Skipped(pb::SkippedFile {
                    path: relative,
                    reason,
                });
            }
            Visit::Source {
                path,
                relative,
                language,
            } => (path, relative, language),
        };
        match self.analyze_walked(&path, &relative, language, depth, needs) {
            // A summary alone only reads the analysis: share the cached one.
            Ok((analysis, from_cache, _)) if needs == metrics::Needs::Summary => Outcome::Shared {
                analysis,
                path: relative,
                from_cache,
            },
            Ok((analysis, from_cache, code)) => Outcome::Analyzed(Box::new(self.finish(
                &analysis,
                from_cache,
                &relative,
                depth,
                code.as_deref().unwrap_or_default(),
            ))),
            Err(reason) => Outcome::Skipped(pb::SkippedFile {
                path: relative,
                reason,
            }),
        }
    }

    /// The findings of one walked file (through the cache and the file index); the
    /// error is the reason to report it as skipped.
    fn scan_walked(
        &self,
        path: &Path,
        relative: &str,
        language: LANG,
    ) -> Result<Vec<pb::Finding>, String> {
        let (code, hash) = match self.contents(path, relative, true).map_err(skip_reason)? {
            Contents::Indexed { hash, len } => {
                if let Some(refusal) = self.refused(hash, language, Kind::Security, relative) {
                    return Err(refusal.to_string());
                }
                let key = (hash, language.name(), metrics::Needs::All);
                if let Some(findings) = self.findings.get(&key) {
                    telemetry::record_file(
                        language.name(),
                        Kind::Security,
                        usize::try_from(len).unwrap_or(usize::MAX),
                        true,
                    );
                    return Ok(labelled(&findings, relative));
                }
                self.read_now(path, relative).map_err(skip_reason)?
            }
            Contents::Read { code, hash } => (code, hash),
        };
        self.scan_source(language, &code, hash, relative)
            .map_err(|e| e.to_string())
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

    /// Resolves the request's path, then analyses on worker threads, holding
    /// the request's place (`admitted`) until the walk ends; the returned
    /// stream yields one event per file (unless summary_only) and then the summary.
    pub fn analyze_path(
        self: &Arc<Self>,
        request: PathRequest,
        admitted: Admitted,
    ) -> Result<mpsc::Receiver<Result<pb::AnalyzePathEvent, Status>>, Error> {
        let (start, relative) = self.resolve_walk_start(&request.path)?;
        let started = Instant::now();
        let (file_tx, mut file_rx) = mpsc::channel::<Outcome>(64);
        let (event_tx, event_rx) = mpsc::channel(64);

        let analyzer = Arc::clone(self);
        let walk = tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
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
                    Outcome::Shared {
                        analysis,
                        path,
                        from_cache,
                    } => {
                        totals.add(&analysis, &path, from_cache);
                        continue;
                    }
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
                    .scan_walked(&path, &relative, language)
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

/// `findings` labelled with `path`.
fn labelled(findings: &[pb::Finding], path: &str) -> Vec<pb::Finding> {
    findings
        .iter()
        .cloned()
        .map(|mut f| {
            f.path = path.to_owned();
            f
        })
        .collect()
}

/// Opens `path` to read it, only if it is a regular file, and never waits to
/// open it: a named pipe (or a device) put where a file was seen would block
/// `open` until someone writes to it, holding a worker thread for good. Opened
/// non-blocking (which a regular file ignores) and without following a final
/// symbolic link (the paths read are resolved ones: a link there now was put
/// there since), then checked on the open file.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

fn unreadable(relative: &str, e: &std::io::Error) -> Error {
    Error::Unreadable {
        path: relative.to_owned(),
        message: e.to_string(),
    }
}

fn not_utf8(what: &str, e: &std::str::Utf8Error) -> Error {
    Error::InvalidArgument(format!(
        "{what} is not valid UTF-8 text ({e}); re-encode it as UTF-8"
    ))
}

/// Why a walked file is reported as skipped.
fn skip_reason(error: Error) -> String {
    match error {
        Error::Binary(_) => "binary file".to_owned(),
        Error::TooLarge { size, limit, .. } => {
            format!("file too large ({size} bytes, limit {limit} set by MAX_FILE_BYTES)")
        }
        Error::Unreadable { message, .. } => format!("unreadable: {message}"),
        Error::InvalidArgument(_) => "not valid UTF-8 source".to_owned(),
        other => other.to_string(),
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

    /// A scan of the whole root on one thread, cancelled from the start or not.
    fn whole_root(cancelled: bool) -> ScanRequest {
        ScanRequest {
            path: ".".into(),
            walk: WalkOptions {
                respect_gitignore: true,
                max_files: 100,
                threads: 1,
                ..Default::default()
            },
            cancelled: Arc::new(AtomicBool::new(cancelled)),
        }
    }

    /// Source with `functions` functions, distinct for each `seed`.
    fn functions(seed: usize, functions: usize) -> String {
        (0..functions)
            .map(|f| format!("def f_{seed}_{f}(a):\n    if a:\n        return {f}\n    return a\n"))
            .collect()
    }

    #[test]
    fn the_caches_hold_at_most_their_bytes_and_their_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("root");
        // A result of 40 functions weighs over 10 KiB: a 64 KiB cache holds
        // a few of them, however many entries it may have.
        let analyzer = Analyzer::new(Config {
            cache_max_bytes: 64 * 1024,
            ..Config::with_root(root.clone())
        })
        .expect("analyzer");
        let first = analyzer
            .analyze_code(LANG::Python, &functions(0, 40), "", Depth::Basic)
            .expect("analysis");
        assert!(analysis_bytes(&first) > 40 * std::mem::size_of::<pb::FunctionMetrics>());
        for seed in 1..200 {
            let code = functions(seed, 40);
            analyzer
                .analyze_code(LANG::Python, &code, "", Depth::Basic)
                .expect("analysis");
            analyzer.scan_code(LANG::Python, &code, "").expect("scan");
        }
        analyzer.analyses.run_pending_tasks();
        analyzer.findings.run_pending_tasks();
        assert!(
            analyzer.analyses.weighted_size() <= 64 * 1024,
            "{analyzer:?}"
        );
        assert!(analyzer.analyses.entry_count() < 10, "{analyzer:?}");
        assert!(analyzer.findings.weighted_size() <= 64 * 1024);

        // Small results: the entries are the bound.
        let analyzer = Analyzer::new(Config {
            cache_max_entries: 5,
            ..Config::with_root(root.clone())
        })
        .expect("analyzer");
        for seed in 0..50 {
            analyzer
                .analyze_code(LANG::Python, &functions(seed, 1), "", Depth::Basic)
                .expect("analysis");
        }
        analyzer.analyses.run_pending_tasks();
        assert!(analyzer.analyses.entry_count() <= 5, "{analyzer:?}");
        assert!(analyzer.analyses.entry_count() > 0, "{analyzer:?}");

        // Either at 0: nothing is kept.
        let analyzer = Analyzer::new(Config {
            cache_max_bytes: 0,
            ..Config::with_root(root)
        })
        .expect("analyzer");
        let code = functions(0, 1);
        for _ in 0..2 {
            let analysis = analyzer
                .analyze_code(LANG::Python, &code, "", Depth::Basic)
                .expect("analysis");
            assert!(!analysis.from_cache);
        }
    }

    #[test]
    fn a_named_pipe_where_a_file_was_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("root");
        let pipe = root.join("pipe.py");
        let made = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let analyzer = Analyzer::new(Config::with_root(root.clone())).expect("analyzer");
        let (done, result) = std::sync::mpsc::channel();
        let read = pipe.clone();
        std::thread::spawn(move || {
            let _ = done.send(analyzer.read_text(&read, "pipe.py").map(|_| ()));
        });
        let outcome = result.recv_timeout(std::time::Duration::from_secs(20));
        if outcome.is_err() {
            // Free the reader stuck in open() before failing.
            let _ = std::fs::OpenOptions::new().write(true).open(&pipe);
        }
        let refused = outcome.expect("an answer, not a wait for a writer");
        let error = refused.expect_err("a pipe is not read").to_string();
        assert!(error.contains("not a regular file"), "{error}");
        // A link put where a resolved path was is not followed.
        std::fs::write(root.join("real.py"), "x = 1\n").expect("write");
        std::os::unix::fs::symlink(root.join("real.py"), root.join("link.py")).expect("link");
        let analyzer = Analyzer::new(Config::with_root(root.clone())).expect("analyzer");
        assert!(
            analyzer
                .read_text(&root.join("link.py"), "link.py")
                .is_err()
        );
        assert!(analyzer.read_text(&root.join("real.py"), "real.py").is_ok());
    }

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
    fn the_content_hash_is_sha256_cut_to_128_bits() {
        let digest = Sha256::digest(b"def f(): pass\n");
        let first: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        assert_eq!(content_hash(b"def f(): pass\n"), u128::from_be_bytes(first));
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }

    #[test]
    fn a_summary_computes_fewer_metrics_and_a_complete_entry_serves_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("root");
        let analyzer = Analyzer::new(Config::with_root(root)).expect("analyzer");
        let code = "def f(a, b):\n    if a:\n        return b\n    return a + b\n";
        let hash = content_hash(code.as_bytes());
        let analyse = |needs| {
            analyzer
                .analysis(LANG::Python, code, hash, "f.py", needs)
                .expect("analysis")
        };
        let (summary, from_cache) = analyse(metrics::Needs::Summary);
        assert!(!from_cache);
        assert_eq!(summary.functions[0].cyclomatic, 2);
        assert_eq!(
            summary.functions[0].arguments, 0,
            "not computed for a summary"
        );
        let (complete, from_cache) = analyse(metrics::Needs::All);
        assert!(!from_cache, "a summary entry does not serve a full request");
        assert_eq!(complete.functions[0].arguments, 2);
        assert!(
            complete
                .metrics
                .and_then(|m| m.halstead)
                .is_some_and(|h| h.length > 0)
        );
        let (again, from_cache) = analyse(metrics::Needs::Summary);
        assert!(from_cache);
        assert_eq!(
            again.functions[0].arguments, 2,
            "served by the complete entry"
        );
    }

    /// The file index tests: files on disk, scanned as a path the way a
    /// repository is, and compared with what a fresh analyzer (no cache, no
    /// index: a full read) reports.
    mod file_index {
        use std::path::Path;
        use std::time::{Duration, SystemTime};

        use super::*;
        use crate::file_index::Stamp;

        // Two files of the same size with different metrics.
        const A: &str = "def f(a):\n    return a\n";
        const B: &str = "def f(a):\n    if a:  a\n";

        fn analyzer(root: &Path, index_entries: u64) -> Arc<Analyzer> {
            let root = root.canonicalize().expect("root");
            Arc::new(
                Analyzer::new(Config {
                    analysis_threads: 2,
                    file_index_max_entries: index_entries,
                    ..Config::with_root(root)
                })
                .expect("analyzer"),
            )
        }

        /// A summary-only AnalyzePath of the whole root, without its timing, and
        /// how many files it read.
        async fn scan(analyzer: &Arc<Analyzer>) -> (pb::PathSummary, u64) {
            let before = analyzer.files_read();
            let admitted = analyzer.admit().await.expect("a place");
            let mut events = analyzer
                .analyze_path(
                    PathRequest {
                        path: ".".into(),
                        walk: WalkOptions {
                            respect_gitignore: true,
                            max_files: 1000,
                            threads: 2,
                            ..Default::default()
                        },
                        depth: Depth::Basic,
                        top_hotspots: 10,
                        summary_only: true,
                    },
                    admitted,
                )
                .expect("walk starts");
            let mut summary = None;
            while let Some(event) = events.recv().await {
                if let Some(pb::analyze_path_event::Event::Summary(s)) =
                    event.expect("no error").event
                {
                    summary = Some(s);
                }
            }
            let mut summary = summary.expect("a summary");
            summary.elapsed_ms = 0;
            (summary, analyzer.files_read() - before)
        }

        /// What a full read reports: a fresh analyzer's scan (cache hits aside).
        async fn full_read(root: &Path) -> pb::PathSummary {
            let (summary, read) = scan(&analyzer(root, 0)).await;
            assert_eq!(read, summary.files_analyzed, "a fresh analyzer reads all");
            summary
        }

        /// `summary` with its cache hits counted as a fresh scan's (none).
        fn uncached(mut summary: pb::PathSummary) -> pb::PathSummary {
            summary.files_from_cache = 0;
            summary
        }

        /// Waits until `path`'s times are older than the racy window, so that a
        /// read now records it in the index (a file written just before a scan
        /// is read again on the next one).
        fn settle(path: &Path) {
            let meta = std::fs::metadata(path).expect("stat");
            let settled = Stamp::of(&meta)
                .and_then(|s| s.settled_at())
                .expect("a stamp on unix");
            while let Ok(left) = settled.duration_since(SystemTime::now()) {
                std::thread::sleep(left + Duration::from_millis(5));
            }
        }

        fn set_mtime(path: &Path, mtime: SystemTime) {
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(mtime))
                .expect("set mtime");
        }

        fn mtime(path: &Path) -> SystemTime {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .expect("mtime")
        }

        #[tokio::test]
        async fn an_unchanged_file_costs_a_stat_and_reports_the_same() {
            let dir = tempfile::tempdir().expect("tempdir");
            for (name, code) in [("a.py", A), ("b.py", B), ("c.rs", "fn c() {}\n")] {
                std::fs::write(dir.path().join(name), code).expect("write");
                settle(&dir.path().join(name));
            }
            let analyzer = analyzer(dir.path(), 100);
            let (first, read) = scan(&analyzer).await;
            assert_eq!((read, first.files_analyzed), (3, 3));
            assert_eq!(analyzer.indexed_files(), 3);
            let (second, read) = scan(&analyzer).await;
            assert_eq!(read, 0, "unchanged files are not read");
            assert_eq!(second.files_from_cache, 3);
            assert_eq!(uncached(second), full_read(dir.path()).await);

            // A file's own analysis and the security scan use the index too, once
            // the cache holds what they need (a summary has fewer metrics).
            let path = dir.path().canonicalize().expect("root").join("a.py");
            let detailed = || {
                analyzer
                    .analyze_file(&path, "a.py", LANG::Python, Depth::Detailed)
                    .expect("analysis")
            };
            let computed = detailed();
            assert!(!computed.from_cache);
            let read = analyzer.files_read();
            let served = detailed();
            assert!(served.from_cache);
            assert_eq!(analyzer.files_read(), read, "served by the index");
            assert_eq!(
                pb::FileAnalysis {
                    from_cache: false,
                    ..served
                },
                computed
            );
            let scan = whole_root(false);
            assert_eq!(analyzer.scan_path(&scan).expect("scan").files_scanned, 3);
            let read = analyzer.files_read();
            assert_eq!(analyzer.scan_path(&scan).expect("scan").files_scanned, 3);
            assert_eq!(analyzer.files_read(), read, "findings served by the index");
            assert_eq!(read, 3 + 1 + 3, "the first security scan read them");
        }

        #[tokio::test]
        async fn a_file_refused_as_too_deep_is_refused_again_without_a_read() {
            let dir = tempfile::tempdir().expect("tempdir");
            let deep = format!("x = {}1{}\n", "(".repeat(60), ")".repeat(60));
            for (name, code) in [("a.py", A), ("deep.py", deep.as_str())] {
                std::fs::write(dir.path().join(name), code).expect("write");
                settle(&dir.path().join(name));
            }
            let root = dir.path().canonicalize().expect("root");
            let shallow = |index_entries| {
                Arc::new(
                    Analyzer::new(Config {
                        analysis_threads: 2,
                        file_index_max_entries: index_entries,
                        max_nesting_depth: 20,
                        ..Config::with_root(root.clone())
                    })
                    .expect("analyzer"),
                )
            };
            let analyzer = shallow(100);
            let (first, read) = scan(&analyzer).await;
            assert_eq!((first.files_analyzed, first.files_skipped, read), (1, 1, 2));
            let (second, read) = scan(&analyzer).await;
            assert_eq!(read, 0, "the refused file is not read (nor parsed) again");
            assert_eq!(second.files_skipped, 1);
            assert_eq!(uncached(second), first);

            // The remembered refusal reads as a fresh one, for a file and for a scan.
            let path = root.join("deep.py");
            let refusal = |analyzer: &Analyzer| {
                analyzer
                    .analyze_file(&path, "deep.py", LANG::Python, Depth::Detailed)
                    .expect_err("too deep")
            };
            let fresh = shallow(0);
            assert_eq!(refusal(&analyzer), refusal(&fresh));
            assert!(refusal(&fresh).contains("deep.py"), "{}", refusal(&fresh));
            assert_eq!(analyzer.files_read(), 2, "from memory: not read");

            let scan = whole_root(false);
            let findings = analyzer.scan_path(&scan).expect("scan");
            assert_eq!(
                analyzer.files_read(),
                4,
                "the first security scan reads both"
            );
            let again = analyzer.scan_path(&scan).expect("scan");
            assert_eq!(analyzer.files_read(), 4, "refused from memory");
            assert_eq!(again.skipped, findings.skipped);
            assert_eq!(again.skipped, fresh.scan_path(&scan).expect("scan").skipped);
            assert_eq!(again.skipped.len(), 1);
        }

        #[tokio::test]
        async fn a_same_size_change_with_a_restored_mtime_in_the_racy_window_is_read() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("f.py");
            std::fs::write(&path, A).expect("write");
            // Not older than the scan's read, whatever the machine's speed: racy.
            let racy = SystemTime::now() + Duration::from_secs(3600);
            set_mtime(&path, racy);
            let analyzer = analyzer(dir.path(), 100);
            let (first, read) = scan(&analyzer).await;
            assert_eq!(read, 1);
            assert_eq!(
                analyzer.indexed_files(),
                0,
                "a racily clean file is not recorded"
            );

            std::fs::write(&path, B).expect("write");
            set_mtime(&path, racy);
            let (second, read) = scan(&analyzer).await;
            assert_eq!(read, 1, "read again");
            assert_eq!(uncached(second.clone()), full_read(dir.path()).await);
            assert_ne!(second.cyclomatic_total, first.cyclomatic_total);

            let (_, read) = scan(&analyzer).await;
            assert_eq!(read, 1, "still racy: read on every scan");
        }

        #[tokio::test]
        async fn a_same_size_change_with_a_restored_mtime_is_read() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("f.py");
            std::fs::write(&path, A).expect("write");
            let written = mtime(&path);
            settle(&path);
            let analyzer = analyzer(dir.path(), 100);
            let (first, _) = scan(&analyzer).await;
            assert_eq!(scan(&analyzer).await.1, 0, "recorded, not read again");

            // Same size, same mtime, same inode: only the change time differs.
            std::fs::write(&path, B).expect("write");
            set_mtime(&path, written);
            let (second, read) = scan(&analyzer).await;
            assert_eq!(read, 1, "read again");
            assert_eq!(uncached(second.clone()), full_read(dir.path()).await);
            assert_ne!(second.cyclomatic_total, first.cyclomatic_total);
        }

        #[tokio::test]
        async fn a_rewritten_file_is_analysed_again() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("f.py");
            std::fs::write(&path, A).expect("write");
            settle(&path);
            let analyzer = analyzer(dir.path(), 100);
            let (first, _) = scan(&analyzer).await;
            assert_eq!(analyzer.indexed_files(), 1);

            std::fs::write(&path, format!("{B}def g(b):\n    return b or 1\n")).expect("write");
            let (second, read) = scan(&analyzer).await;
            assert_eq!(read, 1);
            assert_eq!(second.files_from_cache, 0, "new content, new analysis");
            assert_eq!(second.functions, 2);
            assert_ne!(second.cyclomatic_total, first.cyclomatic_total);
            assert_eq!(second, full_read(dir.path()).await);
        }

        #[tokio::test]
        async fn a_deleted_and_recreated_file_is_read_again() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("f.py");
            let other = dir.path().join("g.py");
            std::fs::write(&path, A).expect("write");
            std::fs::write(&other, "x = 1\n").expect("write");
            let written = mtime(&path);
            settle(&path);
            settle(&other);
            let analyzer = analyzer(dir.path(), 100);
            let (first, _) = scan(&analyzer).await;
            assert_eq!(analyzer.indexed_files(), 2);

            std::fs::remove_file(&path).expect("delete");
            let (gone, read) = scan(&analyzer).await;
            assert_eq!((gone.files_analyzed, read), (1, 0));

            // The same size and modification time (maybe even the same inode).
            std::fs::write(&path, B).expect("write");
            set_mtime(&path, written);
            let (again, read) = scan(&analyzer).await;
            assert_eq!(read, 1);
            assert_eq!(uncached(again.clone()), full_read(dir.path()).await);
            assert_ne!(again.cyclomatic_total, first.cyclomatic_total);
        }

        #[tokio::test]
        async fn the_index_keeps_to_its_bound_and_zero_turns_it_off() {
            let dir = tempfile::tempdir().expect("tempdir");
            for i in 0..20 {
                std::fs::write(dir.path().join(format!("f{i}.py")), format!("x = {i}\n"))
                    .expect("write");
            }
            // Scans an hour from now: every file has settled.
            let later = || SystemTime::now() + Duration::from_secs(3600);
            let with_index = |max_entries: u64| {
                let mut analyzer = Analyzer::new(Config {
                    file_index_max_entries: max_entries,
                    ..Config::with_root(dir.path().canonicalize().expect("root"))
                })
                .expect("analyzer");
                analyzer.index = FileIndex::new(max_entries).with_clock(later);
                Arc::new(analyzer)
            };
            let bounded = with_index(4);
            for _ in 0..3 {
                let (summary, _) = scan(&bounded).await;
                assert_eq!(summary.files_analyzed, 20);
                let held = bounded.indexed_files();
                assert!((1..=4).contains(&held), "{held} paths held");
            }

            let off = with_index(0);
            assert_eq!(scan(&off).await.1, 20);
            assert_eq!(scan(&off).await.1, 20, "every file read again");
            assert_eq!(off.indexed_files(), 0);
        }
    }

    #[test]
    fn a_cancelled_scan_stops_walking() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("f{i}.py")), "eval(x)\n").expect("write");
        }
        let root = dir.path().canonicalize().expect("root");
        let analyzer = Analyzer::new(Config::with_root(root)).expect("analyzer");
        let request = whole_root;
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
