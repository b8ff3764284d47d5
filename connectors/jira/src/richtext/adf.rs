//! Markdown ⇄ Atlassian Document Format (ADF), the rich text of Jira Cloud.
//!
//! No maintained crate converts both ways (the ones on crates.io only go from
//! Markdown to ADF and cover a few constructs), so this is a focused converter:
//! pulldown-cmark parses Markdown; ADF JSON is walked directly.
//!
//! Covered both ways: paragraphs, headings, bullet and ordered lists (nested,
//! with start number), fenced code blocks with language, block quotes, rules,
//! tables, hard breaks, strong / emphasis / strike-through / inline code, links,
//! and mentions, written `[@Name](accountid:ACCOUNT_ID)`.
//!
//! Nothing is dropped: an ADF node Markdown cannot express (media, panels'
//! colours, status lozenges, dates, ...) is kept in the Markdown as a fenced
//! ```` ```adf ```` block (block nodes) or inline code `` `adf:{...}` `` (inline
//! nodes) holding its JSON, and named in the warnings. Sending that Markdown back
//! restores the original node. Marks without a Markdown form (underline, colour)
//! keep their text and are named in the warnings.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde_json::{Map, Value, json};

use super::{ADF_MAX_JSON_DEPTH, NestingGuard, READ_MAX_NESTING_DEPTH, TooDeep, json_depth};

/// Link target prefix that marks a mention: `[@Ada](accountid:5b10ac8d82e05b22cc7d4ef5)`.
pub const MENTION_SCHEME: &str = "accountid:";
/// Language of a fenced code block that holds a raw ADF block node.
pub const RAW_BLOCK_LANGUAGE: &str = "adf";
/// Prefix of inline code that holds a raw ADF inline node.
pub const RAW_INLINE_PREFIX: &str = "adf:";

// ---------------------------------------------------------------- Markdown → ADF

/// Converts Markdown to an ADF document (`{"type":"doc","version":1,...}`);
/// refused when it nests more than `max_depth` elements, or when the document
/// would be deeper than [`ADF_MAX_JSON_DEPTH`] (see [`super`]).
pub fn markdown_to_adf(markdown: &str, max_depth: usize) -> Result<Value, TooDeep> {
    let mut builder = AdfBuilder::default();
    let mut guard = NestingGuard::new(max_depth);
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for event in Parser::new_ext(markdown, options) {
        // Checked before the event is built: the tree never gets deeper.
        guard.check(&event)?;
        builder.event(event);
    }
    let doc = builder.finish();
    if json_depth(&doc) > ADF_MAX_JSON_DEPTH {
        return Err(TooDeep::Document);
    }
    Ok(doc)
}

struct Frame {
    node: Map<String, Value>,
    content: Vec<Value>,
    /// A paragraph opened for loose inline content (tight list items, table cells).
    implicit: bool,
}

impl Frame {
    fn new(kind: &str) -> Self {
        let mut node = Map::new();
        node.insert("type".into(), Value::String(kind.into()));
        Self {
            node,
            content: Vec::new(),
            implicit: false,
        }
    }

    fn kind(&self) -> &str {
        self.node.get("type").and_then(Value::as_str).unwrap_or("")
    }

    fn with_attrs(mut self, attrs: Value) -> Self {
        self.node.insert("attrs".into(), attrs);
        self
    }

    fn into_node(mut self) -> Value {
        let kind = self.kind().to_owned();
        if matches!(kind.as_str(), "tableCell" | "tableHeader" | "listItem")
            && self.content.is_empty()
        {
            self.content
                .push(json!({"type": "paragraph", "content": []}));
        }
        self.node
            .insert("content".into(), Value::Array(self.content));
        Value::Object(self.node)
    }
}

enum Special {
    None,
    /// Inside a code block: raw text collected.
    Code(String),
    /// Inside a mention link: the visible text collected.
    Mention {
        id: String,
        text: String,
    },
}

struct AdfBuilder {
    stack: Vec<Frame>,
    marks: Vec<Value>,
    special: Special,
    in_table_head: bool,
    /// Text runs emitted so far, to notice links and images without text.
    texts: usize,
    /// Open links and images: their target and `texts` when they opened.
    open_links: Vec<(String, usize)>,
}

