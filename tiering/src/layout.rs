//! `(partition-key value, id)` <-> blob name. Pure and reversible.
//!
//! Blob names are `v1/<partition-key value>/<id>.json.zst` (with the default
//! contract the partition key is `customerId`; with `/id` both segments are the
//! id), each value percent-encoded with
//! everything but ASCII letters, digits, `-` and `_` escaped. That makes the
//! mapping one-to-one (only canonical encodings decode), keeps `/` out of an
//! encoded id so nothing can leave its partition's prefix, and turns `.` and `..`
//! into `%2E` and `%2E%2E`, which no URL normaliser will collapse.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but `A-Z a-z 0-9 - _` is escaped.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// The layout version; part of every name so a later layout can live beside this one.
pub const LAYOUT_PREFIX: &str = "v1/";
const SUFFIX: &str = ".json.zst";
/// Azure's limit on a blob name.
pub const MAX_BLOB_NAME: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("the archive name for this record would be {0} characters, over Azure's limit of {MAX_BLOB_NAME}")]
    TooLong(usize),
    #[error("`{0}` is not an archive blob name of this layout")]
    NotOurs(String),
}

/// The blob that holds the archived copy of record `id` in partition `partition_key`.
pub fn blob_name(partition_key: &str, id: &str) -> Result<String, LayoutError> {
    let name = format!("{}{}{}", partition_prefix(partition_key), encode(id), SUFFIX);
    if name.len() > MAX_BLOB_NAME {
        return Err(LayoutError::TooLong(name.len()));
    }
    Ok(name)
}

/// The prefix under which every archived record of one partition-key value lies (ends with `/`).
pub fn partition_prefix(partition_key: &str) -> String {
    format!("{LAYOUT_PREFIX}{}/", encode(partition_key))
}

/// Recovers `(partition-key value, id)` from a blob name; rejects anything [`blob_name`] would not produce.
pub fn parse_blob_name(name: &str) -> Result<(String, String), LayoutError> {
    let not_ours = || LayoutError::NotOurs(name.to_owned());
    let rest = name.strip_prefix(LAYOUT_PREFIX).and_then(|r| r.strip_suffix(SUFFIX)).ok_or_else(not_ours)?;
    let (customer, id) = rest.split_once('/').ok_or_else(not_ours)?;
    Ok((decode(customer).ok_or_else(not_ours)?, decode(id).ok_or_else(not_ours)?))
}

/// Where holds live: one empty blob per partition-key value on hold, outside
/// the layout's prefix (docs/operations.md, "Retention and holds").
pub const HOLDS_PREFIX: &str = "holds/";

/// The hold blob of a partition-key value.
pub fn hold_name(partition_key: &str) -> String {
    format!("{HOLDS_PREFIX}{}", encode(partition_key))
}

/// The partition-key value a hold blob names, if it is one.
pub fn parse_hold_name(name: &str) -> Option<String> {
    decode(name.strip_prefix(HOLDS_PREFIX)?)
}

/// A value as one name segment of this layout (percent-encoded: no `/`).
pub(crate) fn encode_segment(s: &str) -> String {
    encode(s)
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

/// Decodes only canonical encodings, so each id has exactly one name.
fn decode(s: &str) -> Option<String> {
    let decoded = percent_decode_str(s).decode_utf8().ok()?.into_owned();
    (!decoded.is_empty() && encode(&decoded) == s).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn holds_name_their_partition_one_to_one() {
        for pk in ["cust-a", "cust b+ü", "tenants/eu/1", "50% off", ".."] {
            let name = hold_name(pk);
            assert!(name.starts_with(HOLDS_PREFIX) && !name[HOLDS_PREFIX.len()..].contains('/'), "{name}");
            assert_eq!(parse_hold_name(&name).as_deref(), Some(pk));
        }
        assert_eq!(parse_hold_name("holds/a%2"), None);
        assert_eq!(parse_hold_name("v1/a/b.json.zst"), None);
    }

    #[test]
    fn awkward_ids_get_safe_names() {
        let table = [
            ("c1", "r1", "v1/c1/r1.json.zst"),
            ("c 1", "a b", "v1/c%201/a%20b.json.zst"),
            ("c", "..", "v1/c/%2E%2E.json.zst"),
            ("c", ".", "v1/c/%2E.json.zst"),
            ("c", "50%+x.y", "v1/c/50%25%2Bx%2Ey.json.zst"),
            ("c", "ü", "v1/c/%C3%BC.json.zst"),
            ("c", "a/../../b", "v1/c/a%2F%2E%2E%2F%2E%2E%2Fb.json.zst"),
            ("c", "inv-2024_01", "v1/c/inv-2024_01.json.zst"),
            // Partition-key values of any shape (a tenant path, a percentage, unicode).
            ("tenants/eu/1", "r", "v1/tenants%2Feu%2F1/r.json.zst"),
            ("50% off", "r", "v1/50%25%20off/r.json.zst"),
            ("日本", "請求", "v1/%E6%97%A5%E6%9C%AC/%E8%AB%8B%E6%B1%82.json.zst"),
            // Partitioned by /id: both segments are the id.
            ("inv-7", "inv-7", "v1/inv-7/inv-7.json.zst"),
        ];
        for (customer, id, name) in table {
            assert_eq!(blob_name(customer, id).unwrap(), name);
            assert_eq!(parse_blob_name(name).unwrap(), (customer.to_owned(), id.to_owned()));
        }
    }

    #[test]
    fn only_canonical_names_parse() {
        for bad in [
            "v1/c/r1",
            "v2/c/r1.json.zst",
            "v1/c/r/1.json.zst",
            "v1/c/%61.json.zst",
            "v1/c/%zz.json.zst",
            "v1/c/%FF.json.zst",
            "v1//r.json.zst",
            "v1/c/.json.zst",
            "v1/c/a.b.json.zst",
        ] {
            assert!(parse_blob_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn over_long_names_are_refused() {
        let id = "€".repeat(255);
        assert!(matches!(blob_name("c", &id), Err(LayoutError::TooLong(_))));
        assert!(blob_name("c", &"x".repeat(255)).is_ok());
    }

    proptest! {
        #[test]
        fn every_id_round_trips_and_stays_under_its_prefix(customer in "\\PC{1,40}", id in "\\PC{1,80}") {
            let name = blob_name(&customer, &id).unwrap();
            prop_assert!(name.starts_with(&partition_prefix(&customer)));
            prop_assert_eq!(name.matches('/').count(), 2);
            prop_assert!(!name.split('/').any(|seg| seg == "." || seg == ".."));
            prop_assert_eq!(parse_blob_name(&name).unwrap(), (customer, id));
        }

        #[test]
        fn distinct_ids_get_distinct_names(a in "[a-c%+. /]{1,6}", b in "[a-c%+. /]{1,6}") {
            prop_assume!(a != b);
            prop_assert_ne!(blob_name("c", &a).unwrap(), blob_name("c", &b).unwrap());
        }
    }
}
