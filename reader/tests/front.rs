//! Front mode (docs/front-mode.md) against the real emulators
//! (`./scripts/test.sh`): the reader in front of a billing API shaped like most
//! real ones (`devhost::mapped_api`: its own DTOs, ETag, problem+json errors,
//! list shape and cursor, API key), and in front of the default stand-in, whose
//! ETag is the document's `_etag`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use archiver::startup::Archiver;
use chrono::Utc;
use devhost::mapped_api::{self, API_KEY};
use testkit::cosmos::{copy_as_a_run_left_it, fresh_stores, seed};
use testkit::emulator::TEST_TRANSPORT;
use testkit::proxy::Proxy;
use testkit::sample::{SampleRecord, invoice};
use tiering::archive::{Archive, BlobArchive};
use tiering::contract::{Contract, DEFAULT_PROFILE};
use tiering::cosmos::CosmosStore;
use tiering::record::AgeField;
use tiering::settings::{ArchiverSettings, ReaderSettings, StoreSettings};
use tiering::store::StoreError;

struct World {
    stores: StoreSettings,
    cosmos: CosmosStore,
    blob: BlobArchive,
    api: SocketAddr,
    reader: SocketAddr,
    old: Vec<SampleRecord>,
    new: Vec<SampleRecord>,
    http: reqwest::Client,
}

fn profile(max_page_size: usize) -> Contract {
    let text = mapped_api::PROFILE.replace("max_page_size = 100", &format!("max_page_size = {max_page_size}"));
    Contract::parse(&text).unwrap()
}

/// Invoices of one account: `old` dated 100 to 100 + n/3 days ago, three to a
/// day (to be archived), `new` recent.
async fn world(old: usize, new: usize, moveback_max: usize, max_page_size: usize) -> World {
    let (stores, cosmos, blob) = fresh_stores(AgeField::Iso("invoiceDate".into())).await;
    let today = Utc::now().date_naive();
    let old: Vec<SampleRecord> = (0..old)
        .map(|i| {
            invoice(
                "acct-1",
                &format!("inv-o{i:04}"),
                today - chrono::Duration::days(100 + i as i64 / 3),
                3_000,
                i as u64,
            )
        })
        .collect();
    let new: Vec<SampleRecord> = (0..new)
        .map(|i| {
            invoice(
                "acct-1",
                &format!("inv-n{i:04}"),
                today - chrono::Duration::days(1 + i as i64),
                3_000,
                900 + i as u64,
            )
        })
        .collect();
    seed(&cosmos, &old).await;
    seed(&cosmos, &new).await;
    let api = mapped_api::start(&stores).await.unwrap();
    let reader = serve(&stores, profile(max_page_size), api, moveback_max, None).await;
    World { stores, cosmos, blob, api, reader, old, new, http: reqwest::Client::new() }
}

async fn serve(
    stores: &StoreSettings,
    contract: Contract,
    upstream: SocketAddr,
    moveback_max: usize,
    archive: Option<Arc<dyn Archive>>,
) -> SocketAddr {
    let settings = ReaderSettings {
        contract,
        upstream: Some(format!("http://{upstream}").parse().unwrap()),
        list_moveback_max: moveback_max,
        ..ReaderSettings::defaults(stores.clone())
    };
    let mut app = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    if let Some(archive) = archive {
        app.tiers.archive = archive;
    }
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(app), std::future::pending()));
    addr
}

fn path(r: &SampleRecord) -> String {
    format!("/api/v2/accounts/{}/invoices/{}", r.customer_id, r.id)
}

