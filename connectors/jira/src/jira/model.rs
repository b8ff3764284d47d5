//! Jira's JSON answers as the tool messages of `switchboard.jira.v1`.
//!
//! Reading is lenient on purpose: a missing or oddly typed field becomes an empty
//! value rather than a failed call, because Jira sites differ (custom schemes,
//! privacy settings hiding emails, Data Center vs Cloud shapes).

use prost_types::value::Kind;
use serde_json::Value;
use switchboard_proto::jira::v1 as pb;

use crate::richtext;

/// Fields every issue answer carries (ids as Jira names them).
pub const STANDARD_FIELDS: &[&str] = &[
    "summary",
    "status",
    "issuetype",
    "priority",
    "assignee",
    "reporter",
    "project",
    "labels",
    "components",
    "parent",
    "resolution",
    "created",
    "updated",
    "duedate",
    "issuelinks",
];

/// Standard fields mapped onto named message fields (not repeated in `other_fields`).
const MAPPED_FIELDS: &[&str] = &["description", "comment"];

/// A string at `pointer`, or empty.
pub fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// A user object (`assignee`, `author`, search results).
pub fn user(value: &Value) -> Option<pb::User> {
    if !value.is_object() {
        return None;
    }
    let account_id = match text(value, "/accountId") {
        id if !id.is_empty() => id,
        _ => text(value, "/key"),
    };
    Some(pb::User {
        account_id,
        display_name: text(value, "/displayName"),
        email_address: text(value, "/emailAddress"),
        active: value
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        name: text(value, "/name"),
    })
}

/// A comment object.
pub fn comment(value: &Value) -> pb::Comment {
    let body = richtext::from_jira(value.get("body").unwrap_or(&Value::Null));
    pb::Comment {
        id: text(value, "/id"),
        author: value.get("author").and_then(user),
        body: body.markdown,
        body_warnings: body.warnings,
        created: text(value, "/created"),
        updated: text(value, "/updated"),
    }
}

/// A transition object.
pub fn transition(value: &Value) -> pb::Transition {
    pb::Transition {
        id: text(value, "/id"),
        name: text(value, "/name"),
        to_status: text(value, "/to/name"),
    }
}

fn names(value: Option<&Value>, pointer: &str) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    if pointer.is_empty() {
                        text(i, "")
                    } else {
                        text(i, pointer)
                    }
                })
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn link(value: &Value) -> Option<pb::IssueLink> {
    let (other, relation) = if let Some(issue) = value.get("outwardIssue") {
        (issue, text(value, "/type/outward"))
    } else {
        (value.get("inwardIssue")?, text(value, "/type/inward"))
    };
    Some(pb::IssueLink {
        r#type: text(value, "/type/name"),
        relation,
        issue_key: text(other, "/key"),
        issue_summary: text(other, "/fields/summary"),
        issue_status: text(other, "/fields/status/name"),
    })
}

