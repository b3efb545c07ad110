//! Both function apps, assembled as `scripts/package.sh` assembles them, driven
//! through the host stand-in against the real emulators: seed, read hot, archive
//! through the timer contract, read cold through the HTTP contract, compare.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use chrono::Utc;
use devhost::app::{AppFolder, assemble};
use devhost::host::Host;
use testkit::cosmos::{fresh_cosmos, seed};
use testkit::emulator::{emulator_settings, unique};
use testkit::sample::invoice;
use tiering::record::AgeField;

/// `target/debug`, where `cargo test --workspace` has built both handlers.
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: build the workspace first (./scripts/test.sh does)", path.display());
    path
}

fn assembled(app: &str) -> AppFolder {
    let out = std::env::temp_dir().join(unique(&format!("app-{app}")));
    assemble(&devhost::repo_root(), app, &built(app), &out, None).unwrap();
    AppFolder::load(&out).unwrap()
}

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    etag: Option<String>,
    last_modified: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

async fn get(http: &reqwest::Client, url: String) -> Answer {
    let r = http.get(url).send().await.unwrap();
    let h = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (status, etag, last_modified, content_type) =
        (r.status().as_u16(), h("etag"), h("last-modified"), h("content-type"));
    Answer { status, etag, last_modified, content_type, body: r.bytes().await.unwrap().to_vec() }
}

#[tokio::test]
async fn both_apps_run_under_the_host_and_archived_records_read_back_unchanged() {
    let stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    let cosmos = fresh_cosmos(&stores).await;
    let day = |d: i64| (Utc::now() - chrono::Duration::days(d)).date_naive();
    let old: Vec<_> = (0..6)
        .map(|i| invoice("cust-7", &format!("inv-old-{i}"), day(120 + 40 * i), 3_000 + 20_000 * i as usize, i as u64))
        .collect();
    let new: Vec<_> =
        (0..3).map(|i| invoice("cust-7", &format!("inv-new-{i}"), day(3 + i), 5_000, 50 + i as u64)).collect();
    seed(&cosmos, &old).await;
    seed(&cosmos, &new).await;
    let settings = devhost::drive::app_settings(&stores);

    let reader_host = Host::start(assembled("reader"), &settings).await.unwrap();
    let front = reader_host.serve_http(0).await.unwrap();
    let http = reqwest::Client::new();
    let url = |id: &str| format!("http://{front}/api/customers/cust-7/billing-records/{id}?code=local-key");
    let mut before = Vec::new();
    for r in old.iter().chain(&new) {
        let answer = get(&http, url(&r.id)).await;
        assert_eq!(answer.status, 200, "{}", r.id);
        assert!(testkit::sample::same_data(&answer.body, r.json.as_bytes()), "{} differs from what was seeded", r.id);
        before.push(answer);
    }

    let archiver_host = Host::start(assembled("archiver"), &settings).await.unwrap();
    let result = archiver_host.fire_timer("ArchiveBillingRecords").await.unwrap();
    assert_eq!(result.status, 200, "{:?}", result.logs);
    assert_eq!(result.return_value["archived"], old.len(), "{}", result.return_value);
    assert_eq!(result.return_value["status"], "complete");
    assert!(result.logs[0].starts_with("archive run complete"), "{:?}", result.logs);
    let again = archiver_host.fire_timer("ArchiveBillingRecords").await.unwrap();
    assert_eq!((again.status, &again.return_value["scanned"]), (200, &serde_json::json!(0)));
    assert!(archiver_host.fire_timer("NoSuchFunction").await.is_err());
    archiver_host.stop().await.unwrap();

    for (r, hot) in old.iter().chain(&new).zip(&before) {
        assert!(
            !old.iter().any(|o| o.id == r.id) || cosmos.read(&r.customer_id, &r.id).await.is_err(),
            "{} should have left Cosmos",
            r.id
        );
        assert!(get(&http, url(&r.id)).await == *hot, "{}: consumers must not see which tier answered", r.id);
    }
    let list = get(&http, format!("http://{front}/api/customers/cust-7/billing-records?pageSize=100")).await;
    let items = serde_json::from_slice::<serde_json::Value>(&list.body).unwrap()["items"].as_array().unwrap().len();
    assert_eq!(items, old.len() + new.len());

    // The host only forwards what function.json declares; another method is a 404, as in Azure.
    let post = http.post(url("inv-new-0")).send().await.unwrap();
    assert_eq!(post.status(), 404);
    assert_eq!(http.get(format!("http://{front}/api/customers/cust-7/invoices")).send().await.unwrap().status(), 404);
    assert_eq!(
        http.get(format!("http://{front}/customers/cust-7/billing-records")).send().await.unwrap().status(),
        404
    );
    reader_host.stop().await.unwrap();
}

