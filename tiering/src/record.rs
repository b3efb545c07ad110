//! A billing record as raw JSON: system properties, identity, age, id validation. Pure.
//!
//! The read contract promises the document "with the keys in the order and the
//! numbers in the text Cosmos returned". Parsing into `serde_json::Value` would
//! reorder keys and re-print numbers, so this module never does that to a whole
//! document: it walks the top-level object once, keeps every member's bytes as
//! they arrived, and only decodes the few members it needs (`id`, `_etag`, ...).

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// Top-level properties Cosmos adds to every document; never part of the contract's body.
pub const SYSTEM_PROPERTIES: [&str; 6] = ["_rid", "_self", "_etag", "_attachments", "_ts", "_lsn"];

/// The longest id the read API accepts (docs/read-api.md, "Ids").
pub const MAX_ID_CHARS: usize = 255;

/// Why a document or an id was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("document is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("document has no string property `{0}`")]
    MissingProperty(&'static str),
    #[error("document property `{field}` is not usable as an age: {reason}")]
    BadAge { field: String, reason: String },
    #[error("{0}")]
    InvalidId(String),
}

/// Checks an id (record id or customer id) against the contract's rules.
///
/// `what` names the id in the message ("recordId", "customerId").
pub fn validate_id(what: &str, id: &str) -> Result<(), RecordError> {
    let fail = |why: &str| Err(RecordError::InvalidId(format!("{what} {why}")));
    if id.is_empty() {
        return fail("must not be empty");
    }
    if id.chars().count() > MAX_ID_CHARS {
        return fail(&format!("must be at most {MAX_ID_CHARS} characters"));
    }
    if let Some(c) = id.chars().find(|c| matches!(c, '/' | '\\' | '?' | '#') || c.is_control()) {
        return fail(&format!("must not contain {c:?}"));
    }
    // URL path handling drops or climbs `.` and `..` segments, so such an id would
    // address its container instead of itself (a delete would hit the wrong resource).
    if id == "." || id == ".." {
        return fail("must not be `.` or `..`");
    }
    Ok(())
}

/// One top-level member of a JSON object, as byte ranges into the document.
#[derive(Debug, Clone)]
struct Member {
    /// The decoded key.
    key: String,
    /// `"key":value` exactly as it appeared (whitespace around it trimmed).
    span: std::ops::Range<usize>,
    /// The value alone.
    value: std::ops::Range<usize>,
}

/// A document as Cosmos returned it, with its top-level members located.
#[derive(Debug, Clone)]
pub struct RawDocument {
    bytes: bytes::Bytes,
    members: Vec<Member>,
}

impl RawDocument {
    /// Locates the top-level members of a JSON object without re-encoding anything.
    pub fn parse(bytes: impl Into<bytes::Bytes>) -> Result<Self, RecordError> {
        let bytes = bytes.into();
        let members = scan_object(&bytes).map_err(RecordError::NotAnObject)?;
        Ok(Self { bytes, members })
    }

