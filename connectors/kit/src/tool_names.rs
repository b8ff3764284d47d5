//! Tool names as the agent sees them.
//!
//! The router names a connector's tools `<prefix>_<method in snake case>`, where the
//! prefix comes from the router's configuration: by default the connector's name, but
//! an operator who runs the database connector twice calls one `analytics` and the
//! other `app`, and may set an empty prefix. The router sends the prefix it uses on
//! every call in the [`METADATA_KEY`] request metadata.
//!
//! Texts meant for the agent (prompts, hints in error messages) are written with the
//! conventional names (`database_query`) and passed through [`ToolNames::apply`], so
//! they name the tools the agent can actually call (`analytics_query`). Only the
//! service's own method names are renamed, so a table called `database_migrations`
//! in the same text stays as it is. Without the metadata (a direct gRPC client) the
//! texts are left as written.

use std::borrow::Cow;
use std::collections::HashSet;

use prost::Message as _;
use switchboard_proto::mcp::v1 as pb;
use tonic::metadata::MetadataMap;

/// Request metadata carrying the router's tool prefix for this connector.
pub const METADATA_KEY: &str = "switchboard-tool-prefix";

/// A connector service's tools under their conventional names; build it once.
#[derive(Debug, Clone)]
pub struct Toolset {
    /// The prefix the connector's texts are written with, e.g. `database`.
    conventional: &'static str,
    /// The service's methods in snake case (`list_tables`).
    methods: HashSet<String>,
}

impl Toolset {
    /// The methods of `service` (a full name, e.g. `switchboard.database.v1.Database`)
    /// in Switchboard's descriptors, written in texts as `<conventional>_<method>`.
    pub fn new(conventional: &'static str, service: &str) -> Self {
        Self::from_descriptor_set(
            conventional,
            service,
            switchboard_proto::FILE_DESCRIPTOR_SET,
        )
    }

    /// As [`new`](Self::new), from an encoded `FileDescriptorSet`. A service that is
    /// not in it has no tools to rename (and is logged).
    pub fn from_descriptor_set(
        conventional: &'static str,
        service: &str,
        descriptor_set: &[u8],
    ) -> Self {
        let (package, name) = service.rsplit_once('.').unwrap_or(("", service));
        let methods: HashSet<String> = prost_types::FileDescriptorSet::decode(descriptor_set)
            .map(|set| set.file)
            .unwrap_or_default()
            .iter()
            .filter(|file| file.package() == package)
            .flat_map(|file| &file.service)
            .filter(|s| s.name() == name)
            .flat_map(|s| &s.method)
            .map(|m| switchboard_proto::snake_case(m.name()))
            .collect();
        if methods.is_empty() {
            tracing::warn!(
                service,
                "service not found in the descriptors: tool names in texts are not adapted to the router's prefix"
            );
        }
        Self {
            conventional,
            methods,
        }
    }

    /// The naming for one request: the router's prefix from its metadata. A value
    /// that is not a plausible tool prefix (letters, digits, `_` and `-`, at most
    /// 64) is ignored.
    pub fn for_request(&self, metadata: &MetadataMap) -> ToolNames<'_> {
        let actual = metadata
            .get(METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|prefix| *prefix != self.conventional && is_prefix(prefix))
            .map(str::to_owned);
        ToolNames { set: self, actual }
    }
}

/// How a connector's tools are named for the current request.
#[derive(Debug, Clone)]
pub struct ToolNames<'a> {
    set: &'a Toolset,
    /// The router's prefix, when it differs from the conventional one.
    actual: Option<String>,
}

