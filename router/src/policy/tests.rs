//! Every decision path of the policy, on the example policy and small variants.

use serde_json::{Value, json};

use super::*;

const EXAMPLE: &str = r#"
[[allow]]
tools = ["code_analysis_*"]
scopes = ["code:read"]
[[allow]]
tools = ["database_*"]
scopes = ["db:read"]
when = '"analysts" in jwt.groups'
"#;

fn principal(claims: Value) -> Principal {
    let Value::Object(map) = claims else {
        panic!("claims are an object")
    };
    Principal::from_claims(map).expect("sub")
}

fn tool<'a>(name: &'a str, connector: &'a str) -> ToolRef<'a> {
    ToolRef { name, connector }
}

fn no_args() -> Map<String, Value> {
    Map::new()
}

/// `value`, a JSON object, as a call's arguments.
fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments are an object, not {other}"),
    }
}

const QUERY: ToolRef<'static> = ToolRef {
    name: "database_query",
    connector: "database",
};
const SYMBOLS: ToolRef<'static> = ToolRef {
    name: "code_analysis_find_symbols",
    connector: "code_analysis",
};
const JIRA: ToolRef<'static> = ToolRef {
    name: "jira_create_issue",
    connector: "jira",
};

#[test]
fn without_groups_only_code_analysis_is_visible_and_database_is_hidden() {
    let policy = Policy::from_toml(EXAMPLE).expect("valid");
    let p = principal(json!({"sub": "dev", "scope": "code:read db:read"}));
    assert!(policy.visible(&p, &SYMBOLS));
    assert!(!policy.visible(&p, &QUERY));
    assert!(!policy.visible(&p, &JIRA));
    assert_eq!(
        policy.decide(&p, &SYMBOLS, &no_args()),
        Decision::Allow { rule: Some(1) }
    );
    assert_eq!(policy.decide(&p, &QUERY, &no_args()), Decision::Hidden);
    assert_eq!(policy.decide(&p, &JIRA, &no_args()), Decision::Hidden);
}

#[test]
fn an_analyst_without_db_read_sees_the_database_and_must_step_up() {
    let policy = Policy::from_toml(EXAMPLE).expect("valid");
    let p = principal(json!({"sub": "ana", "groups": ["analysts"], "scope": "code:read"}));
    assert!(policy.visible(&p, &QUERY), "listed so that step-up works");
    assert_eq!(
        policy.decide(&p, &QUERY, &no_args()),
        Decision::InsufficientScope(vec!["db:read".into()])
    );
    assert_eq!(
        policy.decide(&p, &SYMBOLS, &no_args()),
        Decision::Allow { rule: Some(1) }
    );
}

#[test]
fn an_analyst_with_db_read_is_allowed() {
    let policy = Policy::from_toml(EXAMPLE).expect("valid");
    let p = principal(json!({"sub": "ana", "groups": ["analysts"], "scp": ["db:read"]}));
    assert!(policy.visible(&p, &QUERY));
    assert_eq!(
        policy.decide(&p, &QUERY, &no_args()),
        Decision::Allow { rule: Some(2) }
    );
    // No code:read: code analysis is listed but needs a step-up.
    assert!(policy.visible(&p, &SYMBOLS));
    assert_eq!(
        policy.decide(&p, &SYMBOLS, &no_args()),
        Decision::InsufficientScope(vec!["code:read".into()])
    );
}

#[test]
fn without_a_policy_everything_is_allowed_and_listed() {
    let policy = Policy::allow_all();
    let p = principal(json!({"sub": "anyone"}));
    assert!(!policy.is_enforcing());
    assert!(policy.visible(&p, &JIRA));
    assert_eq!(
        policy.decide(&p, &JIRA, &no_args()),
        Decision::Allow { rule: None }
    );
    assert!(policy.scopes_supported().is_empty());
}

