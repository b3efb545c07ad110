//! The archive protocol's decisions, apart from its I/O. Pure and table-tested.
//!
//! Each step of the protocol (docs/archive-protocol.md) reads, decides and
//! writes; the deciding is here, so a change of rule is a change of one
//! function and its table:
//! - [`eligibility`]: whether a record the aged-records query returned is
//!   archived, and under which blob name (the run and `archiver plan` share it);
//! - [`existing_copy`]: what an upload that found a copy in the way does about it;
//! - [`after_delete`]: what a conditional delete's answer means for the record
//!   and for the copy just verified.

use tiering::codec::{ArchiveMeta, CodecError};
use tiering::layout;
use tiering::record::{AgeValue, RecordError, validate_id};
use tiering::store::StoreError;

/// Whether a record is archived now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    /// Archive it under this blob name.
    Archive { blob: String },
    /// Its age value is missing, unusable, or not before the cutoff (checked
    /// again here: the query compared it the way Cosmos compares values).
    NotAged,
    /// Aged, but written within the quiet period (`ARCHIVE_QUIET_DAYS`): it
    /// stays hot while it may still be written.
    Quiet,
    /// Aged, but it can never be archived as it is (an id the read API refuses,
    /// no string partition-key value, a name over Azure's limit): it stays in
    /// Cosmos, is counted as `blocked` and named in the run's log.
    Blocked(String),
}

/// A record's partition key as the eligibility rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct PartitionValue<'a> {
    /// The partition-key property (`customerId`, `tenantId`, `id`).
    pub property: &'a str,
    /// Its value, when it is a string.
    pub value: Option<&'a str>,
}

/// What a record must be older than to be archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoff {
    /// Its age value must be before this (`ARCHIVE_AFTER_DAYS`).
    pub age: AgeValue,
    /// Its last write, `_ts`, must be before this (`ARCHIVE_QUIET_DAYS`).
    pub written_before: i64,
}

/// Decides whether a record with these properties, last written at `ts`, is
/// archived now.
pub fn eligibility(
    id: Option<&str>,
    partition: PartitionValue<'_>,
    age: Result<AgeValue, RecordError>,
    ts: Option<i64>,
    cutoff: &Cutoff,
) -> Eligibility {
    if !age.is_ok_and(|age| age < cutoff.age) {
        return Eligibility::NotAged;
    }
    if ts.is_some_and(|ts| ts >= cutoff.written_before) {
        return Eligibility::Quiet;
    }
    let Some(id) = id else { return Eligibility::Blocked("the document has no string id".into()) };
    let Some(pk) = partition.value else {
        return Eligibility::Blocked(format!(
            "record {id:?}: no string value of the partition key /{}",
            partition.property
        ));
    };
    // An id the read API would refuse (or that URL handling would rewrite, like
    // `..`) can be neither served from the archive nor deleted safely.
    if let Err(e) = validate_id("id", id).and_then(|()| validate_id(partition.property, pk)) {
        return Eligibility::Blocked(format!("record {id:?}: {e}"));
    }
    match layout::blob_name(pk, id) {
        Ok(blob) => Eligibility::Archive { blob },
        Err(e) => Eligibility::Blocked(format!("record {id:?}: {e}")),
    }
}

/// What to do about a copy found under the record's name by a create-only upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingCopy {
    /// The very version we hold: keep it, go on to verify and delete.
    SameVersion,
    /// A provably older version (smaller `ts`): replace exactly the copy inspected.
    ReplaceOlder,
    /// A newer version is archived already: our read is stale, and so is the
    /// version we would delete. Nothing is written or deleted.
    Newer,
    /// The same second with another version, or metadata that cannot be read:
    /// which one is newer cannot be told. Nothing is written or deleted.
    Conflict(ConflictKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    SameSecond,
    UnreadableMetadata,
}

pub fn existing_copy(existing: Result<&ArchiveMeta, &CodecError>, ours: &ArchiveMeta) -> ExistingCopy {
    match existing {
        Err(_) => ExistingCopy::Conflict(ConflictKind::UnreadableMetadata),
        Ok(m) if m.same_version(ours) => ExistingCopy::SameVersion,
        Ok(m) if m.ts < ours.ts => ExistingCopy::ReplaceOlder,
        Ok(m) if m.ts > ours.ts => ExistingCopy::Newer,
        Ok(_) => ExistingCopy::Conflict(ConflictKind::SameSecond),
    }
}

