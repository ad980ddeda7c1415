//! cloudify's datapoint plugin: DataPoint as a dataset provider. Each
//! `[[plugin.datapoint.sources]]` is a search of a peer's STAC API; the cloud product of
//! each item found (a kerchunk reference set, a CF aggregation file or a Zarr store, the
//! first of `formats` it has) is opened with `crates/datapoint` and served as a dataset of
//! this server, so `/zarr`, `/kerchunk`, plots and diagnostics work on a peer's products.
//!
//! The search is repeated every `refresh_secs`: new items show up, vanished ones go, products
//! whose href is unchanged are kept as opened. An API that cannot be reached is one warning
//! line; what was served stays served, and it is retried at the next refresh. Products and
//! their reference targets must be on the API's own host or under `allow_targets`: a
//! catalogue does not get to name local files or other hosts.
//!
//! The searches and reads run on a small tokio runtime of the plugin's own: the host's
//! runtime lives in another copy of tokio, which the HTTP and object-store clients here
//! cannot see.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod federation;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use cloudify_sdk::{abi::HostError, meta::DatasetMeta, ChunkRef, ErrorKind, Host, HostExt, Plugin, Provider};

use crate::{config::Config, federation::Federation};

cloudify_sdk::declare_plugin!(name: "datapoint", init: init);

/// How long loading waits for the first searches, so that the peers' datasets are served
/// when the server starts answering (a slower peer shows up when it answers).
const FIRST_SEARCH: Duration = Duration::from_secs(30);

/// The plugin's runtime, one per process, never dropped.
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("datapoint")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the datapoint runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn init(host: Host) -> Result<Plugin, String> {
    let config: Config = host.config().map_err(|err| err.to_string())?;
    let plugin = Plugin::new("datapoint", env!("CARGO_PKG_VERSION"))
        .description("The cloud products of peers' STAC searches served as datasets (DataPoint as a provider)");
    if config.sources.is_empty() {
        return Ok(plugin);
    }
    let runtime = runtime()?;
    let federation = Arc::new(Federation::new(config.sources, host.clone(), runtime.handle().clone())?);
    let (searched, first) = std::sync::mpsc::channel();
    let refreshing = Arc::clone(&federation);
    runtime.spawn(async move {
        refreshing.refresh_all().await;
        let _ = searched.send(());
        refreshing.refresh_forever().await;
    });
    if first.recv_timeout(FIRST_SEARCH).is_err() {
        host.log(cloudify_sdk::LogLevel::Warn, "datapoint sources still searching; served once they answer");
    }
    Ok(plugin.dataset_source(cloudify_sdk::dataset_source(Peers(federation))))
}

/// The peers' products as a dataset provider.
struct Peers(Arc<Federation>);

fn not_found(dataset: &str) -> HostError {
    HostError::new(ErrorKind::NOT_FOUND, format!("no datapoint dataset '{dataset}'"))
}

fn read_error(error: cloudify_dataset::Error) -> HostError {
    match error {
        cloudify_dataset::Error::Unsupported { what } => HostError::new(ErrorKind::UNSUPPORTED, what),
        other => HostError::new(ErrorKind::INTERNAL, other.to_string()),
    }
}

impl Peers {
    /// `read` of dataset `dataset`'s source, run on the plugin's runtime.
    fn on_runtime<T, F>(
        &self,
        dataset: &str,
        read: impl FnOnce(cloudify_dataset::SharedSource) -> F,
    ) -> impl std::future::Future<Output = Result<T, HostError>> + Send + 'static
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, cloudify_dataset::Error>> + Send + 'static,
    {
        let started =
            self.0.get(dataset).ok_or_else(|| not_found(dataset)).map(|source| self.0.runtime().spawn(read(source)));
        async move {
            match started?.await {
                Ok(read) => read.map_err(read_error),
                Err(panicked) => Err(HostError::new(ErrorKind::INTERNAL, format!("read failed: {panicked}"))),
            }
        }
    }
}

impl Provider for Peers {
    fn list(&self) -> Vec<String> {
        self.0.ids()
    }

    fn metadata(&self, dataset: &str) -> Result<DatasetMeta, HostError> {
        let source = self.0.get(dataset).ok_or_else(|| not_found(dataset))?;
        let mut meta = (*source.metadata().map_err(read_error)?).clone();
        meta.id = dataset.to_owned();
        Ok(meta)
    }

    fn read_chunk(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, HostError>> + Send + 'static {
        let (variable, index) = (variable.to_owned(), index.to_vec());
        self.on_runtime(dataset, move |source| async move { source.read_chunk(&variable, &index).await })
    }

    fn read_raw_chunk(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, HostError>> + Send + 'static {
        let (variable, index) = (variable.to_owned(), index.to_vec());
        self.on_runtime(dataset, move |source| async move { source.read_raw_chunk(&variable, &index).await })
    }

    fn chunk_ref(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl std::future::Future<Output = Result<ChunkRef, HostError>> + Send + 'static {
        let (variable, index) = (variable.to_owned(), index.to_vec());
        self.on_runtime(dataset, move |source| async move { source.chunk_ref(&variable, &index).await })
    }
}
