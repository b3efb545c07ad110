//! The Cosmos side: client from settings, point reads, aged-record queries, conditional deletes.
//!
//! Documents travel as raw bytes (`Box<RawValue>`, binary encoding off) so that
//! key order and number text survive untouched from Cosmos to the archive.

use std::num::NonZeroU32;
use std::time::Duration;

use azure_core::credentials::Secret;
use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::feed::{ContinuationToken, FeedScope, QueryPageIterator};
use azure_data_cosmos::options::{
    BinaryEncodingOptions, ConnectionPoolOptions, EndToEndOperationLatencyPolicy, ItemWriteOptions, MaxItemCountHint,
    OperationOptionsBuilder, Precondition, QueryOptions, ThrottlingRetryOptionsBuilder,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosError, CosmosRuntime, Query, RoutingStrategy,
};
use bytes::Bytes;
use serde_json::value::RawValue;

use std::collections::HashSet;

use crate::listing::Window;
use crate::record::{AgeField, AgeValue, RawDocument};
use crate::settings::StoreSettings;
use crate::store::{StoreError, Transport};

/// A point read's result.
#[derive(Debug)]
pub struct ReadItem {
    pub doc: RawDocument,
    pub request_charge: f64,
}

/// One page of a query: raw documents and what the page cost.
#[derive(Debug, Default)]
pub struct QueryPage {
    pub docs: Vec<Bytes>,
    pub request_charge: f64,
}

/// The billing-records container.
#[derive(Clone)]
pub struct CosmosStore {
    client: CosmosClient,
    container: ContainerClient,
    age_field: AgeField,
}

impl std::fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosStore").field("endpoint", &self.client.endpoint().as_str()).finish()
    }
}

impl From<CosmosError> for StoreError {
    fn from(e: CosmosError) -> Self {
        let status = e.status();
        let code = u16::from(status.status_code());
        let retry_after = e.response().and_then(|r| r.headers().retry_after_ms).map(Duration::from_millis);
        let sub_status = status.sub_status().map(|s| s.value()).unwrap_or(0);
        match (code, sub_status) {
            // 1003: the container or database itself is missing; a broken store,
            // not a missing record, so never a 404.
            (404, 1003) => StoreError::Unavailable(format!("the Cosmos container does not exist: {e}")),
            // Sub-statuses from 20000 up are made by the SDK itself (no token,
            // transport failure, timeout): the service could not be asked.
            (_, 20_000..) => StoreError::Unavailable(e.to_string()),
            // Transport failures also arrive as synthetic 503/408 statuses.
            _ => StoreError::from_status(code, retry_after, e.to_string()),
        }
    }
}

