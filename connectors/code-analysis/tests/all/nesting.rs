//! Deeply nested code through the real service: every language's nesting
//! constructs, far past what a recursive walk survives, must get an answer (the
//! metrics, or INVALID_ARGUMENT naming CODE_MAX_NESTING_DEPTH), never crash the
//! connector. A stack overflow aborts the process, so under nextest (one process
//! per test) it fails the test that caused it.

use code_analysis_connector::Config;
use code_analysis_connector::metrics::{INLINE_DEPTH, MAX_NAME_BYTES};
use prost::Message;
use switchboard_proto::code_analysis::v1 as pb;
use tonic::Code;

use crate::nested_code::{self, Construct};
use crate::support;

fn request(
    construct: &Construct,
    code: String,
    depth: pb::AnalysisDepth,
) -> pb::AnalyzeCodeRequest {
    pb::AnalyzeCodeRequest {
        code,
        language: Some(construct.language.to_owned()),
        file_name: None,
        analysis_depth: Some(depth as i32),
    }
}

/// OK within the limits, or INVALID_ARGUMENT that names the depth limit.
fn assert_answered(
    result: Result<tonic::Response<pb::FileAnalysis>, tonic::Status>,
    construct: &Construct,
    config: &Config,
) -> Option<pb::FileAnalysis> {
    match result {
        Ok(reply) => {
            let reply = reply.into_inner();
            assert!(
                reply.encoded_len() <= config.max_result_bytes,
                "{} {}: a reply of {} bytes",
                construct.language,
                construct.name,
                reply.encoded_len()
            );
            Some(reply)
        }
        Err(status) => {
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{} {}: {status:?}",
                construct.language,
                construct.name
            );
            assert!(
                status.message().contains("CODE_MAX_NESTING_DEPTH"),
                "{} {}: {}",
                construct.language,
                construct.name,
                status.message()
            );
            None
        }
    }
}

async fn every_construct_is_answered(bytes: usize, config: Config) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start_with(Config {
        code_root: dir.path().canonicalize().expect("root"),
        ..config.clone()
    })
    .await;
    for construct in nested_code::all() {
        let code = construct.nested_to_size(bytes);
        let result = connector
            .client
            .analyze_code(request(&construct, code, pb::AnalysisDepth::Comprehensive))
            .await;
        assert_answered(result, &construct, &config);
    }
}

#[tokio::test]
async fn deeply_nested_code_of_18_kb_in_every_language_gets_an_answer() {
    every_construct_is_answered(18 * 1024, Config::with_root(".".into())).await;
}

#[tokio::test]
async fn deeply_nested_code_of_200_kb_in_every_language_gets_an_answer() {
    every_construct_is_answered(200 * 1024, Config::with_root(".".into())).await;
}

#[tokio::test]
async fn code_over_the_depth_limit_is_refused_with_the_limits_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let construct = nested_code::all()[0];
    assert_eq!(construct.name, "arrow functions");
    let code = construct.nested(20_000);
    let status = connector
        .client
        .analyze_code(pb::AnalyzeCodeRequest {
            file_name: Some("deep.js".to_owned()),
            ..request(&construct, code, pb::AnalysisDepth::Detailed)
        })
        .await
        .expect_err("too deep");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("deep.js nests ")
            && status.message().contains(
                "more than 1000 syntax-tree levels deep, the limit set by CODE_MAX_NESTING_DEPTH"
            ),
        "{}",
        status.message()
    );
}

