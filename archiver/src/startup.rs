//! Builds an [`Archiver`] from settings and serves it; shared by `main` and the tests.

use std::sync::Arc;

use anyhow::Context;
use tiering::archive::BlobArchive;
use tiering::cosmos::CosmosStore;
use tiering::settings::ArchiverSettings;
use tiering::store::Transport;

use crate::run::Archiver;

/// Connects to both stores and, unless this process only reads (`writes` false:
/// a dry run, a report), makes sure the archive container exists.
pub async fn build(settings: ArchiverSettings, transport: Transport, writes: bool) -> anyhow::Result<Archiver> {
    let cosmos = CosmosStore::connect(&settings.stores, transport).await.context("connecting to Cosmos DB")?;
    let archive = BlobArchive::new(&settings.stores, transport).context("building the Blob client")?;
    if writes {
        archive.ensure_container().await.context("creating the archive container")?;
    }
    Ok(Archiver { cosmos, archive: Arc::new(archive), settings })
}
