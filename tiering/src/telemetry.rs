//! Tracing set-up shared by both binaries.

pub use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

/// Where a process logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The handlers: the Functions host collects a custom handler's stdout.
    Stdout,
    /// The operator commands: their stdout is their result (JSON for scripts,
    /// `archiver plan --json | jq .`), so logs must not mix into it.
    Stderr,
}

/// Structured logs: JSON when running in Azure (the host collects stdout),
/// human-readable otherwise, filtered as the settings say, on `stream`.
pub fn init(settings: &LogSettings, stream: Stream) {
    let filter = || EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::util::SubscriberInitExt;
    let (writer, terminal) = match stream {
        Stream::Stdout => (BoxMakeWriter::new(std::io::stdout), std::io::stdout().is_terminal()),
        Stream::Stderr => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
    };
    // try_init: tests may call this more than once in one process.
    let _ = if settings.json {
        json_subscriber(filter(), writer).try_init()
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(writer)
            .with_ansi(terminal)
            .compact()
            .finish()
            .try_init()
    };
}

/// The format of the logs in Azure: one JSON object per line, the event's fields
/// and its `message` at the top level. The alert queries in
/// `infra-bicep/monitoring.bicep` read these lines (docs/operations.md, "Alerts").
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .finish()
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
