//! The list index's entries (`tiering::index`): written for each copy before
//! its record leaves Cosmos, removed (best effort) when a copy goes, and
//! backfilled for copies archived before the index existed or under another
//! age field.
//!
//! Order in the archive protocol: copy, verify, **index entry**, delete from
//! Cosmos. A run stopped between the copy and the entry leaves the record in
//! Cosmos (lists serve it from there) and the next run finds the same version
//! archived, writes the entry and deletes; stopped between the entry and the
//! delete, the record is in both tiers and lists serve it once, from Cosmos. So
//! lists are right at every instant, with no repair step (docs/read-api.md).
//!
//! Readers use the index only once [`tiering::index::INDEX_MARKER`] says every
//! copy has an entry under the current age field; until then they list the
//! partition's copies as before. An entry can outlive its copy; readers skip it.
//! (Entry names and the write and remove helpers are `tiering::index`'s, which
//! the reader's move-back uses too.)

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tiering::archive::{Archive, PutCondition};
use tiering::codec::{AgeLookup, ArchiveMeta};
use tiering::index::{self, complete_for, entry_of, write};
use tiering::layout;
use tiering::record::AgeField;
use tiering::store::StoreError;
use tokio::time::Instant;
use tracing::{error, info};

use crate::lease::LeaseHolds;

/// Where an unfinished backfill resumes (a listing marker), and whether it met
/// copies it could not index yet (then it starts over once it reaches the end).
pub const BACKFILL_STATE: &str = "state/index-backfill";
const K_MARKER: &str = "marker";
const K_PENDING: &str = "pending";
/// Copies listed per page of the backfill.
pub const PAGE: u32 = 1000;

/// What a backfill step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Entries written (or found there).
    pub indexed: u64,
    /// True when every copy has an entry under the field (the marker is written).
    pub complete: bool,
}

