//! Lumen's wire messages and domain types, shared by the node and the
//! services. This crate has no async runtime or HTTP dependency, so the node
//! and the gateway can both depend on it freely.
//!
//! - [`ws`]: the versioned JSON messages of the node ↔ gateway WebSocket and
//!   its close codes.
//! - [`node`]: node states and the health rules of the operator guide.
//! - [`auth`]: the text a node signs to answer the gateway's challenge.

pub mod api;
pub mod auth;
pub mod eip712;
pub mod node;
pub mod ws;

pub use alloy_primitives::{Address, B256};

/// The blake3 hash of some content (a `.blend`, a frame), as stored and sent.
pub type ContentHash = B256;

/// Hashes content the way every Lumen component does (blake3, 32 bytes).
pub fn content_hash(bytes: &[u8]) -> ContentHash {
    ContentHash::from(*blake3::hash(bytes).as_bytes())
}
