//! Serve mode: the reader serves the contract itself, from Cosmos first and the
//! archive after (docs/read-api.md, reader/openapi.yaml): the record route, the
//! list route, and with `READER_UPSTREAM_URL` the profile's writes
//! ([`crate::writes`]). Top to bottom: the router, a record read, a list page.

use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::{BufMut, Bytes, BytesMut};
use chrono::NaiveDate;
use tiering::listing::{Tier, Window};
use tracing::info;

use crate::answers::{JSON, http_date, missing};
use crate::app::App;
use crate::auth::{Access, Caller, refusal};
use crate::error::ApiError;
use crate::route::route_values;
use crate::token;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;

/// Serve mode's routes: the record route (and, with `READER_UPSTREAM_URL`, the
/// profile's writes on it and its sub-paths), the list route; each answers within
/// `READER_TIMEOUT_SECONDS` but writes (their own limits: writes.rs), and each
/// authenticates first (before its route values are even checked).
pub fn router(app: App) -> Router {
    let deadline = app.request_timeout;
    let contract = app.contract.clone();
    let (record, list) = crate::api_routes(&contract);
    // Writes pass through only with an upstream; without one the reader is read-only.
    let writes = if app.upstream.is_some() { contract.writes.clone() } else { Default::default() };
    let record_allow: String =
        std::iter::once("GET, HEAD").chain(writes.methods.iter().map(String::as_str)).collect::<Vec<_>>().join(", ");
    let not_allowed = |allow: String| {
        move || {
            let allow = allow.clone();
            async move { ApiError::MethodNotAllowed { allow } }
        }
    };
    let only_get = not_allowed("GET, HEAD".to_owned());
    let mut reads = Router::new();
    if let Some(list) = list {
        reads = reads
            .route(&list, get(list_records).fallback(only_get.clone()))
            .route(&format!("{list}/"), get(list_records).fallback(only_get.clone()));
    }
    let record_reads = get(get_record).layer(middleware::from_fn_with_state(deadline, within_deadline));
    let mut record_route = record_reads.fallback(not_allowed(record_allow));
    for method in &writes.methods {
        // A write keeps its own deadlines (writes.rs): a forwarded write that times
        // out is not "unavailable", it may have been applied.
        record_route = match method.as_str() {
            "PUT" => record_route.put(crate::writes::write_record),
            "PATCH" => record_route.patch(crate::writes::write_record),
            _ => record_route.delete(crate::writes::write_record),
        };
    }
    let mut api = reads.layer(middleware::from_fn_with_state(deadline, within_deadline)).route(&record, record_route);
    if writes.sub_paths {
        let action = format!("{record}/{{*{}}}", crate::writes::ACTION_PARAM);
        // Reads of a sub-path are no route, as without writes; other methods 405.
        let sub_path_fallback = |method: axum::http::Method| async move {
            if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
                ApiError::NotFound("no such route".into())
            } else {
                ApiError::MethodNotAllowed { allow: "POST".into() }
            }
        };
        api = api.route(&action, axum::routing::post(crate::writes::write_record).fallback(sub_path_fallback));
    }
    let guard = (app.gate.clone(), app.contract.clone());
    api.route_layer(middleware::from_fn_with_state(guard, crate::auth::authenticate)).with_state(app)
}

/// Every read answers within `READER_TIMEOUT_SECONDS`: a store that is slow
/// rather than down gives 503 with `Retry-After`, never a hung request.
async fn within_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable {
            tier: "a store",
            retry_after: limit.as_secs().max(1),
            detail: format!("no answer within {limit:?}"),
        }
        .into_response(),
    }
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
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let contract = app.contract.clone();
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
    let served = match app.tiers.read(partition_key, id, &if_none_match).await {
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
    State(app): State<App>,
    caller: Option<Extension<Caller>>,
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let values = route_values(path)?;
    let customer_id =
        app.contract.partition_key_param.as_ref().and_then(|name| values.get(name)).cloned().ok_or_else(|| {
            ApiError::Internal {
                message: "the route does not hold the partition-key value".into(),
                detail: format!("route values {values:?}"),
            }
        })?;
    if let Some(denied) = refusal(&app.contract, caller.as_deref(), Access::Read, &values, &customer_id, None) {
        return Ok(denied);
    }
    let q = ListQuery::parse(raw.as_deref())?;
    let field = app.tiers.age_field.clone();
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
    let (page, marker) = logged("list", started, app.tiers.list(&customer_id, &window, q.page_size, marker).await)?;
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
    let content_type = HeaderValue::from_str(&app.contract.content_type).unwrap_or(HeaderValue::from_static(JSON));
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
