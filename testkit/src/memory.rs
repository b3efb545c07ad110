//! An in-memory [`Archive`] with Blob Storage's conditional semantics, so the
//! protocol's archive-side steps (copy, verify, withdraw, re-stamp, the run
//! lease) get unit tests that run in microseconds, as crates.io tests its
//! archive job against an in-memory store. `tests/conformance.rs` runs the same
//! table of calls against Azurite and this store and requires equal answers.
//!
//! What it models: `If-None-Match: *` and `If-Match` on uploads, metadata
//! updates and deletes, in the order Azurite checks them; leases (a leased blob refuses writes and deletes made
//! without its lease id, with 412, as Azure does); listings by prefix in name
//! order; the size guard of [`Archive::get`]. Lease time runs on
//! `tokio::time::Instant`, so a test with a paused clock can let a lease lapse.
//! Faults are not modelled here: wrap it in [`crate::hooks::HookedArchive`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tiering::archive::{Archive, BlobInfo, PutCondition, StoredBlob};
use tiering::codec::{CodecError, MAX_STORED_BYTES};
use tiering::store::StoreError;
use tokio::time::Instant;

/// One stored blob.
#[derive(Debug, Clone)]
struct Blob {
    body: Bytes,
    metadata: HashMap<String, String>,
    etag: String,
    lease: Option<Lease>,
}

#[derive(Debug, Clone)]
struct Lease {
    id: String,
    length: Duration,
    until: Instant,
}

impl Blob {
    /// The lease id holding the blob now, if any (an expired lease holds nothing).
    fn leased_by(&self) -> Option<&str> {
        self.lease.as_ref().filter(|l| Instant::now() < l.until).map(|l| l.id.as_str())
    }
}

#[derive(Debug, Default)]
struct State {
    blobs: BTreeMap<String, Blob>,
    versions: u64,
}

impl State {
    fn next_etag(&mut self) -> String {
        self.versions += 1;
        format!("\"0x8DD{:012X}\"", self.versions)
    }
}

/// The in-memory archive; clones share one store.
#[derive(Debug, Clone, Default)]
pub struct MemoryArchive {
    state: Arc<Mutex<State>>,
    /// Listing markers as Azure's: the next name to list, from which a later
    /// listing starts (inclusive); otherwise as Azurite's: the last name
    /// listed, after which it starts.
    azure_markers: bool,
}

fn conflict(what: &str) -> StoreError {
    StoreError::from_status(409, None, what.to_owned())
}

impl MemoryArchive {
    pub fn new() -> Self {
        Self::default()
    }

