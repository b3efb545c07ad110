//! `archiver plan`: what archiving will do, before it is turned on. Writes nothing.
//!
//! - **Counts** are exact: a light query walks the aged set (ids, partition keys and
//!   age values only, no bodies) and applies the archiver's own rules, so it counts
//!   exactly the records a run would archive, per month of age, and apart the aged
//!   records the quiet period holds back (`ARCHIVE_QUIET_DAYS`). The Rust Cosmos SDK
//!   cannot merge aggregates (`COUNT`) across partitions, so counting is a walk; it
//!   stops at `--max-ru` request units, and then the counts are a lower bound
//!   (`counted: "partial"`).
//! - **Bytes, compression, request units** come from a sample: the first `--sample`
//!   aged records, read whole through the archiver's own query, stripped and
//!   compressed as the archiver would, with the query's measured charge per KB and
//!   point reads that fit a charge per read (`a + b x KB`). A delete is estimated
//!   as `--delete-ru-factor` (default 5) point reads of the same item: Cosmos
//!   charges writes and deletes by size and indexed terms, and cannot be asked what
//!   a delete would cost without deleting.
//! - **Time** is a model: each record needs a query share, compression, two blob
//!   round trips and a Cosmos delete; round trips are measured. The pace is the
//!   lower of `ARCHIVE_CONCURRENCY` / time-per-record and the RU budget / RU per
//!   record. The runs follow from `ARCHIVE_TIME_BUDGET_SECONDS` and
//!   `ARCHIVE_SCHEDULE`.
//! - **Cost** uses a price table with documented defaults (docs/operations.md),
//!   each overridable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use tiering::codec;
use tiering::record::{AgeField, AgeValue, RawDocument, RecordError, parse_iso_instant};
use tiering::schedule::parse_schedule;
use tiering::settings::ArchiverSettings;
use tiering::store::StoreError;

use crate::decide::{self, Cutoff, Eligibility, PartitionValue};
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
    pub prices: Prices,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { sample: 1000, max_request_units: 200_000.0, delete_ru_factor: 5.0, prices: Prices::default() }
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
    pub max_ru_per_second: u32,
    /// Measured: one Cosmos point read, one blob round trip; estimated: per record.
    pub cosmos_round_trip_ms: f64,
    pub blob_round_trip_ms: f64,
    pub ms_per_record: f64,
    pub records_per_second: f64,
    /// `latency` (records in flight) or `request units` (the RU budget).
    pub bound_by: &'static str,
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

