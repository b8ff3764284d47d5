//! Unit tests of the guard: every refused form and the accepted analyst queries.
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
    assert!(refused(EngineKind::MySql, "SELECT LOAD_FILE('/etc/passwd')").contains("load_file"));
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

// ---- The allow-list guard: every refused form, every accepted analyst query.

const PG: EngineKind = EngineKind::Postgres;
const MY: EngineKind = EngineKind::MySql;
const LITE: EngineKind = EngineKind::Sqlite;

fn guard(engine: EngineKind) -> ReadOnlyGuard {
    ReadOnlyGuard::strict(engine)
}

fn refusal(engine: EngineKind, sql: &str) -> Refusal {
    match guard(engine).check(sql) {
        Ok(_) => panic!("{sql:?} was accepted on {engine:?}"),
        Err(refusal) => refusal,
    }
}

fn lexical(engine: EngineKind, sql: &str) -> LexicalRefusal {
    match refusal(engine, sql) {
        Refusal::Lexical(l) => l,
        other => panic!("{engine:?} {sql:?}: expected a lexical refusal, got {other:?}"),
    }
}

fn unknown_function(engine: EngineKind, sql: &str) -> String {
    match refusal(engine, sql) {
        Refusal::UnknownFunction { name, .. } => name,
        other => panic!("{engine:?} {sql:?}: expected an unknown function, got {other:?}"),
    }
}

fn denied_function(engine: EngineKind, sql: &str) -> String {
    match refusal(engine, sql) {
        Refusal::DeniedFunction(name) => name,
        other => panic!("{engine:?} {sql:?}: expected a denied function, got {other:?}"),
    }
}

fn accepted(engine: EngineKind, sql: &str) {
    if let Err(refusal) = guard(engine).check(sql) {
        panic!("{engine:?} refused {sql:?}: {refusal}");
    }
}

#[test]
fn analyst_queries_from_the_prompts_and_tests_are_accepted() {
    for sql in [
        "SELECT count(*), sum(total), avg(total), min(total), max(total) FROM orders",
        "SELECT coalesce(name, 'n/a'), lower(name), upper(name), length(name) FROM customers",
        "SELECT substr(name, 1, 3), round(total, 2), abs(total) FROM orders WHERE total > 10",
        "SELECT CURRENT_DATE, CURRENT_TIMESTAMP",
        "SELECT c.name, count(o.id) AS n FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.name HAVING count(o.id) > 1 ORDER BY n DESC LIMIT 10",
        "SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY placed_at) FROM orders",
        "SELECT id, sum(total) OVER w FROM orders WINDOW w AS (ORDER BY id)",
        "SELECT CASE WHEN total > 100 THEN 'big' ELSE 'small' END FROM orders",
        "SELECT CAST(total AS INTEGER) FROM orders WHERE name LIKE 'a%' AND id BETWEEN 1 AND 5 AND id IN (1, 2) AND name IS NOT NULL",
        "SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM customers WHERE customers.id = orders.customer_id)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT count(*) FROM n",
        "SELECT x'00ff', N'text'",
        "SELECT 1 -- a comment\n",
        "/* leading comment */ SELECT 1 /* trailing */",
        "SELECT 1.5e3, .5, 0x1F",
        "SELECT 'it''s', 'ünïcödé ✓'",
    ] {
        for engine in ALL {
            accepted(engine, sql);
        }
    }
    for sql in [
        "SELECT date_trunc('month', placed_at), count(*) FROM orders GROUP BY 1",
        "SELECT extract(year FROM placed_at), now(), string_agg(name, ', ' ORDER BY name) FROM orders",
        "SELECT * FROM generate_series(1, 10) AS g(i)",
        "SELECT pg_catalog.lower(name) FROM customers WHERE name ILIKE $1",
        "SELECT data->>'a', data #>> '{a,b}', jsonb_extract_path_text(data, 'a') FROM docs",
        "SELECT total::numeric(10, 2), placed_at AT TIME ZONE 'UTC' FROM orders",
        "SELECT \"Weird Name\" FROM \"Mixed Case\"",
        "SELECT ARRAY[1, 2], unnest(ARRAY[1, 2]), array_agg(id) FROM t GROUP BY id",
        "SELECT count(*) FILTER (WHERE total > 10) FROM orders",
        "EXPLAIN SELECT 1",
        "EXPLAIN (COSTS false, FORMAT JSON) SELECT 1",
        "SHOW search_path",
        "SELECT 1 # 3",
        "SELECT * FROM t WHERE a ~ '^x' AND b !~* 'y'",
    ] {
        accepted(PG, sql);
    }
    for sql in [
        "SELECT group_concat(name SEPARATOR ','), json_extract(doc, '$.a'), date_format(placed_at, '%Y-%m') FROM orders",
        "SELECT ifnull(a, 0), if(a > 1, 'x', 'y'), `name` FROM `orders` WHERE name = \"bob\"",
        "SELECT * FROM t WHERE id = ? LIMIT 5",
        "SELECT _utf8mb4'x', -- comment with a space\n 1",
        "SHOW TABLES",
        "DESCRIBE customers",
        "EXPLAIN SELECT 1",
    ] {
        accepted(MY, sql);
    }
    for sql in [
        "SELECT strftime('%Y', placed_at), group_concat(name, ','), printf('%.2f', total), json_extract(doc, '$.a') FROM orders",
        "SELECT * FROM [orders] WHERE \"id\" = ?",
        "SELECT * FROM json_each('[1,2]')",
        "SELECT name FROM pragma_table_info('orders')",
        "SELECT iif(a > 1, 'x', 'y'), typeof(a) FROM t",
    ] {
        accepted(LITE, sql);
    }
}