#[test]
fn an_empty_policy_denies_everything_over_http_but_not_over_stdio() {
    let policy = Policy::from_toml("").expect("valid");
    assert!(policy.is_enforcing() && policy.is_empty());
    let p = principal(json!({"sub": "u", "scope": "a"}));
    assert!(!policy.visible(&p, &JIRA));
    assert_eq!(policy.decide(&p, &JIRA, &no_args()), Decision::Hidden);
    let local = Principal::local();
    assert!(policy.visible(&local, &JIRA));
    assert_eq!(
        policy.decide(&local, &JIRA, &no_args()),
        Decision::Allow { rule: None }
    );
}

#[test]
fn a_rule_without_scopes_or_when_allows_every_token() {
    let policy = Policy::from_toml("[[allow]]\ntools = [\"jira_*\"]\n").expect("valid");
    let p = principal(json!({"sub": "u"}));
    assert_eq!(
        policy.decide(&p, &JIRA, &no_args()),
        Decision::Allow { rule: Some(1) }
    );
}

#[test]
fn every_listed_scope_is_needed() {
    let policy = Policy::from_toml(
        "[[allow]]\ntools = [\"jira_*\"]\nscopes = [\"jira:write\", \"jira:read\"]\n",
    )
    .expect("valid");
    let one = principal(json!({"sub": "u", "scope": "jira:read"}));
    assert_eq!(
        policy.decide(&one, &JIRA, &no_args()),
        Decision::InsufficientScope(vec!["jira:read".into(), "jira:write".into()])
    );
    let both = principal(json!({"sub": "u", "scope": "jira:write jira:read"}));
    assert_eq!(
        policy.decide(&both, &JIRA, &no_args()),
        Decision::Allow { rule: Some(1) }
    );
}

#[test]
fn step_up_names_the_rule_needing_the_fewest_extra_scopes() {
    let policy = Policy::from_toml(
        r#"
[[allow]]
tools = ["jira_*"]
scopes = ["admin", "jira:write"]
[[allow]]
tools = ["jira_create_issue"]
scopes = ["jira:write", "x"]
[[allow]]
tools = ["jira_*"]
scopes = ["y", "z"]
"#,
    )
    .expect("valid");
    let p = principal(json!({"sub": "u", "scope": "x"}));
    assert_eq!(
        policy.decide(&p, &JIRA, &no_args()),
        Decision::InsufficientScope(vec!["jira:write".into(), "x".into()])
    );
    let q = principal(json!({"sub": "u", "scope": "admin"}));
    assert_eq!(
        policy.decide(&q, &JIRA, &no_args()),
        Decision::InsufficientScope(vec!["admin".into(), "jira:write".into()]),
        "the rule lacking one scope, not those lacking two"
    );
}

#[test]
fn a_later_rule_allows_when_an_earlier_one_needs_scopes() {
    let policy = Policy::from_toml(
        "[[allow]]\ntools = [\"jira_*\"]\nscopes = [\"admin\"]\n[[allow]]\ntools = [\"jira_create_issue\"]\nscopes = [\"jira:write\"]\n",
    )
    .expect("valid");
    let p = principal(json!({"sub": "u", "scope": "jira:write"}));
    assert_eq!(
        policy.decide(&p, &JIRA, &no_args()),
        Decision::Allow { rule: Some(2) }
    );
}

#[test]
fn when_sees_tool_name_and_connector() {
    let policy = Policy::from_toml(
        "[[allow]]\ntools = [\"*\"]\nwhen = \"tool.connector == 'jira' && tool.name.endsWith('_issue')\"\n",
    )
    .expect("valid");
    let p = principal(json!({"sub": "u"}));
    assert_eq!(
        policy.decide(&p, &JIRA, &no_args()),
        Decision::Allow { rule: Some(1) }
    );
    assert_eq!(
        policy.decide(&p, &tool("jira_search", "jira"), &no_args()),
        Decision::Hidden
    );
    assert_eq!(
        policy.decide(&p, &tool("x_issue", "other"), &no_args()),
        Decision::Hidden
    );
}

