//! The operator node: connects to the gateway with its EVM key, renders
//! frames with headless Blender in a sandbox, uploads them and signs (job,
//! frame, output hash).
//!
//! Status: scaffolding only. The end-to-end issue brings the real service;
//! until then this crate exports nothing and its binary refuses to run.