/// With a raised limit, code deeper than the depth the calling thread measures
/// itself ([`INLINE_DEPTH`]) is measured on a thread with a stack sized for it, in
/// every language.
#[tokio::test]
async fn a_raised_depth_limit_measures_deeper_code_in_every_language() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_nesting_depth: 1500,
        ..Config::with_root(dir.path().canonicalize().expect("root"))
    };
    let mut connector = support::start_with(config.clone()).await;
    const DEPTH: usize = 1200;
    const {
        assert!(
            DEPTH > INLINE_DEPTH,
            "the test must go past the inline depth"
        )
    };
    // One syntax-tree level per level of each of these.
    let one_level_each = [
        ("javascript", "arrow functions"),
        ("typescript", "arrow functions"),
        ("tsx", "arrow functions"),
        ("python", "lambdas"),
        ("rust", "closures"),
        ("go", "parentheses"),
        ("java", "lambdas"),
        ("c", "blocks"),
        ("cpp", "blocks"),
    ];
    for (language, name) in one_level_each {
        let construct = nested_code::all()
            .into_iter()
            .find(|c| c.language == language && c.name == name)
            .expect("known construct");
        let code = construct.nested(DEPTH);
        let result = connector
            .client
            .analyze_code(request(&construct, code, pb::AnalysisDepth::Detailed))
            .await;
        let reply = assert_answered(result, &construct, &config);
        let metrics = reply
            .and_then(|r| r.metrics)
            .unwrap_or_else(|| panic!("{language} {name} is within the raised limit"));
        assert!(metrics.lines.is_some_and(|l| l.sloc >= 1));
    }
}

/// Each level of nested functions used to repeat every enclosing name: 3 KB of
/// input gave megabytes of reply. Names are now bounded and the reply linear.
#[tokio::test]
async fn nested_functions_give_bounded_names_and_a_reply_linear_in_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let code = "function outer_function_name(a) { ".repeat(300) + &"}".repeat(300);
    let reply = connector
        .client
        .analyze_code(pb::AnalyzeCodeRequest {
            code: code.clone(),
            language: Some("javascript".to_owned()),
            file_name: None,
            analysis_depth: Some(pb::AnalysisDepth::Comprehensive as i32),
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(reply.functions.len(), 300, "every function is listed");
    assert!(!reply.truncated);
    for f in &reply.functions {
        assert!(
            f.qualified_name.len() <= MAX_NAME_BYTES,
            "{}",
            f.qualified_name
        );
        assert_eq!(f.name, "outer_function_name");
    }
    let deepest = &reply.functions[299];
    assert!(
        deepest.qualified_name.starts_with('…')
            && deepest
                .qualified_name
                .ends_with("::outer_function_name::outer_function_name"),
        "{}",
        deepest.qualified_name
    );
    assert_eq!(
        reply.functions[1].qualified_name,
        "outer_function_name::outer_function_name"
    );
    let size = reply.encoded_len();
    assert!(
        size < 200 * code.len(),
        "{size} bytes of reply for {} bytes of code",
        code.len()
    );
}

#[tokio::test]
async fn a_reply_over_the_size_limit_lists_the_first_functions_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_result_bytes: 16 * 1024,
        ..Config::with_root(dir.path().canonicalize().expect("root"))
    };
    let mut connector = support::start_with(config).await;
    let code: String = (0..500)
        .map(|i| format!("def function_{i}(a):\n    return a\n\n"))
        .collect();
    let reply = connector
        .client
        .analyze_code(support::code_request(&code, "many.py"))
        .await
        .expect("ok")
        .into_inner();
    assert!(reply.encoded_len() <= 16 * 1024, "{}", reply.encoded_len());
    assert!(reply.truncated);
    let listed = reply.functions.len();
    assert!(listed > 10 && listed < 500, "{listed}");
    assert_eq!(
        reply.metrics.as_ref().map(|m| m.functions),
        Some(500),
        "the totals still cover the whole file"
    );
    let names: Vec<_> = reply.functions.iter().map(|f| f.name.clone()).collect();
    let first: Vec<_> = (0..listed).map(|i| format!("function_{i}")).collect();
    assert_eq!(names, first, "the first functions in source order");
    assert!(
        reply
            .truncation
            .starts_with(&format!("{listed} of 500 functions listed"))
            && reply.truncation.contains("CODE_MAX_RESULT_BYTES"),
        "{}",
        reply.truncation
    );

    let small = connector
        .client
        .analyze_code(support::code_request("def f():\n    pass\n", "one.py"))
        .await
        .expect("ok")
        .into_inner();
    assert!(!small.truncated);
    assert!(small.truncation.is_empty());
}

