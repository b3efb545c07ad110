//! The custom-handler HTTP surface: `GET /` for the host's readiness probe and
//! `POST /ArchiveBillingRecords` for the timer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use tiering::host::{InvokeRequest, InvokeResponse};
use tracing::info;

use crate::run::Archiver;

/// The function name the host invokes (docs/function-apps.md).
pub const FUNCTION_NAME: &str = "ArchiveBillingRecords";

#[derive(Debug, Clone)]
struct AppState {
    archiver: Arc<Archiver>,
}

pub fn router(archiver: Archiver) -> Router {
    let state = AppState { archiver: Arc::new(archiver) };
    Router::new()
        .route("/", get(|| async { StatusCode::OK }))
        .route(&format!("/{FUNCTION_NAME}"), post(invoke))
        .with_state(state)
}

/// One timer invocation: one pass (or none, when another pass holds the run lease).
async fn invoke(State(state): State<AppState>, body: Bytes) -> Response {
    let request = InvokeRequest::lenient(&body);
    info!(past_due = request.is_past_due(), host_utc_now = request.utc_now(), "timer invocation");
    let dry_run = state.archiver.settings.dry_run;
    let summary = state.archiver.run(Utc::now(), dry_run).await;
    let s = &summary;
    let mut logs = vec![format!(
        "archive run {}: scanned {}, archived {}, already archived {}, would archive {}, changed during run {}, deleted by others {}, conflicts {}, failed {}, withdrawn {}, withdraw failed {}",
        s.status.as_str(),
        s.scanned,
        s.archived,
        s.already_archived,
        s.would_archive,
        s.changed_during_run,
        s.deleted_by_others,
        s.conflicts,
        s.failed,
        s.withdrawn,
        s.withdraw_failed
    )];
    if let Some(e) = &summary.error {
        logs.push(e.clone());
    }
    let status = if summary.is_failure() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
    let response =
        InvokeResponse { logs, return_value: serde_json::to_value(&summary).unwrap_or_default(), ..Default::default() };
    (status, [(header::CONTENT_TYPE, "application/json")], Json(response)).into_response()
}