/// What the record's delete from Cosmos (`If-Match: <_etag>`) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Deleted: the record now lives in the archive only.
    Deleted,
    /// 412: Cosmos holds another version now; the record stays, newer than the copy.
    Changed,
    /// 404: already gone.
    DeletedByOthers,
    /// The delete may or may not have happened (timeout, 5xx, not authorised).
    Ambiguous,
    /// Refused without effect on this attempt (throttled past retries, another 4xx);
    /// an earlier attempt may still have been applied.
    Refused,
}

/// What becomes of the verified copy after the delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawCopy {
    /// It is the record's only or current copy: it stays.
    Keep,
    /// It is stale or would resurrect a deleted record: delete it at the verified ETag.
    Now,
    /// Only once a point read shows Cosmos still holds the record.
    IfCosmosHoldsIt,
}

/// Decides from the delete's answer; `last_is_authoritative` is true when every
/// earlier attempt of the SDK was refused without effect (429), so the last
/// answer alone says what happened.
pub fn after_delete(result: &Result<(), StoreError>, last_is_authoritative: bool) -> (Deletion, WithdrawCopy) {
    match result {
        Ok(()) => (Deletion::Deleted, WithdrawCopy::Keep),
        // Cosmos holds another version (412 implies the item exists): our copy is
        // stale and must not shadow it, nor resurrect it later.
        Err(StoreError::PreconditionFailed) => (Deletion::Changed, WithdrawCopy::Now),
        // Gone. When our one attempt met it gone, someone else deleted the record
        // (the application, its TTL): the copy must not bring it back. When an
        // earlier attempt of ours may have deleted it (an answer lost, the SDK sent
        // the delete again), the verified copy may be the only one left: it stays.
        Err(StoreError::NotFound) if last_is_authoritative => (Deletion::DeletedByOthers, WithdrawCopy::Now),
        Err(StoreError::NotFound) => (Deletion::DeletedByOthers, WithdrawCopy::Keep),
        Err(e) if e.is_outage() => (Deletion::Ambiguous, WithdrawCopy::Keep),
        Err(_) => (Deletion::Refused, WithdrawCopy::IfCosmosHoldsIt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tiering::codec::AgeStamp;
    use tiering::record::AgeField;

    #[test]
    fn eligibility_follows_the_age_then_the_names() {
        let cutoff = Cutoff { age: AgeValue::Text("2026-09-01".into()), written_before: 1_000 };
        let old = || Ok(AgeValue::Text("2026-01-31".into()));
        let bad_age = || Err(RecordError::BadAge { field: "invoiceDate".into(), reason: "missing".into() });
        type Row<'a> = (Option<&'a str>, Option<&'a str>, Result<AgeValue, RecordError>, &'a str);
        let table: [Row<'_>; 8] = [
            (Some("r1"), Some("c1"), old(), "archive v1/c1/r1.json.zst"),
            (Some("a b"), Some("c/1"), old(), "blocked: customerId must not contain '/'"),
            (Some(".."), Some("c1"), old(), "blocked: id must not be `.` or `..`"),
            (None, Some("c1"), old(), "blocked: the document has no string id"),
            (Some("r1"), None, old(), "blocked: record \"r1\": no string value of the partition key /customerId"),
            (Some("€"), Some("é"), old(), "archive v1/%C3%A9/%E2%82%AC.json.zst"),
            // Not aged comes first: a young or undated record is never "blocked".
            (Some(".."), Some("c1"), Ok(AgeValue::Text("2026-09-01".into())), "not aged"),
            (Some("r1"), Some("c1"), bad_age(), "not aged"),
        ];
        for (id, customer, age, want) in table {
            let partition = PartitionValue { property: "customerId", value: customer };
            let got = match eligibility(id, partition, age, Some(999), &cutoff) {
                Eligibility::Archive { blob } => format!("archive {blob}"),
                Eligibility::NotAged => "not aged".into(),
                Eligibility::Quiet => "quiet".into(),
                Eligibility::Blocked(why) => format!("blocked: {why}"),
            };
            assert!(got == want || (want.starts_with("blocked") && got.contains(&want[9..])), "{id:?}: {got}");
        }
        let long = "x".repeat(255);
        let customer = "€".repeat(200);
        let partition = PartitionValue { property: "tenantId", value: Some(&customer) };
        let got = eligibility(Some(&long), partition, old(), Some(999), &cutoff);
        assert!(matches!(got, Eligibility::Blocked(why) if why.contains("1024")), "a name over Azure's limit");
        // The quiet period: an aged record written at or after its bound stays,
        // even one that could never be archived (it is not "blocked" yet).
        let partition = PartitionValue { property: "customerId", value: Some("c1") };
        assert_eq!(eligibility(Some("r1"), partition, old(), Some(1_000), &cutoff), Eligibility::Quiet);
        assert_eq!(eligibility(Some(".."), partition, old(), Some(5_000), &cutoff), Eligibility::Quiet);
        let young = Ok(AgeValue::Text("2026-09-02".into()));
        assert_eq!(eligibility(Some("r1"), partition, young, Some(5_000), &cutoff), Eligibility::NotAged);
        assert!(matches!(eligibility(Some("r1"), partition, old(), Some(999), &cutoff), Eligibility::Archive { .. }));
    }

    fn meta(etag: &str, ts: i64, sha: char) -> ArchiveMeta {
        ArchiveMeta {
            sha256: sha.to_string().repeat(64),
            length: 10,
            etag: etag.into(),
            ts,
            stamp: AgeStamp::new(&AgeField::Ts, None),
            archived_at: chrono::DateTime::default(),
        }
    }

    #[test]
    fn an_existing_copy_is_kept_replaced_or_left_for_a_person() {
        let ours = meta("\"e2\"", 200, 'a');
        let unreadable = CodecError::Corrupt("metadata `sha256` is missing".into());
        let table = [
            (Ok(meta("\"e2\"", 200, 'a')), ExistingCopy::SameVersion),
            (Ok(meta("\"e1\"", 199, 'b')), ExistingCopy::ReplaceOlder),
            (Ok(meta("\"e3\"", 201, 'c')), ExistingCopy::Newer),
            (Ok(meta("\"e9\"", 200, 'd')), ExistingCopy::Conflict(ConflictKind::SameSecond)),
            // Same etag and second, another body: not the same version either.
            (Ok(meta("\"e2\"", 200, 'f')), ExistingCopy::Conflict(ConflictKind::SameSecond)),
            (Err(unreadable), ExistingCopy::Conflict(ConflictKind::UnreadableMetadata)),
        ];
        for (existing, want) in table {
            assert_eq!(existing_copy(existing.as_ref(), &ours), want, "{existing:?}");
        }
    }

    #[test]
    fn a_delete_withdraws_the_copy_only_when_it_is_certainly_stale() {
        let throttled = || Err(StoreError::Throttled { retry_after: Duration::from_secs(1) });
        type Row = (Result<(), StoreError>, bool, (Deletion, WithdrawCopy));
        let table: [Row; 9] = [
            (Ok(()), true, (Deletion::Deleted, WithdrawCopy::Keep)),
            (Ok(()), false, (Deletion::Deleted, WithdrawCopy::Keep)),
            (Err(StoreError::PreconditionFailed), false, (Deletion::Changed, WithdrawCopy::Now)),
            (Err(StoreError::NotFound), true, (Deletion::DeletedByOthers, WithdrawCopy::Now)),
            // The 404 may answer our own earlier, retried delete: the copy may be the only one.
            (Err(StoreError::NotFound), false, (Deletion::DeletedByOthers, WithdrawCopy::Keep)),
            (Err(StoreError::Unavailable("timeout".into())), true, (Deletion::Ambiguous, WithdrawCopy::Keep)),
            (Err(StoreError::from_status(503, None, "")), true, (Deletion::Ambiguous, WithdrawCopy::Keep)),
            (throttled(), true, (Deletion::Refused, WithdrawCopy::IfCosmosHoldsIt)),
            (Err(StoreError::from_status(400, None, "bad")), true, (Deletion::Refused, WithdrawCopy::IfCosmosHoldsIt)),
        ];
        for (result, authoritative, want) in table {
            assert_eq!(after_delete(&result, authoritative), want, "{result:?}, authoritative {authoritative}");
        }
    }
}
