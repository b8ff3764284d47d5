//! The `switchboard.jira.v1.Jira` gRPC service: argument checking, the
//! connector's policies (configured? read-only? allowed project?), and mapping to
//! the operations of [`Jira`]. No HTTP is built here.

use std::sync::Arc;

use connector_kit::ToolNames;
use serde_json::{Map, Value};
use switchboard_proto::jira::v1 as pb;
use switchboard_proto::jira::v1::jira_server::Jira as JiraRpc;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::jira::api::{IssueChanges, Jira, NewIssue};
use crate::jira::keys;
use crate::jira::model;
use crate::jira::scope::ProjectScope;
use crate::prompts::TOOLS;

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct JiraService {
    jira: Option<Arc<Jira>>,
    read_only: bool,
    scope: ProjectScope,
}

type Reply<T> = Result<Response<T>, Status>;

impl JiraService {
    /// A service over `jira` (`None`: unconfigured, every call fails with
    /// FailedPrecondition).
    pub fn new(jira: Option<Arc<Jira>>, read_only: bool, scope: ProjectScope) -> Self {
        Self {
            jira,
            read_only,
            scope,
        }
    }

    fn jira(&self) -> Result<&Jira, Error> {
        self.jira.as_deref().ok_or(Error::NotConfigured)
    }

    /// The Jira client for a tool that changes Jira.
    fn writer(&self, tool: &'static str) -> Result<&Jira, Error> {
        let jira = self.jira()?;
        if self.read_only {
            return Err(Error::ReadOnly { tool });
        }
        Ok(jira)
    }

    /// An issue key already checked as given ([`ProjectScope::check_issue`]),
    /// checked again, when `JIRA_PROJECTS` restricts, where Jira files the
    /// issue now (a moved issue keeps answering to its old key): the key to
    /// work on, Jira's current one. Called once the other arguments are
    /// checked, right before the tool's own requests.
    ///
    /// [`ProjectScope::check_issue`]: crate::jira::scope::ProjectScope::check_issue
    async fn filed_now(&self, jira: &Jira, key: String) -> Result<String, Error> {
        if !self.scope.is_restricted() {
            return Ok(key);
        }
        let current = jira.current_key(&key).await?;
        self.scope.check_current(&key, &current)?;
        Ok(current)
    }
}

/// Runs a tool body with a span, mapping [`Error`] to a status in one place (with
/// the tool names in its message as the agent sees them).
async fn tool<T>(
    tools: &ToolNames<'_>,
    name: &'static str,
    body: impl Future<Output = Result<T, Error>>,
) -> Reply<T> {
    use tracing::Instrument as _;
    let span = tracing::info_span!("tool", connector = "jira", tool = name);
    let started = std::time::Instant::now();
    let result = body.instrument(span.clone()).await;
    let _enter = span.enter();
    match result {
        Ok(value) => {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                outcome = "ok",
                "tool call"
            );
            Ok(Response::new(value))
        }
        Err(error) => {
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, outcome = "error", %error, "tool call");
            Err(tools.apply_to_status(error.into()))
        }
    }
}

fn required(field: &'static str, value: &str, example: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(
            field,
            format!("is required, e.g. {example}"),
        ));
    }
    Ok(value.to_owned())
}

fn optional(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn page_size(field: &'static str, value: Option<i32>, default: i32) -> Result<i32, Error> {
    match value {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(field, format!("{n} is outside 1..=100"))),
    }
}

fn start(field: &'static str, value: Option<i32>) -> Result<i32, Error> {
    match value {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n),
        Some(n) => Err(Error::invalid(
            field,
            format!("{n} is negative; the first item is 0"),
        )),
    }
}

fn date(field: &'static str, value: Option<String>) -> Result<Option<String>, Error> {
    let Some(value) = optional(value) else {
        return Ok(None);
    };
    let b = value.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if ok {
        Ok(Some(value))
    } else {
        Err(Error::invalid(
            field,
            format!("{value:?} is not a date like 2024-12-31"),
        ))
    }
}

fn labels(field: &'static str, values: Vec<String>) -> Result<Vec<String>, Error> {
    values
        .into_iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .map(|l| {
            if l.contains(char::is_whitespace) {
                Err(Error::invalid(
                    field,
                    format!("label {l:?} contains a space; Jira labels cannot"),
                ))
            } else {
                Ok(l)
            }
        })
        .collect()
}