#[test]
fn unicode_escaped_names_and_strings_are_refused_before_parsing() {
    for sql in [
        "SELECT U&\"pg\\005fsleep\"(5)",
        "SELECT u&\"pg\\005fadvisory_lock\"(1)",
        "SELECT U&'\\0041'",
        "SELECT * FROM t WHERE a = U&'d\\0061t\\+000061' UESCAPE '!'",
    ] {
        for engine in [PG, LITE] {
            let l = lexical(engine, sql);
            assert!(l.construct.contains("Unicode escape"), "{sql}: {l}");
            let at = sql.find(['U', 'u']).expect("has U&") + 1;
            assert_eq!((l.line, l.column), (1, at), "{sql}");
        }
    }
    let l = lexical(PG, "SELECT\n  U&\"x\"");
    assert_eq!((l.line, l.column), (2, 3), "{l}");
    let text = Refusal::Lexical(l).to_string();
    assert!(text.contains("line 2, column 3"), "{text}");
    assert!(text.contains("could read it differently"), "{text}");
}

#[test]
fn prefixed_literals_other_than_n_x_b_are_refused() {
    for (engine, sql) in [
        (PG, "SELECT E'\\x41'"),
        (PG, "SELECT e'a\\'b'"),
        (MY, "SELECT E'x'"),
        (LITE, "SELECT abc'x'"),
        (PG, "SELECT name\"x\" FROM t"),
        (MY, "SELECT a`b` FROM t"),
        (PG, "SELECT _utf8'x'"),
    ] {
        let l = lexical(engine, sql);
        assert!(
            l.construct.contains("directly before a quote"),
            "{sql}: {l}"
        );
    }
    accepted(MY, "SELECT _latin1'x', N'y', X'41', B'01'");
}

#[test]
fn executable_comments_and_hints_are_refused_on_every_engine() {
    for sql in [
        "SELECT 1 /*!50000 , SLEEP(5) */",
        "SELECT 1 /*M! , SLEEP(5) */",
        "SELECT 1 /*m!100000 , SLEEP(5) */",
        "SELECT /*+ MAX_EXECUTION_TIME(100000) */ 1",
        "SELECT /*+ SET_VAR(max_statement_time=0) */ 1",
    ] {
        for engine in ALL {
            let l = lexical(engine, sql);
            assert!(
                l.construct.contains("executable comment")
                    || l.construct.contains("optimizer hint"),
                "{engine:?} {sql}: {l}"
            );
        }
    }
    // A comment that merely starts with a space and a bang is a comment.
    for engine in ALL {
        accepted(engine, "SELECT 1 /* !not executable */");
        accepted(engine, "SELECT 1 /* M! neither */");
    }
}

#[test]
fn mysql_double_dash_needs_an_ascii_space_to_be_a_comment() {
    for sql in [
        "SELECT 1 --\u{a0}, SLEEP(5)",
        "SELECT 1 --\u{2003}x",
        "SELECT 1 --x",
        "SELECT 1--1",
        "SELECT 1 --",
        "SELECT 1 --\r",
    ] {
        let l = lexical(MY, sql);
        assert!(l.construct.contains("--"), "{sql}: {l}");
    }
    accepted(MY, "SELECT 1 -- comment");
    accepted(MY, "SELECT 1 --\tcomment");
    accepted(MY, "SELECT 1 --\ncomment");
    accepted(MY, "SELECT 1 --\r\n");
    // PostgreSQL and SQLite: `--` always starts a comment, but its text is blanked
    // by the scanner, and a Unicode space outside it is refused.
    for engine in [PG, LITE] {
        accepted(engine, "SELECT 1 --x");
        accepted(engine, "SELECT 1 --\u{a0}, pg_sleep(5)");
        assert!(
            lexical(engine, "SELECT\u{a0}1")
                .construct
                .contains("U+00A0")
        );
    }
}

#[test]
fn non_ascii_and_control_characters_outside_quotes_are_refused() {
    for c in [
        '\u{a0}', '\u{2000}', '\u{200b}', '\u{feff}', '\u{2028}', '\u{0}', '\u{b}', '\u{c}',
        '\u{1b}', 'é',
    ] {
        let sql = format!("SELECT{c}1");
        for engine in ALL {
            let l = lexical(engine, &sql);
            assert!(
                l.construct.contains(&format!("U+{:04X}", c as u32)),
                "{c:?}: {l}"
            );
            assert_eq!((l.line, l.column), (1, 7), "{c:?}");
        }
    }
    // Inside literals and quoted names they are data.
    for engine in [PG, LITE] {
        accepted(engine, "SELECT '\u{a0}\u{200b}', \"na\u{a0}me\" FROM t");
    }
    accepted(MY, "SELECT '\u{a0}', `na\u{a0}me` FROM t");
    // NUL is refused even there.
    for engine in ALL {
        assert!(
            lexical(engine, "SELECT 'a\u{0}b'")
                .construct
                .contains("U+0000")
        );
        assert!(
            lexical(engine, "SELECT 1 /* \u{0} */")
                .construct
                .contains("U+0000")
        );
        assert!(
            lexical(engine, "SELECT 1 -- \u{0}")
                .construct
                .contains("U+0000")
        );
    }
}

