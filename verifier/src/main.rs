//! `lumen-verifier`: the service's thin binary.

use std::process::ExitCode;

#[allow(clippy::disallowed_macros)] // a binary talking to its operator
fn main() -> ExitCode {
    eprintln!("lumen-verifier: not yet implemented (the end-to-end issue brings it)");
    ExitCode::from(2)
}
