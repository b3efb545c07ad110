//! `archiver plan`: what archiving will do, before it is turned on. Changes
//! nothing in Cosmos; in the archive, its trial's copies (below) come and go.
//!
//! - **Counts** are exact: a light query walks the aged set (ids, partition keys and
//!   age values only, no bodies) and applies the archiver's own rules, so it counts
//!   exactly the records a run would archive, per month of age and per physical
//!   partition, and apart the aged records the quiet period holds back
//!   (`ARCHIVE_QUIET_DAYS`). The Rust Cosmos SDK cannot merge aggregates
//!   (`COUNT`) across partitions, so counting is a walk; it stops at `--max-ru`
//!   request units, and then the counts are a lower bound (`counted: "partial"`).
//! - **Bytes, compression, request units** come from a sample: the first `--sample`
//!   aged records, read whole through the archiver's own query, stripped and
//!   compressed as the archiver would, with the query's measured charge per KB and
//!   point reads that fit a charge per read (`a + b x KB`). A delete is estimated
//!   as `--delete-ru-factor` (default 5) point reads of the same item: Cosmos
//!   charges writes and deletes by size and indexed terms, and cannot be asked what
//!   a delete would cost without deleting.
//! - **Time** is the tightest of three bounds, each from a measurement:
//!   1. the pace of a **trial**: for `--trial-seconds` (20), the run's own pass
//!      ([`Archiver::trial`]: the same queries per physical partition, in-flight
//!      limits, compression, upload, read-back and list entry) with the copies
//!      under `state/plan-trial/` and, in place of each delete, a conditional
//!      point read that changes nothing; the copies are deleted after. A run
//!      starts as the trial did and goes on at the pace of the trial's second
//!      half, once its in-flight limit has found its level;
//!   2. the **RU budget** (`ARCHIVE_MAX_RU_PER_SECOND`, by default a share of the
//!      container's throughput) over the request units per record;
//!   3. the **busiest physical partition**: each holds an even share of the
//!      container's throughput, so the one with the most aged records needs its
//!      records' request units at that share.
//!
//!   The runs follow from `ARCHIVE_TIME_BUDGET_SECONDS` and `ARCHIVE_SCHEDULE`.
//! - **Cost** uses a price table with documented defaults (docs/operations.md),
//!   each overridable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use tiering::codec;
use tiering::cosmos::Throughput;
use tiering::record::{AgeField, AgeValue, RawDocument, RecordError, parse_iso_instant};
use tiering::schedule::parse_schedule;
use tiering::settings::{ArchiverSettings, RuBudgetSetting};
use tiering::store::StoreError;

use crate::decide::{self, Cutoff, Eligibility, PartitionValue};
use crate::run::Trial;
use crate::startup::Archiver;

/// Rows per page of the counting walk: tiny rows, so large pages.
const COUNT_PAGE: u32 = 1000;
/// Whole records per page of the sample, as the archiver reads them.
const SAMPLE_PAGE: u32 = 32;
/// Point reads used to fit the charge per read.
const POINT_READS: usize = 50;

/// Prices in USD. Defaults are pay-as-you-go list prices for one region, rounded;
/// replace them with your own.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prices {
    /// Cosmos DB transactional storage, per GB-month.
    pub cosmos_gb_month: f64,
    /// Blob Storage in the archive's tier (Cool LRS by default), per GB-month.
    pub blob_gb_month: f64,
    /// Blob write operations, per 10,000 (Cool).
    pub blob_writes_per_10k: f64,
    /// Blob read operations, per 10,000 (Cool).
    pub blob_reads_per_10k: f64,
    /// Request units, per million (serverless; provisioned throughput is billed per hour instead).
    pub request_units_per_million: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            cosmos_gb_month: 0.25,
            blob_gb_month: 0.01,
            blob_writes_per_10k: 0.10,
            blob_reads_per_10k: 0.01,
            request_units_per_million: 0.25,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub sample: usize,
    pub max_request_units: f64,
    pub delete_ru_factor: f64,
    /// How long the trial of the archive pass may take.
    pub trial_seconds: f64,
    pub prices: Prices,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            sample: 1000,
            max_request_units: 200_000.0,
            delete_ru_factor: 5.0,
            trial_seconds: 20.0,
            prices: Prices::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Month {
    pub month: String,
    pub records: u64,
    /// Estimated from the sample's mean size in that month (or overall).
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub age_field: String,
    pub cutoff: String,
    /// `exact`, or `partial` when the counting walk hit `--max-ru` (a lower bound).
    pub counted: &'static str,
    /// Records a run would archive.
    pub records: u64,
    /// Aged records a run could not archive (ids the read API refuses, no
    /// string partition-key value, names over 1,024 characters): they stay, and are
    /// counted as `blocked` by each run.
    pub blocked: u64,
    /// `ARCHIVE_QUIET_DAYS`, and the aged records it holds back (written within
    /// it): not in `records`; they are archived by a run after their quiet period.
    pub quiet_days: u32,
    pub held_back_by_quiet_period: u64,
    pub months: Vec<Month>,
    pub sample_records: u64,
    /// JSON a run would archive (whole documents), estimated.
    pub bytes: u64,
    pub compressed_bytes: u64,
    pub compression_ratio: f64,
    pub request_units: RequestUnits,
    pub pace: Pace,
    pub cost: Cost,
    /// What this plan itself spent.
    pub plan_request_units: f64,
    /// With `ARCHIVE_RETENTION_DAYS`: what the next runs would expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPlan>,
}

