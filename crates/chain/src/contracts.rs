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

/// `MockERC20`: a mintable ERC-20 (from `contracts/test/mocks`) that
/// devnets and tests pay jobs in; its calls are the standard ERC-20 ones
/// the CLI uses on any token (`decimals`, `symbol`, `balanceOf`,
/// `allowance`, `approve`).
pub mod token {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        MockERC20,
        "artifacts/MockERC20.json"
    );
}

pub use escrow::RenderEscrow;
pub use registry::NodeRegistry;
pub use token::MockERC20 as Erc20;

/// `IRenderEscrow.JobStatus`: the JSON-ABI bindings carry the enum as its
/// `uint8`; this is its typed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// No such job.
    None,
    /// Locked; releases possible.
    Open,
    /// Cancelled by the artist; releases possible until the refund.
    Cancelled,
    /// The rest went back to the artist (the settler closed the job, or the
    /// artist refunded it); nothing moves any more.
    Refunded,
}

impl JobStatus {
    /// The status a raw `uint8` names; `None` for a value the contract never
    /// returns.
    pub fn from_raw(raw: u8) -> Option<Self> {
        [Self::None, Self::Open, Self::Cancelled, Self::Refunded].get(usize::from(raw)).copied()
    }
}
