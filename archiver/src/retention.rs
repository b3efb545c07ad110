//! Retention by business date (docs/operations.md, "Retention and holds").
//!
//! With `ARCHIVE_RETENTION_DAYS`, the nightly run deletes archived copies whose
//! age value (under the current `ARCHIVE_AGE_FIELD`, read from the copy's
//! metadata, never its body) is older than that many days: each at the ETag it
//! was listed at, so a copy replaced since is left for a later run; only while
//! the run lease holds; in a bounded share of the run's time, resuming the next
//! night where it stopped. A copy whose age is not known from its metadata (no
//! value, or stamped under another field and not yet re-stamped) is kept, and so
//! is every copy of a partition-key value on hold ([`crate::holds`]).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tiering::archive::{Archive, BlobInfo, PutCondition};
use tiering::codec::{AgeLookup, ArchiveMeta};
use tiering::layout;
use tiering::record::{AgeField, AgeValue};
use tiering::store::StoreError;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::lease::LeaseHolds;

/// Where the expiry scan stopped, so the next run resumes there (the listing
/// marker of the page it did not finish).
pub const EXPIRY_STATE: &str = "state/expiry";
const K_MARKER: &str = "marker";
/// Copies listed per page of the expiry scan.
pub const PAGE: u32 = 1000;

/// What retention makes of one listed copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Within retention, or its age is not known from its metadata: kept.
    Keep,
    /// Past retention, but its partition is on hold: kept, counted.
    Held,
    /// Past retention: deleted (at its listed ETag).
    Expire,
}

/// The decision for a copy with metadata `meta`, under `field`, against the
/// retention cutoff (a copy dated strictly before it has expired). Pure.
pub fn expiry(meta: Option<&ArchiveMeta>, field: &AgeField, cutoff: &AgeValue, on_hold: bool) -> Expiry {
    let Some(meta) = meta else { return Expiry::Keep };
    match meta.age_under(field) {
        AgeLookup::Known(age) if age < *cutoff => {
            if on_hold {
                Expiry::Held
            } else {
                Expiry::Expire
            }
        }
        AgeLookup::Known(_) | AgeLookup::Missing | AgeLookup::NeedsBody => Expiry::Keep,
    }
}

/// What an expiry step did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryReport {
    /// Copies deleted (dry run: that would be).
    pub expired: u64,
    /// Their stored (compressed) and original bytes.
    pub expired_bytes_stored: u64,
    pub expired_bytes_raw: u64,
    /// Copies past retention kept for a hold.
    pub held: u64,
    /// Copies past retention that changed since they were listed (left for a later run).
    pub changed: u64,
    /// True when the scan reached the end of the archive.
    pub complete: bool,
}

