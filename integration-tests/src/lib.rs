//! End-to-end test support for Switchboard: the test connector's generated code,
//! and helpers that start real router and connector processes on ephemeral ports.
#![forbid(unsafe_code)]

pub mod calculator;
pub mod haproxy;
pub mod oidc;
pub mod otlp;
pub mod prism;
pub mod process;
pub mod stack;

/// Generated code of the test connector's proto (`switchboard.testkit.calculator.v1`).
#[allow(missing_docs, clippy::doc_lazy_continuation)]
pub mod pb {
    tonic::include_proto!("switchboard.testkit.calculator.v1");
}

/// Descriptor set of the first version of the test proto.
pub const CALCULATOR_V1: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/calculator_v1.bin"));
/// Descriptor set of the second version, which adds `Power`.
pub const CALCULATOR_V2: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/calculator_v2.bin"));
