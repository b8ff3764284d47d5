//! The COMPREHENSIVE level: refactoring opportunities and test suggestions, derived
//! from the per-function metrics and the source text.
//!
//! Thresholds follow common reviewer practice (and lizard's/SonarQube's defaults
//! where they exist): cyclomatic > 10, cognitive > 15, function over 60 source lines,
//! more than 5 parameters, nesting deeper than 4, and any block of 6 or more
//! meaningful lines that appears twice.

use std::collections::{HashMap, HashSet};

use switchboard_proto::code_analysis::v1 as pb;

const MAX_CYCLOMATIC: u64 = 10;
const MAX_COGNITIVE: u64 = 15;
const MAX_FUNCTION_SLOC: u64 = 60;
const MAX_ARGUMENTS: u64 = 5;
const MAX_NESTING: u32 = 4;
/// Shortest duplicated block reported, in meaningful (non-trivial) lines.
const MIN_DUPLICATE_LINES: usize = 6;
const MAX_DUPLICATES: usize = 10;
const MAX_TEST_SUGGESTIONS: usize = 5;
/// Functions with fewer independent paths are not worth suggesting.
const MIN_TEST_CYCLOMATIC: u64 = 3;

/// Fills the COMPREHENSIVE fields of `analysis` from its functions and `source`.
pub fn add_review(analysis: &mut pb::FileAnalysis, source: &str) {
    let mut found = Vec::new();
    for f in &analysis.functions {
        let sloc = f.lines.as_ref().map_or(0, |l| l.sloc);
        let mut push = |kind: &str, value: f64, threshold: f64, suggestion: String| {
            found.push(pb::RefactoringOpportunity {
                kind: kind.to_owned(),
                function: f.qualified_name.clone(),
                start_line: f.start_line,
                end_line: f.end_line,
                value,
                threshold,
                suggestion,
            });
        };
        if f.cyclomatic > MAX_CYCLOMATIC {
            push(
                "high_cyclomatic_complexity",
                f.cyclomatic as f64,
                MAX_CYCLOMATIC as f64,
                format!(
                    "{} has {} independent paths; split it into smaller functions or replace branching with lookup tables or polymorphism",
                    f.qualified_name, f.cyclomatic
                ),
            );
        }
        if f.cognitive > MAX_COGNITIVE {
            push(
                "high_cognitive_complexity",
                f.cognitive as f64,
                MAX_COGNITIVE as f64,
                format!(
                    "{} is hard to follow; flatten it with early returns and extract the nested parts into named helpers",
                    f.qualified_name
                ),
            );
        }
        if sloc > MAX_FUNCTION_SLOC {
            push(
                "long_function",
                sloc as f64,
                MAX_FUNCTION_SLOC as f64,
                format!(
                    "{} spans {} lines; extract cohesive steps into functions of their own",
                    f.qualified_name, sloc
                ),
            );
        }
        if f.arguments > MAX_ARGUMENTS {
            push(
                "long_parameter_list",
                f.arguments as f64,
                MAX_ARGUMENTS as f64,
                format!(
                    "{} takes {} parameters; group related ones into a struct/object or split the function",
                    f.qualified_name, f.arguments
                ),
            );
        }
        if f.max_nesting_depth > MAX_NESTING {
            push(
                "deep_nesting",
                f64::from(f.max_nesting_depth),
                f64::from(MAX_NESTING),
                format!(
                    "{} nests {} levels deep; use guard clauses or extract the inner loop body",
                    f.qualified_name, f.max_nesting_depth
                ),
            );
        }
    }
    // Worst first: by how far over the threshold, relatively.
    found.sort_by(|a, b| (b.value / b.threshold).total_cmp(&(a.value / a.threshold)));
    found.extend(duplicated_blocks(source));
    analysis.refactoring_opportunities = found;
    analysis.test_suggestions = test_suggestions(&analysis.functions, source);
}

/// A line reduced to what matters for duplication: no indentation, single spaces.
fn normalise(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lines made only of brackets, punctuation or short keywords are too common to
/// make two blocks "the same".
fn is_meaningful(line: &str) -> bool {
    line.chars().filter(|c| c.is_alphanumeric()).count() >= 3
}

fn duplicated_blocks(source: &str) -> Vec<pb::RefactoringOpportunity> {
    let kept: Vec<(usize, String)> = source
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, normalise(l)))
        .filter(|(_, l)| is_meaningful(l))
        .collect();
    if kept.len() < 2 * MIN_DUPLICATE_LINES {
        return Vec::new();
    }
    let window = |i: usize| -> Vec<&str> {
        kept[i..i + MIN_DUPLICATE_LINES]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect()
    };
    let mut first_seen: HashMap<Vec<&str>, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut j = 0;
    while j + MIN_DUPLICATE_LINES <= kept.len() && out.len() < MAX_DUPLICATES {
        let key = window(j);
        match first_seen.get(&key) {
            Some(&i) if i + MIN_DUPLICATE_LINES <= j => {
                let mut len = MIN_DUPLICATE_LINES;
                while j + len < kept.len() && i + len < j && kept[i + len].1 == kept[j + len].1 {
                    len += 1;
                }
                let (first_start, first_end) = (kept[i].0, kept[i + len - 1].0);
                let (start, end) = (kept[j].0, kept[j + len - 1].0);
                out.push(pb::RefactoringOpportunity {
                    kind: "duplicated_block".to_owned(),
                    function: String::new(),
                    start_line: u32::try_from(start).unwrap_or(u32::MAX),
                    end_line: u32::try_from(end).unwrap_or(u32::MAX),
                    value: len as f64,
                    threshold: MIN_DUPLICATE_LINES as f64,
                    suggestion: format!("lines {start}-{end} repeat lines {first_start}-{first_end}; extract the shared code into one function"),
                });
                j += len;
            }
            Some(_) => j += 1,
            None => {
                first_seen.insert(key, j);
                j += 1;
            }
        }
    }
    out
}

