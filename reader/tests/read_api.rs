//! The read API against the real emulators, started by `./scripts/test.sh`.
//! Containers are created with the default indexing policy (as a production
//! container has) unless a test says otherwise; the list suite runs on both.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use archiver::startup::Archiver;
use chrono::{NaiveDate, Utc};
use testkit::cosmos::{Indexing, fresh_cosmos, fresh_cosmos_with, upsert_raw};
use testkit::emulator::{OwnEmulator, TEST_TRANSPORT, emulator_settings};
use testkit::hooks::{HookedArchive, Hooks, hook};
use testkit::proxy::Proxy;
use testkit::sample::invoice;
use tiering::archive::{Archive, BlobArchive, PutCondition};
use tiering::codec::{self, ArchiveMeta};
use tiering::cosmos::CosmosStore;
use tiering::layout;
use tiering::record::AgeField;
use tiering::settings::{ArchiverSettings, ReaderSettings, StoreSettings};
use tiering::store::Transport;

struct App {
    addr: SocketAddr,
    stores: StoreSettings,
    cosmos: CosmosStore,
    blob: BlobArchive,
    http: reqwest::Client,
}

/// A reader on a free port over fresh stores (default indexing, 10 s deadline).
async fn app(stores: StoreSettings) -> App {
    app_with(stores, Indexing::Default).await
}

async fn app_with(stores: StoreSettings, indexing: Indexing) -> App {
    let cosmos = fresh_cosmos_with(&stores, indexing).await;
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    let addr = serve(&stores, Duration::from_secs(10)).await;
    App { addr, stores, cosmos, blob, http: reqwest::Client::new() }
}

/// Starts a reader on `stores` (which may route through proxies); returns its address.
async fn serve(stores: &StoreSettings, request_timeout: Duration) -> SocketAddr {
    let settings = ReaderSettings { request_timeout, ..ReaderSettings::defaults(stores.clone()) };
    let tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    serve_tiers(tiers).await
}

async fn serve_tiers(tiers: reader::app::App) -> SocketAddr {
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(tiers), std::future::pending()));
    addr
}

/// Status, the headers a consumer can see, and the body.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn url_at(addr: SocketAddr, customer: &str, id: Option<&str>) -> reqwest::Url {
    let mut url: reqwest::Url = format!("http://{addr}/").parse().unwrap();
    {
        let mut seg = url.path_segments_mut().unwrap();
        seg.pop_if_empty().extend(["api", "customers", customer, "billing-records"]);
        if let Some(id) = id {
            seg.push(id);
        }
    }
    url
}

async fn get(http: &reqwest::Client, url: reqwest::Url, if_none_match: Option<&str>) -> Answer {
    let mut req = http.get(url);
    if let Some(tag) = if_none_match {
        req = req.header("If-None-Match", tag);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    // `date` differs between any two responses; everything else must match.
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    Answer { status, headers, body: resp.bytes().await.unwrap().to_vec() }
}

impl App {
    fn url(&self, customer: &str, id: Option<&str>) -> reqwest::Url {
        url_at(self.addr, customer, id)
    }

    async fn get(&self, url: reqwest::Url, if_none_match: Option<&str>) -> Answer {
        get(&self.http, url, if_none_match).await
    }

    async fn record(&self, customer: &str, id: &str) -> Answer {
        self.get(self.url(customer, Some(id)), None).await
    }

    async fn list(&self, customer: &str, query: &str) -> Answer {
        let mut url = self.url(customer, None);
        url.set_query(Some(query));
        self.get(url, None).await
    }

    fn archiver_on(&self, archive: Arc<dyn Archive>, stores: &StoreSettings, after_days: u32) -> Archiver {
        Archiver {
            cosmos: self.cosmos.clone(),
            archive,
            settings: ArchiverSettings {
                after_days,
                quiet_days: 0,
                concurrency: 4,
                time_budget: Duration::from_secs(120),
                ..ArchiverSettings::defaults(stores.clone())
            },
        }
    }

    fn archiver(&self, after_days: u32) -> Archiver {
        self.archiver_on(Arc::new(self.blob.clone()), &self.stores, after_days)
    }

    /// Sends raw bytes as the request line, so no client normalises the path first.
    async fn raw_get(&self, path: &str) -> (u16, serde_json::Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out);
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    }
}

