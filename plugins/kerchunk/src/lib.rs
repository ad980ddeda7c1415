//! cloudify's kerchunk plugin: the bytes stored in the source files served as Zarr chunks,
//! with the source's own codecs declared, so the server never decodes ("Zarr raw").
//!
//! * `/datasets/{id}/kerchunk/{key}`: Zarr v2 and v3 stores like `/zarr`, but every chunk is
//!   the stored bytes (NetCDF4: shuffle + zlib; NetCDF3: big-endian). Chunks that are not
//!   stored byte ranges (read through the source library, computed) are their values encoded
//!   with the chain the array declares, as `kerchunk.json` inlines them; never-written chunks
//!   are the fill value encoded with the source chain.
//! * `/datasets/{id}/kerchunk.json`: the kerchunk reference set (spec version 1), and
//!   `/datasets/{id}/kerchunk.parq/`: the same as parquet (fsspec's `LazyReferenceMapper`);
//!   `/datasets/{id}/kerchunk.parq` itself lists its keys.
//! * `/datasets/{id}/files/` and `/datasets/{id}/files/{name}`: the source files, with `Range`,
//!   `ETag`/`Last-Modified`, `If-Match`/`If-Unmodified-Since` and `If-None-Match`, which
//!   fsspec and Icechunk's virtual chunks rely on.
//!
//! Config (`[plugin.kerchunk]`): see `config.rs` (and the README).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod export;
mod files;
mod serve;

use std::sync::Arc;

use cloudify_sdk::{Host, HostExt, Plugin, Route, Scope};

use crate::serve::KerchunkService;

cloudify_sdk::declare_plugin!(name: "kerchunk", init: init);

const STORE_OPERATION: &str = r#"{
  "summary": "Zarr v2 and v3 store of the stored chunks, without re-encoding",
  "description": "Metadata documents as under /zarr, declaring the source codecs (e.g. shuffle + zlib); chunks are the bytes stored in the source files. 409 for variables whose chunks are not stored byte ranges: read them from /zarr.",
  "parameters": [
    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
    {"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "example": ".zmetadata"}
  ],
  "responses": {
    "200": {"description": "JSON metadata or a stored chunk", "content": {"application/json": {}, "application/octet-stream": {}}},
    "304": {"description": "Not modified"},
    "404": {"description": "Unknown dataset, variable or chunk key"},
    "409": {"description": "The chunk is not stored as a byte range; use /zarr"}
  }
}"#;

const REFS_OPERATION: &str = r#"{
  "summary": "kerchunk reference set (JSON, spec version 1)",
  "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
  "responses": {"200": {"description": "The reference set", "content": {"application/json": {}}},
                "409": {"description": "Too much data would have to be inlined"}}
}"#;

const PARQUET_OPERATION: &str = r#"{
  "summary": "kerchunk reference set as parquet (fsspec LazyReferenceMapper layout)",
  "description": ".zmetadata (metadata and record_size), then {var}/refs.{k}.parq with columns path, offset, size, raw.",
  "parameters": [
    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
    {"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "example": ".zmetadata"}
  ],
  "responses": {"200": {"description": "The document or parquet file"}, "404": {"description": "No such key"}}
}"#;

const FILE_OPERATION: &str = r#"{
  "summary": "One source file of the dataset, with Range requests",
  "parameters": [
    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
    {"name": "Range", "in": "header", "required": false, "schema": {"type": "string"}, "example": "bytes=0-1023"}
  ],
  "responses": {
    "200": {"description": "The whole file"}, "206": {"description": "The requested range"},
    "304": {"description": "Not modified"}, "404": {"description": "No such file"},
    "412": {"description": "If-Match or If-Unmodified-Since failed"},
    "416": {"description": "The range lies outside the file"}
  }
}"#;

fn init(host: Host) -> Result<Plugin, String> {
    let config = host.config().map_err(|err| err.to_string())?;
    let service = Arc::new(KerchunkService::new(config));
    let metrics = Arc::clone(&service.metrics);
    let (store, refs, parquet) = (Arc::clone(&service), Arc::clone(&service), Arc::clone(&service));
    let (file, list, parquet_keys) = (Arc::clone(&service), Arc::clone(&service), service);
    Ok(Plugin::new("kerchunk", env!("CARGO_PKG_VERSION"))
        .description("stored chunks as Zarr without re-encoding, kerchunk reference sets, source files")
        .route(
            Route::get(Scope::Dataset, "/kerchunk/{*key}", move |host, req| {
                let service = Arc::clone(&store);
                async move { service.answer(&host, &req).await }
            })
            .summary("Zarr v2 and v3 store of the stored chunks")
            .content_type("application/octet-stream")
            .openapi(STORE_OPERATION),
        )
        .route(
            Route::get(Scope::Dataset, "/kerchunk.json", move |host, req| {
                let service = Arc::clone(&refs);
                async move { service.reference_set(&host, &req).await }
            })
            .summary("kerchunk reference set (JSON, version 1)")
            .content_type("application/json")
            .openapi(REFS_OPERATION),
        )
        .route(
            Route::get(Scope::Dataset, "/kerchunk.parq/{*key}", move |host, req| {
                let service = Arc::clone(&parquet);
                async move { service.parquet_file(&host, &req).await }
            })
            .summary("kerchunk reference set as parquet (fsspec LazyReferenceMapper layout)")
            .content_type("application/vnd.apache.parquet")
            .openapi(PARQUET_OPERATION),
        )
        .route(
            Route::get(Scope::Dataset, "/kerchunk.parq", move |host, req| {
                let service = Arc::clone(&parquet_keys);
                async move { service.parquet_listing(&host, &req).await }
            })
            .summary("The keys of the parquet reference set")
            .content_type("application/json"),
        )
        .route(
            Route::get(Scope::Dataset, "/files/{name}", move |host, req| {
                let service = Arc::clone(&file);
                async move { service.file(&host, &req).await }
            })
            .summary("One source file, with Range requests")
            .content_type("application/octet-stream")
            .openapi(FILE_OPERATION),
        )
        .route(
            Route::get(Scope::Dataset, "/files/", move |host, req| {
                let service = Arc::clone(&list);
                async move { service.file_list(&host, &req).await }
            })
            .summary("The dataset's source files: name, size, modification time")
            .content_type("application/json"),
        )
        .route(metrics.route("kerchunk")))
}
