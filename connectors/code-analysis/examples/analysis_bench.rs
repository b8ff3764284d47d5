//! Throughput benchmark: analyses a large source tree (by default the crates cargo
//! has downloaded, `~/.cargo/registry/src`) cold, then again with a warm
//! content-hash cache, on all cores, and prints files/s and lines/s. A third run
//! only reads and parses every file with tree-sitter, which every metric needs:
//! the ceiling for any analysis built on these grammars.
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
use big_code_analysis::{Ast, LANG, Source};
use code_analysis_connector::analyzer::Depth;
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
    let (warm, warm_s) = run(&files, args.threads, analyse);
    report("warm", warm.len(), lines(&warm), warm_s);
    // The files analysed above, read and parsed only (the tree is dropped, as after
    // an analysis): what any tree-sitter analysis of them costs at least.
    let analysed: Vec<PathBuf> = cold.iter().map(|&i| files[i].clone()).collect();
    let (parsed, parse_s) = run(&analysed, args.threads, |path, lang| {
        std::fs::read(path).is_ok_and(|code| Ast::parse(Source::new(lang, &code)).is_ok())
    });
    let parsed_lines = parsed.iter().map(|&i| lines_of[cold[i]]).sum();
    report("parse", parsed.len(), parsed_lines, parse_s);

    if let Some(list) = args.list {
        let text: String = cold
            .iter()
            .map(|&i| format!("{}\n", files[i].display()))
            .collect();
        std::fs::write(&list, text).with_context(|| format!("cannot write {}", list.display()))?;
    }
    Ok(())
}

fn bytecount_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}