fn names(field: &'static str, values: Vec<String>) -> Result<Vec<String>, Error> {
    values
        .into_iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .map(|v| {
            if keys::is_plain_text(&v) {
                Ok(v)
            } else {
                Err(Error::invalid(
                    field,
                    format!("{v:?} has control characters"),
                ))
            }
        })
        .collect()
}

fn custom_fields(value: Option<prost_types::Struct>) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for (name, v) in value.map(|s| s.fields).unwrap_or_default() {
        if !keys::is_plain_text(&name) {
            return Err(Error::invalid(
                "custom_fields",
                format!("{name:?} is not a field id or name"),
            ));
        }
        out.insert(name, model::value_to_json(&v));
    }
    Ok(out)
}

#[tonic::async_trait]
impl JiraRpc for JiraService {
    async fn create_issue(
        &self,
        request: Request<pb::CreateIssueRequest>,
    ) -> Reply<pb::CreateIssueResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_create_issue", async {
            let jira = self.writer("jira_create_issue")?;
            let project_key = self.scope.check_project(
                "project_key",
                &required("project_key", &r.project_key, "PROJ")?,
            )?;
            let summary = required("summary", &r.summary, "\"Login fails on Safari\"")?;
            if summary.chars().count() > 255 || summary.contains('\n') {
                return Err(Error::invalid(
                    "summary",
                    "must be one line of at most 255 characters",
                ));
            }
            let parent_key = match optional(r.parent_key) {
                Some(p) => Some(self.scope.check_issue("parent_key", &p)?),
                None => None,
            };
            let issue_type = optional(r.issue_type).unwrap_or_else(|| {
                if parent_key.is_some() {
                    "Sub-task"
                } else {
                    "Task"
                }
                .to_owned()
            });
            let mut new = NewIssue {
                project_key,
                summary,
                description: r.description.filter(|d| !d.trim().is_empty()),
                issue_type,
                priority: optional(r.priority),
                assignee: optional(r.assignee),
                labels: labels("labels", r.labels)?,
                components: names("components", r.components)?,
                parent_key: None,
                due_date: date("due_date", r.due_date)?,
                custom_fields: custom_fields(r.custom_fields)?,
            };
            if let Some(parent) = parent_key {
                new.parent_key = Some(self.filed_now(jira, parent).await?);
            }
            jira.create_issue(new).await
        })
        .await
    }

    async fn get_issue(&self, request: Request<pb::GetIssueRequest>) -> Reply<pb::Issue> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_get_issue", async {
            let jira = self.jira()?;
            let key = self.scope.check_issue("key", &r.key)?;
            let fields = names("fields", r.fields)?;
            let mut issue = jira
                .get_issue(
                    &key,
                    &fields,
                    r.include_comments.unwrap_or(false),
                    r.include_transitions.unwrap_or(false),
                )
                .await?;
            // The answer says where the issue is filed now.
            self.scope.check_current(&key, &issue.key)?;
            self.scope.withhold_outside(&mut issue);
            Ok(issue)
        })
        .await
    }

    async fn search_issues(
        &self,
        request: Request<pb::SearchIssuesRequest>,
    ) -> Reply<pb::SearchIssuesResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_search_issues", async {
            let jira = self.jira()?;
            let jql = r.jql.trim();
            if jql.is_empty() && !self.scope.is_restricted() {
                return Err(Error::invalid(
                    "jql",
                    "is required, e.g. project = PROJ ORDER BY updated DESC",
                ));
            }
            let jql = self.scope.restrict_jql(jql)?;
            let max = page_size("max_results", r.max_results, 25)?;
            let fields = names("fields", r.fields)?;
            let token = optional(r.page_token);
            let mut page = jira.search(&jql, max, token.as_deref(), &fields).await?;
            for issue in &mut page.issues {
                self.scope.withhold_outside(issue);
            }
            Ok(pb::SearchIssuesResponse {
                issues: page.issues,
                is_last: page.next_page_token.is_none(),
                next_page_token: page.next_page_token,
                jql,
            })
        })
        .await
    }

    async fn update_issue(
        &self,
        request: Request<pb::UpdateIssueRequest>,
    ) -> Reply<pb::UpdateIssueResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_update_issue", async {
            let jira = self.writer("jira_update_issue")?;
            let key = self.scope.check_issue("key", &r.key)?;
            let summary = optional(r.summary);
            if summary
                .as_ref()
                .is_some_and(|s| s.chars().count() > 255 || s.contains('\n'))
            {
                return Err(Error::invalid(
                    "summary",
                    "must be one line of at most 255 characters",
                ));
            }
            let changes = IssueChanges {
                summary,
                description: r.description,
                priority: optional(r.priority),
                add_labels: labels("add_labels", r.add_labels)?,
                remove_labels: labels("remove_labels", r.remove_labels)?,
                components: names("components", r.components)?,
                due_date: date("due_date", r.due_date)?,
                custom_fields: custom_fields(r.custom_fields)?,
                notify_users: r.notify_users,
            };
            let key = self.filed_now(jira, key).await?;
            let updated_fields = jira.update_issue(&key, changes).await?;
            Ok(pb::UpdateIssueResponse {
                key,
                updated_fields,
            })
        })
        .await
    }

    async fn add_comment(&self, request: Request<pb::AddCommentRequest>) -> Reply<pb::Comment> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_add_comment", async {
            let jira = self.writer("jira_add_comment")?;
            let key = self.scope.check_issue("key", &r.key)?;
            if r.body.trim().is_empty() {
                return Err(Error::invalid(
                    "body",
                    "is required: the comment text in Markdown",
                ));
            }
            let key = self.filed_now(jira, key).await?;
            jira.add_comment(&key, &r.body).await
        })
        .await
    }

    async fn list_comments(
        &self,
        request: Request<pb::ListCommentsRequest>,
    ) -> Reply<pb::ListCommentsResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_list_comments", async {
            let jira = self.jira()?;
            let key = self.scope.check_issue("key", &r.key)?;
            let max = page_size("max_results", r.max_results, 50)?;
            let start_at = start("start_at", r.start_at)?;
            let key = self.filed_now(jira, key).await?;
            jira.list_comments(&key, start_at, max, r.newest_first.unwrap_or(false))
                .await
        })
        .await
    }

    async fn transition_issue(
        &self,
        request: Request<pb::TransitionIssueRequest>,
    ) -> Reply<pb::TransitionIssueResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_transition_issue", async {
            let jira = self.writer("jira_transition_issue")?;
            let key = self.scope.check_issue("key", &r.key)?;
            let wanted = required("transition", &r.transition, "\"Done\"")?;
            let key = self.filed_now(jira, key).await?;
            let available = jira.transitions(&key).await?;
            let found = pick_transition(&available, &wanted);
            let (id, name, to_status) = match found {
                Some(t) => (t.id.clone(), t.name.clone(), t.to_status.clone()),
                // An id Jira did not list may still be valid (e.g. hidden by a
                // condition): Jira decides, and explains if not.
                None if keys::is_numeric_id(&wanted) => {
                    (wanted.clone(), String::new(), String::new())
                }
                None => {
                    return Err(Error::NoSuchTransition {
                        key,
                        requested: wanted,
                        available: describe_transitions(&available),
                    });
                }
            };
            let comment = r.comment.filter(|c| !c.trim().is_empty());
            jira.transition(
                &key,
                &id,
                comment.as_deref(),
                optional(r.resolution).as_deref(),
            )
            .await?;
            Ok(pb::TransitionIssueResponse {
                key,
                transition_id: id,
                transition_name: name,
                to_status,
            })
        })
        .await
    }

    async fn assign_issue(
        &self,
        request: Request<pb::AssignIssueRequest>,
    ) -> Reply<pb::AssignIssueResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_assign_issue", async {
            let jira = self.writer("jira_assign_issue")?;
            let key = self.scope.check_issue("key", &r.key)?;
            let assignee = optional(r.assignee);
            match (&assignee, r.unassign.unwrap_or(false)) {
                (Some(_), true) => {
                    return Err(Error::invalid("unassign", "give either `assignee` or `unassign: true`, not both"));
                }
                (None, false) => {
                    return Err(Error::invalid(
                        "assignee",
                        "is required (an account id from jira_find_users), or set `unassign: true` to remove the assignee",
                    ));
                }
                (Some(a), false) if !keys::is_plain_text(a) || a.len() > 128 => {
                    return Err(Error::invalid("assignee", "is not an account id or username"));
                }
                _ => {}
            }
            let key = self.filed_now(jira, key).await?;
            jira.assign(&key, assignee.as_deref()).await?;
            Ok(pb::AssignIssueResponse {
                key,
                assignee: assignee.unwrap_or_default(),
            })
        })
        .await
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Reply<pb::ListProjectsResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_list_projects", async {
            let jira = self.jira()?;
            let max = page_size("max_results", r.max_results, 50)?;
            let start_at = start("start_at", r.start_at)?;
            jira.list_projects(
                optional(r.query).as_deref(),
                self.scope.keys(),
                start_at,
                max,
            )
            .await
        })
        .await
    }

    async fn get_project(&self, request: Request<pb::GetProjectRequest>) -> Reply<pb::Project> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_get_project", async {
            let jira = self.jira()?;
            let key = self
                .scope
                .check_project("key", &required("key", &r.key, "PROJ")?)?;
            jira.get_project(&key).await
        })
        .await
    }

    async fn find_users(
        &self,
        request: Request<pb::FindUsersRequest>,
    ) -> Reply<pb::FindUsersResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_find_users", async {
            let jira = self.jira()?;
            let query = required("query", &r.query, "\"ada\" or \"ada@example.com\"")?;
            let max = page_size("max_results", r.max_results, 20)?;
            Ok(pb::FindUsersResponse {
                users: jira.find_users(&query, max).await?,
            })
        })
        .await
    }

    async fn list_fields(
        &self,
        request: Request<pb::ListFieldsRequest>,
    ) -> Reply<pb::ListFieldsResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_list_fields", async {
            let jira = self.jira()?;
            Ok(pb::ListFieldsResponse {
                fields: jira
                    .list_fields(optional(r.query).as_deref(), r.custom_only.unwrap_or(false))
                    .await?,
            })
        })
        .await
    }

    async fn link_issues(
        &self,
        request: Request<pb::LinkIssuesRequest>,
    ) -> Reply<pb::LinkIssuesResponse> {
        let tools = TOOLS.for_request(request.metadata());
        let r = request.into_inner();
        tool(&tools, "jira_link_issues", async {
            let jira = self.writer("jira_link_issues")?;
            let link_type = required("link_type", &r.link_type, "\"Blocks\"")?;
            let from_key = self.scope.check_issue("from_key", &r.from_key)?;
            let to_key = self.scope.check_issue("to_key", &r.to_key)?;
            let from_key = self.filed_now(jira, from_key).await?;
            let to_key = self.filed_now(jira, to_key).await?;
            if from_key == to_key {
                return Err(Error::invalid(
                    "to_key",
                    "an issue cannot be linked to itself",
                ));
            }
            let comment = r.comment.filter(|c| !c.trim().is_empty());
            jira.link(&link_type, &from_key, &to_key, comment.as_deref())
                .await?;
            Ok(pb::LinkIssuesResponse {
                link_type,
                from_key,
                to_key,
            })
        })
        .await
    }
}

