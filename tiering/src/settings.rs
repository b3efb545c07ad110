//! The only place that reads environment variables (README, "Settings").
//!
//! Each binary builds its settings once at start-up; every error names the
//! variable. Tests build the structs directly or through [`from_lookup`](StoreSettings::from_lookup).

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use azure_core::credentials::Secret;
use url::Url;

use crate::contract::{Contract, PartitionKeyPath};
use crate::record::AgeField;
use crate::schedule::parse_schedule;

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("setting {name}: {message}")]
pub struct SettingsError {
    pub name: &'static str,
    pub message: String,
}

/// Where settings come from: the process environment in production, a map in tests.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct Env;

impl Lookup for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

struct Reader<'a>(&'a dyn Lookup);

impl Reader<'_> {
    /// A set, non-blank value; blank counts as unset, as app settings often are.
    fn opt(&self, name: &'static str) -> Option<String> {
        self.0.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, SettingsError> {
        self.opt(name).ok_or(SettingsError { name, message: "is required but not set".into() })
    }

    fn or(&self, name: &'static str, default: &str) -> String {
        self.opt(name).unwrap_or_else(|| default.to_owned())
    }

    fn parsed<T: std::str::FromStr>(&self, name: &'static str, default: T, what: &str) -> Result<T, SettingsError> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| SettingsError { name, message: format!("`{v}` is not {what}") }),
        }
    }

    /// A whole number within `range`, or `default` when unset.
    fn ranged<T>(
        &self,
        name: &'static str,
        default: T,
        range: RangeInclusive<T>,
        what: &str,
    ) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display,
    {
        let value = self.parsed(name, default, what)?;
        if !range.contains(&value) {
            let message = format!("{value} is outside {}..={}", range.start(), range.end());
            return Err(SettingsError { name, message });
        }
        Ok(value)
    }

    fn url(&self, name: &'static str) -> Result<Url, SettingsError> {
        let v = self.required(name)?;
        let url = Url::parse(&v).map_err(|e| SettingsError { name, message: format!("`{v}` is not a URL: {e}") })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(SettingsError { name, message: format!("`{v}` must be an http(s) URL with a host") });
        }
        Ok(url)
    }

    fn name(&self, name: &'static str, default: &str) -> Result<String, SettingsError> {
        let v = self.or(name, default);
        if v.chars().any(|c| c == '/' || c == '\\' || c == '?' || c == '#' || c.is_control()) {
            return Err(SettingsError { name, message: format!("`{v}` is not a valid resource name") });
        }
        Ok(v)
    }
}

fn parse_bool(r: &Reader<'_>, name: &'static str, default: bool) -> Result<bool, SettingsError> {
    match r.opt(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(SettingsError { name, message: format!("`{other}` is not true or false") }),
    }
}

/// How to reach both stores; shared by the archiver and the reader.
#[derive(Clone)]
pub struct StoreSettings {
    pub cosmos_endpoint: Url,
    /// Account key, emulators only; `None` means Managed Identity.
    pub cosmos_key: Option<Secret>,
    pub cosmos_database: String,
    pub cosmos_container: String,
    /// The container's partition key (`COSMOS_PARTITION_KEY`); checked against
    /// the container's own definition when the apps connect.
    pub partition_key: PartitionKeyPath,
    pub blob_endpoint: Url,
    /// SAS token, emulators only; `None` means Managed Identity.
    pub blob_sas: Option<Secret>,
    pub archive_container: String,
    pub age_field: AgeField,
    /// Where Entra ID tokens come from, for a store without a key or SAS.
    pub credential: CredentialSource,
}

/// Where the stores' Entra ID tokens come from when no emulator key or SAS is set
/// (docs/operations.md, "Who may run what").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// The app's managed identity. Functions (App Service) sets `IDENTITY_ENDPOINT`
    /// and `IDENTITY_HEADER` when the app has one; `AZURE_CLIENT_ID` picks a
    /// user-assigned identity, `None` means the system-assigned one.
    ManagedIdentity { client_id: Option<String> },
    /// Anywhere else (a workstation, Cloud Shell): the Azure CLI's (or Azure
    /// Developer CLI's) signed-in user, `az login`.
    DeveloperTools,
}

