//! Retention by business date (`ARCHIVE_RETENTION_DAYS`) and holds.

use super::*;

/// The fixture's old records are dated 100 + 30 i days ago (i = 0..7), even i
/// for `cust-a`, odd for `cust b+ü`: past 200 days are i = 4, 6 (cust-a) and 5.
fn past_200_days(f: &Fixture) -> (Vec<&SampleRecord>, Vec<&SampleRecord>) {
    let past: Vec<&SampleRecord> = f.old.iter().skip(4).collect();
    past.into_iter().partition(|r| r.customer_id == "cust-a")
}

fn with_retention(f: &Fixture, days: Option<u32>) -> Archiver {
    let mut archiver = f.plain(4);
    archiver.settings.retention_days = days;
    archiver
}

#[tokio::test]
async fn copies_past_retention_expire_unless_held_and_a_dry_run_and_the_plan_only_count_them() {
    let f = fixture().await;
    let archived = with_retention(&f, None).run(Utc::now(), false).await;
    assert_eq!((archived.archived, archived.expired, archived.expiry_complete), (7, 0, true));
    let (expiring, held) = past_200_days(&f);
    assert_eq!((expiring.len(), held.len()), (2, 1));

    let hold =
        archiver::holds::place(&f.plain(4), "cust b+ü", Some("case 4711"), Utc::now(), Duration::ZERO).await.unwrap();
    assert_eq!((hold.partition_key.as_str(), hold.reason.as_deref()), ("cust b+ü", Some("case 4711")));
    let archiver = with_retention(&f, Some(200));

    // The plan and a dry run say what would go, and delete nothing.
    let plan = archiver::plan::retention(&archiver, Utc::now()).await.unwrap().unwrap();
    assert_eq!((plan.expire, plan.held, plan.holds), (2, 1, 1), "{plan:?}");
    let stored: u64 = {
        let mut total = 0;
        for r in &expiring {
            total += f.blob.head(&name(r)).await.unwrap().size;
        }
        total
    };
    assert_eq!(plan.bytes_stored, stored);
    assert!(plan.bytes > plan.bytes_stored, "JSON compresses");
    let dry = archiver.run(Utc::now(), true).await;
    assert_eq!((dry.expired, dry.held, dry.expired_bytes), (2, 1, stored), "{dry:?}");
    assert_eq!(f.blob_count().await, 7, "a dry run deletes nothing");

    let run = archiver.run(Utc::now(), false).await;
    assert_eq!((run.expired, run.held, run.expiry_complete, run.status), (2, 1, true, RunStatus::Complete));
    for r in &expiring {
        assert_eq!(f.archived_etag(r).await, None, "{} expired", r.id);
    }
    assert!(f.archived_etag(held[0]).await.is_some(), "held");
    assert_eq!(f.blob_count().await, 5);
    // The held copy survives `forget` too.
    let err = archiver::ops::forget(&archiver, &held[0].customer_id, &held[0].id, true, Duration::ZERO).await;
    assert!(err.unwrap_err().to_string().contains("on hold"));
    assert!(f.archived_etag(held[0]).await.is_some(), "not forgotten");
    let report = archiver::ops::forget(&archiver, &held[0].customer_id, &held[0].id, false, Duration::ZERO).await;
    assert!(report.unwrap().held);

    // Released: the next run expires it.
    assert!(archiver::holds::release(&archiver, "cust b+ü").await.unwrap());
    assert!(!archiver::holds::release(&archiver, "cust b+ü").await.unwrap(), "released once");
    let run = archiver.run(Utc::now(), false).await;
    assert_eq!((run.expired, run.held), (1, 0));
    assert_eq!(f.archived_etag(held[0]).await, None);
    // The recent records were never touched.
    for r in &f.new {
        assert!(f.in_cosmos(r).await);
    }
}

#[tokio::test]
async fn a_hold_waits_for_a_run_in_progress_and_the_cli_lists_it() {
    let f = fixture().await;
    let archiver = f.plain(4);
    let lease = archiver::lease::RunLease::acquire(archiver.archive.clone()).await.unwrap().unwrap();
    let busy = archiver::holds::place(&archiver, "cust-a", None, Utc::now(), Duration::ZERO).await;
    assert!(busy.unwrap_err().to_string().contains("in progress"), "placed only under the run lease");
    lease.release().await;

    let out = archiver_cli(&f.stores, &["hold", "--customer", "cust-a", "--reason", "audit 2026", "--wait", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let placed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(placed["archivedCopies"], 0, "nothing archived yet in this test: {placed}");
    let out = archiver_cli(&f.stores, &["hold", "--list"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["holds"][0]["partitionKey"], "cust-a");
    assert_eq!(listed["holds"][0]["reason"], "audit 2026");
    let out = archiver_cli(&f.stores, &["hold", "--customer", "cust-a", "--release"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["released"], true);
    let out = archiver_cli(&f.stores, &["hold", "--list"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["holds"], serde_json::json!([]));
}

#[tokio::test]
async fn an_unfinished_expiry_scan_resumes_where_it_stopped() {
    let f = fixture().await;
    with_retention(&f, None).run(Utc::now(), false).await;
    // cust-a on hold: its 4 copies stay, so a scan that started over would list them again.
    archiver::holds::place(&f.plain(4), "cust-a", None, Utc::now(), Duration::ZERO).await.unwrap();
    let held = std::collections::HashSet::from(["cust-a".to_owned()]);
    let lists = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = lists.clone();
    let hooks = Hooks {
        before_list: hook(move |_| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }),
        ..Default::default()
    };
    let archive: Arc<dyn Archive> = Arc::new(HookedArchive { inner: Arc::new(f.blob.clone()), hooks });
    let field = f.stores.age_field.clone();
    // Every archived copy is past a cutoff of now.
    let cutoff = Archiver::cutoff(&field, Utc::now(), 0);
    let expire = |deadline| archiver::retention::expire(&archive, &field, &cutoff, &held, false, 2, deadline, &|| true);
    // Pages of 2 over 7 copies: 4 pages. The deadline passes during the second listing.
    let first = expire(tokio::time::Instant::now() + Duration::from_millis(400)).await.unwrap();
    assert!(!first.complete, "{first:?}");
    let after_first = lists.load(Ordering::SeqCst);
    assert!((1..4).contains(&after_first), "{after_first} pages listed");
    let second = expire(tokio::time::Instant::now() + Duration::from_secs(60)).await.unwrap();
    assert!(second.complete, "{second:?}");
    assert_eq!(lists.load(Ordering::SeqCst), 4, "the second scan listed only the pages the first did not");
    assert_eq!((first.expired + second.expired, first.held + second.held), (3, 4));
    // Having reached the end, the next scan starts over.
    let third = expire(tokio::time::Instant::now() + Duration::from_secs(60)).await.unwrap();
    assert_eq!((third.expired, third.held, third.complete), (0, 4, true));
}
