//! The operator commands: verify, verify --shadowed, forget, restore.

use archiver::ops::{RestoreAll, Withdraw};

use super::*;

#[tokio::test]
async fn verify_finds_corrupt_and_vanished_copies_and_restore_brings_a_record_back() {
    let f = fixture().await;
    let archiver = f.plain(4);
    let summary = archiver.run(Utc::now(), false).await;
    assert_eq!(summary.archived, f.old.len() as u64);
    let clean = archiver::ops::verify(&archiver, None).await.unwrap();
    assert_eq!((clean.checked, clean.corrupt.len()), (f.old.len() as u64, 0), "{clean:?}");
    assert_eq!(clean.bytes_stored, summary.bytes_stored);

    // Damage one copy: same metadata, other bytes.
    let victim = &f.old[1];
    let stored = f.blob.get(&name(victim)).await.unwrap();
    let condition = PutCondition::Matches(stored.info.etag.clone());
    f.blob.put(&name(victim), codec::compress(b"{}").into(), stored.info.metadata.clone(), condition).await.unwrap();
    let report = archiver::ops::verify(&archiver, None).await.unwrap();
    assert_eq!(report.corrupt.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), [name(victim)]);
    let one = archiver::ops::verify(&archiver, Some(&victim.customer_id)).await.unwrap();
    assert!(one.checked < clean.checked && one.corrupt.len() == 1);

    // A copy that disappears between the listing and its download is counted, not fatal.
    let gone = name(&f.old[0]);
    let hooks = Hooks {
        after_get: Some(Arc::new(
            move |blob: &str, stored| if blob == gone { Err(StoreError::NotFound) } else { Ok(stored) },
        )),
        ..Default::default()
    };
    let vanishing = f.hooked(hooks, 4);
    let report = archiver::ops::verify(&vanishing, None).await.unwrap();
    assert_eq!((report.vanished, report.checked), (1, f.old.len() as u64 - 1), "{report:?}");

    // A corrupt copy is never restored; a good one comes back with the same body,
    // and its copy is withdrawn (one tier again: a later delete cannot resurrect it).
    let patience = Duration::ZERO;
    assert!(archiver::ops::restore(&archiver, &victim.customer_id, &victim.id, patience).await.is_err());
    assert!(!f.in_cosmos(victim).await);
    let good = &f.old[0];
    let (body, _) = archived(&f.blob, good).await;
    archiver::ops::restore(&archiver, &good.customer_id, &good.id, patience).await.unwrap();
    let back = f.cosmos.read(&good.customer_id, &good.id).await.unwrap().doc;
    let archived_doc = tiering::record::RawDocument::parse(body).unwrap();
    assert_eq!(back.without_system_properties(), archived_doc.without_system_properties(), "restored exactly");
    assert_eq!(f.archived_etag(good).await, None, "the restored copy is withdrawn");
    // Restoring again: nothing to restore, and the record in Cosmos is untouched.
    assert!(archiver::ops::restore(&archiver, &good.customer_id, &good.id, patience).await.is_err());
    assert_eq!(f.cosmos.read(&good.customer_id, &good.id).await.unwrap().doc.etag().unwrap(), back.etag().unwrap());
    // A copy next to a record Cosmos already holds is never restored over it; the
    // stale copy goes (it is what a later application delete would resurrect).
    let hot = &f.new[0];
    let (hot_body, hot_etag, hot_ts) = f.hot(std::slice::from_ref(hot)).await.remove(0);
    f.put_copy(hot, hot.json.replacen("issued", "draft", 1).as_bytes(), "\"old\"", hot_ts - 10).await;
    let outcome = archiver::ops::restore(&archiver, &hot.customer_id, &hot.id, patience).await.unwrap();
    assert_eq!(outcome, tiering::moveback::MovedBack::AlreadyHot { stale_copy_deleted: true });
    assert_eq!(f.hot(std::slice::from_ref(hot)).await.remove(0), (hot_body, hot_etag, hot_ts));
    assert_eq!(f.archived_etag(hot).await, None, "the stale copy is withdrawn");
    // A copy that is newer than the record in Cosmos: left for a person.
    let (_, _, newer_ts) = f.hot(std::slice::from_ref(&f.new[2])).await.remove(0);
    f.put_copy(&f.new[2], f.new[2].json.as_bytes(), "\"future\"", newer_ts + 100).await;
    let refused = archiver::ops::restore(&archiver, &f.new[2].customer_id, &f.new[2].id, patience).await.unwrap_err();
    assert!(refused.to_string().contains("newer than the record in Cosmos"), "{refused}");
    assert!(f.archived_etag(&f.new[2]).await.is_some(), "both left as they are");
    // A copy whose body is another record (a bad manual upload) is never restored.
    let other = &f.new[1];
    f.cosmos.delete(&other.customer_id, &other.id).await.unwrap();
    f.put_copy(other, f.new[2].json.as_bytes(), "\"x\"", 1).await;
    let refused = archiver::ops::restore(&archiver, &other.customer_id, &other.id, patience).await.unwrap_err();
    assert!(refused.to_string().contains("holds another record"), "{refused}");
    assert!(!f.in_cosmos(other).await);
}

