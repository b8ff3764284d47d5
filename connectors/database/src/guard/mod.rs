//! The read-only guard: the first of the connector's independent safety layers.
//!
//! Query accepts exactly one statement, and only when every part of it is known
//! to read: an allow-list, never a list of bad things. In order:
//!
//! 1. [`lexical`]: a scanner refuses every form the engines and the parser
//!    could read differently (Unicode escapes, executable comments and hints,
//!    non-ASCII or control characters outside quotes, dollar quoting, nested
//!    comments, MySQL backslash escapes …), bounds the number of tokens, and
//!    blanks out comments, so the parser never decides where one ends.
//! 2. sqlparser parses the rest in the engine's dialect; what it cannot parse is
//!    refused, not guessed at.
//! 3. The statement must be `SELECT`, `WITH … SELECT`, `VALUES`,
//!    `SHOW …`, `DESCRIBE` or `EXPLAIN` of a query (`EXPLAIN ANALYZE` in any
//!    spelling only when `DB_EXPLAIN_ANALYZE` allows it).
//! 4. A walk of the whole tree (sqlparser's visitor reaches every query,
//!    expression, table factor, statement and literal) accepts each node kind it
//!    knows to be read-only and refuses every other kind: data-modifying CTEs
//!    and subqueries, `SELECT … INTO`, locking clauses, optimizer hints, variable
//!    assignment, custom operators, escape or dollar-quoted literals, and every
//!    function that is not on the engine's allow-list ([`functions`]), wherever
//!    it is called (select list, `FROM`, `WHERE`, `ORDER BY`, windows, CTEs,
//!    subqueries, arguments).
//!
//! The guard is not the only layer: the statement then runs as a prepared
//! statement (one statement per protocol message), on a connection opened
//! read-only, inside a READ ONLY transaction that is always rolled back, under a
//! statement timeout and row and size caps (see `engine`). Each layer alone
//! refuses the known escapes; together an attack has to beat all of them.

pub mod functions;
pub mod lexical;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, FunctionArguments, Query, Select, SelectFlavor, SetExpr,
    Statement, TableFactor, UnaryOperator, Value, ValueWithSpan, Visit, Visitor,
};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::engine::EngineKind;
use functions::{FunctionPolicy, FunctionRefusal};
use lexical::{LexicalRefusal, ScanRefusal};

/// Default bound on the tokens of one statement (`DB_MAX_SQL_TOKENS`).
pub const DEFAULT_MAX_TOKENS: usize = 10_000;

/// How deeply expressions (`a + b + …`, `x::t::u …`) and set operations
/// (`… UNION …`) may nest. The parser builds operator chains in a loop, so
/// their depth is bounded only by the text, while the tree walk recurses per
/// level: past this the stack of a server thread could run out. Not a setting,
/// since only the thread's stack size decides what is safe.
pub const MAX_DEPTH: usize = 200;

