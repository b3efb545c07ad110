//! One archive pass: query aged records, copy, verify, delete, with bounded concurrency.
//!
//! Per record, in this order and never another:
//! 1. the document comes from the aged-records query (Cosmos stays the source of truth);
//! 2. its body (system properties stripped, bytes kept) is compressed and uploaded with
//!    `If-None-Match: *`; an existing identical copy is kept, a different one replaced
//!    only at the ETag we saw;
//! 3. the copy is read back, decompressed and checked against the hash and length;
//! 4. only then is the record deleted from Cosmos with `If-Match: <_etag>`.
//!
//! So at every instant a record is readable from at least one tier, and a record
//! changed during the run (412) stays in Cosmos, newer than any copy.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tiering::archive::{Archive, PutCondition};
use tiering::codec::{self, ArchiveMeta};
use tiering::cosmos::CosmosStore;
use tiering::layout;
use tiering::record::{AgeField, AgeValue, RawDocument, validate_id};
use tiering::settings::ArchiverSettings;
use tiering::store::StoreError;
use tracing::{debug, error, info, warn};

use crate::budget::RuBudget;

/// Documents fetched per query page: enough to keep the workers busy, few enough
/// (x 300 KB) to keep memory small.
const PAGE_FACTOR: u32 = 2;
/// A progress line every this many records, so a long run shows it is alive.
const PROGRESS_EVERY: u64 = 500;

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Copied, verified, deleted from Cosmos.
    Archived { raw: u64, stored: u64 },
    /// An identical verified copy was already in the archive; deleted from Cosmos.
    AlreadyArchived { raw: u64, stored: u64 },
    /// Dry run: would have been archived.
    WouldArchive { raw: u64, stored: u64 },
    /// The record changed after it was read (412): it stays in Cosmos.
    ChangedDuringRun,
    /// Someone else deleted it between read and delete (404).
    DeletedByOthers,
    /// Its age field is missing or not past the cutoff after all (re-checked client-side).
    NotAged,
    /// A step failed; the record stays in Cosmos.
    Failed { reason: String, outage: bool },
}

/// The run's report: the timer's `ReturnValue` and one structured log line.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `complete`, `partial` (time budget hit; the next run continues) or `failed`.
    pub status: String,
    pub dry_run: bool,
    pub age_field: String,
    pub cutoff: String,
    pub scanned: u64,
    pub archived: u64,
    pub already_archived: u64,
    pub would_archive: u64,
    pub changed_during_run: u64,
    pub deleted_by_others: u64,
    pub not_aged: u64,
    pub failed: u64,
    pub bytes_read: u64,
    pub bytes_stored: u64,
    pub compression_ratio: f64,
    pub request_units: f64,
    pub duration_ms: u64,
    /// Why the run stopped early, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Summary {
    /// True when the invocation should be reported as failed.
    pub fn is_failure(&self) -> bool {
        self.failed > 0 || self.error.is_some()
    }

    fn count(&mut self, outcome: &Outcome) {
        match outcome {
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
            Outcome::NotAged => self.not_aged += 1,
            Outcome::Failed { .. } => self.failed += 1,
        }
    }
}

/// Everything a pass needs, built once per process.
#[derive(Debug, Clone)]
pub struct Archiver {
    pub cosmos: CosmosStore,
    pub archive: Arc<dyn Archive>,
    pub settings: ArchiverSettings,
}

/// Per-pass state shared by the record tasks.
struct Pass<'a> {
    archiver: &'a Archiver,
    cutoff: AgeValue,
    dry_run: bool,
    budget: RuBudget,
    now: DateTime<Utc>,
}

impl Archiver {
    /// The age value before which records are archived.
    pub fn cutoff(field: &AgeField, now: DateTime<Utc>, after_days: u32) -> AgeValue {
        field.at(now - chrono::Duration::days(i64::from(after_days)))
    }

    /// Runs one pass. Never panics on store errors: they end up in the summary.
    pub async fn run(&self, now: DateTime<Utc>, dry_run: bool) -> Summary {
        self.run_observed(now, dry_run, |_| {}).await
    }

