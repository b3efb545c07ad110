//! The Cosmos side: client from settings, point reads, aged-record queries, conditional deletes.
//!
//! Documents travel as raw bytes (`Box<RawValue>`, binary encoding off) so that
//! key order and number text survive untouched from Cosmos to the archive.

use std::num::NonZeroU32;
use std::time::Duration;

use azure_core::credentials::Secret;
use azure_data_cosmos::clients::ContainerClient;
/// A physical partition's share of the EPK space (the SDK's type).
pub use azure_data_cosmos::feed::FeedRange;
use azure_data_cosmos::feed::{ContinuationToken, FeedScope, QueryPageIterator};
use azure_data_cosmos::models::{ContainerProperties, PartitionKeyKind};
use azure_data_cosmos::options::{
    BinaryEncodingOptions, ConnectionPoolOptions, EndToEndOperationLatencyPolicy, ItemReadOptions, ItemWriteOptions,
    MaxItemCountHint, OperationOptionsBuilder, Precondition, PriorityLevel, QueryOptions, ReadFeedRangesOptions,
    ThrottlingRetryOptionsBuilder, ThroughputControlOptionsBuilder,
};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosError, CosmosRuntime, Query, RoutingStrategy,
};
use bytes::Bytes;
use serde_json::value::RawValue;

use std::collections::HashMap;

use crate::contract::PartitionKeyPath;
use crate::listing::{Cursor, Window, listing_order};
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
    /// Attempts Cosmos throttled (429) before the page came (the SDK retried them).
    pub throttled: u32,
}

/// What one operation's attempts looked like: the SDK retries throttling and
/// ambiguous transport failures on its own, and reports each attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Attempts {
    /// What all attempts together cost (refused ones included).
    pub request_charge: f64,
    /// Attempts answered 429.
    pub throttled: u32,
    /// True when every attempt before the last was refused without effect (429),
    /// so the last answer alone says what happened. False when an earlier attempt
    /// may have been applied (its answer was lost, the SDK sent it again).
    pub last_is_authoritative: bool,
}

impl Attempts {
    fn of(diagnostics: &azure_data_cosmos::diagnostics::DiagnosticsContext) -> Self {
        let requests = diagnostics.requests();
        let throttled = requests.iter().filter(|r| r.status().is_throttled()).count() as u32;
        let before_last = requests.len().saturating_sub(1);
        let complete = diagnostics.request_count() == requests.len();
        Self {
            request_charge: diagnostics.total_request_charge().value(),
            throttled,
            last_is_authoritative: complete && requests.iter().take(before_last).all(|r| r.status().is_throttled()),
        }
    }

    /// An error without diagnostics: its own charge, nothing known about retries.
    fn charged(e: &CosmosError) -> Self {
        Self { request_charge: error_charge(e), throttled: 0, last_is_authoritative: false }
    }
}

/// Which version of a record Cosmos holds: its `_etag` and `_ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub etag: String,
    pub ts: i64,
}

/// The outcome of a conditional delete.
#[derive(Debug)]
pub struct Deletion {
    pub result: Result<(), StoreError>,
    pub attempts: Attempts,
}

/// How the archiver's requests share the container's throughput with the live
/// API: Cosmos DB's priority-based execution (low-priority requests are throttled
/// first) and throughput buckets (a request group held to a share of the
/// container's RU). Both ride on every request as headers
/// (`x-ms-cosmos-priority-level`, `x-ms-cosmos-throughput-bucket`:
/// azure_data_cosmos_driver 1.0, `options/operation_options.rs`,
/// `models/cosmos_headers.rs`). Microsoft's docs: an account without
/// priority-based execution ignores the priority; a bucket id 1 to 5 that the
/// container does not configure is no error, its requests use the container's
/// throughput as any other (docs/deployment.md, "Sharing the throughput").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThroughputControl {
    pub low_priority: bool,
    pub bucket: Option<u8>,
}

/// What a container's throughput is, as read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Throughput {
    /// Manual, provisioned on the container (RU/s).
    Manual(u64),
    /// Autoscale on the container, up to this maximum (RU/s).
    Autoscale(u64),
    /// Shared by the database's containers (manual RU/s, or autoscale maximum).
    Database(u64),
    /// Not readable: why (a serverless account, an identity without the right).
    Unknown(String),
}

/// One physical partition's share of a query: its feed range (as the SDK
/// prints it) and where the query stands in it (a continuation token; `None`:
/// from the start). The unit of the archiver's work: serialisable, so that a
/// later step can hand slices to other instances (docs/archive-protocol.md,
/// "Spreading a backfill over instances").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeSlice {
    pub range: String,
    pub continuation: Option<String>,
}

impl RangeSlice {
    /// The whole of `range`, from its start.
    pub fn of(range: &FeedRange) -> Self {
        Self { range: range.to_string(), continuation: None }
    }

