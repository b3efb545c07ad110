//! The local emulators: settings for the ones `scripts/emulators.sh` started,
//! unique names so tests share them without seeing each other's data, and
//! private emulator processes a test can stop (outages) or configure (faults).

use std::sync::atomic::{AtomicU32, Ordering};

use tiering::record::AgeField;
use tiering::settings::StoreSettings;
use tiering::store::Transport;

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

/// An emulator process of a test's own, for outages: the test stops it, and it is
/// stopped on drop in any case.
#[derive(Debug)]
pub struct OwnEmulator {
    child: std::sync::Mutex<std::process::Child>,
    /// The endpoint to put in settings.
    pub endpoint: String,
}

impl OwnEmulator {
    /// A private Azurite (blob) on a free port, through the project's wrapper
    /// (scripts/emulators/azurite-server.js: lookups that do not slow down as the
    /// store grows).
    pub fn azurite() -> Self {
        let port = free_port();
        let mut command = std::process::Command::new("node");
        command
            .arg(format!("{}/../scripts/emulators/azurite-server.js", env!("CARGO_MANIFEST_DIR")))
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

    /// A private Cosmos emulator whose containers have `partitions` physical
    /// partitions (feed ranges, hashed as Cosmos does), each held to
    /// `ru_per_second` when given (429 past it), and whose containers have the
    /// offer `throughput` (`"manual:4000"`, `"autoscale:20000"`; `None`: the
    /// account answers as a serverless one). scripts/emulators/cosmos-server.js,
    /// "physical partitions".
    pub fn cosmos_partitioned(partitions: u32, ru_per_second: Option<u32>, throughput: Option<&str>) -> Self {
        let mut env = vec![("COSMOS_EMULATOR_PARTITIONS", partitions.to_string())];
        if let Some(ru) = ru_per_second {
            env.push(("COSMOS_EMULATOR_RANGE_RU_PER_SECOND", ru.to_string()));
        }
        if let Some(offer) = throughput {
            env.push(("COSMOS_EMULATOR_THROUGHPUT", offer.to_owned()));
        }
        Self::cosmos_with(free_port(), &env)
    }

    /// A private Cosmos emulator whose query pages each carry their first
    /// document twice (`COSMOS_EMULATOR_REPEAT_FIRST`): a query that delivers a
    /// record twice.
    pub fn cosmos_repeating() -> Self {
        Self::cosmos_with(free_port(), &[("COSMOS_EMULATOR_REPEAT_FIRST", "1".into())])
    }

    /// A private Cosmos emulator that refuses (400) any document request without
    /// each of `headers` (`name=value`), and whose containers have the offer
    /// `throughput` (as for [`cosmos_partitioned`](Self::cosmos_partitioned)).
    pub fn cosmos_expecting(headers: &[&str], throughput: Option<&str>) -> Self {
        let mut env = vec![("COSMOS_EMULATOR_EXPECT_HEADERS", headers.join(";"))];
        if let Some(offer) = throughput {
            env.push(("COSMOS_EMULATOR_THROUGHPUT", offer.to_owned()));
        }
        Self::cosmos_with(free_port(), &env)
    }

    /// Splits the feed range `range` of `database/container` in two (the
    /// emulator's test aid); the ranges after the split, as JSON.
    pub async fn split(&self, database: &str, container: &str, range: &str) -> anyhow::Result<serde_json::Value> {
        let at = std::net::SocketAddr::from(([127, 0, 0, 1], self.port()));
        let q = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let path = format!("/_emulator/split?db={}&coll={}&range={}", q(database), q(container), q(range));
        let (status, head) = crate::raw::request(at, "POST", &path, &[]).await?;
        anyhow::ensure!(status == 200, "the split of range {range} answered {status}: {head}");
        Ok(serde_json::json!({"split": range}))
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
