//! ADF → Markdown: an ADF document walked into Markdown, with every node
//! Markdown cannot express kept as raw ADF and named in the warnings.

use serde_json::Value;

use super::{MENTION_SCHEME, RAW_BLOCK_LANGUAGE, RAW_INLINE_PREFIX, kind};
use crate::richtext::{ADF_MAX_JSON_DEPTH, READ_MAX_NESTING_DEPTH, json_depth};

/// Markdown for an ADF document, and the warnings about content Markdown cannot
/// express (kept in the Markdown as raw ADF).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The Markdown.
    pub markdown: String,
    /// One line per construct kept as raw ADF or shown without its formatting.
    pub warnings: Vec<String>,
}

/// Converts an ADF document (or a plain string, returned as it is) to Markdown.
pub fn adf_to_markdown(doc: &Value) -> Converted {
    let mut renderer = MarkdownRenderer::default();
    let markdown = match doc {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(_) if doc.get("type").and_then(Value::as_str) == Some("doc") => {
            renderer.blocks(children(doc), "\n\n")
        }
        other => renderer.block(other),
    };
    let mut warnings = renderer.warnings;
    warnings.dedup();
    Converted {
        markdown: markdown.trim_end().to_owned(),
        warnings,
    }
}

fn children(node: &Value) -> &[Value] {
    node.get("content")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn attr<'a>(node: &'a Value, name: &str) -> Option<&'a Value> {
    node.get("attrs").and_then(|a| a.get(name))
}

#[derive(Default)]
struct MarkdownRenderer {
    warnings: Vec<String>,
    /// Blocks entered and not yet left.
    depth: usize,
}

impl MarkdownRenderer {
    fn blocks(&mut self, nodes: &[Value], separator: &str) -> String {
        nodes
            .iter()
            .map(|n| self.block(n))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(separator)
    }

    fn raw_block(&mut self, node: &Value) -> String {
        let name = kind(node);
        self.warnings.push(format!(
            "ADF block `{name}` has no Markdown form; kept as an ```adf code block (send it back unchanged to keep it)"
        ));
        self.raw_json_block(node)
    }

    /// One block node; past [`READ_MAX_NESTING_DEPTH`] nested blocks the node is
    /// kept as raw ADF instead of being walked further.
    fn block(&mut self, node: &Value) -> String {
        if self.depth >= READ_MAX_NESTING_DEPTH {
            return self.too_deep(node);
        }
        self.depth += 1;
        let out = self.walk_block(node);
        self.depth -= 1;
        out
    }

    fn too_deep(&mut self, node: &Value) -> String {
        self.warnings.push(format!(
            "content nested more than {READ_MAX_NESTING_DEPTH} levels deep is kept as an ```adf code block"
        ));
        self.raw_json_block(node)
    }

    /// `node` as JSON text, unless it is deeper than serde_json reads (writing it
    /// is recursive too): then `None`, with a warning.
    fn json_text(&mut self, node: &Value) -> Option<String> {
        if json_depth(node) > ADF_MAX_JSON_DEPTH {
            self.warnings.push(format!(
                "content nested more than {ADF_MAX_JSON_DEPTH} JSON levels deep is left out; open the issue in Jira to see it"
            ));
            return None;
        }
        Some(node.to_string())
    }

    fn raw_json_block(&mut self, node: &Value) -> String {
        match self.json_text(node) {
            Some(json) => format!("```{RAW_BLOCK_LANGUAGE}\n{json}\n```"),
            None => String::new(),
        }
    }

