//! The reader: an HTTP-triggered Azure Functions custom handler that serves the
//! billing-records read API unchanged, from Cosmos DB first and the Blob archive after.
//!
//! - [`routes`]: the contract's GET routes (as the profile names them),
//!   `If-None-Match`, list parameters, the missing-record answer.
//! - [`connection`]: the Cosmos client, connected in the background; requests
//!   wait for a first connect in progress.
//! - [`tiers`]: the two-tier read and the cross-tier list merge.
//! - [`token`]: the opaque, checked continuation token.
//! - [`writes`]: write-through to the current API (`READER_UPSTREAM_URL`), moving
//!   archived records back first.
//! - [`error`]: the one error type and its JSON body.
//! - [`startup`]: building the stores from settings (`main` binds and serves).
//!
//! The contract it serves is the adopter's profile (`tiering::contract`; the
//! default is docs/read-api.md and `reader/openapi.yaml`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod connection;
pub mod error;
pub mod routes;
pub mod startup;
pub mod tiers;
pub mod token;
pub mod writes;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use tiering::contract::Contract;

use crate::error::ApiError;
use crate::tiers::Tiers;

/// The routes the host forwards, prefix included, as the contract profile
/// names them (docs/function-apps.md): `(record, list)`.
pub fn api_routes(contract: &Contract) -> (String, Option<String>) {
    let path = |route: &tiering::contract::Route| route.fill_template(&contract.prefix);
    (path(&contract.record), contract.list.as_ref().map(path))
}

pub fn router(tiers: Tiers) -> Router {
    let deadline = tiers.request_timeout;
    let contract = tiers.contract.clone();
    let (record, list) = api_routes(&contract);
    // Writes pass through only with an upstream; without one the reader is read-only.
    let writes = if tiers.upstream.is_some() { contract.writes.clone() } else { Default::default() };
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
            .route(&list, get(routes::list_records).fallback(only_get.clone()))
            .route(&format!("{list}/"), get(routes::list_records).fallback(only_get.clone()));
    }
    let record_reads = get(routes::get_record).layer(middleware::from_fn_with_state(deadline, within_deadline));
    let mut record_route = record_reads.fallback(not_allowed(record_allow));
    for method in &writes.methods {
        // A write keeps its own deadlines (writes.rs): a forwarded write that times
        // out is not "unavailable", it may have been applied.
        record_route = match method.as_str() {
            "PUT" => record_route.put(writes::write_record),
            "PATCH" => record_route.patch(writes::write_record),
            _ => record_route.delete(writes::write_record),
        };
    }
    let mut api = reads.layer(middleware::from_fn_with_state(deadline, within_deadline)).route(&record, record_route);
    if writes.sub_paths {
        let action = format!("{record}/{{*{}}}", writes::ACTION_PARAM);
        // Reads of a sub-path are no route, as without writes; other methods 405.
        let sub_path_fallback = |method: axum::http::Method| async move {
            if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
                ApiError::NotFound("no such route".into())
            } else {
                ApiError::MethodNotAllowed { allow: "POST".into() }
            }
        };
        api = api.route(&action, axum::routing::post(writes::write_record).fallback(sub_path_fallback));
    }
    // Every API route authenticates first (before its route values are even
    // checked); the root probe and unmatched paths do not.
    let api = api.route_layer(middleware::from_fn_with_state(tiers.clone(), auth::authenticate)).with_state(tiers);
    Router::new()
        // The host's readiness probe: answer at once, touch no store.
        .route("/", get(|| async { StatusCode::OK }))
        .merge(api.clone())
        .fallback(move |request: Request| in_any_case(api.clone(), contract.clone(), request))
}

/// A path that matches a route but for the case of its literal segments is
/// served as that route, as the Functions host matches it (see
/// `Contract::canonical_path`); anything else is no route.
async fn in_any_case(
    api: Router,
    contract: std::sync::Arc<tiering::contract::Contract>,
    mut request: Request,
) -> Response {
    use tower::ServiceExt;
    let Some(path) = contract.canonical_path(request.uri().path()) else {
        return ApiError::NotFound("no such route".into()).into_response();
    };
    // A write passes the path on as the consumer sent it, literals and all.
    let sent = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    request.extensions_mut().insert(writes::SentPath(sent));
    let uri = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    match uri.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return ApiError::NotFound("no such route".into()).into_response(),
    }
    match api.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Every API request answers within `READER_TIMEOUT_SECONDS`: a store that is slow
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