    /// An archive whose listing markers behave as Azure's do (see the field):
    /// a blob written later between the last name listed and the marker's is
    /// not listed from that marker.
    pub fn with_azure_markers() -> Self {
        Self { azure_markers: true, ..Self::default() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every blob name, in listing order (for assertions).
    pub fn names(&self) -> Vec<String> {
        self.state().blobs.keys().cloned().collect()
    }

    /// Overwrites a blob's body in place, keeping its metadata and ETag: a
    /// damaged disk, for tests of verification.
    pub fn damage(&self, name: &str, body: Bytes) {
        if let Some(blob) = self.state().blobs.get_mut(name) {
            blob.body = body;
        }
    }

    /// Breaks any lease on `name` at once, as an operator's `break-lease` would.
    pub fn break_lease(&self, name: &str) {
        if let Some(blob) = self.state().blobs.get_mut(name) {
            blob.lease = None;
        }
    }

    fn info(name: &str, blob: &Blob) -> BlobInfo {
        BlobInfo {
            name: name.to_owned(),
            etag: blob.etag.clone(),
            metadata: blob.metadata.clone(),
            size: blob.body.len() as u64,
        }
    }
}

#[async_trait]
impl Archive for MemoryArchive {
    async fn put(
        &self,
        name: &str,
        body: Bytes,
        metadata: HashMap<String, String>,
        condition: PutCondition,
    ) -> Result<String, StoreError> {
        let mut state = self.state();
        match (state.blobs.get(name), &condition) {
            // Azurite checks `If-None-Match: *` before the lease (409); Azure has been
            // seen to answer 412 first (archiver/src/lease.rs accepts either).
            (Some(_), PutCondition::Absent) => return Err(StoreError::AlreadyExists),
            (Some(blob), _) if blob.leased_by().is_some() => return Err(StoreError::PreconditionFailed),
            (None, PutCondition::Matches(_)) => return Err(StoreError::PreconditionFailed),
            (Some(blob), PutCondition::Matches(etag)) if blob.etag != *etag => {
                return Err(StoreError::PreconditionFailed);
            }
            _ => {}
        }
        let etag = state.next_etag();
        state.blobs.insert(name.to_owned(), Blob { body, metadata, etag: etag.clone(), lease: None });
        Ok(etag)
    }

    async fn head(&self, name: &str) -> Result<BlobInfo, StoreError> {
        self.state().blobs.get(name).map(|b| Self::info(name, b)).ok_or(StoreError::NotFound)
    }

    async fn get(&self, name: &str) -> Result<StoredBlob, StoreError> {
        let state = self.state();
        let blob = state.blobs.get(name).ok_or(StoreError::NotFound)?;
        if blob.body.len() as u64 > MAX_STORED_BYTES {
            return Err(StoreError::Corrupt(CodecError::Corrupt(format!(
                "the stored blob is {} bytes, over the {MAX_STORED_BYTES} a record can compress to",
                blob.body.len()
            ))));
        }
        Ok(StoredBlob { info: Self::info(name, blob), body: blob.body.clone() })
    }

    async fn set_metadata(
        &self,
        name: &str,
        metadata: HashMap<String, String>,
        etag: &str,
    ) -> Result<String, StoreError> {
        let mut state = self.state();
        // Conditional, so a missing blob fails the condition (412), as a delete does.
        let blob = state.blobs.get(name).ok_or(StoreError::PreconditionFailed)?;
        if blob.etag != etag || blob.leased_by().is_some() {
            return Err(StoreError::PreconditionFailed);
        }
        let new = state.next_etag();
        let blob = state.blobs.get_mut(name).ok_or(StoreError::NotFound)?;
        blob.metadata = metadata;
        blob.etag = new.clone();
        Ok(new)
    }

    async fn delete_if_match(&self, name: &str, etag: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        // A conditional delete of a missing blob fails its condition (412), not 404.
        let blob = state.blobs.get(name).ok_or(StoreError::PreconditionFailed)?;
        if blob.etag != etag || blob.leased_by().is_some() {
            return Err(StoreError::PreconditionFailed);
        }
        state.blobs.remove(name);
        Ok(())
    }

    async fn delete_leased(&self, name: &str, etag: &str, lease_id: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        let blob = state.blobs.get(name).ok_or(StoreError::PreconditionFailed)?;
        if blob.etag != etag || blob.leased_by() != Some(lease_id) {
            return Err(StoreError::PreconditionFailed);
        }
        state.blobs.remove(name);
        Ok(())
    }

    async fn list_page(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max: u32,
    ) -> Result<(Vec<BlobInfo>, Option<String>), StoreError> {
        let state = self.state();
        let marker = marker.unwrap_or("");
        let mut listed: Vec<BlobInfo> = state
            .blobs
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter(|(name, _)| if self.azure_markers { name.as_str() >= marker } else { name.as_str() > marker })
            .take(max as usize + 1)
            .map(|(name, blob)| Self::info(name, blob))
            .collect();
        let next = if listed.len() > max as usize {
            // Azure: the next name to list; Azurite: the last name listed.
            if self.azure_markers {
                listed.pop().map(|b| b.name)
            } else {
                listed.get(max as usize - 1).map(|b| b.name.clone())
            }
        } else {
            None
        };
        listed.truncate(max as usize);
        Ok((listed, next))
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobInfo, StoreError>> {
        let listed: Vec<Result<BlobInfo, StoreError>> = self
            .state()
            .blobs
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, blob)| Ok(Self::info(name, blob)))
            .collect();
        Box::pin(futures::stream::iter(listed))
    }

    async fn acquire_lease(&self, name: &str, seconds: i32, proposed: &str) -> Result<bool, StoreError> {
        let mut state = self.state();
        let blob = state.blobs.get_mut(name).ok_or(StoreError::NotFound)?;
        if blob.leased_by().is_some_and(|holder| holder != proposed) {
            return Ok(false);
        }
        let length = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        blob.lease = Some(Lease { id: proposed.to_owned(), length, until: Instant::now() + length });
        Ok(true)
    }

    async fn renew_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        let blob = state.blobs.get_mut(name).ok_or(StoreError::NotFound)?;
        // An expired lease can be renewed by its holder while nobody took it since.
        match &mut blob.lease {
            Some(lease) if lease.id == lease_id => {
                lease.until = Instant::now() + lease.length;
                Ok(())
            }
            _ => Err(conflict("LeaseIdMismatchWithLeaseOperation")),
        }
    }

    async fn release_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        let blob = state.blobs.get_mut(name).ok_or(StoreError::NotFound)?;
        match &blob.lease {
            Some(lease) if lease.id == lease_id => {
                blob.lease = None;
                Ok(())
            }
            _ => Err(conflict("LeaseIdMismatchWithLeaseOperation")),
        }
    }
}
