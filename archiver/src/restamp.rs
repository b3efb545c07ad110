//! Bringing archived copies' age stamps up to the current `ARCHIVE_AGE_FIELD`.
//!
//! Listings order archived records by the age stamp in their metadata, so they
//! need no download. After the age field changes, a copy stamped under the old
//! field still reads and lists correctly (the reader then takes the age from the
//! body), but each listing pays a download for it. The nightly run therefore
//! re-stamps such copies in the time its budget leaves, a few at a time, each
//! only if it is unchanged since it was listed, and records in a marker blob that
//! every copy carries the current field's stamp, so that later runs skip the scan.
//!
//! `_ts` needs no stamp (a copy's `ts` is its `_ts`), so nothing happens while it
//! is the age field.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tiering::archive::{Archive, PutCondition};
use tiering::codec::{self, AgeStamp, ArchiveMeta};
use tiering::layout;
use tiering::record::{AgeField, RawDocument};
use tiering::store::StoreError;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::lease::LeaseHolds;

/// The marker blob: its `agefield` metadata names the field every copy is stamped under.
pub const STAMP_MARKER: &str = "state/age-stamps";
const K_FIELD: &str = "agefield";

/// What a re-stamping step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestampReport {
    /// Copies whose stamp was rewritten.
    pub restamped: u64,
    /// True when every copy now carries the current field's stamp.
    pub complete: bool,
}

/// One copy's new stamp, or why it has none.
enum Step {
    Done,
    /// Rewritten or removed by someone else since it was listed (with a fresh stamp),
    /// or unusable (unreadable metadata, failed integrity: listings leave it out
    /// anyway, and `archiver verify` reports it).
    Skipped,
    /// Changed under us: left for a later run.
    Pending,
}

/// Re-stamps copies of `archive` stamped under another field than `field`,
/// `concurrency` at a time, until `deadline` and while `lease_holds()` (the run
/// lease). Stops listing as soon as the time is spent.
pub async fn restamp(
    archive: &Arc<dyn Archive>,
    field: &AgeField,
    concurrency: usize,
    deadline: Instant,
    lease_holds: &LeaseHolds<'_>,
) -> Result<RestampReport, StoreError> {
    let AgeField::Iso(name) = field else { return Ok(RestampReport { restamped: 0, complete: true }) };
    let marker = match archive.head(STAMP_MARKER).await {
        Ok(info) => Some(info),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e),
    };
    if marker.as_ref().and_then(|m| m.metadata.get(K_FIELD)) == Some(name) {
        return Ok(RestampReport { restamped: 0, complete: true });
    }
    info!(age_field = %name, "re-stamping archived copies under the current age field");
    let mut report = RestampReport::default();
    let mut pending = 0u64;
    // Owned captures only: the step futures must be `Send` for any borrow.
    let (owned_field, owned_name) = (field.clone(), name.clone());
    let owned_archive = archive.clone();
    let in_time = || Instant::now() < deadline && lease_holds();
    let steps = archive
        .list(layout::LAYOUT_PREFIX)
        .try_take_while(|_| std::future::ready(Ok(in_time())))
        .try_filter(move |blob| {
            let stale = ArchiveMeta::from_metadata(&blob.metadata).map_or(true, |m| m.stamp.field != owned_name);
            std::future::ready(stale)
        })
        .map_ok(move |blob| {
            let (archive, field) = (owned_archive.clone(), owned_field.clone());
            async move { restamp_one(archive.as_ref(), &field, &blob.name, &blob.etag).await }
        })
        .try_buffer_unordered(concurrency.max(1));
    let mut steps = std::pin::pin!(steps);
    while let Some(step) = steps.next().await.transpose()? {
        match step {
            Step::Done => report.restamped += 1,
            Step::Pending => pending += 1,
            Step::Skipped => {}
        }
    }
    // The listing ended early when time ran out: then not everything was seen.
    report.complete = in_time() && pending == 0;
    if report.complete {
        let md = HashMap::from([(K_FIELD.to_owned(), name.clone())]);
        let condition = marker.map_or(PutCondition::Absent, |m| PutCondition::Matches(m.etag));
        archive.put(STAMP_MARKER, Bytes::new(), md, condition).await?;
    }
    info!(restamped = report.restamped, pending, complete = report.complete, "re-stamping step finished");
    Ok(report)
}

