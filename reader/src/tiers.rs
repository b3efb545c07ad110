//! Reading across both tiers: Cosmos first, then the archive.
//!
//! Nothing here writes; reads need read access only (moving records back, in
//! [`crate::hydrate`], is what needs more).

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
use tracing::{debug, error, info, warn};

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
    /// The most bytes of records a list page holds (`READER_PAGE_MAX_BYTES`).
    pub page_max_bytes: usize,
    /// Whether lists may use the list index (`tiering::index`).
    pub index: Arc<IndexState>,
}

/// Whether the archive's list index holds every copy under the current age
/// field: asked at most once a minute until it does, then every ten minutes (it
/// stays so while the field stays, and a field change restarts the reader; an
/// operator going back deletes the marker).
#[derive(Debug, Default)]
pub struct IndexState {
    ready: std::sync::atomic::AtomicBool,
    checked: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often lists look again whether the index is complete, until it is.
const INDEX_CHECK_EVERY: Duration = Duration::from_secs(60);
/// Once the index is in use, how often lists check it still is (the marker is
/// deleted to go back, say after rolling the archiver back to a release that
/// did not write entries: docs/operations.md).
const INDEX_RECHECK_EVERY: Duration = Duration::from_secs(600);
/// Listing calls one list page may make on the index (each up to 5,000 entries).
const MAX_INDEX_CALLS: usize = 8;

/// The archive side of a list page read from the index.
struct Indexed {
    list: TierList<Bytes>,
    /// Each candidate's uncompressed length, from its entry.
    lengths: HashMap<String, u64>,
    /// Each index listing page read, in order: the marker it was asked from,
    /// and the first entry it returned.
    pages: Vec<(Option<String>, Option<tiering::listing::Cursor>)>,
}

fn cosmos_err(e: StoreError) -> ApiError {
    ApiError::from_store(COSMOS, e)
}

fn archive_err(e: StoreError) -> ApiError {
    ApiError::from_store(ARCHIVE, e)
}

impl Tiers {
    /// One record: Cosmos if it is there (it is the newer copy), else the archive.
    ///
    /// A record moved back between the two reads (a write-through, a restore:
    /// created in Cosmos, then its copy deleted) is in neither answer; so before
    /// a record is called missing, Cosmos is read once more (the move-back
    /// creates before it deletes, so it is there by then).
    pub async fn read(&self, customer_id: &str, id: &str, if_none_match: &[String]) -> Result<Served, ApiError> {
        let cosmos = self.cosmos.get().await?;
        match cosmos.read(customer_id, id).await {
            Ok(item) => self.served(customer_id, id, item.doc, if_none_match),
            Err(StoreError::NotFound) => match self.read_archived(customer_id, id, if_none_match).await {
                Err(ApiError::NotFound(missing)) => match cosmos.read(customer_id, id).await {
                    Ok(item) => self.served(customer_id, id, item.doc, if_none_match),
                    Err(StoreError::NotFound) => Err(ApiError::NotFound(missing)),
                    Err(e) => Err(cosmos_err(e)),
                },
                other => other,
            },
            Err(e) => Err(cosmos_err(e)),
        }
    }

