//! Which functions a read-only query may call: a per-engine allow-list of
//! side-effect-free functions, the operator's additions (`DB_ALLOW_FUNCTIONS`),
//! and a hard-denied set that no configuration re-enables.
//!
//! The guard cannot know what an arbitrary function does, so it only lets through
//! functions known to compute a value from their arguments and nothing else:
//! string, math, date/time, aggregate, window, JSON, conditional and array
//! functions. Anything else, including functions the database or an extension
//! adds later, is refused by name, and the message tells the operator how to
//! allow it. Functions that sleep, take locks, signal other sessions, change
//! settings or sequences, reach the server's files or other servers, or run SQL
//! given as text are hard-denied: listing one in `DB_ALLOW_FUNCTIONS` fails at
//! start, because the guard could never see what such a function does.
//!
//! Names are compared in lower case (unquoted SQL names are case-insensitive on
//! every engine); a name quoted with capitals on PostgreSQL is a different
//! function there and matches nothing. A schema-qualified name matches the
//! default lists only as `pg_catalog.<name>` on PostgreSQL; other qualified names
//! must be listed qualified in `DB_ALLOW_FUNCTIONS`.

use std::collections::BTreeSet;

use sqlparser::ast::{Ident, ObjectName};

use crate::engine::EngineKind;

/// Functions every engine's list shares: standard aggregates, window functions,
/// conditionals, math and the string functions all three have.
const COMMON: &[&str] = &[
    "abs",
    "acos",
    "asin",
    "atan",
    "atan2",
    "avg",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "coalesce",
    "concat",
    "concat_ws",
    "cos",
    "count",
    "cume_dist",
    "current_date",
    "current_time",
    "current_timestamp",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "lag",
    "last_value",
    "lead",
    "length",
    "ln",
    "localtime",
    "localtimestamp",
    "log",
    "log10",
    "lower",
    "ltrim",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "power",
    "radians",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sign",
    "sin",
    "sqrt",
    "substr",
    "substring",
    "sum",
    "tan",
    "trim",
    "upper",
];

/// PostgreSQL's side-effect-free functions beyond [`COMMON`].
const POSTGRES: &[&str] = &[
    "age",
    "array_agg",
    "array_append",
    "array_cat",
    "array_dims",
    "array_fill",
    "array_length",
    "array_lower",
    "array_ndims",
    "array_position",
    "array_positions",
    "array_prepend",
    "array_remove",
    "array_replace",
    "array_to_json",
    "array_to_string",
    "array_upper",
    "ascii",
    "bit_and",
    "bit_length",
    "bit_or",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "cbrt",
    "chr",
    "clock_timestamp",
    "corr",
    "cot",
    "covar_pop",
    "covar_samp",
    "current_catalog",
    "current_database",
    "current_role",
    "current_schema",
    "current_schemas",
    "current_user",
    "date",
    "date_bin",
    "date_part",
    "date_trunc",
    "decode",
    "div",
    "encode",
    "every",
    "factorial",
    "format_type",
    "gcd",
    "gen_random_uuid",
    "generate_series",
    "generate_subscripts",
    "greatest",
    "grouping",
    "initcap",
    "isfinite",
    "json_agg",
    "json_array_elements",
    "json_array_elements_text",
    "json_array_length",
    "json_build_array",
    "json_build_object",
    "json_each",
    "json_each_text",
    "json_extract_path",
    "json_extract_path_text",
    "json_object",
    "json_object_agg",
    "json_object_keys",
    "json_populate_record",
    "json_populate_recordset",
    "json_strip_nulls",
    "json_to_record",
    "json_to_recordset",
    "json_typeof",
    "jsonb_agg",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_array_length",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_object_agg",
    "jsonb_object_keys",
    "jsonb_path_exists",
    "jsonb_path_match",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_populate_record",
    "jsonb_populate_recordset",
    "jsonb_pretty",
    "jsonb_set",
    "jsonb_strip_nulls",
    "jsonb_to_record",
    "jsonb_to_recordset",
    "jsonb_typeof",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "lcm",
    "least",
    "left",
    "lpad",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "md5",
    "mode",
    "now",
    "num_nonnulls",
    "num_nulls",
    "percentile_cont",
    "percentile_disc",
    "pg_relation_size",
    "pg_size_pretty",
    "pg_table_size",
    "pg_total_relation_size",
    "pg_typeof",
    "phraseto_tsquery",
    "plainto_tsquery",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "random",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_substr",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "repeat",
    "reverse",
    "right",
    "row",
    "row_to_json",
    "rpad",
    "scale",
    "session_user",
    "setweight",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "split_part",
    "starts_with",
    "statement_timestamp",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "string_to_array",
    "string_to_table",
    "strpos",
    "timeofday",
    "timezone",
    "to_char",
    "to_date",
    "to_hex",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_timestamp",
    "to_tsquery",
    "to_tsvector",
    "transaction_timestamp",
    "translate",
    "trim_array",
    "trunc",
    "ts_headline",
    "ts_rank",
    "ts_rank_cd",
    "unnest",
    "user",
    "var_pop",
    "var_samp",
    "variance",
    "version",
    "websearch_to_tsquery",
    "width_bucket",
];

