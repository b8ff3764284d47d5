//! Markdown → ADF: pulldown-cmark's events built into an ADF document, with
//! ```` ```adf ```` blocks and `` `adf:{...}` `` code restored as the raw nodes
//! they hold and `[@Name](accountid:...)` links as mentions.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use serde_json::{Map, Value, json};

use super::{MENTION_SCHEME, RAW_BLOCK_LANGUAGE, RAW_INLINE_PREFIX, kind};
use crate::richtext::{ADF_MAX_JSON_DEPTH, NestingGuard, TooDeep, heading_number, json_depth};

/// Converts Markdown to an ADF document (`{"type":"doc","version":1,...}`);
/// refused when it nests more than `max_depth` elements, or when the document
/// would be deeper than [`ADF_MAX_JSON_DEPTH`] (see [`crate::richtext`]).
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

/// A raw ADF node written back by the caller: a JSON object with a `type`.
fn raw_node(text: Option<&str>) -> Option<Value> {
    let value: Value = serde_json::from_str(text?).ok()?;
    value.get("type").and_then(Value::as_str)?;
    Some(value)
}
