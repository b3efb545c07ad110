//! Write-through (`READER_UPSTREAM_URL`), serve mode's writes: the record
//! route also takes the write methods the contract profile names, and passes
//! each to the team's current API (docs/writes.md).
//!
//! For every write: if the record is archived, move it back into Cosmos first
//! ([`crate::hydrate`]), so the current API finds it where it always did; then
//! forward the request ([`crate::forward`]: the path checked segment by segment,
//! the Functions key, hop-by-hop headers, method overrides and URL rewrites left
//! out) and return the upstream's answer unchanged. Consumers cannot tell. A
//! move-back that cannot complete answers 503 with `Retry-After` and forwards
//! nothing; an upstream that cannot be reached answers 502 with the JSON error
//! body, the record hot and intact (or 502 saying the write may have been
//! applied, when the connection broke after the request was sent; 504 past
//! [`UPSTREAM_TIMEOUT`]).
//!
//! The archive run can archive a record between the check here and the
//! upstream's write (only a record whose last write is older than the quiet
//! period, `ARCHIVE_QUIET_DAYS`): the upstream then gives its missing-record
//! answer for a record that exists. So that answer to a write is checked once:
//! when the record has an archived copy by then, it is moved back and the
//! request forwarded again (the answer means the upstream applied nothing).

use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::response::Response;
use tiering::moveback::MovedBack;
use tracing::{info, warn};

use crate::app::App;
use crate::error::ApiError;
use crate::forward::{self, Headers, Outgoing};
use crate::hydrate;
use crate::route::route_values;
use crate::tiers::Tiers;

/// How long a write may take in all, forwards and move-backs together: below
/// the Functions host's 230-second limit on an HTTP request, and independent of
/// `READER_TIMEOUT_SECONDS` (a read's deadline, which bounds each move-back).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(220);

/// The route placeholder of a record's sub-path (`{record route}/{*action}`).
pub const ACTION_PARAM: &str = "action";

/// A write to the record route (or to a record's sub-path), as the profile allows.
///
/// The record is moved back first when archived, then the request forwarded.
/// An `If-Match` naming the archived version (the ETag the archive served) is
/// sent as the moved-back record's new ETag: the same version, under the name
/// Cosmos gave it. When the current API gives its missing-record answer and the
/// record has an archived copy by then (archived by a run in between), it is
/// moved back and the request forwarded once more: that answer means nothing
/// was applied. After a delete is answered 2xx, a copy still in the archive (a
/// stale one beside a hot record) is deleted, so nothing serves the record.
pub async fn write_record(
    State(app): State<App>,
    path: Result<Path<Vec<(String, String)>>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let Some(upstream) = app.upstream.clone() else {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD".into() });
    };
    // Checked before anything is asked or forwarded: the same id rules as reads.
    let path = path.map(|Path(values)| Path(values.into_iter().filter(|(k, _)| k != ACTION_PARAM).collect()));
    let values = route_values(path)?;
    let (partition_key, id) = app.contract.key_of(&values).ok_or_else(|| ApiError::Internal {
        message: "the route does not hold the record's key".into(),
        detail: format!("route values {values:?}"),
    })?;
    // A caller who may not read the record cannot make it hot; the upstream
    // gets the caller's credentials unchanged and keeps its own checks.
    let caller = request.extensions().get::<crate::auth::Caller>();
    if let Some(denied) =
        crate::auth::refusal(&app.contract, caller, crate::auth::Access::Write, &values, partition_key, Some(id))
    {
        return Ok(denied);
    }
    let (partition_key, id) = (partition_key.to_owned(), id.to_owned());
    let route_len = forward::route_len(&app.contract, &app.contract.record);
    let outgoing = Outgoing::of(&upstream, request, route_len, Headers::Authorized).await?;
    let write_deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    let moved = hydrate::move_back_within(&app.tiers, app.request_timeout, &partition_key, &id).await?;
    let send = |moved: &MovedBack| {
        let renamed = match moved {
            MovedBack::Restored { archived_etag, etag, .. } => Some((archived_etag.clone(), etag.clone())),
            _ => None,
        };
        let (upstream, outgoing) = (&upstream, &outgoing);
        let limit = (write_deadline - tokio::time::Instant::now()).max(Duration::from_secs(1));
        async move { outgoing.send(upstream, renamed.as_ref().map(|(a, n)| (a.as_str(), n.as_str())), limit).await }
    };
    let mut answer = send(&moved).await?;
    let mut moved_again = MovedBack::NotArchived;
    if answer.status().as_u16() == app.contract.not_found.status {
        // Archived between the move-back and the upstream's write? Then once more.
        moved_again = hydrate::move_back_within(&app.tiers, app.request_timeout, &partition_key, &id).await?;
        if moved_again != MovedBack::NotArchived {
            answer = send(&moved_again).await?;
        }
    }
    let status = answer.status();
    if outgoing.method == Method::DELETE && status.is_success() {
        remove_copy(&app.tiers, &partition_key, &id).await;
    }
    let restored = |m: &MovedBack| u64::from(matches!(m, MovedBack::Restored { .. }));
    info!(
        route = "write",
        method = %outgoing.method,
        status = status.as_u16(),
        moved_back = restored(&moved) + restored(&moved_again),
        outcome = ?moved,
        outcome_again = ?moved_again,
        latency_us = started.elapsed().as_micros() as u64,
        "write"
    );
    Ok(forward::relay(answer))
}

/// After a delete the current API answered 2xx: a copy left in the archive (a
/// stale copy beside the hot record, which would serve the deleted record from
/// now on) is deleted at the ETag it was found at. Best effort: a copy leased
/// by a move-back in progress, or changed meanwhile, is logged as an error for
/// a person (`archiver forget` removes it): to every command it looks like an
/// archived record, which it now serves.
async fn remove_copy(tiers: &Tiers, partition_key: &str, id: &str) {
    let Ok(name) = tiering::layout::blob_name(partition_key, id) else { return };
    match tiers.archive.head(&name).await {
        Err(tiering::store::StoreError::NotFound) => {}
        Ok(info) => match tiers.archive.delete_if_match(&name, &info.etag).await {
            Ok(()) => {
                if let Ok(meta) = tiering::codec::ArchiveMeta::from_metadata(&info.metadata) {
                    tiering::index::remove_for_copy(tiers.archive.as_ref(), &name, &meta).await;
                }
                info!(partition_key, id, "deleted: its stale archived copy removed too");
            }
            Err(e) => {
                tracing::error!(partition_key, id, error = %e, "deleted, but its archived copy could not be removed: it serves the record until `archiver forget` removes it")
            }
        },
        Err(e) => warn!(partition_key, id, error = %e, "deleted, but the archive could not be checked for a copy"),
    }
}