#[test]
fn a_lone_carriage_return_is_refused_because_postgres_ends_comments_there() {
    for engine in ALL {
        let l = lexical(engine, "SELECT 1 -- x\r, pg_sleep(5)");
        assert!(l.construct.contains("carriage return"), "{l}");
        let l = lexical(engine, "SELECT\r1");
        assert!(l.construct.contains("carriage return"), "{l}");
        accepted(engine, "SELECT 1 -- x\r\n, 2");
        accepted(engine, "SELECT\r\n1");
    }
}

#[test]
fn dollar_quoting_is_refused_but_postgres_placeholders_pass() {
    for sql in [
        "SELECT $$x$$",
        "SELECT $tag$ ; DROP TABLE t; $tag$",
        "SELECT $",
    ] {
        let l = lexical(PG, sql);
        assert!(l.construct.contains('$'), "{sql}: {l}");
    }
    accepted(PG, "SELECT $1, $2 FROM t WHERE a$b = $10");
    for engine in [MY, LITE] {
        assert!(lexical(engine, "SELECT $1").construct.contains('$'));
        accepted(engine, "SELECT a$b FROM t");
    }
    assert!(
        lexical(PG, "SELECT $1abc")
            .construct
            .contains("after a number")
    );
}

#[test]
fn nested_and_unterminated_block_comments_are_refused() {
    for engine in ALL {
        let l = lexical(engine, "SELECT 1 /* outer /* inner */ , pg_sleep(5) */");
        assert!(l.construct.contains("inside a block comment"), "{l}");
        assert_eq!(l.column, 19);
        let l = lexical(engine, "SELECT 1 /* never closed");
        assert!(l.construct.contains("unterminated block comment"), "{l}");
        assert_eq!(l.column, 10);
        accepted(engine, "SELECT 1 /* a * / b */");
        accepted(engine, "SELECT 1 /**/");
    }
}

#[test]
fn mysql_backslashes_in_strings_are_refused_since_their_meaning_depends_on_the_server() {
    for sql in [
        "SELECT 'a\\' , SLEEP(5), '",
        "SELECT \"a\\\" , SLEEP(5), \"",
        "SELECT * FROM t WHERE a LIKE '%\\_%'",
    ] {
        let l = lexical(MY, sql);
        assert!(
            l.construct.contains("backslash inside a MySQL string"),
            "{sql}: {l}"
        );
    }
    // In a quoted name it is a plain character; PostgreSQL and SQLite strings
    // have no backslash escapes.
    accepted(MY, "SELECT `a\\b` FROM t");
    accepted(PG, "SELECT 'a\\'");
    accepted(LITE, "SELECT 'a\\'");
}

#[test]
fn hash_backslash_braces_and_backticks_are_refused_where_engines_disagree() {
    for engine in [MY, LITE] {
        assert!(
            lexical(engine, "SELECT 1 # , SLEEP(5)")
                .construct
                .contains('#')
        );
    }
    for engine in ALL {
        assert!(
            lexical(engine, "SELECT \\N")
                .construct
                .contains("backslash")
        );
        assert!(
            lexical(engine, "SELECT {fn lower('A')}")
                .construct
                .contains('{')
        );
    }
    assert!(lexical(PG, "SELECT `a` FROM t").construct.contains('`'));
    assert!(lexical(MY, "SELECT a@b FROM t").construct.contains('@'));
    accepted(MY, "SELECT @@version_comment, @x");
}

#[test]
fn numbers_glued_to_letters_are_refused() {
    for engine in ALL {
        for sql in [
            "SELECT 1e1sleep(5)",
            "SELECT 0x1g",
            "SELECT 123abc",
            "SELECT 1.5.x",
            "SELECT 1_000",
        ] {
            let l = lexical(engine, sql);
            assert!(
                l.construct.contains("after a number"),
                "{engine:?} {sql}: {l}"
            );
        }
        accepted(
            engine,
            "SELECT 1e5, 1E+5, 1.5e-3, 0x1F, 0b101, 1., .5 FROM t",
        );
    }
}

#[test]
fn unterminated_literals_are_refused_lexically() {
    for engine in ALL {
        assert!(
            lexical(engine, "SELECT 'abc")
                .construct
                .contains("unterminated")
        );
    }
    assert!(
        lexical(PG, "SELECT \"abc")
            .construct
            .contains("unterminated")
    );
    assert!(
        lexical(LITE, "SELECT [abc")
            .construct
            .contains("unterminated")
    );
    assert!(
        lexical(MY, "SELECT `abc")
            .construct
            .contains("unterminated")
    );
}

