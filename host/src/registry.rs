//! The dataset registry: datasets configured in the host, and datasets provided by plugins
//! (xpublish's `get_datasets`/`get_dataset` hooks), asked on every lookup like xpublish does.
//! A provider may also serve ids it does not list (the diagnostics plugin's derived
//! datasets): an id no one lists is offered to each provider's `metadata` in turn.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, PoisonError, RwLock,
    },
};

use abi_stable::std_types::RStr;
use async_trait::async_trait;
use cloudify_dataset::{check_chunk_index, variable, DatasetMeta, Error, Result, SharedSource, Source};
use cloudify_sdk::{
    abi::{ChunkKey, DatasetSourceBox},
    ChunkRef, ErrorKind,
};
use indexmap::IndexMap;

use crate::{
    auth::{Auth, Caller},
    budget::ReadBudget,
};

/// Every dataset the server answers for. Configured datasets are added while the server
/// already serves (opening runs in the background), so one slow source delays nobody.
pub struct Registry {
    datasets: RwLock<IndexMap<String, SharedSource>>,
    providers: RwLock<Vec<Provider>>,
    plugins: RwLock<Vec<String>>,
    max_region_bytes: u64,
    read_budget: ReadBudget,
    /// Whether every configured dataset has been opened (or skipped).
    opened: AtomicBool,
    /// Configured datasets not served yet because their file is being staged for its scan,
    /// with the seconds a client should wait.
    staging: RwLock<HashMap<String, u64>>,
    /// Who may read what, when `[[auth.groups]]` are configured.
    auth: std::sync::OnceLock<Arc<Auth>>,
    /// The byte stores the configured datasets are read through (for their slow tiers).
    stores: std::sync::OnceLock<Arc<cloudify_store::Stores>>,
}

struct Provider {
    plugin: String,
    source: Arc<DatasetSourceBox>,
}

impl Registry {
    /// An empty registry whose region reads stop at `max_region_bytes` and whose reads hold
    /// at most `max_inflight_bytes` at once.
    pub fn new(max_region_bytes: u64, max_inflight_bytes: u64) -> Self {
        Self {
            datasets: RwLock::default(),
            providers: RwLock::new(Vec::new()),
            plugins: RwLock::new(Vec::new()),
            max_region_bytes,
            read_budget: ReadBudget::new(max_inflight_bytes),
            opened: AtomicBool::new(false),
            staging: RwLock::default(),
            auth: std::sync::OnceLock::new(),
            stores: std::sync::OnceLock::new(),
        }
    }

    /// Puts the datasets behind `auth`: from now on [`Registry::ids`] and [`Registry::get`]
    /// answer only what the caller of the request being handled may read.
    pub fn set_auth(&self, auth: Arc<Auth>) {
        let _ = self.auth.set(auth);
    }

    /// Records the byte stores the configured datasets are read through.
    pub fn set_stores(&self, stores: Arc<cloudify_store::Stores>) {
        let _ = self.stores.set(stores);
    }

    /// The byte stores the configured datasets are read through, once set.
    pub fn stores(&self) -> Option<Arc<cloudify_store::Stores>> {
        self.stores.get().cloned()
    }

    /// The access control in force, if any.
    pub fn auth(&self) -> Option<Arc<Auth>> {
        self.auth.get().cloned()
    }

    fn visible(&self, id: &str) -> bool {
        Caller::may_read(self.auth.get(), id)
    }

    /// Serves `source` as `id`; a later insert with the same id replaces the earlier one.
    pub fn insert(&self, id: impl Into<String>, source: SharedSource) {
        self.datasets.write().unwrap_or_else(PoisonError::into_inner).insert(id.into(), source);
    }

    /// Serves `id` no more (requests holding its source finish on it).
    pub fn remove(&self, id: &str) {
        self.datasets.write().unwrap_or_else(PoisonError::into_inner).shift_remove(id);
    }

