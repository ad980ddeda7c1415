//! `[plugin.datapoint]`: the peers whose products are served.

use serde::Deserialize;

/// The datapoint plugin's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// `[[plugin.datapoint.sources]]`.
    pub(crate) sources: Vec<SourceConfig>,
}

/// One peer: a search of a STAC API whose items' cloud products become datasets here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceConfig {
    /// The STAC API's landing page.
    pub(crate) url: String,
    /// Only items of these collections.
    #[serde(default)]
    pub(crate) collections: Vec<String>,
    /// `query` terms as pystac-client takes them (`key=value`, `key>=value`, ...).
    #[serde(default)]
    pub(crate) query: Vec<String>,
    /// Only items intersecting `[west, south, east, north]`.
    pub(crate) bbox: Option<[f64; 4]>,
    /// Only items in `start/end` (RFC 3339, `..` an open end).
    pub(crate) datetime: Option<String>,
    /// Only these items.
    #[serde(default)]
    pub(crate) ids: Vec<String>,
    /// Items served at most.
    #[serde(default = "default_max_items")]
    pub(crate) max_items: u64,
    /// Put before each item id to make the dataset id.
    #[serde(default)]
    pub(crate) prefix: String,
    /// The product served of each item: the first of these formats it has (`kerchunk`,
    /// `CFA`, `zarr`).
    #[serde(default = "default_formats")]
    pub(crate) formats: Vec<String>,
    /// Where products and their reference targets may be besides the API's own host (URL
    /// prefixes, `https://*`).
    #[serde(default)]
    pub(crate) allow_targets: Vec<String>,
    /// Seconds between two searches (new items show up, vanished ones go; an unreachable
    /// API is retried as often).
    #[serde(default = "default_refresh")]
    pub(crate) refresh_secs: u64,
}

fn default_max_items() -> u64 {
    1000
}

fn default_formats() -> Vec<String> {
    ["kerchunk", "CFA", "zarr"].map(str::to_owned).to_vec()
}

fn default_refresh() -> u64 {
    3600
}