#[test]
fn comments_never_reach_the_parser() {
    // The scanner blanks comments itself: whatever sqlparser would make of the
    // comment text, it sees only spaces there.
    let scanned = lexical::scan(PG, "SELECT 1 /* x */ -- y\n+ 2", 100).expect("scans");
    assert_eq!(
        scanned.text,
        "SELECT 1         -- y\n+ 2".replace("-- y", "    ")
    );
    assert_eq!(scanned.tokens, 4);
}

#[test]
fn too_many_tokens_are_refused_naming_the_setting() {
    let guard = ReadOnlyGuard::new(PG, false, BTreeSet::new(), 5);
    assert!(guard.check("SELECT 1, 2").is_ok());
    let refusal = guard.check("SELECT 1, 2, 3").expect_err("7 tokens");
    assert_eq!(refusal, Refusal::TooLong { max_tokens: 5 });
    assert!(
        refusal.to_string().contains("DB_MAX_SQL_TOKENS"),
        "{refusal}"
    );
}

#[test]
fn deep_operator_chains_are_refused_without_exhausting_the_stack() {
    // On a thread with a small stack, like a server worker: the guard must
    // answer, never overflow.
    for (unit, n) in [
        ("+1", 4000),
        ("::int", 1500),
        (" IS NULL", 3000),
        (" UNION SELECT 1", 2000),
        (" AND a = 1", 2400),
    ] {
        let sql = format!("SELECT 1{}", unit.repeat(n));
        let answer = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || guard(PG).check(&sql).map(drop))
            .expect("thread")
            .join()
            .expect("the guard must not overflow the stack");
        assert_eq!(answer, Err(Refusal::TooDeep), "{unit}");
    }
    // n additions nest n + 1 deep: the bound is exact.
    accepted(PG, &format!("SELECT 1{}", "+1".repeat(MAX_DEPTH - 1)));
    assert!(refusal(PG, &format!("SELECT 1{}", "+1".repeat(MAX_DEPTH))) == Refusal::TooDeep);
}

#[test]
fn functions_off_the_allow_list_are_refused_in_every_position() {
    // One unknown function in each place a call can hide.
    for sql in [
        "SELECT evil_fn(1)",
        "SELECT * FROM evil_fn(1)",
        "SELECT * FROM t WHERE a = evil_fn(1)",
        "SELECT * FROM t ORDER BY evil_fn(a)",
        "SELECT a FROM t GROUP BY evil_fn(a)",
        "SELECT count(*) FROM t HAVING evil_fn(count(*)) > 0",
        "SELECT sum(a) OVER (PARTITION BY evil_fn(b)) FROM t",
        "SELECT * FROM t JOIN u ON evil_fn(t.a) = u.b",
        "SELECT (SELECT evil_fn(1))",
        "SELECT * FROM (SELECT evil_fn(1)) AS s",
        "WITH c AS (SELECT evil_fn(1)) SELECT * FROM c",
        "SELECT 1 UNION SELECT evil_fn(1)",
        "SELECT lower(upper(evil_fn(1)))",
        "SELECT CASE WHEN evil_fn(1) THEN 1 END",
        "SELECT CAST(evil_fn(1) AS int)",
        "SELECT * FROM t WHERE a IN (SELECT evil_fn(1))",
        "SELECT * FROM t WHERE EXISTS (SELECT evil_fn(1))",
        "SELECT count(*) FILTER (WHERE evil_fn(a)) FROM t",
        "VALUES (evil_fn(1))",
        "EXPLAIN SELECT evil_fn(1)",
        "SELECT * FROM t, LATERAL evil_fn(t.a) AS f",
    ] {
        assert_eq!(unknown_function(PG, sql), "evil_fn", "{sql}");
    }
    let message = refusal(PG, "SELECT Evil_Fn(1)").to_string();
    assert!(message.contains("evil_fn()"), "{message}");
    assert!(message.contains("DB_ALLOW_FUNCTIONS=evil_fn"), "{message}");
    assert!(message.contains("PostgreSQL"), "{message}");
    assert_eq!(unknown_function(MY, "SELECT x.evil_fn(1)"), "x.evil_fn");
    assert_eq!(
        unknown_function(LITE, "SELECT * FROM t WHERE evil_fn(a)"),
        "evil_fn"
    );
}