    /// The document exactly as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn raw(&self, key: &str) -> Option<&[u8]> {
        self.members.iter().find(|m| m.key == key).map(|m| &self.bytes[m.value.clone()])
    }

    /// Decodes one top-level property; `None` when absent or of another type.
    pub fn get<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Option<T> {
        serde_json::from_slice(self.raw(key)?).ok()
    }

    fn string(&self, key: &'static str) -> Result<String, RecordError> {
        self.get::<String>(key).ok_or(RecordError::MissingProperty(key))
    }

    /// The document `id`.
    pub fn id(&self) -> Result<String, RecordError> {
        self.string("id")
    }

    /// `_etag`, quotes included, as Cosmos sends it in the `ETag` header.
    pub fn etag(&self) -> Result<String, RecordError> {
        self.string("_etag")
    }

    /// `_ts`, the last-modified time in epoch seconds.
    pub fn ts(&self) -> Result<i64, RecordError> {
        self.get::<i64>("_ts").ok_or(RecordError::MissingProperty("_ts"))
    }

    /// The value of the age field, if the document has a usable one.
    pub fn age(&self, field: &AgeField) -> Result<AgeValue, RecordError> {
        let raw = self
            .raw(field.name())
            .ok_or_else(|| RecordError::BadAge { field: field.name().to_owned(), reason: "missing".into() })?;
        AgeValue::from_json(field, raw)
    }

    /// The age value used for ordering a listing: like [`age`](Self::age), but an ISO
    /// field's string is taken as it is (Cosmos orders it as a string either way).
    pub fn sort_key(&self, field: &AgeField) -> Option<AgeValue> {
        match field {
            AgeField::Ts => self.get::<i64>("_ts").map(AgeValue::Seconds),
            AgeField::Iso(name) => self.get::<String>(name).map(AgeValue::Text),
        }
    }

    /// The document minus [`SYSTEM_PROPERTIES`] (the default contract's body).
    pub fn without_system_properties(&self) -> Vec<u8> {
        self.without(&SYSTEM_PROPERTIES)
    }

    /// The document minus the top-level properties in `omit`, every other member
    /// byte for byte and in its original order.
    pub fn without<S: AsRef<str>>(&self, omit: &[S]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        out.push(b'{');
        let kept = self.members.iter().filter(|m| !omit.iter().any(|o| o.as_ref() == m.key));
        for (i, m) in kept.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.bytes[m.span.clone()]);
        }
        out.push(b'}');
        out
    }
}

/// Walks a JSON object's top level. Values are skipped with serde_json (so they are
/// validated), keys are located by hand so their original escaping is kept.
fn scan_object(b: &[u8]) -> Result<Vec<Member>, String> {
    let ws = |mut i: usize| {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return Err("expected `{`".into());
    }
    i = ws(i + 1);
    let mut members = Vec::new();
    if b.get(i) == Some(&b'}') {
        return finish(b, ws(i + 1), members);
    }
    loop {
        let key_start = i;
        if b.get(i) != Some(&b'"') {
            return Err(format!("expected a key at byte {i}"));
        }
        i += 1;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        if i >= b.len() {
            return Err("unterminated key".into());
        }
        i += 1;
        let key: String = serde_json::from_slice(&b[key_start..i]).map_err(|e| format!("bad key: {e}"))?;
        i = ws(i);
        if b.get(i) != Some(&b':') {
            return Err(format!("expected `:` at byte {i}"));
        }
        let value_start = ws(i + 1);
        let mut values = serde_json::Deserializer::from_slice(&b[value_start..]).into_iter::<IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("bad value of `{key}`: {e}")),
            None => return Err(format!("missing value of `{key}`")),
        }
        let value_end = value_start + values.byte_offset();
        members.push(Member { key, span: key_start..value_end, value: value_start..value_end });
        i = ws(value_end);
        match b.get(i) {
            Some(b',') => i = ws(i + 1),
            Some(b'}') => return finish(b, ws(i + 1), members),
            _ => return Err(format!("expected `,` or `}}` at byte {i}")),
        }
    }
}

fn finish(b: &[u8], i: usize, members: Vec<Member>) -> Result<Vec<Member>, String> {
    if i != b.len() {
        return Err("trailing data after the object".into());
    }
    Ok(members)
}

/// The document field that dates a record (setting `ARCHIVE_AGE_FIELD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgeField {
    /// `_ts`: epoch seconds of the last write.
    Ts,
    /// A top-level field holding an ISO-8601 date or date-time string.
    Iso(String),
}