/// Documents that stress byte-exactness: key order, number text, escapes, unicode, size.
fn awkward_documents() -> Vec<(String, String, String)> {
    let big = invoice("cust-1", "big-300k", NaiveDate::from_ymd_opt(2025, 1, 31).unwrap(), 300_000, 3);
    let docs = [
        ("cust-1", "plain-1", r#"{"zeta":1,"id":"plain-1","customerId":"cust-1","alpha":[]}"#.to_owned()),
        ("cust-1", "ünï cødé ☃", r#"{"id":"ünï cødé ☃","customerId":"cust-1","name":"Zoë \u00e9 \ud83d\ude00","note":"tab\there \"quoted\" back\\slash \/ slash"}"#.to_owned()),
        ("cust-1", "50%+.x", r#"{"id":"50%+.x","customerId":"cust-1","amount":12345678901234567890.123456789,"tiny":1e-7,"neg":-0.0,"exp":6.02E23,"int":9007199254740993}"#.to_owned()),
        ("cust-1", "deep", format!(r#"{{"id":"deep","customerId":"cust-1","n":{}1{}}}"#, "[".repeat(60), "]".repeat(60))),
        ("cust-1", "empties", r#"{"id":"empties","customerId":"cust-1","a":[],"o":{},"s":"","z":null,"t":true,"f":false}"#.to_owned()),
        ("cust 2-ü", "a b", r#"{"customerId":"cust 2-ü","id":"a b","lines":[{"q":1.50},{"q":2.0}]}"#.to_owned()),
        ("cust-1", "big-300k", big.json),
    ];
    docs.into_iter().map(|(c, i, j)| (c.to_owned(), i.to_owned(), j)).collect()
}

#[tokio::test]
async fn an_archived_record_reads_exactly_as_it_did_from_cosmos() {
    let app = app(emulator_settings(AgeField::Ts)).await;
    let docs = awkward_documents();
    for (customer, id, json) in &docs {
        upsert_raw(&app.cosmos, customer, id, json).await.unwrap();
    }
    let mut hot = HashMap::new();
    for (customer, id, _) in &docs {
        let answer = app.record(customer, id).await;
        assert_eq!(answer.status, 200, "{id}: {}", answer.text());
        assert_eq!(answer.header("content-type"), Some("application/json; charset=utf-8"));
        assert!(answer.header("etag").unwrap().starts_with('"'));
        assert!(answer.header("last-modified").unwrap().ends_with(" GMT"));
        assert!(!answer.text().contains("\"_rid\""));
        hot.insert(id.clone(), answer);
    }
    // Key order and number text as Cosmos returned them (the emulator re-prints numbers like JS).
    let first = &hot["plain-1"];
    assert_eq!(first.body, br#"{"zeta":1,"id":"plain-1","customerId":"cust-1","alpha":[]}"#);

    // `_ts` is the write time, so "now + 100 days" makes every record 100 days old.
    let summary = app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    assert_eq!(summary.archived as usize, docs.len(), "{summary:?}");
    for (customer, id, _) in &docs {
        assert!(app.cosmos.read(customer, id).await.is_err(), "{id} should be archived");
        let cold = app.record(customer, id).await;
        assert_eq!(&cold, &hot[id], "{id}: the archive must answer exactly as Cosmos did");
        // 304 on the archive tier, with the same validators.
        let tag = cold.header("etag").unwrap();
        let not_modified = app.get(app.url(customer, Some(id)), Some(tag)).await;
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.body.is_empty());
        assert_eq!(not_modified.header("etag"), Some(tag));
        assert_eq!(not_modified.header("last-modified"), cold.header("last-modified"));
    }
}

#[tokio::test]
async fn not_modified_on_the_hot_tier_and_cosmos_wins_when_in_both() {
    let app = app(emulator_settings(AgeField::Ts)).await;
    upsert_raw(&app.cosmos, "c", "r", r#"{"id":"r","customerId":"c","v":1}"#).await.unwrap();
    let hot = app.record("c", "r").await;
    let tag = hot.header("etag").unwrap().to_owned();
    assert_eq!(app.get(app.url("c", Some("r")), Some(&tag)).await.status, 304);
    assert_eq!(app.get(app.url("c", Some("r")), Some("\"other\"")).await.status, 200);

    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    // Re-created after archiving: both tiers hold it, Cosmos has the newer one.
    upsert_raw(&app.cosmos, "c", "r", r#"{"id":"r","customerId":"c","v":2}"#).await.unwrap();
    let answer = app.record("c", "r").await;
    assert_eq!(answer.body, br#"{"id":"r","customerId":"c","v":2}"#);
    assert_ne!(answer.header("etag").unwrap(), tag);
    assert_eq!(app.get(app.url("c", Some("r")), Some(&tag)).await.status, 200, "the old tag no longer matches");
}

#[tokio::test]
async fn a_cold_revalidation_is_answered_from_metadata_without_the_body() {
    let mut stores = emulator_settings(AgeField::Ts);
    let direct = stores.blob_endpoint.to_string();
    let app = app(stores.clone()).await;
    let big = invoice("c", "big", NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(), 300_000, 1);
    upsert_raw(&app.cosmos, "c", "big", &big.json).await.unwrap();
    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    // A second reader whose archive traffic passes a proxy that counts bytes.
    let proxy = Proxy::in_front_of(&direct).await.unwrap();
    stores.blob_endpoint = proxy.endpoint_for(&direct).parse().unwrap();
    let addr = serve(&stores, Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let full = get(&http, url_at(addr, "c", Some("big")), None).await;
    assert_eq!(full.status, 200);
    let download = proxy.answered_bytes();
    assert!(download > 20_000, "the cold read downloads the compressed body ({download} bytes)");
    let revalidated = get(&http, url_at(addr, "c", Some("big")), full.header("etag")).await;
    assert_eq!(revalidated.status, 304);
    let spent = proxy.answered_bytes() - download;
    assert!(spent < 5_000, "a 304 must come from metadata, not a {spent}-byte download");
}

#[tokio::test]
async fn missing_records_are_404_with_a_json_error() {
    let app = app(emulator_settings(AgeField::Ts)).await;
    let answer = app.record("nobody", "nothing").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(answer.json()["error"]["code"], "NotFound");
    assert!(answer.json()["error"]["message"].as_str().unwrap().contains("nothing"));
    // Another method reaching the reader is a 405 that says what is allowed (RFC 9110).
    let post = app.http.post(app.url("nobody", Some("nothing"))).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn bad_ids_and_path_tricks_are_400_before_any_store_is_asked() {
    // Both stores are dead: a 400 proves validation comes first, never a 503.
    let cosmos = OwnEmulator::cosmos();
    let mut stores = emulator_settings(AgeField::Ts);
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    let app = app(stores).await;
    cosmos.stop();
    let long = "x".repeat(256);
    let bad = [
        "..",
        "%2E%2E",
        "%2e%2e",
        ".",
        "a%2Fb",
        "a%2fb",
        "%2F..%2F..%2Fetc",
        "a%5Cb",
        "a%3Fb",
        "a%23b",
        "a%00b",
        "a%0Ab",
        "a%7Fb",
        "%FF",
        &long,
    ];
    for id in bad {
        for path in
            [format!("/api/customers/c1/billing-records/{id}"), format!("/api/customers/{id}/billing-records/r1")]
        {
            let (status, body) = app.raw_get(&path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(body["error"]["code"], "BadRequest", "{path}");
        }
        let (status, _) = app.raw_get(&format!("/api/customers/{id}/billing-records")).await;
        assert_eq!(status, 400, "list for customer {id}");
    }
    for query in [
        "pageSize=0",
        "pageSize=101",
        "pageSize=x",
        "from=2025-13-01",
        "to=01-01-2025",
        "continuationToken=abc",
        "from=2025-02-01&to=2025-01-01",
    ] {
        let (status, body) = app.raw_get(&format!("/api/customers/c1/billing-records?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "BadRequest");
    }
    let (status, body) = app.raw_get("/api/nothing-here").await;
    assert_eq!((status, &body["error"]["code"]), (404, &serde_json::json!("NotFound")));
    let (status, _) = app.raw_get("/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_unreachable_tier_is_503_with_retry_after_never_404() {
    let azurite = OwnEmulator::azurite();
    let mut stores = emulator_settings(AgeField::Ts);
    stores.blob_endpoint = azurite.endpoint.parse().unwrap();
    let app = app(stores).await;
    upsert_raw(&app.cosmos, "c", "old", r#"{"id":"old","customerId":"c"}"#).await.unwrap();
    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    upsert_raw(&app.cosmos, "c", "hot", r#"{"id":"hot","customerId":"c"}"#).await.unwrap();
    assert_eq!(app.record("c", "old").await.status, 200);

    azurite.stop();
    for id in ["old", "never-existed"] {
        let answer = app.record("c", id).await;
        assert_eq!(answer.status, 503, "{id}: {}", answer.text());
        assert!(answer.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        assert_eq!(answer.json()["error"]["code"], "ServiceUnavailable");
    }
    assert_eq!(app.list("c", "").await.status, 503, "a list needs both tiers");
    // The hot tier still answers on its own.
    assert_eq!(app.record("c", "hot").await.status, 200);
}

#[tokio::test]
async fn a_cosmos_outage_is_503_too() {
    let cosmos = OwnEmulator::cosmos();
    let mut stores = emulator_settings(AgeField::Ts);
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    let app = app(stores).await;
    upsert_raw(&app.cosmos, "c", "r", r#"{"id":"r","customerId":"c"}"#).await.unwrap();
    assert_eq!(app.record("c", "r").await.status, 200);
    cosmos.stop();
    for answer in [app.record("c", "r").await, app.record("c", "missing").await, app.list("c", "").await] {
        assert_eq!(answer.status, 503, "{}", answer.text());
        assert!(answer.header("retry-after").is_some());
    }
}

#[tokio::test]
async fn throttling_is_retried_and_persistent_throttling_is_503_with_retry_after() {
    for (every, expect) in [(2, 200), (1, 503)] {
        let cosmos = OwnEmulator::cosmos_throttling(every);
        let mut stores = emulator_settings(AgeField::Ts);
        stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
        let app = app(stores).await;
        if expect == 200 {
            upsert_raw(&app.cosmos, "c", "r", r#"{"id":"r","customerId":"c"}"#).await.unwrap();
        }
        let answer = app.record("c", "r").await;
        assert_eq!(answer.status, expect, "every {every}: {}", answer.text());
        if expect == 503 {
            assert!(answer.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        }
    }
}

#[tokio::test]
async fn the_reader_starts_while_cosmos_is_down_and_serves_once_it_is_back() {
    let cosmos = OwnEmulator::cosmos();
    let port = cosmos.port();
    cosmos.stop();
    let mut stores = emulator_settings(AgeField::Ts);
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    let addr = serve(&stores, Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/customers/c/billing-records/r");
    assert_eq!(http.get(format!("http://{addr}/")).send().await.unwrap().status(), 200, "the host's probe");
    let down = http.get(&url).send().await.unwrap();
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));

    let _back = OwnEmulator::cosmos_on(port, 0);
    let store = fresh_cosmos(&stores).await;
    upsert_raw(&store, "c", "r", r#"{"id":"r","customerId":"c"}"#).await.unwrap();
    // The background reconnect picks it up within its backoff.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = http.get(&url).send().await.unwrap().status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {status} 30 s after Cosmos came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn while_cosmos_hangs_requests_wait_only_for_the_first_connect_then_answer_503_at_once() {
    // Cosmos accepts connections but never answers (slow, not down) from the start.
    let mut stores = emulator_settings(AgeField::Ts);
    let direct = stores.cosmos_endpoint.to_string();
    let store = fresh_cosmos(&stores).await;
    upsert_raw(&store, "c", "r", r#"{"id":"r","customerId":"c"}"#).await.unwrap();
    let proxy = Proxy::in_front_of(&direct).await.unwrap();
    proxy.set_stalled(true);
    stores.cosmos_endpoint = proxy.endpoint_for(&direct).parse().unwrap();
    let started = Instant::now();
    let addr = serve(&stores, Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(6), "start-up must not wait on a hung store");

    let http = reqwest::Client::new();
    let batch = || {
        futures::future::join_all((0..20).map(|i| {
            let http = http.clone();
            async move { get(&http, url_at(addr, "c", Some(&format!("r{i}"))), None).await }
        }))
    };
    // Requests wait for the first connect, but not past its limit...
    let answers = batch().await;
    let first = started.elapsed();
    assert!(first < reader::connection::FIRST_CONNECT_LIMIT + Duration::from_secs(2), "{first:?}");
    // ...and after it, answer 503 at once instead of queueing behind reconnects.
    let again = Instant::now();
    let later = batch().await;
    let took = again.elapsed();
    for a in answers.iter().chain(&later) {
        assert_eq!(a.status, 503, "{}", a.text());
        assert!(a.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    }
    assert!(took < Duration::from_secs(2), "20 requests took {took:?}: they must not queue behind a connect");

    // The one background reconnect completes once Cosmos answers again.
    proxy.set_stalled(false);
    let deadline = Instant::now() + Duration::from_secs(40);
    while get(&http, url_at(addr, "c", Some("r")), None).await.status != 200 {
        assert!(Instant::now() < deadline, "no reconnect 40 s after Cosmos answered again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A cold instance's first connect is slow (IMDS, a token, the metadata round
/// trips): the first consumers wait for it instead of getting 503.
#[tokio::test]
async fn a_slow_first_connect_serves_the_first_request_instead_of_503() {
    let mut stores = emulator_settings(AgeField::Ts);
    let direct = stores.cosmos_endpoint.to_string();
    let store = fresh_cosmos(&stores).await;
    upsert_raw(&store, "c", "r", r#"{"id":"r","customerId":"c"}"#).await.unwrap();
    let proxy = Proxy::in_front_of(&direct).await.unwrap();
    proxy.set_stalled(true);
    stores.cosmos_endpoint = proxy.endpoint_for(&direct).parse().unwrap();
    let unstall = proxy.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        unstall.set_stalled(false);
    });
    let started = Instant::now();
    let addr = serve(&stores, Duration::from_secs(10)).await;
    let answer = get(&reqwest::Client::new(), url_at(addr, "c", Some("r")), None).await;
    assert_eq!(answer.status, 200, "the first request waits for the connect in progress: {}", answer.text());
    assert!(started.elapsed() >= Duration::from_secs(4), "it really waited for the slow connect");
}

#[tokio::test]
async fn a_store_that_hangs_mid_request_gives_503_at_the_deadline() {
    let mut stores = emulator_settings(AgeField::Ts);
    let (cosmos_direct, blob_direct) = (stores.cosmos_endpoint.to_string(), stores.blob_endpoint.to_string());
    let app = app(stores.clone()).await;
    upsert_raw(&app.cosmos, "c", "cold", r#"{"id":"cold","customerId":"c","pad":"xxxxxxxxxxxxxxxx"}"#).await.unwrap();
    let big = invoice("c", "big", NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(), 300_000, 1);
    upsert_raw(&app.cosmos, "c", "big", &big.json).await.unwrap();
    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    upsert_raw(&app.cosmos, "c", "hot", r#"{"id":"hot","customerId":"c"}"#).await.unwrap();

    let cosmos_proxy = Proxy::in_front_of(&cosmos_direct).await.unwrap();
    let blob_proxy = Proxy::in_front_of(&blob_direct).await.unwrap();
    stores.cosmos_endpoint = cosmos_proxy.endpoint_for(&cosmos_direct).parse().unwrap();
    stores.blob_endpoint = blob_proxy.endpoint_for(&blob_direct).parse().unwrap();
    let addr = serve(&stores, Duration::from_secs(2)).await;
    let http = reqwest::Client::new();
    assert_eq!(get(&http, url_at(addr, "c", Some("hot")), None).await.status, 200);

    // Cosmos hangs after the reader connected.
    cosmos_proxy.set_stalled(true);
    let started = Instant::now();
    let answer = get(&http, url_at(addr, "c", Some("hot")), None).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(answer.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    cosmos_proxy.set_stalled(false);

    // The archive sends headers and a little of the body, then nothing more.
    blob_proxy.stall_answers_after(Some(2_000));
    let started = Instant::now();
    let answer = get(&http, url_at(addr, "c", Some("big")), None).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    blob_proxy.stall_answers_after(None);

    // Below the reader, the archive client gives up on a stalled body by itself.
    let patient = Transport { retries: 0, per_try_timeout: Duration::from_secs(1), total: Duration::from_secs(2) };
    let archive = BlobArchive::new(&stores, patient).unwrap();
    let name = layout::blob_name("c", "big").unwrap();
    blob_proxy.stall_answers_after(Some(2_000));
    let started = Instant::now();
    let stalled = archive.get(&name).await;
    assert!(matches!(&stalled, Err(e) if e.is_outage()), "{stalled:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_oversized_archived_blob_is_refused_before_it_is_downloaded() {
    let mut stores = emulator_settings(AgeField::Ts);
    let direct = stores.blob_endpoint.to_string();
    let app = app(stores.clone()).await;
    upsert_raw(&app.cosmos, "c", "r", r#"{"id":"r","customerId":"c"}"#).await.unwrap();
    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    // Someone replaced the copy with 5 MB of something else, under plausible metadata.
    let name = layout::blob_name("c", "r").unwrap();
    let stored = app.blob.get(&name).await.unwrap();
    let huge = vec![b'x'; 5 * 1024 * 1024];
    let condition = PutCondition::Matches(stored.info.etag.clone());
    app.blob.put(&name, huge.into(), stored.info.metadata.clone(), condition).await.unwrap();

    let proxy = Proxy::in_front_of(&direct).await.unwrap();
    stores.blob_endpoint = proxy.endpoint_for(&direct).parse().unwrap();
    let addr = serve(&stores, Duration::from_secs(10)).await;
    let answer = get(&reqwest::Client::new(), url_at(addr, "c", Some("r")), None).await;
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert_eq!(answer.json()["error"]["code"], "Internal");
    assert!(answer.json()["error"]["message"].as_str().unwrap().contains("integrity"));
    assert!(proxy.answered_bytes() < 512 * 1024, "downloaded {} of 5 MB", proxy.answered_bytes());
}

#[tokio::test]
async fn a_corrupt_archived_copy_is_500_and_never_served() {
    let app = app(emulator_settings(AgeField::Ts)).await;
    let secret = r#"{"id":"r","customerId":"c","iban":"DE00 1234 5678"}"#;
    upsert_raw(&app.cosmos, "c", "r", secret).await.unwrap();
    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    corrupt(&app.blob, "c", "r").await;
    let answer = app.record("c", "r").await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json()["error"]["code"], "Internal");
    assert!(answer.json()["error"]["message"].as_str().unwrap().contains("integrity"));
    let text = answer.text();
    assert!(!text.contains("DE99") && !text.contains("DE00"), "{text}");
}

#[tokio::test]
async fn a_copy_in_another_archive_format_is_refused_by_name_and_never_served() {
    let app = app(emulator_settings(AgeField::Ts)).await;
    let doc = r#"{"id":"r","customerId":"c","iban":"DE00 1234 5678"}"#;
    upsert_raw(&app.cosmos, "c", "r", doc).await.unwrap();
    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    // The same copy, labelled as format 1 (a body with the system properties stripped).
    let name = layout::blob_name("c", "r").unwrap();
    let stored = app.blob.get(&name).await.unwrap();
    let mut metadata = stored.info.metadata.clone();
    metadata.insert("format".into(), "1".into());
    let condition = PutCondition::Matches(stored.info.etag);
    app.blob.put(&name, stored.body, metadata, condition).await.unwrap();
    let answer = app.record("c", "r").await;
    assert_eq!(answer.status, 500);
    let message = answer.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("archive format"), "{message}");
    assert!(!answer.text().contains("DE00"), "never the copy's data");
    let report = archiver::ops::verify(&app.archiver(90), Some("c")).await.unwrap();
    assert_eq!(report.unsupported_format, [(name, "1".to_owned())], "{report:?}");
    assert!(report.corrupt.is_empty());
}

/// A page holds at most READER_PAGE_MAX_BYTES of records (the reader and the host
/// buffer it whole), and paging still yields every record once, in order, from
/// both tiers, even where the cut falls inside a run of equal dates.
#[tokio::test]
async fn list_pages_of_large_records_are_bounded_in_bytes_and_page_every_record_once() {
    let app = app(emulator_settings(AgeField::Iso("invoiceDate".into()))).await;
    let day = |d: i64| (Utc::now() - chrono::Duration::days(d)).date_naive();
    let mut expected = Vec::new();
    for i in 0..24i64 {
        let id = format!("big-{i:02}");
        // Pairs share a date; half the records are older than the cutoff.
        let r = invoice("c", &id, day(10 + (i / 2) * 15), 40_000, i as u64);
        upsert_raw(&app.cosmos, "c", &id, &r.json).await.unwrap();
        expected.push((r.invoice_date, id));
    }
    app.archiver(90).run(Utc::now(), false).await;
    let budget = 100_000;
    let settings = ReaderSettings { page_max_bytes: budget, ..ReaderSettings::defaults(app.stores.clone()) };
    let tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    let addr = serve_tiers(tiers).await;
    let (mut seen, mut token, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut url = url_at(addr, "c", None);
        let query = match &token {
            Some(t) => format!("pageSize=100&continuationToken={t}"),
            None => "pageSize=100".to_owned(),
        };
        url.set_query(Some(&query));
        let page = get(&app.http, url, None).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let items = page.json()["items"].as_array().unwrap().clone();
        let largest = items.iter().map(|i| i.to_string().len()).max().unwrap_or(0);
        assert!(page.body.len() <= budget + largest + 200, "a page of {} bytes", page.body.len());
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        pages += 1;
        token = page.json()["continuationToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert!(pages >= 8, "{pages} pages for about 1 MB of records at 100 KB a page");
    assert_eq!(seen, listing_order(&expected), "every record once, newest first, then by id");
}

/// A month-end batch: many records of one date, large ones among them. The page
/// that ends on that date completes it with the records sharing it, and must do
/// so within the page's byte bound: never loading the whole batch from Cosmos
/// for one page. Every record is still listed once, in order.
#[tokio::test]
async fn a_page_ending_in_a_batch_of_one_date_reads_a_bounded_number_of_bytes() {
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    let direct = stores.cosmos_endpoint.to_string();
    let app = app(stores.clone()).await;
    let month_end = (Utc::now() - chrono::Duration::days(20)).date_naive();
    let mut expected = Vec::new();
    // Small ones first (the first query meets them first), then large ones whose ids sort earlier.
    for i in 0..101u64 {
        let id = format!("s-{i:03}");
        upsert_raw(&app.cosmos, "c", &id, &invoice("c", &id, month_end, 2_000, i).json).await.unwrap();
        expected.push((month_end, id));
    }
    for i in 0..100u64 {
        let id = format!("b-{i:03}");
        upsert_raw(&app.cosmos, "c", &id, &invoice("c", &id, month_end, 400_000, i).json).await.unwrap();
        expected.push((month_end, id));
    }
    // A reader whose Cosmos traffic passes a proxy that counts bytes; the default page bound (4 MiB).
    let proxy = Proxy::in_front_of(&direct).await.unwrap();
    stores.cosmos_endpoint = proxy.endpoint_for(&direct).parse().unwrap();
    let addr = serve(&stores, Duration::from_secs(60)).await;
    let bound = ReaderSettings::defaults(stores.clone()).page_max_bytes as u64;
    let (mut seen, mut token, mut most) = (Vec::new(), None::<String>, 0u64);
    for _ in 0..400 {
        let mut url = url_at(addr, "c", None);
        match &token {
            Some(t) => url.set_query(Some(&format!("pageSize=100&continuationToken={t}"))),
            None => url.set_query(Some("pageSize=100")),
        }
        let before = proxy.answered_bytes();
        let page = get(&app.http, url, None).await;
        assert_eq!(page.status, 200, "{}", page.text());
        most = most.max(proxy.answered_bytes() - before);
        let items = page.json()["items"].as_array().unwrap().clone();
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        token = page.json()["continuationToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    // Each of the page's two body queries stops within the bound, but Cosmos
    // answers in pages of up to 4 MB, and the page that crosses the bound
    // arrives whole: at most twice the bound and two query pages, whatever the batch holds.
    assert!(most <= 2 * bound + 2 * 4_000_000, "one page read {most} bytes from Cosmos; the batch is 40 MB");
    assert_eq!(seen, listing_order(&expected), "every record once, in order");
}

/// Same metadata, different bytes: a bit flip in storage or a bad manual restore.
async fn corrupt(blob: &BlobArchive, customer: &str, id: &str) {
    let name = layout::blob_name(customer, id).unwrap();
    let stored = blob.get(&name).await.unwrap();
    let tampered = codec::compress(br#"{"id":"r","customerId":"c","iban":"DE99 9999 9999"}"#);
    let condition = PutCondition::Matches(stored.info.etag);
    blob.put(&name, tampered.into(), stored.info.metadata.clone(), condition).await.unwrap();
}

/// `(invoiceDate, id)` for the list tests; several share a date.
fn dated(days_ago: &[(i64, &str)]) -> Vec<(NaiveDate, String)> {
    days_ago.iter().map(|(d, id)| ((Utc::now() - chrono::Duration::days(*d)).date_naive(), (*id).to_owned())).collect()
}

async fn seed_dated(app: &App, customer: &str, records: &[(NaiveDate, String)]) {
    for (i, (date, id)) in records.iter().enumerate() {
        upsert_raw(&app.cosmos, customer, id, &invoice(customer, id, *date, 2_000, i as u64).json).await.unwrap();
    }
}

/// Pages through the list, calling `between` after each page; returns the ids in order.
async fn page_all(app: &App, customer: &str, query: &str, mut between: impl AsyncFnMut(usize)) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    for page in 0..200 {
        let mut q = query.to_owned();
        if let Some(t) = &token {
            q += &format!("&continuationToken={t}");
        }
        let answer = app.list(customer, &q).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let v = answer.json();
        ids.extend(v["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        between(page).await;
        match v["continuationToken"].as_str() {
            None => return ids,
            Some(t) => token = Some(t.to_owned()),
        }
    }
    panic!("paging did not end");
}

/// The expected listing order: newest first, then id.
fn listing_order(records: &[(NaiveDate, String)]) -> Vec<String> {
    let mut expected = records.to_vec();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    expected.into_iter().map(|(_, id)| id).collect()
}

async fn list_suite(indexing: Indexing) {
    let app = app_with(emulator_settings(AgeField::Iso("invoiceDate".into())), indexing).await;
    let mut records = dated(&[
        (1, "n-1"),
        (10, "n-2"),
        (10, "n-3"),
        (40, "n-4"),
        (95, "a-1"),
        (95, "a-0"),
        (120, "a-2"),
        (200, "a-3"),
        (300, "a-4"),
        (400, "a-5"),
        (400, "a-6"),
        (450, "a-7"),
    ]);
    // Many records of one date, in both tiers: ties a single ORDER BY cannot break.
    let ties: Vec<(i64, String)> =
        (0..9).map(|i| (if i % 2 == 0 { 20 } else { 130 }, format!("t-{}", 8 - i))).collect();
    records.extend(dated(&ties.iter().map(|(d, id)| (*d, id.as_str())).collect::<Vec<_>>()));
    seed_dated(&app, "cust", &records).await;
    seed_dated(&app, "other", &dated(&[(5, "x-1"), (500, "x-2")])).await;
    let summary = app.archiver(90).run(Utc::now(), false).await;
    assert_eq!(summary.archived, 13, "{summary:?}");

    let expected = listing_order(&records);
    for page_size in [1, 2, 3, 5, 50] {
        let got = page_all(&app, "cust", &format!("pageSize={page_size}&code=hostkey"), async |_| {}).await;
        assert_eq!(got, expected, "{indexing:?}, pageSize {page_size}");
    }
    // A listed record reads the same as it does on its own.
    let list = app.list("cust", "pageSize=100").await.json();
    let single = app.record("cust", "a-3").await;
    let in_list = list["items"].as_array().unwrap().iter().find(|r| r["id"] == "a-3").unwrap();
    assert_eq!(in_list, &serde_json::from_slice::<serde_json::Value>(&single.body).unwrap());
    let raw_list = app.list("cust", "pageSize=100").await.text();
    assert!(raw_list.contains(std::str::from_utf8(&single.body).unwrap()), "list items are the exact record bytes");

    // from/to are inclusive dates on the age field.
    let (from, to) = (records[3].0, records[7].0); // 40 and 200 days ago
    let window = page_all(&app, "cust", &format!("from={to}&to={from}&pageSize=2"), async |_| {}).await;
    let in_window: Vec<(NaiveDate, String)> = records.iter().filter(|(d, _)| *d >= to && *d <= from).cloned().collect();
    assert_eq!(window, listing_order(&in_window), "{indexing:?}");
    let empty = app.list("cust", "from=2001-01-01&to=2001-01-31").await.json();
    assert_eq!(empty, serde_json::json!({"items": [], "continuationToken": null}));

    // A token is bound to its query.
    let page1 = app.list("cust", "pageSize=2").await.json();
    let token = page1["continuationToken"].as_str().unwrap();
    let other = app.list("other", &format!("continuationToken={token}")).await;
    assert_eq!(other.status, 400);
    let mut tampered = token.to_owned();
    tampered.insert(3, 'x');
    assert_eq!(app.list("cust", &format!("continuationToken={tampered}")).await.status, 400);
}

#[tokio::test]
async fn lists_merge_both_tiers_in_order_and_page_each_record_once_on_a_default_indexed_container() {
    list_suite(Indexing::Default).await;
}

#[tokio::test]
async fn lists_merge_both_tiers_in_order_and_page_each_record_once_with_a_composite_index() {
    list_suite(Indexing::Composite).await;
}

#[tokio::test]
async fn records_archived_between_two_page_requests_are_listed_exactly_once() {
    for indexing in [Indexing::Default, Indexing::Composite] {
        let app = app_with(emulator_settings(AgeField::Iso("invoiceDate".into())), indexing).await;
        let records = dated(&[
            (1, "r-01"),
            (20, "r-02"),
            (30, "r-03"),
            (50, "r-04"),
            (50, "r-05"),
            (50, "r-06"),
            (80, "r-07"),
            (100, "r-08"),
            (110, "r-09"),
        ]);
        seed_dated(&app, "cust", &records).await;
        app.archiver(90).run(Utc::now(), false).await;
        let archiver = app.archiver(25);
        let got = page_all(&app, "cust", "pageSize=2", async |page| {
            if page == 0 {
                // Between pages 1 and 2, everything older than 25 days moves to the archive.
                let s = archiver.run(Utc::now(), false).await;
                assert_eq!(s.archived, 5, "{s:?}");
            }
        })
        .await;
        assert_eq!(got, listing_order(&records), "{indexing:?}");
    }
}

#[tokio::test]
async fn a_record_archived_while_a_page_is_read_is_listed_once() {
    let app = app(emulator_settings(AgeField::Iso("invoiceDate".into()))).await;
    let records = dated(&[(1, "r-1"), (100, "r-2"), (100, "r-3"), (200, "r-4")]);
    seed_dated(&app, "cust", &records).await;
    // The reader lists the archive only after it queried Cosmos; in between, the
    // archiver moves every aged record. They are in both answers; each must appear once.
    let archiver = app.archiver(90);
    let hooks = Hooks {
        before_list: hook(move |_| {
            let archiver = archiver.clone();
            async move {
                let s = archiver.run(Utc::now(), false).await;
                assert_eq!(s.archived, 3, "{s:?}");
            }
        }),
        ..Default::default()
    };
    let settings =
        ReaderSettings { request_timeout: Duration::from_secs(30), ..ReaderSettings::defaults(app.stores.clone()) };
    let mut tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    tiers.tiers.archive = Arc::new(HookedArchive { inner: tiers.tiers.archive.clone(), hooks });
    let addr = serve_tiers(tiers).await;
    let page = get(&app.http, url_at(addr, "cust", None), None).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let ids: Vec<String> =
        page.json()["items"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, listing_order(&records));
}

/// A read that misses Cosmos, then misses the archive because a move-back (a
/// write-through, a restore) ran in between, is not a missing record: the
/// reader reads Cosmos once more before it answers 404.
#[tokio::test]
async fn a_record_moved_back_between_the_two_reads_is_served_never_a_404() {
    let app = app(emulator_settings(AgeField::Ts)).await;
    upsert_raw(&app.cosmos, "c", "r", r#"{"id":"r","customerId":"c","total":"12.50"}"#).await.unwrap();
    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    // Just before the reader asks the archive, the record moves back: created in
    // Cosmos, then its copy deleted.
    let (cosmos, blob) = (app.cosmos.clone(), app.blob.clone());
    let moves = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = moves.clone();
    let hooks = Hooks {
        before_get: hook(move |_name| {
            let (cosmos, blob, counted) = (cosmos.clone(), blob.clone(), counted.clone());
            async move {
                let moved = tiering::moveback::move_back(&cosmos, &blob, "c", "r", None).await.unwrap();
                if matches!(moved, tiering::moveback::MovedBack::Restored { .. }) {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }),
        ..Default::default()
    };
    let mut app_with_hook =
        reader::startup::build(&ReaderSettings::defaults(app.stores.clone()), TEST_TRANSPORT).await.unwrap();
    app_with_hook.tiers.archive = Arc::new(HookedArchive { inner: app_with_hook.tiers.archive.clone(), hooks });
    let addr = serve_tiers(app_with_hook).await;
    let answer = get(&app.http, url_at(addr, "c", Some("r")), None).await;
    assert_eq!(moves.load(std::sync::atomic::Ordering::SeqCst), 1, "the move-back ran between the reads");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.body, br#"{"id":"r","customerId":"c","total":"12.50"}"#);
}

#[tokio::test]
async fn an_unservable_archived_copy_is_left_out_and_the_listing_stays_pageable() {
    let app = app(emulator_settings(AgeField::Iso("invoiceDate".into()))).await;
    let records = dated(&[(1, "r-1"), (100, "r-2"), (110, "r-3"), (120, "r-4"), (130, "r-5"), (140, "r-6")]);
    seed_dated(&app, "cust", &records).await;
    app.archiver(90).run(Utc::now(), false).await;
    corrupt(&app.blob, "cust", "r-3").await;
    // r-5's metadata becomes unreadable.
    let r5 = layout::blob_name("cust", "r-5").unwrap();
    let info = app.blob.head(&r5).await.unwrap();
    app.blob.set_metadata(&r5, HashMap::from([("format".into(), "9".into())]), &info.etag).await.unwrap();

    let mut expected = listing_order(&records);
    expected.retain(|id| id != "r-3" && id != "r-5");
    for page_size in [1, 2, 50] {
        let got = page_all(&app, "cust", &format!("pageSize={page_size}"), async |_| {}).await;
        assert_eq!(got, expected, "pageSize {page_size}");
    }
    // Read on its own, the corrupt copy is still a 500, never its bytes.
    assert_eq!(app.record("cust", "r-3").await.status, 500);
}

#[tokio::test]
async fn shadowed_copies_at_a_pruning_point_do_not_end_the_listing() {
    // With `_ts` as the age field, two archived records written again in Cosmos move
    // to the top of the listing, and their copies (now shadowed) are the newest of
    // the archive. On the second page exactly 2 x (pageSize + 1) copies follow the
    // position, so the archive side is pruned to its first 3 and two of those are
    // shadowed: the page holds one record, and must still say where to continue.
    let app = app(emulator_settings(AgeField::Ts)).await;
    let ids = ["f", "e", "d", "c", "b", "a"]; // written oldest first: "a" gets the newest _ts
    for id in ids {
        upsert_raw(&app.cosmos, "cust", id, &format!(r#"{{"id":"{id}","customerId":"cust"}}"#)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let summary = app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    assert_eq!(summary.archived, 6, "{summary:?}");
    for id in ["a", "b"] {
        upsert_raw(&app.cosmos, "cust", id, &format!(r#"{{"id":"{id}","customerId":"cust","v":2}}"#)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let got = page_all(&app, "cust", "pageSize=2", async |_| {}).await;
    assert_eq!(got, ["b", "a", "c", "d", "e", "f"]);
}

#[tokio::test]
async fn an_archive_that_refuses_the_readers_credentials_is_503_never_404_or_500() {
    let mut stores = emulator_settings(AgeField::Ts);
    let app = app(stores.clone()).await;
    upsert_raw(&app.cosmos, "c", "old", r#"{"id":"old","customerId":"c"}"#).await.unwrap();
    app.archiver(90).run(Utc::now() + chrono::Duration::days(100), false).await;
    // An expired or revoked SAS (a role not yet propagated in Azure): 403 from the store.
    let sas = stores.blob_sas.as_ref().unwrap().secret().to_owned();
    let broken = sas.split('&').map(|kv| if kv.starts_with("sig=") { "sig=AAAA" } else { kv }).collect::<Vec<_>>();
    stores.blob_sas = Some(azure_core::credentials::Secret::new(broken.join("&")));
    let addr = serve(&stores, Duration::from_secs(10)).await;
    for url in [url_at(addr, "c", Some("old")), url_at(addr, "c", Some("never")), url_at(addr, "c", None)] {
        let answer = get(&app.http, url.clone(), None).await;
        assert_eq!(answer.status, 503, "{url}: {}", answer.text());
        assert!(answer.header("retry-after").is_some());
    }
}

#[tokio::test]
async fn a_query_cosmos_refuses_is_an_error_that_names_the_cause() {
    // Cosmos refuses every query (as it refuses an ORDER BY no index can serve).
    let cosmos = OwnEmulator::cosmos_failing("QUERY", 400);
    let mut stores = emulator_settings(AgeField::Ts);
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    let app = app(stores).await;
    upsert_raw(&app.cosmos, "c", "r", r#"{"id":"r","customerId":"c"}"#).await.unwrap();
    let answer = app.list("c", "").await;
    assert_eq!(answer.status, 500, "{}", answer.text());
    let message = answer.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("composite index") && message.contains("Cosmos DB"), "{message}");
    assert!(!message.contains("unexpected"), "{message}");
    assert_eq!(app.record("c", "r").await.status, 200, "point reads are not queries");
}

#[tokio::test]
async fn changing_the_age_field_keeps_the_archive_readable_and_listed_in_the_new_order() {
    // Archived under `_ts`, then both apps restart with `invoiceDate`, and back.
    let ts_stores = emulator_settings(AgeField::Ts);
    let app = app(ts_stores.clone()).await;
    // Invoice dates run the other way from write times, so the two orders differ.
    let records = dated(&[(300, "r-1"), (200, "r-2"), (100, "r-3"), (100, "r-4"), (50, "r-5")]);
    for (i, (date, id)) in records.iter().enumerate() {
        upsert_raw(&app.cosmos, "cust", id, &invoice("cust", id, *date, 3_000, i as u64).json).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await; // distinct _ts
    }
    let hot: Vec<Answer> = futures::future::join_all(records.iter().map(|(_, id)| app.record("cust", id))).await;
    let later = Utc::now() + chrono::Duration::days(100);
    let summary = app.archiver(90).run(later, false).await;
    assert_eq!(summary.archived, 5, "{summary:?}");
    let by_ts: Vec<String> = records.iter().rev().map(|(_, id)| id.clone()).collect();
    assert_eq!(page_all(&app, "cust", "pageSize=2", async |_| {}).await, by_ts);

    // Restart with the business date as the age field.
    let mut iso_stores = ts_stores.clone();
    iso_stores.age_field = AgeField::Iso("invoiceDate".into());
    let iso = App { addr: serve(&iso_stores, Duration::from_secs(10)).await, stores: iso_stores.clone(), ..app };
    for ((_, id), before) in records.iter().zip(&hot) {
        assert_eq!(&iso.record("cust", id).await, before, "{id} must read back byte-identical");
    }
    let expected = listing_order(&records);
    for page_size in [1, 2, 50] {
        assert_eq!(page_all(&iso, "cust", &format!("pageSize={page_size}"), async |_| {}).await, expected);
    }
    // Verify and restore do not care which field the copies were stamped under.
    let iso_archiver = iso.archiver_on(Arc::new(iso.blob.clone()), &iso_stores, 90);
    let report = archiver::ops::verify(&iso_archiver, None).await.unwrap();
    assert_eq!((report.checked, report.corrupt.len()), (5, 0), "{report:?}");

    // The archiver's next run re-stamps every copy, once.
    let run = iso_archiver.run(Utc::now(), false).await;
    assert_eq!((run.restamped, run.status), (5, archiver::run::RunStatus::Complete), "{run:?}");
    for (_, id) in &records {
        let info = iso.blob.head(&layout::blob_name("cust", id).unwrap()).await.unwrap();
        assert_eq!(ArchiveMeta::from_metadata(&info.metadata).unwrap().stamp.field, "invoiceDate");
    }
    assert_eq!(iso_archiver.run(Utc::now(), false).await.restamped, 0, "a marker spares later runs the scan");
    assert_eq!(page_all(&iso, "cust", "pageSize=2", async |_| {}).await, expected);
    archiver::ops::restore(&iso_archiver, "cust", "r-2", Duration::ZERO).await.unwrap();
    assert_eq!(iso.record("cust", "r-2").await.body, hot[1].body);

    // And back to `_ts`: the version's ts orders the copies, whatever their stamp says.
    let back = App { addr: serve(&ts_stores, Duration::from_secs(10)).await, stores: ts_stores, ..iso };
    let mut by_ts = by_ts;
    by_ts.retain(|id| id != "r-2");
    by_ts.insert(0, "r-2".into()); // restored just now: the newest _ts
    assert_eq!(page_all(&back, "cust", "pageSize=2", async |_| {}).await, by_ts);
}