impl ToolNames<'_> {
    /// The name the agent sees for the method whose snake-case name is `method`.
    pub fn name(&self, method: &str) -> String {
        match self.actual.as_deref() {
            None => format!("{}_{method}", self.set.conventional),
            Some("") => method.to_owned(),
            Some(prefix) => format!("{prefix}_{method}"),
        }
    }

    /// `text` with every conventional tool name of the service (as a whole word)
    /// replaced by the name the agent sees.
    pub fn apply<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.actual.is_none() {
            return Cow::Borrowed(text);
        }
        let needle = format!("{}_", self.set.conventional);
        let mut out = String::new();
        // Everything of `text` before `done` is in `out`.
        let mut done = 0;
        let mut from = 0;
        while let Some(found) = text[from..].find(&needle) {
            let start = from + found;
            let method_start = start + needle.len();
            let method_len = text[method_start..]
                .find(|c: char| !is_word_char(c))
                .unwrap_or(text.len() - method_start);
            let method = &text[method_start..method_start + method_len];
            let whole_word = !text[..start].chars().next_back().is_some_and(is_word_char);
            if whole_word && self.set.methods.contains(method) {
                out.push_str(&text[done..start]);
                out.push_str(&self.name(method));
                done = method_start + method_len;
            }
            from = method_start + method_len;
        }
        if done == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[done..]);
        Cow::Owned(out)
    }

    /// [`apply`](Self::apply) in place.
    pub fn apply_to(&self, text: &mut String) {
        if let Cow::Owned(renamed) = self.apply(text) {
            *text = renamed;
        }
    }

    /// The reply to `Prompts/GetPrompt`: the rendered prompt, or why it was refused,
    /// with the tools named as the agent sees them.
    pub fn prompt_reply<E: Into<tonic::Status>>(
        &self,
        rendered: Result<pb::GetPromptResponse, E>,
    ) -> Result<tonic::Response<pb::GetPromptResponse>, tonic::Status> {
        let mut prompt = rendered.map_err(|error| self.apply_to_status(error.into()))?;
        self.apply_to_prompt(&mut prompt);
        Ok(tonic::Response::new(prompt))
    }

    /// Renames the tools a rendered prompt names, in its description and its text
    /// blocks; embedded resources (a file under review, say) stay exactly as they are.
    fn apply_to_prompt(&self, prompt: &mut pb::GetPromptResponse) {
        if self.actual.is_none() {
            return;
        }
        self.apply_to(&mut prompt.description);
        for message in &mut prompt.messages {
            if let Some(pb::Content {
                kind: Some(pb::content::Kind::Text(block)),
                ..
            }) = message.content.as_mut()
            {
                self.apply_to(&mut block.text);
            }
        }
    }

    /// Renames the tools a status message names, keeping its code and details.
    pub fn apply_to_status(&self, status: tonic::Status) -> tonic::Status {
        match self.apply(status.message()) {
            Cow::Borrowed(_) => status,
            Cow::Owned(message) => tonic::Status::with_details_and_metadata(
                status.code(),
                message,
                status.details().to_vec().into(),
                status.metadata().clone(),
            ),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_prefix(prefix: &str) -> bool {
    prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use switchboard_proto::database::v1::database_server::SERVICE_NAME;
    use tonic::metadata::MetadataValue;

    use super::*;

    fn tools() -> Toolset {
        Toolset::new("database", SERVICE_NAME)
    }

    fn metadata(prefix: Option<&'static str>) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        if let Some(prefix) = prefix {
            metadata.insert(METADATA_KEY, MetadataValue::from_static(prefix));
        }
        metadata
    }

    #[test]
    fn the_tools_are_read_from_the_descriptors() {
        let tools = tools();
        for method in [
            "query",
            "execute",
            "explain",
            "list_tables",
            "describe_table",
        ] {
            assert!(tools.methods.contains(method), "{method}: {tools:?}");
        }
        assert!(Toolset::new("x", "no.such.Service").methods.is_empty());
    }

    #[test]
    fn texts_name_the_tools_under_the_routers_prefix() {
        let tools = tools();
        let text = "Call `database_list_tables`, then database_query (not database_execute).";
        let analytics = metadata(Some("analytics"));
        let names = tools.for_request(&analytics);
        assert_eq!(
            names.apply(text),
            "Call `analytics_list_tables`, then analytics_query (not analytics_execute)."
        );
        assert_eq!(names.name("query"), "analytics_query");
        let unprefixed = metadata(Some(""));
        let names = tools.for_request(&unprefixed);
        assert_eq!(
            names.apply(text),
            "Call `list_tables`, then query (not execute)."
        );
        assert_eq!(names.name("query"), "query");
    }

    #[test]
    fn texts_stay_as_written_without_a_different_prefix() {
        let tools = tools();
        let text = "Call database_query.";
        for prefix in [None, Some("database"), Some("bad prefix!")] {
            let metadata = metadata(prefix);
            let names = tools.for_request(&metadata);
            assert!(matches!(names.apply(text), Cow::Borrowed(_)));
            assert_eq!(names.name("query"), "database_query");
        }
    }

    #[test]
    fn only_the_services_own_tools_are_renamed() {
        let tools = tools();
        let db = metadata(Some("db"));
        let names = tools.for_request(&db);
        assert_eq!(
            names.apply(
                "my_database_query, database_migrations, database_queryx, database_, \
                 database_query, database_database_query"
            ),
            "my_database_query, database_migrations, database_queryx, database_, \
             db_query, database_database_query"
        );
        let mut text = String::from("(database_explain)");
        names.apply_to(&mut text);
        assert_eq!(text, "(db_explain)");
    }

    #[test]
    fn prompts_are_renamed_in_text_but_not_in_embedded_resources() {
        let text = |t: &str| pb::PromptMessage {
            role: pb::Role::User.into(),
            content: Some(pb::Content {
                kind: Some(pb::content::Kind::Text(pb::TextContent { text: t.into() })),
                annotations: None,
            }),
        };
        let resource = pb::PromptMessage {
            role: pb::Role::User.into(),
            content: Some(pb::Content {
                kind: Some(pb::content::Kind::Resource(pb::ResourceContents {
                    uri: "file:///a.py".into(),
                    mime_type: "text/x-python".into(),
                    body: Some(pb::resource_contents::Body::Text("database_query()".into())),
                })),
                annotations: None,
            }),
        };
        let prompt = pb::GetPromptResponse {
            description: "Explore with database_list_tables".into(),
            messages: vec![text("Run database_query."), resource.clone()],
        };
        let tools = tools();
        let app = metadata(Some("app"));
        let names = tools.for_request(&app);
        let prompt = names
            .prompt_reply(Ok::<_, tonic::Status>(prompt))
            .expect("rendered")
            .into_inner();
        assert_eq!(prompt.description, "Explore with app_list_tables");
        assert_eq!(prompt.messages[0], text("Run app_query."));
        assert_eq!(prompt.messages[1], resource);
    }

    #[test]
    fn statuses_keep_their_code() {
        let tools = tools();
        let app = metadata(Some("app"));
        let status = tools
            .for_request(&app)
            .prompt_reply(Err(tonic::Status::not_found(
                "no table t; database_list_tables lists them",
            )))
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "no table t; app_list_tables lists them");
    }
}
