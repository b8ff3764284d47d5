//! The connector's settings, read once from the environment at start.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `CODE_ROOT` | the working directory | Directory that `AnalyzePath`, `FindSecurityIssues`, the file resources and the `review_file` prompt may read; paths outside it (and symbolic links leading out of it) are refused. |
//! | `MAX_FILE_BYTES` | `2097152` (2 MiB) | Largest source accepted, as text or as a file; larger files are skipped. |
//! | `MAX_PATH_FILES` | `20000` | Most files one path request analyses; the walk stops there and says so. |
//! | `ANALYSIS_THREADS` | number of CPU cores | Threads that walk and analyse directories in parallel. |
//! | `MAX_CONCURRENT_ANALYSES` | `ANALYSIS_THREADS` | Requests that parse (AnalyzeCode, AnalyzePath, FindSecurityIssues, the review_file prompt) running at once; more wait for a place (1 to 4096). |
//! | `MAX_QUEUED_ANALYSES` | `64` | Requests waiting for a place; one more is refused at once with RESOURCE_EXHAUSTED naming these variables (0: none waits; at most 1000000). |
//! | `CACHE_MAX_ENTRIES` | `100000` | Results kept in the content-hash cache (per kind: metrics, findings; and as many refusals as too deep). |
//! | `CODE_CACHE_MAX_BYTES` | `268435456` (256 MiB) | Memory the cached results may take, estimated, in each of the metrics and findings caches; the least useful are evicted past it (`0`: nothing is cached). |
//! | `FILE_INDEX_MAX_ENTRIES` | `100000` | Paths whose stat and content hash are remembered, so an unchanged file is not read again on the next scan; `0` reads every file every time. |
//! | `CODE_MAX_NESTING_DEPTH` | `1000` | Deepest syntax tree (in tree levels) that is measured or scanned; deeper code is refused (`INVALID_ARGUMENT`). Trees deeper than 256 levels are measured on a thread whose stack is sized for their depth. |
//! | `CODE_MAX_RESULT_BYTES` | `1048576` (1 MiB) | Largest encoded analysis of one file; functions past it are left out and the result says so. |
//! | `CODE_PARSE_TIMEOUT_SECS` | `10` | Longest the parser may work on one file; tree-sitter's error recovery can take minutes on heavily broken code, so a parse past this is stopped and the file refused (`INVALID_ARGUMENT`). |

use std::path::PathBuf;
use std::time::Duration;

use connector_kit::env::{self, EnvError};

/// Default of `CODE_CACHE_MAX_BYTES`: the analyses of 3000 files of Rust
/// crates weighed 7 KiB each on average, so about 36,000 such files' results.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Settings of the code-analysis connector.
#[derive(Debug, Clone)]
pub struct Config {
    /// Canonical directory that path-based requests are confined to.
    pub code_root: PathBuf,
    /// Largest source accepted, in bytes.
    pub max_file_bytes: u64,
    /// Most files one path request analyses.
    pub max_path_files: usize,
    /// Worker threads for directory analysis.
    pub analysis_threads: usize,
    /// Capacity of each content-hash cache, in entries.
    pub cache_max_entries: u64,
    /// Capacity of the metrics and of the findings cache, each in bytes of
    /// memory their results take (estimated).
    pub cache_max_bytes: u64,
    /// Capacity of the file index (path → stat and content hash), in paths; 0
    /// turns it off.
    pub file_index_max_entries: u64,
    /// Deepest syntax tree (tree levels from the root) whose metrics are computed.
    pub max_nesting_depth: usize,
    /// Largest encoded `FileAnalysis` of one file, in bytes.
    pub max_result_bytes: usize,
    /// Longest the parser may work on one file.
    pub parse_timeout: Duration,
    /// Requests that parse running at once (`MAX_CONCURRENT_ANALYSES`).
    pub max_concurrent_analyses: usize,
    /// Requests waiting for one of those places (`MAX_QUEUED_ANALYSES`).
    pub max_queued_analyses: usize,
}

/// Default of `CODE_MAX_NESTING_DEPTH`, in syntax-tree levels. Real code stays far
/// below it: over the 15,900 C, C++, Go, Java, JavaScript, Python and Rust files of
/// a cargo registry the median file is 13 levels deep, 99.9 % are under 100 and
/// the deepest (a generated Unicode table) is 741. The library's time grows with
/// the square of the depth, so the limit also bounds the work per file.
pub const DEFAULT_MAX_NESTING_DEPTH: usize = 1000;
/// Highest accepted `CODE_MAX_NESTING_DEPTH`: its analysis stack is about 200 MiB of
/// address space (reserved, used only as deep as the code goes).
pub const MAX_MAX_NESTING_DEPTH: usize = 200_000;
/// Default of `CODE_PARSE_TIMEOUT_SECS`: real files parse in milliseconds; broken
/// input can make tree-sitter's error recovery run for minutes.
pub const DEFAULT_PARSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `CODE_MAX_RESULT_BYTES`: a quarter of gRPC's usual 4 MiB message limit.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Lowest accepted `CODE_MAX_RESULT_BYTES`: room for the file totals and a few
/// functions.
pub const MIN_MAX_RESULT_BYTES: usize = 16 * 1024;
/// Default of `MAX_QUEUED_ANALYSES`.
pub const DEFAULT_MAX_QUEUED_ANALYSES: usize = 64;
/// Highest accepted `MAX_CONCURRENT_ANALYSES`.
pub const MAX_MAX_CONCURRENT_ANALYSES: usize = 4096;
/// Highest accepted `MAX_QUEUED_ANALYSES`.
pub const MAX_MAX_QUEUED_ANALYSES: usize = 1_000_000;

