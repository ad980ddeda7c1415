//! Hostile files and reference sets, written here byte by byte: each must be refused with a
//! reason in the log while the server starts and serves the rest, and nothing outside what the
//! operator published is read.

use std::{path::Path, time::Instant};

use serde_json::{json, Value};

use crate::util::{cloudify_bin, fixtures, python, Server};

/// A NetCDF classic (CDF-1) file: `numrecs`, dimensions `(name, length)` (0: the record
/// dimension), variables `(name, dimension ids, type code, begin)`; `None` as begin puts the
/// data right after the header. Followed by `data`.
fn classic(numrecs: u32, dims: &[(&str, u32)], vars: &[(&str, &[u32], u32, Option<u32>)], data: &[u8]) -> Vec<u8> {
    fn name(out: &mut Vec<u8>, text: &str) {
        out.extend((text.len() as u32).to_be_bytes());
        out.extend(text.as_bytes());
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let header = |begin: u32| {
        let mut out = b"CDF\x01".to_vec();
        out.extend(numrecs.to_be_bytes());
        out.extend([0x0Au32, dims.len() as u32].iter().flat_map(|n| n.to_be_bytes()));
        for (dim, len) in dims {
            name(&mut out, dim);
            out.extend(len.to_be_bytes());
        }
        out.extend([0u32, 0].iter().flat_map(|n| n.to_be_bytes()));
        out.extend([0x0Bu32, vars.len() as u32].iter().flat_map(|n| n.to_be_bytes()));
        for (var, ids, nc_type, at) in vars {
            name(&mut out, var);
            out.extend((ids.len() as u32).to_be_bytes());
            out.extend(ids.iter().flat_map(|n| n.to_be_bytes()));
            out.extend([0u32, 0, *nc_type, 0, at.unwrap_or(begin)].iter().flat_map(|n| n.to_be_bytes()));
        }
        out
    };
    let mut out = header(header(0).len() as u32);
    out.extend(data);
    out
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, value.to_string()).unwrap();
}

/// A kerchunk set of one int16 array `v` of `shape`/`chunks`, with `refs` added.
fn reference_set(shape: &[u64], chunks: &[u64], refs: Value) -> Value {
    let zarray = json!({"zarr_format": 2, "shape": shape, "chunks": chunks, "dtype": "<i2", "compressor": null,
                        "fill_value": 0, "filters": null, "order": "C"});
    let dims: Vec<String> = (0..shape.len()).map(|d| format!("d{d}")).collect();
    let mut all = json!({".zgroup": "{\"zarr_format\":2}", "v/.zarray": zarray.to_string(),
                         "v/.zattrs": json!({"_ARRAY_DIMENSIONS": dims}).to_string()});
    all.as_object_mut().unwrap().extend(refs.as_object().unwrap().clone());
    json!({"version": 1, "refs": all})
}