/// MySQL's and MariaDB's side-effect-free functions beyond [`COMMON`].
const MYSQL: &[&str] = &[
    "adddate",
    "addtime",
    "any_value",
    "ascii",
    "bin",
    "bit_and",
    "bit_count",
    "bit_length",
    "bit_or",
    "bit_xor",
    "char",
    "coalesce",
    "connection_id",
    "conv",
    "convert_tz",
    "cot",
    "crc32",
    "curdate",
    "current_user",
    "curtime",
    "database",
    "date",
    "date_add",
    "date_format",
    "date_sub",
    "datediff",
    "day",
    "dayname",
    "dayofmonth",
    "dayofweek",
    "dayofyear",
    "elt",
    "field",
    "find_in_set",
    "from_base64",
    "from_days",
    "from_unixtime",
    "greatest",
    "group_concat",
    "hex",
    "hour",
    "if",
    "ifnull",
    "inet_aton",
    "inet_ntoa",
    "instr",
    "isnull",
    "json_array",
    "json_arrayagg",
    "json_compact",
    "json_contains",
    "json_contains_path",
    "json_depth",
    "json_detailed",
    "json_exists",
    "json_extract",
    "json_keys",
    "json_length",
    "json_merge_patch",
    "json_merge_preserve",
    "json_object",
    "json_objectagg",
    "json_overlaps",
    "json_pretty",
    "json_query",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_search",
    "json_set",
    "json_type",
    "json_unquote",
    "json_valid",
    "json_value",
    "last_day",
    "lcase",
    "least",
    "left",
    "locate",
    "log2",
    "lpad",
    "makedate",
    "maketime",
    "md5",
    "median",
    "microsecond",
    "mid",
    "minute",
    "month",
    "monthname",
    "now",
    "oct",
    "ord",
    "percentile_cont",
    "percentile_disc",
    "period_add",
    "period_diff",
    "pow",
    "quarter",
    "quote",
    "rand",
    "regexp_instr",
    "regexp_like",
    "regexp_replace",
    "regexp_substr",
    "repeat",
    "reverse",
    "right",
    "rpad",
    "schema",
    "sec_to_time",
    "second",
    "session_user",
    "sha",
    "sha1",
    "sha2",
    "soundex",
    "space",
    "std",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "str_to_date",
    "strcmp",
    "subdate",
    "substring_index",
    "subtime",
    "system_user",
    "time",
    "time_format",
    "time_to_sec",
    "timediff",
    "timestamp",
    "timestampadd",
    "timestampdiff",
    "to_base64",
    "to_days",
    "to_seconds",
    "truncate",
    "ucase",
    "unhex",
    "unix_timestamp",
    "user",
    "utc_date",
    "utc_time",
    "utc_timestamp",
    "uuid",
    "var_pop",
    "var_samp",
    "variance",
    "version",
    "week",
    "weekday",
    "weekofyear",
    "year",
    "yearweek",
];

/// SQLite's side-effect-free functions beyond [`COMMON`] (core, date/time,
/// JSON, math, and the table-valued pragmas, which SQLite offers only for
/// pragmas that have no side effects).
const SQLITE: &[&str] = &[
    "char",
    "date",
    "datetime",
    "generate_series",
    "glob",
    "group_concat",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_each",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_tree",
    "json_type",
    "json_valid",
    "julianday",
    "like",
    "likelihood",
    "likely",
    "log2",
    "pow",
    "pragma_foreign_key_list",
    "pragma_index_info",
    "pragma_index_list",
    "pragma_table_info",
    "pragma_table_xinfo",
    "printf",
    "quote",
    "random",
    "soundex",
    "sqlite_version",
    "strftime",
    "string_agg",
    "time",
    "timediff",
    "total",
    "trunc",
    "typeof",
    "unicode",
    "unixepoch",
    "unlikely",
];

