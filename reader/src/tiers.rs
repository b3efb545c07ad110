//! Reading across both tiers: Cosmos first, then the archive.
//!
//! Nothing here writes; reads need read access only (write-through, in
//! `writes`, is what needs more).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tiering::archive::Archive;
use tiering::codec::{self, AgeLookup, ArchiveMeta, CodecError};
use tiering::contract::Contract;
use tiering::layout::{self, LayoutError};
use tiering::listing::{self, Candidate, Page, Tier, TierList, TierLists, Window};
use tiering::record::{AgeField, AgeValue, RawDocument};
use tiering::store::StoreError;
use tracing::{error, info, warn};

use crate::connection::CosmosConnection;
use crate::error::{ARCHIVE, ApiError, COSMOS};

/// Archived bodies fetched at once for a list page.
const FETCH_CONCURRENCY: usize = 8;
/// Copies a list request may download to learn their age, while the archiver has
/// not yet re-stamped them after an age-field change; beyond it, 503.
const MAX_UNSTAMPED_DOWNLOADS: usize = 200;

/// What a record read returns, identical whichever tier served it.
#[derive(Debug, Clone)]
pub struct Served {
    /// `None` when the caller's `If-None-Match` matched (a 304: no body was fetched).
    pub body: Option<Bytes>,
    pub etag: String,
    pub ts: i64,
    pub tier: Tier,
}

/// True when an `If-None-Match` list names `etag` (or is `*`); weak tags compare weakly.
pub fn none_match(if_none_match: &[String], etag: &str) -> bool {
    let strip = |t: &str| t.strip_prefix("W/").unwrap_or(t).to_owned();
    if_none_match.iter().flat_map(|v| v.split(',')).map(str::trim).any(|t| t == "*" || strip(t) == strip(etag))
}

/// Both stores, built once at start-up and shared by every request, and the
/// contract that says what a body is.
#[derive(Debug, Clone)]
pub struct Tiers {
    pub cosmos: CosmosConnection,
    pub archive: Arc<dyn Archive>,
    pub age_field: AgeField,
    pub contract: Arc<Contract>,
    /// Every request answers within this.
    pub request_timeout: Duration,
    /// The most bytes of records a list page holds (`READER_PAGE_MAX_BYTES`).
    pub page_max_bytes: usize,
    /// The current API writes pass through to (`READER_UPSTREAM_URL`); `None`: read-only.
    pub upstream: Option<crate::writes::Upstream>,
    /// Callers' authentication (the profile's `[auth]`; docs/auth.md).
    pub gate: crate::auth::Gate,
}

fn cosmos_err(e: StoreError) -> ApiError {
    ApiError::from_store(COSMOS, e)
}

fn archive_err(e: StoreError) -> ApiError {
    ApiError::from_store(ARCHIVE, e)
}

impl Tiers {
    /// One record: Cosmos if it is there (it is the newer copy), else the archive.
    pub async fn read(&self, customer_id: &str, id: &str, if_none_match: &[String]) -> Result<Served, ApiError> {
        match self.cosmos.get().await?.read(customer_id, id).await {
            Ok(item) => {
                let doc = item.doc;
                let (etag, ts) = doc.etag().ok().zip(doc.ts().ok()).ok_or_else(|| ApiError::Internal {
                    message: "the stored record lacks its system properties".into(),
                    detail: format!("{customer_id}/{id}: no _etag or _ts"),
                })?;
                let body = (!none_match(if_none_match, &etag)).then(|| Bytes::from(self.contract.body(&doc)));
                Ok(Served { body, etag, ts, tier: Tier::Cosmos })
            }
            Err(StoreError::NotFound) => self.read_archived(customer_id, id, if_none_match).await,
            Err(e) => Err(cosmos_err(e)),
        }
    }