/// What retention would delete from the archive now (a full scan of its metadata).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPlan {
    pub retention_days: u32,
    /// Copies dated before this expire.
    pub cutoff: String,
    pub expire: u64,
    pub bytes_stored: u64,
    pub bytes: u64,
    /// Copies past retention kept for holds, and how many partitions are on hold.
    pub held: u64,
    pub holds: u64,
}

/// Counts what retention would expire, deleting nothing.
pub async fn retention(archiver: &Archiver, now: DateTime<Utc>) -> Result<Option<RetentionPlan>, StoreError> {
    let Some(days) = archiver.settings.retention_days else { return Ok(None) };
    let field = &archiver.settings.stores.age_field;
    let cutoff = Archiver::cutoff(field, now, days);
    let held = crate::holds::held(archiver.archive.as_ref()).await?;
    let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let report =
        crate::retention::expire(&archiver.archive, field, &cutoff, &held, true, crate::retention::PAGE, far, &|| true)
            .await?;
    Ok(Some(RetentionPlan {
        retention_days: days,
        cutoff: cutoff.to_metadata(),
        expire: report.expired,
        bytes_stored: report.expired_bytes_stored,
        bytes: report.expired_bytes_raw,
        held: report.held,
        holds: held.len() as u64,
    }))
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestUnits {
    /// Reading the aged records (the archiver's query), measured per KB on the sample.
    pub read: f64,
    /// Deleting them: `deleteRuFactor` x a point read of each, fitted on the sample.
    pub delete: f64,
    pub total: f64,
    pub per_record: f64,
    pub delete_ru_factor: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pace {
    pub concurrency: usize,
    /// The run's request-unit budget (0: unlimited) and where it comes from.
    pub max_ru_per_second: u32,
    pub ru_budget_source: String,
    /// Measured: one Cosmos point read, one blob round trip (for reference).
    pub cosmos_round_trip_ms: f64,
    pub blob_round_trip_ms: f64,
    /// The trial: aged records taken through every step of a run but the
    /// delete, in how many seconds; `trialComplete` when it met them all.
    pub trial_records: u64,
    pub trial_seconds: f64,
    pub trial_complete: bool,
    /// Why the trial measured nothing, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial_error: Option<String>,
    /// What each bound allows, in records a second: the trial's pace, the RU
    /// budget at the RU per record, and the busiest physical partition at its
    /// share of the container's throughput (absent: no such bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_per_second: Option<f64>,
    /// Physical partitions, each one's share of the container's RU/s (when the
    /// throughput is known), and the most records one of them holds.
    pub ranges: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_ru_per_second: Option<f64>,
    pub busiest_range_records: u64,
    pub records_per_second: f64,
    /// `measured pace`, `request units` (the budget), `a physical partition`
    /// (the busiest one's share of the throughput), or `unknown` (no trial).
    pub bound_by: &'static str,
    /// Seconds of work: what the tightest bound takes.
    pub seconds: f64,
    pub time_budget_seconds: u64,
    pub runs: u64,
    pub schedule: String,
    pub runs_per_day: f64,
    pub days: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// The aged records in Cosmos, per month, now.
    pub cosmos_per_month_before: f64,
    /// The same records in the archive, per month, after.
    pub archive_per_month_after: f64,
    pub saving_per_month: f64,
    /// One-time: the backfill's request units and blob operations.
    pub backfill_request_units: f64,
    pub backfill_blob_operations: f64,
    pub prices: Prices,
}

/// One row of the counting walk.
#[derive(serde::Deserialize)]
struct Row {
    id: Option<String>,
    /// The partition-key value, when it is a string.
    pk: Option<serde_json::Value>,
    age: Option<Box<RawValue>>,
    ts: Option<i64>,
}

fn month_of(field: &AgeField, age: &AgeValue) -> String {
    let instant = match (field, age) {
        (_, AgeValue::Seconds(s)) => DateTime::from_timestamp(*s, 0),
        (_, AgeValue::Text(t)) => parse_iso_instant(t).ok(),
    };
    instant.map(|i| i.format("%Y-%m").to_string()).unwrap_or_else(|| "unknown".into())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Plans the archiving of everything aged at `now`. Changes nothing in Cosmos.
///
/// Each bullet of the module docs is one step: [`count`], [`sample`],
/// [`round_trips`], the trial ([`Archiver::trial`]) and the container's
/// throughput (the I/O), and [`estimate`] (pure arithmetic on what they found).
pub async fn plan(archiver: &Archiver, now: DateTime<Utc>, options: &PlanOptions) -> Result<Plan, StoreError> {
    let settings = &archiver.settings;
    let cutoff = archiver.cutoffs(now);
    // Paced as a run is: a plan runs while the live API does.
    let budget = crate::budget::RuBudget::new(settings.max_ru_per_second);
    let counts = count_paced(archiver, &cutoff, options.max_request_units, Some(&budget), None).await?;
    let sample = sample(archiver, &cutoff, options.sample, Some(&budget)).await?;
    let trips = round_trips(archiver, &sample.to_read).await;
    let trial = if counts.records > 0 { archiver.trial(now, options.trial_seconds).await } else { Trial::default() };
    let throughput = container_ru(&archiver.cosmos.throughput().await, settings);
    let found = Found { counts, sample, trips, trial, throughput };
    let mut plan = estimate(settings, now, &cutoff, options, &found);
    plan.retention = retention(archiver, now).await?;
    Ok(plan)
}

/// The container's RU/s as far as it can be known: its offer (manual, or the
/// autoscale maximum), its database's shared throughput, else what the
/// deployment read (`ARCHIVE_CONTAINER_RU_PER_SECOND`).
fn container_ru(throughput: &Throughput, settings: &ArchiverSettings) -> Option<u64> {
    match (throughput, &settings.ru_budget) {
        (Throughput::Manual(ru) | Throughput::Autoscale(ru) | Throughput::Database(ru), _) => Some(*ru),
        (Throughput::Unknown(_), RuBudgetSetting::Auto { deployed: Some(ru), .. }) => Some(u64::from(*ru)),
        (Throughput::Unknown(_), _) => None,
    }
}

/// Everything the steps found, for [`estimate`].
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub counts: Counts,
    pub sample: Sample,
    pub trips: RoundTrips,
    pub trial: Trial,
    /// The container's RU/s, when known.
    pub throughput: Option<u64>,
}

/// What the counting walk found.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Archivable records per month of age.
    pub months: BTreeMap<String, u64>,
    pub records: u64,
    pub blocked: u64,
    /// Aged, but written within the quiet period.
    pub quiet: u64,
    /// The walk stopped at the request-unit limit: the counts are a lower bound.
    pub partial: bool,
    pub request_charge: f64,
    /// Archivable records in each physical partition (one entry when the
    /// container is queried whole); the last ones missing after a partial walk.
    pub per_range: Vec<u64>,
}

/// Step 1. Counts, exactly, what a run would archive: the archiver's own rule
/// ([`decide::eligibility`]) on light rows, until `max_request_units` are spent.
pub async fn count(archiver: &Archiver, cutoff: &Cutoff, max_request_units: f64) -> Result<Counts, StoreError> {
    count_paced(archiver, cutoff, max_request_units, None, None).await
}

/// [`count`], each page paid to `budget` (the run's `ARCHIVE_MAX_RU_PER_SECOND`)
/// and no page asked for after `deadline` (then the counts are a lower bound).
pub async fn count_paced(
    archiver: &Archiver,
    cutoff: &Cutoff,
    max_request_units: f64,
    budget: Option<&crate::budget::RuBudget>,
    deadline: Option<tokio::time::Instant>,
) -> Result<Counts, StoreError> {
    let field = &archiver.settings.stores.age_field;
    // Range by range, as a run queries (`ARCHIVE_RANGE_QUERIES`), so that the
    // plan knows how the records spread over the physical partitions.
    let ranges = if archiver.settings.range_queries { archiver.cosmos.feed_ranges().await? } else { Vec::new() };
    let ranges: Vec<Option<&tiering::cosmos::FeedRange>> =
        if ranges.is_empty() { vec![None] } else { ranges.iter().map(Some).collect() };
    let mut counts = Counts::default();
    'ranges: for range in ranges {
        let mut pages = archiver.cosmos.aged_rows(&cutoff.age, COUNT_PAGE, range).await?;
        counts.per_range.push(0);
        loop {
            if let Some(budget) = budget {
                budget.admit().await;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                counts.partial = true;
                break 'ranges;
            }
            let Some(page) = pages.next_page().await else { break };
            let page = page?;
            counts.request_charge += page.request_charge;
            if let Some(budget) = budget {
                budget.charge(page.request_charge);
            }
            for raw in page.docs {
                let row: Row = serde_json::from_slice(&raw)?;
                let age = row
                    .age
                    .ok_or(RecordError::MissingProperty("age"))
                    .and_then(|a| AgeValue::from_json(field, a.get().as_bytes()));
                let month = age.as_ref().map(|age| month_of(field, age)).unwrap_or_default();
                let value = row.pk.as_ref().and_then(serde_json::Value::as_str);
                let partition = PartitionValue { property: archiver.cosmos.partition_key().property(), value };
                match decide::eligibility(row.id.as_deref(), partition, age, row.ts, cutoff) {
                    Eligibility::Archive { .. } => {
                        counts.records += 1;
                        *counts.months.entry(month).or_default() += 1;
                        *counts.per_range.last_mut().unwrap_or(&mut 0) += 1;
                    }
                    Eligibility::Blocked(_) => counts.blocked += 1,
                    Eligibility::Quiet => counts.quiet += 1,
                    Eligibility::NotAged => {}
                }
            }
            if counts.request_charge >= max_request_units {
                counts.partial = true;
                break 'ranges;
            }
        }
    }
    Ok(counts)
}