impl CredentialSource {
    fn from_reader(r: &Reader<'_>) -> Self {
        if r.opt("IDENTITY_ENDPOINT").is_some() && r.opt("IDENTITY_HEADER").is_some() {
            Self::ManagedIdentity { client_id: r.opt("AZURE_CLIENT_ID") }
        } else {
            Self::DeveloperTools
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ManagedIdentity { client_id: None } => f.write_str("the app's system-assigned managed identity"),
            Self::ManagedIdentity { client_id: Some(id) } => {
                write!(f, "the user-assigned managed identity with client id {id}")
            }
            Self::DeveloperTools => f.write_str("the developer sign-in (az login)"),
        }
    }
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("cosmos_endpoint", &self.cosmos_endpoint.as_str())
            .field("cosmos_key", &self.cosmos_key.as_ref().map(|_| "<set>"))
            .field("cosmos_database", &self.cosmos_database)
            .field("cosmos_container", &self.cosmos_container)
            .field("partition_key", &self.partition_key.to_string())
            .field("blob_endpoint", &self.blob_endpoint.as_str())
            .field("blob_sas", &self.blob_sas.as_ref().map(|_| "<set>"))
            .field("archive_container", &self.archive_container)
            .field("age_field", &self.age_field.name())
            .field("credential", &self.credential)
            .finish()
    }
}

impl StoreSettings {
    /// How each store is signed in to, for the first log line: a misconfigured
    /// identity shows there, not as a 503 later.
    pub fn credentials(&self) -> (String, String) {
        let cosmos = match self.cosmos_key {
            Some(_) => "the account key in COSMOS_KEY (emulators only)".to_owned(),
            None => self.credential.to_string(),
        };
        let archive = match self.blob_sas {
            Some(_) => "the SAS in ARCHIVE_BLOB_SAS (emulators only)".to_owned(),
            None => self.credential.to_string(),
        };
        (cosmos, archive)
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, SettingsError> {
        let r = Reader(env);
        let sas = r.opt("ARCHIVE_BLOB_SAS").map(|s| s.trim_start_matches('?').to_owned());
        Ok(Self {
            cosmos_endpoint: r.url("COSMOS_ENDPOINT")?,
            cosmos_key: r.opt("COSMOS_KEY").map(Secret::new),
            cosmos_database: r.name("COSMOS_DATABASE", "billing")?,
            cosmos_container: r.name("COSMOS_CONTAINER", "records")?,
            partition_key: PartitionKeyPath::parse(&r.or("COSMOS_PARTITION_KEY", "/customerId"))
                .map_err(|message| SettingsError { name: "COSMOS_PARTITION_KEY", message })?,
            blob_endpoint: r.url("ARCHIVE_BLOB_ENDPOINT")?,
            blob_sas: sas.map(Secret::new),
            archive_container: r.name("ARCHIVE_CONTAINER", "billing-archive")?,
            age_field: AgeField::parse(&r.or("ARCHIVE_AGE_FIELD", "_ts"))
                .map_err(|message| SettingsError { name: "ARCHIVE_AGE_FIELD", message })?,
            credential: CredentialSource::from_reader(&r),
        })
    }
}

/// The archiver's own settings.
#[derive(Debug, Clone)]
pub struct ArchiverSettings {
    pub stores: StoreSettings,
    pub after_days: u32,
    /// A record written (`_ts`) within this many days is never archived,
    /// whatever its age value says (`ARCHIVE_QUIET_DAYS`).
    pub quiet_days: u32,
    pub dry_run: bool,
    /// The upper bound on records in flight (the adaptive limit stays below it).
    pub concurrency: usize,
    /// The request-unit budget in force (0 means unlimited). With
    /// `ru_budget: Auto` it is set from the container's throughput when the
    /// archiver starts (`archiver::startup`).
    pub max_ru_per_second: u32,
    /// Where the budget comes from (`ARCHIVE_MAX_RU_PER_SECOND`).
    pub ru_budget: RuBudgetSetting,
    /// The budget in force in words, as the run summary reports it
    /// (`ruBudgetSource`): set with `max_ru_per_second`.
    pub ru_budget_note: String,
    /// The priority the archiver's Cosmos requests carry (`ARCHIVE_PRIORITY`).
    pub priority: Priority,
    /// The throughput bucket its requests go into, 1 to 5 (`ARCHIVE_THROUGHPUT_BUCKET`).
    pub throughput_bucket: Option<u8>,
    /// One aged-records query per physical partition, side by side
    /// (`ARCHIVE_RANGE_QUERIES`, default true); false: one query over the whole
    /// container, which the SDK drains one partition at a time.
    pub range_queries: bool,
    pub time_budget: Duration,
    /// The timer's schedule (`ARCHIVE_SCHEDULE`, which function.json names as
    /// `%ARCHIVE_SCHEDULE%`): six-field NCRONTAB, UTC.
    pub schedule: String,
    /// False holds the limit at `concurrency` instead of letting it adapt.
    pub adaptive: bool,
    /// Archived copies dated more than this many days ago are deleted from the
    /// archive by the nightly run, unless their partition is on hold
    /// (`ARCHIVE_RETENTION_DAYS`; `None`: kept for ever).
    pub retention_days: Option<u32>,
}

/// Where the archiver's request-unit budget comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuBudgetSetting {
    /// `ARCHIVE_MAX_RU_PER_SECOND` unset or `auto`: `share_percent`
    /// (`ARCHIVE_RU_SHARE_PERCENT`) of the container's throughput as read at
    /// start; `deployed`: the throughput the deployment read
    /// (`ARCHIVE_CONTAINER_RU_PER_SECOND`), for when the archiver cannot read it.
    Auto { share_percent: u32, deployed: Option<u32> },
    /// A number: that budget (`0`: unlimited).
    Fixed(u32),
}

