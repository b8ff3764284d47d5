//! The generic `switchboard.mcp.v1.Prompts` service of the Jira connector: MCP
//! prompts the router shows as `jira_triage_issue` and `jira_summarize_search`,
//! and completion of their arguments.
//!
//! Prompts are instructions for the model: which of this connector's tools to
//! call (by the names the router gives them), what to look at, and when to stop
//! and explain before changing Jira. They follow the connector's policies: a
//! read-only connector (`JIRA_READ_ONLY`) gets a prompt that forbids writing, and
//! keys or JQL outside `JIRA_PROJECTS` are refused with the same checks the tools
//! use ([`ProjectScope`]). Rendering and completion never call Jira: completions
//! come from `JIRA_PROJECTS` only, so they are instant and bounded.

use std::collections::HashMap;

use connector_kit::Toolset;
use switchboard_proto::mcp::v1 as pb;
use switchboard_proto::mcp::v1::prompts_server::Prompts;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::jira::keys;
use crate::jira::scope::ProjectScope;

/// This connector's tools, as its prompt texts and error messages name them.
pub(crate) static TOOLS: std::sync::LazyLock<Toolset> = std::sync::LazyLock::new(|| {
    Toolset::new(
        "jira",
        switchboard_proto::jira::v1::jira_server::SERVICE_NAME,
    )
});

/// Name of the triage prompt (the router shows it as `jira_triage_issue`).
pub const TRIAGE_ISSUE: &str = "triage_issue";
/// Name of the search summary prompt (`jira_summarize_search` through the router).
pub const SUMMARIZE_SEARCH: &str = "summarize_search";

/// Default and upper bound of `max_issues` of [`SUMMARIZE_SEARCH`].
const DEFAULT_MAX_ISSUES: u32 = 100;
const MAX_MAX_ISSUES: u32 = 1000;

/// The tools that change Jira, as the router names them.
const WRITE_TOOLS: &str = "`jira_update_issue`, `jira_assign_issue`, `jira_transition_issue`, `jira_add_comment`, `jira_link_issues` and `jira_create_issue`";

/// The Prompts service: stateless apart from the connector's policies.
#[derive(Debug, Clone)]
pub struct JiraPrompts {
    read_only: bool,
    scope: ProjectScope,
}

impl JiraPrompts {
    /// Prompts for a connector that is `read_only` or not and limited to `scope`.
    pub fn new(read_only: bool, scope: ProjectScope) -> Self {
        Self { read_only, scope }
    }

    /// The prompts, as listed.
    pub fn list(&self) -> Vec<pb::Prompt> {
        vec![
            pb::Prompt {
                name: TRIAGE_ISSUE.to_owned(),
                title: "Triage a Jira issue".to_owned(),
                description: format!(
                    "Step-by-step triage of one Jira issue: read it with its comments and transitions, look for duplicates, propose priority, labels, components and assignee, and {}.",
                    if self.read_only {
                        "report the proposed changes (this connector is read-only, so nothing is changed)"
                    } else {
                        "only then apply the changes, explaining each one before writing"
                    }
                ),
                arguments: vec![pb::PromptArgument {
                    name: "key".to_owned(),
                    title: "Issue key".to_owned(),
                    description: format!(
                        "The key of the issue to triage, e.g. PROJ-123{}.",
                        self.allowed_projects_note()
                    ),
                    required: true,
                }],
            },
            pb::Prompt {
                name: SUMMARIZE_SEARCH.to_owned(),
                title: "Summarize a Jira search".to_owned(),
                description: "Reads every issue a JQL query matches (page by page, up to a limit) and summarizes them for a status update: counts by status, priority and assignee, themes, blockers, stale and overdue issues, and what to look at first. Read-only.".to_owned(),
                arguments: vec![
                    pb::PromptArgument {
                        name: "jql".to_owned(),
                        title: "JQL query".to_owned(),
                        description: format!(
                            "The Jira Query Language query selecting the issues, e.g. `project = PROJ AND resolution = Unresolved ORDER BY priority DESC`{}.",
                            self.allowed_projects_note()
                        ),
                        required: true,
                    },
                    pb::PromptArgument {
                        name: "max_issues".to_owned(),
                        title: "Maximum issues".to_owned(),
                        description: format!(
                            "How many matching issues to read at most, 1 to {MAX_MAX_ISSUES}; default {DEFAULT_MAX_ISSUES}."
                        ),
                        required: false,
                    },
                ],
            },
        ]
    }

