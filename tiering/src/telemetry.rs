//! Tracing set-up shared by both binaries.

use tracing_subscriber::EnvFilter;

/// Structured logs on stdout: JSON when running in Azure (the host collects
/// stdout), human-readable otherwise. `RUST_LOG` filters; default `info`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_azure = std::env::var_os("WEBSITE_INSTANCE_ID").is_some()
        || std::env::var_os("LOG_FORMAT").is_some_and(|v| v == "json");
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal());
    // try_init: tests may call this more than once in one process.
    let _ = if in_azure { builder.json().flatten_event(true).try_init() } else { builder.compact().try_init() };
}

/// Resolves on SIGTERM or Ctrl-C: the Functions host stops handlers with SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
