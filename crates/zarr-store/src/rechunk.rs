//! Server-side rechunking: the chunk shape an array is served with.

use indexmap::IndexMap;
use serde::Deserialize;

/// A target chunking: chunk sizes per dimension name, and/or a target chunk size in bytes
/// that shrinks the leading dimensions until a chunk fits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rechunk {
    /// Chunk length per dimension name (`0`: the whole dimension).
    pub chunks: IndexMap<String, u64>,
    /// Largest decoded chunk in bytes.
    pub target_bytes: Option<u64>,
}

impl Rechunk {
    /// The chunk shape of an array with `shape` along `dims` whose elements are `item` bytes,
    /// starting from its stored chunk shape `stored`.
    pub fn chunk_shape(&self, dims: &[String], shape: &[u64], stored: &[u64], item: u64) -> Vec<u64> {
        let mut chunks: Vec<u64> = dims
            .iter()
            .zip(shape.iter().zip(stored))
            .map(|(dim, (&len, &stored))| match self.chunks.get(dim) {
                Some(0) => len.max(1),
                Some(&n) => n.min(len).max(1),
                None if self.target_bytes.is_some() && !self.chunks.is_empty() => stored,
                None if self.target_bytes.is_some() => len.max(1),
                None => stored,
            })
            .collect();
        if let Some(target) = self.target_bytes {
            // Shrink from the outermost axis: chunks stay contiguous runs of the inner axes.
            for axis in 0..chunks.len() {
                if self.chunks.contains_key(&dims[axis]) {
                    continue;
                }
                let inner: u64 = chunks[axis + 1..].iter().product::<u64>() * item;
                if inner * chunks[axis] <= target {
                    break;
                }
                chunks[axis] = (target / inner.max(1)).clamp(1, chunks[axis]);
            }
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn named_chunks_are_clipped_to_the_dimension() {
        let rechunk =
            Rechunk { chunks: IndexMap::from([("time".to_owned(), 100), ("lat".to_owned(), 0)]), target_bytes: None };
        let shape = rechunk.chunk_shape(&dims(&["time", "lat", "lon"]), &[30, 192, 384], &[1, 96, 384], 4);
        assert_eq!(shape, [30, 192, 384]);
    }

    #[test]
    fn target_bytes_shrinks_leading_axes() {
        let rechunk = Rechunk { chunks: IndexMap::new(), target_bytes: Some(8 << 20) };
        // 192 * 384 * 4 bytes = 294912 per time step: 28 steps fit in 8 MiB.
        assert_eq!(
            rechunk.chunk_shape(&dims(&["time", "lat", "lon"]), &[3650, 192, 384], &[1, 192, 384], 4),
            [28, 192, 384]
        );
        // A single row larger than the target shrinks the next axis too.
        let small = Rechunk { chunks: IndexMap::new(), target_bytes: Some(4000) };
        assert_eq!(small.chunk_shape(&dims(&["y", "x"]), &[10, 1000], &[10, 1000], 8), [1, 500]);
        assert_eq!(rechunk.chunk_shape(&dims(&["time"]), &[5], &[1], 8), [5]);
    }
}