#[test]
fn hostile_files_and_sets_are_refused_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let published = dir.path().join("published");
    std::fs::create_dir(&published).unwrap();
    let floats: Vec<u8> = [1.5f32, 2.5, 3.5, 4.5].iter().flat_map(|f| f.to_be_bytes()).collect();
    std::fs::write(published.join("good.nc"), classic(0, &[("x", 4)], &[("v", &[0], 5, None)], &floats)).unwrap();
    // Four billion records claimed by a 100-byte file.
    std::fs::write(published.join("records.nc"), classic(0xFFFF_FFF0, &[("t", 0)], &[("v", &[0], 5, None)], &floats))
        .unwrap();
    // (2^32 - 1)^2 doubles: the element count wraps a u64.
    std::fs::write(
        published.join("wraps.nc"),
        classic(0, &[("a", u32::MAX), ("b", u32::MAX)], &[("v", &[0, 1], 6, None)], &[]),
    )
    .unwrap();
    // Data that would start inside the header.
    std::fs::write(published.join("inside.nc"), classic(0, &[("x", 4)], &[("v", &[0], 5, Some(8))], &floats)).unwrap();
    // A valid NetCDF4 file of a 2^36 dimension chunked by one element.
    let script = "import netCDF4, sys\nds = netCDF4.Dataset(sys.argv[1], 'w')\nds.createDimension('x', 2**36)\n\
                  ds.createVariable('v', 'f4', ('x',), chunksizes=(1,))\nds.close()\n";
    let status =
        std::process::Command::new(python()).args(["-c", script]).arg(published.join("bigdim.nc")).status().unwrap();
    assert!(status.success());

    let data = published.join("data.bin");
    std::fs::write(&data, [0u8, 1, 0, 2, 0, 3, 0, 4]).unwrap();
    let secret = dir.path().join("secret.bin");
    std::fs::write(&secret, b"SECRETSECRET").unwrap();
    let sets = [
        ("passwd", reference_set(&[2], &[2], json!({"v/0": ["/etc/passwd", 0, 4]}))),
        ("escape", reference_set(&[2], &[2], json!({"v/0": ["../secret.bin", 0, 4]}))),
        ("whole", reference_set(&[6], &[6], json!({"v/0": [format!("file://{}", secret.display())]}))),
        ("ssrf", reference_set(&[2], &[2], json!({"v/0": ["http://169.254.169.254/latest/meta-data", 0, 4]}))),
        ("tebibyte", reference_set(&[2], &[2], json!({"v/0": ["data.bin", 0, 1u64 << 40]}))),
        ("shape", reference_set(&[1 << 40], &[1], json!({}))),
        ("ok", reference_set(&[4], &[2], json!({"v/0": ["data.bin", 0, 4], "v/1": ["data.bin", 4, 4]}))),
    ];
    for (name, set) in &sets {
        write_json(&published.join(format!("{name}.json")), set);
    }
    let mut gen = reference_set(&[4], &[1], json!({}));
    gen["gen"] = json!([{"key": "v/{{i}}", "url": "data.bin", "offset": "{{i}}", "length": "2", "dimensions": {"i": {"stop": 3_000_000_000u64}}}]);
    write_json(&published.join("gen.json"), &gen);
    let mut jinja = reference_set(&[1], &[1], json!({}));
    jinja["templates"] = json!({"u": "data.bin"});
    jinja["refs"]["v/0"] =
        json!(["{% for a in range(100000) %}{% for b in range(100000) %}{{ u }}{% endfor %}{% endfor %}", 0, 2]);
    write_json(&published.join("jinja.json"), &jinja);

    let mut config = format!("[[folders]]\npath = \"{}\"\n\n", published.display());
    for name in sets.iter().map(|(name, _)| *name).chain(["gen", "jinja"]) {
        config.push_str(&format!(
            "[[datasets]]\nid = \"set_{name}\"\npath = \"{}/{name}.json\"\n\n",
            published.display()
        ));
    }
    let config_file = dir.path().join("cloudify.toml");
    std::fs::write(&config_file, config).unwrap();
    let started = Instant::now();
    let args = ["--config", config_file.to_str().unwrap(), "--plugin-dir", fixtures().plugin_dir.to_str().unwrap()];
    let server = Server::start_with(&cloudify_bin(), &args, &[]);
    let log = server.log();
    assert!(started.elapsed().as_secs() < 30, "hostile inputs are refused fast:\n{log}");

    let ids = server.get("/datasets").json();
    let ids: Vec<&str> = ids.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for served in ["demo", "good", "set_ok"] {
        assert!(ids.contains(&served), "{served} in {ids:?}\n{log}");
    }
    for refused in [
        "records",
        "wraps",
        "inside",
        "set_passwd",
        "set_escape",
        "set_whole",
        "set_ssrf",
        "set_tebibyte",
        "set_gen",
        "set_jinja",
    ] {
        assert!(!ids.contains(&refused), "{refused} is served: {ids:?}\n{log}");
    }
    let reason = |id: &str, words: &str| {
        let line =
            log.lines().find(|l| l.contains(&format!("dataset={id} ")) || l.contains(&format!("dataset=\"{id}\"")));
        assert!(line.is_some_and(|l| l.contains(words)), "{id} refused for '{words}':\n{log}");
    };
    reason("records", "of a");
    reason("wraps", "overflows");
    reason("inside", "inside the");
    reason("set_passwd", "outside");
    reason("set_escape", "outside");
    reason("set_whole", "outside");
    reason("set_ssrf", "outside");
    reason("set_tebibyte", "over the limit");
    reason("set_gen", "over the limit");
    reason("set_jinja", "fuel");
    // The 2^36 variables are left out of an otherwise served file and set, as arrays of types
    // not served are.
    for id in ["bigdim", "set_shape"] {
        assert!(ids.contains(&id), "{ids:?}\n{log}");
        let info = server.get(&format!("/datasets/{id}/info")).json();
        assert!(info["variables"].is_object() && info["variables"].get("v").is_none(), "{info}");
    }
    assert!(log.lines().any(|l| l.contains("bigdim") && l.contains("[68719476736] chunks is over the limit")), "{log}");
    assert!(
        log.lines().any(|l| l.contains("shape.json") && l.contains("[1099511627776] chunks is over the limit")),
        "{log}"
    );

    // What is served reads the right bytes, and the secret was never read.
    let good = server.get("/datasets/good/faulty/region/v?start=0&shape=4");
    assert_eq!(crate::util::f32s(&good.body), [1.5, 2.5, 3.5, 4.5]);
    let ok = server.get("/datasets/set_ok/faulty/region/v?start=0&shape=4");
    assert_eq!(ok.body, [0u8, 1, 0, 2, 0, 3, 0, 4]);
    assert!(!server.get("/datasets/set_ok/kerchunk.json").text().contains("SECRET"));
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn operators_widen_where_targets_may_point() {
    let dir = tempfile::tempdir().unwrap();
    let (sets, data) = (dir.path().join("sets"), dir.path().join("data"));
    std::fs::create_dir_all(&sets).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("v.bin"), [0u8, 7, 0, 9]).unwrap();
    let set = reference_set(&[2], &[2], json!({"v/0": [data.join("v.bin").to_str().unwrap(), 0, 4]}));
    write_json(&sets.join("set.json"), &set);
    let config = format!(
        "[demo]\nenabled = false\n\n[[datasets]]\nid = \"narrow\"\npath = \"{0}/set.json\"\n\n\
         [[datasets]]\nid = \"wide\"\npath = \"{0}/set.json\"\nallow_targets = [\"{1}\"]\n",
        sets.display(),
        data.display()
    );
    let config_file = dir.path().join("cloudify.toml");
    std::fs::write(&config_file, config).unwrap();
    let args = ["--config", config_file.to_str().unwrap(), "--plugin-dir", fixtures().plugin_dir.to_str().unwrap()];
    let server = Server::start_with(&cloudify_bin(), &args, &[]);
    // (`ramp` comes from the fixture plugin.)
    assert_eq!(server.get("/datasets").json(), json!(["wide", "ramp"]), "{}", server.log());
    assert_eq!(server.get("/datasets/wide/kerchunk/v/0").body, [0u8, 7, 0, 9]);
}

