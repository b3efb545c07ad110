//! Reading across both tiers: Cosmos first, then the archive.
//!
//! Nothing here writes; the reader's identity needs read access only.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tiering::archive::Archive;
use tiering::codec::{self, ArchiveMeta};
use tiering::cosmos::CosmosStore;
use tiering::layout::{self, LayoutError};
use tiering::listing::{self, Candidate, Page, Tier, TierLists, Window, listing_order};
use tiering::record::AgeField;
use tiering::settings::StoreSettings;
use tiering::store::{StoreError, Transport};
use tracing::warn;

use crate::error::ApiError;

const COSMOS: &str = "Cosmos DB";
const ARCHIVE: &str = "the archive";
/// Archived bodies fetched at once for a list page.
const FETCH_CONCURRENCY: usize = 8;

/// What a record read returns, identical whichever tier served it.
#[derive(Debug, Clone)]
pub struct Served {
    pub body: Bytes,
    pub etag: String,
    pub ts: i64,
    pub tier: Tier,
}

/// The Cosmos client, connected at start-up if Cosmos answers then, else on the
/// first request that needs it: the reader must start (and answer 503) even when
/// Cosmos is down while an instance starts or scales out.
#[derive(Debug, Clone)]
pub struct LazyCosmos {
    cell: Arc<tokio::sync::OnceCell<CosmosStore>>,
    settings: Arc<StoreSettings>,
    transport: Transport,
}

impl LazyCosmos {
    pub fn new(settings: &StoreSettings, transport: Transport, connected: Option<CosmosStore>) -> Self {
        let cell = Arc::new(tokio::sync::OnceCell::new_with(connected));
        Self { cell, settings: Arc::new(settings.clone()), transport }
    }

    pub async fn get(&self) -> Result<&CosmosStore, ApiError> {
        self.cell
            .get_or_try_init(|| CosmosStore::connect(&self.settings, self.transport))
            .await
            .map_err(|e| ApiError::from_store(COSMOS, StoreError::Unavailable(format!("{e:#}"))))
    }
}

/// Both stores, built once at start-up and shared by every request.
#[derive(Debug, Clone)]
pub struct Tiers {
    pub cosmos: LazyCosmos,
    pub archive: Arc<dyn Archive>,
    pub age_field: AgeField,
}

impl Tiers {
    fn field(&self) -> &AgeField {
        &self.age_field
    }

    /// One record: Cosmos if it is there (it is the newer copy), else the archive.
    pub async fn read(&self, customer_id: &str, id: &str) -> Result<Served, ApiError> {
        match self.cosmos.get().await?.read(customer_id, id).await {
            Ok(item) => {
                let doc = item.doc;
                let (etag, ts) = doc.etag().ok().zip(doc.ts().ok()).ok_or_else(|| ApiError::Internal {
                    message: "the stored record lacks its system properties".into(),
                    detail: format!("{customer_id}/{id}: no _etag or _ts"),
                })?;
                let body = Bytes::from(doc.without_system_properties());
                Ok(Served { body, etag, ts, tier: Tier::Cosmos })
            }
            Err(StoreError::NotFound) => self.read_archived(customer_id, id).await,
            Err(e) => Err(ApiError::from_store(COSMOS, e)),
        }
    }

