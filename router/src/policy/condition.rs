//! A rule's `when`: a CEL expression over `jwt` (all claims), `tool` (`name`,
//! `connector`) and `args` (the call's arguments), checked once at start-up and
//! evaluated per call.
//!
//! The `cel` crate has no type checker, so the start-up check does what can be
//! done without one, by construction rather than by example: the expression
//! must parse (with a bounded nesting depth), its free variables must be among
//! `jwt`, `tool`, `args` (variables bound by macros such as `exists(g, …)` are
//! tracked, walking the tree with an explicit stack), every function it calls
//! must be declared, struct literals and macros nested inside another macro's
//! loop (a cost quadratic in client-chosen lists) are refused, and a dry run on empty
//! claims and arguments must not answer a non-boolean value or an undeclared
//! reference.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::{Context, Env, ExecutionError, Program, Value};

/// Longest `when` accepted, in bytes.
pub const MAX_WHEN_BYTES: usize = 4096;
/// Deepest expression tree accepted in a `when` (`a.b.c` is 3 deep).
pub const MAX_WHEN_DEPTH: u16 = 32;
/// Stack of the thread that parses and checks a `when`.
const CHECK_STACK_BYTES: usize = 256 * 1024 * 1024;

/// The variables a `when` may use.
pub const VARIABLES: [&str; 3] = ["jwt", "tool", "args"];

/// Type names usable as identifiers (`type(x) == string`).
const TYPE_NAMES: [&str; 11] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
    "dyn",
];

/// The evaluation environment: the CEL standard library, nothing else.
pub fn environment() -> Arc<Env> {
    Arc::new(Env::stdlib())
}

/// A checked `when`.
#[derive(Debug)]
pub struct Condition {
    source: String,
    program: Program,
    uses_args: bool,
    /// The variables it reads (`jwt`, `tool`, `args`): only those are bound.
    reads: Vec<String>,
    /// The top-level `&&` operands that do not read `args`: what a listing,
    /// which has no arguments, can decide.
    listing: Vec<IdedExpr>,
    error_logged: AtomicBool,
}

/// The result of evaluating a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It holds.
    True,
    /// It does not hold.
    False,
    /// It failed (a missing claim, a type mismatch): counts as false.
    Error(String),
}

impl Condition {
    /// Parses and checks `source`; the error says why in a sentence.
    ///
    /// The `cel` parser recurses per nesting level without always enforcing
    /// its own depth limit, so the check runs on a thread with a stack
    /// (256 MiB, reserved, not committed) that the longest accepted expression cannot
    /// exhaust; the tree it accepts is at most [`MAX_WHEN_DEPTH`] deep, so
    /// evaluating and dropping it on any thread is safe.
    pub fn compile(env: &Arc<Env>, source: &str) -> Result<Self, String> {
        if source.len() > MAX_WHEN_BYTES {
            return Err(format!("`when` is longer than {MAX_WHEN_BYTES} bytes"));
        }
        let (env, source) = (Arc::clone(env), source.to_owned());
        std::thread::Builder::new()
            .name("policy-check".into())
            .stack_size(CHECK_STACK_BYTES)
            .spawn(move || Self::compile_here(&env, &source))
            .map_err(|e| format!("cannot start checking `when`: {e}"))?
            .join()
            .map_err(|_| "checking `when` failed".to_owned())?
    }

