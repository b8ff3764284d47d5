//! Throughput benchmark: analyses a large source tree (by default the crates cargo
//! has downloaded, `~/.cargo/registry/src`) cold, then again with a warm
//! content-hash cache, on all cores, and prints files/s and lines/s. A third run
//! only reads and parses every file with tree-sitter (one parser per thread,
//! reused, as the connector does), which every metric needs: the ceiling for
//! any analysis built on these grammars. Last, the same files are copied into a
//! scratch repository and analysed as a path (`AnalyzePath`, summary only)
//! once, then again after one file changed: the incremental re-scan, where
//! an unchanged file costs a `stat` (the file index) and a cache lookup, and a
//! file written less than the racy window before the first scan read it is read
//! and hashed again; then once more with nothing changed.
//!
//! `scripts/bench-code-analysis.sh` builds this in release mode, runs it, runs
//! lizard over the same file list and prints the comparison.
//!
//! Usage: `analysis_bench [--root DIR] [--max-files N] [--threads N] [--list FILE]`
//! (`--list` writes the analysed files, one per line, for lizard's `-f`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use big_code_analysis::{LANG, tree_sitter};
use code_analysis_connector::analyzer::{Depth, PathRequest};
use code_analysis_connector::code_root::WalkOptions;
use code_analysis_connector::{Analyzer, Config, languages};

struct Args {
    root: PathBuf,
    max_files: usize,
    threads: usize,
    list: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".to_owned());
    let mut args = Args {
        root: Path::new(&home).join(".cargo/registry/src"),
        max_files: 3000,
        threads: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        list: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--root" => args.root = PathBuf::from(value()?),
            "--max-files" => args.max_files = value()?.parse().context("--max-files")?,
            "--threads" => args.threads = value()?.parse().context("--threads")?,
            "--list" => args.list = Some(PathBuf::from(value()?)),
            other => bail!(
                "unknown argument {other}; usage: analysis_bench [--root DIR] [--max-files N] [--threads N] [--list FILE]"
            ),
        }
    }
    Ok(args)
}

/// Supported source files under `root`, in a stable (sorted) order, capped.
fn source_files(root: &Path, max: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(root)
        .git_ignore(false)
        .sort_by_file_name(std::ffi::OsStr::cmp)
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(ignore::DirEntry::into_path)
        .filter(|p| languages::from_path(p).is_some())
        .take(max)
        .collect();
    files.sort();
    files
}

/// Runs `work` on every file on `threads` threads; returns (files it accepted, seconds).
fn run(
    files: &[PathBuf],
    threads: usize,
    work: impl Fn(&Path, LANG) -> bool + Sync,
) -> (Vec<usize>, f64) {
    let next = AtomicUsize::new(0);
    let analysed = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let Some(lang) = languages::from_path(path) else {
                        continue;
                    };
                    if work(path, lang) {
                        mine.push(i);
                    }
                }
                if let Ok(mut all) = analysed.lock() {
                    all.extend(mine);
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut analysed = analysed.into_inner().unwrap_or_default();
    analysed.sort_unstable();
    (analysed, seconds)
}

