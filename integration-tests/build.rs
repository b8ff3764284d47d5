//! Compiles the test connector's proto, and derives its first version.
//!
//! `calculator.proto` is the current version; the first version is the same
//! file without the `Power` method and its two messages (cut from the source text
//! into `OUT_DIR`, then compiled the same way). The code is generated from the
//! current version; each version's encoded descriptor set is kept so the test
//! connector can advertise either over reflection, exactly as a connector
//! redeployed with an added method looks to the router.

use std::path::{Path, PathBuf};

const FILE: &str = "testkit/calculator/calculator.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");

    let current = root.join("proto");
    let source = std::fs::read_to_string(current.join(FILE))?;
    let first = out.join("v1");
    std::fs::create_dir_all(first.join("testkit/calculator"))?;
    std::fs::write(first.join(FILE), without_power(&source)?)?;

    for (dir, name) in [
        (&first, "calculator_v1.bin"),
        (&current, "calculator_v2.bin"),
    ] {
        // Encoded straight from the compiler: prost's descriptor types would drop
        // the custom options the router reads.
        std::fs::write(
            out.join(name),
            compile(dir, &root)?.encode_file_descriptor_set(),
        )?;
    }
    tonic_prost_build::configure()
        // The options' types come from switchboard-proto, not generated again.
        .extern_path(".switchboard.mcp.v1", "::switchboard_proto::mcp::v1")
        .compile_fds(compile(&current, &root)?.file_descriptor_set())?;
    Ok(())
}

fn compile(dir: &Path, root: &Path) -> Result<protox::Compiler, protox::Error> {
    let mut compiler = protox::Compiler::new([dir.to_path_buf(), root.join("../proto")])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_file(FILE)?;
    Ok(compiler)
}

/// The source without the `Power` rpc (with its leading comment) and without the
/// messages from `// Power operands.` on, which close the file.
fn without_power(source: &str) -> Result<String, String> {
    let lines: Vec<&str> = source.lines().collect();
    let rpc = lines
        .iter()
        .position(|l| l.trim_start().starts_with("rpc Power("))
        .ok_or("calculator.proto has no Power rpc")?;
    let mut start = rpc;
    while start > 0 && lines[start - 1].trim_start().starts_with("//") {
        start -= 1;
    }
    let end = rpc
        + lines[rpc..]
            .iter()
            .position(|l| l.trim() == "}")
            .ok_or("unterminated Power rpc")?;
    let messages = lines
        .iter()
        .position(|l| l.trim() == "// Power operands.")
        .ok_or("calculator.proto must end with the Power messages")?;
    let kept: Vec<&str> = lines[..start]
        .iter()
        .chain(&lines[end + 1..messages])
        .copied()
        .collect();
    Ok(kept.join("\n") + "\n")
}