    async fn read_archived(&self, customer_id: &str, id: &str, if_none_match: &[String]) -> Result<Served, ApiError> {
        let not_found = || ApiError::NotFound(format!("record {id:?} of customer {customer_id:?} does not exist"));
        let name = match layout::blob_name(customer_id, id) {
            Ok(name) => name,
            // No archived copy can have a name over the limit: the archiver refuses those.
            Err(LayoutError::TooLong(_) | LayoutError::NotOurs(_)) => return Err(not_found()),
        };
        if !if_none_match.is_empty() {
            // A revalidation: the metadata alone can answer 304, without the body.
            let info = match self.archive.head(&name).await {
                Ok(info) => info,
                Err(StoreError::NotFound) => return Err(not_found()),
                Err(e) => return Err(archive_err(e)),
            };
            let meta = ArchiveMeta::from_metadata(&info.metadata).map_err(|e| archive_err(e.into()))?;
            if none_match(if_none_match, &meta.etag) {
                return Ok(Served { body: None, etag: meta.etag, ts: meta.ts, tier: Tier::Archive });
            }
        }
        let stored = match self.archive.get(&name).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound) => return Err(not_found()),
            Err(e) => return Err(archive_err(e)),
        };
        let (doc, meta) = verified(stored.body, &stored.info.metadata).await.map_err(archive_err)?;
        Ok(Served {
            body: Some(Bytes::from(self.contract.body(&doc))),
            etag: meta.etag,
            ts: meta.ts,
            tier: Tier::Archive,
        })
    }

    /// One page of a customer's records across both tiers.
    ///
    /// Cosmos is asked before the archive on purpose: the archiver writes the copy
    /// before it deletes from Cosmos, so a record moving meanwhile is seen in at
    /// least one of the two answers (and listed once if in both).
    ///
    /// Policy for archived copies that cannot be served (corrupt, unreadable
    /// metadata, gone between listing and download): they are left out of the page
    /// with an error log naming the blob, and the listing goes on past them, so one
    /// bad copy never makes a customer's records unpageable. `archiver verify`
    /// finds them; a point read of such a record answers 500 (corrupt) or 404 (gone).
    pub async fn list(&self, customer_id: &str, window: &Window, n: usize) -> Result<Page<Bytes>, ApiError> {
        let field = self.age_field.clone();
        let cosmos_store = self.cosmos.get().await?;
        let slice = cosmos_store
            .customer_records(customer_id, window, n as u32 + 1, self.page_max_bytes)
            .await
            .map_err(cosmos_err)?;
        let cosmos = TierList {
            items: slice
                .docs
                .into_iter()
                .filter_map(|doc| {
                    let age = doc.sort_key(&field)?;
                    let id = doc.id().ok()?;
                    let payload = Bytes::from(self.contract.body(&doc));
                    Some(Candidate { age, id, tier: Tier::Cosmos, shadowed: false, payload })
                })
                .collect(),
            boundary: slice.boundary,
        };
        let (mut archive, listed_etags) = self.archived_candidates(customer_id, window, n + 1).await?;
        let ids: Vec<String> = archive.items.iter().map(|c| c.id.clone()).collect();
        let in_cosmos = cosmos_store.versions(customer_id, &ids).await.map_err(cosmos_err)?;
        for c in &mut archive.items {
            c.shadowed = in_cosmos.contains_key(&c.id);
        }

        let mut page = listing::merge(TierLists { cosmos, archive }, n);
        // At most page_max_bytes of records on a page (at least one): the reader
        // and the host, which buffers the whole answer, hold it in memory. An
        // archived record's size is known from its metadata, before its download.
        let size = |c: &Candidate<Bytes>| match c.tier {
            Tier::Cosmos => c.payload.len() as u64,
            Tier::Archive => listed_etags.get(&c.id).map_or(0, |(_, length)| *length),
        };
        let mut total = 0u64;
        let keep = page
            .items
            .iter()
            .take_while(|c| {
                total += size(c);
                total <= self.page_max_bytes as u64
            })
            .count()
            .max(1);
        if keep < page.items.len() {
            page.items.truncate(keep);
            page.next = page.items.last().map(|c| tiering::listing::Cursor { age: c.age.clone(), id: c.id.clone() });
        }
        // Fetch the archived bodies on this page only, in order, a few at a time.
        let items: Vec<Option<Candidate<Bytes>>> = futures::stream::iter(page.items)
            .map(|c| {
                let etag = listed_etags.get(&c.id).map(|(etag, _)| etag.clone());
                self.with_body(customer_id, c, etag)
            })
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Page { items: items.into_iter().flatten().collect(), next: page.next })
    }

    /// The first `limit` archived records of the customer in the window, ordered by
    /// their age stamps (no downloads), except copies stamped under another age
    /// field: their age comes from the body (or, for `_ts`, the version's `ts`).
    /// Also returns the ETag each candidate was listed at, and its size.
    async fn archived_candidates(
        &self,
        customer_id: &str,
        window: &Window,
        limit: usize,
    ) -> Result<(TierList<Bytes>, HashMap<String, (String, u64)>), ApiError> {
        let field = &self.age_field;
        let mut best = Kept::new(limit);
        let mut etags = HashMap::new();
        let mut unstamped: Vec<(String, String, (String, u64))> = Vec::new();
        let mut blobs = self.archive.list(&layout::partition_prefix(customer_id));
        while let Some(blob) = blobs.next().await {
            let blob = blob.map_err(archive_err)?;
            let Ok((customer, id)) = layout::parse_blob_name(&blob.name) else { continue };
            if customer != customer_id {
                continue;
            }
            let meta = match ArchiveMeta::from_metadata(&blob.metadata) {
                Ok(meta) => meta,
                Err(e) => {
                    error!(blob = %blob.name, error = %e, "archived copy left out of a listing: unreadable metadata");
                    continue;
                }
            };
            match meta.age_under(field) {
                AgeLookup::Known(age) if window.contains(&age, &id) => {
                    etags.insert(id.clone(), (blob.etag, meta.length));
                    best.push(age, id);
                }
                AgeLookup::Known(_) | AgeLookup::Missing => {}
                AgeLookup::NeedsBody => unstamped.push((blob.name, id, (blob.etag, meta.length))),
            }
        }
        if !unstamped.is_empty() {
            if unstamped.len() > MAX_UNSTAMPED_DOWNLOADS {
                return Err(ApiError::Unavailable {
                    tier: ARCHIVE,
                    retry_after: 60,
                    detail: format!(
                        "{} archived copies of this customer are still stamped under another age field; the archiver is re-stamping them",
                        unstamped.len()
                    ),
                });
            }
            info!(count = unstamped.len(), age_field = %field, "listing archived copies stamped under another age field (the archiver re-stamps them)");
            let mut ages = futures::stream::iter(unstamped)
                .map(|(name, id, etag)| async move { (self.age_from_body(&name).await, name, id, etag) })
                .buffer_unordered(FETCH_CONCURRENCY);
            while let Some((age, name, id, etag)) = ages.next().await {
                match age {
                    Ok(Some(age)) if window.contains(&age, &id) => {
                        etags.insert(id.clone(), etag);
                        best.push(age, id);
                    }
                    Ok(_) => {}
                    Err(e @ StoreError::Corrupt(_)) => {
                        error!(blob = %name, error = %e, "archived copy left out of a listing: it fails its integrity check")
                    }
                    Err(e) => return Err(archive_err(e)),
                }
            }
        }
        Ok((best.into_list(), etags))
    }

    /// A copy's listing age under the current field, read from its verified body.
    async fn age_from_body(&self, name: &str) -> Result<Option<AgeValue>, StoreError> {
        let stored = match self.archive.get(name).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (doc, _) = verified(stored.body, &stored.info.metadata).await?;
        Ok(doc.sort_key(&self.age_field))
    }

    /// Archive candidates get their verified body, at the ETag they were listed
    /// at; Cosmos ones have it already. A copy that vanished, changed since the
    /// listing, or fails its integrity check is left out (logged); a store that
    /// cannot be asked fails the page (503).
    async fn with_body(
        &self,
        customer_id: &str,
        mut c: Candidate<Bytes>,
        listed_etag: Option<String>,
    ) -> Result<Option<Candidate<Bytes>>, ApiError> {
        if c.tier == Tier::Cosmos {
            return Ok(Some(c));
        }
        let name = layout::blob_name(customer_id, &c.id).map_err(|e| ApiError::Internal {
            message: "archive listing is inconsistent".into(),
            detail: e.to_string(),
        })?;
        let stored = match self.archive.get(&name).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound) => {
                warn!(blob = %name, "archived copy left out of a listing: gone between listing and download");
                return Ok(None);
            }
            Err(e @ StoreError::Corrupt(_)) => {
                error!(blob = %name, error = %e, "archived copy left out of a listing: it fails its integrity check");
                return Ok(None);
            }
            Err(e) => return Err(archive_err(e)),
        };
        if listed_etag.is_some_and(|etag| etag != stored.info.etag) {
            warn!(blob = %name, "archived copy left out of a listing: replaced since it was listed; it is listed where it is now");
            return Ok(None);
        }
        match verified(stored.body, &stored.info.metadata).await {
            Ok((doc, _)) => {
                c.payload = Bytes::from(self.contract.body(&doc));
                Ok(Some(c))
            }
            Err(e) => {
                error!(blob = %name, error = %e, "archived copy left out of a listing: it fails its integrity check");
                Ok(None)
            }
        }
    }
}

