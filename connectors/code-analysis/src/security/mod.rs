//! Security rules written as tree-sitter queries over the same syntax trees the
//! metrics use, so text inside comments (and, except for the credential rules,
//! string literals) never matches.
//!
//! A rule is a query with an `@finding` capture (the reported range) plus an
//! optional check in Rust for what a query cannot say: "this argument is not a
//! constant string" (`@dynamic`), "this name looks like a secret and this literal
//! looks random" (`@name`, `@secret`), "this literal has a known key format"
//! (`@secret`), "this yaml.load has no safe loader" (`@fn`, `@args`). `{fn}` in a
//! message is replaced by the text of the `@fn` capture.
//!
//! The rules themselves are data, in `rules.rs`; this module compiles them per
//! language and runs them over a parsed file.

mod rules;

use std::collections::HashMap;
use std::sync::LazyLock;

use big_code_analysis::LANG;
use big_code_analysis::tree_sitter::{Node, Query, QueryCursor, StreamingIterator, Tree};
use switchboard_proto::code_analysis::v1 as pb;

use self::rules::{Check, KEY_FORMATS, NOT_SECRET_NAME, RULES, Rule, SECRET_NAME, family};

/// A rule compiled for one language's grammar.
struct CompiledRule {
    rule: &'static Rule,
    query: Query,
    finding: u32,
    name: Option<u32>,
    secret: Option<u32>,
    dynamic: Option<u32>,
    function: Option<u32>,
    args: Option<u32>,
}

/// All rules, compiled for every supported language.
pub struct RuleSet {
    per_language: HashMap<LANG, Vec<CompiledRule>>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("languages", &self.per_language.len())
            .finish_non_exhaustive()
    }
}

impl RuleSet {
    /// Compiles every rule for every language of its family; an error names the
    /// rule and language (a bug in a query, caught at start and by the tests).
    pub fn load(languages: &[LANG]) -> Result<Self, String> {
        let mut per_language = HashMap::new();
        for &lang in languages {
            let grammar = lang
                .tree_sitter_language()
                .map_err(|e| format!("grammar {}: {e}", lang.name()))?;
            let mut compiled = Vec::new();
            for rule in RULES.iter().filter(|r| Some(r.family) == family(lang)) {
                let query = Query::new(&grammar, rule.query)
                    .map_err(|e| format!("rule {} for {}: {e}", rule.id, lang.name()))?;
                let finding = query
                    .capture_index_for_name("finding")
                    .ok_or_else(|| format!("rule {} has no @finding capture", rule.id))?;
                compiled.push(CompiledRule {
                    rule,
                    finding,
                    name: query.capture_index_for_name("name"),
                    secret: query.capture_index_for_name("secret"),
                    dynamic: query.capture_index_for_name("dynamic"),
                    function: query.capture_index_for_name("fn"),
                    args: query.capture_index_for_name("args"),
                    query,
                });
            }
            per_language.insert(lang, compiled);
        }
        LazyLock::force(&KEY_FORMATS);
        Ok(Self { per_language })
    }

    /// How many rules apply to `lang`.
    pub fn rule_count(&self, lang: LANG) -> usize {
        self.per_language.get(&lang).map_or(0, Vec::len)
    }

