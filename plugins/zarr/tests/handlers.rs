//! The zarr plugin's handlers against an in-memory host: documents, chunks (stored,
//! rechunked, edge), caching headers, refusals, and the plugin contract.

use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable, TestPlugin, TestRequest};
use cloudify_zarr_plugin::plugin_module;
use futures::executor::block_on;
use serde_json::{json, Value};

/// `tas(time=3, lat=2, lon=3)` in chunks of (2, 2, 3), with coordinates and a string variable.
fn dataset() -> MockDataset {
    let values: Vec<f32> = (0..18).map(|v| v as f32 * 0.5).collect();
    let tas = MockVariable::new("tas", &[("time", 3), ("lat", 2), ("lon", 3)], values)
        .chunks(&[2, 2, 3])
        .fill_value(1e20)
        .attr("units", "K")
        .attr("_FillValue", 1e20);
    let time = MockVariable::new("time", &[("time", 3)], [0i64, 31, 59])
        .attr("units", "days since 2000-01-01")
        .attr("calendar", "noleap");
    let lat = MockVariable::new("lat", &[("lat", 2)], [-45f64, 45.]).attr("units", "degrees_north");
    let station = MockVariable::strings("station", &[("lat", 2)], ["south", "north"]);
    MockDataset::new("demo").attr("title", "Demo").variable(time).variable(lat).variable(tas).variable(station)
}

fn plugin(config: Value) -> TestPlugin {
    MockHost::new().dataset(dataset()).config(config).load(plugin_module()).expect("zarr loads")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn v2_metadata_describes_every_variable() {
    let plugin = plugin(json!({}));
    let zmeta = block_on(plugin.get("/datasets/demo/zarr/.zmetadata")).json();
    let tas = &zmeta["metadata"]["tas/.zarray"];
    assert_eq!(tas["shape"], json!([3, 2, 3]));
    assert_eq!(tas["chunks"], json!([2, 2, 3]));
    assert_eq!(tas["dtype"], "<f4");
    assert_eq!(zmeta["metadata"]["tas/.zattrs"]["_ARRAY_DIMENSIONS"], json!(["time", "lat", "lon"]));
    assert_eq!(zmeta["metadata"]["time/.zattrs"]["calendar"], "noleap");
    assert_eq!(zmeta["metadata"][".zattrs"]["title"], "Demo");
    assert!(zmeta["metadata"]["station/.zarray"].is_object());
}

#[test]
fn v3_metadata_is_consolidated_in_the_root_document() {
    let plugin = plugin(json!({}));
    let root = block_on(plugin.get("/datasets/demo/zarr/zarr.json")).json();
    assert_eq!(root["zarr_format"], 3);
    let tas = &root["consolidated_metadata"]["metadata"]["tas"];
    assert_eq!(tas["shape"], json!([3, 2, 3]));
    assert_eq!(tas["dimension_names"], json!(["time", "lat", "lon"]));
    assert_eq!(block_on(plugin.get("/datasets/demo/zarr/tas/zarr.json")).json()["data_type"], "float32");
}

#[test]
fn chunks_hold_the_values_edge_chunks_padded() {
    let plugin = plugin(json!({"codec": "none"}));
    let first = block_on(plugin.get("/datasets/demo/zarr/tas/0.0.0"));
    assert_eq!(first.status, 200);
    assert_eq!(f32s(&first.body), (0..12).map(|v| v as f32 * 0.5).collect::<Vec<_>>());
    let edge = f32s(&block_on(plugin.get("/datasets/demo/zarr/tas/c/1/0/0")).body);
    assert_eq!(edge[..6], [6.0, 6.5, 7.0, 7.5, 8.0, 8.5]);
    assert!(edge[6..].iter().all(|&v| v == 1e20), "{edge:?}");
}

#[test]
fn rechunked_arrays_are_cut_from_regions() {
    let plugin = plugin(json!({"codec": "none", "rechunk": {"demo": {"chunks": {"time": 1, "lat": 0, "lon": 0}}}}));
    let zarray = block_on(plugin.get("/datasets/demo/zarr/tas/.zarray")).json();
    assert_eq!(zarray["chunks"], json!([1, 2, 3]));
    let third = f32s(&block_on(plugin.get("/datasets/demo/zarr/tas/2.0.0")).body);
    assert_eq!(third, [6.0, 6.5, 7.0, 7.5, 8.0, 8.5]);
}

#[test]
fn compressed_chunks_are_declared_and_smaller_than_their_values() {
    let plugin = plugin(json!({"codec": "zstd"}));
    let zarray = block_on(plugin.get("/datasets/demo/zarr/tas/.zarray")).json();
    assert_eq!(zarray["compressor"]["id"], "zstd");
    let chunk = block_on(plugin.get("/datasets/demo/zarr/time/0"));
    assert_eq!(chunk.status, 200);
    assert_ne!(chunk.body.len(), 3 * 8, "the chunk went out unencoded");
}

#[test]
fn answers_carry_validators_and_honour_conditional_requests() {
    let plugin = plugin(json!({"cache_control": "public, max-age=60"}));
    let first = block_on(plugin.get("/datasets/demo/zarr/tas/0.0.0"));
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert_eq!(first.header("cache-control"), Some("public, max-age=60"));
    let again = block_on(plugin.send(TestRequest::get("/datasets/demo/zarr/tas/0.0.0").header("If-None-Match", &etag)));
    assert_eq!((again.status, again.body.len()), (304, 0));
    let other =
        block_on(plugin.send(TestRequest::get("/datasets/demo/zarr/tas/0.0.0").header("if-none-match", "\"x\"")));
    assert_eq!(other.status, 200);
}

#[test]
fn unknown_and_malformed_keys_are_refused_with_json_errors() {
    let plugin = plugin(json!({}));
    for key in ["nope/.zarray", "tas/9.0.0", "tas/0.0", "tas/a.b.c", "tas/c/0/0/0/0", ".zmetadata/x"] {
        let answer = block_on(plugin.get(&format!("/datasets/demo/zarr/{key}")));
        assert!((400..500).contains(&answer.status), "{key}: {}", answer.status);
        assert!(answer.error_message().is_some(), "{key}: {}", answer.text());
    }
    assert_eq!(block_on(plugin.get("/datasets/other/zarr/.zmetadata")).status, 404);
}

#[test]
fn an_invalid_config_table_refuses_the_plugin() {
    let refused = MockHost::new().config(json!({"codec": "lzma"})).load(plugin_module());
    assert!(refused.err().is_some_and(|reason| reason.contains("lzma")));
}

#[test]
fn the_plugin_keeps_the_contract() {
    block_on(plugin(json!({})).assert_conformance());
}
