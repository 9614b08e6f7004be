//! The indexer: releases verified frames on-chain in batches and mirrors
//! escrow and registry events into the database, from which credits and the
//! leaderboard are computed.
//!
//! Status: scaffolding only. The end-to-end issue brings the real service;
//! until then this crate exports nothing and its binary refuses to run.
