//! Operator commands beside the nightly run (docs/operations.md): verify the
//! archive, find and withdraw copies shadowed by another version in Cosmos, erase
//! a record from both tiers, and restore an archived record to Cosmos.

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tiering::archive::BlobInfo;
use tiering::codec::{self, ArchiveMeta};
use tiering::layout;
use tiering::moveback::{self, MovedBack};
use tiering::record::validate_id;
use tiering::store::StoreError;

use crate::lease::{LeaseHolds, RunLease};
use crate::startup::Archiver;

/// Blobs checked at once by [`verify`].
const VERIFY_CONCURRENCY: usize = 8;
/// Ids looked up in Cosmos per query by [`shadowed`].
const SHADOW_BATCH: usize = 100;

fn prefix_for(customer_id: Option<&str>) -> String {
    customer_id.map(layout::partition_prefix).unwrap_or_else(|| layout::LAYOUT_PREFIX.to_owned())
}

/// What `archiver verify` found.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub checked: u64,
    pub bytes_stored: u64,
    /// Blob names whose copy failed its check, with the reason.
    pub corrupt: Vec<(String, String)>,
    /// Copies written in another archive format (named by blob, with the format
    /// found): never served, and to be restored by the release that wrote them.
    pub unsupported_format: Vec<(String, String)>,
    /// Blobs under the layout's prefix whose names are not of the layout.
    pub foreign: Vec<String>,
    /// Copies listed but gone by the time they were downloaded (restored, forgotten, withdrawn).
    pub vanished: u64,
}

/// The outcome of checking one blob.
enum Check {
    Intact(u64),
    Corrupt(String),
    UnsupportedFormat(String),
    Foreign,
    Vanished,
}

/// Downloads every archived copy (or one customer's) and checks it against its
/// metadata: format, length and SHA-256 after decompression.
pub async fn verify(archiver: &Archiver, customer_id: Option<&str>) -> Result<VerifyReport, StoreError> {
    let archive = archiver.archive.clone();
    let mut report = VerifyReport::default();
    let mut checks = archiver
        .archive
        .list(&prefix_for(customer_id))
        .map_ok(|info| {
            let archive = archive.clone();
            async move {
                if layout::parse_blob_name(&info.name).is_err() {
                    return Ok((info.name, Check::Foreign));
                }
                let stored = match archive.get(&info.name).await {
                    Ok(stored) => stored,
                    Err(StoreError::NotFound) => return Ok((info.name, Check::Vanished)),
                    Err(StoreError::Corrupt(e)) => return Ok((info.name, Check::Corrupt(e.to_string()))),
                    Err(e) => return Err(e),
                };
                let check = match ArchiveMeta::from_metadata(&stored.info.metadata)
                    .and_then(|meta| codec::decode_verified(&stored.body, &meta))
                {
                    Ok(_) => Check::Intact(stored.body.len() as u64),
                    Err(codec::CodecError::UnsupportedFormat(format)) => Check::UnsupportedFormat(format),
                    Err(e) => Check::Corrupt(e.to_string()),
                };
                Ok::<_, StoreError>((info.name, check))
            }
        })
        .try_buffer_unordered(VERIFY_CONCURRENCY);
    while let Some((name, check)) = checks.next().await.transpose()? {
        match check {
            Check::Foreign => report.foreign.push(name),
            Check::Vanished => report.vanished += 1,
            Check::Corrupt(reason) => {
                report.checked += 1;
                report.corrupt.push((name, reason));
            }
            Check::UnsupportedFormat(format) => {
                report.checked += 1;
                report.unsupported_format.push((name, format));
            }
            Check::Intact(size) => {
                report.checked += 1;
                report.bytes_stored += size;
            }
        }
    }
    report.corrupt.sort();
    report.unsupported_format.sort();
    report.foreign.sort();
    Ok(report)
}

/// One archived copy that Cosmos shadows with another version.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Shadowed {
    pub blob: String,
    pub customer_id: String,
    pub id: String,
    pub archived_etag: String,
    pub cosmos_etag: String,
    /// `withdrawn`, `kept` (report only), `changed` (the copy changed since it was
    /// listed; left alone) or `failed`.
    pub action: &'static str,
}

