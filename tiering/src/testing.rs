//! Test, demo and benchmark support (feature `testing`; never in the production
//! binaries): settings for the local emulators, unique names, container set-up,
//! seeding, private emulator processes, and a TCP proxy that adds latency or stalls.
//!
//! `scripts/test.sh` starts the emulators and exports their endpoints; every test
//! then works in its own database, container and archive container, so tests run
//! in parallel against one pair of emulators without seeing each other's data.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use azure_data_cosmos::CosmosClient;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::archive::{Archive, BlobInfo, PutCondition, StoredBlob};
use crate::cosmos::CosmosStore;
use crate::record::AgeField;
use crate::sample::SampleRecord;
use crate::settings::StoreSettings;
use crate::store::{StoreError, Transport};

/// Short limits so a test that hits a dead store fails in seconds, not minutes.
pub const TEST_TRANSPORT: Transport = Transport {
    retries: 1,
    per_try_timeout: std::time::Duration::from_secs(10),
    total: std::time::Duration::from_secs(15),
};

/// A name no other test (or earlier run) uses: `prefix` + pid + counter, lowercase
/// letters, digits and `-` only, so it is valid for databases and blob containers.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Emulator settings from the environment `scripts/test.sh` exports, with fresh names.
pub fn emulator_settings(age_field: AgeField) -> StoreSettings {
    let mut settings = StoreSettings::from_env()
        .unwrap_or_else(|e| panic!("{e}: integration tests need the emulators; run them through ./scripts/test.sh"));
    settings.cosmos_database = unique("db");
    settings.cosmos_container = "records".into();
    settings.archive_container = unique("archive");
    settings.age_field = age_field;
    settings
}

/// The indexing policy of a container the tests create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexing {
    /// What Cosmos gives a container created without a policy, as production
    /// containers usually are: range indexes on every path, no composite index.
    Default,
    /// The default plus a composite index on (age field DESC, id ASC).
    Composite,
}

