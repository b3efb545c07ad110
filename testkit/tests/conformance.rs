//! The in-memory archive answers every call of the protocol as Blob Storage
//! does: one table of calls, run against Azurite (started by `./scripts/test.sh`)
//! and against `MemoryArchive`, must give the same outcome at every step. Unit
//! tests that rely on the in-memory archive are only as good as this agreement.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use bytes::Bytes;
use futures::TryStreamExt;
use testkit::emulator::{TEST_TRANSPORT, emulator_settings};
use testkit::memory::MemoryArchive;
use tiering::archive::{Archive, BlobArchive, PutCondition};
use tiering::record::AgeField;
use tiering::store::StoreError;

fn kind<T>(result: &Result<T, StoreError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(StoreError::NotFound) => "not found".into(),
        Err(StoreError::AlreadyExists) => "already exists (409)".into(),
        Err(StoreError::PreconditionFailed) => "precondition failed (412)".into(),
        Err(other) => format!("other: {other}"),
    }
}

fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Runs the table on one store; returns each step's name and outcome.
async fn table(archive: &dyn Archive) -> Vec<(&'static str, String)> {
    let mut log = Vec::new();
    let (a, b) = ("v1/c/a.json.zst", "v1/c/b.json.zst");
    let body = Bytes::from_static(b"zstd bytes");
    macro_rules! step {
        ($name:literal, $call:expr) => {{
            let result = $call;
            log.push(($name, kind(&result)));
            result
        }};
    }
    step!("head of a missing blob", archive.head(a).await).ok();
    step!("get of a missing blob", archive.get(a).await).ok();
    step!(
        "replace a missing blob",
        archive.put(a, body.clone(), md(&[]), PutCondition::Matches("\"0x1\"".into())).await
    )
    .ok();
    step!("delete a missing blob", archive.delete_if_match(a, "\"0x1\"").await).ok();
    step!("set metadata of a missing blob", archive.set_metadata(a, md(&[]), "\"0x1\"").await).ok();
    step!("renew a lease on a missing blob", archive.renew_lease(a, "00000000-0000-0000-0000-000000000001").await).ok();
    step!("lease a missing blob", archive.acquire_lease(a, 60, "00000000-0000-0000-0000-000000000001").await).ok();
    let first = step!("create", archive.put(a, body.clone(), md(&[("k", "1")]), PutCondition::Absent).await).unwrap();
    step!("create again", archive.put(a, body.clone(), md(&[]), PutCondition::Absent).await).ok();
    step!(
        "replace at a stale etag",
        archive.put(a, body.clone(), md(&[]), PutCondition::Matches("\"0x1\"".into())).await
    )
    .ok();
    let second = step!(
        "replace at the etag",
        archive.put(a, body.clone(), md(&[("k", "2")]), PutCondition::Matches(first.clone())).await
    )
    .unwrap();
    log.push(("a new etag on each write", (first != second).to_string()));
    step!("set metadata at a stale etag", archive.set_metadata(a, md(&[("k", "3")]), &first).await).ok();
    let third = step!("set metadata at the etag", archive.set_metadata(a, md(&[("k", "3")]), &second).await).unwrap();
    let info = archive.head(a).await.unwrap();
    log.push((
        "head shows the new etag and metadata",
        (info.etag == third && info.metadata.get("k").map(String::as_str) == Some("3")).to_string(),
    ));
    let got = archive.get(a).await.unwrap();
    log.push(("get returns the body at the etag", (got.body == body && got.info.etag == third).to_string()));
    step!("delete at a stale etag", archive.delete_if_match(a, &second).await).ok();

    let (holder, other) = ("00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b");
    log.push(("lease", format!("{:?}", archive.acquire_lease(a, 60, holder).await.map_err(|e| e.to_string()))));
    log.push((
        "lease by another",
        format!("{:?}", archive.acquire_lease(a, 60, other).await.map_err(|e| e.to_string())),
    ));
    log.push((
        "lease again by the holder",
        format!("{:?}", archive.acquire_lease(a, 60, holder).await.map_err(|e| e.to_string())),
    ));
    step!("create over a leased blob", archive.put(a, body.clone(), md(&[]), PutCondition::Absent).await).ok();
    step!("replace a leased blob", archive.put(a, body.clone(), md(&[]), PutCondition::Matches(third.clone())).await)
        .ok();
    step!("set metadata on a leased blob", archive.set_metadata(a, md(&[]), &third).await).ok();
    step!("delete a leased blob", archive.delete_if_match(a, &third).await).ok();
    step!("renew by another", archive.renew_lease(a, other).await).ok();
    step!("renew by the holder", archive.renew_lease(a, holder).await).ok();
    step!("release by another", archive.release_lease(a, other).await).ok();
    step!("release by the holder", archive.release_lease(a, holder).await).ok();
    step!("delete once released", archive.delete_if_match(a, &third).await).ok();
    step!("head once deleted", archive.head(a).await).ok();

    archive.put(b, body.clone(), md(&[("n", "b")]), PutCondition::Absent).await.unwrap();
    archive.put(a, body.clone(), md(&[("n", "a")]), PutCondition::Absent).await.unwrap();
    archive.put("v1/d/a.json.zst", body.clone(), md(&[]), PutCondition::Absent).await.unwrap();
    let listed: Vec<(String, Option<String>)> =
        archive.list("v1/c/").map_ok(|i| (i.name, i.metadata.get("n").cloned())).try_collect().await.unwrap();
    log.push(("list a prefix, in name order, with metadata", format!("{listed:?}")));
    let sizes: Vec<u64> = archive.list("v1/c/").map_ok(|i| i.size).try_collect().await.unwrap();
    log.push(("list gives each blob's stored size", format!("{sizes:?}")));

    // Pages from markers: a marker names a position, so blobs written after it
    // are listed and blobs gone are not.
    let names = |page: &[tiering::archive::BlobInfo]| page.iter().map(|b| b.name.clone()).collect::<Vec<_>>();
    archive.put("v1/c/c.json.zst", body.clone(), md(&[]), PutCondition::Absent).await.unwrap();
    let (page, next) = archive.list_page("v1/c/", None, 1).await.unwrap();
    log.push(("a first page of one", format!("{:?} more {}", names(&page), next.is_some())));
    let (page, next) = archive.list_page("v1/c/", next.as_deref(), 1).await.unwrap();
    log.push(("the page after its marker", format!("{:?} more {}", names(&page), next.is_some())));
    archive.put("v1/c/bb.json.zst", body.clone(), md(&[]), PutCondition::Absent).await.unwrap();
    archive.put("v1/c/0.json.zst", body.clone(), md(&[]), PutCondition::Absent).await.unwrap();
    let (page, last) = archive.list_page("v1/c/", next.as_deref(), 10).await.unwrap();
    log.push((
        "written after the marker: listed; before it: not",
        format!("{:?} more {}", names(&page), last.is_some()),
    ));
    log
}

#[tokio::test]
async fn the_in_memory_archive_answers_as_blob_storage_does() {
    let settings = emulator_settings(AgeField::Ts);
    let azurite = BlobArchive::new(&settings, TEST_TRANSPORT).unwrap();
    azurite.ensure_container().await.unwrap();
    let real = table(&azurite).await;
    let memory = table(&MemoryArchive::new()).await;
    let mut differences = Vec::new();
    for ((step, want), (_, got)) in real.iter().zip(&memory) {
        if want != got {
            differences.push(format!("{step}: Azurite says {want}, the in-memory archive {got}"));
        }
    }
    assert_eq!(real.len(), memory.len());
    assert!(differences.is_empty(), "{}\n\nAzurite: {real:#?}", differences.join("\n"));
}
