//! One archive pass: query aged records, copy, verify, delete, with bounded concurrency.
//!
//! Per record, in this order and never another (docs/archive-protocol.md):
//! 1. the document comes from the aged-records query (Cosmos stays the source of truth);
//! 2. its body (system properties stripped, bytes kept) is compressed and uploaded with
//!    `If-None-Match: *`. If a copy is there already: the same version is kept; a
//!    provably older one (smaller `ts`) is replaced at the ETag we saw; a newer one
//!    means our read is stale; anything else (the same second with another version,
//!    unreadable metadata) is a *conflict*: nothing is written or deleted;
//! 3. the copy is read back, decompressed and checked against the hash and length;
//!    then its list index entry is written ([`crate::index`]);
//! 4. only then is the record deleted from Cosmos with `If-Match: <_etag>`.
//!
//! So at every instant a record is readable from at least one tier, and a record
//! changed during the run (412) stays in Cosmos, newer than any copy. When a step
//! after the upload fails *definitely* (a mismatch, a refused delete) the copy is
//! withdrawn, at the ETag verified, so it can never resurrect a record that later
//! changes or is deleted; when the outcome is ambiguous (timeout, 5xx: the delete
//! may have happened) the copy stays.
//!
//! A pass that writes holds the run lease ([`crate::lease`]), so two passes never
//! work on the same records at once.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use tiering::archive::{Archive, PutCondition};
use tiering::codec::{self, AgeLookup, AgeStamp, ArchiveMeta};
use tiering::cosmos::{FeedRange, RangeSlice};
use tiering::index;
use tiering::record::RawDocument;
use tiering::settings::ArchiverSettings;
use tiering::store::StoreError;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::budget::RuBudget;
use crate::concurrency::{AdaptiveLimit, Slot};
use crate::decide::{self, Deletion, Eligibility, ExistingCopy, PartitionValue, WithdrawCopy};
use crate::lease::{LeaseHolds, RunLease};
use crate::startup::Archiver;
use crate::{index as backfill_index, restamp, retention};

/// A progress line every this many records, so a long run shows it is alive.
const PROGRESS_EVERY: u64 = 500;
/// Blocked records named in a run's log (the summary counts them all).
const BLOCKED_LOGGED: usize = 100;
/// Times a delete throttled past the SDK's retries is asked again.
const DELETE_THROTTLED_AGAIN: usize = 4;
/// The most request units a partial run spends counting its backlog.
pub const BACKLOG_MAX_RU: f64 = 20_000.0;

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Copied, verified, deleted from Cosmos.
    Archived { raw: u64, stored: u64 },
    /// An identical verified copy was already in the archive; deleted from Cosmos.
    AlreadyArchived { raw: u64, stored: u64 },
    /// Dry run: would have been archived.
    WouldArchive { raw: u64, stored: u64 },
    /// The record changed after it was read (412, or a newer copy is archived): it stays in Cosmos.
    ChangedDuringRun,
    /// Someone else deleted it between read and delete (404): the copy is withdrawn
    /// when that is certain, kept when our own retried delete may have done it.
    DeletedByOthers,
    /// The archive holds another version of the same second, or a copy whose
    /// metadata cannot be read: nothing was written or deleted; a person decides.
    Conflict,
    /// Its age field is missing or not past the cutoff after all (re-checked client-side).
    NotAged,
    /// It can never be archived as it is (an id the read API refuses, no string
    /// partition-key value, a name over Azure's limit, no system properties): it
    /// stays in Cosmos, counted apart from failures so the failed-run alert means
    /// a real failure; the run's log names each such record once.
    Blocked { id: String, reason: String },
    /// A step failed; the record stays in Cosmos.
    Failed { reason: String, outage: bool },
    /// Delivered a second time in one pass: the first delivery has it; this one
    /// did nothing.
    Repeated,
}

/// What became of a copy that had to be withdrawn after a definite failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// Nothing to withdraw.
    None,
    /// Deleted at the ETag that was verified.
    Withdrawn,
    /// The copy was replaced by someone else meanwhile; theirs is left alone.
    NotOurs,
    /// Could not be deleted: it may shadow or resurrect the record (logged, counted).
    Failed,
}

/// One record's result: its outcome, what became of its copy, what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordResult {
    pub outcome: Outcome,
    pub withdrawal: Withdrawal,
    pub request_units: f64,
    /// Cosmos attempts answered 429 (and retried by the SDK) for this record.
    pub throttled: u32,
}

impl RecordResult {
    fn new(outcome: Outcome) -> Self {
        Self { outcome, withdrawal: Withdrawal::None, request_units: 0.0, throttled: 0 }
    }
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every aged record was handled (failed records are counted, not hidden).
    #[default]
    Complete,
    /// The time budget ran out (or the lease was lost); the next run continues.
    Partial,
    /// A store outage or a refused query stopped the pass.
    Failed,
    /// Another pass holds the run lease; this one did nothing.
    Skipped,
}

impl RunStatus {
    /// The name the summary's JSON and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// The run's report: the timer's `ReturnValue` and one structured log line.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub status: RunStatus,
    pub dry_run: bool,
    pub age_field: String,
    pub cutoff: String,
    pub scanned: u64,
    pub archived: u64,
    pub already_archived: u64,
    pub would_archive: u64,
    pub changed_during_run: u64,
    pub deleted_by_others: u64,
    pub conflicts: u64,
    pub not_aged: u64,
    /// Aged records that can never be archived as they are (docs/operations.md, "Known limits").
    pub blocked: u64,
    /// Records the query delivered twice in this pass; the second time did nothing.
    pub repeated: u64,
    pub failed: u64,
    /// Copies withdrawn after a definite failure (so they never resurrect a record).
    pub withdrawn: u64,
    /// Copies that should have been withdrawn but could not be; each is logged by name.
    pub withdraw_failed: u64,
    /// Archived copies whose age stamp was brought up to the current age field.
    pub restamped: u64,
    /// Archived copies past `ARCHIVE_RETENTION_DAYS` deleted from the archive
    /// (a dry run: that would be), and their stored bytes.
    pub expired: u64,
    pub expired_bytes: u64,
    /// Copies past retention kept because their partition is on hold.
    pub held: u64,
    /// List index entries written for copies archived before the index (or under
    /// another age field), and whether every copy has one (then lists use it).
    pub indexed: u64,
    pub index_complete: bool,
    /// After a partial run: the aged records still in Cosmos (a walk of at most
    /// [`BACKLOG_MAX_RU`]; `backlogExact` false when it stopped there: a lower
    /// bound), and the nights that takes at this run's pace and the schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_exact: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nights_left: Option<f64>,
    /// False while the expiry scan has not reached the end of the archive since
    /// it last started over (it resumes there the next night); true without retention.
    pub expiry_complete: bool,
    pub bytes_read: u64,
    pub bytes_stored: u64,
    pub compression_ratio: f64,
    pub request_units: f64,
    /// Cosmos attempts answered 429 (retried by the SDK, and a signal to slow down).
    pub throttled: u64,
    /// The records-in-flight limit the run settled on (at most `ARCHIVE_CONCURRENCY`;
    /// the sum of each range's own).
    pub concurrency: usize,
    /// The physical partitions (feed ranges) queried side by side.
    pub ranges: usize,
    /// The request-unit budget the run kept to (0: unlimited), and where it came
    /// from (`ARCHIVE_MAX_RU_PER_SECOND`, or a share of the container's throughput).
    pub ru_budget: u32,
    pub ru_budget_source: String,
    pub duration_ms: u64,
    /// The first blocked records (id and reason), logged once per run, not reported.
    #[serde(skip)]
    pub blocked_records: Vec<String>,
    /// Why the run stopped early or did nothing, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Summary {
    /// True when the invocation should be reported as failed.
    pub fn is_failure(&self) -> bool {
        self.failed > 0 || self.withdraw_failed > 0 || self.status == RunStatus::Failed
    }