    fn allowed_projects_note(&self) -> String {
        if self.scope.is_restricted() {
            format!(
                " (only projects {} may be used, set by JIRA_PROJECTS)",
                self.scope.keys().join(", ")
            )
        } else {
            String::new()
        }
    }

    /// Renders prompt `name` with `arguments`.
    pub fn get(
        &self,
        name: &str,
        arguments: &HashMap<String, String>,
    ) -> Result<pb::GetPromptResponse, Error> {
        match name {
            TRIAGE_ISSUE => {
                check_known(arguments, &["key"])?;
                let raw = argument(arguments, "key", "an issue key such as PROJ-123")?;
                let key = self.scope.check_issue("key", raw)?;
                Ok(pb::GetPromptResponse {
                    description: format!("Triage of Jira issue {key}"),
                    messages: vec![user(self.triage_text(&key))],
                })
            }
            SUMMARIZE_SEARCH => {
                check_known(arguments, &["jql", "max_issues"])?;
                let jql = argument(
                    arguments,
                    "jql",
                    "a JQL query such as project = PROJ AND resolution = Unresolved",
                )?;
                let max_issues = max_issues(arguments.get("max_issues"))?;
                let effective = self.scope.restrict_jql(jql)?;
                Ok(pb::GetPromptResponse {
                    description: format!("Summary of the Jira issues matching {jql}"),
                    messages: vec![user(self.summary_text(jql, &effective, max_issues))],
                })
            }
            other => Err(unknown_prompt(other)),
        }
    }

    fn triage_text(&self, key: &str) -> String {
        let project = keys::issue_key_project(key);
        let get_args = serde_json::json!({
            "key": key,
            "include_comments": true,
            "include_transitions": true,
        });
        let project_clause = project
            .as_deref()
            .map(|p| format!("project = {p} AND "))
            .unwrap_or_default();
        let mut text = format!(
            "Triage the Jira issue {key}. Work through the steps in order; gather facts before judging, and judge before changing anything.\n\
             \n\
             1. Read the issue. Call `jira_get_issue` with {get_args}. Note its type, status, priority, reporter, assignee, labels, components, created and updated dates, due date, links and the transitions available now. Read the description and every comment: later comments often change the picture (already fixed, cannot reproduce, a workaround, someone already on it). If it has more than 50 comments, read the newest with `jira_list_comments` (`newest_first: true`).\n\
             \n\
             2. Look for duplicates and related work. Pick two to four distinctive words from the summary (product or component names, error messages; not generic words such as \"error\" or \"broken\") and call `jira_search_issues` with JQL such as `{project_clause}issue != {key} AND summary ~ \"word1 word2\" ORDER BY created DESC` (escape a double quote inside the text as \\\"). If that finds nothing, try other words, or `text ~` to search descriptions and comments too. Open promising candidates with `jira_get_issue` and decide for each whether it is the same problem, a related one, or unrelated, and why.\n"
        );
        if self.scope.is_restricted() {
            text.push_str(&format!(
                "   This connector only sees projects {} (JIRA_PROJECTS); a duplicate elsewhere is invisible to you, so say so when you find none.\n",
                self.scope.keys().join(", ")
            ));
        }
        text.push_str(
            "\n\
             3. Propose. Write a short triage note:\n\
             - Summary: what the issue is about in one or two sentences, and whether it is clear enough to act on; if not, the questions to ask the reporter.\n\
             - Duplicates: the keys found, with one line of reasoning each, or \"none found\" with the JQL you ran.\n\
             - Priority: the priority you propose and why (impact: how many users, data loss or security, whether a workaround exists; urgency). Use priority names this site already uses (as seen on this issue and the search results).\n\
             - Labels and components: what to add or remove, reusing names already used on similar issues rather than inventing new ones.\n\
             - Assignee: who should own it and why (e.g. the assignee of closely related issues), with the account id found by `jira_find_users`; or that it should stay unassigned.\n\
             - Status: the transition to apply, if any, chosen from the transitions listed in step 1 (e.g. close as a duplicate, start progress), and the comment to leave.\n\
             \n",
        );
        if self.read_only {
            text.push_str(&format!(
                "4. Do not change the issue: this connector is read-only (JIRA_READ_ONLY=true), so {WRITE_TOOLS} are not available. Do not try to call them. End with your triage note as a list of changes ready for a person with write access to apply: field, current value, proposed value and reason.\n"
            ));
        } else {
            text.push_str(&format!(
                "4. Only then change the issue, and only as proposed. Before each write, say in one sentence what you are about to change and why. Use `jira_update_issue` for priority, labels (`add_labels` / `remove_labels`) and components; `jira_assign_issue` for the assignee (the account id from `jira_find_users`); `jira_link_issues` with link type \"Duplicate\" to mark a duplicate; `jira_add_comment` to leave the triage note on {key}; and `jira_transition_issue` last, with the exact transition name from step 1. Do not rewrite the reporter's summary or description. If the user asked for a proposal only, or a change is contentious (closing as a duplicate, raising a security or data-loss report to the highest priority, reassigning someone's work), stop after step 3 and ask for confirmation instead of writing. After writing, call `jira_get_issue` on {key} again and report what changed.\n"
            ));
        }
        text
    }

