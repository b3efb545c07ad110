//! One archive run at a time, across processes: a blob lease on a lock blob.
//!
//! The timer trigger is a singleton, but an operator's `archiver run` (or an
//! `archiver forget`) is another process, and two passes over the same records
//! could each rely on a copy the other is about to replace or withdraw. Every
//! pass that writes therefore holds a 60-second lease on [`LOCK_BLOB`] in the
//! archive container, renewed in the background. A pass that cannot take it does
//! nothing and says so; a pass whose renewal fails stops starting new records.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tiering::archive::{Archive, PutCondition};
use tiering::store::StoreError;
use tracing::{error, warn};

/// The lock blob; outside the `v1/` layout prefix, so no listing ever sees it.
pub const LOCK_BLOB: &str = "locks/archiver";
/// Azure allows 15 to 60 seconds (or infinite, which a crashed run would never give back).
const LEASE_SECONDS: i32 = 60;
const RENEW_EVERY: Duration = Duration::from_secs(15);

/// A held lease; renewed until [`release`](Self::release) or drop.
#[derive(Debug)]
pub struct RunLease {
    archive: Arc<dyn Archive>,
    lease_id: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl RunLease {
    /// Takes the lease; `Ok(None)` when another pass holds it.
    pub async fn acquire(archive: Arc<dyn Archive>) -> Result<Option<Self>, StoreError> {
        let marker = HashMap::from([("purpose".to_owned(), "archiver-run-lock".to_owned())]);
        match archive.put(LOCK_BLOB, Bytes::new(), marker, PutCondition::Absent).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        let Some(lease_id) = archive.acquire_lease(LOCK_BLOB, LEASE_SECONDS).await? else { return Ok(None) };
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn({
            let (archive, lease_id, lost) = (archive.clone(), lease_id.clone(), lost.clone());
            async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    if let Err(e) = archive.renew_lease(LOCK_BLOB, &lease_id).await {
                        // Three failed renewals in a row would let the lease lapse: stop now.
                        error!(error = %e, "the archive run lease could not be renewed; the run stops starting new records");
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        });
        Ok(Some(Self { archive, lease_id, lost, renewer }))
    }

    /// True once a renewal failed: another pass may take the lease soon.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
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
