//! Load and attack generators for a gateway running as its own process, so
//! that its CPU time and resident memory can be read cleanly from `/proc`.
//!
//! - [`chain`]: Anvil with the contracts, and node keys bound in bulk.
//! - [`process`]: the `lumen-gateway` binary started on a free port, and
//!   its CPU and memory ([`process::sample`]).
//! - [`sim`]: simulated nodes speaking the real protocol
//!   ([`lumen_protocol::ws`]: secp256k1 keys, the signed challenge, heartbeats).
//! - [`attack`]: the resource attacks of issue 8 (slow large uploads,
//!   parallel large downloads, a heartbeat flood) with the gateway's peak
//!   memory and responsiveness measured while they run.
//!
//! `lumen-gateway-load` (`scripts/bench-gateway-load.sh`) runs them from the
//! command line; the memory-under-attack test runs [`attack`] at a smaller
//! size.

pub mod attack;
pub mod chain;
pub mod http;
pub mod process;
pub mod sim;

/// Percentile `p` (0..=100) of sorted samples; 0 when there are none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