    fn count(&mut self, result: &RecordResult) {
        self.request_units += result.request_units;
        self.throttled += u64::from(result.throttled);
        match result.withdrawal {
            Withdrawal::Withdrawn => self.withdrawn += 1,
            Withdrawal::Failed => self.withdraw_failed += 1,
            Withdrawal::None | Withdrawal::NotOurs => {}
        }
        match &result.outcome {
            Outcome::Archived { raw, stored } => {
                self.archived += 1;
                self.bytes_read += raw;
                self.bytes_stored += stored;
            }
            Outcome::AlreadyArchived { raw, stored } => {
                self.already_archived += 1;
                self.bytes_read += raw;
                self.bytes_stored += stored;
            }
            Outcome::WouldArchive { raw, stored } => {
                self.would_archive += 1;
                self.bytes_read += raw;
                self.bytes_stored += stored;
            }
            Outcome::ChangedDuringRun => self.changed_during_run += 1,
            Outcome::DeletedByOthers => self.deleted_by_others += 1,
            Outcome::Conflict => self.conflicts += 1,
            Outcome::NotAged => self.not_aged += 1,
            Outcome::Blocked { id, reason } => {
                self.blocked += 1;
                if self.blocked_records.len() < BLOCKED_LOGGED {
                    self.blocked_records.push(format!("{id:?}: {reason}"));
                }
            }
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Repeated => self.repeated += 1,
        }
    }

    /// The summary of a pass that could not start (the stores could not be reached).
    pub fn not_started(settings: &ArchiverSettings, error: String) -> Self {
        let summary = Self {
            status: RunStatus::Failed,
            dry_run: settings.dry_run,
            age_field: settings.stores.age_field.name().to_owned(),
            error: Some(error),
            ..Default::default()
        };
        summary.log();
        summary
    }

    /// The one log line of a run, at error level when the invocation fails.
    fn log(&self) {
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    status = self.status.as_str(), scanned = self.scanned, archived = self.archived,
                    already_archived = self.already_archived, would_archive = self.would_archive,
                    changed_during_run = self.changed_during_run, deleted_by_others = self.deleted_by_others,
                    conflicts = self.conflicts, not_aged = self.not_aged, blocked = self.blocked, repeated = self.repeated, failed = self.failed,
                    withdrawn = self.withdrawn, withdraw_failed = self.withdraw_failed, restamped = self.restamped,
                    expired = self.expired, expired_bytes = self.expired_bytes, held = self.held,
                    expiry_complete = self.expiry_complete, indexed = self.indexed,
                    index_complete = self.index_complete, backlog = self.backlog,
                    backlog_exact = self.backlog_exact, nights_left = self.nights_left,
                    bytes_read = self.bytes_read, bytes_stored = self.bytes_stored,
                    compression_ratio = self.compression_ratio, request_units = self.request_units,
                    throttled = self.throttled, concurrency = self.concurrency, ranges = self.ranges,
                    ru_budget = self.ru_budget, ru_budget_source = %self.ru_budget_source,
                    duration_ms = self.duration_ms, dry_run = self.dry_run, error = ?self.error,
                    "archive run finished"
                )
            };
        }
        if self.is_failure() {
            line!(error);
        } else {
            line!(info);
        }
    }
}

/// What the ranges of a pass share: the summary and the observer.
struct Shared<'a, F> {
    summary: &'a mut Summary,
    observe: F,
    finished: u64,
}

/// What each range's slice of a pass is given besides its slice.
struct Side<'s, 'a, F> {
    deadline: Instant,
    started: Instant,
    /// The run's bound on records in flight, over all ranges.
    total: &'s tokio::sync::Semaphore,
    shared: &'s std::sync::Mutex<Shared<'a, F>>,
    outage: &'s AtomicBool,
    cut_short: &'s AtomicBool,
    /// Each range's share of the budget (0: none), and of the page buffers.
    range_budget: u32,
    page_size: usize,
}

/// Ranges queried at once: each holds a page and a channel of records, so
/// memory grows with them (100 ranges of 300 KB records at the smallest page
/// would hold about 500 MB); the rest wait for one to finish. Each range
/// spends at most its partition's share of the budget, so past this many
/// physical partitions a run spends at most this many shares at once
/// (`archiver plan` counts that).
pub const MAX_OPEN_RANGES: usize = 32;

/// What one range's slice of a pass spent and ended with.
#[derive(Debug, Default)]
struct RangeDone {
    charge: f64,
    throttled: u32,
    error: Option<StoreError>,
    /// The adaptive limit it settled on.
    limit: usize,
}

/// Per-pass state shared by the record tasks.
struct Pass<'a> {
    archiver: &'a Archiver,
    cutoff: decide::Cutoff,
    dry_run: bool,
    budget: RuBudget,
    now: DateTime<Utc>,
    /// True while the run lease holds; checked before every destructive step.
    lease_holds: &'a LeaseHolds<'a>,
    /// A plan's trial ([`Archiver::trial`]): copies go below this prefix and
    /// nothing is deleted from Cosmos.
    trial: Option<String>,
    /// Every record this pass has taken (a hash of partition key and id). A
    /// record delivered twice (a query re-opened from an earlier position) is
    /// left to the first delivery: the second would find the record gone from
    /// Cosmos, take that for a deletion by someone else and withdraw the copy.
    taken: std::sync::Mutex<std::collections::HashSet<u64>>,
}

/// Where a plan's trials put their copies (below `state/`, which no reader,
/// listing, retention or verification looks at).
pub const TRIAL_PREFIX: &str = "state/plan-trial/";

/// What a plan's trial did in its time ([`Archiver::trial`]).
#[derive(Debug, Clone, Default)]
pub struct Trial {
    /// Records taken through every step but the delete.
    pub records: u64,
    /// Aged records the trial met and could not archive (blocked, changed).
    pub skipped: u64,
    pub failed: u64,
    pub seconds: f64,
    /// Its queries' and reads' request units.
    pub request_units: f64,
    /// Every aged record was met before the trial's time was up.
    pub complete: bool,
    /// Records met in the first `half_seconds` (the in-flight limit still
    /// finding its level): the steady pace is the second half's.
    pub first_half_records: u64,
    pub half_seconds: f64,
    pub ranges: usize,
    pub concurrency: usize,
    /// What stopped it, if something did (a store outage).
    pub error: Option<String>,
}

impl Archiver {
    /// Runs one pass. Never panics on store errors: they end up in the summary.
    pub async fn run(&self, now: DateTime<Utc>, dry_run: bool) -> Summary {
        self.run_observed(now, dry_run, |_| {}).await
    }