async fn restamp_one(archive: &dyn Archive, field: &AgeField, name: &str, etag: &str) -> Result<Step, StoreError> {
    let stored = match archive.get(name).await {
        Ok(stored) if stored.info.etag == etag => stored,
        // Changed or gone since it was listed: whoever changed it wrote a fresh stamp.
        Ok(_) | Err(StoreError::NotFound) => return Ok(Step::Skipped),
        Err(StoreError::Corrupt(e)) => {
            warn!(blob = %name, error = %e, "archived copy cannot be re-stamped: it fails its integrity check");
            return Ok(Step::Skipped);
        }
        Err(e) => return Err(e),
    };
    let Ok(mut meta) = ArchiveMeta::from_metadata(&stored.info.metadata) else {
        warn!(blob = %name, "archived copy cannot be re-stamped: its metadata is unreadable");
        return Ok(Step::Skipped);
    };
    let check = meta.clone();
    let body = tokio::task::spawn_blocking(move || codec::decode_verified(&stored.body, &check))
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let Ok(body) = body else {
        warn!(blob = %name, "archived copy cannot be re-stamped: it fails its integrity check");
        return Ok(Step::Skipped);
    };
    // The same value a Cosmos list query orders by (docs/read-api.md).
    let value = RawDocument::parse(body).ok().and_then(|doc| doc.sort_key(field));
    meta.stamp = AgeStamp::new(field, value.as_ref());
    match archive.set_metadata(name, meta.to_metadata(), etag).await {
        Ok(_) => Ok(Step::Done),
        Err(StoreError::PreconditionFailed | StoreError::NotFound) => Ok(Step::Pending),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use testkit::hooks::{HookedArchive, Hooks, hook};
    use testkit::memory::MemoryArchive;
    use tiering::codec::AgeLookup;
    use tiering::record::AgeValue;

    const HOLDS: &LeaseHolds<'static> = &|| true;

    /// Puts an archived copy of `{"id":..,"invoiceDate":..}` stamped under `_ts`.
    async fn put_copy(archive: &MemoryArchive, id: &str, date: &str) -> String {
        let body = format!(r#"{{"id":"{id}","invoiceDate":"{date}"}}"#).into_bytes();
        let meta = ArchiveMeta {
            sha256: codec::sha256_hex(&body),
            length: body.len() as u64,
            etag: "\"e\"".into(),
            ts: 1_700_000_000,
            stamp: AgeStamp::new(&AgeField::Ts, Some(&AgeValue::Seconds(1_700_000_000))),
            archived_at: chrono::Utc::now(),
        };
        let name = layout::blob_name("c1", id).unwrap();
        archive.put(&name, codec::compress(&body).into(), meta.to_metadata(), PutCondition::Absent).await.unwrap();
        name
    }

    async fn age_of(archive: &MemoryArchive, name: &str, field: &AgeField) -> AgeLookup {
        ArchiveMeta::from_metadata(&archive.head(name).await.unwrap().metadata).unwrap().age_under(field)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn copies_are_stamped_under_the_new_field_once_and_later_runs_skip_the_scan() {
        let memory = MemoryArchive::new();
        let field = AgeField::Iso("invoiceDate".into());
        let a = put_copy(&memory, "a", "2025-01-31").await;
        let b = put_copy(&memory, "b", "2024-12-01").await;
        let archive: Arc<dyn Archive> = Arc::new(memory.clone());
        let report = restamp(&archive, &field, 4, soon(), HOLDS).await.unwrap();
        assert_eq!(report, RestampReport { restamped: 2, complete: true });
        assert_eq!(age_of(&memory, &a, &field).await, AgeLookup::Known(AgeValue::Text("2025-01-31".into())));
        assert_eq!(age_of(&memory, &b, &field).await, AgeLookup::Known(AgeValue::Text("2024-12-01".into())));

        // The marker spares the next run its listing.
        let listed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = listed.clone();
        let hooks = Hooks {
            before_list: hook(move |_| {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {}
            }),
            ..Default::default()
        };
        let watched: Arc<dyn Archive> = Arc::new(HookedArchive { inner: archive.clone(), hooks });
        assert_eq!(
            restamp(&watched, &field, 4, soon(), HOLDS).await.unwrap(),
            RestampReport { restamped: 0, complete: true }
        );
        assert_eq!(listed.load(std::sync::atomic::Ordering::SeqCst), 0);
        // `_ts` needs no stamp at all.
        assert!(restamp(&watched, &AgeField::Ts, 4, soon(), HOLDS).await.unwrap().complete);
    }

    #[tokio::test(start_paused = true)]
    async fn restamping_stops_at_its_deadline_or_when_the_lease_may_lapse_and_leaves_no_marker() {
        let memory = MemoryArchive::new();
        let field = AgeField::Iso("invoiceDate".into());
        let a = put_copy(&memory, "a", "2025-01-31").await;
        let archive: Arc<dyn Archive> = Arc::new(memory.clone());
        let deadline = Instant::now() + Duration::from_secs(5);
        tokio::time::sleep(Duration::from_secs(6)).await;
        let late = restamp(&archive, &field, 4, deadline, HOLDS).await.unwrap();
        assert_eq!(late, RestampReport { restamped: 0, complete: false });
        let lapsing = restamp(&archive, &field, 4, soon(), &|| false).await.unwrap();
        assert!(!lapsing.complete);
        assert_eq!(age_of(&memory, &a, &field).await, AgeLookup::NeedsBody, "nothing stamped");
        assert!(memory.head(STAMP_MARKER).await.is_err(), "no marker while copies are left");
    }

    #[tokio::test]
    async fn a_copy_that_fails_its_check_is_skipped_and_does_not_hold_the_rest_back() {
        let memory = MemoryArchive::new();
        let field = AgeField::Iso("invoiceDate".into());
        let bad = put_copy(&memory, "bad", "2025-01-31").await;
        let good = put_copy(&memory, "good", "2025-02-28").await;
        memory.damage(&bad, codec::compress(b"{}").into());
        let archive: Arc<dyn Archive> = Arc::new(memory.clone());
        let report = restamp(&archive, &field, 1, soon(), HOLDS).await.unwrap();
        assert_eq!(report, RestampReport { restamped: 1, complete: true });
        assert_eq!(age_of(&memory, &good, &field).await, AgeLookup::Known(AgeValue::Text("2025-02-28".into())));
        assert_eq!(age_of(&memory, &bad, &field).await, AgeLookup::NeedsBody);
    }
}
