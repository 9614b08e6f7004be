//! The matchmaker: splits jobs into frame tasks and assigns them to the
//! least-loaded healthy nodes with the right capabilities, requeueing the frames
//! of nodes that fail or go silent.
//!
//! Status: scaffolding only. The end-to-end issue brings the real service;
//! until then this crate exports nothing and its binary refuses to run.
