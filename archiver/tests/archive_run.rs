//! The archive pass against the real emulators (Azurite and the Cosmos emulator),
//! started by `./scripts/test.sh`. Containers are created with the default
//! indexing policy, as a production container has.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::run::{Outcome, RecordResult, RunStatus, Withdrawal};
use archiver::startup::Archiver;
use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use testkit::cosmos::{fresh_cosmos, seed, upsert_raw};
use testkit::emulator::{OwnEmulator, TEST_TRANSPORT, emulator_settings};
use testkit::hooks::{HookedArchive, Hooks, hook};
use testkit::proxy::Proxy;
use testkit::sample::{SampleRecord, invoice};
use tiering::archive::{Archive, BlobArchive, PutCondition};
use tiering::codec::{self, AgeStamp, ArchiveMeta};
use tiering::cosmos::CosmosStore;
use tiering::layout;
use tiering::record::{AgeField, AgeValue};
use tiering::settings::{ArchiverSettings, StoreSettings};
use tiering::store::StoreError;

fn date_days_ago(days: i64) -> NaiveDate {
    (Utc::now() - chrono::Duration::days(days)).date_naive()
}

/// Old records (some with awkward ids, one of 300 KB) and recent ones.
fn records() -> (Vec<SampleRecord>, Vec<SampleRecord>) {
    let old_ids = ["inv-0001", "inv 0002", "ü-%2F+.x", "...", "a.b", "日本-3", "inv-big"];
    let old = old_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let size = if *id == "inv-big" { 300_000 } else { 4_000 + i * 3_000 };
            let customer = if i % 2 == 0 { "cust-a" } else { "cust b+ü" };
            invoice(customer, id, date_days_ago(100 + 30 * i as i64), size, i as u64)
        })
        .collect();
    let new =
        (0..3).map(|i| invoice("cust-a", &format!("new-{i}"), date_days_ago(5 + i), 6_000, 100 + i as u64)).collect();
    (old, new)
}

struct Fixture {
    stores: StoreSettings,
    cosmos: CosmosStore,
    blob: BlobArchive,
    old: Vec<SampleRecord>,
    new: Vec<SampleRecord>,
}

async fn fixture() -> Fixture {
    fixture_on(emulator_settings(AgeField::Iso("invoiceDate".into()))).await
}

async fn fixture_on(stores: StoreSettings) -> Fixture {
    let cosmos = fresh_cosmos(&stores).await;
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    let (old, new) = records();
    seed(&cosmos, &old).await;
    seed(&cosmos, &new).await;
    Fixture { stores, cosmos, blob, old, new }
}

fn settings(stores: &StoreSettings, concurrency: usize) -> ArchiverSettings {
    ArchiverSettings {
        after_days: 90,
        concurrency,
        time_budget: Duration::from_secs(120),
        ..ArchiverSettings::defaults(stores.clone())
    }
}

impl Fixture {
    fn archiver(&self, archive: Arc<dyn Archive>, concurrency: usize) -> Archiver {
        Archiver { cosmos: self.cosmos.clone(), archive, settings: settings(&self.stores, concurrency) }
    }

    fn plain(&self, concurrency: usize) -> Archiver {
        self.archiver(Arc::new(self.blob.clone()), concurrency)
    }

    fn hooked(&self, hooks: Hooks, concurrency: usize) -> Archiver {
        self.archiver(Arc::new(HookedArchive { inner: Arc::new(self.blob.clone()), hooks }), concurrency)
    }

    /// What the read API serves for each record now, from Cosmos: (body, etag, ts).
    async fn hot(&self, records: &[SampleRecord]) -> Vec<(Vec<u8>, String, i64)> {
        let mut out = Vec::new();
        for r in records {
            let doc = self.cosmos.read(&r.customer_id, &r.id).await.unwrap().doc;
            out.push((doc.without_system_properties(), doc.etag().unwrap(), doc.ts().unwrap()));
        }
        out
    }

    async fn in_cosmos(&self, r: &SampleRecord) -> bool {
        match self.cosmos.read(&r.customer_id, &r.id).await {
            Ok(_) => true,
            Err(StoreError::NotFound) => false,
            Err(e) => panic!("reading {}: {e}", r.id),
        }
    }

    async fn archived_etag(&self, r: &SampleRecord) -> Option<String> {
        match self.blob.head(&name(r)).await {
            Ok(info) => Some(info.etag),
            Err(StoreError::NotFound) => None,
            Err(e) => panic!("looking for {}: {e}", r.id),
        }
    }

    async fn blob_count(&self) -> usize {
        self.blob.list(layout::LAYOUT_PREFIX).try_collect::<Vec<_>>().await.unwrap().len()
    }

    /// Puts a copy of `body` as record `r`'s archived copy, with the given version.
    async fn put_copy(&self, r: &SampleRecord, body: &[u8], etag: &str, ts: i64) -> String {
        let meta = ArchiveMeta {
            sha256: codec::sha256_hex(body),
            length: body.len() as u64,
            etag: etag.to_owned(),
            ts,
            stamp: AgeStamp::new(&self.stores.age_field, Some(&AgeValue::Text(r.invoice_date.to_string()))),
            archived_at: Utc::now(),
        };
        let blob = name(r);
        self.blob.put(&blob, codec::compress(body).into(), meta.to_metadata(), PutCondition::Absent).await.unwrap()
    }
}

fn name(r: &SampleRecord) -> String {
    layout::blob_name(&r.customer_id, &r.id).unwrap()
}

