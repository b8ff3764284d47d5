//! Markdown ⇄ Jira wiki markup, the rich text of Jira Data Center (REST API v2).
//!
//! Covered: paragraphs, headings (`h1.`), bullet and numbered lists (nested:
//! `**`, `##`), code blocks (`{code:lang}`), quotes (`{quote}`), rules
//! (`----`), tables (`||head||`, `|cell|`), hard breaks (`\\`), bold `*x*`,
//! italic `_x_`, strike-through `-x-`, inline code `{{x}}`, links `[text|url]`
//! and mentions `[~username]` (from `[@Name](accountid:username)`).
//! The other direction, [`wiki_to_markdown`], reads what Data Center returns.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::adf::MENTION_SCHEME;
use super::{NestingGuard, READ_MAX_NESTING_DEPTH, TooDeep, heading_number};

/// Converts Markdown to Jira wiki markup; refused when it nests more than
/// `max_depth` elements (see [`super`]).
pub fn markdown_to_wiki(markdown: &str, max_depth: usize) -> Result<String, TooDeep> {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut out = String::new();
    // List markers of the open lists, e.g. ['*', '#'].
    let mut lists: Vec<char> = Vec::new();
    let mut link: Option<String> = None;
    let mut link_text = String::new();
    let mut mention = false;
    let mut in_code = false;
    let mut in_table_head = false;
    let mut guard = NestingGuard::new(max_depth);
    for event in Parser::new_ext(markdown, options) {
        // List markers repeat once per open list: bounded depth, bounded output.
        guard.check(&event)?;
        let sink = |out: &mut String, link_text: &mut String, link: &Option<String>, text: &str| {
            if link.is_some() {
                link_text.push_str(text);
            } else {
                out.push_str(text);
            }
        };
        match event {
            Event::Start(tag) => match tag {
                Tag::Paragraph => {
                    if lists.is_empty() {
                        block_gap(&mut out);
                    }
                }
                Tag::Heading { level, .. } => {
                    block_gap(&mut out);
                    out.push_str(&format!("h{}. ", heading_number(level)));
                }
                Tag::BlockQuote(_) => {
                    block_gap(&mut out);
                    out.push_str("{quote}\n");
                }
                Tag::CodeBlock(kind) => {
                    block_gap(&mut out);
                    match kind {
                        CodeBlockKind::Fenced(info) if !info.trim().is_empty() => {
                            out.push_str(&format!(
                                "{{code:{}}}\n",
                                info.split_whitespace().next().unwrap_or("")
                            ));
                        }
                        _ => out.push_str("{code}\n"),
                    }
                    in_code = true;
                }
                Tag::List(start) => {
                    if lists.is_empty() {
                        block_gap(&mut out);
                    }
                    lists.push(if start.is_some() { '#' } else { '*' });
                }
                Tag::Item => {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.extend(lists.iter());
                    out.push(' ');
                }
                Tag::Table(_) => block_gap(&mut out),
                Tag::TableHead => in_table_head = true,
                Tag::TableRow => {}
                Tag::TableCell => out.push_str(if in_table_head { "||" } else { "|" }),
                Tag::Emphasis => sink(&mut out, &mut link_text, &link, "_"),
                Tag::Strong => sink(&mut out, &mut link_text, &link, "*"),
                Tag::Strikethrough => sink(&mut out, &mut link_text, &link, "-"),
                Tag::Superscript => sink(&mut out, &mut link_text, &link, "^"),
                Tag::Subscript => sink(&mut out, &mut link_text, &link, "~"),
                Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                    mention = dest_url.starts_with(MENTION_SCHEME);
                    link = Some(dest_url.to_string());
                    link_text.clear();
                }
                _ => block_gap(&mut out),
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph | TagEnd::Heading(_) => {}
                TagEnd::BlockQuote(_) => {
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str("{quote}");
                }
                TagEnd::CodeBlock => {
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str("{code}");
                    in_code = false;
                }
                TagEnd::List(_) => {
                    lists.pop();
                }
                TagEnd::Item => {}
                TagEnd::TableHead => {
                    in_table_head = false;
                    out.push_str("||\n");
                }
                TagEnd::TableRow => out.push_str("|\n"),
                TagEnd::TableCell => {}
                TagEnd::Table if out.ends_with('\n') => {
                    out.pop();
                }
                TagEnd::Emphasis => sink(&mut out, &mut link_text, &link, "_"),
                TagEnd::Strong => sink(&mut out, &mut link_text, &link, "*"),
                TagEnd::Strikethrough => sink(&mut out, &mut link_text, &link, "-"),
                TagEnd::Superscript => sink(&mut out, &mut link_text, &link, "^"),
                TagEnd::Subscript => sink(&mut out, &mut link_text, &link, "~"),
                TagEnd::Link | TagEnd::Image => {
                    if let Some(url) = link.take() {
                        if mention {
                            out.push_str(&format!("[~{}]", url.trim_start_matches(MENTION_SCHEME)));
                        } else if link_text.is_empty() || link_text == url {
                            out.push_str(&format!("[{url}]"));
                        } else {
                            out.push_str(&format!("[{link_text}|{url}]"));
                        }
                    }
                    mention = false;
                }
                _ => {}
            },
            Event::Text(t) => {
                if in_code {
                    out.push_str(&t);
                } else {
                    let text = escape(&t);
                    sink(&mut out, &mut link_text, &link, &text);
                }
            }
            Event::Code(t) => sink(&mut out, &mut link_text, &link, &format!("{{{{{t}}}}}")),
            Event::SoftBreak => sink(&mut out, &mut link_text, &link, " "),
            Event::HardBreak => out.push_str("\\\\\n"),
            Event::Rule => {
                block_gap(&mut out);
                out.push_str("----");
            }
            Event::Html(t) | Event::InlineHtml(t) => out.push_str(&t),
            Event::InlineMath(t) | Event::DisplayMath(t) => out.push_str(&format!("{{{{{t}}}}}")),
            Event::FootnoteReference(t) => out.push_str(&format!("[^{t}]")),
            Event::TaskListMarker(done) => out.push_str(if done { "(/) " } else { "(x) " }),
        }
    }
    Ok(out)
}

