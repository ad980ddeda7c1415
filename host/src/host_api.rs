//! The host's side of [`cloudify_sdk::HostApi`]: what each plugin's `Host` handle does.

use std::sync::Arc;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult, RStr, RString, RVec},
};
use async_ffi::{FfiFuture, FutureExt as _};
use cloudify_dataset::{read_region, variable, ChunkRef as DataChunkRef, Error as DataError, SharedSource, VariableMeta};
use cloudify_sdk::{
    BlockingTaskBox, ChunkKey, ChunkRef, ErrorKind, FileStat, Host, HostApi, HostApi_TO, HostError, LogLevel, Region,
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
    fn budgeted<B, F>(&self, dataset: &str, bytes: B, read: impl FnOnce(SharedSource) -> F + Send + 'static)
        -> FfiFuture<RResult<RVec<u8>, HostError>>
    where
        B: std::future::Future<Output = u64> + Send + 'static,
        F: std::future::Future<Output = Result<RVec<u8>, DataError>> + Send + 'static,
    {
        let held = Held::current();
        let registry = Arc::clone(&self.registry);
        self.on_runtime(dataset, move |source| async move {
            let grant = registry.read_budget().take(bytes.await, held.as_ref()).await;
            let bytes = read(source).await?;
            if let Some(held) = held {
                held.keep(grant);
            }
            Ok(bytes)
        })
    }
}

/// A data-plane chunk reference as the ABI carries it.
pub(crate) fn to_abi(reference: DataChunkRef) -> ChunkRef {
    match reference {
        DataChunkRef::Range { url, offset, length } => ChunkRef::Range { url: url.into(), offset, length },
        DataChunkRef::Inline(bytes) => ChunkRef::Inline(bytes.into()),
        DataChunkRef::Missing => ChunkRef::Missing,
        DataChunkRef::Computed => ChunkRef::Computed,
    }
}

impl HostApi for PluginHost {
    fn list_datasets(&self) -> RVec<RString> {
        self.registry.ids().into_iter().map(RString::from).collect()
    }

    fn dataset_metadata(&self, dataset: RStr<'_>) -> RResult<RString, HostError> {
        self.source(dataset.as_str())
            .and_then(|source| source.metadata().map_err(|err| to_host_error(&err)))
            .and_then(|meta| {
                serde_json::to_string(&*meta).map_err(|err| HostError::new(ErrorKind::INTERNAL, err.to_string()))
            })
            .map(RString::from)
            .into()
    }

    fn read_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
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

    fn read_raw_chunk(&self, key: ChunkKey) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let source = self.source(&key.dataset).ok();
        let (name, index) = (key.variable.to_string(), key.index.to_vec());
        let bytes = async move {
            let Some(source) = source else { return 0 };
            match source.chunk_ref(&name, &index).await {
                Ok(DataChunkRef::Range { length, .. }) => length,
                _ => 0,
            }
        };
        self.budgeted(&key.dataset.clone(), bytes, move |source| async move {
            source.read_raw_chunk(&key.variable, &key.index).await.map(RVec::from)
        })
    }

    fn chunk_reference(&self, key: ChunkKey) -> FfiFuture<RResult<ChunkRef, HostError>> {
        self.on_runtime(&key.dataset, move |source| async move {
            Ok(to_abi(source.chunk_ref(&key.variable, &key.index).await?))
        })
    }

    fn read_region(&self, region: Region) -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let limit = self.registry.max_region_bytes();
        let source = self.source(&region.dataset).ok();
        let (name, shape) = (region.variable.to_string(), region.shape.to_vec());
        let bytes = async move {
            let meta = source.and_then(|source| source.metadata().ok());
            let item = meta.and_then(|meta| variable(&meta, &name).ok().map(|var| var.dtype.size() as u64)).unwrap_or(0);
            shape.iter().try_fold(item, |product, &n| product.checked_mul(n)).unwrap_or(u64::MAX)
        };
        self.budgeted(&region.dataset.clone(), bytes, move |source| async move {
            read_region(&*source, &region.variable, &region.start, &region.shape, limit).await.map(RVec::from)
        })
    }

    fn plugin_config(&self) -> RString {
        RString::from(&*self.config)
    }

    fn plugin_name(&self) -> RString {
        RString::from(&*self.plugin)
    }

    fn write_log(&self, level: LogLevel, message: RStr<'_>) {
        let (plugin, message) = (&*self.plugin, message.as_str());
        match level {
            LogLevel::Error => tracing::error!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
        }
    }

    fn spawn_blocking(&self, mut task: BlockingTaskBox) -> FfiFuture<()> {
        let done = self.runtime.spawn_blocking(move || task.run());
        async move {
            let _ = done.await;
        }
        .into_ffi()
    }

    fn source_files(&self, dataset: RStr<'_>) -> RResult<RVec<RString>, HostError> {
        self.source(dataset.as_str()).map(|source| source.files().into_iter().map(RString::from).collect()).into()
    }

    fn stat_source_file(&self, dataset: RStr<'_>, file: RStr<'_>) -> FfiFuture<RResult<FileStat, HostError>> {
        let file = file.as_str().to_owned();
        self.on_runtime(dataset.as_str(), move |source| async move {
            let stat = source.stat_file(&file).await?;
            Ok(FileStat { size: stat.size, modified: stat.modified })
        })
    }

    fn read_source_file(&self, dataset: RStr<'_>, file: RStr<'_>, offset: u64, length: u64)
        -> FfiFuture<RResult<RVec<u8>, HostError>> {
        let file = file.as_str().to_owned();
        self.budgeted(dataset.as_str(), async move { length }, move |source| async move {
            source.read_file(&file, offset, length).await.map(RVec::from)
        })
    }

    fn loaded_plugins(&self) -> RVec<RString> {
        self.registry.plugins().into_iter().map(RString::from).collect()
    }

    fn sleep_ms(&self, ms: u64) -> FfiFuture<()> {
        let done = self.runtime.spawn(tokio::time::sleep(std::time::Duration::from_millis(ms)));
        async move {
            let _ = done.await;
        }
        .into_ffi()
    }
}
