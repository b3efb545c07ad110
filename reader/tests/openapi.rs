//! `reader/openapi.yaml` describes what the reader really does: every answer the
//! tests provoke (each status of each route) is checked against the spec: status
//! documented, media type, required headers, and the body against its schema.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use archiver::startup::Archiver;
use chrono::Utc;
use serde_json::{Value, json};
use testkit::cosmos::{fresh_cosmos, upsert_raw};
use testkit::emulator::{OwnEmulator, TEST_TRANSPORT, emulator_settings};
use tiering::archive::{Archive, BlobArchive, PutCondition};
use tiering::record::AgeField;
use tiering::settings::{ArchiverSettings, ReaderSettings};

fn spec() -> Value {
    serde_norway::from_str(include_str!("../openapi.yaml")).unwrap()
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => spec.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => node,
    }
}

/// Checks one answer of `GET /api{path_template}` against the spec.
fn conforms(spec: &Value, template: &str, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) {
    let op = &spec["paths"][template]["get"];
    assert!(op.is_object(), "{template} is not in the spec");
    let response = resolve(spec, &op["responses"][status.to_string()]);
    assert!(response.is_object(), "{template}: status {status} is not documented");
    if let Some(documented) = response["headers"].as_object() {
        for (name, header) in documented {
            if resolve(spec, header)["required"] == true {
                assert!(headers.contains_key(name.as_str()), "{template} {status}: header {name} missing");
            }
        }
    }
    match response["content"].as_object() {
        None => assert!(body.is_empty(), "{template} {status}: a body where the spec has none"),
        Some(content) => {
            let content_type = headers.get("content-type").unwrap().to_str().unwrap();
            let media =
                content.get(content_type).unwrap_or_else(|| panic!("{template} {status}: media type {content_type}"));
            let root = json!({"$ref": media["schema"]["$ref"], "components": spec["components"]});
            let validator = jsonschema::draft202012::new(&root).unwrap();
            let instance: Value = serde_json::from_slice(body).unwrap();
            let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{template} {status}: {errors:?}");
        }
    }
}

#[test]
fn the_spec_covers_exactly_the_routes_the_reader_serves() {
    let spec = spec();
    let mut paths: Vec<String> = spec["paths"].as_object().unwrap().keys().map(|p| format!("/api{p}")).collect();
    paths.sort();
    let (record, list) = reader::api_routes(&tiering::contract::Contract::default_profile());
    assert_eq!(paths, [list.unwrap(), record], "the spec describes the default profile");
    for p in spec["paths"].as_object().unwrap().values() {
        assert_eq!(p.as_object().unwrap().keys().collect::<Vec<_>>(), ["get"], "only GET is served");
    }
}

#[tokio::test]
async fn every_answer_matches_the_spec() {
    let spec = spec();
    let azurite = OwnEmulator::azurite();
    let mut stores = emulator_settings(AgeField::Ts);
    stores.blob_endpoint = azurite.endpoint.parse().unwrap();
    let cosmos = fresh_cosmos(&stores).await;
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    // The corrupt copy lives under its own customer: a list leaves it out (and says so in the log).
    for (customer, id) in [("c", "old"), ("x", "corrupt")] {
        let doc = format!(r#"{{"id":"{id}","customerId":"{customer}","n":1.50}}"#);
        upsert_raw(&cosmos, customer, id, &doc).await.unwrap();
    }
    let archiver = Archiver {
        cosmos: cosmos.clone(),
        archive: Arc::new(blob.clone()),
        settings: ArchiverSettings {
            after_days: 90,
            quiet_days: 0,
            concurrency: 2,
            time_budget: Duration::from_secs(60),
            ..ArchiverSettings::defaults(stores.clone())
        },
    };
    archiver.run(Utc::now() + chrono::Duration::days(100), false).await;
    upsert_raw(&cosmos, "c", "hot", r#"{"id":"hot","customerId":"c"}"#).await.unwrap();
    let name = tiering::layout::blob_name("x", "corrupt").unwrap();
    let stored = blob.get(&name).await.unwrap();
    blob.put(
        &name,
        tiering::codec::compress(b"{}").into(),
        stored.info.metadata,
        PutCondition::Matches(stored.info.etag),
    )
    .await
    .unwrap();

    let settings =
        ReaderSettings { request_timeout: Duration::from_secs(10), ..ReaderSettings::defaults(stores.clone()) };
    let tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(tiers), std::future::pending()));
    let http = reqwest::Client::new();
    let record = "/customers/{customerId}/billing-records/{recordId}";
    let list = "/customers/{customerId}/billing-records";
    let check = async |template: &str, path: &str, etag: Option<&str>, expect: u16| {
        let mut req = http.get(format!("http://{addr}/api{path}"));
        if let Some(tag) = etag {
            req = req.header("If-None-Match", tag);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let body = r.bytes().await.unwrap();
        assert_eq!(status, expect, "{path}: {}", String::from_utf8_lossy(&body));
        conforms(&spec, template, status, &headers, &body);
        headers.get("etag").map(|v| v.to_str().unwrap().to_owned())
    };

    let tag = check(record, "/customers/c/billing-records/hot", None, 200).await.unwrap();
    check(record, "/customers/c/billing-records/hot", Some(&tag), 304).await;
    let cold_tag = check(record, "/customers/c/billing-records/old", None, 200).await.unwrap();
    check(record, "/customers/c/billing-records/old", Some(&cold_tag), 304).await;
    check(record, "/customers/c/billing-records/missing", None, 404).await;
    check(record, "/customers/c/billing-records/a%2Fb", None, 400).await;
    check(record, "/customers/x/billing-records/corrupt", None, 500).await;
    check(list, "/customers/x/billing-records", None, 200).await;
    check(list, "/customers/c/billing-records?pageSize=1", None, 200).await;
    check(list, "/customers/c/billing-records", None, 200).await;
    check(list, "/customers/c/billing-records?pageSize=0", None, 400).await;
    azurite.stop();
    check(record, "/customers/c/billing-records/old", None, 503).await;
    check(list, "/customers/c/billing-records", None, 503).await;
}
