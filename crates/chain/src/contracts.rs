//! Typed contract bindings, generated from the committed forge artifacts.
//!
//! Each module holds the contract type (with `deploy`, calls and events), its
//! structs, and an `...Errors` enum that decodes every custom error, so revert
//! reasons are matched by type and never by string.

#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

/// `RenderEscrow`: pull-payment escrow for render jobs.
pub mod escrow {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        RenderEscrow,
        "artifacts/RenderEscrow.json"
    );
}

/// `NodeRegistry`: node key ↔ owner bindings, stake and slashing.
pub mod registry {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        NodeRegistry,
        "artifacts/NodeRegistry.json"
    );
}

pub use escrow::RenderEscrow;
pub use registry::NodeRegistry;