/// The priority of the archiver's requests (Cosmos DB priority-based execution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Low,
    High,
}

/// The share of the container's throughput the archiver spends by default.
pub const DEFAULT_RU_SHARE_PERCENT: u32 = 50;

/// 30 days: a billing record is still written for weeks after its invoice date
/// (payment, a dispute, a correction, a credit note), and rarely after a month.
pub const DEFAULT_QUIET_DAYS: u32 = 30;

/// Nightly at 02:00 UTC.
pub const DEFAULT_SCHEDULE: &str = "0 0 2 * * *";

/// The upper bound on records in flight when `ARCHIVE_CONCURRENCY` is `auto` (the
/// default); the archiver finds its own level below it (see BENCHMARKS.md).
pub const AUTO_CONCURRENCY: usize = 64;
/// Below host.json's `functionTimeout` of 30 minutes, leaving room to finish in-flight records.
pub const DEFAULT_TIME_BUDGET_SECONDS: u64 = 25 * 60;

impl ArchiverSettings {
    /// Every archiver setting at its default, over `stores` (tests, tools).
    pub fn defaults(stores: StoreSettings) -> Self {
        Self {
            stores,
            after_days: 90,
            quiet_days: DEFAULT_QUIET_DAYS,
            dry_run: false,
            concurrency: AUTO_CONCURRENCY,
            max_ru_per_second: 0,
            ru_budget: RuBudgetSetting::Fixed(0),
            ru_budget_note: "unlimited (ARCHIVE_MAX_RU_PER_SECOND=0)".into(),
            priority: Priority::Low,
            throughput_bucket: None,
            range_queries: true,
            time_budget: Duration::from_secs(DEFAULT_TIME_BUDGET_SECONDS),
            schedule: DEFAULT_SCHEDULE.to_owned(),
            adaptive: true,
            retention_days: None,
        }
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, SettingsError> {
        let r = Reader(env);
        let stores = StoreSettings::from_lookup(env)?;
        let after_days = r.ranged("ARCHIVE_AFTER_DAYS", 90u32, 1..=36_500, "a whole number of days")?;
        let quiet_days = r.ranged("ARCHIVE_QUIET_DAYS", DEFAULT_QUIET_DAYS, 0..=36_500, "a whole number of days")?;
        let dry_run = parse_bool(&r, "ARCHIVE_DRY_RUN", false)?;
        let concurrency = match r.or("ARCHIVE_CONCURRENCY", "auto").to_ascii_lowercase().as_str() {
            "auto" => AUTO_CONCURRENCY,
            _ => r.ranged("ARCHIVE_CONCURRENCY", AUTO_CONCURRENCY, 1..=256, "`auto` or a whole number")?,
        };
        // Checked whatever the budget, so that a malformed one stops the start.
        let share_percent =
            r.ranged("ARCHIVE_RU_SHARE_PERCENT", DEFAULT_RU_SHARE_PERCENT, 1..=100, "a whole percentage, 1 to 100")?;
        let deployed = match r.opt("ARCHIVE_CONTAINER_RU_PER_SECOND") {
            None => None,
            Some(_) => Some(r.ranged(
                "ARCHIVE_CONTAINER_RU_PER_SECOND",
                0u32,
                1..=u32::MAX,
                "the container's RU/s, a whole number",
            )?),
        };
        let ru_budget = match r.or("ARCHIVE_MAX_RU_PER_SECOND", "auto").to_ascii_lowercase().as_str() {
            "auto" => RuBudgetSetting::Auto { share_percent, deployed },
            _ => RuBudgetSetting::Fixed(r.parsed(
                "ARCHIVE_MAX_RU_PER_SECOND",
                0u32,
                "`auto` or a whole number of request units (0: unlimited)",
            )?),
        };
        let max_ru_per_second = match ru_budget {
            RuBudgetSetting::Fixed(n) => n,
            RuBudgetSetting::Auto { .. } => 0,
        };
        let priority = match r.or("ARCHIVE_PRIORITY", "low").to_ascii_lowercase().as_str() {
            "low" => Priority::Low,
            "high" => Priority::High,
            other => {
                return Err(SettingsError {
                    name: "ARCHIVE_PRIORITY",
                    message: format!("is `{other}`, not `low` or `high`"),
                });
            }
        };
        let range_queries = parse_bool(&r, "ARCHIVE_RANGE_QUERIES", true)?;
        let throughput_bucket = match r.opt("ARCHIVE_THROUGHPUT_BUCKET") {
            None => None,
            Some(_) => Some(r.ranged("ARCHIVE_THROUGHPUT_BUCKET", 1u8, 1..=5, "a bucket id, 1 to 5")?),
        };
        let budget = r.ranged(
            "ARCHIVE_TIME_BUDGET_SECONDS",
            DEFAULT_TIME_BUDGET_SECONDS,
            1..=86_400,
            "a whole number of seconds",
        )?;
        let schedule = r.or("ARCHIVE_SCHEDULE", DEFAULT_SCHEDULE);
        parse_schedule(&schedule).map_err(|message| SettingsError { name: "ARCHIVE_SCHEDULE", message })?;
        let adaptive = parse_bool(&r, "ARCHIVE_CONCURRENCY_ADAPTIVE", true)?;
        // Unset or 0: retention is off. A record is archived before it can expire.
        let retention_days = match r.ranged(
            "ARCHIVE_RETENTION_DAYS",
            0u32,
            0..=36_500,
            "a whole number of days (0: off)",
        )? {
            0 => None,
            days if days <= after_days => {
                return Err(SettingsError {
                    name: "ARCHIVE_RETENTION_DAYS",
                    message: format!(
                        "is {days}, not more than ARCHIVE_AFTER_DAYS ({after_days}): records would expire before they are archived"
                    ),
                });
            }
            days => Some(days),
        };
        Ok(Self {
            stores,
            after_days,
            quiet_days,
            dry_run,
            concurrency,
            max_ru_per_second,
            ru_budget,
            ru_budget_note: match ru_budget {
                RuBudgetSetting::Fixed(0) => "unlimited (ARCHIVE_MAX_RU_PER_SECOND=0)".into(),
                RuBudgetSetting::Fixed(n) => format!("{n} RU/s (ARCHIVE_MAX_RU_PER_SECOND)"),
                RuBudgetSetting::Auto { .. } => "not resolved yet".into(),
            },
            priority,
            throughput_bucket,
            range_queries,
            time_budget: Duration::from_secs(budget),
            schedule,
            adaptive,
            retention_days,
        })
    }
}

/// The reader's own settings.
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    pub stores: StoreSettings,
    /// Every request answers within this (503 with `Retry-After` past it).
    pub request_timeout: Duration,
    /// The most bytes of records a list page holds; a page that would hold more
    /// ends early, with a continuation token (docs/read-api.md, "List").
    pub page_max_bytes: usize,
    /// The read contract served.
    pub contract: Contract,
    /// Where the contract came from (a path, or the built-in default), for the start-up log.
    pub contract_source: String,
    /// The team's current API (`READER_UPSTREAM_URL`, else the profile's
    /// `front.upstream`): in serve mode the profile's writes pass through to it
    /// (docs/writes.md), unset the reader is read-only; front mode needs it.
    pub upstream: Option<url::Url>,
    /// Front mode: archived records one list request moves back at most
    /// (`READER_LIST_MOVEBACK_MAX`; docs/front-mode.md, "Lists").
    pub list_moveback_max: usize,
}

