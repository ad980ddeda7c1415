//! `[plugin.diagnostics]`: result sizes and the result cache.

use serde::Deserialize;

/// The diagnostics plugin's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Most values of one result (each costs about 24 bytes while it is computed); beyond, 413.
    pub(crate) max_result_values: u64,
    /// Bytes of results kept (0: none).
    pub(crate) cache_bytes: u64,
    /// `Cache-Control` of answers.
    pub(crate) cache_control: String,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_result_values: 4_000_000, cache_bytes: 64 << 20, cache_control: "public, max-age=300".to_owned() }
    }
}
