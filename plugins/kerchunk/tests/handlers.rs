//! The kerchunk plugin's handlers against an in-memory host: the stored-bytes store, the
//! reference set, parquet references, source files by range, and the plugin contract.

use cloudify_kerchunk_plugin::plugin_module;
use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable, TestPlugin, TestRequest};
use futures::executor::block_on;
use serde_json::{json, Value};

/// 64 bytes whose value is their offset: a range's bytes say where they came from.
fn file_bytes() -> Vec<u8> {
    (0u8..64).collect()
}

fn plugin() -> TestPlugin {
    let tas = MockVariable::new("tas", &[("time", 4), ("lon", 2)], [1f32, 2., 3., 4., 5., 6., 7., 8.])
        .chunks(&[2, 2])
        .attr("units", "K");
    let time = MockVariable::new("time", &[("time", 4)], [0f64, 1., 2., 3.]).attr("units", "days since 2000-01-01");
    let demo = MockDataset::new("demo")
        .variable(time)
        .variable(tas)
        .file("/data/a/tas.nc", file_bytes())
        .file("s3://bucket/b/tas.nc", vec![7u8; 10])
        .last_modified(1_700_000_000);
    MockHost::new().dataset(demo).load(plugin_module()).expect("kerchunk loads")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn the_store_serves_stored_chunks_with_the_source_codecs_declared() {
    let plugin = plugin();
    let zarray = block_on(plugin.get("/datasets/demo/kerchunk/tas/.zarray")).json();
    assert_eq!((zarray["chunks"].clone(), zarray["dtype"].clone()), (json!([2, 2]), json!("<f4")));
    assert_eq!(zarray["compressor"], Value::Null);
    let chunk = block_on(plugin.get("/datasets/demo/kerchunk/tas/1.0"));
    assert_eq!(f32s(&chunk.body), [5., 6., 7., 8.]);
    let v3 = block_on(plugin.get("/datasets/demo/kerchunk/tas/c/0/0"));
    assert_eq!(f32s(&v3.body), [1., 2., 3., 4.]);
}

#[test]
fn the_reference_set_inlines_what_has_no_byte_range() {
    let plugin = plugin();
    let refs = block_on(plugin.get("/datasets/demo/kerchunk.json")).json();
    assert_eq!(refs["version"], 1);
    let zarray: Value = serde_json::from_str(refs["refs"]["tas/.zarray"].as_str().unwrap()).unwrap();
    assert_eq!(zarray["shape"], json!([4, 2]));
    let chunk = refs["refs"]["tas/0.0"].as_str().expect("an inline chunk");
    assert!(chunk.starts_with("base64:"), "{chunk}");
}

#[test]
fn parquet_references_list_their_keys() {
    let plugin = plugin();
    let listing = block_on(plugin.get("/datasets/demo/kerchunk.parq"));
    assert_eq!(listing.status, 200, "{}", listing.text());
    let keys = listing.json();
    assert!(keys.to_string().contains(".zmetadata"), "{keys}");
    let zmeta = block_on(plugin.get("/datasets/demo/kerchunk.parq/.zmetadata")).json();
    assert!(zmeta["record_size"].as_u64().is_some_and(|n| n > 0), "{zmeta}");
    let part = block_on(plugin.get("/datasets/demo/kerchunk.parq/tas/refs.0.parq"));
    assert_eq!((part.status, &part.body[..4]), (200, &b"PAR1"[..]));
}

#[test]
fn files_are_listed_and_served_by_range() {
    let plugin = plugin();
    let list = block_on(plugin.get("/datasets/demo/files/")).json();
    assert!(list.to_string().contains("tas.nc"), "{list}");
    let names: Vec<String> = list.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["0-tas.nc", "1-tas.nc"], "names repeat, so they are numbered");

    let whole = block_on(plugin.get("/datasets/demo/files/0-tas.nc"));
    assert_eq!((whole.status, whole.body.clone()), (200, file_bytes()));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));

    let ranged =
        |range: &str| block_on(plugin.send(TestRequest::get("/datasets/demo/files/0-tas.nc").header("range", range)));
    let part = ranged("bytes=10-13");
    assert_eq!((part.status, part.body.clone()), (206, vec![10, 11, 12, 13]));
    assert_eq!(part.header("content-range"), Some("bytes 10-13/64"));
    assert_eq!(ranged("bytes=-2").body, [62, 63]);
    assert_eq!(ranged("bytes=60-").body, [60, 61, 62, 63]);
    let beyond = ranged("bytes=64-70");
    assert_eq!((beyond.status, beyond.header("content-range")), (416, Some("bytes */64")));
    assert_eq!(block_on(plugin.get("/datasets/demo/files/other.nc")).status, 404);
}

#[test]
fn file_preconditions_follow_rfc_9110() {
    let plugin = plugin();
    let etag = block_on(plugin.get("/datasets/demo/files/0-tas.nc")).header("etag").unwrap().to_owned();
    let with = |name: &str, value: &str| {
        block_on(plugin.send(TestRequest::get("/datasets/demo/files/0-tas.nc").header(name, value))).status
    };
    assert_eq!(with("if-none-match", &etag), 304);
    assert_eq!(with("if-match", &etag), 200);
    assert_eq!(with("if-match", "\"stale\""), 412);
    assert_eq!(with("if-unmodified-since", "Mon, 01 Jan 1990 00:00:00 GMT"), 412);
    // If-Range: the range of the current version, else the whole file.
    let ranged_if = |tag: &str| {
        let req =
            TestRequest::get("/datasets/demo/files/0-tas.nc").header("range", "bytes=0-1").header("if-range", tag);
        block_on(plugin.send(req)).status
    };
    assert_eq!(ranged_if(&etag), 206);
    assert_eq!(ranged_if("\"stale\""), 200);
}

#[test]
fn the_plugin_keeps_the_contract() {
    block_on(plugin().assert_conformance());
}
