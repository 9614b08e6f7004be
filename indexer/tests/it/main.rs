//! The indexer's money paths against a real Anvil (contracts deployed by the
//! testkit) and a real SQLite store: frames are made verified the way the
//! gateway and the verifier do it, and the indexer is driven one `round()`
//! at a time, so every assertion reads a settled chain and store.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod confirm;
mod earnings;
mod refund;
mod release;
mod reorg;
mod settle;
mod slash;
mod stall;
mod support;
