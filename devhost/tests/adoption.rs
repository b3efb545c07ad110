//! Adopting the reader behind an existing API, proven the way an adopter proves
//! it (docs/adopting.md): a stand-in of the team's current
//! API (`devhost::current_api`) serves the profile straight from Cosmos, both
//! apps are assembled with the profile as `scripts/package.sh --contract` does
//! and run under the host stand-in, and `scripts/compare.py` finds no difference
//! before archiving and none after the archive run moved the old records, for
//! hot, archived and missing records alike. Two profiles: the default, and one
//! that differs everywhere (contracts/examples/tenant-invoices.toml).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use devhost::app::{AppFolder, assemble};
use devhost::host::Host;
use testkit::cosmos::{fresh_cosmos, upsert_raw};
use testkit::emulator::{TEST_TRANSPORT, emulator_settings, unique};
use testkit::sample::invoice;
use tiering::archive::BlobArchive;
use tiering::contract::Contract;
use tiering::record::AgeField;

fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: build the workspace first (./scripts/test.sh does)", path.display());
    path
}

fn assembled(app: &str, contract: Option<&Path>) -> AppFolder {
    let out = std::env::temp_dir().join(unique(&format!("app-{app}")));
    assemble(&devhost::repo_root(), app, &built(app), &out, contract).unwrap();
    AppFolder::load(&out).unwrap()
}

/// `scripts/compare.py` with these arguments; its exit status and output. Run
/// off the runtime, which serves the stand-in and the host's front meanwhile.
async fn compare(args: &[&str]) -> (i32, String) {
    let script = devhost::repo_root().join("scripts/compare.py");
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("python3").arg(script).args(&args).arg("--timeout").arg("10").output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    })
    .await
    .unwrap()
}

