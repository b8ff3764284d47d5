//! The generic MCP services: files under the code root as resources (list,
//! template, read, refusals, completion) and the review_file prompt.

use std::path::Path;

use code_analysis_connector::Config;
use switchboard_proto::mcp::v1 as pb;
use switchboard_proto::mcp::v1::prompts_client::PromptsClient;
use switchboard_proto::mcp::v1::resources_client::ResourcesClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::support;

const APP_PY: &str =
    "import os\n\ndef run(cmd):\n    if cmd:\n        os.system(\"ls \" + cmd)\n    return cmd\n";
/// The size limit of the connector under test; `big.py` is over it.
const LIMIT: u64 = 4096;

fn write(root: &Path, path: &str, content: &[u8]) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "README.md", b"# Demo\n");
    write(root, "Cargo.toml", b"[package]\nname = \"demo\"\n");
    write(root, ".env", b"TOKEN=abc\n");
    write(root, ".gitignore", b"build/\nsecret.py\n");
    write(root, "logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    write(root, "big.py", "x = 1\n".repeat(1000).as_bytes());
    write(root, "src/app.py", APP_PY.as_bytes());
    write(root, "src/api.py", b"def api():\n    return 1\n");
    write(root, "src/notes.txt", b"plain notes\n");
    write(root, "src/secret.py", b"KEY = 1\n");
    write(root, "src/with space.py", b"y = 2\n");
    write(root, "build/gen.py", b"def generated():\n    pass\n");
    dir
}

struct Mcp {
    resources: ResourcesClient<Channel>,
    prompts: PromptsClient<Channel>,
    _connector: support::Connector,
}

async fn start(root: &Path) -> Mcp {
    let mut config = Config::with_root(root.canonicalize().expect("root exists"));
    config.max_file_bytes = LIMIT;
    let connector = support::start_with(config).await;
    Mcp {
        resources: ResourcesClient::new(connector.channel.clone()),
        prompts: PromptsClient::new(connector.channel.clone()),
        _connector: connector,
    }
}

async fn read(mcp: &mut Mcp, uri: &str) -> Result<pb::ReadResourceResponse, tonic::Status> {
    mcp.resources
        .read_resource(pb::ReadResourceRequest {
            uri: uri.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn text_of(contents: &pb::ResourceContents) -> &str {
    match &contents.body {
        Some(pb::resource_contents::Body::Text(text)) => text,
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn the_list_holds_the_readable_top_level_files_readme_first() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    let listed = mcp
        .resources
        .list_resources(pb::ListResourcesRequest::default())
        .await
        .expect("list")
        .into_inner();
    let uris: Vec<_> = listed.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        ["file:///README.md", "file:///Cargo.toml"],
        "no hidden, binary, too large or directory entries"
    );
    let readme = &listed.resources[0];
    assert_eq!(readme.mime_type, "text/markdown");
    assert_eq!(readme.size, Some(7));
    assert!(readme.description.contains("README"));
    assert_eq!(listed.resources[1].mime_type, "application/toml");
    assert!(listed.next_cursor.is_empty());

    let status = mcp
        .resources
        .list_resources(pb::ListResourcesRequest {
            cursor: "page-2".to_owned(),
        })
        .await
        .expect_err("one page only");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_template_names_the_path_parameter() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    let templates = mcp
        .resources
        .list_resource_templates(pb::ListResourceTemplatesRequest::default())
        .await
        .expect("templates")
        .into_inner()
        .templates;
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].uri_template, "file:///{path}");
    assert!(templates[0].description.contains("relative to the root"));
}

#[tokio::test]
async fn a_file_reads_as_text_with_its_mime_type_and_a_short_ttl() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    let read_back = read(&mut mcp, "file:///src/app.py").await.expect("read");
    assert_eq!(read_back.ttl_seconds, 10);
    assert_eq!(read_back.contents.len(), 1);
    let contents = &read_back.contents[0];
    assert_eq!(contents.uri, "file:///src/app.py");
    assert_eq!(contents.mime_type, "text/x-python");
    assert_eq!(text_of(contents), APP_PY);

    let spaced = read(&mut mcp, "file:///src/with%20space.py")
        .await
        .expect("percent-encoded path");
    assert_eq!(text_of(&spaced.contents[0]), "y = 2\n");
    let notes = read(&mut mcp, "file:///src/notes.txt").await.expect("txt");
    assert_eq!(notes.contents[0].mime_type, "text/plain");
}

