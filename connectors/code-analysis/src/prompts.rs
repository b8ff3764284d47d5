//! The connector's MCP prompt (the generic service `switchboard.mcp.v1.Prompts`):
//! `review_file` (`code_analysis_review_file` through the router), which has the
//! model review one source file under the code root with this connector's tools.
//!
//! The `path` argument is checked with the same rules as a resource read (inside
//! the root, visible, a supported language, readable text), so a bad path fails
//! when the prompt is rendered, naming the argument, instead of later in a tool
//! call. The file is embedded in the prompt when it is small, linked otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use connector_kit::Toolset;
use switchboard_proto::mcp::v1 as pb;
use switchboard_proto::mcp::v1::prompts_server::Prompts;
use tonic::{Request, Response, Status};

use crate::analyzer::Analyzer;
use crate::error::Error;
use crate::languages;
use crate::resources::{self, blocking, complete_path};

/// This connector's tools, as its prompt texts name them.
static TOOLS: std::sync::LazyLock<Toolset> = std::sync::LazyLock::new(|| {
    Toolset::new(
        "code_analysis",
        switchboard_proto::code_analysis::v1::code_analysis_server::SERVICE_NAME,
    )
});

/// The prompt's name as the connector knows it.
pub const REVIEW_FILE: &str = "review_file";
/// Files up to this size are embedded in the prompt; larger ones are linked, so
/// that rendering a prompt does not fill the model's context.
const EMBED_MAX_BYTES: usize = 64 * 1024;
/// Suggestions for the `focus` argument.
const FOCUS_SUGGESTIONS: [&str; 6] = [
    "security",
    "complexity and readability",
    "error handling",
    "performance",
    "test coverage",
    "API design",
];

/// The Prompts service.
#[derive(Debug, Clone)]
pub struct ReviewPrompts {
    analyzer: Arc<Analyzer>,
}

impl ReviewPrompts {
    pub fn new(analyzer: Arc<Analyzer>) -> Self {
        Self { analyzer }
    }
}

fn review_file_prompt() -> pb::Prompt {
    pb::Prompt {
        name: REVIEW_FILE.to_owned(),
        title: "Review a source file".to_owned(),
        description: "Code review of one source file under the code-analysis connector's code \
                      root: its metrics and hotspots, refactoring opportunities, test gaps and \
                      rule-based security findings, checked against the code itself."
            .to_owned(),
        arguments: vec![
            pb::PromptArgument {
                name: "path".to_owned(),
                title: "File".to_owned(),
                description: format!(
                    "The file to review, relative to the code root (e.g. src/main.rs), in a \
                     supported language ({}). Completion lists directories and source files.",
                    languages::supported_names()
                ),
                required: true,
            },
            pb::PromptArgument {
                name: "focus".to_owned(),
                title: "Focus".to_owned(),
                description: "Optional: what to look at most closely, in a few words (e.g. \
                              security, error handling, performance, a function's name). \
                              Without it the review is balanced."
                    .to_owned(),
                required: false,
            },
        ],
    }
}

/// A file that passed the checks, ready to be reviewed.
struct ReviewTarget {
    relative: String,
    language: &'static str,
    text: String,
    mime_type: &'static str,
}

/// Checks the `path` argument: errors become INVALID_ARGUMENT naming it, since a
/// NOT_FOUND would read as an unknown prompt.
fn review_target(analyzer: &Analyzer, path: &str) -> Result<ReviewTarget, Error> {
    let argument_error = |e: Error| match e {
        Error::Internal(_) => e,
        other => Error::InvalidArgument(format!("argument `path`: {other}")),
    };
    let root = analyzer.root();
    let (canonical, relative) = resources::visible_file(root, path).map_err(argument_error)?;
    let language = languages::from_path(&canonical).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "argument `path`: {relative} is not in a supported language (by its extension); \
             give a source file in one of: {}",
            languages::supported_names()
        ))
    })?;
    let text = analyzer
        .read_text(&canonical, &relative)
        .map_err(argument_error)?;
    Ok(ReviewTarget {
        mime_type: resources::mime_type(&canonical),
        relative,
        language: language.name(),
        text,
    })
}

