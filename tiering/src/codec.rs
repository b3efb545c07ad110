//! The archived form of a record: zstd-compressed body plus metadata that proves it intact. Pure.
//!
//! The body is the whole document exactly as Cosmos returned it, system
//! properties included, bytes and key order kept (format 2). What a consumer is
//! served is derived from it when serving ([`crate::contract`]), so the contract
//! can change without re-archiving and a restore is exact. The metadata carries
//! the version (`_etag`, `_ts`, also inside the body) so that a revalidation and
//! a listing need no download, a SHA-256 and length of the body for
//! verification, and an *age stamp*: the record's age value under the age field
//! in force when it was stamped, so listings can order archived records without
//! downloading them.
//!
//! Integrity is the body's hash and length plus the version (`etag`, `ts`). The age
//! stamp is not: `ARCHIVE_AGE_FIELD` may change after records were archived, and a
//! stamp taken under another field is simply not used (see [`ArchiveMeta::age_under`]);
//! the archiver re-stamps such copies in the background (docs/operations.md).

use std::collections::HashMap;
use std::io::Read;

use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::record::{AgeField, AgeValue};

/// Version of the archived format; readers refuse what they do not know. Format
/// 1 held the body with the system properties stripped; format 2 holds the whole
/// document. Nothing was ever deployed in format 1, so there is no migration.
pub const FORMAT_VERSION: &str = "2";
/// zstd's default level: a good ratio on JSON at a low CPU cost per record.
pub const ZSTD_LEVEL: i32 = 3;
/// Cosmos items are at most 2 MB; a body claiming more is not one of ours.
pub const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;
/// The largest stored (compressed) blob a reader downloads: zstd never grows a
/// 2 MB body by more than a few kilobytes, so anything larger is not one of ours.
pub const MAX_STORED_BYTES: u64 = MAX_BODY_BYTES + 64 * 1024;

const K_FORMAT: &str = "format";
const K_SHA256: &str = "sha256";
const K_LENGTH: &str = "length";
const K_ETAG: &str = "etag";
const K_TS: &str = "ts";
const K_AGE_FIELD: &str = "agefield";
const K_AGE: &str = "age";
const K_ARCHIVED_AT: &str = "archivedat";

/// Metadata values travel as HTTP headers: escape what a header cannot carry.
const STAMP_ESCAPED: &AsciiSet = &CONTROLS.add(b'%');

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("archived copy is corrupt: {0}")]
    Corrupt(String),
    /// A copy written in another archive format: never served as if it were this one.
    #[error("archived copy is in archive format `{0}`; this version reads format {FORMAT_VERSION} only")]
    UnsupportedFormat(String),
}

/// A record's age value under one age field, recorded when it was archived or re-stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeStamp {
    /// The age field the value was read under (`_ts` or a document property name).
    pub field: String,
    /// The value in its metadata text form; `None` when the record has no value there.
    pub value: Option<String>,
}

impl AgeStamp {
    pub fn new(field: &AgeField, value: Option<&AgeValue>) -> Self {
        Self { field: field.name().to_owned(), value: value.map(AgeValue::to_metadata) }
    }
}

/// What the metadata alone says about a record's age under a given field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgeLookup {
    /// The value, known without the body.
    Known(AgeValue),
    /// The stamp says the record has no usable value under this field.
    Missing,
    /// The stamp was taken under another field: only the body can tell.
    NeedsBody,
}

/// What travels with an archived body as blob metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveMeta {
    /// Hex SHA-256 of the uncompressed body (the whole document).
    pub sha256: String,
    /// Length of the uncompressed body in bytes.
    pub length: u64,
    /// The document's `_etag` when it was archived, quotes included.
    pub etag: String,
    /// The document's `_ts` when it was archived.
    pub ts: i64,
    pub stamp: AgeStamp,
    pub archived_at: DateTime<Utc>,
}

impl ArchiveMeta {
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut md = HashMap::from([
            (K_FORMAT.into(), FORMAT_VERSION.into()),
            (K_SHA256.into(), self.sha256.clone()),
            (K_LENGTH.into(), self.length.to_string()),
            (K_ETAG.into(), self.etag.clone()),
            (K_TS.into(), self.ts.to_string()),
            (K_AGE_FIELD.into(), self.stamp.field.clone()),
            (K_ARCHIVED_AT.into(), self.archived_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        ]);
        if let Some(value) = &self.stamp.value {
            md.insert(K_AGE.into(), utf8_percent_encode(value, STAMP_ESCAPED).to_string());
        }
        md
    }

