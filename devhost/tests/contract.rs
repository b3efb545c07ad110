//! The read contract checked by a tool consumers already trust: Schemathesis
//! (pinned; `./scripts/test.sh` installs it and sets `SCHEMATHESIS`) runs every
//! one of its checks against the reader app, assembled as `scripts/package.sh`
//! assembles it and run under the host stand-in, on a container with the default
//! indexing policy whose records are half in Cosmos and half archived by the
//! archiver app. See docs/read-api.md, "How it is checked".

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use devhost::app::{AppFolder, assemble};
use devhost::host::Host;
use testkit::cosmos::{fresh_cosmos, seed};
use testkit::emulator::{emulator_settings, unique};
use testkit::sample::invoice;
use tiering::record::AgeField;

/// Generated cases per operation and phase: enough to find what the spec and the
/// server disagree on, few enough to keep the test command short.
const MAX_EXAMPLES: &str = "40";
/// A fixed seed: the same cases on every run.
const SEED: &str = "20261122";

/// `target/debug`, where `cargo test --workspace` has built both handlers.
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join(name)
}

fn assembled(app: &str) -> AppFolder {
    let out = std::env::temp_dir().join(unique(&format!("contract-{app}")));
    assemble(&devhost::repo_root(), app, &built(app), &out, None).unwrap();
    AppFolder::load(&out).unwrap()
}

#[tokio::test]
async fn schemathesis_finds_the_reader_true_to_its_spec() {
    let schemathesis = std::env::var("SCHEMATHESIS")
        .expect("SCHEMATHESIS names the pinned schemathesis executable; run through ./scripts/test.sh");
    let stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    let cosmos = fresh_cosmos(&stores).await;
    // Half the records are older than the cutoff; ids a generator would not guess.
    let day = |d: i64| (Utc::now() - chrono::Duration::days(d)).date_naive();
    let customers = ["cust-1", "Cust 2 ü", "c3"];
    let records: Vec<_> = (0..24)
        .map(|i: i64| {
            let id = if i % 5 == 0 { format!("inv {i} ü+%") } else { format!("inv-{i:03}") };
            invoice(customers[i as usize % 3], &id, day(10 + i * 9), 2_000 + 500 * i as usize, i as u64)
        })
        .collect();
    seed(&cosmos, &records).await;
    let settings = app_settings(&stores);
    let archiver = Host::start(assembled("archiver"), &settings).await.unwrap();
    let run = archiver.fire_timer("ArchiveBillingRecords").await.unwrap();
    archiver.stop().await.unwrap();
    let archived = run.return_value["archived"].as_u64().unwrap();
    assert!((8..=16).contains(&archived), "records in both tiers: {}", run.return_value);

    let reader = Host::start(assembled("reader"), &settings).await.unwrap();
    let front = reader.serve_http(0).await.unwrap();
    // Generated ids reach seeded records half of the time, so links and pages
    // carry real data rather than 404s and empty lists.
    let config = std::env::temp_dir().join(unique("schemathesis")).with_extension("toml");
    let quoted = |values: Vec<&str>| values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
    std::fs::write(
        &config,
        format!(
            "[dictionaries.customers]\nvalues = [{}]\n\n[dictionaries.records]\nvalues = [{}]\n\n[parameters]\n\
             \"path.customerId\" = {{ dictionary = \"customers\", probability = 0.5 }}\n\
             \"path.recordId\" = {{ dictionary = \"records\", probability = 0.5 }}\n",
            quoted(customers.to_vec()),
            quoted(records.iter().map(|r| r.id.as_str()).collect()),
        ),
    )
    .unwrap();
    let spec = devhost::repo_root().join("reader/openapi.yaml");
    let hooks = devhost::repo_root().join("scripts/schemathesis/hooks.py");
    let base = format!("http://{front}/api");
    let started = Instant::now();
    let out = tokio::process::Command::new(&schemathesis)
        .args(["--config-file", config.to_str().unwrap()])
        .args(["run", spec.to_str().unwrap(), "--url", &base])
        .args(["--checks", "all", "--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args(["--workers", "1", "--request-timeout", "20", "--no-color", "--suppress-health-check", "too_slow"])
        // No example database: the same seed gives the same cases on every machine.
        .args(["--generation-database", "none"])
        .current_dir(std::env::temp_dir())
        .env("NO_COLOR", "1")
        // The two rules the spec states in prose, taught to the generator (see hooks.py).
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("CONTRACT_BASE_URL", &base)
        .output()
        .await
        .unwrap();
    reader.stop().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    println!("schemathesis took {:.1} s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "schemathesis found disagreements between reader/openapi.yaml and the reader");
}

/// App settings for this test's stores: the emulators' endpoints, fresh names.
fn app_settings(stores: &tiering::settings::StoreSettings) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> =
        ["COSMOS_ENDPOINT", "COSMOS_KEY", "ARCHIVE_BLOB_ENDPOINT", "ARCHIVE_BLOB_SAS"]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
            .collect();
    env.insert("COSMOS_DATABASE".into(), stores.cosmos_database.clone());
    env.insert("COSMOS_CONTAINER".into(), stores.cosmos_container.clone());
    env.insert("ARCHIVE_CONTAINER".into(), stores.archive_container.clone());
    env.insert("ARCHIVE_AGE_FIELD".into(), stores.age_field.name().to_owned());
    env.insert("RUST_LOG".into(), "warn".into());
    env
}
