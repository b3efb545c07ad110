//! The demo's driver (`./scripts/demo.sh` runs it): seeds realistic billing records
//! into the local Cosmos emulator, runs the archiver app through the host stand-in,
//! reads hot and archived records through the reader app, checks every answer, and
//! prints a report. Exits non-zero if any check fails. The app folders are the
//! debug builds demo.sh assembles, or the release packages (`--packaged`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Parser;
use devhost::app::AppFolder;
use devhost::drive::{Network, app_settings, dataset, mb, ms, read_with, seed};
use devhost::host::Host;
use devhost::stats::{Prices, monthly_cost, percentile};
use testkit::cosmos::{Indexing, ensure_container};
use testkit::sample::{SampleRecord, same_data};
use tiering::archive::{Archive, BlobArchive};
use tiering::contract::Contract;
use tiering::cosmos::CosmosStore;
use tiering::record::AgeField;
use tiering::settings::StoreSettings;
use tiering::store::Transport;

/// How often the demo looks at the archive's size while the run goes.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
#[derive(Debug, Parser)]
#[command(about = "Seed, archive and read back billing records on the local emulators")]
struct Args {
    /// Records to seed.
    #[arg(long, default_value_t = 3000)]
    records: usize,
    /// Largest record, in KB.
    #[arg(long, default_value_t = 300)]
    max_kb: usize,
    /// Records read per tier for the latency figures and checks.
    #[arg(long, default_value_t = 200)]
    sample: usize,
    /// The app folders: the debug builds scripts/demo.sh assembles, or dist
    /// from scripts/package.sh (with --release-apps).
    #[arg(long, default_value = "target/demo-apps")]
    dist: PathBuf,
    /// The app folders hold the release packages (for the report).
    #[arg(long)]
    release_apps: bool,
    /// Records kept in Cosmos for this many days.
    #[arg(long, default_value_t = 90)]
    after_days: u32,
    /// Cosmos DB storage price, USD per GB-month.
    #[arg(long, default_value_t = Prices::default().cosmos_per_gb)]
    cosmos_price: f64,
    /// Blob price in the archive's tier (Cool LRS), USD per GB-month.
    #[arg(long, default_value_t = Prices::default().blob_per_gb)]
    blob_price: f64,
    /// Seed of the generated data set.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The read contract profile the apps were assembled with (scripts/demo.sh
    /// --contract); the default profile when absent.
    #[arg(long)]
    contract: Option<PathBuf>,
    /// A round trip to add between the apps and both stores, in milliseconds
    /// (proxies, as the benchmark's): the plan and the run meet it alike.
    #[arg(long, default_value_t = 0)]
    rtt_ms: u64,
}

/// Archived copies now (the archive's layout prefix, a listing page at a time).
async fn count_copies(archive: &BlobArchive) -> anyhow::Result<u64> {
    let (mut n, mut marker) = (0u64, None::<String>);
    loop {
        let (page, next) = archive.list_page(tiering::layout::LAYOUT_PREFIX, marker.as_deref(), 5000).await?;
        n += page.len() as u64;
        match next {
            Some(next) => marker = Some(next),
            None => return Ok(n),
        }
    }
}

fn contract_name(args: &Args) -> String {
    args.contract.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "contracts/default.toml".into())
}

/// A CSV field, quoted.
fn csv(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// The body without Cosmos' system properties (a profile may serve them), to
/// compare with what was seeded.
fn without_system_properties(body: &[u8]) -> Vec<u8> {
    tiering::record::RawDocument::parse(body.to_vec()).map(|d| d.without_system_properties()).unwrap_or_default()
}

/// `scripts/compare.py` with the contract, `side` (the current API's side) and the reader; exit code and output.
/// `extra`: more arguments (front mode's API key, window and write).
async fn compare(
    args: &Args,
    side: &[&str],
    reader: &str,
    ids: &std::path::Path,
    extra: &[String],
) -> anyhow::Result<(i32, String)> {
    let mut command = tokio::process::Command::new("python3");
    command.arg(devhost::repo_root().join("scripts/compare.py")).args(side).args(["--reader", reader]);
    command.arg("--ids").arg(ids).args(["--pages", "2", "--page-size", "20"]).args(extra);
    if let Some(path) = &args.contract {
        command.arg("--contract").arg(path);
    }
    let out = command.output().await.context("running scripts/compare.py")?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.code().unwrap_or(-1), text.trim().to_owned()))
}