/// How long operator commands wait for an archive run in progress to give the
/// run lease back (a run ends within `ARCHIVE_TIME_BUDGET_SECONDS`).
pub const DEFAULT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

pub(crate) async fn take_lease(archiver: &Archiver, patience: std::time::Duration) -> anyhow::Result<RunLease> {
    RunLease::acquire_waiting(archiver.archive.clone(), patience)
        .await
        .context("taking the run lease")?
        .ok_or_else(|| anyhow::anyhow!("an archive run is still in progress (it holds the run lease) after {patience:?}; try again when it has finished"))
}

/// What `archiver verify --shadowed` found.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShadowReport {
    pub checked: u64,
    /// Copies of the very version Cosmos holds (a run stopped between verify and
    /// delete). Harmless while the record is hot, but an application delete would
    /// bring them back, so they are withdrawn too.
    pub same_version: u64,
    /// Copies whose metadata cannot be read (see `archiver verify`).
    pub unreadable: Vec<String>,
    pub shadowed: Vec<Shadowed>,
    pub withdrawn: u64,
    pub withdraw_failed: u64,
}

/// Finds archived copies whose record Cosmos holds (at another version: a copy
/// left by an interrupted run, a conflict, a restore followed by an update; or at
/// the same version: a run stopped between verify and delete) and, when
/// `withdraw`, deletes each at the ETag it was listed with. Such a copy is never
/// served while the record is in Cosmos, but it would resurrect that version once
/// the record leaves Cosmos. Holds the run lease, so no archive run relies on a
/// copy meanwhile. Costs one listing of the archive and one query per 100 copies;
/// downloads nothing.
pub async fn shadowed(
    archiver: &Archiver,
    customer_id: Option<&str>,
    withdraw: bool,
    patience: std::time::Duration,
) -> anyhow::Result<ShadowReport> {
    let lease = if withdraw { Some(take_lease(archiver, patience).await?) } else { None };
    let result = scan_shadowed(archiver, customer_id, lease.as_ref()).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    Ok(result?)
}

async fn scan_shadowed(
    archiver: &Archiver,
    customer_id: Option<&str>,
    lease: Option<&RunLease>,
) -> Result<ShadowReport, StoreError> {
    let mut report = ShadowReport::default();
    // A customer's blobs are contiguous in a listing (names are `v1/<customer>/<id>`).
    let mut batch: Vec<(String, String, BlobInfo, ArchiveMeta)> = Vec::new();
    let mut blobs = archiver.archive.list(&prefix_for(customer_id));
    while let Some(blob) = blobs.next().await.transpose()? {
        let Ok((customer, id)) = layout::parse_blob_name(&blob.name) else { continue };
        report.checked += 1;
        let Ok(meta) = ArchiveMeta::from_metadata(&blob.metadata) else {
            report.unreadable.push(blob.name);
            continue;
        };
        if batch.first().is_some_and(|b| b.0 != customer) || batch.len() >= SHADOW_BATCH {
            check_batch(archiver, std::mem::take(&mut batch), lease, &mut report).await?;
        }
        batch.push((customer, id, blob, meta));
    }
    check_batch(archiver, batch, lease, &mut report).await?;
    Ok(report)
}

async fn check_batch(
    archiver: &Archiver,
    batch: Vec<(String, String, BlobInfo, ArchiveMeta)>,
    lease: Option<&RunLease>,
    report: &mut ShadowReport,
) -> Result<(), StoreError> {
    let Some(customer) = batch.first().map(|b| b.0.clone()) else { return Ok(()) };
    let ids: Vec<String> = batch.iter().map(|b| b.1.clone()).collect();
    let in_cosmos = archiver.cosmos.versions(&customer, &ids).await?;
    for (customer_id, id, blob, meta) in batch {
        let Some(cosmos_etag) = in_cosmos.get(&id) else { continue };
        let same = *cosmos_etag == meta.etag;
        if same {
            report.same_version += 1;
        }
        let action = match lease {
            None => "kept",
            Some(lease) if !lease.holds() => {
                report.withdraw_failed += 1;
                "failed"
            }
            Some(_) => match archiver.archive.delete_if_match(&blob.name, &blob.etag).await {
                Ok(()) => {
                    tiering::index::remove_for_copy(archiver.archive.as_ref(), &blob.name, &meta).await;
                    report.withdrawn += 1;
                    "withdrawn"
                }
                Err(StoreError::PreconditionFailed | StoreError::NotFound) => "changed",
                Err(e) => {
                    tracing::error!(blob = %blob.name, error = %e, "shadowed copy could not be withdrawn");
                    report.withdraw_failed += 1;
                    "failed"
                }
            },
        };
        if !same || action != "kept" {
            report.shadowed.push(Shadowed {
                blob: blob.name,
                customer_id,
                id,
                archived_etag: meta.etag,
                cosmos_etag: cosmos_etag.clone(),
                action,
            });
        }
    }
    Ok(())
}

