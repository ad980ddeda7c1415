//! `[plugin.kerchunk]`: caching of stored chunks, HTTP caching, and what reference sets
//! point at.

use serde::Deserialize;

/// The plugin's config table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Bytes of stored chunks kept in memory, shared by all datasets (0, the default: none;
    /// local files are in the OS page cache already, and reading them is cheaper than the
    /// cache's bookkeeping for 20 MB chunks; worth it for HTTP and S3 sources).
    pub(crate) cache_bytes: u64,
    /// `Cache-Control` of every answer (empty: no header).
    pub(crate) cache_control: String,
    /// Where the chunk references of exported reference sets point.
    pub(crate) targets: Targets,
    /// Chunks smaller than this many bytes are inlined (base64) in exported reference sets.
    pub(crate) inline_threshold: u64,
    /// Encoded bytes a reference set may inline for chunks that are not byte ranges (read
    /// through the source library); a larger export is refused, naming `/zarr`.
    pub(crate) max_inline_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cache_bytes: 0,
            cache_control: "public, max-age=3600".to_owned(),
            targets: Targets::Auto,
            // kerchunk's own default.
            inline_threshold: 500,
            max_inline_bytes: 64 << 20,
        }
    }
}

/// Where exported chunk references point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Targets {
    /// Remote sources at their own URLs, local files at this server's
    /// `/datasets/{id}/files/{name}`.
    Auto,
    /// Every file at this server's `/files` endpoint.
    Server,
    /// Every file at its own path or URL (local paths are only useful on the same machine).
    Source,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_unknown_keys_are_refused() {
        let config: Config = serde_json::from_str(r#"{"targets": "server", "cache_bytes": 0}"#).unwrap();
        assert_eq!((config.targets, config.cache_bytes), (Targets::Server, 0));
        assert_eq!(serde_json::from_str::<Config>("{}").unwrap().targets, Targets::Auto);
        assert!(serde_json::from_str::<Config>(r#"{"targets": "elsewhere"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"codec": "zlib"}"#).is_err());
    }
}
