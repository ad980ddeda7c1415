//! `[plugin.zarr]`: the served codec, the encoded-chunk cache, HTTP caching and rechunking.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde::Deserialize;

/// The plugin's config table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Codec of served chunks: `blosc-lz4` (default), `blosc-zstd`, `zstd`, `zlib`, `none`, or
    /// `source` (stored bytes as they are, where Zarr can declare their codecs).
    pub(crate) codec: CodecName,
    /// Compression level; default 5 for blosc, 1 for zstd and zlib.
    pub(crate) level: Option<i32>,
    /// Bytes of encoded chunks kept in memory, shared by all datasets (0 disables the cache).
    pub(crate) cache_bytes: u64,
    /// `Cache-Control` of every answer (empty: no header).
    pub(crate) cache_control: String,
    /// Decoded bytes of the chunks being read and encoded at once; more requests wait. Bounds
    /// memory under load (a chunk takes at most half, so two always proceed).
    pub(crate) max_inflight_bytes: u64,
    /// Server-side rechunking per dataset id; `"*"` applies to datasets without an entry.
    pub(crate) rechunk: HashMap<String, Rechunk>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            codec: CodecName::BloscLz4,
            level: None,
            cache_bytes: 512 << 20,
            cache_control: "public, max-age=3600".to_owned(),
            max_inflight_bytes: 64 << 20,
            rechunk: HashMap::new(),
        }
    }
}

impl Config {
    /// The rechunking that applies to `dataset`, if any.
    pub(crate) fn rechunk_for(&self, dataset: &str) -> Option<&Rechunk> {
        self.rechunk.get(dataset).or_else(|| self.rechunk.get("*"))
    }
}

/// Codecs the server can encode chunks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CodecName {
    /// Blosc with LZ4 and byte shuffle: fast to encode and decode.
    BloscLz4,
    /// Blosc with Zstandard and byte shuffle: smaller, slower.
    BloscZstd,
    /// Zstandard.
    Zstd,
    /// zlib (Zarr v2) / gzip (Zarr v3): what every client can read.
    Zlib,
    /// Uncompressed little-endian bytes.
    None,
    /// The stored chunks as they are, declared with the source's own codecs (NetCDF4's
    /// shuffle + zlib, NetCDF3's big-endian bytes): no decoding or encoding on the server.
    /// Arrays whose codecs Zarr cannot declare, or that are rechunked, get blosc-lz4.
    Source,
}

/// A target chunking: chunk sizes per dimension name, and/or a target chunk size in bytes
/// that shrinks the leading dimensions until a chunk fits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Rechunk {
    /// Chunk length per dimension name (`0`: the whole dimension).
    pub(crate) chunks: IndexMap<String, u64>,
    /// Largest decoded chunk in bytes.
    pub(crate) target_bytes: Option<u64>,
}

impl Rechunk {
    /// The chunk shape of an array with `shape` along `dims` whose elements are `item` bytes,
    /// starting from its stored chunk shape `stored`.
    pub(crate) fn chunk_shape(&self, dims: &[String], shape: &[u64], stored: &[u64], item: u64) -> Vec<u64> {
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
        let rechunk = Rechunk { chunks: IndexMap::from([("time".to_owned(), 100), ("lat".to_owned(), 0)]), target_bytes: None };
        let shape = rechunk.chunk_shape(&dims(&["time", "lat", "lon"]), &[30, 192, 384], &[1, 96, 384], 4);
        assert_eq!(shape, [30, 192, 384]);
    }

    #[test]
    fn target_bytes_shrinks_leading_axes() {
        let rechunk = Rechunk { chunks: IndexMap::new(), target_bytes: Some(8 << 20) };
        // 192 * 384 * 4 bytes = 294912 per time step: 28 steps fit in 8 MiB.
        assert_eq!(rechunk.chunk_shape(&dims(&["time", "lat", "lon"]), &[3650, 192, 384], &[1, 192, 384], 4), [28, 192, 384]);
        // A single row larger than the target shrinks the next axis too.
        let small = Rechunk { chunks: IndexMap::new(), target_bytes: Some(4000) };
        assert_eq!(small.chunk_shape(&dims(&["y", "x"]), &[10, 1000], &[10, 1000], 8), [1, 500]);
        assert_eq!(rechunk.chunk_shape(&dims(&["time"]), &[5], &[1], 8), [5]);
    }

    #[test]
    fn codec_names_parse_from_toml_style_strings() {
        let config: Config = serde_json::from_str(r#"{"codec": "blosc-zstd", "rechunk": {"*": {"target_bytes": 1000}}}"#).unwrap();
        assert_eq!(config.codec, CodecName::BloscZstd);
        assert!(config.rechunk_for("any").is_some());
        assert!(serde_json::from_str::<Config>(r#"{"codec": "lzma"}"#).is_err());
    }
}