    /// [`run`](Self::run), calling `observe` after each record (tests use it to
    /// inject an outage at a known point).
    pub async fn run_observed(&self, now: DateTime<Utc>, dry_run: bool, mut observe: impl FnMut(&Outcome)) -> Summary {
        let started = Instant::now();
        let settings = &self.settings;
        let field = &settings.stores.age_field;
        let cutoff = Self::cutoff(field, now, settings.after_days);
        let mut summary =
            Summary { dry_run, age_field: field.name().to_owned(), cutoff: cutoff.to_metadata(), ..Default::default() };
        let pass = Pass { archiver: self, cutoff, dry_run, budget: RuBudget::new(settings.max_ru_per_second), now };
        info!(cutoff = %summary.cutoff, age_field = %summary.age_field, dry_run, concurrency = settings.concurrency, "archive run started");

        let page_size = (settings.concurrency as u32 * PAGE_FACTOR).clamp(4, 100);
        let deadline = started + settings.time_budget;
        let mut stop = false;
        let mut partial = false;
        let mut queue: std::collections::VecDeque<Bytes> = Default::default();
        let mut pages = match self.cosmos.aged_records(&pass.cutoff, page_size).await {
            Ok(p) => Some(p),
            Err(e) => {
                summary.error = Some(format!("cannot query Cosmos for aged records: {e}"));
                None
            }
        };
        let mut in_flight = FuturesUnordered::new();
        let mut finished: u64 = 0;
        loop {
            // Start work while there is room, time and no outage.
            while in_flight.len() < settings.concurrency && !stop {
                if Instant::now() >= deadline {
                    partial = true;
                    stop = true;
                    break;
                }
                if queue.is_empty() {
                    let Some(p) = pages.as_mut() else { break };
                    match p.next_page().await {
                        None => {
                            pages = None;
                            break;
                        }
                        Some(Ok(page)) => {
                            summary.request_units += page.request_charge;
                            pass.budget.spend(page.request_charge).await;
                            queue.extend(page.docs);
                            continue;
                        }
                        Some(Err(e)) => {
                            summary.error = Some(format!("reading aged records from Cosmos failed: {e}"));
                            stop = true;
                            break;
                        }
                    }
                }
                if let Some(doc) = queue.pop_front() {
                    summary.scanned += 1;
                    in_flight.push(pass.archive_one(doc));
                }
            }
            let Some((outcome, request_units)) = in_flight.next().await else { break };
            summary.request_units += request_units;
            if let Outcome::Failed { reason, outage: true } = &outcome
                && summary.error.is_none()
            {
                summary.error = Some(format!("store outage, run stopped: {reason}"));
                stop = true;
            }
            summary.count(&outcome);
            observe(&outcome);
            finished += 1;
            if finished.is_multiple_of(PROGRESS_EVERY) {
                info!(
                    scanned = summary.scanned,
                    archived = summary.archived + summary.already_archived,
                    failed = summary.failed,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "archive run progress"
                );
            }
        }
        // Records fetched but not started are not counted as scanned: the next run sees them again.
        summary.duration_ms = started.elapsed().as_millis() as u64;
        summary.compression_ratio = if summary.bytes_stored == 0 {
            0.0
        } else {
            (summary.bytes_read as f64 / summary.bytes_stored as f64 * 100.0).round() / 100.0
        };
        summary.request_units = (summary.request_units * 100.0).round() / 100.0;
        summary.status = if summary.error.is_some() {
            "failed"
        } else if partial {
            "partial"
        } else {
            "complete"
        }
        .to_owned();
        let s = &summary;
        if s.is_failure() {
            error!(status = %s.status, scanned = s.scanned, archived = s.archived, already_archived = s.already_archived, would_archive = s.would_archive, changed_during_run = s.changed_during_run, deleted_by_others = s.deleted_by_others, not_aged = s.not_aged, failed = s.failed, bytes_read = s.bytes_read, bytes_stored = s.bytes_stored, compression_ratio = s.compression_ratio, request_units = s.request_units, duration_ms = s.duration_ms, dry_run = s.dry_run, error = ?s.error, "archive run finished");
        } else {
            info!(status = %s.status, scanned = s.scanned, archived = s.archived, already_archived = s.already_archived, would_archive = s.would_archive, changed_during_run = s.changed_during_run, deleted_by_others = s.deleted_by_others, not_aged = s.not_aged, failed = s.failed, bytes_read = s.bytes_read, bytes_stored = s.bytes_stored, compression_ratio = s.compression_ratio, request_units = s.request_units, duration_ms = s.duration_ms, dry_run = s.dry_run, "archive run finished");
        }
        summary
    }
}

