//! Prompts for the model (`switchboard.mcp.v1.Prompts`): how to answer a
//! question from the database with this connector's tools, safely.
//!
//! - `write_query` (`question`, optional `schema`): explore with
//!   `database_list_tables` and `database_describe_table`, write one
//!   parameterised read-only `database_query`, check it with `database_explain`.
//! - `explore_schema` (optional `schema`, optional `focus`): map a schema's
//!   tables and relationships before any question is asked.
//!
//! The text is tailored to the engine (placeholder and quoting syntax), the
//! operator's limits and the tables of the chosen schema, which the prompt lists
//! so the model starts from real names. Tool names are the router's
//! (`database_<method>`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use connector_kit::Toolset;
use switchboard_proto::database::v1 as db;
use switchboard_proto::mcp::v1 as pb;
use tonic::{Request, Response, Status};

use crate::config::AccessMode;
use crate::engine::{Database, EngineKind};
use crate::error::Error;
use crate::resources;

/// This connector's tools, as its prompt texts name them.
static TOOLS: std::sync::LazyLock<Toolset> = std::sync::LazyLock::new(|| {
    Toolset::new(
        "database",
        switchboard_proto::database::v1::database_server::SERVICE_NAME,
    )
});

/// Name of the question-answering prompt.
pub const WRITE_QUERY: &str = "write_query";
/// Name of the schema-mapping prompt.
pub const EXPLORE_SCHEMA: &str = "explore_schema";
/// Most tables a prompt lists by name.
const MAX_LISTED_TABLES: usize = 60;

/// Serves the connector's prompts.
#[derive(Debug, Clone)]
pub struct DatabasePrompts {
    db: Arc<Database>,
}

impl DatabasePrompts {
    /// Prompts about `db`.
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }
}

fn argument(name: &str, title: &str, description: &str, required: bool) -> pb::PromptArgument {
    pb::PromptArgument {
        name: name.to_owned(),
        title: title.to_owned(),
        description: description.to_owned(),
        required,
    }
}

fn schema_argument(kind: EngineKind) -> pb::PromptArgument {
    argument(
        "schema",
        "Schema",
        &format!(
            "The {} to work in; default: the connection's default one. Completes.",
            match kind {
                EngineKind::Postgres => "schema",
                EngineKind::MySql => "database (MySQL's word for schema)",
                EngineKind::Sqlite => "attached database (usually `main`)",
            }
        ),
        false,
    )
}

/// What the engine calls a schema.
fn schema_word(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Postgres => "schema",
        EngineKind::MySql => "database",
        EngineKind::Sqlite => "attached database",
    }
}

/// The prompts, as listed.
fn catalog(kind: EngineKind) -> Vec<pb::Prompt> {
    vec![
        pb::Prompt {
            name: WRITE_QUERY.to_owned(),
            title: "Answer a question with a safe SQL query".to_owned(),
            description: format!(
                "Guides the model to answer a question from the {} database: find and describe the relevant tables, write one parameterised read-only query, check its plan, run it and explain the answer with the SQL used.",
                kind.dialect_name()
            ),
            arguments: vec![
                argument(
                    "question",
                    "Question",
                    "What you want to know, in words, e.g. \"Which 5 customers spent the most last month?\". Required.",
                    true,
                ),
                schema_argument(kind),
            ],
        },
        pb::Prompt {
            name: EXPLORE_SCHEMA.to_owned(),
            title: "Map a schema's tables and relationships".to_owned(),
            description: format!(
                "Guides the model to explore a schema of the {} database and summarise what each table holds, how tables join, and which columns are good filters, before any query is written.",
                kind.dialect_name()
            ),
            arguments: vec![
                schema_argument(kind),
                argument(
                    "focus",
                    "Focus",
                    "Optional topic or table names to concentrate on, e.g. \"orders and payments\"; default: the whole schema.",
                    false,
                ),
            ],
        },
    ]
}