    fn summary_text(&self, jql: &str, effective: &str, max_issues: u32) -> String {
        let page = DEFAULT_MAX_ISSUES.min(max_issues);
        let search_args = serde_json::json!({ "jql": jql, "max_results": page });
        let mut text = format!(
            "Summarize the Jira issues matching the JQL query `{jql}` for someone who needs the state of this work at a glance.\n\n"
        );
        if effective != jql.trim() {
            text.push_str(&format!(
                "This connector is limited to projects {} (JIRA_PROJECTS), so the query it actually runs is `{effective}`; issues of other projects are not included.\n\n",
                self.scope.keys().join(", ")
            ));
        }
        text.push_str(&format!(
            "1. Call `jira_search_issues` with {search_args}. While the response has a `next_page_token` and you have read fewer than {max_issues} issues, call it again with the same `jql` and that token as `page_token`. If more than {max_issues} issues match, stop there and say that the summary covers only the first {max_issues} in the query's order. If the query is rejected, report Jira's message and suggest a corrected query rather than guessing.\n\
             \n\
             2. Work from the search results. Open an issue with `jira_get_issue` only when its summary alone is unclear and it matters for the summary (highest priority, blocking others); do not fetch every issue.\n\
             \n\
             3. Write the summary:\n\
             - How many issues match, by status category and status, by priority, and by assignee (unassigned included).\n\
             - The themes: groups of issues about the same thing, each with its keys.\n\
             - What needs attention: blockers and highest-priority issues, overdue ones (due date in the past), and stale ones (not updated for 30 days or more), with key and one line each.\n\
             - What to look at first, at most five issues, with the reason.\n\
             Quote issue keys exactly so the reader can open them, and do not claim anything the issues do not say.\n\
             \n\
             This is a reading task: do not change any issue (no {WRITE_TOOLS}).\n"
        ));
        text
    }

    /// Completion candidates for `argument` of `prompt`, given what was typed.
    pub fn complete(
        &self,
        prompt: &str,
        argument: &str,
        value: &str,
    ) -> Result<pb::CompleteResponse, Error> {
        let values = match (prompt, argument) {
            (TRIAGE_ISSUE, "key") => self.complete_key(value),
            (SUMMARIZE_SEARCH, "jql") => self.complete_jql(value),
            (TRIAGE_ISSUE | SUMMARIZE_SEARCH, _) => Vec::new(),
            (other, _) => return Err(unknown_prompt(other)),
        };
        Ok(pb::CompleteResponse {
            total: i32::try_from(values.len()).ok(),
            values,
            has_more: false,
        })
    }

