//! The read API's routes (docs/read-api.md, reader/openapi.yaml).

use std::collections::HashMap;
use std::time::Instant;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, NaiveDate};
use tiering::contract::Contract;
use tiering::listing::{Tier, Window};
use tiering::record::validate_id;
use tracing::info;

use crate::auth::{Access, Caller, refusal};
use crate::error::ApiError;
use crate::tiers::Tiers;
use crate::token;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;
pub(crate) const JSON: &str = "application/json; charset=utf-8";

/// The route's values by placeholder, percent-decoded and checked against the
/// id rules (docs/read-api.md, "Ids") before any store is touched.
pub(crate) fn route_values(
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    let Path(params) = path.map_err(|e| ApiError::BadRequest(format!("malformed path: {}", e.body_text())))?;
    params
        .into_iter()
        .map(|(name, value)| match validate_id(&name, &value) {
            Ok(()) => Ok((name, value)),
            Err(e) => Err(ApiError::BadRequest(e.to_string())),
        })
        .collect()
}

/// What a record in neither tier answers: the profile's own body when it gives
/// one, else the contract's JSON error (docs/read-api.md, "Errors").
pub(crate) fn missing(
    contract: &Contract,
    values: &HashMap<String, String>,
    partition_key: &str,
    id: &str,
) -> Response {
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

/// Logs a failed store read once, with its route, status and latency.
fn logged<T>(route: &'static str, started: Instant, result: Result<T, ApiError>) -> Result<T, ApiError> {
    if let Err(e) = &result {
        let latency_us = started.elapsed().as_micros() as u64;
        info!(route, status = e.status().as_u16(), latency_us, "read");
    }
    result
}

fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Cosmos => "cosmos",
        Tier::Archive => "archive",
    }
}

/// The record route (`GET /api/customers/{customerId}/billing-records/{recordId}`
/// with the default profile).
pub async fn get_record(
    State(tiers): State<Tiers>,
    caller: Option<Extension<Caller>>,
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let contract = tiers.contract.clone();
    let values = route_values(path)?;
    let (partition_key, id) = contract.key_of(&values).ok_or_else(|| ApiError::Internal {
        message: "the route does not hold the record's key".into(),
        detail: format!("route values {values:?}"),
    })?;
    if let Some(denied) = refusal(&contract, caller.as_deref(), Access::Read, &values, partition_key, Some(id)) {
        return Ok(denied);
    }
    // Without an ETag there is nothing to revalidate against: always the record.
    let if_none_match: Vec<String> = if contract.etag {
        headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    } else {
        Vec::new()
    };
    let served = match tiers.read(partition_key, id, &if_none_match).await {
        Err(ApiError::NotFound(_)) => {
            let latency_us = started.elapsed().as_micros() as u64;
            info!(route = "record", status = contract.not_found.status, tier = "none", latency_us, "read");
            return Ok(missing(&contract, &values, partition_key, id));
        }
        other => logged("record", started, other)?,
    };
    let latency_us = started.elapsed().as_micros() as u64;
    let status = if served.body.is_none() { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    info!(
        route = "record",
        status = status.as_u16(),
        tier = tier_name(served.tier),
        bytes = served.body.as_ref().map_or(0, Bytes::len),
        latency_us,
        "read"
    );
    let mut response = match served.body {
        None => StatusCode::NOT_MODIFIED.into_response(),
        Some(body) => {
            let content_type = HeaderValue::from_str(&contract.content_type).unwrap_or(HeaderValue::from_static(JSON));
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
    };
    if contract.etag {
        let etag = HeaderValue::from_str(&served.etag).map_err(|_| ApiError::Internal {
            message: "the stored record has an unusable ETag".into(),
            detail: format!("{:?}", served.etag),
        })?;
        response.headers_mut().insert(header::ETAG, etag);
    }
    if contract.last_modified {
        let last_modified = HeaderValue::from_str(&http_date(served.ts)).unwrap_or(HeaderValue::from_static(""));
        response.headers_mut().insert(header::LAST_MODIFIED, last_modified);
    }
    Ok(response)
}

/// The list query's parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub page_size: usize,
    pub token: Option<String>,
}

impl ListQuery {
    /// Parses the raw query string; unknown parameters (like the host's `code`) are ignored.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut q = ListQuery { from: None, to: None, page_size: DEFAULT_PAGE_SIZE, token: None };
        let mut seen = std::collections::HashSet::new();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if matches!(key.as_ref(), "from" | "to" | "pageSize" | "continuationToken") && !seen.insert(key.to_string())
            {
                return Err(ApiError::BadRequest(format!("{key} is given more than once")));
            }
            match key.as_ref() {
                "from" => q.from = Some(date(&key, &value)?),
                "to" => q.to = Some(date(&key, &value)?),
                "pageSize" => {
                    q.page_size = value.parse().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
                        ApiError::BadRequest(format!("pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}"))
                    })?;
                }
                "continuationToken" => q.token = Some(value.into_owned()),
                _ => {}
            }
        }
        if let (Some(from), Some(to)) = (q.from, q.to)
            && from > to
        {
            return Err(ApiError::BadRequest("from must not be after to".into()));
        }
        Ok(q)
    }
}

