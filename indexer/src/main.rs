//! `lumen-indexer`: mirrors chain events into a shared data folder (the
//! gateway's `--data-dir`) and settles jobs with the settler key.

use std::{path::PathBuf, process::ExitCode};

use alloy::{
    network::EthereumWallet,
    providers::{Provider, ProviderBuilder},
};
use clap::Parser;
use lumen_chain::Deployment;
use lumen_indexer::{Indexer, IndexerConfig};
use lumen_store::{Bus, Store};
use tokio_util::sync::CancellationToken;

/// Run the Lumen indexer.
#[derive(Debug, Parser)]
#[command(name = "lumen-indexer", version, about)]
struct Cli {
    /// Database and blob folder shared with the gateway.
    #[arg(long, env = "LUMEN_DATA_DIR", default_value = "lumen-data")]
    data_dir: PathBuf,
    /// Chain JSON-RPC URL.
    #[arg(long, env = "LUMEN_RPC_URL")]
    rpc_url: String,
    /// Deployment file (from Deploy.s.sol or `lumen devnet`).
    #[arg(long, env = "LUMEN_DEPLOYMENT")]
    deployment: PathBuf,
    /// Environment variable holding the settler's private key.
    #[arg(long, default_value = "LUMEN_SETTLER_KEY")]
    settler_key_env: String,
    /// Blocks to stay behind the head.
    #[arg(long, default_value_t = 0)]
    confirmations: u64,
}

async fn run(cli: Cli) -> Result<(), String> {
    let deployment = Deployment::load(&cli.deployment).map_err(|e| e.to_string())?;
    let key = lumen_chain::key_from_env(&cli.settler_key_env).map_err(|e| e.to_string())?;
    let url = cli.rpc_url.parse().map_err(|e| format!("invalid RPC URL: {e}"))?;
    let provider = ProviderBuilder::new().wallet(EthereumWallet::from(key)).connect_http(url).erased();
    let store = Store::open(&cli.data_dir).await.map_err(|e| e.to_string())?;
    let mut config = IndexerConfig::new(deployment.escrow, deployment.registry, deployment.deploy_block);
    config.confirmations = cli.confirmations;
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(Indexer::new(store, Bus::new(), provider, config).run(shutdown.clone()));
    lumen_runtime::shutdown_signal().await;
    shutdown.cancel();
    let _ = service.await;
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
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