impl AgeField {
    /// Parses the setting's value: `_ts` or a top-level property name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "_ts" => Ok(Self::Ts),
            "" => Err("must not be empty".into()),
            s if SYSTEM_PROPERTIES.contains(&s) => Err(format!("`{s}` is a system property; only `_ts` may be used")),
            s if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                Ok(Self::Iso(s.to_owned()))
            }
            s => Err(format!("`{s}` is not a plain top-level property name (letters, digits, `_`)")),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Ts => "_ts",
            Self::Iso(name) => name,
        }
    }

    /// The age value that marks the start of `date` (00:00 UTC).
    ///
    /// For ISO fields this is the bare date: as a string it sorts before every
    /// date-time of that day and after every earlier one, and it equals a value
    /// that holds just that date.
    pub fn start_of(&self, date: NaiveDate) -> AgeValue {
        match self {
            Self::Ts => self.at(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())),
            Self::Iso(_) => AgeValue::Text(date.format("%Y-%m-%d").to_string()),
        }
    }

    /// The age value of an instant, in this field's representation.
    ///
    /// ISO fields compare as strings (as Cosmos compares them), so the instant is
    /// printed in the canonical `YYYY-MM-DDTHH:MM:SSZ` form, which sorts correctly
    /// against dates and UTC date-times of any precision.
    pub fn at(&self, instant: DateTime<Utc>) -> AgeValue {
        match self {
            Self::Ts => AgeValue::Seconds(instant.timestamp()),
            Self::Iso(_) => AgeValue::Text(instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        }
    }
}

impl fmt::Display for AgeField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A record's age-field value, compared the way Cosmos compares it in a query:
/// numbers numerically, strings by code point. One deployment uses one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AgeValue {
    Seconds(i64),
    Text(String),
}

impl AgeValue {
    /// Parses a raw JSON value as an age under `field`, as [`RawDocument::age`] does.
    pub fn from_json(field: &AgeField, raw: &[u8]) -> Result<Self, RecordError> {
        let bad = |reason: String| RecordError::BadAge { field: field.name().to_owned(), reason };
        match field {
            AgeField::Ts => serde_json::from_slice::<i64>(raw).map(Self::Seconds).map_err(|e| bad(e.to_string())),
            AgeField::Iso(_) => {
                let s: String = serde_json::from_slice(raw).map_err(|_| bad("not a string".into()))?;
                parse_iso_instant(&s).map_err(bad)?;
                Ok(Self::Text(s))
            }
        }
    }

    /// The value as text (the age stamp in blob metadata, the run summary's cutoff).
    pub fn to_metadata(&self) -> String {
        match self {
            Self::Seconds(s) => s.to_string(),
            Self::Text(t) => t.clone(),
        }
    }

    /// The value as a Cosmos query parameter.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Seconds(s) => (*s).into(),
            Self::Text(t) => t.clone().into(),
        }
    }
}

