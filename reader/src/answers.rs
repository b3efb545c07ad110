//! The answers the contract profile prescribes that are not a record: a
//! missing record's (docs/read-api.md, "Errors"; the profile's `[not_found]`),
//! and the validators' header formats.

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use tiering::contract::Contract;

use crate::error::ApiError;

/// The content type of the contract's JSON answers.
pub const JSON: &str = "application/json; charset=utf-8";

/// What a record in neither tier answers: the profile's own body when it gives
/// one, else the contract's JSON error (docs/read-api.md, "Errors").
pub fn missing(contract: &Contract, values: &HashMap<String, String>, partition_key: &str, id: &str) -> Response {
    let status = StatusCode::from_u16(contract.not_found.status).unwrap_or(StatusCode::NOT_FOUND);
    if let Some(body) = contract.not_found_body(values) {
        let content_type =
            HeaderValue::from_str(&contract.not_found.content_type).unwrap_or(HeaderValue::from_static(JSON));
        return (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    }
    let whose = match contract.partition_key_param.as_deref() {
        None => String::new(),
        // Today's API says "customer" (the default profile).
        Some("customerId") => format!(" of customer {partition_key:?}"),
        Some(name) => format!(" of {name} {partition_key:?}"),
    };
    let mut response = ApiError::NotFound(format!("record {id:?}{whose} does not exist")).into_response();
    *response.status_mut() = status;
    if let Ok(content_type) = HeaderValue::from_str(&contract.not_found.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    response
}

/// `Last-Modified` from `_ts`, in the HTTP date format.
pub fn http_date(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
