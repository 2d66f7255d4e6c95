//! Logging set-up: JSON lines through `tracing` (Lambda and local alike).

use tracing_subscriber::EnvFilter;

use crate::config::vars::RUST_LOG;

/// Installs the JSON subscriber (`RUST_LOG` filters, default `info`). Safe to call twice.
pub fn init_json_logs() {
    let filter = EnvFilter::try_from_env(RUST_LOG.name).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
