use serde_json::json;

use crate::util::{netcdf_files, Server};

fn f32s_file(name: &str) -> Vec<u8> {
    std::fs::read(netcdf_files().join(name)).unwrap()
}

#[test]
fn configured_files_and_folders_are_served_and_broken_ones_skipped() {
    let files = netcdf_files();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("archive/sub");
    std::fs::create_dir_all(&folder).unwrap();
    for name in ["nc3_classic.nc", "nc4_packed.nc"] {
        std::fs::copy(files.join(name), folder.join(name)).unwrap();
    }
    // A Zarr store in the folder is one dataset (its chunk files are not).
    crate::util::copy_dir(&files.join("chunked_v3.zarr"), &folder.join("store.zarr"));
    std::fs::write(folder.join("broken.nc"), b"CDF\x01 but nothing else").unwrap();
    std::fs::write(folder.join("notes.txt"), b"not a dataset").unwrap();
    let vanishing = dir.path().join("vanishing.nc");
    std::fs::copy(files.join("nc4_chunked.nc"), &vanishing).unwrap();
    let config = dir.path().join("cloudify.toml");
    std::fs::write(
        &config,
        format!(
            "[[datasets]]\nid = \"tas4\"\npath = \"{}\"\n\n[[datasets]]\nid = \"missing\"\npath = \"/nonexistent/file.nc\"\n\n\
             [[datasets]]\nid = \"vanishing\"\npath = \"{}\"\n\n[[datasets]]\nid = \"series\"\npath = \"{}/series/tas_*.nc\"\n\n[[folders]]\npath = \"{}\"\n\n[cache]\ndir = \"{}\"\n",
            files.join("nc4_chunked.nc").display(),
            vanishing.display(),
            files.display(),
            dir.path().join("archive").display(),
            dir.path().join("cache").display(),
        ),
    )
    .unwrap();
    let args =
        ["--config", config.to_str().unwrap(), "--plugin-dir", crate::util::fixtures().plugin_dir.to_str().unwrap()];
    let server = Server::start_with(
        &crate::util::cloudify_bin(),
        &args,
        &[("CLOUDIFY_CACHE__DIR", dir.path().join("cache").to_str().unwrap())],
    );
    let ids = server.get("/datasets").json();
    assert_eq!(ids, json!(["demo", "tas4", "vanishing", "series", "nc3_classic", "nc4_packed", "store", "ramp"]));
    let store = server.get("/datasets/store/faulty/region/tas?start=0,0,0&shape=5,30,40");
    assert!(store.body == f32s_file("nc4_chunked.nc.tas.bin"), "a Zarr store over HTTP equals netCDF4-python");
    assert_eq!(server.get("/datasets/series/info").json()["dimensions"]["time"], 120);
    let log = server.log();
    for skipped in ["dataset=\"missing\"", "dataset=\"broken\""] {
        assert!(log.lines().any(|l| l.contains("dataset skipped") && l.contains(skipped)), "{skipped}:\n{log}");
    }
    let nc3 = server.get("/datasets/nc3_classic/info").json();
    assert_eq!(nc3["variables"]["name"]["type"], "|S1", "character arrays are served");

    let info = server.get("/datasets/tas4/info").json();
    assert_eq!(info["dimensions"], json!({"lat": 30, "lon": 40, "time": 5}));
    assert_eq!(info["variables"]["tas"]["attributes"]["units"], "K");
    assert_eq!(info["variables"]["time"]["attributes"]["calendar"], "noleap");
    assert_eq!(info["global_attributes"]["title"], "chunked, shuffle + zlib");
    let region = server.get("/datasets/tas4/faulty/region/tas?start=0,0,0&shape=5,30,40");
    assert_eq!(region.status, 200, "{}", region.text());
    assert!(region.body == f32s_file("nc4_chunked.nc.tas.bin"), "tas over HTTP equals netCDF4-python");
    let packed = server.get("/datasets/nc4_packed/faulty/region/pr?start=0,0,0&shape=4,10,10");
    assert!(packed.body == f32s_file("nc4_packed.nc.pr.bin"), "packed values are served packed");

    // A file that disappears after start-up: the read fails with a JSON error, nothing else.
    std::fs::remove_file(&vanishing).unwrap();
    let gone = server.get("/datasets/vanishing/faulty/chunk/tas/0.0.0");
    assert_eq!(gone.status, 500);
    assert_eq!(gone.json()["error"], "internal server error");
    assert!(gone.json()["request_id"].is_string());
    assert_eq!(server.get("/datasets/tas4/faulty/chunk/tas/0.0.0").status, 200);
    drop(server);

    // A restart reads every scan from the reference cache.
    let again = Server::start_with(
        &crate::util::cloudify_bin(),
        &args,
        &[("CLOUDIFY_CACHE__DIR", dir.path().join("cache").to_str().unwrap())],
    );
    assert!(again.log().contains("scanned=1 cached=5"), "{}", again.log());
    assert_eq!(
        again.get("/datasets/nc3_classic/keys").json(),
        json!(["lat", "lon", "time", "ts", "flag", "name", "code", "scalar"])
    );
}