#[test]
fn when_on_args_decides_the_call_but_not_the_listing() {
    let policy =
        Policy::from_toml("[[allow]]\ntools = [\"database_*\"]\nwhen = \"args.limit <= 100\"\n")
            .expect("valid");
    let p = principal(json!({"sub": "u"}));
    assert!(
        policy.visible(&p, &QUERY),
        "arguments are unknown when listing"
    );
    assert_eq!(
        policy.decide(&p, &QUERY, &object(json!({"limit": 10}))),
        Decision::Allow { rule: Some(1) }
    );
    assert_eq!(
        policy.decide(&p, &QUERY, &object(json!({"limit": 1000}))),
        Decision::Hidden
    );
    assert_eq!(
        policy.decide(&p, &QUERY, &object(json!({}))),
        Decision::Hidden,
        "a missing argument counts as false"
    );
}

#[test]
fn a_listing_uses_what_it_knows_of_a_when_that_reads_args() {
    let policy = Policy::from_toml(
        "[[allow]]\ntools = [\"database_*\"]\nwhen = 'args.limit <= 100 && \"analysts\" in jwt.groups'\n",
    )
    .expect("valid");
    let analyst = principal(json!({"sub": "a", "groups": ["analysts"]}));
    let outsider = principal(json!({"sub": "o", "groups": ["ops"]}));
    assert!(policy.visible(&analyst, &QUERY));
    assert!(
        !policy.visible(&outsider, &QUERY),
        "no arguments could let an outsider in"
    );
    assert_eq!(
        policy.decide(&analyst, &QUERY, &object(json!({"limit": 5}))),
        Decision::Allow { rule: Some(1) }
    );
    assert_eq!(
        policy.decide(&outsider, &QUERY, &object(json!({"limit": 5}))),
        Decision::Hidden
    );
}

#[test]
fn a_failing_when_counts_as_false_for_calls_and_listing() {
    let policy = Policy::from_toml(EXAMPLE).expect("valid");
    // `groups` is a string: `in` on it fails.
    let p = principal(json!({"sub": "u", "groups": "analysts", "scope": "db:read"}));
    assert!(!policy.visible(&p, &QUERY));
    assert_eq!(policy.decide(&p, &QUERY, &no_args()), Decision::Hidden);
}

#[test]
fn scopes_supported_is_every_rules_scopes_once_sorted() {
    let policy = Policy::from_toml(
        "[[allow]]\ntools = [\"a\"]\nscopes = [\"z\", \"b\"]\n[[allow]]\ntools = [\"b\"]\nscopes = [\"b\", \"a\"]\n",
    )
    .expect("valid");
    assert_eq!(policy.scopes_supported(), ["a", "b", "z"]);
}

fn rule_error(text: &str) -> (usize, String) {
    match Policy::from_toml(text) {
        Err(PolicyError::Rule { rule, reason }) => (rule, reason),
        other => panic!("expected a rule error, got {other:?}"),
    }
}

#[test]
fn bad_rules_are_refused_at_load_naming_the_rule_and_reason() {
    let (rule, reason) = rule_error(
        "[[allow]]\ntools = [\"a\"]\n[[allow]]\ntools = [\"b\"]\nwhen = \"jwt.groups.exists(\"\n",
    );
    assert_eq!(rule, 2);
    assert!(reason.contains("does not parse"), "{reason}");
    let (rule, reason) = rule_error("[[allow]]\ntools = [\"a\"]\nwhen = \"user.admin\"\n");
    assert_eq!(rule, 1);
    assert!(reason.contains("`user`"), "{reason}");
    let (_, reason) = rule_error("[[allow]]\ntools = []\n");
    assert!(reason.contains("`tools` is empty"), "{reason}");
    let (_, reason) = rule_error("[[allow]]\ntools = [\"\"]\n");
    assert!(reason.contains("glob"), "{reason}");
    let (_, reason) = rule_error("[[allow]]\ntools = [\"a\\u0000\"]\n");
    assert!(reason.contains("control"), "{reason}");
    for scope in ["", "a b", "a\"b", "a\\b", "é"] {
        let text = format!(
            "[[allow]]\ntools = [\"a\"]\nscopes = [{}]\n",
            toml::Value::from(scope)
        );
        let (_, reason) = rule_error(&text);
        assert!(
            reason.contains("not a valid OAuth scope"),
            "{scope:?}: {reason}"
        );
    }
}

