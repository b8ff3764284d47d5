//! Rich text (issue descriptions, comments): the tools speak Markdown; Jira Cloud
//! speaks Atlassian Document Format and Jira Data Center wiki markup; both are
//! converted in both directions.
//!
//! Depth comes from input, so it is bounded both ways:
//!
//! - Markdown from a caller may nest at most `JIRA_MAX_NESTING_DEPTH` elements
//!   (quotes, lists, list items, emphasis, links, ...; default
//!   [`DEFAULT_MAX_NESTING_DEPTH`]); deeper is refused with INVALID_ARGUMENT
//!   naming the setting, before anything is built or sent. An ADF document that
//!   would nest deeper than [`ADF_MAX_JSON_DEPTH`] JSON levels (raw ```` ```adf ````
//!   blocks count with their content) is refused too, since Jira's answer holding
//!   it could not be read back.
//! - Rich text from Jira is read as far as [`READ_MAX_NESTING_DEPTH`]: deeper ADF
//!   nodes are kept as raw ADF and deeper wiki effects as text, with a warning.
//!   (Jira's JSON answers themselves are read with serde_json's limit of 128
//!   levels.)
//!
//! The trees built are therefore shallow, so building, serializing and dropping
//! them needs no deep recursion.

pub mod adf;
pub mod wiki;

use pulldown_cmark::{Event, HeadingLevel};
use serde_json::Value;

use crate::config::Flavor;

pub use adf::Converted;

/// Default of `JIRA_MAX_NESTING_DEPTH`: elements nested in one another in
/// Markdown sent to Jira (people rarely nest more than five).
pub const DEFAULT_MAX_NESTING_DEPTH: usize = 32;
/// The largest accepted `JIRA_MAX_NESTING_DEPTH`: deeper Markdown could not be
/// stored as ADF that Jira's answers can be read back with.
pub const MAX_NESTING_DEPTH_LIMIT: usize = 60;
/// JSON levels an ADF document sent to Jira may have: serde_json's recursion
/// limit, with which the connector reads Jira's answers.
pub const ADF_MAX_JSON_DEPTH: usize = 128;
/// Nesting read from Jira's rich text before the rest is kept as it is.
pub const READ_MAX_NESTING_DEPTH: usize = 64;

/// Markdown nested too deep to be sent to Jira.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TooDeep {
    /// More nested Markdown elements than `JIRA_MAX_NESTING_DEPTH`.
    #[error(
        "nests elements (quotes, lists, emphasis, links) more than {limit} levels deep; at most {limit} are accepted (JIRA_MAX_NESTING_DEPTH): flatten it"
    )]
    Markdown {
        /// The configured limit.
        limit: usize,
    },
    /// An ADF document deeper than [`ADF_MAX_JSON_DEPTH`].
    #[error(
        "would be stored as an ADF document more than {ADF_MAX_JSON_DEPTH} JSON levels deep, which could not be read back from Jira; nest less (raw ```adf blocks count with their content)"
    )]
    Document,
}

/// Counts nesting over Markdown events and refuses more than `limit` levels.
#[derive(Debug)]
pub(crate) struct NestingGuard {
    depth: usize,
    limit: usize,
}

impl NestingGuard {
    pub(crate) fn new(limit: usize) -> Self {
        Self { depth: 0, limit }
    }

