//! The host's side of [`cloudify_sdk::abi::HostApi`]: what each plugin's `Host` handle does.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult, RStr, RString, RVec},
};
use async_ffi::{FfiFuture, FutureExt as _};
use cloudify_dataset::{read_region, variable, Error as DataError, SharedSource, VariableMeta};
use cloudify_sdk::{
    abi::{BlockingTaskBox, ChunkKey, HostApi, HostApi_TO, Region},
    ChunkRef, ErrorKind, FileStat, Host, HostError, LogLevel,
};
use tokio::runtime::Handle;

use crate::{budget::Held, error::to_host_error, registry::Registry};

/// One plugin's handle on the host.
#[derive(Clone)]
struct PluginHost {
    plugin: Arc<str>,
    config: Arc<str>,
    registry: Arc<Registry>,
    runtime: Handle,
}

/// A [`Host`] for plugin `plugin` with its config table `config` (JSON text).
pub(crate) fn plugin_host(plugin: &str, config: String, registry: Arc<Registry>, runtime: Handle) -> Host {
    let host = PluginHost { plugin: plugin.into(), config: config.into(), registry, runtime };
    HostApi_TO::from_ptr(RArc::new(host), TD_Opaque)
}

fn not_found(dataset: &str) -> HostError {
    HostError::new(ErrorKind::NOT_FOUND, format!("Dataset '{dataset}' not found"))
}

impl PluginHost {
    fn source(&self, dataset: &str) -> Result<SharedSource, HostError> {
        self.registry.get(dataset).ok_or_else(|| not_found(dataset))
    }

    /// Runs `read` on the host's runtime: the plugin may poll the returned future from a
    /// runtime of its own, which has no access to the host's reactor or blocking pool.
    fn on_runtime<T, F>(&self, dataset: &str, read: impl FnOnce(SharedSource) -> F) -> FfiFuture<RResult<T, HostError>>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, DataError>> + Send + 'static,
    {
        let task = match self.source(dataset) {
            Ok(source) => self.runtime.spawn(read(source)),
            Err(err) => return async move { RResult::RErr(err) }.into_ffi(),
        };
        async move {
            match task.await {
                Ok(outcome) => outcome.map_err(|err| to_host_error(&err)).into(),
                Err(join) => RResult::RErr(HostError::new(ErrorKind::INTERNAL, format!("read task failed: {join}"))),
            }
        }
        .into_ffi()
    }

    /// A read of bytes that live on in the answer: [`Self::on_runtime`], after taking the
    /// size `bytes` tells from the read budget. The grant goes with the request being handled
    /// until its response is sent.
    fn budgeted<B, F>(
        &self,
        dataset: &str,
        bytes: B,
        read: impl FnOnce(SharedSource) -> F + Send + 'static,
    ) -> FfiFuture<RResult<RVec<u8>, HostError>>
    where
        B: std::future::Future<Output = u64> + Send + 'static,
        F: std::future::Future<Output = Result<RVec<u8>, DataError>> + Send + 'static,
    {
        let held = Held::current();
        let registry = Arc::clone(&self.registry);
        self.on_runtime(dataset, move |source| async move {
            let grant = registry.read_budget().take(bytes.await, held.as_ref()).await;
            let read = read(source).await;
            if let Some(held) = held {
                match &read {
                    Ok(_) => held.keep(grant),
                    // For the answer's `Retry-After`, should the plugin answer 503.
                    Err(err) => err.retry_after_secs().into_iter().for_each(|secs| held.retry_after(secs)),
                }
            }
            read
        })
    }
}

/// The error a plugin gets from a service that panicked.
fn internal() -> HostError {
    HostError::new(ErrorKind::INTERNAL, "internal error in the host (logged on the server)")
}

/// Runs `call`, or `fallback` if it panics.
fn guarded<T>(service: &str, fallback: impl FnOnce() -> T, call: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let message =
            panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned());
        tracing::error!(service, "host service panicked: {}", message.unwrap_or_default());
        fallback()
    })
}

/// The host's services, unguarded: [`HostApi`] below runs each under `catch_unwind`.
impl PluginHost {
    fn list_datasets_unguarded(&self) -> RVec<RString> {
        self.registry.ids().into_iter().map(RString::from).collect()
    }

    fn dataset_metadata_unguarded(&self, dataset: RStr<'_>) -> RResult<RString, HostError> {
        self.source(dataset.as_str())
            .and_then(|source| source.metadata().map_err(|err| to_host_error(&err)))
            .and_then(|meta| {
                serde_json::to_string(&*meta).map_err(|err| HostError::new(ErrorKind::INTERNAL, err.to_string()))
            })
            .map(RString::from)
            .into()
    }

