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
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::run::Archiver;

/// The function name the host invokes (CONTRACT.md section 1).
pub const FUNCTION_NAME: &str = "ArchiveBillingRecords";

#[derive(Debug, Clone)]
struct AppState {
    archiver: Arc<Archiver>,
    /// One pass at a time per process: the timer is a singleton, but an operator's
    /// manual trigger could overlap it.
    running: Arc<Mutex<()>>,
}

pub fn router(archiver: Archiver) -> Router {
    let state = AppState { archiver: Arc::new(archiver), running: Arc::new(Mutex::new(())) };
    Router::new()
        .route("/", get(|| async { StatusCode::OK }))
        .route(&format!("/{FUNCTION_NAME}"), post(invoke))
        .with_state(state)
}

async fn invoke(State(state): State<AppState>, body: Bytes) -> Response {
    let request = InvokeRequest::lenient(&body);
    let Ok(_guard) = state.running.try_lock() else {
        warn!("archive run requested while one is in progress; skipped");
        let response = InvokeResponse {
            logs: vec!["an archive run is already in progress in this instance; this invocation did nothing".into()],
            ..Default::default()
        };
        return (StatusCode::CONFLICT, Json(response)).into_response();
    };
    info!(past_due = request.is_past_due(), host_utc_now = request.utc_now(), "timer invocation");
    let dry_run = state.archiver.settings.dry_run;
    let summary = state.archiver.run(Utc::now(), dry_run).await;
    let mut logs = vec![format!(
        "archive run {}: scanned {}, archived {}, already archived {}, would archive {}, changed during run {}, deleted by others {}, failed {}",
        summary.status,
        summary.scanned,
        summary.archived,
        summary.already_archived,
        summary.would_archive,
        summary.changed_during_run,
        summary.deleted_by_others,
        summary.failed
    )];
    if let Some(e) = &summary.error {
        logs.push(e.clone());
    }
    let status = if summary.is_failure() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
    let response =
        InvokeResponse { logs, return_value: serde_json::to_value(&summary).unwrap_or_default(), ..Default::default() };
    (status, [(header::CONTENT_TYPE, "application/json")], Json(response)).into_response()
}
