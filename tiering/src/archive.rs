//! The Blob side: the archive container, conditional writes, verified reads, listing.
//!
//! [`Archive`] is what the archiver and reader need from Blob Storage; [`BlobArchive`]
//! implements it over `azure_storage_blob`. The trait exists so tests can wrap the
//! real store with fault injection (an outage mid-run) without a second fake store.

use std::collections::HashMap;
use std::num::NonZero;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Etag, StatusCode};
use azure_storage_blob::models::{
    BlobClientAcquireLeaseOptions, BlobClientDeleteOptions, BlobClientDownloadOptions,
    BlobClientGetPropertiesResultHeaders, BlobClientSetMetadataOptions, BlobClientUploadOptions,
    BlobContainerClientListBlobsOptions, BlobItem, HttpRange, ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::BoxStream;

use crate::codec;
use crate::settings::StoreSettings;
use crate::store::{StoreError, Transport};

/// The x-ms-version sent to Blob Storage. The SDK's default is newer than the
/// local emulator knows; this one is served by Azure and by Azurite 3.35.
pub const BLOB_API_VERSION: &str = "2025-11-05";

/// Bytes of a blob the first download request asks for (see [`Archive::get`]).
const FIRST_RANGE: usize = 256 * 1024;

/// The write condition of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// Create only: fails with [`StoreError::AlreadyExists`] if the blob exists.
    Absent,
    /// Replace only this version: fails with [`StoreError::PreconditionFailed`] otherwise.
    Matches(String),
}

/// A stored blob's identity and metadata, without its body.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub name: String,
    pub etag: String,
    pub metadata: HashMap<String, String>,
    /// Bytes stored (compressed).
    pub size: u64,
}

/// A stored blob with its body (still compressed).
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub info: BlobInfo,
    pub body: Bytes,
}

#[async_trait]
pub trait Archive: Send + Sync + std::fmt::Debug {
    /// Uploads `body` under `name`; returns the new ETag.
    async fn put(
        &self,
        name: &str,
        body: Bytes,
        metadata: HashMap<String, String>,
        condition: PutCondition,
    ) -> Result<String, StoreError>;
    async fn head(&self, name: &str) -> Result<BlobInfo, StoreError>;
    /// Downloads a blob. Refuses one larger than [`codec::MAX_STORED_BYTES`] before
    /// reading its body ([`StoreError::Corrupt`]), and gives up on a body that stalls.
    async fn get(&self, name: &str) -> Result<StoredBlob, StoreError>;
    /// Replaces the blob's metadata only if it is still at `etag`; returns the new ETag.
    async fn set_metadata(
        &self,
        name: &str,
        metadata: HashMap<String, String>,
        etag: &str,
    ) -> Result<String, StoreError>;
    /// Deletes the blob only if it is still at `etag`.
    async fn delete_if_match(&self, name: &str, etag: &str) -> Result<(), StoreError>;
    /// Deletes the blob only if it is still at `etag` and leased under `lease_id`.
    async fn delete_leased(&self, name: &str, etag: &str, lease_id: &str) -> Result<(), StoreError>;
    /// Every blob under `prefix`, with metadata, page by page as the service returns them.
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobInfo, StoreError>>;
    /// One page of at most `max` blobs under `prefix` (with metadata), from
    /// `marker` (a marker this listing returned before; `None`: the start), in
    /// name order, and the marker of the next page (`None`: none after it).
    /// Markers are the service's own and name a position, not a blob, so they
    /// stay valid while blobs come and go.
    async fn list_page(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max: u32,
    ) -> Result<(Vec<BlobInfo>, Option<String>), StoreError>;
    /// Takes a lease of `seconds` (15 to 60) on an existing blob, under the lease id
    /// `proposed` (so a retried request that had succeeded succeeds again); `false`
    /// when someone else holds a lease.
    async fn acquire_lease(&self, name: &str, seconds: i32, proposed: &str) -> Result<bool, StoreError>;
    async fn renew_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError>;
    async fn release_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError>;
}

/// The archive container in Azure Blob Storage (or Azurite).
#[derive(Clone)]
pub struct BlobArchive {
    container: Arc<BlobContainerClient>,
    /// Longest wait for the rest of a body once its headers arrived.
    body_timeout: Duration,
}

impl std::fmt::Debug for BlobArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL holds the SAS in emulator set-ups: print only its path.
        f.debug_struct("BlobArchive").field("container", &self.container.url().path()).finish()
    }
}