fn date(key: &str, value: &str) -> Result<NaiveDate, ApiError> {
    let bad = || ApiError::BadRequest(format!("{key} must be a date as YYYY-MM-DD"));
    if value.len() != 10 {
        return Err(bad());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| bad())
}

/// The list route (`GET /api/customers/{customerId}/billing-records` with the
/// default profile).
pub async fn list_records(
    State(tiers): State<Tiers>,
    caller: Option<Extension<Caller>>,
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let values = route_values(path)?;
    let customer_id =
        tiers.contract.partition_key_param.as_ref().and_then(|name| values.get(name)).cloned().ok_or_else(|| {
            ApiError::Internal {
                message: "the route does not hold the partition-key value".into(),
                detail: format!("route values {values:?}"),
            }
        })?;
    if let Some(denied) = refusal(&tiers.contract, caller.as_deref(), Access::Read, &values, &customer_id, None) {
        return Ok(denied);
    }
    let q = ListQuery::parse(raw.as_deref())?;
    let field = tiers.age_field.clone();
    let from_text = q.from.map(|d| d.to_string());
    let to_text = q.to.map(|d| d.to_string());
    let fingerprint = token::fingerprint(&customer_id, field.name(), from_text.as_deref(), to_text.as_deref());
    let (after, marker) = match q.token.as_deref().map(|t| token::decode(t, &fingerprint, &field)).transpose() {
        Ok(Some((cursor, marker))) => (Some(cursor), marker),
        Ok(None) => (None, None),
        Err(message) => return Err(ApiError::BadRequest(message)),
    };
    let window = Window {
        from: q.from.map(|d| field.start_of(d)),
        until: q.to.and_then(|d| d.succ_opt()).map(|d| field.start_of(d)),
        after,
    };
    let (page, marker) = logged("list", started, tiers.list(&customer_id, &window, q.page_size, marker).await)?;
    let latency_us = started.elapsed().as_micros() as u64;
    let archived = page.items.iter().filter(|c| c.tier == Tier::Archive).count();
    info!(route = "list", status = 200, items = page.items.len(), archived, latency_us, "read");

    let mut body = BytesMut::with_capacity(page.items.iter().map(|c| c.payload.len() + 1).sum::<usize>() + 64);
    body.put_slice(b"{\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(&item.payload);
    }
    body.put_slice(b"],\"continuationToken\":");
    let next = page.next.map(|c| token::encode(&fingerprint, &c, marker.as_deref()));
    body.put_slice(serde_json::to_string(&next).unwrap_or_else(|_| "null".into()).as_bytes());
    body.put_u8(b'}');
    let content_type = HeaderValue::from_str(&tiers.contract.content_type).unwrap_or(HeaderValue::from_static(JSON));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], Bytes::from(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameters_are_checked() {
        let q = ListQuery::parse(Some("from=2025-01-01&to=2025-01-31&pageSize=100&code=abc&x=1")).unwrap();
        assert_eq!((q.from.unwrap().to_string(), q.page_size), ("2025-01-01".into(), 100));
        assert_eq!(ListQuery::parse(None).unwrap().page_size, 50);
        for bad in [
            "pageSize=0",
            "pageSize=101",
            "pageSize=ten",
            "pageSize=-1",
            "from=2025-1-1",
            "from=2025-02-30",
            "to=yesterday",
            "from=2025-02-01&to=2025-01-01",
            "from=2025-01-01&from=2025-01-02",
        ] {
            assert!(ListQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
    }
}
