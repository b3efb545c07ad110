//! Moving an archived record back into Cosmos: the reverse of archiving, with
//! the same care (docs/archive-protocol.md, "Moving a record back").
//!
//! Read the copy, check its integrity and that it is the record its name says;
//! create the record in Cosmos (create only: if Cosmos holds the id, nothing is
//! written); read it back; then delete the copy at the ETag that was verified.
//! At every instant the record is readable from at least one tier, and nothing
//! is ever overwritten. Afterwards the record is hot with a fresh `_ts`, so the
//! archiver's quiet period (`ARCHIVE_QUIET_DAYS`) keeps it hot for a while.
//!
//! The copy is leased (a blob lease of [`COPY_LEASE_SECONDS`]) from before it is
//! read until it is deleted, and deleted under the lease. So a move-back never
//! creates a record from a copy someone else has moved back and deleted since
//! it read it (which would bring back a record deleted in between, or erased by
//! `archiver forget`, whose delete fails on a leased copy), and it can run at any
//! time beside an archive run and beside other move-backs of the same record:
//! - two at once: the second waits for the first's lease, then finds the copy
//!   gone (the record is hot) and does nothing;
//! - during an archive run: the run only handles records Cosmos holds, and
//!   deletes them only at the `_etag` it read, so a record created here is
//!   never deleted by a run that read it before. The one moment that needs a
//!   wait is a run between its upload and its delete of the same version
//!   ([`MoveBackError::InFlight`]): the copy must then not be deleted (the run
//!   is about to delete the record from Cosmos), so this waits for the run to
//!   finish that record, and then moves it back;
//! - the age stamp of a copy can change under it (`restamp` after an age-field
//!   change rewrites metadata, hence the blob's ETag): a delete refused for that
//!   reason is retried at the new ETag when the copy still holds the same version.

use std::time::Duration;

use crate::archive::{Archive, StoredBlob};
use crate::codec::{self, ArchiveMeta, CodecError};
use crate::cosmos::CosmosStore;
use crate::layout;
use crate::record::RawDocument;
use crate::store::StoreError;

/// The lease a move-back holds on the copy (Azure's longest finite one). It is
/// renewed just before the create, and the create may take at most
/// [`CREATE_LIMIT`] of it, so the record can only be created while the copy is
/// still held: no other move-back or erasure can have consumed it meanwhile.
pub const COPY_LEASE_SECONDS: i32 = 60;
/// The longest a move-back's create may take (retries of a throttled request
/// included); well inside the renewed lease.
pub const CREATE_LIMIT: Duration = Duration::from_secs(30);

/// How often, and how long apart, a move-back looks again when an archive run
/// is between the upload and the delete of this very version, or another
/// move-back holds the copy's lease.
const IN_FLIGHT_CHECKS: u32 = 20;
const IN_FLIGHT_PAUSE: Duration = Duration::from_millis(250);
/// Deletes of the copy retried after its metadata changed (a re-stamp).
const DELETE_ATTEMPTS: u32 = 3;

/// What a move-back found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MovedBack {
    /// No archived copy: the record is hot already, or exists in neither tier.
    NotArchived,
    /// Created in Cosmos from its verified copy and read back; the copy deleted
    /// (`copy_deleted` false: its name holds another version by now, written by
    /// a run since, which stays). `archived_etag` is the copy's (what the
    /// archive served as the ETag), `etag` the record's in Cosmos now.
    Restored { copy_deleted: bool, archived_etag: String, etag: String },
    /// Cosmos already held a newer version (an earlier move-back, a write); the
    /// stale copy beside it is deleted (`false` when someone deleted it first).
    AlreadyHot { stale_copy_deleted: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum MoveBackError {
    /// A store could not do its part of `step`. Nothing was lost: when the record
    /// was created already, it is hot and its copy is still there, a stale copy
    /// until a second move-back (the write's retry), a DELETE through the reader
    /// or `archiver verify --shadowed --withdraw` removes it.
    #[error("{step}: {error}")]
    Store { step: &'static str, error: StoreError },
    /// The copy failed its integrity check (or is in a format not served): never written to Cosmos.
    #[error("the archived copy {name} cannot be moved back: {error}")]
    Corrupt { name: String, error: CodecError },
    /// The copy's body is another record (a bad manual upload): never written to Cosmos.
    #[error("the archived copy {name} holds another record ({found:?}); nothing moved back")]
    NotOurs { name: String, found: String },
    /// An archive run is between its upload and its delete of this same version,
    /// and did not finish within the wait; asking again soon succeeds.
    #[error(
        "another move-back or an archive run is moving this record right now; try again shortly, or run `archiver verify --shadowed` if it persists"
    )]
    InFlight,
    /// Cosmos holds a version older (by `_ts`) than the copy's: which one should
    /// live cannot be told; both are left as they are for a person to decide.
    #[error(
        "the archived copy {name} is newer than the record in Cosmos (or of the same second); both are left as they are"
    )]
    Conflict { name: String },
    /// The caller's fence (the run lease, for the commands) no longer holds.
    #[error("the run lease may lapse; {0}")]
    Fenced(&'static str),
}

