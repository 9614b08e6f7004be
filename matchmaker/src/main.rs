//! `lumen-matchmaker`: the matchmaker dispatches over the gateway's node
//! WebSocket connections, so it runs inside `lumen-gateway` (and inside
//! `lumen devnet`). This binary says so instead of pretending to work alone.

use std::process::ExitCode;

#[allow(clippy::disallowed_macros)] // a binary talking to its operator
fn main() -> ExitCode {
    eprintln!(
        "lumen-matchmaker runs inside lumen-gateway, which owns the node connections it dispatches over; \
         start lumen-gateway (or `lumen devnet`)"
    );
    ExitCode::from(2)
}