/// Archived records one list request moves back at most, by default: twice the
/// largest page most APIs serve, and a few seconds' work (BENCHMARKS.md, "Front mode").
pub const DEFAULT_LIST_MOVEBACK_MAX: usize = 200;

/// Well inside the host's 230-second HTTP limit, and long enough for a cold read
/// that retries once after a slow attempt.
pub const DEFAULT_READER_TIMEOUT_SECONDS: u64 = 10;

/// 4 MiB: a page of up to 100 records of 300 KB would be 30 MB, held by the
/// reader and again by the host's forwarding, on a 512 MB instance (BENCHMARKS.md,
/// "Reader memory"). Cosmos itself answers a query page with at most about 4 MB.
pub const DEFAULT_PAGE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The file `scripts/package.sh` puts beside the reader, in its working directory.
pub const CONTRACT_FILE: &str = "contract.toml";

impl ReaderSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&Env)
    }

    /// The default contract and timeout over `stores` (tests, tools).
    pub fn defaults(stores: StoreSettings) -> Self {
        Self {
            stores,
            request_timeout: Duration::from_secs(DEFAULT_READER_TIMEOUT_SECONDS),
            page_max_bytes: DEFAULT_PAGE_MAX_BYTES,
            contract: Contract::default_profile(),
            contract_source: "the built-in default profile".into(),
            upstream: None,
            list_moveback_max: DEFAULT_LIST_MOVEBACK_MAX,
        }
    }

    /// The contract profile comes from `READER_CONTRACT` (a path), else from
    /// `contract.toml` in the working directory, else it is the built-in default.
    /// `COSMOS_PARTITION_KEY`, when set, must agree with the profile's
    /// `container.partition_key`; when unset, the profile's is used.
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, SettingsError> {
        let r = Reader(env);
        let mut stores = StoreSettings::from_lookup(env)?;
        let seconds =
            r.ranged("READER_TIMEOUT_SECONDS", DEFAULT_READER_TIMEOUT_SECONDS, 1..=200, "a whole number of seconds")?;
        let page_max_bytes = r.ranged(
            "READER_PAGE_MAX_BYTES",
            DEFAULT_PAGE_MAX_BYTES,
            64 * 1024..=256 * 1024 * 1024,
            "a whole number of bytes",
        )?;
        let named = r.opt("READER_CONTRACT");
        let path =
            named.clone().or_else(|| std::path::Path::new(CONTRACT_FILE).is_file().then(|| CONTRACT_FILE.to_owned()));
        let bad = |message: String| SettingsError { name: "READER_CONTRACT", message };
        let (contract, contract_source) = match path {
            None => (Contract::default_profile(), "the built-in default profile".to_owned()),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("cannot read `{path}`: {e}")))?;
                let contract = Contract::parse(&text).map_err(|e| bad(format!("`{path}`: {e}")))?;
                (contract, path)
            }
        };
        match r.opt("COSMOS_PARTITION_KEY") {
            None => stores.partition_key = contract.partition_key.clone(),
            Some(_) if stores.partition_key != contract.partition_key => {
                return Err(SettingsError {
                    name: "COSMOS_PARTITION_KEY",
                    message: format!(
                        "is {}, but the contract profile ({contract_source}) says container.partition_key = \"{}\"",
                        stores.partition_key, contract.partition_key
                    ),
                });
            }
            Some(_) => {}
        }
        check_auth(&r, &contract, &contract_source)?;
        let front = contract.front.as_ref();
        let upstream = match r.opt("READER_UPSTREAM_URL") {
            None => front.and_then(|f| f.upstream.clone()),
            Some(text) => Some(
                crate::contract::upstream_url(&text)
                    .map_err(|message| SettingsError { name: "READER_UPSTREAM_URL", message })?,
            ),
        };
        if front.is_some() && upstream.is_none() {
            return Err(SettingsError {
                name: "READER_UPSTREAM_URL",
                message: format!(
                    "is required: the contract profile ({contract_source}) names front mode ([front]) and no front.upstream"
                ),
            });
        }
        let list_moveback_max =
            r.ranged("READER_LIST_MOVEBACK_MAX", DEFAULT_LIST_MOVEBACK_MAX, 1..=5000, "a whole number of records")?;
        if let Some(front) = front
            && list_moveback_max < front.list.max_page_size
        {
            return Err(SettingsError {
                name: "READER_LIST_MOVEBACK_MAX",
                message: format!(
                    "is {list_moveback_max}, below the largest list page ({} records, front.list.max_page_size): a page could reach records still archived",
                    front.list.max_page_size
                ),
            });
        }
        Ok(Self {
            stores,
            request_timeout: Duration::from_secs(seconds),
            page_max_bytes,
            contract,
            contract_source,
            upstream,
            list_moveback_max,
        })
    }
}

