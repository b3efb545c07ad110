//! The archived form of a record: zstd-compressed body plus metadata that proves it intact. Pure.
//!
//! The body is exactly what the read API serves for the record (the document
//! without system properties). The metadata carries what the reader needs to
//! answer as Cosmos did (`_etag`, `_ts`), what listing needs without a download
//! (the age value), and a SHA-256 and length of the body for verification.

use std::collections::HashMap;
use std::io::Read;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::record::{AgeField, AgeValue};

/// Version of the archived format; readers refuse what they do not know.
pub const FORMAT_VERSION: &str = "1";
/// zstd's default level: a good ratio on JSON at a low CPU cost per record.
pub const ZSTD_LEVEL: i32 = 3;
/// Cosmos items are at most 2 MB; a body claiming more is not one of ours.
pub const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;

const K_FORMAT: &str = "format";
const K_SHA256: &str = "sha256";
const K_LENGTH: &str = "length";
const K_ETAG: &str = "etag";
const K_TS: &str = "ts";
const K_AGE_FIELD: &str = "agefield";
const K_AGE: &str = "age";
const K_ARCHIVED_AT: &str = "archivedat";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("archived copy is corrupt: {0}")]
    Corrupt(String),
}

/// What travels with an archived body as blob metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveMeta {
    /// Hex SHA-256 of the uncompressed body.
    pub sha256: String,
    /// Length of the uncompressed body in bytes.
    pub length: u64,
    /// The document's `_etag` when it was archived, quotes included.
    pub etag: String,
    /// The document's `_ts` when it was archived.
    pub ts: i64,
    /// Name of the age field the value below was read from.
    pub age_field: String,
    pub age: AgeValue,
    pub archived_at: DateTime<Utc>,
}

impl ArchiveMeta {
    pub fn to_metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            (K_FORMAT.into(), FORMAT_VERSION.into()),
            (K_SHA256.into(), self.sha256.clone()),
            (K_LENGTH.into(), self.length.to_string()),
            (K_ETAG.into(), self.etag.clone()),
            (K_TS.into(), self.ts.to_string()),
            (K_AGE_FIELD.into(), self.age_field.clone()),
            (K_AGE.into(), self.age.to_metadata()),
            (K_ARCHIVED_AT.into(), self.archived_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        ])
    }

    /// Reads metadata back; keys are matched case-insensitively because HTTP headers are.
    pub fn from_metadata(field: &AgeField, md: &HashMap<String, String>) -> Result<Self, CodecError> {
        let get = |k: &str| {
            md.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| CodecError::Corrupt(format!("metadata `{k}` is missing")))
        };
        let bad = |k: &str| CodecError::Corrupt(format!("metadata `{k}` is malformed"));
        let format = get(K_FORMAT)?;
        if format != FORMAT_VERSION {
            return Err(CodecError::Corrupt(format!("unknown archive format `{format}`")));
        }
        let sha256 = get(K_SHA256)?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(K_SHA256));
        }
        let age_field = get(K_AGE_FIELD)?.to_owned();
        if age_field != field.name() {
            return Err(CodecError::Corrupt(format!(
                "archived under age field `{age_field}`, but ARCHIVE_AGE_FIELD is `{field}`"
            )));
        }
        Ok(Self {
            sha256: sha256.to_ascii_lowercase(),
            length: get(K_LENGTH)?.parse().map_err(|_| bad(K_LENGTH))?,
            etag: get(K_ETAG)?.to_owned(),
            ts: get(K_TS)?.parse().map_err(|_| bad(K_TS))?,
            age: AgeValue::from_metadata(field, get(K_AGE)?).ok_or_else(|| bad(K_AGE))?,
            age_field,
            archived_at: DateTime::parse_from_rfc3339(get(K_ARCHIVED_AT)?)
                .map_err(|_| bad(K_ARCHIVED_AT))?
                .with_timezone(&Utc),
        })
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
            age_field: "_ts".into(),
            age: AgeValue::Seconds(1_700_000_000),
            archived_at: DateTime::parse_from_rfc3339("2026-11-22T02:00:00Z").unwrap().with_timezone(&Utc),
        }
    }

    #[test]
    fn round_trip_through_metadata_and_zstd() {
        let body = br#"{"id":"r1","lines":[1,2,3]}"#.repeat(50);
        let meta = meta_for(&body);
        let back = ArchiveMeta::from_metadata(&AgeField::Ts, &meta.to_metadata()).unwrap();
        assert_eq!(back, meta);
        let stored = compress(&body);
        assert!(stored.len() < body.len() / 5);
        assert_eq!(decode_verified(&stored, &back).unwrap(), body);
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
        assert!(ArchiveMeta::from_metadata(&AgeField::Ts, &md).unwrap_err().to_string().contains("format `9`"));
        let mut md = meta.to_metadata();
        md.remove("sha256");
        assert!(ArchiveMeta::from_metadata(&AgeField::Ts, &md).unwrap_err().to_string().contains("sha256"));
        let iso = AgeField::Iso("billingDate".into());
        assert!(ArchiveMeta::from_metadata(&iso, &meta.to_metadata()).unwrap_err().to_string().contains("age field"));
    }

    proptest! {
        #[test]
        fn any_body_round_trips(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let meta = meta_for(&body);
            prop_assert_eq!(decode_verified(&compress(&body), &meta).unwrap(), body);
        }
    }
}
