//! Property tests through the real service: generated nesting of each language's
//! constructs (random mixes, random depths up to past the depth limit), random
//! Unicode spliced in, and random text. Whatever comes in, the connector answers
//! (OK, or INVALID_ARGUMENT naming the limit that refused it), within the reply
//! size limit, and keeps serving.
//!
//! Bounded for CI: 256 cases per property by default (a few seconds each), more
//! with `PROPTEST_CASES`.
//! The depth limit is lowered so that "past the limit" stays cheap to generate.

use code_analysis_connector::Config;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use prost::Message;
use switchboard_proto::code_analysis::v1 as pb;
use tonic::Code;

use crate::nested_code::{self, Construct};
use crate::support;

const MAX_DEPTH: usize = 300;
const MAX_RESULT_BYTES: usize = 32 * 1024;

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    TestRunner::new(ProptestConfig {
        cases,
        // A failing case names its input; shrinking through gRPC is slow.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

/// A connector with low limits, on its own runtime (proptest's runner is sync).
fn connector() -> (
    tokio::runtime::Runtime,
    support::Connector,
    tempfile::TempDir,
) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        max_nesting_depth: MAX_DEPTH,
        max_result_bytes: MAX_RESULT_BYTES,
        ..Config::with_root(dir.path().canonicalize().expect("root"))
    };
    let connector = runtime.block_on(support::start_with(config));
    (runtime, connector, dir)
}

/// Nesting of one language's constructs in a random order: the first construct's
/// prefix and suffix around every chosen construct's opening, the innermost leaf,
/// and the closings in reverse.
fn mixed_nesting() -> impl Strategy<Value = (Construct, String)> {
    let all = nested_code::all();
    let languages: Vec<&'static str> = {
        let mut names: Vec<_> = all.iter().map(|c| c.language).collect();
        names.dedup();
        names
    };
    (
        proptest::sample::select(languages),
        proptest::collection::vec(any::<proptest::sample::Index>(), 1..6),
        0..MAX_DEPTH * 2,
    )
        .prop_map(move |(language, picks, depth)| {
            let own: Vec<Construct> = all
                .iter()
                .filter(|c| c.language == language && !c.indented)
                .copied()
                .collect();
            let chosen: Vec<Construct> = picks.iter().map(|i| *i.get(&own)).collect();
            let outer = chosen[0];
            let levels: Vec<Construct> = (0..depth).map(|l| chosen[l % chosen.len()]).collect();
            let mut code = String::from(outer.prefix);
            for level in &levels {
                code.push_str(level.open);
            }
            code.push_str(levels.last().unwrap_or(&outer).leaf);
            for level in levels.iter().rev() {
                code.push_str(level.close);
            }
            code.push_str(outer.suffix);
            (outer, code)
        })
}

/// Any construct at a random depth (Python's indented ones included).
fn one_construct() -> impl Strategy<Value = (Construct, String)> {
    (
        proptest::sample::select(nested_code::all()),
        0..MAX_DEPTH * 2,
    )
        .prop_map(|(construct, depth)| (construct, construct.nested(depth)))
}

/// Text with random Unicode (no NUL: that is refused as binary, tested elsewhere)
/// spliced in at random places.
fn with_noise(
    code: impl Strategy<Value = (Construct, String)>,
) -> impl Strategy<Value = (Construct, String)> {
    (
        code,
        proptest::collection::vec((any::<proptest::sample::Index>(), "[^\u{0}]{1,8}"), 0..8),
    )
        .prop_map(|((construct, mut code), noise)| {
            for (at, text) in noise {
                let mut at = at.index(code.len() + 1);
                while !code.is_char_boundary(at) {
                    at -= 1;
                }
                code.insert_str(at, &text);
            }
            (construct, code)
        })
}

fn analysis_depth() -> impl Strategy<Value = Option<i32>> {
    proptest::option::of(0..4i32)
}

/// Whether a refusal names the limit that caused it: the depth, or the parse
/// time (tree-sitter's error recovery can take minutes on broken nesting).
fn names_a_limit(message: &str) -> bool {
    message.contains("CODE_MAX_NESTING_DEPTH") || message.contains("CODE_PARSE_TIMEOUT_SECS")
}

/// OK with a reply under the size limit, or INVALID_ARGUMENT naming the limit.
fn check_analysis(
    result: Result<tonic::Response<pb::FileAnalysis>, tonic::Status>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(reply) => {
            let reply = reply.into_inner();
            prop_assert!(
                reply.encoded_len() <= MAX_RESULT_BYTES,
                "reply of {} bytes",
                reply.encoded_len()
            );
            prop_assert_eq!(reply.truncated, !reply.truncation.is_empty());
        }
        Err(status) => {
            prop_assert_eq!(status.code(), Code::InvalidArgument, "{:?}", status);
            prop_assert!(names_a_limit(status.message()), "{}", status.message());
        }
    }
    Ok(())
}

fn analyses_are_answered(strategy: impl Strategy<Value = (Construct, String)>) {
    let (runtime, connector, _dir) = connector();
    let result = runner().run(
        &(strategy, analysis_depth()),
        |((construct, code), analysis_depth)| {
            let mut client = connector.client.clone();
            let result = runtime.block_on(client.analyze_code(pb::AnalyzeCodeRequest {
                code,
                language: Some(construct.language.to_owned()),
                file_name: None,
                analysis_depth,
            }));
            check_analysis(result)
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let mut client = connector.client.clone();
    runtime
        .block_on(client.list_languages(pb::ListLanguagesRequest {}))
        .expect("the connector still serves");
}

#[test]
fn generated_nesting_of_each_languages_constructs_is_always_answered() {
    analyses_are_answered(mixed_nesting());
}

#[test]
fn every_construct_at_random_depths_is_always_answered() {
    analyses_are_answered(one_construct());
}

#[test]
fn nested_code_with_random_unicode_spliced_in_is_always_answered() {
    analyses_are_answered(with_noise(prop_oneof![mixed_nesting(), one_construct()]));
}

#[test]
fn random_text_in_any_language_is_always_answered() {
    let text = (
        proptest::sample::select(nested_code::all()),
        prop_oneof![
            "[^\u{0}]{0,400}",
            "[(){}\\[\\]<>;:,.=|&!?\"'`#\\\\ \n\t a-z0-9]{0,2000}",
        ],
    );
    analyses_are_answered(text);
}

#[test]
fn security_scans_of_hostile_code_are_always_answered() {
    let (runtime, connector, _dir) = connector();
    let result = runner().run(
        &with_noise(prop_oneof![mixed_nesting(), one_construct()]),
        |(construct, code)| {
            let mut client = connector.client.clone();
            let reply =
                runtime.block_on(client.find_security_issues(pb::FindSecurityIssuesRequest {
                    code: Some(code),
                    language: Some(construct.language.to_owned()),
                    ..Default::default()
                }));
            match reply {
                Ok(reply) => prop_assert!(reply.into_inner().findings.len() <= 200),
                Err(status) => {
                    prop_assert_eq!(status.code(), Code::InvalidArgument, "{:?}", status);
                    prop_assert!(names_a_limit(status.message()), "{}", status.message());
                }
            }
            Ok(())
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