impl Default for AdfBuilder {
    fn default() -> Self {
        let mut doc = Frame::new("doc");
        doc.node.insert("version".into(), json!(1));
        Self {
            stack: vec![doc],
            marks: Vec::new(),
            special: Special::None,
            in_table_head: false,
            texts: 0,
            open_links: Vec::new(),
        }
    }
}

impl AdfBuilder {
    fn top(&mut self) -> &mut Frame {
        // The doc frame is never popped before `finish`.
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    fn push_block(&mut self, frame: Frame) {
        self.close_implicit();
        self.stack.push(frame);
    }

    fn close_implicit(&mut self) {
        if self.stack.last().is_some_and(|f| f.implicit) {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if self.stack.len() > 1
            && let Some(frame) = self.stack.pop()
        {
            let node = frame.into_node();
            self.top().content.push(node);
        }
    }

    fn end_block(&mut self) {
        self.close_implicit();
        self.pop();
    }

    fn push_inline(&mut self, node: Value) {
        let kind = self.top().kind().to_owned();
        if matches!(
            kind.as_str(),
            "doc"
                | "listItem"
                | "tableCell"
                | "tableHeader"
                | "blockquote"
                | "bulletList"
                | "orderedList"
        ) {
            let mut paragraph = Frame::new("paragraph");
            paragraph.implicit = true;
            self.stack.push(paragraph);
        }
        self.top().content.push(node);
    }

    fn text(&mut self, text: &str, extra_mark: Option<Value>) {
        if text.is_empty() {
            return;
        }
        self.texts += 1;
        let mut marks: Vec<Value> = self.marks.clone();
        if let Some(mark) = extra_mark {
            // ADF allows only `link` next to `code`.
            marks.retain(|m| m.get("type").and_then(Value::as_str) == Some("link"));
            marks.insert(0, mark);
        }
        let marks = (!marks.is_empty()).then_some(Value::Array(marks));
        // Escapes and entities split the parser's text; one ADF node per run of
        // identically marked text.
        if let Some(last) = self.stack.last_mut().and_then(|f| f.content.last_mut())
            && kind(last) == "text"
            && last.get("marks") == marks.as_ref()
            && let Some(Value::String(existing)) = last.get_mut("text")
        {
            existing.push_str(text);
            return;
        }
        let mut node = json!({"type": "text", "text": text});
        if let Some(marks) = marks {
            node["marks"] = marks;
        }
        self.push_inline(node);
    }

    fn event(&mut self, event: Event<'_>) {
        match &mut self.special {
            Special::Code(buffer) => {
                match event {
                    Event::Text(t) => buffer.push_str(&t),
                    Event::End(TagEnd::CodeBlock) => self.end_code_block(),
                    _ => {}
                }
                return;
            }
            Special::Mention { text, .. } => {
                match event {
                    Event::Text(t) | Event::Code(t) => text.push_str(&t),
                    Event::End(TagEnd::Link) => self.end_mention(),
                    _ => {}
                }
                return;
            }
            Special::None => {}
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.text(&t, None),
            Event::Code(t) => match raw_node(t.strip_prefix(RAW_INLINE_PREFIX)) {
                Some(node) => self.push_inline(node),
                None => self.text(&t, Some(json!({"type": "code"}))),
            },
            Event::SoftBreak => self.text(" ", None),
            Event::HardBreak => self.push_inline(json!({"type": "hardBreak"})),
            Event::Rule => {
                self.close_implicit();
                self.top().content.push(json!({"type": "rule"}));
            }
            // Kept as literal text: ADF has no raw HTML.
            Event::Html(t) | Event::InlineHtml(t) => self.text(t.trim_end_matches('\n'), None),
            Event::InlineMath(t) | Event::DisplayMath(t) => {
                self.text(&t, Some(json!({"type": "code"})))
            }
            Event::FootnoteReference(t) => self.text(&format!("[^{t}]"), None),
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }, None),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => self.push_block(Frame::new("paragraph")),
            Tag::Heading { level, .. } => {
                self.push_block(
                    Frame::new("heading").with_attrs(json!({"level": heading_number(level)})),
                );
            }
            Tag::BlockQuote(_) => self.push_block(Frame::new("blockquote")),
            Tag::CodeBlock(kind) => {
                let language = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_owned()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                let frame = if language.is_empty() {
                    Frame::new("codeBlock")
                } else {
                    Frame::new("codeBlock").with_attrs(json!({"language": language}))
                };
                self.push_block(frame);
                self.special = Special::Code(String::new());
            }
            Tag::List(Some(start)) => {
                self.push_block(Frame::new("orderedList").with_attrs(json!({"order": start})));
            }
            Tag::List(None) => self.push_block(Frame::new("bulletList")),
            Tag::Item => self.push_block(Frame::new("listItem")),
            Tag::Table(_) => self.push_block(Frame::new("table")),
            Tag::TableHead => {
                self.in_table_head = true;
                self.push_block(Frame::new("tableRow"));
            }
            Tag::TableRow => self.push_block(Frame::new("tableRow")),
            Tag::TableCell => {
                let kind = if self.in_table_head {
                    "tableHeader"
                } else {
                    "tableCell"
                };
                self.push_block(Frame::new(kind));
            }
            Tag::Emphasis => self.marks.push(json!({"type": "em"})),
            Tag::Strong => self.marks.push(json!({"type": "strong"})),
            Tag::Strikethrough => self.marks.push(json!({"type": "strike"})),
            Tag::Superscript => self
                .marks
                .push(json!({"type": "subsup", "attrs": {"type": "sup"}})),
            Tag::Subscript => self
                .marks
                .push(json!({"type": "subsup", "attrs": {"type": "sub"}})),
            Tag::Link { dest_url, .. } => match dest_url.strip_prefix(MENTION_SCHEME) {
                Some(id) if !id.is_empty() => {
                    self.special = Special::Mention {
                        id: id.to_owned(),
                        text: String::new(),
                    }
                }
                _ => self.open_link(&dest_url),
            },
            // ADF images need uploaded media; the picture is kept as a link.
            Tag::Image { dest_url, .. } => self.open_link(&dest_url),
            Tag::HtmlBlock
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => self.push_block(Frame::new("paragraph")),
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript => {
                self.marks.pop();
            }
            TagEnd::Link | TagEnd::Image => {
                // A link or image without text shows its target, so it is not lost.
                if let Some((href, texts_before)) = self.open_links.pop()
                    && self.texts == texts_before
                {
                    self.text(&href, None);
                }
                self.marks.pop();
            }
            TagEnd::TableHead => {
                self.in_table_head = false;
                self.end_block();
            }
            TagEnd::CodeBlock => self.end_code_block(),
            _ => self.end_block(),
        }
    }

