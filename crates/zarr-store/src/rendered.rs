//! Rendered stores by dataset id, shared by a plugin's requests.

use std::{sync::Arc, time::Duration};

use cloudify_sdk::{Error, Host};

use crate::{codecs::ServedCodec, rechunk::Rechunk, store::Store};

/// How long a dataset's rendered metadata is reused before it is fetched from the host again
/// (datasets a provider plugin serves may change).
pub const METADATA_TTL: Duration = Duration::from_secs(30);

/// Each dataset rendered as a store once per [`METADATA_TTL`].
pub struct RenderedStores {
    stores: moka::sync::Cache<String, Arc<Store>>,
}

impl Default for RenderedStores {
    fn default() -> Self {
        Self { stores: moka::sync::Cache::builder().time_to_live(METADATA_TTL).build() }
    }
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
        if let Some(store) = self.stores.get(id) {
            return Ok(store);
        }
        let store = Arc::new(Store::from_host(host, id, codec, rechunk)?);
        self.stores.insert(id.to_owned(), Arc::clone(&store));
        Ok(store)
    }
}
