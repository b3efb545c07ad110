//! A container of many physical partitions, as production has (a 600 GB
//! container has at least 12), on the project's emulator with
//! `COSMOS_EMULATOR_PARTITIONS` (scripts/emulators/cosmos-server.js, "physical
//! partitions"): feed ranges hashed as Cosmos does, range-scoped queries, a
//! per-range request-unit rate, and splits.

use std::collections::HashSet;
use std::time::Instant as StdInstant;

use tiering::cosmos::RangeSlice;

use super::*;

/// Stores on `emulator` (Cosmos) and the shared Azurite, a fresh container and archive.
async fn on(emulator: &OwnEmulator) -> (StoreSettings, CosmosStore, BlobArchive) {
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.cosmos_endpoint = emulator.endpoint.parse().unwrap();
    let cosmos = fresh_cosmos(&stores).await;
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    (stores, cosmos, blob)
}

/// `n` aged invoices over `customers` customers (`hot` of them in one customer), 2 KB each.
fn aged(n: usize, customers: usize) -> Vec<SampleRecord> {
    (0..n)
        .map(|i| {
            invoice(&format!("cust-{:03}", i % customers), &format!("inv-{i:04}"), date_days_ago(200), 2_000, i as u64)
        })
        .collect()
}

fn archiver_on(stores: &StoreSettings, cosmos: &CosmosStore, blob: &BlobArchive) -> Archiver {
    let settings = ArchiverSettings {
        quiet_days: 0,
        time_budget: Duration::from_secs(120),
        ..ArchiverSettings::defaults(stores.clone())
    };
    Archiver { cosmos: cosmos.clone(), archive: Arc::new(blob.clone()), settings }
}