/// Engine-specific SQL advice.
fn dialect_notes(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Postgres => {
            "PostgreSQL: placeholders are $1, $2, … (cast them when the column is not text or a number: `$1::date`, `$1::numeric`, `$1::uuid`); quote identifiers with \"double quotes\" only when they need it; use ILIKE for case-insensitive matching and date_trunc / intervals (`now() - interval '30 days'`) for periods."
        }
        EngineKind::MySql => {
            "MySQL/MariaDB: placeholders are ?, one per value, in order; quote identifiers with `backticks`; string comparison usually ignores case (collation); use DATE_SUB(NOW(), INTERVAL 30 DAY) for periods."
        }
        EngineKind::Sqlite => {
            "SQLite: placeholders are ? (or ?1, ?2 …); quote identifiers with \"double quotes\"; types are loose (dates are usually ISO 8601 text: compare with date('now', '-30 days')); `analyze: true` of database_explain is not available."
        }
    }
}

fn required_argument<'a>(
    arguments: &'a HashMap<String, String>,
    name: &str,
    prompt: &str,
) -> Result<&'a str, Error> {
    arguments
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the argument `{name}` of {prompt} is required and must not be empty"
            ))
        })
}

fn optional_argument<'a>(arguments: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    arguments
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

fn check_known(arguments: &HashMap<String, String>, prompt: &pb::Prompt) -> Result<(), Error> {
    let mut unknown: Vec<&str> = arguments
        .keys()
        .map(String::as_str)
        .filter(|k| !prompt.arguments.iter().any(|a| a.name == *k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    let known: Vec<&str> = prompt.arguments.iter().map(|a| a.name.as_str()).collect();
    Err(Error::InvalidArgument(format!(
        "the prompt {} has no argument {}; its arguments are {}",
        prompt.name,
        unknown.join(", "),
        known.join(", ")
    )))
}

/// The tables of one schema as a short Markdown list.
fn table_list(kind: EngineKind, schema: &str, tables: &[db::Table]) -> String {
    let mut out = String::new();
    if tables.is_empty() {
        let _ = writeln!(
            out,
            "The {} `{schema}` has no tables or views visible to this connection.",
            schema_word(kind)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "Tables and views in `{schema}` ({} in all{}):",
        tables.len(),
        if tables.len() > MAX_LISTED_TABLES {
            format!(
                ", the first {MAX_LISTED_TABLES} shown; call database_list_tables with `name_contains` for the rest"
            )
        } else {
            String::new()
        }
    );
    for table in tables.iter().take(MAX_LISTED_TABLES) {
        let _ = write!(out, "- `{}`", table.name);
        let mut facts = Vec::new();
        match table.kind() {
            db::TableKind::Table | db::TableKind::Unspecified => {}
            db::TableKind::View => facts.push("view".to_owned()),
            db::TableKind::MaterializedView => facts.push("materialized view".to_owned()),
            db::TableKind::ForeignTable => facts.push("foreign table".to_owned()),
            db::TableKind::PartitionedTable => facts.push("partitioned table".to_owned()),
        }
        if let Some(rows) = table.row_estimate {
            facts.push(format!("~{rows} rows"));
        }
        if !facts.is_empty() {
            let _ = write!(out, " ({})", facts.join(", "));
        }
        let comment = table.comment.trim();
        if !comment.is_empty() {
            let _ = write!(out, ": {}", comment.replace('\n', " "));
        }
        out.push('\n');
    }
    out
}

fn user_text(text: String) -> pb::PromptMessage {
    pb::PromptMessage {
        role: pb::Role::User as i32,
        content: Some(pb::Content {
            kind: Some(pb::content::Kind::Text(pb::TextContent { text })),
            annotations: None,
        }),
    }
}

impl DatabasePrompts {
    /// The schema to work in (the one named, which must exist, or the
    /// default) and its tables.
    async fn schema_and_tables(
        &self,
        schema: Option<&str>,
    ) -> Result<(String, Vec<db::Table>), Error> {
        match self.db.list_tables(schema, None).await {
            Err(Error::NotFound(message)) => Err(Error::InvalidArgument(format!(
                "argument `schema`: {message} (database_list_schemas lists them)"
            ))),
            other => other,
        }
    }

    fn limits(&self) -> String {
        let settings = self.db.settings();
        let mut text = format!(
            "Limits: database_query returns {} rows unless you pass `max_rows` (at most {}); each statement may run {} s before it is cancelled.",
            crate::service::DEFAULT_MAX_ROWS.min(settings.max_rows),
            settings.max_rows,
            settings.statement_timeout.as_secs_f64()
        );
        if !settings.explain_analyze || self.db.kind() == EngineKind::Sqlite {
            text.push_str(" database_explain cannot `analyze` here: use the plain plan.");
        }
        if settings.access_mode == AccessMode::ReadWrite {
            text.push_str(" database_execute is enabled on this connection, but this task only reads: do not call it.");
        }
        text
    }

    async fn write_query(
        &self,
        arguments: &HashMap<String, String>,
    ) -> Result<pb::GetPromptResponse, Error> {
        let question = required_argument(arguments, "question", WRITE_QUERY)?;
        let schema = optional_argument(arguments, "schema");
        let (schema, tables) = self.schema_and_tables(schema).await?;
        let kind = self.db.kind();
        let q = |name: &str| resources::quote_identifier(kind, name);
        let text = format!(
            "Answer this question from the {engine} database, reading data only:\n\n\
             > {question}\n\n\
             Work in the {schema_word} `{schema}` (pass `\"schema\": \"{schema}\"` to the tools; in SQL qualify tables as {qualified}).\n\n\
             {tables}\n\
             Steps:\n\
             1. Pick the tables. Use the names and comments above; if none fits, call `database_list_tables` (with `name_contains` to search) or `database_list_schemas` to look elsewhere. Do not invent table names.\n\
             2. Call `database_describe_table` for every table you will use. Use only the columns it shows, with their real types; join along its foreign keys (not on similar-looking names); note nullable columns and the indexes.\n\
             3. When value formats are unclear (status codes, date storage, units, currencies), look at a few rows first: `database_query` with only the columns you need and `LIMIT 5`; never `SELECT *` on a wide or large table.\n\
             4. Write ONE read-only statement (SELECT, or WITH … SELECT). Every value that comes from the question (names, dates, ids, thresholds) goes into `parameters`, never into the SQL text. Aggregate in SQL (COUNT, SUM, GROUP BY) instead of fetching rows to count them yourself; add ORDER BY to anything ranked and a LIMIT to anything long.\n\
             5. For a table with many rows (over ~100000) or several joins, call `database_explain` with the same `sql` and `parameters` first. A full/sequential scan of a big table, a missing join condition or a huge row estimate means: add a selective filter on an indexed column, or narrow the period, before running it.\n\
             6. Run it with `database_query`. If the result says `truncated: true`, the answer is incomplete: aggregate further or narrow the filter rather than reporting partial numbers. If it is refused or rejected, read the message and fix the statement; do not try to get around the read-only check.\n\
             7. Answer in words first, then show the SQL and parameters you ran, and state each assumption you made (how you read periods such as \"last month\", time zones, how NULLs and duplicates were treated). If the data cannot answer the question, say so and say what is missing.\n\n\
             {dialect}\n\n\
             {limits}",
            engine = kind.dialect_name(),
            schema_word = schema_word(kind),
            qualified = format_args!("{}.{}", q(&schema), q("table")),
            tables = table_list(kind, &schema, &tables),
            dialect = dialect_notes(kind),
            limits = self.limits(),
        );
        Ok(pb::GetPromptResponse {
            description: format!("Answer \"{question}\" from `{schema}` with a read-only query"),
            messages: vec![user_text(text)],
        })
    }

    async fn explore_schema(
        &self,
        arguments: &HashMap<String, String>,
    ) -> Result<pb::GetPromptResponse, Error> {
        let schema = optional_argument(arguments, "schema");
        let focus = optional_argument(arguments, "focus");
        let (schema, tables) = self.schema_and_tables(schema).await?;
        let kind = self.db.kind();
        let focus_line = match focus {
            Some(focus) => format!(
                "Concentrate on what concerns: {focus}. Describe the tables that matter for it and the tables they join to; mention the rest only by name.\n\n"
            ),
            None => String::new(),
        };
        let text = format!(
            "Map the {schema_word} `{schema}` of the {engine} database so that questions about it can be answered with correct SQL later. Read only; write no data.\n\n\
             {focus_line}\
             {tables}\n\
             Steps:\n\
             1. Start from the list above (or call `database_list_tables` with `\"schema\": \"{schema}\"`). Row counts tell you which tables are facts (many rows) and which are lookups (few).\n\
             2. Call `database_describe_table` for each relevant table (up to about 15; ask before going further). Record its primary key, its foreign keys (these are the joins), its indexed columns (good filters) and columns whose meaning is unclear.\n\
             3. Where a column's meaning or format is unclear (codes, flags, units, how dates are stored), sample it with `database_query`, e.g. `SELECT DISTINCT col FROM … LIMIT 20` or `SELECT min(col), max(col) FROM …`, with `parameters` for any value you filter on.\n\
             4. Report: one line per table (what one row is, roughly how many rows), the join paths between them as `a.col → b.col`, the columns useful for filtering and sorting, and anything surprising (missing keys, tables without primary key, denormalised copies, soft-delete flags, time zones).\n\n\
             {dialect}\n\n\
             {limits}",
            schema_word = schema_word(kind),
            engine = kind.dialect_name(),
            tables = table_list(kind, &schema, &tables),
            dialect = dialect_notes(kind),
            limits = self.limits(),
        );
        Ok(pb::GetPromptResponse {
            description: match focus {
                Some(focus) => format!("Map `{schema}`, focusing on {focus}"),
                None => format!("Map the tables and relationships of `{schema}`"),
            },
            messages: vec![user_text(text)],
        })
    }

    async fn get(&self, request: pb::GetPromptRequest) -> Result<pb::GetPromptResponse, Error> {
        let prompts = catalog(self.db.kind());
        let prompt = prompts
            .iter()
            .find(|p| p.name == request.name)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no prompt {:?}; this connector has {WRITE_QUERY} and {EXPLORE_SCHEMA}",
                    request.name
                ))
            })?;
        check_known(&request.arguments, prompt)?;
        match prompt.name.as_str() {
            WRITE_QUERY => self.write_query(&request.arguments).await,
            _ => self.explore_schema(&request.arguments).await,
        }
    }

    async fn complete(&self, request: pb::CompleteRequest) -> Result<pb::CompleteResponse, Error> {
        let name = match &request.r#ref {
            Some(pb::complete_request::Ref::Prompt(name)) => name,
            _ => {
                return Err(Error::InvalidArgument(
                    "`ref` must be a prompt name".to_owned(),
                ));
            }
        };
        let prompts = catalog(self.db.kind());
        let prompt = prompts.iter().find(|p| &p.name == name).ok_or_else(|| {
            Error::NotFound(format!(
                "no prompt {name:?}; this connector has {WRITE_QUERY} and {EXPLORE_SCHEMA}"
            ))
        })?;
        match request.argument.as_str() {
            "schema" => resources::complete_schema(&self.db, &request.value).await,
            // Free text: nothing sensible to offer.
            other if prompt.arguments.iter().any(|a| a.name == other) => {
                Ok(resources::complete_from(Vec::new(), ""))
            }
            other => Err(Error::InvalidArgument(format!(
                "the prompt {name} has no argument {other:?}"
            ))),
        }
    }
}

