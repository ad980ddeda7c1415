//! cloudify's data plane: every dataset is a [`Source`] that describes itself as a group of
//! arrays ([`DatasetMeta`]) and answers chunk reads; region reads are built on chunk reads.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod chunk_cache;
mod concat;
mod demo;
mod error;
mod limits;
mod memory;
mod region;
mod virtual_source;

use std::sync::Arc;

use async_trait::async_trait;
pub use cloudify_sdk::meta::{DataType, DatasetMeta, VariableMeta};
/// Where the stored bytes of a chunk are: the type plugins see, used as is by every source.
pub use cloudify_sdk::ChunkRef;
pub use cloudify_sdk::{hyperslab, strings};

pub use chunk_cache::{CachedSource, ChunkCache};
pub use concat::concat;
pub use demo::demo_dataset;
pub use error::{Error, Result};
pub use limits::{product, Limits};
pub use memory::MemorySource;
pub use region::{check_chunk_index, fill_chunk, fill_element, pad_chunk, read_region, read_region_counted};
pub use virtual_source::{FallbackReader, StoredChunk, VariableChunks, VirtualDataset, VirtualSource};

/// A dataset: its metadata and its chunks.
#[async_trait]
pub trait Source: Send + Sync {
    /// The dataset's metadata.
    ///
    /// # Errors
    /// When a source that computes its metadata on demand (a plugin provider) fails.
    fn metadata(&self) -> Result<Arc<DatasetMeta>>;

    /// One chunk decoded to little-endian C-order values of the full chunk shape (edge chunks
    /// padded with the fill value).
    ///
    /// # Errors
    /// Unknown variable, bad chunk index, or a failed read.
    async fn read_chunk(&self, variable: &str, index: &[u64]) -> Result<Vec<u8>>;

    /// [`Source::read_chunk`] for a caller that keeps what it makes of the chunk (the zarr
    /// plugin keeps encoded chunks): a cache in between answers from what it holds but does
    /// not keep this chunk too.
    ///
    /// # Errors
    /// As [`Source::read_chunk`].
    async fn read_chunk_once(&self, variable: &str, index: &[u64]) -> Result<Vec<u8>> {
        self.read_chunk(variable, index).await
    }

    /// One chunk as stored, encoded with the variable's source codecs.
    ///
    /// # Errors
    /// As [`Source::read_chunk`]; [`Error::Unsupported`] for sources without stored chunks.
    async fn read_raw_chunk(&self, variable: &str, index: &[u64]) -> Result<Vec<u8>> {
        let _ = index;
        Err(Error::Unsupported { what: format!("raw chunks of variable '{variable}'") })
    }

    /// Where one chunk's stored bytes are.
    ///
    /// # Errors
    /// As [`Source::read_raw_chunk`].
    async fn chunk_ref(&self, variable: &str, index: &[u64]) -> Result<ChunkRef> {
        let _ = index;
        Err(Error::Unsupported { what: format!("chunk references of variable '{variable}'") })
    }

    /// Paths or URLs of the files (objects) the stored chunks are read from, in the order
    /// chunk references name them; empty for sources without files.
    fn files(&self) -> Vec<String> {
        Vec::new()
    }

    /// Size and modification time of `file`, one of [`Source::files`].
    ///
    /// # Errors
    /// [`Error::UnknownFile`] for a file the source does not read; [`Error::Store`] when it
    /// cannot be reached.
    async fn stat_file(&self, file: &str) -> Result<FileStat> {
        Err(Error::UnknownFile { file: file.to_owned() })
    }

    /// `length` bytes at `offset` of `file`, one of [`Source::files`].
    ///
    /// # Errors
    /// As [`Source::stat_file`]; [`Error::Store`] also for a range past the end.
    async fn read_file(&self, file: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let _ = (offset, length);
        Err(Error::UnknownFile { file: file.to_owned() })
    }
}

pub use cloudify_store::Stat as FileStat;

/// Variables by name, in file order.
pub type VariableMap = indexmap::IndexMap<String, VariableMeta>;

/// A shared, type-erased source.
pub type SharedSource = Arc<dyn Source>;

/// Looks up `name` in `meta`.
///
/// # Errors
/// [`Error::UnknownVariable`].
pub fn variable<'m>(meta: &'m DatasetMeta, name: &str) -> Result<&'m VariableMeta> {
    meta.variables
        .get(name)
        .ok_or_else(|| Error::UnknownVariable { dataset: meta.id.clone(), variable: name.to_owned() })
}
