//! The zarr plugin loaded from its shared library: its config, and bad input.

use crate::util::Server;

#[test]
fn the_zarr_plugin_serves_the_demo_in_both_formats() {
    let server = Server::start(&[]);
    let v2 = server.get("/datasets/demo/zarr/.zmetadata").json();
    let zarray = &v2["metadata"]["tas/.zarray"];
    assert_eq!(zarray["compressor"]["cname"], "lz4");
    assert_eq!(v2["metadata"]["tas/.zattrs"]["_ARRAY_DIMENSIONS"], serde_json::json!(["time", "lat", "lon"]));
    let v3 = server.get("/datasets/demo/zarr/zarr.json").json();
    let tas = &v3["consolidated_metadata"]["metadata"]["tas"];
    assert_eq!(tas["chunk_grid"]["configuration"]["chunk_shape"], zarray["chunks"]);
    let (a, b) = (server.get("/datasets/demo/zarr/tas/0.0.0"), server.get("/datasets/demo/zarr/tas/c/0/0/0"));
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.body, b.body, "blosc bytes are the same in v2 and v3");
    assert_eq!(a.content_type, "application/octet-stream");
}

#[test]
fn bad_chunk_keys_are_404_json_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    for key in ["tas/99.0.0", "tas/0.0", "tas/c/0/0/0/0", "tas/a.b.c", "nope/0.0.0", "nope/.zarray", "tas/.zgroup"] {
        let reply = server.get(&format!("/datasets/demo/zarr/{key}"));
        assert_eq!(reply.status, 404, "{key}");
        assert!(reply.json()["error"].is_string(), "{key}");
    }
    assert_eq!(server.get("/datasets/nope/zarr/.zmetadata").status, 404);
    assert_eq!(server.get("/datasets/demo/zarr/tas/0.0.0").status, 200);
}

#[test]
fn the_served_codec_and_cache_size_follow_the_config() {
    let server =
        Server::start(&[("CLOUDIFY_PLUGIN__ZARR__CODEC", "zstd"), ("CLOUDIFY_PLUGIN__ZARR__CACHE_BYTES", "0")]);
    let zarray = server.get("/datasets/demo/zarr/tas/.zarray").json();
    assert_eq!(zarray["compressor"], serde_json::json!({"id": "zstd", "level": 1}));
    // Without the cache, the same chunk is encoded again to the same bytes.
    let (a, b) = (server.get("/datasets/demo/zarr/tas/1.0.0"), server.get("/datasets/demo/zarr/tas/1.0.0"));
    assert_eq!((a.status, !a.body.is_empty()), (200, true));
    assert_eq!(a.body, b.body);
    let again = server.get_with("/datasets/demo/zarr/tas/.zarray", ("if-none-match", "*"));
    assert_eq!((again.status, again.body.len()), (304, 0));
}

#[test]
fn an_invalid_zarr_config_refuses_the_plugin_in_one_line() {
    let server = Server::start(&[("CLOUDIFY_PLUGIN__ZARR__CODEC", "lzma")]);
    assert!(
        server.log().lines().any(|l| l.contains("plugin zarr: invalid plugin config") && l.contains("lzma")),
        "{}",
        server.log()
    );
    assert_eq!(server.get("/datasets/demo/zarr/.zmetadata").status, 404);
    assert_eq!(server.get("/datasets/demo/info").status, 200);
}

#[test]
fn the_example_config_loads_the_zarr_plugin_with_its_table() {
    let example = crate::util::repo().join("examples/config/cloudify.toml");
    let server = Server::start_with(&crate::util::cloudify_bin(), &["--config", example.to_str().unwrap()], &[]);
    assert!(server.get("/plugins").json()["zarr"]["path"].is_string(), "{}", server.log());
    assert_eq!(server.get("/datasets/demo/zarr/tas/.zarray").json()["compressor"]["cname"], "lz4");
}
