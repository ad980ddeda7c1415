//! `[plugin.icechunk]`: the repositories served.

use serde::Deserialize;

/// The icechunk plugin's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// `[[plugin.icechunk.repos]]`.
    pub(crate) repos: Vec<RepoConfig>,
}

/// One repository: each of its groups holding arrays becomes a dataset (`id` for the root,
/// `id.a.b` for the group `/a/b`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepoConfig {
    /// The dataset id of the root group.
    pub(crate) id: String,
    /// A local folder (or `file://` URL), `s3://bucket/prefix` (credentials, region and
    /// endpoint from the usual `AWS_*` variables), or `http(s)://` (read-only).
    pub(crate) url: String,
    /// A branch (default `main`), a tag, or a snapshot id.
    #[serde(rename = "ref")]
    pub(crate) reference: Option<String>,
    /// URL prefixes of virtual chunk containers whose chunks may be read.
    #[serde(default)]
    pub(crate) authorize_virtual: Vec<String>,
    /// Seconds between two resolutions of `ref` (a new commit on a branch shows up within
    /// them; an unreachable repository is retried as often).
    #[serde(default = "default_refresh")]
    pub(crate) refresh_secs: u64,
}

fn default_refresh() -> u64 {
    60
}
