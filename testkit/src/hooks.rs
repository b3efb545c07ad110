//! An archive with hooks around some calls: how tests make another actor act at
//! a precise step of the protocol.

use std::sync::Arc;

use tiering::archive::{Archive, BlobInfo, PutCondition, StoredBlob};
use tiering::store::StoreError;

type Hook = Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;
type GetFilter = Arc<dyn Fn(&str, StoredBlob) -> Result<StoredBlob, StoreError> + Send + Sync>;
type PutRefusal = Arc<dyn Fn(&str) -> Option<StoreError> + Send + Sync>;

/// Calls made through a [`HookedArchive`] run these first (each gets the blob name,
/// or the prefix for `before_list`); `after_get` may rewrite what a download returned.
#[derive(Clone, Default)]
pub struct Hooks {
    pub before_get: Option<Hook>,
    pub after_get: Option<GetFilter>,
    pub before_delete: Option<Hook>,
    pub before_list: Option<Hook>,
    /// An upload of a name this returns an error for fails with it, unwritten.
    pub refuse_put: Option<PutRefusal>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// A real archive with hooks around some calls: how tests make another actor
/// (an application update, a concurrent run, a damaged disk) act at a precise step.
#[derive(Debug, Clone)]
pub struct HookedArchive {
    pub inner: Arc<dyn Archive>,
    pub hooks: Hooks,
}

async fn call(hook: &Option<Hook>, name: &str) {
    if let Some(hook) = hook {
        hook(name.to_owned()).await;
    }
}

#[async_trait::async_trait]
impl Archive for HookedArchive {
    async fn put(
        &self,
        name: &str,
        body: bytes::Bytes,
        metadata: std::collections::HashMap<String, String>,
        condition: PutCondition,
    ) -> Result<String, StoreError> {
        if let Some(error) = self.hooks.refuse_put.as_ref().and_then(|refuse| refuse(name)) {
            return Err(error);
        }
        self.inner.put(name, body, metadata, condition).await
    }
    async fn head(&self, name: &str) -> Result<BlobInfo, StoreError> {
        self.inner.head(name).await
    }
    async fn get(&self, name: &str) -> Result<StoredBlob, StoreError> {
        call(&self.hooks.before_get, name).await;
        let stored = self.inner.get(name).await?;
        match &self.hooks.after_get {
            Some(filter) => filter(name, stored),
            None => Ok(stored),
        }
    }
    async fn set_metadata(
        &self,
        name: &str,
        metadata: std::collections::HashMap<String, String>,
        etag: &str,
    ) -> Result<String, StoreError> {
        self.inner.set_metadata(name, metadata, etag).await
    }
    async fn delete_if_match(&self, name: &str, etag: &str) -> Result<(), StoreError> {
        call(&self.hooks.before_delete, name).await;
        self.inner.delete_if_match(name, etag).await
    }
    async fn delete_leased(&self, name: &str, etag: &str, lease_id: &str) -> Result<(), StoreError> {
        call(&self.hooks.before_delete, name).await;
        self.inner.delete_leased(name, etag, lease_id).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max: u32,
    ) -> Result<(Vec<BlobInfo>, Option<String>), StoreError> {
        call(&self.hooks.before_list, prefix).await;
        self.inner.list_page(prefix, marker, max).await
    }

    fn list(&self, prefix: &str) -> futures::stream::BoxStream<'static, Result<BlobInfo, StoreError>> {
        use futures::StreamExt;
        let (inner, hook, prefix) = (self.inner.clone(), self.hooks.before_list.clone(), prefix.to_owned());
        futures::stream::once(async move {
            call(&hook, &prefix).await;
            inner.list(&prefix)
        })
        .flatten()
        .boxed()
    }
    async fn acquire_lease(&self, name: &str, seconds: i32, proposed: &str) -> Result<bool, StoreError> {
        self.inner.acquire_lease(name, seconds, proposed).await
    }
    async fn renew_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError> {
        self.inner.renew_lease(name, lease_id).await
    }
    async fn release_lease(&self, name: &str, lease_id: &str) -> Result<(), StoreError> {
        self.inner.release_lease(name, lease_id).await
    }
}

/// Wraps an async closure as a [`Hooks`] entry.
pub fn hook<F, Fut>(f: F) -> Option<Hook>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Some(Arc::new(move |name| Box::pin(f(name))))
}
