//! The per-record protocol: copy, verify, delete, and what a copy already in the way means.

use super::*;

#[tokio::test]
async fn a_record_updated_between_copy_and_delete_stays_in_cosmos_with_its_update() {
    let f = fixture().await;
    let target = f.old[0].clone();
    let updated_json = target.json.replacen(r#""status":"issued""#, r#""status":"corrected""#, 1);
    assert_ne!(updated_json, target.json);
    // When the archiver reads the copy back (the verify step), the application updates the record.
    let (cosmos, t, json, done) =
        (f.cosmos.clone(), target.clone(), updated_json.clone(), Arc::new(AtomicBool::new(false)));
    let hooks = Hooks {
        before_get: hook(move |blob| {
            let (cosmos, t, json, done) = (cosmos.clone(), t.clone(), json.clone(), done.clone());
            async move {
                if blob == name(&t) && !done.swap(true, Ordering::SeqCst) {
                    upsert_raw(&cosmos, &t.customer_id, &t.id, &json).await.unwrap();
                }
            }
        }),
        ..Default::default()
    };
    let summary = f.hooked(hooks, 1).run(Utc::now(), false).await;
    assert_eq!(summary.changed_during_run, 1, "{summary:?}");
    assert_eq!(summary.archived, f.old.len() as u64 - 1);
    assert_eq!(summary.withdrawn, 1, "the stale copy is withdrawn: {summary:?}");
    assert!(!summary.is_failure(), "a concurrent update is not a failure: {summary:?}");

    let now = f.cosmos.read(&target.customer_id, &target.id).await.unwrap().doc;
    assert!(String::from_utf8_lossy(&now.without_system_properties()).contains(r#""status":"corrected""#));
    assert_eq!(f.archived_etag(&target).await, None, "the archive must never shadow the newer record");

    // The next run archives the updated version.
    let next = f.plain(1).run(Utc::now(), false).await;
    assert_eq!(next.archived, 1, "{next:?}");
    let (body, _) = archived(&f.blob, &target).await;
    assert!(String::from_utf8_lossy(&body).contains(r#""status":"corrected""#));
}

#[tokio::test]
async fn an_identical_copy_is_kept_and_an_older_copy_is_replaced() {
    let f = fixture().await;
    let (same, stale) = (&f.old[1], &f.old[2]);
    // A run that crashed after uploading `same` but before deleting it...
    let hot = f.hot(std::slice::from_ref(same)).await.remove(0);
    let first_etag = f.put_copy(same, &hot.0, &hot.1, hot.2).await;
    // ...and an archived copy of an older version of `stale`.
    let stale_hot = f.hot(std::slice::from_ref(stale)).await.remove(0);
    f.put_copy(stale, br#"{"id":"old version"}"#, "\"old-etag\"", stale_hot.2 - 100).await;

    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.already_archived, 1, "{summary:?}");
    assert_eq!(summary.archived, f.old.len() as u64 - 1);
    assert_eq!(f.archived_etag(same).await.unwrap(), first_etag, "the identical copy must not be rewritten");
    let (body, meta) = archived(&f.blob, stale).await;
    assert_eq!((body, meta.etag), (stale_hot.0, stale_hot.1));
}

#[tokio::test]
async fn a_newer_archived_copy_is_never_overwritten_by_an_older_read() {
    let f = fixture().await;
    let target = &f.old[0];
    let hot = f.hot(std::slice::from_ref(target)).await.remove(0);
    // Another run archived a later version of this record (say, after an edit).
    let newer_etag = f.put_copy(target, br#"{"id":"newer"}"#, "\"newer-etag\"", hot.2 + 1_000).await;
    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.changed_during_run, 1, "{summary:?}");
    assert_eq!(f.archived_etag(target).await.unwrap(), newer_etag, "the newer copy must stay");
    assert_eq!(f.hot(std::slice::from_ref(target)).await.remove(0), hot, "the record read must stay in Cosmos");
}

#[tokio::test]
async fn a_same_second_version_in_the_archive_is_a_conflict_and_both_versions_survive() {
    let f = fixture().await;
    let target = &f.old[0];
    // Cosmos holds version A at _ts T; the archive holds version B of the same record,
    // also at T, with another etag (two writes within one second, two overlapping runs).
    let (a_body, a_etag, t) = f.hot(std::slice::from_ref(target)).await.remove(0);
    let b_body = target.json.replacen(r#""status":"issued""#, r#""status":"paid""#, 1).into_bytes();
    let b_blob_etag = f.put_copy(target, &b_body, "\"version-b\"", t).await;

    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.conflicts, 1, "{summary:?}");
    assert_eq!(summary.archived, f.old.len() as u64 - 1);
    assert_eq!((summary.failed, summary.withdrawn), (0, 0));
    // Both versions still exist: A in Cosmos, B in the archive, untouched.
    assert_eq!(f.hot(std::slice::from_ref(target)).await.remove(0), (a_body, a_etag, t));
    assert_eq!(f.archived_etag(target).await.unwrap(), b_blob_etag);
    let (body, meta) = archived(&f.blob, target).await;
    assert_eq!((body, meta.etag.as_str()), (b_body, "\"version-b\""));
    // A later run decides nothing either; the shadow check settles it (see verify_shadowed).
    let again = f.plain(2).run(Utc::now(), false).await;
    assert_eq!((again.conflicts, again.archived), (1, 0), "{again:?}");
}

#[tokio::test]
async fn a_copy_with_unreadable_metadata_is_a_conflict_and_is_left_alone() {
    let f = fixture().await;
    let target = &f.old[3];
    let foreign = HashMap::from([("owner".to_owned(), "someone else".to_owned())]);
    let etag = f.blob.put(&name(target), Bytes::from_static(b"not ours"), foreign, PutCondition::Absent).await.unwrap();
    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!(summary.conflicts, 1, "{summary:?}");
    assert!(f.in_cosmos(target).await);
    assert_eq!(f.archived_etag(target).await.unwrap(), etag);
}

#[tokio::test]
async fn a_copy_that_fails_verification_is_withdrawn() {
    let f = fixture().await;
    let target = f.old[2].clone();
    // The read-back returns other bytes (a damaged write): verification fails.
    let victim = name(&target);
    let hooks = Hooks {
        after_get: Some(Arc::new(move |blob: &str, mut stored: tiering::archive::StoredBlob| {
            if blob == victim {
                stored.body = codec::compress(b"{}").into();
            }
            Ok(stored)
        })),
        ..Default::default()
    };
    let summary = f.hooked(hooks, 2).run(Utc::now(), false).await;
    assert_eq!((summary.failed, summary.withdrawn, summary.withdraw_failed), (1, 1, 0), "{summary:?}");
    assert!(summary.is_failure());
    assert!(f.in_cosmos(&target).await, "the record stays in Cosmos");
    assert_eq!(f.archived_etag(&target).await, None, "the unverified copy is withdrawn");
}

#[tokio::test]
async fn a_record_whose_id_cannot_be_addressed_safely_stays_hot_and_harms_nothing() {
    let f = fixture().await;
    // `..` is a legal Cosmos id, but URL handling turns `docs/..` into the container's own path.
    let dots = invoice("cust-a", "..", date_days_ago(200), 2_000, 9);
    seed(&f.cosmos, std::slice::from_ref(&dots)).await;
    let summary = f.plain(2).run(Utc::now(), false).await;
    assert_eq!((summary.blocked, summary.failed), (1, 0), "{summary:?}");
    assert!(!summary.is_failure(), "a record that can never be archived does not fail every run");
    assert_eq!(summary.status, RunStatus::Complete);
    assert!(summary.blocked_records[0].contains("\"..\""), "named in the run's log: {:?}", summary.blocked_records);
    assert!(f.in_cosmos(&dots).await, "it stays hot");
    assert_eq!(summary.archived, f.old.len() as u64, "{summary:?}");
    assert_eq!(summary.deleted_by_others, 0);
    for r in &f.new {
        assert!(f.in_cosmos(r).await);
    }
}
