//! Table schemas as MCP resources (`switchboard.mcp.v1.Resources`).
//!
//! Every table and view is one resource, `db://<schema>/<table>` (each part
//! percent-encoded when it holds anything but letters, digits, `-`, `.`, `_`,
//! `~`), whose contents are what `DescribeTable` returns, rendered as Markdown
//! for the model: columns, keys, indexes, the row estimate and how to write the
//! name in SQL. The template `db://{schema}/{table}` reads any table by name,
//! with completion of schema and table names. Subscribing to a resource checks
//! its schema every `DB_SCHEMA_WATCH_INTERVAL` and reports each change.
//!
//! The catalog queries are the engine's own ([`Database::list_schemas`],
//! [`Database::list_tables`], [`Database::describe_table`]); this module only
//! maps them.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use switchboard_proto::database::v1 as db;
use switchboard_proto::mcp::v1 as pb;
use tonic::{Request, Response, Status};

use crate::engine::{Database, EngineKind};
use crate::error::Error;

/// The URI scheme of table resources.
pub const SCHEME: &str = "db://";
/// The one resource template: any table or view by schema and name.
pub const TEMPLATE: &str = "db://{schema}/{table}";
/// MIME type of a table's schema resource.
pub const MIME_TYPE: &str = "text/markdown";
/// Most resources in one page of `ListResources`.
pub const PAGE_SIZE: usize = 200;
/// Most completion candidates returned (the router passes on at most 100).
pub const MAX_COMPLETIONS: usize = 100;

/// Serves the tables of the connector's database as resources.
#[derive(Debug, Clone)]
pub struct SchemaResources {
    db: Arc<Database>,
    ttl: Duration,
    watch_interval: Duration,
}

impl SchemaResources {
    /// Resources over `db`; reads may be cached by the router for `ttl`, and
    /// watched tables are checked every `watch_interval`.
    pub fn new(db: Arc<Database>, ttl: Duration, watch_interval: Duration) -> Self {
        Self {
            db,
            ttl,
            watch_interval,
        }
    }
}

/// The URI of one table or view.
pub fn table_uri(schema: &str, table: &str) -> String {
    format!("{SCHEME}{}/{}", encode(schema), encode(table))
}

/// The schema and table a resource URI names, or `None` when it is not a
/// table URI of this connector.
pub fn parse_table_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix(SCHEME)?;
    let (schema, table) = rest.split_once('/')?;
    let (schema, table) = (decode(schema)?, decode(table)?);
    if schema.is_empty() || table.is_empty() {
        return None;
    }
    Some((schema, table))
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Reverses [`encode`]; `None` for a malformed escape, invalid UTF-8 or a raw
/// `/` (a table URI has exactly one).
fn decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = part.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'/' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn not_a_table_uri(uri: &str) -> Error {
    Error::NotFound(format!(
        "no resource {uri:?}: this connector's resources are tables, {TEMPLATE} (e.g. db://public/orders); list them with resources/list"
    ))
}

/// `table` (kind) in words.
fn kind_name(kind: db::TableKind) -> &'static str {
    match kind {
        db::TableKind::Table => "table",
        db::TableKind::View => "view",
        db::TableKind::MaterializedView => "materialized view",
        db::TableKind::ForeignTable => "foreign table",
        db::TableKind::PartitionedTable => "partitioned table",
        db::TableKind::Unspecified => "relation",
    }
}

fn rows_in_words(kind: EngineKind, rows: i64) -> String {
    match kind {
        EngineKind::Sqlite => format!("{rows} rows"),
        EngineKind::Postgres | EngineKind::MySql => {
            format!("about {rows} rows (planner estimate)")
        }
    }
}