    fn read_chunk_unguarded(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let source = self.source(&key.dataset).ok();
        let name = key.variable.to_string();
        let bytes = async move {
            let meta = source.and_then(|source| source.metadata().ok());
            meta.and_then(|meta| variable(&meta, &name).ok().map(VariableMeta::chunk_bytes)).unwrap_or(0)
        };
        self.budgeted(&key.dataset.clone(), bytes, move |source| async move {
            // Not kept in the decoded-chunk cache: the zarr plugin keeps the chunk encoded.
            source.read_chunk_once(&key.variable, &key.index).await.map(RVec::from)
        })
    }

    fn read_raw_chunk_unguarded(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let source = self.source(&key.dataset).ok();
        let (name, index) = (key.variable.to_string(), key.index.to_vec());
        let bytes = async move {
            let Some(source) = source else { return 0 };
            match source.chunk_ref(&name, &index).await {
                Ok(ChunkRef::Range { length, .. }) => length,
                _ => 0,
            }
        };
        self.budgeted(&key.dataset.clone(), bytes, move |source| async move {
            source.read_raw_chunk(&key.variable, &key.index).await.map(RVec::from)
        })
    }

    fn chunk_reference_unguarded(&self, key: ChunkKey) -> FfiFuture<RResult<ChunkRef, HostError>> {
        self.on_runtime(&key.dataset, move |source| async move { source.chunk_ref(&key.variable, &key.index).await })
    }

    fn read_region_unguarded(&self, region: Region) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let limit = self.registry.max_region_bytes();
        let source = self.source(&region.dataset).ok();
        let (name, shape) = (region.variable.to_string(), region.shape.to_vec());
        let bytes = async move {
            let meta = source.and_then(|source| source.metadata().ok());
            let item =
                meta.and_then(|meta| variable(&meta, &name).ok().map(|var| var.dtype.size() as u64)).unwrap_or(0);
            shape.iter().try_fold(item, |product, &n| product.checked_mul(n)).unwrap_or(u64::MAX)
        };
        self.budgeted(&region.dataset.clone(), bytes, move |source| async move {
            read_region(&*source, &region.variable, &region.start, &region.shape, limit).await.map(RVec::from)
        })
    }

    fn plugin_config_unguarded(&self) -> RString {
        RString::from(&*self.config)
    }

    fn plugin_name_unguarded(&self) -> RString {
        RString::from(&*self.plugin)
    }

    fn write_log_unguarded(&self, level: LogLevel, message: RStr<'_>) {
        let (plugin, message) = (&*self.plugin, message.as_str());
        match level {
            LogLevel::Error => tracing::error!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
        }
    }

    fn spawn_blocking_unguarded(&self, mut task: BlockingTaskBox) -> FfiFuture<()> {
        let done = self.runtime.spawn_blocking(move || task.run());
        async move {
            let _ = done.await;
        }
        .into_ffi()
    }

    fn source_files_unguarded(&self, dataset: RStr<'_>) -> RResult<RVec<RString>, HostError> {
        self.source(dataset.as_str()).map(|source| source.files().into_iter().map(RString::from).collect()).into()
    }

    fn stat_source_file_unguarded(&self, dataset: RStr<'_>, file: RStr<'_>) -> FfiFuture<RResult<FileStat, HostError>> {
        let file = file.as_str().to_owned();
        self.on_runtime(dataset.as_str(), move |source| async move {
            let stat = source.stat_file(&file).await?;
            Ok(FileStat { size: stat.size, modified: stat.modified })
        })
    }

    fn read_source_file_unguarded(
        &self,
        dataset: RStr<'_>,
        file: RStr<'_>,
        offset: u64,
        length: u64,
    ) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let file = file.as_str().to_owned();
        self.budgeted(dataset.as_str(), async move { length }, move |source| async move {
            source.read_file(&file, offset, length).await.map(RVec::from)
        })
    }

    fn loaded_plugins_unguarded(&self) -> RVec<RString> {
        self.registry.plugins().into_iter().map(RString::from).collect()
    }

    fn sleep_ms_unguarded(&self, ms: u64) -> FfiFuture<()> {
        let done = self.runtime.spawn(tokio::time::sleep(std::time::Duration::from_millis(ms)));
        async move {
            let _ = done.await;
        }
        .into_ffi()
    }
}

/// Every service a plugin calls runs under `catch_unwind`: a panic here would unwind into the
/// plugin's frame through `extern "C"` and abort the process; the plugin gets an internal
/// error (or nothing) instead, and the log says which service failed.
impl HostApi for PluginHost {
    fn list_datasets(&self) -> RVec<RString> {
        guarded("list_datasets", RVec::new, || self.list_datasets_unguarded())
    }

