//! Stores that fail: refused, throttled, ambiguous or lost answers, outages mid-run.

use super::*;

#[tokio::test]
async fn refused_deletes_count_their_request_units() {
    let f = fixture().await;
    let (updated, deleted) = (f.old[0].clone(), f.old[1].clone());
    // While their copies are verified, one record is updated (delete: 412) and one
    // deleted by the application (delete: 404).
    let (cosmos, u, d) = (f.cosmos.clone(), updated.clone(), deleted.clone());
    let hooks = Hooks {
        before_get: hook(move |blob| {
            let (cosmos, u, d) = (cosmos.clone(), u.clone(), d.clone());
            async move {
                if blob == name(&u) {
                    let json = u.json.replacen(r#""status":"issued""#, r#""status":"void""#, 1);
                    upsert_raw(&cosmos, &u.customer_id, &u.id, &json).await.unwrap();
                } else if blob == name(&d) {
                    cosmos.delete(&d.customer_id, &d.id).await.unwrap();
                }
            }
        }),
        ..Default::default()
    };
    let results = Mutex::new(Vec::<RecordResult>::new());
    let summary = f.hooked(hooks, 1).run_observed(Utc::now(), false, |r| results.lock().unwrap().push(r.clone())).await;
    assert_eq!((summary.changed_during_run, summary.deleted_by_others), (1, 1), "{summary:?}");
    let results = results.into_inner().unwrap();
    for outcome in [Outcome::ChangedDuringRun, Outcome::DeletedByOthers] {
        let r = results.iter().find(|r| r.outcome == outcome).unwrap();
        assert!(r.request_units > 0.0, "{outcome:?} must count what Cosmos charged for the refused delete: {r:?}");
    }
    let per_record: f64 = results.iter().map(|r| r.request_units).sum();
    assert!(summary.request_units >= per_record - 0.01, "{summary:?}");
    // The application's delete stands: the copy of the deleted record is withdrawn.
    assert_eq!(f.archived_etag(&deleted).await, None, "a deleted record must not come back from the archive");
    assert_eq!(f.archived_etag(&updated).await, None, "nor a stale copy of an updated one");
    assert_eq!(summary.withdrawn, 2, "{summary:?}");
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_keeps_the_only_copy() {
    // The first delete reaches Cosmos and deletes the record, but its answer is
    // lost; the SDK sends the delete again and meets 404. That 404 is our own
    // delete: the verified copy is now the only one and must stay.
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    let direct = stores.cosmos_endpoint.to_string();
    let proxy = Proxy::in_front_of(&direct).await.unwrap();
    stores.cosmos_endpoint = proxy.endpoint_for(&direct).parse().unwrap();
    let f = fixture_on(stores).await;
    let before = f.hot(&f.old).await;
    proxy.lose_answer_to_next(b"DELETE ");
    let results = Mutex::new(Vec::<RecordResult>::new());
    let summary = f.plain(1).run_observed(Utc::now(), false, |r| results.lock().unwrap().push(r.clone())).await;
    assert_eq!((summary.archived, summary.deleted_by_others), (f.old.len() as u64 - 1, 1), "{summary:?}");
    assert_eq!(summary.withdrawn, 0, "{summary:?}");
    let lost = results.into_inner().unwrap().into_iter().find(|r| r.outcome == Outcome::DeletedByOthers).unwrap();
    assert_eq!(lost.withdrawal, Withdrawal::None);
    for (r, (body, etag, _)) in f.old.iter().zip(&before) {
        assert!(!f.in_cosmos(r).await, "{}", r.id);
        let (stored, meta) = archived(&f.blob, r).await;
        assert_eq!((&stored, &meta.etag), (body, etag), "{} must be readable from the archive", r.id);
    }
}

/// A fixture whose Cosmos answers every delete with `status`.
async fn failing_deletes(status: u16) -> (Fixture, OwnEmulator) {
    let cosmos = OwnEmulator::cosmos_failing("DELETE", status);
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    (fixture_on(stores).await, cosmos)
}

#[tokio::test]
async fn a_delete_cosmos_refuses_withdraws_the_copy() {
    // 429 past the client's retries, or a 400: Cosmos refused the delete. The record
    // is seen to be still there, so its copy goes.
    for status in [429, 400] {
        let (f, _cosmos) = failing_deletes(status).await;
        let results = Mutex::new(Vec::<RecordResult>::new());
        let summary = f.plain(2).run_observed(Utc::now(), false, |r| results.lock().unwrap().push(r.clone())).await;
        assert_eq!(
            (summary.failed, summary.withdrawn),
            (f.old.len() as u64, f.old.len() as u64),
            "{status}: {summary:?}"
        );
        assert!(summary.is_failure());
        assert!(results.into_inner().unwrap().iter().all(|r| r.withdrawal == Withdrawal::Withdrawn));
        for r in &f.old {
            assert!(f.in_cosmos(r).await, "{status}: {} stays in Cosmos", r.id);
            assert_eq!(f.archived_etag(r).await, None, "{status}: the copy of {} is withdrawn", r.id);
        }
    }
}

#[tokio::test]
async fn an_ambiguous_delete_keeps_the_copy() {
    // A 503 may come after the delete happened: the copy may be the only one left.
    let (f, _cosmos) = failing_deletes(503).await;
    let summary = f.plain(1).run(Utc::now(), false).await;
    assert_eq!(summary.status, RunStatus::Failed, "an outage stops the run: {summary:?}");
    assert_eq!((summary.failed, summary.withdrawn), (1, 0), "{summary:?}");
    let mut kept = 0;
    for r in &f.old {
        assert!(f.in_cosmos(r).await);
        if let Some(_etag) = f.archived_etag(r).await {
            let (body, _) = archived(&f.blob, r).await;
            assert_eq!(body, f.hot(std::slice::from_ref(r)).await.remove(0).0, "the kept copy is verified");
            kept += 1;
        }
    }
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn a_blob_outage_mid_run_stops_the_run_and_deletes_nothing_unverified() {
    let azurite = OwnEmulator::azurite();
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.blob_endpoint = azurite.endpoint.parse().unwrap();
    let f = fixture_on(stores).await;

    let mut seen = Vec::new();
    let summary = f
        .plain(1)
        .run_observed(Utc::now(), false, |result| {
            seen.push(result.clone());
            if matches!(result.outcome, Outcome::Archived { .. }) {
                azurite.stop();
            }
        })
        .await;
    assert_eq!(summary.archived, 1, "{summary:?} {seen:?}");
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(summary.is_failure());
    assert!(summary.error.as_deref().unwrap().contains("outage"), "{summary:?}");
    assert!((summary.scanned as usize) < f.old.len(), "the run must stop, not grind through every record");
    let mut still_hot = 0;
    for r in &f.old {
        still_hot += usize::from(f.in_cosmos(r).await);
    }
    assert_eq!(still_hot, f.old.len() - 1, "only the verified record may leave Cosmos");
    for r in &f.new {
        assert!(f.in_cosmos(r).await);
    }
}

#[tokio::test]
async fn throttled_requests_are_retried_after_the_servers_delay() {
    // Every third document request is answered 429 with x-ms-retry-after-ms.
    let cosmos = OwnEmulator::cosmos_throttling(3);
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    // Seeding meets the throttling too; the SDK's retries absorb it.
    let f = fixture_on(stores).await;
    let summary = f.plain(4).run(Utc::now(), false).await;
    assert_eq!((summary.archived, summary.failed), (f.old.len() as u64, 0), "{summary:?}");
    for r in &f.old {
        assert!(!f.in_cosmos(r).await);
    }
}

#[tokio::test]
async fn a_cosmos_outage_mid_run_stops_the_run_cleanly() {
    let cosmos = OwnEmulator::cosmos();
    let mut stores = emulator_settings(AgeField::Iso("invoiceDate".into()));
    stores.cosmos_endpoint = cosmos.endpoint.parse().unwrap();
    let f = fixture_on(stores).await;
    let summary = f
        .plain(1)
        .run_observed(Utc::now(), false, |result| {
            if matches!(result.outcome, Outcome::Archived { .. }) {
                cosmos.stop();
            }
        })
        .await;
    assert_eq!(summary.archived, 1, "{summary:?}");
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(summary.error.as_deref().unwrap().contains("outage"), "{summary:?}");
    // Whatever was copied before the delete failed is a complete, verified copy.
    for info in f.blob.list(layout::LAYOUT_PREFIX).try_collect::<Vec<_>>().await.unwrap() {
        let stored = f.blob.get(&info.name).await.unwrap();
        let meta = ArchiveMeta::from_metadata(&stored.info.metadata).unwrap();
        codec::decode_verified(&stored.body, &meta).unwrap();
    }
}