fn report(label: &str, files: usize, lines: usize, seconds: f64) {
    eprintln!("{label}: {files} files, {lines} lines in {seconds:.2} s");
    // One machine-readable line per run, for scripts/bench-code-analysis.sh.
    #[allow(clippy::print_stdout)]
    {
        println!(
            "RESULT {label} files={files} lines={lines} seconds={seconds:.3} files_per_s={:.0} lines_per_s={:.0}",
            files as f64 / seconds,
            lines as f64 / seconds
        );
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let root = args
        .root
        .canonicalize()
        .with_context(|| format!("{} is not accessible", args.root.display()))?;
    let files = source_files(&root, args.max_files);
    if files.is_empty() {
        bail!("no supported source files under {}", root.display());
    }
    let analyzer = Analyzer::new(Config {
        analysis_threads: args.threads,
        ..Config::with_root(root.clone())
    })?;
    // Read everything once so both runs (and lizard after us) see a warm page cache.
    let lines_of: Vec<usize> = files
        .iter()
        .map(|f| std::fs::read(f).map_or(0, |b| bytecount_newlines(&b)))
        .collect();

    let analyse = |path: &Path, lang: LANG| {
        let relative = path.strip_prefix(&root).unwrap_or(path).to_string_lossy();
        analyzer
            .analyze_file(path, &relative, lang, Depth::Detailed)
            .is_ok()
    };
    let lines = |analysed: &[usize]| analysed.iter().map(|&i| lines_of[i]).sum();

    let (cold, cold_s) = run(&files, args.threads, analyse);
    report("cold", cold.len(), lines(&cold), cold_s);
    if std::env::var("BENCH_PROFILE").as_deref() == Ok("cold") {
        // Only the cold analysis, for a profiler attached to this process.
        return Ok(());
    }
    let (warm, warm_s) = run(&files, args.threads, analyse);
    report("warm", warm.len(), lines(&warm), warm_s);
    // The files analysed above, read and parsed only (the tree is dropped, as after
    // an analysis): what any tree-sitter analysis of them costs at least.
    let analysed: Vec<PathBuf> = cold.iter().map(|&i| files[i].clone()).collect();
    let (parsed, parse_s) = run(&analysed, args.threads, |path, lang| {
        std::fs::read(path).is_ok_and(|code| parse_only(lang, &code))
    });
    let parsed_lines = parsed.iter().map(|&i| lines_of[cold[i]]).sum();
    report("parse", parsed.len(), parsed_lines, parse_s);

    rescan(&root, &analysed, args.threads)?;

    if let Some(list) = args.list {
        let text: String = cold
            .iter()
            .map(|&i| format!("{}\n", files[i].display()))
            .collect();
        std::fs::write(&list, text).with_context(|| format!("cannot write {}", list.display()))?;
    }
    Ok(())
}

thread_local! {
    static PARSER: std::cell::RefCell<tree_sitter::Parser> =
        std::cell::RefCell::new(tree_sitter::Parser::new());
}

/// Parses `code` with this thread's parser and drops the tree.
fn parse_only(lang: LANG, code: &[u8]) -> bool {
    let Ok(language) = lang.tree_sitter_language() else {
        return false;
    };
    PARSER.with(|parser| {
        let mut parser = parser.borrow_mut();
        parser.set_language(&language).is_ok() && parser.parse(code, None).is_some()
    })
}

/// Copies `files` (under `root`) into a scratch directory, analyses it as a
/// path, changes one file, and times the re-scan.
fn rescan(root: &Path, files: &[PathBuf], threads: usize) -> anyhow::Result<()> {
    let scratch = tempfile_dir()?;
    let result = rescan_in(&scratch, root, files, threads);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("analysis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.canonicalize()?)
}

fn rescan_in(scratch: &Path, root: &Path, files: &[PathBuf], threads: usize) -> anyhow::Result<()> {
    for file in files {
        let relative = file.strip_prefix(root).unwrap_or(file);
        let target = scratch.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(file, &target)?;
    }
    let analyzer = std::sync::Arc::new(Analyzer::new(Config {
        analysis_threads: threads,
        ..Config::with_root(scratch.to_path_buf())
    })?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let scan = || -> anyhow::Result<(u64, u64, u64, f64)> {
        let read_before = analyzer.files_read();
        let started = Instant::now();
        let summary = runtime.block_on(async {
            let admitted = analyzer.admit().await?;
            let mut events = analyzer.analyze_path(
                PathRequest {
                    path: ".".to_owned(),
                    walk: WalkOptions {
                        respect_gitignore: false,
                        max_files: files.len() + 1,
                        threads,
                        ..Default::default()
                    },
                    depth: Depth::Basic,
                    top_hotspots: 10,
                    summary_only: true,
                },
                admitted,
            )?;
            let mut summary = None;
            while let Some(event) = events.recv().await {
                if let Some(
                    switchboard_proto::code_analysis::v1::analyze_path_event::Event::Summary(s),
                ) = event?.event
                {
                    summary = Some(s);
                }
            }
            summary.context("no summary")
        })?;
        let seconds = started.elapsed().as_secs_f64();
        Ok((
            summary.files_analyzed,
            summary.files_from_cache,
            analyzer.files_read() - read_before,
            seconds,
        ))
    };
    let (cold_files, _, _, cold_s) = scan()?;
    eprintln!("path scan, cold: {cold_files} files in {cold_s:.2} s");
    let changed = scratch.join(
        files
            .first()
            .and_then(|f| f.strip_prefix(root).ok())
            .context("no file to change")?,
    );
    let mut text = std::fs::read_to_string(&changed)?;
    text.push_str("\n// changed\n");
    std::fs::write(&changed, text)?;
    let (files_seen, cached, read, rescan_s) = scan()?;
    eprintln!(
        "path re-scan after one change: {files_seen} files ({cached} from the cache, {read} read) in {rescan_s:.3} s"
    );
    #[allow(clippy::print_stdout)]
    {
        println!(
            "RESULT rescan files={files_seen} cached={cached} read={read} seconds={rescan_s:.4} cold_seconds={cold_s:.3}"
        );
    }
    // Once more with nothing changed: what unchanged files cost alone.
    let (files_seen, cached, read, unchanged_s) = scan()?;
    eprintln!(
        "path re-scan with nothing changed: {files_seen} files ({cached} from the cache, {read} read) in {unchanged_s:.3} s"
    );
    #[allow(clippy::print_stdout)]
    {
        println!(
            "RESULT unchanged files={files_seen} cached={cached} read={read} seconds={unchanged_s:.4}"
        );
    }
    Ok(())
}

fn bytecount_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}
