//! The `lumen` binary: parse, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[allow(clippy::disallowed_macros)] // the binary reports its own failure
fn main() -> ExitCode {
    let cli = lumen_cli::Cli::parse();
    match lumen_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