/// Creates the database and container if missing, partitioned by `/customerId`.
pub async fn ensure_container(
    client: &CosmosClient,
    database: &str,
    container: &str,
    age_field: &AgeField,
    indexing: Indexing,
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
    let mut properties = ContainerProperties::new(container.to_owned(), PartitionKeyDefinition::from("/customerId"));
    if indexing == Indexing::Composite {
        let listing = CompositeIndex::default()
            .with_property(CompositeIndexProperty::new(
                format!("/{}", age_field.name()),
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

/// [`fresh_cosmos`] with a chosen indexing policy.
pub async fn fresh_cosmos_with(settings: &StoreSettings, indexing: Indexing) -> CosmosStore {
    let client = CosmosStore::client(settings, TEST_TRANSPORT).await.expect("cosmos client");
    ensure_container(&client, &settings.cosmos_database, &settings.cosmos_container, &settings.age_field, indexing)
        .await
        .expect("create container");
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

/// An emulator process of a test's own, for outages: the test stops it, and it is
/// stopped on drop in any case.
#[derive(Debug)]
pub struct OwnEmulator {
    child: std::sync::Mutex<std::process::Child>,
    /// The endpoint to put in settings.
    pub endpoint: String,
}

impl OwnEmulator {
    /// A private Azurite (blob) on a free port.
    pub fn azurite() -> Self {
        let port = free_port();
        let mut command = std::process::Command::new(emulator_bin("azurite-blob"));
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--skipApiVersionCheck", "--loose"])
            .args(["--disableTelemetry", "--inMemoryPersistence", "--silent"])
            .current_dir(std::env::temp_dir());
        Self::spawn(command, port, format!("http://127.0.0.1:{port}/devstoreaccount1"))
    }

    /// A private Cosmos emulator (the project's patched server) on a free port.
    pub fn cosmos() -> Self {
        Self::cosmos_throttling(0)
    }

    /// A private Cosmos emulator that answers every `every`th document request
    /// with 429 and `x-ms-retry-after-ms` (0 = never).
    pub fn cosmos_throttling(every: u32) -> Self {
        Self::cosmos_on(free_port(), every)
    }

    /// A private Cosmos emulator on `port` (to bring one back where another was stopped).
    pub fn cosmos_on(port: u16, throttle_every: u32) -> Self {
        Self::cosmos_with(port, &[("COSMOS_EMULATOR_THROTTLE_EVERY", throttle_every.to_string())])
    }

    /// A private Cosmos emulator that answers every request of `method` (say
    /// `DELETE`) with `status` (429 with a retry delay, 403, 503, ...).
    pub fn cosmos_failing(method: &str, status: u16) -> Self {
        Self::cosmos_with(
            free_port(),
            &[
                ("COSMOS_EMULATOR_THROTTLE_EVERY", "1".into()),
                ("COSMOS_EMULATOR_FAULT_METHOD", method.into()),
                ("COSMOS_EMULATOR_FAULT_STATUS", status.to_string()),
            ],
        )
    }

    fn cosmos_with(port: u16, env: &[(&str, String)]) -> Self {
        let script = format!("{}/../scripts/emulators/cosmos-server.js", env!("CARGO_MANIFEST_DIR"));
        let mut command = std::process::Command::new("node");
        command.args([script.as_str(), "--port", &port.to_string()]);
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        Self::spawn(command, port, format!("http://127.0.0.1:{port}/"))
    }

    fn spawn(mut command: std::process::Command, port: u16, endpoint: String) -> Self {
        let child = command
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting an emulator (npm packages installed?)");
        let me = Self { child: std::sync::Mutex::new(child), endpoint };
        for _ in 0..150 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return me;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("emulator did not listen on port {port} within 15 s");
    }

    /// The port the emulator listens on.
    pub fn port(&self) -> u16 {
        port_of(&self.endpoint)
    }

    /// Kills the process and waits for it: from now on connections are refused.
    pub fn stop(&self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnEmulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The port of an `http://127.0.0.1:PORT/...` endpoint (0 when there is none).
pub fn port_of(endpoint: &str) -> u16 {
    url::Url::parse(endpoint).ok().and_then(|u| u.port()).unwrap_or(0)
}

/// `endpoint` with its port replaced (to route a store through a [`Proxy`]).
pub fn with_port(endpoint: &str, port: u16) -> String {
    let mut url = url::Url::parse(endpoint).expect("an endpoint URL");
    let _ = url.set_port(Some(port));
    url.to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn emulator_bin(name: &str) -> String {
    format!("{}/../scripts/emulators/node_modules/.bin/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A TCP proxy on 127.0.0.1 in front of one store, for conditions a local
/// emulator never has: network latency (each direction delayed by half the round
/// trip, chunks kept in order but not serialised behind each other's delays), and
/// a store that is slow rather than down (a stall: bytes are held, not refused),
/// from the start or after a number of bytes of an answer. It also counts the
/// bytes the store sent, so a test can tell whether a body was downloaded.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    one_way_micros: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    /// Per connection: hold answers after this many bytes (`u64::MAX`: never).
    stall_answers_after: Arc<AtomicU64>,
    answered_bytes: Arc<AtomicU64>,
    /// The next request starting with these bytes is forwarded, and its answer lost.
    lose_answer_to: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl Proxy {
    /// Starts forwarding a free local port to `upstream` (on the current runtime).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Self {
            addr: listener.local_addr()?,
            one_way_micros: Arc::new(AtomicU64::new(0)),
            stalled: Arc::new(AtomicBool::new(false)),
            stall_answers_after: Arc::new(AtomicU64::new(u64::MAX)),
            answered_bytes: Arc::new(AtomicU64::new(0)),
            lose_answer_to: Arc::new(std::sync::Mutex::new(None)),
        };
        let shared = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        let lose = Arc::new(AtomicBool::new(false));
                        tokio::join!(p.pipe(cr, sw, false, lose.clone()), p.pipe(sr, cw, true, lose));
                    }
                });
            }
        });
        Ok(proxy)
    }

    /// A proxy in front of the store at `endpoint` (`http://127.0.0.1:PORT/...`).
    pub async fn in_front_of(endpoint: &str) -> std::io::Result<Self> {
        Self::start(SocketAddr::from(([127, 0, 0, 1], port_of(endpoint)))).await
    }

    /// Adds `round_trip` to every request-response exchange through the proxy.
    pub fn set_round_trip(&self, round_trip: Duration) {
        self.one_way_micros.store(round_trip.as_micros() as u64 / 2, Ordering::Relaxed);
    }

    /// While stalled, connections are accepted and bytes are held, never forwarded.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
    }

    /// On each connection, holds the store's answers after `bytes` bytes (`None`: never).
    pub fn stall_answers_after(&self, bytes: Option<u64>) {
        self.stall_answers_after.store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The next request that starts with `prefix` (say `b"DELETE "`) reaches the
    /// store, but its answer is lost: the connection closes instead. The store did
    /// the work; the client cannot know.
    pub fn lose_answer_to_next(&self, prefix: &[u8]) {
        if let Ok(mut armed) = self.lose_answer_to.lock() {
            *armed = Some(prefix.to_vec());
        }
    }

    /// Bytes the store has sent through the proxy so far.
    pub fn answered_bytes(&self) -> u64 {
        self.answered_bytes.load(Ordering::Relaxed)
    }

    /// `endpoint` routed through the proxy (same path, the proxy's port).
    pub fn endpoint_for(&self, endpoint: &str) -> String {
        with_port(endpoint, self.addr.port())
    }

    async fn pipe(
        &self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        answers: bool,
        lose_answer: Arc<AtomicBool>,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let delay = self.one_way_micros.clone();
        let reader = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let due = tokio::time::Instant::now() + Duration::from_micros(delay.load(Ordering::Relaxed));
                        if tx.send((due, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        };
        let me = self.clone();
        let writer = async move {
            let mut sent: u64 = 0;
            while let Some((due, mut bytes)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                while me.stalled.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if !answers
                    && let Ok(mut armed) = me.lose_answer_to.lock()
                    && armed.as_ref().is_some_and(|prefix| bytes.starts_with(prefix))
                {
                    *armed = None;
                    lose_answer.store(true, Ordering::SeqCst);
                }
                if answers && lose_answer.load(Ordering::SeqCst) {
                    break;
                }
                if answers {
                    let limit = me.stall_answers_after.load(Ordering::Relaxed);
                    if sent.saturating_add(bytes.len() as u64) > limit {
                        // Send up to the limit, then hold the rest for as long as the stall lasts.
                        let head = limit.saturating_sub(sent) as usize;
                        if head > 0 && to.write_all(&bytes[..head]).await.is_err() {
                            break;
                        }
                        me.answered_bytes.fetch_add(head as u64, Ordering::Relaxed);
                        sent += head as u64;
                        bytes.drain(..head);
                        while me.stall_answers_after.load(Ordering::Relaxed) <= sent {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    me.answered_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    sent += bytes.len() as u64;
                }
                if to.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = to.shutdown().await;
        };
        tokio::join!(reader, writer);
    }
}

type Hook = Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;
type GetFilter = Arc<dyn Fn(&str, StoredBlob) -> Result<StoredBlob, StoreError> + Send + Sync>;

/// Calls made through a [`HookedArchive`] run these first (each gets the blob name,
/// or the prefix for `before_list`); `after_get` may rewrite what a download returned.
#[derive(Clone, Default)]
pub struct Hooks {
    pub before_get: Option<Hook>,
    pub after_get: Option<GetFilter>,
    pub before_delete: Option<Hook>,
    pub before_list: Option<Hook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// A real archive with hooks around some calls: how tests make another actor
/// (an application update, a concurrent run, a damaged disk) act at a precise step.
#[derive(Debug, Clone)]
pub struct HookedArchive {
    pub inner: Arc<dyn Archive>,
    pub hooks: Hooks,
}

async fn call(hook: &Option<Hook>, name: &str) {
    if let Some(hook) = hook {
        hook(name.to_owned()).await;
    }
}

#[async_trait::async_trait]
impl Archive for HookedArchive {
    async fn put(
        &self,
        name: &str,
        body: bytes::Bytes,
        metadata: std::collections::HashMap<String, String>,
        condition: PutCondition,
    ) -> Result<String, StoreError> {
        self.inner.put(name, body, metadata, condition).await
    }
    async fn head(&self, name: &str) -> Result<BlobInfo, StoreError> {
        self.inner.head(name).await
    }
    async fn get(&self, name: &str) -> Result<StoredBlob, StoreError> {
        call(&self.hooks.before_get, name).await;
        let stored = self.inner.get(name).await?;
        match &self.hooks.after_get {
            Some(filter) => filter(name, stored),
            None => Ok(stored),
        }
    }
    async fn set_metadata(
        &self,
        name: &str,
        metadata: std::collections::HashMap<String, String>,
        etag: &str,
    ) -> Result<String, StoreError> {
        self.inner.set_metadata(name, metadata, etag).await
    }
    async fn delete_if_match(&self, name: &str, etag: &str) -> Result<(), StoreError> {
        call(&self.hooks.before_delete, name).await;
        self.inner.delete_if_match(name, etag).await
    }
    fn list(&self, prefix: &str) -> futures::stream::BoxStream<'static, Result<BlobInfo, StoreError>> {
        use futures::StreamExt;
        let (inner, hook, prefix) = (self.inner.clone(), self.hooks.before_list.clone(), prefix.to_owned());
        futures::stream::once(async move {
            call(&hook, &prefix).await;
            inner.list(&prefix)
        })
        .flatten()
        .boxed()
    }
    async fn acquire_lease(&self, name: &str, seconds: i32, proposed: &str) -> Result<bool, StoreError> {
        self.inner.acquire_lease(name, seconds, proposed).await
    }
    async fn renew_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError> {
        self.inner.renew_lease(name, lease_id).await
    }
    async fn release_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError> {
        self.inner.release_lease(name, lease_id).await
    }
}

/// Wraps an async closure as a [`Hooks`] entry.
pub fn hook<F, Fut>(f: F) -> Option<Hook>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Some(Arc::new(move |name| Box::pin(f(name))))
}