/// What the sample of whole records showed.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub records: u64,
    /// Whole documents as the archive holds them, and compressed.
    pub bytes: u64,
    pub stored: u64,
    /// Whole items as the query reads them (system properties too).
    pub full_kb: f64,
    pub query_charge: f64,
    /// Per month of age: records and body bytes.
    pub by_month: BTreeMap<String, (u64, u64)>,
    /// Records to point-read for the charge per read: (customer, id, KB).
    pub to_read: Vec<(String, String, f64)>,
    pub elapsed: Duration,
    pub compress_time: Duration,
}

/// Step 2. Reads the first `limit` aged records whole, through the archiver's
/// own query, and strips and compresses them as the archiver would; each page
/// paid to `budget` when given.
pub async fn sample(
    archiver: &Archiver,
    cutoff: &Cutoff,
    limit: usize,
    budget: Option<&crate::budget::RuBudget>,
) -> Result<Sample, StoreError> {
    let field = &archiver.settings.stores.age_field;
    let mut pages = archiver.cosmos.aged_records(&cutoff.age, cutoff.written_before, SAMPLE_PAGE).await?;
    let mut sample = Sample::default();
    let started = Instant::now();
    'pages: loop {
        if let Some(budget) = budget {
            budget.admit().await;
        }
        let Some(page) = pages.next_page().await else { break };
        let page = page?;
        sample.query_charge += page.request_charge;
        if let Some(budget) = budget {
            budget.charge(page.request_charge);
        }
        for raw in page.docs {
            let full_kb = raw.len() as f64 / 1024.0;
            let Ok(doc) = RawDocument::parse(raw) else { continue };
            let (id, age) = (doc.get::<String>("id"), doc.age(field));
            let property = archiver.cosmos.partition_key().property();
            let pk = doc.get::<String>(property);
            let month = age.as_ref().map(|age| month_of(field, age)).unwrap_or_default();
            let partition = PartitionValue { property, value: pk.as_deref() };
            let ts = doc.ts().ok();
            let Eligibility::Archive { .. } = decide::eligibility(id.as_deref(), partition, age, ts, cutoff) else {
                continue;
            };
            let (Some(id), Some(customer)) = (id, pk) else { continue };
            let compressing = Instant::now();
            let body = Bytes::from(doc.as_bytes().to_vec());
            let length = body.len() as u64;
            let stored = tokio::task::spawn_blocking(move || codec::compress(&body).len() as u64)
                .await
                .map_err(|e| StoreError::Other(e.to_string()))?;
            sample.compress_time += compressing.elapsed();
            sample.records += 1;
            sample.bytes += length;
            sample.stored += stored;
            sample.full_kb += full_kb;
            let entry = sample.by_month.entry(month).or_default();
            entry.0 += 1;
            entry.1 += length;
            if sample.to_read.len() < POINT_READS {
                sample.to_read.push((customer, id, full_kb));
            }
            if sample.records as usize >= limit {
                break 'pages;
            }
        }
    }
    sample.elapsed = started.elapsed();
    Ok(sample)
}