    fn walk_block(&mut self, node: &Value) -> String {
        match kind(node) {
            "paragraph" => escape_line_start(&self.inlines(children(node))),
            "heading" => {
                let level = attr(node, "level")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .clamp(1, 6) as usize;
                format!("{} {}", "#".repeat(level), self.inlines(children(node)))
            }
            "bulletList" => children(node)
                .iter()
                .map(|item| self.list_item(item, "- "))
                .collect::<Vec<_>>()
                .join("\n"),
            "orderedList" => {
                let start = attr(node, "order").and_then(Value::as_u64).unwrap_or(1);
                children(node)
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.list_item(item, &format!("{}. ", start + i as u64)))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            "codeBlock" => {
                let text: String = children(node)
                    .iter()
                    .filter_map(|t| t.get("text").and_then(Value::as_str))
                    .collect();
                let language = attr(node, "language").and_then(Value::as_str).unwrap_or("");
                let fence = if text.contains("```") { "~~~~" } else { "```" };
                format!("{fence}{language}\n{text}\n{fence}")
            }
            "blockquote" => prefix_lines(&self.blocks(children(node), "\n\n"), "> "),
            "panel" => {
                let panel = attr(node, "panelType")
                    .and_then(Value::as_str)
                    .unwrap_or("info")
                    .to_owned();
                self.warnings.push(format!(
                    "ADF panel ({panel}) shown as a quote; sending it back makes it a plain quote"
                ));
                let inner = self.blocks(children(node), "\n\n");
                prefix_lines(&format!("**{}:** {inner}", capitalize(&panel)), "> ")
            }
            "rule" => "---".to_owned(),
            "table" => self.table(node),
            "mediaSingle" | "mediaGroup" | "media" | "expand" | "nestedExpand" | "taskList"
            | "decisionList" | "blockCard" | "embedCard" | "extension" | "bodiedExtension" => {
                self.raw_block(node)
            }
            // An inline node where a block is expected: render it as a line.
            "text" | "mention" | "emoji" | "hardBreak" | "inlineCard" => {
                self.inlines(std::slice::from_ref(node))
            }
            _ => self.raw_block(node),
        }
    }

    fn list_item(&mut self, item: &Value, marker: &str) -> String {
        let body = if kind(item) == "listItem" {
            self.blocks(children(item), "\n")
        } else {
            self.block(item)
        };
        let indent = " ".repeat(marker.len());
        let mut out = String::from(marker);
        for (i, line) in body.lines().enumerate() {
            if i > 0 {
                out.push('\n');
                if !line.is_empty() {
                    out.push_str(&indent);
                }
            }
            out.push_str(line);
        }
        out
    }

    fn table(&mut self, node: &Value) -> String {
        let rows: Vec<Vec<String>> = children(node)
            .iter()
            .map(|row| {
                children(row)
                    .iter()
                    .map(|cell| {
                        let blocks = children(cell);
                        if blocks.iter().any(|b| kind(b) != "paragraph") {
                            self.warnings.push(
                                "a table cell holds more than text; its content is flattened onto one line".to_owned(),
                            );
                        }
                        self.blocks(blocks, " ").replace('\n', " ").replace('|', "\\|")
                    })
                    .collect()
            })
            .collect();
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        if width == 0 {
            return String::new();
        }
        let line = |cells: &[String]| {
            let mut padded: Vec<String> = cells.to_vec();
            padded.resize(width, String::new());
            format!("| {} |", padded.join(" | "))
        };
        let mut out = vec![line(&rows[0]), format!("|{}", " --- |".repeat(width))];
        out.extend(rows[1..].iter().map(|r| line(r)));
        out.join("\n")
    }

