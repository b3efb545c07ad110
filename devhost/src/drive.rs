//! What the demo and the benchmark share: the sample data set, seeding, app
//! settings for the emulators, and timed reads through the read API.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use futures::StreamExt;
use testkit::cosmos::upsert_raw;
use testkit::sample::{SampleRecord, invoice};
use tiering::contract::Contract;
use tiering::cosmos::CosmosStore;
use tiering::settings::StoreSettings;

/// What a consumer sees of one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub status: u16,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub body: bytes::Bytes,
}

/// Realistic sizes: most invoices are small, a few carry hundreds of line items.
fn size_for(rng: &mut fastrand::Rng, max: usize) -> usize {
    match rng.u32(0..100) {
        0..70 => rng.usize(2_000..20_000),
        70..95 => rng.usize(20_000..100_000),
        _ => rng.usize(100_000..=max.max(100_001)),
    }
    .min(max)
}

/// `n` invoices for `n / 20` customers, dated `days` ago (a range), up to `max_kb` each.
pub fn dataset(n: usize, max_kb: usize, days: std::ops::Range<i64>, seed: u64) -> Vec<SampleRecord> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let customers = (n / 20).max(1);
    let today: NaiveDate = Utc::now().date_naive();
    (0..n)
        .map(|i| {
            let customer = format!("cust-{:05}", rng.usize(..customers));
            let date = today - chrono::Duration::days(rng.i64(days.clone()));
            let size = size_for(&mut rng, max_kb * 1000);
            invoice(&customer, &format!("inv-{date}-{seed}-{i:06}"), date, size, seed ^ i as u64)
        })
        .collect()
}

/// Writes the records, eight at a time, calling `progress(done)` after each.
pub async fn seed(
    cosmos: &CosmosStore,
    records: &[SampleRecord],
    mut progress: impl FnMut(usize),
) -> anyhow::Result<()> {
    // A write throttled past the SDK's own retries (a container whose physical
    // partitions are held to a rate) is written again after the delay named.
    let write = async |r: &SampleRecord| loop {
        match upsert_raw(cosmos, r.partition_key(cosmos.partition_key().property()), &r.id, &r.json).await {
            Err(tiering::store::StoreError::Throttled { retry_after }) => tokio::time::sleep(retry_after).await,
            other => return other,
        }
    };
    let mut writes = futures::stream::iter(records).map(write).buffer_unordered(8);
    let mut done = 0;
    while let Some(result) = writes.next().await {
        result.context("seeding")?;
        done += 1;
        progress(done);
    }
    Ok(())
}

/// App settings that point a packaged app at the emulators (from the environment
/// `scripts/emulators.sh` writes) and at `stores`' names and age field.
pub fn app_settings(stores: &StoreSettings) -> BTreeMap<String, String> {
    // The endpoints of `stores`, not of the environment: the benchmark points them
    // at its latency proxies.
    let mut settings = BTreeMap::new();
    settings.insert("COSMOS_ENDPOINT".into(), stores.cosmos_endpoint.to_string());
    settings.insert("ARCHIVE_BLOB_ENDPOINT".into(), stores.blob_endpoint.to_string());
    if let Some(key) = &stores.cosmos_key {
        settings.insert("COSMOS_KEY".into(), key.secret().to_owned());
    }
    if let Some(sas) = &stores.blob_sas {
        settings.insert("ARCHIVE_BLOB_SAS".into(), sas.secret().to_owned());
    }
    settings.insert("COSMOS_DATABASE".into(), stores.cosmos_database.clone());
    settings.insert("COSMOS_CONTAINER".into(), stores.cosmos_container.clone());
    settings.insert("COSMOS_PARTITION_KEY".into(), stores.partition_key.to_string());
    settings.insert("ARCHIVE_CONTAINER".into(), stores.archive_container.clone());
    settings.insert("ARCHIVE_AGE_FIELD".into(), stores.age_field.name().to_owned());
    // The records were seeded a moment ago, so their last write (`_ts`) is now:
    // the quiet period would hold every one back (docs/writes.md).
    settings.insert("ARCHIVE_QUIET_DAYS".into(), "0".into());
    // The emulators serve this run alone, with no live API to leave throughput
    // for: no budget (a deployment's default is a share of the container's RU/s).
    settings.insert("ARCHIVE_MAX_RU_PER_SECOND".into(), "0".into());
    settings.insert("RUST_LOG".into(), "warn,archiver=info".into());
    settings
}