#[tokio::test]
async fn reads_follow_the_sandbox_rules_of_the_analyses() {
    let dir = project();
    let outside = tempfile::tempdir().expect("tempdir");
    write(outside.path(), "stolen.py", b"PASSWORD = 'x'\n");
    std::os::unix::fs::symlink(
        outside.path().join("stolen.py"),
        dir.path().join("src/link.py"),
    )
    .expect("symlink");
    let mut mcp = start(dir.path()).await;
    let cases = [
        ("db://public/users", Code::NotFound, "file:///{path}"),
        ("file:///src/missing.py", Code::NotFound, "does not exist"),
        ("file:///build/gen.py", Code::NotFound, ".gitignore"),
        ("file:///src/secret.py", Code::NotFound, ".gitignore"),
        ("file:///.env", Code::NotFound, "hidden"),
        ("file:///..", Code::PermissionDenied, "outside"),
        ("file:///src/link.py", Code::PermissionDenied, "outside"),
        ("file:///logo.png", Code::InvalidArgument, "binary"),
        ("file:///big.py", Code::InvalidArgument, "MAX_FILE_BYTES"),
        ("file:///src", Code::InvalidArgument, "directory"),
        ("file:///src/a%2", Code::InvalidArgument, "percent-escape"),
    ];
    for (uri, code, says) in cases {
        let status = read(&mut mcp, uri).await.expect_err(uri);
        assert_eq!(status.code(), code, "{uri}: {}", status.message());
        assert!(
            status.message().contains(says),
            "{uri}: {:?} should say {says:?}",
            status.message()
        );
        assert!(!status.message().contains("PASSWORD"));
    }
}

#[tokio::test]
async fn a_uri_reads_only_the_file_whose_path_it_spells() {
    // A policy over resources matches the URI as given: with
    // `code_analysis+file:///src/*` allowed, each of these would otherwise read
    // a file outside src/ (or one that is not the file the URI spells).
    let dir = project();
    write(dir.path(), "keys/deploy.pem", b"PRIVATE KEY\n");
    std::os::unix::fs::symlink(
        dir.path().join("keys/deploy.pem"),
        dir.path().join("src/key.py"),
    )
    .expect("symlink");
    let mut mcp = start(dir.path()).await;
    let absolute = format!(
        "file:///{}/keys/deploy.pem",
        dir.path().canonicalize().expect("root").display()
    );
    for uri in [
        "file:///src/../keys/deploy.pem",
        "file:///src/%2E%2E/keys/deploy.pem",
        "file:///src%2F..%2Fkeys/deploy.pem",
        "file:///src/./../keys/deploy.pem",
        "file:///./keys/deploy.pem",
        "file:///keys//deploy.pem",
        "file:///%20keys/deploy.pem",
        "file:///src/key.py",
        absolute.as_str(),
    ] {
        let status = read(&mut mcp, uri).await.expect_err(uri);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{uri}: {}",
            status.message()
        );
        assert!(
            status
                .message()
                .contains("does not name a file by its own path")
                || status.message().contains("has a `..` segment"),
            "{uri}: {}",
            status.message()
        );
        assert!(
            !status.message().contains("PRIVATE"),
            "{}",
            status.message()
        );
        let status = mcp
            .resources
            .watch_resource(pb::WatchResourceRequest {
                uri: uri.to_owned(),
            })
            .await
            .expect_err(uri);
        assert_eq!(status.code(), Code::InvalidArgument, "watch {uri}");
    }
    // Named by its own path, the file reads.
    let key = read(&mut mcp, "file:///keys/deploy.pem")
        .await
        .expect("read");
    assert_eq!(text_of(&key.contents[0]), "PRIVATE KEY\n");
    let encoded = read(&mut mcp, "file:///keys%2Fdeploy.pem")
        .await
        .expect("a percent-encoded / is the same path");
    assert_eq!(text_of(&encoded.contents[0]), "PRIVATE KEY\n");
}