/// Functions no configuration may allow, on any engine: they sleep, take or
/// release locks, wait for other servers, signal or end other sessions, change
/// settings, sequences or server state, reach the server's files or other
/// servers, or run SQL given as text (which the guard cannot inspect).
const HARD_DENIED: &[&str] = &[
    // Sleeping, waiting and burning time.
    "benchmark",
    "master_gtid_wait",
    "master_pos_wait",
    "sleep",
    "source_pos_wait",
    "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids",
    // Locks.
    "get_lock",
    "is_free_lock",
    "is_used_lock",
    "release_all_locks",
    "release_lock",
    // Settings, sequences, transaction ids, other sessions, server state.
    "currval",
    "last_insert_id",
    "lastval",
    "nextval",
    "pg_cancel_backend",
    "pg_current_xact_id",
    "pg_export_snapshot",
    "pg_notify",
    "pg_promote",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_terminate_backend",
    "set_config",
    "setseed",
    "setval",
    "txid_current",
    // Files, large objects and other servers.
    "edit",
    "fts3_tokenizer",
    "load_extension",
    "load_file",
    "readfile",
    "writefile",
    // SQL given as text, run by the function.
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "database_to_xml",
    "database_to_xml_and_xmlschema",
    "database_to_xmlschema",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "schema_to_xml",
    "schema_to_xml_and_xmlschema",
    "schema_to_xmlschema",
    "table_to_xml",
    "table_to_xml_and_xmlschema",
    "table_to_xmlschema",
    "ts_rewrite",
    "ts_stat",
    "sys_eval",
    "sys_exec",
];

/// Prefixes of hard-denied families (PostgreSQL sleeping, advisory locks, large
/// objects, server files, replication and backups, statistics resets, logging,
/// dblink).
const HARD_DENIED_PREFIXES: &[&str] = &[
    "dblink",
    "lo_",
    "pg_advisory",
    "pg_backup",
    "pg_create_",
    "pg_drop_",
    "pg_file",
    "pg_import",
    "pg_log",
    "pg_ls_",
    "pg_read",
    "pg_replication",
    "pg_sleep",
    "pg_start",
    "pg_stat_file",
    "pg_stat_reset",
    "pg_stop",
    "pg_switch",
    "pg_try_advisory",
    "pg_wal",
    "pg_xact",
];

/// Whether `name` (lower case, unqualified) is hard-denied.
pub(crate) fn is_hard_denied(name: &str) -> bool {
    HARD_DENIED.contains(&name) || HARD_DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The default allow-list of one engine.
fn default_list(engine: EngineKind) -> &'static [&'static str] {
    match engine {
        EngineKind::Postgres => POSTGRES,
        EngineKind::MySql => MYSQL,
        EngineKind::Sqlite => SQLITE,
    }
}