/// A record that passed the client-side checks and is ready to upload.
struct Prepared {
    customer_id: String,
    id: String,
    etag: String,
    name: String,
    sha256: String,
    raw_len: u64,
    compressed: Bytes,
    meta: ArchiveMeta,
}

fn failed(reason: impl Into<String>, err: Option<&StoreError>) -> Outcome {
    let outage = err.is_some_and(StoreError::is_outage);
    Outcome::Failed { reason: reason.into(), outage }
}

impl Pass<'_> {
    /// Archives one record; returns its outcome and the request units it spent.
    async fn archive_one(&self, doc: Bytes) -> (Outcome, f64) {
        let prepared = match self.prepare(doc).await {
            Ok(Some(p)) => p,
            Ok(None) => return (Outcome::NotAged, 0.0),
            Err(reason) => {
                warn!(%reason, "record not archivable");
                return (failed(reason, None), 0.0);
            }
        };
        let p = &prepared;
        if self.dry_run {
            return (Outcome::WouldArchive { raw: p.raw_len, stored: p.compressed.len() as u64 }, 0.0);
        }
        let outcome = self.copy_verify_delete(p).await;
        match &outcome.0 {
            Outcome::Failed { reason, outage } => {
                warn!(customer_id = %p.customer_id, id = %p.id, %reason, outage, "record not archived; it stays in Cosmos")
            }
            other => debug!(customer_id = %p.customer_id, id = %p.id, outcome = ?other, "record done"),
        }
        outcome
    }

    /// Parses, re-checks the age, strips, hashes and compresses. `Ok(None)` = not aged.
    async fn prepare(&self, doc: Bytes) -> Result<Option<Prepared>, String> {
        let field = &self.archiver.settings.stores.age_field;
        let doc = RawDocument::parse(doc).map_err(|e| format!("unparseable document: {e}"))?;
        let id = doc.id().map_err(|e| e.to_string())?;
        let context = |e: tiering::record::RecordError| format!("record {id:?}: {e}");
        let customer_id: String =
            doc.get("customerId").ok_or_else(|| format!("record {id:?}: no string customerId"))?;
        // An id the read API would refuse (or that URL handling would rewrite, like
        // `..`) cannot be served from the archive nor deleted safely: leave it hot.
        validate_id("id", &id).and_then(|()| validate_id("customerId", &customer_id)).map_err(context)?;
        let etag = doc.etag().map_err(context)?;
        let ts = doc.ts().map_err(context)?;
        let age = match doc.age(field) {
            Ok(age) if age < self.cutoff => age,
            _ => return Ok(None),
        };
        let name = layout::blob_name(&customer_id, &id).map_err(|e| format!("record {id:?}: {e}"))?;
        // Hashing and compressing 300 KB takes a few milliseconds: off the async workers.
        let (body_len, sha256, compressed) = tokio::task::spawn_blocking(move || {
            let body = doc.without_system_properties();
            (body.len() as u64, codec::sha256_hex(&body), Bytes::from(codec::compress(&body)))
        })
        .await
        .map_err(|e| format!("compression task failed: {e}"))?;
        let meta = ArchiveMeta {
            sha256: sha256.clone(),
            length: body_len,
            etag: etag.clone(),
            ts,
            age_field: field.name().to_owned(),
            age,
            archived_at: self.now,
        };
        Ok(Some(Prepared { customer_id, id, etag, name, sha256, raw_len: body_len, compressed, meta }))
    }

    async fn copy_verify_delete(&self, p: &Prepared) -> (Outcome, f64) {
        let archive = &self.archiver.archive;
        let (raw, stored) = (p.raw_len, p.compressed.len() as u64);

        // 2. Copy.
        let mut already = false;
        let blob_etag =
            match archive.put(&p.name, p.compressed.clone(), p.meta.to_metadata(), PutCondition::Absent).await {
                Ok(etag) => etag,
                Err(StoreError::AlreadyExists) => match archive.head(&p.name).await {
                    Err(e) => return (failed(format!("inspecting existing copy: {e}"), Some(&e)), 0.0),
                    Ok(existing) => {
                        let field = &self.archiver.settings.stores.age_field;
                        match ArchiveMeta::from_metadata(field, &existing.metadata) {
                            Ok(m) if m.sha256 == p.sha256 && m.etag == p.etag && m.length == p.raw_len => {
                                already = true;
                                existing.etag
                            }
                            // A newer version is archived already (another run copied the record
                            // after it changed): ours is stale, and so is what we would delete.
                            Ok(m) if m.ts > p.meta.ts => return (Outcome::ChangedDuringRun, 0.0),
                            // An older (or unreadable) copy: replace exactly the version inspected.
                            _ => {
                                let condition = PutCondition::Matches(existing.etag);
                                match archive.put(&p.name, p.compressed.clone(), p.meta.to_metadata(), condition).await
                                {
                                    Ok(etag) => etag,
                                    Err(e) => return (failed(format!("replacing older copy: {e}"), Some(&e)), 0.0),
                                }
                            }
                        }
                    }
                },
                Err(e) => return (failed(format!("uploading copy: {e}"), Some(&e)), 0.0),
            };

        // 3. Verify what is stored now, not what we meant to store.
        if let Err((reason, err)) = self.verify(p).await {
            return (failed(reason, err.as_ref()), 0.0);
        }

        // 4. Delete the exact version we copied.
        match self.archiver.cosmos.delete_if_match(&p.customer_id, &p.id, &p.etag).await {
            Ok(ru) => {
                self.budget.spend(ru).await;
                let outcome =
                    if already { Outcome::AlreadyArchived { raw, stored } } else { Outcome::Archived { raw, stored } };
                (outcome, ru)
            }
            Err(StoreError::PreconditionFailed) => {
                // Cosmos holds a newer version; our copy is stale. Remove it (only if it
                // is still the one we verified) so the archive never shadows a newer record
                // in listings. Failing to remove it loses nothing: Cosmos is read first.
                if let Err(e) = archive.delete_if_match(&p.name, &blob_etag).await {
                    warn!(id = %p.id, error = %e, "stale archived copy left in place");
                }
                (Outcome::ChangedDuringRun, 0.0)
            }
            // Someone else deleted it. Keep the verified copy: it may have been another
            // archiver run, and a copy nobody reads costs less than a lost record.
            Err(StoreError::NotFound) => (Outcome::DeletedByOthers, 0.0),
            Err(e) => (failed(format!("deleting from Cosmos: {e}"), Some(&e)), 0.0),
        }
    }

    async fn verify(&self, p: &Prepared) -> Result<(), (String, Option<StoreError>)> {
        let stored =
            self.archiver.archive.get(&p.name).await.map_err(|e| (format!("reading copy back: {e}"), Some(e)))?;
        let meta = ArchiveMeta::from_metadata(&self.archiver.settings.stores.age_field, &stored.info.metadata)
            .map_err(|e| (format!("verifying copy: {e}"), None))?;
        // Every field but the archive time must be ours (a copy kept from an earlier
        // run carries that run's time).
        let expected = ArchiveMeta { archived_at: meta.archived_at, ..p.meta.clone() };
        if meta != expected {
            return Err(("verifying copy: the archive holds another version".into(), None));
        }
        let body = stored.body;
        tokio::task::spawn_blocking(move || codec::decode_verified(&body, &meta).map(|_| ()))
            .await
            .map_err(|e| (format!("verification task failed: {e}"), None))?
            .map_err(|e| (format!("verifying copy: {e}"), None))
    }
}