    fn dataset_metadata(&self, dataset: RStr<'_>) -> RResult<RString, HostError> {
        guarded("dataset_metadata", || RResult::RErr(internal()), || self.dataset_metadata_unguarded(dataset))
    }

    fn read_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        guarded("read_chunk", || async { RResult::RErr(internal()) }.into_ffi(), || self.read_chunk_unguarded(key))
    }

    fn read_raw_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        guarded(
            "read_raw_chunk",
            || async { RResult::RErr(internal()) }.into_ffi(),
            || self.read_raw_chunk_unguarded(key),
        )
    }

    fn chunk_reference(&self, key: ChunkKey) -> FfiFuture<RResult<ChunkRef, HostError>> {
        guarded(
            "chunk_reference",
            || async { RResult::RErr(internal()) }.into_ffi(),
            || self.chunk_reference_unguarded(key),
        )
    }

    fn read_region(&self, region: Region) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        guarded("read_region", || async { RResult::RErr(internal()) }.into_ffi(), || self.read_region_unguarded(region))
    }

    fn plugin_config(&self) -> RString {
        guarded("plugin_config", RString::new, || self.plugin_config_unguarded())
    }

    fn plugin_name(&self) -> RString {
        guarded("plugin_name", RString::new, || self.plugin_name_unguarded())
    }

    fn write_log(&self, level: LogLevel, message: RStr<'_>) {
        guarded("write_log", || (), || self.write_log_unguarded(level, message))
    }

    fn spawn_blocking(&self, task: BlockingTaskBox) -> FfiFuture<()> {
        guarded("spawn_blocking", || async {}.into_ffi(), || self.spawn_blocking_unguarded(task))
    }

    fn source_files(&self, dataset: RStr<'_>) -> RResult<RVec<RString>, HostError> {
        guarded("source_files", || RResult::RErr(internal()), || self.source_files_unguarded(dataset))
    }

    fn stat_source_file(&self, dataset: RStr<'_>, file: RStr<'_>) -> FfiFuture<RResult<FileStat, HostError>> {
        guarded(
            "stat_source_file",
            || async { RResult::RErr(internal()) }.into_ffi(),
            || self.stat_source_file_unguarded(dataset, file),
        )
    }

    fn read_source_file(
        &self,
        dataset: RStr<'_>,
        file: RStr<'_>,
        offset: u64,
        length: u64,
    ) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        guarded(
            "read_source_file",
            || async { RResult::RErr(internal()) }.into_ffi(),
            || self.read_source_file_unguarded(dataset, file, offset, length),
        )
    }

    fn loaded_plugins(&self) -> RVec<RString> {
        guarded("loaded_plugins", RVec::new, || self.loaded_plugins_unguarded())
    }

    fn sleep_ms(&self, ms: u64) -> FfiFuture<()> {
        guarded("sleep_ms", || async {}.into_ffi(), || self.sleep_ms_unguarded(ms))
    }
}

#[cfg(test)]
mod tests {
    use abi_stable::std_types::RStr;
    use cloudify_dataset::{DatasetMeta, Source};

    use super::*;

    /// A dataset whose code panics.
    struct Exploding;

    #[async_trait::async_trait]
    impl Source for Exploding {
        fn metadata(&self) -> cloudify_dataset::Result<Arc<DatasetMeta>> {
            panic!("boom in a source");
        }
        async fn read_chunk(&self, _variable: &str, _index: &[u64]) -> cloudify_dataset::Result<Vec<u8>> {
            panic!("boom in a read");
        }
    }

    #[tokio::test]
    async fn a_service_that_panics_answers_an_error_instead_of_aborting() {
        let registry = Arc::new(Registry::new(1 << 20, 1 << 20));
        registry.insert("bad", Arc::new(Exploding));
        // Calls go through the ABI's `extern "C"` shims, as a plugin's would: a panic that
        // reached one would abort this test process.
        let host = plugin_host("test", "{}".to_owned(), registry, Handle::current());
        let described = host.dataset_metadata(RStr::from_str("bad")).into_result();
        assert_eq!(described.unwrap_err().kind, ErrorKind::INTERNAL);
        let key = ChunkKey { dataset: "bad".into(), variable: "v".into(), index: vec![0u64].into() };
        assert_eq!(host.read_chunk(key).await.into_result().unwrap_err().kind, ErrorKind::INTERNAL);
        assert!(host.list_datasets().iter().any(|id| id == "bad"), "the host keeps serving");
    }
}
