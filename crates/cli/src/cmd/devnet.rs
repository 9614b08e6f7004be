//! `lumen devnet`: a whole local network in one process.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `lumen devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Number of local render nodes to start.
    #[arg(long, default_value_t = 2)]
    pub nodes: u32,
    /// Where the devnet keeps its database, blobs and `devnet.json`.
    #[arg(long, default_value = ".lumen-devnet")]
    pub data_dir: PathBuf,
    /// Gateway HTTP port (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub gateway_port: u16,
}

/// Runs the devnet.
pub fn run(_args: &DevnetArgs) -> eyre::Result<()> {
    eyre::bail!("`lumen devnet` is not yet implemented (the end-to-end issue brings it)")
}
