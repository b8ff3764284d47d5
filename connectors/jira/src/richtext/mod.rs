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
