//! Lists read from the list index (`tiering::index`) against the real
//! emulators: in order, each record once, in a bounded number of index calls
//! per page whatever the partition's archive holds; and right at every step a
//! run can stop at (between the copy and its entry, between the entry and the
//! delete from Cosmos), healed by the next run.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::startup::Archiver;
use chrono::{NaiveDate, Utc};
use testkit::cosmos::{copy_as_a_run_left_it, fresh_stores, seed};
use testkit::emulator::TEST_TRANSPORT;
use testkit::hooks::{HookedArchive, Hooks, hook};
use testkit::sample::{SampleRecord, invoice};
use tiering::archive::{Archive, BlobArchive};
use tiering::codec::{AgeStamp, ArchiveMeta};
use tiering::cosmos::CosmosStore;
use tiering::record::{AgeField, AgeValue};
use tiering::settings::{ArchiverSettings, ReaderSettings, StoreSettings};
use tiering::store::StoreError;

struct World {
    stores: StoreSettings,
    cosmos: CosmosStore,
    blob: BlobArchive,
    http: reqwest::Client,
}

async fn world() -> World {
    let (stores, cosmos, blob) = fresh_stores(AgeField::Iso("invoiceDate".into())).await;
    World { stores, cosmos, blob, http: reqwest::Client::new() }
}

fn days_ago(d: i64) -> NaiveDate {
    (Utc::now() - chrono::Duration::days(d)).date_naive()
}

/// `n` invoices of `customer`, three on each date (ties), dates `spacing` days apart.
fn invoices(customer: &str, n: usize, spacing: i64) -> Vec<SampleRecord> {
    (0..n)
        .map(|i| invoice(customer, &format!("inv-{i:04}"), days_ago(3 + (i as i64 / 3) * spacing), 1_500, i as u64))
        .collect()
}

fn expected(records: &[SampleRecord]) -> Vec<String> {
    let mut sorted: Vec<&SampleRecord> = records.iter().collect();
    sorted.sort_by(|a, b| b.invoice_date.cmp(&a.invoice_date).then(a.id.cmp(&b.id)));
    sorted.into_iter().map(|r| r.id.clone()).collect()
}

impl World {
    fn archiver(&self, archive: Arc<dyn Archive>) -> Archiver {
        let settings = ArchiverSettings {
            quiet_days: 0,
            concurrency: 8,
            time_budget: Duration::from_secs(120),
            ..ArchiverSettings::defaults(self.stores.clone())
        };
        Archiver { cosmos: self.cosmos.clone(), archive, settings }
    }

    async fn reader(&self, archive: Arc<dyn Archive>) -> SocketAddr {
        let settings = ReaderSettings::defaults(self.stores.clone());
        let mut tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
        tiers.tiers.archive = archive;
        let (listener, addr) = tiering::host::bind(0).await.unwrap();
        tokio::spawn(tiering::host::serve(listener, reader::router(tiers), std::future::pending()));
        addr
    }