    /// The findings in one parsed file (paths left empty), in source order.
    pub fn scan(&self, lang: LANG, tree: &Tree, source: &[u8]) -> Vec<pb::Finding> {
        let Some(rules) = self.per_language.get(&lang) else {
            return Vec::new();
        };
        let mut findings: Vec<(usize, pb::Finding)> = Vec::new();
        // (dedup group, byte offset): one finding per place, e.g. a key that is both
        // in a known format and assigned to `api_key` is reported once.
        let mut seen: HashMap<(&'static str, usize), usize> = HashMap::new();
        let mut cursor = QueryCursor::new();
        for compiled in rules {
            let mut matches = cursor.matches(&compiled.query, tree.root_node(), source);
            while let Some(m) = matches.next() {
                let capture = |index: Option<u32>| -> Option<Node<'_>> {
                    let index = index?;
                    m.captures.iter().find(|c| c.index == index).map(|c| c.node)
                };
                let Some(node) = capture(Some(compiled.finding)) else {
                    continue;
                };
                let secret = capture(compiled.secret);
                let mut message = compiled.rule.message.to_owned();
                let passes = match compiled.rule.check {
                    Check::None => true,
                    Check::Dynamic => {
                        capture(compiled.dynamic).is_none_or(|n| !is_constant_string(n))
                    }
                    Check::Credential => match (capture(compiled.name), secret) {
                        (Some(name), Some(secret)) => {
                            is_secret_name(text(name, source))
                                && looks_like_secret(literal_content(text(secret, source)))
                        }
                        _ => false,
                    },
                    Check::KeyFormat => match secret.and_then(|s| key_format(text(s, source))) {
                        Some(format) => {
                            message = message.replace("{format}", format);
                            if let Some(first) = message.get(..1) {
                                message =
                                    first.to_uppercase() + message.get(1..).unwrap_or_default();
                            }
                            true
                        }
                        None => false,
                    },
                    Check::YamlUnsafe => {
                        let function = capture(compiled.function).map_or("", |n| text(n, source));
                        let args = capture(compiled.args).map_or("", |n| text(n, source));
                        !matches!(function, "load" | "load_all")
                            || !["SafeLoader", "CSafeLoader", "BaseLoader"]
                                .iter()
                                .any(|l| args.contains(l))
                    }
                };
                if !passes {
                    continue;
                }
                if let Some(function) = capture(compiled.function) {
                    // Some rules match callee names by prefix (`DES_.+`): a name can be
                    // as long as the file, so the message quotes only its start.
                    let name = text(function, source);
                    let quoted: String = name.chars().take(MAX_QUOTED_NAME_CHARS).collect();
                    let cut = if quoted.len() < name.len() { "…" } else { "" };
                    message = message.replace("{fn}", &format!("{quoted}{cut}"));
                }
                let credential =
                    matches!(compiled.rule.check, Check::Credential | Check::KeyFormat);
                let (group, offset) = if credential {
                    (
                        "secret",
                        secret.map_or(node.start_byte(), |s| s.start_byte()),
                    )
                } else {
                    (compiled.rule.id, node.start_byte())
                };
                let finding = pb::Finding {
                    rule_id: compiled.rule.id.to_owned(),
                    cwe: compiled.rule.cwe.to_owned(),
                    severity: compiled.rule.severity as i32,
                    message,
                    path: String::new(),
                    start_line: line(node.start_position().row),
                    end_line: line(node.end_position().row),
                    start_column: line(node.start_position().column),
                    snippet: snippet(node, if credential { secret } else { None }, source),
                };
                match seen.get(&(group, offset)) {
                    Some(&i) if findings[i].1.severity >= finding.severity => {}
                    Some(&i) => findings[i] = (node.start_byte(), finding),
                    None => {
                        seen.insert((group, offset), findings.len());
                        findings.push((node.start_byte(), finding));
                    }
                }
            }
        }
        findings.sort_by_key(|(offset, f)| (*offset, f.rule_id.clone()));
        findings.into_iter().map(|(_, f)| f).collect()
    }
}

/// Longest callee name quoted in a finding's message, in characters.
const MAX_QUOTED_NAME_CHARS: usize = 100;

fn line(row: usize) -> u32 {
    u32::try_from(row + 1).unwrap_or(u32::MAX)
}

fn text<'a>(node: Node<'_>, source: &'a [u8]) -> &'a str {
    node.utf8_text(source).unwrap_or("")
}

/// A string literal with nothing computed in it (no interpolation or substitution).
fn is_constant_string(node: Node<'_>) -> bool {
    const STRING_KINDS: &[&str] = &[
        "string",
        "string_literal",
        "raw_string_literal",
        "interpreted_string_literal",
        "concatenated_string",
        "template_string",
        "text_block",
    ];
    if !STRING_KINDS.contains(&node.kind()) {
        return false;
    }
    let mut cursor = node.walk();
    let dynamic = node
        .children(&mut cursor)
        .any(|c| matches!(c.kind(), "interpolation" | "template_substitution"));
    !dynamic
}

