//! One archive pass at a time, across processes: a blob lease on a lock blob.
//!
//! The timer trigger is a singleton, but an operator's `archiver run`, `forget`,
//! `restore` or `verify --shadowed` is another process, and two of them working on
//! the same records could each rely on a copy the other is about to replace or
//! withdraw. Each of them holds a 60-second lease on [`LOCK_BLOB`] in the archive
//! container, renewed in the background. A pass that cannot take it does nothing
//! and says so.
//!
//! The lease is also a fence: [`RunLease::holds`] turns false a safety margin
//! before the lease could lapse (renewals failed or were too slow), and every
//! destructive step (replacing a copy, deleting from Cosmos, withdrawing a copy)
//! checks it first. A record whose step comes too late is left as it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tiering::archive::{Archive, PutCondition};
use tiering::store::StoreError;
use tokio::time::Instant;
use tracing::{error, warn};

/// The lock blob; outside the `v1/` layout prefix, so no listing ever sees it.
pub const LOCK_BLOB: &str = "locks/archiver";
/// Azure allows 15 to 60 seconds (or infinite, which a crashed pass would never give back).
const LEASE: Duration = Duration::from_secs(60);
/// The lease counts as lost this long before it could lapse.
const MARGIN: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(15);
/// One renewal attempt may take this long; failed attempts are repeated until the lease is lost.
const RENEW_TIMEOUT: Duration = Duration::from_secs(5);
const RENEW_RETRY: Duration = Duration::from_secs(2);
/// How long operator commands wait for an archive run in progress to give the
/// run lease back (a run ends within `ARCHIVE_TIME_BUDGET_SECONDS`).
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(30 * 60);
/// How often a waiting operator command tries again.
const WAIT_POLL: Duration = Duration::from_secs(5);

/// The run lease's check, as the protocol's steps take it: true while the lease
/// certainly holds ([`RunLease::holds`]; always true for a dry run, which writes nothing).
pub type LeaseHolds<'a> = dyn Fn() -> bool + Sync + 'a;

