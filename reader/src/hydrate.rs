//! Bringing archived records back into Cosmos for the current API to find:
//! before a write passes through (serve mode's write-through), after the
//! current API answered "missing" (front mode), and before a list whose window
//! reaches into the archive is forwarded (front mode). Each record goes by
//! `tiering::moveback` (the copy checked, created only where Cosmos has no such
//! record, read back, the copy deleted at its ETag under its lease), so a
//! hydrated record is hot with a fresh `_ts` and lives in one tier again.

use std::time::Duration;

use tiering::moveback::{self, MoveBackError, MovedBack};
use tracing::warn;

use crate::error::{ARCHIVE, ApiError};
use crate::tiers::Tiers;

/// Runs `work` until `deadline`; past it, 503 saying nothing was forwarded.
pub async fn within<T>(
    deadline: tokio::time::Instant,
    step: &'static str,
    work: impl Future<Output = T>,
) -> Result<T, ApiError> {
    tokio::time::timeout_at(deadline, work).await.map_err(|_| ApiError::Unavailable {
        tier: ARCHIVE,
        retry_after: 1,
        detail: format!("{step} did not finish in time; nothing was forwarded"),
    })
}

/// Moves `(partition_key, id)` back if it is archived, with its failures as
/// the caller sees them: an outage or a move-back in flight is 503 with
/// `Retry-After` (nothing forwarded), a copy that fails its check or needs a
/// person is 500. It runs in a task of its own, so a request that gives up
/// waiting (its deadline) never cuts it short: it finishes, and releases the
/// copy's lease, in the background.
pub async fn move_back(tiers: &Tiers, partition_key: &str, id: &str) -> Result<MovedBack, ApiError> {
    let cosmos = tiers.cosmos.get().await?;
    let (archive, pk, record) = (tiers.archive.clone(), partition_key.to_owned(), id.to_owned());
    let task = tokio::spawn(async move { moveback::move_back(&cosmos, archive.as_ref(), &pk, &record, None).await });
    let outcome = task
        .await
        .map_err(|e| ApiError::Internal { message: "moving the record back failed".into(), detail: e.to_string() })?;
    match outcome {
        Ok(moved) => Ok(moved),
        Err(e @ (MoveBackError::Store { .. } | MoveBackError::InFlight | MoveBackError::Fenced(_))) => {
            let retry_after = match &e {
                MoveBackError::Store { error: tiering::store::StoreError::Throttled { retry_after }, .. } => {
                    retry_after.as_secs().max(1)
                }
                MoveBackError::InFlight => 1,
                _ => 5,
            };
            warn!(partition_key, id, error = %e, "the record could not be moved back; nothing forwarded");
            Err(ApiError::Unavailable { tier: "the archive or Cosmos DB", retry_after, detail: e.to_string() })
        }
        Err(e @ MoveBackError::Corrupt { .. }) => Err(ApiError::Internal {
            message: "the archived copy of this record failed its integrity check; the request was not forwarded"
                .into(),
            detail: e.to_string(),
        }),
        Err(e @ (MoveBackError::NotOurs { .. } | MoveBackError::Conflict { .. })) => Err(ApiError::Internal {
            message: "the archived copy of this record needs an operator; the request was not forwarded".into(),
            detail: e.to_string(),
        }),
    }
}

/// [`move_back`] within the request's deadline.
pub async fn move_back_within(
    tiers: &Tiers,
    limit: Duration,
    partition_key: &str,
    id: &str,
) -> Result<MovedBack, ApiError> {
    let deadline = tokio::time::Instant::now() + limit;
    within(deadline, "moving the record back", move_back(tiers, partition_key, id)).await?
}
