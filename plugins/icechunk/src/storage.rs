//! A read-only snapshot of an Icechunk repository as zarrs storage, so that its groups open
//! like any Zarr v3 store (`cloudify_zarr::ZarrSource`). Every icechunk call runs on the
//! plugin's runtime: icechunk needs tokio's reactor, and a plugin's tokio is not the host's.

use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use icechunk::{
    format::{manifest::VirtualReferenceErrorKind, ByteRange as IcechunkRange},
    session::SessionErrorKind,
    store::{ListDirItem, StoreError, StoreErrorKind},
    Store,
};
use tokio::runtime::Handle;
use zarrs_storage::{
    byte_range::{ByteRange, ByteRangeIterator},
    AsyncListableStorageTraits, AsyncMaybeBytesIterator, AsyncReadableStorageTraits, MaybeBytes, StorageError,
    StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix,
};

/// One snapshot's store, read on `runtime`.
pub(crate) struct SnapshotStorage {
    store: Arc<Store>,
    runtime: Handle,
}

impl SnapshotStorage {
    pub(crate) fn new(store: Store, runtime: Handle) -> Self {
        Self { store: Arc::new(store), runtime }
    }

    /// `call` with the store, on the plugin's runtime.
    async fn run<T, F>(&self, call: impl FnOnce(Arc<Store>) -> F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        self.runtime
            .spawn(call(Arc::clone(&self.store)))
            .await
            .map_err(|e| StorageError::Other(format!("icechunk task failed: {e}")))?
    }
}

/// Starts the message of a read refused because its virtual chunk lies in a container the
/// configuration does not authorize; the container's prefix follows in backquotes.
pub(crate) const UNAUTHORIZED: &str = "virtual chunks not authorized: ";

fn failed(err: &StoreError) -> StorageError {
    if let StoreErrorKind::SessionError(SessionErrorKind::VirtualReferenceError(
        VirtualReferenceErrorKind::UnauthorizedVirtualChunkContainer { url_prefix, .. },
    )) = err.kind()
    {
        return StorageError::Other(format!("{UNAUTHORIZED}`{url_prefix}`"));
    }
    StorageError::Other(err.to_string())
}

fn missing<T>(result: Result<T, StoreError>) -> Result<Option<T>, StorageError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if matches!(err.kind(), StoreErrorKind::NotFound(..)) => Ok(None),
        Err(err) => Err(failed(&err)),
    }
}

fn icechunk_range(range: ByteRange) -> IcechunkRange {
    match range {
        ByteRange::FromStart(offset, None) => IcechunkRange::from_offset(offset),
        ByteRange::FromStart(offset, Some(length)) => IcechunkRange::from_offset_with_length(offset, length),
        ByteRange::Suffix(length) => IcechunkRange::Last(length),
    }
}

#[async_trait::async_trait]
impl AsyncReadableStorageTraits for SnapshotStorage {
    async fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        let key = key.as_str().to_owned();
        self.run(|store| async move { missing(store.get(&key, &IcechunkRange::ALL).await) }).await
    }

    async fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<AsyncMaybeBytesIterator<'a>, StorageError> {
        let requests: Vec<(String, IcechunkRange)> =
            byte_ranges.map(|range| (key.as_str().to_owned(), icechunk_range(range))).collect();
        let parts = self
            .run(|store| async move {
                let Some(parts) = missing(store.get_partial_values(requests).await)? else { return Ok(None) };
                parts.into_iter().map(|part| part.map_err(|e| failed(&e))).collect::<Result<Vec<_>, _>>().map(Some)
            })
            .await?;
        Ok(parts.map(|parts| futures::stream::iter(parts.into_iter().map(Ok)).boxed()))
    }

    async fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        let key = key.as_str().to_owned();
        self.run(|store| async move { missing(store.getsize(&key).await) }).await
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

#[async_trait::async_trait]
impl AsyncListableStorageTraits for SnapshotStorage {
    async fn list(&self) -> Result<StoreKeys, StorageError> {
        self.list_prefix(&StorePrefix::root()).await
    }

    async fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        let prefix = prefix.as_str().to_owned();
        let keys: Vec<String> = self
            .run(|store| async move {
                let keys = store.list_prefix(&prefix).await.map_err(|e| failed(&e))?;
                keys.map_err(|e| failed(&e)).try_collect::<Vec<String>>().await
            })
            .await?;
        keys.iter().map(|k| StoreKey::new(k).map_err(|e| StorageError::Other(e.to_string()))).collect()
    }

    async fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let dir = prefix.as_str().to_owned();
        let items: Vec<ListDirItem> = self
            .run(|store| async move {
                let items = store.list_dir_items(&dir).await.map_err(|e| failed(&e))?;
                items.map_err(|e| failed(&e)).try_collect::<Vec<ListDirItem>>().await
            })
            .await?;
        let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
        let invalid = |e: zarrs_storage::StorePrefixError| StorageError::Other(e.to_string());
        for item in items {
            match item {
                ListDirItem::Key(key) => keys.push(
                    StoreKey::new(format!("{}{key}", prefix.as_str()))
                        .map_err(|e| StorageError::Other(e.to_string()))?,
                ),
                ListDirItem::Prefix(inner) => {
                    prefixes.push(StorePrefix::new(format!("{}{inner}/", prefix.as_str())).map_err(invalid)?);
                }
            }
        }
        Ok(StoreKeysPrefixes::new(keys, prefixes))
    }

    async fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        let mut total = 0;
        for key in self.list_prefix(prefix).await? {
            total += self.size_key(&key).await?.unwrap_or(0);
        }
        Ok(total)
    }
}
