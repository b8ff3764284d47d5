//! `JIRA_PROJECTS`: the projects every tool is limited to.
//!
//! Issue and project arguments are checked by key; JQL is wrapped as
//! `project in (A, B) AND (<query>)` with the query's `ORDER BY` kept at the end,
//! so no query can reach outside the allowed projects whatever it contains.

use crate::error::Error;
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
    /// to the allowed projects with the `ORDER BY` clause kept last. Unbalanced
    /// parentheses or quotes are refused when restricted, since they could close
    /// the wrapping parenthesis and escape the restriction.
    pub fn restrict_jql(&self, jql: &str) -> Result<String, Error> {
        if !self.is_restricted() {
            return Ok(jql.trim().to_owned());
        }
        check_balanced(jql).map_err(|m| Error::invalid("jql", m))?;
        let (_, order) = split_order_by(jql);
        if order.is_some_and(|o| o.contains(['(', ')'])) {
            return Err(Error::invalid(
                "jql",
                "the ORDER BY clause cannot contain parentheses",
            ));
        }
        let projects = self
            .keys
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let (query, order) = split_order_by(jql);
        let query = query.trim();
        let mut out = format!("project in ({projects})");
        if !query.is_empty() {
            out.push_str(&format!(" AND ({query})"));
        }
        if let Some(order) = order {
            out.push(' ');
            out.push_str(order.trim());
        }
        Ok(out)
    }
}

/// Checks that parentheses balance and quotes close, outside quoted text.
fn check_balanced(jql: &str) -> Result<(), String> {
    let mut depth = 0i64;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in jql.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err("has a `)` without a matching `(`".to_owned());
                    }
                }
                _ => {}
            },
        }
    }
    if quote.is_some() {
        return Err("has a quote that is never closed".to_owned());
    }
    if depth != 0 {
        return Err("has a `(` without a matching `)`".to_owned());
    }
    Ok(())
}

/// Splits JQL at its top-level `ORDER BY` (outside quotes and parentheses).
pub fn split_order_by(jql: &str) -> (&str, Option<&str>) {
    let bytes = jql.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ if depth == 0
                    && starts_order_by(&jql[i..])
                    && (i == 0 || bytes[i - 1].is_ascii_whitespace() || bytes[i - 1] == b')') =>
                {
                    return (&jql[..i], Some(&jql[i..]));
                }
                _ => {}
            },
        }
        i += 1;
    }
    (jql, None)
}

fn starts_order_by(s: &str) -> bool {
    let Some(head) = s.get(..5) else { return false };
    if !head.eq_ignore_ascii_case("order") {
        return false;
    }
    let rest = &s[5..];
    let trimmed = rest.trim_start();
    trimmed.len() < rest.len()
        && trimmed
            .get(..2)
            .is_some_and(|by| by.eq_ignore_ascii_case("by"))
        && trimmed[2..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace())
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

    #[test]
    fn order_by_inside_quotes_or_parentheses_is_not_a_clause() {
        assert_eq!(split_order_by("summary ~ \"order by x\"").1, None);
        assert_eq!(
            split_order_by("summary ~ 'x' order  by rank").1,
            Some("order  by rank")
        );
        assert_eq!(split_order_by("reorder by = 1").1, None);
        assert_eq!(
            split_order_by("x in (a) ORDER BY y"),
            ("x in (a) ", Some("ORDER BY y"))
        );
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
