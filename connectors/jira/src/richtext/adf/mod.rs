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
//!
//! One direction per module, sharing only the conventions below:
//!
//! - `from_markdown`: Markdown → ADF, for what the tools send to Jira.
//! - `to_markdown`: ADF → Markdown, for what Jira answers.

mod from_markdown;
mod to_markdown;

pub use from_markdown::markdown_to_adf;
pub use to_markdown::{Converted, adf_to_markdown, escape};

/// Link target prefix that marks a mention: `[@Ada](accountid:5b10ac8d82e05b22cc7d4ef5)`.
pub const MENTION_SCHEME: &str = "accountid:";
/// Language of a fenced code block that holds a raw ADF block node.
pub const RAW_BLOCK_LANGUAGE: &str = "adf";
/// Prefix of inline code that holds a raw ADF inline node.
pub const RAW_INLINE_PREFIX: &str = "adf:";

/// An ADF node's `type` (`""` when it has none).
fn kind(node: &serde_json::Value) -> &str {
    node.get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

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
