//! Rich text (issue descriptions, comments): the tools speak Markdown; Jira Cloud
//! speaks Atlassian Document Format and Jira Data Center wiki markup.

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

/// Markdown for Jira's rich text: ADF is converted (with warnings about what has
/// no Markdown form); wiki markup (Data Center) is returned as it is.
pub fn from_jira(value: &Value) -> Converted {
    adf::adf_to_markdown(value)
}
