//! `JIRA_PROJECTS`: the projects every tool is limited to.
//!
//! Issue and project arguments are checked by key, and, since Jira keeps the
//! old key of an issue moved to another project (or of a renamed project)
//! working, an issue key is also checked where Jira answers it
//! ([`ProjectScope::check_current`]): `OPS-5` may now be `SECRET-12`. What an
//! allowed issue shows of other issues (links, its parent) is withheld when
//! they are outside ([`ProjectScope::withhold_outside`]). JQL is wrapped as
//! `project in (A, B) AND (<query>)` with the query's `ORDER BY` kept at the end,
//! so no query can reach outside the allowed projects whatever it contains: the
//! query is read by [`jql::lex`] the way Jira reads it, and refused when its
//! structure could close the wrapper.

use crate::error::Error;
use crate::jira::jql::{self, Kind, Token};
use crate::jira::keys;

/// The allowed projects; empty means every project.
#[derive(Debug, Clone, Default)]
pub struct ProjectScope {
    keys: Vec<String>,
}

impl ProjectScope {
    /// A scope of these upper-case keys (empty: unrestricted).
    pub fn new(keys: Vec<String>) -> Self {
        Self { keys }
    }

    /// Whether any restriction applies.
    pub fn is_restricted(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The allowed keys.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Whether `project_key` (any case) may be used.
    pub fn allows(&self, project_key: &str) -> bool {
        !self.is_restricted()
            || self
                .keys
                .iter()
                .any(|k| k.eq_ignore_ascii_case(project_key))
    }

    fn refuse(&self, project: &str) -> Error {
        Error::ProjectNotAllowed {
            project: project.to_owned(),
            allowed: self.keys.join(", "),
        }
    }

    /// Checks an issue key argument (syntax and project). Numeric issue ids are
    /// accepted only when unrestricted, since their project is not visible.
    pub fn check_issue(&self, field: &'static str, key: &str) -> Result<String, Error> {
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::invalid(
                field,
                "is empty; give an issue key such as PROJ-123",
            ));
        }
        match keys::issue_key_project(key) {
            Some(project) if self.allows(&project) => Ok(key.to_ascii_uppercase()),
            Some(project) => Err(self.refuse(&project)),
            None if keys::is_numeric_id(key) && !self.is_restricted() => Ok(key.to_owned()),
            None if keys::is_numeric_id(key) => Err(Error::invalid(
                field,
                format!(
                    "{key:?} is an issue id; this connector is limited to some projects, so give the issue key (e.g. PROJ-123)"
                ),
            )),
            None => Err(Error::invalid(
                field,
                format!("{key:?} is not an issue key such as PROJ-123"),
            )),
        }
    }

    /// Checks the key Jira answered for the issue asked for as `asked`: the
    /// issue may have moved to a project outside since `asked` was its key.
    /// An answer whose key is no issue key at all is Jira's fault, said so.
    pub fn check_current(&self, asked: &str, current: &str) -> Result<(), Error> {
        if !self.is_restricted() {
            return Ok(());
        }
        match keys::issue_key_project(current) {
            Some(project) if self.allows(&project) => Ok(()),
            Some(_) => Err(Error::IssueMovedOut {
                key: asked.to_owned(),
                allowed: self.keys.join(", "),
            }),
            None => Err(Error::UnexpectedResponse {
                what: format!("issue {asked}"),
                reason: format!(
                    "Jira named it {:?}, which is not an issue key",
                    current.chars().take(64).collect::<String>()
                ),
            }),
        }
    }

    /// Leaves out what `issue` shows of issues outside the scope: links to
    /// them (key, summary and status) and a parent there.
    pub fn withhold_outside(&self, issue: &mut switchboard_proto::jira::v1::Issue) {
        if !self.is_restricted() {
            return;
        }
        let inside = |key: &str| keys::issue_key_project(key).is_some_and(|p| self.allows(&p));
        issue.links.retain(|link| inside(&link.issue_key));
        if !issue.parent_key.is_empty() && !inside(&issue.parent_key) {
            issue.parent_key.clear();
        }
    }

    /// Checks a project key argument (syntax and scope); returns it upper-cased.
    pub fn check_project(&self, field: &'static str, key: &str) -> Result<String, Error> {
        let key = key.trim();
        if keys::is_numeric_id(key) && !self.is_restricted() {
            return Ok(key.to_owned());
        }
        if !keys::is_project_key(key) {
            return Err(Error::invalid(
                field,
                format!("{key:?} is not a project key such as PROJ"),
            ));
        }
        let key = key.to_ascii_uppercase();
        if self.allows(&key) {
            Ok(key)
        } else {
            Err(self.refuse(&key))
        }
    }

    /// The JQL to run for `jql`: unchanged when unrestricted, otherwise limited
    /// to the allowed projects as `project in (...) AND (<query>)` with the
    /// `ORDER BY` clause kept last.
    ///
    /// The query is read token by token with [`jql::lex`], which sees quotes and
    /// parentheses where Jira does (and refuses what Jira could read differently),
    /// so the check is on the structure Jira will parse: parentheses that balance
    /// and never close more than they opened (the query cannot close the
    /// wrapper's parenthesis), and an `ORDER BY` clause of field names only.
    pub fn restrict_jql(&self, jql: &str) -> Result<String, Error> {
        if !self.is_restricted() {
            return Ok(jql.trim().to_owned());
        }
        let tokens = jql::lex(jql).map_err(|e| Error::invalid("jql", e.to_string()))?;
        let (query, order) = split_order_by(&tokens);
        check_balanced(query).map_err(|m| Error::invalid("jql", m))?;
        check_order_clause(order).map_err(|m| Error::invalid("jql", m))?;
        let projects = self
            .keys
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let query: String = query.iter().map(|t| t.text).collect();
        let query = query.trim();
        let mut out = format!("project in ({projects})");
        if !query.is_empty() {
            out.push_str(&format!(" AND ({query})"));
        }
        if !order.is_empty() {
            let order: String = order.iter().map(|t| t.text).collect();
            out.push(' ');
            out.push_str(order.trim());
        }
        Ok(out)
    }
}