    fn inlines(&mut self, nodes: &[Value]) -> String {
        let mut out = String::new();
        for node in nodes {
            match kind(node) {
                "text" => {
                    let text = node.get("text").and_then(Value::as_str).unwrap_or("");
                    out.push_str(&self.marked_text(text, node.get("marks")));
                }
                "hardBreak" => out.push_str("\\\n"),
                "mention" => {
                    let id = attr(node, "id").and_then(Value::as_str).unwrap_or("");
                    let text = attr(node, "text").and_then(Value::as_str).unwrap_or("");
                    let name = text.trim_start_matches('@');
                    out.push_str(&format!("[@{}]({MENTION_SCHEME}{id})", escape(name)));
                }
                "emoji" => {
                    let text = attr(node, "text")
                        .or_else(|| attr(node, "shortName"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    out.push_str(text);
                }
                "inlineCard" => match attr(node, "url").and_then(Value::as_str) {
                    Some(url) => out.push_str(&format!("<{url}>")),
                    None => out.push_str(&self.raw_inline(node)),
                },
                _ => out.push_str(&self.raw_inline(node)),
            }
        }
        out
    }

    fn raw_inline(&mut self, node: &Value) -> String {
        self.warnings.push(format!(
            "ADF inline `{}` has no Markdown form; kept as inline code `adf:{{...}}` (send it back unchanged to keep it)",
            kind(node)
        ));
        let Some(json) = self.json_text(node) else {
            return String::new();
        };
        if json.contains('`') {
            format!("`` {RAW_INLINE_PREFIX}{json} ``")
        } else {
            format!("`{RAW_INLINE_PREFIX}{json}`")
        }
    }

    fn marked_text(&mut self, text: &str, marks: Option<&Value>) -> String {
        let marks: Vec<&Value> = marks
            .and_then(Value::as_array)
            .map(|m| m.iter().collect())
            .unwrap_or_default();
        let has = |name: &str| marks.iter().any(|m| kind(m) == name);
        for mark in &marks {
            let name = kind(mark);
            if !matches!(name, "code" | "strong" | "em" | "strike" | "link") {
                self.warnings.push(format!(
                    "formatting `{name}` has no Markdown form; its text is kept without it"
                ));
            }
        }
        if text.is_empty() {
            return String::new();
        }
        let mut core = if has("code") {
            let fence = if text.contains('`') { "``" } else { "`" };
            let pad = if text.starts_with('`') || text.ends_with('`') {
                " "
            } else {
                ""
            };
            format!("{fence}{pad}{text}{pad}{fence}")
        } else {
            escape(text)
        };
        // Emphasis delimiters must touch non-space characters.
        let lead = core.len() - core.trim_start().len();
        let trail = core.len() - core.trim_end().len();
        if core.trim().is_empty() {
            return core;
        }
        let (before, rest) = core.split_at(lead);
        let (middle, after) = rest.split_at(rest.len() - trail);
        let (before, after) = (before.to_owned(), after.to_owned());
        let mut middle = middle.to_owned();
        if has("strike") {
            middle = format!("~~{middle}~~");
        }
        if has("em") {
            middle = format!("*{middle}*");
        }
        if has("strong") {
            middle = format!("**{middle}**");
        }
        if let Some(link) = marks.iter().find(|m| kind(m) == "link") {
            let href = attr(link, "href").and_then(Value::as_str).unwrap_or("");
            middle = format!(
                "[{middle}]({})",
                href.replace(' ', "%20").replace(')', "%29")
            );
        }
        core = format!("{before}{middle}{after}");
        core
    }
}

/// Escapes Markdown's inline syntax characters, and an `&` that would start
/// an entity reference (`&amp;`, `&#35;`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if matches!(c, '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '~')
            || (c == '&' && starts_entity(&text[i + 1..]))
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether text after an `&` reads as an entity: a name or `#` number, then `;`.
/// Entity names are short, so only the next few characters are looked at (text
/// of many `&` without `;` must not take quadratic time).
fn starts_entity(after: &str) -> bool {
    const LONGEST_ENTITY: usize = 32;
    let window = match after.char_indices().nth(LONGEST_ENTITY + 1) {
        Some((end, _)) => &after[..end],
        None => after,
    };
    let body = window.split(';').next().unwrap_or("");
    let closed = window.len() > body.len();
    let named = body.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && body.chars().all(|c| c.is_ascii_alphanumeric());
    let numeric = body.strip_prefix('#').is_some_and(|n| {
        let digits = n.strip_prefix(['x', 'X']).unwrap_or(n);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit())
    });
    closed && (named || numeric)
}

/// Escapes what would start a block construct at the beginning of a paragraph.
fn escape_line_start(line: &str) -> String {
    // A list marker is one followed by whitespace or by nothing at all (`-`
    // alone is an empty list item).
    let marker_then_space = |rest: &str, marker: &str| {
        rest.strip_prefix(marker)
            .is_some_and(|after| after.chars().next().is_none_or(char::is_whitespace))
    };
    let starts_block = line.starts_with('#')
        || line.starts_with('>')
        || marker_then_space(line, "-")
        || marker_then_space(line, "+")
        || line.starts_with("---")
        || {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            digits > 0
                && (marker_then_space(&line[digits..], ".")
                    || marker_then_space(&line[digits..], ")"))
        };
    if !starts_block {
        return line.to_owned();
    }
    match line.find(|c: char| !c.is_ascii_digit()) {
        Some(i) if i > 0 => format!("{}\\{}", &line[..i], &line[i..]),
        _ => format!("\\{line}"),
    }
}

fn prefix_lines(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                prefix.trim_end().to_owned()
            } else {
                format!("{prefix}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
