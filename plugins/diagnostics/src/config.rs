//! `[plugin.diagnostics]`: result sizes, the caches, derived datasets listed.

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
    /// Most bytes of input a whole result (JSON, NetCDF) may read; beyond, 413 naming the
    /// result's dataset, whose `/zarr` computes it a chunk at a time. As
    /// `server.max_region_bytes` by default.
    pub(crate) max_input_bytes: u64,
    /// Derived datasets listed in `/datasets` (and so in STAC and intake).
    pub(crate) derived: Vec<Derived>,
}

/// `[[plugin.diagnostics.derived]]`: a result served as a listed dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Derived {
    /// The source dataset's id.
    pub(crate) dataset: String,
    /// The variable reduced.
    pub(crate) variable: String,
    /// `groupby/{coord}/{action}`, `resample/{freq}/{action}` or `fldmean`.
    pub(crate) operation: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_result_values: 4_000_000,
            cache_bytes: 64 << 20,
            cache_control: "public, max-age=300".to_owned(),
            max_input_bytes: 256 << 20,
            derived: Vec::new(),
        }
    }
}
