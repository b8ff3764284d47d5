//! Metrics of one source file: `big-code-analysis` computes them from the
//! tree-sitter parse; this module maps its function spaces to the proto messages and
//! adds what the library does not report (nesting depth, syntax error locations).

use std::collections::HashMap;
use std::sync::LazyLock;

use big_code_analysis::tree_sitter::{Node, Tree};
use big_code_analysis::{Ast, CodeMetrics, FuncSpace, LANG, Metric, MetricsOptions, SpaceKind};
use switchboard_proto::code_analysis::v1 as pb;

use crate::error::Error;

/// The metric families the proto reports; the rest (ABC, WMC, NPM, NPA, tokens,
/// NOM) are not computed.
const REPORTED: &[Metric] = &[
    Metric::Cyclomatic,
    Metric::Cognitive,
    Metric::Halstead,
    Metric::Loc,
    Metric::Nargs,
    Metric::Nexits,
    Metric::Mi,
];

/// At most this many syntax error locations are reported per file.
const MAX_PARSE_ERRORS: usize = 20;

/// File and per-function metrics of a parsed source (the DETAILED level).
pub fn measure(ast: &Ast, path: &str) -> Result<pb::FileAnalysis, Error> {
    let space = ast
        .metrics(MetricsOptions::default().with_only(REPORTED))
        .map_err(|e| Error::Internal(format!("metrics failed: {e}")))?;
    let tree = ast.as_tree_sitter();
    let nesting = nesting_depths(ast.language(), tree);

    let mut functions = Vec::new();
    collect_functions(
        &space,
        &mut Vec::new(),
        &nesting.per_function,
        &mut functions,
    );

    let m = &space.metrics;
    let metrics = pb::FileMetrics {
        lines: Some(lines(m)),
        functions: u32::try_from(functions.len()).unwrap_or(u32::MAX),
        cyclomatic_total: m.cyclomatic.cyclomatic_sum(),
        cyclomatic_max: functions.iter().map(|f| f.cyclomatic).max().unwrap_or(0),
        // The mean of the functions' own values (the library's average also folds in
        // the top level's base of 1).
        cyclomatic_average: if functions.is_empty() {
            0.0
        } else {
            functions.iter().map(|f| f.cyclomatic as f64).sum::<f64>() / functions.len() as f64
        },
        cyclomatic_modified_total: m.cyclomatic.cyclomatic_modified_sum(),
        cognitive_total: m.cognitive.cognitive_sum(),
        cognitive_max: functions.iter().map(|f| f.cognitive).max().unwrap_or(0),
        halstead: Some(halstead(m)),
        maintainability_index: finite(m.mi.visual_studio()),
        max_nesting_depth: nesting.file_max,
    };
    Ok(pb::FileAnalysis {
        path: path.to_owned(),
        language: ast.language().name().to_owned(),
        metrics: Some(metrics),
        functions,
        parse_errors: syntax_errors(tree, ast.source()),
        refactoring_opportunities: Vec::new(),
        test_suggestions: Vec::new(),
        from_cache: false,
    })
}

fn collect_functions(
    space: &FuncSpace,
    scope: &mut Vec<String>,
    nesting: &HashMap<usize, u32>,
    out: &mut Vec<pb::FunctionMetrics>,
) {
    let is_unit = space.kind == SpaceKind::Unit;
    let name = space
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "<anonymous>".to_owned());
    if space.kind == SpaceKind::Function {
        let qualified = scope
            .iter()
            .map(String::as_str)
            .chain([name.as_str()])
            .collect::<Vec<_>>()
            .join("::");
        out.push(function(space, name.clone(), qualified, nesting));
    }
    if !is_unit {
        scope.push(name);
    }
    for child in &space.spaces {
        collect_functions(child, scope, nesting, out);
    }
    if !is_unit {
        scope.pop();
    }
}

fn function(
    space: &FuncSpace,
    name: String,
    qualified_name: String,
    nesting: &HashMap<usize, u32>,
) -> pb::FunctionMetrics {
    let m = &space.metrics;
    pb::FunctionMetrics {
        name,
        qualified_name,
        start_line: line_u32(space.start_line),
        end_line: line_u32(space.end_line),
        cyclomatic: m.cyclomatic.cyclomatic(),
        cyclomatic_modified: m.cyclomatic.cyclomatic_modified(),
        cognitive: m.cognitive.cognitive(),
        arguments: m.nargs.own_args(),
        exits: m.nexits.nexits(),
        max_nesting_depth: nesting.get(&space.start_line).copied().unwrap_or(0),
        lines: Some(lines(m)),
        halstead: Some(halstead(m)),
        maintainability_index: finite(m.mi.visual_studio()),
    }
}