impl Ord for AgeValue {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Seconds(a), Self::Seconds(b)) => a.cmp(b),
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
            // Cosmos orders numbers before strings; mixed kinds only arise from bad data.
            (Self::Seconds(_), Self::Text(_)) => Ordering::Less,
            (Self::Text(_), Self::Seconds(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for AgeValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Accepts `YYYY-MM-DD`, or a date-time with an offset or `Z`, or a naive date-time (read as UTC).
pub fn parse_iso_instant(s: &str) -> Result<DateTime<Utc>, String> {
    // chrono skips leading blanks, but a blank changes how the value sorts as a string
    // (and blob metadata would lose it), so only values starting with the year pass.
    if !s.is_ascii() || !s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("`{s}` is not an ISO-8601 date"));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|dt| Utc.from_utc_datetime(&dt))
        .map_err(|_| format!("`{s}` is not an ISO-8601 date or date-time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"id":"r1","customerId":"c 1","amount":1.50,"big":12345678901234567890123,"e":1E+2,"z":{"b":1,"a":[]},"_rid":"abc==","_self":"dbs/x/","_etag":"\"0a00-1\"","_attachments":"attachments/","_ts":1700000000,"é\u0301":"\u00e9","last":null}"#;

    #[test]
    fn strips_system_properties_and_keeps_everything_else_byte_for_byte() {
        let doc = RawDocument::parse(DOC.as_bytes().to_vec()).unwrap();
        let body = String::from_utf8(doc.without_system_properties()).unwrap();
        assert_eq!(
            body,
            r#"{"id":"r1","customerId":"c 1","amount":1.50,"big":12345678901234567890123,"e":1E+2,"z":{"b":1,"a":[]},"é\u0301":"\u00e9","last":null}"#
        );
        assert_eq!(doc.id().unwrap(), "r1");
        assert_eq!(doc.etag().unwrap(), "\"0a00-1\"");
        assert_eq!(doc.ts().unwrap(), 1_700_000_000);
    }

    #[test]
    fn system_property_nested_is_kept_and_whitespace_tolerated() {
        let doc = RawDocument::parse(&b" { \"a\" : {\"_ts\":1} , \"_lsn\": 7 }\n"[..]).unwrap();
        assert_eq!(doc.without_system_properties(), br#"{"a" : {"_ts":1}}"#);
        let empty = RawDocument::parse(&b"{}"[..]).unwrap();
        assert_eq!(empty.without_system_properties(), b"{}");
    }

    #[test]
    fn rejects_what_is_not_one_object() {
        for bad in ["", "[]", "{", r#"{"a":1"#, r#"{"a":1}x"#, r#"{"a" 1}"#, r#"{"a":tru}"#, r#"{a:1}"#, r#"{"a":1,}"#]
        {
            assert!(RawDocument::parse(bad.as_bytes().to_vec()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn id_rules_follow_the_contract() {
        for ok in ["r1", "a b", "ü%+.,;", "...", ".a", "a.", &"x".repeat(255), "日本語"] {
            assert!(validate_id("recordId", ok).is_ok(), "{ok:?}");
        }
        for bad in ["", ".", "..", "a/b", "a\\b", "a?b", "a#b", "a\nb", "\u{7f}", "a\u{0}b", &"x".repeat(256)] {
            let err = validate_id("recordId", bad).unwrap_err().to_string();
            assert!(err.starts_with("recordId "), "{err}");
        }
    }

    #[test]
    fn age_values_from_ts_and_iso_fields() {
        let doc = RawDocument::parse(DOC.as_bytes().to_vec()).unwrap();
        assert_eq!(doc.age(&AgeField::Ts).unwrap(), AgeValue::Seconds(1_700_000_000));
        let iso = AgeField::parse("invoiceDate").unwrap();
        for (value, ok) in [
            ("2024-01-31", true),
            ("2024-01-31T10:00:00Z", true),
            ("2024-01-31T10:00:00.5+02:00", true),
            ("2024-01-31T10:00:00", true),
            ("31/01/2024", false),
            ("2024-13-01", false),
            (" 2024-01-31", false),
        ] {
            let d = RawDocument::parse(format!(r#"{{"invoiceDate":"{value}"}}"#).into_bytes()).unwrap();
            assert_eq!(d.age(&iso).is_ok(), ok, "{value}");
        }
        let d = RawDocument::parse(&br#"{"invoiceDate":20240131}"#[..]).unwrap();
        assert!(d.age(&iso).is_err());
        assert!(RawDocument::parse(&b"{}"[..]).unwrap().age(&AgeField::Ts).is_err());
    }

    #[test]
    fn age_field_setting_is_checked() {
        assert_eq!(AgeField::parse("_ts").unwrap(), AgeField::Ts);
        assert_eq!(AgeField::parse("billingDate").unwrap().name(), "billingDate");
        for bad in ["", "_etag", "a.b", "a b", "1x", "c[\"x\"]"] {
            assert!(AgeField::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn iso_cutoffs_sort_like_cosmos_strings() {
        let f = AgeField::Iso("d".into());
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let start = f.start_of(day);
        assert_eq!(start, AgeValue::Text("2024-03-01".into()));
        assert!(AgeValue::Text("2024-03-01".into()) >= start);
        assert!(AgeValue::Text("2024-02-29".into()) < start);
        assert!(AgeValue::Text("2024-02-29T23:59:59.999Z".into()) < start);
        assert!(AgeValue::Text("2024-03-01T00:00:01Z".into()) > start);
        let cutoff = f.at(Utc.with_ymd_and_hms(2024, 3, 1, 2, 0, 0).unwrap());
        assert!(AgeValue::Text("2024-03-01".into()) < cutoff);
        assert!(AgeValue::Text("2024-03-01T01:59:59Z".into()) < cutoff);
        assert!(AgeValue::Text("2024-03-01T02:00:01Z".into()) > cutoff);
        assert_eq!(AgeField::Ts.start_of(day), AgeValue::Seconds(1_709_251_200));
    }
}
