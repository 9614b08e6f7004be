//! End-to-end tests of `lumen`: real Anvil, real services, real node
//! processes running real Blender. Tests under `e2e::` run one at a time
//! (see .config/nextest.toml).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod e2e;
mod harness;