/// The listing entry of one table.
fn resource_of(kind: EngineKind, table: &db::Table) -> pb::Resource {
    let mut description = format!(
        "Schema of the {} {}.{}",
        kind_name(table.kind()),
        table.schema,
        table.name
    );
    if let Some(rows) = table.row_estimate {
        let _ = write!(description, ", {}", rows_in_words(kind, rows));
    }
    description.push_str(": columns, types, keys and indexes.");
    if !table.comment.trim().is_empty() {
        let _ = write!(description, " {}", table.comment.trim());
    }
    pb::Resource {
        uri: table_uri(&table.schema, &table.name),
        name: format!("{}.{}", table.schema, table.name),
        title: format!(
            "{} {}.{}",
            kind_name(table.kind()),
            table.schema,
            table.name
        ),
        description,
        mime_type: MIME_TYPE.to_owned(),
        size: None,
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Quotes an identifier the way the engine expects.
pub fn quote_identifier(kind: EngineKind, name: &str) -> String {
    match kind {
        EngineKind::MySql => format!("`{}`", name.replace('`', "``")),
        EngineKind::Postgres | EngineKind::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// Text safe inside one Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn code_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A table's description as Markdown, for the model.
pub fn render_markdown(
    kind: EngineKind,
    table: &db::TableDescription,
    row_estimate: Option<i64>,
) -> String {
    let mut md = String::new();
    let what = capitalised(kind_name(table.kind()));
    let _ = writeln!(md, "# {what} `{}.{}`\n", table.schema, table.name);
    let _ = writeln!(md, "- Engine: {}", kind.dialect_name());
    let _ = writeln!(
        md,
        "- In SQL: `{}.{}`",
        quote_identifier(kind, &table.schema),
        quote_identifier(kind, &table.name)
    );
    if let Some(rows) = row_estimate {
        let _ = writeln!(md, "- Rows: {}", rows_in_words(kind, rows));
    }
    if !table.comment.trim().is_empty() {
        let _ = writeln!(md, "- Comment: {}", table.comment.trim().replace('\n', " "));
    }

    let _ = writeln!(md, "\n## Columns\n");
    let _ = writeln!(md, "| # | Column | Type | Nullable | Default | Comment |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for column in &table.columns {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} | {} | {} |",
            column.position,
            cell(&column.name),
            cell(&column.r#type),
            if column.nullable { "yes" } else { "no" },
            column
                .default
                .as_deref()
                .map(|d| format!("`{}`", cell(d)))
                .unwrap_or_default(),
            cell(column.comment.trim()),
        );
    }

    let _ = writeln!(md, "\n## Primary key\n");
    if table.primary_key.is_empty() {
        let _ = writeln!(md, "None.");
    } else {
        let _ = writeln!(md, "{}", code_list(&table.primary_key));
    }

    if !table.foreign_keys.is_empty() {
        let _ = writeln!(md, "\n## Foreign keys (join on these)\n");
        for fk in &table.foreign_keys {
            let _ = write!(
                md,
                "- ({}) → `{}.{}` ({})",
                code_list(&fk.columns),
                fk.referenced_schema,
                fk.referenced_table,
                code_list(&fk.referenced_columns)
            );
            if !fk.on_delete.is_empty() {
                let _ = write!(md, ", ON DELETE {}", fk.on_delete);
            }
            if !fk.on_update.is_empty() {
                let _ = write!(md, ", ON UPDATE {}", fk.on_update);
            }
            if !fk.name.is_empty() {
                let _ = write!(md, " [{}]", fk.name);
            }
            md.push('\n');
        }
    }

    if !table.indexes.is_empty() {
        let _ = writeln!(md, "\n## Indexes (filter and sort on these)\n");
        for index in &table.indexes {
            let mut traits = Vec::new();
            if index.primary {
                traits.push("primary");
            }
            if index.unique {
                traits.push("unique");
            }
            if !index.method.is_empty() {
                traits.push(index.method.as_str());
            }
            let _ = write!(md, "- `{}` ({})", index.name, code_list(&index.columns));
            if !traits.is_empty() {
                let _ = write!(md, " {}", traits.join(", "));
            }
            md.push('\n');
        }
    }
    md
}

/// Where the next page of `ListResources` starts: a schema and the number of
/// its tables already listed. The cursor is `<encoded schema>/<offset>`.
fn parse_cursor(cursor: &str) -> Result<Option<(String, usize)>, Error> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::InvalidArgument(format!(
            "`cursor` {cursor:?} is not one this connector returned; start again without a cursor"
        ))
    };
    let (schema, offset) = cursor.rsplit_once('/').ok_or_else(bad)?;
    let schema = decode(schema).ok_or_else(bad)?;
    let offset = offset.parse().map_err(|_| bad())?;
    Ok(Some((schema, offset)))
}

/// Candidates from `names` for what was typed: prefix matches first, then
/// other matches, case-insensitive.
pub fn complete_from(names: impl IntoIterator<Item = String>, typed: &str) -> pb::CompleteResponse {
    let typed = typed.to_lowercase();
    let (mut prefix, mut inner): (Vec<String>, Vec<String>) = names
        .into_iter()
        .filter(|n| n.to_lowercase().contains(&typed))
        .partition(|n| n.to_lowercase().starts_with(&typed));
    prefix.sort();
    inner.sort();
    prefix.append(&mut inner);
    let total = prefix.len();
    prefix.truncate(MAX_COMPLETIONS);
    pb::CompleteResponse {
        has_more: total > prefix.len(),
        total: Some(i32::try_from(total).unwrap_or(i32::MAX)),
        values: prefix,
    }
}

/// Completes a schema name (non-system schemas).
pub async fn complete_schema(db: &Database, typed: &str) -> Result<pb::CompleteResponse, Error> {
    let schemas = db.list_schemas(false).await?;
    Ok(complete_from(schemas.into_iter().map(|s| s.name), typed))
}

impl SchemaResources {
    async fn list(&self, cursor: &str) -> Result<pb::ListResourcesResponse, Error> {
        let start = parse_cursor(cursor)?;
        let schemas = self.db.list_schemas(false).await?;
        let mut index = 0;
        let mut offset = 0;
        if let Some((schema, skip)) = start {
            index = schemas
                .iter()
                .position(|s| s.name == schema)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "`cursor` points at schema {schema:?}, which no longer exists; start again without a cursor"
                    ))
                })?;
            offset = skip;
        }
        let kind = self.db.kind();
        let mut resources = Vec::new();
        while let Some(schema) = schemas.get(index) {
            let (_, tables) = self.db.list_tables(Some(&schema.name), None).await?;
            let room = PAGE_SIZE - resources.len();
            let rest = tables.get(offset..).unwrap_or_default();
            resources.extend(rest.iter().take(room).map(|t| resource_of(kind, t)));
            if rest.len() > room {
                return Ok(pb::ListResourcesResponse {
                    resources,
                    next_cursor: format!("{}/{}", encode(&schema.name), offset + room),
                });
            }
            index += 1;
            offset = 0;
            if resources.len() == PAGE_SIZE {
                break;
            }
        }
        let next_cursor = match schemas.get(index) {
            Some(schema) => format!("{}/0", encode(&schema.name)),
            None => String::new(),
        };
        Ok(pb::ListResourcesResponse {
            resources,
            next_cursor,
        })
    }

    /// The Markdown schema of the table `uri` names.
    async fn render(&self, uri: &str) -> Result<String, Error> {
        let (schema, table) = parse_table_uri(uri).ok_or_else(|| not_a_table_uri(uri))?;
        let description = self.db.describe_table(Some(&schema), &table).await?;
        // The row estimate is in the listing, not the description.
        let (_, listed) = self
            .db
            .list_tables(Some(&description.schema), Some(&description.name))
            .await?;
        let rows = listed
            .iter()
            .find(|t| t.name == description.name)
            .and_then(|t| t.row_estimate);
        Ok(render_markdown(self.db.kind(), &description, rows))
    }

    async fn read(&self, uri: String) -> Result<pb::ReadResourceResponse, Error> {
        let text = self.render(&uri).await?;
        Ok(pb::ReadResourceResponse {
            contents: vec![pb::ResourceContents {
                uri,
                mime_type: MIME_TYPE.to_owned(),
                body: Some(pb::resource_contents::Body::Text(text)),
            }],
            ttl_seconds: u32::try_from(self.ttl.as_secs()).unwrap_or(u32::MAX),
        })
    }

    async fn complete(&self, request: pb::CompleteRequest) -> Result<pb::CompleteResponse, Error> {
        match &request.r#ref {
            Some(pb::complete_request::Ref::ResourceTemplate(t)) if t == TEMPLATE => {}
            Some(pb::complete_request::Ref::ResourceTemplate(t)) => {
                return Err(Error::NotFound(format!(
                    "no resource template {t:?}; the only one is {TEMPLATE}"
                )));
            }
            _ => {
                return Err(Error::InvalidArgument(
                    "`ref` must be the resource template db://{schema}/{table}".to_owned(),
                ));
            }
        }
        match request.argument.as_str() {
            "schema" => complete_schema(&self.db, &request.value).await,
            "table" => {
                let schema = request
                    .context
                    .get("schema")
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty());
                match self.db.list_tables(schema, None).await {
                    Ok((_, tables)) => Ok(complete_from(
                        tables.into_iter().map(|t| t.name),
                        &request.value,
                    )),
                    // A schema typed wrong so far has no tables to offer.
                    Err(Error::NotFound(_)) => Ok(complete_from(Vec::new(), "")),
                    Err(error) => Err(error),
                }
            }
            other => Err(Error::InvalidArgument(format!(
                "{TEMPLATE} has no parameter {other:?}; complete `schema` or `table`"
            ))),
        }
    }
}

