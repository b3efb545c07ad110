//! A stand-in for the team's current API: it serves a contract profile straight
//! from Cosmos, as the API a team runs today does (a Functions app with a Cosmos
//! input binding, or a small service), with none of this project's tiering. The
//! adoption tests and the demo compare the reader with it (`scripts/compare.py`),
//! the way an adopter compares the reader with their real API before switching.
//!
//! It takes the writes a team's API has too, straight on Cosmos as such an API
//! does: replace (`PUT`, the record must exist; `If-Match` honoured), patch
//! (`PATCH`, the body's top-level members merged in), delete (`DELETE`) and,
//! with the profile's `writes.sub_paths`, an action (`POST .../{id}/{action}`,
//! recorded in the document as `lastAction`). A write answers as a read of the
//! written record does (a delete: 204); a missing record, the profile's
//! missing-record answer; a stale `If-Match`, 412.
//!
//! It is written apart from the reader on purpose: the body rule walks the
//! document with serde's own map visitor (values kept as raw JSON text), not with
//! `tiering::record`; the list reads the whole partition and sorts it, not the
//! reader's two-query scheme; its continuation token is a plain offset. Keys are
//! re-printed by serde_json, so documents whose keys hold JSON escapes would
//! differ from Cosmos's bytes here; the tests' data has none.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use tiering::contract::{BodyRule, Contract};
use tiering::cosmos::CosmosStore;
use tiering::settings::StoreSettings;

#[derive(Debug, Clone)]
struct Api {
    contract: Arc<Contract>,
    cosmos: CosmosStore,
    age_field: String,
    keys: Arc<tokio::sync::RwLock<HashMap<String, jsonwebtoken::DecodingKey>>>,
    http: reqwest::Client,
}

/// Serves `contract` from the container `stores` names, on a free 127.0.0.1 port.
pub async fn start(contract: Contract, stores: &StoreSettings) -> anyhow::Result<SocketAddr> {
    let cosmos = CosmosStore::connect(stores, testkit::emulator::TEST_TRANSPORT).await?;
    let api = Api {
        contract: Arc::new(contract),
        cosmos,
        age_field: stores.age_field.name().to_owned(),
        keys: Arc::default(),
        http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?,
    };
    let (record, list) = reader_free_paths(&api.contract);
    let mut router =
        Router::new().route(&record, get(record_route).put(replace_route).patch(patch_route).delete(delete_route));
    if let Some(list) = list {
        router = router.route(&list, get(list_route));
    }
    if api.contract.writes.sub_paths {
        router = router.route(&format!("{record}/{{*action}}"), axum::routing::post(action_route));
    }
    // As an ASP.NET Core API with JwtBearer authentication and a policy per customer.
    let router = router.route_layer(axum::middleware::from_fn_with_state(api.clone(), guard));
    let (listener, addr) = tiering::host::bind(0).await?;
    tokio::spawn(tiering::host::serve(listener, router.with_state(api), std::future::pending()));
    Ok(addr)
}

fn reader_free_paths(contract: &Contract) -> (String, Option<String>) {
    let path = |r: &tiering::contract::Route| r.fill_template(&contract.prefix);
    (path(&contract.record), contract.list.as_ref().map(path))
}

