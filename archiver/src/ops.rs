//! Operator commands beside the nightly run: verify the whole archive, and
//! restore one archived record to Cosmos.

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tiering::codec::{self, ArchiveMeta};
use tiering::cosmos::create_raw;
use tiering::layout;
use tiering::store::StoreError;

use crate::run::Archiver;

/// Blobs checked at once by [`verify`].
const VERIFY_CONCURRENCY: usize = 8;

/// What `archiver verify` found.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub checked: u64,
    pub bytes_stored: u64,
    /// Blob names whose copy failed its check, with the reason.
    pub corrupt: Vec<(String, String)>,
    /// Blobs under the layout's prefix whose names are not of the layout.
    pub foreign: Vec<String>,
}

/// The outcome of checking one blob.
enum Check {
    Intact(u64),
    Corrupt(String),
    Foreign,
}

/// Downloads every archived copy (or one customer's) and checks it against its
/// metadata: format, length and SHA-256 after decompression.
pub async fn verify(archiver: &Archiver, customer_id: Option<&str>) -> Result<VerifyReport, StoreError> {
    let prefix = customer_id.map(layout::customer_prefix).unwrap_or_else(|| layout::LAYOUT_PREFIX.to_owned());
    let field = archiver.settings.stores.age_field.clone();
    let archive = archiver.archive.clone();
    let mut report = VerifyReport::default();
    let mut checks = archiver
        .archive
        .list(&prefix)
        .map_ok(|info| {
            let (archive, field) = (archive.clone(), field.clone());
            async move {
                if layout::parse_blob_name(&info.name).is_err() {
                    return Ok((info.name, Check::Foreign));
                }
                let stored = archive.get(&info.name).await?;
                let check = match ArchiveMeta::from_metadata(&field, &stored.info.metadata)
                    .and_then(|meta| codec::decode_verified(&stored.body, &meta))
                {
                    Ok(_) => Check::Intact(stored.body.len() as u64),
                    Err(e) => Check::Corrupt(e.to_string()),
                };
                Ok::<_, StoreError>((info.name, check))
            }
        })
        .try_buffer_unordered(VERIFY_CONCURRENCY);
    while let Some((name, check)) = checks.next().await.transpose()? {
        match check {
            Check::Foreign => report.foreign.push(name),
            Check::Corrupt(reason) => {
                report.checked += 1;
                report.corrupt.push((name, reason));
            }
            Check::Intact(size) => {
                report.checked += 1;
                report.bytes_stored += size;
            }
        }
    }
    report.corrupt.sort();
    report.foreign.sort();
    Ok(report)
}

/// Copies one archived record back into Cosmos, after checking the copy.
///
/// Only creates: if Cosmos already holds the id, nothing is written. Cosmos gives
/// the restored document a new `_etag` and `_ts`. The archived copy stays (it is
/// shadowed while the record is in Cosmos, and replaced when it is archived again).
pub async fn restore(archiver: &Archiver, customer_id: &str, id: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let name = layout::blob_name(customer_id, id)?;
    let stored = archiver.archive.get(&name).await.with_context(|| format!("reading {name}"))?;
    let meta = ArchiveMeta::from_metadata(&archiver.settings.stores.age_field, &stored.info.metadata)?;
    let body = codec::decode_verified(&stored.body, &meta)?;
    match create_raw(&archiver.cosmos, customer_id, id, &body).await {
        Ok(()) => Ok(()),
        Err(StoreError::AlreadyExists) => {
            anyhow::bail!("record {id:?} of {customer_id:?} is already in Cosmos; nothing restored")
        }
        Err(e) => Err(e).context("writing to Cosmos"),
    }
}
