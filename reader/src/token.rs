//! The list API's continuation token: opaque to consumers, checked on the way back.
//!
//! A token is `base64url(json)` + `.` + a checksum of that text. The JSON holds
//! the position to continue after (see `tiering::listing`) and a fingerprint of
//! the query (customer, from, to), so a token cannot be replayed against another
//! query. The checksum catches truncation and hand edits; it is not a secret
//! signature, because a forged position grants nothing: the listing is read-only
//! and scoped to the customer named in the path.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use tiering::codec::sha256_hex;
use tiering::listing::Cursor;
use tiering::record::{AgeField, AgeValue};

const VERSION: u8 = 1;
/// Far longer than any real token (ids are at most 255 characters).
const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    v: u8,
    /// Query fingerprint.
    q: String,
    /// Position: age value and id of the last record consumed.
    a: AgeValue,
    i: String,
    /// Where the next page lists the archive's index from (a listing marker of
    /// the storage service; `tiering::index`), when lists read the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
}

/// The fingerprint of a list query; tokens only continue the query they came from.
/// The age field is part of it: a position means nothing in another field's order.
pub fn fingerprint(customer_id: &str, age_field: &str, from: Option<&str>, to: Option<&str>) -> String {
    let text = serde_json::json!([customer_id, age_field, from, to]).to_string();
    sha256_hex(text.as_bytes())[..16].to_owned()
}

pub fn encode(query: &str, cursor: &Cursor, marker: Option<&str>) -> String {
    let payload = Payload {
        v: VERSION,
        q: query.to_owned(),
        a: cursor.age.clone(),
        i: cursor.id.clone(),
        m: marker.map(str::to_owned),
    };
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap_or_default());
    let check = &sha256_hex(body.as_bytes())[..12];
    format!("{body}.{check}")
}

/// Decodes a token for `query` into its position and index marker; the error
/// is the 400 message. A forged marker grants nothing either: it only moves
/// where the partition's own index is read from, and entries at or before the
/// position are skipped wherever the listing starts.
pub fn decode(token: &str, query: &str, field: &AgeField) -> Result<(Cursor, Option<String>), String> {
    let invalid = || "continuationToken is invalid".to_owned();
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let (body, check) = token.rsplit_once('.').ok_or_else(invalid)?;
    if sha256_hex(body.as_bytes())[..12] != *check {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
    let payload: Payload = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if payload.v != VERSION {
        return Err(invalid());
    }
    if payload.q != query {
        return Err(
            "continuationToken belongs to another query (customer, from or to differ, or the age field changed)"
                .to_owned(),
        );
    }
    let kind_matches =
        matches!((&payload.a, field), (AgeValue::Seconds(_), AgeField::Ts) | (AgeValue::Text(_), AgeField::Iso(_)));
    if !kind_matches {
        return Err(invalid());
    }
    Ok((Cursor { age: payload.a, id: payload.i }, payload.m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_tampering() {
        let q = fingerprint("c1", "_ts", Some("2025-01-01"), None);
        let cursor = Cursor { age: AgeValue::Seconds(1_700_000_000), id: "inv/ü \"1\"".into() };
        let token = encode(&q, &cursor, None);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{token}");
        assert_eq!(decode(&token, &q, &AgeField::Ts).unwrap(), (cursor.clone(), None));
        // With the index's marker, and a token from before markers existed.
        let marked = encode(&q, &cursor, Some("2!96!MDAwMDQ3IXgxL2MvX3RzLzE-"));
        assert_eq!(decode(&marked, &q, &AgeField::Ts).unwrap().1.as_deref(), Some("2!96!MDAwMDQ3IXgxL2MvX3RzLzE-"));
        let old = URL_SAFE_NO_PAD.encode(serde_json::json!({"v": 1, "q": q, "a": 1_700_000_000, "i": "r"}).to_string());
        let old = format!("{old}.{}", &sha256_hex(old.as_bytes())[..12]);
        assert_eq!(decode(&old, &q, &AgeField::Ts).unwrap().1, None);

        let mut flipped = token.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in ["", ".", "abc", "abc.def", &token[..token.len() - 1], &flipped, &"x".repeat(5000), "%%%.???"] {
            assert!(decode(bad, &q, &AgeField::Ts).is_err(), "{bad:?}");
        }
        for other in
            [fingerprint("c2", "_ts", Some("2025-01-01"), None), fingerprint("c1", "d", Some("2025-01-01"), None)]
        {
            assert!(decode(&token, &other, &AgeField::Ts).unwrap_err().contains("another query"));
        }
        assert!(decode(&token, &q, &AgeField::Iso("d".into())).is_err());
    }
}