/// The stream of a watched table: one message per change of its schema.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::ResourceUpdated, Status>> + Send>>;

#[tonic::async_trait]
impl pb::resources_server::Resources for SchemaResources {
    async fn list_resources(
        &self,
        request: Request<pb::ListResourcesRequest>,
    ) -> Result<Response<pb::ListResourcesResponse>, Status> {
        Ok(Response::new(
            self.list(&request.into_inner().cursor).await?,
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Request<pb::ListResourceTemplatesRequest>,
    ) -> Result<Response<pb::ListResourceTemplatesResponse>, Status> {
        let kind = self.db.kind();
        Ok(Response::new(pb::ListResourceTemplatesResponse {
            templates: vec![pb::ResourceTemplate {
                uri_template: TEMPLATE.to_owned(),
                name: "table-schema".to_owned(),
                title: "Schema of a table or view".to_owned(),
                description: format!(
                    "Columns (type, nullability, default, comment), primary key, foreign keys, indexes and row estimate of one table or view of the {} database, as Markdown. `schema` is the schema (PostgreSQL), database (MySQL) or attached database (SQLite, usually `main`); `table` the table or view name without schema. Both complete.",
                    kind.dialect_name()
                ),
                mime_type: MIME_TYPE.to_owned(),
            }],
            next_cursor: String::new(),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::ReadResourceRequest>,
    ) -> Result<Response<pb::ReadResourceResponse>, Status> {
        Ok(Response::new(self.read(request.into_inner().uri).await?))
    }

    type WatchResourceStream = WatchStream;

    async fn watch_resource(
        &self,
        request: Request<pb::WatchResourceRequest>,
    ) -> Result<Response<Self::WatchResourceStream>, Status> {
        let uri = request.into_inner().uri;
        // An unknown table fails the subscription at once.
        let first = self.render(&uri).await?;
        // The state is the last rendering seen; `None` once the table is gone.
        let state = (self.clone(), uri, Some(first));
        let stream = futures::stream::unfold(state, |(this, uri, last)| async move {
            let mut last = last?;
            loop {
                tokio::time::sleep(this.watch_interval).await;
                match this.render(&uri).await {
                    Ok(now) if now == last => continue,
                    Ok(now) => {
                        last = now;
                        let update = pb::ResourceUpdated { uri: uri.clone() };
                        return Some((Ok(update), (this, uri, Some(last))));
                    }
                    // Dropped or renamed: report it once and end the watch.
                    Err(Error::NotFound(_)) => {
                        let update = pb::ResourceUpdated { uri: uri.clone() };
                        return Some((Ok(update), (this, uri, None)));
                    }
                    // The database is briefly away: keep watching.
                    Err(error) => {
                        tracing::debug!(%uri, %error, "schema watch check failed");
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        Ok(Response::new(self.complete(request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_uris_round_trip_odd_names() {
        for (schema, table) in [("public", "orders"), ("My Schema", "a/b"), ("ünï", "100%")] {
            let uri = table_uri(schema, table);
            assert_eq!(
                parse_table_uri(&uri),
                Some((schema.to_owned(), table.to_owned())),
                "{uri}"
            );
        }
        assert_eq!(table_uri("My Schema", "a/b"), "db://My%20Schema/a%2Fb");
    }

    #[test]
    fn foreign_or_malformed_uris_are_not_tables() {
        for uri in [
            "file:///etc/passwd",
            "db://public",
            "db://public/",
            "db:///orders",
            "db://a/b/c",
            "db://a/%zz",
        ] {
            assert_eq!(parse_table_uri(uri), None, "{uri}");
        }
    }

    #[test]
    fn completion_puts_prefix_matches_first_and_caps_the_list() {
        let names = ["order_items", "orders", "customer_orders", "products"];
        let found = complete_from(names.map(String::from), "ORD");
        assert_eq!(found.values, ["order_items", "orders", "customer_orders"]);
        assert_eq!(found.total, Some(3));
        assert!(!found.has_more);

        let many = (0..150).map(|i| format!("t{i:03}"));
        let found = complete_from(many, "t");
        assert_eq!(found.values.len(), MAX_COMPLETIONS);
        assert_eq!(found.total, Some(150));
        assert!(found.has_more);
    }

    #[test]
    fn cursors_are_checked() {
        assert!(matches!(parse_cursor(""), Ok(None)));
        assert_eq!(
            parse_cursor("my%20schema/200").ok().flatten(),
            Some(("my schema".to_owned(), 200))
        );
        assert!(parse_cursor("nonsense").is_err());
        assert!(parse_cursor("public/x").is_err());
    }

    #[test]
    fn markdown_shows_columns_keys_and_the_quoted_name() {
        let table = db::TableDescription {
            schema: "main".into(),
            name: "orders".into(),
            kind: db::TableKind::Table as i32,
            comment: String::new(),
            columns: vec![db::TableColumn {
                name: "id".into(),
                r#type: "INTEGER".into(),
                nullable: false,
                default: None,
                comment: "a|b".into(),
                position: 1,
            }],
            primary_key: vec!["id".into()],
            foreign_keys: vec![db::ForeignKey {
                name: String::new(),
                columns: vec!["customer_id".into()],
                referenced_schema: "main".into(),
                referenced_table: "customers".into(),
                referenced_columns: vec!["id".into()],
                on_delete: "CASCADE".into(),
                on_update: String::new(),
            }],
            indexes: vec![],
            engine: db::Engine::Sqlite as i32,
        };
        let md = render_markdown(EngineKind::Sqlite, &table, Some(120));
        assert!(md.contains("In SQL: `\"main\".\"orders\"`"), "{md}");
        assert!(md.contains("Rows: 120 rows"), "{md}");
        assert!(
            md.contains("| 1 | `id` | INTEGER | no |  | a\\|b |"),
            "{md}"
        );
        assert!(
            md.contains("(`customer_id`) → `main.customers` (`id`), ON DELETE CASCADE"),
            "{md}"
        );
    }
}