#[tokio::test]
async fn a_file_cannot_be_watched_and_a_missing_one_is_not_found() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    let watch = |uri: &str| pb::WatchResourceRequest {
        uri: uri.to_owned(),
    };
    let status = mcp
        .resources
        .watch_resource(watch("file:///src/app.py"))
        .await
        .expect_err("not watchable");
    assert_eq!(status.code(), Code::Unimplemented);
    let status = mcp
        .resources
        .watch_resource(watch("file:///src/gone.py"))
        .await
        .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
}

fn template_completion(value: &str) -> pb::CompleteRequest {
    pb::CompleteRequest {
        r#ref: Some(pb::complete_request::Ref::ResourceTemplate(
            "file:///{path}".to_owned(),
        )),
        argument: "path".to_owned(),
        value: value.to_owned(),
        context: Default::default(),
    }
}

async fn complete_template(mcp: &mut Mcp, value: &str) -> pb::CompleteResponse {
    mcp.resources
        .complete(template_completion(value))
        .await
        .expect("complete")
        .into_inner()
}

#[tokio::test]
async fn template_completion_lists_visible_entries_under_the_typed_prefix() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    assert_eq!(
        complete_template(&mut mcp, "").await.values,
        ["Cargo.toml", "README.md", "big.py", "logo.png", "src/"],
        "hidden and ignored entries are left out; directories end in /"
    );
    let in_src = complete_template(&mut mcp, "src/a").await;
    assert_eq!(in_src.values, ["src/api.py", "src/app.py"]);
    assert_eq!(in_src.total, Some(2));
    assert!(!in_src.has_more);
    assert!(complete_template(&mut mcp, "../").await.values.is_empty());
    assert!(
        complete_template(&mut mcp, "build/")
            .await
            .values
            .is_empty()
    );
    assert!(
        complete_template(&mut mcp, "nowhere/x")
            .await
            .values
            .is_empty()
    );

    let mut other = template_completion("");
    other.r#ref = Some(pb::complete_request::Ref::ResourceTemplate(
        "db://{table}".to_owned(),
    ));
    let status = mcp.resources.complete(other).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn template_completion_stops_at_one_hundred_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..130 {
        write(dir.path(), &format!("many/f{i:03}.rs"), b"fn f() {}\n");
    }
    let mut mcp = start(dir.path()).await;
    let completion = complete_template(&mut mcp, "many/f").await;
    assert_eq!(completion.values.len(), 100);
    assert_eq!(completion.values[0], "many/f000.rs");
    assert_eq!(completion.total, Some(130));
    assert!(completion.has_more);
}

fn get_prompt(name: &str, arguments: &[(&str, &str)]) -> pb::GetPromptRequest {
    pb::GetPromptRequest {
        name: name.to_owned(),
        arguments: arguments
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[tokio::test]
async fn review_file_is_listed_with_a_required_path_and_an_optional_focus() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    let prompts = mcp
        .prompts
        .list_prompts(pb::ListPromptsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .prompts;
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].name, "review_file");
    let arguments: Vec<_> = prompts[0]
        .arguments
        .iter()
        .map(|a| (a.name.as_str(), a.required, !a.description.is_empty()))
        .collect();
    assert_eq!(arguments, [("path", true, true), ("focus", false, true)]);
}

