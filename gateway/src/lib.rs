//! The gateway: HTTP API for artists (uploads, jobs, frames), the WebSocket
//! endpoint nodes connect to (challenge-signature auth, heartbeats, node
//! states), the content-addressed blob store and the dashboard.
//!
//! Status: scaffolding only. The end-to-end issue brings the real service;
//! until then this crate exports nothing and its binary refuses to run.