/// The transition matching `wanted` by id, name, or target status (case-insensitive).
pub fn pick_transition<'a>(
    available: &'a [pb::Transition],
    wanted: &str,
) -> Option<&'a pb::Transition> {
    available
        .iter()
        .find(|t| t.id == wanted)
        .or_else(|| {
            available
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(wanted))
        })
        .or_else(|| {
            available
                .iter()
                .find(|t| t.to_status.eq_ignore_ascii_case(wanted))
        })
}

fn describe_transitions(available: &[pb::Transition]) -> String {
    if available.is_empty() {
        return "none (the workflow allows no transition from the current status for this account)"
            .to_owned();
    }
    available
        .iter()
        .map(|t| format!("{:?} (id {}) → {}", t.name, t.id, t.to_status))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, name: &str, to: &str) -> pb::Transition {
        pb::Transition {
            id: id.into(),
            name: name.into(),
            to_status: to.into(),
        }
    }

    #[test]
    fn transitions_match_by_id_name_or_target_status() {
        let all = vec![
            t("11", "Start Progress", "In Progress"),
            t("31", "Done", "Done"),
        ];
        assert_eq!(
            pick_transition(&all, "31").map(|t| t.name.as_str()),
            Some("Done")
        );
        assert_eq!(
            pick_transition(&all, "start progress").map(|t| t.id.as_str()),
            Some("11")
        );
        assert_eq!(
            pick_transition(&all, "in progress").map(|t| t.id.as_str()),
            Some("11")
        );
        assert!(pick_transition(&all, "Closed").is_none());
    }

    #[test]
    fn dates_must_be_iso_days() {
        assert_eq!(
            date("due_date", Some("2024-12-31".into()))
                .ok()
                .flatten()
                .as_deref(),
            Some("2024-12-31")
        );
        assert!(date("due_date", Some("31/12/2024".into())).is_err());
        assert!(date("due_date", Some(" ".into())).is_ok_and(|d| d.is_none()));
    }

    #[test]
    fn labels_with_spaces_are_refused() {
        assert!(labels("labels", vec!["two words".into()]).is_err());
        assert_eq!(
            labels("labels", vec![" a ".into(), String::new()]).ok(),
            Some(vec!["a".to_owned()])
        );
    }
}