#[tokio::test]
async fn deeply_nested_code_is_scanned_for_security_issues_or_refused_past_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    for construct in nested_code::all() {
        let code = construct.nested_to_size(18 * 1024);
        let reply = connector
            .client
            .find_security_issues(pb::FindSecurityIssuesRequest {
                code: Some(code),
                language: Some(construct.language.to_owned()),
                ..Default::default()
            })
            .await;
        if let Err(status) = reply {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(
                status.message().contains("CODE_MAX_NESTING_DEPTH"),
                "{}",
                status.message()
            );
        }
    }
    let scan = |depth: usize| pb::FindSecurityIssuesRequest {
        code: Some(format!("f = {}eval(x)\n", "lambda: ".repeat(depth))),
        language: Some("python".to_owned()),
        file_name: Some("deep.py".to_owned()),
        ..Default::default()
    };
    let reply = connector
        .client
        .find_security_issues(scan(900))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        reply
            .findings
            .iter()
            .map(|f| f.rule_id.as_str())
            .collect::<Vec<_>>(),
        ["python.eval-exec"],
        "a finding under 900 lambdas is still found"
    );
    let status = connector
        .client
        .find_security_issues(scan(20_000))
        .await
        .expect_err("past the limit");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("deep.py nests more than 1000 syntax-tree levels deep, the limit set by CODE_MAX_NESTING_DEPTH; "),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_too_deep_file_in_a_directory_is_skipped_with_the_reason_and_the_rest_analysed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("deep.js"),
        nested_code::all()[0].nested(20_000),
    )
    .expect("write");
    std::fs::write(dir.path().join("fine.py"), "def f(a):\n    return a\n").expect("write");
    let mut connector = support::start(dir.path()).await;
    let (files, skipped, summary) = support::collect_path(
        &mut connector.client,
        pb::AnalyzePathRequest {
            path: ".".to_owned(),
            ..Default::default()
        },
    )
    .await
    .expect("ok");
    assert_eq!(
        files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["fine.py"]
    );
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].path, "deep.js");
    assert!(
        skipped[0].reason.contains("CODE_MAX_NESTING_DEPTH"),
        "{}",
        skipped[0].reason
    );
    assert_eq!(summary.files_analyzed, 1);
}

/// Broken TSX found by the fuzz test: nested function expressions with stray
/// characters spliced in. tree-sitter's error recovery ran for minutes on its
/// 5 KB; the parse is stopped at CODE_PARSE_TIMEOUT_SECS and the file refused
/// naming it, for analysis and for security scans, and the connector goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_whose_parse_outlasts_the_timeout_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        parse_timeout: std::time::Duration::from_secs(1),
        ..Config::with_root(dir.path().canonicalize().expect("root"))
    };
    let connector = support::start_with(config).await;
    let code = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/hostile/slow-error-recovery.tsx"),
    )
    .expect("fixture");
    let mut client = connector.client.clone();
    let status = client
        .analyze_code(pb::AnalyzeCodeRequest {
            code: code.clone(),
            language: Some("tsx".to_owned()),
            file_name: None,
            analysis_depth: Some(pb::AnalysisDepth::Comprehensive as i32),
        })
        .await
        .expect_err("the parse cannot finish within a second");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("CODE_PARSE_TIMEOUT_SECS")
            && status
                .message()
                .starts_with("the code took longer than 1 s to parse"),
        "{}",
        status.message()
    );
    let status = client
        .find_security_issues(pb::FindSecurityIssuesRequest {
            code: Some(code),
            language: Some("tsx".to_owned()),
            ..Default::default()
        })
        .await
        .expect_err("the scan parses the same way");
    assert!(
        status.message().contains("CODE_PARSE_TIMEOUT_SECS"),
        "{}",
        status.message()
    );
    // The thread's parser was reset: ordinary code parses right after.
    let reply = client
        .analyze_code(pb::AnalyzeCodeRequest {
            code: "const f = () => [1, 2];\n".to_owned(),
            language: Some("tsx".to_owned()),
            file_name: None,
            analysis_depth: None,
        })
        .await
        .expect("ordinary code after a stopped parse")
        .into_inner();
    assert!(
        reply.parse_errors.is_empty() && reply.metrics.is_some(),
        "{reply:?}"
    );
}