    pub fn feed_range(&self) -> Result<FeedRange, StoreError> {
        self.range.parse().map_err(|e| StoreError::Other(format!("`{}` is not a feed range: {e}", self.range)))
    }
}

/// The billing-records container.
#[derive(Clone)]
pub struct CosmosStore {
    client: CosmosClient,
    container: ContainerClient,
    database: String,
    age_field: AgeField,
    partition_key: PartitionKeyPath,
    /// How many partition-key ranges a cross-partition query may plan for.
    max_fan_out: u32,
    /// Request units spent through this store and its clones by point reads,
    /// creates and deletes, in hundredths ([`CosmosStore::request_units`]).
    spent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The fan-out a cross-partition query may plan for on a container of `ranges`
/// physical partitions: the driver refuses a plan wider than its default of 100
/// ranges (azure_data_cosmos_driver 1.0, `driver/options/plan_options.rs`,
/// `dataflow/planner.rs`: 400 with sub-status 20118), so a container with more
/// would fail every run. Twice the count leaves room for splits after start-up.
pub fn max_fan_out(ranges: usize) -> u32 {
    u32::try_from(ranges.saturating_mul(2)).unwrap_or(u32::MAX).max(100)
}

/// Why [`CosmosStore::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The settings do not describe this container (another partition key, a
    /// hierarchical one): no retry can help, so the apps refuse to start.
    #[error("{0}")]
    Misconfigured(String),
    /// The account or container could not be reached or opened (yet).
    #[error(transparent)]
    Unreachable(#[from] anyhow::Error),
}

/// Checks the container's own partition-key definition against the setting:
/// `paths` and `kind` as the container's properties give them.
pub fn check_partition_key(setting: &PartitionKeyPath, paths: &[&str], hierarchical: bool) -> Result<(), String> {
    if hierarchical || paths.len() != 1 {
        return Err(format!(
            "the container is partitioned by the hierarchical key {}; hierarchical partition keys are not \
             supported (docs/adopting.md)",
            paths.join(", ")
        ));
    }
    if paths[0] != setting.to_string() {
        return Err(format!(
            "the container is partitioned by {}, but COSMOS_PARTITION_KEY (the contract's container.partition_key) \
             is {setting}",
            paths[0]
        ));
    }
    Ok(())
}

impl std::fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosStore").field("endpoint", &self.client.endpoint().as_str()).finish()
    }
}

/// Why a container could not be opened, as a store error says it: a firewall's
/// 403 (the first request a locked-down account refuses is this one) names the
/// network rules and what to do, as every later request's error does.
fn open_error(database: &str, name: &str, endpoint: &impl std::fmt::Display, e: CosmosError) -> String {
    format!("cannot open container {database}/{name} at {endpoint}: {}", StoreError::from(e))
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
            // A 400 the SDK made itself: it refused to send the request (a query
            // plan wider than its fan-out limit, 20118; a malformed partition key):
            // a request to fix, not an outage.
            (400, 20_000..) => StoreError::Refused(format!("the Cosmos SDK refused the request: {e}")),
            // Other sub-statuses from 20000 up are made by the SDK itself (no token,
            // transport failure, timeout): the service could not be asked.
            (_, 20_000..) => StoreError::Unavailable(e.to_string()),
            // Transport failures also arrive as synthetic 503/408 statuses.
            _ => StoreError::from_status(code, retry_after, e.to_string()),
        }
    }
}

impl CosmosStore {
    /// Connects once at start-up: fetches the account and container metadata,
    /// and checks that the container is partitioned as the settings say.
    ///
    /// With `COSMOS_KEY` the key signs requests (emulators); otherwise the managed identity does.
    pub async fn connect(settings: &StoreSettings, transport: Transport) -> Result<Self, ConnectError> {
        Self::connect_controlled(settings, transport, ThroughputControl::default()).await
    }

    /// [`connect`](Self::connect), every request carrying `control`.
    pub async fn connect_controlled(
        settings: &StoreSettings,
        transport: Transport,
        control: ThroughputControl,
    ) -> Result<Self, ConnectError> {
        let client = Self::client_controlled(settings, transport, control).await?;
        let (database, name) = (&settings.cosmos_database, &settings.cosmos_container);
        let unreachable = |e: CosmosError| anyhow::anyhow!(open_error(database, name, &settings.cosmos_endpoint, e));
        let container = client
            .database_client(database.as_str())
            .container_client(name.as_str(), None)
            .await
            .map_err(unreachable)?;
        let properties: ContainerProperties =
            container.read(None).await.map_err(unreachable)?.into_model().map_err(unreachable)?;
        let definition = &properties.partition_key;
        let paths: Vec<&str> = definition.paths().iter().map(|p| p.as_ref()).collect();
        let hierarchical = definition.kind() == PartitionKeyKind::MultiHash;
        check_partition_key(&settings.partition_key, &paths, hierarchical)
            .map_err(|why| ConnectError::Misconfigured(format!("container {database}/{name}: {why}")))?;
        let ranges = match container.read_feed_ranges(None).await {
            Ok(ranges) => ranges.len(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the container's physical partitions; cross-partition queries plan for up to 100");
                0
            }
        };
        let max_fan_out = max_fan_out(ranges);
        tracing::info!(physical_partitions = ranges, max_fan_out, "container {database}/{name} opened");
        Ok(Self {
            client,
            container,
            database: database.clone(),
            age_field: settings.age_field.clone(),
            partition_key: settings.partition_key.clone(),
            max_fan_out,
            spent: Default::default(),
        })
    }

