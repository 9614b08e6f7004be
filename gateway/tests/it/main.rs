//! The gateway's node WebSocket against a real Anvil and a real store.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod access;
mod api;
mod changes;
mod earnings;
mod limits;
mod live;
mod operators;
mod results;
mod ws;