#[test]
fn unknown_keys_and_bad_toml_are_refused() {
    assert!(matches!(
        Policy::from_toml("[[allow]]\ntools = [\"a\"]\nscope = [\"x\"]\n"),
        Err(PolicyError::Syntax(m)) if m.contains("scope")
    ));
    assert!(matches!(
        Policy::from_toml("[[deny]]\ntools = [\"a\"]\n"),
        Err(PolicyError::Syntax(_))
    ));
    assert!(matches!(
        Policy::from_toml("[[allow]\n"),
        Err(PolicyError::Syntax(_))
    ));
    assert!(
        matches!(Policy::from_toml("[[allow]]\nscopes = [\"a\"]\n"), Err(PolicyError::Syntax(m)) if m.contains("tools"))
    );
}

#[test]
fn sizes_are_bounded() {
    let many = "[[allow]]\ntools = [\"a\"]\n".repeat(MAX_RULES + 1);
    assert_eq!(
        Policy::from_toml(&many).err(),
        Some(PolicyError::TooManyRules { limit: MAX_RULES })
    );
    let patterns: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("t{i}")).collect();
    let text = format!("[[allow]]\ntools = {:?}\n", patterns);
    assert!(rule_error(&text).1.contains("more than 256 globs"));
    let long = format!(
        "[[allow]]\ntools = [\"{}\"]\n",
        "a".repeat(MAX_PATTERN_CHARS + 1)
    );
    assert!(rule_error(&long).1.contains("glob"));
    let huge = format!("# {}\n", "x".repeat(MAX_POLICY_BYTES as usize));
    assert!(matches!(
        Policy::from_toml(&huge),
        Err(PolicyError::TooLarge { .. })
    ));
}