    fn open_link(&mut self, href: &str) {
        self.open_links.push((href.to_owned(), self.texts));
        self.marks
            .push(json!({"type": "link", "attrs": {"href": href}}));
    }

    fn end_code_block(&mut self) {
        let Special::Code(text) = std::mem::replace(&mut self.special, Special::None) else {
            return;
        };
        let is_raw = self
            .stack
            .last()
            .and_then(|f| f.node.get("attrs"))
            .and_then(|a| a.get("language"))
            .and_then(Value::as_str)
            == Some(RAW_BLOCK_LANGUAGE);
        if is_raw && let Some(node) = raw_node(Some(text.trim())) {
            self.stack.pop();
            self.top().content.push(node);
            return;
        }
        let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
        if !text.is_empty() {
            self.top()
                .content
                .push(json!({"type": "text", "text": text}));
        }
        self.pop();
    }

    fn end_mention(&mut self) {
        let Special::Mention { id, text } = std::mem::replace(&mut self.special, Special::None)
        else {
            return;
        };
        let text = if text.starts_with('@') {
            text
        } else {
            format!("@{text}")
        };
        self.push_inline(json!({"type": "mention", "attrs": {"id": id, "text": text}}));
    }

    fn finish(mut self) -> Value {
        if let Special::Code(_) = self.special {
            self.end_code_block();
        }
        while self.stack.len() > 1 {
            self.pop();
        }
        match self.stack.pop() {
            Some(doc) => doc.into_node(),
            None => json!({"type": "doc", "version": 1, "content": []}),
        }
    }
}