fn is_secret_name(name: &str) -> bool {
    // The last identifier in `self.api_key`, `*password`, `"token"`, `key[32]`.
    let last = name
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .rfind(|w| w.starts_with(|c: char| c.is_alphabetic() || c == '_'))
        .unwrap_or("");
    let secretish = SECRET_NAME.as_ref().is_some_and(|re| re.is_match(last));
    let excluded = NOT_SECRET_NAME.as_ref().is_some_and(|re| re.is_match(last));
    secretish && !excluded
}

/// The text between a literal's quotes (prefixes such as r, b, f, L dropped).
fn literal_content(literal: &str) -> &str {
    let trimmed = literal.trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == '#');
    let Some(quote) = trimmed
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))
    else {
        return literal;
    };
    let inner = trimmed.trim_start_matches(quote);
    inner.trim_end_matches('#').trim_end_matches(quote)
}

/// Bits of Shannon entropy per character.
fn entropy(value: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    let mut total = 0usize;
    for c in value.chars() {
        *counts.entry(c).or_insert(0) += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// Long enough, no spaces or templating, not a placeholder, and random-looking.
fn looks_like_secret(value: &str) -> bool {
    const PLACEHOLDERS: &[&str] = &[
        "changeme",
        "change_me",
        "example",
        "placeholder",
        "dummy",
        "your",
        "xxxx",
        "****",
        "redacted",
        "todo",
        "secret_here",
        "<",
        "${",
        "{{",
        "%s",
        "process.env",
    ];
    let lower = value.to_ascii_lowercase();
    value.chars().count() >= 8
        && !value.chars().any(char::is_whitespace)
        && !PLACEHOLDERS.iter().any(|p| lower.contains(p))
        && entropy(value) >= 3.0
}

fn key_format(literal: &str) -> Option<&'static str> {
    KEY_FORMATS
        .iter()
        .find(|(_, re)| re.is_match(literal))
        .map(|(name, _)| *name)
}

/// The first line of the finding, trimmed, at most 200 characters, with the secret
/// literal (when given) replaced by "***".
fn snippet(node: Node<'_>, secret: Option<Node<'_>>, source: &[u8]) -> String {
    let line_start = source[..node.start_byte()]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_end = source[node.start_byte()..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(source.len(), |i| node.start_byte() + i);
    let mut line = String::from_utf8_lossy(&source[line_start..line_end]).into_owned();
    if let Some(secret) = secret {
        let start = secret.start_byte();
        if (line_start..line_end).contains(&start) {
            let end = secret.end_byte().min(line_end);
            line = format!(
                "{}\"***\"{}",
                String::from_utf8_lossy(&source[line_start..start]),
                String::from_utf8_lossy(&source[end..line_end])
            );
        } else {
            line = "***".to_owned();
        }
    }
    let trimmed = line.trim();
    trimmed.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles_for_every_language_of_its_family() {
        let rules = RuleSet::load(&crate::languages::SUPPORTED).expect("all queries compile");
        for lang in crate::languages::SUPPORTED {
            let written = RULES
                .iter()
                .filter(|r| Some(r.family) == family(lang))
                .count();
            assert!(written >= 5, "{} has only {written} rules", lang.name());
            assert_eq!(rules.rule_count(lang), written, "{}", lang.name());
        }
        assert_eq!(KEY_FORMATS.len(), 7, "a key-format regex failed to compile");
        assert!(SECRET_NAME.is_some() && NOT_SECRET_NAME.is_some());
    }

    #[test]
    fn secret_names_exclude_names_of_other_things() {
        assert!(is_secret_name("db_password"));
        assert!(is_secret_name("self.apiKey"));
        assert!(is_secret_name("*auth_token"));
        assert!(!is_secret_name("password_field"));
        assert!(!is_secret_name("TOKEN_URL"));
        assert!(!is_secret_name("username"));
    }

    #[test]
    fn random_values_look_secret_and_placeholders_do_not() {
        assert!(looks_like_secret("q8Zr!2vLp0#xT7m"));
        assert!(!looks_like_secret("changeme123"));
        assert!(!looks_like_secret("aaaaaaaaaaaa"));
        assert!(!looks_like_secret("short"));
        assert!(!looks_like_secret("Enter your password"));
        assert_eq!(literal_content("r#\"abc\"#"), "abc");
        assert_eq!(literal_content("f'abc'"), "abc");
    }
}
