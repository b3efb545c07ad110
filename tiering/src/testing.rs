//! Test and demo support: settings for the local emulators, unique names, seeding.
//!
//! `scripts/test.sh` starts the emulators and exports their endpoints; every test
//! then works in its own database, container and archive container, so tests run
//! in parallel against one pair of emulators without seeing each other's data.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::cosmos::{CosmosStore, ensure_container, upsert_raw};
use crate::record::AgeField;
use crate::sample::SampleRecord;
use crate::settings::StoreSettings;
use crate::store::Transport;

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

/// Creates the settings' database and container and returns a store on it.
pub async fn fresh_cosmos(settings: &StoreSettings) -> CosmosStore {
    let client = CosmosStore::client(settings, TEST_TRANSPORT).await.expect("cosmos client");
    ensure_container(&client, &settings.cosmos_database, &settings.cosmos_container, &settings.age_field)
        .await
        .expect("create container");
    CosmosStore::connect(settings, TEST_TRANSPORT).await.expect("open container")
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
        let every = throttle_every;
        let script = format!("{}/../scripts/emulators/cosmos-server.js", env!("CARGO_MANIFEST_DIR"));
        let mut command = std::process::Command::new("node");
        command.args([script.as_str(), "--port", &port.to_string()]);
        command.env("COSMOS_EMULATOR_THROTTLE_EVERY", every.to_string());
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
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            .unwrap_or(0)
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn emulator_bin(name: &str) -> String {
    format!("{}/../scripts/emulators/node_modules/.bin/{name}", env!("CARGO_MANIFEST_DIR"))
}
