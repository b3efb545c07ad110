//! The reader: an HTTP-triggered Azure Functions custom handler that serves the
//! billing-records read API unchanged, from Cosmos DB first and the Blob archive after.
//!
//! - [`routes`]: the contract's two GET routes, `If-None-Match`, list parameters.
//! - [`tiers`]: the two-tier read and the cross-tier list merge.
//! - [`token`]: the opaque, checked continuation token.
//! - [`error`]: the one error type and its JSON body.
//! - [`startup`]: building the stores from settings (`main` binds and serves).
//!
//! The contract it serves is docs/read-api.md and `reader/openapi.yaml`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod routes;
pub mod startup;
pub mod tiers;
pub mod token;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::tiers::Tiers;

/// The route the host forwards, `/api` prefix included (docs/function-apps.md).
pub const RECORD_ROUTE: &str = "/api/customers/{customerId}/billing-records/{recordId}";
pub const LIST_ROUTE: &str = "/api/customers/{customerId}/billing-records";

pub fn router(tiers: Tiers) -> Router {
    let only_get = || async { ApiError::MethodNotAllowed };
    let deadline = tiers.request_timeout;
    let api = Router::new()
        .route(RECORD_ROUTE, get(routes::get_record).fallback(only_get))
        .route(LIST_ROUTE, get(routes::list_records).fallback(only_get))
        .route(&format!("{LIST_ROUTE}/"), get(routes::list_records).fallback(only_get))
        .layer(middleware::from_fn_with_state(deadline, within_deadline))
        .with_state(tiers);
    Router::new()
        // The host's readiness probe: answer at once, touch no store.
        .route("/", get(|| async { StatusCode::OK }))
        .merge(api)
        .fallback(|| async { ApiError::NotFound("no such route".into()).into_response() })
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