/// The profile's `[auth]`, as the team's API enforces it (written apart from the
/// reader's `auth` module): bearer tokens checked with `jsonwebtoken` against
/// the issuer's keys (fetched when a key id is unknown), then the caller's
/// customer claim or back-office role against the route's partition-key value.
async fn guard(
    State(api): State<Api>,
    Path(values): Path<HashMap<String, String>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(bearer) = api.contract.auth.bearer() else { return next.run(request).await };
    let refuse = |challenge: &str| {
        let u = &bearer.unauthenticated;
        let body = u.body.clone().unwrap_or_else(|| {
            serde_json::json!({"error": {"code": "Unauthorized", "message": "a valid bearer token is required"}})
                .to_string()
        });
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, u.content_type.clone()), (header::WWW_AUTHENTICATE, challenge.to_owned())],
            body,
        )
            .into_response()
    };
    let invalid = || refuse(&bearer.unauthenticated.www_authenticate_invalid);
    let authorization: Vec<&HeaderValue> = request.headers().get_all(header::AUTHORIZATION).iter().collect();
    let token = match authorization.as_slice() {
        [] => return refuse(&bearer.unauthenticated.www_authenticate),
        [one] if one.len() <= tiering::contract::auth::MAX_AUTHORIZATION_BYTES => match one.to_str() {
            Ok(text) if text.len() > 7 && text[..7].eq_ignore_ascii_case("bearer ") => text[7..].trim().to_owned(),
            Ok(text) if !text.to_ascii_lowercase().starts_with("bearer") => {
                return refuse(&bearer.unauthenticated.www_authenticate);
            }
            _ => return invalid(),
        },
        _ => return invalid(),
    };
    let Ok(head) = jsonwebtoken::decode_header(&token) else { return invalid() };
    let Some(kid) = head.kid.clone() else { return invalid() };
    if !api.keys.read().await.contains_key(&kid) {
        match fetch_keys(&api, &bearer.keys).await {
            Ok(keys) => *api.keys.write().await = keys,
            Err(e) if api.keys.read().await.is_empty() => {
                let body = serde_json::json!({"error": {"code": "ServiceUnavailable", "message": e.to_string()}});
                return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], body.to_string())
                    .into_response();
            }
            Err(_) => {}
        }
    }
    let Some(key) = api.keys.read().await.get(&kid).cloned() else { return invalid() };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // The token's algorithm, when the profile lists it (one family per key).
    if !bearer.algorithms.iter().any(|a| a.parse() == Ok(head.alg)) {
        return invalid();
    }
    validation.algorithms = vec![head.alg];
    validation.set_issuer(&bearer.issuers);
    validation.set_audience(&bearer.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = bearer.clock_skew_seconds;
    let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation) else { return invalid() };
    let claims = data.claims;
    let pk = match api.contract.key_of(&values) {
        Some((pk, _)) => pk.to_owned(),
        None => api.contract.partition_key_param.as_ref().and_then(|p| values.get(p)).cloned().unwrap_or_default(),
    };
    // Reads by the read-all roles and scopes; writes by the write-all ones.
    let writing = ![Method::GET, Method::HEAD].contains(request.method());
    let (roles, scopes) = if writing {
        (&bearer.write_all_roles, &bearer.write_all_scopes)
    } else {
        (&bearer.read_all_roles, &bearer.read_all_scopes)
    };
    let back_office = claims["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r.as_str().is_some_and(|r| roles.iter().any(|a| a == r)))
        || claims["scp"].as_str().is_some_and(|s| s.split(' ').any(|s| scopes.contains(&s.to_owned())));
    let anyone = bearer.read_all_roles.is_empty()
        && bearer.read_all_scopes.is_empty()
        && (!writing || bearer.write_all_roles.is_empty() && bearer.write_all_scopes.is_empty());
    let own = match &bearer.partition_claim {
        None => anyone,
        Some(claim) => match &claims[claim.as_str()] {
            serde_json::Value::String(v) => *v == pk,
            serde_json::Value::Array(vs) => vs.iter().any(|v| v.as_str() == Some(pk.as_str())),
            _ => false,
        },
    };
    if back_office || own {
        return next.run(request).await;
    }
    let f = &bearer.forbidden;
    match (f.body(&values), f.status) {
        (Some(body), status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            [(header::CONTENT_TYPE, f.content_type.clone())],
            body,
        )
            .into_response(),
        (None, 404) if api.contract.key_of(&values).is_some() => not_found(&api.contract, &values),
        (None, 404) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8".to_owned())],
            serde_json::json!({"error": {"code": "NotFound", "message": "not found"}}).to_string(),
        )
            .into_response(),
        (None, _) => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, f.content_type.clone())],
            serde_json::json!({"error": {"code": "Forbidden", "message": "the caller may not read this partition"}})
                .to_string(),
        )
            .into_response(),
    }
}

