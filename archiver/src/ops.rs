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

/// One archived copy whose record Cosmos holds too, and what became of it.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Shadowed {
    pub blob: String,
    pub customer_id: String,
    pub id: String,
    pub archived_etag: String,
    pub archived_ts: i64,
    pub cosmos_etag: String,
    pub cosmos_ts: i64,
    /// Why: `sameVersion`, `superseded` (Cosmos's version is from a later
    /// second), `conflict` (the copy is newer than Cosmos's version, or another
    /// version of the same second: which one should live cannot be told), `held`
    /// (the partition is on hold: every version is kept).
    pub reason: Pair,
    /// `wouldWithdraw` (a report: run again with `--withdraw`), `withdrawn`,
    /// `kept` (a conflict or a hold: both tiers keep their version), `changed`
    /// (the copy changed since it was listed; left alone) or `failed`.
    pub action: &'static str,
}

/// How an archived copy and the version Cosmos holds of the same record relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Pair {
    SameVersion,
    Superseded,
    Conflict,
    Held,
}

impl Pair {
    /// The pair's relation, as the move-back decides it without the run lease
    /// (`moveback::hot_version`): a copy may go only when Cosmos holds its very
    /// version, or one written in a strictly later second. Anything else, a copy
    /// newer than Cosmos's version above all (Cosmos restored from a backup), is
    /// a conflict for a person, and both stay.
    ///
    /// `restored_at`: when Cosmos was restored from a backup by copying records
    /// back into the container (each copied record gets a new `_ts`): a version
    /// Cosmos wrote since then proves nothing about the copy, so it is a
    /// conflict too.
    pub fn of(cosmos: &tiering::cosmos::Version, copy: &ArchiveMeta, held: bool, restored_at: Option<i64>) -> Self {
        if held {
            return Self::Held;
        }
        match moveback::hot_version(&cosmos.etag, cosmos.ts, copy, false) {
            moveback::HotVersion::SameAsCopy => Self::SameVersion,
            moveback::HotVersion::Newer if restored_at.is_some_and(|t| cosmos.ts >= t) => Self::Conflict,
            moveback::HotVersion::Newer => Self::Superseded,
            moveback::HotVersion::Older => Self::Conflict,
        }
    }

    /// True when the copy may be withdrawn.
    pub fn withdrawable(self) -> bool {
        matches!(self, Self::SameVersion | Self::Superseded)
    }
}

/// What `archiver verify --shadowed` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdraw {
    /// Nothing: a report.
    Nothing,
    /// Copies of the version Cosmos holds, or of one it superseded (`--withdraw`).
    Settled,
    /// Those, and conflicts too: a person decided Cosmos's versions are the
    /// right ones (`--withdraw --prefer-cosmos`, one partition at a time).
    PreferCosmos,
}

/// What `archiver verify --shadowed` found.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShadowReport {
    /// True when copies were withdrawn (`--withdraw`); false for a report.
    pub withdraw: bool,
    pub checked: u64,
    /// Copies of the very version Cosmos holds (a run stopped between verify and
    /// delete). Harmless while the record is hot, but an application delete would
    /// bring them back, so they are withdrawn too.
    pub same_version: u64,
    /// Copies of a version Cosmos has superseded (written in a later second).
    pub superseded: u64,
    /// Copies newer than Cosmos's version, or of the same second: kept, with
    /// Cosmos's version, for a person (docs/operations.md, "Conflicts").
    pub conflicts: u64,
    /// Pairs kept because the partition is on hold.
    pub held: u64,
    /// Copies whose metadata cannot be read (see `archiver verify`).
    pub unreadable: Vec<String>,
    /// Every pair found, with what became of it.
    pub shadowed: Vec<Shadowed>,
    pub withdrawn: u64,
    pub withdraw_failed: u64,
}

