//! The list index: one empty blob per archived copy, named so that listing one
//! partition's index prefix returns its copies in the list API's order (newest
//! first by the age field, then id), a page at a time from a listing marker.
//! A list page then reads in proportion to the page, not to the partition's
//! archive (docs/read-api.md, "How lists are served"). Pure: names and metadata.
//!
//! `x1/<partition key>/<age field>/<age key>/<id key>!`, where
//! - the partition key and the field are percent-encoded as in [`crate::layout`];
//! - the age key sorts newest first: for `_ts`, 20 digits of the bit-flipped
//!   seconds; for a date field, each byte of the ISO text as two hex digits of
//!   its complement, then `~` (which sorts after every hex digit, so a longer
//!   text, which is later, sorts first);
//! - the id key sorts as the id does (byte order): bytes up to `%` are written
//!   `%XX` and bytes from `~` up `~XX` (both sort where the byte would), the rest
//!   as they are; `!`, which sorts before every written byte, ends it.
//!
//! Entries carry the copy's length and version in their metadata. An entry may
//! outlive its copy (a copy moved back, forgotten, expired, or re-archived under
//! another age value leaves it until it is cleaned up): readers check each entry
//! against the copy it names and skip those that no longer match. Names are
//! pure; the helpers at the end write, remove and check entries in an archive.

use std::collections::HashMap;

use bytes::Bytes;
use tracing::warn;

use crate::archive::{Archive, PutCondition};
use crate::codec::{AgeLookup, ArchiveMeta};
use crate::layout::{self, LayoutError, MAX_BLOB_NAME, encode_segment};
use crate::record::{AgeField, AgeValue};
use crate::store::StoreError;

/// The index version; part of every entry name.
pub const INDEX_PREFIX: &str = "x1/";
/// The marker blob: metadata `field` names the age field whose index holds
/// every archived copy (the archiver writes it once its backfill is done).
pub const INDEX_MARKER: &str = "state/index";
pub const K_MARKER_FIELD: &str = "field";
const K_LENGTH: &str = "length";
const K_ETAG: &str = "etag";
const K_TS: &str = "ts";

/// Where a partition's entries under `field` lie (ends with `/`).
pub fn partition_prefix(partition_key: &str, field: &AgeField) -> String {
    format!("{INDEX_PREFIX}{}/{}/", encode_segment(partition_key), encode_segment(field.name()))
}

/// The entry of the copy of record `id` at `age`.
pub fn entry_name(partition_key: &str, field: &AgeField, age: &AgeValue, id: &str) -> Result<String, LayoutError> {
    let name = format!("{}{}/{}!", partition_prefix(partition_key, field), age_key(age), id_key(id));
    if name.len() > MAX_BLOB_NAME {
        return Err(LayoutError::TooLong(name.len()));
    }
    Ok(name)
}

/// `(age, id)` from an entry name under `prefix` (a [`partition_prefix`] for `field`).
pub fn parse_entry_name(name: &str, prefix: &str, field: &AgeField) -> Option<(AgeValue, String)> {
    let rest = name.strip_prefix(prefix)?.strip_suffix('!')?;
    let (age, id) = rest.split_once('/')?;
    Some((parse_age_key(age, field)?, parse_id_key(id)?))
}

fn age_key(age: &AgeValue) -> String {
    match age {
        // Order-preserving to u64, then flipped: larger seconds sort first.
        AgeValue::Seconds(s) => format!("{:020}", !((*s as u64) ^ (1 << 63))),
        AgeValue::Text(t) => {
            let mut key: String = t.bytes().map(|b| format!("{:02x}", 255 - b)).collect();
            key.push('~');
            key
        }
    }
}

fn parse_age_key(key: &str, field: &AgeField) -> Option<AgeValue> {
    match field {
        AgeField::Ts => {
            let flipped: u64 = key.parse().ok().filter(|_| key.len() == 20)?;
            Some(AgeValue::Seconds(((!flipped) ^ (1 << 63)) as i64))
        }
        AgeField::Iso(_) => {
            let hex = key.strip_suffix('~')?;
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).map(|b| 255 - b))
                .collect();
            String::from_utf8(bytes?).ok().map(AgeValue::Text)
        }
    }
}

