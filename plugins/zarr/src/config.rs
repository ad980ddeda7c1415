//! `[plugin.zarr]`: the served codec, the encoded-chunk cache, HTTP caching and rechunking.

use std::collections::HashMap;

pub(crate) use cloudify_zarr_store::{CodecName, Rechunk};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_parse_from_toml_style_strings() {
        let config: Config =
            serde_json::from_str(r#"{"codec": "blosc-zstd", "rechunk": {"*": {"target_bytes": 1000}}}"#).unwrap();
        assert_eq!(config.codec, CodecName::BloscZstd);
        assert!(config.rechunk_for("any").is_some());
        assert!(serde_json::from_str::<Config>(r#"{"codec": "lzma"}"#).is_err());
    }
}
