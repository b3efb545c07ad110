//! Holds (docs/operations.md, "Retention and holds"): a hold keeps every
//! archived copy of one partition-key value (a customer): none is expired
//! (`ARCHIVE_RETENTION_DAYS`) nor erased by `archiver forget` while it lasts.
//!
//! Holds are empty blobs under `holds/` in the archive container
//! (`tiering::layout::hold_name`), so a run reads them all in one listing and an
//! operator lists them with `archiver hold --list`. Placing a hold waits for a
//! run in progress (it takes the run lease), so no run that started before the
//! hold can still expire the customer's records after it is placed.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use tiering::archive::{Archive, BlobInfo, PutCondition};
use tiering::layout;
use tiering::record::validate_id;
use tiering::store::StoreError;

use crate::lease::RunLease;
use crate::startup::Archiver;

const K_PLACED_AT: &str = "placedat";
const K_REASON: &str = "reason";

/// A hold on one partition-key value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub partition_key: String,
    /// When it was placed (RFC 3339), as its blob says.
    pub placed_at: Option<String>,
    pub reason: Option<String>,
}

/// Every hold, in partition-key order of their names.
pub async fn holds(archive: &dyn Archive) -> Result<Vec<Hold>, StoreError> {
    let blobs: Vec<BlobInfo> = archive.list(layout::HOLDS_PREFIX).try_collect().await?;
    Ok(blobs
        .into_iter()
        .filter_map(|b| {
            let find = |k: &str| b.metadata.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
            let reason = find(K_REASON)
                .and_then(|r| percent_encoding::percent_decode_str(&r).decode_utf8().ok().map(|r| r.into_owned()));
            Some(Hold { partition_key: layout::parse_hold_name(&b.name)?, placed_at: find(K_PLACED_AT), reason })
        })
        .collect())
}

/// The partition-key values on hold, as a run reads them (one listing).
pub async fn held(archive: &dyn Archive) -> Result<HashSet<String>, StoreError> {
    Ok(holds(archive).await?.into_iter().map(|h| h.partition_key).collect())
}

/// Whether one partition-key value is on hold (one HEAD).
pub async fn is_held(archive: &dyn Archive, partition_key: &str) -> Result<bool, StoreError> {
    match archive.head(&layout::hold_name(partition_key)).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Places a hold (or keeps the one in place), under the run lease, waiting up
/// to `patience` for a run in progress.
pub async fn place(
    archiver: &Archiver,
    partition_key: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
    patience: std::time::Duration,
) -> anyhow::Result<Hold> {
    validate_id("partition key", partition_key)?;
    let lease = RunLease::take(archiver.archive.clone(), patience).await?;
    let mut metadata = HashMap::from([(K_PLACED_AT.to_owned(), now.to_rfc3339_opts(SecondsFormat::Secs, true))]);
    if let Some(reason) = reason {
        let encoded = percent_encoding::utf8_percent_encode(reason, percent_encoding::NON_ALPHANUMERIC);
        metadata.insert(K_REASON.to_owned(), encoded.to_string());
    }
    let name = layout::hold_name(partition_key);
    let placed = match archiver.archive.put(&name, Bytes::new(), metadata, PutCondition::Absent).await {
        Ok(_) => Ok(()),
        // Already on hold: the first hold (and its reason) stays.
        Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    };
    lease.release().await;
    placed?;
    let hold = holds(archiver.archive.as_ref()).await?.into_iter().find(|h| h.partition_key == partition_key);
    hold.ok_or_else(|| anyhow::anyhow!("the hold on {partition_key:?} was written but is not listed"))
}

/// Releases a hold; `false` when there was none.
pub async fn release(archiver: &Archiver, partition_key: &str) -> anyhow::Result<bool> {
    validate_id("partition key", partition_key)?;
    let name = layout::hold_name(partition_key);
    let info = match archiver.archive.head(&name).await {
        Ok(info) => info,
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    match archiver.archive.delete_if_match(&name, &info.etag).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(true),
        Err(e) => Err(e.into()),
    }
}
