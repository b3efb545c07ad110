//! Builds the reader from settings and serves it; shared by `main` and the tests.

use std::sync::Arc;

use anyhow::Context;
use tiering::archive::BlobArchive;
use tiering::cosmos::CosmosStore;
use tiering::settings::StoreSettings;
use tiering::store::Transport;

use crate::tiers::Tiers;

/// Connects both stores once; every request reuses these clients and their connections.
pub async fn build(settings: &StoreSettings, transport: Transport) -> anyhow::Result<Tiers> {
    let cosmos = CosmosStore::connect(settings, transport).await.context("connecting to Cosmos DB")?;
    let archive = BlobArchive::new(settings, transport).context("building the Blob client")?;
    Ok(Tiers { cosmos, archive: Arc::new(archive) })
}
