//! AnalyzeCode and ListLanguages: metrics, depths, language resolution, bad input, cache.

use switchboard_proto::code_analysis::v1 as pb;
use tonic::Code;

use crate::support;

const PYTHON: &str = "def outer(a, b, c, d, e, f):\n    if a:\n        for x in b:\n            while c:\n                if d:\n                    with e:\n                        return x\n    return None\n\n\ndef tiny():\n    return 1\n";

#[tokio::test]
async fn detailed_analysis_lists_every_function_with_its_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let result = connector
        .client
        .analyze_code(support::code_request(PYTHON, "app.py"))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(result.language, "python");
    assert_eq!(result.path, "app.py");
    let names: Vec<_> = result.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["outer", "tiny"]);
    let outer = &result.functions[0];
    assert_eq!((outer.start_line, outer.end_line), (1, 8));
    assert_eq!(outer.arguments, 6);
    assert_eq!(outer.max_nesting_depth, 5);
    assert_eq!(outer.cyclomatic, 5, "1 + if + for + while + if");
    assert!(
        outer.cognitive > outer.cyclomatic,
        "nesting makes it harder to read"
    );
    assert!(outer.halstead.as_ref().is_some_and(|h| h.volume > 0.0));
    let metrics = result.metrics.expect("file metrics");
    assert_eq!(metrics.functions, 2);
    assert_eq!(metrics.cyclomatic_max, 5);
    assert_eq!(metrics.cyclomatic_average, 3.0, "(5 + 1) / 2 functions");
    assert_eq!(metrics.lines.expect("lines").sloc, 12);
    assert!(metrics.maintainability_index > 0.0 && metrics.maintainability_index <= 100.0);
}

#[tokio::test]
async fn basic_depth_omits_functions_and_comprehensive_adds_review() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let mut request = support::code_request(PYTHON, "app.py");
    request.analysis_depth = Some(pb::AnalysisDepth::Basic as i32);
    let basic = connector
        .client
        .analyze_code(request.clone())
        .await
        .expect("ok")
        .into_inner();
    assert!(basic.functions.is_empty());
    assert_eq!(basic.metrics.expect("metrics").functions, 2);

    request.analysis_depth = Some(pb::AnalysisDepth::Comprehensive as i32);
    let full = connector
        .client
        .analyze_code(request)
        .await
        .expect("ok")
        .into_inner();
    let kinds: Vec<_> = full
        .refactoring_opportunities
        .iter()
        .map(|r| (r.kind.as_str(), r.function.as_str()))
        .collect();
    assert!(
        kinds.contains(&("long_parameter_list", "outer")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&("deep_nesting", "outer")), "{kinds:?}");
    let suggested: Vec<_> = full
        .test_suggestions
        .iter()
        .map(|t| t.function.as_str())
        .collect();
    assert_eq!(suggested, ["outer"], "tiny has a single path");
}

#[tokio::test]
async fn an_unchanged_source_comes_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let request = support::code_request("fn main() { println!(\"hi\"); }\n", "main.rs");
    let first = connector
        .client
        .analyze_code(request.clone())
        .await
        .expect("ok")
        .into_inner();
    let second = connector
        .client
        .analyze_code(request)
        .await
        .expect("ok")
        .into_inner();
    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(first.functions, second.functions);
}

#[tokio::test]
async fn the_language_comes_from_the_name_or_the_file_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let by_name = pb::AnalyzeCodeRequest {
        code: "func f() {}\n".into(),
        language: Some("Golang".into()),
        ..Default::default()
    };
    assert_eq!(
        connector
            .client
            .analyze_code(by_name)
            .await
            .expect("ok")
            .into_inner()
            .language,
        "go"
    );

    let unknown = pb::AnalyzeCodeRequest {
        code: "x".into(),
        language: Some("cobol".into()),
        ..Default::default()
    };
    let status = connector
        .client
        .analyze_code(unknown)
        .await
        .expect_err("unknown language");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("cobol") && status.message().contains("python"),
        "{}",
        status.message()
    );

    let none = pb::AnalyzeCodeRequest {
        code: "x".into(),
        file_name: Some("notes.txt".into()),
        ..Default::default()
    };
    let status = connector
        .client
        .analyze_code(none)
        .await
        .expect_err("no language");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("language"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn oversized_and_binary_input_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config =
        code_analysis_connector::Config::with_root(dir.path().canonicalize().expect("root"));
    config.max_file_bytes = 100;
    let mut connector = support::start_with(config).await;
    let big = support::code_request(&"x = 1\n".repeat(50), "big.py");
    let status = connector
        .client
        .analyze_code(big)
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("MAX_FILE_BYTES"),
        "{}",
        status.message()
    );

    let binary = support::code_request("\0\u{1}ELF", "blob.c");
    let status = connector
        .client
        .analyze_code(binary)
        .await
        .expect_err("binary");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("binary"), "{}", status.message());
}

#[tokio::test]
async fn unparsable_code_reports_error_locations_and_what_parsed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let code = "public class A {\n  int ok(int x) { return x; }\n  int broken( { return 1 }\n}\n";
    let result = connector
        .client
        .analyze_code(support::code_request(code, "A.java"))
        .await
        .expect("ok")
        .into_inner();
    assert!(!result.parse_errors.is_empty());
    assert!(
        result.parse_errors.iter().all(|e| e.line == 3),
        "{:?}",
        result.parse_errors
    );
    assert!(result.functions.iter().any(|f| f.name == "ok"));
}

#[tokio::test]
async fn languages_are_listed_with_extensions_and_rule_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut connector = support::start(dir.path()).await;
    let list = connector
        .client
        .list_languages(pb::ListLanguagesRequest {})
        .await
        .expect("ok")
        .into_inner();
    let names: Vec<_> = list.languages.iter().map(|l| l.name.as_str()).collect();
    for required in [
        "rust",
        "python",
        "javascript",
        "typescript",
        "go",
        "java",
        "c",
        "cpp",
    ] {
        assert!(
            names.contains(&required),
            "{required} missing from {names:?}"
        );
    }
    let python = list
        .languages
        .iter()
        .find(|l| l.name == "python")
        .expect("python");
    assert!(python.extensions.contains(&"py".to_owned()));
    assert!(python.security_rules >= 5);
}

#[tokio::test]
async fn health_is_serving_once_grammars_are_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let connector = support::start(dir.path()).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(connector.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "switchboard.code_analysis.v1.CodeAnalysis".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