    /// The account client alone (tests and the demo use it to create databases).
    pub async fn client(settings: &StoreSettings, transport: Transport) -> anyhow::Result<CosmosClient> {
        Self::client_controlled(settings, transport, ThroughputControl::default()).await
    }

    async fn client_controlled(
        settings: &StoreSettings,
        transport: Transport,
        control: ThroughputControl,
    ) -> anyhow::Result<CosmosClient> {
        let endpoint: AccountEndpoint = settings.cosmos_endpoint.as_str().parse()?;
        let account = match &settings.cosmos_key {
            Some(key) => AccountReference::with_authentication_key(endpoint, Secret::new(key.secret().to_owned())),
            None => AccountReference::with_credential(endpoint, crate::identity::credential(settings)?),
        };
        // Gateway 2.0 (HTTP/2 to thin-client endpoints, which a real account may
        // advertise) is off: the emulator speaks HTTP/1.1 only, so that path has
        // never run under the test suite (azure_data_cosmos_driver 1.0,
        // options/connection_pool.rs, `with_gateway_v2_disabled`; docs/deployment.md, "Settings the template fixes").
        let mut pool = ConnectionPoolOptions::builder()
            .with_max_dataplane_request_timeout(transport.per_try_timeout)
            .with_max_connect_timeout(Duration::from_secs(5).min(transport.per_try_timeout))
            .with_gateway_v2_disabled(true);
        if emulator_http(settings) {
            // The local emulator speaks HTTP/1.1 only; the SDK would otherwise assume h2.
            pool = pool.with_is_http2_allowed(false);
        }
        let runtime = CosmosRuntime::builder().with_connection_pool(pool.build()?).build().await?;
        let mut operations = OperationOptionsBuilder::new();
        if control != ThroughputControl::default() {
            let mut throughput = ThroughputControlOptionsBuilder::new();
            if control.low_priority {
                throughput = throughput.with_priority_level(PriorityLevel::Low);
            }
            if let Some(bucket) = control.bucket {
                throughput = throughput.with_throughput_bucket(u32::from(bucket));
            }
            operations = operations.with_throughput_control(throughput.build());
        }
        let operations = operations
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

    /// The container's partition key.
    pub fn partition_key(&self) -> &PartitionKeyPath {
        &self.partition_key
    }

    /// Request units spent so far by this store's (and its clones') point reads,
    /// creates and deletes: what a command paced by `ARCHIVE_MAX_RU_PER_SECOND`
    /// charges its budget with (queries report their own charge per page).
    pub fn request_units(&self) -> f64 {
        self.spent.load(std::sync::atomic::Ordering::Relaxed) as f64 / 100.0
    }

    fn spend(&self, request_units: f64) {
        let hundredths = (request_units.max(0.0) * 100.0).round() as u64;
        self.spent.fetch_add(hundredths, std::sync::atomic::Ordering::Relaxed);
    }

    /// Point read by id and partition key.
    pub async fn read(&self, customer_id: &str, id: &str) -> Result<ReadItem, StoreError> {
        let response = match self.container.read_item(customer_id.to_owned(), id, None).await {
            Ok(response) => response,
            Err(e) => {
                self.spend(error_charge(&e));
                return Err(e.into());
            }
        };
        let request_charge = response.headers().request_charge().map(|c| c.value()).unwrap_or(0.0);
        self.spend(request_charge);
        let body = response.into_body().single()?;
        let doc = RawDocument::parse(body).map_err(|e| StoreError::Other(format!("Cosmos returned {e}")))?;
        Ok(ReadItem { doc, request_charge })
    }

    /// Deletes only the version that was read (`If-Match`).
    pub async fn delete_if_match(&self, customer_id: &str, id: &str, etag: &str) -> Deletion {
        let options = ItemWriteOptions::default().with_precondition(Precondition::if_match(etag.to_owned()));
        let deletion = match self.container.delete_item(customer_id.to_owned(), id, Some(options)).await {
            Ok(response) => {
                let attempts = Attempts::of(&response.diagnostics());
                Deletion { result: Ok(()), attempts }
            }
            Err(e) => {
                let attempts = e.diagnostics().map(|d| Attempts::of(&d)).unwrap_or_else(|| Attempts::charged(&e));
                Deletion { result: Err(e.into()), attempts }
            }
        };
        self.spend(deletion.attempts.request_charge);
        deletion
    }

    /// A point read that brings no body back while the item is still at `etag`
    /// (`If-None-Match`: Cosmos answers 304 Not Modified): one point operation's
    /// round trip on the item, changing nothing. A plan's trial times it in place
    /// of the delete it must not send (crate docs of `archiver::plan`). The
    /// request charge, whatever the answer.
    pub async fn read_unless_still(&self, customer_id: &str, id: &str, etag: &str) -> Result<f64, StoreError> {
        let options = ItemReadOptions::default().with_precondition(Precondition::if_none_match(etag.to_owned()));
        match self.container.read_item(customer_id.to_owned(), id, Some(options)).await {
            Ok(response) => {
                let charge = response.headers().request_charge().map(|c| c.value()).unwrap_or(0.0);
                self.spend(charge);
                Ok(charge)
            }
            Err(e) => {
                let charge = error_charge(&e);
                self.spend(charge);
                match StoreError::from(e) {
                    StoreError::NotFound => Ok(charge),
                    other => Err(other),
                }
            }
        }
    }

    /// True when the record is in Cosmos (at any version).
    pub async fn exists(&self, customer_id: &str, id: &str) -> Result<bool, StoreError> {
        match self.read(customer_id, id).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes whatever version is there (an operator's erasure); `Ok(false)` when absent.
    pub async fn delete(&self, customer_id: &str, id: &str) -> Result<bool, StoreError> {
        match self.container.delete_item(customer_id.to_owned(), id, None).await {
            Ok(_) => Ok(true),
            Err(e) => match StoreError::from(e) {
                StoreError::NotFound => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Every record dated before `cutoff`, across partitions, page by page.
    ///
    /// The query is the archiver's work queue: records archived by a previous run
    /// are gone from Cosmos, so a run that stopped early simply resumes here.
    ///
    /// `written_before` is the quiet period's bound (`ARCHIVE_QUIET_DAYS`): a
    /// record whose last write (`_ts`) is not before it is left out, whatever its
    /// age value says. `_ts` is indexed under every indexing policy a container
    /// can have (it is a system property), so the filter costs no re-indexing.
    pub async fn aged_records(
        &self,
        cutoff: &AgeValue,
        written_before: i64,
        page_size: u32,
    ) -> Result<Pages, StoreError> {
        self.pages(self.aged_query(cutoff, written_before)?, FeedScope::full_container(), page_size, None).await
    }

    /// The aged-records query: aged by the age field, last written before the quiet period.
    fn aged_query(&self, cutoff: &AgeValue, written_before: i64) -> Result<Query, StoreError> {
        let sql = format!("SELECT * FROM c WHERE c[\"{}\"] < @cutoff AND c._ts < @quiet", self.age_field.name());
        Ok(Query::from(sql).with_parameter("@cutoff", cutoff.to_json())?.with_parameter("@quiet", written_before)?)
    }

    /// The container's physical partitions as feed ranges, in EPK order, read
    /// afresh (a split since the last look is seen).
    pub async fn feed_ranges(&self) -> Result<Vec<FeedRange>, StoreError> {
        let options = ReadFeedRangesOptions::default().with_force_refresh(true);
        Ok(self.container.read_feed_ranges(Some(options)).await?)
    }

    /// [`aged_records`](Self::aged_records) within one slice: its feed range,
    /// from its continuation. A range that splits meanwhile is followed into its
    /// children by the driver (a 410 with sub-status 1002, 1007 or 1008 makes it
    /// re-read the ranges and go on in each child with the same position:
    /// azure_data_cosmos_driver 1.0, `driver/dataflow/request.rs`,
    /// `split_for_topology_change`; its continuation tokens name positions by
    /// EPK, not by range id, so they survive splits too).
    pub async fn aged_records_in(
        &self,
        slice: &RangeSlice,
        cutoff: &AgeValue,
        written_before: i64,
        page_size: u32,
    ) -> Result<Pages, StoreError> {
        let scope = FeedScope::range(slice.feed_range()?);
        self.pages(self.aged_query(cutoff, written_before)?, scope, page_size, slice.continuation.clone()).await
    }

    /// The container's throughput: its own offer, else its database's (shared
    /// throughput), else why it cannot be read. Offers are read on the data plane
    /// (azure_data_cosmos 1.0, `clients/offers_client.rs`); Entra ID data-plane
    /// roles do not cover them ("Read/Replace Container Throughput" is outside the
    /// data-plane permission model), and a serverless account has none, so a
    /// deployment passes the throughput it read as ARCHIVE_CONTAINER_RU_PER_SECOND.
    pub async fn throughput(&self) -> Throughput {
        let amount = |p: &azure_data_cosmos::models::ThroughputProperties| p.autoscale_maximum().or(p.throughput());
        match self.container.read_throughput(None).await {
            Ok(Some(offer)) => match (offer.autoscale_maximum(), offer.throughput()) {
                (Some(max), _) => Throughput::Autoscale(max),
                (None, Some(manual)) => Throughput::Manual(manual),
                (None, None) => Throughput::Unknown("the container's offer names no throughput".into()),
            },
            Ok(None) => match self.client.database_client(&self.database).read_throughput(None).await {
                Ok(Some(offer)) => match amount(&offer) {
                    Some(n) => Throughput::Database(n),
                    None => Throughput::Unknown("the database's offer names no throughput".into()),
                },
                Ok(None) => Throughput::Unknown("neither the container nor its database has an offer".into()),
                Err(e) => Throughput::Unknown(format!("the database's throughput cannot be read: {}", first_line(&e))),
            },
            Err(e) => Throughput::Unknown(format!("the container's throughput cannot be read: {}", first_line(&e))),
        }
    }

    /// What a plan needs of every aged record, and no more: `{id, pk, age, ts}`,
    /// the quiet period not applied (the plan counts what it holds back).
    /// Within one physical partition's range when `range` is given.
    pub async fn aged_rows(
        &self,
        cutoff: &AgeValue,
        page_size: u32,
        range: Option<&FeedRange>,
    ) -> Result<Pages, StoreError> {
        let (f, pk) = (self.age_field.name(), self.partition_key.property());
        let sql =
            format!("SELECT c.id, c[\"{pk}\"] AS pk, c[\"{f}\"] AS age, c._ts AS ts FROM c WHERE c[\"{f}\"] < @cutoff");
        let query = Query::from(sql).with_parameter("@cutoff", cutoff.to_json())?;
        let scope = range.map_or_else(FeedScope::full_container, |r| FeedScope::range(r.clone()));
        self.pages(query, scope, page_size, None).await
    }

    /// The first `limit` records of a customer inside `window`, in listing order
    /// (age value descending, then id ascending), on any indexing policy.
    ///
    /// Ordering by two properties needs a composite index, which a live container
    /// rarely has and should not need for this. So Cosmos orders by the age field
    /// alone, and ties at the page's last age value are completed by a second query
    /// that orders those ids alone (docs/read-api.md, "How lists are served").
    ///
    /// `max_bytes` bounds the documents held: once they reach it, no more are
    /// taken and the slice ends early (with a boundary), so a page of large
    /// records costs the reader memory in proportion to the bound, not to `limit`.
    pub async fn customer_records(
        &self,
        customer_id: &str,
        window: &Window,
        limit: u32,
        max_bytes: usize,
    ) -> Result<CustomerSlice, StoreError> {
        let field = &self.age_field;
        let scope = || FeedScope::partition(customer_id.to_owned());
        let mut charge = 0.0;
        let pk = &self.partition_key;
        let query = list_query(field, pk, customer_id, window, ListStep::Top(limit))?;
        let (docs, cut) = self.collect_docs(query, scope(), limit, max_bytes, &mut charge).await?;
        let complete = !cut && docs.len() < limit as usize;
        // The query's type filter guarantees a sort key; the window check guards
        // against a store that compares differently from us.
        let keyed: Vec<(AgeValue, String, RawDocument)> =
            docs.into_iter().filter_map(|d| Some((d.sort_key(field)?, d.id().ok()?, d))).collect();
        // Where Cosmos stopped, by our order: the boundary if nothing else survives.
        let raw_last = keyed
            .iter()
            .max_by(|a, b| listing_order((&a.0, &a.1), (&b.0, &b.1)))
            .map(|d| Cursor { age: d.0.clone(), id: d.1.clone() });
        // A query that spans continuations is no snapshot: a record that moved
        // between them may come twice; the later answer wins.
        let mut docs: Vec<(AgeValue, String, RawDocument)> = Vec::with_capacity(keyed.len());
        for d in keyed.into_iter().filter(|(age, id, _)| window.contains(age, id)) {
            docs.retain(|e| e.1 != d.1);
            docs.push(d);
        }
        let by_position = |a: &(AgeValue, String, RawDocument), b: &(AgeValue, String, RawDocument)| {
            listing_order((&a.0, &a.1), (&b.0, &b.1))
        };
        if complete {
            // Everything after the position fits: the order is ours to make.
            docs.sort_by(by_position);
            return Ok(CustomerSlice { docs: docs.into_iter().map(|d| d.2).collect(), boundary: None, charge });
        }
        // Cosmos returned the `limit` newest; all of them above the last age value are
        // the right ones, but among equal age values it picked arbitrary ids.
        let Some((last_age, last_id)) = docs.iter().min_by(|a, b| a.0.cmp(&b.0)).map(|d| (d.0.clone(), d.1.clone()))
        else {
            // Cosmos had more, but none of it is ours to list: still not the end.
            return Ok(CustomerSlice { docs: Vec::new(), boundary: raw_last, charge });
        };
        let (mut above, at_last): (Vec<_>, Vec<_>) = docs.into_iter().partition(|d| d.0 > last_age);
        above.sort_by(by_position);
        // Any number of ties is right (the boundary is the last one listed): when
        // the byte bound cut the slice, no more than it already held.
        let need = if cut { at_last.len() as u32 } else { limit.saturating_sub(above.len() as u32) }.max(1);
        let query = list_query(field, pk, customer_id, window, ListStep::TiesAt { age: &last_age, limit: need })?;
        let mut tie_ids = Vec::new();
        let mut pages = self.pages(query, scope(), need.max(1), None).await?;
        while let Some(page) = pages.next_page().await {
            let page = page?;
            charge += page.request_charge;
            for raw in page.docs {
                tie_ids.push(serde_json::from_slice::<IdOnly>(&raw)?.id);
            }
        }
        tie_ids.truncate(need as usize);
        // Bodies: reuse what the first query brought, fetch the rest in one query,
        // in id order and within the bytes the page has left (a month-end batch
        // of large records sharing one date must not be loaded whole).
        let doc_len = |d: &(AgeValue, String, RawDocument)| d.2.as_bytes().len();
        let above_bytes: usize = above.iter().map(doc_len).sum();
        let mut have: HashMap<String, RawDocument> = at_last.into_iter().map(|(_, id, doc)| (id, doc)).collect();
        let missing: Vec<&String> = tie_ids.iter().filter(|id| !have.contains_key(*id)).collect();
        // With the fetch cut short, ties after the last one it brought (in the
        // ties' order, which is the fetch's: both order by id in Cosmos) were not asked for.
        let mut fetched_through: Option<usize> = None;
        if !missing.is_empty() {
            let sql = format!(
                "SELECT * FROM c WHERE c[\"{}\"] = @pk AND ARRAY_CONTAINS(@ids, c.id) ORDER BY c.id ASC",
                pk.property()
            );
            let query = Query::from(sql).with_parameter("@pk", customer_id)?.with_parameter("@ids", &missing)?;
            let left = max_bytes.saturating_sub(above_bytes).max(1);
            let (docs, cut) = self.collect_docs(query, scope(), missing.len() as u32, left, &mut charge).await?;
            let last = docs.last().and_then(|d| d.id().ok());
            for doc in docs {
                if let Ok(id) = doc.id() {
                    have.insert(id, doc);
                }
            }
            if cut {
                fetched_through = Some(last.and_then(|l| tie_ids.iter().position(|t| *t == l)).unwrap_or(0));
            }
        }
        // A record re-dated onto the last age value between the two queries is a tie
        // now: it is listed there, once.
        above.retain(|d| !tie_ids.contains(&d.1));
        above.sort_by(by_position);
        let mut bytes: usize = above.iter().map(doc_len).sum();
        // Everything up to here is known: listed, or gone from this position.
        let mut resolved = above.last().map(|d| Cursor { age: d.0.clone(), id: d.1.clone() });
        let mut out: Vec<RawDocument> = above.into_iter().map(|d| d.2).collect();
        let mut complete_ties = true;
        for (i, id) in tie_ids.iter().enumerate() {
            if fetched_through.is_some_and(|through| i > through) {
                complete_ties = false;
                break;
            }
            // A tie fetched after the first query may have changed or moved to the
            // archive meanwhile: keep it only where it still belongs.
            if let Some(doc) = have.remove(id).filter(|doc| doc.sort_key(field).as_ref() == Some(&last_age)) {
                let len = doc.as_bytes().len();
                if !out.is_empty() && bytes + len > max_bytes {
                    complete_ties = false;
                    break;
                }
                bytes += len;
                out.push(doc);
            }
            resolved = Some(Cursor { age: last_age.clone(), id: id.clone() });
        }
        // The slice is complete through the last tie (or, when the ties vanished
        // meanwhile, through the position Cosmos last showed us); cut short by
        // bytes, through the last position it resolved.
        let boundary = match resolved {
            Some(at) if !complete_ties => at,
            _ => Cursor { age: last_age.clone(), id: tie_ids.last().cloned().unwrap_or(last_id) },
        };
        Ok(CustomerSlice { docs: out, boundary: Some(boundary), charge })
    }

    /// Runs a query in one partition and parses up to `limit` documents, or
    /// fewer once they hold `max_bytes` (then `true`: cut short).
    async fn collect_docs(
        &self,
        query: Query,
        scope: FeedScope,
        limit: u32,
        max_bytes: usize,
        charge: &mut f64,
    ) -> Result<(Vec<RawDocument>, bool), StoreError> {
        let mut pages = self.pages(query, scope, limit.max(1), None).await?;
        let (mut docs, mut bytes) = (Vec::new(), 0usize);
        while let Some(page) = pages.next_page().await {
            let page = page?;
            *charge += page.request_charge;
            for raw in page.docs {
                if docs.len() >= limit as usize {
                    return Ok((docs, false));
                }
                if bytes >= max_bytes {
                    return Ok((docs, true));
                }
                bytes += raw.len();
                docs.push(RawDocument::parse(raw).map_err(|e| StoreError::Other(format!("Cosmos returned {e}")))?);
            }
            if docs.len() >= limit as usize {
                break;
            }
        }
        Ok((docs, false))
    }

    /// The version of each of `ids` that exists in Cosmos for this customer (at any age).
    pub async fn versions(&self, customer_id: &str, ids: &[String]) -> Result<HashMap<String, Version>, StoreError> {
        let mut found = HashMap::new();
        // Bounded query text and parameter size, whatever the caller passes.
        for chunk in ids.chunks(100) {
            let sql = format!(
                "SELECT c.id, c._etag, c._ts FROM c WHERE c[\"{}\"] = @pk AND ARRAY_CONTAINS(@ids, c.id)",
                self.partition_key.property()
            );
            let query = Query::from(sql).with_parameter("@pk", customer_id)?.with_parameter("@ids", chunk)?;
            let scope = FeedScope::partition(customer_id.to_owned());
            let mut pages = self.pages(query, scope, 100, None).await?;
            while let Some(page) = pages.next_page().await {
                for raw in page?.docs {
                    #[derive(serde::Deserialize)]
                    struct Row {
                        id: String,
                        #[serde(rename = "_etag")]
                        etag: String,
                        #[serde(rename = "_ts")]
                        ts: i64,
                    }
                    let row: Row = serde_json::from_slice(&raw)?;
                    found.insert(row.id, Version { etag: row.etag, ts: row.ts });
                }
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
        // A single-partition query plans one range; the cross-partition ones (the
        // aged-records queries) as many as the container has.
        options.feed.max_fan_out = Some(self.max_fan_out);
        let iter = self.container.query_items::<Box<RawValue>>(query, scope, Some(options)).await?;
        Ok(Pages { inner: iter.into_pages() })
    }

    /// Creates a document from raw JSON only if its id is free ([`StoreError::AlreadyExists`] otherwise).
    pub async fn create_raw(&self, customer_id: &str, id: &str, json: &[u8]) -> Result<(), StoreError> {
        let text = std::str::from_utf8(json).map_err(|e| StoreError::Other(e.to_string()))?;
        let raw = RawValue::from_string(text.to_owned()).map_err(|e| StoreError::Other(e.to_string()))?;
        match self.container.create_item(customer_id.to_owned(), id, &*raw, None).await {
            Ok(response) => {
                self.spend(Attempts::of(&response.diagnostics()).request_charge);
                Ok(())
            }
            Err(e) => {
                self.spend(e.diagnostics().map_or_else(|| error_charge(&e), |d| Attempts::of(&d).request_charge));
                Err(e.into())
            }
        }
    }

    /// The SDK's container client, for what this type does not wrap (the test
    /// kit's raw writes).
    pub fn container_client(&self) -> &ContainerClient {
        &self.container
    }
}

fn first_line(e: &CosmosError) -> String {
    e.to_string().lines().next().unwrap_or_default().chars().take(200).collect()
}

/// What a refused request cost; Cosmos reports it on error responses too.
fn error_charge(e: &CosmosError) -> f64 {
    e.response().and_then(|r| r.headers().request_charge).map(|c| c.value()).unwrap_or(0.0)
}

#[derive(serde::Deserialize)]
struct IdOnly {
    id: String,
}

/// A customer's records after a position, in listing order: a prefix of the tier.
#[derive(Debug)]
pub struct CustomerSlice {
    pub docs: Vec<RawDocument>,
    /// `None`: every record of the window after its position is in `docs`.
    /// `Some(p)`: every such record up to and including position `p` is; beyond it, unknown.
    pub boundary: Option<Cursor>,
    pub charge: f64,
}

/// Which of the list's two queries to build.
#[derive(Debug, Clone, Copy)]
pub enum ListStep<'a> {
    /// The `n` newest records after the position, whole documents, ordered by the age field only.
    Top(u32),
    /// The `n` smallest ids whose age value equals `age` (after the position), ids only.
    TiesAt { age: &'a AgeValue, limit: u32 },
}

/// The list queries: one partition, the window as predicates, one `ORDER BY` property.
///
/// A single-property `ORDER BY` is served by the default indexing policy (range
/// indexes on every path); no composite index is needed.
pub fn list_query(
    field: &AgeField,
    partition_key: &PartitionKeyPath,
    customer_id: &str,
    window: &Window,
    step: ListStep<'_>,
) -> Result<Query, StoreError> {
    // The field name is validated as a plain identifier by AgeField::parse.
    let f = format!("c.{}", field.name());
    let (select, order) = match step {
        ListStep::Top(n) => (format!("SELECT TOP {n} *"), format!(" ORDER BY {f} DESC")),
        ListStep::TiesAt { limit, .. } => (format!("SELECT TOP {limit} c.id"), " ORDER BY c.id ASC".to_owned()),
    };
    let mut sql = format!("{select} FROM c WHERE c[\"{}\"] = @pk", partition_key.property());
    sql += &match field {
        AgeField::Ts => format!(" AND IS_NUMBER({f})"),
        AgeField::Iso(_) => format!(" AND IS_STRING({f})"),
    };
    let mut query_params: Vec<(&str, serde_json::Value)> = vec![("@pk", customer_id.into())];
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
    if let ListStep::TiesAt { age, .. } = step {
        sql += &format!(" AND {f} = @tieAge");
        query_params.push(("@tieAge", age.to_json()));
    }
    sql += &order;
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
    /// Where the query stands: a token to go on from (with the same query and
    /// scope), `None` when it cannot say.
    pub fn continuation(&self) -> Option<String> {
        self.inner.to_continuation_token().ok().map(|t| t.as_str().to_owned())
    }

    /// The next page, or `None` when the query is drained.
    pub async fn next_page(&mut self) -> Option<Result<QueryPage, StoreError>> {
        use futures::TryStreamExt;
        match self.inner.try_next().await {
            Ok(None) => None,
            Err(e) => Some(Err(e.into())),
            Ok(Some(page)) => {
                let attempts = Attempts::of(&page.diagnostics());
                let docs = page.into_items().into_iter().map(|raw| Bytes::from(raw.get().to_owned())).collect();
                Some(Ok(QueryPage { docs, request_charge: attempts.request_charge, throttled: attempts.throttled }))
            }
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Other(format!("JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_containers_get_a_fan_out_that_fits_and_a_planner_refusal_is_no_outage() {
        assert_eq!(max_fan_out(0), 100, "the driver's default when the count is unknown");
        assert_eq!(max_fan_out(1), 100);
        assert_eq!(max_fan_out(120), 240);
        let status =
            azure_data_cosmos::CosmosStatus::new(azure_core::http::StatusCode::BadRequest).with_sub_status(20118);
        let refused =
            CosmosError::builder().with_status(status).with_message("operation fans out to 240 partitions").build();
        let mapped = StoreError::from(refused);
        assert!(matches!(&mapped, StoreError::Refused(m) if m.contains("fans out")), "{mapped:?}");
        assert!(!mapped.is_outage());
        let transport = azure_data_cosmos::CosmosStatus::new(azure_core::http::StatusCode::ServiceUnavailable)
            .with_sub_status(20003);
        assert!(StoreError::from(CosmosError::builder().with_status(transport).build()).is_outage());
    }

    #[test]
    fn a_firewall_refusing_the_first_connect_is_named_as_such() {
        let forbidden = azure_data_cosmos::CosmosStatus::new(azure_core::http::StatusCode::Forbidden);
        let firewall = "Request originated from IP 203.0.113.7 through public internet. This is blocked by your \
                        Cosmos DB account firewall settings.";
        let e = CosmosError::builder().with_status(forbidden).with_message(firewall).build();
        let text = open_error("billing", "records", &"https://acct.documents.azure.com/", e);
        assert!(text.contains("billing/records") && text.contains("network rules"), "{text}");
    }

    #[test]
    fn list_queries_order_by_one_property_only() {
        let field = AgeField::Iso("invoiceDate".into());
        let window = Window {
            from: Some(AgeValue::Text("2025-01-01".into())),
            until: None,
            after: Some(Cursor { age: AgeValue::Text("2025-06-01".into()), id: "r9".into() }),
        };
        for step in [ListStep::Top(51), ListStep::TiesAt { age: &AgeValue::Text("2025-05-01".into()), limit: 3 }] {
            let pk = PartitionKeyPath::parse("/tenantId").unwrap();
            let text = format!("{:?}", list_query(&field, &pk, "c1", &window, step).unwrap());
            let order = text.split("ORDER BY").nth(1).and_then(|o| o.split('"').next()).unwrap_or_default();
            assert_eq!(order.matches(',').count(), 0, "one ORDER BY property: {text}");
            assert!(text.contains(r#"c[\"tenantId\"] = @pk"#) && text.contains("@afterId"), "{text}");
        }
    }
}