fn block_gap(out: &mut String) {
    if out.is_empty() || out.ends_with("{quote}\n") {
        return;
    }
    while out.ends_with('\n') {
        out.pop();
    }
    out.push_str("\n\n");
}

/// Escapes characters that start wiki markup in plain text.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '{' | '}' | '[' | ']' | '*' | '_' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    /// The conversion at the default nesting limit.
    fn markdown_to_wiki(markdown: &str) -> String {
        super::markdown_to_wiki(markdown, crate::richtext::DEFAULT_MAX_NESTING_DEPTH)
            .expect("within the nesting limit")
    }

    #[test]
    fn headings_and_inline_marks_become_wiki() {
        assert_eq!(
            markdown_to_wiki("## Title\n\nSome **bold**, *italic*, ~~old~~ and `code`."),
            "h2. Title\n\nSome *bold*, _italic_, -old- and {{code}}."
        );
    }

    #[test]
    fn nested_lists_become_repeated_markers() {
        assert_eq!(markdown_to_wiki("- a\n  1. b\n- c"), "* a\n*# b\n* c");
    }

    #[test]
    fn code_blocks_quotes_and_rules_become_macros() {
        assert_eq!(
            markdown_to_wiki("```rust\nlet x = 1;\n```\n\n> said\n\n---"),
            "{code:rust}\nlet x = 1;\n{code}\n\n{quote}\nsaid\n{quote}\n\n----"
        );
    }

    #[test]
    fn links_and_mentions_become_wiki_links() {
        assert_eq!(
            markdown_to_wiki("[docs](https://x.io) for [@Ada](accountid:ada)"),
            "[docs|https://x.io] for [~ada]"
        );
    }

    #[test]
    fn tables_use_double_bars_for_the_header() {
        assert_eq!(
            markdown_to_wiki("| A | B |\n| --- | --- |\n| 1 | 2 |"),
            "||A||B||\n|1|2|"
        );
    }

    #[test]
    fn wiki_syntax_in_plain_text_is_escaped() {
        assert_eq!(markdown_to_wiki("a {b} [c]"), "a \\{b\\} \\[c\\]");
    }
}