#[tokio::test]
async fn verify_shadowed_withdraws_copies_next_to_records_cosmos_holds() {
    let f = fixture().await;
    let archiver = f.plain(4);
    assert_eq!(archiver.run(Utc::now(), false).await.archived, f.old.len() as u64);
    // x: the application wrote the archived record again (a later second): its copy is stale.
    let x = &f.old[0];
    let later = archived(&f.blob, x).await.1.ts + 60;
    upsert_raw(&f.cosmos, &x.customer_id, &x.id, &version_at(x, later)).await.unwrap();
    // y: copied by an interrupted run, not yet deleted: the same version in both tiers.
    let y = &f.new[0];
    let (body, etag, ts) = f.hot(std::slice::from_ref(y)).await.remove(0);
    f.put_copy(y, &body, &etag, ts).await;
    // z: a stale copy that someone replaces between the listing and the withdrawal.
    let z = &f.old[1];
    let later = archived(&f.blob, z).await.1.ts + 60;
    upsert_raw(&f.cosmos, &z.customer_id, &z.id, &version_at(z, later)).await.unwrap();

    let patience = Duration::ZERO;
    let report = archiver::ops::shadowed(&archiver, None, Withdraw::Nothing, None, patience).await.unwrap();
    assert_eq!(report.checked, f.old.len() as u64 + 1, "{report:?}");
    assert_eq!(report.same_version, 1);
    let mut found: Vec<(&str, &str)> = report.shadowed.iter().map(|s| (s.id.as_str(), s.action)).collect();
    found.sort();
    let mut expected =
        vec![(x.id.as_str(), "wouldWithdraw"), (y.id.as_str(), "wouldWithdraw"), (z.id.as_str(), "wouldWithdraw")];
    expected.sort();
    assert_eq!(found, expected, "a report lists the stale copies");
    assert!(f.archived_etag(x).await.is_some(), "a report withdraws nothing");

    let z_name = name(z);
    let blob = f.blob.clone();
    let hooks = Hooks {
        before_delete: hook(move |name| {
            let (blob, z_name) = (blob.clone(), z_name.clone());
            async move {
                if name == z_name {
                    let info = blob.head(&name).await.unwrap();
                    let md = info.metadata.clone();
                    blob.set_metadata(&name, md, &info.etag).await.unwrap();
                }
            }
        }),
        ..Default::default()
    };
    let report = archiver::ops::shadowed(&f.hooked(hooks, 4), None, Withdraw::Settled, None, patience).await.unwrap();
    assert_eq!((report.withdrawn, report.withdraw_failed), (2, 0), "{report:?}");
    let action = |id: &str| report.shadowed.iter().find(|s| s.id == id).unwrap().action;
    assert_eq!((action(&x.id), action(&y.id), action(&z.id)), ("withdrawn", "withdrawn", "changed"));
    assert_eq!((f.archived_etag(x).await, f.archived_etag(y).await), (None, None));
    assert!(f.archived_etag(z).await.is_some(), "a copy changed since it was listed is left alone");
    assert!(f.in_cosmos(x).await && f.in_cosmos(y).await && f.in_cosmos(z).await, "Cosmos keeps every record");
    assert_eq!(f.blob_count().await, f.old.len() - 1, "the archived records keep their copies");
}

