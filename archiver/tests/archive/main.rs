//! The archive pass against the real emulators (Azurite and the Cosmos emulator),
//! started by `./scripts/test.sh`. Containers are created with the default
//! indexing policy, as a production container has. One module per topic; the
//! fixture every module shares is here. The protocol's decisions and its
//! archive-side steps also have unit tests on the in-memory archive
//! (`archiver/src/decide.rs`, `run.rs`, `restamp.rs`, `lease.rs`).

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

mod budgets;
mod faults;
mod lease;
mod ops;
mod partitions;
mod plan;
mod protocol;
mod retention;
mod run;

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
        // The fixture's records were written a moment ago; the quiet period's
        // own tests set it (protocol.rs).
        quiet_days: 0,
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

    /// Each record as Cosmos holds it now, what the archive must keep: (document, etag, ts).
    async fn hot(&self, records: &[SampleRecord]) -> Vec<(Vec<u8>, String, i64)> {
        let mut out = Vec::new();
        for r in records {
            let doc = self.cosmos.read(&r.customer_id, &r.id).await.unwrap().doc;
            out.push((doc.as_bytes().to_vec(), doc.etag().unwrap(), doc.ts().unwrap()));
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
        ("ARCHIVE_QUIET_DAYS", "0".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

fn archiver_cli(stores: &StoreSettings, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_archiver")).args(args).envs(env_of(stores)).output().unwrap()
}
