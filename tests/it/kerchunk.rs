//! The kerchunk plugin loaded from its shared library: stored chunks, the reference set and
//! the source-file endpoint agree with each other; config and bad input.

use std::process::Command;

use crate::util::{cloudify_bin, Server};

#[test]
fn stored_chunks_references_and_file_ranges_agree() {
    let server = Server::start(&[]);
    let zarray = server.get("/datasets/demo/kerchunk/tas/.zarray").json();
    // The demo is a NetCDF4 file written with shuffle + zlib: declared, not re-encoded.
    assert_eq!(zarray["compressor"]["id"], "zlib", "{zarray}");
    let refs = server.get("/datasets/demo/kerchunk.json").json();
    assert_eq!(refs["version"], 1);
    let reference = &refs["refs"]["tas/0.0.0"];
    let (url, offset, length) =
        (reference[0].as_str().unwrap(), reference[1].as_u64().unwrap(), reference[2].as_u64().unwrap());
    let file_path = url.strip_prefix(&server.url).expect("local files are referenced at this server");
    let range = server.get_with(file_path, ("range", &format!("bytes={offset}-{}", offset + length - 1)));
    assert_eq!(range.status, 206);
    let chunk = server.get("/datasets/demo/kerchunk/tas/0.0.0");
    assert_eq!(chunk.body, range.body, "the chunk is the stored bytes");
    assert_eq!(server.get("/datasets/demo/kerchunk/tas/c/0/0/0").body, chunk.body);
    let head = server.head(file_path);
    assert_eq!(head.status, 200);
    assert!(head.content_length.unwrap() > offset + length);
}

#[test]
fn bad_keys_files_and_ranges_are_json_errors() {
    let server = Server::start(&[]);
    for path in
        ["/datasets/demo/kerchunk/tas/99.0.0", "/datasets/demo/kerchunk/nope/.zarray", "/datasets/demo/files/nope.nc"]
    {
        let reply = server.get(path);
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.json()["error"].is_string(), "{path}");
    }
    let listing = server.get("/datasets/demo/files/").json();
    let file = format!("/datasets/demo/files/{}", listing[0]["name"].as_str().unwrap());
    assert_eq!(server.get_with(&file, ("range", "bytes=999999999-")).status, 416);
    assert_eq!(server.get_with(&file, ("if-match", "\"other\"")).status, 412);
    assert_eq!(server.get("/datasets/nope/kerchunk.json").status, 404);
    assert_eq!(server.get(&file).status, 200, "the server keeps serving");
}

#[test]
fn an_invalid_kerchunk_config_refuses_the_plugin_in_one_line() {
    let server = Server::start(&[("CLOUDIFY_PLUGIN__KERCHUNK__TARGETS", "elsewhere")]);
    assert!(server.log().lines().any(|l| l.contains("plugin kerchunk: invalid plugin config")), "{}", server.log());
    assert_eq!(server.get("/datasets/demo/kerchunk/.zmetadata").status, 404);
    assert_eq!(server.get("/datasets/demo/zarr/.zmetadata").status, 200);
}

#[test]
fn refs_scan_refuses_missing_and_non_netcdf_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.nc");
    std::fs::write(&text, "not a NetCDF file").unwrap();
    for input in [dir.path().join("missing.nc"), text] {
        let output = Command::new(cloudify_bin())
            .args(["refs", "scan", input.to_str().unwrap(), "-o", dir.path().join("out.json").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(input.file_name().unwrap().to_str().unwrap()), "{stderr}");
    }
    assert!(!dir.path().join("out.json").exists());
}
