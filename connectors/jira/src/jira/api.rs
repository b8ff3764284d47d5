//! The Jira REST operations behind the tools, for Cloud (v3) and Data Center (v2).
//!
//! Each method takes already-checked arguments (see `service.rs`), builds the
//! request Jira documents for that flavor, and maps the answer with [`model`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value, json};
use switchboard_proto::jira::v1 as pb;
use tokio::sync::Mutex;

use crate::config::Flavor;
use crate::error::Error;
use crate::jira::client::{Call, JiraHttp, Repeat};
use crate::jira::model::{self, STANDARD_FIELDS};
use crate::richtext;

/// Arguments of [`Jira::create_issue`], checked.
#[derive(Debug, Default)]
pub struct NewIssue {
    pub project_key: String,
    pub summary: String,
    pub description: Option<String>,
    pub issue_type: String,
    pub priority: Option<String>,
    pub assignee: Option<String>,
    pub labels: Vec<String>,
    pub components: Vec<String>,
    pub parent_key: Option<String>,
    pub due_date: Option<String>,
    pub custom_fields: Map<String, Value>,
}

/// Arguments of [`Jira::update_issue`], checked.
#[derive(Debug, Default)]
pub struct IssueChanges {
    pub summary: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    pub add_labels: Vec<String>,
    pub remove_labels: Vec<String>,
    pub components: Vec<String>,
    pub due_date: Option<String>,
    pub custom_fields: Map<String, Value>,
    pub notify_users: Option<bool>,
}

/// A page of search results.
#[derive(Debug)]
pub struct SearchPage {
    pub issues: Vec<pb::Issue>,
    pub next_page_token: Option<String>,
}

/// The site's field list as last fetched.
#[derive(Debug)]
struct FieldList {
    fetched: Instant,
    fields: Arc<Vec<Value>>,
}

/// The Jira operations of one site.
#[derive(Debug)]
pub struct Jira {
    http: JiraHttp,
    fields: Mutex<Option<FieldList>>,
    fields_ttl: Duration,
    /// `JIRA_MAX_NESTING_DEPTH`.
    max_nesting_depth: usize,
}

impl Jira {
    /// Operations over `http`; the site's field list is reused for `fields_ttl`.
    pub fn new(http: JiraHttp, fields_ttl: Duration) -> Self {
        Self {
            http,
            fields: Mutex::new(None),
            fields_ttl,
            max_nesting_depth: richtext::DEFAULT_MAX_NESTING_DEPTH,
        }
    }

    /// Rich text may nest at most `depth` Markdown elements (`JIRA_MAX_NESTING_DEPTH`).
    pub fn with_max_nesting_depth(mut self, depth: usize) -> Self {
        self.max_nesting_depth = depth;
        self
    }

    fn flavor(&self) -> Flavor {
        self.http.flavor()
    }

    /// `GET /myself`: whether the credentials work.
    pub async fn myself(&self) -> Result<Value, Error> {
        self.http
            .execute(Call::get(vec!["myself"], "the connector's own account"))
            .await
    }

    /// Every field of the site: the list fetched last, unless it is older than
    /// `max_age` (then fetched again; concurrent callers wait for one fetch).
    async fn all_fields(&self, max_age: Duration) -> Result<Arc<Vec<Value>>, Error> {
        let mut cached = self.fields.lock().await;
        if let Some(list) = cached.as_ref().filter(|l| l.fetched.elapsed() < max_age) {
            return Ok(list.fields.clone());
        }
        let value = self
            .http
            .execute(Call::get(vec!["field"], "the list of fields"))
            .await?;
        let fields = Arc::new(value.as_array().cloned().unwrap_or_default());
        *cached = Some(FieldList {
            fetched: Instant::now(),
            fields: fields.clone(),
        });
        Ok(fields)
    }