#[tokio::test]
async fn review_file_embeds_the_file_and_names_the_tools_to_call() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    let rendered = mcp
        .prompts
        .get_prompt(get_prompt(
            "review_file",
            &[("path", "src/app.py"), ("focus", "shell injection")],
        ))
        .await
        .expect("rendered")
        .into_inner();
    assert_eq!(rendered.messages.len(), 2);
    assert!(
        rendered
            .messages
            .iter()
            .all(|m| m.role == pb::Role::User as i32)
    );
    let kinds: Vec<_> = rendered
        .messages
        .iter()
        .map(|m| m.content.as_ref().and_then(|c| c.kind.clone()))
        .collect();
    let Some(pb::content::Kind::Resource(file)) = &kinds[0] else {
        panic!("the file is embedded first: {kinds:?}");
    };
    assert_eq!(file.uri, "file:///src/app.py");
    assert_eq!(text_of(file), APP_PY);
    let Some(pb::content::Kind::Text(instructions)) = &kinds[1] else {
        panic!("then the instructions: {kinds:?}");
    };
    for needle in [
        "`src/app.py`",
        "code_analysis_analyze_path",
        "\"analysis_depth\": \"COMPREHENSIVE\"",
        "code_analysis_find_security_issues",
        "hotspots",
        "focus on: shell injection",
    ] {
        assert!(instructions.text.contains(needle), "missing {needle}");
    }

    let unfocused = mcp
        .prompts
        .get_prompt(get_prompt("review_file", &[("path", "src/app.py")]))
        .await
        .expect("without focus")
        .into_inner();
    let text = format!("{:?}", unfocused.messages[1]);
    assert!(!text.contains("focus on"));
}

#[tokio::test]
async fn review_file_refuses_a_missing_or_bad_path_naming_the_argument() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    for arguments in [&[][..], &[("path", "  ")][..], &[("focus", "security")][..]] {
        let status = mcp
            .prompts
            .get_prompt(get_prompt("review_file", arguments))
            .await
            .expect_err("path is required");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("`path` is required"));
    }
    for (path, says) in [
        ("src/missing.py", "does not exist"),
        ("src/notes.txt", "supported language"),
        ("build/gen.py", ".gitignore"),
        ("..", "outside"),
        ("src", "directory"),
        ("big.py", "MAX_FILE_BYTES"),
    ] {
        let status = mcp
            .prompts
            .get_prompt(get_prompt("review_file", &[("path", path)]))
            .await
            .expect_err(path);
        assert_eq!(status.code(), Code::InvalidArgument, "{path}");
        assert!(status.message().starts_with("argument `path`"), "{path}");
        assert!(status.message().contains(says), "{path}: {status:?}");
    }
    let status = mcp
        .prompts
        .get_prompt(get_prompt("triage_issue", &[("path", "src/app.py")]))
        .await
        .expect_err("unknown prompt");
    assert_eq!(status.code(), Code::NotFound);
}

fn prompt_completion(argument: &str, value: &str) -> pb::CompleteRequest {
    pb::CompleteRequest {
        r#ref: Some(pb::complete_request::Ref::Prompt("review_file".to_owned())),
        argument: argument.to_owned(),
        value: value.to_owned(),
        context: Default::default(),
    }
}

#[tokio::test]
async fn review_file_completes_source_files_and_focus_areas() {
    let dir = project();
    let mut mcp = start(dir.path()).await;
    let paths = mcp
        .prompts
        .complete(prompt_completion("path", "src/"))
        .await
        .expect("complete")
        .into_inner();
    assert_eq!(
        paths.values,
        ["src/api.py", "src/app.py", "src/with space.py"],
        "only supported source files: no notes.txt, no ignored secret.py"
    );
    let top = mcp
        .prompts
        .complete(prompt_completion("path", ""))
        .await
        .expect("complete")
        .into_inner();
    assert_eq!(top.values, ["big.py", "src/"]);
    let focus = mcp
        .prompts
        .complete(prompt_completion("focus", "Sec"))
        .await
        .expect("complete")
        .into_inner();
    assert_eq!(focus.values, ["security"]);
    let status = mcp
        .prompts
        .complete(prompt_completion("depth", ""))
        .await
        .expect_err("no such argument");
    assert_eq!(status.code(), Code::NotFound);
}