fn say(line: impl AsRef<str>) {
    println!("[demo] {}", line.as_ref());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut failures: Vec<String> = Vec::new();
    let mut stores =
        StoreSettings::from_env().context("the demo needs the emulators' settings (run ./scripts/demo.sh)")?;
    stores.age_field = AgeField::Iso("invoiceDate".into());
    let contract = match &args.contract {
        Some(path) => Contract::parse(&std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?)?,
        None => Contract::default_profile(),
    };
    stores.partition_key = contract.partition_key.clone();
    let property = contract.partition_key.property().to_owned();

    // 1. Seed.
    let client = CosmosStore::client(&stores, Transport::BATCH).await?;
    ensure_container(&client, &stores, Indexing::Default).await?;
    // The archive container, as the deployment template creates it before any app runs.
    tiering::archive::BlobArchive::new(&stores, Transport::BATCH)?.ensure_container().await?;
    let cosmos = CosmosStore::connect(&stores, Transport::BATCH).await?;
    let all: Vec<SampleRecord> = dataset(args.records, args.max_kb, 0..456, args.seed) // the last 15 months
        .into_iter()
        .map(|r| r.partitioned_by(&property))
        .collect();
    let seeded_bytes: u64 = all.iter().map(|r| r.json.len() as u64).sum();
    say(format!(
        "seeding {} records ({:.1} MB, largest {} KB) into Cosmos ...",
        all.len(),
        mb(seeded_bytes),
        all.iter().map(|r| r.json.len()).max().unwrap_or(0) / 1000
    ));
    let started = Instant::now();
    let tenth = (all.len() / 10).max(1);
    seed(&cosmos, &all, |done| {
        if done.is_multiple_of(tenth) {
            say(format!("  seeded {done}/{}", all.len()));
        }
    })
    .await?;
    say(format!("seeded in {:.1} s", started.elapsed().as_secs_f64()));

    let cutoff =
        (Utc::now() - chrono::Duration::days(i64::from(args.after_days))).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (old, new): (Vec<&SampleRecord>, Vec<&SampleRecord>) =
        all.iter().partition(|r| r.invoice_date.to_string() < cutoff);
    let pick = |list: &[&SampleRecord]| -> Vec<SampleRecord> {
        let step = (list.len() / args.sample.max(1)).max(1);
        list.iter().step_by(step).take(args.sample).map(|r| (*r).clone()).collect()
    };
    let (old_sample, new_sample) = (pick(&old), pick(&new));

    // 2. The team's current API, as it serves this profile today, straight from
    // Cosmos (in front mode one that maps documents into its own bodies:
    // docs/front-mode.md), and both apps under the host stand-in.
    let front_mode = contract.front.is_some();
    let current = if front_mode {
        devhost::mapped_api::start(&stores).await?
    } else {
        devhost::current_api::start(contract.clone(), &stores).await?
    };
    let network = match args.rtt_ms {
        0 => None,
        rtt => {
            say(format!("the apps reach both stores through proxies adding {rtt} ms a round trip"));
            Some(Network::new(&stores, Duration::from_millis(rtt)).await?)
        }
    };
    let mut settings = app_settings(&network.as_ref().map_or_else(|| stores.clone(), |n| n.through(&stores)));
    settings.insert("ARCHIVE_AFTER_DAYS".into(), args.after_days.to_string());
    if front_mode {
        settings.insert("READER_UPSTREAM_URL".into(), format!("http://{current}"));
    }
    let reader =
        Host::start(AppFolder::load(&args.dist.join("reader"))?, &settings).await.context("starting the reader app")?;
    let front = reader.serve_http(0).await?;
    let base = format!("http://{front}");
    let http = reqwest::Client::new();
    say(format!("reader app serving on {base}/{} (host stand-in), contract {}", contract.prefix, contract_name(&args)));
    if front_mode {
        say(format!("front mode: the reader forwards to the current API at http://{current}"));
    }
    let key: Vec<(&str, &str)> =
        if front_mode { vec![("x-api-key", devhost::mapped_api::API_KEY)] } else { Vec::new() };
    let direct = format!("http://{current}");
    let compare_extra: Vec<String> = if front_mode {
        let today = Utc::now().date_naive();
        let header = format!("X-Api-Key: {}", devhost::mapped_api::API_KEY);
        vec![
            "--current-header".into(),
            header.clone(),
            "--reader-header".into(),
            header,
            "--window".into(),
            format!("issuedFrom={}&issuedTo={}", today - chrono::Duration::days(400), today),
            "--write".into(),
            "PATCH".into(),
            r#"{"status":"issued"}"#.into(),
        ]
    } else {
        Vec::new()
    };
    let api_base = |addr: String| if contract.prefix.is_empty() { addr } else { format!("{addr}/{}", contract.prefix) };
    let (current_url, reader_url) = (api_base(format!("http://{current}")), api_base(base.clone()));
    let ids = std::env::temp_dir().join(format!("demo-ids-{}.csv", std::process::id()));
    let recording = std::env::temp_dir().join(format!("demo-answers-{}.json", std::process::id()));

    // 3. Read the samples while everything is hot, and check them against the seed.
    let mut before = BTreeMap::new();
    let mut hot_before = Vec::new();
    for r in old_sample.iter().chain(&new_sample) {
        let (seen, took) = read_with(&http, &base, &contract, r, &key).await?;
        let right = if front_mode {
            // The current API's own body: the reader forwards it unchanged.
            seen.status == 200 && read_with(&http, &direct, &contract, r, &key).await?.0 == seen
        } else {
            seen.status == 200 && same_data(&without_system_properties(&seen.body), r.json.as_bytes())
        };
        if !right {
            failures.push(format!("hot read of {} returned {} or other data than seeded", r.id, seen.status));
        }
        hot_before.push(took);
        before.insert(r.id.clone(), seen);
    }
    // The compare gate an adopter runs before switching: the reader against the current API.
    let mut lines: Vec<String> = old_sample
        .iter()
        .chain(&new_sample)
        .map(|r| format!("{},{}", csv(r.partition_key(&property)), csv(&r.id)))
        .collect();
    lines.push(format!("{},{}", csv(all[0].partition_key(&property)), csv("no-such-invoice")));
    std::fs::write(&ids, lines.join("\n") + "\n")?;
    let live = compare(
        &args,
        &["--current", &current_url, "--record", &recording.to_string_lossy()],
        &reader_url,
        &ids,
        &compare_extra,
    )
    .await?;
    if live.0 != 0 {
        failures
            .push(format!("compare.py found the reader differing from the current API before archiving: {}", live.1));
    }
    say(format!("compare.py before archiving: {}", live.1.lines().last().unwrap_or_default()));

    // 4. Plan first, as a team would before turning archiving on: the archiver
    // app's `plan` command, with the app's settings.
    say("planning: archiver plan (changes nothing in Cosmos; its trial copies come and go under state/plan-trial/)");
    let archiver_app = AppFolder::load(&args.dist.join("archiver"))?;
    let mut plan_env = archiver_app.settings.clone();
    plan_env.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    plan_env.insert("RUST_LOG".into(), "warn".into());
    let plan_file = std::env::temp_dir().join(format!("demo-plan-{}.json", std::process::id()));
    let planned = tokio::process::Command::new(&archiver_app.executable)
        .arg("plan")
        // A quarter of the run or so, so that the plan extrapolates from its
        // trial as it must on a real backfill (a trial that met every record
        // would be the run itself, minus the deletes).
        .args(["--trial-seconds", "4"])
        .arg("--json-out")
        .arg(&plan_file)
        .envs(&plan_env)
        .output()
        .await
        .context("running archiver plan")?;
    anyhow::ensure!(planned.status.success(), "archiver plan failed: {}", String::from_utf8_lossy(&planned.stderr));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan_file)?).context("archiver plan --json-out")?;
    let _ = std::fs::remove_file(&plan_file);
    for line in String::from_utf8_lossy(&planned.stdout).lines() {
        say(format!("  {line}"));
    }

    // 5. Archive through the timer contract.
    say(format!(
        "archiving records dated before {cutoff} ({} of {}) through the archiver app ...",
        old.len(),
        all.len()
    ));
    let archiver = Host::start(AppFolder::load(&args.dist.join("archiver"))?, &settings)
        .await
        .context("starting the archiver app")?;
    // The archive's size while the run goes, for the HTML report's chart: every
    // few seconds. Each look lists the whole archive, which costs the emulator
    // more as the archive grows, a load the plan's trial did not have: once a
    // second, one run's pace fell from 83 to 58 records a second as it went
    // (36.9 s in all; 25.9 s with a look every 5 s).
    let archive = BlobArchive::new(&stores, Transport::INTERACTIVE)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run_started = Instant::now();
    let sampler = tokio::spawn(async move {
        let mut points = vec![(0.0, 0u64)];
        let mut stopped = stopped;
        loop {
            if let Ok(n) = count_copies(&archive).await {
                points.push((run_started.elapsed().as_secs_f64(), n));
            }
            tokio::select! {
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                _ = stopped.changed() => {
                    if let Ok(n) = count_copies(&archive).await {
                        points.push((run_started.elapsed().as_secs_f64(), n));
                    }
                    return points;
                }
            }
        }
    });
    let result = archiver.fire_timer("ArchiveBillingRecords").await?;
    let _ = stop.send(true);
    let archived_over_time = sampler.await.unwrap_or_default();
    let peak_rss = archiver.peak_rss_bytes();
    archiver.stop().await?;
    let s = &result.return_value;
    let num = |k: &str| s[k].as_f64().unwrap_or(0.0);
    if result.status != 200 || s["status"] != "complete" {
        failures.push(format!("the archive run answered {}: {:?}", result.status, result.logs));
    }
    if num("archived") as usize != old.len() {
        failures.push(format!("archived {} records, expected {}", num("archived"), old.len()));
    }
    let planned_records = plan["records"].as_f64().unwrap_or(0.0);
    if planned_records != num("archived") {
        failures.push(format!("the plan counted {planned_records} records, the run archived {}", num("archived")));
    }
    let off = |planned: f64, actual: f64| (planned - actual).abs() / actual.max(1e-9) * 100.0;
    let plan_bytes_off = off(plan["bytes"].as_f64().unwrap_or(0.0), num("bytesRead"));
    let plan_ru_off = off(plan["requestUnits"]["total"].as_f64().unwrap_or(0.0), num("requestUnits"));
    // The plan's seconds of work against the run's own duration (BENCHMARKS.md,
    // "Plan against run": the benchmark holds it to 25%).
    let (plan_secs, run_secs) = (plan["pace"]["seconds"].as_f64().unwrap_or(f64::NAN), num("durationMs") / 1000.0);
    let plan_time_off = off(plan_secs, run_secs);

    // 6. Read the same samples again: archived ones come from Blob now.
    let mut cold = Vec::new();
    let mut hot_after = Vec::new();
    let mut moved_back = 0;
    for (r, is_old) in old_sample.iter().map(|r| (r, true)).chain(new_sample.iter().map(|r| (r, false))) {
        let (seen, took) = read_with(&http, &base, &contract, r, &key).await?;
        if Some(&seen) != before.get(&r.id) {
            failures.push(format!("{} reads differently after archiving", r.id));
        }
        if is_old {
            cold.push(took);
            let hot = cosmos.read(r.partition_key(&property), &r.id).await.is_ok();
            // Front mode moves an archived record back on its read; serve mode reads the archive.
            if hot != front_mode {
                failures.push(format!("{} is {}in Cosmos after its read", r.id, if hot { "" } else { "not " }));
            }
            moved_back += usize::from(hot);
        } else {
            hot_after.push(took);
        }
    }
    // A list page of one customer must hold all of its records, from both tiers.
    if let (Some(list), Some(param)) = (&contract.list, &contract.partition_key_param) {
        let customer = all[0].partition_key(&property).to_owned();
        let expected = all.iter().filter(|r| r.partition_key(&property) == customer).count();
        let path = list.fill(&contract.prefix, &std::collections::HashMap::from([(param.as_str(), customer.as_str())]));
        let (size, items) = if front_mode { ("limit", "data") } else { ("pageSize", "items") };
        let mut request = http.get(format!("{base}{path}?{size}=100"));
        for (name, value) in &key {
            request = request.header(*name, *value);
        }
        let listed = request.send().await?.json::<serde_json::Value>().await?;
        let got = listed[items].as_array().map(Vec::len).unwrap_or(0);
        if got != expected.min(100) {
            failures.push(format!("list of {customer} held {got} records, expected {expected}"));
        }
    }
    // And the gate once more: the reader still answers as the current API did before.
    let replayed =
        compare(&args, &["--replay", &recording.to_string_lossy()], &reader_url, &ids, &compare_extra).await?;
    if replayed.0 != 0 {
        failures.push(format!("compare.py found the reader differing from the recorded answers: {}", replayed.1));
    }
    say(format!(
        "compare.py after archiving (against the recorded answers): {}",
        replayed.1.lines().last().unwrap_or_default()
    ));
    reader.stop().await?;

    // 7. Report.
    let secs = num("durationMs") / 1000.0;
    let (bytes_read, bytes_stored) = (num("bytesRead") as u64, num("bytesStored") as u64);
    let kept_bytes: u64 = new.iter().map(|r| r.json.len() as u64).sum();
    let ratio = num("compressionRatio");
    let hot_fraction = new.len() as f64 / all.len() as f64;
    let prices = Prices { cosmos_per_gb: args.cosmos_price, blob_per_gb: args.blob_price };
    let gb = seeded_bytes as f64 / 1e9;
    let (demo_before, demo_after) = monthly_cost(gb, hot_fraction, ratio, prices);
    let big_gb = 2_000_000.0 * 300_000.0 / 1e9;
    let (big_before, big_after) = monthly_cost(big_gb, hot_fraction, ratio, prices);
    let hot: Vec<Duration> = hot_before.iter().chain(&hot_after).copied().collect();
    let report = devhost::report::DemoReport {
        title: "Billing archive demo".into(),
        facts: vec![
            (
                "records".into(),
                format!(
                    "seeded {}, archived {}, kept hot {}, failed {}",
                    all.len(),
                    num("archived"),
                    new.len(),
                    num("failed")
                ),
            ),
            (
                "compression".into(),
                format!("{ratio:.2}x ({:.1} MB of JSON to {:.1} MB zstd)", mb(bytes_read), mb(bytes_stored)),
            ),
            (
                "archive speed".into(),
                format!(
                    "{:.0} records/s over {secs:.1} s, {:.0} request units",
                    num("archived") / secs.max(1e-3),
                    num("requestUnits")
                ),
            ),
            (
                "hot reads".into(),
                format!("p50 {} p99 {} ({} reads)", ms(percentile(&hot, 50.0)), ms(percentile(&hot, 99.0)), hot.len()),
            ),
            (
                "archived reads".into(),
                format!(
                    "p50 {} p99 {} ({} reads)",
                    ms(percentile(&cold, 50.0)),
                    ms(percentile(&cold, 99.0)),
                    cold.len()
                ),
            ),
            (
                "checks".into(),
                format!(
                    "{} sampled records byte for byte before and after; compare gate {}",
                    before.len(),
                    if live.0 == 0 && replayed.0 == 0 { "no difference" } else { "DIFFERENCES" }
                ),
            ),
            (
                "storage cost".into(),
                format!("2,000,000 x 300 KB: ${big_before:.2}/month before, ${big_after:.2}/month after"),
            ),
            ("apps".into(), if args.release_apps { "the release packages".into() } else { "debug builds".to_owned() }),
            (
                "reader mode".into(),
                if front_mode {
                    format!(
                        "front mode before an API with its own bodies: {moved_back} archived records moved back into Cosmos on their first read (the archived reads above)"
                    )
                } else {
                    "serve mode: archived records served from the archive".into()
                },
            ),
        ],
        cosmos_before: seeded_bytes,
        cosmos_after: kept_bytes,
        archive_after: bytes_stored,
        archived_over_time,
        hot: hot.clone(),
        cold: cold.clone(),
        passed: failures.is_empty(),
    };
    let page = PathBuf::from("target/demo/report.html");
    if let Some(dir) = page.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&page, devhost::report::html(&report)).context("writing the HTML report")?;
    println!();
    println!("=== billing archive demo report ===");
    println!(
        "records          seeded {}, scanned {}, archived {}, kept hot {}, failed {}",
        all.len(),
        num("scanned"),
        num("archived"),
        new.len(),
        num("failed")
    );
    println!(
        "bytes            before {:.1} MB in Cosmos; after {:.1} MB in Cosmos + {:.1} MB in Blob",
        mb(seeded_bytes),
        mb(kept_bytes),
        mb(bytes_stored)
    );
    println!("compression      {ratio:.2}x ({:.1} MB of JSON -> {:.1} MB zstd)", mb(bytes_read), mb(bytes_stored));
    println!(
        "plan vs run      records {} planned, {} archived; bytes {plan_bytes_off:.1}% off, request units {plan_ru_off:.1}% off (plan spent {:.0} RU)",
        planned_records,
        num("archived"),
        plan["planRequestUnits"].as_f64().unwrap_or(0.0)
    );
    println!(
        "plan vs run time {plan_secs:.1} s of work planned (bound by {}, a {:.1} s trial), the run took {run_secs:.1} s: {plan_time_off:.0}% off",
        plan["pace"]["boundBy"].as_str().unwrap_or("?"),
        plan["pace"]["trialSeconds"].as_f64().unwrap_or(0.0)
    );
    println!(
        "archive speed    {:.0} records/s, {:.1} MB/s of JSON ({:.1} s, {:.0} RU, settled at {} in flight)",
        num("archived") / secs.max(1e-3),
        mb(bytes_read) / secs.max(1e-3),
        secs,
        num("requestUnits"),
        num("concurrency")
    );
    println!(
        "archiver memory  peak RSS {}",
        peak_rss.map(|b| format!("{:.0} MB", mb(b))).unwrap_or_else(|| "-".into())
    );
    if args.release_apps {
        println!("apps             {}: the release packages", args.dist.display());
    } else {
        println!(
            "apps             {}: debug builds (release speed and memory: ./scripts/demo.sh --packaged)",
            args.dist.display()
        );
    }
    println!(
        "read latency     hot  p50 {} p99 {} ({} reads)",
        ms(percentile(&hot, 50.0)),
        ms(percentile(&hot, 99.0)),
        hot.len()
    );
    println!(
        "                 cold p50 {} p99 {} ({} reads; through the host stand-in)",
        ms(percentile(&cold, 50.0)),
        ms(percentile(&cold, 99.0)),
        cold.len()
    );
    println!(
        "checks           {} sampled records compared before/after archiving, byte for byte with headers",
        before.len()
    );
    if front_mode {
        println!(
            "front mode       {moved_back} archived records moved back into Cosmos on their first read (cold latency above)"
        );
    }
    println!(
        "compare gate     scripts/compare.py, contract {}: {} before archiving, {} after (against the recorded answers)",
        contract_name(&args),
        if live.0 == 0 { "no difference" } else { "DIFFERENCES" },
        if replayed.0 == 0 { "no difference" } else { "DIFFERENCES" }
    );
    println!("storage cost     this data set: ${demo_before:.4}/month before, ${demo_after:.4}/month after");
    println!(
        "                 2,000,000 x 300 KB ({big_gb:.0} GB), {:.0}% hot: ${big_before:.2}/month before, ${big_after:.2}/month after ({:.0}% less)",
        hot_fraction * 100.0,
        (1.0 - big_after / big_before) * 100.0
    );
    println!(
        "                 prices: Cosmos ${}/GB-month, Blob ${}/GB-month (override with --cosmos-price / --blob-price)",
        prices.cosmos_per_gb, prices.blob_per_gb
    );
    println!("report page      {} (charts: tier sizes, records archived over the run, latency)", page.display());
    if failures.is_empty() {
        println!("result           PASS");
        Ok(())
    } else {
        for f in failures.iter().take(20) {
            println!("FAILED: {f}");
        }
        bail!("{} check(s) failed", failures.len());
    }
}
