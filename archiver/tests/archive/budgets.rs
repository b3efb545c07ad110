//! The time budget and the request-unit budget.

use super::*;

#[tokio::test]
async fn the_time_budget_stops_new_work_and_the_next_run_continues() {
    let f = fixture().await;
    let mut archiver = f.plain(2);
    archiver.settings.time_budget = Duration::ZERO;
    let partial = archiver.run(Utc::now(), false).await;
    assert_eq!(partial.status, RunStatus::Partial, "{partial:?}");
    assert_eq!(partial.scanned, 0);
    assert!(!partial.is_failure());
    // What is left is counted, for the dashboard: nothing archived, so no pace for "nights left".
    assert_eq!((partial.backlog, partial.backlog_exact, partial.nights_left), (Some(7), Some(true), None));
    archiver.settings.time_budget = Duration::from_secs(120);
    let rest = archiver.run(Utc::now(), false).await;
    assert_eq!((rest.status, rest.archived), (RunStatus::Complete, f.old.len() as u64), "{rest:?}");
    assert_eq!(rest.backlog, None, "a complete run leaves none");
}

#[tokio::test]
async fn the_request_unit_budget_paces_the_run() {
    let f = fixture().await;
    let free = f.plain(4).run(Utc::now(), true).await;
    assert!(free.request_units > 0.0, "the emulator reports charges: {free:?}");
    let mut archiver = f.plain(4);
    archiver.settings.max_ru_per_second = 10;
    let paced = archiver.run(Utc::now(), false).await;
    assert_eq!(paced.archived, f.old.len() as u64, "{paced:?}");
    // Spending `ru` at 10 RU/s (burst 10) cannot take less than (ru - 10) / 10 seconds.
    let floor_ms = ((paced.request_units - 10.0) / 10.0 * 1000.0).max(0.0) as u64;
    assert!(paced.duration_ms + 100 >= floor_ms, "{} RU in {} ms", paced.request_units, paced.duration_ms);
}