#[test]
fn a_malformed_contract_profile_stops_packaging_and_names_the_key() {
    let profile = std::env::temp_dir().join(unique("bad-profile")).with_extension("toml");
    let text = tiering::contract::DEFAULT_PROFILE.replace("/{recordId}\"", "\"");
    std::fs::write(&profile, text).unwrap();
    let out = std::env::temp_dir().join(unique("app-reader"));
    let err = assemble(&devhost::repo_root(), "reader", &built("reader"), &out, Some(&profile)).unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("routes.record") && err.contains("{recordId}"), "{err}");
    assert!(!out.join("BillingRecords").exists(), "nothing assembled");
}

#[tokio::test]
async fn a_handler_with_a_bad_setting_fails_to_start_under_the_host() {
    let stores = emulator_settings(AgeField::Ts);
    let mut settings = devhost::drive::app_settings(&stores);
    settings.insert("ARCHIVE_AFTER_DAYS".into(), "soon".into());
    let err = Host::start(assembled("archiver"), &settings).await.unwrap_err().to_string();
    assert!(err.contains("exited during start-up"), "{err}");
}

#[tokio::test]
async fn the_archiver_starts_while_cosmos_is_down_and_reports_the_run_as_failed() {
    let stores = emulator_settings(AgeField::Ts);
    let mut settings = devhost::drive::app_settings(&stores);
    // Nothing listens there: the host's probe must still be answered at once.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    settings.insert("COSMOS_ENDPOINT".into(), format!("http://{dead}/"));
    let started = std::time::Instant::now();
    let host = Host::start(assembled("archiver"), &settings).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "start-up took {:?}", started.elapsed());
    let result = host.fire_timer("ArchiveBillingRecords").await.unwrap();
    assert_eq!(result.status, 500, "{:?}", result.logs);
    assert_eq!(result.return_value["status"], "failed");
    assert!(result.return_value["error"].as_str().unwrap().contains("cannot connect"), "{}", result.return_value);
    host.stop().await.unwrap();
}

/// The timer's schedule is the app setting ARCHIVE_SCHEDULE, resolved by the host:
/// an operator changes it without a redeploy; without the setting the timer never loads.
#[tokio::test]
async fn the_host_takes_the_timer_schedule_from_the_app_setting() {
    let stores = emulator_settings(AgeField::Ts);
    let mut settings = devhost::drive::app_settings(&stores);
    settings.insert("ARCHIVE_SCHEDULE".into(), "0 30 * * * *".into());
    let host = Host::start(assembled("archiver"), &settings).await.unwrap();
    let next = host.schedule("ArchiveBillingRecords").unwrap().upcoming(Utc).next().unwrap();
    assert_eq!(next.format("%M:%S").to_string(), "30:00", "hourly at half past");
    host.stop().await.unwrap();

    let mut app = assembled("archiver");
    app.settings.remove("ARCHIVE_SCHEDULE");
    let err = format!("{:#}", Host::start(app, &devhost::drive::app_settings(&stores)).await.unwrap_err());
    assert!(err.contains("ArchiveBillingRecords") && err.contains("ARCHIVE_SCHEDULE is not set"), "{err}");

    settings.insert("ARCHIVE_SCHEDULE".into(), "0 2 * * *".into());
    let err = format!("{:#}", Host::start(assembled("archiver"), &settings).await.unwrap_err());
    assert!(err.contains("six fields"), "{err}");
}

#[test]
fn assembled_apps_have_the_contracts_layout() {
    let archiver = assembled("archiver");
    assert_eq!(archiver.functions.len(), 1);
    let timer = archiver.function("ArchiveBillingRecords").unwrap();
    assert!(timer.is_timer());
    let binding = &timer.bindings[0];
    assert_eq!(
        (binding["schedule"].as_str(), binding["runOnStartup"].as_bool()),
        (Some("%ARCHIVE_SCHEDULE%"), Some(false))
    );
    assert_eq!(archiver.settings["ARCHIVE_SCHEDULE"], "0 0 2 * * *", "nightly at 02:00 UTC by default");
    assert!(archiver.executable.ends_with("archiver"));

    let reader = assembled("reader");
    let f = reader.function("BillingRecords").unwrap();
    assert_eq!(
        f.http_route().unwrap(),
        ("customers/{customerId}/billing-records/{recordId?}".into(), vec!["GET".to_owned()])
    );
    assert!(f.forwardable() && reader.forwarding && reader.route_prefix == "api");
    assert_eq!(f.bindings[0]["authLevel"], "function");
    assert!(reader.executable.ends_with("reader"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(std::fs::metadata(&reader.executable).unwrap().permissions().mode() & 0o111, 0);
    }
    // An app folder whose host.json names a missing executable is refused, as the host would.
    std::fs::remove_file(&reader.executable).unwrap();
    assert!(AppFolder::load(&reader.dir).is_err());
}