/// What a consumer sees: status, every header but the per-answer ones, the body as sent.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl World {
    fn archiver(&self) -> Archiver {
        let settings = ArchiverSettings {
            quiet_days: 0,
            concurrency: 8,
            time_budget: Duration::from_secs(120),
            ..ArchiverSettings::defaults(self.stores.clone())
        };
        Archiver { cosmos: self.cosmos.clone(), archive: Arc::new(self.blob.clone()), settings }
    }

    async fn archive(&self) {
        let summary = self.archiver().run(Utc::now(), false).await;
        assert_eq!(summary.archived, self.old.len() as u64, "{summary:?}");
    }

    async fn send(
        &self,
        at: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Seen {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("http://{at}{path}"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "date" | "request-id" | "content-length" | "transfer-encoding"))
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        headers.sort();
        Seen { status, headers, body: response.bytes().await.unwrap().to_vec() }
    }

    /// A GET as a consumer sends it: the API key, gzip accepted.
    async fn get(&self, at: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Seen {
        let mut headers = vec![("x-api-key", API_KEY), ("accept-encoding", "gzip")];
        headers.extend_from_slice(extra);
        self.send(at, "GET", path, &headers, None).await
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

    /// Every invoice of the account, paging with `limit` and the window `query`, through `at`.
    async fn list_all(&self, at: SocketAddr, query: &str, limit: usize) -> (Vec<String>, usize) {
        let (mut ids, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let mut q = format!("limit={limit}&{query}");
            if let Some(c) = &cursor {
                q += &format!("&cursor={c}");
            }
            let page = self
                .send(at, "GET", &format!("/api/v2/accounts/acct-1/invoices?{q}"), &[("x-api-key", API_KEY)], None)
                .await;
            assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
            let json = page.json();
            let data = json["data"].as_array().unwrap();
            assert!(data.len() <= limit);
            ids.extend(data.iter().map(|d| d["invoiceNumber"].as_str().unwrap().to_owned()));
            pages += 1;
            match json["paging"]["next"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return (ids, pages),
            }
        }
    }
}

#[tokio::test]
async fn a_read_is_the_current_apis_answer_and_an_archived_record_comes_back_as_it_was() {
    let w = world(3, 2, 200, 100).await;
    let (old, hot) = (&w.old[0], &w.new[0]);
    let before = w.get(w.api, &path(old), &[]).await;
    assert_eq!(before.status, 200);
    assert_eq!(before.header("content-encoding"), Some("gzip"), "as the API sent it: never decompressed");
    // A hot record: the API's answer, every header and byte, streamed through.
    assert_eq!(w.get(w.reader, &path(hot), &[]).await, w.get(w.api, &path(hot), &[]).await);
    assert_eq!(w.get(w.reader, &path(old), &[]).await, before, "before archiving, as the API answers");
    w.archive().await;
    assert_eq!(w.get(w.api, &path(old), &[]).await.status, 404, "the API alone no longer has it");
    assert!(w.archived(old).await && !w.hot(old).await);
    // Through the reader: the API said 404, the record moved back, the API asked again.
    let after = w.get(w.reader, &path(old), &[]).await;
    assert_eq!(after, before, "the same status, headers (the API's own ETag) and bytes");
    assert!(w.hot(old).await && !w.archived(old).await, "hot again, one tier");
    // The ETag the consumer held before archiving still revalidates (the API's is the DTO's hash).
    let tag = before.header("etag").unwrap().to_owned();
    assert_eq!(w.get(w.reader, &path(old), &[("if-none-match", &tag)]).await.status, 304);
    // A record in neither tier: the API's own problem+json, unchanged, and nothing moves.
    let missing = w.get(w.reader, "/api/v2/accounts/acct-1/invoices/nope", &[]).await;
    assert_eq!(missing, w.get(w.api, "/api/v2/accounts/acct-1/invoices/nope", &[]).await);
    assert_eq!(
        (missing.status, missing.header("content-type")),
        (404, Some("application/problem+json; charset=utf-8"))
    );
}

#[tokio::test]
async fn a_condition_on_the_archived_etag_is_renamed_when_the_api_serves_the_documents_etag() {
    // The default stand-in's ETag is the document's `_etag`: moving back changes it.
    let (stores, cosmos, blob) = fresh_stores(AgeField::Iso("invoiceDate".into())).await;
    let r = invoice("cust-1", "inv-1", Utc::now().date_naive() - chrono::Duration::days(200), 4_000, 1);
    seed(&cosmos, std::slice::from_ref(&r)).await;
    let front = format!("{DEFAULT_PROFILE}\n[front]\n[front.list]\nfrom = \"from\"\nto = \"to\"\n");
    let writes = format!("{DEFAULT_PROFILE}\n[writes]\nmethods = [\"PUT\", \"PATCH\", \"DELETE\"]\n");
    let api = devhost::current_api::start(Contract::parse(&writes).unwrap(), &stores).await.unwrap();
    let reader = serve(&stores, Contract::parse(&front).unwrap(), api, 200, None).await;
    let w =
        World { stores, cosmos, blob, api, reader, old: vec![r.clone()], new: vec![], http: reqwest::Client::new() };
    let path = format!("/api/customers/{}/billing-records/{}", r.customer_id, r.id);
    let before = w.send(w.reader, "GET", &path, &[], None).await;
    let tag = before.header("etag").unwrap().to_owned();
    w.archive().await;
    // A revalidation with the ETag seen before archiving: 304, as before.
    let again = w.send(w.reader, "GET", &path, &[("if-none-match", &tag)], None).await;
    assert_eq!(again.status, 304, "{again:?}");
    assert_ne!(again.header("etag"), Some(tag.as_str()), "Cosmos gave the moved-back record a new _etag");
}

#[tokio::test]
async fn writes_to_archived_records_move_them_back_and_a_delete_leaves_nothing_to_resurrect() {
    let w = world(5, 1, 200, 100).await;
    let (patched, voided, deleted) = (&w.old[0], &w.old[1], &w.old[2]);
    let tag = w.get(w.api, &path(patched), &[]).await.header("etag").unwrap().to_owned();
    w.archive().await;
    let key = [("x-api-key", API_KEY), ("if-match", tag.as_str())];
    // The API answers If-Match on an invoice it cannot find with 412 (RFC 9110):
    // the record is moved back on that too, and the write applies.
    assert_eq!(w.send(w.api, "PATCH", &path(patched), &key, Some(r#"{"status":"paid"}"#)).await.status, 412);
    let answer = w.send(w.reader, "PATCH", &path(patched), &key, Some(r#"{"status":"paid"}"#)).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["status"], "Paid");
    let stale = w.send(w.reader, "PATCH", &path(patched), &key, Some(r#"{"status":"void"}"#)).await;
    assert_eq!(stale.status, 412, "the API's own If-Match, on its own ETag");
    let action = w.send(w.reader, "POST", &format!("{}/void", path(voided)), &[("x-api-key", API_KEY)], None).await;
    assert_eq!((action.status, action.json()["status"].as_str()), (200, Some("Void")), "a sub-path moves it back too");
    // The API deletes what it does not have with 204: the copy goes too.
    let gone = w.send(w.reader, "DELETE", &path(deleted), &[("x-api-key", API_KEY)], None).await;
    assert_eq!(gone.status, 204);
    assert!(!w.hot(deleted).await && !w.archived(deleted).await, "deleted from both tiers");
    assert_eq!(w.get(w.reader, &path(deleted), &[]).await.status, 404, "never served again");
    // A delete that reaches the API while a run takes the record (copied and
    // verified, not yet deleted from Cosmos): the run's copy goes with it.
    let taken = &w.old[3];
    assert_eq!(w.get(w.reader, &path(taken), &[]).await.status, 200, "moved back");
    copy_as_a_run_left_it(&w.cosmos, &w.blob, &w.stores.age_field, taken, true).await.unwrap();
    assert_eq!(w.send(w.reader, "DELETE", &path(taken), &[("x-api-key", API_KEY)], None).await.status, 204);
    assert!(!w.hot(taken).await && !w.archived(taken).await, "deleted from both tiers");
    assert_eq!(w.get(w.reader, &path(taken), &[]).await.status, 404, "never brought back");
    // A delete of a sub-path deletes nothing of the record.
    let kept = &w.old[4];
    let sub = w.send(w.reader, "DELETE", &format!("{}/notes", path(kept)), &[("x-api-key", API_KEY)], None).await;
    assert_ne!(sub.status / 100, 2, "the API has no such sub-path");
    assert!(w.archived(kept).await || w.hot(kept).await, "the record is in one tier");
}

#[tokio::test]
async fn a_delete_that_races_a_move_back_leaves_the_record_in_neither_tier() {
    let w = world(1, 0, 200, 100).await;
    w.archive().await;
    let r = &w.old[0];
    let name = tiering::layout::blob_name(&r.customer_id, &r.id).unwrap();
    // Another request's move-back holds the copy: the record is not in Cosmos
    // yet when the DELETE reaches the API, which answers 204 for what it does
    // not have; the move-back then creates the record and deletes the copy,
    // and the write that had met "missing" changes it.
    let hold = "another-move-back";
    assert!(w.blob.acquire_lease(&name, 60, hold).await.unwrap());
    let mut written: serde_json::Value = serde_json::from_str(&r.json).unwrap();
    written["status"] = "paid".into();
    let other = {
        let (cosmos, blob, name, r) = (w.cosmos.clone(), w.blob.clone(), name.clone(), r.clone());
        let written = written.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            testkit::cosmos::upsert_raw(&cosmos, &r.customer_id, &r.id, &written).await.unwrap();
            let etag = blob.head(&name).await.unwrap().etag;
            blob.delete_leased(&name, &etag, hold).await.unwrap();
        })
    };
    let deleted = w.send(w.reader, "DELETE", &path(r), &[("x-api-key", API_KEY)], None).await;
    other.await.unwrap();
    assert_eq!(deleted.status, 204, "{}", String::from_utf8_lossy(&deleted.body));
    assert!(!w.hot(r).await && !w.archived(r).await, "the record the other move-back brought back is deleted too");
    assert_eq!(w.get(w.reader, &path(r), &[]).await.status, 404);
}

#[tokio::test]
async fn a_record_created_anew_right_after_a_delete_is_never_deleted_by_it() {
    let w = world(1, 0, 200, 100).await;
    w.archive().await;
    let r = &w.old[0];
    let mut anew: serde_json::Value = serde_json::from_str(&r.json).unwrap();
    anew["note"] = "created anew under the same id".into();
    // Another consumer creates the id once the API has answered the delete,
    // before the reader looks at the archive after it.
    let once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hooks = testkit::hooks::Hooks {
        before_get: testkit::hooks::hook({
            let (cosmos, r, anew, once) = (w.cosmos.clone(), r.clone(), anew.to_string(), once.clone());
            move |_| {
                let (cosmos, r, anew, once) = (cosmos.clone(), r.clone(), anew.clone(), once.clone());
                async move {
                    if !once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        testkit::cosmos::upsert_raw(&cosmos, &r.customer_id, &r.id, &anew).await.unwrap();
                    }
                }
            }
        }),
        ..Default::default()
    };
    let hooked = testkit::hooks::HookedArchive { inner: Arc::new(w.blob.clone()), hooks };
    let reader = serve(&w.stores, profile(100), w.api, 200, Some(Arc::new(hooked))).await;
    let deleted = w.send(reader, "DELETE", &path(r), &[("x-api-key", API_KEY)], None).await;
    assert_eq!(deleted.status, 204, "{}", String::from_utf8_lossy(&deleted.body));
    assert!(once.load(std::sync::atomic::Ordering::SeqCst), "the other consumer wrote");
    let now = w.cosmos.read(&r.customer_id, &r.id).await.expect("the new record stays");
    assert!(String::from_utf8_lossy(now.doc.as_bytes()).contains("created anew"));
    assert!(!w.archived(r).await, "the deleted version's copy is gone");
}

#[tokio::test]
async fn nothing_moves_for_a_refused_caller_a_bad_path_or_an_api_that_is_down() {
    let w = world(2, 0, 200, 100).await;
    w.archive().await;
    let old = &w.old[0];
    // The API refuses a caller without its key: its 401, and the record stays archived.
    let refused = w.send(w.reader, "GET", &path(old), &[], None).await;
    assert_eq!(refused, w.send(w.api, "GET", &path(old), &[], None).await);
    assert_eq!(refused.status, 401);
    assert!(w.archived(old).await && !w.hot(old).await, "nothing moved back for a refused caller");
    // Nor for its writes, nor for a preflight: nothing moves before the API answers.
    for (method, body) in [("PATCH", Some(r#"{"status":"paid"}"#)), ("DELETE", None), ("POST", None)] {
        let at = if method == "POST" { format!("{}/void", path(old)) } else { path(old) };
        let refused = w.send(w.reader, method, &at, &[], body).await;
        assert_eq!(refused.status, 401, "{method}");
    }
    let preflight = [("origin", "https://app.example"), ("access-control-request-method", "PATCH")];
    let answered = w.send(w.reader, "OPTIONS", &path(old), &preflight, None).await;
    assert_eq!(answered, w.send(w.api, "OPTIONS", &path(old), &preflight, None).await, "the API's own answer");
    assert!(w.archived(old).await && !w.hot(old).await, "nothing moved back for refused writes or a preflight");
    // A conditional write to a record that was never there: the API's 412, nothing moved.
    let ghost = "/api/v2/accounts/acct-1/invoices/ghost";
    let condition = [("x-api-key", API_KEY), ("if-match", "W/\"x\"")];
    let unmet = w.send(w.reader, "PATCH", ghost, &condition, Some(r#"{"status":"paid"}"#)).await;
    assert_eq!(unmet.status, 412);
    // Paths that would resolve elsewhere: 400 here, nothing forwarded.
    let counting = Proxy::start(w.api).await.unwrap();
    let guarded = serve(&w.stores, profile(100), counting.addr, 200, None).await;
    for bad in [
        "/api/v2/accounts/acct-1/invoices/inv-o0000/%2e%2e/%2e%2e/acct-2/invoices/x",
        "/api/v2/accounts/acct-1/invoices/inv-o0000/%2E%2e/%2e%2E/acct-2/invoices/x/void",
        "/api/v2/accounts/acct-1/invoices/inv-o0000/%252e%252e/void",
        "/api/v2/accounts/acct-1/invoices/inv-o0000/.%2e/x",
        "/api/v2/accounts/acct-1/invoices/a%2Fb",
        "/api/v2/accounts/acct-1/invoices/a%5Cb/void",
        "/api/v2/accounts/acct-1/invoices/inv;x=1",
    ] {
        // Sent as written: an HTTP client would resolve the dot segments itself.
        let (status, head) = testkit::raw::request(guarded, "POST", bad, &[("x-api-key", API_KEY)]).await.unwrap();
        assert_eq!(status, 400, "{bad}: {head}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{bad}: {head}");
    }
    assert_eq!(counting.requests(), 0, "nothing reached the API");
    // A flood of misses: one archive lookup and one Cosmos read each, nothing moved.
    let blob_proxy = Proxy::in_front_of(w.stores.blob_endpoint.as_str()).await.unwrap();
    let mut watched = w.stores.clone();
    watched.blob_endpoint = blob_proxy.endpoint_for(w.stores.blob_endpoint.as_str()).parse().unwrap();
    let watched_reader = serve(&watched, profile(100), w.api, 200, None).await;
    let before = blob_proxy.requests();
    for i in 0..20 {
        let missing = w.get(watched_reader, &format!("/api/v2/accounts/acct-1/invoices/ghost-{i}"), &[]).await;
        assert_eq!(missing.status, 404);
    }
    assert!(blob_proxy.requests() - before <= 20, "{} archive requests for 20 misses", blob_proxy.requests() - before);
    // The API down: 502, nothing applied, nothing moved.
    let dead = serve(&w.stores, profile(100), "127.0.0.1:9".parse().unwrap(), 200, None).await;
    let down = w.send(dead, "GET", &path(old), &[("x-api-key", API_KEY)], None).await;
    assert_eq!(down.status, 502, "{down:?}");
    assert!(w.archived(old).await, "nothing moved back while the API is down");
}

#[tokio::test]
async fn an_upstream_that_leads_back_to_the_reader_is_answered_once_never_looped() {
    let (stores, _, _) = fresh_stores(AgeField::Iso("invoiceDate".into())).await;
    // The reader's upstream is a proxy in front of the reader itself.
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    let looping = Proxy::start(addr).await.unwrap();
    let settings = ReaderSettings {
        contract: profile(100),
        upstream: Some(format!("http://{}", looping.addr).parse().unwrap()),
        ..ReaderSettings::defaults(stores.clone())
    };
    let app = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(app), std::future::pending()));
    let http = reqwest::Client::new();
    let answer = http.get(format!("http://{addr}/api/v2/accounts/a/invoices/b")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 508);
    assert_eq!(looping.requests(), 1, "forwarded once, answered once");
}

#[tokio::test]
async fn paging_through_a_window_into_the_archive_lists_every_record_once_in_the_apis_order() {
    // 60 archived and 7 hot invoices; each list request moves back at most 10, pages of 5.
    let w = world(60, 7, 10, 5).await;
    let (everything, _) = w.list_all(w.api, "", 5).await;
    assert_eq!(everything.len(), 67);
    let window = {
        let today = Utc::now().date_naive();
        format!("issuedFrom={}&issuedTo={}", today - chrono::Duration::days(140), today - chrono::Duration::days(3))
    };
    let (in_window, _) = w.list_all(w.api, &window, 5).await;
    w.archive().await;
    let (api_alone, _) = w.list_all(w.api, "", 5).await;
    assert_eq!(api_alone.len(), 7, "the API alone lists the hot ones only");
    // A window that does not reach the archive moves nothing.
    let recent = {
        let today = Utc::now().date_naive();
        format!("issuedFrom={}", today - chrono::Duration::days(30))
    };
    let (hot_only, _) = w.list_all(w.reader, &recent, 5).await;
    assert_eq!(hot_only.len(), 7);
    assert!(w.archived(&w.old[0]).await, "nothing moved for a window of hot records");
    // A window into the archive: every record in it once, in the API's order.
    let (through, pages) = w.list_all(w.reader, &window, 5).await;
    assert_eq!(through, in_window, "as the API listed it before archiving");
    assert!(pages >= 9);
    // And the whole list, with what is still archived.
    let (all, _) = w.list_all(w.reader, "", 5).await;
    assert_eq!(all, everything);
}

#[tokio::test]
async fn a_day_of_archived_records_comes_back_whole_whatever_order_the_api_gives_it() {
    // 30 archived invoices, three to a day, none hot; each list request moves
    // back 5 and pages hold 5, so every page ends where the records moved back
    // end. The list index orders a day's records by id, ascending; the API by
    // number, descending: a day split between the tiers would let the API's
    // cursor pass the records of it still archived.
    let w = world(30, 0, 5, 5).await;
    let (before, _) = w.list_all(w.api, "", 5).await;
    assert_eq!(before.len(), 30);
    w.archive().await;
    let (through, _) = w.list_all(w.reader, "", 5).await;
    assert_eq!(through, before, "every invoice once, in the API's order");
}

#[tokio::test]
async fn a_list_narrowed_by_a_filter_the_profile_does_not_name_lists_every_match() {
    // 60 archived invoices, every fourth one paid; each list request moves back
    // at most 10, pages of 5. The first 10 archived hold 3 paid ones: the
    // filtered list needs paid invoices from all through the archive.
    let w = world(60, 7, 10, 5).await;
    for r in w.old.iter().step_by(4) {
        let paid = w.send(w.api, "PATCH", &path(r), &[("x-api-key", API_KEY)], Some(r#"{"status":"paid"}"#)).await;
        assert_eq!(paid.status, 200);
    }
    let (before, _) = w.list_all(w.api, "status=paid", 5).await;
    assert_eq!(before.len(), 15);
    w.archive().await;
    let (through, _) = w.list_all(w.reader, "status=paid", 5).await;
    assert_eq!(through, before, "every paid invoice, in the API's order");
}

#[tokio::test]
async fn with_bearer_tokens_the_readers_rule_runs_before_anything_is_forwarded_or_moved() {
    let idp = testkit::idp::Idp::start().await.unwrap();
    let w = world(2, 0, 200, 100).await;
    w.archive().await;
    let counting = Proxy::start(w.api).await.unwrap();
    let bearer = format!("{}{}", mapped_api::PROFILE, idp.auth_section("accountId", 300, ""));
    let reader = serve(&w.stores, Contract::parse(&bearer).unwrap(), counting.addr, 200, None).await;
    let other = idp.token(serde_json::json!({"accountId": "acct-2"}));
    let auth = format!("Bearer {other}");
    let answer =
        w.send(reader, "GET", &path(&w.old[0]), &[("authorization", &auth), ("x-api-key", API_KEY)], None).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(counting.requests(), 0, "refused before the API was asked");
    assert!(w.archived(&w.old[0]).await);
    let mine = format!("Bearer {}", idp.token(serde_json::json!({"accountId": "acct-1"})));
    let overridden = [("authorization", mine.as_str()), ("x-api-key", API_KEY), ("x-http-method-override", "DELETE")];
    let served = w.send(reader, "GET", &path(&w.old[0]), &overridden, None).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert!(w.hot(&w.old[0]).await, "moved back for a caller the rule and the API both let through");
}
