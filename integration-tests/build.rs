//! Compiles the test connector's proto in two versions: v1, and v2 which adds a
//! method. The code is generated from v2; each version's descriptor set is kept so
//! the test connector can advertise either over reflection, as if its proto had
//! been changed and the connector redeployed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let shared = root.join("../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    for version in ["v1", "v2"] {
        let file = format!("testkit/calculator/{version}/calculator.proto");
        let mut compiler = protox::Compiler::new([root.join("proto"), shared.clone()])?;
        compiler.include_source_info(true).include_imports(true);
        compiler.open_file(&file)?;
        std::fs::write(
            out.join(format!("calculator_{version}.bin")),
            compiler.encode_file_descriptor_set(),
        )?;
        if version == "v2" {
            let fds = compiler.file_descriptor_set();
            // The options' types come from switchboard-proto, not generated again.
            tonic_prost_build::configure()
                .extern_path(".switchboard.mcp.v1", "::switchboard_proto::mcp::v1")
                .compile_fds(fds)?;
        }
    }
    Ok(())
}