#[tonic::async_trait]
impl pb::prompts_server::Prompts for DatabasePrompts {
    async fn list_prompts(
        &self,
        _request: Request<pb::ListPromptsRequest>,
    ) -> Result<Response<pb::ListPromptsResponse>, Status> {
        Ok(Response::new(pb::ListPromptsResponse {
            prompts: catalog(self.db.kind()),
            next_cursor: String::new(),
        }))
    }

    async fn get_prompt(
        &self,
        request: Request<pb::GetPromptRequest>,
    ) -> Result<Response<pb::GetPromptResponse>, Status> {
        let names = TOOLS.for_request(request.metadata());
        names.prompt_reply(self.get(request.into_inner()).await)
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
    fn every_prompt_argument_is_described_and_only_question_is_required() {
        for kind in [EngineKind::Postgres, EngineKind::MySql, EngineKind::Sqlite] {
            for prompt in catalog(kind) {
                assert!(!prompt.description.is_empty(), "{}", prompt.name);
                for arg in &prompt.arguments {
                    assert!(!arg.description.is_empty(), "{}.{}", prompt.name, arg.name);
                    assert_eq!(arg.required, arg.name == "question", "{}", arg.name);
                }
            }
        }
    }

    #[test]
    fn unknown_arguments_are_named() {
        let prompt = &catalog(EngineKind::Sqlite)[0];
        let args = HashMap::from([("qestion".to_owned(), "x".to_owned())]);
        let error = check_known(&args, prompt)
            .expect_err("a misspelt argument is refused")
            .to_string();
        assert!(error.contains("qestion"), "{error}");
        assert!(error.contains("question, schema"), "{error}");
    }
}
