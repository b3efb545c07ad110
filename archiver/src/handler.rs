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
use tiering::cosmos::ConnectError;
use tiering::host::{InvokeRequest, InvokeResponse};
use tiering::settings::ArchiverSettings;
use tiering::store::Transport;
use tokio::sync::OnceCell;
use tracing::{error, info, warn};

use crate::run::Summary;
use crate::startup;
use crate::startup::Archiver;

/// The function name the host invokes (docs/function-apps.md).
pub const FUNCTION_NAME: &str = "ArchiveBillingRecords";

/// The archiver, connected to its stores on the first invocation that needs it,
/// so the handler answers the host's `GET /` probe at once whatever the stores do,
/// and a store that is down at start-up fails a run (reported), not the process.
#[derive(Debug, Clone)]
struct AppState {
    archiver: Arc<OnceCell<Archiver>>,
    settings: Arc<ArchiverSettings>,
    transport: Transport,
}

/// The handler around an archiver that is already connected (tests).
pub fn router(archiver: Archiver) -> Router {
    let settings = Arc::new(archiver.settings.clone());
    let state =
        AppState { archiver: Arc::new(OnceCell::new_with(Some(archiver))), settings, transport: Transport::BATCH };
    routes(state)
}

/// The handler that connects on the first invocation (production).
pub fn router_connecting_on_demand(settings: ArchiverSettings, transport: Transport) -> Router {
    routes(AppState { archiver: Arc::new(OnceCell::new()), settings: Arc::new(settings), transport })
}

/// [`router_connecting_on_demand`], also connecting at once in the background:
/// the first run then finds the stores connected, and settings that do not
/// describe the container (another partition key) stop the process at start-up
/// instead of failing every run. A store that is down now is connected on the
/// first invocation, as before.
pub fn router_connecting_now(settings: ArchiverSettings, transport: Transport) -> Router {
    let state = AppState { archiver: Arc::new(OnceCell::new()), settings: Arc::new(settings), transport };
    let warm = state.clone();
    tokio::spawn(async move {
        let writes = !warm.settings.dry_run;
        match startup::build((*warm.settings).clone(), warm.transport, writes).await {
            Ok(archiver) => {
                let _ = warm.archiver.set(archiver);
                info!("connected to both stores");
            }
            Err(e) if matches!(e.downcast_ref::<ConnectError>(), Some(ConnectError::Misconfigured(_))) => {
                error!(error = %format!("{e:#}"), "the archiver's settings do not describe the Cosmos container; stopping");
                std::process::exit(1);
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "the stores are not reachable at start-up; the first run connects")
            }
        }
    });
    routes(state)
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { StatusCode::OK }))
        .route(&format!("/{FUNCTION_NAME}"), post(invoke))
        .with_state(state)
}

/// One timer invocation: one pass (or none, when another pass holds the run lease).
async fn invoke(State(state): State<AppState>, body: Bytes) -> Response {
    let request = InvokeRequest::lenient(&body);
    info!(past_due = request.is_past_due(), host_utc_now = request.utc_now(), "timer invocation");
    let settings = state.settings.clone();
    let connected = state
        .archiver
        .get_or_try_init(|| startup::build((*settings).clone(), state.transport, !settings.dry_run))
        .await;
    let summary = match connected {
        Ok(archiver) => archiver.run(Utc::now(), settings.dry_run).await,
        Err(e) => Summary::not_started(&settings, format!("cannot connect to the stores: {e:#}")),
    };
    let s = &summary;
    let mut logs = vec![format!(
        "archive run {}: scanned {}, archived {}, already archived {}, would archive {}, changed during run {}, deleted by others {}, conflicts {}, blocked {}, failed {}, withdrawn {}, withdraw failed {}",
        s.status.as_str(),
        s.scanned,
        s.archived,
        s.already_archived,
        s.would_archive,
        s.changed_during_run,
        s.deleted_by_others,
        s.conflicts,
        s.blocked,
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
