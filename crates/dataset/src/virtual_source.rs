//! [`VirtualSource`]: a dataset described once as metadata plus, per chunk, where its stored
//! bytes are (the kerchunk / VirtualiZarr idea). Reads fetch byte ranges and decode them with
//! each variable's source codec chain; variables whose chunks cannot be expressed as byte ranges
//! go through a [`FallbackReader`].

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use cloudify_codec::ChunkCodec;
use cloudify_sdk::hyperslab::ravel;
use cloudify_store::Stores;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::{
    check_chunk_index,
    region::{fill_chunk, fill_element},
    variable, ChunkRef, DatasetMeta, Error, FileStat, Limits, Result, Source, VariableMeta,
};

/// Where one chunk's stored bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredChunk {
    /// `length` bytes at `offset` of file `file` (an index into [`VirtualDataset::files`]).
    Range {
        /// Index into [`VirtualDataset::files`].
        file: u32,
        /// Byte offset.
        offset: u64,
        /// Byte count.
        length: u64,
    },
    /// The encoded bytes themselves.
    Inline(Vec<u8>),
    /// Never written: all fill value.
    Missing,
}

/// How a variable's chunks are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VariableChunks {
    /// One entry per chunk, in C order over the chunk grid.
    Stored(Vec<StoredChunk>),
    /// Not expressible as byte ranges (szip, scale-offset, variable-length strings, ...):
    /// read through the source library. `reason` says why.
    Fallback {
        /// Why the chunks are not references.
        reason: String,
    },
}

/// A dataset as metadata plus chunk locations: what a scan produces and the reference cache
/// stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualDataset {
    /// The metadata.
    pub meta: DatasetMeta,
    /// Files or URLs the chunk ranges point into.
    pub files: Vec<String>,
    /// Chunk locations per variable (every variable of `meta` has an entry).
    pub chunks: IndexMap<String, VariableChunks>,
}

/// Reads chunks of variables whose chunks are not references; blocking.
pub trait FallbackReader: Send + Sync {
    /// One chunk decoded to little-endian C-order values of the full chunk shape.
    ///
    /// # Errors
    /// [`Error::Library`] when the library fails.
    fn read_chunk(&self, name: &str, var: &VariableMeta, index: &[u64]) -> Result<Vec<u8>>;
}

/// A dataset served from a [`VirtualDataset`].
pub struct VirtualSource {
    dataset: VirtualDataset,
    meta: Arc<DatasetMeta>,
    codecs: HashMap<String, Arc<ChunkCodec>>,
    stores: Arc<Stores>,
    fallback: Option<Arc<dyn FallbackReader>>,
}

impl VirtualSource {
    /// A source over `dataset`, reading through `stores`, with `fallback` for variables that
    /// need it.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when a variable's codec chain is unknown, or a variable needs a
    /// fallback reader and none is given; [`Error::Inconsistent`] when the chunk list does not fit the
    /// chunk grid; [`Error::OverLimit`] when a shape or a stored chunk is over `limits`.
    pub fn new(
        dataset: VirtualDataset,
        stores: Arc<Stores>,
        fallback: Option<Arc<dyn FallbackReader>>,
        limits: &Limits,
    ) -> Result<Self> {
        limits.check_dataset(&dataset.meta.variables).map_err(Error::OverLimit)?;
        let mut codecs = HashMap::new();
        for (name, var) in &dataset.meta.variables {
            match dataset.chunks.get(name) {
                Some(VariableChunks::Stored(chunks)) => {
                    let expected = limits.check_variable(name, var).map_err(Error::OverLimit)?;
                    if chunks.len() as u64 != expected {
                        return Err(Error::Inconsistent(format!(
                            "variable '{name}': {} chunk entries for a grid of {expected}",
                            chunks.len()
                        )));
                    }
                    for chunk in chunks {
                        if let StoredChunk::Range { file, length, .. } = chunk {
                            limits.check_stored(name, *length).map_err(Error::OverLimit)?;
                            if *file as usize >= dataset.files.len() {
                                return Err(Error::Inconsistent(format!(
                                    "variable '{name}': a chunk in file #{file} of {}",
                                    dataset.files.len()
                                )));
                            }
                        }
                    }
                    if expected > 0 {
                        let codec = ChunkCodec::new(&var.codecs, var.dtype, &var.chunks, &fill_element(var))
                            .map_err(|e| Error::Unsupported { what: format!("variable '{name}': {e}") })?;
                        codecs.insert(name.clone(), Arc::new(codec));
                    }
                }
                Some(VariableChunks::Fallback { reason }) if fallback.is_none() => {
                    return Err(Error::Unsupported { what: format!("variable '{name}': {reason}") });
                }
                Some(VariableChunks::Fallback { .. }) => {}
                None => return Err(Error::Inconsistent(format!("variable '{name}' has no chunk list"))),
            }
        }
        let meta = Arc::new(dataset.meta.clone());
        Ok(Self { dataset, meta, codecs, stores, fallback })
    }

