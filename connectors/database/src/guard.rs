//! The read-only guard: the first of the connector's independent safety layers.
//!
//! Query and Explain accept exactly one statement of a reading kind, checked on
//! the parse tree of a real SQL parser for the database's dialect (sqlparser):
//! `SELECT`, `WITH ... SELECT`, `VALUES`, `TABLE`, `SHOW`, `DESCRIBE` and `EXPLAIN`
//! (without `ANALYZE`) of those. Anywhere in the tree it refuses data-modifying
//! CTEs and subqueries (`WITH x AS (DELETE ...)`), `SELECT ... INTO`, locking
//! clauses (`FOR UPDATE`, `FOR SHARE`) and functions known to have side effects
//! or to reach outside the database (`pg_sleep`, `pg_read_file`, `lo_import`,
//! `dblink`, `pg_terminate_backend`, `set_config`, `load_file`, `load_extension`
//! ...). SQL the parser does not understand is refused rather than guessed at.
//!
//! The guard is not the only layer: the statement then runs as a prepared
//! statement (one statement per protocol message), on a connection opened
//! read-only, inside a READ ONLY transaction that is always rolled back, under a
//! statement timeout and row and size caps (see `engine`). Each layer alone
//! refuses the known escapes; together an attack has to beat all of them.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, Query, Select, SetExpr, Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::engine::EngineKind;

