//! `lumen`, the command line for artists and operators.
//!
//! Each subcommand lives in its own module under [`cmd`] with an `Args`
//! struct and a `run` function; `main.rs` only parses, sets up logging and
//! maps errors to an exit code.

use clap::{Parser, Subcommand};

pub mod cmd;
pub mod connect;
pub mod devnet_file;
pub mod output;
pub mod session;

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
    /// Submit and follow render jobs.
    Job(cmd::job::JobArgs),
    /// Run, register an operator node, or withdraw what it earned.
    Node(cmd::node::NodeArgs),
    /// What nodes and owners earned (from the chain mirror), and monthly statements.
    Payouts(cmd::earnings::PayoutsArgs),
    /// Nodes ranked by jobs completed, uptime and earnings.
    Leaderboard(cmd::earnings::LeaderboardArgs),
    /// Maintain the indexer's mirror of the chain.
    Indexer(cmd::indexer::IndexerArgs),
    /// Sign in to a gateway with the artist's wallet (Sign-In with
    /// Ethereum); the session is kept for the next commands.
    Login(session::LoginArgs),
    /// End the kept session with a gateway.
    Logout(session::LoginArgs),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> eyre::Result<()> {
    match cli.command {
        Command::Devnet(args) => cmd::devnet::run(args).await,
        Command::Job(args) => cmd::job::run(args).await,
        Command::Node(args) => cmd::node::run(args).await,
        Command::Payouts(args) => cmd::earnings::payouts(args).await,
        Command::Leaderboard(args) => cmd::earnings::leaderboard(args).await,
        Command::Indexer(args) => cmd::indexer::run(args).await,
        Command::Login(args) => session::login(args).await,
        Command::Logout(args) => session::logout(args).await,
    }
}

pub use lumen_runtime::shutdown_signal;