#[test]
fn sleeping_locking_and_sql_running_functions_are_denied_wherever_they_hide() {
    for (engine, sql, name) in [
        (PG, "SELECT pg_sleep(5)", "pg_sleep"),
        (PG, "SELECT * FROM pg_sleep(5)", "pg_sleep"),
        (
            PG,
            "SELECT * FROM t WHERE a = pg_catalog.pg_sleep(5)::text",
            "pg_catalog.pg_sleep",
        ),
        (PG, "SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
        (
            PG,
            "SELECT * FROM pg_try_advisory_lock(1)",
            "pg_try_advisory_lock",
        ),
        (
            PG,
            "SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM t')",
            "ts_stat",
        ),
        (
            PG,
            "SELECT query_to_xml('SELECT 1', true, true, '')",
            "query_to_xml",
        ),
        (
            PG,
            "SELECT ts_rewrite('a'::tsquery, 'SELECT 1')",
            "ts_rewrite",
        ),
        (PG, "SELECT set_config('a.b', 'c', false)", "set_config"),
        (PG, "SELECT \"pg_sleep\"(1)", "pg_sleep"),
        (MY, "SELECT SLEEP(5)", "sleep"),
        (MY, "SELECT `sleep`(5)", "sleep"),
        (MY, "SELECT GET_LOCK('x', 1)", "get_lock"),
        (MY, "SELECT BENCHMARK(1000000, md5('x'))", "benchmark"),
        (
            MY,
            "SELECT * FROM t WHERE LOAD_FILE('/etc/passwd') IS NULL",
            "load_file",
        ),
        (LITE, "SELECT load_extension('x')", "load_extension"),
        (LITE, "SELECT writefile('/tmp/x', 'y')", "writefile"),
    ] {
        assert_eq!(denied_function(engine, sql), name, "{sql}");
    }
    let message = refusal(PG, "SELECT pg_sleep(1)").to_string();
    assert!(message.contains("no setting re-enables it"), "{message}");
}

#[test]
fn the_operator_allows_more_functions_but_never_denied_ones() {
    let extra = functions::parse_allowed(&["my_score".to_owned()]).expect("valid");
    let guard = ReadOnlyGuard::new(PG, false, extra, DEFAULT_MAX_TOKENS);
    assert!(guard.check("SELECT my_score(a) FROM t").is_ok());
    assert!(
        ReadOnlyGuard::strict(PG)
            .check("SELECT my_score(a) FROM t")
            .is_err()
    );
    // Even an allow-list that somehow holds a denied name does not let it through.
    let forced = BTreeSet::from(["pg_sleep".to_owned()]);
    let guard = ReadOnlyGuard::new(PG, false, forced, DEFAULT_MAX_TOKENS);
    assert_eq!(
        guard.check("SELECT pg_sleep(1)").map(drop),
        Err(Refusal::DeniedFunction("pg_sleep".to_owned()))
    );
}

#[test]
fn explain_analyze_in_every_spelling_follows_the_setting() {
    let analyzing = [
        (PG, "EXPLAIN ANALYZE SELECT 1"),
        (PG, "EXPLAIN (ANALYZE) SELECT 1"),
        (PG, "EXPLAIN (ANALYZE true, BUFFERS) SELECT 1"),
        (PG, "EXPLAIN (analyze 1) SELECT 1"),
        (PG, "EXPLAIN (FORMAT JSON, ANALYZE on) SELECT 1"),
        (PG, "EXPLAIN (ANALYZE false) SELECT 1"),
        (MY, "EXPLAIN ANALYZE SELECT 1"),
    ];
    for (engine, sql) in analyzing {
        assert_eq!(refusal(engine, sql), Refusal::ExplainAnalyze, "{sql}");
        let allowing = ReadOnlyGuard::new(engine, true, BTreeSet::new(), DEFAULT_MAX_TOKENS);
        assert!(allowing.check(sql).is_ok(), "{sql}");
    }
    assert!(
        refusal(PG, "EXPLAIN ANALYZE SELECT 1")
            .to_string()
            .contains("DB_EXPLAIN_ANALYZE=false")
    );
    // MariaDB's ANALYZE statement runs the query too: refused whatever the setting.
    let allowing = ReadOnlyGuard::new(MY, true, BTreeSet::new(), DEFAULT_MAX_TOKENS);
    assert!(allowing.check("ANALYZE SELECT 1").is_err());
    assert!(allowing.check("ANALYZE TABLE t").is_err());
    // Unknown EXPLAIN options are refused; analyzing a write never passes.
    assert!(matches!(
        refusal(PG, "EXPLAIN (FOO) SELECT 1"),
        Refusal::Construct(_)
    ));
    let allowing = ReadOnlyGuard::new(PG, true, BTreeSet::new(), DEFAULT_MAX_TOKENS);
    assert_eq!(
        allowing.check("EXPLAIN ANALYZE DELETE FROM t").map(drop),
        Err(Refusal::ExplainNonQuery("DELETE".to_owned()))
    );
    assert_eq!(
        allowing
            .check("EXPLAIN (ANALYZE) WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x")
            .map(drop),
        Err(Refusal::DataModifying("INSERT".to_owned()))
    );
}

#[test]
fn a_field_of_a_parenthesised_value_is_refused_since_postgres_calls_it() {
    // `(5.0).pg_sleep` is pg_sleep(5.0) for PostgreSQL.
    for sql in [
        "SELECT (5.0).pg_sleep",
        "SELECT (424242::bigint).pg_advisory_lock",
        "SELECT (x).pg_sleep FROM (SELECT 1.0 AS x) t",
        "SELECT (t.x).f FROM t",
        "SELECT (a)[1].f FROM t",
    ] {
        assert!(
            matches!(refusal(PG, sql), Refusal::Construct(ref what) if what.contains("(x).name")),
            "{sql}"
        );
    }
    accepted(PG, "SELECT a[1], (a)[2], a[1:2] FROM t");
    accepted(PG, "SELECT t.a, s.t.a FROM s.t");
}

#[test]
fn with_insert_counts_as_a_write() {
    for engine in [PG, LITE] {
        let sql = "WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x";
        assert_eq!(
            refusal(engine, sql),
            Refusal::DataModifying("INSERT".to_owned())
        );
        assert!(is_insert(
            &super::check_single_statement(engine, sql).expect("parses")
        ));
    }
    assert_eq!(
        refusal(
            PG,
            "WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM x"
        ),
        Refusal::DataModifying("UPDATE".to_owned())
    );
    assert_eq!(
        refusal(
            PG,
            "SELECT * FROM (WITH y AS (DELETE FROM t RETURNING *) SELECT * FROM y) s"
        ),
        Refusal::DataModifying("DELETE".to_owned())
    );
}

#[test]
fn assignment_custom_operators_and_foreign_clauses_are_refused() {
    for (engine, sql) in [
        (MY, "SELECT @x := 1"),
        (PG, "SELECT 1 OPERATOR(pg_catalog.+) 2"),
        (PG, "SELECT * FROM t FOR SHARE"),
        (MY, "SELECT * FROM t LOCK IN SHARE MODE"),
        (PG, "SELECT * INTO TEMP x FROM t"),
        (MY, "SELECT * FROM t INTO OUTFILE '/tmp/x'"),
    ] {
        let refusal = refusal(engine, sql);
        assert!(
            matches!(refusal, Refusal::Construct(_) | Refusal::Parse { .. }),
            "{sql}: {refusal:?}"
        );
    }
}

#[test]
fn mariadb_set_statement_cannot_lift_the_timeout_of_a_query() {
    let refusal = refusal(
        MY,
        "SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(30)",
    );
    assert!(
        matches!(refusal, Refusal::NotReadOnly { .. } | Refusal::Parse { .. }),
        "{refusal:?}"
    );
}

#[test]
fn refusals_name_the_statement_kind_from_the_text() {
    assert_eq!(
        refusal(PG, "/* x */ DROP TABLE t"),
        Refusal::NotReadOnly {
            kind: "DROP TABLE".to_owned(),
            write: true
        }
    );
    assert_eq!(
        refusal(PG, "SET search_path = x"),
        Refusal::NotReadOnly {
            kind: "SET".to_owned(),
            write: false
        }
    );
    assert!(
        !refusal(PG, "SET x = 1")
            .to_string()
            .contains("Execute tool")
    );
    assert!(
        refusal(PG, "DELETE FROM t")
            .to_string()
            .contains("Execute tool")
    );
    assert_eq!(leading_words("  ; "), "this statement");
    assert_eq!(
        refusal(MY, "REPLACE INTO t VALUES (1)"),
        Refusal::NotReadOnly {
            kind: "REPLACE INTO (INSERT)".to_owned(),
            write: true
        }
    );
    assert_eq!(refusal(PG, ""), Refusal::Empty);
}

// ---- Properties over generated input (PROPTEST_CASES raises the 256 default).

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Separators between the tokens of a payload. Every one either keeps the
    /// payload live on every engine (whitespace, closed comments) or is a form
    /// the lexical pass refuses; none comments the payload out.
    fn separator() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            " ",
            "  ",
            "\t",
            "\n",
            "\r\n",
            "/* c */",
            "/**/",
            " -- c\n",
            "--\n",
            "/*! */",
            "/*M! */",
            "/*+ */",
            "/* /* */ */",
            "\u{a0}",
            "\u{2003}",
            "\u{200b}",
            "\u{feff}",
            "\r",
            "\u{0}",
            " --\u{a0}\n",
            " # c\n",
            "\u{b}",
        ])
    }

    /// A call that sleeps or locks, spelled in the ways engines accept.
    fn dangerous_call() -> impl Strategy<Value = String> + Clone {
        let names = prop::sample::select(vec![
            "pg_sleep",
            "PG_SLEEP",
            "\"pg_sleep\"",
            "pg_catalog.pg_sleep",
            "pg_catalog . pg_sleep",
            "U&\"pg\\005fsleep\"",
            "u&\"pg\\005fadvisory_lock\"",
            "pg_advisory_lock",
            "pg_try_advisory_xact_lock",
            "sleep",
            "SLEEP",
            "`sleep`",
            "get_lock",
            "benchmark",
            "load_extension",
            "ts_stat",
        ]);
        let args = prop::sample::select(vec!["(5)", "('x', 1)", "( 1 )"]);
        (names, args).prop_map(|(n, a)| format!("{n}{a}"))
    }

    /// A statement that writes or calls something dangerous, live on every engine.
    fn hostile() -> impl Strategy<Value = Vec<String>> {
        let call = dangerous_call();
        prop_oneof![
            Just(vec!["DELETE", "FROM", "accounts"]).prop_map(words),
            Just(vec!["UPDATE", "accounts", "SET", "balance", "=", "0"]).prop_map(words),
            Just(vec!["INSERT", "INTO", "accounts", "VALUES", "(9)"]).prop_map(words),
            Just(vec!["DROP", "TABLE", "accounts"]).prop_map(words),
            Just(vec!["CREATE", "TABLE", "x", "(a", "int)"]).prop_map(words),
            Just(vec![
                "WITH",
                "x",
                "AS",
                "(SELECT 1)",
                "INSERT",
                "INTO",
                "t",
                "SELECT",
                "*",
                "FROM",
                "x"
            ])
            .prop_map(words),
            call.clone().prop_map(|c| vec!["SELECT".to_owned(), c]),
            call.clone()
                .prop_map(|c| vec!["SELECT".into(), "*".into(), "FROM".into(), c]),
            call.clone().prop_map(|c| vec![
                "SELECT".into(),
                "1".into(),
                "FROM".into(),
                "t".into(),
                "WHERE".into(),
                "a".into(),
                "=".into(),
                c
            ]),
            call.clone().prop_map(|c| vec![
                "SELECT".into(),
                "*".into(),
                "FROM".into(),
                "(SELECT".into(),
                c,
                ")".into(),
                "s".into()
            ]),
            call.clone().prop_map(|c| vec![
                "WITH".into(),
                "w".into(),
                "AS".into(),
                "(SELECT".into(),
                c,
                ")".into(),
                "SELECT".into(),
                "1".into()
            ]),
            call.prop_map(|c| vec!["SELECT".into(), "1".into(), "ORDER".into(), "BY".into(), c]),
        ]
    }

    fn words(list: Vec<&str>) -> Vec<String> {
        list.into_iter().map(str::to_owned).collect()
    }

    /// Optional text around the payload that keeps it live: a statement before
    /// it, EXPLAIN ANALYZE, a trailing statement.
    fn framed() -> impl Strategy<Value = String> {
        let prefix = prop::sample::select(vec!["", "", "SELECT 1;", "EXPLAIN ANALYZE", "EXPLAIN"]);
        let suffix = prop::sample::select(vec!["", "", ";", "; SELECT 1", " -- tail"]);
        (
            prefix,
            hostile(),
            prop::collection::vec(separator(), 16),
            suffix,
        )
            .prop_map(|(prefix, payload, seps, suffix)| {
                let mut sql = prefix.to_owned();
                for (i, token) in payload.iter().enumerate() {
                    sql.push_str(seps[i % seps.len()]);
                    sql.push_str(token);
                }
                sql.push_str(suffix);
                sql
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]

        #[test]
        fn arbitrary_text_never_panics_the_guard(sql in "\\PC{0,200}") {
            for engine in ALL {
                let _ = guard(engine).check(&sql);
            }
        }

        #[test]
        fn arbitrary_sql_like_text_never_panics_the_guard(
            sql in "[ -~\\t\\n\\r\u{a0}\u{200b}]{0,120}"
        ) {
            for engine in ALL {
                let _ = guard(engine).check(&sql);
                let _ = lexical::scan(engine, &sql, 50);
            }
        }

        #[test]
        fn writes_and_dangerous_calls_are_refused_however_they_are_dressed(sql in framed()) {
            for engine in ALL {
                let answer = guard(engine).check(&sql).map(|s| s.to_string());
                prop_assert!(answer.is_err(), "{:?} accepted {:?} as {:?}", engine, sql, answer);
            }
        }
    }
}