/// Functions refused anywhere in a read query, lowercase, matched on the last
/// part of the (possibly schema-qualified) name. They sleep, lock, signal other
/// sessions, change settings, reach the server's file system or other servers,
/// or run SQL given as a string (which the guard could not inspect).
const DENIED_FUNCTIONS: &[&str] = &[
    // PostgreSQL: time, server state, other sessions.
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_logical_emit_message",
    "pg_notify",
    "set_config",
    "nextval",
    "setval",
    // PostgreSQL: server files and large objects.
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "lo_import",
    "lo_export",
    "lo_create",
    "lo_creat",
    "lo_unlink",
    "lo_put",
    "lo_from_bytea",
    "lo_truncate",
    // PostgreSQL: other servers and SQL given as text.
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "dblink_open",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "cursor_to_xml",
    // MySQL / MariaDB.
    "sleep",
    "benchmark",
    "load_file",
    "get_lock",
    "release_lock",
    "release_all_locks",
    "master_pos_wait",
    "source_pos_wait",
    "master_gtid_wait",
    "sys_exec",
    "sys_eval",
    // SQLite.
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// Prefixes of function families refused the same way.
const DENIED_PREFIXES: &[&str] = &["pg_advisory", "pg_try_advisory", "lo_", "dblink"];

/// The statement parsed for the engine's dialect.
fn parse(engine: EngineKind, sql: &str) -> Result<Vec<Statement>, String> {
    let dialect: &dyn Dialect = match engine {
        EngineKind::Postgres => &PostgreSqlDialect {},
        EngineKind::MySql => &MySqlDialect {},
        EngineKind::Sqlite => &SQLiteDialect {},
    };
    Parser::parse_sql(dialect, sql).map_err(|e| e.to_string())
}

/// Accepts `sql` when it is exactly one read-only statement; otherwise returns
/// the reason it is refused, for the agent to read.
pub fn check_read_only(engine: EngineKind, sql: &str) -> Result<Statement, String> {
    let statements = parse(engine, sql).map_err(|e| {
        format!(
            "the read-only guard could not parse this as one {} statement ({e}); only SELECT, WITH ... SELECT, VALUES, SHOW and EXPLAIN are accepted, so rewrite it in plain syntax",
            engine.dialect_name()
        )
    })?;
    let statement = single(statements)?;
    check_statement_kind(&statement)?;
    let mut walker = ReadOnlyWalker;
    match statement.visit(&mut walker) {
        ControlFlow::Continue(()) => Ok(statement),
        ControlFlow::Break(reason) => Err(reason),
    }
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
    single(statements)
}

/// Whether a statement inserts rows (INSERT, REPLACE, or WITH ... INSERT).
pub fn is_insert(statement: &Statement) -> bool {
    match statement {
        Statement::Insert(_) => true,
        Statement::Query(query) => matches!(*query.body, SetExpr::Insert(_)),
        _ => false,
    }
}

fn single(mut statements: Vec<Statement>) -> Result<Statement, String> {
    match statements.len() {
        0 => Err("no SQL statement was given".to_owned()),
        1 => Ok(statements.remove(0)),
        n => Err(format!(
            "{n} statements were given but exactly one is allowed per call (a `;` followed by more SQL is how read-only transactions get escaped)"
        )),
    }
}

/// The top-level statement must be of a reading kind.
fn check_statement_kind(statement: &Statement) -> Result<(), String> {
    match statement {
        Statement::Query(_) => Ok(()),
        Statement::Explain {
            analyze, statement, ..
        } => {
            if *analyze {
                return Err(
                    "EXPLAIN ANALYZE runs the statement; use the Explain tool with analyze: true instead"
                        .to_owned(),
                );
            }
            match statement.as_ref() {
                Statement::Query(_) => Ok(()),
                other => Err(format!(
                    "only queries may be explained, not {}",
                    statement_kind(other)
                )),
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
        other => Err(format!(
            "{} is not a read-only statement; only SELECT, WITH ... SELECT, VALUES, SHOW and EXPLAIN are allowed here{}",
            statement_kind(other),
            if is_write(other) {
                " (changes go through the Execute tool, when the operator enables read-write mode)"
            } else {
                ""
            }
        )),
    }
}

/// The statement's leading keywords, for messages (e.g. `DROP TABLE`).
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
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
    )
}

fn denied_function(name: &ObjectName) -> Option<String> {
    let last = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    let denied = DENIED_FUNCTIONS.contains(&last.as_str())
        || DENIED_PREFIXES.iter().any(|p| last.starts_with(p));
    denied.then_some(last)
}

/// Walks every node below the top statement.
struct ReadOnlyWalker;

impl Visitor for ReadOnlyWalker {
    type Break = String;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        match statement {
            // The top statement (already checked) and EXPLAIN's inner query.
            Statement::Query(_) | Statement::Explain { .. } => ControlFlow::Continue(()),
            s if is_top_level_show(s) => ControlFlow::Continue(()),
            other => ControlFlow::Break(format!(
                "the query contains a data-modifying statement ({}), e.g. in a CTE; only reading is allowed here",
                statement_kind(other)
            )),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if !query.locks.is_empty() {
            return ControlFlow::Break(
                "locking clauses (FOR UPDATE, FOR SHARE ...) take row locks and are not allowed in a read-only query"
                    .to_owned(),
            );
        }
        if let SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) =
            query.body.as_ref()
        {
            return ControlFlow::Break(
                "the query contains a data-modifying statement; only reading is allowed here"
                    .to_owned(),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        if select.into.is_some() {
            return ControlFlow::Break(
                "SELECT ... INTO creates a table or writes variables/files and is not allowed; drop the INTO clause"
                    .to_owned(),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        let name = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => Some(name),
            TableFactor::Function { name, .. } => Some(name),
            _ => None,
        };
        if let Some(denied) = name.and_then(denied_function) {
            return ControlFlow::Break(denied_message(&denied));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        if let Expr::Function(function) = expr
            && let Some(denied) = denied_function(&function.name)
        {
            return ControlFlow::Break(denied_message(&denied));
        }
        ControlFlow::Continue(())
    }
}

fn is_top_level_show(statement: &Statement) -> bool {
    check_statement_kind(statement).is_ok()
}

fn denied_message(function: &str) -> String {
    format!(
        "function {function}() is not allowed in a read-only query: it can sleep, lock, signal other sessions, change settings, or reach files or other servers"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The checks as accept/refuse answers (the tests do not need the statement).
    fn check_read_only(engine: EngineKind, sql: &str) -> Result<(), String> {
        super::check_read_only(engine, sql).map(drop)
    }

    fn check_single_statement(engine: EngineKind, sql: &str) -> Result<(), String> {
        super::check_single_statement(engine, sql).map(drop)
    }

    #[test]
    fn inserts_are_recognised_by_their_syntax_not_their_first_word() {
        let insert = |sql: &str| {
            is_insert(&super::check_single_statement(EngineKind::Sqlite, sql).expect("parses"))
        };
        assert!(insert("INSERT INTO t VALUES (1)"));
        assert!(insert("REPLACE INTO t VALUES (1)"));
        assert!(insert("/* replace */ INSERT INTO t VALUES (1)"));
        assert!(!insert("/* replace */ UPDATE t SET a = 1"));
        assert!(!insert("DELETE FROM t"));
    }

    fn refused(engine: EngineKind, sql: &str) -> String {
        match check_read_only(engine, sql) {
            Ok(()) => panic!("{sql:?} was accepted on {engine:?}"),
            Err(reason) => reason,
        }
    }

    const ALL: [EngineKind; 3] = [EngineKind::Postgres, EngineKind::MySql, EngineKind::Sqlite];

    #[test]
    fn plain_reads_are_accepted_on_every_dialect() {
        for engine in ALL {
            for sql in [
                "SELECT 1",
                "select id, name from customers where id = 3 order by name limit 5;",
                "WITH big AS (SELECT customer_id, sum(total) AS s FROM orders GROUP BY customer_id) SELECT * FROM big WHERE s > 10",
                "SELECT a.x FROM a JOIN b ON a.id = b.a_id WHERE a.x IN (SELECT x FROM c)",
                "SELECT 1 UNION ALL SELECT 2",
                "VALUES (1, 'a'), (2, 'b')",
            ] {
                assert_eq!(check_read_only(engine, sql), Ok(()), "{engine:?}: {sql}");
            }
        }
        assert_eq!(
            check_read_only(EngineKind::Postgres, "SELECT * FROM t WHERE id = $1"),
            Ok(())
        );
        assert_eq!(
            check_read_only(EngineKind::MySql, "SELECT * FROM t WHERE id = ?"),
            Ok(())
        );
        assert_eq!(
            check_read_only(EngineKind::Postgres, "EXPLAIN SELECT 1"),
            Ok(())
        );
        assert_eq!(
            check_read_only(EngineKind::Postgres, "SHOW search_path"),
            Ok(())
        );
        assert_eq!(check_read_only(EngineKind::MySql, "SHOW TABLES"), Ok(()));
    }

    #[test]
    fn a_second_statement_is_refused_even_after_commit() {
        for engine in ALL {
            let reason = refused(engine, "SELECT 1; DROP TABLE customers");
            assert!(reason.contains("exactly one"), "{reason}");
            let reason = refused(engine, "COMMIT; DROP TABLE customers");
            assert!(reason.contains("exactly one"), "{reason}");
        }
    }

    #[test]
    fn writes_and_ddl_are_refused_by_kind() {
        for engine in ALL {
            for (sql, kind) in [
                ("DELETE FROM customers", "DELETE"),
                ("UPDATE customers SET name = 'x'", "UPDATE"),
                ("INSERT INTO customers (id) VALUES (1)", "INSERT"),
                ("DROP TABLE customers", "DROP TABLE"),
                ("CREATE TABLE x (id int)", "CREATE TABLE"),
                ("COMMIT", "COMMIT"),
            ] {
                let reason = refused(engine, sql);
                assert!(reason.contains(kind), "{engine:?} {sql}: {reason}");
                assert!(reason.contains("not a read-only statement"), "{reason}");
            }
        }
        assert!(
            refused(
                EngineKind::Postgres,
                "SET default_transaction_read_only = off"
            )
            .contains("SET")
        );
        assert!(refused(EngineKind::Postgres, "COPY customers TO '/tmp/x'").contains("COPY"));
        assert!(refused(EngineKind::Sqlite, "ATTACH DATABASE '/tmp/x.db' AS x").contains("ATTACH"));
        let reason = refused(EngineKind::Sqlite, "PRAGMA query_only = 0");
        assert!(reason.contains("PRAGMA"), "{reason}");
    }

    #[test]
    fn data_modifying_ctes_are_refused() {
        let reason = refused(
            EngineKind::Postgres,
            "WITH gone AS (DELETE FROM customers RETURNING *) SELECT count(*) FROM gone",
        );
        assert!(reason.contains("data-modifying"), "{reason}");
    }

    #[test]
    fn select_into_and_locking_clauses_are_refused() {
        let reason = refused(
            EngineKind::Postgres,
            "SELECT * INTO copy_of_customers FROM customers",
        );
        assert!(reason.contains("INTO"), "{reason}");
        for engine in [EngineKind::Postgres, EngineKind::MySql] {
            let reason = refused(engine, "SELECT * FROM customers FOR UPDATE");
            assert!(reason.contains("locking"), "{engine:?}: {reason}");
        }
    }

    #[test]
    fn side_effecting_functions_are_refused_wherever_they_hide() {
        for sql in [
            "SELECT pg_sleep(60)",
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            "SELECT lo_import('/etc/passwd')",
            "SELECT * FROM dblink('host=evil', 'DELETE FROM x') AS t(a int)",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT id FROM customers WHERE id IN (SELECT pg_advisory_lock(1))",
            "SELECT query_to_xml('DELETE FROM customers', true, true, '')",
            "WITH x AS (SELECT nextval('orders_id_seq')) SELECT * FROM x",
        ] {
            let reason = refused(EngineKind::Postgres, sql);
            assert!(reason.contains("is not allowed"), "{sql}: {reason}");
        }
        assert!(refused(EngineKind::MySql, "SELECT SLEEP(10)").contains("sleep"));
        assert!(
            refused(EngineKind::MySql, "SELECT LOAD_FILE('/etc/passwd')").contains("load_file")
        );
        assert!(
            refused(EngineKind::Sqlite, "SELECT load_extension('evil')").contains("load_extension")
        );
    }

    #[test]
    fn explain_analyze_is_left_to_the_explain_tool() {
        let reason = refused(
            EngineKind::Postgres,
            "EXPLAIN ANALYZE DELETE FROM customers",
        );
        assert!(reason.contains("Explain tool"), "{reason}");
        let reason = refused(EngineKind::Postgres, "EXPLAIN DELETE FROM customers");
        assert!(reason.contains("only queries"), "{reason}");
    }

    #[test]
    fn unparseable_sql_is_refused_not_guessed() {
        let reason = refused(EngineKind::Postgres, "SELEKT * FROM customers");
        assert!(reason.contains("could not parse"), "{reason}");
    }

    #[test]
    fn execute_takes_exactly_one_statement() {
        assert_eq!(
            check_single_statement(EngineKind::Sqlite, "UPDATE t SET a = 1 WHERE id = ?"),
            Ok(())
        );
        let reason = check_single_statement(EngineKind::Sqlite, "UPDATE t SET a = 1; DROP TABLE t")
            .expect_err("two statements");
        assert!(reason.contains("exactly one"), "{reason}");
    }
}