impl ShadowReport {
    /// True when an operator has something to look at: a conflict, a failed
    /// withdrawal, or (in a report) copies to withdraw.
    pub fn needs_attention(&self) -> bool {
        self.shadowed.iter().any(|s| s.reason == Pair::Conflict && s.action == "kept")
            || self.withdraw_failed > 0
            || (!self.withdraw && self.shadowed.iter().any(|s| s.action == "wouldWithdraw"))
    }
}

/// Finds archived copies whose record Cosmos holds too: at the same version (a
/// run stopped between verify and delete), at a version written later (a copy
/// left by an interrupted run, a restore followed by an update), or at an older
/// one (a conflict: Cosmos restored from a backup, say). Such a copy is never
/// served while the record is in Cosmos, but it would resurrect its version once
/// the record leaves Cosmos.
///
/// Without `withdraw` it only reports. With it, the copies of the first two
/// kinds are deleted, each at the ETag it was listed with, under the run lease
/// (so no archive run relies on a copy meanwhile); conflicts and copies of a
/// partition on hold are kept. Costs one listing of the archive and one query per
/// 100 copies; downloads nothing.
pub async fn shadowed(
    archiver: &Archiver,
    customer_id: Option<&str>,
    withdraw: Withdraw,
    restored_at: Option<chrono::DateTime<chrono::Utc>>,
    patience: std::time::Duration,
) -> anyhow::Result<ShadowReport> {
    anyhow::ensure!(
        withdraw != Withdraw::PreferCosmos || customer_id.is_some(),
        "withdrawing conflicts (--prefer-cosmos) is done one partition at a time: name it with --partition-key"
    );
    let lease = if withdraw != Withdraw::Nothing {
        Some(RunLease::take(archiver.archive.clone(), patience).await?)
    } else {
        None
    };
    let held = match crate::holds::held(archiver.archive.as_ref()).await {
        Ok(held) => held,
        Err(e) => {
            if let Some(lease) = lease {
                lease.release().await;
            }
            return Err(e).context("reading the holds");
        }
    };
    let prefer_cosmos = withdraw == Withdraw::PreferCosmos;
    let judge = Judge { held: &held, prefer_cosmos, restored_at: restored_at.map(|t| t.timestamp()) };
    let result = scan_shadowed(archiver, customer_id, lease.as_ref(), &judge).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    let mut report = result?;
    report.withdraw = withdraw != Withdraw::Nothing;
    Ok(report)
}

/// What decides each pair: the holds, whether conflicts go too, and when Cosmos was restored.
struct Judge<'a> {
    held: &'a std::collections::HashSet<String>,
    prefer_cosmos: bool,
    restored_at: Option<i64>,
}

async fn scan_shadowed(
    archiver: &Archiver,
    customer_id: Option<&str>,
    lease: Option<&RunLease>,
    judge: &Judge<'_>,
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
            check_batch(archiver, std::mem::take(&mut batch), lease, judge, &mut report).await?;
        }
        batch.push((customer, id, blob, meta));
    }
    check_batch(archiver, batch, lease, judge, &mut report).await?;
    Ok(report)
}