fn store(step: &'static str) -> impl FnOnce(StoreError) -> MoveBackError {
    move |error| MoveBackError::Store { step, error }
}

/// The run lease, when the caller holds it: `archiver restore` does, the reader
/// does not (see the module docs).
pub type Lease<'a> = Option<&'a (dyn Fn() -> bool + Sync)>;

/// Moves the record `(partition_key, id)` back into Cosmos if it is archived.
///
/// With `lease`, its check is asked before each write, and a copy of the very
/// version Cosmos holds is deleted (no run can be between its upload and its
/// delete while the lease is held: such a copy is what an interrupted run
/// left). Without, that case waits for the run, as the module docs say.
pub async fn move_back(
    cosmos: &CosmosStore,
    archive: &dyn Archive,
    partition_key: &str,
    id: &str,
    lease: Lease<'_>,
) -> Result<MovedBack, MoveBackError> {
    // A name the layout refuses can hold no copy: the archiver never writes one.
    let Ok(name) = layout::blob_name(partition_key, id) else { return Ok(MovedBack::NotArchived) };
    let name = name.as_str();
    for _ in 0..IN_FLIGHT_CHECKS {
        let moved = under_copy_lease(archive, name, |hold| async move {
            let stored = match archive.get(name).await {
                Ok(stored) => stored,
                Err(StoreError::NotFound) => return Ok(MovedBack::NotArchived),
                Err(e) => return Err(store("reading the archived copy")(e)),
            };
            let (doc, meta) = checked_copy(cosmos, name, partition_key, id, &stored)?;
            move_back_copy(cosmos, archive, partition_key, id, name, &stored, &doc, &meta, lease, &hold).await
        })
        .await?;
        match moved {
            Leased::Absent => return Ok(MovedBack::NotArchived),
            Leased::Busy | Leased::Done(Err(MoveBackError::InFlight)) => tokio::time::sleep(IN_FLIGHT_PAUSE).await,
            Leased::Done(other) => return other,
        }
    }
    Err(MoveBackError::InFlight)
}

/// What working under a copy's lease came to.
#[derive(Debug)]
pub enum Leased<T> {
    /// The work ran while the copy was leased (the lease is released after it).
    Done(T),
    /// No copy (any more): nothing ran.
    Absent,
    /// Another move-back holds the copy: nothing ran.
    Busy,
}

/// Runs `work` while holding the copy `name`'s lease, given the lease id, and
/// releases the lease after it unless the copy is gone with it (best effort: a
/// lease not released lapses after [`COPY_LEASE_SECONDS`]).
pub async fn under_copy_lease<T, Fut>(
    archive: &dyn Archive,
    name: &str,
    work: impl FnOnce(String) -> Fut,
) -> Result<Leased<T>, MoveBackError>
where
    Fut: std::future::Future<Output = T>,
{
    let hold = uuid::Uuid::new_v4().to_string();
    match archive.acquire_lease(name, COPY_LEASE_SECONDS, &hold).await {
        Ok(true) => {}
        Ok(false) => return Ok(Leased::Busy),
        Err(StoreError::NotFound) => return Ok(Leased::Absent),
        Err(e) => return Err(store("leasing the archived copy")(e)),
    }
    let done = work(hold.clone()).await;
    if let Err(e) = archive.release_lease(name, &hold).await
        && !matches!(e, StoreError::NotFound)
    {
        tracing::debug!(name, error = %e, "the copy's lease lapses on its own");
    }
    Ok(Leased::Done(done))
}