    /// `PROJ-` for each allowed project whose key starts with what was typed
    /// (while it can still be a project key). Issue numbers would need Jira, so
    /// nothing is offered once a number is being typed, nor without JIRA_PROJECTS.
    fn complete_key(&self, value: &str) -> Vec<String> {
        let typed = value.trim().to_ascii_uppercase();
        let typed = typed.strip_suffix('-').unwrap_or(&typed);
        if !typed.is_empty() && !keys::is_project_key(typed) {
            return Vec::new();
        }
        self.scope
            .keys()
            .iter()
            .filter(|k| k.starts_with(typed))
            .map(|k| format!("{k}-"))
            .collect()
    }

    /// Common queries (per allowed project when restricted) that start with
    /// what was typed, case-insensitively.
    fn complete_jql(&self, value: &str) -> Vec<String> {
        let typed = value.trim_start().to_ascii_lowercase();
        let mut candidates = Vec::new();
        let mut per_project = |clause: String| {
            candidates.extend([
                format!("{clause}resolution = Unresolved ORDER BY priority DESC, updated DESC"),
                format!("{clause}created >= -7d ORDER BY created DESC"),
                format!("{clause}statusCategory = \"In Progress\" ORDER BY updated DESC"),
                format!("{clause}resolution = Unresolved AND updated <= -30d ORDER BY updated ASC"),
                format!("{clause}resolution = Unresolved AND duedate < now() ORDER BY duedate ASC"),
            ]);
        };
        if self.scope.is_restricted() {
            for key in self.scope.keys() {
                per_project(format!("project = {key} AND "));
            }
        } else {
            per_project("assignee = currentUser() AND ".to_owned());
        }
        candidates
            .into_iter()
            .filter(|c| c.to_ascii_lowercase().starts_with(&typed))
            .collect()
    }
}

fn user(text: String) -> pb::PromptMessage {
    pb::PromptMessage {
        role: pb::Role::User as i32,
        content: Some(pb::Content {
            kind: Some(pb::content::Kind::Text(pb::TextContent { text })),
            annotations: None,
        }),
    }
}

fn unknown_prompt(name: &str) -> Error {
    Error::Unknown {
        what: format!("prompt {name:?}"),
        hint: format!("its prompts are {TRIAGE_ISSUE} and {SUMMARIZE_SEARCH}"),
    }
}

/// Refuses argument names the prompt does not take (a misspelt `key` would
/// otherwise read as missing).
fn check_known(arguments: &HashMap<String, String>, known: &[&'static str]) -> Result<(), Error> {
    let mut unknown: Vec<&str> = arguments
        .keys()
        .map(String::as_str)
        .filter(|name| !known.contains(name))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(Error::invalid(
        "arguments",
        format!(
            "unknown argument(s) {}; this prompt takes {}",
            unknown.join(", "),
            known.join(", ")
        ),
    ))
}

/// A required argument, trimmed; missing or blank is an error naming it.
fn argument<'a>(
    arguments: &'a HashMap<String, String>,
    name: &'static str,
    example: &str,
) -> Result<&'a str, Error> {
    match arguments.get(name).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::invalid(name, format!("is required; give {example}"))),
    }
}

fn max_issues(raw: Option<&String>) -> Result<u32, Error> {
    let Some(raw) = raw.map(|r| r.trim()).filter(|r| !r.is_empty()) else {
        return Ok(DEFAULT_MAX_ISSUES);
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_MAX_ISSUES).contains(&n) => Ok(n),
        _ => Err(Error::invalid(
            "max_issues",
            format!("{raw:?} is not a whole number from 1 to {MAX_MAX_ISSUES}"),
        )),
    }
}

#[tonic::async_trait]
impl Prompts for JiraPrompts {
    async fn list_prompts(
        &self,
        request: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        if !request.get_ref().cursor.is_empty() {
            return Err(Error::invalid(
                "cursor",
                "the Jira connector lists all its prompts on one page; omit the cursor",
            )
            .into());
        }
        Ok(Response::new(pb::ListPromptsResponse {
            prompts: self.list(),
            next_cursor: String::new(),
        }))
    }