/// An issue object (`GET /issue/{key}` or one of a search's `issues`).
pub fn issue(value: &Value, base_url: &str) -> pb::Issue {
    let empty = Value::Null;
    let fields = value.get("fields").unwrap_or(&empty);
    let key = text(value, "/key");
    let description = richtext::from_jira(fields.get("description").unwrap_or(&Value::Null));
    let comments = fields
        .pointer("/comment/comments")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(comment).collect())
        .unwrap_or_default();
    let transitions = value
        .get("transitions")
        .and_then(Value::as_array)
        .map(|t| t.iter().map(transition).collect())
        .unwrap_or_default();
    let links = fields
        .get("issuelinks")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(link).collect())
        .unwrap_or_default();
    let other: serde_json::Map<String, Value> = fields
        .as_object()
        .map(|map| {
            map.iter()
                .filter(|(k, _)| {
                    !STANDARD_FIELDS.contains(&k.as_str()) && !MAPPED_FIELDS.contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    pb::Issue {
        url: if key.is_empty() {
            String::new()
        } else {
            browse_url(base_url, &key)
        },
        key,
        id: text(value, "/id"),
        summary: text(fields, "/summary"),
        status: text(fields, "/status/name"),
        status_category: text(fields, "/status/statusCategory/name"),
        issue_type: text(fields, "/issuetype/name"),
        priority: text(fields, "/priority/name"),
        assignee: fields.get("assignee").and_then(user),
        reporter: fields.get("reporter").and_then(user),
        project_key: text(fields, "/project/key"),
        labels: names(fields.get("labels"), ""),
        components: names(fields.get("components"), "/name"),
        parent_key: text(fields, "/parent/key"),
        resolution: text(fields, "/resolution/name"),
        created: text(fields, "/created"),
        updated: text(fields, "/updated"),
        due_date: text(fields, "/duedate"),
        description: description.markdown,
        description_warnings: description.warnings,
        links,
        other_fields: if other.is_empty() {
            None
        } else {
            Some(json_object_to_struct(&other))
        },
        comments,
        transitions,
    }
}

/// The web UI link of an issue.
pub fn browse_url(base_url: &str, key: &str) -> String {
    format!("{base_url}/browse/{key}")
}

/// A project summary (`/project/search` values, `/project` items).
pub fn project_summary(value: &Value) -> pb::ProjectSummary {
    pb::ProjectSummary {
        id: text(value, "/id"),
        key: text(value, "/key"),
        name: text(value, "/name"),
        project_type: text(value, "/projectTypeKey"),
    }
}

/// A full project (`GET /project/{key}`).
pub fn project(value: &Value, base_url: &str) -> pb::Project {
    let key = text(value, "/key");
    let description = match value.get("description") {
        Some(Value::String(s)) => s.clone(),
        Some(other @ Value::Object(_)) => richtext::from_jira(other).markdown,
        _ => String::new(),
    };
    pb::Project {
        id: text(value, "/id"),
        name: text(value, "/name"),
        description,
        lead: value.get("lead").and_then(user),
        project_type: text(value, "/projectTypeKey"),
        issue_types: value
            .get("issueTypes")
            .and_then(Value::as_array)
            .map(|types| {
                types
                    .iter()
                    .map(|t| pb::IssueType {
                        id: text(t, "/id"),
                        name: text(t, "/name"),
                        subtask: t.get("subtask").and_then(Value::as_bool).unwrap_or(false),
                        description: text(t, "/description"),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        components: value
            .get("components")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .map(|c| pb::Component {
                        id: text(c, "/id"),
                        name: text(c, "/name"),
                        description: text(c, "/description"),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        url: if key.is_empty() {
            String::new()
        } else {
            format!("{base_url}/browse/{key}")
        },
        key,
    }
}

/// A field (`GET /field` items).
pub fn field(value: &Value) -> pb::Field {
    pb::Field {
        id: text(value, "/id"),
        name: text(value, "/name"),
        custom: value
            .get("custom")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        r#type: text(value, "/schema/type"),
        items: text(value, "/schema/items"),
        clause_names: names(value.get("clauseNames"), ""),
    }
}

/// JSON as a protobuf `Value`.
pub fn json_to_value(json: &Value) -> prost_types::Value {
    let kind = match json {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(json_object_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A JSON object as a protobuf `Struct`.
pub fn json_object_to_struct(map: &serde_json::Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// A protobuf `Value` as JSON; whole numbers stay integers (Jira rejects 5.0 for
/// an integer field).
pub fn value_to_json(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_issue_maps_its_standard_fields_and_keeps_the_rest() {
        let raw = json!({
            "id": "10001", "key": "PROJ-7",
            "fields": {
                "summary": "Crash on save",
                "status": {"name": "In Progress", "statusCategory": {"name": "In Progress"}},
                "issuetype": {"name": "Bug"},
                "priority": {"name": "High"},
                "assignee": {"accountId": "abc", "displayName": "Ada", "active": true},
                "project": {"key": "PROJ"},
                "labels": ["backend", "crash"],
                "components": [{"name": "API"}],
                "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Steps"}]}]},
                "issuelinks": [{"type": {"name": "Blocks", "inward": "is blocked by", "outward": "blocks"}, "inwardIssue": {"key": "PROJ-1", "fields": {"summary": "Root"}}}],
                "customfield_10016": 5
            }
        });
        let issue = issue(&raw, "https://acme.atlassian.net");
        assert_eq!(issue.key, "PROJ-7");
        assert_eq!(issue.url, "https://acme.atlassian.net/browse/PROJ-7");
        assert_eq!(issue.status, "In Progress");
        assert_eq!(
            issue.assignee.as_ref().map(|u| u.display_name.as_str()),
            Some("Ada")
        );
        assert_eq!(issue.labels, vec!["backend", "crash"]);
        assert_eq!(issue.components, vec!["API"]);
        assert_eq!(issue.description, "Steps");
        assert_eq!(issue.links[0].relation, "is blocked by");
        assert_eq!(issue.links[0].issue_key, "PROJ-1");
        let other = issue.other_fields.expect("custom field kept");
        assert_eq!(other.fields.len(), 1);
        assert!(other.fields.contains_key("customfield_10016"));
    }

    #[test]
    fn odd_shapes_become_empty_values_not_failures() {
        let issue = issue(
            &json!({"key": 5, "fields": {"summary": null, "labels": "x", "assignee": "nobody"}}),
            "https://x",
        );
        assert_eq!(issue.key, "5");
        assert_eq!(issue.summary, "");
        assert!(issue.labels.is_empty());
        assert!(issue.assignee.is_none());
    }

    #[test]
    fn whole_numbers_stay_integers_on_the_way_to_jira() {
        let v = json_to_value(&json!({"points": 5, "ratio": 0.5, "tags": ["a"], "none": null}));
        assert_eq!(
            value_to_json(&v),
            json!({"points": 5, "ratio": 0.5, "tags": ["a"], "none": null})
        );
    }
}