/// What `archiver forget` did, tier by tier: `deleted`, `absent`, or (without
/// confirmation) `present`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ForgetReport {
    pub customer_id: String,
    pub id: String,
    pub confirmed: bool,
    pub cosmos: &'static str,
    pub archive: &'static str,
    pub blob: String,
    /// The partition is on hold: nothing is erased while it lasts.
    pub held: bool,
    pub note: &'static str,
}

const FORGET_NOTE: &str = "Where blob versioning or soft delete is on, earlier versions of the archived copy \
                           remain until the storage account's retention and lifecycle rules remove them.";

/// Erases one record from both tiers (an erasure request, or an application's
/// delete of a record that may be archived). Without `confirm`, only reports
/// where the record is. Holds the run lease while it deletes (waiting up to
/// `patience` for a run in progress), so no archive run can copy it back meanwhile.
pub async fn forget(
    archiver: &Archiver,
    customer_id: &str,
    id: &str,
    confirm: bool,
    patience: std::time::Duration,
) -> anyhow::Result<ForgetReport> {
    validate_id("customerId", customer_id)?;
    validate_id("id", id)?;
    let blob = layout::blob_name(customer_id, id)?;
    let mut report = ForgetReport {
        customer_id: customer_id.to_owned(),
        id: id.to_owned(),
        confirmed: confirm,
        cosmos: "absent",
        archive: "absent",
        blob: blob.clone(),
        held: false,
        note: FORGET_NOTE,
    };
    report.held = crate::retention::is_held(archiver.archive.as_ref(), customer_id)
        .await
        .context("looking for a hold on the partition")?;
    if !confirm {
        match archiver.cosmos.read(customer_id, id).await {
            Ok(_) => report.cosmos = "present",
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e).context("reading the record in Cosmos"),
        }
        match archiver.archive.head(&blob).await {
            Ok(_) => report.archive = "present",
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e).context("looking for the archived copy"),
        }
        return Ok(report);
    }
    anyhow::ensure!(
        !report.held,
        "{customer_id:?} is on hold (archiver hold --list): nothing is erased while the hold lasts; release it first"
    );
    let lease = take_lease(archiver, patience).await?;
    // A hold placed while this waited for the lease (holds are placed under it).
    if crate::retention::is_held(archiver.archive.as_ref(), customer_id).await.context("looking for a hold")? {
        lease.release().await;
        anyhow::bail!("{customer_id:?} was put on hold meanwhile: nothing erased");
    }
    let result = erase(archiver, customer_id, id, &blob, &mut report).await;
    lease.release().await;
    result.map(|()| report)
}

async fn erase(
    archiver: &Archiver,
    customer_id: &str,
    id: &str,
    blob: &str,
    report: &mut ForgetReport,
) -> anyhow::Result<()> {
    if archiver.cosmos.delete(customer_id, id).await.context("deleting the record from Cosmos")? {
        report.cosmos = "deleted";
    }
    // A copy can be replaced between looking and deleting only by another writer;
    // try a few times, each at the ETag just seen.
    for _ in 0..5 {
        let info = match archiver.archive.head(blob).await {
            Ok(info) => info,
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e).context("looking for the archived copy"),
        };
        match archiver.archive.delete_if_match(blob, &info.etag).await {
            Ok(()) => {
                if let Ok(meta) = ArchiveMeta::from_metadata(&info.metadata) {
                    tiering::index::remove_for_copy(archiver.archive.as_ref(), blob, &meta).await;
                }
                report.archive = "deleted";
                return Ok(());
            }
            Err(StoreError::PreconditionFailed | StoreError::NotFound) => continue,
            Err(e) => return Err(e).context("deleting the archived copy"),
        }
    }
    anyhow::bail!("the archived copy {blob} kept changing; nothing more deleted")
}