/// Why the guard refused a statement, in words the agent can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The lexical pass found a form the engine and the parser could read differently.
    #[error("{0}")]
    Lexical(LexicalRefusal),
    /// More tokens than `DB_MAX_SQL_TOKENS`.
    #[error(
        "the statement has more than {max_tokens} tokens, the read-only guard's bound (DB_MAX_SQL_TOKENS); split the work into smaller queries"
    )]
    TooLong {
        /// The bound.
        max_tokens: usize,
    },
    /// The parser could not read the statement.
    #[error(
        "the read-only guard could not parse this as one {dialect} statement ({reason}); only SELECT, WITH … SELECT, VALUES, SHOW, DESCRIBE and EXPLAIN are accepted, so rewrite it in plain syntax"
    )]
    Parse {
        /// The engine's dialect.
        dialect: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// No statement at all.
    #[error("no SQL statement was given")]
    Empty,
    /// More than one statement.
    #[error(
        "{0} statements were given but exactly one is allowed per call (a `;` followed by more SQL is how read-only transactions get escaped)"
    )]
    Several(usize),
    /// A statement of a kind that is not read-only.
    #[error(
        "{kind} is not a read-only statement; only SELECT, WITH … SELECT, VALUES, SHOW, DESCRIBE and EXPLAIN are allowed here{}",
        if *write { " (changes go through the Execute tool, when the operator enables read-write mode)" } else { "" }
    )]
    NotReadOnly {
        /// Its leading keywords (`DROP TABLE`).
        kind: String,
        /// Whether it changes data or schema.
        write: bool,
    },
    /// A write hidden inside a query (CTE, subquery).
    #[error(
        "the query contains a data-modifying statement ({0}), e.g. in a CTE; only reading is allowed here"
    )]
    DataModifying(String),
    /// EXPLAIN ANALYZE (any spelling) while the operator disabled it.
    #[error(
        "EXPLAIN ANALYZE runs the statement and is disabled by the operator (DB_EXPLAIN_ANALYZE=false); use EXPLAIN without ANALYZE, or the Explain tool"
    )]
    ExplainAnalyze,
    /// EXPLAIN of something that is not a query.
    #[error(
        "only queries may be explained, not {0} (EXPLAIN ANALYZE would run it); the Explain tool takes the query itself"
    )]
    ExplainNonQuery(String),
    /// A function that no configuration allows.
    #[error(
        "function {0}() is not allowed in a read-only query: it can sleep, lock, signal other sessions, change settings, reach files or other servers, or run SQL given as text, and no setting re-enables it"
    )]
    DeniedFunction(String),
    /// A function that is not on the allow-list.
    #[error(
        "function {name}() is not on the read-only guard's allow-list of side-effect-free {dialect} functions; if it only computes a value from its arguments, the operator can allow it with DB_ALLOW_FUNCTIONS={name}"
    )]
    UnknownFunction {
        /// The function as called (lower case, qualified as written).
        name: String,
        /// The engine's dialect.
        dialect: &'static str,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error(
        "the statement nests expressions or set operations more than {MAX_DEPTH} deep (the read-only guard's bound); split long chains of operators or UNIONs"
    )]
    TooDeep,
    /// A syntax form the guard does not accept in a read-only query.
    #[error("{0} is not accepted in a read-only query")]
    Construct(String),
}

/// The read-only check of one connector: its engine, whether `EXPLAIN ANALYZE`
/// may run, which functions are allowed, and the token bound.
#[derive(Debug, Clone)]
pub struct ReadOnlyGuard {
    engine: EngineKind,
    explain_analyze: bool,
    functions: FunctionPolicy,
    max_tokens: usize,
}

impl ReadOnlyGuard {
    /// A guard for `engine` with the engine's default function list plus
    /// `allowed_functions` (from [`functions::parse_allowed`]).
    pub fn new(
        engine: EngineKind,
        explain_analyze: bool,
        allowed_functions: BTreeSet<String>,
        max_tokens: usize,
    ) -> Self {
        Self {
            engine,
            explain_analyze,
            functions: FunctionPolicy::new(engine, allowed_functions),
            max_tokens,
        }
    }

    /// The strictest guard for `engine`: default functions only, no
    /// `EXPLAIN ANALYZE`, the default token bound.
    pub fn strict(engine: EngineKind) -> Self {
        Self::new(engine, false, BTreeSet::new(), DEFAULT_MAX_TOKENS)
    }

    /// Accepts `sql` when it is exactly one read-only statement, and returns
    /// it parsed; otherwise says why it is refused.
    pub fn check(&self, sql: &str) -> Result<Statement, Refusal> {
        let scanned = lexical::scan(self.engine, sql, self.max_tokens).map_err(|r| match r {
            ScanRefusal::Ambiguous(lexical) => Refusal::Lexical(lexical),
            ScanRefusal::TooManyTokens { max_tokens } => Refusal::TooLong { max_tokens },
        })?;
        let statements = parse(self.engine, &scanned.text).map_err(|reason| Refusal::Parse {
            dialect: self.engine.dialect_name(),
            reason,
        })?;
        let statement = single(statements)?;
        self.walk(&scanned.text, &statement)?;
        Ok(statement)
    }

