//! A stand-in for a billing API shaped like most real ones, and unlike this
//! project's reader in every way a consumer sees: an ASP.NET Core-style service
//! over the same Cosmos container that maps each stored invoice into its own
//! DTO (renamed fields, money as strings, `_links`), sends its own weak ETag (a
//! hash of the DTO) with `Cache-Control` and version headers, answers errors as
//! `application/problem+json`, lists in its own shape (`data`, `paging.next`)
//! with its own keyset cursor and window parameters (`issuedFrom`, `issuedTo`,
//! `limit`), takes writes with `If-Match` on its own ETag, gzips when asked,
//! and checks an API key itself (`X-Api-Key`). The adoption tests put the
//! reader in front mode before it (docs/front-mode.md) and compare the two with
//! `scripts/compare.py`.
//!
//! It is written apart from the reader on purpose and shares none of its code:
//! it reads Cosmos with plain queries and sorts in memory.
//!
//! Routes, below `/api`: `GET|PATCH|DELETE v2/accounts/{accountId}/invoices/{invoiceId}`,
//! `POST .../{invoiceId}/void`, `GET v2/accounts/{accountId}/invoices`. The
//! container is partitioned by `/customerId`; invoices are dated by `invoiceDate`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tiering::cosmos::CosmosStore;
use tiering::settings::StoreSettings;

/// The API key it accepts (`X-Api-Key`).
pub const API_KEY: &str = "contoso-billing-test-key";
/// The page size it serves when asked for none, and the largest.
pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 100;
/// The contract profile that puts the reader in front of it (routes, missing
/// status, the list window), for `http://127.0.0.1:<port>` as its upstream.
pub const PROFILE: &str = include_str!("../../contracts/examples/front-mapped.toml");

#[derive(Debug, Clone)]
struct Api {
    cosmos: CosmosStore,
}

/// Serves the API from the container `stores` names, on a free 127.0.0.1 port.
pub async fn start(stores: &StoreSettings) -> anyhow::Result<SocketAddr> {
    let cosmos = CosmosStore::connect(stores, testkit::emulator::TEST_TRANSPORT).await?;
    let api = Arc::new(Api { cosmos });
    let router = Router::new()
        .route("/api/v2/accounts/{account}/invoices", get(list))
        .route("/api/v2/accounts/{account}/invoices/{invoice}", get(read).patch(patch).delete(delete))
        .route("/api/v2/accounts/{account}/invoices/{invoice}/void", post(void))
        .layer(axum::middleware::from_fn(api_key))
        .with_state(api);
    let (listener, addr) = tiering::host::bind(0).await?;
    tokio::spawn(tiering::host::serve(listener, router, std::future::pending()));
    Ok(addr)
}

/// Problem Details (RFC 9457), as ASP.NET Core writes them.
fn problem(status: StatusCode, title: &str, detail: String) -> Response {
    let body = json!({
        "type": format!("https://tools.ietf.org/html/rfc9110#section-15.{}", match status.as_u16() {
            400 => "5.1", 401 => "5.2", 404 => "5.5", 409 => "5.10", 412 => "5.13", _ => "6.1",
        }),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (status, [(header::CONTENT_TYPE, "application/problem+json; charset=utf-8")], body.to_string()).into_response()
}

/// Its own authentication: every request needs the API key.
async fn api_key(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let key = request.headers().get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(API_KEY) {
        let mut answer = problem(StatusCode::UNAUTHORIZED, "Unauthorized", "A valid X-Api-Key is required.".into());
        answer.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey realm=\"billing\""));
        return answer;
    }
    next.run(request).await
}

fn not_found(account: &str, invoice: &str) -> Response {
    problem(StatusCode::NOT_FOUND, "Not Found", format!("Invoice '{invoice}' was not found for account '{account}'."))
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", format!("The store could not be reached: {e}"))
}

/// Money as the API writes it: a string with two decimals.
fn money(v: &Value) -> String {
    format!("{:.2}", v.as_f64().unwrap_or(0.0))
}

/// The stored invoice as the API's DTO.
fn dto(doc: &Value) -> Value {
    let (account, id) = (doc["customerId"].as_str().unwrap_or_default(), doc["id"].as_str().unwrap_or_default());
    let href = format!(
        "/api/v2/accounts/{}/invoices/{}",
        percent_encoding::utf8_percent_encode(account, percent_encoding::NON_ALPHANUMERIC),
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    );
    let status = doc["status"].as_str().unwrap_or("issued");
    let mut title = status.to_owned();
    if let Some(first) = title.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    json!({
        "invoiceNumber": id,
        "account": account,
        "issuedOn": doc["invoiceDate"],
        "period": {"from": doc["billingPeriod"]["start"], "to": doc["billingPeriod"]["end"]},
        "status": title,
        "currency": doc["currency"],
        "amounts": {
            "net": money(&doc["totals"]["preTax"]),
            "tax": money(&doc["totals"]["tax"]),
            "gross": money(&doc["totals"]["total"]),
        },
        "lineCount": doc["totals"]["lineCount"],
        "_links": {"self": {"href": href}, "void": {"href": format!("{href}/void"), "method": "POST"}},
    })
}