    /// [`run`](Self::run), calling `observe` after each record (tests use it to
    /// inject an outage at a known point).
    pub async fn run_observed(&self, now: DateTime<Utc>, dry_run: bool, observe: impl FnMut(&RecordResult)) -> Summary {
        let started = Instant::now();
        let field = &self.settings.stores.age_field;
        let cutoff = self.cutoffs(now);
        let mut summary = Summary {
            dry_run,
            age_field: field.name().to_owned(),
            cutoff: cutoff.age.to_metadata(),
            ru_budget: self.settings.max_ru_per_second,
            ru_budget_source: self.settings.ru_budget_note.clone(),
            ..Default::default()
        };
        // A dry run writes nothing, not even the lock blob.
        let lease = if dry_run {
            None
        } else {
            match RunLease::acquire(self.archive.clone()).await {
                Ok(Some(lease)) => Some(lease),
                Ok(None) => {
                    summary.status = RunStatus::Skipped;
                    summary.error = Some("another archive run holds the run lease; this one did nothing".into());
                    warn!("archive run skipped: another run holds the lease");
                    summary.log();
                    return summary;
                }
                Err(e) => {
                    summary.status = RunStatus::Failed;
                    summary.error = Some(format!("cannot take the run lease: {e}"));
                    summary.log();
                    return summary;
                }
            }
        };
        let deadline = started + self.settings.time_budget;
        let lease_holds = || lease.as_ref().is_none_or(RunLease::holds);
        info!(cutoff = %summary.cutoff, age_field = %summary.age_field, dry_run, concurrency = self.settings.concurrency, "archive run started");

        // First, in at most a quarter of the budget, bring archived copies' age stamps
        // up to the current age field (once done, this costs one HEAD per run).
        if !dry_run {
            let restamp_deadline = started + self.settings.time_budget / 4;
            let concurrency = self.settings.concurrency;
            let field = &self.settings.stores.age_field;
            let stamped =
                match restamp::restamp(&self.archive, field, concurrency, restamp_deadline, &lease_holds).await {
                    Ok(report) => {
                        summary.restamped = report.restamped;
                        if !report.complete {
                            summary.status = RunStatus::Partial;
                        }
                        report.complete
                    }
                    Err(e) => {
                        // Not fatal: if a store is down, the archive pass meets it too.
                        error!(error = %e, "re-stamping archived copies stopped; the next run continues");
                        summary.status = RunStatus::Partial;
                        false
                    }
                };
            // Then, once every copy carries the current field's stamp, index the
            // copies that have no list entry under it, in at most another quarter
            // (once done, one HEAD per run). Readers list as before meanwhile, so
            // an unfinished step does not make the run partial.
            if stamped {
                let deadline =
                    (Instant::now() + self.settings.time_budget / 4).min(started + self.settings.time_budget);
                match backfill_index::backfill(
                    &self.archive,
                    field,
                    concurrency,
                    backfill_index::PAGE,
                    deadline,
                    &lease_holds,
                )
                .await
                {
                    Ok(report) => (summary.indexed, summary.index_complete) = (report.indexed, report.complete),
                    Err(e) => error!(error = %e, "indexing archived copies stopped; the next run continues"),
                }
            }
        }
        self.expire(&mut summary, now, dry_run, started, &lease_holds).await;
        let budget = RuBudget::new(self.settings.max_ru_per_second);
        let pass = Pass {
            archiver: self,
            cutoff,
            dry_run,
            budget,
            now,
            lease_holds: &lease_holds,
            trial: None,
            taken: Default::default(),
        };
        pass.archive_aged(&mut summary, deadline, observe).await;
        if summary.status == RunStatus::Partial && !dry_run {
            self.count_backlog(&mut summary, now).await;
        }
        if let Some(lease) = lease {
            lease.release().await;
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        summary.compression_ratio = if summary.bytes_stored == 0 {
            0.0
        } else {
            (summary.bytes_read as f64 / summary.bytes_stored as f64 * 100.0).round() / 100.0
        };
        summary.request_units = (summary.request_units * 100.0).round() / 100.0;
        if summary.blocked > 0 {
            warn!(
                blocked = summary.blocked,
                records = ?summary.blocked_records,
                "aged records that cannot be archived as they are stay in Cosmos (docs/operations.md, \"Known limits\")"
            );
        }
        summary.log();
        summary
    }
}

impl Archiver {
    /// A plan's timed trial of the archive pass: for at most `seconds`, the
    /// run's own pass over the aged records (the same queries per range, limits,
    /// budget, compression, upload, read-back and list entry), with the copies
    /// under [`TRIAL_PREFIX`] and, in place of the delete, a point read that
    /// brings no body back ([`CosmosStore::read_unless_still`]): nothing changes
    /// in Cosmos. The copies are deleted afterwards, with any a trial older than
    /// an hour left behind (an interrupted plan).
    ///
    /// [`CosmosStore::read_unless_still`]: tiering::cosmos::CosmosStore::read_unless_still
    pub async fn trial(&self, now: DateTime<Utc>, seconds: f64) -> Trial {
        // The run lease, as a run holds it: a trial never adds its spending to a
        // run's, and an operator's `forget` waits for it (no trial copy of a
        // record erased meanwhile).
        let lease = match RunLease::acquire(self.archive.clone()).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                let error = "an archive run or an operator command holds the run lease; no trial".to_owned();
                return Trial { error: Some(error), ..Trial::default() };
            }
            Err(e) => return Trial { error: Some(format!("cannot take the run lease: {e}")), ..Trial::default() },
        };
        let started = Instant::now();
        let prefix = format!("{TRIAL_PREFIX}{}-{}/", now.timestamp(), uuid::Uuid::new_v4().simple());
        let deadline = started + std::time::Duration::from_secs_f64(seconds.max(0.0));
        let mut summary = Summary::default();
        let lease_holds = || lease.holds();
        let pass = Pass {
            archiver: self,
            cutoff: self.cutoffs(now),
            dry_run: false,
            budget: RuBudget::new(self.settings.max_ru_per_second),
            now,
            lease_holds: &lease_holds,
            trial: Some(prefix.clone()),
            taken: Default::default(),
        };
        // Records met in the first half: the pace the second half shows is the
        // steady one, after the in-flight limit has found its level. And the
        // first failure, to say why a trial that took nothing through measured nothing.
        let half = started + std::time::Duration::from_secs_f64(seconds.max(0.0) / 2.0);
        let (mut first_half, mut first_failure) = (0, None);
        pass.archive_aged(&mut summary, deadline, |r| {
            first_half += u64::from(Instant::now() < half);
            if let (Outcome::Failed { reason, .. }, None) = (&r.outcome, &first_failure) {
                first_failure = Some(reason.clone());
            }
        })
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        sweep_trials(self.archive.as_ref(), &prefix, now).await;
        lease.release().await;
        let error = summary.error.or_else(|| {
            (summary.archived == 0).then_some(first_failure).flatten().map(|why| {
                format!(
                    "{} record(s) failed in the trial, the first: {why} (a 403 means this identity may not write \
                     to the archive: docs/operations.md, \"Who may run what\")",
                    summary.failed
                )
            })
        });
        Trial {
            first_half_records: first_half,
            half_seconds: seconds.max(0.0) / 2.0,
            records: summary.archived,
            skipped: summary.scanned.saturating_sub(summary.archived + summary.failed),
            failed: summary.failed,
            seconds: elapsed,
            request_units: summary.request_units,
            complete: summary.status == RunStatus::Complete,
            ranges: summary.ranges,
            concurrency: summary.concurrency,
            error,
        }
    }

    /// After a partial run, what is left: the dashboard's "nights left" (one
    /// light walk of the aged records, bounded by [`BACKLOG_MAX_RU`]).
    async fn count_backlog(&self, summary: &mut Summary, now: DateTime<Utc>) {
        // Paced as the run is, and within the 30-minute function timeout the
        // 25-minute budget leaves room under: at most 3 minutes.
        let budget = RuBudget::new(self.settings.max_ru_per_second);
        let deadline = Some(Instant::now() + std::time::Duration::from_secs(180));
        match crate::plan::count_paced(self, &self.cutoffs(now), BACKLOG_MAX_RU, Some(&budget), deadline).await {
            Ok(counts) => {
                summary.request_units += counts.request_charge;
                summary.backlog = Some(counts.records);
                summary.backlog_exact = Some(!counts.partial);
                let per_run = (summary.archived + summary.already_archived) as f64;
                let runs_per_day = crate::plan::runs_per_day(&self.settings.schedule, now);
                if per_run > 0.0 && runs_per_day > 0.0 {
                    let nights = (counts.records as f64 / per_run).ceil() / runs_per_day;
                    summary.nights_left = Some((nights * 10.0).round() / 10.0);
                }
            }
            Err(e) => warn!(error = %e, "the backlog left by this partial run could not be counted"),
        }
    }

    /// Retention (`ARCHIVE_RETENTION_DAYS`): deletes archived copies past it, not
    /// on hold, in at most a quarter of the run's time; an unfinished scan resumes
    /// the next night, so it does not make the run partial.
    async fn expire(
        &self,
        summary: &mut Summary,
        now: DateTime<Utc>,
        dry_run: bool,
        started: Instant,
        lease_holds: &LeaseHolds<'_>,
    ) {
        let Some(days) = self.settings.retention_days else {
            summary.expiry_complete = true;
            return;
        };
        let field = &self.settings.stores.age_field;
        let cutoff = Self::cutoff(field, now, days);
        let deadline = (Instant::now() + self.settings.time_budget / 4).min(started + self.settings.time_budget);
        let held = match crate::holds::held(self.archive.as_ref()).await {
            Ok(held) => held,
            Err(e) => {
                // Without the holds nothing may expire; the archive pass meets the outage too.
                error!(error = %e, "the holds could not be read; nothing expired this run");
                summary.status = RunStatus::Partial;
                return;
            }
        };
        match retention::expire(&self.archive, field, &cutoff, &held, dry_run, retention::PAGE, deadline, lease_holds)
            .await
        {
            Ok(report) => {
                summary.expired = report.expired;
                summary.expired_bytes = report.expired_bytes_stored;
                summary.held = report.held;
                summary.expiry_complete = report.complete;
            }
            Err(e) => {
                error!(error = %e, "expiring archived copies stopped; the next run continues");
                summary.status = RunStatus::Partial;
            }
        }
    }
}