fn id_key(id: &str) -> String {
    let mut key = String::with_capacity(id.len());
    for b in id.bytes() {
        match b {
            0..=b'%' => key.push_str(&format!("%{b:02X}")),
            b'~'..=255 => key.push_str(&format!("~{b:02X}")),
            _ => key.push(b as char),
        }
    }
    key
}

fn parse_id_key(key: &str) -> Option<String> {
    let raw = key.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' | b'~' => {
                let b = u8::from_str_radix(key.get(i + 1..i + 3)?, 16).ok()?;
                bytes.push(b);
                i += 3;
            }
            b => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    let id = String::from_utf8(bytes).ok()?;
    // Only the canonical key: each id has one entry name.
    (id_key(&id) == key).then_some(id)
}

/// What an entry's metadata says of the copy it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// The record's uncompressed length (a list page's byte bound).
    pub length: u64,
    /// The version indexed: the record's `_etag` and `_ts`.
    pub etag: String,
    pub ts: i64,
}

impl EntryMeta {
    pub fn to_metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            (K_LENGTH.to_owned(), self.length.to_string()),
            (K_ETAG.to_owned(), self.etag.clone()),
            (K_TS.to_owned(), self.ts.to_string()),
        ])
    }

    pub fn from_metadata(md: &HashMap<String, String>) -> Option<Self> {
        let find = |k: &str| md.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        Some(Self {
            length: find(K_LENGTH)?.parse().ok()?,
            etag: find(K_ETAG)?.to_owned(),
            ts: find(K_TS)?.parse().ok()?,
        })
    }
}

// The few helpers that talk to the archive (the rest of this module is pure).

/// The entry of a copy of `(partition key, id)` with `meta`, under `field`:
/// `None` when its age is not known from the metadata (no value: never listed;
/// another field's stamp: indexed once re-stamped).
pub fn entry_of(partition_key: &str, id: &str, meta: &ArchiveMeta, field: &AgeField) -> Option<String> {
    match meta.age_under(field) {
        AgeLookup::Known(age) => entry_name(partition_key, field, &age, id).ok(),
        AgeLookup::Missing | AgeLookup::NeedsBody => None,
    }
}

