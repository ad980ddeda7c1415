//! cloudify's zarr plugin: every dataset as a Zarr v2 and a Zarr v3 store at
//! `/datasets/{id}/zarr/`, from the same data.
//!
//! v2 clients (zarr-python 2, CEDA DataPoint) read `.zmetadata` and `tas/0.0.0`; v3 clients read
//! `zarr.json` (with consolidated metadata, as xpublish-zarr serves it) and `tas/c/0/0/0`.
//! Chunks are decoded from the source by the host and re-encoded with the configured codec,
//! optionally rechunked; encoded chunks are kept in a bytes-bounded cache shared by all
//! requests. Every answer carries `ETag`, `Last-Modified` (when the source's time is known) and
//! `Cache-Control`, and conditional GETs get `304 Not Modified`.
//!
//! Config (`[plugin.zarr]`): see `config.rs` (and the README).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod serve;

use std::sync::Arc;

use cloudify_sdk::{Host, HostExt, Plugin, Route, Scope};

use crate::serve::ZarrService;

cloudify_sdk::declare_plugin!(name: "zarr", init: init);

const OPERATION: &str = r#"{
  "summary": "Zarr v2 and v3 store of the dataset",
  "description": "Metadata documents (.zmetadata, .zgroup, .zattrs, {var}/.zarray, {var}/.zattrs, zarr.json, {var}/zarr.json) and chunks ({var}/0.0.0 in v2, {var}/c/0/0/0 in v3). Supports If-None-Match and If-Modified-Since.",
  "parameters": [
    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
    {"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "example": ".zmetadata"}
  ],
  "responses": {
    "200": {"description": "JSON metadata or an encoded chunk",
            "content": {"application/json": {}, "application/octet-stream": {}}},
    "304": {"description": "Not modified"},
    "404": {"description": "Unknown dataset, variable or chunk key"}
  }
}"#;

fn init(host: Host) -> Result<Plugin, String> {
    let config = host.config().map_err(|err| err.to_string())?;
    let service = Arc::new(ZarrService::new(config));
    let metrics = Arc::clone(&service.metrics);
    Ok(Plugin::new("zarr", env!("CARGO_PKG_VERSION"))
        .description("every dataset as Zarr v2 and v3 over HTTP")
        .route(
            Route::get(Scope::Dataset, "/zarr/{*key}", move |host, req| {
                let service = Arc::clone(&service);
                async move { service.answer(&host, &req).await }
            })
            .summary("Zarr v2 and v3 store of the dataset")
            .content_type("application/octet-stream")
            .openapi(OPERATION),
        )
        .route(metrics.route("zarr")))
}
