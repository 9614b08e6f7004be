//! `lumen`, the command line for artists and operators.
//!
//! Each subcommand lives in its own module under [`cmd`] with an `Args`
//! struct and a `run` function; `main.rs` only parses and dispatches.

use clap::{Parser, Subcommand};

pub mod cmd;

/// Lumen: a decentralized Blender render network settled on an EVM chain.
#[derive(Debug, Parser)]
#[command(name = "lumen", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local network: Anvil, the contracts, the services and N nodes.
    Devnet(cmd::devnet::DevnetArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> eyre::Result<()> {
    match cli.command {
        Command::Devnet(args) => cmd::devnet::run(&args),
    }
}
