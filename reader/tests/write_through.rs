//! Write-through (`READER_UPSTREAM_URL`, docs/writes.md) against the real
//! emulators (`./scripts/test.sh`): the reader passes the contract's writes to a
//! stand-in of the team's current API (`devhost::current_api`, which writes
//! straight to Cosmos as such an API does), moving archived records back first.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use archiver::startup::Archiver;
use chrono::Utc;
use testkit::cosmos::{fresh_stores, seed};
use testkit::emulator::TEST_TRANSPORT;
use testkit::hooks::{HookedArchive, Hooks, hook};
use testkit::sample::{SampleRecord, invoice};
use tiering::archive::{Archive, BlobArchive};
use tiering::contract::{Contract, DEFAULT_PROFILE};
use tiering::cosmos::CosmosStore;
use tiering::moveback::{self, MovedBack};
use tiering::record::AgeField;
use tiering::settings::{ArchiverSettings, ReaderSettings, StoreSettings};
use tiering::store::StoreError;

/// Today's API with the writes a billing API has (the default profile is read-only).
fn contract() -> Contract {
    let writes = "\n[writes]\nmethods = [\"PUT\", \"PATCH\", \"DELETE\"]\nsub_paths = true\n";
    Contract::parse(&format!("{DEFAULT_PROFILE}{writes}")).unwrap()
}

struct World {
    stores: StoreSettings,
    cosmos: CosmosStore,
    blob: BlobArchive,
    upstream: SocketAddr,
    reader: SocketAddr,
    old: Vec<SampleRecord>,
    http: reqwest::Client,
}

/// Three invoices dated 200 days ago, archived; the current API and the reader in front of them.
async fn world() -> World {
    let (stores, cosmos, blob) = fresh_stores(AgeField::Iso("invoiceDate".into())).await;
    let date = Utc::now().date_naive() - chrono::Duration::days(200);
    let old: Vec<SampleRecord> =
        (0..3).map(|i| invoice("cust-w", &format!("inv-{i}"), date, 5_000, 40 + i as u64)).collect();
    seed(&cosmos, &old).await;
    let upstream = devhost::current_api::start(contract(), &stores).await.unwrap();
    let reader = serve(&stores, Some(upstream), None).await;
    let w = World { stores, cosmos, blob, upstream, reader, old, http: reqwest::Client::new() };
    let summary = w.archiver(0, Arc::new(w.blob.clone())).run(Utc::now(), false).await;
    assert_eq!(summary.archived, 3, "{summary:?}");
    w
}

async fn serve(stores: &StoreSettings, upstream: Option<SocketAddr>, archive: Option<Arc<dyn Archive>>) -> SocketAddr {
    let settings = ReaderSettings {
        contract: contract(),
        upstream: upstream.map(|u| format!("http://{u}").parse().unwrap()),
        ..ReaderSettings::defaults(stores.clone())
    };
    let mut tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    if let Some(archive) = archive {
        tiers.tiers.archive = archive;
    }
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(tiers), std::future::pending()));
    addr
}

fn path(r: &SampleRecord) -> String {
    format!("/api/customers/{}/billing-records/{}", r.customer_id, r.id)
}

/// Status, the headers a consumer acts on, and the body.
type Answer = (u16, Option<String>, Vec<u8>);

impl World {
    fn archiver(&self, quiet_days: u32, archive: Arc<dyn Archive>) -> Archiver {
        let settings = ArchiverSettings {
            quiet_days,
            concurrency: 4,
            time_budget: Duration::from_secs(60),
            ..ArchiverSettings::defaults(self.stores.clone())
        };
        Archiver { cosmos: self.cosmos.clone(), archive, settings }
    }

