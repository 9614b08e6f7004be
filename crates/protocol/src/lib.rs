//! Lumen's wire messages and domain types, shared by the node and the
//! services. This crate has no async runtime or HTTP dependency, so the node
//! and the gateway can both depend on it freely.
//!
//! - [`ws`]: the versioned JSON messages of the node ↔ gateway WebSocket and
//!   its close codes.
//! - [`node`]: node states and the health rules of the operator guide.
//! - [`auth`]: the text a node signs to answer the gateway's challenge.
//! - [`types`]: ids, content hashes and wei amounts; [`state`]: job, frame
//!   and task states with their allowed transitions; [`event`]: mirrored
//!   contract events; [`deployment`]: where the contracts are.
//! - [`api`]: JSON bodies of the gateway's HTTP API; [`earnings`],
//!   [`explorer`] and [`operator`]: its earnings, explorer and operator views.
//!
//! With the `sqlx` feature the domain types also map to database columns
//! (SQLite and PostgreSQL alike), so the store reads them back typed.

pub mod api;
pub mod auth;
pub mod deployment;
pub mod earnings;
pub mod eip712;
pub mod event;
pub mod explorer;
pub mod node;
pub mod operator;
#[cfg(feature = "sqlx")]
mod sql;
pub mod state;
pub mod types;
pub mod ws;

pub use alloy_primitives::{Address, B256, U256};
pub use deployment::{Deployment, DeploymentError};
pub use event::{ChainEvent, ChainEventKind, MirroredEvent};
pub use state::{FrameState, JobState, SlashState, TaskRole, TaskState, Verdict, VerdictKind};
pub use types::{ContentHash, ContentHasher, FrameIndex, JobId, ParseError, TaskId, Wei, content_hash};

/// Without the `sqlx` feature the database mappings are left out.
#[cfg(not(feature = "sqlx"))]
#[doc(hidden)]
#[macro_export]
macro_rules! sql_text_type {
    ($name:ty) => {};
}