// ---- The tree walk alone, on trees the lexical pass or the three dialects'
// parsers never produce: every refusing branch must still refuse (a walk that
// let everything through would pass the tests above only by luck).

mod walk {
    use sqlparser::dialect::{
        BigQueryDialect, ClickHouseDialect, DuckDbDialect, GenericDialect, HiveDialect,
        MsSqlDialect, RedshiftSqlDialect, SnowflakeDialect,
    };

    use super::*;

    fn walked(dialect: &dyn Dialect, sql: &str) -> Result<(), Refusal> {
        let statement = single(Parser::parse_sql(dialect, sql).expect("parses")).expect("one");
        ReadOnlyGuard::strict(PG).walk(sql, &statement)
    }

    fn refused_construct(dialect: &dyn Dialect, sql: &str) -> String {
        match walked(dialect, sql) {
            Err(Refusal::Construct(what)) => what,
            other => panic!("{sql}: expected a refused construct, got {other:?}"),
        }
    }

    #[test]
    fn literals_the_lexical_pass_refuses_are_refused_by_the_walk_too() {
        for sql in [
            "SELECT E'x'",
            "SELECT U&'x'",
            "SELECT $$x$$",
            "SELECT $t$x$t$",
        ] {
            assert!(
                refused_construct(&PostgreSqlDialect {}, sql).contains("string literal"),
                "{sql}"
            );
        }
        assert!(refused_construct(&BigQueryDialect {}, "SELECT r'x'").contains("raw"));
        assert_eq!(
            walked(&PostgreSqlDialect {}, "SELECT 'x', 1, true, NULL, $1"),
            Ok(())
        );
    }