impl CosmosStore {
    /// Connects once at start-up: fetches the account and container metadata.
    ///
    /// With `COSMOS_KEY` the key signs requests (emulators); otherwise the managed identity does.
    pub async fn connect(settings: &StoreSettings, transport: Transport) -> anyhow::Result<Self> {
        let client = Self::client(settings, transport).await?;
        let container = client
            .database_client(settings.cosmos_database.as_str())
            .container_client(settings.cosmos_container.as_str(), None)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open container {}/{} at {}: {e}",
                    settings.cosmos_database,
                    settings.cosmos_container,
                    settings.cosmos_endpoint
                )
            })?;
        Ok(Self { client, container, age_field: settings.age_field.clone() })
    }

    /// The account client alone (tests and the demo use it to create databases).
    pub async fn client(settings: &StoreSettings, transport: Transport) -> anyhow::Result<CosmosClient> {
        let endpoint: AccountEndpoint = settings.cosmos_endpoint.as_str().parse()?;
        let account = match &settings.cosmos_key {
            Some(key) => AccountReference::with_authentication_key(endpoint, Secret::new(key.secret().to_owned())),
            None => AccountReference::with_credential(endpoint, crate::identity::credential(settings)?),
        };
        let mut pool = ConnectionPoolOptions::builder()
            .with_max_dataplane_request_timeout(transport.per_try_timeout)
            .with_max_connect_timeout(Duration::from_secs(5).min(transport.per_try_timeout));
        if emulator_http(settings) {
            // The local emulator speaks HTTP/1.1 only; the SDK would otherwise assume h2.
            pool = pool.with_is_http2_allowed(false);
        }
        let runtime = CosmosRuntime::builder().with_connection_pool(pool.build()?).build().await?;
        let operations = OperationOptionsBuilder::new()
            .with_throttling_retry_options(
                ThrottlingRetryOptionsBuilder::new()
                    .with_max_retry_count(transport.retries.max(1) * 3)
                    .with_max_retry_wait_time(transport.total)
                    .build(),
            )
            .with_max_failover_retry_count(transport.retries)
            .with_end_to_end_latency_policy(EndToEndOperationLatencyPolicy::new(transport.total))
            .build();
        let client = CosmosClient::builder()
            .with_runtime(runtime)
            // Binary encoding would hand us re-encoded text (sorted keys, re-printed numbers).
            .with_binary_encoding_options(BinaryEncodingOptions::new().with_enabled(false))
            .with_default_operation_options(operations)
            .build(account, RoutingStrategy::PreferredRegions(Vec::new()))
            .await?;
        Ok(client)
    }

    pub fn age_field(&self) -> &AgeField {
        &self.age_field
    }

    /// Point read by id and partition key.
    pub async fn read(&self, customer_id: &str, id: &str) -> Result<ReadItem, StoreError> {
        let response = self.container.read_item(customer_id.to_owned(), id, None).await?;
        let request_charge = response.headers().request_charge().map(|c| c.value()).unwrap_or(0.0);
        let body = response.into_body().single()?;
        let doc = RawDocument::parse(body).map_err(|e| StoreError::Other(format!("Cosmos returned {e}")))?;
        Ok(ReadItem { doc, request_charge })
    }

    /// Deletes only the version that was read; returns the request charge.
    pub async fn delete_if_match(&self, customer_id: &str, id: &str, etag: &str) -> Result<f64, StoreError> {
        let options = ItemWriteOptions::default().with_precondition(Precondition::if_match(etag.to_owned()));
        let response = self.container.delete_item(customer_id.to_owned(), id, Some(options)).await?;
        Ok(response.headers().request_charge().map(|c| c.value()).unwrap_or(0.0))
    }

    /// Every record dated before `cutoff`, across partitions, page by page.
    ///
    /// The query is the archiver's work queue: records archived by a previous run
    /// are gone from Cosmos, so a run that stopped early simply resumes here.
    pub async fn aged_records(&self, cutoff: &AgeValue, page_size: u32) -> Result<Pages, StoreError> {
        let sql = format!("SELECT * FROM c WHERE c[\"{}\"] < @cutoff", self.age_field.name());
        let query = Query::from(sql).with_parameter("@cutoff", cutoff.to_json())?;
        self.pages(query, FeedScope::full_container(), page_size, None).await
    }

    /// The first `limit` records of a customer inside `window`, in listing order.
    pub async fn customer_records(
        &self,
        customer_id: &str,
        window: &Window,
        limit: u32,
    ) -> Result<(Vec<RawDocument>, f64), StoreError> {
        let query = list_query(&self.age_field, customer_id, window, limit)?;
        let scope = FeedScope::partition(customer_id.to_owned());
        let mut pages = self.pages(query, scope, limit.max(1), None).await?;
        let (mut docs, mut charge) = (Vec::new(), 0.0);
        while let Some(page) = pages.next_page().await {
            let page = page?;
            charge += page.request_charge;
            for raw in page.docs {
                docs.push(RawDocument::parse(raw).map_err(|e| StoreError::Other(format!("Cosmos returned {e}")))?);
            }
            if docs.len() >= limit as usize {
                break;
            }
        }
        docs.truncate(limit as usize);
        Ok((docs, charge))
    }

    /// Which of `ids` exist in Cosmos for this customer (at any age).
    pub async fn existing_ids(&self, customer_id: &str, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let query = Query::from("SELECT c.id FROM c WHERE c.customerId = @customer AND ARRAY_CONTAINS(@ids, c.id)")
            .with_parameter("@customer", customer_id)?
            .with_parameter("@ids", ids)?;
        let scope = FeedScope::partition(customer_id.to_owned());
        let mut pages = self.pages(query, scope, 100, None).await?;
        let mut found = HashSet::new();
        while let Some(page) = pages.next_page().await {
            for raw in page?.docs {
                #[derive(serde::Deserialize)]
                struct Id {
                    id: String,
                }
                found.insert(serde_json::from_slice::<Id>(&raw)?.id);
            }
        }
        Ok(found)
    }

    /// A parameterised query, paged, optionally resumed from a continuation token.
    pub async fn pages(
        &self,
        query: Query,
        scope: FeedScope,
        page_size: u32,
        continuation: Option<String>,
    ) -> Result<Pages, StoreError> {
        let mut options = QueryOptions::default()
            .with_max_item_count(MaxItemCountHint::Limit(NonZeroU32::new(page_size.max(1)).unwrap_or(NonZeroU32::MIN)));
        if let Some(token) = continuation {
            options = options.with_continuation_token(ContinuationToken::from_string(token));
        }
        let iter = self.container.query_items::<Box<RawValue>>(query, scope, Some(options)).await?;
        Ok(Pages { inner: iter.into_pages() })
    }

    /// The account client, for set-up in tests and the demo.
    pub fn cosmos_client(&self) -> &CosmosClient {
        &self.client
    }
}

