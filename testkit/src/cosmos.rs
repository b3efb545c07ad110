//! Cosmos set-up for tests, the demo and the benchmark: databases and containers
//! as a production team has them, and raw documents written as given.

use azure_data_cosmos::CosmosClient;
use serde_json::value::RawValue;
use tiering::archive::BlobArchive;
use tiering::cosmos::CosmosStore;
use tiering::settings::StoreSettings;
use tiering::store::StoreError;

use crate::emulator::TEST_TRANSPORT;
use crate::sample::SampleRecord;

/// The indexing policy of a container the tests create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexing {
    /// What Cosmos gives a container created without a policy, as production
    /// containers usually are: range indexes on every path, no composite index.
    Default,
    /// The default plus a composite index on (age field DESC, id ASC).
    Composite,
}

/// Creates the settings' database and container if missing, partitioned by the
/// settings' partition key.
pub async fn ensure_container(
    client: &CosmosClient,
    settings: &StoreSettings,
    indexing: Indexing,
) -> anyhow::Result<()> {
    use azure_data_cosmos::models::{
        CompositeIndex, CompositeIndexOrder, CompositeIndexProperty, ContainerProperties, IndexingMode, IndexingPolicy,
        PartitionKeyDefinition, PropertyPath,
    };
    let partition_key = PartitionKeyDefinition::from(settings.partition_key.to_string());
    let mut properties = ContainerProperties::new(settings.cosmos_container.clone(), partition_key);
    if indexing == Indexing::Composite {
        let listing = CompositeIndex::default()
            .with_property(CompositeIndexProperty::new(
                format!("/{}", settings.age_field.name()),
                CompositeIndexOrder::Descending,
            ))
            .with_property(CompositeIndexProperty::new("/id", CompositeIndexOrder::Ascending));
        let mut policy = IndexingPolicy::default()
            .with_indexing_mode(IndexingMode::Consistent)
            .with_included_path(PropertyPath::default().with_path("/*"))
            .with_composite_index(listing);
        policy.automatic = true;
        properties = properties.with_indexing_policy(policy);
    }
    create_container(client, &settings.cosmos_database, properties).await
}

/// Creates a database (if missing) and a container as `properties` say, for a
/// container another team set up (a hierarchical key, say).
pub async fn create_container(
    client: &CosmosClient,
    database: &str,
    properties: azure_data_cosmos::models::ContainerProperties,
) -> anyhow::Result<()> {
    match client.create_database(database, None).await {
        Ok(_) => {}
        Err(e) if e.status().is_conflict() => {}
        Err(e) => return Err(anyhow::anyhow!("create database {database}: {e}")),
    }
    let container = properties.id.clone();
    match client.database_client(database).create_container(properties, None).await {
        Ok(_) => Ok(()),
        Err(e) if e.status().is_conflict() => Ok(()),
        Err(e) => Err(anyhow::anyhow!("create container {database}/{container}: {e}")),
    }
}

/// Creates the settings' database and container (default indexing, as a live
/// production container has) and returns a store on it.
pub async fn fresh_cosmos(settings: &StoreSettings) -> CosmosStore {
    fresh_cosmos_with(settings, Indexing::Default).await
}

/// Both stores of fresh emulator settings dated by `age_field`: the Cosmos
/// container ([`fresh_cosmos`]) and the archive container, both created.
pub async fn fresh_stores(age_field: tiering::record::AgeField) -> (StoreSettings, CosmosStore, BlobArchive) {
    let stores = crate::emulator::emulator_settings(age_field);
    let cosmos = fresh_cosmos(&stores).await;
    let blob = BlobArchive::new(&stores, TEST_TRANSPORT).expect("blob client");
    blob.ensure_container().await.expect("create the archive container");
    (stores, cosmos, blob)
}

/// [`fresh_cosmos`] with a chosen indexing policy.
pub async fn fresh_cosmos_with(settings: &StoreSettings, indexing: Indexing) -> CosmosStore {
    let client = CosmosStore::client(settings, TEST_TRANSPORT).await.expect("cosmos client");
    ensure_container(&client, settings, indexing).await.expect("create container");
    CosmosStore::connect(settings, TEST_TRANSPORT).await.expect("open container")
}

/// Writes a raw JSON document as given, replacing any version there.
pub async fn upsert_raw(store: &CosmosStore, customer_id: &str, id: &str, json: &str) -> Result<(), StoreError> {
    let raw = RawValue::from_string(json.to_owned()).map_err(|e| StoreError::Other(e.to_string()))?;
    store.container_client().upsert_item(customer_id.to_owned(), id, &*raw, None).await?;
    Ok(())
}

/// Writes sample records into Cosmos.
pub async fn seed(cosmos: &CosmosStore, records: &[SampleRecord]) {
    for r in records {
        upsert_raw(cosmos, &r.customer_id, &r.id, &r.json).await.unwrap_or_else(|e| panic!("seeding {}: {e}", r.id));
    }
}

/// Puts `r`'s current version in Cosmos as its archived copy (and, with
/// `entry`, its list index entry), as a run stopped just after that step
/// leaves them: the copy verified, the record not yet deleted.
pub async fn copy_as_a_run_left_it(
    cosmos: &CosmosStore,
    blob: &BlobArchive,
    field: &tiering::record::AgeField,
    r: &SampleRecord,
    entry: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use tiering::archive::{Archive, PutCondition};
    use tiering::codec::{self, AgeStamp, ArchiveMeta};
    let doc = cosmos.read(&r.customer_id, &r.id).await?.doc;
    let body = doc.as_bytes().to_vec();
    let meta = ArchiveMeta {
        sha256: codec::sha256_hex(&body),
        length: body.len() as u64,
        etag: doc.etag().context("the record's _etag")?,
        ts: doc.ts().context("the record's _ts")?,
        stamp: AgeStamp::new(field, Some(&tiering::record::AgeValue::Text(r.invoice_date.to_string()))),
        archived_at: chrono::Utc::now(),
    };
    let name = tiering::layout::blob_name(&r.customer_id, &r.id)?;
    blob.put(&name, codec::compress(&body).into(), meta.to_metadata(), PutCondition::Absent).await?;
    if entry {
        let entry = tiering::index::entry_of(&r.customer_id, &r.id, &meta, field).context("an index entry")?;
        tiering::index::write(blob, &entry, &meta).await?;
    }
    Ok(())
}
