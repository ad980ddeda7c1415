//! `[plugin.stac]`: a profile (what the catalog says about its provider, collection and
//! assets) and where the server is reached.
//!
//! The built-in profile (`profiles/default.json`) is merged with the file named by `profile`
//! (JSON or TOML; an institution's, e.g. `examples/eerie/stac-profile.json`), then with the
//! profile keys given in the table itself: objects merge key by key, `null` removes a key,
//! anything else replaces.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

const DEFAULT_PROFILE: &str = include_str!("../profiles/default.json");

/// Keys of `[plugin.stac]` that are not profile keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    /// URL clients reach the server at; default from the request headers.
    public_url: Option<String>,
    /// A profile file merged over the built-in one.
    profile: Option<PathBuf>,
}

/// The plugin's configuration, checked at start-up.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub public_url: Option<String>,
    pub profile: Profile,
}

/// What the catalog says beyond the data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    /// Extension schema URLs every item declares.
    pub stac_extensions: Vec<String>,
    /// STAC provider objects.
    pub providers: Vec<Value>,
    /// The STAC API landing page.
    pub catalog: CatalogConfig,
    /// The collection of every dataset.
    pub collection: CollectionConfig,
    /// Properties added to every item.
    pub item_properties: Map<String, Value>,
    /// Global attributes copied into item properties when a dataset has them.
    pub attribute_properties: Vec<String>,
    /// Asset templates by asset key.
    pub assets: IndexMap<String, AssetTemplate>,
    /// Links added to every item and the collection.
    pub links: Vec<Value>,
}

/// The landing page of the STAC API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogConfig {
    pub id: String,
    pub title: String,
    pub description: String,
}

/// The collection of every dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectionConfig {
    pub id: String,
    pub title: String,
    pub description: String,
    pub keywords: Vec<String>,
    /// SPDX identifier or `other`.
    pub license: String,
    /// URL of a catalog this collection belongs to (a `parent` link).
    pub parent_catalog: Option<String>,
}

/// One asset of every item. String fields may use `{base_url}` and `{id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AssetTemplate {
    /// Only when this plugin is loaded.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Only for datasets whose chunks are stored byte ranges (what `/kerchunk` serves).
    #[serde(default)]
    pub stored_chunks: bool,
    /// Only for datasets read from NetCDF files (what `cfa.nc` aggregates).
    #[serde(default)]
    pub netcdf_files: bool,
    /// The asset fields: `href`, `type`, `roles`, `title`, DataPoint's `cloud_format` and
    /// `open_zarr_kwargs`, `xarray:open_kwargs`, ...
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// Merges `over` into `base`: objects key by key, `null` removes, anything else replaces.
pub(crate) fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.shift_remove(&key);
                } else if let Some(slot) = base.get_mut(&key) {
                    merge(slot, value);
                } else {
                    base.insert(key, value);
                }
            }
        }
        (base, over) => *base = over,
    }
}

fn read_profile(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("stac profile {}: {err}", path.display()))?;
    let parsed = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str::<Value>(&text).map_err(|err| err.to_string())
    } else {
        serde_json::from_str::<Value>(&text).map_err(|err| err.to_string())
    };
    parsed.map_err(|err| format!("stac profile {}: {err}", path.display()))
}

impl Config {
    /// Reads `[plugin.stac]` (as JSON) and the profile it names.
    ///
    /// # Errors
    /// A message naming the bad key or file.
    pub(crate) fn load(table: Value) -> Result<Self, String> {
        let settings: Settings =
            serde_json::from_value(table.clone()).map_err(|err| format!("[plugin.stac]: {err}"))?;
        let mut profile: Value =
            serde_json::from_str(DEFAULT_PROFILE).map_err(|err| format!("built-in profile: {err}"))?;
        if let Some(path) = &settings.profile {
            merge(&mut profile, read_profile(path)?);
        }
        let Value::Object(mut inline) = table else { return Err("[plugin.stac] must be a table".to_owned()) };
        inline.remove("public_url");
        inline.remove("profile");
        merge(&mut profile, Value::Object(inline));
        let profile: Profile = serde_json::from_value(profile).map_err(|err| format!("stac profile: {err}"))?;
        for (key, asset) in &profile.assets {
            if !asset.fields.get("href").is_some_and(Value::is_string) {
                return Err(format!("stac profile: asset '{key}' needs an href"));
            }
        }
        let public_url = settings.public_url.map(|url| url.trim_end_matches('/').to_owned());
        Ok(Self { public_url, profile })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn built_in_profile_loads() {
        let config = Config::load(json!({})).unwrap();
        assert_eq!(config.profile.collection.id, "cloudify-all");
        assert_eq!(config.profile.assets["zstore"].plugin.as_deref(), Some("zarr"));
        assert!(config.profile.assets["reference_file"].stored_chunks);
    }

    #[test]
    fn inline_keys_merge_and_null_removes() {
        let table = json!({
            "public_url": "https://example.org/",
            "collection": {"id": "mine", "keywords": ["a"]},
            "assets": {"intake": null, "disk": {"href": "/pool/{id}.nc", "roles": ["data"]}},
        });
        let config = Config::load(table).unwrap();
        assert_eq!(config.public_url.as_deref(), Some("https://example.org"));
        assert_eq!(config.profile.collection.id, "mine");
        assert_eq!(config.profile.collection.title, "Every dataset of this server");
        assert_eq!(config.profile.collection.keywords, ["a"]);
        let keys: Vec<&str> = config.profile.assets.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["zstore", "kerchunk", "reference_file", "reference_parquet", "reference_file_2", "xarray_view", "disk"]
        );
    }

    #[test]
    fn the_eerie_example_profile_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/eerie/stac-profile.json");
        let config = Config::load(json!({ "profile": path })).unwrap();
        assert_eq!(config.profile.collection.id, "eerie-cloud-all");
        assert!(!config.profile.assets.contains_key("kerchunk"));
        assert_eq!(config.profile.assets["eerie-cloud"].plugin.as_deref(), Some("kerchunk"));
        assert_eq!(config.profile.item_properties["project"], "EERIE");
    }

    #[test]
    fn mistakes_are_named() {
        let err = Config::load(json!({"colection": {}})).unwrap_err();
        assert!(err.contains("colection"), "{err}");
        let err = Config::load(json!({"assets": {"x": {"title": "no href"}}})).unwrap_err();
        assert!(err.contains("'x' needs an href"), "{err}");
        let err = Config::load(json!({"profile": "/nonexistent/profile.json"})).unwrap_err();
        assert!(err.contains("/nonexistent/profile.json"), "{err}");
    }
}
