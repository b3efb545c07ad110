//! Builds the reader from settings and serves it; shared by `main` and the tests.

use std::sync::Arc;

use anyhow::Context;
use tiering::archive::BlobArchive;
use tiering::cosmos::CosmosStore;
use tiering::settings::StoreSettings;
use tiering::store::Transport;

use crate::tiers::{LazyCosmos, Tiers};

/// Builds both store clients once; every request reuses them and their connections.
///
/// Cosmos is connected now if it answers; if not, the reader starts anyway and
/// connects on the first request that needs Cosmos (answering 503 until then).
pub async fn build(settings: &StoreSettings, transport: Transport) -> anyhow::Result<Tiers> {
    let connected = match CosmosStore::connect(settings, transport).await {
        Ok(store) => Some(store),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "Cosmos DB not reachable at start-up; will connect on demand");
            None
        }
    };
    let archive = BlobArchive::new(settings, transport).context("building the Blob client")?;
    Ok(Tiers {
        cosmos: LazyCosmos::new(settings, transport, connected),
        archive: Arc::new(archive),
        age_field: settings.age_field.clone(),
    })
}