#[test]
fn a_set_pointing_back_at_its_server_does_not_loop() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    // The set reads this very server's copy of the demo file: every chunk read would be a
    // request to itself, whose chunk read is another request, and so on.
    let target = format!("http://127.0.0.1:{port}/datasets/loop/kerchunk/v/0");
    let set = reference_set(&[2], &[2], json!({"v/0": [target, 0, 4]}));
    write_json(&dir.path().join("loop.json"), &set);
    let config = format!(
        "[[datasets]]\nid = \"loop\"\npath = \"{}/loop.json\"\nallow_targets = [\"http://127.0.0.1:{port}/\"]\n",
        dir.path().display()
    );
    let config_file = dir.path().join("cloudify.toml");
    std::fs::write(&config_file, config).unwrap();
    let args = ["--config", config_file.to_str().unwrap(), "--plugin-dir", fixtures().plugin_dir.to_str().unwrap()];
    let server = Server::start_bound(&cloudify_bin(), &format!("127.0.0.1:{port}"), &args, &[]);
    let started = Instant::now();
    let reply = server.get("/datasets/loop/zarr/v/0");
    assert!(reply.status >= 500, "{}", reply.status);
    assert!(reply.json()["error"].is_string());
    assert!(started.elapsed().as_secs() < 30);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = server.log();
    let refused = log.lines().filter(|l| l.contains("status=508")).count();
    assert!((1..=3).contains(&refused), "{refused} self-requests refused (one, plus at most two retries):\n{log}");
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn a_source_that_never_answers_delays_no_other_dataset() {
    // Accepts connections and never answers: the remote set takes its whole timeout to fail.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[[datasets]]\nid = \"slow\"\npath = \"http://127.0.0.1:{port}/slow.json\"\n");
    let config_file = dir.path().join("cloudify.toml");
    std::fs::write(&config_file, config).unwrap();
    let args = ["--config", config_file.to_str().unwrap(), "--plugin-dir", fixtures().plugin_dir.to_str().unwrap()];
    let started = Instant::now();
    let server = Server::launch(&cloudify_bin(), "127.0.0.1:0", &args, &[]);
    assert!(started.elapsed().as_secs() < 20, "listening before the slow source is open");
    let ready = server.get("/ready");
    assert_eq!((ready.status, ready.json()["status"].as_str()), (503, Some("opening")));
    while !server.get("/datasets").json().as_array().unwrap().contains(&json!("demo")) {
        assert!(started.elapsed().as_secs() < 30, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(server.get("/datasets/demo/zarr/.zmetadata").status, 200, "the demo is served while the slow set opens");
    assert_eq!(server.get("/ready").status, 503);
    drop(silent);
}

#[test]
fn datasets_behind_tokens_are_hidden_from_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    let published = dir.path().join("published");
    std::fs::create_dir(&published).unwrap();
    let floats: Vec<u8> = [1.5f32, 2.5].iter().flat_map(|f| f.to_be_bytes()).collect();
    std::fs::write(published.join("good.nc"), classic(0, &[("x", 2)], &[("v", &[0], 5, None)], &floats)).unwrap();
    let config = format!(
        "[[folders]]\npath = \"{}\"\n\n[[auth.groups]]\nname = \"team\"\ndatasets = [\"dem?\"]\ntokens_env = \"TEST_TOKENS\"\n",
        published.display()
    );
    let config_file = dir.path().join("cloudify.toml");
    std::fs::write(&config_file, config).unwrap();
    let args = ["--config", config_file.to_str().unwrap(), "--plugin-dir", fixtures().plugin_dir.to_str().unwrap()];
    let server = Server::start_with(&cloudify_bin(), &args, &[("TEST_TOKENS", "tok-1, tok-2")]);
    let ids = |reply: crate::util::Reply| {
        reply.json().as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };

    // Anonymous: the protected dataset is in no list, and its routes ask for a token.
    assert!(!ids(server.get("/datasets")).contains(&"demo".to_owned()));
    assert!(ids(server.get("/datasets")).contains(&"good".to_owned()));
    for path in
        ["/datasets/demo/info", "/datasets/demo/zarr/.zmetadata", "/datasets/demo/kerchunk.json", "/datasets/demo/stac"]
    {
        let reply = server.get(path);
        assert_eq!(reply.status, 401, "{path}");
        assert!(reply.json()["error"].is_string(), "{path}");
    }
    let search = server.get("/stac/search?limit=100").json();
    assert!(search["features"].as_array().unwrap().iter().all(|f| f["id"] != "demo"), "{search}");
    assert!(search["features"].as_array().unwrap().iter().any(|f| f["id"] == "good"), "{search}");
    assert_eq!(server.get("/stac/collections/cloudify-all/items/demo").status, 404);
    assert!(!server.get("/intake.yaml").text().contains("demo"));
    assert_eq!(server.get("/datasets/good/zarr/.zmetadata").status, 200);

    // A wrong token is refused; a right one, as bearer or API key, opens the dataset.
    assert_eq!(server.get_with("/datasets", ("authorization", "Bearer nope")).status, 401);
    assert_eq!(server.get_with("/datasets/demo/info", ("authorization", "Bearer nope")).status, 401);
    let bearer = ("authorization", "Bearer tok-2");
    assert!(ids(server.get_with("/datasets", bearer)).contains(&"demo".to_owned()));
    assert_eq!(server.get_with("/datasets/demo/zarr/.zmetadata", bearer).status, 200);
    assert_eq!(server.get_with("/datasets/demo/info", ("x-api-key", "tok-1")).status, 200);
    let search = server.get_with("/stac/search?limit=100", bearer).json();
    assert!(search["features"].as_array().unwrap().iter().any(|f| f["id"] == "demo"), "{search}");
}