impl Pass<'_> {
    /// Archives every aged record, one query per physical partition (feed
    /// range), the ranges side by side. A query over the whole container would
    /// be drained one range after another (azure_data_cosmos_driver 1.0,
    /// `driver/dataflow/drain.rs`, `SequentialDrain`), so a container of K
    /// physical partitions, each holding 1/K of its throughput, would give the
    /// archiver 1/K of it. Each range has its own adaptive limit (a range that
    /// throttles slows alone), and all of them share the run's in-flight bound
    /// (`ARCHIVE_CONCURRENCY`), its request-unit budget, its deadline and the
    /// run lease.
    async fn archive_aged(&self, summary: &mut Summary, deadline: Instant, observe: impl FnMut(&RecordResult)) {
        let settings = &self.archiver.settings;
        let started = Instant::now();
        let ranges = if settings.range_queries { self.archiver.cosmos.feed_ranges().await } else { Ok(Vec::new()) };
        let slices: Vec<RangeSlice> = match ranges {
            Ok(ranges) if !ranges.is_empty() => ranges.iter().map(RangeSlice::of).collect(),
            Ok(_) => vec![RangeSlice::of(&FeedRange::full())],
            Err(e) => {
                summary.status = RunStatus::Failed;
                summary.error = Some(format!("cannot read the container's partition key ranges: {e}"));
                return;
            }
        };
        summary.ranges = slices.len();
        info!(ranges = slices.len(), "aged records queried in each physical partition, side by side");
        let total = tokio::sync::Semaphore::new(settings.concurrency.max(1));
        let shared = std::sync::Mutex::new(Shared { summary: &mut *summary, observe, finished: 0 });
        let (outage, cut_short) = (AtomicBool::new(false), AtomicBool::new(false));
        let side = Side {
            deadline,
            started,
            total: &total,
            shared: &shared,
            outage: &outage,
            cut_short: &cut_short,
            // Each physical partition holds an even share of the container's
            // throughput: the archiver takes at most its budget's share of each
            // (docs/operations.md, "The request-unit budget").
            range_budget: settings.max_ru_per_second.div_ceil(u32::try_from(slices.len()).unwrap_or(u32::MAX).max(1)),
            // Pages and channels held per range: together about what one range
            // held before there were several (docs/archive-protocol.md).
            page_size: (2 * settings.concurrency / slices.len().max(1)).clamp(4, 50),
        };
        let side = &side;
        let ranges: Vec<RangeDone> = futures::stream::iter(slices.iter().cloned())
            .map(|slice| async move { self.archive_slice(&slice, side).await })
            .buffer_unordered(MAX_OPEN_RANGES)
            .collect()
            .await;
        // What the last records in flight spent is paid before the pass ends, so that
        // back-to-back runs stay within the budget too.
        self.budget.admit().await;
        let mut page_error = None;
        let mut limits = 0;
        for range in ranges {
            summary.request_units += range.charge;
            summary.throttled += u64::from(range.throttled);
            limits += range.limit;
            page_error = page_error.or(range.error);
        }
        summary.concurrency = limits.min(settings.concurrency);
        if let Some(e) = page_error
            && summary.status != RunStatus::Failed
        {
            summary.status = RunStatus::Failed;
            summary.error = Some(format!("reading aged records from Cosmos failed: {e}"));
        } else if cut_short.load(Ordering::SeqCst) && summary.status == RunStatus::Complete {
            summary.status = RunStatus::Partial;
        }
        // Records fetched but not started are not counted as scanned: the next run sees them again.
    }

    /// One range's slice of the pass: its query's pages feed records to its own
    /// adaptive limit, each record then waiting for a place under the run's
    /// bound, for the run's budget and for the range's share of it.
    async fn archive_slice<F: FnMut(&RecordResult)>(&self, slice: &RangeSlice, side: &Side<'_, '_, F>) -> RangeDone {
        let settings = &self.archiver.settings;
        let Side { deadline, started, total, shared, outage, cut_short, range_budget, page_size } = *side;
        let local = RuBudget::new(range_budget);
        let local = &local;
        let limit = AdaptiveLimit::new(settings.concurrency, settings.adaptive);
        let mut pages = match self
            .archiver
            .cosmos
            .aged_records_in(slice, &self.cutoff.age, self.cutoff.written_before, page_size as u32)
            .await
        {
            Ok(p) => p,
            Err(e) => return RangeDone { error: Some(e), limit: limit.current(), ..Default::default() },
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(page_size);
        let producer = async move {
            let (mut charge, mut throttled) = (0.0, 0);
            // Where the range's query stands after the last page taken: a page
            // throttled past the SDK's own retries (a hot partition) is asked for
            // again from there after the delay Cosmos names, until the deadline.
            // When the SDK cannot say where the query stands, it is not asked
            // again from an older position: records already taken would come
            // twice; the range goes on in the next run instead.
            let mut at = slice.clone();
            let mut resumable = true;
            loop {
                let Some(page) = pages.next_page().await else { break };
                match page {
                    Ok(page) => {
                        self.budget.charge(page.request_charge);
                        local.charge(page.request_charge);
                        charge += page.request_charge;
                        throttled += page.throttled;
                        match pages.continuation() {
                            Some(token) => (at.continuation, resumable) = (Some(token), true),
                            None => resumable = false,
                        }
                        for doc in page.docs {
                            if tx.send(doc).await.is_err() {
                                return (charge, throttled, None);
                            }
                        }
                    }
                    Err(StoreError::Throttled { retry_after })
                        if resumable && Instant::now() + retry_after < deadline =>
                    {
                        throttled += 1;
                        debug!(range = %at.range, ?retry_after, "a range's query page throttled; asked again after the delay");
                        tokio::time::sleep(retry_after).await;
                        let cosmos = &self.archiver.cosmos;
                        match cosmos
                            .aged_records_in(&at, &self.cutoff.age, self.cutoff.written_before, page_size as u32)
                            .await
                        {
                            Ok(again) => pages = again,
                            Err(e) => return (charge, throttled, Some(e)),
                        }
                    }
                    Err(StoreError::Throttled { .. }) => {
                        // No time left to wait: the range goes on in the next run.
                        cut_short.store(true, Ordering::SeqCst);
                        return (charge, throttled + 1, None);
                    }
                    Err(e) => return (charge, throttled, Some(e)),
                }
            }
            (charge, throttled, None)
        };
        let consumer = async {
            let docs = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|doc| (doc, rx)) });
            let limit = &limit;
            let admitted: BoxStream<'_, (Bytes, Slot, tokio::sync::SemaphorePermit<'_>)> = docs
                .take_while(move |_| {
                    let go_on = Instant::now() < deadline && (self.lease_holds)();
                    if !go_on {
                        cut_short.store(true, Ordering::SeqCst);
                    }
                    std::future::ready(go_on && !outage.load(Ordering::SeqCst))
                })
                .filter_map(move |doc| async move {
                    let slot = limit.acquire().await;
                    let permit = total.acquire().await.ok()?;
                    self.budget.admit().await;
                    local.admit().await;
                    Some((doc, slot, permit))
                })
                .boxed();
            let mut results: BoxStream<'_, (RecordResult, Slot)> = admitted
                .map(move |(doc, slot, permit)| async move {
                    let result = self.archive_one(doc).await;
                    drop(permit);
                    (result, slot)
                })
                .buffer_unordered(settings.concurrency.max(1))
                .boxed();
            while let Some((result, slot)) = results.next().await {
                limit.finished(slot, result.throttled);
                local.charge(result.request_units);
                let Ok(mut shared) = shared.lock() else { continue };
                let shared = &mut *shared;
                shared.summary.scanned += 1;
                if let Outcome::Failed { reason, outage: true } = &result.outcome
                    && !outage.swap(true, Ordering::SeqCst)
                {
                    shared.summary.status = RunStatus::Failed;
                    shared.summary.error = Some(format!("store outage, run stopped: {reason}"));
                }
                shared.summary.count(&result);
                (shared.observe)(&result);
                shared.finished += 1;
                if shared.finished.is_multiple_of(PROGRESS_EVERY) {
                    info!(
                        scanned = shared.summary.scanned,
                        archived = shared.summary.archived + shared.summary.already_archived,
                        failed = shared.summary.failed,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "archive run progress"
                    );
                }
            }
        };
        let ((charge, throttled, error), ()) = futures::join!(producer, consumer);
        RangeDone { charge, throttled, error, limit: limit.current() }
    }

    /// Archives one record.
    async fn archive_one(&self, doc: Bytes) -> RecordResult {
        let prepared = match self.prepare(doc).await {
            Prep::Ready(p) => p,
            Prep::NotAged => return RecordResult::new(Outcome::NotAged),
            Prep::Blocked { id, reason } => return RecordResult::new(Outcome::Blocked { id, reason }),
            Prep::Failed(reason) => {
                warn!(%reason, "record not archived; it stays in Cosmos");
                return RecordResult::new(Outcome::Failed { reason, outage: false });
            }
        };
        let p = &prepared;
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&p.customer_id, &p.id).hash(&mut h);
            h.finish()
        };
        if !self.taken.lock().map(|mut taken| taken.insert(key)).unwrap_or(true) {
            warn!(customer_id = %p.customer_id, id = %p.id, "delivered twice in one pass; left to the first delivery");
            return RecordResult::new(Outcome::Repeated);
        }
        if self.dry_run {
            return RecordResult::new(Outcome::WouldArchive { raw: p.raw_len, stored: p.compressed.len() as u64 });
        }
        let result = self.copy_verify_delete(p).await;
        match &result.outcome {
            Outcome::Failed { reason, outage } => {
                warn!(customer_id = %p.customer_id, id = %p.id, %reason, outage, withdrawal = ?result.withdrawal, "record not archived; it stays in Cosmos")
            }
            other => debug!(customer_id = %p.customer_id, id = %p.id, outcome = ?other, "record done"),
        }
        result
    }

    /// Parses, re-checks the age, hashes and compresses.
    async fn prepare(&self, doc: Bytes) -> Prep {
        let field = &self.archiver.settings.stores.age_field;
        let doc = match RawDocument::parse(doc) {
            Ok(doc) => doc,
            Err(e) => return Prep::Blocked { id: String::new(), reason: format!("unparseable document: {e}") },
        };
        let id = doc.get::<String>("id");
        let property = self.archiver.cosmos.partition_key().property();
        let customer_id = doc.get::<String>(property);
        let age = doc.age(field);
        let stamp = AgeStamp::new(field, age.as_ref().ok());
        let partition = PartitionValue { property, value: customer_id.as_deref() };
        let name = match decide::eligibility(id.as_deref(), partition, age, doc.ts().ok(), &self.cutoff) {
            Eligibility::Archive { blob } => blob,
            // Written since the query read it (the query leaves quiet records out):
            // young again, as far as this run goes.
            Eligibility::NotAged | Eligibility::Quiet => return Prep::NotAged,
            Eligibility::Blocked(reason) => return Prep::Blocked { id: id.unwrap_or_default(), reason },
        };
        let (id, customer_id) = (id.unwrap_or_default(), customer_id.unwrap_or_default());
        let (etag, ts) = match (doc.etag(), doc.ts()) {
            (Ok(etag), Ok(ts)) => (etag, ts),
            (Err(e), _) | (_, Err(e)) => return Prep::Blocked { reason: format!("record {id:?}: {e}"), id },
        };
        // The whole document, as Cosmos returned it: what a consumer is served is
        // derived from it when serving (docs/archive-protocol.md, "Layout").
        // Hashing and compressing 300 KB takes a few milliseconds: off the async workers.
        let compressed = tokio::task::spawn_blocking(move || {
            let body = doc.as_bytes();
            (body.len() as u64, codec::sha256_hex(body), Bytes::from(codec::compress(body)))
        })
        .await;
        let Ok((body_len, sha256, compressed)) = compressed else {
            return Prep::Failed(format!("record {id:?}: the compression task failed"));
        };
        let meta = ArchiveMeta { sha256, length: body_len, etag: etag.clone(), ts, stamp, archived_at: self.now };
        // Its list index entry (tiering::index): a name too long for Azure means
        // the record could not be listed once archived, so it stays hot.
        let entry = match meta.age_under(field) {
            AgeLookup::Known(age) => match index::entry_name(&customer_id, field, &age, &id) {
                Ok(entry) => entry,
                Err(e) => return Prep::Blocked { reason: format!("its list index entry: {e}"), id },
            },
            AgeLookup::Missing | AgeLookup::NeedsBody => return Prep::NotAged,
        };
        let (name, entry) = match &self.trial {
            Some(prefix) => (format!("{prefix}{name}"), format!("{prefix}{entry}")),
            None => (name, entry),
        };
        Prep::Ready(Box::new(Prepared { customer_id, id, etag, name, entry, raw_len: body_len, compressed, meta }))
    }

    /// Steps 2 to 4 for one prepared record, and the withdrawal a definite failure calls for.
    async fn copy_verify_delete(&self, p: &Prepared) -> RecordResult {
        let archive = self.archiver.archive.as_ref();
        let (raw, stored) = (p.raw_len, p.compressed.len() as u64);

        // 2. Copy.
        let (blob_etag, already, replaced) = match copy(archive, p, self.lease_holds).await {
            Copied::Stored { etag, already, replaced } => (etag, already, replaced),
            Copied::Done(result) => return result,
        };

        // 3. Verify what is stored now, not what we meant to store.
        match verify(archive, &p.name, &p.meta).await {
            Ok(()) => {}
            Err(VerifyError::Unreadable(e)) => return failed(format!("reading copy back: {e}"), Some(&e)),
            Err(VerifyError::Mismatch(why)) => {
                // A definite mismatch, and nothing was deleted: the copy must go.
                let withdrawal = withdraw(archive, p, &blob_etag, self.lease_holds).await;
                return RecordResult { withdrawal, ..failed(format!("verifying copy: {why}"), None) };
            }
        }

        // 3b. The list index entry, before the record leaves Cosmos (crate::index).
        if let Err(e) = index::write(archive, &p.entry, &p.meta).await {
            return failed(format!("writing the list index entry: {e}"), Some(&e));
        }
        if let Some(old) = replaced.and_then(|old| index::entry_of(&p.customer_id, &p.id, &old, self.age_field()))
            && old != p.entry
            && self.trial.is_none()
        {
            // The older copy was dated otherwise: its entry now names nothing.
            index::remove(archive, &old).await;
        }

        // 4. Delete the exact version we copied; a trial reads it instead.
        if self.trial.is_some() {
            return match self.archiver.cosmos.read_unless_still(&p.customer_id, &p.id, &p.etag).await {
                Ok(charge) => {
                    self.budget.charge(charge);
                    RecordResult { request_units: charge, ..RecordResult::new(Outcome::Archived { raw, stored }) }
                }
                Err(e) => failed(format!("the trial's read in place of the delete: {e}"), Some(&e)),
            };
        }
        if !(self.lease_holds)() {
            return lease_may_lapse("the delete from Cosmos");
        }
        let mut deletion = self.archiver.cosmos.delete_if_match(&p.customer_id, &p.id, &p.etag).await;
        self.budget.charge(deletion.attempts.request_charge);
        // Throttled past the SDK's own retries (a hot partition): a 429 was not
        // applied, so the delete is asked again after the delay Cosmos names, a
        // few times, before the record is left for the next run.
        for _ in 0..DELETE_THROTTLED_AGAIN {
            let Err(StoreError::Throttled { retry_after }) = &deletion.result else { break };
            tokio::time::sleep((*retry_after).min(std::time::Duration::from_secs(5))).await;
            if !(self.lease_holds)() {
                break;
            }
            let again = self.archiver.cosmos.delete_if_match(&p.customer_id, &p.id, &p.etag).await;
            self.budget.charge(again.attempts.request_charge);
            let (before, now) = (deletion.attempts, again.attempts);
            deletion.attempts = tiering::cosmos::Attempts {
                request_charge: before.request_charge + now.request_charge,
                throttled: before.throttled + now.throttled,
                last_is_authoritative: before.last_is_authoritative && now.last_is_authoritative,
            };
            deletion.result = again.result;
        }
        let attempts = deletion.attempts;
        let (what, withdraw_copy) = decide::after_delete(&deletion.result, attempts.last_is_authoritative);
        let mut result = match (what, &deletion.result) {
            (Deletion::Deleted, _) if already => RecordResult::new(Outcome::AlreadyArchived { raw, stored }),
            (Deletion::Deleted, _) => RecordResult::new(Outcome::Archived { raw, stored }),
            (Deletion::Changed, _) => RecordResult::new(Outcome::ChangedDuringRun),
            (Deletion::DeletedByOthers, _) => RecordResult::new(Outcome::DeletedByOthers),
            (Deletion::Ambiguous | Deletion::Refused, Err(e)) => failed(format!("deleting from Cosmos: {e}"), Some(e)),
            (Deletion::Ambiguous | Deletion::Refused, Ok(())) => failed("deleting from Cosmos".into(), None),
        };
        result.withdrawal = match withdraw_copy {
            WithdrawCopy::Keep => Withdrawal::None,
            WithdrawCopy::Now => withdraw(archive, p, &blob_etag, self.lease_holds).await,
            // An earlier attempt may have been applied: the copy goes only if
            // Cosmos is seen to hold the record.
            WithdrawCopy::IfCosmosHoldsIt => match self.archiver.cosmos.exists(&p.customer_id, &p.id).await {
                Ok(true) => withdraw(archive, p, &blob_etag, self.lease_holds).await,
                Ok(false) | Err(_) => Withdrawal::None,
            },
        };
        result.request_units = attempts.request_charge;
        result.throttled = attempts.throttled;
        result
    }
}