/// `r`'s document, changed, as Cosmos would hold it with `_ts` = `ts` (the
/// emulator's test aid: as a point-in-time restore brings a version back).
fn version_at(r: &SampleRecord, ts: i64) -> String {
    let changed = r.json.replacen("issued", "restored", 1);
    format!("{{\"_emulatorTs\":{ts},{}", changed.strip_prefix('{').unwrap())
}

#[tokio::test]
async fn verify_shadowed_withdraws_only_copies_cosmos_holds_or_superseded_and_only_when_asked() {
    let f = fixture().await;
    let archiver = f.plain(4);
    assert_eq!(archiver.run(Utc::now(), false).await.archived, f.old.len() as u64);
    // Cosmos restored from a backup: the record comes back at the version
    // before the archived one (v2 archived, v1 put back with its older `_ts`).
    let restored = &f.old[0];
    let copy_ts = |r: &SampleRecord| {
        let (blob, r) = (f.blob.clone(), r.clone());
        async move { archived(&blob, &r).await.1.ts }
    };
    let v2 = copy_ts(restored).await;
    upsert_raw(&f.cosmos, &restored.customer_id, &restored.id, &version_at(restored, v2 - 3600)).await.unwrap();
    assert_eq!(f.hot(std::slice::from_ref(restored)).await[0].2, v2 - 3600, "the emulator keeps a restored _ts");
    // Another version of the copy's own second: which is newer cannot be told.
    let same_second = &f.old[2];
    let ts = copy_ts(same_second).await;
    upsert_raw(&f.cosmos, &same_second.customer_id, &same_second.id, &version_at(same_second, ts)).await.unwrap();
    // Written again in a later second: Cosmos superseded the copy.
    let superseded = &f.old[4];
    let ts = copy_ts(superseded).await;
    upsert_raw(&f.cosmos, &superseded.customer_id, &superseded.id, &version_at(superseded, ts + 60)).await.unwrap();
    // The very version Cosmos holds (a run stopped between verify and delete).
    let same = &f.new[0];
    let (body, etag, ts) = f.hot(std::slice::from_ref(same)).await.remove(0);
    f.put_copy(same, &body, &etag, ts).await;
    // Superseded too, but its customer is on hold: every version is kept.
    let held = &f.old[1];
    let ts = copy_ts(held).await;
    upsert_raw(&f.cosmos, &held.customer_id, &held.id, &version_at(held, ts + 60)).await.unwrap();
    archiver::holds::place(&archiver, &held.customer_id, Some("case 7"), Utc::now(), Duration::ZERO).await.unwrap();

    let every_copy = [restored, same_second, superseded, same, held];
    let etags = |f: &Fixture| {
        let f = (f.blob.clone(), every_copy.map(name));
        async move {
            let mut out = Vec::new();
            for n in f.1 {
                out.push(f.0.head(&n).await.ok().map(|i| i.etag));
            }
            out
        }
    };
    let before = etags(&f).await;
    let hot_before = f.hot(&every_copy.map(|r| r.clone())).await;
    let patience = Duration::ZERO;
    let report = archiver::ops::shadowed(&archiver, None, Withdraw::Nothing, None, patience).await.unwrap();
    let seen = |report: &archiver::ops::ShadowReport| {
        let mut seen: Vec<(String, archiver::ops::Pair, &'static str)> =
            report.shadowed.iter().map(|s| (s.id.clone(), s.reason, s.action)).collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        seen
    };
    use archiver::ops::Pair;
    let expect = |withdrawn: &'static str| {
        let mut e = vec![
            (restored.id.clone(), Pair::Conflict, "kept"),
            (same_second.id.clone(), Pair::Conflict, "kept"),
            (superseded.id.clone(), Pair::Superseded, withdrawn),
            (same.id.clone(), Pair::SameVersion, withdrawn),
            (held.id.clone(), Pair::Held, "kept"),
        ];
        e.sort_by(|a, b| a.0.cmp(&b.0));
        e
    };
    assert_eq!(seen(&report), expect("wouldWithdraw"), "{report:?}");
    assert_eq!((report.conflicts, report.superseded, report.same_version, report.held), (2, 1, 1, 1));
    assert!(report.needs_attention() && !report.withdraw && report.withdrawn == 0);
    let conflict = report.shadowed.iter().find(|s| s.id == restored.id).unwrap();
    assert_eq!((conflict.archived_ts, conflict.cosmos_ts), (v2, v2 - 3600), "the JSON says which is newer");
    assert_eq!(etags(&f).await, before, "a report deletes nothing");
    // Cosmos restored by copying records back (each copied one written anew): told
    // when, a later Cosmos version no longer proves a copy stale.
    let copied_back = chrono::DateTime::from_timestamp(report.shadowed.iter().map(|s| s.cosmos_ts).min().unwrap(), 0);
    let cautious = archiver::ops::shadowed(&archiver, None, Withdraw::Nothing, copied_back, patience).await.unwrap();
    let of = |id: &str| cautious.shadowed.iter().find(|s| s.id == id).unwrap().reason;
    assert_eq!((of(&superseded.id), of(&same.id)), (Pair::Conflict, Pair::SameVersion), "{cautious:?}");

    let report = archiver::ops::shadowed(&archiver, None, Withdraw::Settled, None, patience).await.unwrap();
    assert_eq!(seen(&report), expect("withdrawn"), "{report:?}");
    assert_eq!((report.withdrawn, report.withdraw_failed), (2, 0));
    assert!(report.needs_attention(), "the conflicts are still there for a person");
    let after = etags(&f).await;
    assert_eq!((after[2].clone(), after[3].clone()), (None, None), "the superseded and same-version copies go");
    assert_eq!([&after[0], &after[1], &after[4]], [&before[0], &before[1], &before[4]], "conflicts and holds stay");
    assert_eq!(f.hot(&every_copy.map(|r| r.clone())).await, hot_before, "Cosmos is never touched");
    // The newer version is still what the archive holds, so a person can choose.
    assert_eq!(archived(&f.blob, restored).await.1.ts, v2);
    // A person decided Cosmos's version is right: conflicts go too, one partition at a time.
    let everywhere = archiver::ops::shadowed(&archiver, None, Withdraw::PreferCosmos, None, patience).await;
    assert!(everywhere.is_err(), "never across the whole archive");
    let settled =
        archiver::ops::shadowed(&archiver, Some(&restored.customer_id), Withdraw::PreferCosmos, None, patience)
            .await
            .unwrap();
    assert_eq!((settled.withdrawn, settled.conflicts), (2, 2), "{settled:?}");
    assert!(!settled.needs_attention());
    assert_eq!((f.archived_etag(restored).await, f.archived_etag(same_second).await), (None, None));
    assert!(f.archived_etag(held).await.is_some(), "a hold still keeps its copies");
}

