//! Integration tests of `lumen-chain` against a real Anvil.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod bindings;
mod escrow_flow;
mod forge_script;
mod sender;