impl BlobArchive {
    /// Builds the client once; it is cheap to clone and reuses its connections.
    ///
    /// With `ARCHIVE_BLOB_SAS` the SAS rides on the URL (emulators); without it the
    /// managed identity signs requests.
    pub fn new(settings: &StoreSettings, transport: Transport) -> anyhow::Result<Self> {
        let mut url = settings.blob_endpoint.clone();
        // A trailing slash after an account path would make `//container`.
        if url.path() != "/" && url.path().ends_with('/') {
            let trimmed = url.path().trim_end_matches('/').to_owned();
            url.set_path(&trimmed);
        }
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("ARCHIVE_BLOB_ENDPOINT cannot hold a path"))?
            .pop_if_empty()
            .push(&settings.archive_container);
        let credential: Option<Arc<dyn TokenCredential>> = match &settings.blob_sas {
            Some(sas) => {
                url.set_query(Some(sas.secret()));
                None
            }
            None => Some(crate::identity::credential(settings)?),
        };
        let options = BlobContainerClientOptions {
            version: BLOB_API_VERSION.to_owned(),
            client_options: ClientOptions {
                retry: transport.retry_options(),
                per_try_policies: vec![transport.per_try_policy()],
                ..Default::default()
            },
        };
        let container = BlobContainerClient::new(url, credential, Some(options))?;
        Ok(Self { container: Arc::new(container), body_timeout: transport.per_try_timeout })
    }

    /// Creates the archive container if it is missing (the archiver's start-up step).
    /// In Azure the archiver's role may not create containers (the template owns
    /// the container): a refusal is fine when a blob probe shows the container exists.
    pub async fn ensure_container(&self) -> Result<(), StoreError> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Forbidden) => {
                // A blob-level probe (blob read is all the role has): a missing blob
                // in an existing container is a 404, a missing container is not.
                match self.head("container-probe").await {
                    Ok(_) | Err(StoreError::NotFound) => Ok(()),
                    // A missing container reports as such, not as the create's 403.
                    Err(probe @ StoreError::Unavailable(_)) => Err(probe),
                    Err(_) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// An ETag in its header form, quotes included: listings carry it bare (from XML),
/// responses quoted, and the two must compare equal.
fn etag_string(etag: Option<Etag>) -> String {
    let text = etag.map(|e| e.to_string()).unwrap_or_default();
    if text.is_empty() || text.starts_with('"') || text.starts_with("W/") { text } else { format!("\"{text}\"") }
}

#[async_trait]
impl Archive for BlobArchive {
    async fn put(
        &self,
        name: &str,
        body: Bytes,
        metadata: HashMap<String, String>,
        condition: PutCondition,
    ) -> Result<String, StoreError> {
        let (if_none_match, if_match) = match condition {
            PutCondition::Absent => (Some(Etag::from("*")), None),
            PutCondition::Matches(etag) => (None, Some(Etag::from(etag))),
        };
        let options = BlobClientUploadOptions {
            metadata: Some(metadata),
            blob_content_type: Some("application/zstd".into()),
            if_none_match,
            if_match,
            ..Default::default()
        };
        let blob = self.container.blob_client(name);
        let result = blob.upload(body.into(), Some(options)).await?;
        Ok(etag_string(result.etag))
    }

    async fn head(&self, name: &str) -> Result<BlobInfo, StoreError> {
        let response = self.container.blob_client(name).get_properties(None).await?;
        let size = response.content_length()?.unwrap_or_default();
        Ok(BlobInfo {
            name: name.to_owned(),
            etag: etag_string(response.etag()?),
            metadata: response.metadata()?,
            size,
        })
    }

    async fn get(&self, name: &str) -> Result<StoredBlob, StoreError> {
        // The first request asks for FIRST_RANGE bytes: the whole blob for nearly
        // every record (300 KB of JSON compress to about 40 KB), and no more than
        // that of a blob whose size, read from the answer's headers, is refused.
        let options = BlobClientDownloadOptions {
            parallel: NonZero::new(1),
            partition_size: NonZero::new(FIRST_RANGE),
            range: Some(HttpRange::new(0, codec::MAX_STORED_BYTES + 1)),
            ..Default::default()
        };
        let response = self.container.blob_client(name).download(Some(options)).await?;
        let size = response
            .headers
            .get_optional_str(&"content-range".into())
            .and_then(|range| range.rsplit_once('/'))
            .and_then(|(_, total)| total.parse::<u64>().ok())
            .or(response.properties.content_length);
        let info = BlobInfo {
            name: name.to_owned(),
            etag: etag_string(response.properties.etag.clone()),
            metadata: response.properties.metadata.clone(),
            size: size.unwrap_or_default(),
        };
        if let Some(size) = size.filter(|s| *s > codec::MAX_STORED_BYTES) {
            return Err(StoreError::Corrupt(codec::CodecError::Corrupt(format!(
                "the stored blob is {size} bytes, over the {} a record can compress to",
                codec::MAX_STORED_BYTES
            ))));
        }
        let body = tokio::time::timeout(self.body_timeout, response.body.collect()).await.map_err(|_| {
            StoreError::Unavailable(format!("the body of {name} stalled for {:?}", self.body_timeout))
        })??;
        Ok(StoredBlob { info, body })
    }

    async fn set_metadata(
        &self,
        name: &str,
        metadata: HashMap<String, String>,
        etag: &str,
    ) -> Result<String, StoreError> {
        let options = BlobClientSetMetadataOptions { if_match: Some(Etag::from(etag)), ..Default::default() };
        let response = self.container.blob_client(name).set_metadata(&metadata, Some(options)).await?;
        Ok(etag_string(response.headers().get_optional_str(&"etag".into()).map(Etag::from)))
    }

    async fn delete_if_match(&self, name: &str, etag: &str) -> Result<(), StoreError> {
        let options = BlobClientDeleteOptions { if_match: Some(Etag::from(etag)), ..Default::default() };
        self.container.blob_client(name).delete(Some(options)).await?;
        Ok(())
    }

    async fn delete_leased(&self, name: &str, etag: &str, lease_id: &str) -> Result<(), StoreError> {
        let options = BlobClientDeleteOptions {
            if_match: Some(Etag::from(etag)),
            lease_id: Some(lease_id.to_owned()),
            ..Default::default()
        };
        self.container.blob_client(name).delete(Some(options)).await?;
        Ok(())
    }

    async fn acquire_lease(&self, name: &str, seconds: i32, proposed: &str) -> Result<bool, StoreError> {
        let options =
            BlobClientAcquireLeaseOptions { proposed_lease_id: Some(proposed.to_owned()), ..Default::default() };
        match self.container.blob_client(name).acquire_lease(seconds, Some(options)).await {
            Ok(_) => Ok(true),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn renew_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError> {
        self.container.blob_client(name).renew_lease(lease_id.to_owned(), None).await?;
        Ok(())
    }

    async fn release_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError> {
        self.container.blob_client(name).release_lease(lease_id.to_owned(), None).await?;
        Ok(())
    }

    async fn list_page(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max: u32,
    ) -> Result<(Vec<BlobInfo>, Option<String>), StoreError> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_owned()),
            marker: marker.map(str::to_owned),
            maxresults: Some(max.clamp(1, 5000) as i32),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let mut pages = self.container.list_blobs(Some(options))?.into_pages();
        let Some(page) = pages.try_next().await? else { return Ok((Vec::new(), None)) };
        let page = page.into_model()?;
        let blobs = page.blob_items.into_iter().filter_map(blob_info).collect();
        Ok((blobs, page.next_marker.filter(|m| !m.is_empty())))
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobInfo, StoreError>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_owned()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        match self.container.list_blobs(Some(options)) {
            Err(e) => Box::pin(futures::stream::once(async move { Err(e.into()) })),
            Ok(pager) => {
                Box::pin(pager.map_err(StoreError::from).try_filter_map(|item| async move { Ok(blob_info(item)) }))
            }
        }
    }
}

/// A listed blob, if it has a name.
fn blob_info(item: BlobItem) -> Option<BlobInfo> {
    let name = item.name?;
    let (etag, size) = match item.properties {
        Some(p) => (etag_string(p.etag), p.content_length.unwrap_or_default()),
        None => (String::new(), 0),
    };
    let metadata = item.metadata.and_then(|m| m.values).unwrap_or_default();
    Some(BlobInfo { name, etag, metadata, size })
}

#[cfg(test)]
mod tests {
    #[test]
    fn etags_compare_in_header_form() {
        use super::*;
        assert_eq!(etag_string(Some(Etag::from("0x8DC1"))), "\"0x8DC1\"");
        assert_eq!(etag_string(Some(Etag::from("\"0x8DC1\""))), "\"0x8DC1\"");
        assert_eq!(etag_string(None), "");
    }
}