/// `callers`: `--caller NAME HEADER` pairs for compare.py (docs/auth.md).
/// Returns compare.py's summaries before archiving and after (replayed).
async fn adopt(profile: Option<&Path>, callers: &[(String, String)]) -> (serde_json::Value, serde_json::Value) {
    let contract = match profile {
        Some(path) => Contract::parse(&std::fs::read_to_string(path).unwrap()).unwrap(),
        None => Contract::default_profile(),
    };
    let property = contract.partition_key.property().to_owned();
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.partition_key = contract.partition_key.clone();
    let cosmos = fresh_cosmos(&stores).await;
    BlobArchive::new(&stores, TEST_TRANSPORT).unwrap().ensure_container().await.unwrap();

    // Two partitions with awkward values, old invoices (archived by the run) and recent ones.
    let today = Utc::now().date_naive();
    let mut keys = Vec::new();
    for (p, partition) in ["acme 1", "zoë %42"].into_iter().enumerate() {
        for i in 0..7 {
            let (id, days) = (format!("inv {p}-{i}"), if i < 4 { 120 + 30 * i } else { 3 + i });
            let mut r =
                invoice(partition, &id, today - chrono::Duration::days(days), 3_000 + 500 * i as usize, i as u64);
            if property != "customerId" {
                r.json = r.json.replacen("\"customerId\":", &format!("\"{property}\":"), 1);
            }
            upsert_raw(&cosmos, partition, &id, &r.json).await.unwrap();
            keys.push((partition.to_owned(), id));
        }
        keys.push((partition.to_owned(), format!("missing {p}")));
    }
    let ids = std::env::temp_dir().join(unique("ids")).with_extension("csv");
    let lines: Vec<String> = keys.iter().map(|(pk, id)| format!("\"{pk}\",\"{id}\"")).collect();
    std::fs::write(&ids, format!("partitionKey,id\n{}\n", lines.join("\n"))).unwrap();

    let current = devhost::current_api::start(contract.clone(), &stores).await.unwrap();
    let settings = devhost::drive::app_settings(&stores);
    let reader = Host::start(assembled("reader", profile), &settings).await.unwrap();
    let reader_addr = reader.serve_http(0).await.unwrap();
    let base = |addr: std::net::SocketAddr| {
        if contract.prefix.is_empty() { format!("http://{addr}") } else { format!("http://{addr}/{}", contract.prefix) }
    };
    let (current_url, reader_url) = (base(current), base(reader_addr));
    let recording = std::env::temp_dir().join(unique("answers")).with_extension("json");
    let mut common = vec!["--ids", ids.to_str().unwrap(), "--pages", "5", "--page-size", "2"];
    if let Some(path) = profile {
        common.extend(["--contract", path.to_str().unwrap()]);
    }
    for (name, header) in callers {
        common.extend(["--caller", name.as_str(), header.as_str()]);
    }

    // Before archiving: the reader answers exactly as the current API does.
    let mut live = vec!["--current", &current_url, "--reader", &reader_url, "--record", recording.to_str().unwrap()];
    live.extend(&common);
    let (code, out) = compare(&live).await;
    assert_eq!(code, 0, "before archiving: {out}");
    let before = summary(&out);
    let asked = 16 * callers.len().max(1);
    assert!(out.contains(&format!("\"records\": {asked}")), "{out}");

    // The archive run moves the old invoices.
    let archiver = Host::start(assembled("archiver", profile), &settings).await.unwrap();
    let run = archiver.fire_timer("ArchiveBillingRecords").await.unwrap();
    assert_eq!(run.status, 200, "{:?}", run.logs);
    assert_eq!(run.return_value["archived"], 8, "{}", run.return_value);
    for (pk, id) in keys.iter().filter(|(_, id)| id.ends_with("-0") || id.ends_with("-3")) {
        assert!(cosmos.read(pk, id).await.is_err(), "{id} left Cosmos");
    }

    // The current API no longer sees archived invoices: a live comparison must fail...
    let mut after = vec!["--current", &current_url, "--reader", &reader_url];
    after.extend(&common);
    let (code, out) = compare(&after).await;
    assert_eq!(code, 1, "the comparison is not blind: {out}");
    // ...and the reader still answers exactly as the current API did before.
    let mut replay = vec!["--replay", recording.to_str().unwrap(), "--reader", &reader_url];
    replay.extend(&common);
    let (code, out) = compare(&replay).await;
    assert_eq!(code, 0, "after archiving: {out}");
    let after = summary(&out);
    reader.stop().await.unwrap();

    // A profile with writes: through the host, the packaged reader passes them to
    // the current API, moving an archived invoice back first (docs/writes.md).
    if contract.writes.any() {
        let mut with_upstream = settings.clone();
        with_upstream.insert("READER_UPSTREAM_URL".into(), format!("http://{current}"));
        let writer = Host::start(assembled("reader", profile), &with_upstream).await.unwrap();
        let writer_url = base(writer.serve_http(0).await.unwrap());
        let (pk, id) = keys.iter().find(|(_, id)| id.ends_with("-0")).unwrap().clone();
        let values = std::collections::HashMap::from([
            (contract.partition_key_param.clone().unwrap(), pk.clone()),
            (contract.id_param.clone(), id.clone()),
        ]);
        let values: std::collections::HashMap<&str, &str> =
            values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let path = contract.record.fill("", &values);
        let url = format!("{writer_url}{path}");
        let http = reqwest::Client::new();
        let archived = http.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(cosmos.read(&pk, &id).await.is_err(), "archived before the write");
        let paid = archived.replacen(r#""status":"issued""#, r#""status":"paid""#, 1);
        assert_ne!(paid, archived);
        let put = http.put(&url).body(paid).send().await.unwrap();
        assert_eq!(put.status(), 200, "through the host: {:?}", put.text().await);
        let hot = cosmos.read(&pk, &id).await.unwrap().doc;
        assert!(String::from_utf8_lossy(hot.as_bytes()).contains(r#""status":"paid""#), "the current API wrote it");
        let deleted = http.delete(&url).send().await.unwrap();
        assert_eq!(deleted.status(), 204);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 404, "gone from both tiers");
        // A method the profile does not name: the host itself answers, as in Azure.
        assert_eq!(http.patch(&url).body("{}").send().await.unwrap().status(), 404);
        writer.stop().await.unwrap();
    }
    archiver.stop().await.unwrap();
    (before, after)
}

/// compare.py's JSON summary: its last line.
fn summary(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim().lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn the_default_profile_compares_equal_before_and_after_archiving() {
    adopt(None, &[]).await;
}

#[tokio::test]
async fn a_profile_that_differs_everywhere_compares_equal_before_and_after_archiving() {
    let profile = devhost::repo_root().join("contracts/examples/tenant-invoices.toml");
    adopt(Some(&profile), &[]).await;
}

#[tokio::test]
async fn an_api_behind_bearer_tokens_answers_every_caller_alike_before_and_after_archiving() {
    // Today's routes behind Entra-style tokens (docs/auth.md): a customer's token
    // carries customerId, the back office holds a role; both sides fetch the keys
    // of one local issuer. Each caller is compared on every record (hot, archived
    // and missing, its own partition and the other) and every list page.
    let idp = testkit::idp::Idp::start().await.unwrap();
    let text = format!("{}{}", tiering::contract::DEFAULT_PROFILE, idp.auth_section("customerId", 300, ""));
    let profile = std::env::temp_dir().join(unique("bearer")).with_extension("toml");
    std::fs::write(&profile, text).unwrap();
    let bearer = |token: String| format!("Authorization: Bearer {token}");
    let mut callers = vec![
        ("customer".to_owned(), bearer(idp.token(serde_json::json!({"customerId": "acme 1"})))),
        ("back-office".to_owned(), bearer(idp.token(serde_json::json!({"roles": ["Billing.Read.All"]})))),
    ];
    for (case, header) in idp.bad_tokens(serde_json::json!({"customerId": "acme 1"})) {
        callers.push((case.replace(' ', "-"), header.map(|h| format!("Authorization: {h}")).unwrap_or_default()));
    }
    let (before, after) = adopt(Some(&profile), &callers).await;
    // Not a comparison of two refusals: each caller got what its token allows,
    // from both tiers (7 invoices and a missing id per customer).
    for summary in [before, after] {
        let statuses = &summary["recordStatuses"];
        assert_eq!(statuses["customer"], serde_json::json!({"200": 7, "404": 1, "403": 8}), "{summary}");
        assert_eq!(statuses["back-office"], serde_json::json!({"200": 14, "404": 2}), "{summary}");
        for (case, _) in callers.iter().skip(2) {
            assert_eq!(statuses[case.as_str()], serde_json::json!({"401": 16}), "{case}: {summary}");
        }
    }
}

/// Front mode before an API that is not ours (docs/front-mode.md): the packaged
/// reader, under the host stand-in, forwards to `devhost::mapped_api` (its own
/// DTOs, ETag, errors, list shape and cursor, API key), and `scripts/compare.py`
/// finds no difference, before archiving and after: every record (hot,
/// archived, missing, a bad id), its revalidation, an idempotent write and the
/// read after it, list pages with windows into the archive and not, for a
/// caller with the API's key and one without.
#[tokio::test]
async fn front_mode_before_an_api_that_maps_documents_compares_equal_before_and_after_archiving() {
    use devhost::mapped_api;
    let profile = devhost::repo_root().join("contracts/examples/front-mapped.toml");
    let stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    let cosmos = fresh_cosmos(&stores).await;
    BlobArchive::new(&stores, TEST_TRANSPORT).unwrap().ensure_container().await.unwrap();
    let today = Utc::now().date_naive();
    let mut keys = Vec::new();
    for (a, account) in ["acme 1", "zoë %42"].into_iter().enumerate() {
        // Old invoices (archived by the run), some not among the sampled ids:
        // only a list brings those back. Recent ones stay hot.
        for i in 0..9 {
            let (id, days) = (format!("inv {a}-{i}"), if i < 6 { 120 + 20 * i } else { 3 + i });
            let r = invoice(account, &id, today - chrono::Duration::days(days as i64), 3_000 + 400 * i, i as u64);
            upsert_raw(&cosmos, account, &id, &r.json).await.unwrap();
            if i % 3 != 1 {
                keys.push((account.to_owned(), id));
            }
        }
        keys.push((account.to_owned(), format!("missing {a}")));
    }
    let ids = std::env::temp_dir().join(unique("ids")).with_extension("csv");
    let lines: Vec<String> = keys.iter().map(|(pk, id)| format!("\"{pk}\",\"{id}\"")).collect();
    std::fs::write(&ids, format!("partitionKey,id\n{}\n", lines.join("\n"))).unwrap();

    let api = mapped_api::start(&stores).await.unwrap();
    let mut settings = devhost::drive::app_settings(&stores);
    settings.insert("READER_UPSTREAM_URL".into(), format!("http://{api}"));
    let reader = Host::start(assembled("reader", Some(&profile)), &settings).await.unwrap();
    let reader_url = format!("http://{}/api", reader.serve_http(0).await.unwrap());
    let api_url = format!("http://{api}/api");
    let recording = std::env::temp_dir().join(unique("answers")).with_extension("json");
    let key = format!("X-Api-Key: {}", mapped_api::API_KEY);
    let into_archive =
        format!("issuedFrom={}&issuedTo={}", today - chrono::Duration::days(200), today - chrono::Duration::days(5));
    let recent = format!("issuedFrom={}", today - chrono::Duration::days(30));
    let common = [
        "--ids",
        ids.to_str().unwrap(),
        "--contract",
        profile.to_str().unwrap(),
        "--pages",
        "6",
        "--page-size",
        "2",
        "--window",
        &into_archive,
        "--window",
        &recent,
        // A write that leaves the invoice as it is: the replay after archiving reads
        // the state the recording saw (docs/front-mode.md, "Proving it").
        "--write",
        "PATCH",
        r#"{"status":"issued"}"#,
        "--caller",
        "with-key",
        &key,
        "--caller",
        "wrong-key",
        "X-Api-Key: wrong",
    ];
    let mut live =
        vec!["--current", api_url.as_str(), "--reader", &reader_url, "--record", recording.to_str().unwrap()];
    live.extend(common);
    let (code, out) = compare(&live).await;
    assert_eq!(code, 0, "before archiving: {out}");
    let before = summary(&out);
    assert_eq!(before["recordStatuses"]["with-key"], serde_json::json!({"200": 12, "404": 2}), "{before}");
    assert_eq!(before["recordStatuses"]["wrong-key"], serde_json::json!({"401": 14}), "{before}");
    assert!(before["writes"].as_u64().unwrap() >= 14 && before["listPages"].as_u64().unwrap() > 12, "{before}");

    let archiver = Host::start(assembled("archiver", Some(&profile)), &settings).await.unwrap();
    let run = archiver.fire_timer("ArchiveBillingRecords").await.unwrap();
    assert_eq!(run.return_value["archived"], 12, "{}", run.return_value);
    archiver.stop().await.unwrap();

    let mut replay = vec!["--replay", recording.to_str().unwrap(), "--reader", &reader_url];
    replay.extend(common);
    let (code, out) = compare(&replay).await;
    assert_eq!(code, 0, "after archiving: {out}");
    let after = summary(&out);
    assert_eq!(after["recordStatuses"], before["recordStatuses"], "{after}");
    // Every old invoice is hot again: the sampled ones by their reads, the rest by the lists.
    for (a, account) in ["acme 1", "zoë %42"].into_iter().enumerate() {
        for i in 0..6 {
            assert!(cosmos.read(account, &format!("inv {a}-{i}")).await.is_ok(), "inv {a}-{i} moved back");
        }
    }
    reader.stop().await.unwrap();
}