    #[test]
    fn other_dialects_clauses_are_refused_one_by_one() {
        let cases: [(&dyn Dialect, &str); 13] = [
            (&MsSqlDialect {}, "SELECT TOP 5 a FROM t"),
            (&RedshiftSqlDialect {}, "SELECT a, b EXCLUDE b FROM t"),
            (
                &HiveDialect {},
                "SELECT a FROM t LATERAL VIEW explode(b) x AS c",
            ),
            (&ClickHouseDialect {}, "SELECT a FROM t PREWHERE a = 1"),
            (
                &SnowflakeDialect {},
                "SELECT a FROM t START WITH a = 1 CONNECT BY PRIOR a = b",
            ),
            (&HiveDialect {}, "SELECT a FROM t CLUSTER BY a"),
            (&HiveDialect {}, "SELECT a FROM t DISTRIBUTE BY a"),
            (&HiveDialect {}, "SELECT a FROM t SORT BY a"),
            (&SnowflakeDialect {}, "SELECT a FROM t QUALIFY a = 1"),
            (&BigQueryDialect {}, "SELECT AS STRUCT 1 AS a"),
            (&DuckDbDialect {}, "FROM t SELECT a"),
            (&MsSqlDialect {}, "SELECT a FROM t FOR XML RAW"),
            (
                &ClickHouseDialect {},
                "SELECT a FROM t SETTINGS max_threads = 1",
            ),
        ];
        for (dialect, sql) in cases {
            refused_construct(dialect, sql);
        }
        refused_construct(&ClickHouseDialect {}, "SELECT a FROM t FORMAT JSON");
        refused_construct(&BigQueryDialect {}, "FROM t |> SELECT a");
        refused_construct(&MsSqlDialect {}, "SELECT a FROM t WITH (NOLOCK)");
        refused_construct(
            &BigQueryDialect {},
            "SELECT a FROM t FOR SYSTEM_TIME AS OF '2020-01-01'",
        );
        refused_construct(
            &SnowflakeDialect {},
            "SELECT * FROM t PIVOT (sum(a) FOR b IN ('x'))",
        );
        refused_construct(&ClickHouseDialect {}, "SELECT quantile(0.5)(a) FROM t");
        refused_construct(&GenericDialect {}, "SELECT {fn lower('A')}");
    }