/// Writes the entry of every copy under `field`, `concurrency` at a time,
/// `page` copies listed at a time, until `deadline` and while `lease_holds()`;
/// resumes where the last step stopped; once a scan reached the end having
/// indexed every copy, writes the marker that lets readers use the index.
pub async fn backfill(
    archive: &Arc<dyn Archive>,
    field: &AgeField,
    concurrency: usize,
    page: u32,
    deadline: Instant,
    lease_holds: &LeaseHolds<'_>,
) -> Result<BackfillReport, StoreError> {
    let mut report = BackfillReport::default();
    if complete_for(archive.as_ref(), field).await? {
        report.complete = true;
        return Ok(report);
    }
    let (mut state_etag, mut marker, mut pending) = match archive.head(BACKFILL_STATE).await {
        Ok(info) => {
            let find = |k: &str| info.metadata.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v);
            let marker = find(K_MARKER).filter(|m| !m.is_empty()).cloned();
            (Some(info.etag.clone()), marker, find(K_PENDING).is_some_and(|p| p == "true"))
        }
        Err(StoreError::NotFound) => (None, None, false),
        Err(e) => return Err(e),
    };
    info!(age_field = %field.name(), resuming = marker.is_some(), "indexing archived copies for lists");
    let mut reached_end = false;
    while Instant::now() < deadline && lease_holds() {
        let (listed, next) = archive.list_page(layout::LAYOUT_PREFIX, marker.as_deref(), page).await?;
        let mut writes = Vec::new();
        for blob in listed {
            let Ok((pk, id)) = layout::parse_blob_name(&blob.name) else { continue };
            let Ok(meta) = ArchiveMeta::from_metadata(&blob.metadata) else { continue };
            match meta.age_under(field) {
                AgeLookup::Known(_) => match entry_of(&pk, &id, &meta, field) {
                    Some(entry) => writes.push((entry, meta)),
                    None => {
                        // Its entry's name would pass Azure's limit: lists could not
                        // show it, so the index is not complete while it is archived.
                        error!(blob = %blob.name, "an archived copy cannot have a list index entry (its name would be too long); lists keep listing the archive as before until it is restored");
                        pending = true;
                    }
                },
                AgeLookup::Missing => {}
                AgeLookup::NeedsBody => pending = true,
            }
        }
        let archive_ref = archive.clone();
        let mut done = futures::stream::iter(writes)
            .map(|(entry, meta)| {
                let archive = archive_ref.clone();
                async move { write(archive.as_ref(), &entry, &meta).await }
            })
            .buffer_unordered(concurrency.max(1));
        while let Some(result) = done.next().await {
            result?;
            report.indexed += 1;
        }
        match next {
            Some(next) => marker = Some(next),
            None => {
                reached_end = true;
                break;
            }
        }
    }
    if !lease_holds() {
        return Ok(report);
    }
    let state = if reached_end && !pending {
        // Every copy has its entry: readers may use the index from now on.
        let md = HashMap::from([(index::K_MARKER_FIELD.to_owned(), field.name().to_owned())]);
        archive.put(index::INDEX_MARKER, Bytes::new(), md, PutCondition::Absent).await.or_else(|e| match e {
            StoreError::AlreadyExists => Ok(String::new()),
            e => Err(e),
        })?;
        report.complete = complete_for(archive.as_ref(), field).await?;
        if !report.complete {
            // The marker names an earlier field: replace it.
            let info = archive.head(index::INDEX_MARKER).await?;
            let md = HashMap::from([(index::K_MARKER_FIELD.to_owned(), field.name().to_owned())]);
            archive.put(index::INDEX_MARKER, Bytes::new(), md, PutCondition::Matches(info.etag)).await?;
            report.complete = true;
        }
        HashMap::new()
    } else if reached_end {
        // Copies not yet re-stamped were met: scan again from the start next time.
        HashMap::new()
    } else {
        let mut md = HashMap::from([(K_PENDING.to_owned(), pending.to_string())]);
        if let Some(m) = &marker {
            md.insert(K_MARKER.to_owned(), m.clone());
        }
        md
    };
    let condition = state_etag.take().map_or(PutCondition::Absent, PutCondition::Matches);
    match archive.put(BACKFILL_STATE, Bytes::new(), state, condition).await {
        Ok(_) | Err(StoreError::AlreadyExists | StoreError::PreconditionFailed) => {}
        Err(e) => return Err(e),
    }
    info!(indexed = report.indexed, complete = report.complete, "indexing step finished");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use testkit::memory::MemoryArchive;
    use tiering::codec::AgeStamp;
    use tiering::record::AgeValue;

    fn meta(field: &AgeField, date: &str) -> ArchiveMeta {
        ArchiveMeta {
            sha256: "0".repeat(64),
            length: 42,
            etag: "\"e\"".into(),
            ts: 7,
            stamp: AgeStamp::new(field, Some(&AgeValue::Text(date.into()))),
            archived_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_backfill_indexes_every_copy_resuming_and_then_marks_the_index_complete() {
        let memory = MemoryArchive::new();
        let field = AgeField::Iso("invoiceDate".into());
        for i in 0..5 {
            let name = layout::blob_name("c", &format!("r{i}")).unwrap();
            let md = meta(&field, &format!("2020-01-0{}", i + 1)).to_metadata();
            memory.put(&name, Bytes::from_static(b"z"), md, PutCondition::Absent).await.unwrap();
        }
        let archive: Arc<dyn Archive> = Arc::new(memory.clone());
        assert!(!complete_for(archive.as_ref(), &field).await.unwrap());
        // No time: nothing done, nothing marked.
        let none = backfill(&archive, &field, 2, 2, Instant::now(), &|| true).await.unwrap();
        assert_eq!((none.indexed, none.complete), (0, false));
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let done = backfill(&archive, &field, 2, 2, far, &|| true).await.unwrap();
        assert_eq!((done.indexed, done.complete), (5, true));
        assert!(complete_for(archive.as_ref(), &field).await.unwrap());
        let prefix = index::partition_prefix("c", &field);
        let entries: Vec<String> = memory.names().into_iter().filter(|n| n.starts_with(&prefix)).collect();
        assert_eq!(entries.len(), 5);
        let ids: Vec<String> = entries.iter().map(|n| index::parse_entry_name(n, &prefix, &field).unwrap().1).collect();
        assert_eq!(ids, ["r4", "r3", "r2", "r1", "r0"], "newest first");
        // Another field: not complete until its own backfill.
        let other = AgeField::Iso("dueDate".into());
        assert!(!complete_for(archive.as_ref(), &other).await.unwrap());
        let pending = backfill(&archive, &other, 2, 10, far, &|| true).await.unwrap();
        assert_eq!((pending.indexed, pending.complete), (0, false), "stamped under invoiceDate: not yet");
    }
}