/// An S3-compatible server (moto, from the test venv) on 127.0.0.1, stopped when dropped.
struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> (Moto, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bin = crate::util::python().parent().unwrap().join("moto_server");
    let child = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let guard = Moto(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto_server did not listen");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (guard, format!("http://127.0.0.1:{port}"))
}

#[test]
fn datasets_in_s3_are_served() {
    let files = netcdf_files();
    let (_moto, endpoint) = moto();
    let status = std::process::Command::new(crate::util::python())
        .arg(crate::util::repo().join("tests/data/s3_upload.py"))
        .args([&endpoint, "climate"])
        .args(["nc3_classic.nc", "chunked_v2.zarr", "chunked_v3.zarr", "nc4_chunked.nc"].map(|f| files.join(f)))
        .status()
        .unwrap();
    assert!(status.success());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cloudify.toml");
    let mut text = String::new();
    for (id, key) in
        [("nc3", "nc3_classic.nc"), ("v2", "chunked_v2.zarr"), ("v3", "chunked_v3.zarr"), ("nc4", "nc4_chunked.nc")]
    {
        text.push_str(&format!("[[datasets]]\nid = \"{id}\"\npath = \"s3://climate/{key}\"\n\n"));
    }
    // Python kerchunk's references of the NetCDF4 file, pointed at its copy in S3; the file
    // itself is served too (scanned from a temporary copy, read by ranges in S3).
    let refs = std::fs::read_to_string(files.join("nc4_chunked.nc.kerchunk.json")).unwrap();
    let local = files.join("nc4_chunked.nc").to_str().unwrap().to_owned();
    let refs_file = dir.path().join("nc4_in_s3.json");
    std::fs::write(&refs_file, refs.replace(&format!("\"{local}\""), "\"s3://climate/nc4_chunked.nc\"")).unwrap();
    // A local set reads its own folder only, unless the operator widens it.
    text.push_str(&format!(
        "[[datasets]]\nid = \"nc4_refs\"\npath = \"{}\"\nallow_targets = [\"s3://climate/\"]\n\n",
        refs_file.display()
    ));
    std::fs::write(&config, text).unwrap();
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let args =
        ["--config", config.to_str().unwrap(), "--plugin-dir", crate::util::fixtures().plugin_dir.to_str().unwrap()];
    let server = Server::start_with(&crate::util::cloudify_bin(), &args, &env);
    assert_eq!(
        server.get("/datasets").json(),
        json!(["demo", "nc3", "v2", "v3", "nc4", "nc4_refs", "ramp"]),
        "{}",
        server.log()
    );
    let ts = server.get("/datasets/nc3/faulty/region/ts?start=0,0,0&shape=4,6,8");
    assert!(ts.body == f32s_file("nc3_classic.nc.ts.bin"), "NetCDF classic from S3 equals netCDF4-python");
    for id in ["v2", "v3", "nc4", "nc4_refs"] {
        let tas = server.get(&format!("/datasets/{id}/faulty/region/tas?start=0,0,0&shape=5,30,40"));
        assert!(tas.body == f32s_file("nc4_chunked.nc.tas.bin"), "{id} from S3 equals netCDF4-python");
    }
}