    #[test]
    fn other_dialects_expressions_and_operators_are_refused() {
        for (dialect, sql) in [
            (&SnowflakeDialect {} as &dyn Dialect, "SELECT a:b FROM t"),
            (&BigQueryDialect {}, "SELECT STRUCT(1 AS a)"),
            (&DuckDbDialect {}, "SELECT {'a': 1}"),
            (&DuckDbDialect {}, "SELECT MAP {'a': 1}"),
            (
                &SnowflakeDialect {},
                "SELECT a FROM t, u WHERE t.a = u.b (+)",
            ),
            (
                &GenericDialect {},
                "SELECT a FROM t WHERE a = 1 OR b = 2 AND c := 1",
            ),
            (&PostgreSqlDialect {}, "SELECT 1 OPERATOR(pg_catalog.+) 2"),
            (&PostgreSqlDialect {}, "SELECT @-@ a FROM t"),
            (&PostgreSqlDialect {}, "SELECT # a FROM t"),
            (&PostgreSqlDialect {}, "SELECT a <-> b FROM t"),
        ] {
            let refusal = walked(dialect, sql);
            assert!(
                matches!(refusal, Err(Refusal::Construct(_))),
                "{sql}: {refusal:?}"
            );
        }
        for sql in [
            "SELECT -a, +a, NOT a, ~a, |/ a, ||/ a, @ a FROM t",
            "SELECT a || b, a ^ b, a # b FROM t",
        ] {
            assert_eq!(walked(&PostgreSqlDialect {}, sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn nested_statements_are_named_by_their_kind() {
        for (sql, name) in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DELETE FROM t", "DELETE"),
            (
                "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE",
                "MERGE",
            ),
            ("CREATE TABLE t (a int)", "CREATE TABLE"),
            ("DROP TABLE t", "DROP"),
            ("TRUNCATE t", "TRUNCATE"),
            ("ALTER TABLE t ADD COLUMN b int", "ALTER TABLE"),
            ("VACUUM", "a statement that is not a query"),
        ] {
            let statement = single(parse(PG, sql).expect("parses")).expect("one");
            assert_eq!(statement_name(&statement), name, "{sql}");
        }
    }

    #[test]
    fn set_operations_nest_up_to_the_bound() {
        let chain = |n: usize| format!("SELECT 1{}", " UNION SELECT 1".repeat(n));
        assert_eq!(guard(PG).check(&chain(MAX_DEPTH - 1)).map(drop), Ok(()));
        assert_eq!(
            guard(PG).check(&chain(MAX_DEPTH)).map(drop),
            Err(Refusal::TooDeep)
        );
        // INTERSECT binds tighter: its chain hangs on the right of the UNION.
        let right =
            |n: usize| format!("SELECT 1 UNION SELECT 1{}", " INTERSECT SELECT 1".repeat(n));
        assert_eq!(guard(PG).check(&right(MAX_DEPTH - 2)).map(drop), Ok(()));
        assert_eq!(
            guard(PG).check(&right(MAX_DEPTH - 1)).map(drop),
            Err(Refusal::TooDeep)
        );
    }

    #[test]
    fn a_lexical_refusal_at_the_token_bound_is_not_reported_as_too_long() {
        // Two tokens, then `#`: the refusal is the `#`, not the bound of 2.
        let guard = ReadOnlyGuard::new(MY, false, BTreeSet::new(), 2);
        assert!(matches!(
            guard.check("SELECT 1 #"),
            Err(Refusal::Lexical(_))
        ));
    }
}
