//! Containers partitioned otherwise than `/customerId`, against the real
//! emulators (`./scripts/test.sh`): the apps refuse settings that do not
//! describe the container, refuse hierarchical keys, and archive and serve a
//! container partitioned by `/id` or `/tenantId` under that profile's routes.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use archiver::startup::Archiver;
use chrono::Utc;
use testkit::cosmos::{create_container, fresh_cosmos, upsert_raw};
use testkit::emulator::{TEST_TRANSPORT, emulator_settings};
use tiering::archive::BlobArchive;
use tiering::contract::{Contract, PartitionKeyPath};
use tiering::cosmos::CosmosStore;
use tiering::record::AgeField;
use tiering::settings::{ArchiverSettings, ReaderSettings, StoreSettings};

fn partitioned(path: &str) -> StoreSettings {
    let mut stores = emulator_settings(AgeField::Ts);
    stores.partition_key = PartitionKeyPath::parse(path).unwrap();
    stores
}

async fn serve(stores: &StoreSettings, contract: Contract) -> SocketAddr {
    let settings = ReaderSettings { contract, ..ReaderSettings::defaults(stores.clone()) };
    let tiers = reader::startup::build(&settings, TEST_TRANSPORT).await.unwrap();
    let (listener, addr) = tiering::host::bind(0).await.unwrap();
    tokio::spawn(tiering::host::serve(listener, reader::router(tiers), std::future::pending()));
    addr
}

async fn archiver(cosmos: CosmosStore, stores: &StoreSettings) -> Archiver {
    let blob = BlobArchive::new(stores, TEST_TRANSPORT).unwrap();
    blob.ensure_container().await.unwrap();
    let settings = ArchiverSettings {
        time_budget: Duration::from_secs(120),
        quiet_days: 0,
        ..ArchiverSettings::defaults(stores.clone())
    };
    Archiver { cosmos, archive: Arc::new(blob), settings }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_apps_refuse_to_start_on_a_container_partitioned_otherwise() {
    let tenants = partitioned("/tenantId");
    fresh_cosmos(&tenants).await;
    let mut wrong = tenants.clone();
    wrong.partition_key = PartitionKeyPath::default();
    let reader = ReaderSettings::defaults(wrong.clone());
    let err = reader::startup::build(&reader, TEST_TRANSPORT).await.unwrap_err().to_string();
    assert!(err.contains("/tenantId") && err.contains("/customerId"), "names both: {err}");
    let err = archiver::startup::build(ArchiverSettings::defaults(wrong), TEST_TRANSPORT, false).await.unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("partitioned by /tenantId") && err.contains("COSMOS_PARTITION_KEY"), "{err}");
}

