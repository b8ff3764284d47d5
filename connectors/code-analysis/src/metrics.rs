//! Metrics of one source file: `big-code-analysis` computes them from the
//! tree-sitter parse; this module maps its function spaces to the proto messages and
//! adds what the library does not report (nesting depth, syntax error locations).
//!
//! Hostile input is bounded here, by construction:
//!
//! - every walk of this module over the syntax tree or the function spaces is
//!   iterative (a `TreeCursor` or an explicit stack), so no depth overflows it;
//! - the library's metric walk gets a tree only after [`tree_depth`] (iterative) has
//!   checked it against `CODE_MAX_NESTING_DEPTH`, and a tree deeper than
//!   [`INLINE_DEPTH`] is measured on a thread whose stack is sized for its depth
//!   ([`stack_bytes_for`]);
//! - qualified names are built once per level from their parent's, and both names
//!   are cut to [`MAX_NAME_BYTES`], so deep nesting cannot make the reply quadratic;
//! - [`fit_result`] keeps an encoded result under `CODE_MAX_RESULT_BYTES` and says
//!   in the result what it left out.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::LazyLock;

use big_code_analysis::tree_sitter::{Node, Tree};
use big_code_analysis::{Ast, CodeMetrics, FuncSpace, LANG, Metric, MetricsOptions, SpaceKind};
use prost::Message;
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

/// What a summary of a path reads from each file (totals of lines, functions,
/// cyclomatic and cognitive complexity; hotspots from the functions'
/// cyclomatic complexity and lines): about a third less work in the library's
/// walk than [`REPORTED`].
const SUMMARY: &[Metric] = &[Metric::Cyclomatic, Metric::Cognitive, Metric::Loc];

/// Which metrics a request needs computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Needs {
    /// Everything a file's analysis reports.
    All,
    /// Only what a path summary adds up ([`SUMMARY`]): Halstead, the
    /// maintainability index, arguments and exits stay zero.
    Summary,
}

impl Needs {
    fn metrics(self) -> &'static [Metric] {
        match self {
            Needs::All => REPORTED,
            Needs::Summary => SUMMARY,
        }
    }
}

/// At most this many syntax error locations are reported per file.
const MAX_PARSE_ERRORS: usize = 20;

/// Longest function name and qualified name reported, in bytes; longer ones are
/// cut (a name keeps its start, a qualified name its innermost end) and marked `…`.
pub const MAX_NAME_BYTES: usize = 256;

/// Trees up to this deep are measured on the calling thread; its stack (2 MiB for
/// tokio's blocking threads and the walker's threads) covers them many times over.
pub const INLINE_DEPTH: usize = 256;

/// Stack allowed per syntax-tree level. The metric walk of `big-code-analysis` 2.4
/// is iterative (trees 8000 levels deep measured within a 64 KiB stack, for every
/// construct of `tests/all/nested_code.rs`); this is room for a later version that
/// recurses again, whose frames would be a few hundred bytes per level.
pub const STACK_BYTES_PER_LEVEL: usize = 1024;

/// Stack for everything but the per-level part: the frames below the walk.
const STACK_BASE_BYTES: usize = 1024 * 1024;

/// The stack a thread needs to measure a tree `depth` levels deep.
pub fn stack_bytes_for(depth: usize) -> usize {
    STACK_BASE_BYTES.saturating_add(depth.saturating_mul(STACK_BYTES_PER_LEVEL))
}

/// Bounds of one file's analysis (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `CODE_MAX_NESTING_DEPTH`: the deepest syntax tree measured.
    pub max_nesting_depth: usize,
    /// `CODE_MAX_RESULT_BYTES`: the largest encoded result.
    pub max_result_bytes: usize,
}