/// `READER_AUTH`, `READER_AUTH_ISSUERS` and `READER_AUTH_AUDIENCES` (the Bicep
/// sets them from the profile, so the deployment shows how callers
/// authenticate, and decides the access restrictions from it): when set, each
/// must agree with the profile's `[auth]`, or the reader does not start.
fn check_auth(r: &Reader<'_>, contract: &Contract, source: &str) -> Result<(), SettingsError> {
    let list = |values: &[String]| values.join(",");
    let bearer = contract.auth.bearer();
    let expected = [
        ("READER_AUTH", contract.auth.mode().to_owned(), "auth.mode"),
        ("READER_AUTH_ISSUERS", bearer.map(|b| list(&b.issuers)).unwrap_or_default(), "auth.issuers"),
        ("READER_AUTH_AUDIENCES", bearer.map(|b| list(&b.audiences)).unwrap_or_default(), "auth.audiences"),
    ];
    for (name, want, key) in expected {
        let Some(got) = r.opt(name) else { continue };
        let got: Vec<&str> = got.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
        if got.join(",") != want {
            return Err(SettingsError {
                name,
                message: format!("is `{}`, but the contract profile ({source}) says {key} = `{want}`", got.join(",")),
            });
        }
    }
    Ok(())
}

/// How the binaries log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// JSON lines when running in Azure (`WEBSITE_INSTANCE_ID` is set there) or
    /// when `LOG_FORMAT=json`; human-readable otherwise.
    pub json: bool,
    /// The `RUST_LOG` filter; `info` when unset.
    pub filter: String,
}