impl Pass<'_> {
    fn age_field(&self) -> &tiering::record::AgeField {
        &self.archiver.settings.stores.age_field
    }
}

fn failed(reason: String, err: Option<&StoreError>) -> RecordResult {
    RecordResult::new(Outcome::Failed { reason, outage: err.is_some_and(StoreError::is_outage) })
}

fn lease_may_lapse(step: &str) -> RecordResult {
    failed(format!("the run lease may lapse; {step} not done, record left as it is"), None)
}

/// What the copy step left.
#[derive(Debug)]
enum Copied {
    /// A copy of our version is stored at this ETag (`already`: it was there
    /// before; `replaced`: the older copy it replaced).
    Stored { etag: String, already: bool, replaced: Option<ArchiveMeta> },
    /// The record's pass ends here, with this result (nothing was deleted).
    Done(RecordResult),
}

/// Step 2: uploads the copy create-only; a copy in the way is decided by
/// [`decide::existing_copy`].
/// Deletes a plan trial's copies: those below `own`, and those of trials begun
/// more than an hour before `now` (a plan interrupted before its own sweep).
async fn sweep_trials(archive: &dyn Archive, own: &str, now: DateTime<Utc>) {
    let stale = |name: &str| {
        let begun = name.strip_prefix(TRIAL_PREFIX).and_then(|r| r.split_once('-')).map(|(t, _)| t.parse::<i64>());
        matches!(begun, Some(Ok(t)) if t < now.timestamp() - 3600)
    };
    let doomed = archive
        .list(TRIAL_PREFIX)
        .filter_map(|blob| std::future::ready(blob.ok()))
        .filter(|blob| std::future::ready(blob.name.starts_with(own) || stale(&blob.name)));
    let left = doomed
        .map(|blob| async move { archive.delete_if_match(&blob.name, &blob.etag).await.err().map(|e| (blob.name, e)) })
        .buffer_unordered(16)
        .filter_map(std::future::ready)
        .collect::<Vec<_>>()
        .await;
    if let Some((name, e)) = left.first() {
        warn!(left = left.len(), first = %name, error = %e, "a plan trial's copies were not all deleted; the next plan deletes them");
    }
}