/// The copy's document and metadata, once it passed its integrity check and
/// proved to be the record its name says.
pub fn checked_copy(
    cosmos: &CosmosStore,
    name: &str,
    partition_key: &str,
    id: &str,
    stored: &StoredBlob,
) -> Result<(RawDocument, ArchiveMeta), MoveBackError> {
    let corrupt = |error| MoveBackError::Corrupt { name: name.to_owned(), error };
    let meta = ArchiveMeta::from_metadata(&stored.info.metadata).map_err(corrupt)?;
    let body = codec::decode_verified(&stored.body, &meta).map_err(corrupt)?;
    let doc = RawDocument::parse(body)
        .map_err(|e| corrupt(CodecError::Corrupt(format!("the copy is not a JSON object: {e}"))))?;
    let found = (doc.id().ok(), doc.get::<String>(cosmos.partition_key().property()));
    if found != (Some(id.to_owned()), Some(partition_key.to_owned())) {
        return Err(MoveBackError::NotOurs { name: name.to_owned(), found: format!("{found:?}") });
    }
    Ok((doc, meta))
}

/// [`move_back`] of a copy already leased under `hold` ([`under_copy_lease`]), read
/// and checked ([`checked_copy`]): the commands that look at a copy before they
/// decide (a restore by age) use it. [`MoveBackError::InFlight`] is returned at
/// once, without waiting. (`lease` as for [`move_back`].)
#[allow(clippy::too_many_arguments)]
pub async fn move_back_copy(
    cosmos: &CosmosStore,
    archive: &dyn Archive,
    partition_key: &str,
    id: &str,
    name: &str,
    stored: &StoredBlob,
    doc: &RawDocument,
    meta: &ArchiveMeta,
    lease: Lease<'_>,
    hold: &str,
) -> Result<MovedBack, MoveBackError> {
    let holds = || lease.is_none_or(|holds| holds());
    if !holds() {
        return Err(MoveBackError::Fenced("nothing moved back"));
    }
    archive.renew_lease(name, hold).await.map_err(store("renewing the archived copy's lease"))?;
    // The document as it was, but for the system properties Cosmos assigns anew.
    let created =
        tokio::time::timeout(CREATE_LIMIT, cosmos.create_raw(partition_key, id, &doc.without_system_properties()))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("no answer within {CREATE_LIMIT:?}"))));
    match created {
        Ok(()) => {
            // Read back: the record must be there before its only other copy goes.
            // Gone already means a concurrent delete of the record (a write-through
            // DELETE that found it hot): the copy must go too, or it would resurrect it.
            let etag = match cosmos.read(partition_key, id).await {
                Ok(item) => item.doc.etag().unwrap_or_default(),
                Err(StoreError::NotFound) => String::new(),
                Err(e) => return Err(store("reading the moved-back record")(e)),
            };
            let copy_deleted = delete_copy(archive, name, &stored.info.etag, meta, &holds, hold).await?;
            Ok(MovedBack::Restored { copy_deleted, archived_etag: meta.etag.clone(), etag })
        }
        Err(StoreError::AlreadyExists) => {
            let hot = match cosmos.read(partition_key, id).await {
                Ok(item) => item.doc,
                // Deleted between the create and the read: look again from the start.
                Err(StoreError::NotFound) => return Err(MoveBackError::InFlight),
                Err(e) => return Err(store("reading the record in Cosmos")(e)),
            };
            let (etag, ts) = match (hot.etag(), hot.ts()) {
                (Ok(etag), Ok(ts)) => (etag, ts),
                _ => return Err(store("reading the record in Cosmos")(StoreError::Other("no _etag or _ts".into()))),
            };
            match hot_version(&etag, ts, meta, lease.is_some()) {
                HotVersion::SameAsCopy if lease.is_none() => Err(MoveBackError::InFlight),
                HotVersion::SameAsCopy | HotVersion::Newer => {
                    let deleted = delete_copy(archive, name, &stored.info.etag, meta, &holds, hold).await?;
                    Ok(MovedBack::AlreadyHot { stale_copy_deleted: deleted })
                }
                HotVersion::Older => Err(MoveBackError::Conflict { name: name.to_owned() }),
            }
        }
        Err(e) => Err(store("creating the record in Cosmos")(e)),
    }
}