/// The list query: one partition, the window as predicates, listing order, `TOP limit`.
///
/// The ORDER BY on two properties needs a composite index (age DESC, id ASC);
/// [`ensure_container`] and the Bicep template create it.
pub fn list_query(field: &AgeField, customer_id: &str, window: &Window, limit: u32) -> Result<Query, StoreError> {
    // The field name is validated as a plain identifier by AgeField::parse.
    let f = format!("c.{}", field.name());
    let mut sql = format!("SELECT TOP {limit} * FROM c WHERE c.customerId = @customer");
    sql += &match field {
        AgeField::Ts => format!(" AND IS_NUMBER({f})"),
        AgeField::Iso(_) => format!(" AND IS_STRING({f})"),
    };
    let mut query_params: Vec<(&str, serde_json::Value)> = vec![("@customer", customer_id.into())];
    if let Some(from) = &window.from {
        sql += &format!(" AND {f} >= @from");
        query_params.push(("@from", from.to_json()));
    }
    if let Some(until) = &window.until {
        sql += &format!(" AND {f} < @until");
        query_params.push(("@until", until.to_json()));
    }
    if let Some(after) = &window.after {
        sql += &format!(" AND ({f} < @afterAge OR ({f} = @afterAge AND c.id > @afterId))");
        query_params.push(("@afterAge", after.age.to_json()));
        query_params.push(("@afterId", after.id.clone().into()));
    }
    sql += &format!(" ORDER BY {f} DESC, c.id ASC");
    let mut query = Query::from(sql);
    for (name, value) in query_params {
        query = query.with_parameter(name, value)?;
    }
    Ok(query)
}

/// True when the endpoint is a plain-HTTP local emulator.
fn emulator_http(settings: &StoreSettings) -> bool {
    settings.cosmos_endpoint.scheme() == "http"
}

/// Query pages as raw documents.
pub struct Pages {
    inner: QueryPageIterator<Box<RawValue>>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages")
    }
}

impl Pages {
    /// The next page, or `None` when the query is drained.
    pub async fn next_page(&mut self) -> Option<Result<QueryPage, StoreError>> {
        use futures::TryStreamExt;
        match self.inner.try_next().await {
            Ok(None) => None,
            Err(e) => Some(Err(e.into())),
            Ok(Some(page)) => {
                let request_charge = page.headers().request_charge().map(|c| c.value()).unwrap_or(0.0);
                let docs = page.into_items().into_iter().map(|raw| Bytes::from(raw.get().to_owned())).collect();
                Some(Ok(QueryPage { docs, request_charge }))
            }
        }
    }

    /// A token from which the same query can resume, between pages.
    pub fn continuation(&self) -> Result<String, StoreError> {
        Ok(self.inner.to_continuation_token()?.as_str().to_owned())
    }
}

/// Creates the database and container if missing (tests, the demo, local set-up;
/// in Azure the Bicep template owns them), with the composite index the list query needs.
pub async fn ensure_container(
    client: &CosmosClient,
    database: &str,
    container: &str,
    age_field: &AgeField,
) -> anyhow::Result<()> {
    use azure_data_cosmos::models::{
        CompositeIndex, CompositeIndexOrder, CompositeIndexProperty, ContainerProperties, IndexingMode, IndexingPolicy,
        PartitionKeyDefinition, PropertyPath,
    };
    match client.create_database(database, None).await {
        Ok(_) => {}
        Err(e) if e.status().is_conflict() => {}
        Err(e) => return Err(anyhow::anyhow!("create database {database}: {e}")),
    }
    let listing = CompositeIndex::default()
        .with_property(CompositeIndexProperty::new(format!("/{}", age_field.name()), CompositeIndexOrder::Descending))
        .with_property(CompositeIndexProperty::new("/id", CompositeIndexOrder::Ascending));
    let mut policy = IndexingPolicy::default()
        .with_indexing_mode(IndexingMode::Consistent)
        .with_included_path(PropertyPath::default().with_path("/*"))
        .with_composite_index(listing);
    policy.automatic = true;
    let properties = ContainerProperties::new(container.to_owned(), PartitionKeyDefinition::from("/customerId"))
        .with_indexing_policy(policy);
    match client.database_client(database).create_container(properties, None).await {
        Ok(_) => Ok(()),
        Err(e) if e.status().is_conflict() => Ok(()),
        Err(e) => Err(anyhow::anyhow!("create container {database}/{container}: {e}")),
    }
}

/// Writes a raw JSON document as given (tests and the demo seed data this way).
pub async fn upsert_raw(container: &CosmosStore, customer_id: &str, id: &str, json: &str) -> Result<(), StoreError> {
    let raw = RawValue::from_string(json.to_owned()).map_err(|e| StoreError::Other(e.to_string()))?;
    container.container.upsert_item(customer_id.to_owned(), id, &*raw, None).await?;
    Ok(())
}

/// Creates a document from raw JSON only if its id is free ([`StoreError::AlreadyExists`] otherwise).
pub async fn create_raw(container: &CosmosStore, customer_id: &str, id: &str, json: &[u8]) -> Result<(), StoreError> {
    let text = std::str::from_utf8(json).map_err(|e| StoreError::Other(e.to_string()))?;
    let raw = RawValue::from_string(text.to_owned()).map_err(|e| StoreError::Other(e.to_string()))?;
    container.container.create_item(customer_id.to_owned(), id, &*raw, None).await?;
    Ok(())
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Other(format!("JSON: {e}"))
    }
}