async fn copy(archive: &dyn Archive, p: &Prepared, lease_holds: &LeaseHolds<'_>) -> Copied {
    let metadata = || p.meta.to_metadata();
    let existing = match archive.put(&p.name, p.compressed.clone(), metadata(), PutCondition::Absent).await {
        Ok(etag) => return Copied::Stored { etag, already: false, replaced: None },
        Err(StoreError::AlreadyExists) => match archive.head(&p.name).await {
            Ok(existing) => existing,
            Err(e) => return Copied::Done(failed(format!("inspecting existing copy: {e}"), Some(&e))),
        },
        // Possibly stored (a timeout): then it is a copy of the version still in
        // Cosmos, which the next run finishes or `verify --shadowed` withdraws.
        Err(e) => return Copied::Done(failed(format!("uploading copy: {e}"), Some(&e))),
    };
    let meta = ArchiveMeta::from_metadata(&existing.metadata);
    match decide::existing_copy(meta.as_ref(), &p.meta) {
        ExistingCopy::SameVersion => Copied::Stored { etag: existing.etag, already: true, replaced: None },
        ExistingCopy::ReplaceOlder => {
            if !lease_holds() {
                return Copied::Done(lease_may_lapse("replacing the older copy"));
            }
            let condition = PutCondition::Matches(existing.etag);
            match archive.put(&p.name, p.compressed.clone(), metadata(), condition).await {
                Ok(etag) => Copied::Stored { etag, already: false, replaced: meta.ok() },
                Err(StoreError::PreconditionFailed) => {
                    warn!(blob = %p.name, ours = %p.etag, "the archived copy changed while it was being replaced; left alone");
                    Copied::Done(RecordResult::new(Outcome::Conflict))
                }
                Err(e) => Copied::Done(failed(format!("replacing older copy: {e}"), Some(&e))),
            }
        }
        ExistingCopy::Newer => Copied::Done(RecordResult::new(Outcome::ChangedDuringRun)),
        ExistingCopy::Conflict(kind) => {
            let archived_etag = meta.as_ref().map(|m| m.etag.as_str()).unwrap_or("unreadable");
            let error = meta.as_ref().err().map(ToString::to_string);
            warn!(blob = %p.name, customer_id = %p.customer_id, id = %p.id, ts = p.meta.ts, cosmos_etag = %p.etag, archived_etag, ?kind, ?error, "conflict: the archive holds another version of the same second, or a copy with unreadable metadata; nothing written or deleted");
            Copied::Done(RecordResult::new(Outcome::Conflict))
        }
    }
}

