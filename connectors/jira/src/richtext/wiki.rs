//! Markdown → Jira wiki markup, the rich text of Jira Data Center (REST API v2).
//!
//! Covered: paragraphs, headings (`h1.`), bullet and numbered lists (nested:
//! `**`, `##`), code blocks (`{code:lang}`), quotes (`{quote}`), rules
//! (`----`), tables (`||head||`, `|cell|`), hard breaks (`\\`), bold `*x*`,
//! italic `_x_`, strike-through `-x-`, inline code `{{x}}`, links `[text|url]`
//! and mentions `[~username]` (from `[@Name](accountid:username)`).
//! Data Center returns wiki markup as-is; it is readable as text.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::adf::MENTION_SCHEME;

/// Converts Markdown to Jira wiki markup.
pub fn markdown_to_wiki(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut out = String::new();
    // List markers of the open lists, e.g. ['*', '#'].
    let mut lists: Vec<char> = Vec::new();
    let mut link: Option<String> = None;
    let mut link_text = String::new();
    let mut mention = false;
    let mut in_code = false;
    let mut in_table_head = false;
    for event in Parser::new_ext(markdown, options) {
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
                    out.push_str(&format!("h{}. ", level_number(level)));
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
    out
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

fn level_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
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
    use super::*;

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