fn heading_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// A raw ADF node written back by the caller: a JSON object with a `type`.
fn raw_node(text: Option<&str>) -> Option<Value> {
    let value: Value = serde_json::from_str(text?).ok()?;
    value.get("type").and_then(Value::as_str)?;
    Some(value)
}

// ---------------------------------------------------------------- ADF → Markdown

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

fn kind(node: &Value) -> &str {
    node.get("type").and_then(Value::as_str).unwrap_or("")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The conversion at the default nesting limit.
    fn markdown_to_adf(markdown: &str) -> Value {
        super::markdown_to_adf(markdown, crate::richtext::DEFAULT_MAX_NESTING_DEPTH)
            .expect("within the nesting limit")
    }

    fn round_trip(markdown: &str) -> Converted {
        adf_to_markdown(&markdown_to_adf(markdown))
    }

    fn assert_round_trip(markdown: &str) {
        let back = round_trip(markdown);
        assert_eq!(
            back.markdown,
            markdown,
            "\nADF: {}",
            markdown_to_adf(markdown)
        );
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    }

    #[test]
    fn paragraphs_and_inline_marks_round_trip() {
        assert_round_trip("Plain **bold** *italic* ~~gone~~ `code` text.\n\nSecond paragraph.");
    }

    #[test]
    fn headings_round_trip_at_every_level() {
        assert_round_trip("# One\n\n## Two\n\n###### Six");
        let adf = markdown_to_adf("### Three");
        assert_eq!(
            adf["content"][0],
            json!({"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": "Three"}]})
        );
    }

    #[test]
    fn nested_lists_round_trip() {
        assert_round_trip("- one\n- two\n  - nested\n  - more\n- three");
        assert_round_trip("3. third\n4. fourth\n   1. inner");
        let adf = markdown_to_adf("- a\n- b");
        assert_eq!(adf["content"][0]["type"], "bulletList");
        assert_eq!(
            adf["content"][0]["content"][0]["content"][0]["type"],
            "paragraph"
        );
    }

    #[test]
    fn code_blocks_keep_language_and_text() {
        assert_round_trip("```rust\nfn main() {\n    println!(\"*not emphasis*\");\n}\n```");
        let adf = markdown_to_adf("```sql\nselect 1;\n```");
        assert_eq!(
            adf["content"][0],
            json!({"type": "codeBlock", "attrs": {"language": "sql"}, "content": [{"type": "text", "text": "select 1;"}]})
        );
    }

    #[test]
    fn links_round_trip_as_link_marks() {
        assert_round_trip(
            "See [the docs](https://example.com/a?b=1) and [**bold link**](https://x.io).",
        );
        let adf = markdown_to_adf("[docs](https://example.com)");
        assert_eq!(
            adf["content"][0]["content"][0]["marks"][0],
            json!({"type": "link", "attrs": {"href": "https://example.com"}})
        );
    }

    #[test]
    fn links_and_images_without_text_keep_their_target() {
        let adf = markdown_to_adf("![](https://x.io/a.png) and [](https://x.io/b)");
        let nodes = &adf["content"][0]["content"];
        assert_eq!(nodes[0]["text"], "https://x.io/a.png");
        assert_eq!(nodes[0]["marks"][0]["attrs"]["href"], "https://x.io/a.png");
        assert_eq!(nodes[2]["text"], "https://x.io/b");
        let adf = markdown_to_adf("![diagram](https://x.io/d.png)");
        assert_eq!(adf["content"][0]["content"][0]["text"], "diagram");
    }

    #[test]
    fn mentions_round_trip_through_accountid_links() {
        assert_round_trip("Ping [@Ada Lovelace](accountid:5b10ac8d82e05b22cc7d4ef5) please.");
        let adf = markdown_to_adf("[@Ada](accountid:abc123)");
        assert_eq!(
            adf["content"][0]["content"][0],
            json!({"type": "mention", "attrs": {"id": "abc123", "text": "@Ada"}})
        );
    }

    #[test]
    fn quotes_rules_and_hard_breaks_round_trip() {
        assert_round_trip("> quoted\n>\n> more\n\n---\n\nline one\\\nline two");
    }

    #[test]
    fn tables_round_trip_with_a_header_row() {
        assert_round_trip("| Name | Value |\n| --- | --- |\n| a | 1 |\n| b | 2 |");
        let adf = markdown_to_adf("| H |\n| --- |\n| c |");
        assert_eq!(
            adf["content"][0]["content"][0]["content"][0]["type"],
            "tableHeader"
        );
        assert_eq!(
            adf["content"][0]["content"][1]["content"][0]["content"][0]["type"],
            "paragraph"
        );
    }

    #[test]
    fn special_characters_in_text_are_escaped() {
        let adf = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "a*b_c [x] # 1. `q`"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "# not a heading"}]}
        ]});
        let md = adf_to_markdown(&adf).markdown;
        let back = markdown_to_adf(&md);
        assert_eq!(
            back["content"][0]["content"][0]["text"],
            "a*b_c [x] # 1. `q`"
        );
        assert_eq!(back["content"][1]["content"][0]["text"], "# not a heading");
    }

    #[test]
    fn only_an_ampersand_that_starts_an_entity_is_escaped() {
        assert_eq!(escape("R&D &amp; &#35; &x"), "R&D \\&amp; \\&#35; &x");
        let many = "&".repeat(200_000);
        let started = std::time::Instant::now();
        assert_eq!(escape(&many), many);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn unknown_block_nodes_are_kept_flagged_and_restored() {
        let media = json!({"type": "mediaSingle", "attrs": {"layout": "center"}, "content": [{"type": "media", "attrs": {"id": "abc", "type": "file", "collection": "c"}}]});
        let adf = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "before"}]},
            media.clone()
        ]});
        let converted = adf_to_markdown(&adf);
        assert!(
            converted.markdown.contains("```adf"),
            "{}",
            converted.markdown
        );
        assert_eq!(converted.warnings.len(), 1);
        assert!(converted.warnings[0].contains("mediaSingle"));
        let back = markdown_to_adf(&converted.markdown);
        assert_eq!(back["content"][1], media);
    }

    #[test]
    fn unknown_inline_nodes_are_kept_flagged_and_restored() {
        let status = json!({"type": "status", "attrs": {"text": "BLOCKED", "color": "red"}});
        let adf = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "state: "}, status.clone()]}
        ]});
        let converted = adf_to_markdown(&adf);
        assert!(converted.warnings[0].contains("status"));
        let back = markdown_to_adf(&converted.markdown);
        assert_eq!(back["content"][0]["content"][1], status);
    }

    #[test]
    fn marks_without_markdown_form_keep_their_text_and_are_flagged() {
        let adf = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "underlined", "marks": [{"type": "underline"}]}]}
        ]});
        let converted = adf_to_markdown(&adf);
        assert_eq!(converted.markdown, "underlined");
        assert!(converted.warnings[0].contains("underline"));
    }

    #[test]
    fn panels_become_flagged_quotes() {
        let adf = json!({"type": "doc", "version": 1, "content": [
            {"type": "panel", "attrs": {"panelType": "warning"}, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "careful"}]}]}
        ]});
        let converted = adf_to_markdown(&adf);
        assert_eq!(converted.markdown, "> **Warning:** careful");
        assert_eq!(converted.warnings.len(), 1);
    }

    #[test]
    fn emphasis_moves_outside_surrounding_spaces() {
        let adf = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": " bold ", "marks": [{"type": "strong"}]},
                {"type": "text", "text": "b"}
            ]}
        ]});
        assert_eq!(adf_to_markdown(&adf).markdown, "a **bold** b");
    }

    #[test]
    fn plain_strings_and_null_pass_through() {
        assert_eq!(adf_to_markdown(&json!("h1. wiki")).markdown, "h1. wiki");
        assert_eq!(adf_to_markdown(&Value::Null).markdown, "");
    }

    #[test]
    fn empty_markdown_is_an_empty_document() {
        assert_eq!(
            markdown_to_adf(""),
            json!({"type": "doc", "version": 1, "content": []})
        );
    }
}
