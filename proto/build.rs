//! Compiles every `.proto` file under `proto/switchboard/` without a system `protoc`.
//!
//! protox parses the files (keeping source comments, which become MCP tool
//! descriptions), tonic-prost-build generates the Rust code from that descriptor
//! set, and the encoded set is written to `OUT_DIR` for the reflection service.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let mut files = Vec::new();
    collect_protos(&root.join("switchboard"), &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=switchboard");

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_source_info(true).include_imports(true);
    for file in &files {
        compiler.open_file(file)?;
    }
    let fds = compiler.file_descriptor_set();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("switchboard_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let mut packages: Vec<String> = fds.file.iter().filter_map(|f| f.package.clone()).collect();
    packages.sort();
    packages.dedup();
    packages.retain(|p| p.starts_with("switchboard."));
    std::fs::write(out_dir.join("modules.rs"), module_tree(&packages))?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}

/// Nested `pub mod` declarations, one per package, so a new connector's proto needs
/// no edit of `lib.rs`: `switchboard.jira.v1` becomes `jira::v1`.
fn module_tree(packages: &[String]) -> String {
    let mut out = String::new();
    let mut open: Vec<&str> = Vec::new();
    for package in packages {
        let parts: Vec<&str> = package.split('.').skip(1).collect();
        let common = open.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        for _ in common..open.len() {
            out.push_str("}\n");
        }
        open.truncate(common);
        for part in &parts[common..] {
            out.push_str(&format!("#[allow(missing_docs)]\npub mod {part} {{\n"));
            open.push(part);
        }
        out.push_str(&format!(
            "include!(concat!(env!(\"OUT_DIR\"), \"/{package}.rs\"));\n"
        ));
    }
    for _ in &open {
        out.push_str("}\n");
    }
    out
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