    /// Notes `event`; an error once more than `limit` elements are open.
    pub(crate) fn check(&mut self, event: &Event<'_>) -> Result<(), TooDeep> {
        match event {
            Event::Start(_) => {
                self.depth += 1;
                if self.depth > self.limit {
                    return Err(TooDeep::Markdown { limit: self.limit });
                }
            }
            Event::End(_) => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        Ok(())
    }
}

/// A Markdown heading's level as a number (1 to 6), as ADF and wiki markup write it.
pub(crate) fn heading_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// The JSON nesting of `value` (a scalar is 0, `[]` is 1), found with an
/// explicit stack so any depth can be measured.
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// Markdown in the form `flavor` stores: an ADF document (Cloud) or a wiki
/// markup string (Data Center); refused when it nests more than `max_depth`
/// elements.
pub fn to_jira(flavor: Flavor, markdown: &str, max_depth: usize) -> Result<Value, TooDeep> {
    match flavor {
        Flavor::Cloud => adf::markdown_to_adf(markdown, max_depth),
        Flavor::DataCenter => wiki::markdown_to_wiki(markdown, max_depth).map(Value::String),
    }
}

/// Markdown for Jira's rich text: ADF (Cloud, an object) and wiki markup (Data
/// Center, a string) are converted, with warnings about what has no Markdown form.
pub fn from_jira(value: &Value) -> Converted {
    match value {
        Value::String(wiki) => wiki::wiki_to_markdown(wiki),
        other => adf::adf_to_markdown(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NASTY: &[&str] = &[
        "",
        "\n",
        "*",
        "**",
        "_",
        "`",
        "```",
        "~~~",
        "[",
        "]",
        "[]()",
        "![",
        "![]",
        "<",
        "|",
        "||",
        "| a |\n|",
        "h1.",
        "h7. x",
        "{code",
        "{code}",
        "{code:",
        "{quote}",
        "{{",
        "}}",
        "{{x",
        "[~",
        "[|]",
        "!!",
        "! x!",
        "*a",
        "a*",
        "* ",
        "#",
        "# ",
        "1.",
        "1) x",
        "-",
        "- ",
        "----",
        "\\",
        "\\\\",
        "é*ü_ß-",
        "🦀 *🦀* _🦀_",
        "> > >",
        "- a\n\t- b\n\t\t- c",
        "|a||b|\n||c|",
        "[@x](accountid:)",
        "`adf:{\"type\":1}`",
        "```adf\nnot json\n```",
    ];

    #[test]
    fn conversions_never_panic_on_odd_input() {
        for input in NASTY {
            for flavor in [Flavor::Cloud, Flavor::DataCenter] {
                let stored = to_jira(flavor, input, DEFAULT_MAX_NESTING_DEPTH);
                let _ = stored.map(|stored| from_jira(&stored));
            }
            let _ = from_jira(&json!(input));
        }
        for value in [
            json!({"type": "doc"}),
            json!({"type": "doc", "content": [1, null, {"type": 5}]}),
            json!([1, 2]),
            json!(3),
        ] {
            let _ = from_jira(&value);
        }
    }

    /// Takes a deep value apart level by level, since dropping it whole would
    /// recurse once per level.
    fn dismantle(value: Value) {
        let mut stack = vec![value];
        while let Some(mut value) = stack.pop() {
            match &mut value {
                Value::Array(items) => stack.append(items),
                Value::Object(map) => stack.extend(std::mem::take(map).into_iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    /// `depth` blockquotes in one another, built without recursion (`json!`
    /// with a value inside would serialize it, recursively).
    fn nested_quotes_adf(depth: usize) -> Value {
        let node = |kind: &str, child: Value| {
            let mut map = serde_json::Map::new();
            map.insert("type".into(), Value::String(kind.into()));
            map.insert("content".into(), Value::Array(vec![child]));
            Value::Object(map)
        };
        let mut tree = node("paragraph", json!({"type": "text", "text": "deep"}));
        for _ in 0..depth {
            tree = node("blockquote", tree);
        }
        let mut doc = node("doc", tree);
        doc["version"] = json!(1);
        doc
    }

    fn refused_naming_the_limit(result: Result<Value, TooDeep>, input: &str) {
        match result {
            Err(error @ TooDeep::Markdown { .. }) => {
                assert!(
                    error.to_string().contains("JIRA_MAX_NESTING_DEPTH"),
                    "{error}"
                )
            }
            other => panic!(
                "{:?}… was not refused: {other:?}",
                &input[..input.len().min(40)]
            ),
        }
    }

    #[test]
    fn markdown_nested_past_the_limit_is_refused_naming_it() {
        let inputs = [
            format!("{}deep", ">".repeat(20_000)),
            format!("{}deep", "> ".repeat(20_000)),
            format!("{}deep", "- ".repeat(20_000)),
            format!("{}deep", "1. ".repeat(20_000)),
            (0..2_000)
                .map(|i| format!("{}- level {i}\n", "  ".repeat(i)))
                .collect(),
            format!("{}deep{}", "*a _a ".repeat(10_000), " a_ a*".repeat(10_000)),
        ];
        for input in &inputs {
            for flavor in [Flavor::Cloud, Flavor::DataCenter] {
                refused_naming_the_limit(to_jira(flavor, input, DEFAULT_MAX_NESTING_DEPTH), input);
            }
        }
    }

    #[test]
    fn markdown_at_the_limit_is_converted_and_reads_back() {
        // A quote is one element, its paragraph another.
        let depth = DEFAULT_MAX_NESTING_DEPTH - 1;
        let markdown = format!("{}deep", "> ".repeat(depth));
        let adf =
            to_jira(Flavor::Cloud, &markdown, DEFAULT_MAX_NESTING_DEPTH).expect("at the limit");
        assert!(json_depth(&adf) <= ADF_MAX_JSON_DEPTH);
        // What Jira would answer with it can be read again.
        let answer: Value = serde_json::from_str(&adf.to_string()).expect("readable");
        let back = from_jira(&answer);
        assert_eq!(
            back.markdown,
            markdown
                .trim_end()
                .replace("> >", ">>")
                .replace(">>", "> >")
        );
        let wiki = to_jira(Flavor::DataCenter, &markdown, DEFAULT_MAX_NESTING_DEPTH)
            .expect("at the limit");
        assert_eq!(
            wiki.as_str().map(|w| w.matches("{quote}").count()),
            Some(2 * depth)
        );
    }

    #[test]
    fn a_raw_adf_block_cannot_make_the_document_unreadable() {
        let mut raw = json!({"type": "text", "text": "x"});
        for _ in 0..60 {
            raw = json!({"type": "panel", "content": [raw]});
        }
        let quote = "> ".repeat(20);
        let markdown = format!("{quote}```adf\n{quote}{raw}\n{quote}```");
        assert_eq!(
            to_jira(Flavor::Cloud, &markdown, DEFAULT_MAX_NESTING_DEPTH),
            Err(TooDeep::Document)
        );
    }

    #[test]
    fn adf_nested_past_what_is_read_is_kept_raw_and_flagged() {
        let adf = nested_quotes_adf(READ_MAX_NESTING_DEPTH + 10);
        let converted = from_jira(&adf);
        assert!(
            converted.markdown.contains("```adf"),
            "{}",
            converted.markdown
        );
        assert!(converted.markdown.contains("deep"));
        assert!(
            converted.warnings.iter().any(|w| w.contains("64 levels")),
            "{:?}",
            converted.warnings
        );
        dismantle(adf);
    }

    #[test]
    fn adf_nested_fifty_thousand_levels_is_answered_without_crashing() {
        let adf = nested_quotes_adf(50_000);
        assert_eq!(json_depth(&adf), 2 * 50_000 + 5);
        let converted = from_jira(&adf);
        assert!(
            converted.warnings.iter().any(|w| w.contains("left out")),
            "{:?}",
            converted.warnings
        );
        dismantle(adf);
    }

    /// Openers that never close used to be looked for to the end of the text,
    /// each: quadratic time that a hostile description turned into minutes.
    #[test]
    fn wiki_full_of_unclosed_markup_converts_in_linear_time() {
        let wiki = " *x _x [x !x {x {{x -x +x ^x ~x".repeat(20_000);
        let started = std::time::Instant::now();
        let converted = from_jira(&json!(wiki));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            converted
                .markdown
                .contains("*x _x [x !x {x {{x -x +x ^x ~x *x"),
            "{}",
            &converted.markdown[..40]
        );
    }

    #[test]
    fn flavors_store_rich_text_in_their_own_format() {
        let depth = DEFAULT_MAX_NESTING_DEPTH;
        assert_eq!(
            to_jira(Flavor::Cloud, "**x**", depth).map(|v| v["type"].clone()),
            Ok(json!("doc"))
        );
        assert_eq!(
            to_jira(Flavor::DataCenter, "**x**", depth),
            Ok(json!("*x*"))
        );
        assert_eq!(from_jira(&json!("*x*")).markdown, "**x**");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Markdown-ish text: block and inline syntax, raw ADF, any character,
        /// and runs of nesting markers.
        fn markdown_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                6 => prop::sample::select(vec![
                    "> ", ">", "- ", "* ", "1. ", "  ", "\n", "\n\n", "\t", "*", "**", "_",
                    "~~", "`", "```", "```adf\n", "```adf\n{\"type\":\"rule\"}\n```\n",
                    "`adf:{\"type\":\"status\"}`", "[", "]", "](https://x.io)",
                    "[@Ada](accountid:a1)", "![", "#", "## ", "|", "| --- |", "\\", "<b>",
                    "&amp;", "{", "}", "{{", "h1. ", "----", "José", "🦀", "e\u{301}", "שלום",
                ])
                .prop_map(str::to_owned),
                2 => "[a-z ]{1,8}",
                1 => any::<char>().prop_map(String::from),
                1 => (prop::sample::select(vec!["> ", "- ", "*", "["]), 1..80usize)
                    .prop_map(|(marker, n)| marker.repeat(n)),
            ];
            prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
        }

        /// ADF-ish JSON: nodes of known and unknown types, marks, attributes,
        /// and values of the wrong shape.
        fn adf_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                ".{0,12}".prop_map(|text| json!({"type": "text", "text": text})),
                ".{0,12}".prop_map(|text| json!({"type": "text", "text": text, "marks": [{"type": "strong"}, {"type": "link", "attrs": {"href": text}}]})),
                Just(json!({"type": "hardBreak"})),
                Just(json!({"type": "rule"})),
                Just(json!({"type": "mention", "attrs": {"id": "a1", "text": "@Ada"}})),
                Just(json!({"type": "status", "attrs": {"text": "x"}})),
                ".{0,8}".prop_map(Value::from),
            ];
            leaf.prop_recursive(8, 64, 6, |inner| {
                (
                    prop::sample::select(vec![
                        "doc", "paragraph", "heading", "blockquote", "bulletList", "orderedList",
                        "listItem", "codeBlock", "table", "tableRow", "tableCell", "tableHeader",
                        "panel", "mediaSingle", "unknown",
                    ]),
                    prop::collection::vec(inner, 0..6),
                    any::<u8>(),
                )
                    .prop_map(|(kind, content, n)| {
                        json!({"type": kind, "content": content, "attrs": {"level": n, "order": n, "language": "x`y"}})
                    })
            })
        }

        proptest! {
            #[test]
            fn any_markdown_is_converted_or_refused_without_panicking(markdown in markdown_text()) {
                for flavor in [Flavor::Cloud, Flavor::DataCenter] {
                    match to_jira(flavor, &markdown, DEFAULT_MAX_NESTING_DEPTH) {
                        Ok(stored) => {
                            prop_assert!(json_depth(&stored) <= ADF_MAX_JSON_DEPTH);
                            let _ = from_jira(&stored);
                        }
                        Err(TooDeep::Markdown { limit }) => {
                            prop_assert_eq!(limit, DEFAULT_MAX_NESTING_DEPTH)
                        }
                        Err(TooDeep::Document) => {}
                    }
                }
                let _ = from_jira(&json!(markdown));
            }

            #[test]
            fn any_wiki_markup_reads_without_panicking(wiki in prop::collection::vec(prop_oneof![
                4 => prop::sample::select(vec![
                    "{code}", "{code:rust}", "{noformat}", "{quote}", "{panel}", "{{", "}}",
                    "\n", "h1. ", "h7. ", "bq. ", "* ", "# ", "*# ", "-", "----", "||", "|", "[",
                    "]", "[~", "|http://x.io]", "!", "!img.png!", "*", "_", "+", "^", "~", "\\\\",
                    "\\", " ", "José", "🦀", "e\u{301}",
                ]).prop_map(str::to_owned),
                2 => "[a-z]{1,6}",
                1 => any::<char>().prop_map(String::from),
            ], 0..80).prop_map(|pieces| pieces.concat())) {
                let converted = from_jira(&json!(wiki));
                // What it reads as can be sent back.
                let _ = to_jira(Flavor::DataCenter, &converted.markdown, MAX_NESTING_DEPTH_LIMIT);
            }

            #[test]
            fn any_adf_reads_without_panicking(adf in adf_value()) {
                let converted = from_jira(&adf);
                // What it reads as can be sent back.
                let _ = to_jira(Flavor::Cloud, &converted.markdown, MAX_NESTING_DEPTH_LIMIT);
            }

            /// Text in an ADF paragraph comes back the same through Markdown:
            /// the escaping covers every character that means something there.
            #[test]
            fn paragraph_text_survives_markdown(text in prop::collection::vec(prop_oneof![
                4 => "[a-zA-Z0-9 .,:;!?'\"()#*_`\\[\\]<>~|+=/&%$@^{}-]{1,8}",
                1 => prop::sample::select(vec!["&amp;", "&copy;", "&#35;", "&#x41;", "<b>", "</i>", "<!-- x -->", "1.", "-", "+", "#"]).prop_map(str::to_owned),
            ], 1..6).prop_map(|pieces| pieces.concat())) {
                let text = text.trim();
                prop_assume!(!text.is_empty() && !text.contains("  "));
                let adf = json!({"type": "doc", "version": 1, "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": text}]}
                ]});
                let markdown = adf::adf_to_markdown(&adf).markdown;
                let back = to_jira(Flavor::Cloud, &markdown, DEFAULT_MAX_NESTING_DEPTH);
                let back = back.map(|doc| doc["content"][0]["content"][0]["text"].clone());
                prop_assert_eq!(back, Ok(json!(text)), "via {:?}", markdown);
            }