    /// The description this source serves.
    pub fn dataset(&self) -> &VirtualDataset {
        &self.dataset
    }

    fn stored(&self, name: &str, index: &[u64]) -> Result<(&VariableMeta, Option<&StoredChunk>)> {
        let var = variable(&self.meta, name)?;
        check_chunk_index(name, var, index)?;
        let chunk = match &self.dataset.chunks[name] {
            VariableChunks::Stored(chunks) => Some(&chunks[ravel(index, &var.chunk_grid()) as usize]),
            VariableChunks::Fallback { .. } => None,
        };
        Ok((var, chunk))
    }

    /// `file` if the dataset reads it: no other path is ever opened on a client's behalf.
    fn known_file<'f>(&self, file: &'f str) -> Result<&'f str> {
        if self.dataset.files.iter().any(|known| known == file) {
            Ok(file)
        } else {
            Err(Error::UnknownFile { file: file.to_owned() })
        }
    }

    async fn fetch(&self, chunk: &StoredChunk) -> Result<Option<Vec<u8>>> {
        let kind = match chunk {
            StoredChunk::Range { file, .. } => match self.dataset.files.get(*file as usize) {
                Some(location) if location.contains("://") && !location.starts_with("file://") => "remote",
                _ => "file",
            },
            StoredChunk::Inline(_) => "inline",
            StoredChunk::Missing => "fill",
        };
        metrics::counter!("cloudify_chunk_reads_total", "source" => kind).increment(1);
        match chunk {
            StoredChunk::Range { file, offset, length } => {
                let location = self
                    .dataset
                    .files
                    .get(*file as usize)
                    .ok_or_else(|| Error::Inconsistent(format!("no file #{file}")))?;
                let bytes = self.stores.read_range(location, *offset, *length).await?;
                // Zero-copy when the store read into a buffer of its own (local files do).
                Ok(Some(Vec::from(bytes)))
            }
            StoredChunk::Inline(bytes) => Ok(Some(bytes.clone())),
            StoredChunk::Missing => Ok(None),
        }
    }
}

#[async_trait]
impl Source for VirtualSource {
    fn metadata(&self) -> Result<Arc<DatasetMeta>> {
        Ok(Arc::clone(&self.meta))
    }

    async fn read_chunk(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
        let (var, chunk) = self.stored(name, index)?;
        let Some(chunk) = chunk else {
            let fallback =
                self.fallback.clone().ok_or_else(|| Error::Unsupported { what: format!("reading '{name}'") })?;
            // The library opens the file itself: on a slow tier, only once it is online.
            for file in &self.dataset.files {
                self.stores.ready(file).await?;
            }
            let (name, var, index) = (name.to_owned(), var.clone(), index.to_vec());
            return tokio::task::spawn_blocking(move || fallback.read_chunk(&name, &var, &index))
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
        };
        match self.fetch(chunk).await? {
            None => Ok(fill_chunk(var)),
            Some(encoded) => {
                let codec = Arc::clone(&self.codecs[name]);
                // Decompression is CPU work: keep it off the async workers.
                tokio::task::spawn_blocking(move || codec.decode(&encoded))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))?
                    .map_err(|e| Error::Decode {
                        variable: name.to_owned(),
                        index: index.to_vec(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    async fn read_raw_chunk(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
        match self.stored(name, index)?.1 {
            Some(chunk) => self.fetch(chunk).await?.ok_or_else(|| Error::Unsupported {
                what: format!("chunk {index:?} of '{name}' was never written (it is all fill value)"),
            }),
            None => Err(Error::Unsupported {
                what: format!("raw chunks of '{name}', which is read through the source library"),
            }),
        }
    }

    async fn chunk_ref(&self, name: &str, index: &[u64]) -> Result<ChunkRef> {
        match self.stored(name, index)?.1 {
            Some(StoredChunk::Range { file, offset, length }) => Ok(ChunkRef::Range {
                url: self.dataset.files.get(*file as usize).map(String::as_str).unwrap_or_default().into(),
                offset: *offset,
                length: *length,
            }),
            Some(StoredChunk::Inline(bytes)) => Ok(ChunkRef::Inline(bytes.as_slice().into())),
            Some(StoredChunk::Missing) => Ok(ChunkRef::Missing),
            None => Ok(ChunkRef::Computed),
        }
    }

    fn files(&self) -> Vec<String> {
        self.dataset.files.clone()
    }

    async fn stat_file(&self, file: &str) -> Result<FileStat> {
        let file = self.known_file(file)?;
        Ok(self.stores.stat(file).await?)
    }

    async fn read_file(&self, file: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let file = self.known_file(file)?;
        let bytes = self.stores.read_range(file, offset, length).await?;
        Ok(Vec::from(bytes))
    }
}
