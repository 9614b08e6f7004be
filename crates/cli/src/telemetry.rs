//! The one place that sets up logging for the `lumen` binary.

use tracing_subscriber::{EnvFilter, fmt};

/// Logs to stderr. `RUST_LOG` wins; otherwise `LOG_LEVEL` (the operator
/// guide's `DEBUG`, `INFO`, `WARNING`, `ERROR`), otherwise `info`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = match std::env::var("LOG_LEVEL").unwrap_or_default().to_ascii_uppercase().as_str() {
            "DEBUG" => "debug",
            "WARNING" | "WARN" => "warn",
            "ERROR" => "error",
            _ => "info",
        };
        EnvFilter::new(format!("{level},hyper=warn,reqwest=warn,alloy=warn,sqlx=warn,tower_http=warn"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(true)
        .try_init();
}