    /// The tree walk of one parsed statement (`text` is what was parsed).
    fn walk(&self, text: &str, statement: &Statement) -> Result<(), Refusal> {
        let mut walker = ReadOnlyWalker {
            guard: self,
            text,
            statements_seen: 0,
            depth: 0,
        };
        match statement.visit(&mut walker) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(refusal) => Err(*refusal),
        }
    }
}

/// The statement parsed for the engine's dialect.
fn parse(engine: EngineKind, sql: &str) -> Result<Vec<Statement>, String> {
    let dialect: &dyn Dialect = match engine {
        EngineKind::Postgres => &PostgreSqlDialect {},
        EngineKind::MySql => &MySqlDialect {},
        EngineKind::Sqlite => &SQLiteDialect {},
    };
    Parser::parse_sql(dialect, sql).map_err(|e| e.to_string())
}

/// [`ReadOnlyGuard::strict`]'s check, with the reason as text.
pub fn check_read_only(engine: EngineKind, sql: &str) -> Result<Statement, String> {
    ReadOnlyGuard::strict(engine)
        .check(sql)
        .map_err(|r| r.to_string())
}

/// Accepts `sql` for Execute when it is exactly one statement the parser
/// understands (several statements in one call are refused: send them one by one).
pub fn check_single_statement(engine: EngineKind, sql: &str) -> Result<Statement, String> {
    let statements = parse(engine, sql).map_err(|e| {
        format!(
            "could not parse this as one {} statement ({e}); check the syntax",
            engine.dialect_name()
        )
    })?;
    single(statements).map_err(|r| r.to_string())
}

/// Whether a statement inserts rows (INSERT, REPLACE, or WITH ... INSERT).
pub fn is_insert(statement: &Statement) -> bool {
    match statement {
        Statement::Insert(_) => true,
        Statement::Query(query) => matches!(*query.body, SetExpr::Insert(_)),
        _ => false,
    }
}

fn single(mut statements: Vec<Statement>) -> Result<Statement, Refusal> {
    match statements.len() {
        0 => Err(Refusal::Empty),
        1 => Ok(statements.remove(0)),
        n => Err(Refusal::Several(n)),
    }
}

/// The statement's leading keywords, for messages (e.g. `DROP TABLE`), from
/// the text (comments blanked): a deep statement is never rendered back.
fn leading_words(text: &str) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphabetic()))
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic()))
        .collect();
    if words.is_empty() {
        "this statement".to_owned()
    } else {
        words.join(" ").to_ascii_uppercase()
    }
}

/// A refused top-level statement as written, and its kind where the words
/// differ (`REPLACE INTO (INSERT)`).
fn statement_kind(text: &str, statement: &Statement) -> String {
    let words = leading_words(text);
    let name = statement_name(statement);
    if name.starts_with(|c: char| c.is_ascii_uppercase()) && !words.contains(name) {
        format!("{words} ({name})")
    } else {
        words
    }
}

/// A statement found inside another, named by its kind.
fn statement_name(statement: &Statement) -> &'static str {
    match statement {
        Statement::Insert(_) => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Merge { .. } => "MERGE",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::Drop { .. } => "DROP",
        Statement::Truncate { .. } => "TRUNCATE",
        Statement::AlterTable { .. } => "ALTER TABLE",
        _ => "a statement that is not a query",
    }
}

fn is_write(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Insert(_)
            | Statement::Update { .. }
            | Statement::Delete(_)
            | Statement::Merge { .. }
            | Statement::CreateTable(_)
            | Statement::Drop { .. }
            | Statement::Truncate { .. }
            | Statement::AlterTable { .. }
    ) || matches!(statement, Statement::Query(q) if matches!(
        *q.body,
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
    ))
}

/// `EXPLAIN` options (PostgreSQL's parenthesised list) the guard knows: all
/// only shape the output, except `ANALYZE`, which runs the statement.
const EXPLAIN_OPTIONS: &[&str] = &[
    "analyze",
    "buffers",
    "costs",
    "format",
    "generic_plan",
    "memory",
    "serialize",
    "settings",
    "summary",
    "timing",
    "verbose",
    "wal",
];

