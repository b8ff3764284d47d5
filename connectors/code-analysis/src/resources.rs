//! The files under the code root as MCP resources (the generic service
//! `switchboard.mcp.v1.Resources`): the template `file:///{path}` with the path
//! relative to `CODE_ROOT`, completion of path prefixes, and a short list of the
//! top-level files (README first).
//!
//! A read follows the same rules as `AnalyzePath`: the path is resolved inside the
//! root by [`CodeRoot::resolve`] (no `..` or symbolic link out of it), must be
//! visible to a .gitignore-respecting walk ([`CodeRoot::is_visible`]), and is read
//! by [`Analyzer::read_text`] (at most `MAX_FILE_BYTES`, binary and non-UTF-8
//! files refused). Through the router the URIs read `code_analysis+file:///...`.

use std::io::Read;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use switchboard_proto::mcp::v1 as pb;
use switchboard_proto::mcp::v1::resources_server::Resources;
use tonic::{Request, Response, Status};

use crate::analyzer::Analyzer;
use crate::code_root::{CodeRoot, DirEntry};
use crate::error::Error;

/// The URI template of every file under the root.
pub const FILE_TEMPLATE: &str = "file:///{path}";
/// The template's only parameter.
pub const PATH_PARAMETER: &str = "path";
/// What every file URI starts with.
const URI_PREFIX: &str = "file:///";
/// How long the router may serve a read from its cache: files change while an
/// agent works on them, so briefly.
pub const TTL_SECONDS: u32 = 10;
/// Most top-level files listed by ListResources.
const MAX_LISTED: usize = 50;
/// Most completion values returned (the router passes on at most 100).
pub const MAX_COMPLETIONS: usize = 100;
/// Bytes looked at to tell a binary file (a NUL byte among them), as analyses do.
const SNIFF_BYTES: u64 = 8192;

/// The Resources service over the code root.
#[derive(Debug, Clone)]
pub struct FileResources {
    analyzer: Arc<Analyzer>,
}

/// The visible file a `file:///` URI names, when the URI names it by its own
/// path: the percent-decoded path must be the file's path from the root as
/// resolved, without `.` or `..` segments, a leading, doubled or trailing `/`,
/// surrounding spaces or a symbolic link on the way. A policy matches resource
/// URIs as given (`code_analysis+file:///public/*`), so a URI that reaches
/// another file than the one it spells (`file:///public/../private/key.pem`)
/// would read what the policy never allowed.
pub fn file_of_uri(root: &CodeRoot, uri: &str) -> Result<(std::path::PathBuf, String), Error> {
    let requested = path_from_uri(uri)?;
    let (canonical, relative) = visible_file(root, &requested)?;
    if requested != relative {
        return Err(Error::InvalidArgument(format!(
            "{uri} does not name a file by its own path: name it by its path from the code \
             root, without `.` or `..` segments, a leading, doubled or trailing `/`, or a \
             symbolic link on the way (resources are listed and completed by such paths)"
        )));
    }
    Ok((canonical, relative))
}

impl FileResources {
    pub fn new(analyzer: Arc<Analyzer>) -> Self {
        Self { analyzer }
    }
}

/// The URI of a root-relative path, percent-encoding what a URI path cannot hold.
pub fn uri_for(relative: &str) -> String {
    let mut uri = String::from(URI_PREFIX);
    for byte in relative.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// The root-relative path a `file:///` URI names (percent-decoded).
pub fn path_from_uri(uri: &str) -> Result<String, Error> {
    let unknown = || Error::UnknownResource(uri.to_owned());
    let encoded = uri.strip_prefix(URI_PREFIX).ok_or_else(unknown)?;
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "{uri} has a malformed percent-escape; encode `%` as %25"
                    ))
                })?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| Error::InvalidArgument(format!("{uri} does not decode to a UTF-8 path")))
}

/// The MIME type of a file, by its extension; text/plain otherwise.
pub fn mime_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "rs" => "text/x-rust",
        "py" | "pyi" => "text/x-python",
        "js" | "mjs" | "cjs" | "jsx" => "text/javascript",
        "ts" | "mts" | "cts" => "text/x-typescript",
        "tsx" => "text/tsx",
        "go" => "text/x-go",
        "java" => "text/x-java",
        "c" | "h" => "text/x-c",
        "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "h++" => "text/x-c++",
        "md" | "markdown" => "text/markdown",
        "json" => "application/json",
        "toml" => "application/toml",
        "yaml" | "yml" => "application/yaml",
        "xml" => "application/xml",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "sql" => "application/sql",
        "sh" | "bash" => "text/x-shellscript",
        "proto" => "text/x-protobuf",
        _ => "text/plain",
    }
}