/// Why a copy did not verify.
#[derive(Debug)]
enum VerifyError {
    /// It could not be read back (the store failed): nothing is known about it.
    Unreadable(StoreError),
    /// It was read and is not what we wrote (another version, corrupt, not ours).
    Mismatch(String),
}

/// Step 3: reads the copy back and proves it is our version, intact.
async fn verify(archive: &dyn Archive, name: &str, ours: &ArchiveMeta) -> Result<(), VerifyError> {
    let stored = match archive.get(name).await {
        Ok(stored) => stored,
        Err(StoreError::Corrupt(e)) => return Err(VerifyError::Mismatch(e.to_string())),
        Err(e) => return Err(VerifyError::Unreadable(e)),
    };
    let meta = ArchiveMeta::from_metadata(&stored.info.metadata).map_err(|e| VerifyError::Mismatch(e.to_string()))?;
    if !meta.same_version(ours) {
        return Err(VerifyError::Mismatch("the archive holds another version".into()));
    }
    let body = stored.body;
    tokio::task::spawn_blocking(move || codec::decode_verified(&body, &meta).map(|_| ()))
        .await
        .map_err(|e| VerifyError::Unreadable(StoreError::Other(format!("verification task failed: {e}"))))?
        .map_err(|e| VerifyError::Mismatch(e.to_string()))
}

/// Deletes the copy at the ETag that was verified; a copy replaced since is not
/// ours to delete. Only while the run lease holds.
async fn withdraw(archive: &dyn Archive, p: &Prepared, blob_etag: &str, lease_holds: &LeaseHolds<'_>) -> Withdrawal {
    if !lease_holds() {
        error!(blob = %p.name, "a copy that should have been withdrawn is left: the run lease may lapse; run `archiver verify --shadowed --withdraw`");
        return Withdrawal::Failed;
    }
    match archive.delete_if_match(&p.name, blob_etag).await {
        Ok(()) => {
            // Its entry, if it was written, names nothing now.
            index::remove(archive, &p.entry).await;
            Withdrawal::Withdrawn
        }
        Err(StoreError::PreconditionFailed | StoreError::NotFound) => Withdrawal::NotOurs,
        Err(e) => {
            error!(blob = %p.name, customer_id = %p.customer_id, id = %p.id, error = %e, "a copy that should have been withdrawn is still in the archive; run `archiver verify --shadowed --withdraw`");
            Withdrawal::Failed
        }
    }
}

/// What preparing a record came to.
enum Prep {
    Ready(Box<Prepared>),
    NotAged,
    Blocked { id: String, reason: String },
    Failed(String),
}

/// A record that passed the client-side checks and is ready to upload.
struct Prepared {
    customer_id: String,
    id: String,
    etag: String,
    name: String,
    /// Its list index entry.
    entry: String,
    raw_len: u64,
    compressed: Bytes,
    meta: ArchiveMeta,
}

#[cfg(test)]
mod tests {
    use super::*;

    use testkit::memory::MemoryArchive;
    use tiering::record::{AgeField, AgeValue};

    const HOLDS: &LeaseHolds<'static> = &|| true;
    const LAPSING: &LeaseHolds<'static> = &|| false;

    fn prepared(body: &[u8], etag: &str, ts: i64) -> Prepared {
        let meta = ArchiveMeta {
            sha256: codec::sha256_hex(body),
            length: body.len() as u64,
            etag: etag.into(),
            ts,
            stamp: AgeStamp::new(&AgeField::Ts, Some(&AgeValue::Seconds(ts))),
            archived_at: Utc::now(),
        };
        Prepared {
            customer_id: "c1".into(),
            id: "r1".into(),
            etag: etag.into(),
            name: "v1/c1/r1.json.zst".into(),
            entry: index::entry_name("c1", &AgeField::Ts, &AgeValue::Seconds(ts), "r1").unwrap(),
            raw_len: body.len() as u64,
            compressed: codec::compress(body).into(),
            meta,
        }
    }

    async fn stored_ts(archive: &MemoryArchive, name: &str) -> i64 {
        ArchiveMeta::from_metadata(&archive.head(name).await.unwrap().metadata).unwrap().ts
    }

    fn outcome(copied: Copied) -> Outcome {
        match copied {
            Copied::Done(result) => result.outcome,
            Copied::Stored { .. } => panic!("expected the pass to end, got {copied:?}"),
        }
    }