/// Its own ETag: a weak tag over the DTO, so it changes only when the DTO does.
fn etag(body: &[u8]) -> String {
    format!("W/\"{}\"", &tiering::codec::sha256_hex(body)[..20])
}

fn gzipped(request: &HeaderMap) -> bool {
    request.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("gzip"))
}

/// A JSON answer with the API's headers, gzip when the caller accepts it.
fn answer(status: StatusCode, request: &HeaderMap, body: Vec<u8>, tag: Option<&str>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=60"));
    headers.insert("api-supported-versions", HeaderValue::from_static("2.0, 2.1"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(
        "request-id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or(HeaderValue::from_static("-")),
    );
    if let Some(origin) = request.get(header::ORIGIN) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    if let Some(tag) = tag.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(header::ETAG, tag);
    }
    let body = if gzipped(request) {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = gz.write_all(&body);
        gz.finish().unwrap_or_default()
    } else {
        body
    };
    (status, headers, body).into_response()
}

async fn load(api: &Api, account: &str, invoice: &str) -> Result<Option<Value>, Response> {
    match api.cosmos.read(account, invoice).await {
        Ok(item) => Ok(serde_json::from_slice(item.doc.as_bytes()).ok()),
        Err(tiering::store::StoreError::NotFound) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

fn matches(list: Option<&HeaderValue>, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || bare(t) == bare(tag)))
}

async fn read(
    State(api): State<Arc<Api>>,
    Path((account, invoice)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let doc = match load(&api, &account, &invoice).await {
        Ok(Some(doc)) => doc,
        Ok(None) => return not_found(&account, &invoice),
        Err(e) => return e,
    };
    let body = dto(&doc).to_string().into_bytes();
    let tag = etag(&body);
    if matches(headers.get(header::IF_NONE_MATCH), &tag) {
        // No body and no content headers, as ASP.NET Core answers a 304.
        let mut plain = headers.clone();
        plain.remove(header::ACCEPT_ENCODING);
        let mut r = answer(StatusCode::NOT_MODIFIED, &plain, Vec::new(), Some(&tag));
        r.headers_mut().remove(header::CONTENT_TYPE);
        return r;
    }
    answer(StatusCode::OK, &headers, body, Some(&tag))
}

/// Applies `change` to the stored invoice, if `If-Match` (when sent) names its
/// current ETag: 412 when it does not, and when there is no such invoice.
async fn write(
    api: &Api,
    account: &str,
    invoice: &str,
    headers: &HeaderMap,
    change: impl FnOnce(&mut Value),
) -> Response {
    let mut doc = match load(api, account, invoice).await {
        Ok(Some(doc)) => doc,
        // RFC 9110, 13.1.1: If-Match is false where there is no representation.
        Ok(None) if headers.contains_key(header::IF_MATCH) => {
            return problem(StatusCode::PRECONDITION_FAILED, "Precondition Failed", "The invoice has changed.".into());
        }
        Ok(None) => return not_found(account, invoice),
        Err(e) => return e,
    };
    let tag = etag(dto(&doc).to_string().as_bytes());
    if headers.contains_key(header::IF_MATCH) && !matches(headers.get(header::IF_MATCH), &tag) {
        return problem(StatusCode::PRECONDITION_FAILED, "Precondition Failed", "The invoice has changed.".into());
    }
    let cosmos_etag = doc["_etag"].as_str().unwrap_or_default().to_owned();
    change(&mut doc);
    if let Some(o) = doc.as_object_mut() {
        for k in ["_rid", "_self", "_etag", "_attachments", "_ts"] {
            o.remove(k);
        }
    }
    let raw = match serde_json::value::to_raw_value(&doc) {
        Ok(raw) => raw,
        Err(e) => return unavailable(e),
    };
    let options = azure_data_cosmos::options::ItemWriteOptions::default()
        .with_precondition(azure_data_cosmos::options::Precondition::if_match(cosmos_etag));
    match api.cosmos.container_client().replace_item(account.to_owned(), invoice, &*raw, Some(options)).await {
        Ok(_) => {}
        Err(e) if e.status().is_not_found() => return not_found(account, invoice),
        Err(e) => return problem(StatusCode::CONFLICT, "Conflict", format!("The invoice changed meanwhile: {e}")),
    }
    let body = dto(&doc).to_string().into_bytes();
    let tag = etag(&body);
    answer(StatusCode::OK, headers, body, Some(&tag))
}

async fn patch(
    State(api): State<Arc<Api>>,
    Path((account, invoice)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(change) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "Bad Request", "The body is not JSON.".into());
    };
    let Some(status) = change["status"].as_str().map(str::to_ascii_lowercase) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "One or more validation errors occurred.",
            "status is required.".into(),
        );
    };
    write(&api, &account, &invoice, &headers, |doc| doc["status"] = json!(status)).await
}

