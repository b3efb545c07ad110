//! The reader: an HTTP-triggered Azure Functions custom handler that serves the
//! billing-records read API unchanged, from Cosmos DB first and the Blob archive after.
//!
//! - [`routes`]: the contract's two GET routes, `If-None-Match`, list parameters.
//! - [`tiers`]: the two-tier read and the cross-tier list merge.
//! - [`token`]: the opaque, checked continuation token.
//! - [`error`]: the one error type and its JSON body.
//! - [`startup`]: building the stores from settings, binding, graceful shutdown.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod routes;
pub mod startup;
pub mod tiers;
pub mod token;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::error::ApiError;
use crate::tiers::Tiers;

/// The route the host forwards, `/api` prefix included (CONTRACT.md section 1).
pub const RECORD_ROUTE: &str = "/api/customers/{customerId}/billing-records/{recordId}";
pub const LIST_ROUTE: &str = "/api/customers/{customerId}/billing-records";

pub fn router(tiers: Tiers) -> Router {
    let only_get = || async { ApiError::MethodNotAllowed };
    Router::new()
        // The host's readiness probe: answer at once, touch no store.
        .route("/", get(|| async { StatusCode::OK }))
        .route(RECORD_ROUTE, get(routes::get_record).fallback(only_get))
        .route(LIST_ROUTE, get(routes::list_records).fallback(only_get))
        .route(&format!("{LIST_ROUTE}/"), get(routes::list_records).fallback(only_get))
        .fallback(|| async { ApiError::NotFound("no such route".into()).into_response() })
        .with_state(tiers)
}