impl Default for Limits {
    /// The configuration's defaults.
    fn default() -> Self {
        Self {
            max_nesting_depth: crate::config::DEFAULT_MAX_NESTING_DEPTH,
            max_result_bytes: crate::config::DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

impl Limits {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            max_nesting_depth: config.max_nesting_depth,
            max_result_bytes: config.max_result_bytes,
        }
    }
}

/// File and per-function metrics of a parsed source (the DETAILED level), or
/// [`Error::TooDeep`] when its tree is deeper than the limit.
pub fn measure(ast: &Ast, path: &str, limits: Limits) -> Result<pb::FileAnalysis, Error> {
    measure_only(ast, path, limits, Needs::All)
}

/// [`measure`], computing only the metrics `needs` names.
pub fn measure_only(
    ast: &Ast,
    path: &str,
    limits: Limits,
    needs: Needs,
) -> Result<pb::FileAnalysis, Error> {
    let tree = ast.as_tree_sitter();
    // One walk of our own for the depth limit and the nesting of blocks; the
    // library's metric walk is the other.
    let (depth, nesting) = shape(ast.language(), tree, limits.max_nesting_depth);
    if depth > limits.max_nesting_depth {
        return Err(Error::TooDeep {
            what: String::new(),
            limit: limits.max_nesting_depth,
        });
    }
    let options = MetricsOptions::default().with_only(needs.metrics());
    let space = if depth <= INLINE_DEPTH {
        ast.metrics(options)
    } else {
        on_stack_of(stack_bytes_for(depth), || ast.metrics(options))?
    }
    .map_err(|e| Error::Internal(format!("metrics failed: {e}")))?;
    let functions = collect_functions(&space, &nesting.per_function);

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
    let mut analysis = pb::FileAnalysis {
        path: path.to_owned(),
        language: ast.language().name().to_owned(),
        metrics: Some(metrics),
        functions,
        parse_errors: syntax_errors(tree, ast.source()),
        refactoring_opportunities: Vec::new(),
        test_suggestions: Vec::new(),
        from_cache: false,
        truncated: false,
        truncation: String::new(),
    };
    fit_result(&mut analysis, limits.max_result_bytes);
    Ok(analysis)
}

/// Runs `work` on a new thread with a `bytes` stack and waits for it.
fn on_stack_of<T: Send>(bytes: usize, work: impl FnOnce() -> T + Send) -> Result<T, Error> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("deep-metrics".to_owned())
            .stack_size(bytes)
            .spawn_scoped(scope, work)
            .map_err(|e| {
                Error::Internal(format!(
                    "cannot start a thread with a {bytes}-byte stack for deeply nested code: {e}"
                ))
            })?
            .join()
            .map_err(|_| Error::Internal("the metrics of deeply nested code failed".to_owned()))
    })
}

/// The depth of the deepest node (the root is 0), walking with a cursor; the walk
/// stops as soon as it passes `stop_above`, so the answer is exact up to there.
pub fn tree_depth(tree: &Tree, stop_above: usize) -> usize {
    let mut cursor = tree.walk();
    let (mut depth, mut deepest) = (0usize, 0usize);
    loop {
        if cursor.goto_first_child() {
            depth += 1;
            deepest = deepest.max(depth);
            if deepest > stop_above {
                return deepest;
            }
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return deepest;
            }
            depth -= 1;
        }
    }
}

/// `name` cut to at most [`MAX_NAME_BYTES`] at a character boundary, keeping its
/// start (`keep_end` false) or its end, with `…` where it was cut.
fn bounded_name(name: &str, keep_end: bool) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let room = MAX_NAME_BYTES - '…'.len_utf8();
    if keep_end {
        let mut cut = name.len() - room;
        while !name.is_char_boundary(cut) {
            cut += 1;
        }
        format!("…{}", &name[cut..])
    } else {
        let mut cut = room;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &name[..cut])
    }
}

/// Every function space, in source order, with its name qualified by the enclosing
/// spaces. An explicit stack: the spaces nest as deep as the code.
fn collect_functions(root: &FuncSpace, nesting: &HashMap<usize, u32>) -> Vec<pb::FunctionMetrics> {
    let mut out = Vec::new();
    // (space, qualified name of the space enclosing it; empty at the top)
    let mut stack: Vec<(&FuncSpace, Rc<str>)> = vec![(root, Rc::from(""))];
    while let Some((space, scope)) = stack.pop() {
        let inner_scope = if space.kind == SpaceKind::Unit {
            scope
        } else {
            let name = bounded_name(
                space
                    .name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("<anonymous>"),
                false,
            );
            let qualified: Rc<str> = if scope.is_empty() {
                Rc::from(name.as_str())
            } else {
                Rc::from(bounded_name(&format!("{scope}::{name}"), true))
            };
            if space.kind == SpaceKind::Function {
                out.push(function(space, name, qualified.to_string(), nesting));
            }
            qualified
        };
        // Reversed, so the stack yields the children in source order.
        stack.extend(
            space
                .spaces
                .iter()
                .rev()
                .map(|child| (child, Rc::clone(&inner_scope))),
        );
    }
    out
}

