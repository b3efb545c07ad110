//! The reader: an HTTP-triggered Azure Functions custom handler that keeps the
//! team's billing-records API unchanged while old records live in the Blob
//! archive. It runs in one of two modes, as the contract profile says:
//!
//! - **serve mode** ([`serve`], with [`writes`]): the reader serves the read
//!   contract itself, from Cosmos DB first and the archive after, for APIs
//!   that return documents as stored (docs/read-api.md);
//! - **front mode** ([`front`]): the reader stands in front of the current
//!   API, forwards every request to it, and when it answers "missing" for an
//!   archived record, moves the record back into Cosmos and asks again
//!   (docs/front-mode.md).
//!
//! The modules each mode's path uses, each in one place:
//! - [`auth`]: the gate, callers' bearer tokens, and the per-partition rule;
//! - [`route`]: the route's values, checked; [`answers`]: the profile's
//!   missing-record answer and the validators' formats;
//! - [`tiers`]: the two-tier read and the cross-tier list merge, over the
//!   stores ([`connection`]: Cosmos, connected in the background);
//! - [`hydrate`]: moving archived records back into Cosmos;
//! - [`forward`]: everything that goes to the current API and comes back;
//! - [`token`]: serve mode's continuation token; [`error`]: the one error type;
//! - [`app`] and [`startup`]: the application, built from settings (`main`
//!   binds and serves).
//!
//! The contract is the adopter's profile (`tiering::contract`; the default is
//! docs/read-api.md and `reader/openapi.yaml`).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod answers;
pub mod app;
pub mod auth;
pub mod connection;
pub mod error;
pub mod forward;
pub mod front;
pub mod hydrate;
pub mod route;
pub mod serve;
pub mod startup;
pub mod tiers;
pub mod token;
pub mod writes;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use tiering::contract::Contract;

use crate::app::App;
use crate::error::ApiError;

/// The routes the host forwards, prefix included, as the contract profile
/// names them (docs/function-apps.md): `(record, list)`.
pub fn api_routes(contract: &Contract) -> (String, Option<String>) {
    let path = |route: &tiering::contract::Route| route.fill_template(&contract.prefix);
    (path(&contract.record), contract.list.as_ref().map(path))
}

/// The reader's routes: the host's readiness probe, and the mode's API routes.
pub fn router(app: App) -> Router {
    let contract = app.contract.clone();
    let api = match contract.front {
        Some(_) => front::router(app),
        None => serve::router(app),
    };
    Router::new()
        // The host's readiness probe: answer at once, touch no store.
        .route("/", get(|| async { StatusCode::OK }))
        .merge(api.clone())
        .fallback(move |request: Request| in_any_case(api.clone(), contract.clone(), request))
}

/// A path that matches a route but for the case of its literal segments is
/// served as that route, as the Functions host matches it (see
/// `Contract::canonical_path`); anything else is no route.
async fn in_any_case(api: Router, contract: std::sync::Arc<Contract>, mut request: Request) -> Response {
    use tower::ServiceExt;
    let Some(path) = contract.canonical_path(request.uri().path()) else {
        return ApiError::NotFound("no such route".into()).into_response();
    };
    // What is forwarded keeps the path as the consumer sent it, literals and all.
    let sent = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    request.extensions_mut().insert(forward::SentPath(sent));
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
