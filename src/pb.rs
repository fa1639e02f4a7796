//! Code generated from `proto/` and the encoded descriptor set.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The `authmux.v1` package.
pub mod v1 {
    tonic::include_proto!("authmux.v1");
}

/// Every file of the contract with its imports, as an encoded
/// `FileDescriptorSet` (the `google.api.http` options included).
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/authmux_descriptor.bin"));