    /// Reads metadata back; keys are matched case-insensitively because HTTP headers are.
    ///
    /// Fails only on what integrity needs (format, hash, length, version); the age
    /// stamp never makes a copy unreadable.
    pub fn from_metadata(md: &HashMap<String, String>) -> Result<Self, CodecError> {
        let find = |k: &str| md.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        let get = |k: &str| find(k).ok_or_else(|| CodecError::Corrupt(format!("metadata `{k}` is missing")));
        let bad = |k: &str| CodecError::Corrupt(format!("metadata `{k}` is malformed"));
        let format = get(K_FORMAT)?;
        if format != FORMAT_VERSION {
            return Err(CodecError::UnsupportedFormat(format.to_owned()));
        }
        let sha256 = get(K_SHA256)?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(K_SHA256));
        }
        let value = find(K_AGE).and_then(|v| percent_decode_str(v).decode_utf8().ok()).map(|v| v.into_owned());
        Ok(Self {
            sha256: sha256.to_ascii_lowercase(),
            length: get(K_LENGTH)?.parse().map_err(|_| bad(K_LENGTH))?,
            etag: get(K_ETAG)?.to_owned(),
            ts: get(K_TS)?.parse().map_err(|_| bad(K_TS))?,
            stamp: AgeStamp { field: find(K_AGE_FIELD).unwrap_or_default().to_owned(), value },
            // Not integrity: an unreadable archive time never makes a copy unreadable.
            archived_at: find(K_ARCHIVED_AT)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
        })
    }

    /// True when `other` describes the same version with the same body.
    pub fn same_version(&self, other: &Self) -> bool {
        self.sha256 == other.sha256 && self.length == other.length && self.etag == other.etag && self.ts == other.ts
    }

    /// The record's age under `field`, as far as the metadata can tell.
    ///
    /// `_ts` is always known (it is the version's `ts`); a document field is known
    /// when the stamp was taken under that field.
    pub fn age_under(&self, field: &AgeField) -> AgeLookup {
        match field {
            AgeField::Ts => AgeLookup::Known(AgeValue::Seconds(self.ts)),
            AgeField::Iso(name) if *name == self.stamp.field => match &self.stamp.value {
                Some(text) => AgeLookup::Known(AgeValue::Text(text.clone())),
                None => AgeLookup::Missing,
            },
            AgeField::Iso(_) => AgeLookup::NeedsBody,
        }
    }
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn compress(body: &[u8]) -> Vec<u8> {
    // Writing into a Vec cannot fail; zstd only errors on a bad level.
    zstd::bulk::compress(body, ZSTD_LEVEL).unwrap_or_else(|e| unreachable!("zstd level {ZSTD_LEVEL}: {e}"))
}