fn lines(m: &CodeMetrics) -> pb::LineCounts {
    pb::LineCounts {
        sloc: m.loc.sloc(),
        ploc: m.loc.ploc(),
        lloc: m.loc.lloc(),
        cloc: m.loc.cloc(),
        blank: m.loc.blank(),
    }
}

fn halstead(m: &CodeMetrics) -> pb::Halstead {
    let h = &m.halstead;
    pb::Halstead {
        length: h.length(),
        vocabulary: h.vocabulary(),
        volume: finite(h.volume()),
        difficulty: finite(h.difficulty()),
        effort: finite(h.effort()),
        bugs: finite(h.bugs()),
    }
}

/// Empty units give NaN ratios in the library; JSON has no NaN.
fn finite(value: f64) -> f64 {
    if value.is_finite() { value } else { 0.0 }
}

fn line_u32(line: usize) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

/// Node kinds that open a nested control-flow block, across the grammars.
const NESTING_KINDS: &[&str] = &[
    "if_statement",
    "if_expression",
    "for_statement",
    "for_in_statement",
    "for_expression",
    "for_range_loop",
    "enhanced_for_statement",
    "while_statement",
    "while_expression",
    "loop_expression",
    "do_statement",
    "switch_statement",
    "switch_expression",
    "expression_switch_statement",
    "type_switch_statement",
    "select_statement",
    "match_expression",
    "match_statement",
    "try_statement",
    "try_with_resources_statement",
    "with_statement",
];

/// Node kinds that start a new function (nesting restarts at 0 inside).
const FUNCTION_KINDS: &[&str] = &[
    "function_definition",
    "function_declaration",
    "function_item",
    "method_declaration",
    "method_definition",
    "constructor_declaration",
    "arrow_function",
    "function_expression",
    "function",
    "generator_function",
    "generator_function_declaration",
    "lambda",
    "lambda_expression",
    "closure_expression",
    "func_literal",
];

struct Nesting {
    /// Deepest nesting per function, keyed by the function's 1-based start line.
    per_function: HashMap<usize, u32>,
    file_max: u32,
}

/// `else if` continues a chain rather than nesting deeper.
fn is_else_if(node: Node<'_>) -> bool {
    let Some(parent) = node.parent() else {
        return false;
    };
    parent.kind() == "else_clause"
        || (parent.kind() == node.kind()
            && parent
                .child_by_field_name("alternative")
                .is_some_and(|alt| alt.id() == node.id()))
}

/// What a node kind means for nesting, indexed by kind id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    Function,
    Nesting,
}

/// Per language, the role of every node kind id: comparing ids per node is much
/// cheaper than comparing kind names.
static ROLES: LazyLock<HashMap<LANG, Vec<Role>>> = LazyLock::new(|| {
    crate::languages::SUPPORTED
        .iter()
        .filter_map(|&lang| {
            let grammar = lang.tree_sitter_language().ok()?;
            let roles = (0..grammar.node_kind_count())
                .map(|id| {
                    let id = u16::try_from(id).unwrap_or(u16::MAX);
                    match grammar.node_kind_for_id(id) {
                        Some(kind)
                            if grammar.node_kind_is_named(id) && FUNCTION_KINDS.contains(&kind) =>
                        {
                            Role::Function
                        }
                        Some(kind)
                            if grammar.node_kind_is_named(id) && NESTING_KINDS.contains(&kind) =>
                        {
                            Role::Nesting
                        }
                        _ => Role::Other,
                    }
                })
                .collect();
            Some((lang, roles))
        })
        .collect()
});