    fn compile_here(env: &Arc<Env>, source: &str) -> Result<Self, String> {
        let parser = env.parser().max_recursion_depth(MAX_WHEN_DEPTH);
        let expression = parser
            .parse(source)
            .map_err(|e| format!("`when` does not parse: {}", one_line(&e.to_string())))?;
        let walk = walk(&expression)?;
        check_references(env, &walk)?;
        let program = env
            .compile(source)
            .map_err(|e| format!("`when` does not parse: {}", one_line(&e.to_string())))?;
        let mut listing = Vec::new();
        for conjunct in conjuncts(&expression) {
            if !walk_reads_args(conjunct)? {
                listing.push(conjunct.clone());
            }
        }
        let condition = Self {
            source: source.to_owned(),
            program,
            uses_args: walk.free.iter().any(|v| v == "args"),
            reads: {
                let mut reads = walk.free.clone();
                reads.sort_unstable();
                reads.dedup();
                reads
            },
            listing,
            error_logged: AtomicBool::new(false),
        };
        condition.dry_run(env)?;
        Ok(condition)
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether it reads the variable `name` (`jwt`, `tool` or `args`).
    pub fn reads(&self, name: &str) -> bool {
        self.reads.iter().any(|v| v == name)
    }

    /// Whether it reads the call's arguments (then a listing cannot decide it).
    pub fn uses_args(&self) -> bool {
        self.uses_args
    }

    /// Evaluates what a listing can know: the top-level `&&` operands that do
    /// not read `args` (all of `when` when it does not read `args`). `False`
    /// means no arguments could make `when` hold.
    pub fn evaluate_for_listing(&self, context: &Context<'_, '_>) -> Outcome {
        for conjunct in &self.listing {
            match context.resolve(conjunct) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => return Outcome::False,
                Ok(other) => {
                    return Outcome::Error(format!(
                        "evaluated to a {}, not a bool",
                        other.type_of()
                    ));
                }
                Err(e) => return Outcome::Error(one_line(&e.to_string())),
            }
        }
        Outcome::True
    }

    /// Evaluates against bound variables.
    pub fn evaluate(&self, context: &Context<'_, '_>) -> Outcome {
        match self.program.execute(context) {
            Ok(Value::Bool(true)) => Outcome::True,
            Ok(Value::Bool(false)) => Outcome::False,
            Ok(other) => Outcome::Error(format!("evaluated to a {}, not a bool", other.type_of())),
            Err(e) => Outcome::Error(one_line(&e.to_string())),
        }
    }

    /// Records that this condition failed; true the first time only (log once).
    pub fn first_failure(&self) -> bool {
        !self.error_logged.swap(true, Ordering::Relaxed)
    }

    fn dry_run(&self, env: &Arc<Env>) -> Result<(), String> {
        let mut context = Context::with_env(Arc::clone(env));
        let empty = || cel::to_value(serde_json::json!({})).unwrap_or(Value::Null);
        context.add_variable_from_value("jwt", empty());
        context.add_variable_from_value(
            "tool",
            cel::to_value(serde_json::json!({"name": "", "connector": ""}))
                .unwrap_or_else(|_| empty()),
        );
        context.add_variable_from_value("args", empty());
        match self.program.execute(&context) {
            Ok(Value::Bool(_)) => Ok(()),
            Ok(other) => Err(format!(
                "`when` must be a condition, but it is a {}",
                other.type_of()
            )),
            Err(ExecutionError::UndeclaredReference(name)) => {
                Err(format!("`when` uses `{name}`, which is not declared"))
            }
            // A missing claim or key on empty input is what `when` is for.
            Err(_) => Ok(()),
        }
    }
}

/// Keeps the first line of a parser message (its caret diagram is for terminals).
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}

/// Operators the parser produces as calls (`_==_`, `@in`, `!_`, `-_`, …).
fn is_operator(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('@') || name.starts_with('!') || name.starts_with('-')
}

/// Whether the standard library declares `name` (a context refuses to add a
/// function under a name the environment already declares).
fn is_declared(env: &Arc<Env>, name: &str) -> bool {
    let mut probe = Context::with_env(Arc::clone(env));
    probe.add_function(name, || false).is_err()
}

fn check_references(env: &Arc<Env>, walk: &Walk) -> Result<(), String> {
    for name in &walk.free {
        if !VARIABLES.contains(&name.as_str()) && !TYPE_NAMES.contains(&name.as_str()) {
            return Err(format!(
                "`when` uses the unknown variable `{name}` (known: jwt, tool, args)"
            ));
        }
    }
    for name in &walk.functions {
        if !is_operator(name) && !is_declared(env, name) {
            return Err(format!("`when` calls the unknown function `{name}`"));
        }
    }
    Ok(())
}

/// The operands of the top-level `&&` chain (the whole expression when it is no `&&`).
fn conjuncts(root: &IdedExpr) -> Vec<&IdedExpr> {
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match &node.expr {
            Expr::Call(call) if call.func_name == "_&&_" && call.target.is_none() => {
                stack.extend(call.args.iter().rev());
            }
            _ => found.push(node),
        }
    }
    found
}