/// Deletes (unless `dry_run`) every copy past `cutoff` not on hold, listing
/// `page` at a time, until `deadline` and while `lease_holds()`. Resumes where
/// the last scan stopped (unless `dry_run`, which always scans from the start
/// and records nothing).
#[allow(clippy::too_many_arguments)]
pub async fn expire(
    archive: &Arc<dyn Archive>,
    field: &AgeField,
    cutoff: &AgeValue,
    held: &HashSet<String>,
    dry_run: bool,
    page: u32,
    deadline: Instant,
    lease_holds: &LeaseHolds<'_>,
) -> Result<ExpiryReport, StoreError> {
    let mut report = ExpiryReport::default();
    let state = if dry_run { None } else { read_state(archive.as_ref()).await? };
    let mut marker = state.as_ref().and_then(|(_, m)| m.clone());
    let mut state_etag = state.map(|(etag, _)| etag);
    loop {
        if !dry_run && !lease_holds() {
            // No lease, no writes: not even where the scan stopped.
            return Ok(report);
        }
        if Instant::now() >= deadline {
            break;
        }
        let (listed, next) = archive.list_page(layout::LAYOUT_PREFIX, marker.as_deref(), page).await?;
        for blob in listed {
            // A blob under the layout's prefix that is not of the layout is not ours to expire.
            let Ok((pk, _)) = layout::parse_blob_name(&blob.name) else { continue };
            let meta = ArchiveMeta::from_metadata(&blob.metadata).ok();
            match expiry(meta.as_ref(), field, cutoff, held.contains(&pk)) {
                Expiry::Keep => {}
                Expiry::Held => report.held += 1,
                Expiry::Expire if dry_run => report.count(&blob, meta.as_ref()),
                Expiry::Expire => {
                    if !lease_holds() {
                        // The page is left unfinished: the next run lists it again.
                        return Ok(report);
                    }
                    match archive.delete_if_match(&blob.name, &blob.etag).await {
                        Ok(()) => {
                            report.count(&blob, meta.as_ref());
                            if let Some(meta) = &meta {
                                tiering::index::remove_for_copy(archive.as_ref(), &blob.name, meta).await;
                            }
                        }
                        Err(StoreError::PreconditionFailed | StoreError::NotFound) => report.changed += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        match next {
            Some(next) => marker = Some(next),
            None => {
                report.complete = true;
                marker = None;
                break;
            }
        }
    }
    if dry_run {
        return Ok(report);
    }
    finish(archive.as_ref(), report, marker, &mut state_etag).await
}

impl ExpiryReport {
    fn count(&mut self, blob: &BlobInfo, meta: Option<&ArchiveMeta>) {
        self.expired += 1;
        self.expired_bytes_stored += blob.size;
        self.expired_bytes_raw += meta.map_or(0, |m| m.length);
    }
}

/// Records where the next scan starts (the start again once one reached the end).
async fn finish(
    archive: &dyn Archive,
    report: ExpiryReport,
    marker: Option<String>,
    state_etag: &mut Option<String>,
) -> Result<ExpiryReport, StoreError> {
    let metadata = marker.iter().map(|m| (K_MARKER.to_owned(), m.clone())).collect();
    let condition = state_etag.take().map_or(PutCondition::Absent, PutCondition::Matches);
    match archive.put(EXPIRY_STATE, Bytes::new(), metadata, condition).await {
        Ok(_) => {}
        // Another writer (a run after a lapsed lease) moved it: theirs stands.
        Err(StoreError::AlreadyExists | StoreError::PreconditionFailed) => {
            warn!("the expiry position was written by another run meanwhile; theirs stands");
        }
        Err(e) => return Err(e),
    }
    info!(expired = report.expired, held = report.held, complete = report.complete, "expiry step finished");
    Ok(report)
}

/// The state blob's ETag and the marker it records, if it exists.
async fn read_state(archive: &dyn Archive) -> Result<Option<(String, Option<String>)>, StoreError> {
    match archive.head(EXPIRY_STATE).await {
        Ok(info) => {
            let marker = info.metadata.iter().find(|(k, _)| k.eq_ignore_ascii_case(K_MARKER)).map(|(_, v)| v.clone());
            Ok(Some((info.etag, marker.filter(|m| !m.is_empty()))))
        }
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::memory::MemoryArchive;
    use tiering::codec::AgeStamp;

    fn meta(field: &AgeField, value: Option<&str>, ts: i64) -> ArchiveMeta {
        ArchiveMeta {
            sha256: "0".repeat(64),
            length: 10,
            etag: "\"e\"".into(),
            ts,
            stamp: AgeStamp::new(field, value.map(|v| AgeValue::Text(v.into())).as_ref()),
            archived_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_a_known_age_past_the_cutoff_expires_and_a_hold_keeps_it() {
        let field = AgeField::Iso("invoiceDate".into());
        let cutoff = AgeValue::Text("2020-01-01".into());
        let old = meta(&field, Some("2019-12-31"), 1);
        let table = [
            (Some(old.clone()), &field, false, Expiry::Expire),
            (Some(old.clone()), &field, true, Expiry::Held),
            (Some(meta(&field, Some("2020-01-01"), 1)), &field, false, Expiry::Keep),
            (Some(meta(&field, Some("2021-06-01"), 1)), &field, false, Expiry::Keep),
            (Some(meta(&field, None, 1)), &field, false, Expiry::Keep),
            (None, &field, false, Expiry::Keep),
        ];
        for (m, f, hold, want) in table {
            assert_eq!(expiry(m.as_ref(), f, &cutoff, hold), want, "{m:?} hold {hold}");
        }
        // Stamped under another field and not yet re-stamped: its age is not known.
        let other = AgeField::Iso("dueDate".into());
        assert_eq!(expiry(Some(&old), &other, &AgeValue::Text("2030-01-01".into()), false), Expiry::Keep);
        // `_ts` is always known.
        assert_eq!(expiry(Some(&old), &AgeField::Ts, &AgeValue::Seconds(2), false), Expiry::Expire);
        assert_eq!(expiry(Some(&old), &AgeField::Ts, &AgeValue::Seconds(1), false), Expiry::Keep);
    }

    async fn put(archive: &MemoryArchive, pk: &str, id: &str, date: &str) -> String {
        let field = AgeField::Iso("invoiceDate".into());
        let name = layout::blob_name(pk, id).unwrap();
        archive
            .put(&name, Bytes::from_static(b"zzz"), meta(&field, Some(date), 1).to_metadata(), PutCondition::Absent)
            .await
            .unwrap();
        name
    }

    #[tokio::test]
    async fn expiry_deletes_past_retention_at_the_listed_etag_and_resumes_where_it_stopped() {
        let memory = MemoryArchive::new();
        let field = AgeField::Iso("invoiceDate".into());
        let cutoff = AgeValue::Text("2020-01-01".into());
        let old = put(&memory, "c1", "old", "2018-05-01").await;
        let kept = put(&memory, "c1", "new", "2024-05-01").await;
        let held_copy = put(&memory, "c2", "old", "2018-05-01").await;
        let archive: Arc<dyn Archive> = Arc::new(memory.clone());
        let held = HashSet::from(["c2".to_owned()]);
        let far = Instant::now() + std::time::Duration::from_secs(60);

        let dry = expire(&archive, &field, &cutoff, &held, true, PAGE, far, &|| true).await.unwrap();
        assert_eq!((dry.expired, dry.held, dry.complete), (1, 1, true));
        assert_eq!(memory.names().len(), 3, "a dry run deletes nothing");
        assert!(archive.head(EXPIRY_STATE).await.is_err(), "nor records where it stopped");

        // Without the lease nothing goes.
        let lapsing = expire(&archive, &field, &cutoff, &held, false, PAGE, far, &|| false).await.unwrap();
        assert_eq!((lapsing.expired, lapsing.complete), (0, false));
        assert!(archive.head(&old).await.is_ok());

        let done = expire(&archive, &field, &cutoff, &held, false, PAGE, far, &|| true).await.unwrap();
        assert_eq!((done.expired, done.held, done.expired_bytes_stored, done.complete), (1, 1, 3, true));
        assert!(archive.head(&old).await.is_err() && archive.head(&kept).await.is_ok());
        assert!(archive.head(&held_copy).await.is_ok(), "held");
    }
}