#[tokio::test]
async fn forget_erases_a_record_from_both_tiers_and_waits_for_no_run() {
    let f = fixture().await;
    let archiver = f.plain(4);
    archiver.run(Utc::now(), false).await;
    let (archived_only, hot_only, both) = (&f.old[0], &f.new[0], &f.old[1]);
    upsert_raw(&f.cosmos, &both.customer_id, &both.id, &both.json).await.unwrap();
    let patience = Duration::ZERO;

    // Without --confirm: a report, nothing deleted.
    let look = archiver::ops::forget(&archiver, &both.customer_id, &both.id, false, patience).await.unwrap();
    assert_eq!((look.cosmos, look.archive, look.confirmed), ("present", "present", false));
    assert!(f.in_cosmos(both).await && f.archived_etag(both).await.is_some());

    // While a run holds the lease, forget waits for it rather than race it.
    let lease = archiver::lease::RunLease::acquire(Arc::new(f.blob.clone())).await.unwrap().unwrap();
    let refused = archiver::ops::forget(&archiver, &both.customer_id, &both.id, true, patience).await.unwrap_err();
    assert!(refused.to_string().contains("in progress"), "{refused}");
    let released = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        lease.release().await;
    });
    let waited =
        archiver::ops::forget(&archiver, &hot_only.customer_id, &hot_only.id, true, Duration::from_secs(60)).await;
    assert_eq!(waited.unwrap().cosmos, "deleted", "forget goes ahead once the run is over");
    released.await.unwrap();

    for (r, cosmos, archive) in [(both, "deleted", "deleted"), (archived_only, "absent", "deleted")] {
        let report = archiver::ops::forget(&archiver, &r.customer_id, &r.id, true, patience).await.unwrap();
        assert_eq!((report.cosmos, report.archive), (cosmos, archive), "{}", r.id);
        assert!(!f.in_cosmos(r).await && f.archived_etag(r).await.is_none(), "{}", r.id);
    }
    assert!(!f.in_cosmos(hot_only).await);
    let twice = archiver::ops::forget(&archiver, &both.customer_id, &both.id, true, patience).await.unwrap();
    assert_eq!((twice.cosmos, twice.archive), ("absent", "absent"));
}

