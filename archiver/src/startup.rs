//! Builds an [`Archiver`] from settings and serves it; shared by `main` and the tests.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tiering::archive::BlobArchive;
use tiering::cosmos::CosmosStore;
use tiering::settings::ArchiverSettings;
use tiering::store::Transport;
use tokio::net::TcpListener;

use crate::run::Archiver;

/// Connects to both stores and makes sure the archive container exists.
pub async fn build(settings: ArchiverSettings, transport: Transport) -> anyhow::Result<Archiver> {
    let cosmos = CosmosStore::connect(&settings.stores, transport).await.context("connecting to Cosmos DB")?;
    let archive = BlobArchive::new(&settings.stores, transport).context("building the Blob client")?;
    if !settings.dry_run {
        archive.ensure_container().await.context("creating the archive container")?;
    }
    Ok(Archiver { cosmos, archive: Arc::new(archive), settings })
}

/// Binds `127.0.0.1:port` (0 = any free port) and returns the listener and its real address.
pub async fn bind(port: u16) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Resolves on SIGTERM or Ctrl-C: the host stops handlers with SIGTERM.
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
