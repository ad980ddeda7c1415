//! The two catalog documents.

use cloudify_sdk::{Error, Host, HostExt, Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};

/// `[plugin.intake]`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// URL clients reach the server at; default from the request headers.
    public_url: Option<String>,
    /// Loading method a catalog entry uses by default: `zarr` or `kerchunk`. Default `zarr`.
    default_method: String,
}

impl Default for Config {
    fn default() -> Self {
        Self { public_url: None, default_method: "zarr".to_owned() }
    }
}

const METHODS: [&str; 2] = ["zarr", "kerchunk"];

impl Config {
    /// The plugin's table, checked: a wrong method refuses the plugin at start, not every
    /// request later.
    pub(crate) fn load(host: &Host) -> Result<Self, String> {
        let config: Self = host.config().map_err(|err| err.to_string())?;
        if !METHODS.contains(&config.default_method.as_str()) {
            return Err(format!("default_method must be one of {METHODS:?}, not {:?}", config.default_method));
        }
        Ok(config)
    }

    fn base_url(&self, req: &Request) -> String {
        let base = self.public_url.clone().unwrap_or_else(|| req.base_url());
        base.trim_end_matches('/').to_owned()
    }
}

fn yaml(doc: &Value) -> Response {
    match serde_norway::to_string(doc) {
        Ok(text) => Response::bytes(200, "text/yaml", text.into_bytes()),
        Err(err) => Error::internal(format!("catalog not serialisable: {err}")).into(),
    }
}

fn describe(host: &Host, id: &str, key: &str) -> String {
    host.metadata(id)
        .ok()
        .and_then(|meta| {
            ["summary", "title", key].iter().find_map(|k| meta.attributes.get(*k)?.as_str().map(str::to_owned))
        })
        .unwrap_or_default()
}

/// `GET /intake.yaml`: one zarr source per dataset, its `method` parameter choosing the
/// endpoint (as cloudify's patched xpublish-intake does).
pub(crate) fn root(config: &Config, host: &Host, req: &Request) -> Response {
    let base = config.base_url(req);
    let sources: serde_json::Map<String, Value> = host
        .datasets()
        .into_iter()
        .map(|id| {
            let entry = json!({
                "description": describe(host, &id, "description"),
                "driver": "zarr",
                "metadata": {},
                "args": {"urlpath": format!("{base}/datasets/{id}/{{{{ method }}}}"), "consolidated": true},
                "parameters": {"method": {
                    "allowed": METHODS, "default": config.default_method, "type": "str",
                    "description": "server-side loading method",
                }},
            });
            (id, entry)
        })
        .collect();
    yaml(&json!({
        "metadata": {"source": "Served via `cloudify`", "access_url": format!("{base}/intake.yaml")},
        "sources": sources,
    }))
}

/// `GET /datasets/{id}/catalog.yaml`: the dataset's zarr and kerchunk entries.
pub(crate) fn dataset(config: &Config, host: &Host, req: &Request) -> Response {
    let base = config.base_url(req);
    let id = req.dataset_id().unwrap_or_default();
    let description = describe(host, id, "description");
    let sources: serde_json::Map<String, Value> = METHODS
        .iter()
        .map(|method| {
            let entry = json!({
                "driver": "zarr",
                "description": description,
                "args": {"consolidated": true, "urlpath": format!("{base}/datasets/{id}/{method}")},
            });
            (format!("{id}-{method}"), entry)
        })
        .collect();
    yaml(&json!({
        "name": id,
        "metadata": {"source": "Served via `cloudify`", "access_url": format!("{base}/datasets/{id}/catalog.yaml")},
        "sources": sources,
    }))
}
