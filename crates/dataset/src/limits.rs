//! Caps on what one file, store or reference set may make the server allocate. Every number
//! in a dataset's metadata comes from a file somebody else wrote: shapes, chunk shapes and chunk
//! counts are checked here, with overflow-checked arithmetic, *before* anything is sized by
//! them, so that a 144-byte file cannot ask for terabytes. A dataset whose metadata passes
//! [`Limits::check_variable`] can be multiplied out without overflow anywhere downstream.

use serde::{Deserialize, Serialize};

use crate::VariableMeta;

/// The caps, from `[limits]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest decoded chunk (full chunk shape × element size), and largest stored chunk, in
    /// bytes. Default 512 MiB.
    pub max_chunk_bytes: u64,
    /// Most chunks one variable may have (each costs a chunk-table entry). Default 4 Mi.
    pub max_chunks_per_variable: u64,
    /// Most chunks one dataset may have over all its variables. Default 16 Mi.
    pub max_chunks_per_dataset: u64,
    /// Most references a kerchunk set may hold, `gen` expansions included. Default 4 Mi.
    pub max_references: u64,
    /// Largest reference-set document (JSON, parquet `.zmetadata`) read, in bytes. Default
    /// 512 MiB.
    pub max_reference_set_bytes: u64,
    /// Evaluation steps one jinja template of a set may take (minijinja fuel); a `gen` entry
    /// takes a few dozen. Default 1 M.
    pub max_template_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_chunk_bytes: 512 << 20,
            max_chunks_per_variable: 4 << 20,
            max_chunks_per_dataset: 16 << 20,
            max_references: 4 << 20,
            max_reference_set_bytes: 512 << 20,
            max_template_steps: 1_000_000,
        }
    }
}

impl Limits {
    /// Checks the shapes of variable `name`, and returns its chunk count.
    ///
    /// # Errors
    /// Why the variable cannot be served: ranks that disagree, a zero chunk length along a
    /// non-empty axis, a chunk over `max_chunk_bytes`, more chunks than
    /// `max_chunks_per_variable`, or an element count that overflows.
    pub fn check_variable(&self, name: &str, var: &VariableMeta) -> Result<u64, String> {
        let rank = var.shape.len();
        if var.chunks.len() != rank || var.dimensions.len() != rank {
            return Err(format!(
                "variable '{name}' has {rank} axes but {} chunk lengths and {} dimension names",
                var.chunks.len(),
                var.dimensions.len()
            ));
        }
        if let Some(axis) = (0..rank).find(|&d| var.chunks[d] == 0 && var.shape[d] > 0) {
            return Err(format!("variable '{name}' has a chunk length of 0 along axis {axis}"));
        }
        product(&var.shape).ok_or_else(|| format!("variable '{name}': shape {:?} overflows", var.shape))?;
        product(&var.chunks)
            .and_then(|n| n.checked_mul(var.dtype.size().max(1) as u64))
            .filter(|&bytes| bytes <= self.max_chunk_bytes)
            .ok_or_else(|| {
                format!(
                    "variable '{name}': chunks of {:?} are over the limit of {} bytes",
                    var.chunks, self.max_chunk_bytes
                )
            })?;
        let count = product(&var.chunk_grid()).filter(|&n| n <= self.max_chunks_per_variable).ok_or_else(|| {
            format!(
                "variable '{name}': a grid of {:?} chunks is over the limit of {}",
                var.chunk_grid(),
                self.max_chunks_per_variable
            )
        })?;
        Ok(count)
    }

    /// Checks every variable of a dataset and the sum of their chunks; returns the sum.
    ///
    /// # Errors
    /// The first variable that fails [`Limits::check_variable`], or a total over
    /// `max_chunks_per_dataset`.
    pub fn check_dataset<'a>(
        &self,
        variables: impl IntoIterator<Item = (&'a String, &'a VariableMeta)>,
    ) -> Result<u64, String> {
        let mut total = 0u64;
        for (name, var) in variables {
            total = total.saturating_add(self.check_variable(name, var)?);
        }
        if total > self.max_chunks_per_dataset {
            return Err(format!("{total} chunks in all, over the limit of {}", self.max_chunks_per_dataset));
        }
        Ok(total)
    }

    /// Checks a stored chunk's byte count.
    ///
    /// # Errors
    /// A count over `max_chunk_bytes`.
    pub fn check_stored(&self, name: &str, length: u64) -> Result<(), String> {
        if length > self.max_chunk_bytes {
            return Err(format!(
                "variable '{name}': a stored chunk of {length} bytes is over the limit of {}",
                self.max_chunk_bytes
            ));
        }
        Ok(())
    }
}

/// The product of `values`, `None` on overflow.
pub fn product(values: &[u64]) -> Option<u64> {
    values.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataType;

    fn var(shape: &[u64], chunks: &[u64]) -> VariableMeta {
        VariableMeta {
            dtype: DataType::Float64,
            dimensions: (0..shape.len()).map(|d| format!("d{d}")).collect(),
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            attributes: serde_json::Map::new(),
            fill_value: serde_json::Value::Null,
            codecs: Vec::new(),
        }
    }

    #[test]
    fn hostile_shapes_are_refused_before_anything_is_sized() {
        let limits = Limits::default();
        assert_eq!(limits.check_variable("v", &var(&[10, 20], &[5, 20])), Ok(2));
        assert_eq!(limits.check_variable("s", &var(&[], &[])), Ok(1));
        assert_eq!(limits.check_variable("e", &var(&[0], &[0])), Ok(0));
        // 2^36 chunks of one element: a tiny file, a chunk table of terabytes.
        assert!(limits.check_variable("v", &var(&[1 << 36], &[1])).unwrap_err().contains("over the limit"));
        // 2^32 × 2^32 wraps a u64 element count.
        assert!(limits
            .check_variable("v", &var(&[1 << 32, 1 << 32], &[1 << 32, 1 << 32]))
            .unwrap_err()
            .contains("overflows"));
        assert!(limits.check_variable("v", &var(&[1 << 40], &[1 << 40])).unwrap_err().contains("bytes"));
        assert!(limits.check_variable("v", &var(&[4], &[0])).unwrap_err().contains("chunk length of 0"));
        assert!(limits.check_variable("v", &var(&[4], &[4, 1])).is_err());
        assert!(limits.check_stored("v", 1 << 40).is_err());
        let small = Limits { max_chunks_per_dataset: 3, ..Limits::default() };
        let (a, b) = ("a".to_owned(), "b".to_owned());
        let (va, vb) = (var(&[2], &[1]), var(&[2], &[1]));
        assert!(small.check_dataset([(&a, &va), (&b, &vb)]).unwrap_err().contains("4 chunks"));
    }
}