async fn void(
    State(api): State<Arc<Api>>,
    Path((account, invoice)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    write(&api, &account, &invoice, &headers, |doc| doc["status"] = json!("void")).await
}

async fn delete(
    State(api): State<Arc<Api>>,
    Path((account, invoice)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    // Idempotent, as many APIs are: deleting what is not there is 204 too (so
    // an archived record it cannot see must be moved back before, never after).
    match api.cosmos.delete(&account, &invoice).await {
        Ok(_) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            if let Some(origin) = headers.get(header::ORIGIN) {
                r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            }
            r
        }
        Err(e) => unavailable(e),
    }
}

/// The keyset cursor: where the last page ended, as `(issuedOn, invoiceNumber)`.
fn cursor(date: &str, id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([date, id]).to_string())
}

fn uncursor(text: &str) -> Option<(String, String)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((v[0].as_str()?.to_owned(), v[1].as_str()?.to_owned()))
}

async fn list(
    State(api): State<Arc<Api>>,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (mut from, mut to, mut limit, mut after, mut status) = (None, None, DEFAULT_LIMIT, None, None::<String>);
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let date = || chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok().map(|d| d.to_string());
        match k.as_ref() {
            "issuedFrom" => match date() {
                Some(d) => from = Some(d),
                None => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "One or more validation errors occurred.",
                        "issuedFrom must be a date.".into(),
                    );
                }
            },
            "issuedTo" => match date() {
                Some(d) => to = Some(d),
                None => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "One or more validation errors occurred.",
                        "issuedTo must be a date.".into(),
                    );
                }
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "One or more validation errors occurred.",
                        format!("limit must be 1 to {MAX_LIMIT}."),
                    );
                }
            },
            "cursor" => match uncursor(&v) {
                Some(c) => after = Some(c),
                None => return problem(StatusCode::BAD_REQUEST, "Bad Request", "The cursor is not valid.".into()),
            },
            // A filter the reader's profile does not name.
            "status" => status = Some(v.to_lowercase()),
            _ => {}
        }
    }
    let query =
        azure_data_cosmos::Query::from("SELECT * FROM c WHERE c.customerId = @a").with_parameter("@a", &account);
    let Ok(query) = query else { return unavailable("query") };
    let scope = azure_data_cosmos::feed::FeedScope::partition(account.clone());
    let mut pages = match api.cosmos.pages(query, scope, 500, None).await {
        Ok(pages) => pages,
        Err(e) => return unavailable(e),
    };
    let mut docs: Vec<Value> = Vec::new();
    while let Some(page) = pages.next_page().await {
        match page {
            Ok(page) => docs.extend(page.docs.iter().filter_map(|d| serde_json::from_slice(d).ok())),
            Err(e) => return unavailable(e),
        }
    }
    let key = |d: &Value| {
        (d["invoiceDate"].as_str().unwrap_or_default().to_owned(), d["id"].as_str().unwrap_or_default().to_owned())
    };
    // Newest first, then by number, highest first: ties in another order than
    // the reader's list index (id ascending), as an API may break them.
    docs.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.cmp(&ka.0).then(kb.1.cmp(&ka.1))
    });
    let in_window = |d: &Value| {
        let (date, id) = key(d);
        from.as_ref().is_none_or(|f| date.as_str() >= f.as_str())
            && to.as_ref().is_none_or(|t| date.as_str() <= t.as_str())
            && after.as_ref().is_none_or(|(ad, ai)| date < *ad || (date == *ad && id < *ai))
            && status.as_ref().is_none_or(|s| d["status"].as_str().is_some_and(|have| have.eq_ignore_ascii_case(s)))
    };
    let page: Vec<&Value> = docs.iter().filter(|d| in_window(d)).take(limit + 1).collect();
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let next = if more {
        page.last().map(|d| {
            let (date, id) = key(d);
            cursor(&date, &id)
        })
    } else {
        None
    };
    let body = json!({
        "data": page.iter().map(|d| dto(d)).collect::<Vec<_>>(),
        "paging": {"limit": limit, "next": next},
    });
    answer(StatusCode::OK, &headers, body.to_string().into_bytes(), None)
}