async fn check_batch(
    archiver: &Archiver,
    batch: Vec<(String, String, BlobInfo, ArchiveMeta)>,
    lease: Option<&RunLease>,
    judge: &Judge<'_>,
    report: &mut ShadowReport,
) -> Result<(), StoreError> {
    let Some(customer) = batch.first().map(|b| b.0.clone()) else { return Ok(()) };
    let ids: Vec<String> = batch.iter().map(|b| b.1.clone()).collect();
    let in_cosmos = archiver.cosmos.versions(&customer, &ids).await?;
    for (customer_id, id, blob, meta) in batch {
        let Some(cosmos) = in_cosmos.get(&id) else { continue };
        let pair = Pair::of(cosmos, &meta, judge.held.contains(&customer_id), judge.restored_at);
        match pair {
            Pair::SameVersion => report.same_version += 1,
            Pair::Superseded => report.superseded += 1,
            Pair::Conflict => report.conflicts += 1,
            Pair::Held => report.held += 1,
        }
        let goes = pair.withdrawable() || (judge.prefer_cosmos && pair == Pair::Conflict);
        let action = match lease {
            _ if !goes => "kept",
            None => "wouldWithdraw",
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
        if pair == Pair::Conflict && action == "kept" {
            tracing::warn!(blob = %blob.name, archived_ts = meta.ts, cosmos_ts = cosmos.ts, "the archived copy is newer than Cosmos's version (or of the same second): both kept for a person");
        }
        report.shadowed.push(Shadowed {
            blob: blob.name,
            customer_id,
            id,
            archived_etag: meta.etag,
            archived_ts: meta.ts,
            cosmos_etag: cosmos.etag.clone(),
            cosmos_ts: cosmos.ts,
            reason: pair,
            action,
        });
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
    report.held = crate::holds::is_held(archiver.archive.as_ref(), customer_id)
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
    let lease = RunLease::take(archiver.archive.clone(), patience).await?;
    // A hold placed while this waited for the lease (holds are placed under it).
    if crate::holds::is_held(archiver.archive.as_ref(), customer_id).await.context("looking for a hold")? {
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
    let lease = RunLease::take(archiver.archive.clone(), patience).await?;
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
    let lease = if dry_run { None } else { Some(RunLease::take(archiver.archive.clone(), patience).await?) };
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

/// Where a restore of the whole archive stopped: the listing marker of the
/// first page it has not finished, and what it restores (so a restore with
/// other arguments starts over rather than resume another one's position).
pub const RESTORE_STATE: &str = "state/restore";
const K_MARKER: &str = "marker";
const K_SCOPE: &str = "scope";
const K_FAILED: &str = "failed";
/// Copies listed per page by [`restore_all`]; the state is saved after each.
pub const RESTORE_PAGE: u32 = 500;
/// Failures named one by one in the report; beyond, only counted.
const MAX_FAILURES_LISTED: usize = 1000;

/// What `archiver restore --all` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreAll {
    /// Only copies archived on or after this day (UTC).
    pub archived_after: Option<chrono::NaiveDate>,
    /// List and count from metadata; write nothing.
    pub dry_run: bool,
    /// From the beginning, not from the saved position.
    pub restart: bool,
    /// Copies listed per page ([`RESTORE_PAGE`]); the position is saved after each.
    pub page: u32,
}

/// What `archiver restore --all` did.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreAllReport {
    /// Only copies archived on or after this day (UTC), when given.
    pub archived_after: Option<String>,
    pub dry_run: bool,
    /// True when it went on from where an earlier restore stopped.
    pub resumed: bool,
    /// True once every copy has been looked at (the saved position is gone).
    pub complete: bool,
    /// Archived copies looked at (this invocation).
    pub checked: u64,
    /// Copies archived in the window (what a dry run would restore), and their bytes as stored.
    pub matched: u64,
    pub bytes_stored: u64,
    pub restored: u64,
    /// Already in Cosmos (a newer version, or the same one an interrupted run left):
    /// left as it is there, and the copy beside it withdrawn.
    pub already_in_cosmos: u64,
    pub withdrawn: u64,
    /// Copies that could not be restored (at most 1,000 named; `failedCount` has them all).
    pub failed: Vec<(String, String)>,
    pub failed_count: u64,
    /// Copies that failed in the earlier invocations this one went on from
    /// (they are behind the saved position: see `leftInArchive`).
    pub failed_before: u64,
    /// Once complete: copies in scope still in the archive (failed now or before,
    /// or archived again meanwhile), from a listing after the last page. Not
    /// zero means the rollback is not done: see `archiver verify --shadowed`.
    pub left_in_archive: u64,
    /// Request units its Cosmos requests cost, and the budget that paced them (0: none).
    pub request_units: f64,
    pub max_ru_per_second: u32,
    pub elapsed_seconds: f64,
    /// Copies moved back (restored or found in Cosmos) per second: the pace a
    /// rollback plans with (docs/rollout.md).
    pub records_per_second: f64,
}

/// Moves every archived record back into Cosmos (`archived_after`: only copies
/// archived on or after that day), the rollback of the whole archive
/// (docs/rollout.md, "Roll back"). Each copy goes through the same move-back as
/// a single restore: checked, created only where Cosmos has no such record, read
/// back, then withdrawn; a copy newer than Cosmos's version is left for a
/// person. It lists the archive a page at a time, saves its position in the
/// archive ([`RESTORE_STATE`]) after each page, and an interrupted restore run
/// again goes on from there (`restart`: from the beginning): resumable and
/// idempotent. New work is paced by `ARCHIVE_MAX_RU_PER_SECOND` from the request
/// units Cosmos reports. It holds the run lease throughout (so no archive run
/// copies records back meanwhile: pause the archiver first, or the next run
/// archives them again once the quiet period has passed). A dry run lists and
/// counts from metadata only, downloads and writes nothing. `progress` is
/// called after every page.
pub async fn restore_all(
    archiver: &Archiver,
    options: &RestoreAll,
    patience: std::time::Duration,
    mut progress: impl FnMut(&RestoreAllReport),
) -> anyhow::Result<RestoreAllReport> {
    let RestoreAll { archived_after, dry_run, restart, page } = *options;
    let started = std::time::Instant::now();
    let scope = archived_after.map_or_else(|| "all".to_owned(), |d| format!("archived-after {d}"));
    let mut report = RestoreAllReport {
        archived_after: archived_after.map(|d| d.to_string()),
        dry_run,
        max_ru_per_second: archiver.settings.max_ru_per_second,
        ..Default::default()
    };
    let since = archived_after.and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
    let lease = if dry_run { None } else { Some(RunLease::take(archiver.archive.clone(), patience).await?) };
    let result =
        restore_pages(archiver, since, &scope, restart, page, lease.as_ref(), &mut report, &mut progress).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    let moved = report.restored + report.already_in_cosmos;
    report.records_per_second = if report.elapsed_seconds > 0.0 { moved as f64 / report.elapsed_seconds } else { 0.0 };
    report.failed.sort();
    result?;
    progress(&report);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn restore_pages(
    archiver: &Archiver,
    since: Option<chrono::DateTime<chrono::Utc>>,
    scope: &str,
    restart: bool,
    page_size: u32,
    lease: Option<&RunLease>,
    report: &mut RestoreAllReport,
    progress: &mut impl FnMut(&RestoreAllReport),
) -> anyhow::Result<()> {
    let archive = archiver.archive.as_ref();
    let (mut marker, mut state_etag) = match read_restore_state(archive).await.context("reading the restore state")? {
        Some(saved) if saved.scope == scope && !restart && lease.is_some() => {
            report.resumed = true;
            report.failed_before = saved.failed;
            tracing::info!(scope, failed_before = saved.failed, "going on from where the last restore stopped");
            (saved.marker, Some(saved.etag))
        }
        Some(RestoreState { etag, scope: saved_scope, .. }) => {
            if lease.is_some() {
                tracing::info!(scope, earlier = %saved_scope, "starting over (--restart, or another restore's position)");
            }
            (None, Some(etag))
        }
        None => (None, None),
    };
    let budget = crate::budget::RuBudget::new(archiver.settings.max_ru_per_second);
    // Every request unit is charged once: each step charges what the store
    // spent since the last charge (whoever spent it), in hundredths.
    let started_at = archiver.cosmos.request_units();
    let charged = std::sync::atomic::AtomicU64::new((started_at * 100.0) as u64);
    let settle = || {
        let now = (archiver.cosmos.request_units() * 100.0) as u64;
        let before = charged.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        budget.charge(now.saturating_sub(before) as f64 / 100.0);
    };
    let field = archiver.settings.stores.age_field.clone();
    let everything = tiering::listing::Window { from: None, until: None, after: None };
    let lease_holds = || lease.is_none_or(RunLease::holds);
    let concurrency = archiver.settings.concurrency.clamp(1, 64);
    loop {
        anyhow::ensure!(lease_holds(), "the run lease may lapse; stopped (run the same command again to go on)");
        let (page, next) = archive
            .list_page(layout::LAYOUT_PREFIX, marker.as_deref(), page_size)
            .await
            .context("listing the archive")?;
        let mut todo = Vec::new();
        for blob in page {
            let Ok((customer_id, id)) = layout::parse_blob_name(&blob.name) else { continue };
            report.checked += 1;
            let archived_at = ArchiveMeta::from_metadata(&blob.metadata).map(|m| m.archived_at);
            // A copy whose metadata cannot be read is restored when no date is asked
            // for (the move-back checks it), and counted as failed otherwise.
            match (since, archived_at) {
                (Some(since), Ok(at)) if at < since => continue,
                (Some(_), Err(e)) => {
                    fail(report, blob.name, format!("unreadable metadata: {e}"));
                    continue;
                }
                _ => {}
            }
            report.matched += 1;
            report.bytes_stored += blob.size;
            if lease.is_some() {
                todo.push((blob.name, customer_id, id));
            }
        }
        let (field, everything, lease_holds, budget, settle) = (&field, &everything, &lease_holds, &budget, &settle);
        let mut steps = futures::stream::iter(todo)
            .map(|(name, customer_id, id)| async move {
                settle();
                budget.admit().await;
                let outcome =
                    restore_copy(archiver, &customer_id, &id, &name, field, everything, false, lease_holds).await;
                (name, outcome)
            })
            .buffer_unordered(concurrency);
        while let Some((name, outcome)) = steps.next().await {
            match outcome {
                CopyRestore::OutsideWindow | CopyRestore::WouldRestore => {}
                CopyRestore::Created { withdrawn } => {
                    report.restored += 1;
                    report.withdrawn += u64::from(withdrawn);
                }
                CopyRestore::AlreadyInCosmos { withdrawn } => {
                    report.already_in_cosmos += 1;
                    report.withdrawn += u64::from(withdrawn);
                }
                CopyRestore::Failed(reason) => fail(report, name, reason),
            }
        }
        drop(steps);
        // What the page spent is paid before the next (and before the end), so
        // the restore never spends faster than the budget, bursts aside.
        settle();
        budget.admit().await;
        report.request_units = archiver.cosmos.request_units() - started_at;
        marker = next;
        if lease.is_some() {
            let failed = report.failed_before + report.failed_count;
            state_etag = save_restore_state(archive, scope, marker.as_deref(), failed, state_etag)
                .await
                .context("saving the restore's position")?;
        }
        progress(report);
        if marker.is_none() {
            report.complete = true;
            if lease.is_some() {
                report.left_in_archive = left_in_scope(archive, since).await.context("listing what is left")?;
            }
            return Ok(());
        }
    }
}

fn fail(report: &mut RestoreAllReport, name: String, reason: String) {
    report.failed_count += 1;
    if report.failed.len() < MAX_FAILURES_LISTED {
        report.failed.push((name, reason));
    }
}

/// Copies in scope still in the archive: what a complete restore left.
async fn left_in_scope(
    archive: &dyn tiering::archive::Archive,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<u64, StoreError> {
    let mut left = 0;
    let mut blobs = archive.list(layout::LAYOUT_PREFIX);
    while let Some(blob) = blobs.next().await.transpose()? {
        if layout::parse_blob_name(&blob.name).is_err() {
            continue;
        }
        let archived_at = ArchiveMeta::from_metadata(&blob.metadata).map(|m| m.archived_at);
        if !matches!((since, archived_at), (Some(since), Ok(at)) if at < since) {
            left += 1;
        }
    }
    Ok(left)
}

/// Where a restore stopped, as its state blob says.
struct RestoreState {
    etag: String,
    scope: String,
    /// `None`: from the start.
    marker: Option<String>,
    /// Copies that failed before the position.
    failed: u64,
}

async fn read_restore_state(archive: &dyn tiering::archive::Archive) -> Result<Option<RestoreState>, StoreError> {
    match archive.head(RESTORE_STATE).await {
        Ok(info) => {
            let find = |k: &str| info.metadata.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v);
            let decode = |v: &String| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
            Ok(Some(RestoreState {
                etag: info.etag.clone(),
                scope: find(K_SCOPE).map(decode).unwrap_or_default(),
                marker: find(K_MARKER).map(decode).filter(|m| !m.is_empty()),
                failed: find(K_FAILED).and_then(|f| f.parse().ok()).unwrap_or(0),
            }))
        }
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Saves the position (or, at the end, deletes it); returns the state blob's new ETag.
async fn save_restore_state(
    archive: &dyn tiering::archive::Archive,
    scope: &str,
    marker: Option<&str>,
    failed: u64,
    etag: Option<String>,
) -> Result<Option<String>, StoreError> {
    use tiering::archive::PutCondition;
    let Some(marker) = marker else {
        if let Some(etag) = etag {
            match archive.delete_if_match(RESTORE_STATE, &etag).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(None);
    };
    let encode = |v: &str| percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
    let metadata = std::collections::HashMap::from([
        (K_SCOPE.to_owned(), encode(scope)),
        (K_MARKER.to_owned(), encode(marker)),
        (K_FAILED.to_owned(), failed.to_string()),
    ]);
    let condition = etag.map_or(PutCondition::Absent, PutCondition::Matches);
    archive.put(RESTORE_STATE, bytes::Bytes::new(), metadata, condition).await.map(Some)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tiering::codec::AgeStamp;
    use tiering::cosmos::Version;
    use tiering::record::AgeField;

    #[test]
    fn a_copy_goes_only_when_cosmos_holds_its_version_or_a_later_one_and_never_under_a_hold() {
        let copy = ArchiveMeta {
            sha256: String::new(),
            length: 0,
            etag: "\"v2\"".into(),
            ts: 1000,
            stamp: AgeStamp::new(&AgeField::Ts, None),
            archived_at: chrono::Utc::now(),
        };
        let at = |etag: &str, ts| Version { etag: etag.into(), ts };
        let cases = [
            (at("\"v2\"", 1000), false, Pair::SameVersion, true),
            (at("\"v3\"", 1001), false, Pair::Superseded, true),
            // Cosmos restored from a backup: an older version is no reason to delete a newer one.
            (at("\"v1\"", 900), false, Pair::Conflict, false),
            (at("\"v1\"", 1000), false, Pair::Conflict, false),
            (at("\"v3\"", 1001), true, Pair::Held, false),
            (at("\"v2\"", 1000), true, Pair::Held, false),
        ];
        for (cosmos, held, pair, withdrawable) in cases {
            assert_eq!(Pair::of(&cosmos, &copy, held, None), pair, "{cosmos:?} held={held}");
            assert_eq!(pair.withdrawable(), withdrawable, "{pair:?}");
        }
        // Records copied back from a backup at 1200 carry a _ts from then: no proof the copy is stale.
        assert_eq!(Pair::of(&at("\"v1\"", 1300), &copy, false, Some(1200)), Pair::Conflict);
        assert_eq!(Pair::of(&at("\"v3\"", 1100), &copy, false, Some(1200)), Pair::Superseded, "written before it");
        assert_eq!(Pair::of(&at("\"v2\"", 1000), &copy, false, Some(900)), Pair::SameVersion);
    }
}