#[test]
fn load_reads_a_file_and_refuses_an_oversized_or_missing_one() {
    let dir = std::env::temp_dir().join(format!("switchboard-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("good.toml");
    std::fs::write(&good, EXAMPLE).expect("write");
    assert_eq!(Policy::load(&good).expect("valid").len(), 2);
    let big = dir.join("big.toml");
    std::fs::write(&big, "#".repeat(MAX_POLICY_BYTES as usize + 1)).expect("write");
    assert!(matches!(
        Policy::load(&big),
        Err(PolicyError::TooLarge { .. })
    ));
    assert!(matches!(
        Policy::load(&dir.join("missing.toml")),
        Err(PolicyError::Read { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_describes_a_valid_policy_and_reports_a_broken_one() {
    let dir = std::env::temp_dir().join(format!("switchboard-policy-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("policy.toml");
    std::fs::write(&good, EXAMPLE).expect("write");
    let text = check(&good).expect("valid");
    assert!(text.contains("is valid: 2 rules"), "{text}");
    assert!(
        text.contains("rule 1: tools code_analysis_*; scopes code:read\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "rule 2: tools database_*; scopes db:read; when \"analysts\" in jwt.groups\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("scopes_supported: code:read db:read\n"),
        "{text}"
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[allow]]\ntools = [\"a\"]\nwhen = \"nope(1)\"\n").expect("write");
    let err = check(&bad).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "policy rule 1 ([[allow]] number 1): `when` calls the unknown function `nope`"
    );
    let empty = dir.join("empty.toml");
    std::fs::write(&empty, "").expect("write");
    assert!(
        check(&empty)
            .expect("valid")
            .contains("every HTTP call is denied")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_says_which_rule_allows_or_why_none_does() {
    let policy = Policy::from_toml(EXAMPLE).expect("valid");
    let analyst = json!({"sub": "ana", "groups": ["analysts"], "scope": "code:read"});
    let text = explain(&policy, &analyst, &QUERY, &no_args()).expect("explained");
    assert!(
        text.starts_with(
            "principal ana with scopes [code:read] calling database_query (connector database)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("rule 1: does not apply: no glob of [code_analysis_*] matches"),
        "{text}"
    );
    assert!(
        text.contains("rule 2: would allow with the missing scopes: db:read"),
        "{text}"
    );
    assert!(text.ends_with("decision: insufficient_scope: HTTP 403, a token with the scopes \"db:read\" would be allowed\n"), "{text}");

    let allowed = json!({"sub": "ana", "groups": ["analysts"], "scope": "db:read"});
    let text = explain(&policy, &allowed, &QUERY, &no_args()).expect("explained");
    assert!(text.contains("rule 2: allows"), "{text}");
    assert!(text.ends_with("decision: allow (rule 2)\n"), "{text}");

    let outsider = json!({"sub": "bob", "groups": ["ops"]});
    let text = explain(&policy, &outsider, &QUERY, &no_args()).expect("explained");
    assert!(
        text.contains("rule 2: does not apply: `when` \"analysts\" in jwt.groups is false"),
        "{text}"
    );
    assert!(text.contains("decision: hidden"), "{text}");

    let no_groups = json!({"sub": "bob"});
    let text = explain(&policy, &no_groups, &QUERY, &no_args()).expect("explained");
    assert!(text.contains("failed ("), "{text}");
    assert!(text.contains("which counts as false"), "{text}");

    assert!(explain(&policy, &json!({"scope": "x"}), &QUERY, &no_args()).is_err());
    assert!(explain(&policy, &json!([1]), &QUERY, &no_args()).is_err());
    let open = explain(&Policy::allow_all(), &allowed, &JIRA, &no_args()).expect("explained");
    assert!(open.ends_with("decision: allow\n"), "{open}");
}

#[test]
fn a_policy_of_one_mebibyte_is_accepted_from_text_and_file() {
    // 1 MiB exactly, written out rather than taken from the constant.
    let rule = "[[allow]]\ntools = [\"a\"]\n# ";
    let text = format!("{rule}{}", "x".repeat(1024 * 1024 - rule.len()));
    assert_eq!(text.len(), 1_048_576);
    assert_eq!(Policy::from_toml(&text).expect("at the bound").len(), 1);
    let dir = std::env::temp_dir().join(format!("switchboard-policy-mib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("policy.toml");
    std::fs::write(&file, &text).expect("write");
    assert_eq!(Policy::load(&file).expect("at the bound").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_oversized_file_is_refused_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("switchboard-policy-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let big = dir.join("big.toml");
    std::fs::write(&big, "#".repeat(1_048_577)).expect("write");
    assert_eq!(
        Policy::load(&big).err(),
        Some(PolicyError::TooLarge {
            path: big.display().to_string(),
            limit: 1_048_576
        })
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rules_globs_and_glob_lengths_are_accepted_up_to_their_bounds() {
    let many = "[[allow]]\ntools = [\"a\"]\n".repeat(MAX_RULES);
    assert_eq!(
        Policy::from_toml(&many).expect("at the bound").len(),
        MAX_RULES
    );
    let patterns: Vec<String> = (0..MAX_PATTERNS).map(|i| format!("t{i}")).collect();
    let text = format!("[[allow]]\ntools = {patterns:?}\n");
    assert!(Policy::from_toml(&text).is_ok(), "{MAX_PATTERNS} globs");
    let longest = format!(
        "[[allow]]\ntools = [\"{}\"]\n",
        "é".repeat(MAX_PATTERN_CHARS)
    );
    assert!(
        Policy::from_toml(&longest).is_ok(),
        "{MAX_PATTERN_CHARS} characters (more bytes)"
    );
}

#[test]
fn a_too_long_glob_is_refused_even_without_other_faults() {
    let long = format!(
        "[[allow]]\ntools = [\"{}\"]\n",
        "a".repeat(MAX_PATTERN_CHARS + 1)
    );
    let (rule, reason) = rule_error(&long);
    assert_eq!(rule, 1);
    assert!(reason.contains("1 to 256 characters"), "{reason}");
}

#[test]
fn a_policy_with_rules_enforces_them_and_is_not_empty() {
    let policy = Policy::from_toml(EXAMPLE).expect("valid");
    assert!(policy.is_enforcing());
    assert_eq!(policy.len(), 2);
    assert!(!policy.is_empty());
}

#[test]
fn the_debug_form_shows_the_rules() {
    let policy = Policy::from_toml(EXAMPLE).expect("valid");
    let shown = format!("{policy:?}");
    assert!(shown.starts_with("Policy"), "{shown}");
    assert!(
        shown.contains("code_analysis_*") && shown.contains("db:read"),
        "{shown}"
    );
}

use crate::testlog::warnings;

#[test]
fn a_failing_when_is_logged_once_per_rule_with_its_number() {
    let policy = Policy::from_toml(EXAMPLE).expect("valid");
    // `groups` is a string: `in` on it fails, for calls and listings alike.
    let p = principal(json!({"sub": "u", "groups": "analysts", "scope": "db:read"}));
    let logged = warnings(|| {
        for _ in 0..3 {
            assert_eq!(policy.decide(&p, &QUERY, &no_args()), Decision::Hidden);
            assert!(!policy.visible(&p, &QUERY));
        }
    });
    assert_eq!(
        logged.matches("policy condition failed").count(),
        1,
        "{logged}"
    );
    assert!(logged.contains("rule=2"), "{logged}");
    // A condition that is merely false is no failure.
    let q = principal(json!({"sub": "u", "groups": ["ops"]}));
    let fresh = Policy::from_toml(EXAMPLE).expect("valid");
    let logged = warnings(|| {
        assert_eq!(fresh.decide(&q, &QUERY, &no_args()), Decision::Hidden);
        assert!(!fresh.visible(&q, &QUERY));
    });
    assert!(logged.is_empty(), "{logged}");
}

#[test]
fn a_when_of_exactly_the_byte_bound_is_accepted() {
    let source = format!("jwt.a == '{}'", "x".repeat(condition::MAX_WHEN_BYTES - 11));
    assert_eq!(source.len(), 4096);
    let env = condition::environment();
    assert!(condition::Condition::compile(&env, &source).is_ok());
    let longer = format!("{source} ");
    let err = condition::Condition::compile(&env, &longer).expect_err("over the bound");
    assert_eq!(err, "`when` is longer than 4096 bytes");
}

#[test]
fn negation_and_unary_minus_are_operators_not_unknown_functions() {
    let env = condition::environment();
    for source in [
        "!('ops' in jwt.groups)",
        "-size(jwt.groups) < 0",
        "!has(jwt.email) || -jwt.level < -3",
    ] {
        let compiled = condition::Condition::compile(&env, source);
        assert!(compiled.is_ok(), "{source}: {:?}", compiled.err());
    }
}

#[test]
fn when_nesting_is_accepted_up_to_its_bound_and_refused_beyond_it() {
    let env = condition::environment();
    let depth = usize::from(condition::MAX_WHEN_DEPTH);
    // `_==_` over a chain of selects ending in `jwt`: one level per `.a`.
    let at = |levels: usize| format!("jwt{} == 1", ".a".repeat(levels));
    // `_==_`, 30 selects and `jwt`: 32 levels.
    let deepest = at(depth - 2);
    let compiled = condition::Condition::compile(&env, &deepest);
    assert!(compiled.is_ok(), "{deepest}: {:?}", compiled.err());
    let beyond = condition::Condition::compile(&env, &at(depth - 1)).expect_err("too deep");
    assert_eq!(beyond, "`when` is nested more than 32 levels deep");
}

#[test]
fn on_a_tie_in_missing_scopes_step_up_names_the_first_rule() {
    let policy = Policy::from_toml(
        "[[allow]]\ntools = [\"jira_*\"]\nscopes = [\"admin\", \"jira:write\"]\n[[allow]]\ntools = [\"jira_*\"]\nscopes = [\"y\", \"z\"]\n",
    )
    .expect("valid");
    // Both rules lack two scopes.
    let p = principal(json!({"sub": "u"}));
    assert_eq!(
        policy.decide(&p, &JIRA, &no_args()),
        Decision::InsufficientScope(vec!["admin".into(), "jira:write".into()])
    );
}

#[test]
fn only_the_variables_some_condition_reads_are_bound_and_decisions_stay_the_same() {
    let jwt_only =
        Policy::from_toml("[[allow]]\ntools = [\"t_*\"]\nwhen = '\"analysts\" in jwt.groups'\n")
            .expect("valid");
    assert_eq!(
        jwt_only.bound,
        Bound {
            jwt: true,
            tool: false,
            args: false
        }
    );
    let all = Policy::from_toml(
        "[[allow]]\ntools = [\"t_*\"]\nwhen = 'tool.connector == \"c\"'\n[[allow]]\ntools = [\"u_*\"]\nwhen = 'args.n < 3'\n[[allow]]\ntools = [\"v_*\"]\nwhen = 'jwt.sub == \"a\"'\n",
    )
    .expect("valid");
    assert_eq!(
        all.bound,
        Bound {
            jwt: true,
            tool: true,
            args: true
        }
    );
    let none =
        Policy::from_toml("[[allow]]\ntools = [\"t_*\"]\nscopes = [\"s\"]\n").expect("valid");
    assert_eq!(none.bound, Bound::default());
    let analyst = Principal::from_claims(
        serde_json::json!({"sub": "a", "groups": ["analysts"]})
            .as_object()
            .cloned()
            .expect("object"),
    )
    .expect("principal");
    let tool = ToolRef {
        name: "t_x",
        connector: "c",
    };
    let args = object(serde_json::json!({"n": 1}));
    assert!(matches!(
        jwt_only.decide(&analyst, &tool, &args),
        Decision::Allow { .. }
    ));
    assert!(matches!(
        all.decide(&analyst, &tool, &args),
        Decision::Allow { .. }
    ));
    let u = ToolRef {
        name: "u_x",
        connector: "other",
    };
    assert!(matches!(
        all.decide(&analyst, &u, &args),
        Decision::Allow { .. }
    ));
    assert_eq!(
        all.decide(&analyst, &u, &object(serde_json::json!({"n": 5}))),
        Decision::Hidden
    );
}

#[test]
fn shared_results_globs_are_accepted_up_to_their_bound_and_refused_beyond_it() {
    let globs = |n: usize| {
        let globs: Vec<String> = (0..n).map(|i| format!("t{i}_*")).collect();
        format!("shared_results = {globs:?}\n")
    };
    let at = Policy::from_toml(&globs(MAX_PATTERNS)).expect("at the bound");
    assert!(at.results_shared(&format!("t{}_x", MAX_PATTERNS - 1)));
    let over = Policy::from_toml(&globs(MAX_PATTERNS + 1)).expect_err("over the bound");
    assert_eq!(
        over.to_string(),
        format!("policy shared_results: has more than {MAX_PATTERNS} globs")
    );
}

#[test]
fn thousands_of_decisions_are_remembered_within_the_bound() {
    // Well under MAX_REMEMBERED_DECISIONS: every one is still remembered
    // after all were made (a much smaller cache would have evicted some).
    const TOOLS: usize = 4000;
    assert!((TOOLS as u64) < MAX_REMEMBERED_DECISIONS / 2);
    let policy =
        Policy::from_toml("[[allow]]\ntools = [\"t_*\"]\nwhen = '\"analysts\" in jwt.groups'\n")
            .expect("valid");
    let mut analyst = principal(json!({"sub": "a", "groups": ["analysts"]}));
    analyst.token = Some([7; 32]);
    let names: Vec<String> = (0..TOOLS).map(|i| format!("t_{i}")).collect();
    for name in &names {
        assert!(matches!(
            policy.decide(&analyst, &tool(name, "c"), &no_args()),
            Decision::Allow { .. }
        ));
    }
    if let Some(decisions) = &policy.decisions {
        decisions.run_pending_tasks();
    }
    // The same token with other claims: only a remembered decision allows.
    std::sync::Arc::make_mut(&mut analyst.claims).insert("groups".into(), json!([]));
    let forgotten = names
        .iter()
        .filter(|name| policy.decide(&analyst, &tool(name, "c"), &no_args()) == Decision::Hidden)
        .count();
    assert_eq!(forgotten, 0, "decisions forgotten within the bound");
}

#[test]
fn shared_results_name_the_tools_whose_results_are_the_same_for_everyone() {
    let policy =
        Policy::from_toml("shared_results = [\"code_analysis_*\"]\n[[allow]]\ntools = [\"*\"]\n")
            .expect("valid");
    assert!(policy.results_shared("code_analysis_scan"));
    assert!(!policy.results_shared("database_query"));
    assert!(!Policy::allow_all().results_shared("code_analysis_scan"));
    let bad = Policy::from_toml("shared_results = [\"\"]\n").expect_err("empty glob");
    assert!(
        bad.to_string()
            .starts_with("policy shared_results: the glob"),
        "{bad}"
    );
}

#[test]
fn decisions_are_remembered_per_token_only_while_no_condition_reads_args() {
    let jwt_only =
        Policy::from_toml("[[allow]]\ntools = [\"t_*\"]\nwhen = '\"analysts\" in jwt.groups'\n")
            .expect("valid");
    let tool = ToolRef {
        name: "t_x",
        connector: "c",
    };
    let none = no_args();
    let mut analyst = principal(json!({"sub": "a", "groups": ["analysts"]}));
    analyst.token = Some([7; 32]);
    assert!(matches!(
        jwt_only.decide(&analyst, &tool, &none),
        Decision::Allow { .. }
    ));
    // A token's claims never change; a principal pretending otherwise under
    // the same token shows the decision was remembered, and only for it.
    let mut pretender = analyst.clone();
    std::sync::Arc::make_mut(&mut pretender.claims).insert("groups".into(), json!([]));
    assert!(matches!(
        jwt_only.decide(&pretender, &tool, &none),
        Decision::Allow { .. }
    ));
    pretender.token = Some([8; 32]);
    assert_eq!(jwt_only.decide(&pretender, &tool, &none), Decision::Hidden);
    pretender.token = None;
    assert_eq!(jwt_only.decide(&pretender, &tool, &none), Decision::Hidden);
    let other = ToolRef {
        name: "u_x",
        connector: "c",
    };
    assert_eq!(
        jwt_only.decide(&analyst, &other, &none),
        Decision::Hidden,
        "remembered per tool"
    );
    // Names the catalog does not know (no connector) and overlong ones are
    // decided every time, never remembered.
    let unknown = ToolRef {
        name: "t_unknown",
        connector: "",
    };
    // The name alone is at the bound; with its connector, one byte over.
    let long_name = format!("t_{}", "x".repeat(MAX_REMEMBERED_NAME_BYTES - 2));
    let long = ToolRef {
        name: &long_name,
        connector: "c",
    };
    let mut changing = analyst.clone();
    changing.token = Some([9; 32]);
    for t in [&unknown, &long] {
        assert!(matches!(
            jwt_only.decide(&changing, t, &none),
            Decision::Allow { .. }
        ));
    }
    std::sync::Arc::make_mut(&mut changing.claims).insert("groups".into(), json!([]));
    for t in [&unknown, &long] {
        assert_eq!(
            jwt_only.decide(&changing, t, &none),
            Decision::Hidden,
            "{}: not remembered",
            t.name.len()
        );
    }

    let by_args =
        Policy::from_toml("[[allow]]\ntools = [\"t_*\"]\nwhen = 'args.n < 3'\n").expect("valid");
    assert!(matches!(
        by_args.decide(&analyst, &tool, &object(json!({"n": 1}))),
        Decision::Allow { .. }
    ));
    assert_eq!(
        by_args.decide(&analyst, &tool, &object(json!({"n": 5}))),
        Decision::Hidden,
        "a condition on the arguments is evaluated on every call"
    );
}

#[test]
fn a_policy_says_whether_its_conditions_read_arguments() {
    let reads = |text: &str| Policy::from_toml(text).expect("policy").reads_args();
    assert!(!reads(
        "[[allow]]\ntools = [\"*\"]\nwhen = '\"analysts\" in jwt.groups'\n"
    ));
    assert!(reads(
        "[[allow]]\ntools = [\"*\"]\nwhen = 'args.limit < 100'\n"
    ));
    assert!(!Policy::allow_all().reads_args());
}
