//! Builds the reader from settings and serves it; shared by `main` and the tests.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tiering::archive::BlobArchive;
use tiering::cosmos::{ConnectError, CosmosStore};
use tiering::settings::ReaderSettings;
use tiering::store::Transport;

use crate::tiers::{CosmosConnection, Tiers};

/// How long start-up waits for Cosmos before it goes on without it.
pub const STARTUP_CONNECT_LIMIT: Duration = Duration::from_secs(3);

/// Builds both store clients once; every request reuses them and their connections.
///
/// Cosmos is connected now if it answers within [`STARTUP_CONNECT_LIMIT`]; if
/// not, the reader starts anyway, answers 503 and keeps reconnecting in the
/// background. The host gives a handler 30 to 60 seconds to answer its first
/// probe, so start-up never waits on a slow store.
pub async fn build(settings: &ReaderSettings, transport: Transport) -> anyhow::Result<Tiers> {
    let stores = &settings.stores;
    let connected = match tokio::time::timeout(STARTUP_CONNECT_LIMIT, CosmosStore::connect(stores, transport)).await {
        Ok(Ok(store)) => Some(store),
        // Another partition key than the settings say: refuse to start.
        Ok(Err(ConnectError::Misconfigured(why))) => anyhow::bail!("{why}"),
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "Cosmos DB not reachable at start-up; reconnecting in the background");
            None
        }
        Err(_) => {
            tracing::warn!("Cosmos DB did not answer at start-up; reconnecting in the background");
            None
        }
    };
    let archive = BlobArchive::new(stores, transport).context("building the Blob client")?;
    Ok(Tiers {
        cosmos: CosmosConnection::new(stores, transport, connected),
        archive: Arc::new(archive),
        age_field: stores.age_field.clone(),
        contract: Arc::new(settings.contract.clone()),
        request_timeout: settings.request_timeout,
    })
}
