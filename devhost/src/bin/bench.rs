//! The benchmark (`./scripts/bench.sh` runs it). Every figure is measured next to a
//! baseline from the same run, on the same data and at the same network latency,
//! because the machine is noisy; the latency is added by TCP proxies in front of
//! both emulators (`testkit::proxy::Proxy`). BENCHMARKS.md explains the targets.
//!
//! - Archive throughput of the packaged archiver (default settings) at each round
//!   trip, against (a) a minimal copy loop with the same SDKs, no compression and
//!   no verification, 64 records at a time (the practical limit of the emulators),
//!   and (b) the common design: a sequential loop that reads, gzips, uploads and
//!   deletes one record at a time.
//! - Peak memory of the packaged archiver with 64 records of 300 KB in flight,
//!   against one in flight.
//! - Reads through the packaged reader against direct SDK reads from this process:
//!   hot (a Cosmos point read) and cold (a blob download plus decompression); and
//!   the same through a second reader that validates a bearer token on every
//!   request (docs/auth.md), against the first.
//! - Peak memory of the packaged reader under concurrent 100-record list pages of
//!   300 KB records from both tiers, with list pages bounded by bytes (the
//!   default `READER_PAGE_MAX_BYTES`) against unbounded pages.
//!
//! - List pages (page size 50) of a customer with 20,000 archived records against
//!   those of one with 100: the first and a middle page, p50 and p95, and the
//!   requests each page sends to each store (the list index keeps them alike).
//!
//! Writes `target/bench/results.json`: each measurement with name, value, unit,
//! baseline, ratio, target and pass.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use clap::Parser;
use devhost::app::AppFolder;
use devhost::drive::{Network, app_settings, dataset, mb, read, read_as, read_with, seed};
use devhost::host::Host;
use devhost::stats::percentile_ms;
use futures::StreamExt;
use serde::Serialize;
use testkit::cosmos::{Indexing, ensure_container};
use testkit::emulator::unique;
use testkit::sample::SampleRecord;
use tiering::archive::{Archive, BlobArchive, PutCondition};
use tiering::codec;
use tiering::cosmos::CosmosStore;
use tiering::layout;
use tiering::record::{AgeField, AgeValue, RawDocument};
use tiering::settings::StoreSettings;
use tiering::store::Transport;

#[derive(Debug, Parser)]
#[command(about = "Archive throughput, memory and read latency against in-run baselines, at added network latency")]
struct Args {
    /// Aged records archived per measurement (realistic sizes, up to --max-kb);
    /// enough for the archiver's concurrency to settle.
    #[arg(long, default_value_t = 1000)]
    records: usize,
    #[arg(long, default_value_t = 300)]
    max_kb: usize,
    /// Round trips to add, in milliseconds (each level measures everything).
    #[arg(long, value_delimiter = ',', default_value = "0,10")]
    rtt_ms: Vec<u64>,
    /// Records of 300 KB for the memory measurement.
    #[arg(long, default_value_t = 200)]
    memory_records: usize,
    /// Concurrent 100-record list requests for the reader's memory figure (more
    /// than 4 of unbounded 30 MB pages overwhelm the emulator on 2 cores).
    #[arg(long, default_value_t = 4)]
    list_concurrency: usize,
    /// Reads per tier and kind for the latency comparison.
    #[arg(long, default_value_t = 150)]
    reads: usize,
    /// Archived records of the large customer in the list measurement (the small one has 100).
    #[arg(long, default_value_t = 20_000)]
    list_records: usize,
    /// Requests per page and customer in the list measurement.
    #[arg(long, default_value_t = 30)]
    list_rounds: usize,
    /// Archived records of the customer paged through in front mode.
    #[arg(long, default_value_t = 3000)]
    front_archived: usize,
    /// Their size, in KB (the in-memory emulators hold them all).
    #[arg(long, default_value_t = 20)]
    front_archived_kb: usize,
    /// RU/s each of the 8 physical partitions is held to in the partitions measurement.
    #[arg(long, default_value_t = 100)]
    range_ru: u32,
    /// Aged records seeded for it (one customer each; evened out over the ranges).
    #[arg(long, default_value_t = 480)]
    range_records: usize,
    /// Their size, in KB.
    #[arg(long, default_value_t = 20)]
    range_kb: usize,
    /// Which measurements to run (all by default).
    #[arg(long, value_delimiter = ',', default_value = "archive,ranges,reads,front,restore,memory,lists,index")]
    parts: Vec<String>,
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

/// One figure, next to what it is compared with.
#[derive(Debug, Clone, Serialize)]
struct Measurement {
    name: String,
    value: f64,
    unit: &'static str,
    baseline: Option<Baseline>,
    ratio: Option<f64>,
    target: Option<String>,
    pass: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
struct Baseline {
    name: String,
    value: f64,
}

#[derive(Debug, Default)]
struct Results(Vec<Measurement>);

impl Results {
    fn plain(&mut self, name: String, value: f64, unit: &'static str) {
        self.push(Measurement { name, value, unit, baseline: None, ratio: None, target: None, pass: None });
    }

    /// `value / baseline`, checked against `min` or `max` ratio when given.
    fn ratio(
        &mut self,
        name: String,
        value: f64,
        unit: &'static str,
        baseline: (&str, f64),
        bound: Option<(&str, f64)>,
    ) {
        let ratio = value / baseline.1.max(1e-9);
        let (target, pass) = match bound {
            Some((">=", x)) => (Some(format!(">= {x}x")), Some(ratio >= x)),
            Some(("<=", x)) => (Some(format!("<= {x}x")), Some(ratio <= x)),
            // Within x of 1 either way: 0.25 is "0.75x to 1.25x".
            Some(("~", x)) => (Some(format!("{}-{}x", 1.0 - x, 1.0 + x)), Some((ratio - 1.0).abs() <= x)),
            _ => (None, None),
        };
        let baseline = Some(Baseline { name: baseline.0.to_owned(), value: round(baseline.1) });
        self.push(Measurement { name, value, unit, baseline, ratio: Some(round(ratio)), target, pass });
    }

    fn absolute(&mut self, name: String, value: f64, unit: &'static str, below: f64) {
        let target = Some(format!("< {below} {unit}"));
        self.push(Measurement { name, value, unit, baseline: None, ratio: None, target, pass: Some(value < below) });
    }