async fn fetch_keys(
    api: &Api,
    source: &tiering::contract::auth::KeySource,
) -> anyhow::Result<HashMap<String, jsonwebtoken::DecodingKey>> {
    use tiering::contract::auth::KeySource;
    let jwks_uri = match source {
        KeySource::Jwks(url) => url.to_string(),
        KeySource::OpenIdConfiguration(url) => {
            let config: serde_json::Value = api.http.get(url.as_str()).send().await?.error_for_status()?.json().await?;
            config["jwks_uri"].as_str().unwrap_or_default().to_owned()
        }
    };
    let set: jsonwebtoken::jwk::JwkSet = api.http.get(&jwks_uri).send().await?.error_for_status()?.json().await?;
    Ok(set
        .keys
        .iter()
        .filter_map(|k| Some((k.common.key_id.clone()?, jsonwebtoken::DecodingKey::from_jwk(k).ok()?)))
        .collect())
}

/// A document's top-level members in order, values as their raw JSON text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Ordered)
    }
}

impl Members {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.get())
    }
}

fn body_of(contract: &Contract, raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let omit = match &contract.body {
        BodyRule::AsStored => return Ok(raw.to_vec()),
        BodyRule::Omit(omit) => omit,
    };
    let members: Members = serde_json::from_slice(raw)?;
    let kept: Vec<String> = members
        .0
        .iter()
        .filter(|(k, _)| !omit.contains(k))
        .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap_or_default(), v.get()))
        .collect();
    Ok(format!("{{{}}}", kept.join(",")).into_bytes())
}

async fn record_route(
    State(api): State<Api>,
    Path(values): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    serve_record(&api, &values, &headers).await
}

async fn serve_record(api: &Api, values: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    let Some((pk, id)) = api.contract.key_of(values) else { return StatusCode::BAD_REQUEST.into_response() };
    let doc = match api.cosmos.read(pk, id).await {
        Ok(item) => item.doc,
        Err(tiering::store::StoreError::NotFound) => return not_found(&api.contract, values),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let Ok(members) = serde_json::from_slice::<Members>(doc.as_bytes()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let etag = members.get("_etag").and_then(|e| serde_json::from_str::<String>(e).ok()).unwrap_or_default();
    let ts = members.get("_ts").and_then(|t| t.parse::<i64>().ok()).unwrap_or_default();
    let revalidated = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if api.contract.etag && revalidated {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match body_of(&api.contract, doc.as_bytes()) {
            Ok(body) => {
                (StatusCode::OK, [(header::CONTENT_TYPE, api.contract.content_type.clone())], body).into_response()
            }
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    };
    if api.contract.etag
        && let Ok(value) = HeaderValue::from_str(&etag)
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    if api.contract.last_modified {
        let date = chrono::DateTime::from_timestamp(ts, 0).unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&date.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
            response.headers_mut().insert(header::LAST_MODIFIED, value);
        }
    }
    response
}

/// What a write's Cosmos error answers.
fn write_error(api: &Api, values: &HashMap<String, String>, e: azure_data_cosmos::CosmosError) -> Response {
    match tiering::store::StoreError::from(e) {
        tiering::store::StoreError::NotFound => not_found(&api.contract, values),
        tiering::store::StoreError::PreconditionFailed => StatusCode::PRECONDITION_FAILED.into_response(),
        other => (StatusCode::SERVICE_UNAVAILABLE, other.to_string()).into_response(),
    }
}

fn if_match(headers: &HeaderMap) -> azure_data_cosmos::options::ItemWriteOptions {
    let options = azure_data_cosmos::options::ItemWriteOptions::default();
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(etag) => options.with_precondition(azure_data_cosmos::options::Precondition::if_match(etag.to_owned())),
        None => options,
    }
}

/// Replaces `(pk, id)` with `doc`, which must exist (`If-Match` as given, or the version read).
async fn replace(
    api: &Api,
    values: &HashMap<String, String>,
    headers: &HeaderMap,
    mut doc: serde_json::Value,
) -> Response {
    let Some((pk, id)) = api.contract.key_of(values) else { return StatusCode::BAD_REQUEST.into_response() };
    // Cosmos assigns the system properties; a body read back and sent again drops them.
    if let Some(map) = doc.as_object_mut() {
        map.retain(|k, _| !tiering::record::SYSTEM_PROPERTIES.contains(&k.as_str()));
    }
    let property = api.cosmos.partition_key().property();
    if doc.get("id").and_then(|v| v.as_str()) != Some(id) || doc.get(property).and_then(|v| v.as_str()) != Some(pk) {
        return (StatusCode::BAD_REQUEST, "the body's id and partition key must be the route's").into_response();
    }
    let written = api.cosmos.container_client().replace_item(pk.to_owned(), id, &doc, Some(if_match(headers))).await;
    match written {
        Ok(_) => serve_record(api, values, &HeaderMap::new()).await,
        Err(e) => write_error(api, values, e),
    }
}

async fn replace_route(
    State(api): State<Api>,
    Path(values): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(doc @ serde_json::Value::Object(_)) => replace(&api, &values, &headers, doc).await,
        _ => (StatusCode::BAD_REQUEST, "the body must be a JSON object").into_response(),
    }
}