// ---------------------------------------------------------------- wiki → Markdown

/// Converts Jira wiki markup (Data Center) to Markdown. Macros and effects that
/// Markdown cannot express (`{panel}`, `{color}`, underline, attached images) are
/// kept as they are in the text and named in the warnings.
pub fn wiki_to_markdown(wiki: &str) -> super::Converted {
    let mut out: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let lines: Vec<&str> = wiki.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let trimmed = line.trim_start();
        // Preformatted blocks: {code[:lang|...]} / {noformat} up to the closing tag.
        if let Some((tag, language)) = preformatted_start(trimmed) {
            let mut body: Vec<&str> = Vec::new();
            let after = &trimmed[trimmed.find('}').map_or(trimmed.len(), |p| p + 1)..];
            let closing = format!("{{{tag}}}");
            let mut closed = false;
            if let Some(end) = after.find(&closing) {
                body.push(&after[..end]);
                closed = true;
            } else if !after.is_empty() {
                body.push(after);
            }
            while !closed && i + 1 < lines.len() {
                i += 1;
                match lines[i].find(&closing) {
                    Some(end) => {
                        if end > 0 {
                            body.push(&lines[i][..end]);
                        }
                        closed = true;
                    }
                    None => body.push(lines[i]),
                }
            }
            out.push(format!("```{language}\n{}\n```", body.join("\n")));
            i += 1;
            continue;
        }
        if trimmed == "{quote}" {
            let mut body: Vec<&str> = Vec::new();
            while i + 1 < lines.len() {
                i += 1;
                if lines[i].trim() == "{quote}" {
                    break;
                }
                body.push(lines[i]);
            }
            let inner = wiki_to_markdown(&body.join("\n"));
            warnings.extend(inner.warnings);
            out.push(prefix_quote(&inner.markdown));
            i += 1;
            continue;
        }
        if trimmed.starts_with("||")
            || (trimmed.starts_with('|') && trimmed.ends_with('|') && trimmed.len() > 1)
        {
            let mut rows: Vec<Vec<String>> = Vec::new();
            while i < lines.len() {
                let row = lines[i].trim();
                if !row.starts_with('|') {
                    break;
                }
                let separator = if row.starts_with("||") { "||" } else { "|" };
                let cells: Vec<String> = row
                    .trim_matches('|')
                    .split(separator)
                    .map(|c| inline(c.trim(), &mut warnings).replace('|', "\\|"))
                    .collect();
                rows.push(cells);
                i += 1;
            }
            let width = rows.iter().map(Vec::len).max().unwrap_or(0);
            let render = |cells: &Vec<String>| {
                let mut cells = cells.clone();
                cells.resize(width, String::new());
                format!("| {} |", cells.join(" | "))
            };
            let mut table = vec![render(&rows[0]), format!("|{}", " --- |".repeat(width))];
            table.extend(rows[1..].iter().map(render));
            out.push(table.join("\n"));
            continue;
        }
        let converted = if let Some(rest) = heading(trimmed) {
            rest.map(|(level, text)| {
                format!("{} {}", "#".repeat(level), inline(text, &mut warnings))
            })
        } else if let Some(text) = trimmed.strip_prefix("bq. ") {
            Some(format!("> {}", inline(text, &mut warnings)))
        } else if trimmed == "----" {
            Some("---".to_owned())
        } else if let Some((markers, text)) = list_item(trimmed) {
            let indent: usize = markers[..markers.len() - 1]
                .chars()
                .map(|m| if m == '#' { 3 } else { 2 })
                .sum();
            let marker = if markers.ends_with('#') { "1." } else { "-" };
            Some(format!(
                "{}{marker} {}",
                " ".repeat(indent),
                inline(text, &mut warnings)
            ))
        } else {
            None
        };
        match converted {
            Some(block) => {
                // List items and consecutive lines stay together; blank lines separate.
                out.push(block);
            }
            None if trimmed.is_empty() => out.push(String::new()),
            None => out.push(inline(line, &mut warnings)),
        }
        i += 1;
    }
    warnings.dedup();
    super::Converted {
        markdown: join_blocks(&out),
        warnings,
    }
}