impl LogSettings {
    pub fn from_env() -> Self {
        Self::from_lookup(&Env)
    }

    /// Never fails: a process that cannot read its settings must still log why.
    pub fn from_lookup(env: &dyn Lookup) -> Self {
        let r = Reader(env);
        let json = r.opt("WEBSITE_INSTANCE_ID").is_some() || r.opt("LOG_FORMAT").is_some_and(|v| v == "json");
        Self { json, filter: r.or("RUST_LOG", "info") }
    }
}

/// The port the Functions host asks a custom handler to listen on.
pub fn handler_port(env: &dyn Lookup) -> Result<u16, SettingsError> {
    Reader(env).parsed("FUNCTIONS_CUSTOMHANDLER_PORT", 8080u16, "a TCP port")
}

#[cfg(test)]
mod tests {

    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 2] =
        [("COSMOS_ENDPOINT", "http://127.0.0.1:1/"), ("ARCHIVE_BLOB_ENDPOINT", "http://127.0.0.1:2/devstoreaccount1")];

    #[test]
    fn defaults_follow_the_contract() {
        let s = ArchiverSettings::from_lookup(&env(&BASE)).unwrap();
        assert_eq!(s.stores.cosmos_database, "billing");
        assert_eq!(s.stores.cosmos_container, "records");
        assert_eq!(s.stores.partition_key.to_string(), "/customerId");
        assert_eq!(s.stores.archive_container, "billing-archive");
        assert_eq!(s.stores.age_field, AgeField::Ts);
        assert_eq!(s.after_days, 90);
        assert_eq!(s.quiet_days, 30);
        assert!(!s.dry_run);
        assert_eq!(
            (s.ru_budget, s.priority, s.throughput_bucket, s.range_queries),
            (RuBudgetSetting::Auto { share_percent: 50, deployed: None }, Priority::Low, None, true),
            "by default: half the container's throughput, at low priority, per range"
        );
        assert_eq!(s.concurrency, AUTO_CONCURRENCY);
        assert!(s.adaptive);
        assert_eq!(s.schedule, "0 0 2 * * *");
        let mut pairs = BASE.to_vec();
        pairs.push(("ARCHIVE_CONCURRENCY", "8"));
        assert_eq!(ArchiverSettings::from_lookup(&env(&pairs)).unwrap().concurrency, 8);
        assert!(s.stores.cosmos_key.is_none() && s.stores.blob_sas.is_none());
    }

    #[test]
    fn every_error_names_its_setting() {
        for missing in ["COSMOS_ENDPOINT", "ARCHIVE_BLOB_ENDPOINT"] {
            let pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != missing).collect();
            assert_eq!(ArchiverSettings::from_lookup(&env(&pairs)).unwrap_err().name, missing);
        }
        let malformed = [
            ("COSMOS_ENDPOINT", "not a url"),
            ("COSMOS_ENDPOINT", "ftp://x/"),
            ("ARCHIVE_AFTER_DAYS", "ninety"),
            ("ARCHIVE_AFTER_DAYS", "0"),
            ("ARCHIVE_QUIET_DAYS", "-1"),
            ("ARCHIVE_QUIET_DAYS", "a month"),
            ("ARCHIVE_DRY_RUN", "maybe"),
            ("ARCHIVE_CONCURRENCY", "0"),
            ("ARCHIVE_CONCURRENCY", "lots"),
            ("ARCHIVE_CONCURRENCY_ADAPTIVE", "sometimes"),
            ("ARCHIVE_SCHEDULE", "0 2 * * *"),
            ("ARCHIVE_SCHEDULE", "0 0 25 * * *"),
            ("ARCHIVE_MAX_RU_PER_SECOND", "-5"),
            ("ARCHIVE_MAX_RU_PER_SECOND", "lots"),
            ("ARCHIVE_RU_SHARE_PERCENT", "0"),
            ("ARCHIVE_RU_SHARE_PERCENT", "150"),
            ("ARCHIVE_CONTAINER_RU_PER_SECOND", "0"),
            ("ARCHIVE_PRIORITY", "urgent"),
            ("ARCHIVE_THROUGHPUT_BUCKET", "0"),
            ("ARCHIVE_THROUGHPUT_BUCKET", "6"),
            ("ARCHIVE_RANGE_QUERIES", "sometimes"),
            ("ARCHIVE_TIME_BUDGET_SECONDS", "1h"),
            ("ARCHIVE_TIME_BUDGET_SECONDS", "18446744073709551615"),
            ("ARCHIVE_AGE_FIELD", "a.b"),
            ("ARCHIVE_CONTAINER", "a/b"),
            ("COSMOS_PARTITION_KEY", "customerId"),
            ("COSMOS_PARTITION_KEY", "/a/b"),
        ];
        // A malformed share is refused even when a fixed budget leaves it unused.
        let mut pairs = BASE.to_vec();
        pairs.extend([("ARCHIVE_MAX_RU_PER_SECOND", "500"), ("ARCHIVE_RU_SHARE_PERCENT", "half")]);
        assert_eq!(ArchiverSettings::from_lookup(&env(&pairs)).unwrap_err().name, "ARCHIVE_RU_SHARE_PERCENT");
        for (name, value) in [
            ("READER_TIMEOUT_SECONDS", "0"),
            ("READER_TIMEOUT_SECONDS", "soon"),
            ("READER_UPSTREAM_URL", "billing.example.com"),
            ("READER_UPSTREAM_URL", "ftp://billing.example.com"),
            ("READER_UPSTREAM_URL", "https://billing.example.com/?code=secret"),
            ("READER_UPSTREAM_URL", "https://user@billing.example.com"),
            ("READER_UPSTREAM_URL", "http://billing.example.com"),
            ("READER_LIST_MOVEBACK_MAX", "0"),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((name, value));
            assert_eq!(ReaderSettings::from_lookup(&env(&pairs)).unwrap_err().name, name);
        }
        let reader = ReaderSettings::from_lookup(&env(&BASE)).unwrap();
        assert_eq!((reader.request_timeout, reader.upstream), (Duration::from_secs(10), None), "read-only by default");
        let upstream = [BASE[0], BASE[1], ("READER_UPSTREAM_URL", "https://billing.example.com/v1")];
        let reader = ReaderSettings::from_lookup(&env(&upstream)).unwrap();
        assert_eq!(reader.upstream.unwrap().as_str(), "https://billing.example.com/v1");
        let profile = |text: &str| {
            let path = std::env::temp_dir().join(format!("contract-{}-{}.toml", std::process::id(), text.len()));
            std::fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        };
        let tenants = profile(&crate::contract::DEFAULT_PROFILE.replace("/customerId", "/tenantId"));
        let mut pairs = BASE.to_vec();
        pairs.push(("READER_CONTRACT", &tenants));
        let settings = ReaderSettings::from_lookup(&env(&pairs)).unwrap();
        assert_eq!(settings.stores.partition_key.to_string(), "/tenantId", "the profile's partition key when unset");
        pairs.push(("COSMOS_PARTITION_KEY", "/customerId"));
        let err = ReaderSettings::from_lookup(&env(&pairs)).unwrap_err();
        assert_eq!(err.name, "COSMOS_PARTITION_KEY");
        assert!(err.message.contains("/customerId") && err.message.contains("/tenantId"), "{err}");
        // Front mode: the current API from the setting or the profile, and list move-backs of at least a page.
        let front =
            profile(&format!("{}\n[front]\n[front.list]\nmax_page_size = 50\n", crate::contract::DEFAULT_PROFILE));
        let err = ReaderSettings::from_lookup(&env(&[BASE[0], BASE[1], ("READER_CONTRACT", &front)])).unwrap_err();
        assert_eq!(err.name, "READER_UPSTREAM_URL", "front mode without a current API");
        let with = |more: &[(&'static str, &'static str)]| {
            let mut pairs: Vec<(&str, &str)> = vec![BASE[0], BASE[1], ("READER_CONTRACT", front.as_str())];
            pairs.extend_from_slice(more);
            ReaderSettings::from_lookup(&env(&pairs))
        };
        let ok = with(&[("READER_UPSTREAM_URL", "http://127.0.0.1:7071")]).unwrap();
        assert_eq!(ok.list_moveback_max, DEFAULT_LIST_MOVEBACK_MAX);
        let err = with(&[("READER_UPSTREAM_URL", "https://b.example.com"), ("READER_LIST_MOVEBACK_MAX", "49")]);
        assert_eq!(err.unwrap_err().name, "READER_LIST_MOVEBACK_MAX", "fewer than a page");
        let broken = profile("[routes]\nrecord = 1\n");
        let err = ReaderSettings::from_lookup(&env(&[BASE[0], BASE[1], ("READER_CONTRACT", &broken)])).unwrap_err();
        assert_eq!(err.name, "READER_CONTRACT");
        let err = ReaderSettings::from_lookup(&env(&[BASE[0], BASE[1], ("READER_CONTRACT", "/nonexistent.toml")]));
        assert!(err.unwrap_err().message.contains("cannot read"));
        // The deployment's READER_AUTH* settings must agree with the profile's [auth].
        let bearer = profile(&format!(
            "{}\n[auth]\nmode = \"bearer\"\nissuers = [\"https://i.example/a\", \"https://i.example/b\"]\naudiences = [\"api://x\"]\njwks_uri = \"https://i.example/keys\"\n",
            crate::contract::DEFAULT_PROFILE
        ));
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![BASE[0], BASE[1], ("READER_CONTRACT", bearer.as_str())];
            pairs.extend_from_slice(extra);
            ReaderSettings::from_lookup(&env(&pairs)).map(|s| s.contract.auth.mode())
        };
        assert_eq!(with(&[]).unwrap(), "bearer");
        let agreed = [
            ("READER_AUTH", "bearer"),
            ("READER_AUTH_ISSUERS", "https://i.example/a, https://i.example/b"),
            ("READER_AUTH_AUDIENCES", "api://x"),
        ];
        assert_eq!(with(&agreed).unwrap(), "bearer");
        assert!(with(&[("READER_AUTH_AUDIENCES", " ")]).is_ok(), "blank is unset, as for every setting");
        for (name, value) in [
            ("READER_AUTH", "anonymous"),
            ("READER_AUTH_ISSUERS", "https://i.example/a"),
            ("READER_AUTH_AUDIENCES", "api://y"),
        ] {
            assert_eq!(with(&[(name, value)]).unwrap_err().name, name);
        }
        let err = ReaderSettings::from_lookup(&env(&[BASE[0], BASE[1], ("READER_AUTH", "bearer")])).unwrap_err();
        assert!(err.message.contains("function-key"), "the default profile is the function key: {err}");
        for (name, value) in malformed {
            let mut pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != name).collect();
            pairs.push((name, value));
            let err = ArchiverSettings::from_lookup(&env(&pairs)).unwrap_err();
            assert_eq!(err.name, name, "{err}");
            assert!(err.to_string().starts_with(&format!("setting {name}: ")), "{err}");
        }
    }

    #[test]
    fn apps_in_azure_use_their_identity_and_operators_their_sign_in() {
        let functions = [("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"), ("IDENTITY_HEADER", "h")];
        let credential = |extra: &[(&str, &str)]| {
            let mut pairs = BASE.to_vec();
            pairs.extend_from_slice(extra);
            StoreSettings::from_lookup(&env(&pairs)).unwrap().credential
        };
        assert_eq!(credential(&functions), CredentialSource::ManagedIdentity { client_id: None });
        let user_assigned = [functions[0], functions[1], ("AZURE_CLIENT_ID", "0000")];
        assert_eq!(credential(&user_assigned), CredentialSource::ManagedIdentity { client_id: Some("0000".into()) });
        assert_eq!(credential(&[]), CredentialSource::DeveloperTools);
        // A workstation with a service principal's id set, and Cloud Shell: az login.
        assert_eq!(credential(&[("AZURE_CLIENT_ID", "0000")]), CredentialSource::DeveloperTools);
        assert_eq!(
            credential(&[("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")]),
            CredentialSource::DeveloperTools
        );
        assert_eq!(
            credential(&[("IDENTITY_ENDPOINT", ""), ("IDENTITY_HEADER", "h")]),
            CredentialSource::DeveloperTools
        );
        let mut emulator = BASE.to_vec();
        emulator.extend([("COSMOS_KEY", "k"), ("IDENTITY_ENDPOINT", "http://x"), ("IDENTITY_HEADER", "h")]);
        let (cosmos, archive) = StoreSettings::from_lookup(&env(&emulator)).unwrap().credentials();
        assert!(cosmos.contains("COSMOS_KEY") && archive == "the app's system-assigned managed identity", "{archive}");
        assert_eq!(
            CredentialSource::ManagedIdentity { client_id: Some("0000".into()) }.to_string(),
            "the user-assigned managed identity with client id 0000"
        );
    }

    #[test]
    fn logs_are_json_in_azure_and_filtered_by_rust_log() {
        let log = |pairs: &[(&str, &str)]| LogSettings::from_lookup(&env(pairs));
        assert_eq!(log(&[]), LogSettings { json: false, filter: "info".into() });
        assert!(log(&[("WEBSITE_INSTANCE_ID", "abc")]).json && log(&[("LOG_FORMAT", "json")]).json);
        assert!(!log(&[("LOG_FORMAT", "text")]).json);
        assert_eq!(log(&[("RUST_LOG", "archiver=debug")]).filter, "archiver=debug");
    }

    #[test]
    fn secrets_do_not_print() {
        let mut pairs = BASE.to_vec();
        pairs.push(("COSMOS_KEY", "super-secret-key"));
        pairs.push(("ARCHIVE_BLOB_SAS", "?sv=2025&sig=super-secret-sig"));
        let s = StoreSettings::from_lookup(&env(&pairs)).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("super-secret"), "{printed}");
        assert_eq!(s.blob_sas.unwrap().secret(), "sv=2025&sig=super-secret-sig");
    }
}