/// Walks every node of the statement; each hook accepts the node kinds it knows
/// and refuses all others.
struct ReadOnlyWalker<'g> {
    guard: &'g ReadOnlyGuard,
    /// The SQL as parsed (comments blanked), for messages.
    text: &'g str,
    statements_seen: usize,
    /// Expressions entered and not yet left.
    depth: usize,
}

impl ReadOnlyWalker<'_> {
    /// The outermost statement: a read of an accepted kind.
    #[inline(never)]
    fn top_statement(&self, statement: &Statement) -> Result<(), Refusal> {
        match statement {
            Statement::Query(_) => Ok(()),
            Statement::Explain {
                analyze,
                statement: inner,
                estimate,
                options,
                ..
            } => {
                if *estimate {
                    return Err(Refusal::Construct("EXPLAIN ESTIMATE".to_owned()));
                }
                let mut runs = *analyze;
                for option in options.iter().flatten() {
                    let name = option.name.value.to_ascii_lowercase();
                    if !EXPLAIN_OPTIONS.contains(&name.as_str()) {
                        return Err(Refusal::Construct(format!("the EXPLAIN option {name}")));
                    }
                    // Any ANALYZE option counts, whatever its value says.
                    runs |= name == "analyze";
                }
                if runs && !self.guard.explain_analyze {
                    return Err(Refusal::ExplainAnalyze);
                }
                match inner.as_ref() {
                    Statement::Query(_) => Ok(()),
                    other => Err(Refusal::ExplainNonQuery(statement_name(other).to_owned())),
                }
            }
            Statement::ExplainTable { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowObjects(_)
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowCollation { .. } => Ok(()),
            other => Err(Refusal::NotReadOnly {
                kind: statement_kind(self.text, other),
                write: is_write(other),
            }),
        }
    }

    /// The clauses of a query: every one the engines share for reading, none of
    /// the locking, output or other dialects' clauses.
    #[inline(never)]
    fn query(&self, query: &Query) -> Result<(), Refusal> {
        let Query {
            with: _,
            body,
            order_by: _,
            limit_clause: _,
            fetch: _,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        if !locks.is_empty() {
            return Err(Refusal::Construct(
                "a locking clause (FOR UPDATE, FOR SHARE …: it takes row locks)".to_owned(),
            ));
        }
        if for_clause.is_some() {
            return Err(Refusal::Construct(
                "a FOR XML/JSON/BROWSE clause".to_owned(),
            ));
        }
        if settings.is_some() || format_clause.is_some() || !pipe_operators.is_empty() {
            return Err(Refusal::Construct(
                "a SETTINGS, FORMAT or pipe clause".to_owned(),
            ));
        }
        // The set-expression tree, iteratively: reads at every leaf, and no
        // deeper than the visitor may recurse.
        let mut pending: Vec<(&SetExpr, usize)> = vec![(body, 1)];
        while let Some((set, depth)) = pending.pop() {
            if depth > MAX_DEPTH {
                return Err(Refusal::TooDeep);
            }
            match set {
                SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) | SetExpr::Table(_) => {
                }
                SetExpr::SetOperation { left, right, .. } => {
                    pending.push((left, depth + 1));
                    pending.push((right, depth + 1));
                }
                SetExpr::Insert(s)
                | SetExpr::Update(s)
                | SetExpr::Delete(s)
                | SetExpr::Merge(s) => {
                    return Err(Refusal::DataModifying(statement_name(s).to_owned()));
                }
            }
        }
        Ok(())
    }

    /// The clauses of one SELECT.
    #[inline(never)]
    fn select(&self, select: &Select) -> Result<(), Refusal> {
        let Select {
            select_token: _,
            optimizer_hints,
            distinct: _,
            select_modifiers: _,
            top,
            top_before_distinct: _,
            projection: _,
            exclude,
            into,
            from: _,
            lateral_views,
            prewhere,
            selection: _,
            connect_by,
            group_by: _,
            cluster_by,
            distribute_by,
            sort_by,
            having: _,
            named_window: _,
            qualify,
            window_before_qualify: _,
            value_table_mode,
            flavor,
        } = select;
        if into.is_some() {
            return Err(Refusal::Construct(
                "SELECT … INTO (it creates a table or writes variables or files; drop the INTO clause)"
                    .to_owned(),
            ));
        }
        if !optimizer_hints.is_empty() {
            return Err(Refusal::Construct(
                "an optimizer hint (it can lift the statement timeout)".to_owned(),
            ));
        }
        let foreign = top.is_some()
            || exclude.is_some()
            || !lateral_views.is_empty()
            || prewhere.is_some()
            || !connect_by.is_empty()
            || !cluster_by.is_empty()
            || !distribute_by.is_empty()
            || !sort_by.is_empty()
            || qualify.is_some()
            || value_table_mode.is_some()
            || !matches!(flavor, SelectFlavor::Standard);
        if foreign {
            return Err(Refusal::Construct(
                "a SELECT clause of another SQL dialect (TOP, EXCLUDE, LATERAL VIEW, PREWHERE, CONNECT BY, CLUSTER/DISTRIBUTE/SORT BY, QUALIFY, FROM-first)"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    #[inline(never)]
    fn function(&self, name: &sqlparser::ast::ObjectName) -> Result<(), Refusal> {
        self.guard.functions.check(name).map_err(|r| match r {
            FunctionRefusal::Denied(name) => Refusal::DeniedFunction(name),
            FunctionRefusal::NotAllowed(name) => Refusal::UnknownFunction {
                name,
                dialect: self.guard.engine.dialect_name(),
            },
        })
    }

    /// Table sources: tables, subqueries, joins, and calls of allowed functions.
    #[inline(never)]
    fn table_factor(&self, factor: &TableFactor) -> Result<(), Refusal> {
        match factor {
            TableFactor::Table {
                name,
                args,
                with_hints,
                version,
                json_path,
                ..
            } => {
                if !with_hints.is_empty() || version.is_some() || json_path.is_some() {
                    return Err(Refusal::Construct(
                        "a table hint, time-travel or JSON path of another SQL dialect".to_owned(),
                    ));
                }
                if args.is_some() {
                    self.function(name)?;
                }
                Ok(())
            }
            TableFactor::Function { name, .. } => self.function(name),
            TableFactor::Derived { .. }
            | TableFactor::TableFunction { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::JsonTable { .. }
            | TableFactor::NestedJoin { .. } => Ok(()),
            TableFactor::OpenJsonTable { .. }
            | TableFactor::Pivot { .. }
            | TableFactor::Unpivot { .. }
            | TableFactor::UnpivotExpr { .. }
            | TableFactor::MatchRecognize { .. }
            | TableFactor::XmlTable { .. }
            | TableFactor::SemanticView { .. } => Err(Refusal::Construct(
                "this table source (OPENJSON, PIVOT, UNPIVOT, MATCH_RECOGNIZE, XMLTABLE, SEMANTIC_VIEW)"
                    .to_owned(),
            )),
        }
    }

    /// Expressions: every kind the three dialects produce for reading; calls
    /// only of allowed functions; no assignment, custom operator or foreign syntax.
    #[inline(never)]
    fn expr(&self, expr: &Expr) -> Result<(), Refusal> {
        match expr {
            Expr::Function(function) => {
                if function.uses_odbc_syntax
                    || !matches!(function.parameters, FunctionArguments::None)
                {
                    return Err(Refusal::Construct(
                        "an ODBC {fn …} call or parametric function".to_owned(),
                    ));
                }
                self.function(&function.name)
            }
            Expr::BinaryOp { op, .. } => binary_operator(op),
            // PostgreSQL reads `(x).f` as the call `f(x)` for any x (a
            // "field" of a scalar is a function): `(5.0).pg_sleep` sleeps. The
            // guard cannot tell a field from a function, so only subscripts pass.
            Expr::CompoundFieldAccess { access_chain, .. } => {
                if access_chain
                    .iter()
                    .all(|access| matches!(access, AccessExpr::Subscript(_)))
                {
                    Ok(())
                } else {
                    Err(Refusal::Construct(
                        "a field of a parenthesised value, `(x).name` (PostgreSQL runs `(x).f` as the function call f(x)); select the column itself, or call a function by its name"
                            .to_owned(),
                    ))
                }
            }
            Expr::UnaryOp { op, .. } => unary_operator(op),
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::IsFalse(_)
            | Expr::IsNotFalse(_)
            | Expr::IsTrue(_)
            | Expr::IsNotTrue(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotUnknown(_)
            | Expr::IsDistinctFrom(_, _)
            | Expr::IsNotDistinctFrom(_, _)
            | Expr::IsJson { .. }
            | Expr::IsNormalized { .. }
            | Expr::In { .. }
            | Expr::Between { .. }
            | Expr::Like { .. }
            | Expr::ILike { .. }
            | Expr::SimilarTo { .. }
            | Expr::RLike { .. }
            | Expr::AnyOp { .. }
            | Expr::AllOp { .. }
            | Expr::Convert { .. }
            | Expr::Cast { .. }
            | Expr::AtTimeZone { .. }
            | Expr::Extract { .. }
            | Expr::Ceil { .. }
            | Expr::Floor { .. }
            | Expr::Position { .. }
            | Expr::Substring { .. }
            | Expr::Trim { .. }
            | Expr::Overlay { .. }
            | Expr::Collate { .. }
            | Expr::Nested(_)
            | Expr::Value(_)
            | Expr::Prefixed { .. }
            | Expr::TypedString(_)
            | Expr::Case { .. }
            | Expr::Exists { .. }
            | Expr::Subquery(_)
            | Expr::GroupingSets(_)
            | Expr::Cube(_)
            | Expr::Rollup(_)
            | Expr::Tuple(_)
            | Expr::Array(_)
            | Expr::Interval(_)
            | Expr::MatchAgainst { .. }
            | Expr::Wildcard(_)
            | Expr::QualifiedWildcard(_, _)
            | Expr::MemberOf(_) => Ok(()),
            Expr::JsonAccess { .. }
            | Expr::Struct { .. }
            | Expr::Named { .. }
            | Expr::Dictionary(_)
            | Expr::Map(_)
            | Expr::OuterJoin(_)
            | Expr::Prior(_)
            | Expr::Lambda(_) => Err(Refusal::Construct(
                "this expression form (JSON path, STRUCT, named argument, dictionary, map, (+), PRIOR or lambda of another SQL dialect)"
                    .to_owned(),
            )),
        }
    }
}

#[inline(never)]
fn binary_operator(op: &BinaryOperator) -> Result<(), Refusal> {
    use BinaryOperator as B;
    match op {
        B::Plus
        | B::Minus
        | B::Multiply
        | B::Divide
        | B::Modulo
        | B::StringConcat
        | B::Gt
        | B::Lt
        | B::GtEq
        | B::LtEq
        | B::Spaceship
        | B::Eq
        | B::NotEq
        | B::And
        | B::Or
        | B::Xor
        | B::BitwiseOr
        | B::BitwiseAnd
        | B::BitwiseXor
        | B::MyIntegerDivide
        | B::Regexp
        | B::Glob
        | B::Match
        | B::PGBitwiseXor
        | B::PGBitwiseShiftLeft
        | B::PGBitwiseShiftRight
        | B::PGExp
        | B::PGOverlap
        | B::PGRegexMatch
        | B::PGRegexIMatch
        | B::PGRegexNotMatch
        | B::PGRegexNotIMatch
        | B::PGLikeMatch
        | B::PGILikeMatch
        | B::PGNotLikeMatch
        | B::PGNotILikeMatch
        | B::PGStartsWith
        | B::Arrow
        | B::LongArrow
        | B::HashArrow
        | B::HashLongArrow
        | B::AtAt
        | B::AtArrow
        | B::ArrowAt
        | B::HashMinus
        | B::AtQuestion
        | B::Question
        | B::QuestionAnd
        | B::QuestionPipe
        | B::Overlaps
        | B::Is
        | B::IsNot => Ok(()),
        B::Assignment => Err(Refusal::Construct("assigning a variable (:=)".to_owned())),
        B::Custom(_)
        | B::PGCustomBinaryOperator(_)
        | B::DuckIntegerDivide
        | B::DoubleHash
        | B::LtDashGt
        | B::AndLt
        | B::AndGt
        | B::LtLtPipe
        | B::PipeGtGt
        | B::AndLtPipe
        | B::PipeAndGt
        | B::LtCaret
        | B::GtCaret
        | B::QuestionHash
        | B::QuestionDash
        | B::QuestionDashPipe
        | B::QuestionDoublePipe
        | B::At
        | B::TildeEq => Err(Refusal::Construct(format!("the operator {op}"))),
    }
}

#[inline(never)]
fn unary_operator(op: &UnaryOperator) -> Result<(), Refusal> {
    use UnaryOperator as U;
    match op {
        U::Plus
        | U::Minus
        | U::Not
        | U::BangNot
        | U::BitwiseNot
        | U::PGAbs
        | U::PGCubeRoot
        | U::PGPostfixFactorial
        | U::PGPrefixFactorial
        | U::PGSquareRoot => Ok(()),
        U::AtDashAt | U::DoubleAt | U::Hash | U::QuestionDash | U::QuestionPipe => {
            Err(Refusal::Construct(format!("the operator {op}")))
        }
    }
}

/// Literals: plain strings (and `N'…'`, `X'…'`, `B'…'`), numbers, booleans, NULL
/// and placeholders; never the
/// escape, Unicode, dollar-quoted or raw forms (the lexical pass refuses them
/// first; this is the second line).
#[inline(never)]
fn value(value: &ValueWithSpan) -> Result<(), Refusal> {
    match &value.value {
        Value::Number(..)
        | Value::SingleQuotedString(_)
        | Value::NationalStringLiteral(_)
        | Value::HexStringLiteral(_)
        | Value::SingleQuotedByteStringLiteral(_)
        | Value::DoubleQuotedString(_)
        | Value::Boolean(_)
        | Value::Null
        | Value::Placeholder(_) => Ok(()),
        Value::DollarQuotedString(_)
        | Value::TripleSingleQuotedString(_)
        | Value::TripleDoubleQuotedString(_)
        | Value::EscapedStringLiteral(_)
        | Value::UnicodeStringLiteral(_)
        | Value::DoubleQuotedByteStringLiteral(_)
        | Value::TripleSingleQuotedByteStringLiteral(_)
        | Value::TripleDoubleQuotedByteStringLiteral(_)
        | Value::SingleQuotedRawStringLiteral(_)
        | Value::DoubleQuotedRawStringLiteral(_)
        | Value::TripleSingleQuotedRawStringLiteral(_)
        | Value::TripleDoubleQuotedRawStringLiteral(_)
        | Value::QuoteDelimitedStringLiteral(_)
        | Value::NationalQuoteDelimitedStringLiteral(_) => Err(Refusal::Construct(
            "an escaped, Unicode, dollar-quoted, raw or byte string literal".to_owned(),
        )),
    }
}

/// A hook's answer for the visitor. The refusal travels boxed: the visitor's
/// recursive frames hold one `ControlFlow` per field, and a pointer keeps them
/// small enough for deep expressions.
fn flow(result: Result<(), Refusal>) -> ControlFlow<Box<Refusal>> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(refusal) => ControlFlow::Break(Box::new(refusal)),
    }
}

impl Visitor for ReadOnlyWalker<'_> {
    type Break = Box<Refusal>;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Box<Refusal>> {
        self.statements_seen += 1;
        if self.statements_seen == 1 {
            return flow(self.top_statement(statement));
        }
        // Below the top only EXPLAIN's query may appear (and the top check
        // accepted only that); anything else is a statement hidden in a query.
        flow(match statement {
            Statement::Query(_) => Ok(()),
            other => Err(Refusal::DataModifying(statement_name(other).to_owned())),
        })
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Box<Refusal>> {
        flow(self.query(query))
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Box<Refusal>> {
        flow(self.select(select))
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Box<Refusal>> {
        flow(self.table_factor(factor))
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Box<Refusal>> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return flow(Err(Refusal::TooDeep));
        }
        flow(self.expr(expr))
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Box<Refusal>> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, literal: &ValueWithSpan) -> ControlFlow<Box<Refusal>> {
        flow(value(literal))
    }
}
