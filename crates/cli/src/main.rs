//! The `lumen` binary: parse, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[allow(clippy::disallowed_macros)] // the binary reports its own failure
#[tokio::main]
async fn main() -> ExitCode {
    let cli = lumen_cli::Cli::parse();
    lumen_runtime::init_logging();
    match lumen_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
