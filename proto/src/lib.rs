//! Protobuf contracts of Switchboard.
//!
//! Every `.proto` file under `proto/switchboard/` is compiled here (see `build.rs`):
//! the generated message and service types, and [`FILE_DESCRIPTOR_SET`], the
//! encoded descriptors with source comments that connectors serve over gRPC
//! reflection so the router can turn their methods into MCP tools.
#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Encoded `google.protobuf.FileDescriptorSet` of every Switchboard proto file,
/// including imports and source comments.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/switchboard_descriptor.bin"));

/// MCP-facing options and generic MCP services (`switchboard.mcp.v1`).
pub mod mcp {
    pub mod v1 {
        tonic::include_proto!("switchboard.mcp.v1");
    }
}
