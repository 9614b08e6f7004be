//! `lumen-indexer`: mirrors chain events into a shared data folder (the
//! gateway's `--data-dir`) and settles jobs with the settler key, read from
//! the variable `--settler-key-env` names (`LUMEN_SETTLER_KEY` by default).
//! Settings come from defaults, `--config lumen.toml`, `LUMEN_*` variables
//! and flags (docs/configuration.md).

use clap::Parser;
use lumen_stack::{IndexerArgs, Overrides, ServiceArgs, Services};

/// Run the Lumen indexer.
#[derive(Debug, Parser)]
#[command(name = "lumen-indexer", version, about)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    indexer: IndexerArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    lumen_stack::main(Services::INDEXER, cli.service.load(Overrides::new().indexer(&cli.indexer))).await
}