/// Checks that the query's parentheses balance and never close one it did not
/// open (which would close the wrapper's).
fn check_balanced(query: &[Token<'_>]) -> Result<(), String> {
    let mut depth = 0usize;
    for token in query {
        match token.kind {
            Kind::Open => depth += 1,
            Kind::Close => {
                depth = depth
                    .checked_sub(1)
                    .ok_or("has a `)` without a matching `(`")?;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("has a `(` without a matching `)`".to_owned());
    }
    Ok(())
}

/// The `ORDER BY` clause holds field names (words, quoted names, `cf[10001]`),
/// commas and `ASC` / `DESC`: nothing that could add a condition.
fn check_order_clause(order: &[Token<'_>]) -> Result<(), String> {
    let allowed = |t: &Token<'_>| {
        matches!(t.kind, Kind::Word | Kind::Quoted | Kind::Space)
            || (t.kind == Kind::Operator && matches!(t.text, "," | "[" | "]"))
    };
    match order.iter().find(|t| !allowed(t)) {
        None => Ok(()),
        Some(t) => Err(format!(
            "the ORDER BY clause may hold only field names, commas, ASC and DESC, not `{}`",
            t.text
        )),
    }
}

/// Splits JQL tokens at the top-level `ORDER BY` (outside parentheses; quoted
/// text is one token, so never inside it): the query, and the clause from
/// `ORDER` on (empty when there is none).
pub fn split_order_by<'t, 'a>(tokens: &'t [Token<'a>]) -> (&'t [Token<'a>], &'t [Token<'a>]) {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match token.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth = depth.saturating_sub(1),
            _ if depth == 0 && token.is_word("order") => {
                let by = tokens[i + 1..].iter().find(|t| t.kind != Kind::Space);
                if by.is_some_and(|t| t.is_word("by")) {
                    return tokens.split_at(i);
                }
            }
            _ => {}
        }
    }
    (tokens, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> ProjectScope {
        ProjectScope::new(vec!["PROJ".into(), "OPS".into()])
    }

    #[test]
    fn unrestricted_jql_is_unchanged() {
        assert_eq!(
            ProjectScope::default()
                .restrict_jql(" status = Done ")
                .ok()
                .as_deref(),
            Some("status = Done")
        );
    }

    #[test]
    fn restricted_jql_is_wrapped_and_keeps_order_by_last() {
        assert_eq!(
            scope()
                .restrict_jql("status = Done OR project = SECRET order by created DESC")
                .ok()
                .as_deref(),
            Some(
                "project in (\"PROJ\", \"OPS\") AND (status = Done OR project = SECRET) order by created DESC"
            )
        );
        assert_eq!(
            scope().restrict_jql("ORDER BY key").ok().as_deref(),
            Some("project in (\"PROJ\", \"OPS\") ORDER BY key")
        );
        assert_eq!(
            scope().restrict_jql("").ok().as_deref(),
            Some("project in (\"PROJ\", \"OPS\")")
        );
    }

    #[test]
    fn jql_that_could_escape_the_restriction_is_refused() {
        for jql in [
            "x = 1) OR (project = SECRET",
            "summary ~ \"open",
            "x = 1 OR (project = SECRET",
            "status = Done ORDER BY key, (project)",
        ] {
            assert!(
                matches!(
                    scope().restrict_jql(jql),
                    Err(Error::InvalidArgument { field: "jql", .. })
                ),
                "{jql}"
            );
        }
        assert!(
            scope()
                .restrict_jql("summary ~ \"a ) b\" AND (x = 1)")
                .is_ok()
        );
    }

    fn order_clause(jql: &str) -> Option<String> {
        let tokens = jql::lex(jql).expect("lexes");
        let (_, order) = split_order_by(&tokens);
        (!order.is_empty()).then(|| order.iter().map(|t| t.text).collect())
    }

    #[test]
    fn order_by_inside_quotes_or_parentheses_is_not_a_clause() {
        assert_eq!(order_clause("summary ~ \"order by x\""), None);
        assert_eq!(
            order_clause("summary ~ 'x' order  by rank").as_deref(),
            Some("order  by rank")
        );
        assert_eq!(order_clause("reorder by = 1"), None);
        assert_eq!(order_clause("x in (a ORDER BY y)"), None);
        assert_eq!(
            order_clause("x in (a)ORDER BY y").as_deref(),
            Some("ORDER BY y")
        );
        assert_eq!(
            order_clause("x = José order by clé").as_deref(),
            Some("order by clé")
        );
    }

    #[test]
    fn non_ascii_words_are_kept_as_they_are() {
        assert_eq!(
            scope().restrict_jql("assignee = José").ok().as_deref(),
            Some("project in (\"PROJ\", \"OPS\") AND (assignee = José)")
        );
        let jql = "summary ~ 🦀 AND labels = e\u{301}te\u{301} AND reporter = שלום \u{202e}x ORDER BY créé";
        assert_eq!(
            scope().restrict_jql(jql).ok().as_deref(),
            Some(
                "project in (\"PROJ\", \"OPS\") AND (summary ~ 🦀 AND labels = e\u{301}te\u{301} AND reporter = שלום \u{202e}x) ORDER BY créé"
            )
        );
    }

    /// Each of these would end the wrapper's parenthesis (or add a condition
    /// after it) as Jira reads the query.
    #[test]
    fn tricks_that_would_escape_the_wrapper_are_refused() {
        for (jql, says) in [
            // Jira reads `a\'` as a word with an escaped quote, so the `)` closes
            // the wrapper; a reader that saw a quote there would miss it.
            (
                r"summary ~ a\' ) OR project = SECRET OR (summary ~ '\''",
                "backslash",
            ),
            (r"summary ~ a\) OR project = SECRET", "backslash"),
            ("x = 1\n) OR (project = SECRET", "`)`"),
            ("x = “a) OR (b”", "`)`"),
            ("x = 1 ORDER BY key) OR (project = SECRET", "ORDER BY"),
            ("x = 1 ORDER BY key OR project = SECRET", "ORDER BY"),
            ("x = 1 ORDER BY key, (project)", "ORDER BY"),
            ("x = \"a\\(\" ) OR (y = 1", "escapes nothing"),
            ("x = \"a\nb\") OR (y = \"", "control character"),
            ("x = 1 \u{2028}) OR (y = 1", "whitespace"),
            ("x = 'open", "never closed"),
        ] {
            match scope().restrict_jql(jql) {
                Err(Error::InvalidArgument {
                    field: "jql",
                    message,
                }) => assert!(message.contains(says), "{jql:?}: {message}"),
                other => panic!("{jql:?} was not refused: {other:?}"),
            }
        }
    }

    #[test]
    fn parentheses_and_quotes_inside_quoted_text_stay_inside_it() {
        let jql = r#"summary ~ "a\" ) OR project = SECRET OR (x = \"b" ORDER BY "Story Points""#;
        assert_eq!(
            scope().restrict_jql(jql).ok().as_deref(),
            Some(
                r#"project in ("PROJ", "OPS") AND (summary ~ "a\" ) OR project = SECRET OR (x = \"b") ORDER BY "Story Points""#
            )
        );
        assert_eq!(
            scope()
                .restrict_jql("x = 1 ORDER BY cf[10001] DESC, key")
                .ok()
                .as_deref(),
            Some("project in (\"PROJ\", \"OPS\") AND (x = 1) ORDER BY cf[10001] DESC, key")
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// JQL-ish text: the characters that shape a query, words, keywords and
        /// any Unicode character.
        fn jql_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                4 => prop::sample::select(vec![
                    "(", ")", "\"", "'", "\\", " ", "\n", "\t", ",", "=", "~", "[", "]",
                    "ORDER", "order", "BY", "by", " ORDER BY ", "AND", "OR", "project",
                    "SECRET", "José", "🦀", "e\u{301}", "שלום", "\u{202e}", "“", "”",
                    "\u{a0}", "\\\"", "\\'", "\\\\", "\\u00e9", "\u{0}",
                ])
                .prop_map(str::to_owned),
                1 => any::<char>().prop_map(String::from),
                1 => "[a-z]{1,6}",
            ];
            prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
        }

        /// The wrapped query as Jira's lexer reads it: `project in ( ... )`,
        /// then `AND (` whose `)` is the last one before the ORDER BY clause,
        /// and an ORDER BY clause without parentheses or conditions.
        fn assert_wrapped(out: &str, user: &str) {
            let tokens = jql::lex(out).unwrap_or_else(|e| panic!("{out:?} does not lex: {e}"));
            let words: Vec<&Token<'_>> = tokens.iter().filter(|t| t.kind != Kind::Space).collect();
            let prefix = ["project", "in", "("];
            assert!(
                words.len() >= 3 && words.iter().zip(prefix).all(|(t, p)| t.text == p),
                "{out:?}"
            );
            let (query, order) = split_order_by(&tokens);
            assert!(check_order_clause(order).is_ok(), "{out:?}");
            assert!(check_balanced(query).is_ok(), "{out:?}");
            let query: Vec<&Token<'_>> = query.iter().filter(|t| t.kind != Kind::Space).collect();
            // The project list closes at the first `)`; nothing the user wrote is in it.
            let close = query
                .iter()
                .position(|t| t.kind == Kind::Close)
                .unwrap_or_else(|| panic!("{out:?}"));
            assert!(
                query[3..close].iter().all(|t| t.kind != Kind::Open),
                "{out:?}"
            );
            let rest = &query[close + 1..];
            if rest.is_empty() {
                return;
            }
            assert!(
                rest[0].is_word("AND") && rest[1].kind == Kind::Open,
                "{out:?}"
            );
            // The `(` after AND is closed by the very last token of the query:
            // the user's part never returns to depth 0 before it.
            let mut depth = 0usize;
            for (i, token) in rest[1..].iter().enumerate() {
                match token.kind {
                    Kind::Open => depth += 1,
                    Kind::Close => {
                        depth -= 1;
                        if depth == 0 {
                            assert_eq!(i + 2, rest.len(), "{out:?} from {user:?}");
                        }
                    }
                    _ => {}
                }
            }
        }

        /// Sequences of valid tokens (words, quoted strings with escapes,
        /// parentheses, operators, ORDER BY): mostly lexable, often unbalanced.
        fn jql_tokens() -> impl Strategy<Value = String> {
            let token = prop_oneof![
                3 => "[a-zA-Z0-9_.éש🦀]{1,6}",
                2 => r#""([^"\\\p{Cc}]|\\["'\\nrt])*""#,
                1 => r#"'([^'\\\p{Cc}]|\\["'\\nrt])*'"#,
                3 => prop::sample::select(vec![
                    "(", ")", " ", " ", "\n", "=", "!=", "~", ",", "[", "]", " ORDER BY ",
                    "order", "by", " AND ", " OR ", "project",
                ])
                .prop_map(str::to_owned),
            ];
            prop::collection::vec(token, 0..30).prop_map(|tokens| tokens.concat())
        }

        proptest! {
            #[test]
            fn any_text_is_refused_or_wrapped_so_it_cannot_escape(jql in jql_text()) {
                if let Ok(out) = scope().restrict_jql(&jql) {
                    assert_wrapped(&out, &jql);
                }
            }

            #[test]
            fn token_sequences_are_refused_or_wrapped_so_they_cannot_escape(jql in jql_tokens()) {
                if let Ok(out) = scope().restrict_jql(&jql) {
                    assert_wrapped(&out, &jql);
                }
            }

            #[test]
            fn any_unicode_string_is_answered_without_panicking(jql in any::<String>()) {
                if let Ok(out) = scope().restrict_jql(&jql) {
                    assert_wrapped(&out, &jql);
                }
            }

            #[test]
            fn balanced_queries_of_any_words_are_accepted(
                words in prop::collection::vec("[^\\s\\p{Cc}\\\\()\"'=!<>~,\\[\\]|&]{1,8}", 1..8)
            ) {
                let jql = format!("summary ~ ({})", words.join(" "));
                prop_assume!(!words.iter().any(|w| w.eq_ignore_ascii_case("order")));
                let out = scope().restrict_jql(&jql);
                prop_assert!(out.is_ok(), "{jql:?}: {out:?}");
            }
        }
    }

    #[test]
    fn an_issue_is_judged_where_jira_files_it_now() {
        assert!(scope().check_current("PROJ-5", "PROJ-5").is_ok());
        assert!(matches!(
            scope().check_current("PROJ-5", "SECRET-12"),
            Err(Error::IssueMovedOut { .. })
        ));
        // An answer naming no issue key is Jira's fault, not a move.
        for garbage in ["", "PROJ-1/../../x", "\u{1b}[2J"] {
            assert!(
                matches!(
                    scope().check_current("PROJ-5", garbage),
                    Err(Error::UnexpectedResponse { .. })
                ),
                "{garbage:?}"
            );
        }
        assert!(ProjectScope::default().check_current("X-1", "").is_ok());
    }

    #[test]
    fn issues_outside_the_scope_are_refused() {
        assert_eq!(
            scope().check_issue("key", "proj-1").ok().as_deref(),
            Some("PROJ-1")
        );
        assert!(matches!(
            scope().check_issue("key", "SECRET-1"),
            Err(Error::ProjectNotAllowed { .. })
        ));
        assert!(matches!(
            scope().check_issue("key", "10001"),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(ProjectScope::default().check_issue("key", "10001").is_ok());
        assert!(matches!(
            scope().check_issue("key", "a/b"),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn projects_outside_the_scope_are_refused() {
        assert_eq!(
            scope().check_project("project_key", "ops").ok().as_deref(),
            Some("OPS")
        );
        assert!(matches!(
            scope().check_project("project_key", "SECRET"),
            Err(Error::ProjectNotAllowed { .. })
        ));
    }
}