/// Whether a subtree reads the `args` variable.
fn walk_reads_args(node: &IdedExpr) -> Result<bool, String> {
    Ok(walk(node)?.free.iter().any(|v| v == "args"))
}

/// The children of a node.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| &**t)
            .chain(call.args.iter())
            .collect(),
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Select(select) => vec![&*select.operand],
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// What a walk over the expression tree found.
struct Walk {
    /// Identifiers not bound by an enclosing comprehension.
    free: Vec<String>,
    /// Functions called.
    functions: Vec<String>,
}

/// Walks the tree with an explicit stack: collects free identifiers (tracking
/// the variables macros bind) and called functions; refuses struct literals
/// and trees deeper than [`MAX_WHEN_DEPTH`].
fn walk(root: &IdedExpr) -> Result<Walk, String> {
    let mut found = Walk {
        free: Vec::new(),
        functions: Vec::new(),
    };
    // Each node with its depth, the names bound around it, and whether it
    // runs once per element of an enclosing macro's list.
    let mut stack: Vec<(&IdedExpr, u16, Vec<&str>, bool)> = vec![(root, 1, Vec::new(), false)];
    while let Some((node, depth, bound, in_loop)) = stack.pop() {
        if depth > MAX_WHEN_DEPTH {
            return Err(format!(
                "`when` is nested more than {MAX_WHEN_DEPTH} levels deep"
            ));
        }
        match &node.expr {
            Expr::Ident(name) => {
                if !bound.contains(&name.as_str()) && !name.starts_with('@') {
                    found.free.push(name.clone());
                }
            }
            Expr::Struct(s) => {
                return Err(format!(
                    "`when` builds a `{}` message, which policies cannot use",
                    s.type_name
                ));
            }
            Expr::Comprehension(c) => {
                // A macro inside another's loop costs the product of both lists'
                // sizes, and a client chooses `args`: one level only.
                if in_loop {
                    return Err("`when` nests a macro (all, exists, exists_one, map, filter) inside another; its cost would grow with the product of list sizes a client chooses".into());
                }
                // The range and the initial value are outside the loop's variables.
                for outside in [&c.iter_range, &c.accu_init] {
                    stack.push((outside, depth + 1, bound.clone(), in_loop));
                }
                let mut inner = bound.clone();
                inner.push(&c.iter_var);
                if let Some(v2) = &c.iter_var2 {
                    inner.push(v2);
                }
                inner.push(&c.accu_var);
                for child in [&c.loop_cond, &c.loop_step, &c.result] {
                    stack.push((child, depth + 1, inner.clone(), true));
                }
            }
            other => {
                if let Expr::Call(call) = other {
                    found.functions.push(call.func_name.clone());
                }
                for child in children(node) {
                    stack.push((child, depth + 1, bound.clone(), in_loop));
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(source: &str) -> Result<Condition, String> {
        Condition::compile(&environment(), source)
    }

    #[test]
    fn conditions_over_the_three_variables_compile() {
        for ok in [
            "\"analysts\" in jwt.groups",
            "tool.connector == 'database' && tool.name.startsWith('database_')",
            "has(jwt.email) && jwt.email.endsWith('@example.com')",
            "jwt.groups.exists(g, g == 'ops')",
            "jwt.groups.all(g, g.matches('^[a-z]+$'))",
            "size(args) < 3 || args.limit <= 100",
            "type(jwt.sub) == string",
            "true",
            "[1, 2].map(x, x * 2).exists(y, y == 4)",
        ] {
            let c = compile(ok);
            assert!(c.is_ok(), "{ok}: {:?}", c.err());
        }
    }

    #[test]
    fn only_conditions_reading_args_say_so() {
        assert!(compile("args.limit < 10").expect("ok").uses_args());
        assert!(!compile("'a' in jwt.groups").expect("ok").uses_args());
        // A macro variable named `args` is no reference to the call's arguments.
        assert!(
            !compile("jwt.groups.exists(args, args == 'a')")
                .expect("ok")
                .uses_args()
        );
    }

    #[test]
    fn a_listing_decides_the_conjuncts_that_do_not_read_args() {
        let c = compile("args.limit <= 100 && 'analysts' in jwt.groups && tool.connector == 'c'")
            .expect("ok");
        let analyst = context_with(serde_json::json!({"groups": ["analysts"]}));
        let other = context_with(serde_json::json!({"groups": ["ops"]}));
        assert_eq!(c.evaluate_for_listing(&analyst), Outcome::True);
        assert_eq!(c.evaluate_for_listing(&other), Outcome::False);
        assert!(matches!(
            c.evaluate_for_listing(&context_with(serde_json::json!({}))),
            Outcome::Error(_)
        ));
        // Under `||` nothing can be split off: a listing cannot rule it out.
        let either = compile("args.limit <= 100 || 'analysts' in jwt.groups").expect("ok");
        assert_eq!(either.evaluate_for_listing(&other), Outcome::True);
        // Without args the listing decides all of it.
        let plain = compile("'analysts' in jwt.groups").expect("ok");
        assert_eq!(plain.evaluate_for_listing(&other), Outcome::False);
        assert_eq!(plain.evaluate_for_listing(&analyst), Outcome::True);
    }

    #[test]
    fn syntax_errors_are_refused_with_the_reason() {
        let err = compile("jwt.groups.exists(").expect_err("refused");
        assert!(err.starts_with("`when` does not parse"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn unknown_variables_and_functions_are_refused_by_name() {
        let err = compile("user.admin == true").expect_err("refused");
        assert_eq!(
            err,
            "`when` uses the unknown variable `user` (known: jwt, tool, args)"
        );
        let err = compile("jwt.groups.exists(g, h == 'x')").expect_err("refused");
        assert!(err.contains("`h`"), "{err}");
        let err = compile("isAdmin(jwt.sub)").expect_err("refused");
        assert_eq!(err, "`when` calls the unknown function `isAdmin`");
        let err = compile("jwt.sub.frobnicate()").expect_err("refused");
        assert!(err.contains("frobnicate"), "{err}");
    }

    #[test]
    fn nested_macros_are_refused_and_chained_ones_accepted() {
        let err = compile("args.items.all(x, args.items.all(y, x == y))").expect_err("refused");
        assert!(err.contains("nests a macro"), "{err}");
        assert!(compile("jwt.groups.exists(g, args.ids.exists(i, i == g))").is_err());
        assert!(compile("args.ids.map(i, i * 2).exists(j, j == 4)").is_ok());
        assert!(compile("jwt.groups.exists(g, g == 'a') && args.ids.all(i, i > 0)").is_ok());
    }

    #[test]
    fn a_loop_variable_does_not_leak_out_of_its_macro() {
        let err = compile("jwt.groups.exists(g, g == 'a') && g == 'b'").expect_err("refused");
        assert!(err.contains("`g`"), "{err}");
    }

    #[test]
    fn non_boolean_conditions_are_refused() {
        let err = compile("'analysts'").expect_err("refused");
        assert!(err.contains("must be a condition"), "{err}");
        assert!(compile("1 + 2").is_err());
    }

    #[test]
    fn struct_literals_are_refused() {
        let err = compile("google.protobuf.Value{} == jwt").expect_err("refused");
        assert!(err.contains("message"), "{err}");
    }

    #[test]
    fn size_and_depth_are_bounded() {
        let long = format!("jwt.a == '{}'", "x".repeat(MAX_WHEN_BYTES));
        assert!(compile(&long).expect_err("long").contains("4096"));
        // The longest inputs of each shape that nests: refused, never a stack overflow.
        let n = MAX_WHEN_BYTES;
        for deep in [
            format!("{}true{}", "(".repeat(n / 2 - 2), ")".repeat(n / 2 - 2)),
            format!("jwt{} == 1", ".a".repeat(n / 2 - 4)),
            format!("jwt{} == 1", "[0]".repeat(n / 3 - 4)),
            format!("{}[]{}", "[".repeat(n / 2 - 2), "]".repeat(n / 2 - 2)),
            format!("{}true", "true ? true : ".repeat(n / 14)),
            format!("jwt{} == 1", ".size()".repeat(n / 7 - 2)),
        ] {
            assert!(deep.len() <= n);
            match compile(&deep) {
                Ok(_) => panic!("accepted a {}-byte expression nested that deep", deep.len()),
                Err(err) => assert!(err.contains("nested") || err.contains("parse"), "{err}"),
            }
        }
        // The parser folds repeated unary operators and balances `&&` chains:
        // whatever it answers, it answers without a crash.
        for folded in [
            format!("{}1 == 1", "-".repeat(n - 8)),
            format!("{}true", "!".repeat(n - 8)),
            format!("true{}", " && true".repeat(n / 8 - 1)),
            format!("1{} == 1", " + 1".repeat(n / 4 - 2)),
        ] {
            let _ = compile(&folded);
        }
        let nested = format!("jwt{} == 1", ".a".repeat(usize::from(MAX_WHEN_DEPTH) - 3));
        assert!(compile(&nested).is_ok(), "{nested}");
    }

    #[test]
    fn depth_is_counted_through_macros_lists_and_maps() {
        // The same select chain, 29 levels below `==`, is accepted on its own
        // but not where a macro, a list or a map adds levels around it: the
        // walk counts every node of the expanded tree, not the source's nesting.
        let chain = ".a".repeat(29);
        assert!(compile(&format!("jwt{chain} == 1")).is_ok());
        for deeper in [
            format!("[1].all(x, jwt{chain} == 1)"),
            format!("[1].map(x, jwt{chain}).size() == 1"),
            format!("{{'k': jwt{chain}}}.size() == 1"),
            format!("{{jwt{chain}: 1}}.size() == 1"),
            format!("[jwt{chain}].size() == 1"),
        ] {
            let err = compile(&deeper).expect_err(&deeper);
            assert!(err.contains("nested more than 32"), "{deeper}: {err}");
        }
        // A macro's list is one level below the macro.
        assert!(compile(&format!("jwt{}.all(x, true)", ".a".repeat(30))).is_ok());
        let err = compile(&format!("jwt{}.all(x, true)", ".a".repeat(31))).expect_err("deep range");
        assert!(err.contains("nested more than 32"), "{err}");
    }

    #[test]
    fn args_are_found_inside_lists_and_maps() {
        for reads in [
            "[args.a].size() == 1",
            "{'k': args.a}.size() == 1",
            "{args.k: 1}.size() == 1",
            "[1].exists(x, x == args.a)",
            "args.ids.exists(x, x == 1)",
        ] {
            assert!(compile(reads).expect(reads).uses_args(), "{reads}");
        }
        assert!(
            !compile("[1].exists(args, args == 1)")
                .expect("ok")
                .uses_args()
        );
    }

    fn context_with(jwt: serde_json::Value) -> Context<'static, 'static> {
        let mut c = Context::with_env(environment());
        c.add_variable_from_value("jwt", cel::to_value(&jwt).expect("value"));
        c.add_variable_from_value(
            "tool",
            cel::to_value(serde_json::json!({"name": "t", "connector": "c"})).expect("value"),
        );
        c.add_variable_from_value("args", cel::to_value(serde_json::json!({})).expect("value"));
        c
    }

    #[test]
    fn evaluation_answers_true_false_or_error() {
        let c = compile("'analysts' in jwt.groups").expect("ok");
        assert_eq!(
            c.evaluate(&context_with(serde_json::json!({"groups": ["analysts"]}))),
            Outcome::True
        );
        assert_eq!(
            c.evaluate(&context_with(serde_json::json!({"groups": ["ops"]}))),
            Outcome::False
        );
        assert!(matches!(
            c.evaluate(&context_with(serde_json::json!({}))),
            Outcome::Error(e) if e.contains("groups")
        ));
        let typed = compile("jwt.level > 3").expect("ok");
        assert!(matches!(
            typed.evaluate(&context_with(serde_json::json!({"level": "high"}))),
            Outcome::Error(_)
        ));
    }

    #[test]
    fn a_failure_is_reported_once() {
        let c = compile("jwt.x").expect("ok");
        assert!(c.first_failure());
        assert!(!c.first_failure());
    }
}
