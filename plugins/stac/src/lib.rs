//! cloudify's STAC plugin: a STAC 1.1 Item per dataset, a Collection of all, and a STAC API
//! (core, collections, OGC API Features, item search with `query`), in the shapes DKRZ
//! cloudify serves and CEDA DataPoint opens.
//!
//! * `/datasets/{id}/stac`: the Item. `bbox` and geometry from the latitude/longitude
//!   coordinates (and their cell bounds; any longitude convention, antimeridian-aware),
//!   `start_datetime`/`end_datetime` from the decoded CF time (every CF calendar), the
//!   datacube extension, `variables`, CMIP-style global attributes, and an asset for every
//!   endpoint the loaded plugins offer, with the xarray-assets fields and DataPoint's
//!   `cloud_format`/`open_zarr_kwargs` (keys `zstore`, `reference_file`).
//! * `/stac-collection-all.json`: the Collection, extents computed from the items.
//! * `/stac`, `/stac/conformance`, `/stac/collections[/{cid}[/items[/{item}]]]`,
//!   `GET`/`POST /stac/search` (`bbox`, `intersects`, `datetime`, `ids`, `collections`,
//!   `query`, `limit` with `next` links).
//!
//! Config (`[plugin.stac]`): `public_url`, `profile` (a JSON/TOML profile file) and profile
//! keys; see `config.rs`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod api;
mod config;
mod facts;
mod icechunk;
mod item;
mod search;

use std::sync::Arc;

use cloudify_sdk::{Host, HostExt, Plugin, Request, Route, Scope};

use crate::{api::StacService, config::Config};

cloudify_sdk::declare_plugin!(name: "stac", init: init);

const SEARCH_OPERATION: &str = r#"{
  "summary": "STAC item search",
  "description": "Items matching every given filter, one page at a time (follow the next link).",
  "parameters": [
    {"name": "bbox", "in": "query", "required": false, "schema": {"type": "string"}, "example": "-10,35,30,60"},
    {"name": "intersects", "in": "query", "required": false, "schema": {"type": "string"}, "description": "GeoJSON geometry"},
    {"name": "datetime", "in": "query", "required": false, "schema": {"type": "string"}, "example": "2015-01-01T00:00:00Z/.."},
    {"name": "ids", "in": "query", "required": false, "schema": {"type": "string"}},
    {"name": "collections", "in": "query", "required": false, "schema": {"type": "string"}},
    {"name": "query", "in": "query", "required": false, "schema": {"type": "string"}, "example": "{\"variables\":{\"eq\":\"tas\"}}"},
    {"name": "q", "in": "query", "required": false, "schema": {"type": "string"}, "example": "air temperature,precipitation", "description": "Free text: comma-separated terms, any may match; a term matches datasets whose id, attributes or variables (names, long and standard names, units) hold each of its words"},
    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}, "description": "Items per page, at most 10,000 (more is lowered to it)"},
    {"name": "token", "in": "query", "required": false, "schema": {"type": "string", "pattern": "^next:[0-9]+$"}, "description": "Paging token from a next link"}
  ],
  "responses": {"200": {"description": "An ItemCollection", "content": {"application/geo+json": {}}},
                "400": {"description": "A parameter is malformed"}}
}"#;

/// A route whose handler calls `handle` on the shared service.
macro_rules! route {
    ($method:ident, $scope:expr, $path:literal, $service:expr, $handle:ident) => {{
        let service = Arc::clone(&$service);
        Route::$method($scope, $path, move |host: Host, req: Request| {
            let service = Arc::clone(&service);
            async move { service.$handle(&host, &req).await }
        })
    }};
}

fn init(host: Host) -> Result<Plugin, String> {
    let config = Config::load(host.config().map_err(|err| err.to_string())?)?;
    let service = Arc::new(StacService::new(config));
    let landing = Arc::clone(&service);
    Ok(Plugin::new("stac", env!("CARGO_PKG_VERSION"))
        .description("STAC items, a collection and a STAC API with item search")
        .route(
            route!(get, Scope::Dataset, "/stac", service, dataset_item)
                .summary("STAC Item of the dataset")
                .content_type("application/geo+json"),
        )
        .route(
            route!(get, Scope::Dataset, "/stac/", service, dataset_item)
                .summary("STAC Item of the dataset")
                .content_type("application/geo+json"),
        )
        .route(
            route!(get, Scope::App, "/stac-collection-all.json", service, collection_all)
                .summary("STAC Collection of every dataset")
                .content_type("application/json"),
        )
        .route(
            Route::get(Scope::App, "/stac", move |host, req| {
                let service = Arc::clone(&landing);
                async move { service.landing(&host, &req) }
            })
            .summary("STAC API landing page")
            .content_type("application/json"),
        )
        .route(
            Route::get(Scope::App, "/stac/conformance", |_host, _req| async { StacService::conformance() })
                .summary("STAC API conformance classes")
                .content_type("application/json"),
        )
        .route(
            route!(get, Scope::App, "/stac/collections", service, collections)
                .summary("STAC API collections")
                .content_type("application/json"),
        )
        .route(
            route!(get, Scope::App, "/stac/collections/{cid}", service, collection)
                .summary("One STAC collection")
                .content_type("application/json"),
        )
        .route(
            route!(get, Scope::App, "/stac/collections/{cid}/items", service, collection_items)
                .summary("The collection's items (bbox, datetime, limit)")
                .content_type("application/geo+json"),
        )
        .route(
            route!(get, Scope::App, "/stac/collections/{cid}/items/{item}", service, collection_item)
                .summary("One item of the collection")
                .content_type("application/geo+json"),
        )
        .route(
            route!(get, Scope::App, "/stac/search", service, search_get)
                .summary("STAC item search")
                .content_type("application/geo+json")
                .openapi(SEARCH_OPERATION),
        )
        .route(
            route!(post, Scope::App, "/stac/search", service, search_post)
                .summary("STAC item search (JSON body)")
                .content_type("application/geo+json"),
        ))
}
