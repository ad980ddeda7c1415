//! [`MemorySource`]: a dataset whose arrays are held in memory (the built-in demo dataset,
//! tests, derived datasets).

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;

use crate::{
    check_chunk_index,
    region::{copy_block, fill_chunk, Layout},
    variable, ChunkRef, DatasetMeta, Error, Result, Source,
};

/// A dataset held in memory: metadata plus each variable's full array, little-endian, C order.
pub struct MemorySource {
    meta: Arc<DatasetMeta>,
    arrays: HashMap<String, Vec<u8>>,
}

impl MemorySource {
    /// A source over `arrays` (one entry per variable of `meta`).
    ///
    /// # Errors
    /// [`Error::Inconsistent`] when an array is missing or its size does not match its shape;
    /// [`Error::Unsupported`] for variable-length strings (fixed-size types only).
    pub fn new(meta: DatasetMeta, arrays: HashMap<String, Vec<u8>>) -> Result<Self> {
        for (name, var) in &meta.variables {
            if var.dtype.is_variable_length() {
                return Err(Error::Unsupported { what: format!("array '{name}': strings held in memory") });
            }
            let expected = var.shape.iter().product::<u64>() as usize * var.dtype.size();
            let found = arrays.get(name).map(Vec::len);
            if found != Some(expected) {
                return Err(Error::Inconsistent(format!(
                    "array '{name}' holds {found:?} bytes, its shape needs {expected}"
                )));
            }
        }
        Ok(Self { meta: Arc::new(meta), arrays })
    }

    /// Every variable's values.
    pub fn arrays(&self) -> &HashMap<String, Vec<u8>> {
        &self.arrays
    }

    fn chunk(&self, name: &str, index: &[u64]) -> Result<Vec<u8>> {
        let var = variable(&self.meta, name)?;
        check_chunk_index(name, var, index)?;
        let elem = var.dtype.size();
        let mut out = fill_chunk(var);
        let origin: Vec<u64> = index.iter().zip(&var.chunks).map(|(i, c)| i * c).collect();
        let count: Vec<u64> =
            origin.iter().zip(&var.shape).zip(&var.chunks).map(|((o, n), c)| (*c).min(n - o)).collect();
        let data = self.arrays.get(name).ok_or_else(|| Error::Inconsistent(format!("array '{name}' missing")))?;
        let zeros = vec![0; index.len()];
        copy_block(
            data,
            Layout { shape: &var.shape, elem },
            &origin,
            &mut out,
            Layout { shape: &var.chunks, elem },
            &zeros,
            &count,
        );
        Ok(out)
    }
}

#[async_trait]
impl Source for MemorySource {
    fn metadata(&self) -> Result<Arc<DatasetMeta>> {
        Ok(Arc::clone(&self.meta))
    }

    async fn read_chunk(&self, variable: &str, index: &[u64]) -> Result<Vec<u8>> {
        self.chunk(variable, index)
    }

    /// The source codec chain of an in-memory array is plain little-endian bytes.
    async fn read_raw_chunk(&self, variable: &str, index: &[u64]) -> Result<Vec<u8>> {
        self.chunk(variable, index)
    }

    async fn chunk_ref(&self, variable: &str, index: &[u64]) -> Result<ChunkRef> {
        self.chunk(variable, index).map(|bytes| ChunkRef::Inline(bytes.into()))
    }
}
