//! The archive pass against the real emulators (Azurite and the Cosmos emulator),
//! started by `./scripts/test.sh`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::run::{Archiver, Outcome, Summary};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use futures::stream::BoxStream;
use tiering::archive::{Archive, BlobArchive, BlobInfo, PutCondition, StoredBlob};
use tiering::codec::{self, ArchiveMeta};
use tiering::cosmos::{CosmosStore, upsert_raw};
use tiering::layout;
use tiering::record::AgeField;
use tiering::sample::{SampleRecord, invoice};
use tiering::settings::{ArchiverSettings, StoreSettings};
use tiering::store::StoreError;
use tiering::testing::{OwnEmulator, TEST_TRANSPORT, emulator_settings, fresh_cosmos, seed};

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
    let stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    let cosmos = fresh_cosmos(&stores).await;
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    let (old, new) = records();
    seed(&cosmos, &old).await;
    seed(&cosmos, &new).await;
    Fixture { stores, cosmos, blob, old, new }
}

impl Fixture {
    fn archiver(&self, archive: Arc<dyn Archive>, concurrency: usize) -> Archiver {
        Archiver {
            cosmos: self.cosmos.clone(),
            archive,
            settings: ArchiverSettings {
                stores: self.stores.clone(),
                after_days: 90,
                dry_run: false,
                concurrency,
                max_ru_per_second: 0,
                time_budget: Duration::from_secs(120),
            },
        }
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

    async fn blob_count(&self) -> usize {
        use futures::TryStreamExt;
        self.blob.list(layout::LAYOUT_PREFIX).try_collect::<Vec<_>>().await.unwrap().len()
    }
}

/// Decodes and verifies the archived copy of `r`.
async fn archived(blob: &BlobArchive, field: &AgeField, r: &SampleRecord) -> (Vec<u8>, ArchiveMeta) {
    let stored = blob.get(&layout::blob_name(&r.customer_id, &r.id).unwrap()).await.unwrap();
    let meta = ArchiveMeta::from_metadata(field, &stored.info.metadata).unwrap();
    (codec::decode_verified(&stored.body, &meta).unwrap(), meta)
}

#[tokio::test]
async fn timer_run_moves_old_records_only_and_a_second_run_is_a_no_op() {
    let f = fixture().await;
    let before = f.hot(&f.old).await;
    let new_before = f.hot(&f.new).await;

    let app = archiver::handler::router(f.archiver(Arc::new(f.blob.clone()), 4));
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
    assert_eq!(first["failed"], 0);
    assert_eq!(first["scanned"], f.old.len());
    assert!(first["bytesStored"].as_u64().unwrap() < first["bytesRead"].as_u64().unwrap() / 3, "{first}");
    assert!(first["compressionRatio"].as_f64().unwrap() > 3.0);

    for (r, (body, etag, ts)) in f.old.iter().zip(&before) {
        assert!(!f.in_cosmos(r).await, "{} should have left Cosmos", r.id);
        let (stored, meta) = archived(&f.blob, &f.stores.age_field, r).await;
        assert_eq!(&stored, body, "{} archived body differs", r.id);
        assert_eq!((&meta.etag, meta.ts), (etag, *ts));
        assert_eq!(meta.age.to_metadata(), r.invoice_date.to_string());
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
    let summary = f.archiver(Arc::new(f.blob.clone()), 4).run(Utc::now(), true).await;
    assert_eq!(summary.would_archive, f.old.len() as u64, "{summary:?}");
    assert_eq!(summary.archived, 0);
    assert!(summary.dry_run && summary.bytes_read > 300_000 && summary.bytes_stored > 0);
    assert_eq!(f.hot(&f.old).await, before);
    assert_eq!(f.blob_count().await, 0);
}

/// Wraps the real archive; when the archiver reads a copy back (the verify step),
/// first rewrites the record in Cosmos, so the delete that follows meets a new `_etag`.
#[derive(Debug)]
struct UpdateDuringVerify {
    inner: BlobArchive,
    cosmos: CosmosStore,
    target: SampleRecord,
    updated_json: String,
    done: Mutex<bool>,
}

#[async_trait]
impl Archive for UpdateDuringVerify {
    async fn put(&self, n: &str, b: Bytes, m: HashMap<String, String>, c: PutCondition) -> Result<String, StoreError> {
        self.inner.put(n, b, m, c).await
    }
    async fn head(&self, name: &str) -> Result<BlobInfo, StoreError> {
        self.inner.head(name).await
    }
    async fn get(&self, name: &str) -> Result<StoredBlob, StoreError> {
        let first = std::mem::replace(&mut *self.done.lock().unwrap(), true);
        if !first && name == layout::blob_name(&self.target.customer_id, &self.target.id).unwrap() {
            upsert_raw(&self.cosmos, &self.target.customer_id, &self.target.id, &self.updated_json).await.unwrap();
        }
        self.inner.get(name).await
    }
    async fn delete_if_match(&self, name: &str, etag: &str) -> Result<(), StoreError> {
        self.inner.delete_if_match(name, etag).await
    }
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobInfo, StoreError>> {
        self.inner.list(prefix)
    }
}

#[tokio::test]
async fn a_record_updated_between_copy_and_delete_stays_in_cosmos_with_its_update() {
    let f = fixture().await;
    let target = f.old[0].clone();
    let updated_json = target.json.replacen(r#""status":"issued""#, r#""status":"corrected""#, 1);
    assert_ne!(updated_json, target.json);
    let racing = UpdateDuringVerify {
        inner: f.blob.clone(),
        cosmos: f.cosmos.clone(),
        target: target.clone(),
        updated_json,
        done: Mutex::new(false),
    };
    let summary = f.archiver(Arc::new(racing), 1).run(Utc::now(), false).await;
    assert_eq!(summary.changed_during_run, 1, "{summary:?}");
    assert_eq!(summary.archived, f.old.len() as u64 - 1);
    assert!(!summary.is_failure(), "a concurrent update is not a failure: {summary:?}");

    let now = f.cosmos.read(&target.customer_id, &target.id).await.unwrap().doc;
    assert!(String::from_utf8_lossy(&now.without_system_properties()).contains(r#""status":"corrected""#));
    // The stale copy was withdrawn, so the archive never shadows the newer record.
    let name = layout::blob_name(&target.customer_id, &target.id).unwrap();
    assert!(matches!(f.blob.head(&name).await, Err(StoreError::NotFound)));

    // The next run archives the updated version.
    let next = f.archiver(Arc::new(f.blob.clone()), 1).run(Utc::now(), false).await;
    assert_eq!(next.archived, 1, "{next:?}");
    let (body, _) = archived(&f.blob, &f.stores.age_field, &target).await;
    assert!(String::from_utf8_lossy(&body).contains(r#""status":"corrected""#));
}

#[tokio::test]
async fn an_identical_copy_is_kept_and_an_older_copy_is_replaced() {
    let f = fixture().await;
    let (same, stale) = (&f.old[1], &f.old[2]);
    // A run that crashed after uploading `same` but before deleting it...
    let hot = f.hot(std::slice::from_ref(same)).await.remove(0);
    let meta = ArchiveMeta {
        sha256: codec::sha256_hex(&hot.0),
        length: hot.0.len() as u64,
        etag: hot.1.clone(),
        ts: hot.2,
        age_field: "invoiceDate".into(),
        age: tiering::record::AgeValue::Text(same.invoice_date.to_string()),
        archived_at: Utc::now(),
    };
    let name = layout::blob_name(&same.customer_id, &same.id).unwrap();
    let first_etag =
        f.blob.put(&name, codec::compress(&hot.0).into(), meta.to_metadata(), PutCondition::Absent).await.unwrap();
    // ...and an archived copy of an older version of `stale`.
    let old_body = br#"{"id":"old version"}"#;
    let stale_meta = ArchiveMeta { sha256: codec::sha256_hex(old_body), length: old_body.len() as u64, ..meta.clone() };
    let stale_name = layout::blob_name(&stale.customer_id, &stale.id).unwrap();
    f.blob
        .put(&stale_name, codec::compress(old_body).into(), stale_meta.to_metadata(), PutCondition::Absent)
        .await
        .unwrap();
    let stale_hot = f.hot(std::slice::from_ref(stale)).await.remove(0);

    let summary = f.archiver(Arc::new(f.blob.clone()), 2).run(Utc::now(), false).await;
    assert_eq!(summary.already_archived, 1, "{summary:?}");
    assert_eq!(summary.archived, f.old.len() as u64 - 1);
    assert_eq!(f.blob.head(&name).await.unwrap().etag, first_etag, "the identical copy must not be rewritten");
    let (body, meta) = archived(&f.blob, &f.stores.age_field, stale).await;
    assert_eq!((body, meta.etag), (stale_hot.0, stale_hot.1));
}

#[tokio::test]
async fn a_newer_archived_copy_is_never_overwritten_by_an_older_read() {
    let f = fixture().await;
    let target = &f.old[0];
    let (body, etag, ts) = f.hot(std::slice::from_ref(target)).await.remove(0);
    // Another run archived a later version of this record (say, after an edit).
    let newer_body = br#"{"id":"newer"}"#;
    let newer = ArchiveMeta {
        sha256: codec::sha256_hex(newer_body),
        length: newer_body.len() as u64,
        etag: "\"newer-etag\"".into(),
        ts: ts + 1_000,
        age_field: "invoiceDate".into(),
        age: tiering::record::AgeValue::Text(target.invoice_date.to_string()),
        archived_at: Utc::now(),
    };
    let name = layout::blob_name(&target.customer_id, &target.id).unwrap();
    let put = f.blob.put(&name, codec::compress(newer_body).into(), newer.to_metadata(), PutCondition::Absent);
    let newer_etag = put.await.unwrap();
    let summary = f.archiver(Arc::new(f.blob.clone()), 2).run(Utc::now(), false).await;
    assert_eq!(summary.changed_during_run, 1, "{summary:?}");
    assert_eq!(f.blob.head(&name).await.unwrap().etag, newer_etag, "the newer copy must stay");
    let still = f.hot(std::slice::from_ref(target)).await.remove(0);
    assert_eq!(still, (body, etag, ts), "the record read must stay in Cosmos");
}

#[tokio::test]
async fn the_time_budget_stops_new_work_and_the_next_run_continues() {
    let f = fixture().await;
    let mut archiver = f.archiver(Arc::new(f.blob.clone()), 2);
    archiver.settings.time_budget = Duration::ZERO;
    let partial = archiver.run(Utc::now(), false).await;
    assert_eq!(partial.status, "partial", "{partial:?}");
    assert_eq!(partial.scanned, 0);
    assert!(!partial.is_failure());
    archiver.settings.time_budget = Duration::from_secs(120);
    let rest = archiver.run(Utc::now(), false).await;
    assert_eq!((rest.status.as_str(), rest.archived), ("complete", f.old.len() as u64), "{rest:?}");
}

#[tokio::test]
async fn the_request_unit_budget_paces_the_run() {
    let f = fixture().await;
    let free = f.archiver(Arc::new(f.blob.clone()), 4).run(Utc::now(), true).await;
    assert!(free.request_units > 0.0, "the emulator reports charges: {free:?}");
    let mut archiver = f.archiver(Arc::new(f.blob.clone()), 4);
    archiver.settings.max_ru_per_second = 10;
    let paced = archiver.run(Utc::now(), false).await;
    assert_eq!(paced.archived, f.old.len() as u64, "{paced:?}");
    // Spending `ru` at 10 RU/s (burst 10) cannot take less than (ru - 10) / 10 seconds.
    let floor_ms = ((paced.request_units - 10.0) / 10.0 * 1000.0).max(0.0) as u64;
    assert!(paced.duration_ms + 100 >= floor_ms, "{} RU in {} ms", paced.request_units, paced.duration_ms);
}

#[tokio::test]
async fn a_blob_outage_mid_run_stops_the_run_and_deletes_nothing_unverified() {
    let mut f = fixture().await;
    let azurite = OwnEmulator::azurite();
    f.stores.blob_endpoint = azurite.endpoint.parse().unwrap();
    let blob = BlobArchive::new(&f.stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    f.blob = blob;

    let mut seen = Vec::new();
    let summary: Summary = f
        .archiver(Arc::new(f.blob.clone()), 1)
        .run_observed(Utc::now(), false, |outcome| {
            seen.push(outcome.clone());
            if matches!(outcome, Outcome::Archived { .. }) {
                azurite.stop();
            }
        })
        .await;
    assert_eq!(summary.archived, 1, "{summary:?} {seen:?}");
    assert_eq!(summary.status, "failed");
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
    let summary = f.archiver(Arc::new(f.blob.clone()), 2).run(Utc::now(), false).await;
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
    let store = fresh_cosmos(&stores).await;
    let (old, new) = records();
    for r in old.iter().chain(&new) {
        // Seeding meets the throttling too; the SDK's retries absorb it.
        upsert_raw(&store, &r.customer_id, &r.id, &r.json).await.unwrap();
    }
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    let f = Fixture { stores, cosmos: store, blob, old, new };
    let summary = f.archiver(Arc::new(f.blob.clone()), 4).run(Utc::now(), false).await;
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
    let store = fresh_cosmos(&stores).await;
    let (old, new) = records();
    seed(&store, &old).await;
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    let f = Fixture { stores, cosmos: store, blob, old, new };
    let summary = f
        .archiver(Arc::new(f.blob.clone()), 1)
        .run_observed(Utc::now(), false, |outcome| {
            if matches!(outcome, Outcome::Archived { .. }) {
                cosmos.stop();
            }
        })
        .await;
    assert_eq!(summary.archived, 1, "{summary:?}");
    assert_eq!(summary.status, "failed");
    assert!(summary.error.as_deref().unwrap().contains("outage"), "{summary:?}");
    // Whatever was copied before the delete failed is a complete, verified copy.
    use futures::TryStreamExt;
    for info in f.blob.list(layout::LAYOUT_PREFIX).try_collect::<Vec<_>>().await.unwrap() {
        let stored = f.blob.get(&info.name).await.unwrap();
        let meta = ArchiveMeta::from_metadata(&f.stores.age_field, &stored.info.metadata).unwrap();
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
async fn verify_finds_corrupt_copies_and_restore_brings_a_record_back() {
    let f = fixture().await;
    let archiver = f.archiver(Arc::new(f.blob.clone()), 4);
    let summary = archiver.run(Utc::now(), false).await;
    assert_eq!(summary.archived, f.old.len() as u64);
    let clean = archiver::ops::verify(&archiver, None).await.unwrap();
    assert_eq!((clean.checked, clean.corrupt.len()), (f.old.len() as u64, 0), "{clean:?}");
    assert_eq!(clean.bytes_stored, summary.bytes_stored);

    // Damage one copy: same metadata, other bytes.
    let victim = &f.old[1];
    let name = layout::blob_name(&victim.customer_id, &victim.id).unwrap();
    let stored = f.blob.get(&name).await.unwrap();
    let condition = PutCondition::Matches(stored.info.etag.clone());
    f.blob.put(&name, codec::compress(b"{}").into(), stored.info.metadata.clone(), condition).await.unwrap();
    let report = archiver::ops::verify(&archiver, None).await.unwrap();
    assert_eq!(report.corrupt.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), [name.as_str()]);
    let one = archiver::ops::verify(&archiver, Some(&victim.customer_id)).await.unwrap();
    assert!(one.checked < clean.checked && one.corrupt.len() == 1);

    // A corrupt copy is never restored; a good one comes back with the same body.
    assert!(archiver::ops::restore(&archiver, &victim.customer_id, &victim.id).await.is_err());
    assert!(!f.in_cosmos(victim).await);
    let good = &f.old[0];
    let (body, _) = archived(&f.blob, &f.stores.age_field, good).await;
    archiver::ops::restore(&archiver, &good.customer_id, &good.id).await.unwrap();
    let back = f.cosmos.read(&good.customer_id, &good.id).await.unwrap().doc;
    assert_eq!(back.without_system_properties(), body);
    // Restoring again would overwrite: refused.
    let again = archiver::ops::restore(&archiver, &good.customer_id, &good.id).await.unwrap_err();
    assert!(again.to_string().contains("already in Cosmos"), "{again}");
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
