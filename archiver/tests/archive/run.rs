//! A whole pass through the timer contract, dry runs, and start-up under restricted rights.

use super::*;

#[tokio::test]
async fn timer_run_moves_old_records_only_and_a_second_run_is_a_no_op() {
    let f = fixture().await;
    let before = f.hot(&f.old).await;
    let new_before = f.hot(&f.new).await;

    let app = archiver::handler::router(f.plain(4));
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, app, std::future::pending()));
    let http = reqwest::Client::new();
    let timer = serde_json::json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": {"Last": "garbage", "Next": null}, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "ArchiveBillingRecords", "UtcNow": "2026-11-22T02:00:00Z", "RandGuid": "1"}}
    });
    let invoke = || async {
        let resp = http
            .post(format!("http://{addr}/ArchiveBillingRecords"))
            .header("X-Azure-Functions-InvocationId", "test")
            .json(&timer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["Outputs"].is_object() && body["Logs"].is_array(), "{body}");
        body["ReturnValue"].clone()
    };

    let first = invoke().await;
    assert_eq!(first["status"], "complete", "{first}");
    assert_eq!(first["archived"], f.old.len(), "{first}");
    assert_eq!((first["failed"].as_u64(), first["conflicts"].as_u64()), (Some(0), Some(0)));
    assert_eq!(first["scanned"], f.old.len());
    assert!(first["bytesStored"].as_u64().unwrap() < first["bytesRead"].as_u64().unwrap() / 3, "{first}");
    assert!(first["compressionRatio"].as_f64().unwrap() > 3.0);

    for (r, (body, etag, ts)) in f.old.iter().zip(&before) {
        assert!(!f.in_cosmos(r).await, "{} should have left Cosmos", r.id);
        let (stored, meta) = archived(&f.blob, r).await;
        assert_eq!(&stored, body, "{} archived body differs", r.id);
        assert_eq!((&meta.etag, meta.ts), (etag, *ts));
        assert_eq!(meta.stamp, AgeStamp { field: "invoiceDate".into(), value: Some(r.invoice_date.to_string()) });
    }
    assert_eq!(f.hot(&f.new).await, new_before, "recent records must be untouched");
    assert_eq!(f.blob_count().await, f.old.len());

    let second = invoke().await;
    assert_eq!((second["scanned"].as_u64(), second["archived"].as_u64()), (Some(0), Some(0)), "{second}");
    assert_eq!(second["status"], "complete");
    assert_eq!(f.blob_count().await, f.old.len());
}

#[tokio::test]
async fn dry_run_reports_what_would_move_and_writes_nothing() {
    let f = fixture().await;
    let before = f.hot(&f.old).await;
    let summary = f.plain(4).run(Utc::now(), true).await;
    assert_eq!(summary.would_archive, f.old.len() as u64, "{summary:?}");
    assert_eq!(summary.archived, 0);
    assert!(summary.dry_run && summary.bytes_read > 300_000 && summary.bytes_stored > 0);
    assert_eq!(f.hot(&f.old).await, before);
    assert_eq!(f.blob_count().await, 0, "not even the run lease's lock blob");
    let lock = f.blob.head(archiver::lease::LOCK_BLOB).await;
    assert!(matches!(lock, Err(StoreError::NotFound)), "{lock:?}");
}