    async fn get_prompt(
        &self,
        request: Request<pb::GetPromptRequest>,
    ) -> Result<Response<pb::GetPromptResponse>, Status> {
        let names = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        let result = self.get(&r.name, &r.arguments);
        if let Err(error) = &result {
            tracing::info!(connector = "jira", prompt = %r.name, %error, "prompt refused");
        }
        names.prompt_reply(result)
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        let r = request.into_inner();
        let result = match r.r#ref {
            Some(pb::complete_request::Ref::Prompt(prompt)) => {
                self.complete(&prompt, &r.argument, &r.value)
            }
            Some(pb::complete_request::Ref::ResourceTemplate(template)) => Err(Error::Unknown {
                what: format!("resource template {template:?}"),
                hint: "it serves no resources; complete the arguments of its prompts instead"
                    .to_owned(),
            }),
            None => Err(Error::invalid(
                "ref",
                format!("is required: name the prompt, {TRIAGE_ISSUE} or {SUMMARIZE_SEARCH}"),
            )),
        };
        Ok(Response::new(result?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn text(response: &pb::GetPromptResponse) -> &str {
        match response.messages.first().and_then(|m| m.content.as_ref()) {
            Some(pb::Content {
                kind: Some(pb::content::Kind::Text(t)),
                ..
            }) => &t.text,
            other => panic!("expected one text message, got {other:?}"),
        }
    }

    fn restricted() -> JiraPrompts {
        JiraPrompts::new(false, ProjectScope::new(vec!["PROJ".into(), "OPS".into()]))
    }

    #[test]
    fn key_completion_offers_allowed_projects_by_prefix() {
        let p = restricted();
        assert_eq!(p.complete_key(""), ["PROJ-", "OPS-"]);
        assert_eq!(p.complete_key("pr"), ["PROJ-"]);
        assert_eq!(p.complete_key("PROJ-"), ["PROJ-"]);
        assert!(p.complete_key("PROJ-12").is_empty());
        assert!(p.complete_key("X").is_empty());
        assert!(
            JiraPrompts::new(false, ProjectScope::default())
                .complete_key("PR")
                .is_empty()
        );
    }

    #[test]
    fn jql_completion_keeps_what_was_typed_as_a_prefix() {
        let p = restricted();
        let all = p.complete_jql("");
        assert_eq!(all.len(), 10);
        let ops = p.complete_jql("project = ops");
        assert!(!ops.is_empty());
        assert!(ops.iter().all(|c| c.starts_with("project = OPS AND ")));
        let mine = JiraPrompts::new(false, ProjectScope::default()).complete_jql("assignee");
        assert_eq!(mine.len(), 5);
    }

    #[test]
    fn read_only_triage_forbids_writes_and_writable_triage_explains_first() {
        let scope = ProjectScope::default();
        let ro = JiraPrompts::new(true, scope.clone())
            .get(TRIAGE_ISSUE, &args(&[("key", "proj-7")]))
            .expect("renders");
        assert!(text(&ro).contains("JIRA_READ_ONLY=true"));
        assert!(text(&ro).contains("Triage the Jira issue PROJ-7."));
        let rw = JiraPrompts::new(false, scope)
            .get(TRIAGE_ISSUE, &args(&[("key", "PROJ-7")]))
            .expect("renders");
        assert!(!text(&rw).contains("JIRA_READ_ONLY"));
        assert!(text(&rw).contains("Before each write"));
    }

    #[test]
    fn summary_shows_the_restricted_query_and_bounds_max_issues() {
        let p = restricted();
        let r = p
            .get(
                SUMMARIZE_SEARCH,
                &args(&[("jql", "status = Open"), ("max_issues", "30")]),
            )
            .expect("renders");
        assert!(text(&r).contains("project in (\"PROJ\", \"OPS\") AND (status = Open)"));
        assert!(text(&r).contains("\"max_results\":30"));
        for bad in ["0", "1001", "ten"] {
            assert!(matches!(
                p.get(
                    SUMMARIZE_SEARCH,
                    &args(&[("jql", "status = Open"), ("max_issues", bad)])
                ),
                Err(Error::InvalidArgument {
                    field: "max_issues",
                    ..
                })
            ));
        }
    }

    #[test]
    fn misspelt_arguments_are_named() {
        let err = restricted()
            .get(TRIAGE_ISSUE, &args(&[("issue", "PROJ-1")]))
            .expect_err("refused");
        assert!(err.to_string().contains("issue"), "{err}");
    }
}
