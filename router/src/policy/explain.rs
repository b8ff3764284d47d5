//! The text of `switchboard policy check FILE` and
//! `switchboard policy explain --policy FILE --claims claims.json --tool NAME [--args JSON-OBJECT]`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value};

use super::condition::Outcome;
use super::{Decision, Policy, PolicyError, ToolRef};
use crate::auth::Principal;

/// Checks the policy file at `path`; on success, a summary of its rules.
pub fn check(path: &Path) -> Result<String, PolicyError> {
    let policy = Policy::load(path)?;
    let mut out = String::new();
    let rules = policy.rules.as_deref().unwrap_or_default();
    let _ = writeln!(
        out,
        "policy {} is valid: {} rule{}",
        path.display(),
        rules.len(),
        if rules.len() == 1 { "" } else { "s" }
    );
    for rule in rules {
        let _ = write!(
            out,
            "  rule {}: tools {}",
            rule.number,
            rule.tools.join(", ")
        );
        if !rule.scopes.is_empty() {
            let _ = write!(out, "; scopes {}", rule.scopes.join(" "));
        }
        if let Some(when) = &rule.when {
            let _ = write!(out, "; when {}", when.source());
        }
        out.push('\n');
    }
    let scopes = policy.scopes_supported();
    if scopes.is_empty() {
        out.push_str("scopes_supported: none\n");
    } else {
        let _ = writeln!(out, "scopes_supported: {}", scopes.join(" "));
    }
    if rules.is_empty() {
        out.push_str("warning: no rules, so every HTTP call is denied\n");
    }
    Ok(out)
}

/// Says, rule by rule, whether the principal with `claims` may call `tool` with
/// `args`, and the decision. `Err` when the claims are not an object with a
/// string `sub`.
pub fn explain(
    policy: &Policy,
    claims: &Value,
    tool: &ToolRef<'_>,
    args: &Map<String, Value>,
) -> Result<String, String> {
    let Value::Object(map) = claims else {
        return Err("the claims must be a JSON object".into());
    };
    let principal = Principal::from_claims(map.clone())
        .ok_or_else(|| "the claims need a string `sub`".to_owned())?;
    let mut out = String::new();
    let scopes: Vec<&str> = principal.scopes.iter().map(String::as_str).collect();
    let _ = writeln!(
        out,
        "principal {} with scopes [{}] calling {}{}",
        principal.sub,
        scopes.join(" "),
        tool.name,
        if tool.connector.is_empty() {
            String::new()
        } else {
            format!(" (connector {})", tool.connector)
        }
    );
    let Some(rules) = &policy.rules else {
        out.push_str(
            "no policy: every authenticated principal may call every tool\ndecision: allow\n",
        );
        return Ok(out);
    };
    let context = policy.context(&principal, tool, args);
    for rule in rules {
        let _ = write!(out, "  rule {}: ", rule.number);
        if !rule.matches_tool(tool.name) {
            let _ = writeln!(
                out,
                "does not apply: no glob of [{}] matches",
                rule.tools.join(", ")
            );
            continue;
        }
        if let Some(when) = &rule.when {
            match when.evaluate(&context) {
                Outcome::True => {}
                Outcome::False => {
                    let _ = writeln!(out, "does not apply: `when` {} is false", when.source());
                    continue;
                }
                Outcome::Error(reason) => {
                    let _ = writeln!(
                        out,
                        "does not apply: `when` {} failed ({reason}), which counts as false",
                        when.source()
                    );
                    continue;
                }
            }
        }
        let missing: Vec<&str> = rule
            .scopes
            .iter()
            .filter(|s| !principal.scopes.contains(*s))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            let _ = writeln!(out, "allows");
        } else {
            let _ = writeln!(
                out,
                "would allow with the missing scopes: {}",
                missing.join(" ")
            );
        }
    }
    match policy.decide(&principal, tool, args) {
        Decision::Allow { rule: Some(n) } => {
            let _ = writeln!(out, "decision: allow (rule {n})");
        }
        Decision::Allow { rule: None } => out.push_str("decision: allow\n"),
        Decision::InsufficientScope(scopes) => {
            let _ = writeln!(
                out,
                "decision: insufficient_scope: HTTP 403, a token with the scopes \"{}\" would be allowed",
                scopes.join(" ")
            );
        }
        Decision::Hidden => out.push_str(
            "decision: hidden: no rule can allow it; the tool is not listed and a call is answered as for an unknown tool\n",
        ),
    }
    Ok(out)
}
