//! `archiver plan` against the run that follows it.

use super::*;

#[tokio::test]
async fn the_plan_predicts_what_the_following_run_does() {
    let f = fixture().await;
    // Volume in several months, and one record no run can archive.
    let more: Vec<SampleRecord> = (0..40)
        .map(|i| {
            invoice(
                &format!("cust-{}", i % 5),
                &format!("more-{i}"),
                date_days_ago(95 + 11 * i),
                2_000 + 7_000 * (i as usize % 9),
                i as u64,
            )
        })
        .collect();
    seed(&f.cosmos, &more).await;
    seed(&f.cosmos, &[invoice("cust-a", "..", date_days_ago(300), 2_000, 1)]).await;
    let archiver = f.plain(64);
    let now = Utc::now();
    let options = archiver::plan::PlanOptions::default();
    let plan = archiver::plan::plan(&archiver, now, &options).await.unwrap();
    // The trial took every record through a run's steps but the delete, and
    // left nothing behind: Cosmos as it was, no copy, no list entry, no trial blob.
    assert!(plan.pace.trial_complete && plan.pace.trial_records == plan.records, "{:?}", plan.pace);
    assert_eq!(plan.pace.bound_by, "measured pace", "{:?}", plan.pace);
    for r in f.old.iter().chain(&more) {
        assert!(f.cosmos.read(&r.customer_id, &r.id).await.is_ok(), "{} still in Cosmos", r.id);
    }
    for prefix in [layout::LAYOUT_PREFIX, tiering::index::INDEX_PREFIX, archiver::run::TRIAL_PREFIX] {
        let left: Vec<_> = f.blob.list(prefix).try_collect().await.unwrap();
        assert!(left.is_empty(), "{prefix}: {:?}", left.iter().map(|b| &b.name).collect::<Vec<_>>());
    }
    let run = archiver.run(now, false).await;
    assert_eq!(plan.counted, "exact");
    assert_eq!(plan.records, run.archived, "plan {plan:?}\nrun {run:?}");
    assert_eq!(plan.records, (f.old.len() + more.len()) as u64);
    assert_eq!(
        (plan.blocked, run.blocked, run.failed),
        (1, 1, 0),
        "the `..` record is blocked, in the plan as in the run"
    );
    assert_eq!(plan.months.iter().map(|m| m.records).sum::<u64>(), plan.records);
    assert!(plan.months.len() >= 12, "{:?}", plan.months);
    let off = |planned: f64, actual: f64| (planned - actual).abs() / actual;
    assert!(off(plan.bytes as f64, run.bytes_read as f64) < 0.10, "bytes {} vs {}", plan.bytes, run.bytes_read);
    assert!(
        off(plan.compressed_bytes as f64, run.bytes_stored as f64) < 0.10,
        "stored {} vs {}",
        plan.compressed_bytes,
        run.bytes_stored
    );
    assert!(
        off(plan.request_units.total, run.request_units) < 0.10,
        "RU {} vs {}",
        plan.request_units.total,
        run.request_units
    );
    assert!(
        plan.pace.records_per_second > 0.0 && plan.pace.runs >= 1 && plan.pace.runs_per_day == 1.0,
        "{:?}",
        plan.pace
    );
    assert!(plan.cost.saving_per_month > 0.0);
    let table = archiver::plan::render(&plan);
    assert!(table.contains("total") && table.contains("RU"), "{table}");

    // With nothing left, the plan says so; with a tiny budget, it says its counts are partial.
    let empty = archiver::plan::plan(&archiver, now, &options).await.unwrap();
    assert_eq!((empty.records, empty.pace.runs), (0, 0));
    seed(&f.cosmos, &more).await;
    let capped = archiver::plan::PlanOptions { max_request_units: 1.0, ..options };
    let partial = archiver::plan::plan(&archiver, now, &capped).await.unwrap();
    assert_eq!(partial.counted, "partial");
}
