//! `lumen-verifier`: judges every uploaded frame in a shared data folder
//! (the gateway's `--data-dir`). Settings come from defaults, `--config
//! lumen.toml`, `LUMEN_*` variables and flags (docs/configuration.md).

use clap::Parser;
use lumen_stack::{Overrides, ServiceArgs, Services};

/// Run the Lumen verifier.
#[derive(Debug, Parser)]
#[command(name = "lumen-verifier", version, about)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    lumen_stack::main(Services::VERIFIER, cli.service.load(Overrides::new())).await
}
