//! AnalyzePath: streaming per file, summary last, .gitignore, globs, sandbox, cache.

use std::path::Path;

use switchboard_proto::code_analysis::v1 as pb;
use tonic::Code;

use crate::support;

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "src/lib.rs",
        "pub fn branchy(x: i32) -> i32 {\n    if x > 0 {\n        1\n    } else if x < 0 {\n        -1\n    } else {\n        0\n    }\n}\n",
    );
    write(
        root,
        "src/util.py",
        "def f(a):\n    for i in a:\n        if i:\n            return i\n    return None\n",
    );
    write(root, "web/app.js", "function g(x) { return x && x.y; }\n");
    write(root, "README.md", "# not code\n");
    write(root, "build/gen.py", "def generated():\n    pass\n");
    write(root, ".gitignore", "build/\n");
    std::fs::write(root.join("src/blob.c"), b"\x7fELF\0\0\0binary").expect("write");
    dir
}

fn request(path: &str) -> pb::AnalyzePathRequest {
    pb::AnalyzePathRequest {
        path: path.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_directory_streams_each_file_then_a_summary_with_hotspots() {
    let dir = project();
    let mut connector = support::start(dir.path()).await;
    let (files, skipped, summary) = support::collect_path(&mut connector.client, request("."))
        .await
        .expect("ok");
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["src/lib.rs", "src/util.py", "web/app.js"],
        "gitignored build/ and README are not analysed"
    );
    assert!(
        files.iter().all(|f| f.functions.is_empty()),
        "BASIC depth by default"
    );
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].path, "src/blob.c");
    assert_eq!(skipped[0].reason, "binary file");

    assert_eq!(summary.path, ".");
    assert_eq!(summary.files_analyzed, 3);
    assert_eq!(summary.files_skipped, 1);
    assert!(!summary.truncated);
    assert_eq!(summary.functions, 3);
    let languages: Vec<_> = summary
        .languages
        .iter()
        .map(|l| l.language.as_str())
        .collect();
    assert_eq!(languages.len(), 3, "{languages:?}");
    let top = &summary.hotspots[0];
    assert_eq!(top.path, "src/lib.rs");
    assert_eq!(top.function, "branchy");
    // Complexity 3 (the function, `if`, `else if`) times 9 lines.
    assert_eq!(
        (top.cyclomatic, top.sloc, top.score),
        (3, 9, 27.0),
        "{top:?}"
    );
}

#[tokio::test]
async fn the_second_run_over_an_unchanged_tree_comes_from_the_cache() {
    let dir = project();
    let mut connector = support::start(dir.path()).await;
    let (_, _, first) = support::collect_path(&mut connector.client, request("src"))
        .await
        .expect("ok");
    let (files, _, second) = support::collect_path(&mut connector.client, request("src"))
        .await
        .expect("ok");
    assert_eq!(first.files_from_cache, 0);
    assert_eq!(second.files_from_cache, 2);
    assert!(files.iter().all(|f| f.from_cache));
}

#[tokio::test]
async fn globs_gitignore_switch_and_summary_only_shape_the_result() {
    let dir = project();
    let mut connector = support::start(dir.path()).await;
    let only_python = pb::AnalyzePathRequest {
        include: vec!["*.py".into()],
        respect_gitignore: Some(false),
        ..request(".")
    };
    let (files, _, _) = support::collect_path(&mut connector.client, only_python)
        .await
        .expect("ok");
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["build/gen.py", "src/util.py"]);

    let excluded = pb::AnalyzePathRequest {
        exclude: vec!["web".into(), "*.c".into()],
        summary_only: Some(true),
        ..request(".")
    };
    let (files, skipped, summary) = support::collect_path(&mut connector.client, excluded)
        .await
        .expect("ok");
    assert!(
        files.is_empty() && skipped.is_empty(),
        "summary_only sends only the summary"
    );
    assert_eq!(summary.files_analyzed, 2);
    assert_eq!(summary.files_skipped, 0);

    let detailed = pb::AnalyzePathRequest {
        analysis_depth: Some(pb::AnalysisDepth::Detailed as i32),
        ..request("src/util.py")
    };
    let (files, _, _) = support::collect_path(&mut connector.client, detailed)
        .await
        .expect("ok");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].functions[0].name, "f");

    let bad_glob = pb::AnalyzePathRequest {
        include: vec!["src/[".into()],
        ..request(".")
    };
    let status = support::collect_path(&mut connector.client, bad_glob)
        .await
        .expect_err("invalid glob");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("src/["), "{}", status.message());
}

#[tokio::test]
async fn paths_outside_the_code_root_are_refused() {
    let dir = project();
    let mut connector = support::start(&dir.path().join("src")).await;
    for path in ["..", "../web/app.js", "/etc"] {
        let status = support::collect_path(&mut connector.client, request(path))
            .await
            .expect_err("outside");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{path}: {}",
            status.message()
        );
    }
    let status = support::collect_path(&mut connector.client, request("nope"))
        .await
        .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    // Inside the root, `..` is refused too: a policy reading `args.path` as
    // given (`src/...`) must see where it leads.
    let status = support::collect_path(&mut connector.client, request("./../src/util.py"))
        .await
        .expect_err("a `..` inside the root");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(status.message().contains("`..`"), "{}", status.message());
}

#[tokio::test]
async fn the_file_limit_stops_the_walk_and_says_so() {
    let dir = project();
    let mut connector = support::start(dir.path()).await;
    let limited = pb::AnalyzePathRequest {
        max_files: Some(1),
        ..request(".")
    };
    let (files, skipped, summary) = support::collect_path(&mut connector.client, limited)
        .await
        .expect("ok");
    assert_eq!(files.len() + skipped.len(), 1);
    assert!(summary.truncated);
}

#[tokio::test]
async fn this_connector_s_own_sources_are_analysed() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut connector = support::start(crate_dir).await;
    let request = pb::AnalyzePathRequest {
        summary_only: Some(true),
        ..request("src")
    };
    let (_, _, summary) = support::collect_path(&mut connector.client, request)
        .await
        .expect("ok");
    assert!(summary.files_analyzed >= 10, "{summary:?}");
    assert_eq!(summary.files_skipped, 0);
    assert_eq!(summary.languages[0].language, "rust");
    assert_eq!(summary.hotspots.len(), 10);
    assert!(
        summary
            .hotspots
            .iter()
            .all(|h| h.path.starts_with("src/") && h.score > 0.0)
    );
}
