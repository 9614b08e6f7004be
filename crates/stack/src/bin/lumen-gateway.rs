//! `lumen-gateway`: the gateway and the matchmaker (which dispatches over the
//! gateway's node connections) against an existing deployment. Run
//! `lumen-verifier` and `lumen-indexer` on the same `--data-dir` beside it;
//! `lumen devnet` runs all of them in one process instead. Settings come
//! from defaults, `--config lumen.toml`, `LUMEN_*` variables and flags
//! (docs/configuration.md).

use clap::Parser;
use lumen_stack::{GatewayArgs, Overrides, ServiceArgs, Services};

/// Run a Lumen gateway (with its matchmaker).
#[derive(Debug, Parser)]
#[command(name = "lumen-gateway", version, about)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    lumen_stack::main(Services::GATEWAY, cli.service.load(Overrides::new().gateway(&cli.gateway))).await
}
