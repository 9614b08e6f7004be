//! `lumen-verifier`: judges every uploaded frame in a shared data folder
//! (the gateway's `--data-dir`), polling for work.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use lumen_store::{Bus, Store};
use lumen_verifier::{VerifierConfig, VerifierService};
use tokio_util::sync::CancellationToken;

/// Run the Lumen verifier.
#[derive(Debug, Parser)]
#[command(name = "lumen-verifier", version, about)]
struct Cli {
    /// Database and blob folder shared with the gateway.
    #[arg(long, env = "LUMEN_DATA_DIR", default_value = "lumen-data")]
    data_dir: PathBuf,
}

#[allow(clippy::disallowed_macros)] // the binary reports its own failure
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    lumen_runtime::init_logging();
    let store = match Store::open(&cli.data_dir).await {
        Ok(store) => store,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(
        VerifierService::new(store, Bus::new(), VerifierConfig::default()).run(shutdown.clone()),
    );
    lumen_runtime::shutdown_signal().await;
    shutdown.cancel();
    let _ = service.await;
    ExitCode::SUCCESS
}
