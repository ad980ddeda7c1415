//! Icechunk datasets in STAC as DKRZ's cloudify describes them
//! (`build_stac_item_from_icechunk`): an asset pointing at the repository itself, media type
//! `application/vnd.zarr+icechunk`, the snapshot as its version, and the repository's storage
//! scheme at the item's top level, where xpystac reads it. A dataset is an icechunk one when
//! its attributes say so (`_icechunk_href`, `_icechunk_snapshot_id`: cloudify's markers, which
//! the icechunk plugin sets).

use cloudify_sdk::meta::DatasetMeta;
use serde_json::{json, Map, Value};

/// The extensions an icechunk item uses besides the profile's.
pub(crate) const EXTENSIONS: [&str; 3] = [
    "https://stac-extensions.github.io/storage/v2.0.0/schema.json",
    "https://stac-extensions.github.io/version/v1.2.0/schema.json",
    "https://stac-extensions.github.io/zarr/v1.1.0/schema.json",
];

/// What an icechunk dataset adds to its item.
pub(crate) struct Repository {
    /// The asset's key (`{id before the first '-'}@{snapshot}`, as cloudify names it) and the
    /// asset.
    pub(crate) asset: (String, Value),
    /// `storage:schemes`, when the repository is on S3.
    pub(crate) schemes: Option<Map<String, Value>>,
}

/// The repository `meta` is read from, if it is an icechunk dataset.
pub(crate) fn repository(meta: &DatasetMeta) -> Option<Repository> {
    let text = |name: &str| meta.attributes.get(name).and_then(Value::as_str);
    let (href, snapshot) = (text("_icechunk_href")?, text("_icechunk_snapshot_id")?);
    let mut roles = vec!["data", "references", "latest-version"];
    if meta.attributes.get("_icechunk_virtual").and_then(Value::as_bool) == Some(true) {
        roles.push("virtual");
    }
    let mut asset = json!({
        "href": href,
        "type": "application/vnd.zarr+icechunk",
        "title": "Icechunk repository",
        "roles": roles,
        "zarr:consolidated": false,
        "zarr:zarr_format": 3,
        "icechunk:snapshot_id": snapshot,
        "version": snapshot,
    });
    let schemes = meta.attributes.get("_icechunk_storage").and_then(Value::as_object).map(|scheme| {
        let bucket = scheme.get("bucket").and_then(Value::as_str).unwrap_or("repository");
        let key = format!("{}-{bucket}", scheme.get("type").and_then(Value::as_str).unwrap_or("s3"));
        asset["storage:refs"] = json!([key]);
        Map::from_iter([(key, Value::Object(scheme.clone()))])
    });
    let name = meta.id.split('-').next().unwrap_or(&meta.id);
    Some(Repository { asset: (format!("{name}@{snapshot}"), asset), schemes })
}
