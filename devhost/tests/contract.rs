//! The read contract checked by a tool consumers already trust: Schemathesis
//! (pinned; `./scripts/test.sh` installs it and sets `SCHEMATHESIS`) runs every
//! one of its checks against the reader app, assembled as `scripts/package.sh`
//! assembles it and run under the host stand-in, on a container with the default
//! indexing policy whose records are half in Cosmos and half archived by the
//! archiver app. See docs/read-api.md, "How it is checked". A second run checks
//! the reader under another profile (contracts/examples/tenant-invoices.toml)
//! against the OpenAPI document derived for it (`devhost openapi`).

#![allow(clippy::unwrap_used)]

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
const MAX_EXAMPLES: &str = "60";
/// Fixed seeds, each its own run: the same cases on every run, and several
/// different ones (seed 7 once found a disagreement the first seed never met).
const SEEDS: [&str; 3] = ["20261122", "7", "3"];

/// `target/debug`, where `cargo test --workspace` has built both handlers.
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join(name)
}

fn assembled(app: &str, contract: Option<&Path>) -> AppFolder {
    let out = std::env::temp_dir().join(unique(&format!("contract-{app}")));
    assemble(&devhost::repo_root(), app, &built(app), &out, contract).unwrap();
    AppFolder::load(&out).unwrap()
}

/// Seeds 24 invoices over three partitions (half older than the cutoff, ids a
/// generator would not guess), archives the old half through the archiver app,
/// serves the reader under `profile`, and runs Schemathesis with all its checks
/// against `spec`. The partition-key and id placeholders draw half of their
/// values from the seeded ones, so links and pages carry real data.
async fn schemathesis(profile: Option<&Path>, spec: &Path, base: &str) {
    let schemathesis = std::env::var("SCHEMATHESIS")
        .expect("SCHEMATHESIS names the pinned schemathesis executable; run through ./scripts/test.sh");
    let contract = match profile {
        Some(path) => tiering::contract::Contract::parse(&std::fs::read_to_string(path).unwrap()).unwrap(),
        None => tiering::contract::Contract::default_profile(),
    };
    let property = contract.partition_key.property().to_owned();
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.partition_key = contract.partition_key.clone();
    let cosmos = fresh_cosmos(&stores).await;
    let day = |d: i64| (Utc::now() - chrono::Duration::days(d)).date_naive();
    let customers = ["cust-1", "Cust 2 ü", "c3"];
    let records: Vec<_> = (0..24)
        .map(|i: i64| {
            let id = if i % 5 == 0 { format!("inv {i} ü+%") } else { format!("inv-{i:03}") };
            invoice(customers[i as usize % 3], &id, day(10 + i * 9), 2_000 + 500 * i as usize, i as u64)
                .partitioned_by(&property)
        })
        .collect();
    seed(&cosmos, &records).await;
    let settings = devhost::drive::app_settings(&stores);
    let archiver = Host::start(assembled("archiver", profile), &settings).await.unwrap();
    let run = archiver.fire_timer("ArchiveBillingRecords").await.unwrap();
    archiver.stop().await.unwrap();
    let archived = run.return_value["archived"].as_u64().unwrap();
    assert!((8..=16).contains(&archived), "records in both tiers: {}", run.return_value);

    let reader = Host::start(assembled("reader", profile), &settings).await.unwrap();
    let front = reader.serve_http(0).await.unwrap();
    let config = std::env::temp_dir().join(unique("schemathesis")).with_extension("toml");
    let quoted = |values: Vec<&str>| values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
    let mut parameters =
        format!("\"path.{}\" = {{ dictionary = \"records\", probability = 0.5 }}\n", contract.id_param);
    if let Some(pk) = &contract.partition_key_param {
        parameters += &format!("\"path.{pk}\" = {{ dictionary = \"customers\", probability = 0.5 }}\n");
    }
    std::fs::write(
        &config,
        format!(
            "[dictionaries.customers]\nvalues = [{}]\n\n[dictionaries.records]\nvalues = [{}]\n\n[parameters]\n{parameters}",
            quoted(customers.to_vec()),
            quoted(records.iter().map(|r| r.id.as_str()).collect()),
        ),
    )
    .unwrap();
    let hooks = devhost::repo_root().join("scripts/schemathesis/hooks.py");
    let base = format!("http://{front}{base}");
    // SCHEMATHESIS_SEED and SCHEMATHESIS_MAX_EXAMPLES explore beyond the fixed runs.
    let seeds: Vec<String> = match std::env::var("SCHEMATHESIS_SEED") {
        Ok(seed) => vec![seed],
        Err(_) => SEEDS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut failed = Vec::new();
    for seed in &seeds {
        let started = Instant::now();
        let out = tokio::process::Command::new(&schemathesis)
            .args(["--config-file", config.to_str().unwrap()])
            .args(["run", spec.to_str().unwrap(), "--url", &base])
            .args(["--checks", "all", "--seed", seed])
            .args(["--max-examples", &std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or(MAX_EXAMPLES.into())])
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
        println!("{}", String::from_utf8_lossy(&out.stdout));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        println!("schemathesis, seed {seed}, took {:.1} s", started.elapsed().as_secs_f64());
        if !out.status.success() {
            failed.push(seed.clone());
        }
    }
    reader.stop().await.unwrap();
    assert!(
        failed.is_empty(),
        "schemathesis found disagreements between {} and the reader (seeds {failed:?})",
        spec.display()
    );
}

#[tokio::test]
async fn schemathesis_finds_the_reader_true_to_its_spec() {
    schemathesis(None, &devhost::repo_root().join("reader/openapi.yaml"), "/api").await;
}

#[tokio::test]
async fn schemathesis_finds_the_reader_true_to_the_spec_derived_for_another_profile() {
    let profile = devhost::repo_root().join("contracts/examples/tenant-invoices.toml");
    let contract = tiering::contract::Contract::parse(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    let spec = devhost::openapi::for_profile(&devhost::openapi::default_document().unwrap(), &contract);
    let path = std::env::temp_dir().join(unique("openapi")).with_extension("json");
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    schemathesis(Some(&profile), &path, "").await;
}
