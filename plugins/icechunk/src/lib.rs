//! cloudify's icechunk plugin: Icechunk repositories (transactional Zarr v3, native and
//! virtual chunks) served as datasets through the SDK's dataset provider, so that every other
//! plugin (`/zarr` v2 and v3, `/info`, STAC, intake, plot, diagnostics) works on them.
//!
//! `[[plugin.icechunk.repos]]` (see `config.rs`) names each repository: a local folder,
//! `s3://` or read-only `http(s)://`; a branch, tag or snapshot; the virtual chunk containers
//! it may read. Each group holding arrays is a dataset (`id`, `id.a.b` for `/a/b`), its
//! global attributes carrying `_icechunk_href` and `_icechunk_snapshot_id` as DKRZ's cloudify
//! marks icechunk datasets (the STAC plugin describes the repository from them), its
//! modification time the commit's. The `ref` is re-resolved every
//! `refresh_secs`: a commit to the branch is served without a restart. A repository that
//! cannot be opened is skipped with one warning line and retried then.
//!
//! icechunk runs on a small tokio runtime of this plugin's own (`storage.rs`): the host's
//! runtime lives in another copy of tokio, which icechunk's I/O cannot see.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod export;
mod repos;
mod storage;
pub mod virtualize;
mod write;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use cloudify_dataset::Source;
use cloudify_sdk::{
    abi::HostError, meta::DatasetMeta, ChunkRef, ErrorKind, Host, HostExt, Plugin, Provider, Route, Scope,
};

use crate::{config::Config, export::Exports, repos::Repos};

cloudify_sdk::declare_plugin!(name: "icechunk", init: init);

/// How long loading waits for the repositories' first opening, so that they are served when
/// the server starts answering (a slower one shows up when it is opened).
const FIRST_OPEN: Duration = Duration::from_secs(30);

/// The plugin's runtime, one per process, never dropped (dropping a runtime from async code
/// panics, and plugins live as long as the server).
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("icechunk")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the icechunk runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn init(host: Host) -> Result<Plugin, String> {
    let config: Config = host.config().map_err(|err| err.to_string())?;
    let runtime = runtime()?;
    let exports = Arc::new(Exports::new(runtime.handle().clone()));
    let described = Arc::clone(&exports);
    let plugin = Plugin::new("icechunk", env!("CARGO_PKG_VERSION"))
        .description("Icechunk repositories served as datasets; every dataset as a read-only Icechunk repository")
        .route(
            Route::get(Scope::Dataset, "/icechunk/{*path}", move |host, req| {
                let exports = Arc::clone(&exports);
                async move { exports.answer(&host, &req).await }
            })
            .summary(
                "The dataset as a read-only Icechunk repository (icechunk's HTTP storage), chunks referencing /files",
            )
            .content_type("application/octet-stream"),
        )
        .route(
            Route::get(Scope::Dataset, "/icechunk/", move |host, req| {
                let exports = Arc::clone(&described);
                async move { exports.answer(&host, &req).await }
            })
            .summary("The dataset's Icechunk repository: its snapshot and the virtual chunk containers to authorize")
            .content_type("application/json"),
        );
    if config.repos.is_empty() {
        return Ok(plugin);
    }
    let repos = Arc::new(Repos::new(config.repos, runtime.handle().clone(), host.clone()));
    let (opened, first) = std::sync::mpsc::channel();
    let first_open = Arc::clone(&repos);
    runtime.spawn(async move {
        first_open.refresh_all().await;
        let _ = opened.send(());
        first_open.refresh_forever().await;
    });
    if first.recv_timeout(FIRST_OPEN).is_err() {
        host.log(cloudify_sdk::LogLevel::Warn, "icechunk repositories still opening; served once they are");
    }
    Ok(plugin.dataset_source(cloudify_sdk::dataset_source(Repositories(repos))))
}

/// The repositories as a dataset provider.
struct Repositories(Arc<Repos>);

fn not_found(dataset: &str) -> HostError {
    HostError::new(ErrorKind::NOT_FOUND, format!("no icechunk dataset '{dataset}'"))
}

/// A read failure: 403 naming the container for a virtual chunk outside the authorized ones,
/// `UNSUPPORTED` for what the dataset cannot give (stored bytes of converted text, ...).
fn read_error(error: cloudify_dataset::Error) -> HostError {
    if let cloudify_dataset::Error::Unsupported { what } = error {
        return HostError::new(ErrorKind::UNSUPPORTED, what);
    }
    let message = error.to_string();
    let container = message.split_once(storage::UNAUTHORIZED).and_then(|(_, rest)| rest.split('`').nth(1));
    match container {
        Some(prefix) => HostError::new(
            ErrorKind::FORBIDDEN,
            format!("virtual chunks in '{prefix}' are not authorized for this repository (authorize_virtual)"),
        ),
        None => HostError::new(ErrorKind::INTERNAL, message.as_str()),
    }
}

impl Repositories {
    /// The source of dataset `dataset` and the chunk's owned key, for a read made later.
    fn chunk_of(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> Result<(Arc<cloudify_zarr::ZarrSource>, String, Vec<u64>), HostError> {
        let source = self.0.get(dataset).ok_or_else(|| not_found(dataset))?;
        Ok((source, variable.to_owned(), index.to_vec()))
    }
}

impl Provider for Repositories {
    fn list(&self) -> Vec<String> {
        self.0.ids()
    }

    fn metadata(&self, dataset: &str) -> Result<DatasetMeta, HostError> {
        self.0
            .metadata(dataset)
            .ok_or_else(|| not_found(dataset))?
            .map_err(|e| HostError::new(ErrorKind::INTERNAL, e.to_string()))
    }

    fn read_chunk(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, HostError>> + Send + 'static {
        let chunk = self.chunk_of(dataset, variable, index);
        async move {
            let (source, variable, index) = chunk?;
            source.read_chunk(&variable, &index).await.map_err(read_error)
        }
    }

    fn read_raw_chunk(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, HostError>> + Send + 'static {
        let chunk = self.chunk_of(dataset, variable, index);
        async move {
            let (source, variable, index) = chunk?;
            source.read_raw_chunk(&variable, &index).await.map_err(read_error)
        }
    }

    fn chunk_ref(
        &self,
        dataset: &str,
        variable: &str,
        index: &[u64],
    ) -> impl std::future::Future<Output = Result<ChunkRef, HostError>> + Send + 'static {
        let repos = Arc::clone(&self.0);
        let (dataset, variable, index) = (dataset.to_owned(), variable.to_owned(), index.to_vec());
        async move { repos.chunk_ref(&dataset, &variable, &index).await.map_err(|e| HostError::new(ErrorKind::INTERNAL, e)) }
    }
}