/// Bytes a message adds to a repeated field (tag numbers below 16: a one-byte key).
fn field_len<M: Message>(message: &M) -> usize {
    let len = message.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// Room kept for the truncation note itself.
const NOTE_RESERVE: usize = 512;

/// Keeps `analysis` under `max_bytes` encoded: the file totals, parse errors and
/// test suggestions always stay; functions, then refactoring opportunities, are
/// kept in order while they fit. What was left out is said in `truncated` and
/// `truncation`. Applying it again after adding entries keeps earlier notes.
pub fn fit_result(analysis: &mut pb::FileAnalysis, max_bytes: usize) {
    if analysis.encoded_len() <= max_bytes {
        return;
    }
    let functions = std::mem::take(&mut analysis.functions);
    let opportunities = std::mem::take(&mut analysis.refactoring_opportunities);
    let mut budget = max_bytes
        .saturating_sub(analysis.encoded_len())
        .saturating_sub(NOTE_RESERVE);
    let mut notes = Vec::new();
    let listed = functions.len();
    analysis.functions = keep_while_fits(functions, &mut budget);
    if analysis.functions.len() < listed {
        // The file totals count every function, listed or not.
        let total = analysis
            .metrics
            .as_ref()
            .map_or(listed, |m| (m.functions as usize).max(listed));
        notes.push(format!(
            "{} of {total} functions listed",
            analysis.functions.len()
        ));
    }
    let before = opportunities.len();
    analysis.refactoring_opportunities = keep_while_fits(opportunities, &mut budget);
    if analysis.refactoring_opportunities.len() < before {
        notes.push(format!(
            "{} of {before} refactoring opportunities listed",
            analysis.refactoring_opportunities.len()
        ));
    }
    if notes.is_empty() {
        return;
    }
    let note = format!(
        "{}, to keep the reply under {max_bytes} bytes (CODE_MAX_RESULT_BYTES); analyse a smaller part of the file for the rest",
        notes.join(" and ")
    );
    analysis.truncated = true;
    analysis.truncation = if analysis.truncation.is_empty() {
        note
    } else {
        format!("{}; {note}", analysis.truncation)
    };
}

/// The leading items whose encoded size fits in `budget`, which shrinks by it.
fn keep_while_fits<M: Message>(items: Vec<M>, budget: &mut usize) -> Vec<M> {
    let mut kept = Vec::new();
    for item in items {
        let len = field_len(&item);
        if len > *budget {
            break;
        }
        *budget -= len;
        kept.push(item);
    }
    kept
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

/// `else if` continues a chain rather than nesting deeper: `node` is the
/// `alternative` of an `if` of its own kind, or sits in an `else_clause`.
fn is_else_if(node: Node<'_>, parent: Option<Node<'_>>, field: Option<&str>) -> bool {
    let Some(parent) = parent else {
        return false;
    };
    parent.kind() == "else_clause"
        || (parent.kind_id() == node.kind_id() && field == Some("alternative"))
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

/// The depth of the deepest node (as [`tree_depth`]: exact up to `stop_above`,
/// the walk stops just past it) and the nesting of control-flow blocks, in one
/// walk with a cursor: each node is visited once, and what its ancestors set
/// (the depth inside the current function, that function's start line) is
/// kept per level on an explicit stack.
fn shape(lang: LANG, tree: &Tree, stop_above: usize) -> (usize, Nesting) {
    let mut nesting = Nesting {
        per_function: HashMap::new(),
        file_max: 0,
    };
    let roles = ROLES.get(&lang).map_or(&[][..], Vec::as_slice);
    let mut cursor = tree.walk();
    // Per level of the current path: (node, nesting depth inside its function,
    // start line of that function) as its children inherit them.
    let mut path: Vec<(Node<'_>, u32, usize)> = Vec::new();
    let mut deepest = 0usize;
    loop {
        let node = cursor.node();
        let (parent, mut depth, mut function_line) =
            path.last().map_or((None, 0, 0), |&(parent, depth, line)| {
                (Some(parent), depth, line)
            });
        match roles
            .get(usize::from(node.kind_id()))
            .copied()
            .unwrap_or(Role::Other)
        {
            Role::Function => {
                depth = 0;
                function_line = node.start_position().row + 1;
                nesting.per_function.entry(function_line).or_insert(0);
            }
            Role::Nesting if !is_else_if(node, parent, cursor.field_name()) => {
                depth += 1;
                nesting.file_max = nesting.file_max.max(depth);
                if function_line > 0 {
                    let entry = nesting.per_function.entry(function_line).or_insert(0);
                    *entry = (*entry).max(depth);
                }
            }
            _ => {}
        }
        if cursor.goto_first_child() {
            path.push((node, depth, function_line));
            deepest = deepest.max(path.len());
            if deepest > stop_above {
                return (deepest, nesting);
            }
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return (deepest, nesting);
            }
            path.pop();
        }
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
        measure(&ast, "t", Limits::default()).expect("metrics")
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

    #[test]
    fn tree_depth_counts_levels_and_stops_just_past_the_limit() {
        let parse = |code: &str| {
            Ast::parse(Source::new(LANG::Javascript, code.as_bytes())).expect("language enabled")
        };
        let shallow = parse("x;");
        // program > expression_statement > identifier
        assert_eq!(tree_depth(shallow.as_tree_sitter(), usize::MAX), 2);
        let deep = parse(&format!("x = {}1{};", "[".repeat(5000), "]".repeat(5000)));
        let full = tree_depth(deep.as_tree_sitter(), usize::MAX);
        assert!(full > 5000, "{full}");
        assert_eq!(tree_depth(deep.as_tree_sitter(), 100), 101);
    }

    #[test]
    fn a_tree_over_the_limit_is_refused_with_its_depth() {
        let code = format!("x = {}1{}", "(".repeat(50), ")".repeat(50));
        let ast = Ast::parse(Source::new(LANG::Python, code.as_bytes())).expect("language enabled");
        let limits = Limits {
            max_nesting_depth: 20,
            ..Limits::default()
        };
        match measure(&ast, "t", limits) {
            Err(Error::TooDeep { limit, .. }) => assert_eq!(limit, 20),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_names_are_cut_at_character_boundaries_with_a_mark() {
        let name = "é".repeat(MAX_NAME_BYTES);
        let head = bounded_name(&name, false);
        let tail = bounded_name(&format!("a::{name}"), true);
        for cut in [&head, &tail] {
            assert!(cut.len() <= MAX_NAME_BYTES, "{}", cut.len());
        }
        assert!(head.ends_with('…') && head.starts_with('é'));
        assert!(tail.starts_with('…') && tail.ends_with('é'));
        assert_eq!(bounded_name("short", true), "short");
    }

    #[test]
    fn fitting_keeps_the_first_entries_and_says_what_it_left_out_once() {
        let function = |i: usize| pb::FunctionMetrics {
            name: format!("f{i}"),
            qualified_name: format!("f{i}"),
            ..Default::default()
        };
        let mut analysis = pb::FileAnalysis {
            metrics: Some(pb::FileMetrics {
                functions: 1000,
                ..Default::default()
            }),
            functions: (0..1000).map(function).collect(),
            ..Default::default()
        };
        fit_result(&mut analysis, 4096);
        assert!(analysis.encoded_len() <= 4096);
        let listed = analysis.functions.len();
        assert!(listed > 100 && listed < 1000, "{listed}");
        assert_eq!(
            analysis.functions[listed - 1].name,
            format!("f{}", listed - 1)
        );
        assert!(analysis.truncated);
        assert!(
            analysis
                .truncation
                .starts_with(&format!("{listed} of 1000 functions listed, to keep the reply under 4096 bytes (CODE_MAX_RESULT_BYTES)")),
            "{}",
            analysis.truncation
        );
        let note = analysis.truncation.clone();
        fit_result(&mut analysis, 4096);
        assert_eq!(analysis.truncation, note, "fitting again adds nothing");
        assert_eq!(analysis.functions.len(), listed);
    }
}
