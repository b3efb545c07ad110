//! The run lease: overlapping passes, and a pass that loses its lease.

use super::*;

#[tokio::test]
async fn overlapping_runs_never_work_at_once() {
    let f = fixture().await;
    // Run A reads its copies back slowly; run B (another process, say an operator's
    // `archiver run`) starts while A is at work.
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    let hooks = Hooks {
        before_get: hook(move |_| {
            let signal = signal.clone();
            async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }),
        ..Default::default()
    };
    let a = f.hooked(hooks, 1);
    let run_a = tokio::spawn(async move { a.run(Utc::now(), false).await });
    started.notified().await;

    let b = f.plain(4).run(Utc::now(), false).await;
    assert_eq!(b.status, RunStatus::Skipped, "{b:?}");
    assert_eq!((b.scanned, b.archived), (0, 0));
    assert!(!b.is_failure());
    let stores = f.stores.clone();
    let cli = tokio::task::spawn_blocking(move || archiver_cli(&stores, &["run"])).await.unwrap();
    assert_eq!(cli.status.code(), Some(3), "the command line says another run holds the lease");

    let a = run_a.await.unwrap();
    assert_eq!((a.status, a.archived), (RunStatus::Complete, f.old.len() as u64), "{a:?}");
    // A released the lease: the next run goes ahead (and finds nothing left).
    let c = f.plain(4).run(Utc::now(), false).await;
    assert_eq!((c.status, c.scanned), (RunStatus::Complete, 0), "{c:?}");
}

/// Breaks the run lease from outside, as another process (or an operator) could.
async fn break_run_lease(stores: &StoreSettings) {
    let sas = stores.blob_sas.as_ref().map(|s| s.secret().to_owned()).unwrap_or_default();
    let url = format!(
        "{}/{}/{}?comp=lease&{sas}",
        stores.blob_endpoint.as_str().trim_end_matches('/'),
        stores.archive_container,
        archiver::lease::LOCK_BLOB
    );
    let answer = reqwest::Client::new()
        .put(url)
        .header("x-ms-lease-action", "break")
        .header("x-ms-lease-break-period", "0")
        .header("x-ms-version", tiering::archive::BLOB_API_VERSION)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "break lease: {}", answer.status());
}

#[tokio::test]
async fn a_run_that_loses_its_lease_stops_before_any_destructive_step() {
    let f = fixture().await;
    // While the first copy is read back, the lease is broken; the read then takes
    // longer than the next renewal, which finds the lease gone.
    let (stores, first) = (f.stores.clone(), Arc::new(AtomicBool::new(true)));
    let hooks = Hooks {
        before_get: hook(move |_| {
            let (stores, first) = (stores.clone(), first.clone());
            async move {
                if first.swap(false, Ordering::SeqCst) {
                    break_run_lease(&stores).await;
                    tokio::time::sleep(Duration::from_secs(17)).await;
                }
            }
        }),
        ..Default::default()
    };
    let before = f.hot(&f.old).await;
    let summary = f.hooked(hooks, 1).run(Utc::now(), false).await;
    assert_eq!(summary.status, RunStatus::Partial, "{summary:?}");
    assert_eq!((summary.archived, summary.failed), (0, 1), "{summary:?}");
    assert_eq!(f.hot(&f.old).await, before, "no record left Cosmos without the lease");
}