    #[tokio::test]
    async fn the_copy_is_created_once_and_the_same_version_is_kept() {
        let archive = MemoryArchive::new();
        let p = prepared(br#"{"id":"r1"}"#, "\"e2\"", 200);
        let Copied::Stored { etag, already: false, .. } = copy(&archive, &p, HOLDS).await else { panic!("created") };
        let Copied::Stored { etag: again, already: true, .. } = copy(&archive, &p, HOLDS).await else { panic!("kept") };
        assert_eq!(etag, again, "the same version is not rewritten");
        assert_eq!(verify(&archive, &p.name, &p.meta).await.ok(), Some(()));
    }

    #[tokio::test]
    async fn only_a_provably_older_copy_is_replaced() {
        for (theirs, want) in [
            (prepared(b"{}", "\"e1\"", 199), None),
            (prepared(b"{}", "\"e3\"", 201), Some(Outcome::ChangedDuringRun)),
            (prepared(br#"{"other":1}"#, "\"e9\"", 200), Some(Outcome::Conflict)),
        ] {
            let archive = MemoryArchive::new();
            let ours = prepared(br#"{"id":"r1"}"#, "\"e2\"", 200);
            copy(&archive, &theirs, HOLDS).await;
            let before = archive.head(&ours.name).await.unwrap().etag;
            match want {
                None => {
                    assert!(matches!(copy(&archive, &ours, HOLDS).await, Copied::Stored { already: false, .. }));
                    assert_eq!(stored_ts(&archive, &ours.name).await, 200, "ours replaced the older copy");
                }
                Some(want) => {
                    assert_eq!(outcome(copy(&archive, &ours, HOLDS).await), want);
                    assert_eq!(archive.head(&ours.name).await.unwrap().etag, before, "theirs is left as it was");
                }
            }
        }
    }

    #[tokio::test]
    async fn a_copy_in_the_way_is_left_alone_when_unreadable_or_when_the_lease_may_lapse() {
        let archive = MemoryArchive::new();
        let ours = prepared(br#"{"id":"r1"}"#, "\"e2\"", 200);
        archive.put(&ours.name, Bytes::from_static(b"?"), Default::default(), PutCondition::Absent).await.unwrap();
        assert_eq!(outcome(copy(&archive, &ours, HOLDS).await), Outcome::Conflict);

        let archive = MemoryArchive::new();
        copy(&archive, &prepared(b"{}", "\"e1\"", 199), HOLDS).await;
        assert!(matches!(outcome(copy(&archive, &ours, LAPSING).await), Outcome::Failed { outage: false, .. }));
        assert_eq!(stored_ts(&archive, &ours.name).await, 199, "nothing replaced without the lease");
    }

    #[tokio::test]
    async fn verification_reads_back_what_is_stored_not_what_was_meant() {
        let archive = MemoryArchive::new();
        let p = prepared(br#"{"id":"r1","amount":10}"#, "\"e2\"", 200);
        assert!(matches!(verify(&archive, &p.name, &p.meta).await, Err(VerifyError::Unreadable(StoreError::NotFound))));
        copy(&archive, &p, HOLDS).await;
        archive.damage(&p.name, codec::compress(br#"{"id":"r1","amount":11}"#).into());
        assert!(
            matches!(verify(&archive, &p.name, &p.meta).await, Err(VerifyError::Mismatch(why)) if why.contains("SHA-256"))
        );
        let other = prepared(br#"{"id":"r1","amount":10}"#, "\"e3\"", 200);
        assert!(
            matches!(verify(&archive, &p.name, &other.meta).await, Err(VerifyError::Mismatch(why)) if why.contains("another version"))
        );
    }

    #[tokio::test]
    async fn a_withdrawal_deletes_only_the_copy_verified_and_only_under_the_lease() {
        let archive = MemoryArchive::new();
        let p = prepared(b"{}", "\"e2\"", 200);
        let Copied::Stored { etag, .. } = copy(&archive, &p, HOLDS).await else { panic!("stored") };
        assert_eq!(withdraw(&archive, &p, &etag, LAPSING).await, Withdrawal::Failed);
        assert!(archive.head(&p.name).await.is_ok(), "kept while the lease may lapse");
        let newer = archive.put(&p.name, Bytes::new(), Default::default(), PutCondition::Matches(etag.clone())).await;
        assert_eq!(withdraw(&archive, &p, &etag, HOLDS).await, Withdrawal::NotOurs, "replaced since: not ours");
        assert_eq!(withdraw(&archive, &p, &newer.unwrap(), HOLDS).await, Withdrawal::Withdrawn);
        assert!(archive.names().is_empty());
    }

    /// The alert rules in infra-bicep/monitoring.bicep match the run summary line by
    /// its message, its field names and its status words: renaming any of them here
    /// would silence an alert in Azure.
    #[test]
    fn alert_queries_match_the_run_summary_line() {
        let bicep = include_str!("../../infra-bicep/monitoring.bicep");
        let summary = Summary { status: RunStatus::Failed, failed: 1, withdraw_failed: 1, ..Default::default() };
        let line = summary_line(&summary);

        let message = quoted_after(bicep, "var runFinished = '", '\'').expect("runFinished in monitoring.bicep");
        assert_eq!(line["message"], message);
        assert_eq!(line["level"], "ERROR");

        // The queries are the string lines of the `join([...])` arrays.
        let queries: String =
            bicep.lines().map(str::trim).filter(|l| l.starts_with('\'')).collect::<Vec<_>>().join("\n");
        let fields: Vec<&str> = queries.split("run.").skip(1).map(ident).filter(|f| !f.is_empty()).collect();
        assert!(fields.contains(&"status") && fields.contains(&"failed") && fields.contains(&"withdraw_failed"));
        for field in &fields {
            assert!(
                line.get(field).is_some(),
                "the alert queries read `run.{field}`, which the summary line lacks: {line}"
            );
        }

        let statuses =
            [RunStatus::Complete, RunStatus::Partial, RunStatus::Failed, RunStatus::Skipped].map(RunStatus::as_str);
        let compared: Vec<&str> =
            ["status == \"", "status != \""].iter().flat_map(|op| queries.split(op).skip(1).map(ident)).collect();
        assert!(compared.contains(&"failed") && compared.contains(&"partial") && compared.contains(&"skipped"));
        for status in compared {
            assert!(
                statuses.contains(&status),
                "the alert queries compare the status to {status:?}, which no run reports"
            );
        }
        assert_eq!(line["status"], "failed");
    }

    /// The dashboard (infra-bicep/workbook.json) reads the run summary line by its
    /// message and field names: every `run.<field>` a query reads must be in a
    /// real line, as the production log format writes it.
    #[test]
    fn the_workbook_queries_read_fields_the_run_summary_line_has() {
        let book: serde_json::Value = serde_json::from_str(include_str!("../../infra-bicep/workbook.json")).unwrap();
        let queries: Vec<String> = book["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["content"]["query"].as_str().map(str::to_owned))
            .filter(|q| q.contains("archive run finished"))
            .collect();
        assert!(queries.len() >= 4, "the workbook's run queries");
        // A partial run: the optional fields (the backlog) are there too.
        let summary = Summary {
            status: RunStatus::Partial,
            backlog: Some(10),
            backlog_exact: Some(true),
            nights_left: Some(2.0),
            ..Default::default()
        };
        let line = summary_line(&summary);
        assert_eq!(line["message"], "archive run finished");
        let mut fields: Vec<&str> = queries.iter().flat_map(|q| q.split("run.").skip(1).map(ident)).collect();
        fields.sort_unstable();
        fields.dedup();
        for f in
            ["archived", "failed", "conflicts", "blocked", "throttled", "request_units", "nights_left", "bytes_stored"]
        {
            assert!(fields.contains(&f), "the workbook reads run.{f}");
        }
        for field in fields {
            assert!(
                line.get(field).is_some(),
                "the workbook reads `run.{field}`, which the summary line lacks: {line}"
            );
        }
    }

    fn quoted_after<'a>(text: &'a str, prefix: &str, end: char) -> Option<&'a str> {
        let rest = &text[text.find(prefix)? + prefix.len()..];
        Some(&rest[..rest.find(end)?])
    }

    fn ident(text: &str) -> &str {
        let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
        &text[..end]
    }

    /// The run's one log line, as the production format writes it.
    fn summary_line(summary: &Summary) -> serde_json::Value {
        let captured = testkit::logs::Captured::default();
        tracing::subscriber::with_default(captured.subscriber("info"), || summary.log());
        let mut lines = captured.lines();
        assert_eq!(lines.len(), 1, "one JSON line: {lines:?}");
        lines.remove(0)
    }
}