fn nesting_depths(lang: LANG, tree: &Tree) -> Nesting {
    let mut per_function: HashMap<usize, u32> = HashMap::new();
    let mut file_max = 0;
    let Some(roles) = ROLES.get(&lang) else {
        return Nesting {
            per_function,
            file_max,
        };
    };
    // (node, depth inside the current function, start line of that function)
    let mut stack = vec![(tree.root_node(), 0u32, 0usize)];
    let mut cursor = tree.walk();
    while let Some((node, depth, function_line)) = stack.pop() {
        let (mut depth, mut function_line) = (depth, function_line);
        match roles
            .get(usize::from(node.kind_id()))
            .copied()
            .unwrap_or(Role::Other)
        {
            Role::Function => {
                depth = 0;
                function_line = node.start_position().row + 1;
                per_function.entry(function_line).or_insert(0);
            }
            Role::Nesting if !is_else_if(node) => {
                depth += 1;
                file_max = file_max.max(depth);
                if function_line > 0 {
                    let entry = per_function.entry(function_line).or_insert(0);
                    *entry = (*entry).max(depth);
                }
            }
            _ => {}
        }
        if node.child_count() > 0 {
            stack.extend(
                node.children(&mut cursor)
                    .map(|child| (child, depth, function_line)),
            );
        }
    }
    Nesting {
        per_function,
        file_max,
    }
}

/// Where the parser gave up (ERROR nodes) or inserted a missing token.
fn syntax_errors(tree: &Tree, source: &[u8]) -> Vec<pb::SyntaxError> {
    let mut errors = Vec::new();
    if !tree.root_node().has_error() {
        return errors;
    }
    let mut stack = vec![tree.root_node()];
    let mut cursor = tree.walk();
    while let Some(node) = stack.pop() {
        if errors.len() >= MAX_PARSE_ERRORS {
            break;
        }
        if node.is_error() || node.is_missing() {
            let start = node.start_position();
            let message = if node.is_missing() {
                format!("missing `{}`", node.kind())
            } else {
                let text = source
                    .get(node.start_byte()..node.end_byte())
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let short: String = text.chars().take(40).collect();
                format!("syntax error near `{short}`")
            };
            errors.push(pb::SyntaxError {
                line: line_u32(start.row + 1),
                column: line_u32(start.column + 1),
                message,
            });
            continue;
        }
        // Children in reverse so the stack yields them in source order.
        let children: Vec<Node<'_>> = node
            .children(&mut cursor)
            .filter(|c| c.has_error() || c.is_missing())
            .collect();
        stack.extend(children.into_iter().rev());
    }
    errors
}

#[cfg(test)]
mod tests {
    use big_code_analysis::{LANG, Source};

    use super::*;

    fn analyse(lang: LANG, code: &str) -> pb::FileAnalysis {
        let ast = Ast::parse(Source::new(lang, code.as_bytes())).expect("language enabled");
        measure(&ast, "t").expect("metrics")
    }

    #[test]
    fn nesting_counts_blocks_but_not_else_if_chains() {
        let code = "int f(int a) {\n  if (a) {\n    for (;;) {\n      while (a) { a--; }\n    }\n  } else if (a > 2) {\n    return 1;\n  } else if (a > 3) {\n    return 2;\n  }\n  return 0;\n}\n";
        let result = analyse(LANG::C, code);
        assert_eq!(result.functions.len(), 1);
        assert_eq!(result.functions[0].max_nesting_depth, 3);
        assert_eq!(
            result.metrics.as_ref().map(|m| m.max_nesting_depth),
            Some(3)
        );
    }

    #[test]
    fn functions_are_qualified_by_their_class() {
        let code = "class Greeter:\n    def hello(self, name):\n        return name\n";
        let result = analyse(LANG::Python, code);
        let names: Vec<_> = result
            .functions
            .iter()
            .map(|f| f.qualified_name.as_str())
            .collect();
        assert_eq!(names, ["Greeter::hello"]);
        assert_eq!(result.functions[0].start_line, 2);
        assert_eq!(result.functions[0].end_line, 3);
    }

    #[test]
    fn syntax_errors_are_located_and_the_rest_still_measured() {
        let code = "def ok(a):\n    return a\n\ndef broken(:\n    pass\n";
        let result = analyse(LANG::Python, code);
        assert!(!result.parse_errors.is_empty());
        assert_eq!(result.parse_errors[0].line, 4, "{:?}", result.parse_errors);
        assert!(result.functions.iter().any(|f| f.name == "ok"));
    }

    #[test]
    fn empty_source_has_zero_metrics_not_nan() {
        let result = analyse(LANG::Rust, "");
        let metrics = result.metrics.expect("metrics");
        assert_eq!(metrics.functions, 0);
        assert!(metrics.maintainability_index.is_finite());
    }
}
