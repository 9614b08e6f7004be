//! Integration tests of `lumen-verifier`: frames are built in memory with the
//! `image` crate (and a few by hand), then checked and compared.

mod check;
mod compare;
mod props;
mod service;
mod support;