/// What the round trips measured.
#[derive(Debug, Clone, Default)]
pub struct RoundTrips {
    /// (KB, RU) of each point read.
    pub reads: Vec<(f64, f64)>,
    pub cosmos: Duration,
    pub blob: Duration,
}

/// Step 3. Point-reads the sampled records (the charge per read, Cosmos' round
/// trip) and asks the archive for three missing blobs (its round trip).
pub async fn round_trips(archiver: &Archiver, to_read: &[(String, String, f64)]) -> RoundTrips {
    let mut reads = Vec::new();
    let mut cosmos_trips = Vec::new();
    for (customer, id, kb) in to_read {
        let started = Instant::now();
        if let Ok(item) = archiver.cosmos.read(customer, id).await {
            cosmos_trips.push(started.elapsed());
            reads.push((*kb, item.request_charge));
        }
    }
    let mut blob_trips = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        let _ = archiver.archive.head(&format!("state/plan-probe-{i}")).await;
        blob_trips.push(started.elapsed());
    }
    RoundTrips { reads, cosmos: median(cosmos_trips), blob: median(blob_trips) }
}

/// Step 4. The plan from what the steps found. Pure.
pub fn estimate(
    settings: &ArchiverSettings,
    now: DateTime<Utc>,
    cutoff: &Cutoff,
    options: &PlanOptions,
    found: &Found,
) -> Plan {
    let Found { counts, sample, trips, trial, throughput } = found;
    let field = &settings.stores.age_field;
    let records = counts.records;
    let (a, b) = fit(&trips.reads);
    let mean = |bytes: u64, n: u64| if n == 0 { 0.0 } else { bytes as f64 / n as f64 };
    let overall_mean = mean(sample.bytes, sample.records);
    let months: Vec<Month> = counts
        .months
        .iter()
        .map(|(month, n)| {
            let size = sample.by_month.get(month).map_or(overall_mean, |(k, bytes)| mean(*bytes, *k));
            Month { month: month.clone(), records: *n, bytes: (size * *n as f64).round() as u64 }
        })
        .collect();
    let bytes: u64 = months.iter().map(|m| m.bytes).sum();
    let ratio = if sample.stored == 0 { 1.0 } else { sample.bytes as f64 / sample.stored as f64 };
    let compressed_bytes = (bytes as f64 / ratio).round() as u64;
    // The query reads whole items (system properties too): scale by what the sample saw.
    let full_kb_total =
        if sample.bytes == 0 { 0.0 } else { sample.full_kb * 1024.0 / sample.bytes as f64 * bytes as f64 / 1024.0 };
    let read_per_kb = if sample.full_kb == 0.0 { 0.0 } else { sample.query_charge / sample.full_kb };
    let read = read_per_kb * full_kb_total;
    let delete = options.delete_ru_factor * (a * records as f64 + b * full_kb_total);
    let total = read + delete;
    let per_record = if records == 0 { 0.0 } else { total / records as f64 };

    // Three bounds on the pace, and the run goes at the tightest.
    // 1. The trial: the run's own pass on the real stores, minus the deletes.
    //    Blocked records cost a run their share of the query, so they count.
    let met = trial.records + trial.skipped + trial.failed;
    let measured = (trial.records > 0 && trial.seconds > 0.0).then(|| met as f64 / trial.seconds);
    let pace_seconds = measured.map(|rate| pace_seconds(trial, met, rate, records + counts.blocked));
    // 2. The budget, at the RU per record.
    let budget = f64::from(settings.max_ru_per_second);
    let budget_rate = (budget > 0.0 && per_record > 0.0).then(|| budget / per_record);
    // 3. Each physical partition has an even share of the container's RU/s
    //    (docs/archive-protocol.md, "Physical partitions"), and the archiver
    //    takes at most its budget's even share of each: the one holding the most
    //    aged records can go no faster than that allows.
    let ranges = counts.per_range.len().max(1);
    let busiest = if counts.partial {
        records.div_ceil(ranges as u64)
    } else {
        counts.per_range.iter().copied().max().unwrap_or(records)
    };
    let range_ru = match (*throughput, budget > 0.0) {
        (Some(ru), true) => Some((ru as f64).min(budget) / ranges as f64),
        (Some(ru), false) => Some(ru as f64 / ranges as f64),
        (None, true) => Some(budget / ranges as f64),
        (None, false) => None,
    };
    // A run queries at most MAX_OPEN_RANGES ranges at once: past that many,
    // the ranges' shares add up to less than the whole.
    let open = ranges.min(crate::run::MAX_OPEN_RANGES) as f64;
    let partition_seconds = range_ru
        .filter(|ru| *ru > 0.0 && per_record > 0.0)
        .map(|ru| (busiest as f64 * per_record / ru).max(records as f64 * per_record / (ru * open)));
    // Ties go to the last: the budget, which the operator sets.
    let bounds = [
        ("measured pace", pace_seconds),
        ("a physical partition", partition_seconds),
        ("request units", budget_rate.map(|rate| records as f64 / rate)),
    ];
    let (bound_by, seconds) = bounds
        .iter()
        .filter_map(|(name, s)| s.map(|s| (*name, s)))
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .filter(|_| measured.is_some() || records == 0)
        .unwrap_or(("unknown", f64::NAN));
    let seconds = if records == 0 { 0.0 } else { seconds };
    let rate = if seconds > 0.0 { records as f64 / seconds } else { 0.0 };
    let budget_secs = settings.time_budget.as_secs().max(1);
    let runs = if seconds.is_nan() {
        0
    } else {
        (seconds / budget_secs as f64).ceil().max(if records > 0 { 1.0 } else { 0.0 }) as u64
    };
    let runs_per_day = runs_per_day(&settings.schedule, now);
    let days = if runs_per_day > 0.0 { runs as f64 / runs_per_day } else { f64::INFINITY };

    let gb = |b: u64| b as f64 / 1e9;
    let p = &options.prices;
    let before = gb(bytes) * p.cosmos_gb_month;
    let after = gb(compressed_bytes) * p.blob_gb_month;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    // Costs keep hundredths of a cent: a small container's saving is real, if tiny.
    let round4 = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let spent = counts.request_charge
        + sample.query_charge
        + trips.reads.iter().map(|r| r.1).sum::<f64>()
        + trial.request_units;
    Plan {
        age_field: field.name().to_owned(),
        cutoff: cutoff.age.to_metadata(),
        counted: if counts.partial { "partial" } else { "exact" },
        records,
        blocked: counts.blocked,
        quiet_days: settings.quiet_days,
        held_back_by_quiet_period: counts.quiet,
        months,
        sample_records: sample.records,
        bytes,
        compressed_bytes,
        compression_ratio: round2(ratio),
        request_units: RequestUnits {
            read: round2(read),
            delete: round2(delete),
            total: round2(total),
            per_record: round2(per_record),
            delete_ru_factor: options.delete_ru_factor,
        },
        pace: Pace {
            concurrency: settings.concurrency,
            max_ru_per_second: settings.max_ru_per_second,
            ru_budget_source: settings.ru_budget_note.clone(),
            cosmos_round_trip_ms: round2(trips.cosmos.as_secs_f64() * 1000.0),
            blob_round_trip_ms: round2(trips.blob.as_secs_f64() * 1000.0),
            trial_records: trial.records,
            trial_seconds: round2(trial.seconds),
            trial_complete: trial.complete,
            trial_error: (measured.is_none() && records > 0)
                .then(|| trial.error.clone().unwrap_or_else(|| "the trial took no record through its steps".into())),
            measured_per_second: measured.map(round2),
            budget_per_second: budget_rate.map(round2),
            partition_per_second: partition_seconds.filter(|s| *s > 0.0).map(|s| round2(records as f64 / s)),
            ranges,
            range_ru_per_second: range_ru.map(round2),
            busiest_range_records: busiest,
            records_per_second: round2(rate),
            bound_by,
            seconds: round2(seconds),
            time_budget_seconds: budget_secs,
            runs,
            schedule: settings.schedule.clone(),
            runs_per_day: round2(runs_per_day),
            days: round2(days),
        },
        cost: Cost {
            cosmos_per_month_before: round4(before),
            archive_per_month_after: round4(after),
            saving_per_month: round4(before - after),
            backfill_request_units: round4(total / 1e6 * p.request_units_per_million),
            backfill_blob_operations: round4(
                records as f64 / 1e4 * (p.blob_writes_per_10k + 2.0 * p.blob_reads_per_10k),
            ),
            prices: p.clone(),
        },
        plan_request_units: round2(spent),
        retention: None,
    }
}