/// Moves one archived record back into Cosmos (`tiering::moveback`): the copy
/// checked, the record created (never over what Cosmos holds) and read back,
/// then the copy deleted at the ETag it was verified at, so the record lives in
/// one tier again and a later application delete cannot bring the old copy
/// back. When Cosmos already holds a newer version, only its stale copy is
/// deleted. Cosmos gives the moved-back document a new `_etag` and `_ts`. Holds
/// the run lease (waiting up to `patience` for a run in progress), so no
/// `forget` interleaves.
pub async fn restore(
    archiver: &Archiver,
    customer_id: &str,
    id: &str,
    patience: std::time::Duration,
) -> anyhow::Result<MovedBack> {
    layout::blob_name(customer_id, id)?;
    let lease = take_lease(archiver, patience).await?;
    let holds = || lease.holds();
    let result = moveback::move_back(&archiver.cosmos, archiver.archive.as_ref(), customer_id, id, Some(&holds)).await;
    lease.release().await;
    match result? {
        MovedBack::NotArchived => {
            anyhow::bail!("record {id:?} of {customer_id:?} has no archived copy; nothing restored")
        }
        moved => Ok(moved),
    }
}

/// What a bulk `archiver restore` did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub customer_id: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub dry_run: bool,
    /// Archived copies of the customer looked at.
    pub checked: u64,
    /// Copies in the age window (what a dry run would restore).
    pub matched: u64,
    pub restored: u64,
    /// Already in Cosmos (a newer version, or the same one an interrupted run
    /// left): left as it is there, and the copy beside it withdrawn.
    pub already_in_cosmos: u64,
    pub withdrawn: u64,
    /// Blob name and reason, for copies that could not be restored.
    pub failed: Vec<(String, String)>,
}

/// What happened to one copy in a bulk restore.
enum CopyRestore {
    OutsideWindow,
    WouldRestore,
    Created { withdrawn: bool },
    AlreadyInCosmos { withdrawn: bool },
    Failed(String),
}