    async fn read_archived(&self, customer_id: &str, id: &str) -> Result<Served, ApiError> {
        let not_found = || ApiError::NotFound(format!("record {id:?} of customer {customer_id:?} does not exist"));
        let name = match layout::blob_name(customer_id, id) {
            Ok(name) => name,
            // No archived copy can have a name over the limit: the archiver refuses those.
            Err(LayoutError::TooLong(_) | LayoutError::NotOurs(_)) => return Err(not_found()),
        };
        let stored = match self.archive.get(&name).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound) => return Err(not_found()),
            Err(e) => return Err(ApiError::from_store(ARCHIVE, e)),
        };
        let (body, meta) = self.verified(stored.body, &stored.info.metadata).await?;
        Ok(Served { body, etag: meta.etag, ts: meta.ts, tier: Tier::Archive })
    }

    /// Decompresses and checks an archived body; never returns bytes that failed.
    async fn verified(
        &self,
        stored: Bytes,
        metadata: &std::collections::HashMap<String, String>,
    ) -> Result<(Bytes, ArchiveMeta), ApiError> {
        let meta = ArchiveMeta::from_metadata(self.field(), metadata)
            .map_err(|e| ApiError::from_store(ARCHIVE, StoreError::Corrupt(e)))?;
        let check = meta.clone();
        // Decompressing 300 KB takes about a millisecond; keep it off the async workers anyway.
        let body = tokio::task::spawn_blocking(move || codec::decode_verified(&stored, &check))
            .await
            .map_err(|e| ApiError::Internal { message: "decompression failed".into(), detail: e.to_string() })?
            .map_err(|e| ApiError::from_store(ARCHIVE, StoreError::Corrupt(e)))?;
        Ok((Bytes::from(body), meta))
    }

    /// One page of a customer's records across both tiers.
    ///
    /// Cosmos is asked before the archive on purpose: the archiver writes the copy
    /// before it deletes from Cosmos, so a record moving meanwhile is seen in at
    /// least one of the two answers (and merged once if in both).
    pub async fn list(&self, customer_id: &str, window: &Window, n: usize) -> Result<Page<Bytes>, ApiError> {
        let field = self.field().clone();
        let cosmos_store = self.cosmos.get().await?;
        let (docs, _) = cosmos_store
            .customer_records(customer_id, window, n as u32 + 1)
            .await
            .map_err(|e| ApiError::from_store(COSMOS, e))?;
        let cosmos = docs
            .into_iter()
            .filter_map(|doc| {
                let age = doc.sort_key(&field)?;
                let id = doc.id().ok()?;
                let payload = Bytes::from(doc.without_system_properties());
                Some(Candidate { age, id, tier: Tier::Cosmos, shadowed: false, payload })
            })
            .collect();

        let mut archive = self.archived_candidates(customer_id, window, n + 1).await?;
        let ids: Vec<String> = archive.iter().map(|c| c.id.clone()).collect();
        let in_cosmos =
            cosmos_store.existing_ids(customer_id, &ids).await.map_err(|e| ApiError::from_store(COSMOS, e))?;
        for c in &mut archive {
            c.shadowed = in_cosmos.contains(&c.id);
        }

        let page = listing::merge(TierLists { cosmos, archive }, n);
        // Fetch the archived bodies on this page only, in order, a few at a time.
        let items: Vec<Option<Candidate<Bytes>>> = futures::stream::iter(page.items)
            .map(|c| self.with_body(customer_id, c))
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Page { items: items.into_iter().flatten().collect(), next: page.next })
    }

    /// The first `limit` archived records of the customer in the window, from blob
    /// metadata alone (no downloads); memory stays O(limit) however many there are.
    async fn archived_candidates(
        &self,
        customer_id: &str,
        window: &Window,
        limit: usize,
    ) -> Result<Vec<Candidate<Bytes>>, ApiError> {
        let field = self.field();
        let mut best: Vec<Candidate<Bytes>> = Vec::new();
        let mut blobs = self.archive.list(&layout::customer_prefix(customer_id));
        while let Some(blob) = blobs.next().await {
            let blob = blob.map_err(|e| ApiError::from_store(ARCHIVE, e))?;
            let Ok((customer, id)) = layout::parse_blob_name(&blob.name) else { continue };
            let Ok(meta) = ArchiveMeta::from_metadata(field, &blob.metadata) else {
                warn!(blob = %blob.name, "archived blob with unreadable metadata left out of a listing");
                continue;
            };
            if customer != customer_id || !window.contains(&meta.age, &id) {
                continue;
            }
            best.push(Candidate { age: meta.age, id, tier: Tier::Archive, shadowed: false, payload: Bytes::new() });
            if best.len() >= 2 * limit {
                keep_first(&mut best, limit);
            }
        }
        keep_first(&mut best, limit);
        Ok(best)
    }

    /// Archive candidates get their verified body; Cosmos ones have it already.
    /// A copy that vanished since the listing (rewritten to Cosmos meanwhile) is left out.
    async fn with_body(
        &self,
        customer_id: &str,
        mut c: Candidate<Bytes>,
    ) -> Result<Option<Candidate<Bytes>>, ApiError> {
        if c.tier == Tier::Cosmos {
            return Ok(Some(c));
        }
        let name = layout::blob_name(customer_id, &c.id).map_err(|e| ApiError::Internal {
            message: "archive listing is inconsistent".into(),
            detail: e.to_string(),
        })?;
        match self.archive.get(&name).await {
            Ok(stored) => {
                c.payload = self.verified(stored.body, &stored.info.metadata).await?.0;
                Ok(Some(c))
            }
            Err(StoreError::NotFound) => {
                warn!(blob = %name, "archived copy vanished between listing and fetch");
                Ok(None)
            }
            Err(e) => Err(ApiError::from_store(ARCHIVE, e)),
        }
    }
}

fn keep_first(list: &mut Vec<Candidate<Bytes>>, limit: usize) {
    list.sort_by(|a, b| listing_order((&a.age, &a.id), (&b.age, &b.id)));
    list.truncate(limit);
}