async fn ids_in(cosmos: &CosmosStore, slice: &RangeSlice) -> Vec<String> {
    let cutoff = AgeValue::Text("9999".into());
    let mut pages = cosmos.aged_records_in(slice, &cutoff, i64::MAX, 100).await.unwrap();
    let mut ids = Vec::new();
    while let Some(page) = pages.next_page().await {
        for doc in page.unwrap().docs {
            ids.push(serde_json::from_slice::<serde_json::Value>(&doc).unwrap()["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

#[tokio::test]
async fn every_aged_record_is_archived_once_across_eight_ranges_queried_side_by_side() {
    let emulator = OwnEmulator::cosmos_partitioned(8, None, None);
    let (stores, cosmos, blob) = on(&emulator).await;
    let old = aged(120, 40);
    seed(&cosmos, &old).await;
    let recent: Vec<SampleRecord> =
        (0..10).map(|i| invoice("cust-new", &format!("new-{i}"), date_days_ago(3), 2_000, i)).collect();
    seed(&cosmos, &recent).await;
    // The emulator hashes as Cosmos does: each record in exactly one of the 8 ranges.
    let ranges = cosmos.feed_ranges().await.unwrap();
    assert_eq!(ranges.len(), 8);
    let mut seen = HashSet::new();
    let mut busy = 0;
    for range in &ranges {
        let ids = ids_in(&cosmos, &RangeSlice::of(range)).await;
        busy += usize::from(!ids.is_empty());
        for id in ids {
            assert!(seen.insert(id.clone()), "{id} in two ranges");
        }
    }
    assert_eq!((seen.len(), busy), (130, 8), "every record in one range, every range used");
    // A point read still finds each record (routed by its partition key).
    assert!(cosmos.read(&old[7].customer_id, &old[7].id).await.is_ok());

    let summary = archiver_on(&stores, &cosmos, &blob).run(Utc::now(), false).await;
    assert_eq!(
        (summary.status, summary.ranges, summary.archived, summary.failed),
        (RunStatus::Complete, 8, 120, 0),
        "{summary:?}"
    );
    for r in &old {
        assert!(cosmos.read(&r.customer_id, &r.id).await.is_err(), "{} left Cosmos", r.id);
        archived(&blob, r).await;
    }
    assert_eq!(blob.list(layout::LAYOUT_PREFIX).try_collect::<Vec<_>>().await.unwrap().len(), 120, "each once");
    for r in &recent {
        assert!(cosmos.read(&r.customer_id, &r.id).await.is_ok(), "{} stays hot", r.id);
    }
}

#[tokio::test]
async fn a_range_that_throttles_slows_alone_while_the_others_finish() {
    // Each range spends at most 60 RU a second; one customer (one range) holds half the records.
    let emulator = OwnEmulator::cosmos_partitioned(8, Some(60), None);
    let (stores, cosmos, blob) = on(&emulator).await;
    // The hot customer's invoices are larger (about 8 KB), which tells them apart in the results.
    let mut records: Vec<SampleRecord> =
        (0..60).map(|i| invoice("cust-hot", &format!("hot-{i:03}"), date_days_ago(200), 8_000, i)).collect();
    records.extend(aged(60, 30));
    seed(&cosmos, &records).await;
    // Only the hot customer in its range: the others' records there go.
    let mut left = records.len();
    for range in cosmos.feed_ranges().await.unwrap() {
        let ids = ids_in(&cosmos, &RangeSlice::of(&range)).await;
        if ids.iter().any(|id| id.starts_with("hot-")) {
            for r in records.iter().filter(|r| ids.contains(&r.id) && !r.id.starts_with("hot-")) {
                cosmos.delete(&r.customer_id, &r.id).await.unwrap();
                left -= 1;
            }
        }
    }
    let started = StdInstant::now();
    let done: std::sync::Mutex<Vec<(bool, std::time::Duration)>> = Default::default();
    let summary = archiver_on(&stores, &cosmos, &blob)
        .run_observed(Utc::now(), false, |r| {
            if let Outcome::Archived { raw, .. } = r.outcome {
                done.lock().unwrap().push((raw > 5_000, started.elapsed()));
            }
        })
        .await;
    assert_eq!((summary.archived, summary.failed), (left as u64, 0), "{summary:?}");
    assert!(summary.throttled > 0, "the hot range was held to its rate: {summary:?}");
    let done = done.into_inner().unwrap();
    let last = |hot: bool| done.iter().filter(|d| d.0 == hot).map(|d| d.1).max().unwrap();
    let others_at = last(false);
    let hot_at = last(true);
    assert!(
        others_at < hot_at / 2,
        "the other ranges finished at {others_at:?}, long before the throttled one at {hot_at:?}"
    );
}

#[tokio::test]
async fn a_run_stopped_midway_is_resumed_by_the_next_and_a_split_is_followed() {
    let emulator = OwnEmulator::cosmos_partitioned(8, None, None);
    let (stores, cosmos, blob) = on(&emulator).await;
    let old = aged(200, 50);
    seed(&cosmos, &old).await;
    let mut archiver = archiver_on(&stores, &cosmos, &blob);
    archiver.settings.time_budget = Duration::from_millis(700);
    archiver.settings.concurrency = 4;
    let first = archiver.run(Utc::now(), false).await;
    assert_eq!(first.status, RunStatus::Partial, "{first:?}");
    assert!(first.archived > 0 && first.archived < 200, "{first:?}");
    // A range splits between the runs, and another while the next one goes.
    emulator.split(&stores.cosmos_database, &stores.cosmos_container, "3").await.unwrap();
    let split_once = std::sync::atomic::AtomicBool::new(false);
    let (db, coll) = (stores.cosmos_database.clone(), stores.cosmos_container.clone());
    archiver.settings.time_budget = Duration::from_secs(120);
    // Few records in flight, so that the second split lands while range 5 still has records.
    archiver.settings.concurrency = 2;
    let second = archiver
        .run_observed(Utc::now(), false, |_| {
            if !split_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let (emulator_port, db, coll) = (emulator.port(), db.clone(), coll.clone());
                std::thread::spawn(move || {
                    let at = std::net::SocketAddr::from(([127, 0, 0, 1], emulator_port));
                    let path = format!("/_emulator/split?db={db}&coll={coll}&range=5");
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(testkit::raw::request(at, "POST", &path, &[])).unwrap();
                });
            }
        })
        .await;
    assert_eq!((second.status, second.failed), (RunStatus::Complete, 0), "{second:?}");
    assert_eq!(first.archived + second.archived, 200, "each record archived once: {first:?} {second:?}");
    assert!(cosmos.feed_ranges().await.unwrap().len() >= 9, "the ranges split");
    for r in &old {
        assert!(cosmos.read(&r.customer_id, &r.id).await.is_err(), "{} left Cosmos", r.id);
    }
    assert_eq!(blob.list(layout::LAYOUT_PREFIX).try_collect::<Vec<_>>().await.unwrap().len(), 200);
}

#[tokio::test]
async fn requests_go_at_low_priority_in_the_bucket_and_the_budget_is_a_share_of_the_containers_throughput() {
    // The emulator refuses every document request without both headers.
    let emulator = OwnEmulator::cosmos_expecting(
        &["x-ms-cosmos-priority-level=Low", "x-ms-cosmos-throughput-bucket=2"],
        Some("manual:4000"),
    );
    let (stores, _, _) = on(&emulator).await;
    let old = aged(20, 5);
    // Seeded by a client that sends both headers too.
    let control = tiering::cosmos::ThroughputControl { low_priority: true, bucket: Some(2) };
    let seeder = CosmosStore::connect_controlled(&stores, TEST_TRANSPORT, control).await.unwrap();
    seed(&seeder, &old).await;
    let settings = ArchiverSettings {
        quiet_days: 0,
        throughput_bucket: Some(2),
        ru_budget: tiering::settings::RuBudgetSetting::Auto { share_percent: 50, deployed: None },
        ..ArchiverSettings::defaults(stores.clone())
    };
    let archiver = archiver::startup::build(settings.clone(), TEST_TRANSPORT, true).await.unwrap();
    assert_eq!(archiver.settings.max_ru_per_second, 2000, "{}", archiver.settings.ru_budget_note);
    assert!(archiver.settings.ru_budget_note.contains("4000 RU/s (manual"), "{}", archiver.settings.ru_budget_note);
    let summary = archiver.run(Utc::now(), false).await;
    assert_eq!((summary.archived, summary.failed, summary.ru_budget), (20, 0, 2000), "{summary:?}");
    // High priority is refused by this emulator: the headers are really what it checks.
    let high = ArchiverSettings { priority: tiering::settings::Priority::High, ..settings };
    let refused = archiver::startup::build(high, TEST_TRANSPORT, true).await.unwrap().run(Utc::now(), false).await;
    assert_eq!(refused.status, RunStatus::Failed, "{refused:?}");
}

#[tokio::test]
async fn a_container_whose_throughput_cannot_be_read_gets_the_stated_default_or_the_deployments_figure() {
    // The emulator answers offers as a serverless account does (400).
    let emulator = OwnEmulator::cosmos_partitioned(1, None, None);
    let (stores, _, _) = on(&emulator).await;
    let auto = |deployed| ArchiverSettings {
        ru_budget: tiering::settings::RuBudgetSetting::Auto { share_percent: 50, deployed },
        ..ArchiverSettings::defaults(stores.clone())
    };
    let a = archiver::startup::build(auto(None), TEST_TRANSPORT, false).await.unwrap();
    assert_eq!(a.settings.max_ru_per_second, archiver::budget::UNKNOWN_THROUGHPUT_BUDGET);
    assert!(
        a.settings.ru_budget_note.contains("stated default") && a.settings.ru_budget_note.contains("serverless"),
        "{}",
        a.settings.ru_budget_note
    );
    let b = archiver::startup::build(auto(Some(12_000)), TEST_TRANSPORT, false).await.unwrap();
    assert_eq!(b.settings.max_ru_per_second, 6_000, "{}", b.settings.ru_budget_note);
}

#[tokio::test]
async fn the_plan_counts_each_physical_partition_and_bounds_the_pace_by_the_busiest() {
    // 800 RU/s over 8 ranges: 100 each. One customer (one range) holds 80 records.
    let emulator = OwnEmulator::cosmos_partitioned(8, None, Some("manual:800"));
    let (stores, cosmos, blob) = on(&emulator).await;
    let mut records: Vec<SampleRecord> =
        (0..80).map(|i| invoice("cust-hot", &format!("hot-{i:03}"), date_days_ago(200), 4_000, i)).collect();
    records.extend(aged(40, 20));
    seed(&cosmos, &records).await;
    let mut per_range = Vec::new();
    for range in cosmos.feed_ranges().await.unwrap() {
        per_range.push(ids_in(&cosmos, &RangeSlice::of(&range)).await.len() as u64);
    }
    let archiver = archiver_on(&stores, &cosmos, &blob);
    let options = archiver::plan::PlanOptions { trial_seconds: 5.0, ..Default::default() };
    let plan = archiver::plan::plan(&archiver, Utc::now(), &options).await.unwrap();
    let p = &plan.pace;
    assert_eq!((plan.records, p.ranges), (120, 8), "{plan:?}");
    assert_eq!(p.busiest_range_records, *per_range.iter().max().unwrap(), "{per_range:?}");
    assert!(p.busiest_range_records >= 80);
    assert_eq!(p.range_ru_per_second, Some(100.0));
    // The busiest range's records at its 100 RU/s, at the plan's RU per record.
    let expected = p.busiest_range_records as f64 * plan.request_units.per_record / 100.0;
    assert_eq!(p.bound_by, "a physical partition", "{p:?}");
    assert!((p.seconds - expected).abs() < 0.1, "{} vs {expected}: {p:?}", p.seconds);
    assert!(p.trial_complete && p.trial_records == 120, "the trial met every record: {p:?}");

    // The trial's stand-in for a delete: a conditional read, 304 without a body
    // while the record is at that ETag, the body once it changed; nothing changes.
    let first = &records[0];
    let etag = cosmos.read(&first.customer_id, &first.id).await.unwrap().doc.etag().unwrap();
    let unchanged = cosmos.read_unless_still(&first.customer_id, &first.id, &etag).await.unwrap();
    let changed = cosmos.read_unless_still(&first.customer_id, &first.id, "\"another\"").await.unwrap();
    assert!(unchanged < 1.5 && changed > 1.2, "a 304 costs a bare read ({unchanged} RU), a body more ({changed} RU)");
    assert_eq!(cosmos.read(&first.customer_id, &first.id).await.unwrap().doc.etag().unwrap(), etag);
}

#[tokio::test]
async fn a_record_delivered_twice_in_one_pass_is_archived_once_and_never_withdrawn() {
    // Every query page carries its first record twice, as a query asked again
    // from an earlier position would: the second delivery would find the record
    // deleted by the first, take that for a deletion by someone else, and
    // withdraw the only copy.
    let emulator = OwnEmulator::cosmos_repeating();
    let (stores, cosmos, blob) = on(&emulator).await;
    let old = aged(60, 20);
    seed(&cosmos, &old).await;
    let summary = archiver_on(&stores, &cosmos, &blob).run(Utc::now(), false).await;
    assert_eq!((summary.archived, summary.failed, summary.withdrawn), (60, 0, 0), "{summary:?}");
    assert!(summary.repeated > 0, "the emulator repeated records: {summary:?}");
    assert_eq!(summary.deleted_by_others, 0, "{summary:?}");
    let copies: Vec<_> = blob.list(layout::LAYOUT_PREFIX).try_collect().await.unwrap();
    assert_eq!(copies.len(), 60, "every record in the archive");
    for r in &old {
        assert!(cosmos.read(&r.customer_id, &r.id).await.is_err(), "{} left Cosmos", r.id);
    }
}