impl Config {
    /// Reads the settings from the environment; errors name the variable.
    pub fn from_env() -> Result<Self, EnvError> {
        let code_root = match env::var("CODE_ROOT") {
            Some(raw) => PathBuf::from(raw),
            None => std::env::current_dir().map_err(|e| {
                EnvError::new(
                    "CODE_ROOT",
                    format!("unset, and the working directory is unusable: {e}"),
                )
            })?,
        };
        let code_root = code_root.canonicalize().map_err(|e| {
            EnvError::new(
                "CODE_ROOT",
                format!(
                    "{} is not an accessible directory: {e}",
                    code_root.display()
                ),
            )
        })?;
        if !code_root.is_dir() {
            return Err(EnvError::new(
                "CODE_ROOT",
                format!("{} is not a directory", code_root.display()),
            ));
        }
        let analysis_threads = env::parse("ANALYSIS_THREADS", default_threads())?;
        let config = Self {
            code_root,
            max_file_bytes: env::parse("MAX_FILE_BYTES", 2 * 1024 * 1024)?,
            max_path_files: env::parse("MAX_PATH_FILES", 20_000)?,
            analysis_threads,
            cache_max_entries: env::parse("CACHE_MAX_ENTRIES", 100_000)?,
            cache_max_bytes: env::parse("CODE_CACHE_MAX_BYTES", DEFAULT_CACHE_MAX_BYTES)?,
            file_index_max_entries: env::parse(
                "FILE_INDEX_MAX_ENTRIES",
                crate::file_index::DEFAULT_MAX_ENTRIES,
            )?,
            max_nesting_depth: env::parse("CODE_MAX_NESTING_DEPTH", DEFAULT_MAX_NESTING_DEPTH)?,
            max_result_bytes: env::parse("CODE_MAX_RESULT_BYTES", DEFAULT_MAX_RESULT_BYTES)?,
            parse_timeout: Duration::from_secs(env::parse(
                "CODE_PARSE_TIMEOUT_SECS",
                DEFAULT_PARSE_TIMEOUT.as_secs(),
            )?),
            max_concurrent_analyses: env::parse(
                "MAX_CONCURRENT_ANALYSES",
                analysis_threads.clamp(1, MAX_MAX_CONCURRENT_ANALYSES),
            )?,
            max_queued_analyses: env::parse("MAX_QUEUED_ANALYSES", DEFAULT_MAX_QUEUED_ANALYSES)?,
        };
        if !(1..=MAX_MAX_CONCURRENT_ANALYSES).contains(&config.max_concurrent_analyses) {
            return Err(EnvError::new(
                "MAX_CONCURRENT_ANALYSES",
                format!("must be between 1 and {MAX_MAX_CONCURRENT_ANALYSES}"),
            ));
        }
        if config.max_queued_analyses > MAX_MAX_QUEUED_ANALYSES {
            return Err(EnvError::new(
                "MAX_QUEUED_ANALYSES",
                format!("must be at most {MAX_MAX_QUEUED_ANALYSES}"),
            ));
        }
        if config.parse_timeout.is_zero() {
            return Err(EnvError::new(
                "CODE_PARSE_TIMEOUT_SECS",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_MAX_NESTING_DEPTH).contains(&config.max_nesting_depth) {
            return Err(EnvError::new(
                "CODE_MAX_NESTING_DEPTH",
                format!("must be between 1 and {MAX_MAX_NESTING_DEPTH}"),
            ));
        }
        if config.max_result_bytes < MIN_MAX_RESULT_BYTES {
            return Err(EnvError::new(
                "CODE_MAX_RESULT_BYTES",
                format!("must be at least {MIN_MAX_RESULT_BYTES}"),
            ));
        }
        if config.analysis_threads == 0 {
            return Err(EnvError::new("ANALYSIS_THREADS", "must be at least 1"));
        }
        if config.max_file_bytes == 0 {
            return Err(EnvError::new("MAX_FILE_BYTES", "must be at least 1"));
        }
        Ok(config)
    }

    /// Defaults for everything but the root (which must exist): for tests and embedding.
    pub fn with_root(code_root: PathBuf) -> Self {
        Self {
            code_root,
            max_file_bytes: 2 * 1024 * 1024,
            max_path_files: 20_000,
            analysis_threads: default_threads(),
            cache_max_entries: 100_000,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            file_index_max_entries: crate::file_index::DEFAULT_MAX_ENTRIES,
            max_nesting_depth: DEFAULT_MAX_NESTING_DEPTH,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            parse_timeout: DEFAULT_PARSE_TIMEOUT,
            max_concurrent_analyses: default_threads().clamp(1, MAX_MAX_CONCURRENT_ANALYSES),
            max_queued_analyses: DEFAULT_MAX_QUEUED_ANALYSES,
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}