/// Plans the archiving of everything aged at `now`. Writes nothing.
///
/// Each bullet of the module docs is one step: [`count`], [`sample`],
/// [`round_trips`] (the I/O) and [`estimate`] (pure arithmetic on what they found).
pub async fn plan(archiver: &Archiver, now: DateTime<Utc>, options: &PlanOptions) -> Result<Plan, StoreError> {
    let settings = &archiver.settings;
    let cutoff = archiver.cutoffs(now);
    let counts = count(archiver, &cutoff, options.max_request_units).await?;
    let sample = sample(archiver, &cutoff, options.sample).await?;
    let trips = round_trips(archiver, &sample.to_read).await;
    let mut plan = estimate(settings, now, &cutoff, options, &counts, &sample, &trips);
    plan.retention = retention(archiver, now).await?;
    Ok(plan)
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
    let mut pages = archiver.cosmos.aged_rows(&cutoff.age, COUNT_PAGE).await?;
    let mut counts = Counts::default();
    loop {
        if let Some(budget) = budget {
            budget.admit().await;
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            counts.partial = true;
            break;
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
                }
                Eligibility::Blocked(_) => counts.blocked += 1,
                Eligibility::Quiet => counts.quiet += 1,
                Eligibility::NotAged => {}
            }
        }
        if counts.request_charge >= max_request_units {
            counts.partial = true;
            break;
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
/// own query, and strips and compresses them as the archiver would.
pub async fn sample(archiver: &Archiver, cutoff: &Cutoff, limit: usize) -> Result<Sample, StoreError> {
    let field = &archiver.settings.stores.age_field;
    let mut pages = archiver.cosmos.aged_records(&cutoff.age, cutoff.written_before, SAMPLE_PAGE).await?;
    let mut sample = Sample::default();
    let started = Instant::now();
    'pages: while let Some(page) = pages.next_page().await {
        let page = page?;
        sample.query_charge += page.request_charge;
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
    counts: &Counts,
    sample: &Sample,
    trips: &RoundTrips,
) -> Plan {
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

    let cosmos_ms = trips.cosmos.as_secs_f64() * 1000.0;
    let blob_ms = trips.blob.as_secs_f64() * 1000.0;
    let per_sample =
        |d: Duration| if sample.records == 0 { 0.0 } else { d.as_secs_f64() * 1000.0 / sample.records as f64 };
    // Upload and read back (two blob trips), delete (one Cosmos trip), a share of
    // the query, and compression; the reads of the verify step decompress too.
    let ms_per_record = 2.0 * blob_ms + cosmos_ms + per_sample(sample.elapsed) + 2.0 * per_sample(sample.compress_time);
    let latency_rate = if ms_per_record > 0.0 { settings.concurrency as f64 * 1000.0 / ms_per_record } else { 0.0 };
    let budget_rate = if settings.max_ru_per_second > 0 && per_record > 0.0 {
        f64::from(settings.max_ru_per_second) / per_record
    } else {
        f64::INFINITY
    };
    let (rate, bound_by) =
        if budget_rate < latency_rate { (budget_rate, "request units") } else { (latency_rate, "latency") };
    let seconds = if rate > 0.0 { records as f64 / rate } else { 0.0 };
    let budget_secs = settings.time_budget.as_secs().max(1);
    let runs = (seconds / budget_secs as f64).ceil().max(if records > 0 { 1.0 } else { 0.0 }) as u64;
    let runs_per_day = runs_per_day(&settings.schedule, now);
    let days = if runs_per_day > 0.0 { runs as f64 / runs_per_day } else { f64::INFINITY };

    let gb = |b: u64| b as f64 / 1e9;
    let p = &options.prices;
    let before = gb(bytes) * p.cosmos_gb_month;
    let after = gb(compressed_bytes) * p.blob_gb_month;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    // Costs keep hundredths of a cent: a small container's saving is real, if tiny.
    let round4 = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let spent = counts.request_charge + sample.query_charge + trips.reads.iter().map(|r| r.1).sum::<f64>();
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
            cosmos_round_trip_ms: round2(cosmos_ms),
            blob_round_trip_ms: round2(blob_ms),
            ms_per_record: round2(ms_per_record),
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
    let budget =
        if p.max_ru_per_second == 0 { "unlimited".to_owned() } else { format!("{} RU/s", p.max_ru_per_second) };
    let _ = writeln!(
        out,
        "pace         {:.1} records/s ({} bound; up to {} in flight, {budget}; round trips Cosmos {:.1} ms, blob {:.1} ms)",
        p.records_per_second, p.bound_by, p.concurrency, p.cosmos_round_trip_ms, p.blob_round_trip_ms
    );
    let _ = writeln!(
        out,
        "runs         {:.0} s of work = {} run(s) of {} s; at `{}` ({:.2} a day): {:.1} day(s)",
        p.seconds, p.runs, p.time_budget_seconds, p.schedule, p.runs_per_day, p.days
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
    fn the_estimate_scales_the_sample_to_the_count_and_takes_the_slower_pace() {
        let stores = tiering::settings::StoreSettings::from_lookup(&|name: &str| match name {
            "COSMOS_ENDPOINT" => Some("http://127.0.0.1:1/".to_owned()),
            "ARCHIVE_BLOB_ENDPOINT" => Some("http://127.0.0.1:2/a".to_owned()),
            _ => None,
        })
        .unwrap();
        let mut settings = ArchiverSettings::defaults(stores);
        settings.concurrency = 10;
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().with_timezone(&Utc);
        let counts = Counts {
            months: BTreeMap::from([("2026-01".into(), 600), ("2026-02".into(), 400)]),
            records: 1000,
            blocked: 3,
            quiet: 7,
            partial: false,
            request_charge: 50.0,
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
        let options = PlanOptions::default();
        let cutoff = Cutoff { age: AgeValue::Seconds(0), written_before: 0 };
        let plan = estimate(&settings, now, &cutoff, &options, &counts, &sample, &trips);
        assert_eq!((plan.records, plan.blocked, plan.counted), (1000, 3, "exact"));
        assert_eq!((plan.held_back_by_quiet_period, plan.quiet_days), (7, 30));
        assert!(render(&plan).contains("written in the last 30 days"), "{}", render(&plan));
        assert_eq!(plan.bytes, 10_000_000, "every month at the sample's mean size");
        assert_eq!(plan.compressed_bytes, 1_000_000);
        // Reading: 10 RU per 110 KB, over 1000 x 11 KB; deleting: 5 x (1 + 0.1 x 11) per record.
        assert!((plan.request_units.read - 1000.0).abs() < 0.5, "{:?}", plan.request_units);
        assert!((plan.request_units.delete - 10_500.0).abs() < 0.5, "{:?}", plan.request_units);
        // 13 ms per record (2 blob + 1 Cosmos trip, 1 ms of query) at 10 in flight.
        assert_eq!(plan.pace.bound_by, "latency");
        assert!((plan.pace.records_per_second - 769.23).abs() < 0.01, "{:?}", plan.pace);
        settings.max_ru_per_second = 115;
        let capped = estimate(&settings, now, &cutoff, &options, &counts, &sample, &trips);
        assert_eq!(capped.pace.bound_by, "request units");
        assert!((capped.pace.records_per_second - 10.0).abs() < 0.01, "{:?}", capped.pace);
        assert_eq!(capped.plan_request_units, 63.2, "what the count, the sample and the reads spent");
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