/// A held lease, renewed until [`release`](Self::release) or drop.
#[derive(Debug)]
pub struct RunLease {
    archive: Arc<dyn Archive>,
    lease_id: String,
    valid_until: Arc<Mutex<Instant>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl RunLease {
    /// Takes the lease; `Ok(None)` when another pass holds it.
    pub async fn acquire(archive: Arc<dyn Archive>) -> Result<Option<Self>, StoreError> {
        ensure_lock_blob(archive.as_ref()).await?;
        let lease_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        if !archive.acquire_lease(LOCK_BLOB, LEASE.as_secs() as i32, &lease_id).await? {
            return Ok(None);
        }
        let valid_until = Arc::new(Mutex::new(started + LEASE - MARGIN));
        let renewer = tokio::spawn(renew(archive.clone(), lease_id.clone(), valid_until.clone()));
        Ok(Some(Self { archive, lease_id, valid_until, renewer }))
    }

    /// [`acquire`](Self::acquire), waiting up to `patience` for a pass in progress to end.
    pub async fn acquire_waiting(archive: Arc<dyn Archive>, patience: Duration) -> Result<Option<Self>, StoreError> {
        let give_up = Instant::now() + patience;
        loop {
            if let Some(lease) = Self::acquire(archive.clone()).await? {
                return Ok(Some(lease));
            }
            if Instant::now() + WAIT_POLL > give_up {
                return Ok(None);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// [`acquire_waiting`](Self::acquire_waiting) for an operator command: an
    /// error saying a run is still in progress when the lease stays taken.
    pub async fn take(archive: Arc<dyn Archive>, patience: Duration) -> anyhow::Result<Self> {
        use anyhow::Context;
        Self::acquire_waiting(archive, patience)
            .await
            .context("taking the run lease")?
            .ok_or_else(|| anyhow::anyhow!("an archive run is still in progress (it holds the run lease) after {patience:?}; try again when it has finished"))
    }

    /// True while the lease certainly holds; false once it may lapse soon.
    pub fn holds(&self) -> bool {
        self.valid_until.lock().is_ok_and(|until| Instant::now() < *until)
    }

    /// Gives the lease back at once, so the next pass need not wait for it to lapse.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.archive.release_lease(LOCK_BLOB, &self.lease_id).await {
            warn!(error = %e, "the archive run lease could not be released; it lapses within a minute");
        }
    }
}

impl Drop for RunLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Creates the (empty) lock blob if it is missing. Looks first: Azure refuses an
/// upload over a leased blob with 412 before it would say the blob exists.
async fn ensure_lock_blob(archive: &dyn Archive) -> Result<(), StoreError> {
    match archive.head(LOCK_BLOB).await {
        Ok(_) => return Ok(()),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let marker = HashMap::from([("purpose".to_owned(), "archiver-run-lock".to_owned())]);
    match archive.put(LOCK_BLOB, Bytes::new(), marker, PutCondition::Absent).await {
        Ok(_) | Err(StoreError::AlreadyExists | StoreError::PreconditionFailed) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Renews every [`RENEW_EVERY`]; a failed or slow attempt is repeated until the
/// lease would lapse. `valid_until` moves only on success, from the attempt's start.
async fn renew(archive: Arc<dyn Archive>, lease_id: String, valid_until: Arc<Mutex<Instant>>) {
    let mut wait = RENEW_EVERY;
    loop {
        tokio::time::sleep(wait).await;
        let started = Instant::now();
        match tokio::time::timeout(RENEW_TIMEOUT, archive.renew_lease(LOCK_BLOB, &lease_id)).await {
            Ok(Ok(())) => {
                if let Ok(mut until) = valid_until.lock() {
                    *until = started + LEASE - MARGIN;
                }
                wait = RENEW_EVERY;
            }
            // The lease was broken or is someone else's now: lost at once.
            Ok(Err(e)) if !e.is_outage() && !matches!(e, StoreError::Throttled { .. }) => {
                if let Ok(mut until) = valid_until.lock() {
                    *until = Instant::now();
                }
                error!(error = %e, "the archive run lease is lost; destructive steps stop");
                return;
            }
            outcome => {
                let until = valid_until.lock().map(|u| *u).unwrap_or(started);
                let reason = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {RENEW_TIMEOUT:?}"),
                };
                if Instant::now() >= until {
                    error!(error = %reason, "the archive run lease is lost; destructive steps stop");
                    return;
                }
                warn!(error = %reason, "renewing the archive run lease failed; retrying");
                wait = RENEW_RETRY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::memory::MemoryArchive;

    #[tokio::test(start_paused = true)]
    async fn one_holder_at_a_time_and_renewals_keep_it_for_as_long_as_the_run_takes() {
        let memory = MemoryArchive::new();
        let archive: Arc<dyn Archive> = Arc::new(memory.clone());
        let lease = RunLease::acquire(archive.clone()).await.unwrap().expect("the first taker holds it");
        assert!(lease.holds());
        assert!(RunLease::acquire(archive.clone()).await.unwrap().is_none(), "a second pass does nothing");
        tokio::time::sleep(Duration::from_secs(10 * 60)).await;
        assert!(lease.holds(), "renewed all along");
        assert!(RunLease::acquire(archive.clone()).await.unwrap().is_none());
        lease.release().await;
        assert!(RunLease::acquire(archive).await.unwrap().is_some(), "released at once, not after it lapses");
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_lease_is_noticed_at_the_next_renewal() {
        let memory = MemoryArchive::new();
        let archive: Arc<dyn Archive> = Arc::new(memory.clone());
        let lease = RunLease::acquire(archive.clone()).await.unwrap().unwrap();
        memory.break_lease(LOCK_BLOB);
        let other = RunLease::acquire(archive.clone()).await.unwrap().expect("an operator took it");
        // Until the next renewal both believe they hold it: an operator's break
        // with no break period is a window of up to RENEW_EVERY (docs/archive-protocol.md).
        tokio::time::sleep(RENEW_EVERY + Duration::from_secs(1)).await;
        assert!(!lease.holds(), "the first renewal after the break finds the lease lost");
        assert!(other.holds());
    }

    #[tokio::test(start_paused = true)]
    async fn without_renewals_the_lease_stops_holding_a_margin_before_it_could_lapse() {
        let memory = MemoryArchive::new();
        let archive: Arc<dyn Archive> = Arc::new(memory.clone());
        let lease = RunLease::acquire(archive).await.unwrap().unwrap();
        lease.renewer.abort();
        tokio::time::sleep(LEASE - MARGIN - Duration::from_secs(1)).await;
        assert!(lease.holds());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!lease.holds(), "false {MARGIN:?} before the lease lapses");
    }
}
