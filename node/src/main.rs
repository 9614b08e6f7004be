//! `lumen-node`: the operator node as a standalone binary (same flags and
//! environment as `lumen node run`).

use std::process::ExitCode;

use clap::Parser;

/// Run a Lumen render node.
#[derive(Debug, Parser)]
#[command(name = "lumen-node", version, about)]
struct Cli {
    #[command(flatten)]
    run: lumen_node::args::RunArgs,
}

#[allow(clippy::disallowed_macros)] // the binary reports its own failure
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    lumen_runtime::init_logging();
    let ended = match cli.run.spawn().await {
        Ok(node) => node.run_until(lumen_runtime::shutdown_signal()).await.map_err(|e| e.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match ended {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