    fn push(&mut self, mut m: Measurement) {
        m.value = round(m.value);
        let verdict = match m.pass {
            Some(true) => " [target met]",
            Some(false) => " [target NOT met]",
            None => "",
        };
        let ratio = m.ratio.map(|r| format!(" = {r:.2}x {}", m.baseline.as_ref().map_or("", |b| b.name.as_str())));
        say(format!("  {} = {} {}{}{verdict}", m.name, m.value, m.unit, ratio.unwrap_or_default()));
        self.0.push(m);
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn say(line: impl AsRef<str>) {
    println!("[bench] {}", line.as_ref());
    let _ = std::io::stdout().flush();
}

/// Fresh stores holding `data`, seeded directly (not through the proxies).
async fn fresh(data: &[SampleRecord]) -> anyhow::Result<StoreSettings> {
    fresh_on(data, None).await
}

/// [`fresh`], with Cosmos at `cosmos` when given (an emulator of the bench's own).
async fn fresh_on(data: &[SampleRecord], cosmos: Option<&str>) -> anyhow::Result<StoreSettings> {
    let mut stores = StoreSettings::from_env().context("run through ./scripts/bench.sh (needs the emulators)")?;
    if let Some(endpoint) = cosmos {
        stores.cosmos_endpoint = endpoint.parse()?;
    }
    stores.cosmos_database = unique("bench");
    stores.archive_container = unique("bench-archive");
    stores.age_field = AgeField::Iso("invoiceDate".into());
    let client = CosmosStore::client(&stores, Transport::BATCH).await?;
    ensure_container(&client, &stores, Indexing::Default).await?;
    let cosmos = CosmosStore::connect(&stores, Transport::BATCH).await?;
    seed(&cosmos, data, |_| {}).await?;
    BlobArchive::new(&stores, Transport::BATCH)?.ensure_container().await?;
    Ok(stores)
}

/// What one archiving approach achieved.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// The run's own duration (`durationMs`) and request units, for the archiver.
    seconds: f64,
    request_units: f64,
    records_per_second: f64,
    mb_per_second: f64,
    concurrency: f64,
    peak_rss_mb: f64,
}

/// The packaged archiver under the host stand-in, one timer invocation.
async fn archiver(
    dist: &std::path::Path,
    stores: &StoreSettings,
    extra: &[(&str, String)],
    expect: usize,
) -> anyhow::Result<Rate> {
    let mut settings = app_settings(stores);
    settings.insert("RUST_LOG".into(), "warn".into());
    settings.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let host = Host::start(AppFolder::load(&dist.join("archiver"))?, &settings).await?;
    let result = host.fire_timer("ArchiveBillingRecords").await?;
    let rss = host.peak_rss_bytes().unwrap_or(0) as f64 / 1e6;
    host.stop().await?;
    let s = &result.return_value;
    ensure!(s["archived"].as_u64() == Some(expect as u64), "the archiver did not archive everything: {s}");
    let secs = s["durationMs"].as_f64().unwrap_or(1.0) / 1000.0;
    Ok(Rate {
        seconds: secs,
        request_units: s["requestUnits"].as_f64().unwrap_or(0.0),
        records_per_second: expect as f64 / secs,
        mb_per_second: mb(s["bytesRead"].as_u64().unwrap_or(0)) / secs,
        concurrency: s["concurrency"].as_f64().unwrap_or(0.0),
        peak_rss_mb: rss,
    })
}

/// The packaged archiver's `plan --json` with the app's settings on `stores`.
/// The plan's trial in the archive measurement (`archiver plan --trial-seconds`).
const PLAN_TRIAL_SECONDS: f64 = 3.0;

async fn plan(
    dist: &std::path::Path,
    stores: &StoreSettings,
    extra: &[(&str, String)],
) -> anyhow::Result<serde_json::Value> {
    let binary = dist.join("archiver").join("archiver");
    let mut env = app_settings(stores);
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let out = tokio::process::Command::new(&binary)
        // A trial shorter than the run (about a third of the 1000 records'), so
        // that the plan extrapolates as it must on a real backfill of hours: a
        // trial that meets every record is the run itself, minus the deletes.
        .args(["plan", "--json", "--trial-seconds", &PLAN_TRIAL_SECONDS.to_string()])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    ensure!(out.status.success(), "archiver plan failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Baseline (a): read pages, upload each record as it came, delete it; 64 at a
/// time; no compression, no verification.
async fn copy_loop(stores: &StoreSettings, cutoff: &AgeValue, expect: usize) -> anyhow::Result<Rate> {
    let cosmos = CosmosStore::connect(stores, Transport::BATCH).await?;
    let archive = Arc::new(BlobArchive::new(stores, Transport::BATCH)?);
    let started = Instant::now();
    let pages = cosmos.aged_records(cutoff, i64::MAX, 50).await?;
    let docs = futures::stream::unfold(pages, |mut p| async move { p.next_page().await.map(|page| (page, p)) })
        .map(|page| futures::stream::iter(page.map(|p| p.docs).unwrap_or_default()))
        .flatten();
    let (cosmos, archive) = (&cosmos, &archive);
    let moved = docs
        .map(|raw: Bytes| async move {
            let doc = RawDocument::parse(raw.clone()).ok()?;
            let (id, customer, etag) = (doc.id().ok()?, doc.get::<String>("customerId")?, doc.etag().ok()?);
            let name = layout::blob_name(&customer, &id).ok()?;
            archive.put(&name, raw, Default::default(), PutCondition::Absent).await.ok()?;
            cosmos.delete_if_match(&customer, &id, &etag).await.result.ok()
        })
        .buffer_unordered(64)
        .filter(|r| std::future::ready(r.is_some()))
        .count()
        .await;
    let secs = started.elapsed().as_secs_f64();
    ensure!(moved == expect, "the copy loop moved {moved} of {expect}");
    Ok(Rate {
        seconds: secs,
        request_units: 0.0,
        records_per_second: expect as f64 / secs,
        mb_per_second: 0.0,
        concurrency: 64.0,
        peak_rss_mb: 0.0,
    })
}

/// Baseline (b): one record at a time: read, gzip, upload, delete.
async fn sequential_gzip(stores: &StoreSettings, cutoff: &AgeValue, expect: usize) -> anyhow::Result<Rate> {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let cosmos = CosmosStore::connect(stores, Transport::BATCH).await?;
    let archive = BlobArchive::new(stores, Transport::BATCH)?;
    let started = Instant::now();
    let mut pages = cosmos.aged_records(cutoff, i64::MAX, 50).await?;
    let mut moved = 0;
    while let Some(page) = pages.next_page().await {
        for raw in page?.docs {
            let doc = RawDocument::parse(raw)?;
            let (id, etag) = (doc.id()?, doc.etag()?);
            let customer: String = doc.get("customerId").context("customerId")?;
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&doc.without_system_properties())?;
            let name = layout::blob_name(&customer, &id)?;
            archive.put(&name, Bytes::from(gz.finish()?), Default::default(), PutCondition::Absent).await?;
            cosmos.delete_if_match(&customer, &id, &etag).await.result?;
            moved += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    ensure!(moved == expect, "the sequential loop moved {moved} of {expect}");
    Ok(Rate {
        seconds: secs,
        request_units: 0.0,
        records_per_second: expect as f64 / secs,
        mb_per_second: 0.0,
        concurrency: 1.0,
        peak_rss_mb: 0.0,
    })
}

fn cutoff() -> AgeValue {
    AgeField::Iso("invoiceDate".into()).at(chrono::Utc::now() - chrono::Duration::days(90))
}

async fn archive_throughput(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    let data = dataset(args.records, args.max_kb, 100..456, 7);
    let json: u64 = data.iter().map(|r| r.json.len() as u64).sum();
    say(format!(
        "archive throughput at {rtt} ms: {} aged records, {:.1} MB of JSON, up to {} KB",
        data.len(),
        mb(json),
        args.max_kb
    ));
    let plan_seconds = std::cell::Cell::new(None::<f64>);
    let measure = async |what: &str| -> anyhow::Result<Rate> {
        let direct = fresh(&data).await?;
        let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
        let stores = network.through(&direct);
        say(format!("  {what} ..."));
        match what {
            "archiver" => {
                // The plan first, on the same stores, as an operator would.
                let planned = plan(&args.dist, &stores, &[]).await?;
                let rate = archiver(&args.dist, &stores, &[], data.len()).await?;
                let seconds = planned["pace"]["seconds"].as_f64().unwrap_or(f64::NAN);
                say(format!(
                    "  the plan: {seconds:.1} s of work (bound by {}, a {:.1} s trial); the run took {:.1} s",
                    planned["pace"]["boundBy"].as_str().unwrap_or("?"),
                    planned["pace"]["trialSeconds"].as_f64().unwrap_or(0.0),
                    rate.seconds
                ));
                plan_seconds.set(Some(seconds));
                Ok(rate)
            }
            "archiver held at 64" => {
                let fixed =
                    [("ARCHIVE_CONCURRENCY", "64".to_owned()), ("ARCHIVE_CONCURRENCY_ADAPTIVE", "false".to_owned())];
                archiver(&args.dist, &stores, &fixed, data.len()).await
            }
            "copy loop" => copy_loop(&stores, &cutoff(), data.len()).await,
            _ => sequential_gzip(&stores, &cutoff(), data.len()).await,
        }
    };
    let ours = measure("archiver").await?;
    let planned = plan_seconds.take().unwrap_or(f64::NAN);
    let held = measure("archiver held at 64").await?;
    let copy = measure("copy loop").await?;
    let sequential = measure("sequential gzip loop").await?;
    let at_10 = rtt == 10;
    results.plain(format!("archive.copy_loop.{rtt}ms"), copy.records_per_second, "records/s");
    results.plain(format!("archive.sequential_gzip.{rtt}ms"), sequential.records_per_second, "records/s");
    results.ratio(
        format!("archive.archiver_vs_copy_loop.{rtt}ms"),
        ours.records_per_second,
        "records/s",
        ("copy loop, 64 in flight", copy.records_per_second),
        at_10.then_some((">=", 0.8)),
    );
    results.ratio(
        format!("archive.archiver_vs_sequential.{rtt}ms"),
        ours.records_per_second,
        "records/s",
        ("sequential gzip loop", sequential.records_per_second),
        at_10.then_some((">=", 3.0)),
    );
    results.ratio(
        format!("archive.plan_vs_run.{rtt}ms"),
        planned,
        "s",
        ("the run's own duration", ours.seconds),
        Some(("~", 0.25)),
    );
    results.plain(format!("archive.archiver_mb_per_second.{rtt}ms"), ours.mb_per_second, "MB/s");
    results.plain(format!("archive.archiver_settled_concurrency.{rtt}ms"), ours.concurrency, "records");
    // Not a target: tells the controller's share of the gap to (a) from the work's.
    results.ratio(
        format!("archive.archiver_held_at_64_vs_copy_loop.{rtt}ms"),
        held.records_per_second,
        "records/s",
        ("copy loop, 64 in flight", copy.records_per_second),
        None,
    );
    Ok(())
}

/// A container of 8 physical partitions, each held to `--range-ru` RU/s (the
/// project's emulator with `COSMOS_EMULATOR_PARTITIONS`, answering 429 past
/// it), as production has: the archiver (every default but an unlimited
/// budget, so that the partitions bind) against the ceiling, the sum of the
/// ranges' rates at the request units per record the run measured; and the
/// same archiver querying the container whole (`ARCHIVE_RANGE_QUERIES=false`,
/// which the SDK drains one range after another) as the baseline. The aged
/// records are the same size and spread evenly over the ranges, so that the
/// ceiling is reachable.
async fn ranges(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    const K: u32 = 8;
    let per_range = args.range_ru;
    let emulator = testkit::emulator::OwnEmulator::cosmos_partitioned(
        K,
        Some(per_range),
        Some(&format!("manual:{}", K * per_range)),
    );
    let today = chrono::Utc::now().date_naive();
    // One customer per record: the records spread over the ranges by hash.
    let data: Vec<SampleRecord> = (0..args.range_records)
        .map(|i| {
            let date = today - chrono::Duration::days(100 + (i % 300) as i64);
            testkit::sample::invoice(
                &format!("cust-{i:05}"),
                &format!("inv-{i:05}"),
                date,
                args.range_kb * 1000,
                i as u64,
            )
        })
        .collect();
    let measure = async |range_queries: bool| -> anyhow::Result<(Rate, usize)> {
        let direct = fresh_on(&data, Some(&emulator.endpoint)).await?;
        // As many in each range as in the emptiest: the rest are deleted.
        let cosmos = CosmosStore::connect(&direct, Transport::BATCH).await?;
        let mut per = Vec::new();
        for range in cosmos.feed_ranges().await? {
            let slice = tiering::cosmos::RangeSlice::of(&range);
            let mut pages = cosmos.aged_records_in(&slice, &cutoff(), i64::MAX, 100).await?;
            let mut docs = Vec::new();
            while let Some(page) = pages.next_page().await {
                docs.extend(page?.docs);
            }
            per.push(docs);
        }
        let even = per.iter().map(Vec::len).min().unwrap_or(0);
        for docs in &per {
            for doc in &docs[even..] {
                let doc = RawDocument::parse(doc.clone())?;
                let customer: String = doc.get("customerId").context("customerId")?;
                cosmos.delete(&customer, &doc.id()?).await?;
            }
        }
        let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
        let stores = network.through(&direct);
        let extra =
            [("ARCHIVE_MAX_RU_PER_SECOND", "0".to_owned()), ("ARCHIVE_RANGE_QUERIES", range_queries.to_string())];
        let n = even * per.len();
        Ok((archiver(&args.dist, &stores, &extra, n).await?, per.len()))
    };
    say(format!(
        "physical partitions at {rtt} ms: {K} ranges of {per_range} RU/s each, up to {} aged records of {} KB",
        data.len(),
        args.range_kb
    ));
    let (ours, k) = measure(true).await?;
    let (whole, _) = measure(false).await?;
    let archived = ours.records_per_second * ours.seconds;
    let ru_per_record = ours.request_units / archived.max(1.0);
    let ceiling = f64::from(per_range) * k as f64 / ru_per_record;
    say(format!(
        "  {k} ranges, {archived:.0} records, {ru_per_record:.1} RU each: the ceiling is {ceiling:.1} records/s"
    ));
    results.ratio(
        format!("ranges.archiver_vs_ceiling.{rtt}ms"),
        ours.records_per_second,
        "records/s",
        ("8 ranges' RU/s at the measured RU per record", ceiling),
        Some((">=", 0.8)),
    );
    results.ratio(
        format!("ranges.whole_container_query_vs_ceiling.{rtt}ms"),
        whole.records_per_second,
        "records/s",
        ("8 ranges' RU/s at the measured RU per record", ceiling),
        None,
    );
    results.ratio(
        format!("ranges.archiver_vs_whole_container_query.{rtt}ms"),
        ours.records_per_second,
        "records/s",
        ("the same archiver, the container queried whole", whole.records_per_second),
        None,
    );
    Ok(())
}

/// The rollback's pace: the packaged archiver's `restore --all` moving every
/// archived record back, against the archive pass that archived them (same
/// records, same stores, same added round trip). docs/rollout.md plans with it.
async fn restore_pace(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    let data = dataset(args.records, args.max_kb, 100..456, 11);
    say(format!("restore pace at {rtt} ms: {} records archived, then all restored", data.len()));
    let direct = fresh(&data).await?;
    let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
    let stores = network.through(&direct);
    let archived = archiver(&args.dist, &stores, &[], data.len()).await?;
    let binary = args.dist.join("archiver").join("archiver");
    let env = app_settings(&stores);
    let out = tokio::process::Command::new(&binary)
        .args(["restore", "--all", "--wait", "0"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    ensure!(out.status.success(), "restore --all failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let restored = report["restored"].as_u64().unwrap_or(0);
    ensure!(restored == data.len() as u64, "restore --all did not restore everything: {report}");
    let pace = report["recordsPerSecond"].as_f64().unwrap_or(0.0);
    results.plain(format!("restore.all_records_per_second.{rtt}ms"), pace, "records/s");
    results.ratio(
        format!("restore.all_vs_archive_pass.{rtt}ms"),
        pace,
        "records/s",
        ("the archive pass of the same records", archived.records_per_second),
        None,
    );
    Ok(())
}

/// Front mode (docs/front-mode.md): the packaged reader before an API with its
/// own bodies (`devhost::mapped_api`). Hot reads through the reader against the
/// same reads sent straight to the API; archived reads that move the record
/// back; the reader's memory while 4 clients list pages of 300 KB records
/// (against serve mode's bounded pages on the same data); and a consumer paging
/// through a customer whose records are all archived.
async fn front(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    let cold = dataset(args.reads, 300, 100..456, 21)
        .into_iter()
        .enumerate()
        .map(|(i, r)| testkit::sample::invoice(&r.customer_id, &r.id, r.invoice_date, 300_000, i as u64))
        .collect::<Vec<_>>();
    let hot = dataset(args.reads, args.max_kb, 0..30, 22);
    say(format!(
        "front mode at {rtt} ms: {} hot reads (up to {} KB), {} archived (300 KB)",
        hot.len(),
        args.max_kb,
        cold.len()
    ));
    let direct = fresh(&cold).await?;
    archiver(&args.dist, &direct, &[], cold.len()).await?;
    seed(&CosmosStore::connect(&direct, Transport::BATCH).await?, &hot, |_| {}).await?;
    let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
    let stores = network.through(&direct);
    let api = devhost::mapped_api::start(&stores).await?;
    let profile = devhost::repo_root().join("contracts/examples/front-mapped.toml");
    let mut settings = app_settings(&stores);
    settings.insert("RUST_LOG".into(), "warn".into());
    settings.insert("READER_CONTRACT".into(), profile.display().to_string());
    settings.insert("READER_UPSTREAM_URL".into(), format!("http://{api}"));
    let host = Host::start(AppFolder::load(&args.dist.join("reader"))?, &settings).await?;
    let contract = tiering::contract::Contract::parse(devhost::mapped_api::PROFILE)?;
    let (reader, straight) = (host.handler_url(), format!("http://{api}"));
    let key = [("x-api-key", devhost::mapped_api::API_KEY)];
    let http = reqwest::Client::new();
    let mut times: [Vec<Duration>; 3] = Default::default();
    for i in 0..args.reads {
        let (h, c) = (&hot[i % hot.len()], &cold[i % cold.len()]);
        let (seen, took) = read_with(&http, &straight, &contract, h, &key).await?;
        ensure!(seen.status == 200, "hot {} answered {} by the API", h.id, seen.status);
        times[0].push(took);
        let (seen, took) = read_with(&http, &reader, &contract, h, &key).await?;
        ensure!(seen.status == 200, "hot {} answered {} through the reader", h.id, seen.status);
        times[1].push(took);
        if i < cold.len() {
            let (seen, took) = read_with(&http, &reader, &contract, c, &key).await?;
            ensure!(seen.status == 200, "archived {} answered {} through the reader", c.id, seen.status);
            times[2].push(took);
        }
    }
    host.stop().await?;
    let ms = percentile_ms;
    let at_10 = rtt == 10;
    for (q, label) in [(50.0, "p50"), (99.0, "p99")] {
        results.ratio(
            format!("front.hot_{label}.{rtt}ms"),
            ms(&times[1], q),
            "ms",
            ("the same read sent straight to the API", ms(&times[0], q)),
            (at_10 && q == 50.0).then_some(("<=", 1.15)),
        );
        results.ratio(
            format!("front.archived_moved_back_300kb_{label}.{rtt}ms"),
            ms(&times[2], q),
            "ms",
            ("a hot read sent straight to the API", ms(&times[0], q)),
            None,
        );
    }
    if at_10 {
        results.absolute(format!("front.archived_moved_back_p99_limit.{rtt}ms"), ms(&times[2], 99.0), "ms", 1000.0);
    }
    Ok(())
}

/// Front mode's memory and lists, at the worst round trip: 4 clients listing
/// 100-record pages of 300 KB records through the reader (which streams the
/// API's answer) against serve mode's bounded pages on the same records; and a
/// consumer paging through 3,000 archived records (pages of 100, 200 moved back
/// a request), each page timed.
async fn front_lists(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    let big: Vec<SampleRecord> = (0..200)
        .map(|i| {
            testkit::sample::invoice(
                "acct-big",
                &format!("big-{i:04}"),
                today - chrono::Duration::days(5 + i / 4),
                300_000,
                i as u64,
            )
        })
        .collect();
    let archived_n = args.front_archived;
    let many: Vec<SampleRecord> = (0..archived_n)
        .map(|i| {
            let date = today - chrono::Duration::days(100 + (i / 10) as i64);
            testkit::sample::invoice("acct-many", &format!("inv-{i:05}"), date, args.front_archived_kb * 1000, i as u64)
        })
        .collect();
    say(format!(
        "front mode lists at {rtt} ms: {} clients x 100 records of 300 KB; paging {archived_n} archived records of {} KB",
        args.list_concurrency, args.front_archived_kb
    ));
    let mut data = big.clone();
    data.extend(many.iter().cloned());
    let direct = fresh(&data).await?;
    // The packaged archiver, runs of 150 s (the host stand-in's 230 s limit) until complete.
    let mut settings = app_settings(&direct);
    settings.insert("RUST_LOG".into(), "warn".into());
    settings.insert("ARCHIVE_TIME_BUDGET_SECONDS".into(), "150".into());
    let archiver_host = Host::start(AppFolder::load(&args.dist.join("archiver"))?, &settings).await?;
    let mut archived = 0;
    for _ in 0..20 {
        let s = archiver_host.fire_timer("ArchiveBillingRecords").await?.return_value;
        archived += s["archived"].as_u64().unwrap_or(0);
        if s["status"] == "complete" {
            break;
        }
        ensure!(s["status"] == "partial", "an archive run failed: {s}");
    }
    archiver_host.stop().await?;
    ensure!(archived == archived_n as u64, "archived {archived} of {archived_n}");
    let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
    let stores = network.through(&direct);
    let api = devhost::mapped_api::start(&stores).await?;
    let profile = devhost::repo_root().join("contracts/examples/front-mapped.toml");
    let mut front_settings = app_settings(&stores);
    front_settings.insert("RUST_LOG".into(), "warn".into());
    front_settings.insert("READER_CONTRACT".into(), profile.display().to_string());
    front_settings.insert("READER_UPSTREAM_URL".into(), format!("http://{api}"));
    front_settings.insert("READER_TIMEOUT_SECONDS".into(), "60".into());
    let mut serve_settings = app_settings(&stores);
    serve_settings.insert("RUST_LOG".into(), "warn".into());
    let http = reqwest::Client::new();
    let mut peaks = Vec::new();
    for (mode, settings, path, size, token, items) in [
        ("front", &front_settings, "/api/v2/accounts/acct-big/invoices", "limit", "cursor", "/paging/next"),
        (
            "serve",
            &serve_settings,
            "/api/customers/acct-big/billing-records",
            "pageSize",
            "continuationToken",
            "/continuationToken",
        ),
    ] {
        let host = Host::start(AppFolder::load(&args.dist.join("reader"))?, settings).await?;
        let url = format!("{}{path}?{size}=100", host.handler_url());
        let pages = futures::future::join_all((0..args.list_concurrency).map(|_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let mut next = url.clone();
                loop {
                    let page: serde_json::Value = http
                        .get(&next)
                        .header("x-api-key", devhost::mapped_api::API_KEY)
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    match page.pointer(items).and_then(|t| t.as_str()) {
                        Some(t) => next = format!("{url}&{token}={t}"),
                        None => return anyhow::Ok(()),
                    }
                }
            }
        }))
        .await;
        pages.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        let rss = host.peak_rss_bytes().unwrap_or(0) as f64 / 1e6;
        host.stop().await?;
        say(format!("  {mode} mode: reader peak RSS {rss:.0} MB"));
        peaks.push(rss);
    }
    results.ratio(
        format!("front.reader_list_peak_rss.{rtt}ms"),
        peaks[0],
        "MB",
        ("serve mode, pages bounded at 4 MiB", peaks[1]),
        Some(("<=", 1.5)),
    );
    // Paging through a customer whose records are all archived, as a consumer does.
    let host = Host::start(AppFolder::load(&args.dist.join("reader"))?, &front_settings).await?;
    let base = format!("{}/api/v2/accounts/acct-many/invoices?limit=100", host.handler_url());
    let (mut next, mut seen, mut times) = (base.clone(), Vec::new(), Vec::new());
    loop {
        let started = Instant::now();
        let page: serde_json::Value = http
            .get(&next)
            .header("x-api-key", devhost::mapped_api::API_KEY)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        times.push(started.elapsed());
        seen.extend(
            page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["invoiceNumber"].as_str().map(str::to_owned)),
        );
        match page.pointer("/paging/next").and_then(|t| t.as_str()) {
            Some(t) => next = format!("{base}&cursor={t}"),
            None => break,
        }
    }
    host.stop().await?;
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    ensure!(
        seen.len() == archived_n && unique.len() == archived_n,
        "paging listed {} records ({} distinct) of {archived_n}",
        seen.len(),
        unique.len()
    );
    let ms = |q: f64| percentile_ms(&times, q);
    let slowest = times.iter().max().copied().unwrap_or_default().as_secs_f64() * 1000.0;
    say(format!("  paged {archived_n} archived records in {} pages, each once", times.len()));
    results.plain(format!("front.paging_{archived_n}_archived_pages.{rtt}ms"), times.len() as f64, "pages");
    results.plain(format!("front.paging_{archived_n}_archived_page_p50.{rtt}ms"), ms(50.0), "ms");
    results.absolute(format!("front.paging_{archived_n}_archived_slowest_page.{rtt}ms"), slowest, "ms", 230_000.0);
    Ok(())
}

async fn memory(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    let data: Vec<SampleRecord> = (0..args.memory_records)
        .map(|i| {
            let date = today - chrono::Duration::days(100 + i as i64 % 300);
            testkit::sample::invoice(&format!("cust-{:03}", i % 40), &format!("big-{i:05}"), date, 300_000, i as u64)
        })
        .collect();
    say(format!("memory at {rtt} ms: {} records of 300 KB", data.len()));
    let mut peak = Vec::new();
    for in_flight in [1usize, 64] {
        let direct = fresh(&data).await?;
        let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
        let fixed = [("ARCHIVE_CONCURRENCY", in_flight.to_string()), ("ARCHIVE_CONCURRENCY_ADAPTIVE", "false".into())];
        say(format!("  {in_flight} in flight ..."));
        peak.push(archiver(&args.dist, &network.through(&direct), &fixed, data.len()).await?.peak_rss_mb);
    }
    results.ratio(format!("memory.peak_rss_64_in_flight.{rtt}ms"), peak[1], "MB", ("1 in flight", peak[0]), None);
    results.absolute(format!("memory.peak_rss_64_in_flight_limit.{rtt}ms"), peak[1], "MB", 64.0);
    Ok(())
}

/// The reader's peak RSS while `list_concurrency` clients page, at once, through
/// one customer's 200 records of 300 KB (half archived), 100 at a time: with
/// pages bounded by bytes (the default) and unbounded (the baseline).
async fn list_memory(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    let data: Vec<SampleRecord> = (0..200)
        .map(|i| {
            let date = today - chrono::Duration::days(if i % 2 == 0 { 5 + i / 4 } else { 100 + i });
            testkit::sample::invoice("cust-lists", &format!("page-{i:04}"), date, 300_000, i as u64)
        })
        .collect();
    say(format!("reader memory at {rtt} ms: {} concurrent 100-record pages of 300 KB records", args.list_concurrency));
    let direct = fresh(&data).await?;
    archiver(&args.dist, &direct, &[], 100).await?;
    let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
    let stores = network.through(&direct);
    let contract = tiering::contract::Contract::default_profile();
    let list = contract.list.as_ref().context("the default profile lists")?;
    let path = list.fill(&contract.prefix, &std::collections::HashMap::from([("customerId", "cust-lists")]));
    let mut peaks = Vec::new();
    for bound in [256 * 1024 * 1024usize, tiering::settings::DEFAULT_PAGE_MAX_BYTES] {
        let mut settings = app_settings(&stores);
        settings.insert("RUST_LOG".into(), "warn".into());
        settings.insert("READER_PAGE_MAX_BYTES".into(), bound.to_string());
        // Unbounded 30 MB pages take longer than the default 10 s deadline under load.
        settings.insert("READER_TIMEOUT_SECONDS".into(), "120".into());
        let host = Host::start(AppFolder::load(&args.dist.join("reader"))?, &settings).await?;
        let url = format!("{}{path}?pageSize=100", host.handler_url());
        let http = reqwest::Client::new();
        let pages = futures::future::join_all((0..args.list_concurrency).map(|_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let mut bytes = 0usize;
                let mut next = url.clone();
                loop {
                    let page: serde_json::Value = http.get(&next).send().await?.error_for_status()?.json().await?;
                    bytes = bytes.max(page.to_string().len());
                    match page["continuationToken"].as_str() {
                        Some(t) => next = format!("{url}&continuationToken={t}"),
                        None => return anyhow::Ok(bytes),
                    }
                }
            }
        }))
        .await;
        let largest = pages.into_iter().collect::<anyhow::Result<Vec<usize>>>()?.into_iter().max().unwrap_or(0);
        let rss = host.peak_rss_bytes().unwrap_or(0) as f64 / 1e6;
        host.stop().await?;
        say(format!(
            "  pages up to {:.1} MB: reader peak RSS {rss:.0} MB (largest page {:.1} MB)",
            bound as f64 / 1e6,
            largest as f64 / 1e6
        ));
        peaks.push((rss, largest as f64 / 1e6));
    }
    results.plain(format!("memory.reader_list_largest_page_unbounded.{rtt}ms"), peaks[0].1, "MB");
    results.plain(format!("memory.reader_list_largest_page.{rtt}ms"), peaks[1].1, "MB");
    results.ratio(
        format!("memory.reader_list_peak_rss.{rtt}ms"),
        peaks[1].0,
        "MB",
        ("unbounded pages", peaks[0].0),
        Some(("<=", 0.5)),
    );
    // A 512 MB Flex instance holds the reader, the host and its own buffer of each answer.
    results.absolute(format!("memory.reader_list_peak_rss_limit.{rtt}ms"), peaks[1].0, "MB", 192.0);
    Ok(())
}

async fn reads(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    let cold = dataset(args.reads, 300, 100..456, 11)
        .into_iter()
        .enumerate()
        .map(|(i, r)| testkit::sample::invoice(&r.customer_id, &r.id, r.invoice_date, 300_000, i as u64))
        .collect::<Vec<_>>();
    let hot = dataset(args.reads, args.max_kb, 0..30, 12);
    say(format!("reads at {rtt} ms: {} hot (up to {} KB), {} cold (300 KB)", hot.len(), args.max_kb, cold.len()));
    let direct = fresh(&cold).await?;
    archiver(&args.dist, &direct, &[], cold.len()).await?;
    let cosmos_direct = CosmosStore::connect(&direct, Transport::BATCH).await?;
    seed(&cosmos_direct, &hot, |_| {}).await?;

    let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
    let stores = network.through(&direct);
    let mut settings = app_settings(&stores);
    settings.insert("RUST_LOG".into(), "warn".into());
    let host = Host::start(AppFolder::load(&args.dist.join("reader"))?, &settings).await?;
    let base = host.handler_url();
    // The same reader validating bearer tokens (docs/auth.md): a local issuer's
    // keys, a back-office token that reads every customer, sent on each request.
    let idp = testkit::idp::Idp::start().await?;
    let profile = args.out.with_file_name("bearer-contract.toml");
    if let Some(dir) = profile.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &profile,
        format!("{}{}", tiering::contract::DEFAULT_PROFILE, idp.auth_section("customerId", 300, "")),
    )?;
    let mut bearer_settings = settings.clone();
    bearer_settings.insert("READER_CONTRACT".into(), std::fs::canonicalize(&profile)?.display().to_string());
    let bearer_host = Host::start(AppFolder::load(&args.dist.join("reader"))?, &bearer_settings).await?;
    let bearer_base = bearer_host.handler_url();
    let token = format!("Bearer {}", idp.token(serde_json::json!({"roles": ["Billing.Read.All"]})));
    let contract = tiering::contract::Contract::default_profile();
    let http = reqwest::Client::new();
    let cosmos = CosmosStore::connect(&stores, Transport::INTERACTIVE).await?;
    let archive = BlobArchive::new(&stores, Transport::INTERACTIVE)?;
    // direct hot, reader hot, direct cold, reader cold, then the bearer reader's hot and cold.
    let mut times: [Vec<Duration>; 6] = Default::default();
    for i in 0..args.reads {
        let (h, c) = (&hot[i % hot.len()], &cold[i % cold.len()]);
        let started = Instant::now();
        cosmos.read(&h.customer_id, &h.id).await?;
        times[0].push(started.elapsed());
        let (seen, took) = read(&http, &base, &contract, h).await?;
        ensure!(seen.status == 200, "hot {} answered {}", h.id, seen.status);
        times[1].push(took);
        let (seen, took) = read_as(&http, &bearer_base, &contract, h, Some(&token)).await?;
        ensure!(seen.status == 200, "hot {} with a token answered {}", h.id, seen.status);
        times[4].push(took);
        let started = Instant::now();
        let stored = archive.get(&layout::blob_name(&c.customer_id, &c.id)?).await?;
        let meta = codec::ArchiveMeta::from_metadata(&stored.info.metadata)?;
        tokio::task::spawn_blocking(move || codec::decode_verified(&stored.body, &meta)).await??;
        times[2].push(started.elapsed());
        let (seen, took) = read(&http, &base, &contract, c).await?;
        ensure!(seen.status == 200, "cold {} answered {}", c.id, seen.status);
        times[3].push(took);
        let (seen, took) = read_as(&http, &bearer_base, &contract, c, Some(&token)).await?;
        ensure!(seen.status == 200, "cold {} with a token answered {}", c.id, seen.status);
        times[5].push(took);
        if (i + 1) % 50 == 0 {
            say(format!("  {} of {} rounds", i + 1, args.reads));
        }
    }
    host.stop().await?;
    bearer_host.stop().await?;
    let ms = percentile_ms;
    let at_10 = rtt == 10;
    for (q, label) in [(50.0, "p50"), (99.0, "p99")] {
        results.ratio(
            format!("read.hot_{label}.{rtt}ms"),
            ms(&times[1], q),
            "ms",
            ("direct Cosmos point read", ms(&times[0], q)),
            (at_10 && q == 50.0).then_some(("<=", 1.2)),
        );
        results.ratio(
            format!("read.cold_300kb_{label}.{rtt}ms"),
            ms(&times[3], q),
            "ms",
            ("direct blob download + decompression", ms(&times[2], q)),
            (at_10 && q == 50.0).then_some(("<=", 1.5)),
        );
    }
    // Token validation on: the same figures, and what it adds to the reader without it.
    for (q, label) in [(50.0, "p50"), (99.0, "p99")] {
        results.ratio(
            format!("read.hot_bearer_{label}.{rtt}ms"),
            ms(&times[4], q),
            "ms",
            ("direct Cosmos point read", ms(&times[0], q)),
            (at_10 && q == 50.0).then_some(("<=", 1.2)),
        );
        results.ratio(
            format!("read.cold_300kb_bearer_{label}.{rtt}ms"),
            ms(&times[5], q),
            "ms",
            ("direct blob download + decompression", ms(&times[2], q)),
            None,
        );
        for (tier, with, without) in [("hot", 4, 1), ("cold_300kb", 5, 3)] {
            results.ratio(
                format!("read.{tier}_bearer_vs_function_key_{label}.{rtt}ms"),
                ms(&times[with], q),
                "ms",
                ("the same reader without tokens", ms(&times[without], q)),
                None,
            );
            let added = ms(&times[with], q) - ms(&times[without], q);
            results.plain(format!("read.{tier}_bearer_added_{label}.{rtt}ms"), added, "ms");
        }
    }
    if at_10 {
        results.absolute(format!("read.cold_300kb_p99_limit.{rtt}ms"), ms(&times[3], 99.0), "ms", 50.0);
    }
    Ok(())
}

/// List pages through the packaged reader for a customer with 100 archived
/// records and one with `--list-records` (20,000): the first page and a middle
/// one (page size 50), each asked `--list-rounds` times, p50 and p95, and the
/// requests each page sends to each store. With the list index a page reads in
/// proportion to the page, so the large customer's pages should cost about
/// what the small one's do (target: within 2x).
async fn list_pages(args: &Args, rtt: u64, results: &mut Results) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    // Ten invoices a day, going back from 100 days ago, plus 20 recent ones each.
    let customer = |name: &str, archived: usize| -> Vec<SampleRecord> {
        (0..archived + 20)
            .map(|i| {
                let days = if i < 20 { 1 + i as i64 } else { 100 + (i as i64 - 20) / 10 };
                testkit::sample::invoice(
                    name,
                    &format!("inv-{i:06}"),
                    today - chrono::Duration::days(days),
                    1_500,
                    i as u64,
                )
            })
            .collect()
    };
    let (small, large) = (customer("cust-small", 100), customer("cust-large", args.list_records));
    say(format!("list pages at {rtt} ms: 100 and {} archived records", args.list_records));
    // The in-memory Cosmos emulator answers each page of the archiver's query by
    // scanning every document it holds: with 20,000 at once it archives about 7
    // records a second (measured here). So the records arrive as a billing
    // system writes them, a batch at a time, each batch archived by the packaged
    // archiver before the next is written; the index is the archiver's own.
    let direct = fresh(&small).await?;
    let mut settings = app_settings(&direct);
    settings.insert("RUST_LOG".into(), "warn".into());
    // Runs end within the 230 s the host stand-in gives a call; Azurite slows as
    // it fills, so a batch may take more than one run, as a backlog takes nights.
    settings.insert("ARCHIVE_TIME_BUDGET_SECONDS".into(), "150".into());
    let host = Host::start(AppFolder::load(&args.dist.join("archiver"))?, &settings).await?;
    let cosmos = CosmosStore::connect(&direct, Transport::BATCH).await?;
    let mut archived = 0;
    let mut batches = large.chunks(2_000);
    loop {
        for _ in 0..20 {
            let s = host.fire_timer("ArchiveBillingRecords").await?.return_value;
            archived += s["archived"].as_u64().unwrap_or(0);
            if s["status"] == "complete" {
                break;
            }
            ensure!(s["status"] == "partial", "an archive run failed: {s}");
        }
        let Some(batch) = batches.next() else { break };
        seed(&cosmos, batch, |_| {}).await?;
        say(format!("  {archived} archived; writing {} more", batch.len()));
    }
    host.stop().await?;
    ensure!(archived == (100 + args.list_records) as u64, "archived {archived} of {}", 100 + args.list_records);
    let network = Network::new(&direct, Duration::from_millis(rtt)).await?;
    let stores = network.through(&direct);
    let mut settings = app_settings(&stores);
    settings.insert("RUST_LOG".into(), "warn".into());
    let host = Host::start(AppFolder::load(&args.dist.join("reader"))?, &settings).await?;
    let contract = tiering::contract::Contract::default_profile();
    let list = contract.list.as_ref().context("the default profile lists")?;
    let http = reqwest::Client::new();
    let mut figures = Vec::new();
    for (name, records) in [("cust-small", &small), ("cust-large", &large)] {
        let path = list.fill(&contract.prefix, &std::collections::HashMap::from([("customerId", name)]));
        let url = format!("{}{path}?pageSize=50", host.handler_url());
        // Page to the middle once, for its token.
        let pages = records.len().div_ceil(50);
        let mut token: Option<String> = None;
        for _ in 0..pages / 2 {
            let next = match &token {
                Some(t) => format!("{url}&continuationToken={t}"),
                None => url.clone(),
            };
            let page: serde_json::Value = http.get(&next).send().await?.error_for_status()?.json().await?;
            token = page["continuationToken"].as_str().map(str::to_owned);
        }
        let middle = format!("{url}&continuationToken={}", token.context("a middle page")?);
        for (which, target) in [("first", url.clone()), ("middle", middle)] {
            let mut times = Vec::new();
            let (cosmos_before, blob_before) = (network.cosmos.requests(), network.blob.requests());
            for _ in 0..args.list_rounds {
                let started = Instant::now();
                let page: serde_json::Value = http.get(&target).send().await?.error_for_status()?.json().await?;
                times.push(started.elapsed());
                ensure!(page["items"].as_array().is_some_and(|i| i.len() == 50), "{name} {which}: a short page");
            }
            let rounds = args.list_rounds as f64;
            let cosmos = (network.cosmos.requests() - cosmos_before) as f64 / rounds;
            let blob = (network.blob.requests() - blob_before) as f64 / rounds;
            let ms = |q: f64| percentile_ms(&times, q);
            say(format!(
                "  {name} {which} page: p50 {:.1} ms, p95 {:.1} ms; {cosmos:.1} Cosmos and {blob:.1} blob requests",
                ms(50.0),
                ms(95.0)
            ));
            figures.push((name, which, ms(50.0), ms(95.0), cosmos, blob));
        }
    }
    host.stop().await?;
    for which in ["first", "middle"] {
        let find = |name: &str| figures.iter().find(|f| f.0 == name && f.1 == which).copied();
        let (Some(small), Some(large)) = (find("cust-small"), find("cust-large")) else { continue };
        for (label, s, l) in [("p50", small.2, large.2), ("p95", small.3, large.3)] {
            results.ratio(
                format!("list.{which}_page_{label}.{}_archived.{rtt}ms", args.list_records),
                l,
                "ms",
                ("the same page of a customer with 100 archived", s),
                Some(("<=", 2.0)),
            );
        }
        results.plain(format!("list.{which}_page_cosmos_requests.100_archived.{rtt}ms"), small.4, "requests");
        results.plain(format!("list.{which}_page_blob_requests.100_archived.{rtt}ms"), small.5, "requests");
        results.plain(
            format!("list.{which}_page_cosmos_requests.{}_archived.{rtt}ms", args.list_records),
            large.4,
            "requests",
        );
        results.plain(
            format!("list.{which}_page_blob_requests.{}_archived.{rtt}ms", args.list_records),
            large.5,
            "requests",
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut results = Results::default();
    let part = |name: &str| args.parts.iter().any(|p| p == name);
    for &rtt in &args.rtt_ms {
        if part("archive") {
            archive_throughput(&args, rtt, &mut results).await?;
        }
        if part("ranges") {
            ranges(&args, rtt, &mut results).await?;
        }
        if part("reads") {
            reads(&args, rtt, &mut results).await?;
        }
        if part("restore") {
            restore_pace(&args, rtt, &mut results).await?;
        }
        if part("front") {
            front(&args, rtt, &mut results).await?;
        }
    }
    let worst = args.rtt_ms.iter().copied().max().unwrap_or(0);
    if part("memory") {
        memory(&args, worst, &mut results).await?;
    }
    if part("lists") {
        list_memory(&args, worst, &mut results).await?;
    }
    if part("front") {
        front_lists(&args, worst, &mut results).await?;
    }
    if part("index") {
        list_pages(&args, worst, &mut results).await?;
    }

    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results.0)? + "\n")?;
    println!();
    println!("{:<46} {:>10} {:<10} {:>8} {:>10} {:>6}", "measurement", "value", "unit", "ratio", "target", "pass");
    for m in &results.0 {
        let ratio = m.ratio.map(|r| format!("{r:.2}x")).unwrap_or_default();
        let pass = match m.pass {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "{:<46} {:>10.2} {:<10} {:>8} {:>10} {:>6}",
            m.name,
            m.value,
            m.unit,
            ratio,
            m.target.as_deref().unwrap_or(""),
            pass
        );
        if let Some(b) = &m.baseline {
            println!("{:<46} {:>10.2} {:<10}", format!("  baseline: {}", b.name), b.value, m.unit);
        }
    }
    println!("\nwrote {} in {:.0} s", args.out.display(), started.elapsed().as_secs_f64());
    Ok(())
}