    /// Every page of `customer`'s list: the ids in order, and how many pages.
    async fn page_all(&self, at: SocketAddr, customer: &str, query: &str) -> (Vec<String>, usize) {
        let (mut ids, mut token, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let mut url: reqwest::Url =
                format!("http://{at}/api/customers/{customer}/billing-records").parse().unwrap();
            url.set_query(Some(query));
            if let Some(t) = &token {
                url.query_pairs_mut().append_pair("continuationToken", t);
            }
            let answer = self.http.get(url).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            let page: serde_json::Value = answer.json().await.unwrap();
            pages += 1;
            ids.extend(page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
            match page["continuationToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => return (ids, pages),
            }
            assert!(pages < 500, "paging did not end");
        }
    }
}

/// An archive that records the prefix of every listing made through it.
fn listing_recorder(blob: &BlobArchive) -> (Arc<dyn Archive>, Arc<Mutex<Vec<String>>>) {
    let listed = Arc::new(Mutex::new(Vec::new()));
    let log = listed.clone();
    let hooks = Hooks {
        before_list: hook(move |prefix| {
            let log = log.clone();
            async move { log.lock().unwrap().push(prefix) }
        }),
        ..Default::default()
    };
    (Arc::new(HookedArchive { inner: Arc::new(blob.clone()), hooks }), listed)
}

#[tokio::test]
async fn lists_read_the_index_in_order_with_a_bounded_number_of_calls_per_page() {
    let w = world().await;
    let (big, small) = (invoices("big", 240, 7), invoices("small", 24, 30));
    seed(&w.cosmos, &big).await;
    seed(&w.cosmos, &small).await;
    let summary = w.archiver(Arc::new(w.blob.clone())).run(Utc::now(), false).await;
    assert!(summary.index_complete, "{summary:?}");
    assert!(summary.archived >= 200, "{summary:?}");
    assert!(tiering::index::complete_for(&w.blob, &w.stores.age_field).await.unwrap());

    let (archive, listed) = listing_recorder(&w.blob);
    let reader = w.reader(archive).await;
    for (customer, records) in [("big", &big), ("small", &small)] {
        for page_size in [1, 7, 50] {
            listed.lock().unwrap().clear();
            let (ids, pages) = w.page_all(reader, customer, &format!("pageSize={page_size}")).await;
            assert_eq!(ids, expected(records), "{customer}, pageSize {page_size}");
            let calls = listed.lock().unwrap().clone();
            let prefix = tiering::index::partition_prefix(customer, &w.stores.age_field);
            assert!(calls.iter().all(|p| *p == prefix), "only the partition's index is listed: {calls:?}");
            assert!(calls.len() <= 2 * pages, "{customer}: {} index listings for {pages} pages", calls.len());
        }
    }
    // A window (from/to) from the index too: inclusive dates on the age field.
    let (from, to) = (days_ago(300), days_ago(120));
    let (ids, _) = w.page_all(reader, "big", &format!("from={from}&to={to}&pageSize=9")).await;
    let in_window: Vec<SampleRecord> =
        big.iter().filter(|r| r.invoice_date >= from && r.invoice_date <= to).cloned().collect();
    assert!(in_window.len() > 20);
    assert_eq!(ids, expected(&in_window));
}

#[tokio::test]
async fn a_run_stopped_before_or_after_the_index_entry_leaves_lists_right_and_the_next_run_finishes() {
    let w = world().await;
    let records = invoices("c", 30, 30);
    seed(&w.cosmos, &records).await;
    // The first run archives all but one aged record, whose entry cannot be written:
    // its copy is there, verified, with no entry, and it stays in Cosmos.
    let victim = records.iter().find(|r| r.invoice_date < days_ago(120)).unwrap().clone();
    let entry_prefix = tiering::index::partition_prefix("c", &w.stores.age_field);
    let victim_id = format!("/{}!", victim.id);
    let hooks = Hooks {
        refuse_put: Some(Arc::new(move |name: &str| {
            (name.starts_with(&entry_prefix) && name.ends_with(&victim_id))
                .then(|| StoreError::Unavailable("the run stopped here".into()))
        })),
        ..Default::default()
    };
    let stopped =
        w.archiver(Arc::new(HookedArchive { inner: Arc::new(w.blob.clone()), hooks })).run(Utc::now(), false).await;
    assert_eq!(stopped.failed, 1, "{stopped:?}");
    assert!(w.cosmos.exists("c", &victim.id).await.unwrap(), "not deleted without its entry");
    let name = tiering::layout::blob_name("c", &victim.id).unwrap();
    assert!(w.blob.head(&name).await.is_ok(), "its copy is there");

    // Another aged record, written after that run: a run stopped between its
    // entry and its delete from Cosmos left it in both tiers, indexed.
    let late = invoice("c", "late-1", days_ago(200), 1_500, 99);
    seed(&w.cosmos, std::slice::from_ref(&late)).await;
    copy_as_a_run_left_it(&w.cosmos, &w.blob, &w.stores.age_field, &late, true).await.unwrap();

    let mut all = records.clone();
    all.push(late.clone());
    let reader = w.reader(Arc::new(w.blob.clone())).await;
    for page_size in [1, 4, 100] {
        let (ids, _) = w.page_all(reader, "c", &format!("pageSize={page_size}")).await;
        assert_eq!(ids, expected(&all), "each once, before the next run; pageSize {page_size}");
    }

    // The next run finds both copies of the versions it reads, writes the entries and deletes.
    let next = w.archiver(Arc::new(w.blob.clone())).run(Utc::now(), false).await;
    assert_eq!((next.already_archived, next.failed), (2, 0), "{next:?}");
    assert!(!w.cosmos.exists("c", &victim.id).await.unwrap() && !w.cosmos.exists("c", "late-1").await.unwrap());
    for page_size in [1, 4, 100] {
        let (ids, _) = w.page_all(reader, "c", &format!("pageSize={page_size}")).await;
        assert_eq!(ids, expected(&all), "each once, after it; pageSize {page_size}");
    }
}

#[tokio::test]
async fn stale_entries_are_skipped_and_a_record_re_dated_is_listed_once_at_its_new_date() {
    let w = world().await;
    // Far apart in the list, so no one index page holds both of its entries.
    let records = invoices("c", 60, 10);
    seed(&w.cosmos, &records).await;
    w.archiver(Arc::new(w.blob.clone())).run(Utc::now(), false).await;
    let reader = w.reader(Arc::new(w.blob.clone())).await;
    let moved = records.iter().find(|r| r.invoice_date < days_ago(100)).unwrap().clone();

    // Moved back and re-dated (an application's correction), then archived again:
    // its old entry is left behind when the move-back could not remove it.
    tiering::moveback::move_back(&w.cosmos, &w.blob, "c", &moved.id, None).await.unwrap();
    let old_meta = ArchiveMeta {
        sha256: "0".repeat(64),
        length: 1,
        etag: "\"gone\"".into(),
        ts: 1,
        stamp: AgeStamp::new(&w.stores.age_field, Some(&AgeValue::Text(moved.invoice_date.to_string()))),
        archived_at: Utc::now(),
    };
    let stale = tiering::index::entry_of("c", &moved.id, &old_meta, &w.stores.age_field).unwrap();
    tiering::index::write(&w.blob, &stale, &old_meta).await.unwrap();
    let redated = invoice("c", &moved.id, days_ago(400), 1_500, 7);
    seed(&w.cosmos, std::slice::from_ref(&redated)).await;
    let run = w.archiver(Arc::new(w.blob.clone())).run(Utc::now(), false).await;
    assert_eq!(run.archived, 1, "{run:?}");

    let mut now: Vec<SampleRecord> = records.iter().filter(|r| r.id != moved.id).cloned().collect();
    now.push(redated);
    for page_size in [1, 3, 100] {
        let (ids, _) = w.page_all(reader, "c", &format!("pageSize={page_size}")).await;
        assert_eq!(ids, expected(&now), "pageSize {page_size}");
    }
}

/// Two waves of aged invoices on the same dates (`a-i` and `b-i` tie on each
/// date, so they alternate in the list): the first archived, the second still
/// hot. After the first page, the second wave is archived too: its entries land
/// everywhere, right after the page's end included.
async fn interleaved(w: &World, archive: Arc<dyn Archive>) -> Vec<SampleRecord> {
    let wave = |p: &str| -> Vec<SampleRecord> {
        (0..30).map(|i| invoice("c", &format!("{p}-{i:02}"), days_ago(100 + i), 1_200, i as u64)).collect()
    };
    let (a, b) = (wave("a"), wave("b"));
    seed(&w.cosmos, &a).await;
    assert_eq!(w.archiver(archive).run(Utc::now(), false).await.archived, 30);
    seed(&w.cosmos, &b).await;
    a.into_iter().chain(b).collect()
}

/// Pages through `customer` at `page_size`, calling `between` once after the first page.
async fn page_with_a_move(w: &World, at: SocketAddr, query: &str, between: impl AsyncFnOnce()) -> Vec<String> {
    let (mut ids, mut token, mut between) = (Vec::new(), None::<String>, Some(between));
    for _ in 0..500 {
        let mut url: reqwest::Url = format!("http://{at}/api/customers/c/billing-records").parse().unwrap();
        url.set_query(Some(query));
        if let Some(t) = &token {
            url.query_pairs_mut().append_pair("continuationToken", t);
        }
        let page: serde_json::Value = w.http.get(url).send().await.unwrap().json().await.unwrap();
        ids.extend(page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        if let Some(f) = between.take() {
            f().await;
        }
        match page["continuationToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return ids,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn records_archived_between_pages_are_listed_once_with_either_kind_of_listing_marker() {
    // The service's markers differ: Azurite's list after the last name returned,
    // Azure's from the next name (a blob written later just before that name is
    // not listed from it). Both, in memory, and Azurite itself.
    for (kind, page_size, window) in [
        ("azure", 1, ""),
        ("azure", 2, ""),
        ("azure", 3, ""),
        ("azure", 4, &format!("&from={}", days_ago(120))[..]),
        ("azurite", 1, ""),
        ("azurite", 3, ""),
        ("azurite-emulator", 2, ""),
        ("azurite-emulator", 3, &format!("&from={}", days_ago(115))[..]),
    ] {
        let w = world().await;
        let archive: Arc<dyn Archive> = match kind {
            "azure" => Arc::new(testkit::memory::MemoryArchive::with_azure_markers()),
            "azurite" => Arc::new(testkit::memory::MemoryArchive::new()),
            _ => Arc::new(w.blob.clone()),
        };
        let all = interleaved(&w, archive.clone()).await;
        let reader = w.reader(archive.clone()).await;
        let archiver = w.archiver(archive.clone());
        let ids = page_with_a_move(&w, reader, &format!("pageSize={page_size}{window}"), async || {
            assert_eq!(archiver.run(Utc::now(), false).await.archived, 30, "the second wave moves");
        })
        .await;
        let from = window.strip_prefix("&from=").map(|d| d.parse::<NaiveDate>().unwrap());
        let in_window: Vec<SampleRecord> =
            all.iter().filter(|r| from.is_none_or(|f| r.invoice_date >= f)).cloned().collect();
        assert_eq!(ids, expected(&in_window), "{kind} markers, pageSize {page_size}{window}");
    }
}

#[tokio::test]
async fn a_token_without_a_marker_or_a_smaller_page_size_continues_exactly_where_it_was() {
    let w = world().await;
    let records = invoices("c", 600, 3);
    seed(&w.cosmos, &records).await;
    let summary = w.archiver(Arc::new(w.blob.clone())).run(Utc::now(), false).await;
    assert!(summary.archived > 500, "{summary:?}");
    let reader = w.reader(Arc::new(w.blob.clone())).await;
    let order = expected(&records);
    // A position deep in the archive, in a token from before markers (none in it):
    // the index is read from its start, further each listing, to the position.
    let at = &records.iter().find(|r| r.id == order[450]).unwrap();
    let fingerprint = reader::token::fingerprint("c", "invoiceDate", None, None);
    let cursor = tiering::listing::Cursor { age: AgeValue::Text(at.invoice_date.to_string()), id: at.id.clone() };
    let legacy = reader::token::encode(&fingerprint, &cursor, None);
    let mut url: reqwest::Url = format!("http://{reader}/api/customers/c/billing-records").parse().unwrap();
    url.query_pairs_mut().append_pair("pageSize", "1").append_pair("continuationToken", &legacy);
    let page: serde_json::Value = w.http.get(url).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.is_empty() || ids == [order[451].as_str()], "the next record or none yet: {ids:?}");
    // Paging on from there, then at a smaller page size, ends exactly at the end.
    let (mut got, mut token) = (
        ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        page["continuationToken"].as_str().map(str::to_owned),
    );
    let mut size = 50;
    while let Some(t) = token {
        let mut url: reqwest::Url = format!("http://{reader}/api/customers/c/billing-records").parse().unwrap();
        url.query_pairs_mut().append_pair("pageSize", &size.to_string()).append_pair("continuationToken", &t);
        let page: serde_json::Value = w.http.get(url).send().await.unwrap().json().await.unwrap();
        got.extend(page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        token = page["continuationToken"].as_str().map(str::to_owned);
        size = 1;
    }
    assert_eq!(got, order[451..].to_vec());
}

async fn just_ahead(page_size: usize, lag: usize) {
    // The hard case for markers: before each next page, the hot records just
    // after the page's end move to the archive, so their entries land between the
    // page's end and where the listing stopped. The second wave is written one
    // record a second, in list order, and a quiet period of a day lets each run
    // take exactly the records written before a chosen instant.
    let w = world().await;
    let wave = |p: &str| -> Vec<SampleRecord> {
        (0..24).map(|i| invoice("c", &format!("{p}-{i:02}"), days_ago(100 + i), 1_200, i as u64)).collect()
    };
    let (a, b) = (wave("a"), wave("b"));
    let archive: Arc<dyn Archive> = Arc::new(testkit::memory::MemoryArchive::with_azure_markers());
    seed(&w.cosmos, &a).await;
    assert_eq!(w.archiver(archive.clone()).run(Utc::now(), false).await.archived, 24);
    let mut written = Vec::new();
    for r in &b {
        seed(&w.cosmos, std::slice::from_ref(r)).await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        written.push(Utc::now());
    }
    let mut archiver = w.archiver(archive.clone());
    archiver.settings.quiet_days = 1;
    let reader = w.reader(archive.clone()).await;
    let all: Vec<SampleRecord> = a.iter().chain(&b).cloned().collect();
    let (mut ids, mut token, mut moved) = (Vec::new(), None::<String>, 0usize);
    loop {
        let mut url: reqwest::Url = format!("http://{reader}/api/customers/c/billing-records").parse().unwrap();
        url.query_pairs_mut().append_pair("pageSize", &page_size.to_string());
        if let Some(t) = &token {
            url.query_pairs_mut().append_pair("continuationToken", t);
        }
        let page: serde_json::Value = w.http.get(url).send().await.unwrap().json().await.unwrap();
        ids.extend(page["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        // The b record right after the page's end (hot while the page was read) moves now.
        let ahead = ids.len().div_ceil(2).saturating_sub(lag).min(b.len());
        if ahead > moved {
            let s = archiver.run(written[ahead - 1] + chrono::Duration::days(1), false).await;
            assert_eq!(s.archived as usize, ahead - moved, "{s:?}");
            moved = ahead;
        }
        match page["continuationToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(ids.len() < 200, "paging did not end");
    }
    assert_eq!(ids, expected(&all), "pageSize {page_size}, lag {lag}");
}

#[tokio::test]
async fn records_archived_just_ahead_of_each_page_are_listed_once_with_azure_markers() {
    futures::future::join_all([(1, 0), (1, 1), (2, 1), (3, 2)].map(|(size, lag)| just_ahead(size, lag))).await;
}