    /// A field id for an id or a display name (case-insensitive, must be unique).
    pub async fn resolve_field(&self, id_or_name: &str) -> Result<String, Error> {
        let wanted = id_or_name.trim();
        if wanted.starts_with("customfield_")
            || STANDARD_FIELDS.contains(&wanted)
            || matches!(wanted, "description" | "comment" | "*all" | "*navigable")
        {
            return Ok(wanted.to_owned());
        }
        let fields = self.all_fields(self.fields_ttl).await?;
        if let Some(found) = find_field(&fields, wanted) {
            return found;
        }
        // Perhaps created since the list was fetched: a list older than a tenth of
        // its TTL (30 s by default) is fetched again, a younger one is trusted.
        let fields = self.all_fields(self.fields_ttl / 10).await?;
        find_field(&fields, wanted).unwrap_or_else(|| {
            Err(Error::invalid(
                "fields",
                format!("no field has the id or name {wanted:?}; list them with jira_list_fields"),
            ))
        })
    }

    async fn resolve_custom(
        &self,
        custom: Map<String, Value>,
    ) -> Result<Map<String, Value>, Error> {
        let mut out = Map::new();
        for (name, value) in custom {
            let id = self.resolve_field(&name).await.map_err(|e| match e {
                Error::InvalidArgument { message, .. } => Error::InvalidArgument {
                    field: "custom_fields",
                    message,
                },
                other => other,
            })?;
            out.insert(id, value);
        }
        Ok(out)
    }

    /// Markdown argument `field` in the form Jira stores; refused when too deep.
    fn rich(&self, field: &'static str, markdown: &str) -> Result<Value, Error> {
        richtext::to_jira(self.flavor(), markdown, self.max_nesting_depth)
            .map_err(|e| Error::invalid(field, e.to_string()))
    }

    fn user_ref(&self, id: &str) -> Value {
        match self.flavor() {
            Flavor::Cloud => json!({"accountId": id}),
            Flavor::DataCenter => json!({"name": id}),
        }
    }

    /// `GET /issue/{key}`.
    pub async fn get_issue(
        &self,
        key: &str,
        extra_fields: &[String],
        comments: bool,
        transitions: bool,
    ) -> Result<pb::Issue, Error> {
        let mut fields: Vec<String> = STANDARD_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        fields.push("description".into());
        if comments {
            fields.push("comment".into());
        }
        for f in extra_fields {
            fields.push(self.resolve_field(f).await?);
        }
        let mut call =
            Call::get(vec!["issue", key], format!("issue {key}")).query("fields", fields.join(","));
        if transitions {
            call = call.query("expand", "transitions");
        }
        let value = self.http.execute(call).await?;
        Ok(model::issue(&value, self.http.base_url()))
    }

    /// The key Jira files issue `key` under now (a moved issue keeps
    /// answering to its old key), as Jira answers it (empty when it names
    /// none; [`crate::jira::scope::ProjectScope::check_current`] judges it):
    /// one `GET issue/{key}` of the `project` field.
    pub async fn current_key(&self, key: &str) -> Result<String, Error> {
        let call = Call::get(vec!["issue", key], format!("issue {key}")).query("fields", "project");
        let value = self.http.execute(call).await?;
        Ok(model::text(&value, "/key"))
    }