/// Restores every archived record of a customer (or those whose age falls in
/// `from..=to`, dates under the current age field) to Cosmos. Only creates, so it
/// never overwrites what Cosmos holds; each restored copy is then withdrawn. Run
/// again after an interruption, it does what is left: resumable and idempotent.
/// Holds the run lease (waiting up to `patience`), except for a dry run, which
/// writes nothing. `progress` is called every 100 copies.
pub async fn restore_customer(
    archiver: &Archiver,
    customer_id: &str,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    dry_run: bool,
    patience: std::time::Duration,
    mut progress: impl FnMut(&RestoreReport),
) -> anyhow::Result<RestoreReport> {
    validate_id("customerId", customer_id)?;
    let field = archiver.settings.stores.age_field.clone();
    let window = tiering::listing::Window {
        from: from.map(|d| field.start_of(d)),
        until: to.and_then(|d| d.succ_opt()).map(|d| field.start_of(d)),
        after: None,
    };
    let mut report = RestoreReport {
        customer_id: customer_id.to_owned(),
        from: from.map(|d| d.to_string()),
        to: to.map(|d| d.to_string()),
        dry_run,
        ..Default::default()
    };
    let lease = if dry_run { None } else { Some(take_lease(archiver, patience).await?) };
    let lease_holds = || lease.as_ref().is_none_or(RunLease::holds);
    let names = archiver
        .archive
        .list(&layout::partition_prefix(customer_id))
        .try_filter_map(
            |blob| async move { Ok(layout::parse_blob_name(&blob.name).ok().map(|(_, id)| (blob.name, id))) },
        )
        .try_collect::<Vec<_>>()
        .await;
    let names = match names {
        Ok(names) => names,
        Err(e) => {
            if let Some(lease) = lease {
                lease.release().await;
            }
            return Err(e).context("listing the customer's archived copies");
        }
    };
    let (window, field, lease_holds) = (&window, &field, &lease_holds);
    let mut steps = futures::stream::iter(names)
        .map(|(name, id)| async move {
            let outcome = restore_copy(archiver, customer_id, &id, &name, field, window, dry_run, lease_holds).await;
            (name, outcome)
        })
        .buffer_unordered(VERIFY_CONCURRENCY);
    while let Some((name, outcome)) = steps.next().await {
        report.checked += 1;
        match outcome {
            CopyRestore::OutsideWindow => {}
            CopyRestore::WouldRestore => report.matched += 1,
            CopyRestore::Created { withdrawn } => {
                report.matched += 1;
                report.restored += 1;
                report.withdrawn += u64::from(withdrawn);
            }
            CopyRestore::AlreadyInCosmos { withdrawn } => {
                report.matched += 1;
                report.already_in_cosmos += 1;
                report.withdrawn += u64::from(withdrawn);
            }
            CopyRestore::Failed(reason) => {
                report.matched += 1;
                report.failed.push((name, reason));
            }
        }
        if report.checked.is_multiple_of(100) {
            progress(&report);
        }
    }
    drop(steps);
    if let Some(lease) = lease {
        lease.release().await;
    }
    report.failed.sort();
    progress(&report);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn restore_copy(
    archiver: &Archiver,
    customer_id: &str,
    id: &str,
    name: &str,
    field: &tiering::record::AgeField,
    window: &tiering::listing::Window,
    dry_run: bool,
    lease_holds: &LeaseHolds<'_>,
) -> CopyRestore {
    // Leased before it is read (a dry run writes nothing, not even a lease), so no
    // concurrent move-back can have moved it back and deleted it meanwhile.
    if dry_run {
        return restore_leased(archiver, customer_id, id, name, field, window, None, lease_holds).await;
    }
    let leased = moveback::under_copy_lease(archiver.archive.as_ref(), name, |hold| async move {
        restore_leased(archiver, customer_id, id, name, field, window, Some(&hold), lease_holds).await
    })
    .await;
    match leased {
        Ok(moveback::Leased::Done(outcome)) => outcome,
        Ok(moveback::Leased::Absent) => CopyRestore::OutsideWindow, // gone meanwhile
        Ok(moveback::Leased::Busy) => CopyRestore::Failed("a write is moving it back; run again".into()),
        Err(e) => CopyRestore::Failed(e.to_string()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn restore_leased(
    archiver: &Archiver,
    customer_id: &str,
    id: &str,
    name: &str,
    field: &tiering::record::AgeField,
    window: &tiering::listing::Window,
    hold: Option<&str>,
    lease_holds: &LeaseHolds<'_>,
) -> CopyRestore {
    let stored = match archiver.archive.get(name).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => return CopyRestore::OutsideWindow, // gone meanwhile: nothing to restore
        Err(e) => return CopyRestore::Failed(format!("reading the copy: {e}")),
    };
    let (doc, meta) = match moveback::checked_copy(&archiver.cosmos, name, customer_id, id, &stored) {
        Ok(checked) => checked,
        Err(e) => return CopyRestore::Failed(e.to_string()),
    };
    let in_window = doc.sort_key(field).is_some_and(|age| window.contains(&age, id));
    if !in_window && (window.from.is_some() || window.until.is_some()) {
        return CopyRestore::OutsideWindow;
    }
    let Some(hold) = hold else { return CopyRestore::WouldRestore };
    let (cosmos, archive) = (&archiver.cosmos, archiver.archive.as_ref());
    let lease = Some(lease_holds);
    match moveback::move_back_copy(cosmos, archive, customer_id, id, name, &stored, &doc, &meta, lease, hold).await {
        Ok(MovedBack::Restored { copy_deleted, .. }) => CopyRestore::Created { withdrawn: copy_deleted },
        Ok(MovedBack::AlreadyHot { stale_copy_deleted }) => {
            CopyRestore::AlreadyInCosmos { withdrawn: stale_copy_deleted }
        }
        Ok(MovedBack::NotArchived) => CopyRestore::OutsideWindow,
        Err(e) => CopyRestore::Failed(e.to_string()),
    }
}