/// Decodes and verifies the archived copy of `r`.
async fn archived(blob: &BlobArchive, r: &SampleRecord) -> (Vec<u8>, ArchiveMeta) {
    let stored = blob.get(&name(r)).await.unwrap();
    let meta = ArchiveMeta::from_metadata(&stored.info.metadata).unwrap();
    (codec::decode_verified(&stored.body, &meta).unwrap(), meta)
}

#[tokio::test]
async fn timer_run_moves_old_records_only_and_a_second_run_is_a_no_op() {
    let f = fixture().await;
    let before = f.hot(&f.old).await;
    let new_before = f.hot(&f.new).await;

    let app = archiver::handler::router(f.plain(4));
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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

/// The settings of `stores` as the environment of the `archiver` binary.
fn env_of(stores: &StoreSettings) -> Vec<(&'static str, String)> {
    vec![
        ("COSMOS_ENDPOINT", stores.cosmos_endpoint.to_string()),
        ("COSMOS_KEY", stores.cosmos_key.as_ref().map(|k| k.secret().to_owned()).unwrap_or_default()),
        ("COSMOS_DATABASE", stores.cosmos_database.clone()),
        ("COSMOS_CONTAINER", stores.cosmos_container.clone()),
        ("ARCHIVE_BLOB_ENDPOINT", stores.blob_endpoint.to_string()),
        ("ARCHIVE_BLOB_SAS", stores.blob_sas.as_ref().map(|k| k.secret().to_owned()).unwrap_or_default()),
        ("ARCHIVE_CONTAINER", stores.archive_container.clone()),
        ("ARCHIVE_AGE_FIELD", stores.age_field.name().to_owned()),
        ("RUST_LOG", "warn".into()),
    ]
}

fn archiver_cli(stores: &StoreSettings, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_archiver")).args(args).envs(env_of(stores)).output().unwrap()
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

#[tokio::test]
async fn a_record_updated_between_copy_and_delete_stays_in_cosmos_with_its_update() {
    let f = fixture().await;
    let target = f.old[0].clone();
    let updated_json = target.json.replacen(r#""status":"issued""#, r#""status":"corrected""#, 1);
    assert_ne!(updated_json, target.json);
    // When the archiver reads the copy back (the verify step), the application updates the record.
    let (cosmos, t, json, done) =
        (f.cosmos.clone(), target.clone(), updated_json.clone(), Arc::new(AtomicBool::new(false)));
    let hooks = Hooks {
        before_get: hook(move |blob| {
            let (cosmos, t, json, done) = (cosmos.clone(), t.clone(), json.clone(), done.clone());
            async move {
                if blob == name(&t) && !done.swap(true, Ordering::SeqCst) {
                    upsert_raw(&cosmos, &t.customer_id, &t.id, &json).await.unwrap();
                }
            }
        }),
        ..Default::default()
    };
    let summary = f.hooked(hooks, 1).run(Utc::now(), false).await;
    assert_eq!(summary.changed_during_run, 1, "{summary:?}");
    assert_eq!(summary.archived, f.old.len() as u64 - 1);
    assert_eq!(summary.withdrawn, 1, "the stale copy is withdrawn: {summary:?}");
    assert!(!summary.is_failure(), "a concurrent update is not a failure: {summary:?}");

    let now = f.cosmos.read(&target.customer_id, &target.id).await.unwrap().doc;
    assert!(String::from_utf8_lossy(&now.without_system_properties()).contains(r#""status":"corrected""#));
    assert_eq!(f.archived_etag(&target).await, None, "the archive must never shadow the newer record");

    // The next run archives the updated version.
    let next = f.plain(1).run(Utc::now(), false).await;
    assert_eq!(next.archived, 1, "{next:?}");
    let (body, _) = archived(&f.blob, &target).await;
    assert!(String::from_utf8_lossy(&body).contains(r#""status":"corrected""#));
}

#[tokio::test]
async fn refused_deletes_count_their_request_units() {
    let f = fixture().await;
    let (updated, deleted) = (f.old[0].clone(), f.old[1].clone());
    // While their copies are verified, one record is updated (delete: 412) and one
    // deleted by the application (delete: 404).
    let (cosmos, u, d) = (f.cosmos.clone(), updated.clone(), deleted.clone());
    let hooks = Hooks {
        before_get: hook(move |blob| {
            let (cosmos, u, d) = (cosmos.clone(), u.clone(), d.clone());
            async move {
                if blob == name(&u) {
                    let json = u.json.replacen(r#""status":"issued""#, r#""status":"void""#, 1);
                    upsert_raw(&cosmos, &u.customer_id, &u.id, &json).await.unwrap();
                } else if blob == name(&d) {
                    cosmos.delete(&d.customer_id, &d.id).await.unwrap();
                }
            }
        }),
        ..Default::default()
    };
    let results = Mutex::new(Vec::<RecordResult>::new());
    let summary = f.hooked(hooks, 1).run_observed(Utc::now(), false, |r| results.lock().unwrap().push(r.clone())).await;
    assert_eq!((summary.changed_during_run, summary.deleted_by_others), (1, 1), "{summary:?}");
    let results = results.into_inner().unwrap();
    for outcome in [Outcome::ChangedDuringRun, Outcome::DeletedByOthers] {
        let r = results.iter().find(|r| r.outcome == outcome).unwrap();
        assert!(r.request_units > 0.0, "{outcome:?} must count what Cosmos charged for the refused delete: {r:?}");
    }
    let per_record: f64 = results.iter().map(|r| r.request_units).sum();
    assert!(summary.request_units >= per_record - 0.01, "{summary:?}");
    // The application's delete stands: the copy of the deleted record is withdrawn.
    assert_eq!(f.archived_etag(&deleted).await, None, "a deleted record must not come back from the archive");
    assert_eq!(f.archived_etag(&updated).await, None, "nor a stale copy of an updated one");
    assert_eq!(summary.withdrawn, 2, "{summary:?}");
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_keeps_the_only_copy() {
    // The first delete reaches Cosmos and deletes the record, but its answer is
    // lost; the SDK sends the delete again and meets 404. That 404 is our own
    // delete: the verified copy is now the only one and must stay.
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    let direct = stores.cosmos_endpoint.to_string();
    let proxy = Proxy::in_front_of(&direct).await.unwrap();
    stores.cosmos_endpoint = proxy.endpoint_for(&direct).parse().unwrap();
    let f = fixture_on(stores).await;
    let before = f.hot(&f.old).await;
    proxy.lose_answer_to_next(b"DELETE ");
    let results = Mutex::new(Vec::<RecordResult>::new());
    let summary = f.plain(1).run_observed(Utc::now(), false, |r| results.lock().unwrap().push(r.clone())).await;
    assert_eq!((summary.archived, summary.deleted_by_others), (f.old.len() as u64 - 1, 1), "{summary:?}");
    assert_eq!(summary.withdrawn, 0, "{summary:?}");
    let lost = results.into_inner().unwrap().into_iter().find(|r| r.outcome == Outcome::DeletedByOthers).unwrap();
    assert_eq!(lost.withdrawal, Withdrawal::None);
    for (r, (body, etag, _)) in f.old.iter().zip(&before) {
        assert!(!f.in_cosmos(r).await, "{}", r.id);
        let (stored, meta) = archived(&f.blob, r).await;
        assert_eq!((&stored, &meta.etag), (body, etag), "{} must be readable from the archive", r.id);
    }
}

#[tokio::test]
async fn an_identical_copy_is_kept_and_an_older_copy_is_replaced() {
    let f = fixture().await;
    let (same, stale) = (&f.old[1], &f.old[2]);
    // A run that crashed after uploading `same` but before deleting it...
    let hot = f.hot(std::slice::from_ref(same)).await.remove(0);
    let first_etag = f.put_copy(same, &hot.0, &hot.1, hot.2).await;
    // ...and an archived copy of an older version of `stale`.
    let stale_hot = f.hot(std::slice::from_ref(stale)).await.remove(0);
    f.put_copy(stale, br#"{"id":"old version"}"#, "\"old-etag\"", stale_hot.2 - 100).await;

    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.already_archived, 1, "{summary:?}");
    assert_eq!(summary.archived, f.old.len() as u64 - 1);
    assert_eq!(f.archived_etag(same).await.unwrap(), first_etag, "the identical copy must not be rewritten");
    let (body, meta) = archived(&f.blob, stale).await;
    assert_eq!((body, meta.etag), (stale_hot.0, stale_hot.1));
}

#[tokio::test]
async fn a_newer_archived_copy_is_never_overwritten_by_an_older_read() {
    let f = fixture().await;
    let target = &f.old[0];
    let hot = f.hot(std::slice::from_ref(target)).await.remove(0);
    // Another run archived a later version of this record (say, after an edit).
    let newer_etag = f.put_copy(target, br#"{"id":"newer"}"#, "\"newer-etag\"", hot.2 + 1_000).await;
    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.changed_during_run, 1, "{summary:?}");
    assert_eq!(f.archived_etag(target).await.unwrap(), newer_etag, "the newer copy must stay");
    assert_eq!(f.hot(std::slice::from_ref(target)).await.remove(0), hot, "the record read must stay in Cosmos");
}

#[tokio::test]
async fn a_same_second_version_in_the_archive_is_a_conflict_and_both_versions_survive() {
    let f = fixture().await;
    let target = &f.old[0];
    // Cosmos holds version A at _ts T; the archive holds version B of the same record,
    // also at T, with another etag (two writes within one second, two overlapping runs).
    let (a_body, a_etag, t) = f.hot(std::slice::from_ref(target)).await.remove(0);
    let b_body = target.json.replacen(r#""status":"issued""#, r#""status":"paid""#, 1).into_bytes();
    let b_blob_etag = f.put_copy(target, &b_body, "\"version-b\"", t).await;

    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.conflicts, 1, "{summary:?}");
    assert_eq!(summary.archived, f.old.len() as u64 - 1);
    assert_eq!((summary.failed, summary.withdrawn), (0, 0));
    // Both versions still exist: A in Cosmos, B in the archive, untouched.
    assert_eq!(f.hot(std::slice::from_ref(target)).await.remove(0), (a_body, a_etag, t));
    assert_eq!(f.archived_etag(target).await.unwrap(), b_blob_etag);
    let (body, meta) = archived(&f.blob, target).await;
    assert_eq!((body, meta.etag.as_str()), (b_body, "\"version-b\""));
    // A later run decides nothing either; the shadow check settles it (see verify_shadowed).
    let again = f.plain(2).run(Utc::now(), false).await;
    assert_eq!((again.conflicts, again.archived), (1, 0), "{again:?}");
}

#[tokio::test]
async fn a_copy_with_unreadable_metadata_is_a_conflict_and_is_left_alone() {
    let f = fixture().await;
    let target = &f.old[3];
    let foreign = HashMap::from([("owner".to_owned(), "someone else".to_owned())]);
    let etag = f.blob.put(&name(target), Bytes::from_static(b"not ours"), foreign, PutCondition::Absent).await.unwrap();
    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.conflicts, 1, "{summary:?}");
    assert!(f.in_cosmos(target).await);
    assert_eq!(f.archived_etag(target).await.unwrap(), etag);
}

#[tokio::test]
async fn overlapping_runs_never_work_at_once() {
    let f = fixture().await;
    // Run A reads its copies back slowly; run B (another process, say an operator's
    // `archiver run`) starts while A is at work.
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    let hooks = Hooks {
        before_get: hook(move |_| {
            let signal = signal.clone();
            async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }),
        ..Default::default()
    };
    let a = f.hooked(hooks, 1);
    let run_a = tokio::spawn(async move { a.run(Utc::now(), false).await });
    started.notified().await;

    let b = f.plain(4).run(Utc::now(), false).await;
    assert_eq!(b.status, RunStatus::Skipped, "{b:?}");
    assert_eq!((b.scanned, b.archived), (0, 0));
    assert!(!b.is_failure());
    let stores = f.stores.clone();
    let cli = tokio::task::spawn_blocking(move || archiver_cli(&stores, &["run"])).await.unwrap();
    assert_eq!(cli.status.code(), Some(3), "the command line says another run holds the lease");

    let a = run_a.await.unwrap();
    assert_eq!((a.status, a.archived), (RunStatus::Complete, f.old.len() as u64), "{a:?}");
    // A released the lease: the next run goes ahead (and finds nothing left).
    let c = f.plain(4).run(Utc::now(), false).await;
    assert_eq!((c.status, c.scanned), (RunStatus::Complete, 0), "{c:?}");
}

/// Breaks the run lease from outside, as another process (or an operator) could.
async fn break_run_lease(stores: &StoreSettings) {
    let sas = stores.blob_sas.as_ref().map(|s| s.secret().to_owned()).unwrap_or_default();
    let url = format!(
        "{}/{}/{}?comp=lease&{sas}",
        stores.blob_endpoint.as_str().trim_end_matches('/'),
        stores.archive_container,
        archiver::lease::LOCK_BLOB
    );
    let answer = reqwest::Client::new()
        .put(url)
        .header("x-ms-lease-action", "break")
        .header("x-ms-lease-break-period", "0")
        .header("x-ms-version", tiering::archive::BLOB_API_VERSION)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "break lease: {}", answer.status());
}

#[tokio::test]
async fn a_run_that_loses_its_lease_stops_before_any_destructive_step() {
    let f = fixture().await;
    // While the first copy is read back, the lease is broken; the read then takes
    // longer than the next renewal, which finds the lease gone.
    let (stores, first) = (f.stores.clone(), Arc::new(AtomicBool::new(true)));
    let hooks = Hooks {
        before_get: hook(move |_| {
            let (stores, first) = (stores.clone(), first.clone());
            async move {
                if first.swap(false, Ordering::SeqCst) {
                    break_run_lease(&stores).await;
                    tokio::time::sleep(Duration::from_secs(17)).await;
                }
            }
        }),
        ..Default::default()
    };
    let before = f.hot(&f.old).await;
    let summary = f.hooked(hooks, 1).run(Utc::now(), false).await;
    assert_eq!(summary.status, RunStatus::Partial, "{summary:?}");
    assert_eq!((summary.archived, summary.failed), (0, 1), "{summary:?}");
    assert_eq!(f.hot(&f.old).await, before, "no record left Cosmos without the lease");
}

#[tokio::test]
async fn a_copy_that_fails_verification_is_withdrawn() {
    let f = fixture().await;
    let target = f.old[2].clone();
    // The read-back returns other bytes (a damaged write): verification fails.
    let victim = name(&target);
    let hooks = Hooks {
        after_get: Some(Arc::new(move |blob: &str, mut stored: tiering::archive::StoredBlob| {
            if blob == victim {
                stored.body = codec::compress(b"{}").into();
            }
            Ok(stored)
        })),
        ..Default::default()
    };
    let summary = f.hooked(hooks, 2).run(Utc::now(), false).await;
    assert_eq!((summary.failed, summary.withdrawn, summary.withdraw_failed), (1, 1, 0), "{summary:?}");
    assert!(summary.is_failure());
    assert!(f.in_cosmos(&target).await, "the record stays in Cosmos");
    assert_eq!(f.archived_etag(&target).await, None, "the unverified copy is withdrawn");
}

/// A fixture whose Cosmos answers every delete with `status`.
async fn failing_deletes(status: u16) -> (Fixture, OwnEmulator) {
    let cosmos = OwnEmulator::cosmos_failing("DELETE", status);
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    (fixture_on(stores).await, cosmos)
}

#[tokio::test]
async fn a_delete_cosmos_refuses_withdraws_the_copy() {
    // 429 past the client's retries, or a 400: Cosmos refused the delete. The record
    // is seen to be still there, so its copy goes.
    for status in [429, 400] {
        let (f, _cosmos) = failing_deletes(status).await;
        let results = Mutex::new(Vec::<RecordResult>::new());
        let summary = f.plain(2).run_observed(Utc::now(), false, |r| results.lock().unwrap().push(r.clone())).await;
        assert_eq!(
            (summary.failed, summary.withdrawn),
            (f.old.len() as u64, f.old.len() as u64),
            "{status}: {summary:?}"
        );
        assert!(summary.is_failure());
        assert!(results.into_inner().unwrap().iter().all(|r| r.withdrawal == Withdrawal::Withdrawn));
        for r in &f.old {
            assert!(f.in_cosmos(r).await, "{status}: {} stays in Cosmos", r.id);
            assert_eq!(f.archived_etag(r).await, None, "{status}: the copy of {} is withdrawn", r.id);
        }
    }
}

#[tokio::test]
async fn an_ambiguous_delete_keeps_the_copy() {
    // A 503 may come after the delete happened: the copy may be the only one left.
    let (f, _cosmos) = failing_deletes(503).await;
    let summary = f.plain(1).run(Utc::now(), false).await;
    assert_eq!(summary.status, RunStatus::Failed, "an outage stops the run: {summary:?}");
    assert_eq!((summary.failed, summary.withdrawn), (1, 0), "{summary:?}");
    let mut kept = 0;
    for r in &f.old {
        assert!(f.in_cosmos(r).await);
        if let Some(_etag) = f.archived_etag(r).await {
            let (body, _) = archived(&f.blob, r).await;
            assert_eq!(body, f.hot(std::slice::from_ref(r)).await.remove(0).0, "the kept copy is verified");
            kept += 1;
        }
    }
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn the_time_budget_stops_new_work_and_the_next_run_continues() {
    let f = fixture().await;
    let mut archiver = f.plain(2);
    archiver.settings.time_budget = Duration::ZERO;
    let partial = archiver.run(Utc::now(), false).await;
    assert_eq!(partial.status, RunStatus::Partial, "{partial:?}");
    assert_eq!(partial.scanned, 0);
    assert!(!partial.is_failure());
    archiver.settings.time_budget = Duration::from_secs(120);
    let rest = archiver.run(Utc::now(), false).await;
    assert_eq!((rest.status, rest.archived), (RunStatus::Complete, f.old.len() as u64), "{rest:?}");
}

#[tokio::test]
async fn the_request_unit_budget_paces_the_run() {
    let f = fixture().await;
    let free = f.plain(4).run(Utc::now(), true).await;
    assert!(free.request_units > 0.0, "the emulator reports charges: {free:?}");
    let mut archiver = f.plain(4);
    archiver.settings.max_ru_per_second = 10;
    let paced = archiver.run(Utc::now(), false).await;
    assert_eq!(paced.archived, f.old.len() as u64, "{paced:?}");
    // Spending `ru` at 10 RU/s (burst 10) cannot take less than (ru - 10) / 10 seconds.
    let floor_ms = ((paced.request_units - 10.0) / 10.0 * 1000.0).max(0.0) as u64;
    assert!(paced.duration_ms + 100 >= floor_ms, "{} RU in {} ms", paced.request_units, paced.duration_ms);
}

#[tokio::test]
async fn a_blob_outage_mid_run_stops_the_run_and_deletes_nothing_unverified() {
    let azurite = OwnEmulator::azurite();
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.blob_endpoint = azurite.endpoint.parse().unwrap();
    let f = fixture_on(stores).await;

    let mut seen = Vec::new();
    let summary = f
        .plain(1)
        .run_observed(Utc::now(), false, |result| {
            seen.push(result.clone());
            if matches!(result.outcome, Outcome::Archived { .. }) {
                azurite.stop();
            }
        })
        .await;
    assert_eq!(summary.archived, 1, "{summary:?} {seen:?}");
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(summary.is_failure());
    assert!(summary.error.as_deref().unwrap().contains("outage"), "{summary:?}");
    assert!((summary.scanned as usize) < f.old.len(), "the run must stop, not grind through every record");
    let mut still_hot = 0;
    for r in &f.old {
        still_hot += usize::from(f.in_cosmos(r).await);
    }
    assert_eq!(still_hot, f.old.len() - 1, "only the verified record may leave Cosmos");
    for r in &f.new {
        assert!(f.in_cosmos(r).await);
    }
}

#[tokio::test]
async fn a_record_whose_id_cannot_be_addressed_safely_stays_hot_and_harms_nothing() {
    let f = fixture().await;
    // `..` is a legal Cosmos id, but URL handling turns `docs/..` into the container's own path.
    let dots = invoice("cust-a", "..", date_days_ago(200), 2_000, 9);
    seed(&f.cosmos, std::slice::from_ref(&dots)).await;
    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.failed, 1, "{summary:?}");
    assert!(summary.is_failure(), "an unarchivable record must show up as a failed invocation");
    assert_eq!(summary.archived, f.old.len() as u64, "{summary:?}");
    assert_eq!(summary.deleted_by_others, 0);
    for r in &f.new {
        assert!(f.in_cosmos(r).await);
    }
}

#[tokio::test]
async fn throttled_requests_are_retried_after_the_servers_delay() {
    // Every third document request is answered 429 with x-ms-retry-after-ms.
    let cosmos = OwnEmulator::cosmos_throttling(3);
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    // Seeding meets the throttling too; the SDK's retries absorb it.
    let f = fixture_on(stores).await;
    let summary = f.plain(4).run(Utc::now(), false).await;
    assert_eq!((summary.archived, summary.failed), (f.old.len() as u64, 0), "{summary:?}");
    for r in &f.old {
        assert!(!f.in_cosmos(r).await);
    }
}

#[tokio::test]
async fn a_cosmos_outage_mid_run_stops_the_run_cleanly() {
    let cosmos = OwnEmulator::cosmos();
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    let f = fixture_on(stores).await;
    let summary = f
        .plain(1)
        .run_observed(Utc::now(), false, |result| {
            if matches!(result.outcome, Outcome::Archived { .. }) {
                cosmos.stop();
            }
        })
        .await;
    assert_eq!(summary.archived, 1, "{summary:?}");
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(summary.error.as_deref().unwrap().contains("outage"), "{summary:?}");
    // Whatever was copied before the delete failed is a complete, verified copy.
    for info in f.blob.list(layout::LAYOUT_PREFIX).try_collect::<Vec<_>>().await.unwrap() {
        let stored = f.blob.get(&info.name).await.unwrap();
        let meta = ArchiveMeta::from_metadata(&stored.info.metadata).unwrap();
        codec::decode_verified(&stored.body, &meta).unwrap();
    }
}

#[tokio::test]
async fn the_emulator_serves_many_databases() {
    // The emulator once minted resource ids with a `/` from the 63rd database on,
    // which the SDK cannot open; CI runs create about that many.
    let cosmos = OwnEmulator::cosmos();
    for _ in 0..70 {
        let mut stores = emulator_settings(AgeField::Ts);
        stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
        fresh_cosmos(&stores).await;
    }
}

#[tokio::test]
async fn verify_finds_corrupt_and_vanished_copies_and_restore_brings_a_record_back() {
    let f = fixture().await;
    let archiver = f.plain(4);
    let summary = archiver.run(Utc::now(), false).await;
    assert_eq!(summary.archived, f.old.len() as u64);
    let clean = archiver::ops::verify(&archiver, None).await.unwrap();
    assert_eq!((clean.checked, clean.corrupt.len()), (f.old.len() as u64, 0), "{clean:?}");
    assert_eq!(clean.bytes_stored, summary.bytes_stored);

    // Damage one copy: same metadata, other bytes.
    let victim = &f.old[1];
    let stored = f.blob.get(&name(victim)).await.unwrap();
    let condition = PutCondition::Matches(stored.info.etag.clone());
    f.blob.put(&name(victim), codec::compress(b"{}").into(), stored.info.metadata.clone(), condition).await.unwrap();
    let report = archiver::ops::verify(&archiver, None).await.unwrap();
    assert_eq!(report.corrupt.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), [name(victim)]);
    let one = archiver::ops::verify(&archiver, Some(&victim.customer_id)).await.unwrap();
    assert!(one.checked < clean.checked && one.corrupt.len() == 1);

    // A copy that disappears between the listing and its download is counted, not fatal.
    let gone = name(&f.old[0]);
    let hooks = Hooks {
        after_get: Some(Arc::new(
            move |blob: &str, stored| if blob == gone { Err(StoreError::NotFound) } else { Ok(stored) },
        )),
        ..Default::default()
    };
    let vanishing = f.hooked(hooks, 4);
    let report = archiver::ops::verify(&vanishing, None).await.unwrap();
    assert_eq!((report.vanished, report.checked), (1, f.old.len() as u64 - 1), "{report:?}");

    // A corrupt copy is never restored; a good one comes back with the same body,
    // and its copy is withdrawn (one tier again: a later delete cannot resurrect it).
    let patience = Duration::ZERO;
    assert!(archiver::ops::restore(&archiver, &victim.customer_id, &victim.id, patience).await.is_err());
    assert!(!f.in_cosmos(victim).await);
    let good = &f.old[0];
    let (body, _) = archived(&f.blob, good).await;
    archiver::ops::restore(&archiver, &good.customer_id, &good.id, patience).await.unwrap();
    let back = f.cosmos.read(&good.customer_id, &good.id).await.unwrap().doc;
    assert_eq!(back.without_system_properties(), body);
    assert_eq!(f.archived_etag(good).await, None, "the restored copy is withdrawn");
    // Restoring again: nothing to restore, and the record in Cosmos is untouched.
    assert!(archiver::ops::restore(&archiver, &good.customer_id, &good.id, patience).await.is_err());
    assert_eq!(f.cosmos.read(&good.customer_id, &good.id).await.unwrap().doc.etag().unwrap(), back.etag().unwrap());
    // A copy next to a record Cosmos already holds is never restored over it.
    let hot = &f.new[0];
    let (hot_body, hot_etag, hot_ts) = f.hot(std::slice::from_ref(hot)).await.remove(0);
    f.put_copy(hot, hot.json.replacen("issued", "draft", 1).as_bytes(), "\"old\"", hot_ts - 10).await;
    let refused = archiver::ops::restore(&archiver, &hot.customer_id, &hot.id, patience).await.unwrap_err();
    assert!(refused.to_string().contains("already in Cosmos"), "{refused}");
    assert_eq!(f.hot(std::slice::from_ref(hot)).await.remove(0), (hot_body, hot_etag, hot_ts));
    // A copy whose body is another record (a bad manual upload) is never restored.
    let other = &f.new[1];
    f.cosmos.delete(&other.customer_id, &other.id).await.unwrap();
    f.put_copy(other, f.new[2].json.as_bytes(), "\"x\"", 1).await;
    let refused = archiver::ops::restore(&archiver, &other.customer_id, &other.id, patience).await.unwrap_err();
    assert!(refused.to_string().contains("holds another record"), "{refused}");
    assert!(!f.in_cosmos(other).await);
}

#[tokio::test]
async fn verify_shadowed_withdraws_copies_next_to_records_cosmos_holds() {
    let f = fixture().await;
    let archiver = f.plain(4);
    assert_eq!(archiver.run(Utc::now(), false).await.archived, f.old.len() as u64);
    // x: the application wrote the archived record again: its copy is stale.
    let x = &f.old[0];
    upsert_raw(&f.cosmos, &x.customer_id, &x.id, &x.json.replacen("issued", "void", 1)).await.unwrap();
    // y: copied by an interrupted run, not yet deleted: the same version in both tiers.
    let y = &f.new[0];
    let (body, etag, ts) = f.hot(std::slice::from_ref(y)).await.remove(0);
    f.put_copy(y, &body, &etag, ts).await;
    // z: a stale copy that someone replaces between the listing and the withdrawal.
    let z = &f.old[1];
    upsert_raw(&f.cosmos, &z.customer_id, &z.id, &z.json).await.unwrap();

    let patience = Duration::ZERO;
    let report = archiver::ops::shadowed(&archiver, None, false, patience).await.unwrap();
    assert_eq!(report.checked, f.old.len() as u64 + 1, "{report:?}");
    assert_eq!(report.same_version, 1);
    let mut found: Vec<(&str, &str)> = report.shadowed.iter().map(|s| (s.id.as_str(), s.action)).collect();
    found.sort();
    let mut expected = vec![(x.id.as_str(), "kept"), (z.id.as_str(), "kept")];
    expected.sort();
    assert_eq!(found, expected, "a report lists the stale copies");
    assert!(f.archived_etag(x).await.is_some(), "a report withdraws nothing");

    let z_name = name(z);
    let blob = f.blob.clone();
    let hooks = Hooks {
        before_delete: hook(move |name| {
            let (blob, z_name) = (blob.clone(), z_name.clone());
            async move {
                if name == z_name {
                    let info = blob.head(&name).await.unwrap();
                    let md = info.metadata.clone();
                    blob.set_metadata(&name, md, &info.etag).await.unwrap();
                }
            }
        }),
        ..Default::default()
    };
    let report = archiver::ops::shadowed(&f.hooked(hooks, 4), None, true, patience).await.unwrap();
    assert_eq!((report.withdrawn, report.withdraw_failed), (2, 0), "{report:?}");
    let action = |id: &str| report.shadowed.iter().find(|s| s.id == id).unwrap().action;
    assert_eq!((action(&x.id), action(&y.id), action(&z.id)), ("withdrawn", "withdrawn", "changed"));
    assert_eq!((f.archived_etag(x).await, f.archived_etag(y).await), (None, None));
    assert!(f.archived_etag(z).await.is_some(), "a copy changed since it was listed is left alone");
    assert!(f.in_cosmos(x).await && f.in_cosmos(y).await && f.in_cosmos(z).await, "Cosmos keeps every record");
    assert_eq!(f.blob_count().await, f.old.len() - 1, "the archived records keep their copies");
}

#[tokio::test]
async fn forget_erases_a_record_from_both_tiers_and_waits_for_no_run() {
    let f = fixture().await;
    let archiver = f.plain(4);
    archiver.run(Utc::now(), false).await;
    let (archived_only, hot_only, both) = (&f.old[0], &f.new[0], &f.old[1]);
    upsert_raw(&f.cosmos, &both.customer_id, &both.id, &both.json).await.unwrap();
    let patience = Duration::ZERO;

    // Without --confirm: a report, nothing deleted.
    let look = archiver::ops::forget(&archiver, &both.customer_id, &both.id, false, patience).await.unwrap();
    assert_eq!((look.cosmos, look.archive, look.confirmed), ("present", "present", false));
    assert!(f.in_cosmos(both).await && f.archived_etag(both).await.is_some());

    // While a run holds the lease, forget waits for it rather than race it.
    let lease = archiver::lease::RunLease::acquire(Arc::new(f.blob.clone())).await.unwrap().unwrap();
    let refused = archiver::ops::forget(&archiver, &both.customer_id, &both.id, true, patience).await.unwrap_err();
    assert!(refused.to_string().contains("in progress"), "{refused}");
    let released = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        lease.release().await;
    });
    let waited =
        archiver::ops::forget(&archiver, &hot_only.customer_id, &hot_only.id, true, Duration::from_secs(60)).await;
    assert_eq!(waited.unwrap().cosmos, "deleted", "forget goes ahead once the run is over");
    released.await.unwrap();

    for (r, cosmos, archive) in [(both, "deleted", "deleted"), (archived_only, "absent", "deleted")] {
        let report = archiver::ops::forget(&archiver, &r.customer_id, &r.id, true, patience).await.unwrap();
        assert_eq!((report.cosmos, report.archive), (cosmos, archive), "{}", r.id);
        assert!(!f.in_cosmos(r).await && f.archived_etag(r).await.is_none(), "{}", r.id);
    }
    assert!(!f.in_cosmos(hot_only).await);
    let twice = archiver::ops::forget(&archiver, &both.customer_id, &both.id, true, patience).await.unwrap();
    assert_eq!((twice.cosmos, twice.archive), ("absent", "absent"));
}

#[tokio::test]
async fn the_plan_predicts_what_the_following_run_does() {
    let f = fixture().await;
    // Volume in several months, and one record no run can archive.
    let more: Vec<SampleRecord> = (0..40)
        .map(|i| {
            invoice(
                &format!("cust-{}", i % 5),
                &format!("more-{i}"),
                date_days_ago(95 + 11 * i),
                2_000 + 7_000 * (i as usize % 9),
                i as u64,
            )
        })
        .collect();
    seed(&f.cosmos, &more).await;
    seed(&f.cosmos, &[invoice("cust-a", "..", date_days_ago(300), 2_000, 1)]).await;
    let archiver = f.plain(64);
    let now = Utc::now();
    let options = archiver::plan::PlanOptions::default();
    let plan = archiver::plan::plan(&archiver, now, &options).await.unwrap();
    let run = archiver.run(now, false).await;
    assert_eq!(plan.counted, "exact");
    assert_eq!(plan.records, run.archived, "plan {plan:?}\nrun {run:?}");
    assert_eq!(plan.records, (f.old.len() + more.len()) as u64);
    assert_eq!((plan.blocked, run.failed), (1, 1), "the `..` record is blocked");
    assert_eq!(plan.months.iter().map(|m| m.records).sum::<u64>(), plan.records);
    assert!(plan.months.len() >= 12, "{:?}", plan.months);
    let off = |planned: f64, actual: f64| (planned - actual).abs() / actual;
    assert!(off(plan.bytes as f64, run.bytes_read as f64) < 0.10, "bytes {} vs {}", plan.bytes, run.bytes_read);
    assert!(
        off(plan.compressed_bytes as f64, run.bytes_stored as f64) < 0.10,
        "stored {} vs {}",
        plan.compressed_bytes,
        run.bytes_stored
    );
    assert!(
        off(plan.request_units.total, run.request_units) < 0.10,
        "RU {} vs {}",
        plan.request_units.total,
        run.request_units
    );
    assert!(
        plan.pace.records_per_second > 0.0 && plan.pace.runs >= 1 && plan.pace.runs_per_day == 1.0,
        "{:?}",
        plan.pace
    );
    assert!(plan.cost.saving_per_month > 0.0);
    let table = archiver::plan::render(&plan);
    assert!(table.contains("total") && table.contains("RU"), "{table}");

    // With nothing left, the plan says so; with a tiny budget, it says its counts are partial.
    let empty = archiver::plan::plan(&archiver, now, &options).await.unwrap();
    assert_eq!((empty.records, empty.pace.runs), (0, 0));
    seed(&f.cosmos, &more).await;
    let capped = archiver::plan::PlanOptions { max_request_units: 1.0, ..options };
    let partial = archiver::plan::plan(&archiver, now, &capped).await.unwrap();
    assert_eq!(partial.counted, "partial");
}

#[tokio::test]
async fn bulk_restore_brings_a_customer_back_resumably_and_never_overwrites() {
    let f = fixture().await;
    assert_eq!(f.plain(4).run(Utc::now(), false).await.archived, f.old.len() as u64);
    let archiver = f.plain(4);
    let mine: Vec<&SampleRecord> = f.old.iter().filter(|r| r.customer_id == "cust-a").collect();
    assert_eq!(mine.len(), 4);
    let mut bodies = HashMap::new();
    for r in &mine {
        bodies.insert(r.id.clone(), archived(&f.blob, r).await.0);
    }
    let patience = Duration::ZERO;
    let quiet = |_: &archiver::ops::RestoreReport| {};

    // A dry run over an age window: counts, writes nothing.
    let (from, to) = (Some(date_days_ago(230)), Some(date_days_ago(150)));
    let dry = archiver::ops::restore_customer(&archiver, "cust-a", from, to, true, patience, quiet).await.unwrap();
    assert_eq!((dry.checked, dry.matched, dry.restored), (4, 2, 0), "{dry:?}");
    for r in &mine {
        assert!(!f.in_cosmos(r).await);
    }

    // An earlier restore stopped after creating one record, before withdrawing its copy.
    let first = mine[0];
    f.cosmos.create_raw(&first.customer_id, &first.id, &bodies[&first.id]).await.unwrap();
    // And the application wrote another one again meanwhile: that version stays.
    let rewritten = mine[1];
    upsert_raw(&f.cosmos, &rewritten.customer_id, &rewritten.id, &rewritten.json.replacen("issued", "void", 1))
        .await
        .unwrap();
    let before = f.hot(std::slice::from_ref(rewritten)).await.remove(0);

    let report =
        archiver::ops::restore_customer(&archiver, "cust-a", None, None, false, patience, quiet).await.unwrap();
    assert_eq!((report.restored, report.already_in_cosmos, report.withdrawn), (2, 2, 3), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    for r in &mine {
        let doc = f.cosmos.read(&r.customer_id, &r.id).await.unwrap().doc;
        if r.id == rewritten.id {
            assert_eq!(f.hot(std::slice::from_ref(r)).await.remove(0), before, "never overwritten");
            assert!(f.archived_etag(r).await.is_some(), "a copy of another version is left for verify --shadowed");
        } else {
            assert_eq!(doc.without_system_properties(), bodies[&r.id], "{} reads as it did from the archive", r.id);
            assert_eq!(f.archived_etag(r).await, None);
        }
    }
    // Other customers are untouched; running it again finds only the one copy left.
    assert!(!f.in_cosmos(&f.old[1]).await);
    let again = archiver::ops::restore_customer(&archiver, "cust-a", None, None, false, patience, quiet).await.unwrap();
    assert_eq!((again.checked, again.restored, again.already_in_cosmos), (1, 0, 1), "{again:?}");
}

#[test]
fn bad_settings_stop_start_up_with_the_settings_name() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("ARCHIVE_BLOB_ENDPOINT", "http://127.0.0.1:1/x")], "COSMOS_ENDPOINT"),
        (
            &[
                ("COSMOS_ENDPOINT", "http://127.0.0.1:1/"),
                ("ARCHIVE_BLOB_ENDPOINT", "http://127.0.0.1:1/x"),
                ("ARCHIVE_AFTER_DAYS", "ninety"),
            ],
            "ARCHIVE_AFTER_DAYS",
        ),
        (
            &[
                ("COSMOS_ENDPOINT", "http://127.0.0.1:1/"),
                ("ARCHIVE_BLOB_ENDPOINT", "http://127.0.0.1:1/x"),
                ("ARCHIVE_CONCURRENCY", "0"),
            ],
            "ARCHIVE_CONCURRENCY",
        ),
    ];
    for (env, name) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_archiver"))
            .arg("run")
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
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