/// The first `limit` candidates seen so far, in listing order, and whether any
/// other was seen (then the list is truncated and carries a boundary). Memory
/// stays O(limit) however many copies a customer has.
struct Kept {
    limit: usize,
    items: Vec<Candidate<Bytes>>,
    truncated: bool,
}

impl Kept {
    fn new(limit: usize) -> Self {
        Self { limit: limit.max(1), items: Vec::new(), truncated: false }
    }

    fn push(&mut self, age: AgeValue, id: String) {
        self.items.push(Candidate { age, id, tier: Tier::Archive, shadowed: false, payload: Bytes::new() });
        if self.items.len() >= 2 * self.limit {
            self.prune();
        }
    }

    fn prune(&mut self) {
        let list = TierList::first(std::mem::take(&mut self.items), self.limit);
        self.truncated |= list.boundary.is_some();
        self.items = list.items;
    }

    fn into_list(mut self) -> TierList<Bytes> {
        self.prune();
        let boundary = if self.truncated {
            self.items.last().map(|c| tiering::listing::Cursor { age: c.age.clone(), id: c.id.clone() })
        } else {
            None
        };
        TierList { items: self.items, boundary }
    }
}

/// Decompresses and checks an archived copy; never returns bytes that failed.
/// The copy is the whole document (archive format 2), and it must be the version
/// its metadata names: what is served (body, `ETag`, `Last-Modified`) is derived
/// from these verified bytes.
async fn verified(stored: Bytes, metadata: &HashMap<String, String>) -> Result<(RawDocument, ArchiveMeta), StoreError> {
    let meta = ArchiveMeta::from_metadata(metadata)?;
    let check = meta.clone();
    // Decompressing 300 KB takes about a millisecond; keep it off the async workers anyway.
    let doc = tokio::task::spawn_blocking(move || {
        let body = codec::decode_verified(&stored, &check)?;
        let doc =
            RawDocument::parse(body).map_err(|e| CodecError::Corrupt(format!("the body is not a document: {e}")))?;
        if doc.etag().ok().as_deref() != Some(check.etag.as_str()) || doc.ts().ok() != Some(check.ts) {
            return Err(CodecError::Corrupt("the body is another version than its metadata names".into()));
        }
        Ok(doc)
    })
    .await
    .map_err(|e| StoreError::Other(format!("decompression task failed: {e}")))??;
    Ok((doc, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_compare_weakly() {
        let tags = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let h = tags(&["\"a\", W/\"b\""]);
        assert!(none_match(&h, "\"a\"") && none_match(&h, "\"b\"") && !none_match(&h, "\"c\""));
        assert!(none_match(&tags(&["*"]), "\"z\""));
        assert!(!none_match(&[], "\"a\""));
        assert!(none_match(&tags(&["\"x\"", "\"a\""]), "\"a\""));
    }
}
