//! Process plumbing shared by Lumen's services and binaries: the one shape
//! of a running service ([`ServiceHandle`], [`rounds`]), the one place that
//! sets up logging, and the shutdown signal every long-running command
//! waits for.

pub mod service;

pub use service::{BoxError, Pace, Retryable, ServiceError, ServiceHandle, rounds};
use tracing_subscriber::{EnvFilter, fmt};

/// Logs to stderr. `RUST_LOG` wins; otherwise `LOG_LEVEL` (the operator
/// guide's `DEBUG`, `INFO`, `WARNING`, `ERROR`), otherwise `info`. Colours
/// only when stderr is a terminal.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},hyper=warn,reqwest=warn,alloy=warn,sqlx=warn,tower_http=warn",
            level_from_env(std::env::var("LOG_LEVEL").ok().as_deref())
        ))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(true)
        .try_init();
}

fn level_from_env(value: Option<&str>) -> &'static str {
    match value.unwrap_or_default().to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "WARNING" | "WARN" => "warn",
        "ERROR" => "error",
        _ => "info",
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_levels_follow_the_operator_guide() {
        assert_eq!(super::level_from_env(Some("DEBUG")), "debug");
        assert_eq!(super::level_from_env(Some("warning")), "warn");
        assert_eq!(super::level_from_env(Some("ERROR")), "error");
        assert_eq!(super::level_from_env(None), "info");
    }
}
