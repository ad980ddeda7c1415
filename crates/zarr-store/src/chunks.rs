//! A rendered store's chunks as reference sets and repositories are written from: where each
//! is stored, its stored bytes, or its values encoded with the chain the store declares.

use std::{future::Future, sync::Arc};

use cloudify_sdk::{ChunkRef, Error, Host, HostExt};

use crate::{Array, Format, Store};

/// What writing a store's chunks elsewhere needs from the data plane (the host's API in a
/// plugin, the sources themselves in the command line tools).
pub trait ChunkAccess: Sync {
    /// Where chunk `index` of `var` is stored.
    fn locate(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<ChunkRef, Error>> + Send;
    /// The stored bytes of chunk `index` of `var`.
    fn stored(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;
    /// Chunk `index` of `var` decoded, then encoded with the chain the store declares in
    /// `format` (for chunks without stored bytes of their own).
    fn encoded(&self, var: &str, index: &[u64], format: Format) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;
}

/// The chunks of dataset `id` of the server (rendered as `store`), through the host.
pub struct HostChunks<'a> {
    /// The plugin's host.
    pub host: &'a Host,
    /// The dataset.
    pub id: &'a str,
    /// The dataset rendered with the `source` codec.
    pub store: &'a Store,
}

impl ChunkAccess for HostChunks<'_> {
    fn locate(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<ChunkRef, Error>> + Send {
        self.host.chunk_ref(self.id, var, index)
    }

    fn stored(&self, var: &str, index: &[u64]) -> impl Future<Output = Result<Vec<u8>, Error>> + Send {
        let bytes = self.host.raw_chunk(self.id, var, index);
        async move { Ok(bytes.await?.into_vec()) }
    }

    fn encoded(&self, var: &str, index: &[u64], format: Format) -> impl Future<Output = Result<Vec<u8>, Error>> + Send {
        let (var, index) = (var.to_owned(), index.to_vec());
        async move {
            let array = self.store.arrays.get(&var).ok_or_else(|| Error::not_found(format!("no variable '{var}'")))?;
            encode_values(self.host, self.id, &var, array, &index, format).await
        }
    }
}

/// Chunk `index` of `var` of dataset `id` decoded by the host and encoded with the chain
/// `array` declares in `format` (on the host's blocking pool).
///
/// # Errors
/// A failed read, or values the chain cannot encode.
pub async fn encode_values(
    host: &Host,
    id: &str,
    var: &str,
    array: &Array,
    index: &[u64],
    format: Format,
) -> Result<Vec<u8>, Error> {
    let values = host.chunk(id, var, index).await?;
    let encoder = Arc::clone(array.encoder(format));
    let encoded = host.run_blocking(move || encoder.encode(&values)).await?;
    encoded.map_err(|err| Error::internal(format!("chunk of '{var}': {err}")))
}