    async fn send(&self, at: SocketAddr, method: &str, path: &str, body: Option<String>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("http://{at}{path}"));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
        (status, etag, response.bytes().await.unwrap().to_vec())
    }

    async fn via_reader(&self, method: &str, r: &SampleRecord, body: Option<String>) -> Answer {
        self.send(self.reader, method, &path(r), body).await
    }

    async fn archived(&self, r: &SampleRecord) -> bool {
        match self.blob.head(&tiering::layout::blob_name(&r.customer_id, &r.id).unwrap()).await {
            Ok(_) => true,
            Err(StoreError::NotFound) => false,
            Err(e) => panic!("{e}"),
        }
    }

    async fn hot(&self, r: &SampleRecord) -> bool {
        self.cosmos.exists(&r.customer_id, &r.id).await.unwrap()
    }
}

fn refunded(r: &SampleRecord) -> String {
    r.json.replacen(r#""status":"issued""#, r#""status":"refunded""#, 1)
}

#[tokio::test]
async fn an_update_to_an_archived_record_is_the_upstreams_and_the_new_version_is_archived_after_the_quiet_period() {
    let w = world().await;
    let r = &w.old[0];
    assert!(!w.hot(r).await && w.archived(r).await);

    let (status, etag, body) = w.via_reader("PUT", r, Some(refunded(r))).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The answer is the current API's own: the same as it gives for a read now.
    let direct = w.send(w.upstream, "GET", &path(r), None).await;
    assert_eq!((status, etag.clone(), body.clone()), direct, "the upstream's answer, unchanged");
    assert!(String::from_utf8_lossy(&body).contains(r#""status":"refunded""#));
    // The record is hot again, one tier only; reads serve the new version.
    assert!(w.hot(r).await && !w.archived(r).await);
    assert_eq!(w.via_reader("GET", r, None).await, direct);

    // Its business date is old, but it was written just now: the quiet period keeps it hot.
    let quiet = w.archiver(30, Arc::new(w.blob.clone()));
    let plan = archiver::plan::plan(&quiet, Utc::now(), &Default::default()).await.unwrap();
    assert_eq!((plan.records, plan.held_back_by_quiet_period), (0, 1), "{plan:?}");
    let summary = quiet.run(Utc::now(), false).await;
    assert_eq!(summary.archived, 0, "{summary:?}");
    assert!(w.hot(r).await);
    // Once its last write is older than the quiet period, the new version is archived...
    let later = quiet.run(Utc::now() + chrono::Duration::days(31), false).await;
    assert_eq!(later.archived, 1, "{later:?}");
    assert!(!w.hot(r).await && w.archived(r).await);
    // ...and reads still serve it, exactly.
    assert_eq!(w.via_reader("GET", r, None).await, direct);
}

#[tokio::test]
async fn deleting_an_archived_record_leaves_no_copy_in_either_tier() {
    let w = world().await;
    let r = &w.old[1];
    let (status, _, body) = w.via_reader("DELETE", r, None).await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = w.via_reader("GET", r, None).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(w.send(w.upstream, "GET", &path(r), None).await.0, 404);
    assert!(!w.hot(r).await && !w.archived(r).await);
    let archiver = w.archiver(0, Arc::new(w.blob.clone()));
    let report = archiver::ops::verify(&archiver, Some(&r.customer_id)).await.unwrap();
    assert_eq!(report.checked, 2, "only the other two copies: {report:?}");
    // The next run has nothing to bring back.
    let summary = archiver.run(Utc::now(), false).await;
    assert_eq!((summary.archived, summary.scanned), (0, 0), "{summary:?}");
    assert_eq!(w.via_reader("GET", r, None).await.0, 404);
}

#[tokio::test]
async fn patch_and_actions_pass_through_and_a_record_in_neither_tier_gets_the_upstreams_answer() {
    let w = world().await;
    let r = &w.old[2];
    let (status, _, body) = w.via_reader("PATCH", r, Some(r#"{"disputed":true}"#.into())).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains(r#""disputed":true"#));
    let action = format!("{}/refund", path(r));
    let (status, _, body) = w.send(w.reader, "POST", &action, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(r#""lastAction":"refund""#) && text.contains(r#""disputed":true"#), "{text}");

    let ghost = invoice("cust-w", "never-written", Utc::now().date_naive(), 2_000, 9);
    let through = w.via_reader("PUT", &ghost, Some(ghost.json.clone())).await;
    let direct = w.send(w.upstream, "PUT", &path(&ghost), Some(ghost.json.clone())).await;
    assert_eq!(through.0, 404);
    assert_eq!(through, direct, "forwarded, and the upstream's answer returned");
    assert!(!w.hot(&ghost).await && !w.archived(&ghost).await);
    // A malformed id is refused before anything is asked or forwarded.
    let (status, _, body) = w.send(w.reader, "PUT", "/api/customers/c/billing-records/a%5Cb", Some("{}".into())).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn concurrent_writes_and_move_backs_of_one_archived_record_leave_exactly_one_live_version() {
    let w = world().await;
    let r = &w.old[0];
    let first = r.json.replacen(r#""status":"issued""#, r#""status":"first""#, 1);
    let second = r.json.replacen(r#""status":"issued""#, r#""status":"second""#, 1);
    let (a, b) = tokio::join!(w.via_reader("PUT", r, Some(first)), w.via_reader("PUT", r, Some(second)));
    assert_eq!((a.0, b.0), (200, 200), "{} / {}", String::from_utf8_lossy(&a.2), String::from_utf8_lossy(&b.2));
    assert!(w.hot(r).await && !w.archived(r).await, "one live version, in Cosmos only");
    let now = w.via_reader("GET", r, None).await;
    assert!(now == a || now == b, "the last write wins, whole");

    // Two move-backs of one record at once, straight through the core: one creates.
    let r = &w.old[1];
    let name = tiering::layout::blob_name(&r.customer_id, &r.id).unwrap();
    let before = tiering::codec::decode_verified(
        &w.blob.get(&name).await.unwrap().body,
        &tiering::codec::ArchiveMeta::from_metadata(&w.blob.head(&name).await.unwrap().metadata).unwrap(),
    )
    .unwrap();
    let (x, y) = tokio::join!(
        moveback::move_back(&w.cosmos, &w.blob, &r.customer_id, &r.id, None),
        moveback::move_back(&w.cosmos, &w.blob, &r.customer_id, &r.id, None)
    );
    let outcomes = [x.unwrap(), y.unwrap()];
    let restored = outcomes.iter().filter(|o| matches!(o, MovedBack::Restored { copy_deleted: true, .. })).count();
    assert_eq!(restored, 1, "one creates: {outcomes:?}");
    assert!(outcomes.contains(&MovedBack::NotArchived), "the other finds the copy gone: {outcomes:?}");
    assert!(w.hot(r).await && !w.archived(r).await);
    let back = w.cosmos.read(&r.customer_id, &r.id).await.unwrap().doc;
    let archived = tiering::record::RawDocument::parse(before).unwrap();
    assert_eq!(back.without_system_properties(), archived.without_system_properties(), "moved back exactly");
}

#[tokio::test]
async fn a_write_while_the_archive_run_moves_the_same_record_waits_for_it_and_loses_nothing() {
    let w = world().await;
    // A fresh invoice, archived by a run that, between its upload and its delete,
    // meets a write through the reader.
    let r = invoice("cust-w", "inv-busy", Utc::now().date_naive() - chrono::Duration::days(150), 5_000, 77);
    seed(&w.cosmos, std::slice::from_ref(&r)).await;
    let name = tiering::layout::blob_name(&r.customer_id, &r.id).unwrap();
    let (reader, path, body) = (w.reader, path(&r), refunded(&r));
    let write = Arc::new(tokio::sync::Mutex::new(None));
    let slot = write.clone();
    let hooks = Hooks {
        // The archiver's read-back of its copy: the upload is done, the delete not yet.
        before_get: hook(move |blob| {
            let (name, slot, path, body) = (name.clone(), slot.clone(), path.clone(), body.clone());
            async move {
                let mut slot = slot.lock().await;
                if blob == name && slot.is_none() {
                    let client = reqwest::Client::new();
                    *slot = Some(tokio::spawn(async move {
                        let response = client.put(format!("http://{reader}{path}")).body(body).send().await.unwrap();
                        (response.status().as_u16(), response.bytes().await.unwrap())
                    }));
                    // Let the write find the same version in both tiers.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }),
        ..Default::default()
    };
    let hooked = Arc::new(HookedArchive { inner: Arc::new(w.blob.clone()), hooks });
    let summary = w.archiver(0, hooked).run(Utc::now(), false).await;
    assert_eq!(summary.archived, 1, "{summary:?}");
    let (status, body) = write.lock().await.take().expect("the write was sent").await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains(r#""status":"refunded""#));
    assert!(w.hot(&r).await && !w.archived(&r).await, "moved back after the run's delete, then written");
    let read = w.via_reader("GET", &r, None).await;
    assert!(String::from_utf8_lossy(&read.2).contains(r#""status":"refunded""#));
}

#[tokio::test]
async fn a_move_back_that_cannot_complete_answers_503_and_an_unreachable_upstream_502() {
    let w = world().await;
    let r = &w.old[0];
    let before = w.via_reader("GET", r, None).await;
    // The archive cannot be read: 503 with Retry-After, and nothing reaches the upstream.
    let counting = testkit::proxy::Proxy::start(w.upstream).await.unwrap();
    let mut down = w.stores.clone();
    down.blob_endpoint = "http://127.0.0.1:9/devstoreaccount1".parse().unwrap();
    let broken: Arc<dyn Archive> = Arc::new(BlobArchive::new(&down, TEST_TRANSPORT).unwrap());
    let reader = serve(&w.stores, Some(counting.addr), Some(broken)).await;
    let response = w.http.put(format!("http://{reader}{}", path(r))).body(refunded(r)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "ServiceUnavailable", "{error}");
    assert_eq!(counting.answered_bytes(), 0, "nothing forwarded");
    assert!(!w.hot(r).await && w.archived(r).await, "the record as it was");

    // The upstream cannot be reached: 502 with the JSON error; the record hot and intact.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let reader = serve(&w.stores, Some(gone), None).await;
    let response = w.http.put(format!("http://{reader}{}", path(r))).body(refunded(r)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 502);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "BadGateway", "{error}");
    assert!(w.hot(r).await && !w.archived(r).await);
    assert_eq!(w.via_reader("GET", r, None).await.2, before.2, "the same record, now from Cosmos");
}

#[tokio::test]
async fn without_an_upstream_the_reader_stays_read_only() {
    let w = world().await;
    let reader = serve(&w.stores, None, None).await;
    let r = &w.old[0];
    let response = w.http.put(format!("http://{reader}{}", path(r))).body(refunded(r)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    assert!(!w.hot(r).await && w.archived(r).await, "nothing moved back");
    let response = w.http.put(format!("http://{}{}", w.reader, "/api/customers/cust-w/billing-records")).send().await;
    assert_eq!(response.unwrap().status().as_u16(), 405, "the list route takes no writes");
}

#[tokio::test]
async fn a_conditional_write_with_the_etag_the_archive_served_applies_to_the_moved_back_record() {
    let w = world().await;
    let (r, other) = (&w.old[0], &w.old[1]);
    let (status, etag, _) = w.via_reader("GET", r, None).await;
    let etag = etag.expect("the archive serves the ETag");
    assert_eq!(status, 200);
    let response = w
        .http
        .put(format!("http://{}{}", w.reader, path(r)))
        .header("if-match", &etag)
        .body(refunded(r))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{:?}", response.text().await);
    assert!(String::from_utf8_lossy(&w.via_reader("GET", r, None).await.2).contains(r#""status":"refunded""#));
    // Another version's ETag is the upstream's to refuse, as it always was.
    let response = w
        .http
        .put(format!("http://{}{}", w.reader, path(other)))
        .header("if-match", "\"not-this-version\"")
        .body(refunded(other))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 412);
    assert!(!String::from_utf8_lossy(&w.via_reader("GET", other, None).await.2).contains("refunded"));
}

/// The copy is leased from before it is read until it is deleted: while one
/// move-back holds it, an erasure cannot delete it and a second move-back waits,
/// then finds the copy gone and creates nothing, so a record deleted right
/// after the first move-back is never brought back by the second.
#[tokio::test]
async fn a_move_back_holds_the_copy_so_no_other_brings_back_a_record_deleted_meanwhile() {
    let w = world().await;
    let r = w.old[2].clone();
    let name = tiering::layout::blob_name(&r.customer_id, &r.id).unwrap();
    let (cosmos, blob, key) = (w.cosmos.clone(), w.blob.clone(), (r.customer_id.clone(), r.id.clone()));
    let second = Arc::new(tokio::sync::Mutex::new(None));
    let slot = second.clone();
    let hooks = Hooks {
        before_get: hook(move |got| {
            let (cosmos, blob, key, slot, name) =
                (cosmos.clone(), blob.clone(), key.clone(), slot.clone(), name.clone());
            async move {
                let mut slot = slot.lock().await;
                if got != name || slot.is_some() {
                    return;
                }
                // forget's delete of the copy fails while it is leased.
                let etag = blob.head(&name).await.unwrap().etag;
                assert!(matches!(blob.delete_if_match(&name, &etag).await, Err(StoreError::PreconditionFailed)));
                *slot =
                    Some(tokio::spawn(async move { moveback::move_back(&cosmos, &blob, &key.0, &key.1, None).await }));
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }),
        ..Default::default()
    };
    let hooked = HookedArchive { inner: Arc::new(w.blob.clone()), hooks };
    let first = moveback::move_back(&w.cosmos, &hooked, &r.customer_id, &r.id, None).await.unwrap();
    assert!(matches!(first, MovedBack::Restored { copy_deleted: true, .. }), "{first:?}");
    // The record is deleted at once (a write-through DELETE)...
    assert!(w.cosmos.delete(&r.customer_id, &r.id).await.unwrap());
    // ...and the move-back that waited creates nothing.
    let waited = second.lock().await.take().expect("the second move-back ran").await.unwrap().unwrap();
    assert_eq!(waited, MovedBack::NotArchived);
    assert!(!w.hot(&r).await && !w.archived(&r).await, "deleted stays deleted");
}

/// The path a write passes on is checked segment by segment: dot segments (in
/// any encoding), encoded separators and `;` are refused with 400, before any
/// move-back and before anything reaches the current API, so a caller cannot
/// reach another customer's record through a sub-path.
#[tokio::test]
async fn a_write_path_that_would_resolve_to_another_record_is_refused_and_never_forwarded() {
    let w = world().await;
    let counting = testkit::proxy::Proxy::start(w.upstream).await.unwrap();
    let reader = serve(&w.stores, Some(counting.addr), None).await;
    let (a, b) = (&w.old[0], &w.old[1]);
    for bad in [
        format!("{}/%2e%2e/%2e%2e/%2e%2e/{}/billing-records/{}/refund", path(a), "cust-x", b.id),
        format!("{}/%2E%2e/%2e%2E/{}/refund", path(a), b.id),
        format!("{}/%252e%252e/%252e%252e/{}/refund", path(a), b.id),
        format!("{}/..%2f..%2f{}/refund", path(a), b.id),
        format!("{}/x%5c..%5c{}/refund", path(a), b.id),
        format!("{}/refund;x=1", path(a)),
    ] {
        let (status, head) = testkit::raw::request(reader, "POST", &bad, &[]).await.unwrap();
        assert_eq!(status, 400, "{bad}: {head}");
    }
    assert_eq!(counting.requests(), 0, "nothing reached the current API");
    assert!(w.archived(a).await && w.archived(b).await, "nothing moved back");
}