/// Seconds to take `n` records through at the trial's pace (`met` records at
/// `rate` a second overall). A run starts as the trial did: its first half's
/// records in its first half's time, then the second half's (steady) pace for
/// the rest. A trial that met every record took as long as the run will.
fn pace_seconds(trial: &Trial, met: u64, rate: f64, n: u64) -> f64 {
    let steady_records = met.saturating_sub(trial.first_half_records);
    let steady_seconds = trial.seconds - trial.half_seconds;
    if trial.complete || n <= trial.first_half_records || steady_records == 0 || steady_seconds <= 0.0 {
        return n as f64 / rate;
    }
    trial.half_seconds + (n - trial.first_half_records) as f64 * steady_seconds / steady_records as f64
}

/// Least-squares line through (KB, RU); a flat charge when the sample cannot tell.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.is_empty() {
        return (0.0, 0.0);
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (sxy, sxx) =
        points.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| (sxy + (x - mx) * (y - my), sxx + (x - mx).powi(2)));
    if sxx < 1e-9 {
        return (my, 0.0);
    }
    let b = sxy / sxx;
    (my - b * mx, b)
}

/// How often the schedule fires, per day, over the next week.
pub(crate) fn runs_per_day(schedule: &str, now: DateTime<Utc>) -> f64 {
    let Ok(schedule) = parse_schedule(schedule) else { return 0.0 };
    let week = now + chrono::Duration::days(7);
    let start = now - chrono::Duration::seconds(1);
    schedule.after(&start).take_while(|t| *t < week).count() as f64 / 7.0
}

