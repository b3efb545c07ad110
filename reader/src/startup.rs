//! Builds the reader from settings and serves it; shared by `main` and the tests.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tiering::archive::BlobArchive;
use tiering::settings::ReaderSettings;
use tiering::store::Transport;

use crate::app::App;
use crate::connection::CosmosConnection;
use crate::error::ApiError;
use crate::forward::Upstream;
use crate::tiers::Tiers;

/// How long start-up waits for Cosmos before it goes on without it (the connect
/// goes on in the background: see [`crate::connection`]).
pub const STARTUP_CONNECT_LIMIT: Duration = Duration::from_secs(3);

/// Builds both store clients once; every request reuses them and their connections.
///
/// Cosmos is connecting from now on; start-up waits for it at most
/// [`STARTUP_CONNECT_LIMIT`], long enough to refuse settings that do not
/// describe the container (another partition key) and short enough that the
/// host's first probe (it gives a handler 30 to 60 seconds) never waits on a
/// slow store. Requests arriving during a slow first connect wait for it.
pub async fn build(settings: &ReaderSettings, transport: Transport) -> anyhow::Result<App> {
    let stores = &settings.stores;
    let cosmos = CosmosConnection::start(stores, transport);
    match cosmos.first_connect(STARTUP_CONNECT_LIMIT).await {
        Ok(()) => {}
        // Another partition key than the settings say: refuse to start.
        Err(ApiError::Internal { detail, .. }) => anyhow::bail!("{detail}"),
        Err(_) => tracing::warn!("Cosmos DB is not connected at start-up; connecting in the background"),
    }
    let contract = Arc::new(settings.contract.clone());
    let gate = crate::auth::Gate::new(&contract, settings.request_timeout)
        .context("setting up the callers' authentication")?;
    tracing::info!(auth = contract.auth.mode(), "callers' authentication");
    let archive = BlobArchive::new(stores, transport).context("building the Blob client")?;
    let tiers = Tiers {
        cosmos,
        archive: Arc::new(archive),
        age_field: stores.age_field.clone(),
        contract: contract.clone(),
        page_max_bytes: settings.page_max_bytes,
        index: Default::default(),
    };
    let upstream = match &settings.upstream {
        None => None,
        Some(url) => {
            // Writes and front mode have their own, longer limits (writes.rs, front.rs).
            let upstream = Upstream::new(url.clone(), settings.request_timeout).context("the current API")?;
            match &contract.front {
                Some(_) => tracing::info!(upstream = %url, "front mode: every request goes to the current API"),
                None if contract.writes.any() => {
                    let writes = &contract.writes;
                    tracing::info!(upstream = %url, methods = ?writes.methods, sub_paths = writes.sub_paths, "write-through on")
                }
                None => {
                    tracing::warn!(upstream = %url, "READER_UPSTREAM_URL is set, but the contract profile names no writes ([writes]): read-only")
                }
            }
            Some(upstream)
        }
    };
    anyhow::ensure!(
        contract.front.is_none() || upstream.is_some(),
        "the contract profile's [front] needs the current API: set READER_UPSTREAM_URL or front.upstream"
    );
    Ok(App {
        tiers,
        contract,
        gate,
        upstream,
        request_timeout: settings.request_timeout,
        list_moveback_max: settings.list_moveback_max,
    })
}