            /// Canonical Markdown of paragraphs, headings and lists with marks
            /// comes back the same through ADF, and through wiki markup.
            #[test]
            fn canonical_markdown_round_trips(blocks in prop::collection::vec(
                (0..3usize, prop::collection::vec((0..4usize, "[a-z]{1,6}"), 1..6)),
                1..5,
            )) {
                let mut markdown = String::new();
                let mut previous = None;
                for (kind, words) in &blocks {
                    let line = words
                        .iter()
                        .map(|(mark, word)| match mark {
                            0 => word.clone(),
                            1 => format!("**{word}**"),
                            2 => format!("*{word}*"),
                            _ => format!("`{word}`"),
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    // Items next to each other are one (tight) list.
                    match previous {
                        None => {}
                        Some(2) if *kind == 2 => markdown.push('\n'),
                        Some(_) => markdown.push_str("\n\n"),
                    }
                    markdown.push_str(&match kind {
                        0 => line,
                        1 => format!("## {line}"),
                        _ => format!("- {line}"),
                    });
                    previous = Some(*kind);
                }
                let adf = to_jira(Flavor::Cloud, &markdown, DEFAULT_MAX_NESTING_DEPTH);
                prop_assert!(adf.is_ok());
                let back = adf.map(|adf| from_jira(&adf).markdown);
                prop_assert_eq!(back.as_deref(), Ok(markdown.as_str()));
                let wiki = to_jira(Flavor::DataCenter, &markdown, DEFAULT_MAX_NESTING_DEPTH);
                let back = wiki.map(|wiki| from_jira(&wiki).markdown);
                prop_assert_eq!(back.as_deref(), Ok(markdown.as_str()));
            }
        }
    }
}