/// The record route of `contract` for `r`, below `base` (scheme and host), with
/// the `code` parameter the Functions host takes (its stand-in ignores it).
pub fn record_url(base: &str, contract: &Contract, r: &SampleRecord) -> String {
    let mut values = HashMap::from([(contract.id_param.as_str(), r.id.as_str())]);
    if let Some(name) = &contract.partition_key_param {
        values.insert(name.as_str(), r.partition_key(contract.partition_key.property()));
    }
    format!("{base}{}?code=local", contract.record.fill(&contract.prefix, &values))
}

/// One timed `GET` of a record through the read API at `base`, at the contract's route.
pub async fn read(
    http: &reqwest::Client,
    base: &str,
    contract: &Contract,
    r: &SampleRecord,
) -> anyhow::Result<(Seen, Duration)> {
    read_as(http, base, contract, r, None).await
}

/// [`read`] with an `Authorization` header (a bearer token: docs/auth.md).
pub async fn read_as(
    http: &reqwest::Client,
    base: &str,
    contract: &Contract,
    r: &SampleRecord,
    authorization: Option<&str>,
) -> anyhow::Result<(Seen, Duration)> {
    let headers: Vec<(&str, &str)> = authorization.map(|v| ("authorization", v)).into_iter().collect();
    read_with(http, base, contract, r, &headers).await
}

/// [`read`] with these headers (an API's own key, in front mode).
pub async fn read_with(
    http: &reqwest::Client,
    base: &str,
    contract: &Contract,
    r: &SampleRecord,
    headers: &[(&str, &str)],
) -> anyhow::Result<(Seen, Duration)> {
    let mut request = http.get(record_url(base, contract, r));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    let response = request.send().await.with_context(|| format!("reading {}", r.id))?;
    let h = |n: &str| response.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, content_type, etag, last_modified) =
        (response.status().as_u16(), h("content-type"), h("etag"), h("last-modified"));
    let body = response.bytes().await?;
    Ok((Seen { status, content_type, etag, last_modified, body }, started.elapsed()))
}

pub fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "-".into())
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// Both emulators behind proxies adding the same round trip
/// (`testkit::proxy::Proxy`): the demo's and the benchmark's `--rtt-ms`.
pub struct Network {
    pub cosmos: testkit::proxy::Proxy,
    pub blob: testkit::proxy::Proxy,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").finish_non_exhaustive()
    }
}

impl Network {
    pub async fn new(direct: &StoreSettings, rtt: Duration) -> anyhow::Result<Self> {
        let cosmos = testkit::proxy::Proxy::in_front_of(direct.cosmos_endpoint.as_str()).await?;
        let blob = testkit::proxy::Proxy::in_front_of(direct.blob_endpoint.as_str()).await?;
        cosmos.set_round_trip(rtt);
        blob.set_round_trip(rtt);
        Ok(Self { cosmos, blob })
    }

    /// `direct`, with both endpoints through the proxies.
    pub fn through(&self, direct: &StoreSettings) -> StoreSettings {
        let mut s = direct.clone();
        s.cosmos_endpoint =
            self.cosmos.endpoint_for(direct.cosmos_endpoint.as_str()).parse().unwrap_or(s.cosmos_endpoint);
        s.blob_endpoint = self.blob.endpoint_for(direct.blob_endpoint.as_str()).parse().unwrap_or(s.blob_endpoint);
        s
    }
}