/// Joins converted lines: fenced blocks, quotes and tables get blank lines around
/// them; other lines keep the wiki's own line structure, blank lines included.
fn join_blocks(parts: &[String]) -> String {
    let mut out = String::new();
    for part in parts {
        // A blank line stays one: it ends a paragraph or a list.
        if part.is_empty() {
            while !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            continue;
        }
        let standalone = part.starts_with("```")
            || part.starts_with("| ")
            || part.starts_with("> ")
            || part.starts_with('#');
        if !out.is_empty() {
            if standalone && !out.ends_with("\n\n") {
                out.push_str("\n\n");
            } else if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        out.push_str(part);
        if standalone {
            out.push_str("\n\n");
        }
    }
    let mut out = out.trim_end().to_owned();
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

fn prefix_quote(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                ">".to_owned()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn preformatted_start(line: &str) -> Option<(&'static str, String)> {
    for tag in ["code", "noformat"] {
        if let Some(rest) = line.strip_prefix(&format!("{{{tag}")) {
            let params = rest.split('}').next().unwrap_or("");
            if !rest.contains('}') || !(params.is_empty() || params.starts_with(':')) {
                continue;
            }
            let language = params
                .trim_start_matches(':')
                .split('|')
                .find(|p| !p.contains('='))
                .unwrap_or("")
                .trim()
                .to_owned();
            return Some((
                tag,
                if tag == "code" {
                    language
                } else {
                    String::new()
                },
            ));
        }
    }
    None
}

#[allow(clippy::type_complexity)]
fn heading(line: &str) -> Option<Option<(usize, &str)>> {
    let bytes = line.as_bytes();
    if bytes.len() >= 4
        && bytes[0] == b'h'
        && (b'1'..=b'6').contains(&bytes[1])
        && bytes[2] == b'.'
        && bytes[3] == b' '
    {
        return Some(Some((usize::from(bytes[1] - b'0'), line[4..].trim())));
    }
    None
}

fn list_item(line: &str) -> Option<(&str, &str)> {
    let markers = line
        .find(|c: char| !matches!(c, '*' | '#' | '-'))
        .unwrap_or(line.len());
    if markers == 0 || !line[markers..].starts_with(' ') {
        return None;
    }
    let marker_text = &line[..markers];
    // `----` is a rule and `-` alone only a bullet at depth one.
    if marker_text.contains('-') && marker_text != "-" {
        return None;
    }
    Some((marker_text, line[markers..].trim_start()))
}

/// Inline wiki markup to Markdown.
fn inline(text: &str, warnings: &mut Vec<String>) -> String {
    inline_at(text, warnings, 0)
}

/// Inline wiki markup to Markdown, inside `depth` effects; effects nested past
/// [`READ_MAX_NESTING_DEPTH`] are kept as the wiki text they are.
fn inline_at(text: &str, warnings: &mut Vec<String>, depth: usize) -> String {
    if depth >= READ_MAX_NESTING_DEPTH {
        warnings.push(format!(
            "wiki effects nested more than {READ_MAX_NESTING_DEPTH} levels deep are kept as wiki markup"
        ));
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    // Where each closing character next occurs, found once: looking ahead from
    // every opening character instead would take quadratic time on text full of
    // openers that never close.
    let ahead = Lookahead::new(&chars);
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_ok = i == 0 || !chars[i - 1].is_alphanumeric();
        match c {
            '\\' if chars.get(i + 1) == Some(&'\\') => {
                out.push_str("\\\n");
                i += 2;
                while chars.get(i) == Some(&' ') {
                    i += 1;
                }
                continue;
            }
            '\\' if chars.get(i + 1).is_some() => {
                out.push('\\');
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            '{' if chars.get(i + 1) == Some(&'{') => {
                if let Some(end) = ahead.next(Ahead::DoubleBrace, i + 2) {
                    let code: String = chars[i + 2..end].iter().collect();
                    out.push('`');
                    out.push_str(&code);
                    out.push('`');
                    i = end + 2;
                    continue;
                }
            }
            '[' => {
                if let Some(end) = ahead.next(Ahead::Bracket, i + 1) {
                    let inner: String = chars[i + 1..end].iter().collect();
                    if let Some(user) = inner.strip_prefix('~') {
                        out.push_str(&format!("[@{user}]({}{user})", super::adf::MENTION_SCHEME));
                    } else if let Some((label, url)) = inner.rsplit_once('|') {
                        out.push_str(&format!(
                            "[{}]({})",
                            inline_at(label, warnings, depth + 1),
                            url.trim()
                        ));
                    } else if inner.contains("://") || inner.starts_with("mailto:") {
                        out.push_str(&format!("<{}>", inner.trim()));
                    } else {
                        out.push('[');
                        out.push_str(&inner);
                        out.push(']');
                    }
                    i = end + 1;
                    continue;
                }
            }
            '!' if prev_ok => {
                if let Some(end) = ahead.next(Ahead::Bang, i + 1) {
                    let inner: String = chars[i + 1..end].iter().collect();
                    if !inner.is_empty() && !inner.contains(' ') {
                        let target = inner.split('|').next().unwrap_or("");
                        if target.contains("://") {
                            out.push_str(&format!("![]({target})"));
                        } else {
                            warnings.push(format!(
                                "attached image {target:?} kept as wiki markup `!{inner}!`"
                            ));
                            out.push_str(&format!("`!{inner}!`"));
                        }
                        i = end + 1;
                        continue;
                    }
                }
            }
            '{' => {
                if let Some(end) = ahead.next(Ahead::Brace, i + 1) {
                    let name: String = chars[i + 1..end]
                        .iter()
                        .take_while(|c| c.is_alphanumeric())
                        .collect();
                    if !name.is_empty() {
                        warnings.push(format!(
                            "wiki macro {{{name}}} has no Markdown form; kept as text"
                        ));
                    }
                }
            }
            '*' | '_' | '-' | '+' | '^' | '~' if prev_ok => {
                if let Some(end) = ahead.closing(&chars, i, c) {
                    let inner: String = chars[i + 1..end].iter().collect();
                    let inner = inline_at(&inner, warnings, depth + 1);
                    match c {
                        '*' => out.push_str(&format!("**{inner}**")),
                        '_' => out.push_str(&format!("*{inner}*")),
                        '-' => out.push_str(&format!("~~{inner}~~")),
                        other => {
                            let effect = match other {
                                '+' => "underline",
                                '^' => "superscript",
                                _ => "subscript",
                            };
                            warnings.push(format!(
                                "{effect} has no Markdown form; its text is kept without it"
                            ));
                            out.push_str(&inner);
                        }
                    }
                    i = end + 1;
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// What [`Lookahead::next`] finds.
#[derive(Clone, Copy)]
enum Ahead {
    /// `]`
    Bracket = 0,
    /// `!`
    Bang,
    /// `}`
    Brace,
    /// `}}`
    DoubleBrace,
}

/// The positions of the characters that close inline markup, so that each
/// "where does this close" is a binary search rather than a scan.
struct Lookahead {
    /// Per [`Ahead`]: the positions where it occurs, ascending.
    found: [Vec<usize>; 4],
    /// Per effect delimiter (`EFFECTS`): positions where it could close an
    /// effect (after a non-space, before a non-alphanumeric), ascending.
    closers: [Vec<usize>; 6],
}

const EFFECTS: [char; 6] = ['*', '_', '-', '+', '^', '~'];

impl Lookahead {
    fn new(chars: &[char]) -> Self {
        let mut found: [Vec<usize>; 4] = Default::default();
        let mut closers: [Vec<usize>; 6] = Default::default();
        for (j, &c) in chars.iter().enumerate() {
            match c {
                ']' => found[Ahead::Bracket as usize].push(j),
                '!' => found[Ahead::Bang as usize].push(j),
                '}' => {
                    found[Ahead::Brace as usize].push(j);
                    if chars.get(j + 1) == Some(&'}') {
                        found[Ahead::DoubleBrace as usize].push(j);
                    }
                }
                _ => {}
            }
            if let Some(k) = EFFECTS.iter().position(|&d| d == c)
                && j > 0
                && !chars[j - 1].is_whitespace()
                && chars.get(j + 1).is_none_or(|n| !n.is_alphanumeric())
            {
                closers[k].push(j);
            }
        }
        Self { found, closers }
    }

    fn first_from(positions: &[usize], from: usize) -> Option<usize> {
        positions
            .get(positions.partition_point(|&p| p < from))
            .copied()
    }

    /// The first position at or after `from` where `what` occurs.
    fn next(&self, what: Ahead, from: usize) -> Option<usize> {
        Self::first_from(&self.found[what as usize], from)
    }

    /// The closing delimiter of an effect opened at `open`: the next `delim` that
    /// follows a non-space and is followed by a non-alphanumeric.
    fn closing(&self, chars: &[char], open: usize, delim: char) -> Option<usize> {
        if chars
            .get(open + 1)
            .is_none_or(|c| c.is_whitespace() || *c == delim)
        {
            return None;
        }
        let k = EFFECTS.iter().position(|&d| d == delim)?;
        Self::first_from(&self.closers[k], open + 2)
    }
}

#[cfg(test)]
mod to_markdown_tests {
    use super::*;

    /// The conversion at the default nesting limit.
    fn markdown_to_wiki(markdown: &str) -> String {
        super::markdown_to_wiki(markdown, crate::richtext::DEFAULT_MAX_NESTING_DEPTH)
            .expect("within the nesting limit")
    }

    fn md(wiki: &str) -> String {
        wiki_to_markdown(wiki).markdown
    }

    #[test]
    fn headings_and_effects_become_markdown() {
        assert_eq!(
            md("h2. Title\n\nSome *bold*, _italic_, -old- and {{code}}."),
            "## Title\n\nSome **bold**, *italic*, ~~old~~ and `code`."
        );
    }

    #[test]
    fn words_with_inner_delimiters_stay_plain() {
        assert_eq!(
            md("snake_case_name and well-known a*b"),
            "snake_case_name and well-known a*b"
        );
    }

    #[test]
    fn lists_nest_by_marker_count() {
        assert_eq!(md("* a\n*# b\n* c"), "- a\n  1. b\n- c");
    }

    #[test]
    fn code_quote_and_rule_blocks_become_markdown() {
        assert_eq!(
            md("{code:rust}\nlet x = 1;\n{code}\n\n{quote}\nsaid\n{quote}\n\n----"),
            "```rust\nlet x = 1;\n```\n\n> said\n\n---"
        );
        assert_eq!(
            md("{noformat}\nraw *text*\n{noformat}"),
            "```\nraw *text*\n```"
        );
    }

    #[test]
    fn links_and_mentions_become_markdown() {
        assert_eq!(
            md("[docs|https://x.io] for [~ada] at [https://y.io]"),
            "[docs](https://x.io) for [@ada](accountid:ada) at <https://y.io>"
        );
    }

    #[test]
    fn tables_become_pipe_tables() {
        assert_eq!(md("||A||B||\n|1|2|"), "| A | B |\n| --- | --- |\n| 1 | 2 |");
    }

    #[test]
    fn effects_past_the_read_depth_are_kept_as_wiki_text() {
        let mut warnings = Vec::new();
        assert_eq!(
            inline_at("*bold*", &mut warnings, READ_MAX_NESTING_DEPTH),
            "*bold*"
        );
        assert!(warnings[0].contains("64 levels"), "{warnings:?}");
        assert_eq!(inline_at("*bold*", &mut warnings, 0), "**bold**");
    }

    #[test]
    fn markdown_to_wiki_and_back_is_stable() {
        let markdown = "## Plan\n\n- **one**\n- *two*\n\n```sql\nselect 1;\n```";
        assert_eq!(md(&markdown_to_wiki(markdown)), markdown);
    }

    #[test]
    fn macros_and_underline_are_kept_and_flagged() {
        let converted = wiki_to_markdown("{panel:title=Note}careful{panel} and +under+");
        assert_eq!(
            converted.markdown,
            "{panel:title=Note}careful{panel} and under"
        );
        assert_eq!(converted.warnings.len(), 2, "{:?}", converted.warnings);
    }
}
