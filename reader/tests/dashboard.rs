//! The dashboard's reader queries (infra-bicep/workbook.json) against the lines
//! the reader really writes: real requests (a hot read, an archived one, a
//! missing one, a list page, and a read the archive cannot answer) through the
//! production JSON log format, and every `read.<field>` and every tier and
//! route value the queries use must be in those lines. One test in its own
//! binary: it owns the process's log subscriber.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use archiver::startup::Archiver;
use chrono::Utc;
use testkit::cosmos::{fresh_cosmos, upsert_raw};
use testkit::emulator::{TEST_TRANSPORT, emulator_settings};
use tiering::archive::BlobArchive;
use tiering::record::AgeField;
use tiering::settings::{ArchiverSettings, ReaderSettings, StoreSettings};

async fn serve(stores: &StoreSettings) -> std::net::SocketAddr {
    let settings =
        ReaderSettings { request_timeout: Duration::from_secs(5), ..ReaderSettings::defaults(stores.clone()) };
    let tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(tiers), std::future::pending()));
    addr
}

fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

#[tokio::test]
async fn the_workbook_queries_read_fields_and_values_the_readers_lines_have() {
    let captured = testkit::logs::Captured::default();
    tracing::subscriber::set_global_default(captured.subscriber("reader=info")).unwrap();

    let stores = emulator_settings(AgeField::Ts);
    let cosmos = fresh_cosmos(&stores).await;
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    for id in ["old", "hot", "moved"] {
        upsert_raw(&cosmos, "c", id, &format!(r#"{{"id":"{id}","customerId":"c"}}"#)).await.unwrap();
    }
    let settings = ArchiverSettings { quiet_days: 0, ..ArchiverSettings::defaults(stores.clone()) };
    let archiver = Archiver { cosmos: cosmos.clone(), archive: Arc::new(blob.clone()), settings };
    // Archives both; "hot" is written again, so it is hot.
    assert_eq!(archiver.run(Utc::now() + chrono::Duration::days(100), false).await.archived, 3);
    upsert_raw(&cosmos, "c", "hot", r#"{"id":"hot","customerId":"c","v":2}"#).await.unwrap();

    let reader = serve(&stores).await;
    let mut dead = stores.clone();
    dead.blob_endpoint = "http://127.0.0.1:9/devstoreaccount1".parse().unwrap();
    let broken = serve(&dead).await;
    let http = reqwest::Client::new();
    let get = |at: std::net::SocketAddr, path: &str| {
        let http = http.clone();
        let url = format!("http://{at}/api/customers/c/billing-records{path}");
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(reader, "/hot").await, 200);
    assert_eq!(get(reader, "/old").await, 200);
    assert_eq!(get(reader, "/never").await, 404);
    assert_eq!(get(reader, "").await, 200);
    assert_eq!(get(broken, "/old").await, 503, "the archive cannot be asked");

    // Front mode: an archived record the current API cannot find is moved back.
    let api = devhost::mapped_api::start(&stores).await.unwrap();
    let settings = ReaderSettings {
        contract: tiering::contract::Contract::parse(devhost::mapped_api::PROFILE).unwrap(),
        upstream: Some(format!("http://{api}").parse().unwrap()),
        ..ReaderSettings::defaults(stores.clone())
    };
    let front = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    let (listener, front_addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(front), std::future::pending()));
    let moved = http
        .get(format!("http://{front_addr}/api/v2/accounts/c/invoices/moved"))
        .header("x-api-key", devhost::mapped_api::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status().as_u16(), 200);

    let reads: Vec<serde_json::Value> = captured.lines().into_iter().filter(|l| l["message"] == "read").collect();
    let values = |field: &str| -> Vec<String> {
        reads.iter().filter_map(|l| l.get(field)).map(|v| v.as_str().map_or(v.to_string(), str::to_owned)).collect()
    };
    for tier in ["cosmos", "archive", "none"] {
        assert!(values("tier").contains(&tier.to_owned()), "a read line with tier {tier}: {reads:?}");
    }
    assert!(values("route").contains(&"record".to_owned()) && values("route").contains(&"list".to_owned()));
    assert!(values("status").iter().any(|s| s.parse::<u16>().is_ok_and(|s| s >= 500)), "a 5xx line: {reads:?}");
    assert!(reads.iter().all(|l| l["latency_us"].is_u64()), "every read line times itself");

    let book: serde_json::Value = serde_json::from_str(include_str!("../../infra-bicep/workbook.json")).unwrap();
    let queries: Vec<&str> = book["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["content"]["query"].as_str())
        .filter(|q| q.contains("extend read = parse_json(message)"))
        .collect();
    assert!(queries.len() >= 4, "the workbook's read queries");
    for query in &queries {
        // Each query finds the lines by a word every read line holds.
        let word = query.split("message has \"").nth(1).and_then(|r| r.split('"').next()).unwrap();
        assert!(reads.iter().all(|l| l.to_string().contains(word)), "{word:?} is not in every read line");
        for field in query.split("read.").skip(1).map(ident) {
            assert!(
                reads.iter().any(|l| l.get(field).is_some()),
                "the workbook reads `read.{field}`, which no read line has"
            );
        }
        // The tier and route values it compares with are values the reader writes.
        for (field, op) in [("tier", "tostring(read.tier) == \""), ("route", "tostring(read.route) == \"")] {
            for value in query.split(op).skip(1).map(|r| r.split('"').next().unwrap_or_default()) {
                assert!(values(field).contains(&value.to_owned()), "the workbook compares {field} with {value:?}");
            }
        }
    }
    // The moved-back chart reads the front and write lines' counts.
    let fronts: Vec<serde_json::Value> = captured.lines().into_iter().filter(|l| l["message"] == "front").collect();
    assert!(fronts.iter().any(|l| l["moved_back"] == 1), "a front line counted the move-back: {fronts:?}");
    let moved_back = book["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "moved-back")
        .and_then(|i| i["content"]["query"].as_str())
        .unwrap();
    for field in moved_back.split("line.").skip(1).map(ident) {
        assert!(
            fronts.iter().all(|l| l.get(field).is_some()),
            "the workbook reads `line.{field}`, which front lines lack"
        );
    }
}
