//! Rich text (issue descriptions, comments): the tools speak Markdown; Jira Cloud
//! speaks Atlassian Document Format and Jira Data Center wiki markup; both are
//! converted in both directions.

pub mod adf;
pub mod wiki;

use serde_json::Value;

use crate::config::Flavor;

pub use adf::Converted;

/// Markdown in the form `flavor` stores: an ADF document (Cloud) or a wiki
/// markup string (Data Center).
pub fn to_jira(flavor: Flavor, markdown: &str) -> Value {
    match flavor {
        Flavor::Cloud => adf::markdown_to_adf(markdown),
        Flavor::DataCenter => Value::String(wiki::markdown_to_wiki(markdown)),
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
                let stored = to_jira(flavor, input);
                let _ = from_jira(&stored);
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

    #[test]
    fn flavors_store_rich_text_in_their_own_format() {
        assert_eq!(to_jira(Flavor::Cloud, "**x**")["type"], "doc");
        assert_eq!(to_jira(Flavor::DataCenter, "**x**"), json!("*x*"));
        assert_eq!(from_jira(&json!("*x*")).markdown, "**x**");
    }
}