/// The record as Cosmos holds it, as JSON, for a patch or an action.
async fn current(
    api: &Api,
    values: &HashMap<String, String>,
) -> Result<serde_json::Map<String, serde_json::Value>, Response> {
    let Some((pk, id)) = api.contract.key_of(values) else { return Err(StatusCode::BAD_REQUEST.into_response()) };
    match api.cosmos.read(pk, id).await {
        Ok(item) => match serde_json::from_slice(item.doc.as_bytes()) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        },
        Err(tiering::store::StoreError::NotFound) => Err(not_found(&api.contract, values)),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()),
    }
}

/// With the version read as the `If-Match`, unless the caller gave one: a
/// read-modify-write that never loses a concurrent write.
fn or_read_version(headers: &HeaderMap, doc: &serde_json::Map<String, serde_json::Value>) -> HeaderMap {
    let mut headers = headers.clone();
    if !headers.contains_key(header::IF_MATCH)
        && let Some(etag) = doc.get("_etag").and_then(|e| e.as_str()).and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(header::IF_MATCH, etag);
    }
    headers
}

async fn patch_route(
    State(api): State<Api>,
    Path(values): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let Ok(serde_json::Value::Object(changes)) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body must be a JSON object").into_response();
    };
    let mut doc = match current(&api, &values).await {
        Ok(doc) => doc,
        Err(answer) => return answer,
    };
    let headers = or_read_version(&headers, &doc);
    doc.extend(changes);
    replace(&api, &values, &headers, serde_json::Value::Object(doc)).await
}

async fn action_route(
    State(api): State<Api>,
    Path(mut values): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let action = values.remove("action").unwrap_or_default();
    let mut doc = match current(&api, &values).await {
        Ok(doc) => doc,
        Err(answer) => return answer,
    };
    let headers = or_read_version(&headers, &doc);
    doc.insert("lastAction".into(), serde_json::Value::String(action));
    replace(&api, &values, &headers, serde_json::Value::Object(doc)).await
}

async fn delete_route(
    State(api): State<Api>,
    Path(values): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some((pk, id)) = api.contract.key_of(&values) else { return StatusCode::BAD_REQUEST.into_response() };
    match api.cosmos.container_client().delete_item(pk.to_owned(), id, Some(if_match(&headers))).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => write_error(&api, &values, e),
    }
}