#[tokio::test]
async fn bulk_restore_brings_a_customer_back_resumably_and_never_overwrites() {
    let f = fixture().await;
    assert_eq!(f.plain(4).run(Utc::now(), false).await.archived, f.old.len() as u64);
    let archiver = f.plain(4);
    let mine: Vec<&SampleRecord> = f.old.iter().filter(|r| r.customer_id == "cust-a").collect();
    assert_eq!(mine.len(), 4);
    let mut bodies = HashMap::new();
    for r in &mine {
        bodies.insert(r.id.clone(), archived(&f.blob, r).await.0);
    }
    let patience = Duration::ZERO;
    let quiet = |_: &archiver::ops::RestoreReport| {};

    // A dry run over an age window: counts, writes nothing.
    let (from, to) = (Some(date_days_ago(230)), Some(date_days_ago(150)));
    let dry = archiver::ops::restore_customer(&archiver, "cust-a", from, to, true, patience, quiet).await.unwrap();
    assert_eq!((dry.checked, dry.matched, dry.restored), (4, 2, 0), "{dry:?}");
    for r in &mine {
        assert!(!f.in_cosmos(r).await);
    }

    // An earlier restore stopped after creating one record, before withdrawing its copy.
    let first = mine[0];
    f.cosmos.create_raw(&first.customer_id, &first.id, &bodies[&first.id]).await.unwrap();
    // And the application wrote another one again meanwhile: that version stays.
    let rewritten = mine[1];
    upsert_raw(&f.cosmos, &rewritten.customer_id, &rewritten.id, &rewritten.json.replacen("issued", "void", 1))
        .await
        .unwrap();
    let before = f.hot(std::slice::from_ref(rewritten)).await.remove(0);

    let report =
        archiver::ops::restore_customer(&archiver, "cust-a", None, None, false, patience, quiet).await.unwrap();
    assert_eq!((report.restored, report.already_in_cosmos, report.withdrawn), (2, 2, 4), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    for r in &mine {
        let doc = f.cosmos.read(&r.customer_id, &r.id).await.unwrap().doc;
        if r.id == rewritten.id {
            assert_eq!(f.hot(std::slice::from_ref(r)).await.remove(0), before, "never overwritten");
            assert_eq!(f.archived_etag(r).await, None, "its stale copy goes: a later delete cannot resurrect it");
        } else {
            let archived_doc = tiering::record::RawDocument::parse(bodies[&r.id].clone()).unwrap();
            assert_eq!(
                doc.without_system_properties(),
                archived_doc.without_system_properties(),
                "{} restored exactly",
                r.id
            );
            assert_eq!(f.archived_etag(r).await, None);
        }
    }
    // Other customers are untouched; running it again finds nothing left to do.
    assert!(!f.in_cosmos(&f.old[1]).await);
    let again = archiver::ops::restore_customer(&archiver, "cust-a", None, None, false, patience, quiet).await.unwrap();
    assert_eq!((again.checked, again.restored, again.already_in_cosmos), (0, 0, 0), "{again:?}");
}

/// The copies' names in listing order.
async fn listed(f: &Fixture) -> Vec<String> {
    f.blob.list(layout::LAYOUT_PREFIX).map_ok(|b| b.name).try_collect().await.unwrap()
}

#[tokio::test]
async fn restoring_the_whole_archive_is_resumable_where_it_stopped_and_leaves_conflicts_for_a_person() {
    let f = fixture().await;
    let archiver = f.plain(4);
    assert_eq!(archiver.run(Utc::now(), false).await.archived, f.old.len() as u64);
    let names = listed(&f).await;
    // The first copy listed is newer than what Cosmos holds by now (Cosmos restored
    // from a backup): never overwritten, left for a person.
    let conflict = f.old.iter().find(|r| name(r) == names[0]).unwrap();
    let ts = archived(&f.blob, conflict).await.1.ts;
    upsert_raw(&f.cosmos, &conflict.customer_id, &conflict.id, &version_at(conflict, ts - 3600)).await.unwrap();
    let patience = Duration::ZERO;
    let options = |dry_run, restart| RestoreAll { archived_after: None, dry_run, restart, page: 2 };
    let quiet = |_: &archiver::ops::RestoreAllReport| {};

    let dry = archiver::ops::restore_all(&archiver, &options(true, false), patience, quiet).await.unwrap();
    assert_eq!((dry.checked, dry.matched, dry.restored, dry.complete), (7, 7, 0, true), "{dry:?}");
    assert_eq!(listed(&f).await, names, "a dry run changes nothing");
    assert!(f.blob.head(archiver::ops::RESTORE_STATE).await.is_err(), "and saves no position");

    // Interrupted after its second page: the position after the first is saved.
    let saves = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = saves.clone();
    let hooks = Hooks {
        refuse_put: Some(Arc::new(move |name: &str| {
            let n = (name == archiver::ops::RESTORE_STATE).then(|| counted.fetch_add(1, Ordering::SeqCst));
            (n == Some(1)).then(|| StoreError::Unavailable("the process was stopped".into()))
        })),
        ..Default::default()
    };
    let mut pages = 0;
    let stopped =
        archiver::ops::restore_all(&f.hooked(hooks, 4), &options(false, false), patience, |_| pages += 1).await;
    assert!(stopped.is_err() && pages == 1, "{stopped:?}");
    let (first_page, second_page) = (&names[..2], &names[2..4]);
    let in_cosmos = |n: &str| {
        let r = f.old.iter().find(|r| name(r) == n).unwrap().clone();
        let cosmos = f.cosmos.clone();
        async move { cosmos.read(&r.customer_id, &r.id).await.is_ok() }
    };
    for n in first_page.iter().chain(second_page).filter(|n| **n != names[0]) {
        assert!(in_cosmos(n).await, "{n} restored before the stop");
    }

    // Run again: it goes on after the first page (the conflict is not looked at again).
    let resumed = archiver::ops::restore_all(&archiver, &options(false, false), patience, quiet).await.unwrap();
    assert!(resumed.resumed && resumed.complete, "{resumed:?}");
    assert_eq!((resumed.checked, resumed.restored, resumed.failed_count), (3, 3, 0), "{resumed:?}");
    // The conflict behind the saved position is not forgotten: the rollback is not done.
    assert_eq!((resumed.failed_before, resumed.left_in_archive), (1, 1), "{resumed:?}");
    assert!(resumed.request_units > 0.0 && resumed.records_per_second > 0.0, "{resumed:?}");
    assert!(f.blob.head(archiver::ops::RESTORE_STATE).await.is_err(), "the position goes once it is done");
    assert_eq!(listed(&f).await, [names[0].clone()], "only the conflict is left in the archive");
    for r in f.old.iter().filter(|r| r.id != conflict.id) {
        let doc = f.cosmos.read(&r.customer_id, &r.id).await.unwrap().doc;
        assert_eq!(doc.get::<String>("invoiceDate").unwrap(), r.invoice_date.to_string(), "{} restored", r.id);
    }

    // From the start again: idempotent, and the conflict is still refused, both versions kept.
    let again = archiver::ops::restore_all(&archiver, &options(false, true), patience, quiet).await.unwrap();
    assert_eq!((again.resumed, again.checked, again.restored, again.failed_count), (false, 1, 0, 1), "{again:?}");
    assert_eq!((again.failed_before, again.left_in_archive), (0, 1), "{again:?}");
    assert!(again.failed[0].1.contains("newer than the record in Cosmos"), "{again:?}");
    assert_eq!(f.hot(std::slice::from_ref(conflict)).await[0].2, ts - 3600, "Cosmos's version untouched");
}

#[tokio::test]
async fn a_restore_of_what_was_archived_after_a_day_takes_only_those_and_is_paced_by_the_budget() {
    let f = fixture().await;
    assert_eq!(f.plain(4).run(Utc::now(), false).await.archived, f.old.len() as u64);
    // Two copies were archived a month ago.
    let earlier = [&f.old[0], &f.old[3]];
    for r in earlier {
        let info = f.blob.head(&name(r)).await.unwrap();
        let mut meta = ArchiveMeta::from_metadata(&info.metadata).unwrap();
        meta.archived_at = Utc::now() - chrono::Duration::days(30);
        f.blob.set_metadata(&name(r), meta.to_metadata(), &info.etag).await.unwrap();
    }
    let mut archiver = f.plain(4);
    let budget = 40;
    archiver.settings.max_ru_per_second = budget;
    let options = RestoreAll { archived_after: Some(date_days_ago(1)), dry_run: false, restart: false, page: 500 };
    let report =
        archiver::ops::restore_all(&archiver, &options, Duration::ZERO, |_: &archiver::ops::RestoreAllReport| {})
            .await
            .unwrap();
    assert_eq!((report.checked, report.matched, report.restored), (7, 5, 5), "{report:?}");
    assert_eq!(report.left_in_archive, 0, "the two archived earlier are out of scope: {report:?}");
    for r in &f.old {
        let earlier = earlier.iter().any(|e| e.id == r.id);
        assert_eq!(f.in_cosmos(r).await, !earlier, "{}", r.id);
        assert_eq!(f.archived_etag(r).await.is_some(), earlier, "{}", r.id);
    }
    // New work waited for the budget, and the spending was paid before the end:
    // no faster than it allows, beyond one second's burst.
    let floor = (report.request_units - f64::from(budget)) / f64::from(budget);
    assert!(report.elapsed_seconds >= 0.9 * floor, "{report:?}");
    assert!(report.request_units > f64::from(budget) * 2.0, "the test spends enough to be paced: {report:?}");
}
