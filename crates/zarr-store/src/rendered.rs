//! Rendered stores and described datasets by dataset id, shared by a plugin's requests.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cloudify_sdk::{meta::DatasetMeta, Error, Host, HostExt};

use crate::{codecs::ServedCodec, rechunk::Rechunk, store::Store};

/// How long a dataset's rendered metadata is reused before it is fetched from the host again
/// (datasets a provider plugin serves may change).
pub const METADATA_TTL: Duration = Duration::from_secs(30);

/// How often a kept rendering is checked against the host's metadata: a dataset rescanned
/// (a changed file, a reload) is served as it is now within this time.
pub const METADATA_CHECK: Duration = Duration::from_secs(1);

/// Each dataset rendered as a store once per [`METADATA_TTL`] while its metadata stays the
/// same (checked every [`METADATA_CHECK`]).
pub struct RenderedStores {
    stores: moka::sync::Cache<String, Arc<Store>>,
    /// The stores checked within the last [`METADATA_CHECK`].
    checked: moka::sync::Cache<String, Arc<Store>>,
}

impl Default for RenderedStores {
    fn default() -> Self {
        Self {
            stores: moka::sync::Cache::builder().time_to_live(METADATA_TTL).build(),
            checked: moka::sync::Cache::builder().time_to_live(METADATA_CHECK).build(),
        }
    }
}

/// The generation of a dataset's metadata JSON text.
fn generation_of(json: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(json.as_bytes())
}

impl RenderedStores {
    /// The dataset `id` as a store with chunks served by `codec`, optionally rechunked: the
    /// one rendered within the last [`METADATA_TTL`], else rendered from the host's metadata.
    ///
    /// # Errors
    /// As [`Store::from_host`].
    pub fn get(
        &self,
        host: &Host,
        id: &str,
        codec: ServedCodec,
        rechunk: Option<&Rechunk>,
    ) -> Result<Arc<Store>, Error> {
        if let Some(store) = self.checked.get(id) {
            return Ok(store);
        }
        let generation = generation_of(&host.metadata_json(id)?);
        let store = match self.stores.get(id).filter(|store| store.generation == generation) {
            Some(store) => store,
            None => {
                let store = Arc::new(Store::from_host(host, id, codec, rechunk)?);
                self.stores.insert(id.to_owned(), Arc::clone(&store));
                store
            }
        };
        self.checked.insert(id.to_owned(), Arc::clone(&store));
        Ok(store)
    }
}

/// A dataset's metadata, its generation (a hash of the metadata: caches and `ETag`s follow it)
/// and its modification time.
pub struct Described {
    /// The metadata.
    pub meta: DatasetMeta,
    /// Changes whenever the metadata does.
    pub generation: u64,
    /// The source's modification time, for `Last-Modified`.
    pub last_modified: Option<SystemTime>,
}

/// Each dataset described once per [`METADATA_TTL`] while its metadata stays the same
/// (checked every [`METADATA_CHECK`]), for plugins that compute from the metadata (plot,
/// diagnostics) rather than render a store.
pub struct DescribedDatasets {
    described: moka::sync::Cache<String, Arc<Described>>,
    checked: moka::sync::Cache<String, Arc<Described>>,
}

impl Default for DescribedDatasets {
    fn default() -> Self {
        Self {
            described: moka::sync::Cache::builder().time_to_live(METADATA_TTL).build(),
            checked: moka::sync::Cache::builder().time_to_live(METADATA_CHECK).build(),
        }
    }
}

impl DescribedDatasets {
    /// Dataset `id` as checked within the last [`METADATA_CHECK`], else from the host.
    ///
    /// # Errors
    /// What the host's metadata call fails with (404 for an unknown dataset).
    pub fn get(&self, host: &Host, id: &str) -> Result<Arc<Described>, Error> {
        if let Some(described) = self.checked.get(id) {
            return Ok(described);
        }
        let json = host.metadata_json(id)?;
        let generation = generation_of(&json);
        if let Some(described) = self.described.get(id).filter(|d| d.generation == generation) {
            self.checked.insert(id.to_owned(), Arc::clone(&described));
            return Ok(described);
        }
        let meta: DatasetMeta =
            serde_json::from_str(&json).map_err(|e| Error::internal(format!("metadata of '{id}': {e}")))?;
        let last_modified = meta.last_modified.map(|s| UNIX_EPOCH + Duration::from_secs(s.max(0) as u64));
        let described = Arc::new(Described { meta, generation, last_modified });
        self.described.insert(id.to_owned(), Arc::clone(&described));
        self.checked.insert(id.to_owned(), Arc::clone(&described));
        Ok(described)
    }
}
