//! `lumen indexer rebuild`: the chain mirror, read again from the chain.

use std::path::PathBuf;

use alloy::providers::{Provider, ProviderBuilder};
use clap::{Args, Subcommand};
use eyre::WrapErr;
use lumen_indexer::Mirror;
use lumen_store::Store;

use crate::{connect::ConnectArgs, output};

/// `lumen indexer …`
#[derive(Debug, Args)]
pub struct IndexerArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: IndexerCommand,
}

/// The indexer subcommands.
#[derive(Debug, Subcommand)]
pub enum IndexerCommand {
    /// Forget the database's mirror of the chain (events, payouts) and read
    /// it again from the deployment's first block. Into an empty folder it
    /// builds a database that holds only the mirror: credits, statements
    /// and the leaderboard's chain figures come out the same as the
    /// gateway's.
    Rebuild(RebuildArgs),
}

/// `lumen indexer rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The data folder whose database to rebuild (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Blocks to stay behind the head (0 on a devnet).
    #[arg(long, default_value_t = 0)]
    pub confirmations: u64,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs an indexer subcommand.
pub async fn run(args: IndexerArgs) -> eyre::Result<()> {
    match args.command {
        IndexerCommand::Rebuild(a) => rebuild(a).await,
    }
}

async fn rebuild(args: RebuildArgs) -> eyre::Result<()> {
    let conn = args.connect.connect().await?;
    std::fs::create_dir_all(&args.data_dir)
        .wrap_err_with(|| format!("creating {}", args.data_dir.display()))?;
    let store = Store::open(&args.data_dir).await?;
    let provider =
        ProviderBuilder::new().connect_http(conn.rpc_url.parse().wrap_err("bad RPC URL")?).erased();
    let d = &conn.deployment;
    let mirror = Mirror::new(d.escrow, d.registry, d.deploy_block, args.confirmations);
    store.reset_mirror().await?;
    let head = mirror.sync(&provider, &store).await?;
    let events = store.chain_events(None).await?.len();
    output::line(format!(
        "mirror rebuilt from block {} to {head}: {events} events in {}",
        d.deploy_block,
        args.data_dir.display()
    ));
    Ok(())
}