#[tokio::test]
async fn hierarchical_partition_keys_are_refused_at_start_up() {
    use azure_data_cosmos::models::{ContainerProperties, PartitionKeyDefinition};
    let stores = partitioned("/tenantId");
    let client = CosmosStore::client(&stores, TEST_TRANSPORT).await.unwrap();
    let definition = PartitionKeyDefinition::new(vec!["/tenantId".into(), "/userId".into()]);
    let properties = ContainerProperties::new(stores.cosmos_container.clone(), definition);
    create_container(&client, &stores.cosmos_database, properties).await.unwrap();
    let err = match CosmosStore::connect(&stores, TEST_TRANSPORT).await {
        Err(tiering::cosmos::ConnectError::Misconfigured(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(err.contains("hierarchical key /tenantId, /userId") && err.contains("not supported"), "{err}");
}

const BY_ID: &str = r#"
[container]
partition_key = "/id"
[routes]
prefix = "api"
record = "invoices/{invoiceId}"
id_param = "invoiceId"
[not_found]
content_type = "application/problem+json"
"#;

#[tokio::test]
async fn a_container_partitioned_by_id_archives_and_reads_back_under_its_own_routes() {
    let stores = partitioned("/id");
    let cosmos = fresh_cosmos(&stores).await;
    let ids = ["inv-1", "inv 2 ü", "50%-off"];
    for (i, id) in ids.iter().enumerate() {
        let json = format!(r#"{{"id":{},"amount":{}.50,"status":"paid"}}"#, serde_json::Value::from(*id), i + 1);
        upsert_raw(&cosmos, id, id, &json).await.unwrap();
    }
    let addr = serve(&stores, Contract::parse(BY_ID).unwrap()).await;
    let path = |id: &str| {
        format!("/api/invoices/{}", percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC))
    };
    let mut hot = Vec::new();
    for id in ids {
        let answer = get(addr, &path(id)).await;
        assert_eq!(answer.0, 200, "{id}: {}", String::from_utf8_lossy(&answer.2));
        assert!(!String::from_utf8_lossy(&answer.2).contains("_rid"));
        hot.push(answer);
    }
    let summary = archiver(cosmos.clone(), &stores).await.run(Utc::now() + chrono::Duration::days(100), false).await;
    assert_eq!((summary.archived, summary.blocked, summary.failed), (3, 0, 0), "{summary:?}");
    for (id, before) in ids.iter().zip(&hot) {
        assert!(cosmos.read(id, id).await.is_err(), "{id} left Cosmos");
        assert_eq!(&get(addr, &path(id)).await, before, "{id} reads from the archive as it did from Cosmos");
    }
    let missing = get(addr, &path("nope")).await;
    assert_eq!(missing.0, 404);
    assert_eq!(missing.2, br#"{"error":{"code":"NotFound","message":"record \"nope\" does not exist"}}"#);
    let content_type = missing.1.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some("application/problem+json"), "the profile's content type, even without a body");
    assert_eq!(
        get(addr, &path("inv-1").replace("invoices", "INVOICES")).await,
        hot[0],
        "literals in any case, as the host"
    );
    assert_eq!(get(addr, "/api/invoices").await.0, 404, "the profile has no list route");
    assert_eq!(get(addr, "/api/customers/inv-1/billing-records/inv-1").await.0, 404, "nor the default's routes");
}

#[tokio::test]
async fn a_tenant_partitioned_container_serves_documents_as_stored() {
    let stores = partitioned("/tenantId");
    let cosmos = fresh_cosmos(&stores).await;
    let profile = r#"
[container]
partition_key = "/tenantId"
[routes]
prefix = ""
record = "tenants/{tenant}/invoices/{invoice}"
list = "tenants/{tenant}/invoices"
partition_key_param = "tenant"
id_param = "invoice"
[body]
as_stored = true
content_type = "application/json"
[headers]
etag = false
"#;
    let tenant = "t 1 %ü";
    for i in 0..3 {
        let json = format!(r#"{{"tenantId":{},"id":"i{i}","n":1.0{i}}}"#, serde_json::Value::from(tenant));
        upsert_raw(&cosmos, tenant, &format!("i{i}"), &json).await.unwrap();
    }
    let archiver = archiver(cosmos.clone(), &stores).await;
    let addr = serve(&stores, Contract::parse(profile).unwrap()).await;
    let encoded = percent_encoding::utf8_percent_encode(tenant, percent_encoding::NON_ALPHANUMERIC).to_string();
    let record = |i: usize| format!("/tenants/{encoded}/invoices/i{i}");
    let before = get(addr, &record(1)).await;
    assert_eq!(before.0, 200);
    let stored = cosmos.read(tenant, "i1").await.unwrap().doc;
    assert_eq!(before.2, stored.as_bytes(), "as stored, system properties and all");
    assert!(before.1.iter().all(|(k, _)| k != "etag"), "no ETag: {:?}", before.1);
    assert!(before.1.iter().any(|(k, _)| k == "last-modified"));
    let list_before = get(addr, &format!("/tenants/{encoded}/invoices")).await;
    assert!(list_before.1.contains(&("content-type".to_owned(), "application/json".to_owned())), "{:?}", list_before.1);
    archiver.run(Utc::now() + chrono::Duration::days(100), false).await;
    assert!(cosmos.read(tenant, "i1").await.is_err());
    assert_eq!(get(addr, &record(1)).await, before, "the archived document, as stored");
    assert_eq!(get(addr, &format!("/tenants/{encoded}/invoices")).await, list_before, "the same list page");
    // Restored exactly, by its partition-key property.
    archiver::ops::restore(&archiver, tenant, "i1", Duration::from_secs(5)).await.unwrap();
    let back = cosmos.read(tenant, "i1").await.unwrap().doc;
    assert_eq!(back.without_system_properties(), stored.without_system_properties());
    assert_eq!(get(addr, &record(1)).await.2, back.as_bytes(), "served hot again, as stored");
}