/// A function is a test by the naming conventions of the supported languages'
/// test frameworks (`test_x`, `TestX`, `x_test`, Rust `tests::` modules).
fn is_test(f: &pb::FunctionMetrics) -> bool {
    let name = f.name.to_ascii_lowercase();
    name.starts_with("test") || name.ends_with("_test") || f.qualified_name.contains("tests::")
}

fn test_suggestions(functions: &[pb::FunctionMetrics], source: &str) -> Vec<pb::TestSuggestion> {
    let lines: Vec<&str> = source.lines().collect();
    // The lines inside any test, each read once however deeply tests nest: the
    // union of their line ranges, merged after sorting.
    let mut ranges: Vec<(usize, usize)> = functions
        .iter()
        .filter(|f| is_test(f))
        .map(|t| {
            (
                (t.start_line as usize).saturating_sub(1),
                (t.end_line as usize).min(lines.len()),
            )
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut called_from_tests: HashSet<&str> = HashSet::new();
    for (start, end) in merged {
        for line in lines.get(start..end).unwrap_or_default() {
            called_from_tests.extend(
                line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty()),
            );
        }
    }
    let mut candidates: Vec<&pb::FunctionMetrics> = functions
        .iter()
        .filter(|f| !is_test(f) && f.cyclomatic >= MIN_TEST_CYCLOMATIC)
        .filter(|f| !called_from_tests.contains(f.name.as_str()))
        .collect();
    candidates.sort_by(|a, b| {
        b.cyclomatic
            .cmp(&a.cyclomatic)
            .then(b.cognitive.cmp(&a.cognitive))
    });
    candidates
        .into_iter()
        .take(MAX_TEST_SUGGESTIONS)
        .map(|f| pb::TestSuggestion {
            function: f.qualified_name.clone(),
            start_line: f.start_line,
            end_line: f.end_line,
            cyclomatic: f.cyclomatic,
            reason: format!(
                "{} independent paths and no test in this file refers to it; write at least {} cases covering each branch{}",
                f.cyclomatic,
                f.cyclomatic,
                if f.exits > 1 { format!(" and each of its {} exits", f.exits) } else { String::new() }
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, start: u32, end: u32, cyclomatic: u64) -> pb::FunctionMetrics {
        pb::FunctionMetrics {
            name: name.to_owned(),
            qualified_name: name.to_owned(),
            start_line: start,
            end_line: end,
            cyclomatic,
            ..Default::default()
        }
    }

    #[test]
    fn a_repeated_block_is_reported_with_both_locations() {
        let block = "total = total + price * quantity\nif total > limit:\n    raise ValueError(total)\nrecord(total)\nlog_value(total)\nnotify_user(total)\n";
        let source = format!("{block}x = 1\n{block}");
        let found = duplicated_blocks(&source);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start_line, found[0].end_line), (8, 13));
        assert!(found[0].suggestion.contains("repeat lines 1-6"));
    }

    #[test]
    fn calls_anywhere_in_nested_or_overlapping_tests_count_as_tested() {
        let source = "fn test_outer() { parse();\n fn test_inner() {\n }\n lex();\n}\nfn run() {}\nfn test_last() { check(); }\n";
        let functions = [
            function("test_outer", 1, 5, 1),
            function("test_inner", 2, 3, 1),
            function("parse", 10, 10, 4),
            function("lex", 11, 11, 4),
            function("check", 12, 12, 4),
            function("run", 6, 6, 4),
            function("test_last", 7, 7, 1),
        ];
        let suggestions = test_suggestions(&functions, source);
        let names: Vec<_> = suggestions.iter().map(|s| s.function.as_str()).collect();
        assert_eq!(names, ["run"]);
    }

    #[test]
    fn tested_and_simple_functions_are_not_suggested() {
        let source = "fn parse() {}\nfn eval() {}\nfn trivial() {}\nfn test_parse() { parse(); }\n";
        let functions = [
            function("parse", 1, 1, 8),
            function("eval", 2, 2, 5),
            function("trivial", 3, 3, 1),
            function("test_parse", 4, 4, 1),
        ];
        let suggestions = test_suggestions(&functions, source);
        let names: Vec<_> = suggestions.iter().map(|s| s.function.as_str()).collect();
        assert_eq!(names, ["eval"]);
    }

    #[test]
    fn functions_over_thresholds_become_opportunities_worst_first() {
        let mut analysis = pb::FileAnalysis {
            functions: vec![
                pb::FunctionMetrics {
                    arguments: 7,
                    ..function("wide", 1, 2, 2)
                },
                pb::FunctionMetrics {
                    max_nesting_depth: 6,
                    ..function("deep", 3, 4, 30)
                },
            ],
            ..Default::default()
        };
        add_review(&mut analysis, "");
        let kinds: Vec<_> = analysis
            .refactoring_opportunities
            .iter()
            .map(|r| r.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "high_cyclomatic_complexity",
                "deep_nesting",
                "long_parameter_list"
            ]
        );
    }
}