    /// Whether a configured dataset has the id `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.datasets.read().unwrap_or_else(PoisonError::into_inner).contains_key(id)
    }

    /// Records that every configured dataset has been opened or skipped.
    pub fn mark_opened(&self) {
        self.opened.store(true, Ordering::Release);
    }

    /// Whether every configured dataset has been opened or skipped (`/ready`).
    pub fn is_opened(&self) -> bool {
        self.opened.load(Ordering::Acquire)
    }

    /// The datasets waiting for their files to be staged before they can be opened.
    pub fn set_staging(&self, staging: HashMap<String, u64>) {
        *self.staging.write().unwrap_or_else(PoisonError::into_inner) = staging;
    }

    /// Seconds to wait for dataset `id`, if it waits for its files to be staged.
    pub fn staging_retry_after(&self, id: &str) -> Option<u64> {
        self.staging.read().unwrap_or_else(PoisonError::into_inner).get(id).copied()
    }

    /// Whether any dataset waits for its files to be staged.
    pub fn any_staging(&self) -> bool {
        !self.staging.read().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Adds the datasets of plugin `plugin`.
    pub fn add_provider(&self, plugin: &str, source: DatasetSourceBox) {
        let provider = Provider { plugin: plugin.to_owned(), source: Arc::new(source) };
        self.providers.write().unwrap_or_else(PoisonError::into_inner).push(provider);
    }

    /// Records that plugin `name` loaded.
    pub fn add_plugin(&self, name: &str) {
        self.plugins.write().unwrap_or_else(PoisonError::into_inner).push(name.to_owned());
    }

    /// Names of the plugins loaded, in load order.
    pub fn plugins(&self) -> Vec<String> {
        self.plugins.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The largest region a read may produce, in bytes.
    pub fn max_region_bytes(&self) -> u64 {
        self.max_region_bytes
    }

    /// The bytes reads may hold at once.
    pub fn read_budget(&self) -> &ReadBudget {
        &self.read_budget
    }

    /// All dataset ids the caller may read: configured ones first, then each provider's,
    /// without repeats.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            self.datasets.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        for provider in self.providers.read().unwrap_or_else(PoisonError::into_inner).iter() {
            for id in provider.source.list() {
                if !ids.iter().any(|known| *known == *id) {
                    ids.push(id.into_string());
                }
            }
        }
        ids.retain(|id| self.visible(id));
        ids
    }

    /// The dataset `id`: a configured one, else the first provider that lists it, else the
    /// first provider that describes it when asked; `None` also when the caller may not read
    /// it.
    pub fn get(&self, id: &str) -> Option<SharedSource> {
        if !self.visible(id) {
            return None;
        }
        if let Some(source) = self.datasets.read().unwrap_or_else(PoisonError::into_inner).get(id) {
            return Some(Arc::clone(source));
        }
        // Copied out of the lock: a provider's calls may come back here for the datasets
        // theirs are made from.
        let providers: Vec<(String, Arc<DatasetSourceBox>)> = self
            .providers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|p| (p.plugin.clone(), Arc::clone(&p.source)))
            .collect();
        let source_of = |(plugin, provider): &(String, Arc<DatasetSourceBox>)| -> SharedSource {
            Arc::new(ProviderSource { id: id.to_owned(), plugin: plugin.clone(), provider: Arc::clone(provider) })
        };
        if let Some(listed) = providers.iter().find(|(_, p)| p.list().iter().any(|listed| listed == id)) {
            return Some(source_of(listed));
        }
        // Served: described, or refused for what the request names (a 400 says why). A
        // provider failing on an id (a broken plugin) does not turn every unknown id into a 500.
        providers.iter().map(source_of).find(|source| match source.metadata() {
            Err(Error::Provider { kind, .. }) => kind != ErrorKind::NOT_FOUND && kind != ErrorKind::INTERNAL,
            _ => true,
        })
    }
}

/// A dataset served by a plugin's [`cloudify_sdk::abi::DatasetSource`].
struct ProviderSource {
    id: String,
    plugin: String,
    provider: Arc<DatasetSourceBox>,
}

impl ProviderSource {
    fn failed(&self, kind: ErrorKind, reason: String) -> Error {
        Error::Provider { plugin: self.plugin.clone(), kind, reason }
    }

    /// The key of a chunk of `name`, checked against the metadata here, so the plugin only
    /// ever sees valid keys and its errors are read failures.
    fn checked_key(&self, name: &str, index: &[u64]) -> Result<ChunkKey> {
        let meta = self.metadata()?;
        check_chunk_index(name, variable(&meta, name)?, index)?;
        Ok(ChunkKey { dataset: self.id.as_str().into(), variable: name.into(), index: index.into() })
    }
}

#[async_trait]
impl Source for ProviderSource {
    fn metadata(&self) -> Result<Arc<DatasetMeta>> {
        // A provider may block to describe a dataset (reading the values it is computed
        // from): on a worker of the multi-threaded runtime, its other tasks move elsewhere
        // meanwhile.
        let describe = || self.provider.metadata(RStr::from_str(&self.id));
        let described = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(describe)
            }
            _ => describe(),
        };
        let json = described.into_result().map_err(|err| {
            self.failed(err.kind, format!("failed to describe dataset '{}': {}", self.id, err.message))
        })?;
        let meta: DatasetMeta = serde_json::from_str(&json).map_err(|err| {
            self.failed(ErrorKind::INTERNAL, format!("sent invalid metadata for '{}': {err}", self.id))
        })?;
        Ok(Arc::new(meta))
    }

    async fn chunk_ref(&self, name: &str, index: &[u64]) -> Result<ChunkRef> {
        let key = self.checked_key(name, index)?;
        let found = self.provider.chunk_reference(key).await.into_result();
        found.map_err(|err| self.failed(err.kind, format!("failed to locate {}/{name}: {}", self.id, err.message)))
    }

    async fn read_raw_chunk(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
        let key = self.checked_key(name, index)?;
        match self.provider.read_raw_chunk(key).await.into_result() {
            Ok(bytes) => Ok(bytes.into_vec()),
            Err(err) if err.kind == ErrorKind::UNSUPPORTED => {
                Err(Error::Unsupported { what: format!("stored bytes of {}/{name}: {}", self.id, err.message) })
            }
            Err(err) => Err(self.failed(err.kind, format!("failed to read {}/{name}: {}", self.id, err.message))),
        }
    }

    async fn read_chunk(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
        let key = self.checked_key(name, index)?;
        let meta = self.metadata()?;
        let var = variable(&meta, name)?;
        let bytes = self
            .provider
            .read_chunk(key)
            .await
            .into_result()
            .map_err(|err| self.failed(err.kind, format!("failed to read {}/{name}: {}", self.id, err.message)))?;
        if var.dtype.is_variable_length() {
            let items = cloudify_sdk::strings::decode(&bytes).map(|items| items.len() as u64);
            let expected: u64 = var.chunks.iter().product();
            if items != Ok(expected) {
                let message = format!("answered a malformed chunk of {} strings for {}/{name}", expected, self.id);
                return Err(self.failed(ErrorKind::INTERNAL, message));
            }
            return Ok(bytes.into_vec());
        }
        let expected = var.chunk_bytes();
        if bytes.len() as u64 != expected {
            return Err(self.failed(
                ErrorKind::INTERNAL,
                format!("answered {} bytes for a chunk of {}/{name}, expected {expected}", bytes.len(), self.id),
            ));
        }
        Ok(bytes.into_vec())
    }
}