fn is_readme(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("readme")
}

/// Whether the first bytes of a file contain a NUL (the analyses' binary test).
fn looks_binary(path: &Path) -> bool {
    let mut head = Vec::new();
    match crate::analyzer::open_regular(path)
        .and_then(|f| f.take(SNIFF_BYTES).read_to_end(&mut head))
    {
        Ok(_) => head.contains(&0),
        Err(_) => true,
    }
}

/// Completions of a path typed so far: the visible entries of the directory it
/// names whose names start with the last part, directories with a trailing `/`,
/// sorted, at most [`MAX_COMPLETIONS`]. Nothing for a directory outside the root,
/// hidden, ignored or missing.
pub fn complete_path(
    root: &CodeRoot,
    typed: &str,
    keep: impl Fn(&DirEntry) -> bool,
) -> pb::CompleteResponse {
    let typed = typed.trim_start_matches('/');
    let (dir_part, partial) = match typed.rfind('/') {
        Some(i) => typed.split_at(i + 1),
        None => ("", typed),
    };
    let mut values: Vec<String> = match root.resolve(dir_part) {
        Ok((dir, _)) if dir.is_dir() && root.is_visible(&dir) => root
            .list_dir(&dir)
            .into_iter()
            .filter(|e| e.name.starts_with(partial) && keep(e))
            .map(|e| format!("{dir_part}{}{}", e.name, if e.is_dir { "/" } else { "" }))
            .collect(),
        _ => Vec::new(),
    };
    let total = values.len();
    values.truncate(MAX_COMPLETIONS);
    pb::CompleteResponse {
        values,
        total: Some(i32::try_from(total).unwrap_or(i32::MAX)),
        has_more: total > MAX_COMPLETIONS,
    }
}

/// Resolves a root-relative path to a visible file: canonical path and
/// root-relative form. Directories are refused with what to do instead.
pub fn visible_file(
    root: &CodeRoot,
    requested: &str,
) -> Result<(std::path::PathBuf, String), Error> {
    let (canonical, relative) = root.resolve(requested)?;
    if !root.is_visible(&canonical) {
        return Err(Error::Ignored(relative));
    }
    if canonical.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{relative} is a directory, not a file; complete the path (a completion of \
             {FILE_TEMPLATE}) to see the files in it"
        )));
    }
    Ok((canonical, relative))
}

impl FileResources {
    fn list(&self) -> Vec<pb::Resource> {
        let root = self.analyzer.root();
        let limit = self.analyzer.config().max_file_bytes;
        let mut files: Vec<DirEntry> = root
            .list_dir(root.path())
            .into_iter()
            .filter(|e| !e.is_dir)
            .collect();
        files.sort_by_key(|e| (!is_readme(&e.name), e.name.clone()));
        files
            .into_iter()
            .filter_map(|entry| {
                let size = std::fs::metadata(&entry.path).ok()?.len();
                if size > limit || looks_binary(&entry.path) {
                    return None;
                }
                let description = if is_readme(&entry.name) {
                    "The project's README at the top of the code root: start here to learn \
                     what the code does and how it is laid out."
                        .to_owned()
                } else {
                    format!(
                        "Top-level file {} of the code root. Any file under the root can be \
                         read as file:///{{path}} (complete the path to browse).",
                        entry.name
                    )
                };
                Some(pb::Resource {
                    uri: uri_for(&entry.name),
                    name: entry.name.clone(),
                    title: entry.name.clone(),
                    description,
                    mime_type: mime_type(&entry.path).to_owned(),
                    size: i64::try_from(size).ok(),
                })
            })
            .take(MAX_LISTED)
            .collect()
    }

    fn read(&self, uri: &str) -> Result<pb::ReadResourceResponse, Error> {
        let (canonical, relative) = file_of_uri(self.analyzer.root(), uri)?;
        let text = self.analyzer.read_text(&canonical, &relative)?;
        Ok(pb::ReadResourceResponse {
            contents: vec![pb::ResourceContents {
                uri: uri.to_owned(),
                mime_type: mime_type(&canonical).to_owned(),
                body: Some(pb::resource_contents::Body::Text(text)),
            }],
            ttl_seconds: TTL_SECONDS,
        })
    }
}

/// Runs filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::from(Error::Internal(format!("file worker failed: {e}"))))?
        .map_err(Status::from)
}

