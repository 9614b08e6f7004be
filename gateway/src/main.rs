//! `lumen-gateway`: the gateway and the matchmaker (which dispatches over the
//! gateway's node connections) against an existing deployment. Run
//! `lumen-verifier` and `lumen-indexer` on the same `--data-dir` beside it;
//! `lumen devnet` runs all of them in one process instead.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::Parser;
use lumen_chain::Deployment;
use lumen_gateway::{GatewayConfig, NodeDirectory};
use lumen_matchmaker::{Matchmaker, MatchmakerConfig};
use lumen_store::{Bus, Store};
use tokio_util::sync::CancellationToken;

/// Run a Lumen gateway.
#[derive(Debug, Parser)]
#[command(name = "lumen-gateway", version, about)]
struct Cli {
    /// Database and blob folder (shared with the verifier and indexer).
    #[arg(long, env = "LUMEN_DATA_DIR", default_value = "lumen-data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "LUMEN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// URL nodes use to reach this gateway (part of the signed challenge).
    #[arg(long, env = "LUMEN_PUBLIC_URL")]
    public_url: Option<String>,
    /// Chain JSON-RPC URL.
    #[arg(long, env = "LUMEN_RPC_URL")]
    rpc_url: String,
    /// Deployment file (from Deploy.s.sol or `lumen devnet`).
    #[arg(long, env = "LUMEN_DEPLOYMENT")]
    deployment: PathBuf,
}

async fn run(cli: Cli) -> eyre::Result<()> {
    let deployment = Deployment::load(&cli.deployment)?;
    let store = Store::open(&cli.data_dir).await?;
    let bus = Bus::new();
    let mut config = GatewayConfig::new(cli.listen, deployment.with_rpc_url(cli.rpc_url));
    config.public_url = cli.public_url;
    let nodes = Arc::new(NodeDirectory::new(config.health));
    let gateway = lumen_gateway::spawn(config, store.clone(), bus.clone(), nodes.clone()).await?;
    let shutdown = CancellationToken::new();
    let matchmaker =
        tokio::spawn(Matchmaker::new(store, bus, nodes, MatchmakerConfig::default()).run(shutdown.clone()));
    lumen_runtime::shutdown_signal().await;
    shutdown.cancel();
    let _ = matchmaker.await;
    gateway.shutdown().await;
    Ok(())
}

#[allow(clippy::disallowed_macros)] // the binary reports its own failure
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    lumen_runtime::init_logging();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