/// Checks the names of `DB_ALLOW_FUNCTIONS` (already trimmed): each must be a
/// plain, optionally schema-qualified, ASCII name and not hard-denied. Returns
/// the names in lower case, or why one cannot be allowed.
pub fn parse_allowed(names: &[String]) -> Result<BTreeSet<String>, String> {
    let mut allowed = BTreeSet::new();
    for raw in names {
        let name = raw.trim().to_ascii_lowercase();
        let parts: Vec<&str> = name.split('.').collect();
        let well_formed = parts.len() <= 2
            && parts.iter().all(|part| {
                part.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
        if !well_formed {
            return Err(format!(
                "{raw:?} is not a function name (letters, digits and _, optionally schema.name)"
            ));
        }
        let last = parts.last().copied().unwrap_or_default();
        if is_hard_denied(last) {
            return Err(format!(
                "{raw} cannot be allowed: it sleeps, locks, changes settings or server state, reaches files or other servers, or runs SQL given as text"
            ));
        }
        allowed.insert(name);
    }
    Ok(allowed)
}

/// Why a function call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionRefusal {
    /// Hard-denied: never allowed.
    Denied(String),
    /// Not on the allow-list (the operator may add it).
    NotAllowed(String),
}

/// The functions one guard accepts.
#[derive(Debug, Clone)]
pub struct FunctionPolicy {
    engine: EngineKind,
    extra: BTreeSet<String>,
}

impl FunctionPolicy {
    /// The engine's default list plus `extra` (from [`parse_allowed`]).
    pub fn new(engine: EngineKind, extra: BTreeSet<String>) -> Self {
        Self { engine, extra }
    }

    /// Accepts a call of `name` when it is on the allow-list.
    pub fn check(&self, name: &ObjectName) -> Result<(), FunctionRefusal> {
        let mut parts = Vec::with_capacity(name.0.len());
        for part in &name.0 {
            match part.as_ident() {
                Some(ident) => parts.push(self.normalise(ident)),
                // A part that is itself a call (`f(x).g`): not a plain name.
                None => return Err(FunctionRefusal::NotAllowed(name.to_string())),
            }
        }
        let shown = parts.join(".");
        let Some(last) = parts.last() else {
            return Err(FunctionRefusal::NotAllowed(shown));
        };
        if is_hard_denied(last) {
            return Err(FunctionRefusal::Denied(shown));
        }
        if self.extra.contains(&shown) {
            return Ok(());
        }
        let bare = match parts.as_slice() {
            [only] => Some(only.as_str()),
            [schema, only] if self.engine == EngineKind::Postgres && schema == "pg_catalog" => {
                Some(only.as_str())
            }
            _ => None,
        };
        match bare {
            Some(bare) if COMMON.contains(&bare) || default_list(self.engine).contains(&bare) => {
                Ok(())
            }
            _ => Err(FunctionRefusal::NotAllowed(shown)),
        }
    }

    /// A name part as the engine resolves it: unquoted names fold to lower case
    /// everywhere; a quoted name keeps its case on PostgreSQL, where
    /// `"COUNT"` is not `count`.
    fn normalise(&self, ident: &Ident) -> String {
        if ident.quote_style.is_some() && self.engine == EngineKind::Postgres {
            ident.value.clone()
        } else {
            ident.value.to_ascii_lowercase()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(parts: &[&str]) -> ObjectName {
        ObjectName::from(parts.iter().map(|p| Ident::new(*p)).collect::<Vec<_>>())
    }

    fn policy(engine: EngineKind) -> FunctionPolicy {
        FunctionPolicy::new(engine, BTreeSet::new())
    }

    #[test]
    fn every_list_is_sorted_lowercase_and_free_of_hard_denied_names() {
        for list in [COMMON, POSTGRES, MYSQL, SQLITE] {
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "not sorted or duplicated"
            );
            for name in list {
                assert_eq!(*name, name.to_ascii_lowercase());
                assert!(!is_hard_denied(name), "{name} is hard-denied");
            }
        }
    }

    #[test]
    fn analyst_functions_are_allowed_on_their_engines() {
        let cases: [(EngineKind, &[&str]); 3] = [
            (
                EngineKind::Postgres,
                &[
                    "count",
                    "sum",
                    "avg",
                    "coalesce",
                    "date_trunc",
                    "now",
                    "string_agg",
                    "generate_series",
                    "jsonb_extract_path_text",
                    "substring",
                ],
            ),
            (
                EngineKind::MySql,
                &[
                    "count",
                    "group_concat",
                    "json_extract",
                    "date_format",
                    "ifnull",
                    "if",
                    "lower",
                ],
            ),
            (
                EngineKind::Sqlite,
                &[
                    "count",
                    "strftime",
                    "group_concat",
                    "json_extract",
                    "printf",
                    "upper",
                ],
            ),
        ];
        for (engine, names) in cases {
            for n in names {
                assert_eq!(policy(engine).check(&name(&[n])), Ok(()), "{engine:?} {n}");
                let upper = n.to_ascii_uppercase();
                assert_eq!(
                    policy(engine).check(&name(&[&upper])),
                    Ok(()),
                    "{engine:?} {upper}"
                );
            }
        }
    }

    #[test]
    fn engine_specific_functions_are_not_allowed_elsewhere() {
        assert_eq!(
            policy(EngineKind::Sqlite).check(&name(&["date_trunc"])),
            Err(FunctionRefusal::NotAllowed("date_trunc".into()))
        );
        assert!(
            policy(EngineKind::Postgres)
                .check(&name(&["group_concat"]))
                .is_err()
        );
        assert!(
            policy(EngineKind::MySql)
                .check(&name(&["strftime"]))
                .is_err()
        );
    }

    #[test]
    fn hard_denied_functions_are_refused_as_denied_even_qualified() {
        for n in [
            "pg_sleep",
            "pg_sleep_for",
            "pg_advisory_lock",
            "pg_try_advisory_xact_lock",
            "lo_import",
            "dblink_exec",
            "pg_read_file",
            "query_to_xml",
            "ts_stat",
            "ts_rewrite",
            "set_config",
            "nextval",
            "sleep",
            "get_lock",
            "load_file",
            "load_extension",
            "writefile",
        ] {
            for engine in [EngineKind::Postgres, EngineKind::MySql, EngineKind::Sqlite] {
                assert_eq!(
                    policy(engine).check(&name(&[n])),
                    Err(FunctionRefusal::Denied(n.into()))
                );
                assert_eq!(
                    policy(engine).check(&name(&["pg_catalog", n])),
                    Err(FunctionRefusal::Denied(format!("pg_catalog.{n}")))
                );
            }
        }
    }

    #[test]
    fn only_pg_catalog_qualifies_a_default_function() {
        let pg = policy(EngineKind::Postgres);
        assert_eq!(pg.check(&name(&["pg_catalog", "lower"])), Ok(()));
        assert_eq!(
            pg.check(&name(&["public", "lower"])),
            Err(FunctionRefusal::NotAllowed("public.lower".into()))
        );
        assert!(
            policy(EngineKind::MySql)
                .check(&name(&["pg_catalog", "lower"]))
                .is_err()
        );
        assert!(pg.check(&name(&["a", "pg_catalog", "lower"])).is_err());
    }

    #[test]
    fn a_quoted_capitalised_name_is_another_function_on_postgres_only() {
        let quoted = ObjectName::from(vec![Ident::with_quote('"', "COUNT")]);
        assert_eq!(
            policy(EngineKind::Postgres).check(&quoted),
            Err(FunctionRefusal::NotAllowed("COUNT".into()))
        );
        assert_eq!(policy(EngineKind::Sqlite).check(&quoted), Ok(()));
        let quoted = ObjectName::from(vec![Ident::with_quote('`', "COUNT")]);
        assert_eq!(policy(EngineKind::MySql).check(&quoted), Ok(()));
    }

    #[test]
    fn non_ascii_lookalikes_match_nothing() {
        // U+017F (long s) folds to "s" in some collations: never a match here.
        assert!(
            policy(EngineKind::MySql)
                .check(&name(&["\u{17f}um"]))
                .is_err()
        );
    }

    #[test]
    fn the_operator_can_allow_more_functions_plain_or_qualified() {
        let extra =
            parse_allowed(&["My_Func".to_owned(), "reports.Score".to_owned()]).expect("valid");
        let pg = FunctionPolicy::new(EngineKind::Postgres, extra);
        assert_eq!(pg.check(&name(&["my_func"])), Ok(()));
        assert_eq!(pg.check(&name(&["MY_FUNC"])), Ok(()));
        assert_eq!(pg.check(&name(&["reports", "score"])), Ok(()));
        assert!(pg.check(&name(&["score"])).is_err());
        assert!(pg.check(&name(&["other", "my_func"])).is_err());
    }

    #[test]
    fn hard_denied_or_malformed_names_cannot_be_allowed() {
        for bad in ["pg_sleep", "PG_ADVISORY_LOCK", "public.sleep", "ts_stat"] {
            let error = parse_allowed(&[bad.to_owned()]).expect_err(bad);
            assert!(error.contains("cannot be allowed"), "{error}");
        }
        for bad in ["a b", "a.b.c", "1abc", "f()", "", "sch.", "\u{17f}leep"] {
            let error = parse_allowed(&[bad.to_owned()]).expect_err(bad);
            assert!(error.contains("not a function name"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_name_part_that_is_not_an_identifier_is_refused() {
        let empty = ObjectName(vec![]);
        assert!(policy(EngineKind::Postgres).check(&empty).is_err());
    }
}