#[tokio::test]
async fn a_dry_run_from_the_command_line_creates_nothing_not_even_the_archive_container() {
    let stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    let cosmos = fresh_cosmos(&stores).await;
    let (old, _) = records();
    seed(&cosmos, &old).await;
    let stores_for_cli = stores.clone();
    let out = tokio::task::spawn_blocking(move || archiver_cli(&stores_for_cli, &["run", "--dry-run"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["wouldArchive"], old.len(), "{summary}");
    // The archive container was never created: listing it fails as a missing container.
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    let listed = blob.list("").try_collect::<Vec<_>>().await;
    assert!(matches!(&listed, Err(StoreError::Unavailable(m)) if m.contains("does not exist")), "{listed:?}");
}

/// Scripts read the commands' stdout as JSON (`archiver plan --json | jq .`):
/// logs, at info level here, go to stderr, never into it.
#[tokio::test]
async fn every_command_prints_only_json_on_stdout() {
    let f = fixture().await;
    let (customer, id) = (f.old[0].customer_id.clone(), f.old[0].id.clone());
    let mut env = env_of(&f.stores);
    env.retain(|(k, _)| *k != "RUST_LOG");
    env.push(("RUST_LOG", "info".into()));
    let commands: Vec<Vec<String>> = [
        vec!["plan", "--json", "--sample", "5"],
        vec!["run"],
        vec!["verify"],
        vec!["verify", "--shadowed"],
        vec!["verify", "--shadowed", "--withdraw"],
        vec!["restore", "--partition-key", &customer, "--id", &id],
        vec!["restore", "--customer", &customer, "--dry-run"],
        vec!["restore", "--all", "--dry-run"],
        vec!["forget", "--partition-key", &customer, "--id", &id],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(str::to_owned).collect())
    .collect();
    for args in commands {
        let env = env.clone();
        let run = args.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_archiver")).args(&run).envs(env).output().unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        let parsed = serde_json::from_slice::<serde_json::Value>(&out.stdout);
        assert!(parsed.is_ok(), "{args:?} printed more than JSON on stdout: {}", String::from_utf8_lossy(&out.stdout));
        assert!(stderr.contains("INFO") || args[0] == "forget", "{args:?}: the logs went to stderr: {stderr}");
    }
}

/// An Azurite SAS for blobs only, no container operations: what the archiver's
/// role allows in Azure, where the template owns the archive container.
fn blobs_only_sas() -> azure_core::credentials::Secret {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/emulators/sas.js");
    let out = std::process::Command::new("node").args([script, "--resource-types", "o"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    azure_core::credentials::Secret::new(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

/// The archiver's start-up step under rights that cannot create containers: the
/// existing container is accepted (a blob probe finds it), a missing one is an error.
#[tokio::test]
async fn an_identity_that_may_not_create_containers_accepts_the_existing_one() {
    let f = fixture().await;
    let mut blobs_only = f.stores.clone();
    blobs_only.blob_sas = Some(blobs_only_sas());
    let mut missing = blobs_only.clone();
    missing.archive_container = testkit::emulator::unique("missing");
    let refused = BlobArchive::new(&missing, TEST_TRANSPORT).unwrap().ensure_container().await;
    assert!(refused.is_err(), "the SAS must not create containers: {refused:?}");

    let restricted = BlobArchive::new(&blobs_only, TEST_TRANSPORT).unwrap();
    restricted.ensure_container().await.unwrap();
    let created = BlobArchive::new(&missing, TEST_TRANSPORT).unwrap();
    assert!(created.head("container-probe").await.is_err_and(|e| e.is_outage()), "the container stayed missing");
}

/// The quiet period (`ARCHIVE_QUIET_DAYS`): an old invoice written yesterday (here:
/// just now) stays hot through a run, whatever its date; it is archived by the
/// first run after its last write is older than the quiet period. `plan` counts
/// what the quiet period holds back.
#[tokio::test]
async fn a_record_written_within_the_quiet_period_stays_hot_until_it_has_passed() {
    let f = fixture().await;
    let mut archiver = f.plain(4);
    archiver.settings.quiet_days = 30;
    let plan = archiver::plan::plan(&archiver, Utc::now(), &Default::default()).await.unwrap();
    assert_eq!((plan.records, plan.held_back_by_quiet_period), (0, f.old.len() as u64), "{plan:?}");
    let summary = archiver.run(Utc::now(), false).await;
    assert_eq!((summary.scanned, summary.archived), (0, 0), "{summary:?}");
    assert_eq!(f.hot(&f.old).await.len(), f.old.len());
    // 29 days on: still within it.
    let summary = archiver.run(Utc::now() + chrono::Duration::days(29), false).await;
    assert_eq!(summary.archived, 0, "{summary:?}");
    // 31 days on, the last writes are older than the quiet period.
    let later = Utc::now() + chrono::Duration::days(31);
    let plan = archiver::plan::plan(&archiver, later, &Default::default()).await.unwrap();
    assert_eq!((plan.records, plan.held_back_by_quiet_period), (f.old.len() as u64, 0), "{plan:?}");
    let summary = archiver.run(later, false).await;
    assert_eq!(summary.archived, f.old.len() as u64, "{summary:?}");
    for r in &f.new {
        assert!(f.in_cosmos(r).await, "young records stay, quiet period or not");
    }
}

#[tokio::test]
async fn copies_archived_before_the_list_index_are_indexed_by_the_next_run() {
    let f = fixture().await;
    let first = f.plain(4).run(Utc::now(), false).await;
    assert_eq!((first.archived, first.index_complete), (7, true), "{first:?}");
    let field = f.stores.age_field.clone();
    // An archive from before the index: no entries, no marker.
    let entries: Vec<String> =
        f.blob.list(tiering::index::INDEX_PREFIX).map_ok(|b| b.name).try_collect().await.unwrap();
    assert_eq!(entries.len(), 7, "one entry per copy");
    for name in entries.iter().chain([&tiering::index::INDEX_MARKER.to_owned()]) {
        let info = f.blob.head(name).await.unwrap();
        f.blob.delete_if_match(name, &info.etag).await.unwrap();
    }
    assert!(!tiering::index::complete_for(&f.blob, &field).await.unwrap());
    let next = f.plain(4).run(Utc::now(), false).await;
    assert_eq!((next.indexed, next.index_complete, next.archived), (7, true, 0), "{next:?}");
    assert!(tiering::index::complete_for(&f.blob, &field).await.unwrap());
    let again: Vec<String> = f.blob.list(tiering::index::INDEX_PREFIX).map_ok(|b| b.name).try_collect().await.unwrap();
    assert_eq!(again, entries, "the same entries");
    // Once complete, a run only looks at the marker.
    let quiet = f.plain(4).run(Utc::now(), false).await;
    assert_eq!((quiet.indexed, quiet.index_complete), (0, true));
}