/// Writes the entry of a copy (an entry already there for the same position is kept).
pub async fn write(archive: &dyn Archive, name: &str, meta: &ArchiveMeta) -> Result<(), StoreError> {
    let md = EntryMeta { length: meta.length, etag: meta.etag.clone(), ts: meta.ts }.to_metadata();
    match archive.put(name, Bytes::new(), md, PutCondition::Absent).await {
        Ok(_) | Err(StoreError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes an entry, if it is there. Best effort: a leftover entry costs a
/// reader one skipped lookup, never a wrong answer.
pub async fn remove(archive: &dyn Archive, name: &str) {
    let result = match archive.head(name).await {
        Ok(info) => archive.delete_if_match(name, &info.etag).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) | Err(StoreError::NotFound | StoreError::PreconditionFailed) => {}
        Err(e) => warn!(entry = %name, error = %e, "a list index entry could not be removed; readers skip it"),
    }
}

/// Removes the entries of the copy at `blob` with `meta` (best effort): under
/// the field its age was stamped with (the current one, once the index is in
/// use), and under `_ts`, whose value every copy carries (a copy stamped under
/// a date field keeps that stamp after `_ts` becomes the age field).
pub async fn remove_for_copy(archive: &dyn Archive, blob: &str, meta: &ArchiveMeta) {
    let Ok((pk, id)) = layout::parse_blob_name(blob) else { return };
    let mut fields = vec![AgeField::Ts];
    if let Ok(stamped) = AgeField::parse(&meta.stamp.field)
        && stamped != AgeField::Ts
    {
        fields.push(stamped);
    }
    for field in fields {
        if let Some(entry) = entry_of(&pk, &id, meta, &field) {
            remove(archive, &entry).await;
        }
    }
}

/// True when the index holds an entry for every copy under `field`.
pub async fn complete_for(archive: &dyn Archive, field: &AgeField) -> Result<bool, StoreError> {
    match archive.head(INDEX_MARKER).await {
        Ok(info) => Ok(info.metadata.iter().any(|(k, v)| k.eq_ignore_ascii_case(K_MARKER_FIELD) && v == field.name())),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::listing_order;
    use proptest::prelude::*;

    const ISO: fn() -> AgeField = || AgeField::Iso("invoiceDate".into());

    #[test]
    fn entries_name_their_position_and_parse_back() {
        let prefix = partition_prefix("cust b+ü", &ISO());
        assert_eq!(prefix, "x1/cust%20b%2B%C3%BC/invoiceDate/");
        for (age, id) in [
            (AgeValue::Text("2024-03-01".into()), "inv 1"),
            (AgeValue::Text("2024-03-01T10:00:00Z".into()), "ü-%2F+.x"),
            (AgeValue::Text("".into()), "..."),
        ] {
            let name = entry_name("cust b+ü", &ISO(), &age, id).unwrap();
            assert!(name.is_ascii() && name.ends_with('!'), "{name}");
            assert_eq!(parse_entry_name(&name, &prefix, &ISO()), Some((age, id.to_owned())));
        }
        let ts = partition_prefix("c", &AgeField::Ts);
        for s in [0, 1, 1_700_000_000, -5, i64::MAX, i64::MIN] {
            let name = entry_name("c", &AgeField::Ts, &AgeValue::Seconds(s), "r").unwrap();
            assert_eq!(parse_entry_name(&name, &ts, &AgeField::Ts), Some((AgeValue::Seconds(s), "r".into())));
        }
        assert_eq!(parse_entry_name("x1/c/_ts/1/r!", &ts, &AgeField::Ts), None, "not 20 digits");
        assert_eq!(parse_entry_name(&format!("{prefix}zz~/r!"), &prefix, &ISO()), None);
        assert_eq!(parse_id_key("a%41"), None, "A is written as itself: one name per id");
        let long = "ü".repeat(200);
        assert!(matches!(
            entry_name(&long, &ISO(), &AgeValue::Text("2024".into()), &long),
            Err(LayoutError::TooLong(_))
        ));
    }

    #[test]
    fn entry_metadata_round_trips() {
        let meta = EntryMeta { length: 300_000, etag: "\"0a00\"".into(), ts: 1_700_000_000 };
        assert_eq!(EntryMeta::from_metadata(&meta.to_metadata()), Some(meta));
        assert_eq!(EntryMeta::from_metadata(&HashMap::new()), None);
    }

    fn ages() -> impl Strategy<Value = AgeValue> {
        prop_oneof![any::<i64>().prop_map(AgeValue::Seconds), "[0-9T:Z.+-]{0,24}".prop_map(AgeValue::Text),]
    }

    proptest! {
        /// Name order is listing order, for any ages of one kind and any ids.
        #[test]
        fn name_order_is_listing_order(a in ages(), b in ages(), x in "\\PC{0,12}", y in "\\PC{0,12}") {
            let field = match a { AgeValue::Seconds(_) => AgeField::Ts, AgeValue::Text(_) => ISO() };
            let b = match (&a, b) {
                (AgeValue::Seconds(_), AgeValue::Text(t)) => AgeValue::Seconds(t.len() as i64),
                (AgeValue::Text(_), AgeValue::Seconds(s)) => AgeValue::Text(s.to_string()),
                (_, b) => b,
            };
            let (na, nb) = (entry_name("c", &field, &a, &x).unwrap(), entry_name("c", &field, &b, &y).unwrap());
            prop_assert_eq!(na.as_bytes().cmp(nb.as_bytes()), listing_order((&a, &x), (&b, &y)));
        }
    }
}
