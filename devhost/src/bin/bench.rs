//! The benchmark (`./scripts/bench.sh` runs it). Every figure is printed next to
//! a baseline measured in the same run, because the machine is noisy:
//!
//! - archive throughput of the packaged archiver at several `ARCHIVE_CONCURRENCY`
//!   values, as a ratio to concurrency 1, with the handler's peak memory;
//! - read latency of archived (cold) records against hot ones, straight to the
//!   packaged reader's port, interleaved so both see the same conditions.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Parser;
use devhost::app::AppFolder;
use devhost::drive::{app_settings, dataset, mb, ms, read, seed};
use devhost::host::Host;
use devhost::stats::percentile;
use tiering::cosmos::CosmosStore;
use tiering::record::AgeField;
use tiering::settings::StoreSettings;
use tiering::store::Transport;
use tiering::testing::unique;
use tiering::testing::{Indexing, ensure_container};

#[derive(Debug, Parser)]
#[command(about = "Archive throughput and read latency on the local emulators, as ratios to in-run baselines")]
struct Args {
    /// Aged records archived per concurrency level.
    #[arg(long, default_value_t = 600)]
    records: usize,
    #[arg(long, default_value_t = 300)]
    max_kb: usize,
    /// Concurrency levels to compare (the first is the baseline).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    concurrency: Vec<usize>,
    /// Reads per tier for the latency comparison.
    #[arg(long, default_value_t = 300)]
    reads: usize,
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
}

/// Fresh database and archive container names for one measurement.
fn fresh_stores() -> anyhow::Result<StoreSettings> {
    let mut stores = StoreSettings::from_env().context("run through ./scripts/bench.sh (needs the emulators)")?;
    stores.cosmos_database = unique("bench");
    stores.archive_container = unique("bench-archive");
    stores.age_field = AgeField::Iso("invoiceDate".into());
    Ok(stores)
}

async fn open(stores: &StoreSettings) -> anyhow::Result<CosmosStore> {
    let client = CosmosStore::client(stores, Transport::BATCH).await?;
    ensure_container(&client, &stores.cosmos_database, &stores.cosmos_container, &stores.age_field, Indexing::Default)
        .await?;
    CosmosStore::connect(stores, Transport::BATCH).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let aged = dataset(args.records, args.max_kb, 100..456, 7);
    let json_bytes: u64 = aged.iter().map(|r| r.json.len() as u64).sum();
    println!(
        "archive throughput: {} aged records ({:.1} MB of JSON, up to {} KB), packaged release archiver under the host stand-in",
        aged.len(),
        mb(json_bytes),
        args.max_kb
    );
    println!(
        "{:>12} {:>10} {:>10} {:>8} {:>12} {:>10}",
        "concurrency", "records/s", "MB/s", "ratio", "peak RSS MB", "RSS ratio"
    );
    let mut baseline: Option<(f64, f64)> = None;
    let mut last_stores = None;
    for &c in &args.concurrency {
        let stores = fresh_stores()?;
        let cosmos = open(&stores).await?;
        seed(&cosmos, &aged, |_| {}).await?;
        let mut settings = app_settings(&stores);
        settings.insert("ARCHIVE_CONCURRENCY".into(), c.to_string());
        settings.insert("RUST_LOG".into(), "warn".into());
        let host = Host::start(AppFolder::load(&args.dist.join("archiver"))?, &settings).await?;
        let result = host.fire_timer("ArchiveBillingRecords").await?;
        let rss = host.peak_rss_bytes().unwrap_or(0) as f64 / 1e6;
        host.stop().await?;
        let s = &result.return_value;
        ensure!(
            s["archived"].as_u64() == Some(aged.len() as u64),
            "run at concurrency {c} did not archive everything: {s}"
        );
        let secs = s["durationMs"].as_f64().unwrap_or(1.0) / 1000.0;
        let rate = aged.len() as f64 / secs;
        let (base_rate, base_rss) = *baseline.get_or_insert((rate, rss));
        println!(
            "{c:>12} {rate:>10.0} {:>10.1} {:>7.2}x {rss:>12.0} {:>9.2}x",
            mb(s["bytesRead"].as_u64().unwrap_or(0)) / secs,
            rate / base_rate,
            rss / base_rss
        );
        last_stores = Some((stores, cosmos));
    }

    // Read latency on the last data set: everything there is archived now; add hot records.
    let (stores, cosmos) = last_stores.context("no concurrency level given")?;
    let hot = dataset(args.reads, args.max_kb, 0..30, 8);
    seed(&cosmos, &hot, |_| {}).await?;
    let host = Host::start(AppFolder::load(&args.dist.join("reader"))?, &app_settings(&stores)).await?;
    let base = host.handler_url();
    let http = reqwest::Client::new();
    let (mut hot_times, mut cold_times) = (Vec::new(), Vec::new());
    for i in 0..args.reads {
        for (list, times) in [(&hot, &mut hot_times), (&aged, &mut cold_times)] {
            let r = &list[i % list.len()];
            let (seen, took) = read(&http, &base, r).await?;
            ensure!(seen.status == 200, "{} answered {}", r.id, seen.status);
            times.push(took);
        }
    }
    host.stop().await?;
    let p = |t: &[Duration], q| percentile(t, q).unwrap_or_default();
    let ratio = |q| p(&cold_times, q).as_secs_f64() / p(&hot_times, q).as_secs_f64().max(1e-9);
    println!();
    println!("read latency: {} interleaved reads per tier, straight to the packaged release reader", args.reads);
    println!("{:>6} {:>10} {:>10} {:>8}", "", "hot", "cold", "ratio");
    for q in [50.0, 99.0] {
        println!(
            "{:>6} {:>10} {:>10} {:>7.2}x",
            format!("p{q}"),
            ms(Some(p(&hot_times, q))),
            ms(Some(p(&cold_times, q))),
            ratio(q)
        );
    }
    Ok(())
}