fn first_page(cursor: &str) -> Result<(), Status> {
    if cursor.is_empty() {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "unknown cursor {cursor:?}: this connector answers in one page; list again without a cursor"
        )))
    }
}

#[tonic::async_trait]
impl Resources for FileResources {
    async fn list_resources(
        &self,
        request: Request<pb::ListResourcesRequest>,
    ) -> Result<Response<pb::ListResourcesResponse>, Status> {
        first_page(&request.into_inner().cursor)?;
        let this = self.clone();
        let resources = blocking(move || Ok(this.list())).await?;
        Ok(Response::new(pb::ListResourcesResponse {
            resources,
            next_cursor: String::new(),
        }))
    }

    async fn list_resource_templates(
        &self,
        request: Request<pb::ListResourceTemplatesRequest>,
    ) -> Result<Response<pb::ListResourceTemplatesResponse>, Status> {
        first_page(&request.into_inner().cursor)?;
        Ok(Response::new(pb::ListResourceTemplatesResponse {
            templates: vec![pb::ResourceTemplate {
                uri_template: FILE_TEMPLATE.to_owned(),
                name: "file".to_owned(),
                title: "File under the code root".to_owned(),
                description: "The text of one file under the code-analysis connector's code \
                              root; `path` is relative to the root (e.g. src/main.rs; complete \
                              it to browse directories). Hidden and .gitignore'd files, paths \
                              leading out of the root, binary files and files over the size \
                              limit are refused."
                    .to_owned(),
                mime_type: String::new(),
            }],
            next_cursor: String::new(),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::ReadResourceRequest>,
    ) -> Result<Response<pb::ReadResourceResponse>, Status> {
        let uri = request.into_inner().uri;
        let this = self.clone();
        let response = blocking(move || this.read(&uri)).await?;
        Ok(Response::new(response))
    }

    type WatchResourceStream =
        Pin<Box<dyn Stream<Item = Result<pb::ResourceUpdated, Status>> + Send>>;

    async fn watch_resource(
        &self,
        request: Request<pb::WatchResourceRequest>,
    ) -> Result<Response<Self::WatchResourceStream>, Status> {
        let uri = request.into_inner().uri;
        let root = self.analyzer.root().clone();
        let check = uri.clone();
        blocking(move || file_of_uri(&root, &check).map(|_| ())).await?;
        Err(Status::unimplemented(format!(
            "{uri} cannot be watched: this connector does not watch files; read it again \
             instead (reads are cached for {TTL_SECONDS} s)"
        )))
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::CompleteResponse>, Status> {
        let request = request.into_inner();
        match request.r#ref {
            Some(pb::complete_request::Ref::ResourceTemplate(template))
                if template == FILE_TEMPLATE && request.argument == PATH_PARAMETER =>
            {
                let root = self.analyzer.root().clone();
                let response =
                    blocking(move || Ok(complete_path(&root, &request.value, |_| true))).await?;
                Ok(Response::new(response))
            }
            Some(pb::complete_request::Ref::ResourceTemplate(template)) => {
                Err(Status::not_found(format!(
                    "no parameter {:?} of resource template {template}; this connector's only \
                     template is {FILE_TEMPLATE} with the parameter {PATH_PARAMETER}",
                    request.argument
                )))
            }
            _ => Err(Status::not_found(format!(
                "this service completes resource template parameters only ({FILE_TEMPLATE})"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_paths_with_reserved_characters() {
        for path in [
            "src/main.rs",
            "docs/a b.md",
            "x/100%.txt",
            "ü/ñ.py",
            "a#b?.c",
        ] {
            let uri = uri_for(path);
            assert!(!uri[URI_PREFIX.len()..].contains([' ', '#', '?']), "{uri}");
            assert_eq!(path_from_uri(&uri).expect("decodes"), path);
        }
        assert_eq!(uri_for("src/main.rs"), "file:///src/main.rs");
    }

    #[test]
    fn other_schemes_and_bad_escapes_are_refused() {
        assert!(matches!(
            path_from_uri("db://public/users"),
            Err(Error::UnknownResource(_))
        ));
        assert!(matches!(
            path_from_uri("file:///a%2"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            path_from_uri("file:///%FF"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn mime_types_follow_the_extension() {
        assert_eq!(mime_type(Path::new("a/b.rs")), "text/x-rust");
        assert_eq!(mime_type(Path::new("README.md")), "text/markdown");
        assert_eq!(mime_type(Path::new("Cargo.toml")), "application/toml");
        assert_eq!(mime_type(Path::new("x.HPP")), "text/x-c++");
        assert_eq!(mime_type(Path::new("Makefile")), "text/plain");
    }
}