/// The instructions, for the model.
fn instructions(target: &ReviewTarget, focus: Option<&str>, embedded: bool) -> String {
    let path = &target.relative;
    let language = target.language;
    let source = if embedded {
        "Its text is above."
    } else {
        "It is too large to include here: read it through the resource linked above, or your \
         own file tools, a part at a time."
    };
    let focus = focus.map_or_else(String::new, |focus| {
        format!(
            "\nThe user asked you to focus on: {focus}. Give that most of your attention, but \
             still report anything serious you notice elsewhere.\n"
        )
    });
    format!(
        "Review the {language} file `{path}` (relative to the code root of the code-analysis \
tools) as a careful senior reviewer. {source} Ground every claim in the tool output or in the \
code, and cite line numbers.

1. Metrics and refactoring: call `code_analysis_analyze_path` with \
{{\"path\": \"{path}\", \"analysis_depth\": \"COMPREHENSIVE\"}}. It returns the file's metrics \
with every function's line range, `refactoring_opportunities`, `test_suggestions` and \
`parse_errors`, then a summary whose `hotspots` rank the functions by cyclomatic complexity x \
lines. (To measure a changed version that is not saved to disk, call \
`code_analysis_analyze_code` with its text as `code`, \"file_name\": \"{path}\" and \
\"analysis_depth\": \"COMPREHENSIVE\".)
2. Security: call `code_analysis_find_security_issues` with {{\"path\": \"{path}\"}}. The \
findings come from syntax-tree rules: treat each one as a lead, not a verdict. Read the code at \
its lines and decide whether it is exploitable here (where the input comes from, whether it is \
validated, escaped or constant) and what the fix is. Never repeat a secret value in your answer.
3. Review, using both results and the code:
   - Hotspots: the functions with the highest cyclomatic or cognitive complexity, the deepest \
nesting or a maintainability index below 20. Say what makes each hard to follow and how to \
split or simplify it (extract functions, early returns, table-driven logic, fewer parameters).
   - Refactoring opportunities, duplicated blocks included: which are worth doing and in what \
order, and which you would leave as they are, with why.
   - Tests: which suggested or otherwise untested branches matter most, and the concrete test \
cases that would cover them.
   - Parse errors, if any: the metrics may be incomplete; say so and point at the lines.
   - What metrics cannot see: correctness, error handling, edge cases (empty input, overflow, \
None/null), resource cleanup, concurrency, naming and API design.
{focus}
Finish with the three most important changes, each with its location, why it matters and the \
change you suggest. Do not edit the file unless the user asks you to."
    )
}

fn user(kind: pb::content::Kind) -> pb::PromptMessage {
    pb::PromptMessage {
        role: pb::Role::User as i32,
        content: Some(pb::Content {
            kind: Some(kind),
            annotations: None,
        }),
    }
}

fn render(target: &ReviewTarget, focus: Option<&str>) -> pb::GetPromptResponse {
    let uri = resources::uri_for(&target.relative);
    let embedded = target.text.len() <= EMBED_MAX_BYTES;
    let file = if embedded {
        pb::content::Kind::Resource(pb::ResourceContents {
            uri,
            mime_type: target.mime_type.to_owned(),
            body: Some(pb::resource_contents::Body::Text(target.text.clone())),
        })
    } else {
        pb::content::Kind::ResourceLink(pb::ResourceLink {
            uri,
            name: target.relative.clone(),
            title: target.relative.clone(),
            description: format!("The {} file to review", target.language),
            mime_type: target.mime_type.to_owned(),
            size: i64::try_from(target.text.len()).ok(),
        })
    };
    let text = pb::content::Kind::Text(pb::TextContent {
        text: instructions(target, focus, embedded),
    });
    pb::GetPromptResponse {
        description: format!("Review of {}", target.relative),
        messages: vec![user(file), user(text)],
    }
}

fn argument<'a>(arguments: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    arguments
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

#[tonic::async_trait]
impl Prompts for ReviewPrompts {
    async fn list_prompts(
        &self,
        request: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        let cursor = request.into_inner().cursor;
        if !cursor.is_empty() {
            return Err(Status::invalid_argument(format!(
                "unknown cursor {cursor:?}: this connector answers in one page; list again without a cursor"
            )));
        }
        Ok(Response::new(pb::ListPromptsResponse {
            prompts: vec![review_file_prompt()],
            next_cursor: String::new(),
        }))
    }

    async fn get_prompt(
        &self,
        request: Request<pb::GetPromptRequest>,
    ) -> Result<Response<pb::GetPromptResponse>, Status> {
        let names = TOOLS.for_request(request.metadata());
        let request = request.into_inner();
        if request.name != REVIEW_FILE {
            return Err(Status::not_found(format!(
                "no prompt {:?}; this connector has {REVIEW_FILE}",
                request.name
            )));
        }
        let path = argument(&request.arguments, "path")
            .ok_or_else(|| {
                Status::invalid_argument(
                    "argument `path` is required: the source file to review, relative to the \
                     code root (e.g. src/main.rs)",
                )
            })?
            .to_owned();
        let focus = argument(&request.arguments, "focus").map(str::to_owned);
        let analyzer = Arc::clone(&self.analyzer);
        let target = self
            .analyzer
            .run_admitted(move || review_target(&analyzer, &path))
            .await?;
        names.prompt_reply(Ok::<_, Status>(render(&target, focus.as_deref())))
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        let request = request.into_inner();
        match request.r#ref {
            Some(pb::complete_request::Ref::Prompt(name)) if name == REVIEW_FILE => {
                match request.argument.as_str() {
                    "path" => {
                        let root = self.analyzer.root().clone();
                        let typed = request.value;
                        let response = blocking(move || {
                            Ok(complete_path(&root, &typed, |e| {
                                e.is_dir || languages::from_path(&e.path).is_some()
                            }))
                        })
                        .await?;
                        Ok(Response::new(response))
                    }
                    "focus" => {
                        let typed = request.value.trim().to_ascii_lowercase();
                        let values: Vec<String> = FOCUS_SUGGESTIONS
                            .iter()
                            .filter(|s| s.to_ascii_lowercase().starts_with(&typed))
                            .map(|s| (*s).to_owned())
                            .collect();
                        Ok(Response::new(pb::CompleteResponse {
                            total: i32::try_from(values.len()).ok(),
                            values,
                            has_more: false,
                        }))
                    }
                    other => Err(Status::not_found(format!(
                        "{REVIEW_FILE} has no argument {other:?}; its arguments are path and focus"
                    ))),
                }
            }
            Some(pb::complete_request::Ref::Prompt(name)) => Err(Status::not_found(format!(
                "no prompt {name:?}; this connector has {REVIEW_FILE}"
            ))),
            _ => Err(Status::not_found(format!(
                "this service completes prompt arguments only ({REVIEW_FILE})"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> ReviewTarget {
        ReviewTarget {
            relative: "src/app.py".to_owned(),
            language: "python",
            text: text.to_owned(),
            mime_type: "text/x-python",
        }
    }

    #[test]
    fn a_small_file_is_embedded_and_the_tools_are_named() {
        let rendered = render(&target("x = 1\n"), Some("error handling"));
        assert_eq!(rendered.messages.len(), 2);
        let Some(pb::content::Kind::Resource(file)) = rendered.messages[0]
            .content
            .as_ref()
            .and_then(|c| c.kind.clone())
        else {
            panic!("the file comes first, embedded");
        };
        assert_eq!(file.uri, "file:///src/app.py");
        let Some(pb::content::Kind::Text(text)) = rendered.messages[1]
            .content
            .as_ref()
            .and_then(|c| c.kind.clone())
        else {
            panic!("then the instructions");
        };
        for needle in [
            "code_analysis_analyze_path",
            "code_analysis_find_security_issues",
            "code_analysis_analyze_code",
            "\"analysis_depth\": \"COMPREHENSIVE\"",
            "{\"path\": \"src/app.py\"",
            "focus on: error handling",
        ] {
            assert!(text.text.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn a_large_file_is_linked_not_embedded() {
        let rendered = render(&target(&"x = 1\n".repeat(20_000)), None);
        assert!(matches!(
            rendered.messages[0].content.as_ref().and_then(|c| c.kind.as_ref()),
            Some(pb::content::Kind::ResourceLink(link)) if link.uri == "file:///src/app.py"
        ));
    }
}