/// The plan as a table for people.
pub fn render(plan: &Plan) -> String {
    use std::fmt::Write;
    let mb = |b: u64| b as f64 / 1e6;
    let mut out = String::new();
    let counted =
        if plan.counted == "exact" { "exact" } else { "PARTIAL: the counting walk hit --max-ru; a lower bound" };
    let _ = writeln!(out, "archive plan: records dated before {} ({}), counts {counted}", plan.cutoff, plan.age_field);
    let _ = writeln!(out, "\n{:>9} {:>12} {:>12}", "month", "records", "MB of JSON");
    for m in &plan.months {
        let _ = writeln!(out, "{:>9} {:>12} {:>12.1}", m.month, m.records, mb(m.bytes));
    }
    let _ = writeln!(out, "{:>9} {:>12} {:>12.1}", "total", plan.records, mb(plan.bytes));
    if plan.blocked > 0 {
        let _ = writeln!(
            out,
            "{:>9} {:>12}   (cannot be archived; see docs/operations.md, known limits)",
            "blocked", plan.blocked
        );
    }
    if plan.held_back_by_quiet_period > 0 {
        let _ = writeln!(
            out,
            "{:>9} {:>12}   (aged, but written in the last {} days: archived after their quiet period)",
            "quiet", plan.held_back_by_quiet_period, plan.quiet_days
        );
    }
    let _ = writeln!(
        out,
        "\nsample       {} records read whole: compression {:.2}x, so {:.1} MB in the archive",
        plan.sample_records,
        plan.compression_ratio,
        mb(plan.compressed_bytes)
    );
    let ru = &plan.request_units;
    let _ = writeln!(
        out,
        "request units read {:.0} + delete {:.0} (x{} a point read) = {:.0} RU, {:.1} per record",
        ru.read, ru.delete, ru.delete_ru_factor, ru.total, ru.per_record
    );
    let p = &plan.pace;
    let budget = if p.max_ru_per_second == 0 {
        "unlimited".to_owned()
    } else {
        format!("{} RU/s ({})", p.max_ru_per_second, p.ru_budget_source)
    };
    let per_second = |x: Option<f64>| x.map_or_else(|| "no bound".to_owned(), |r| format!("{r:.1} records/s"));
    let trial = match &p.trial_error {
        Some(why) => format!("NOT MEASURED: {why}"),
        None => format!(
            "{} records in {:.1} s{}",
            p.trial_records,
            p.trial_seconds,
            if p.trial_complete { ", every aged record" } else { "" }
        ),
    };
    let _ = writeln!(out, "trial        the run's pass without its deletes: {trial}");
    let range_ru =
        p.range_ru_per_second.map_or_else(|| "throughput unknown".to_owned(), |ru| format!("{ru:.0} RU/s each"));
    let _ = writeln!(
        out,
        "pace         measured {}; budget {budget}: {}; {} physical partition(s), {range_ru}, the busiest with {} records: {}",
        per_second(p.measured_per_second),
        per_second(p.budget_per_second),
        p.ranges,
        p.busiest_range_records,
        per_second(p.partition_per_second),
    );
    let _ = writeln!(
        out,
        "runs         {:.0} s of work ({:.1} records/s, bound by {}) = {} run(s) of {} s; at `{}` ({:.2} a day): {:.1} day(s)",
        p.seconds, p.records_per_second, p.bound_by, p.runs, p.time_budget_seconds, p.schedule, p.runs_per_day, p.days
    );
    let c = &plan.cost;
    let _ = writeln!(
        out,
        "storage      ${:.4}/month in Cosmos now, ${:.4}/month in the archive after: ${:.4}/month less",
        c.cosmos_per_month_before, c.archive_per_month_after, c.saving_per_month
    );
    let _ = writeln!(
        out,
        "one-time     ${:.4} of request units, ${:.4} of blob operations",
        c.backfill_request_units, c.backfill_blob_operations
    );
    let _ = writeln!(
        out,
        "prices       Cosmos ${}/GB-month, blob ${}/GB-month, writes ${}/10k, reads ${}/10k, RU ${}/million",
        c.prices.cosmos_gb_month,
        c.prices.blob_gb_month,
        c.prices.blob_writes_per_10k,
        c.prices.blob_reads_per_10k,
        c.prices.request_units_per_million
    );
    if let Some(r) = &plan.retention {
        let _ = writeln!(
            out,
            "retention    {} days: {} archived copies dated before {} expire ({:.1} MB stored, {:.1} MB of JSON); \
             {} past it kept for {} hold(s)",
            r.retention_days,
            r.expire,
            r.cutoff,
            mb(r.bytes_stored),
            mb(r.bytes),
            r.held,
            r.holds
        );
    }
    let _ = writeln!(out, "this plan spent {:.0} RU", plan.plan_request_units);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_scales_the_sample_to_the_count_and_takes_the_tightest_bound() {
        let stores = tiering::settings::StoreSettings::from_lookup(&|name: &str| match name {
            "COSMOS_ENDPOINT" => Some("http://127.0.0.1:1/".to_owned()),
            "ARCHIVE_BLOB_ENDPOINT" => Some("http://127.0.0.1:2/a".to_owned()),
            _ => None,
        })
        .unwrap();
        let mut settings = ArchiverSettings::defaults(stores);
        settings.concurrency = 10;
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().with_timezone(&Utc);
        // 1,000 records (and 3 blocked) over 4 physical partitions, one holding 400.
        let counts = Counts {
            months: BTreeMap::from([("2026-01".into(), 600), ("2026-02".into(), 400)]),
            records: 1000,
            blocked: 3,
            quiet: 7,
            partial: false,
            request_charge: 50.0,
            per_range: vec![400, 200, 200, 200],
        };
        // Ten records of 10,000 bytes (11 KB whole), compressing tenfold; 10 RU to read them.
        let sample = Sample {
            records: 10,
            bytes: 100_000,
            stored: 10_000,
            full_kb: 110.0,
            query_charge: 10.0,
            by_month: BTreeMap::from([("2026-01".into(), (10, 100_000))]),
            to_read: Vec::new(),
            elapsed: Duration::from_millis(10),
            compress_time: Duration::ZERO,
        };
        // A point read costs 1 RU + 0.1 RU per KB; round trips of 4 ms.
        let trips = RoundTrips {
            reads: vec![(1.0, 1.1), (11.0, 2.1)],
            cosmos: Duration::from_millis(4),
            blob: Duration::from_millis(4),
        };
        // The trial met 200 records (one blocked) in 4 s, 50 of them in its
        // first 2 s (finding its level) and 150 in the next 2: 75 a second then.
        let trial = Trial {
            records: 199,
            skipped: 1,
            seconds: 4.0,
            request_units: 12.0,
            first_half_records: 50,
            half_seconds: 2.0,
            ..Trial::default()
        };
        let mut found = Found { counts, sample, trips, trial, throughput: None };
        let options = PlanOptions::default();
        let cutoff = Cutoff { age: AgeValue::Seconds(0), written_before: 0 };
        let plan = estimate(&settings, now, &cutoff, &options, &found);
        assert_eq!((plan.records, plan.blocked, plan.counted), (1000, 3, "exact"));
        assert_eq!((plan.held_back_by_quiet_period, plan.quiet_days), (7, 30));
        assert!(render(&plan).contains("written in the last 30 days"), "{}", render(&plan));
        assert_eq!(plan.bytes, 10_000_000, "every month at the sample's mean size");
        assert_eq!(plan.compressed_bytes, 1_000_000);
        // Reading: 10 RU per 110 KB, over 1000 x 11 KB; deleting: 5 x (1 + 0.1 x 11) per record.
        assert!((plan.request_units.read - 1000.0).abs() < 0.5, "{:?}", plan.request_units);
        assert!((plan.request_units.delete - 10_500.0).abs() < 0.5, "{:?}", plan.request_units);
        // Unlimited budget, throughput unknown: the measured pace, blocked records
        // included: 50 in the first 2 s, the other 953 at 75 a second.
        assert_eq!(plan.pace.bound_by, "measured pace");
        assert!((plan.pace.seconds - (2.0 + 953.0 / 75.0)).abs() < 0.01, "{:?}", plan.pace);
        assert_eq!(plan.pace.measured_per_second, Some(50.0), "the trial's own pace, as it was");
        assert_eq!((plan.pace.ranges, plan.pace.busiest_range_records), (4, 400));
        // 11.5 RU a record: a budget of 115 RU/s allows 10 records a second (the
        // records spread evenly, so each partition's share of it keeps up).
        settings.max_ru_per_second = 115;
        found.counts.per_range = vec![250; 4];
        let capped = estimate(&settings, now, &cutoff, &options, &found);
        found.counts.per_range = vec![400, 200, 200, 200];
        assert_eq!(capped.pace.bound_by, "request units");
        assert!((capped.pace.records_per_second - 10.0).abs() < 0.01, "{:?}", capped.pace);
        assert_eq!(capped.plan_request_units, 75.2, "what the count, the sample, the reads and the trial spent");
        // 400 RU/s over 4 partitions: the busiest one's 400 records at 100 RU/s take 46 s.
        settings.max_ru_per_second = 0;
        found.throughput = Some(400);
        let partitioned = estimate(&settings, now, &cutoff, &options, &found);
        assert_eq!(partitioned.pace.bound_by, "a physical partition");
        assert!((partitioned.pace.seconds - 46.0).abs() < 0.01, "{:?}", partitioned.pace);
        assert_eq!(partitioned.pace.range_ru_per_second, Some(100.0));
        // With a budget of 200 RU/s the archiver takes 50 of each partition's 100:
        // the busiest partition's records need 92 s, more than the budget's 57.5.
        settings.max_ru_per_second = 200;
        let shared = estimate(&settings, now, &cutoff, &options, &found);
        assert_eq!((shared.pace.bound_by, shared.pace.range_ru_per_second), ("a physical partition", Some(50.0)));
        assert!((shared.pace.seconds - 92.0).abs() < 0.01, "{:?}", shared.pace);
        // 64 partitions, the records even over them, 6,400 RU/s, a fast trial:
        // a run has 32 ranges open at once at 100 RU/s each, half the
        // throughput, so the 1,000 records' 11,500 RU take 3.6 s, not 1.8.
        settings.max_ru_per_second = 0;
        let mut wide = found.clone();
        wide.throughput = Some(6400);
        wide.counts.per_range = vec![1000 / 64; 64];
        wide.trial = Trial { records: 1000, seconds: 1.0, complete: true, ..Trial::default() };
        let wide = estimate(&settings, now, &cutoff, &options, &wide);
        assert_eq!(wide.pace.bound_by, "a physical partition", "{:?}", wide.pace);
        assert!((wide.pace.seconds - 11_500.0 / 3200.0).abs() < 0.01, "{:?}", wide.pace);
        // A trial that took nothing through measures nothing, and the plan says so.
        found.trial = Trial { failed: 5, seconds: 1.0, error: Some("store outage".into()), ..Trial::default() };
        let unmeasured = estimate(&settings, now, &cutoff, &options, &found);
        assert_eq!((unmeasured.pace.bound_by, unmeasured.pace.runs), ("unknown", 0));
        assert!(render(&unmeasured).contains("NOT MEASURED: store outage"), "{}", render(&unmeasured));
    }

    #[test]
    fn fits_a_line_and_counts_runs_per_day() {
        let (a, b) = fit(&[(1.0, 1.08), (10.0, 1.8), (100.0, 9.0)]);
        assert!((a - 1.0).abs() < 1e-6 && (b - 0.08).abs() < 1e-6, "{a} {b}");
        assert_eq!(fit(&[(5.0, 2.0), (5.0, 4.0)]), (3.0, 0.0));
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(runs_per_day("0 0 2 * * *", now), 1.0);
        assert_eq!(runs_per_day("0 0 * * * *", now), 24.0);
        assert_eq!(month_of(&AgeField::Ts, &AgeValue::Seconds(1_700_000_000)), "2023-11");
        assert_eq!(month_of(&AgeField::Iso("d".into()), &AgeValue::Text("2024-02-29T10:00:00Z".into())), "2024-02");
    }
}