fn not_found(contract: &Contract, values: &HashMap<String, String>) -> Response {
    let status = StatusCode::from_u16(contract.not_found.status).unwrap_or(StatusCode::NOT_FOUND);
    let body = contract.not_found_body(values).unwrap_or_else(|| {
        // The default profile's JSON error (docs/read-api.md, "Errors").
        let (pk, id) = contract.key_of(values).unwrap_or_default();
        let whose = match contract.partition_key_param.as_deref() {
            None => String::new(),
            Some("customerId") => format!(" of customer {pk:?}"),
            Some(name) => format!(" of {name} {pk:?}"),
        };
        let message = format!("record {id:?}{whose} does not exist");
        serde_json::json!({"error": {"code": "NotFound", "message": message}}).to_string()
    });
    (status, [(header::CONTENT_TYPE, contract.not_found.content_type.clone())], body).into_response()
}

/// The whole partition, sorted newest first by the age field, then by id; a
/// page is a slice of it, the token its offset.
async fn list_route(
    State(api): State<Api>,
    Path(values): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Response {
    let pk_param = api.contract.partition_key_param.clone().unwrap_or_default();
    let Some(pk) = values.get(&pk_param) else { return StatusCode::BAD_REQUEST.into_response() };
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let page_size: usize = params.get("pageSize").and_then(|p| p.parse().ok()).unwrap_or(50);
    let offset: usize =
        params.get("continuationToken").and_then(|t| t.strip_prefix("offset-")?.parse().ok()).unwrap_or(0);
    let property = api.cosmos.partition_key().property().to_owned();
    let sql = format!("SELECT * FROM c WHERE c[\"{property}\"] = @pk");
    let Ok(query) = azure_data_cosmos::Query::from(sql).with_parameter("@pk", pk.as_str()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let items = api
        .cosmos
        .container_client()
        .query_items::<Box<RawValue>>(query, azure_data_cosmos::feed::FeedScope::partition(pk.clone()), None)
        .await;
    let Ok(items) = items else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    let Ok(docs) = items.try_collect::<Vec<Box<RawValue>>>().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let mut keyed: Vec<(serde_json::Value, String, Vec<u8>)> = Vec::new();
    for doc in docs {
        let raw = doc.get().as_bytes().to_vec();
        let Ok(members) = serde_json::from_slice::<Members>(&raw) else { continue };
        let age = members.get(&api.age_field).and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok());
        let id = members.get("id").and_then(|i| serde_json::from_str::<String>(i).ok());
        // Records without a usable age value are not listed (docs/read-api.md, "List").
        let (Some(age), Some(id)) = (age.filter(|a| a.is_number() || a.is_string()), id) else { continue };
        let Ok(body) = body_of(&api.contract, &raw) else { continue };
        keyed.push((age, id, body));
    }
    keyed.sort_by(|a, b| newest_first(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
    let page: Vec<&[u8]> = keyed.iter().skip(offset).take(page_size).map(|k| k.2.as_slice()).collect();
    let next = (offset + page.len() < keyed.len()).then(|| format!("offset-{}", offset + page.len()));
    let mut body = b"{\"items\":[".to_vec();
    body.extend_from_slice(&page.join(&b","[..]));
    body.extend_from_slice(b"],\"continuationToken\":");
    body.extend_from_slice(serde_json::to_string(&next).unwrap_or_default().as_bytes());
    body.push(b'}');
    (StatusCode::OK, [(header::CONTENT_TYPE, api.contract.content_type.clone())], body).into_response()
}

/// Larger ages first: numbers numerically, strings by code point (as Cosmos orders them).
fn newest_first(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            y.as_f64().partial_cmp(&x.as_f64()).unwrap_or(std::cmp::Ordering::Equal)
        }
        (serde_json::Value::String(x), serde_json::Value::String(y)) => y.cmp(x),
        (serde_json::Value::Number(_), _) => std::cmp::Ordering::Greater,
        _ => std::cmp::Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_rule_keeps_values_as_stored() {
        let contract = Contract::default_profile();
        let raw = br#"{"id":"r","n":1.50,"big":12345678901234567890,"_rid":"x","o":{"_ts":1},"_ts":7}"#;
        assert_eq!(
            body_of(&contract, raw).unwrap(),
            br#"{"id":"r","n":1.50,"big":12345678901234567890,"o":{"_ts":1}}"#
        );
    }
}