/// How the version Cosmos holds now compares with the copy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotVersion {
    /// The very version the copy holds: an archive run is between its upload and its delete.
    SameAsCopy,
    /// Written after the copy's version (a later second): the copy is stale.
    Newer,
    /// Older by `_ts` than the copy, or another version of the same second:
    /// which is newer cannot be told for sure (a read from a lagging replica
    /// could return an older version), so both are left for a person.
    Older,
}

/// Decides from the current Cosmos version: another `_etag` from a later second
/// was written after the copy's version. Another version of the same second was
/// too (one item's versions form one history), unless the read came from a
/// lagging replica while a run is between its upload and its delete: so it
/// counts as newer only for a caller holding the run lease (`exclusive`, no run
/// in flight). The quiet period keeps archived versions older than any write a
/// move-back meets, so the same second only arises with `ARCHIVE_QUIET_DAYS=0`.
pub fn hot_version(etag: &str, ts: i64, copy: &ArchiveMeta, exclusive: bool) -> HotVersion {
    if etag == copy.etag {
        HotVersion::SameAsCopy
    } else if ts > copy.ts || (ts == copy.ts && exclusive) {
        HotVersion::Newer
    } else {
        HotVersion::Older
    }
}

/// Deletes the copy at `etag`, or at a newer ETag of the same version (its
/// metadata re-stamped meanwhile). `Ok(false)` when it is gone already, or when
/// the name now holds another version (written by a run since: the current
/// copy, which stays).
async fn delete_copy(
    archive: &dyn Archive,
    name: &str,
    etag: &str,
    meta: &ArchiveMeta,
    holds: &(dyn Fn() -> bool + Sync),
    hold: &str,
) -> Result<bool, MoveBackError> {
    let mut etag = etag.to_owned();
    for _ in 0..DELETE_ATTEMPTS {
        if !holds() {
            return Err(MoveBackError::Fenced("the record is hot again, but its archived copy stays"));
        }
        match archive.delete_leased(name, &etag, hold).await {
            Ok(()) => {
                // Its list index entry names nothing now (best effort: readers skip it anyway).
                crate::index::remove_for_copy(archive, name, meta).await;
                return Ok(true);
            }
            Err(StoreError::NotFound) => return Ok(false),
            Err(StoreError::PreconditionFailed) => match archive.head(name).await {
                Ok(info) => match ArchiveMeta::from_metadata(&info.metadata) {
                    Ok(now) if now.same_version(meta) => etag = info.etag,
                    _ => return Ok(false),
                },
                Err(StoreError::NotFound) => return Ok(false),
                Err(e) => return Err(store("deleting the archived copy")(e)),
            },
            Err(e) => return Err(store("deleting the archived copy")(e)),
        }
    }
    Err(store("deleting the archived copy")(StoreError::PreconditionFailed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::AgeStamp;
    use crate::record::AgeField;

    #[test]
    fn the_current_version_is_newer_unless_it_is_the_copy_itself() {
        let copy = ArchiveMeta {
            sha256: String::new(),
            length: 0,
            etag: "\"a\"".into(),
            ts: 100,
            stamp: AgeStamp::new(&AgeField::Ts, None),
            archived_at: chrono::Utc::now(),
        };
        let cases = [
            ("\"a\"", 100, false, HotVersion::SameAsCopy),
            // Same second, another version: newer only when no run can be in flight.
            ("\"b\"", 100, false, HotVersion::Older),
            ("\"b\"", 100, true, HotVersion::Newer),
            ("\"b\"", 101, false, HotVersion::Newer),
            ("\"b\"", 99, true, HotVersion::Older),
        ];
        for (etag, ts, exclusive, expected) in cases {
            assert_eq!(hot_version(etag, ts, &copy, exclusive), expected, "{etag} at {ts}, {exclusive}");
        }
    }
}