/// Decompresses an archived body and proves it is the one the metadata describes.
///
/// Never returns bytes that failed the check; refuses to inflate past the
/// recorded length, so a corrupt or hostile blob cannot balloon memory.
pub fn decode_verified(stored: &[u8], meta: &ArchiveMeta) -> Result<Vec<u8>, CodecError> {
    if meta.length > MAX_BODY_BYTES {
        return Err(CodecError::Corrupt(format!("recorded length {} is over the 2 MB item limit", meta.length)));
    }
    let mut body = Vec::with_capacity(meta.length as usize);
    zstd::stream::read::Decoder::new(stored)
        .and_then(|d| d.take(meta.length + 1).read_to_end(&mut body))
        .map_err(|e| CodecError::Corrupt(format!("zstd: {e}")))?;
    if body.len() as u64 != meta.length {
        return Err(CodecError::Corrupt(format!("length {} differs from the recorded {}", body.len(), meta.length)));
    }
    if sha256_hex(&body) != meta.sha256 {
        return Err(CodecError::Corrupt("SHA-256 differs from the recorded one".into()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta_for(body: &[u8]) -> ArchiveMeta {
        ArchiveMeta {
            sha256: sha256_hex(body),
            length: body.len() as u64,
            etag: "\"00-1\"".into(),
            ts: 1_700_000_000,
            stamp: AgeStamp::new(&AgeField::Ts, Some(&AgeValue::Seconds(1_700_000_000))),
            archived_at: DateTime::parse_from_rfc3339("2026-11-22T02:00:00Z").unwrap().with_timezone(&Utc),
        }
    }

    #[test]
    fn round_trip_through_metadata_and_zstd() {
        let body = br#"{"id":"r1","lines":[1,2,3]}"#.repeat(50);
        let meta = meta_for(&body);
        let back = ArchiveMeta::from_metadata(&meta.to_metadata()).unwrap();
        assert_eq!(back, meta);
        let stored = compress(&body);
        assert!(stored.len() < body.len() / 5);
        assert_eq!(decode_verified(&stored, &back).unwrap(), body);
    }

    #[test]
    fn the_age_stamp_is_not_integrity() {
        let meta = meta_for(b"{}");
        let invoice = AgeField::Iso("invoiceDate".into());
        // Stamped under _ts: _ts is known, another field needs the body.
        assert_eq!(meta.age_under(&AgeField::Ts), AgeLookup::Known(AgeValue::Seconds(1_700_000_000)));
        assert_eq!(meta.age_under(&invoice), AgeLookup::NeedsBody);
        // Stamped under invoiceDate, with and without a value; any text survives the header.
        for value in [Some("2024-01-31"), Some("2024年 \n%x"), None] {
            let stamped = ArchiveMeta {
                stamp: AgeStamp { field: "invoiceDate".into(), value: value.map(str::to_owned) },
                ..meta.clone()
            };
            let md = stamped.to_metadata();
            assert!(md.values().all(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b))), "{md:?}");
            let back = ArchiveMeta::from_metadata(&md).unwrap();
            assert_eq!(back, stamped);
            let expected = value.map_or(AgeLookup::Missing, |v| AgeLookup::Known(AgeValue::Text(v.into())));
            assert_eq!(back.age_under(&invoice), expected);
            assert_eq!(back.age_under(&AgeField::Iso("other".into())), AgeLookup::NeedsBody);
            assert!(back.same_version(&meta));
        }
        // Missing or garbled stamp and archive time: still readable.
        let mut md = meta.to_metadata();
        md.remove("agefield");
        md.remove("age");
        md.insert("archivedat".into(), "yesterday".into());
        let back = ArchiveMeta::from_metadata(&md).unwrap();
        assert!(back.same_version(&meta));
        assert_eq!(back.age_under(&invoice), AgeLookup::NeedsBody);
    }

    #[test]
    fn corruption_is_detected_and_never_returned() {
        let body = br#"{"id":"r1","amount":10}"#.to_vec();
        let meta = meta_for(&body);
        let stored = compress(&body);
        let mut flipped = stored.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(decode_verified(&flipped, &meta).is_err());
        assert!(decode_verified(b"not zstd", &meta).is_err());
        assert!(decode_verified(&stored[..stored.len() - 1], &meta).is_err());
        let other = compress(br#"{"id":"r1","amount":11}"#);
        assert!(decode_verified(&other, &meta).unwrap_err().to_string().contains("SHA-256"));
        let short = ArchiveMeta { length: 3, ..meta.clone() };
        assert!(decode_verified(&stored, &short).unwrap_err().to_string().contains("length"));
        let huge = ArchiveMeta { length: 1 << 40, ..meta };
        assert!(decode_verified(&stored, &huge).is_err());
    }

    #[test]
    fn metadata_problems_are_named() {
        let meta = meta_for(b"{}");
        let mut md = meta.to_metadata();
        md.insert("Format".into(), "9".into());
        md.remove("format");
        assert_eq!(ArchiveMeta::from_metadata(&md).unwrap_err(), CodecError::UnsupportedFormat("9".into()));
        md.insert("Format".into(), "1".into());
        let old = ArchiveMeta::from_metadata(&md).unwrap_err().to_string();
        assert!(old.contains("format `1`") && old.contains("format 2 only"), "{old}");
        for key in ["sha256", "length", "etag", "ts"] {
            let mut md = meta.to_metadata();
            md.remove(key);
            assert!(ArchiveMeta::from_metadata(&md).unwrap_err().to_string().contains(key), "{key}");
        }
    }

    proptest! {
        #[test]
        fn any_body_round_trips(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let meta = meta_for(&body);
            prop_assert_eq!(decode_verified(&compress(&body), &meta).unwrap(), body);
        }
    }
}