    fn served(
        &self,
        customer_id: &str,
        id: &str,
        doc: RawDocument,
        if_none_match: &[String],
    ) -> Result<Served, ApiError> {
        let (etag, ts) = doc.etag().ok().zip(doc.ts().ok()).ok_or_else(|| ApiError::Internal {
            message: "the stored record lacks its system properties".into(),
            detail: format!("{customer_id}/{id}: no _etag or _ts"),
        })?;
        let body = (!none_match(if_none_match, &etag)).then(|| Bytes::from(self.contract.body(&doc)));
        Ok(Served { body, etag, ts, tier: Tier::Cosmos })
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
    ///
    /// With the list index (`tiering::index`) the archive side reads in
    /// proportion to the page: index entries from `marker` (the token's), and
    /// the page's own copies; the answer's second part is the marker for the
    /// next page. Without it (until the archiver has indexed every copy), the
    /// partition's copies are listed as a whole, and no marker is returned.
    pub async fn list(
        &self,
        customer_id: &str,
        window: &Window,
        n: usize,
        marker: Option<String>,
    ) -> Result<(Page<Bytes>, Option<String>), ApiError> {
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
        let (mut archive, listed_etags, indexed) = if self.index_ready().await {
            let mut indexed = self.indexed_candidates(customer_id, window, n + 1, marker, MAX_INDEX_CALLS).await?;
            let lengths = indexed.lengths.iter().map(|(id, len)| (id.clone(), (String::new(), *len))).collect();
            let list = std::mem::replace(&mut indexed.list, TierList { items: Vec::new(), boundary: None });
            (list, lengths, Some(indexed))
        } else {
            let (list, etags) = self.archived_candidates(customer_id, window, n + 1).await?;
            (list, etags, None)
        };
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
        let next_marker = match (&indexed, &page.next) {
            (Some(indexed), Some(next)) => next_marker(indexed, next),
            _ => None,
        };
        // Fetch the archived bodies on this page only, in order, a few at a time.
        // From the index, a copy is served only at the position its entry names.
        let by_index = indexed.is_some();
        let items: Vec<Option<Candidate<Bytes>>> = futures::stream::iter(page.items)
            .map(|c| {
                let etag = listed_etags.get(&c.id).map(|(etag, _)| etag.clone()).filter(|e| !e.is_empty());
                self.with_body(customer_id, c, etag, by_index)
            })
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok((Page { items: items.into_iter().flatten().collect(), next: page.next }, next_marker))
    }

    /// The ids of a partition's archived records in `window`, in the API's
    /// order: at most `limit` from the newest end (`newest`) or from the oldest
    /// end, and then every record sharing the last one's age, so that an API
    /// which breaks ties otherwise than by id finds the whole tie group hot
    /// (docs/front-mode.md, "Lists"). What front mode moves back before a list
    /// is forwarded. From the list index once complete (in proportion to
    /// `limit` for the newest end), else from a listing of the partition's copies.
    /// True with them when nothing of the window comes after them.
    pub async fn archived_in_window(
        &self,
        customer_id: &str,
        window: &Window,
        limit: usize,
        newest: bool,
    ) -> Result<(Vec<String>, bool), ApiError> {
        let limit = limit.max(1);
        let mut ask = limit + 1;
        loop {
            let (ordered, exhausted) = self.archived_in_order(customer_id, window, ask, newest).await?;
            // Fewer than asked without the window's end: entries dropped as
            // stale duplicates. Asked again for more, never taken for the end.
            let short = !exhausted && ordered.len() < ask;
            if let Some(ids) = cut_after_ties(&ordered, limit).filter(|_| !short) {
                let last = exhausted && ids.len() == ordered.len();
                return Ok((ids, last));
            }
            if exhausted || ask >= MAX_TIE_GROUP {
                if !exhausted {
                    warn!(
                        customer_id,
                        records = ordered.len(),
                        "a tie group of archived records longer than can be moved back at once"
                    );
                }
                return Ok((ordered.into_iter().map(|(_, id)| id).collect(), exhausted));
            }
            ask = (ask * 2).min(MAX_TIE_GROUP);
        }
    }

    /// The first `limit` archived records of the window in the API's order, as
    /// (age, id), and whether they are all the window holds. The index is read
    /// until `limit` are found or the window ends, however many listing calls
    /// that takes (the caller bounds the time): a partition with many records
    /// newer than the window must not look empty.
    async fn archived_in_order(
        &self,
        customer_id: &str,
        window: &Window,
        limit: usize,
        newest: bool,
    ) -> Result<(Vec<(AgeValue, String)>, bool), ApiError> {
        let (mut all, ended): (Vec<(AgeValue, String)>, bool) = if newest && self.index_ready().await {
            let indexed = self.indexed_candidates(customer_id, window, limit, None, usize::MAX).await?;
            let ended = indexed.list.boundary.is_none();
            (indexed.list.items.into_iter().map(|c| (c.age, c.id)).collect(), ended)
        } else {
            // The whole partition is listed: the best `keep` are exact.
            let keep = if newest { limit } else { usize::MAX / 4 };
            let (list, _) = self.archived_candidates(customer_id, window, keep).await?;
            let ended = list.items.len() < keep;
            (list.items.into_iter().map(|c| (c.age, c.id)).collect(), ended)
        };
        if !newest {
            all.reverse();
        }
        let exhausted = ended && all.len() <= limit;
        all.truncate(limit);
        Ok((all, exhausted))
    }

    /// True when lists may read the index ([`IndexState`]).
    async fn index_ready(&self) -> bool {
        use std::sync::atomic::Ordering;
        let ready = self.index.ready.load(Ordering::Acquire);
        {
            let Ok(mut checked) = self.index.checked.lock() else { return ready };
            let every = if ready { INDEX_RECHECK_EVERY } else { INDEX_CHECK_EVERY };
            if checked.is_some_and(|t| t.elapsed() < every) {
                return ready;
            }
            *checked = Some(std::time::Instant::now());
        }
        match tiering::index::complete_for(self.archive.as_ref(), &self.age_field).await {
            Ok(now) => {
                if now != ready {
                    info!(age_field = %self.age_field.name(), index = now, "lists read the list index: {now}");
                }
                self.index.ready.store(now, Ordering::Release);
                now
            }
            Err(e) => {
                warn!(error = %e, "whether the list index is complete could not be read; as before");
                ready
            }
        }
    }

    /// The first archived records of the partition in the window, from the
    /// index: entries from `marker` on, in listing order, until `limit` are in
    /// the window, the window's lower bound is passed, the index ends, or
    /// `max_calls` listing calls were made. A
    /// listing page that holds nothing in the window makes the next one as large
    /// as the service allows (a token from before markers, or a `to` date far
    /// back, starts far from the window).
    async fn indexed_candidates(
        &self,
        customer_id: &str,
        window: &Window,
        limit: usize,
        marker: Option<String>,
        max_calls: usize,
    ) -> Result<Indexed, ApiError> {
        use std::cmp::Ordering;
        use tiering::listing::{Cursor, listing_order};
        let field = &self.age_field;
        let prefix = tiering::index::partition_prefix(customer_id, field);
        let mut fetch = (limit * 2).clamp(10, 5000) as u32;
        let from_token = marker.is_some();
        let mut marker = marker;
        let (mut items, mut lengths, mut pages) = (Vec::new(), HashMap::new(), Vec::new());
        let (mut seen_last, mut ended) = (None::<Cursor>, false);
        for call in 0..max_calls {
            let start = marker.clone();
            let (entries, next) = match self.archive.list_page(&prefix, start.as_deref(), fetch).await {
                Ok(page) => page,
                // A marker the service refuses came from a token: a bad token, not a server error.
                Err(StoreError::Refused(e)) if call == 0 && from_token => {
                    return Err(ApiError::BadRequest(format!("continuationToken is invalid ({e})")));
                }
                Err(e) => return Err(archive_err(e)),
            };
            let (mut first, mut in_window) = (None, 0);
            for entry in entries {
                let Some((age, id)) = tiering::index::parse_entry_name(&entry.name, &prefix, field) else { continue };
                let at = Cursor { age: age.clone(), id: id.clone() };
                first.get_or_insert_with(|| at.clone());
                seen_last = Some(at);
                if window.from.as_ref().is_some_and(|from| age < *from) {
                    // Every later entry is older still: nothing more in the window.
                    ended = true;
                    break;
                }
                if !window.contains(&age, &id) {
                    continue;
                }
                in_window += 1;
                let length = tiering::index::EntryMeta::from_metadata(&entry.metadata).map_or(0, |m| m.length);
                lengths.insert(id.clone(), length);
                items.push(Candidate { age, id, tier: Tier::Archive, shadowed: false, payload: Bytes::new() });
            }
            pages.push((start, first));
            match next {
                Some(next) if !ended => marker = Some(next),
                _ => {
                    ended = true;
                    break;
                }
            }
            if items.len() >= limit {
                break;
            }
            if in_window == 0 {
                fetch = 5000;
            }
        }
        self.drop_stale_duplicates(customer_id, &mut items).await?;
        // Everything up to the last entry looked at is known; never less than the
        // position the page starts after (the listing may not have reached it).
        let boundary = if ended {
            None
        } else {
            match (seen_last, window.after.clone()) {
                (Some(seen), Some(after)) => {
                    let later = listing_order((&seen.age, &seen.id), (&after.age, &after.id)) == Ordering::Greater;
                    Some(if later { seen } else { after })
                }
                (Some(seen), None) => Some(seen),
                (None, Some(after)) => Some(after),
                // Listing pages with nothing in them, and no position to hold on to.
                (None, None) => {
                    return Err(ApiError::Unavailable {
                        tier: ARCHIVE,
                        retry_after: 1,
                        detail: "the list index answered only empty listing pages".into(),
                    });
                }
            }
        };
        Ok(Indexed { list: TierList { items, boundary }, lengths, pages })
    }

    /// A record re-archived under another age value can have two entries on one
    /// page (the old one until it is cleaned up): only the one at the position
    /// its copy has now is kept.
    async fn drop_stale_duplicates(
        &self,
        customer_id: &str,
        items: &mut Vec<Candidate<Bytes>>,
    ) -> Result<(), ApiError> {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for c in items.iter() {
            *count.entry(c.id.as_str()).or_default() += 1;
        }
        let twice: Vec<String> = count.into_iter().filter(|(_, n)| *n > 1).map(|(id, _)| id.to_owned()).collect();
        for id in twice {
            let current = match layout::blob_name(customer_id, &id) {
                Ok(name) => match self.archive.head(&name).await {
                    Ok(info) => {
                        match ArchiveMeta::from_metadata(&info.metadata).map(|m| m.age_under(&self.age_field)) {
                            Ok(AgeLookup::Known(age)) => Some(age),
                            _ => None,
                        }
                    }
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(archive_err(e)),
                },
                Err(_) => None,
            };
            items.retain(|c| c.id != id || current.as_ref() == Some(&c.age));
        }
        Ok(())
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
        at_position: bool,
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
            Ok((doc, _)) if at_position && doc.sort_key(&self.age_field).as_ref() != Some(&c.age) => {
                // An index entry left by an earlier version: the copy is listed
                // at its own entry's position (or it moved back to Cosmos).
                debug!(blob = %name, "a stale list index entry skipped");
                Ok(None)
            }
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

/// The index marker the next page starts listing from, for a page that ends
/// at `next`: the marker of the last listing page read whose first entry is at
/// or before `next`, else the marker this page started from. Every entry after
/// `next` lies at or after it, whatever the service's markers mean: Azurite's
/// "after this name" and Azure's "from this name" both position at or before
/// that first entry, so what a later listing from it can miss (entries written
/// since, before that position) is at or before `next`, passed already.
fn next_marker(indexed: &Indexed, next: &tiering::listing::Cursor) -> Option<String> {
    use std::cmp::Ordering;
    let passed = |at: &tiering::listing::Cursor| {
        tiering::listing::listing_order((&at.age, &at.id), (&next.age, &next.id)) != Ordering::Greater
    };
    let safe = indexed.pages.iter().rev().find(|(_, first)| first.as_ref().is_some_and(passed));
    match safe {
        Some((start, _)) => start.clone(),
        None => indexed.pages.first().and_then(|(start, _)| start.clone()),
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

/// The longest tie group a list request moves back at once.
const MAX_TIE_GROUP: usize = 5000;

/// The ids of `ordered` up to `limit` and then while the age stays the
/// `limit`-th one's; `None` when `ordered` may not hold the whole group (it
/// ends inside it).
fn cut_after_ties(ordered: &[(AgeValue, String)], limit: usize) -> Option<Vec<String>> {
    if ordered.len() <= limit {
        return Some(ordered.iter().map(|(_, id)| id.clone()).collect());
    }
    let edge = &ordered[limit - 1].0;
    let more = ordered[limit..].iter().position(|(age, _)| age != edge)?;
    Some(ordered[..limit + more].iter().map(|(_, id)| id.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_back_takes_the_whole_tie_group_at_its_edge() {
        let day = |d: &str, id: &str| (AgeValue::Text(d.into()), id.to_owned());
        let ordered =
            [day("2025-03", "a"), day("2025-02", "b"), day("2025-02", "c"), day("2025-02", "d"), day("2025-01", "e")];
        let ids = |v: Option<Vec<String>>| v.map(|v| v.join(","));
        assert_eq!(ids(cut_after_ties(&ordered, 1)), Some("a".into()), "no tie at the edge");
        assert_eq!(ids(cut_after_ties(&ordered, 2)), Some("a,b,c,d".into()), "b's day, whole");
        assert_eq!(ids(cut_after_ties(&ordered[..4], 2)), None, "the group may go on past what was read");
        assert_eq!(ids(cut_after_ties(&ordered, 9)), Some("a,b,c,d,e".into()));
    }

    #[test]
    fn the_next_marker_is_where_a_listing_started_at_or_before_the_pages_end() {
        use tiering::listing::Cursor;
        let at = |age: i64, id: &str| Some(Cursor { age: AgeValue::Seconds(age), id: id.into() });
        let indexed = |pages: Vec<(Option<&str>, Option<Cursor>)>| Indexed {
            list: TierList { items: Vec::new(), boundary: None },
            lengths: HashMap::new(),
            pages: pages.into_iter().map(|(m, f)| (m.map(str::to_owned), f)).collect(),
        };
        // Listing pages from the token's marker T: P1 from T (first entry at 90),
        // P2 from M2 (first at 70), P3 from M3 (first at 50); newer sorts first.
        let read = indexed(vec![(Some("T"), at(90, "a")), (Some("M2"), at(70, "a")), (Some("M3"), at(50, "a"))]);
        let next = |age, id| next_marker(&read, &Cursor { age: AgeValue::Seconds(age), id: String::from(id) });
        assert_eq!(next(60, "z").as_deref(), Some("M2"), "P3 begins after the page's end: not from M3");
        assert_eq!(next(70, "a").as_deref(), Some("M2"), "at the page's end itself");
        assert_eq!(next(40, "a").as_deref(), Some("M3"));
        assert_eq!(next(95, "a").as_deref(), Some("T"), "nothing read at or before it: where this page began");
        // An empty listing page says nothing about where it began.
        let gap = indexed(vec![(None, at(90, "a")), (Some("M2"), None), (Some("M3"), at(10, "a"))]);
        assert_eq!(next_marker(&gap, &Cursor { age: AgeValue::Seconds(20), id: "a".into() }), None);
    }

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