    /// One page of a JQL search.
    pub async fn search(
        &self,
        jql: &str,
        max_results: i32,
        page_token: Option<&str>,
        extra_fields: &[String],
    ) -> Result<SearchPage, Error> {
        let mut fields: Vec<String> = STANDARD_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        for f in extra_fields {
            fields.push(self.resolve_field(f).await?);
        }
        match self.flavor() {
            Flavor::Cloud => {
                let mut body = json!({"jql": jql, "maxResults": max_results, "fields": fields});
                if let Some(token) = page_token {
                    body["nextPageToken"] = json!(token);
                }
                let value = self
                    .http
                    .execute(Call::send(
                        Method::POST,
                        vec!["search", "jql"],
                        body,
                        "the JQL search",
                        Repeat::Safe,
                    ))
                    .await?;
                let issues = issues_of(&value, self.http.base_url());
                let is_last = value
                    .get("isLast")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let next = value
                    .get("nextPageToken")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty() && !is_last)
                    .map(str::to_owned);
                Ok(SearchPage {
                    issues,
                    next_page_token: next,
                })
            }
            Flavor::DataCenter => {
                let start_at: i64 = match page_token {
                    None => 0,
                    Some(t) => t.parse().map_err(|_| {
                        Error::invalid(
                            "page_token",
                            "is not a token returned by a previous jira_search_issues call",
                        )
                    })?,
                };
                let body = json!({"jql": jql, "startAt": start_at, "maxResults": max_results, "fields": fields});
                let value = self
                    .http
                    .execute(Call::send(
                        Method::POST,
                        vec!["search"],
                        body,
                        "the JQL search",
                        Repeat::Safe,
                    ))
                    .await?;
                let issues = issues_of(&value, self.http.base_url());
                let total = value.get("total").and_then(Value::as_i64).unwrap_or(0);
                let next = start_at + issues.len() as i64;
                Ok(SearchPage {
                    next_page_token: (!issues.is_empty() && next < total).then(|| next.to_string()),
                    issues,
                })
            }
        }
    }

    /// `POST /issue`.
    pub async fn create_issue(&self, new: NewIssue) -> Result<pb::CreateIssueResponse, Error> {
        let description = new
            .description
            .as_deref()
            .map(|d| self.rich("description", d))
            .transpose()?;
        let mut fields = self.resolve_custom(new.custom_fields).await?;
        fields.insert("project".into(), json!({"key": new.project_key}));
        fields.insert("summary".into(), json!(new.summary));
        let issue_type = if new.issue_type.chars().all(|c| c.is_ascii_digit()) {
            json!({"id": new.issue_type})
        } else {
            json!({"name": new.issue_type})
        };
        fields.insert("issuetype".into(), issue_type);
        if let Some(description) = description {
            fields.insert("description".into(), description);
        }
        if let Some(p) = &new.priority {
            fields.insert("priority".into(), json!({"name": p}));
        }
        if let Some(a) = &new.assignee {
            fields.insert("assignee".into(), self.user_ref(a));
        }
        if !new.labels.is_empty() {
            fields.insert("labels".into(), json!(new.labels));
        }
        if !new.components.is_empty() {
            let components: Vec<Value> =
                new.components.iter().map(|c| json!({"name": c})).collect();
            fields.insert("components".into(), Value::Array(components));
        }
        if let Some(parent) = &new.parent_key {
            fields.insert("parent".into(), json!({"key": parent}));
        }
        if let Some(due) = &new.due_date {
            fields.insert("duedate".into(), json!(due));
        }
        let what = format!("creating an issue in project {}", new.project_key);
        let value = self
            .http
            .execute(Call::send(
                Method::POST,
                vec!["issue"],
                json!({"fields": fields}),
                what,
                Repeat::Once,
            ))
            .await?;
        let key = model::text(&value, "/key");
        Ok(pb::CreateIssueResponse {
            url: model::browse_url(self.http.base_url(), &key),
            id: model::text(&value, "/id"),
            key,
        })
    }

    /// `PUT /issue/{key}`; returns the ids of the fields sent.
    pub async fn update_issue(
        &self,
        key: &str,
        changes: IssueChanges,
    ) -> Result<Vec<String>, Error> {
        let description = changes
            .description
            .as_deref()
            .map(|d| self.rich("description", d))
            .transpose()?;
        let mut fields = self.resolve_custom(changes.custom_fields).await?;
        if let Some(s) = changes.summary {
            fields.insert("summary".into(), json!(s));
        }
        if let Some(description) = description {
            fields.insert("description".into(), description);
        }
        if let Some(p) = changes.priority {
            fields.insert("priority".into(), json!({"name": p}));
        }
        if !changes.components.is_empty() {
            let components: Vec<Value> = changes
                .components
                .iter()
                .map(|c| json!({"name": c}))
                .collect();
            fields.insert("components".into(), Value::Array(components));
        }
        if let Some(due) = changes.due_date {
            fields.insert("duedate".into(), json!(due));
        }
        let mut body = json!({"fields": fields});
        let mut sent: Vec<String> = fields.keys().cloned().collect();
        let label_ops: Vec<Value> = changes
            .add_labels
            .iter()
            .map(|l| json!({"add": l}))
            .chain(changes.remove_labels.iter().map(|l| json!({"remove": l})))
            .collect();
        if !label_ops.is_empty() {
            body["update"] = json!({"labels": label_ops});
            sent.push("labels".into());
        }
        if sent.is_empty() {
            return Err(Error::invalid(
                "key",
                "nothing to change: give at least one of summary, description, priority, add_labels, remove_labels, components, due_date, custom_fields",
            ));
        }
        let mut call = Call::send(
            Method::PUT,
            vec!["issue", key],
            body,
            format!("updating issue {key}"),
            Repeat::Safe,
        );
        if changes.notify_users == Some(false) {
            call = call.query("notifyUsers", "false");
        }
        self.http.execute(call).await?;
        sent.sort();
        Ok(sent)
    }

    /// `POST /issue/{key}/comment`.
    pub async fn add_comment(&self, key: &str, markdown: &str) -> Result<pb::Comment, Error> {
        let body = json!({"body": self.rich("body", markdown)?});
        let value = self
            .http
            .execute(Call::send(
                Method::POST,
                vec!["issue", key, "comment"],
                body,
                format!("commenting on issue {key}"),
                Repeat::Once,
            ))
            .await?;
        Ok(model::comment(&value))
    }

    /// `GET /issue/{key}/comment`.
    pub async fn list_comments(
        &self,
        key: &str,
        start_at: i32,
        max_results: i32,
        newest_first: bool,
    ) -> Result<pb::ListCommentsResponse, Error> {
        let call = Call::get(
            vec!["issue", key, "comment"],
            format!("comments of issue {key}"),
        )
        .query("startAt", start_at)
        .query("maxResults", max_results)
        .query("orderBy", if newest_first { "-created" } else { "created" });
        let value = self.http.execute(call).await?;
        let comments: Vec<pb::Comment> = value
            .get("comments")
            .and_then(Value::as_array)
            .map(|c| c.iter().map(model::comment).collect())
            .unwrap_or_default();
        let total = value
            .get("total")
            .and_then(Value::as_i64)
            .unwrap_or(comments.len() as i64);
        let next = i64::from(start_at) + comments.len() as i64;
        Ok(pb::ListCommentsResponse {
            next_start_at: (!comments.is_empty() && next < total)
                .then(|| i32::try_from(next).unwrap_or(i32::MAX)),
            comments,
            total,
        })
    }

    /// `GET /issue/{key}/transitions`.
    pub async fn transitions(&self, key: &str) -> Result<Vec<pb::Transition>, Error> {
        let value = self
            .http
            .execute(Call::get(
                vec!["issue", key, "transitions"],
                format!("transitions of issue {key}"),
            ))
            .await?;
        Ok(value
            .get("transitions")
            .and_then(Value::as_array)
            .map(|t| t.iter().map(model::transition).collect())
            .unwrap_or_default())
    }

    /// `POST /issue/{key}/transitions`.
    pub async fn transition(
        &self,
        key: &str,
        transition_id: &str,
        comment: Option<&str>,
        resolution: Option<&str>,
    ) -> Result<(), Error> {
        let mut body = json!({"transition": {"id": transition_id}});
        if let Some(comment) = comment {
            body["update"] =
                json!({"comment": [{"add": {"body": self.rich("comment", comment)?}}]});
        }
        if let Some(resolution) = resolution {
            body["fields"] = json!({"resolution": {"name": resolution}});
        }
        self.http
            .execute(Call::send(
                Method::POST,
                vec!["issue", key, "transitions"],
                body,
                format!("transitioning issue {key}"),
                Repeat::Once,
            ))
            .await?;
        Ok(())
    }

    /// `PUT /issue/{key}/assignee`; `None` unassigns (through the issue's
    /// `assignee` field, since the assignee resource's schema has no null).
    pub async fn assign(&self, key: &str, assignee: Option<&str>) -> Result<(), Error> {
        let what = format!("assigning issue {key}");
        let call = match assignee {
            Some(id) => Call::send(
                Method::PUT,
                vec!["issue", key, "assignee"],
                self.user_ref(id),
                what,
                Repeat::Safe,
            ),
            None => Call::send(
                Method::PUT,
                vec!["issue", key],
                json!({"fields": {"assignee": null}}),
                what,
                Repeat::Safe,
            ),
        };
        self.http.execute(call).await?;
        Ok(())
    }

    /// Projects visible to the account, filtered by `query` and `only` (allowed
    /// keys; empty = all), paged.
    pub async fn list_projects(
        &self,
        query: Option<&str>,
        only: &[String],
        start_at: i32,
        max_results: i32,
    ) -> Result<pb::ListProjectsResponse, Error> {
        let matches = |p: &pb::ProjectSummary| {
            let text_ok = query.is_none_or(|q| {
                let q = q.to_lowercase();
                p.name.to_lowercase().contains(&q) || p.key.to_lowercase().contains(&q)
            });
            text_ok && (only.is_empty() || only.iter().any(|k| k.eq_ignore_ascii_case(&p.key)))
        };
        match self.flavor() {
            Flavor::Cloud => {
                let mut call = Call::get(vec!["project", "search"], "the list of projects")
                    .query("startAt", start_at)
                    .query("maxResults", max_results);
                if let Some(q) = query {
                    call = call.query("query", q);
                }
                for key in only {
                    call = call.query("keys", key);
                }
                let value = self.http.execute(call).await?;
                let projects: Vec<pb::ProjectSummary> = value
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .map(model::project_summary)
                            .filter(|p| matches(p))
                            .collect()
                    })
                    .unwrap_or_default();
                let returned = value
                    .get("values")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let is_last = value.get("isLast").and_then(Value::as_bool).unwrap_or(true);
                Ok(pb::ListProjectsResponse {
                    projects,
                    next_start_at: (!is_last && returned > 0).then(|| {
                        start_at.saturating_add(i32::try_from(returned).unwrap_or(i32::MAX))
                    }),
                })
            }
            Flavor::DataCenter => {
                let value = self
                    .http
                    .execute(Call::get(vec!["project"], "the list of projects"))
                    .await?;
                let all: Vec<pb::ProjectSummary> = value
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .map(model::project_summary)
                            .filter(|p| matches(p))
                            .collect()
                    })
                    .unwrap_or_default();
                let start = usize::try_from(start_at).unwrap_or(0).min(all.len());
                let end = start
                    .saturating_add(usize::try_from(max_results).unwrap_or(0))
                    .min(all.len());
                Ok(pb::ListProjectsResponse {
                    next_start_at: (end < all.len())
                        .then(|| i32::try_from(end).unwrap_or(i32::MAX)),
                    projects: all[start..end].to_vec(),
                })
            }
        }
    }

    /// `GET /project/{key}`.
    pub async fn get_project(&self, key: &str) -> Result<pb::Project, Error> {
        let value = self
            .http
            .execute(Call::get(vec!["project", key], format!("project {key}")))
            .await?;
        Ok(model::project(&value, self.http.base_url()))
    }

    /// `GET /user/search`.
    pub async fn find_users(&self, query: &str, max_results: i32) -> Result<Vec<pb::User>, Error> {
        let param = match self.flavor() {
            Flavor::Cloud => "query",
            Flavor::DataCenter => "username",
        };
        let call = Call::get(vec!["user", "search"], format!("users matching {query:?}"))
            .query(param, query)
            .query("maxResults", max_results);
        let value = self.http.execute(call).await?;
        Ok(value
            .as_array()
            .map(|users| users.iter().filter_map(model::user).collect())
            .unwrap_or_default())
    }

    /// `GET /field`, filtered and sorted by name.
    pub async fn list_fields(
        &self,
        query: Option<&str>,
        custom_only: bool,
    ) -> Result<Vec<pb::Field>, Error> {
        let query = query.map(str::to_lowercase);
        let mut fields: Vec<pb::Field> = self
            .all_fields(self.fields_ttl)
            .await?
            .iter()
            .map(model::field)
            .filter(|f| !custom_only || f.custom)
            .filter(|f| {
                query.as_deref().is_none_or(|q| {
                    f.name.to_lowercase().contains(q) || f.id.to_lowercase().contains(q)
                })
            })
            .collect();
        fields.sort_by_key(|f| f.name.to_lowercase());
        Ok(fields)
    }

    /// `POST /issueLink`: "`from` <outward> `to`".
    pub async fn link(
        &self,
        link_type: &str,
        from: &str,
        to: &str,
        comment: Option<&str>,
    ) -> Result<(), Error> {
        // Jira applies the type's outward phrase from `inwardIssue` to `outwardIssue`.
        let mut body = json!({
            "type": {"name": link_type},
            "inwardIssue": {"key": from},
            "outwardIssue": {"key": to},
        });
        if let Some(comment) = comment {
            body["comment"] = json!({"body": self.rich("comment", comment)?});
        }
        let result = self
            .http
            .execute(Call::send(
                Method::POST,
                vec!["issueLink"],
                body,
                format!("linking {from} to {to}"),
                Repeat::Once,
            ))
            .await;
        match result {
            Ok(_) => {}
            // An unknown link type is the usual cause: say which ones exist.
            Err(error @ (Error::Rejected { .. } | Error::NotFound { .. })) => {
                let types = self.link_types().await.unwrap_or_default();
                if !types.is_empty()
                    && !types
                        .iter()
                        .any(|t| t.starts_with(&format!("{link_type:?}")))
                {
                    return Err(Error::invalid(
                        "link_type",
                        format!(
                            "Jira has no link type {link_type:?}; the link types are: {}",
                            types.join(", ")
                        ),
                    ));
                }
                return Err(error);
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }
}

impl Jira {
    /// `GET /issueLinkType`, as `"Name" (outward / inward)` lines.
    async fn link_types(&self) -> Result<Vec<String>, Error> {
        let value = self
            .http
            .execute(Call::get(vec!["issueLinkType"], "the issue link types"))
            .await?;
        Ok(value
            .get("issueLinkTypes")
            .and_then(Value::as_array)
            .map(|types| {
                types
                    .iter()
                    .map(|t| {
                        format!(
                            "{:?} ({} / {})",
                            model::text(t, "/name"),
                            model::text(t, "/outward"),
                            model::text(t, "/inward")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn issues_of(value: &Value, base_url: &str) -> Vec<pb::Issue> {
    value
        .get("issues")
        .and_then(Value::as_array)
        .map(|i| {
            i.iter()
                .map(|issue| model::issue(issue, base_url))
                .collect()
        })
        .unwrap_or_default()
}

/// The id of the field `wanted` names (an id, or a display name compared without
/// case that must be unique); `None` when no field matches.
fn find_field(fields: &[Value], wanted: &str) -> Option<Result<String, Error>> {
    if fields.iter().any(|f| model::text(f, "/id") == wanted) {
        return Some(Ok(wanted.to_owned()));
    }
    let matches: Vec<&Value> = fields
        .iter()
        .filter(|f| model::text(f, "/name").eq_ignore_ascii_case(wanted))
        .collect();
    match matches.as_slice() {
        [] => None,
        [one] => Some(Ok(model::text(one, "/id"))),
        many => Some(Err(Error::invalid(
            "fields",
            format!(
                "several fields are named {wanted:?} ({}); use the id",
                many.iter()
                    .map(|f| model::text(f, "/id"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))),
    }
}
