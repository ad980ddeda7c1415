use std::{collections::BTreeMap, path::Path, sync::Arc};

use cloudify_dataset::{hyperslab::unravel, read_region, ChunkRef, Limits, Source, VariableChunks, VirtualSource};
use cloudify_store::Stores;
use serde_json::Value;

use crate::util::netcdf_files;

fn manifest() -> BTreeMap<String, Value> {
    serde_json::from_str(&std::fs::read_to_string(netcdf_files().join("manifest.json")).unwrap()).unwrap()
}

fn open(path: &Path) -> VirtualSource {
    let scan =
        cloudify_netcdf::scan(path, "test", &Limits::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fallback = scan.fallback();
    VirtualSource::new(scan.dataset, Arc::new(Stores::new()), fallback, &Limits::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_variable_equals_what_netcdf4_python_reads() {
    let dir = netcdf_files();
    for (file, entry) in manifest() {
        let source = open(&dir.join(&file));
        let meta = source.metadata().unwrap();
        for (name, expected) in entry["variables"].as_object().unwrap() {
            let var = meta.variables.get(name).unwrap_or_else(|| panic!("{file}: {name} not served"));
            let shape: Vec<u64> = serde_json::from_value(expected["shape"].clone()).unwrap();
            assert_eq!(var.shape, shape, "{file}: {name}");
            assert_eq!(var.dtype.name(), expected["dtype"], "{file}: {name}");
            if let Some(strings) = expected.get("strings") {
                assert_eq!(&read_strings(&source, name).await, strings, "{file}: {name} differs from netCDF4-python");
                continue;
            }
            let want = std::fs::read(dir.join(expected["values"].as_str().unwrap())).unwrap();
            // The whole array, assembled from every chunk through the data plane.
            let got = read_region(&source, name, &vec![0; shape.len()], &shape, u64::MAX).await.unwrap();
            assert!(got == want, "{file}: {name} differs from netCDF4-python");
        }
    }
}

/// Each sub-group of a NetCDF4 file is a dataset of its own, equal to netCDF4-python's group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_groups_are_datasets_of_their_own() {
    let dir = netcdf_files();
    let manifest = manifest();
    let scan = cloudify_netcdf::scan(&dir.join("nc4_groups.nc"), "g", &Limits::default()).unwrap();
    let expected = manifest["nc4_groups.nc"]["groups"].as_object().unwrap();
    assert_eq!(scan.groups.iter().map(|(path, _)| path.as_str()).collect::<Vec<_>>(), ["forecast", "forecast/members"]);
    assert!(!scan.dataset.meta.variables.contains_key("tas"), "the root holds only its own variables");
    for (path, dataset) in scan.groups {
        assert_eq!(dataset.meta.id, cloudify_netcdf::group_id("g", &path));
        let fallback = cloudify_netcdf::fallback_for(&dataset, Some(&path));
        let source = VirtualSource::new(dataset, Arc::new(Stores::new()), fallback, &Limits::default()).unwrap();
        let meta = source.metadata().unwrap();
        let variables = expected[&path].as_object().unwrap();
        assert_eq!(meta.variables.keys().collect::<Vec<_>>(), variables.keys().collect::<Vec<_>>(), "{path}");
        for (name, want) in variables {
            if let Some(strings) = want.get("strings") {
                assert_eq!(&read_strings(&source, name).await, strings, "{path}/{name}");
                continue;
            }
            let shape: Vec<u64> = serde_json::from_value(want["shape"].clone()).unwrap();
            let got = read_region(&source, name, &vec![0; shape.len()], &shape, u64::MAX).await.unwrap();
            assert!(got == std::fs::read(dir.join(want["values"].as_str().unwrap())).unwrap(), "{path}/{name}");
        }
        // Dimensions of enclosing groups are the group's too.
        assert!(meta.dimensions.contains_key("step"), "{path}: {:?}", meta.dimensions);
    }
}

/// Every string of variable `name`, in C order, from its chunks (whose edges are padded).
async fn read_strings(source: &VirtualSource, name: &str) -> Value {
    let var = source.metadata().unwrap().variables[name].clone();
    let grid = var.chunk_grid();
    let mut out = vec![Value::Null; var.shape.iter().product::<u64>() as usize];
    for flat in 0..grid.iter().product::<u64>() {
        let index = unravel(flat, &grid);
        let chunk = source.read_chunk(name, &index).await.unwrap();
        let items = cloudify_dataset::strings::decode(&chunk).unwrap();
        assert_eq!(items.len() as u64, var.chunks.iter().product::<u64>(), "{name}: a full chunk");
        for (i, item) in items.into_iter().enumerate() {
            let at: Vec<u64> = unravel(i as u64, &var.chunks)
                .iter()
                .zip(&index)
                .zip(&var.chunks)
                .map(|((p, c), n)| c * n + p)
                .collect();
            if at.iter().zip(&var.shape).all(|(p, n)| p < n) {
                out[ravel(&at, &var.shape)] = Value::from(std::str::from_utf8(item).unwrap());
            }
        }
    }
    Value::from(out)
}

fn ravel(index: &[u64], shape: &[u64]) -> usize {
    index.iter().zip(shape).fold(0, |acc, (i, n)| acc * n + i) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_variables_and_missing_chunks() {
    let dir = netcdf_files();
    let contiguous = open(&dir.join("nc4_contiguous.nc"));
    assert!(matches!(contiguous.chunk_ref("orog", &[0, 0]).await.unwrap(), ChunkRef::Range { length: 1536, .. }));

    // Compact layout: the values inline, as little-endian bytes.
    let ChunkRef::Inline(code) = contiguous.chunk_ref("code", &[0, 0]).await.unwrap() else {
        panic!("compact data inline")
    };
    assert_eq!(&code[..8], [(-50i32).to_le_bytes(), (-49i32).to_le_bytes()].concat());

    let sparse = open(&dir.join("nc4_sparse.nc"));
    // fletcher32: references, the checksum verified by the numcodecs codec on every read.
    assert!(matches!(sparse.chunk_ref("checked", &[1, 1]).await.unwrap(), ChunkRef::Range { length: 404, .. }));
    assert_eq!(sparse.metadata().unwrap().variables["checked"].codecs.last().unwrap()["name"], "numcodecs.fletcher32");
    assert_eq!(sparse.chunk_ref("sparse", &[0, 1]).await.unwrap(), ChunkRef::Missing);
    let missing: Vec<f32> = sparse
        .read_chunk("sparse", &[0, 1])
        .await
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert!(missing.iter().all(|&v| v == -999.0));
    let meta = sparse.metadata().unwrap();
    assert_eq!(meta.variables["big"].codecs[0]["configuration"]["endian"], "big");
    assert_eq!(meta.variables["sparse"].codecs.last().unwrap()["name"], "numcodecs.zlib");
    assert_eq!(meta.variables["nofill"].fill_value, serde_json::json!(-2_147_483_647), "netCDF default fill");

    // Variable-length strings are read through libnetcdf; concurrent reads share no handle.
    let strings = Arc::new(open(&dir.join("nc4_strings.nc")));
    assert!(matches!(strings.dataset().chunks["flag"], VariableChunks::Fallback { .. }));
    assert!(strings.read_raw_chunk("flag", &[0, 0]).await.is_err(), "no raw bytes for fallback variables");
    assert_eq!(strings.chunk_ref("flag", &[0, 0]).await.unwrap(), ChunkRef::Computed);
    let reads: Vec<_> = (0..16u64)
        .map(|i| {
            let strings = Arc::clone(&strings);
            let (name, index) = if i % 2 == 0 { ("flag", vec![i % 3, (i / 2) % 2]) } else { ("sparse", vec![0]) };
            tokio::spawn(async move { strings.read_chunk(name, &index).await })
        })
        .collect();
    for read in reads {
        read.await.unwrap().unwrap();
    }
    assert!(matches!(
        read_region(&*strings, "flag", &[0, 0], &[1, 1], u64::MAX).await,
        Err(cloudify_dataset::Error::Unsupported { .. })
    ));
}

/// Our chunk references equal Python kerchunk's (`SingleHdf5ToZarr`, `NetCDF3ToZarr`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_references_equal_kerchunk() {
    let dir = netcdf_files();
    let mut compared = 0;
    for (file, entry) in manifest() {
        let Some(refs_file) = entry.get("kerchunk").and_then(Value::as_str) else { continue };
        let refs: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(refs_file)).unwrap()).unwrap();
        let refs = refs["refs"].as_object().unwrap();
        let source = open(&dir.join(&file));
        let meta = source.metadata().unwrap();
        for (name, var) in &meta.variables {
            let VariableChunks::Stored(chunks) = &source.dataset().chunks[name] else { continue };
            let grid = var.chunk_grid();
            for flat in 0..chunks.len() {
                let mut index = vec![0u64; grid.len()];
                let mut rest = flat as u64;
                for d in (0..grid.len()).rev() {
                    index[d] = rest % grid[d];
                    rest /= grid[d];
                }
                let key = if index.is_empty() {
                    format!("{name}/0")
                } else {
                    format!("{name}/{}", index.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
                };
                if !refs.contains_key(&format!("{name}/.zarray")) {
                    // kerchunk leaves fletcher32 variables out.
                    continue;
                }
                match (source.chunk_ref(name, &index).await.unwrap(), refs.get(&key)) {
                    // Compact data: kerchunk leaves the chunk out (and so reads zeros).
                    (ChunkRef::Inline(_), None) if name == "code" => {}
                    (ChunkRef::Range { offset, length, .. }, Some(Value::Array(theirs))) => {
                        assert_eq!(
                            (offset, length),
                            (theirs[1].as_u64().unwrap(), theirs[2].as_u64().unwrap()),
                            "{file}: {key}"
                        );
                        compared += 1;
                    }
                    (ChunkRef::Missing, None) => {}
                    (ours, theirs) => panic!("{file}: {key}: ours {ours:?}, kerchunk {theirs:?}"),
                }
            }
        }
    }
    assert!(compared > 80, "only {compared} references compared");
}

#[test]
fn damaged_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = netcdf_files();
    type Damage = Box<dyn Fn(&Path)>;
    let cases: [(&str, Damage, &str); 4] = [
        (
            "truncated3.nc",
            Box::new(|p: &Path| {
                let bytes = std::fs::read(good.join("nc3_classic.nc")).unwrap();
                std::fs::write(p, &bytes[..bytes.len() - 100]).unwrap();
            }),
            "truncated",
        ),
        (
            "truncated4.nc",
            Box::new(|p: &Path| {
                let bytes = std::fs::read(good.join("nc4_chunked.nc")).unwrap();
                std::fs::write(p, &bytes[..bytes.len() / 3]).unwrap();
            }),
            "corrupt",
        ),
        ("text.nc", Box::new(|p: &Path| std::fs::write(p, b"just some text, no NetCDF").unwrap()), "not a NetCDF file"),
        ("header.nc", Box::new(|p: &Path| std::fs::write(p, b"CDF\x01\x00\x00").unwrap()), "corrupt"),
    ];
    for (name, make, message) in cases {
        let path = dir.path().join(name);
        make(&path);
        let err = cloudify_netcdf::scan(&path, "x", &Limits::default())
            .err()
            .unwrap_or_else(|| panic!("{name} scanned"))
            .to_string();
        assert!(err.contains(message), "{name}: {err}");
    }
    let err = cloudify_netcdf::scan(&dir.path().join("missing.nc"), "x", &Limits::default()).err().unwrap().to_string();
    assert!(err.contains("cannot read"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yearly_series_joins_along_time_like_open_mfdataset() {
    let dir = netcdf_files();
    let series: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("series.json")).unwrap()).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.join("series")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 10);
    let parts = files.iter().map(|f| cloudify_netcdf::scan(f, "series", &Limits::default()).unwrap().dataset).collect();
    let stores = Arc::new(Stores::new());
    let joined = cloudify_dataset::concat(parts, "time", &stores, &Limits::default()).await.unwrap();
    assert_eq!(joined.files.len(), 10);
    // `time` is chunked by 512 in files of 12 steps: it is read once and kept inline.
    assert!(
        matches!(&joined.chunks["time"], VariableChunks::Stored(c) if matches!(c[..], [cloudify_dataset::StoredChunk::Inline(_)]))
    );
    let source = VirtualSource::new(joined, Arc::clone(&stores), None, &Limits::default()).unwrap();
    let meta = source.metadata().unwrap();
    assert_eq!(meta.dimensions["time"], 120);
    for (name, expected) in series["variables"].as_object().unwrap() {
        let shape: Vec<u64> = serde_json::from_value(expected["shape"].clone()).unwrap();
        assert_eq!(meta.variables[name].shape, shape, "{name}");
        let want = std::fs::read(dir.join(expected["values"].as_str().unwrap())).unwrap();
        let got = read_region(&source, name, &vec![0; shape.len()], &shape, u64::MAX).await.unwrap();
        assert!(got == want, "{name} differs from the files read one by one");
    }
    // Chunk 5 along time is the second chunk of the second file.
    let ChunkRef::Range { url, .. } = source.chunk_ref("tas", &[4, 0, 0]).await.unwrap() else { panic!() };
    assert!(url.ends_with("tas_2001.nc"), "{url}");

    // 13 steps in chunks of 4 cannot be followed by another file on a regular grid.
    let mut bad: Vec<_> = std::fs::read_dir(dir.join("series_bad")).unwrap().map(|e| e.unwrap().path()).collect();
    bad.sort();
    let parts = bad.iter().map(|f| cloudify_netcdf::scan(f, "bad", &Limits::default()).unwrap().dataset).collect();
    let err = cloudify_dataset::concat(parts, "time", &stores, &Limits::default()).await.unwrap_err().to_string();
    assert!(err.contains("13 steps along 'time', not a multiple of its chunk length 4"), "{err}");
    // Files with different grids are refused.
    let parts = vec![
        cloudify_netcdf::scan(&files[0], "x", &Limits::default()).unwrap().dataset,
        cloudify_netcdf::scan(&dir.join("nc4_chunked.nc"), "x", &Limits::default()).unwrap().dataset,
    ];
    assert!(cloudify_dataset::concat(parts, "time", &stores, &Limits::default()).await.is_err());
    // Strings along the joined dimension are left out; the rest joins.
    let strings = cloudify_netcdf::scan(&dir.join("nc4_strings.nc"), "s", &Limits::default()).unwrap().dataset;
    let joined =
        cloudify_dataset::concat(vec![strings.clone(), strings], "station", &stores, &Limits::default()).await.unwrap();
    assert_eq!(joined.meta.variables.keys().collect::<Vec<_>>(), ["label", "temp"]);
    assert_eq!(joined.meta.variables["temp"].shape, [10]);
}

/// Zarr v2 and v3 stores written by xarray from a NetCDF4 file serve that file's values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zarr_stores_equal_the_netcdf_they_were_written_from() {
    let dir = netcdf_files();
    let stores: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("zarr-stores.json")).unwrap()).unwrap();
    let manifest = manifest();
    for (store, origin) in stores {
        let source = cloudify_zarr::ZarrSource::open(
            dir.join(&store).to_str().unwrap(),
            "z",
            Arc::new(Stores::new()),
            &Limits::default(),
        )
        .await
        .unwrap();
        let meta = source.metadata().unwrap();
        assert_eq!(meta.dimensions.get("lat"), Some(&30), "{store}: {meta:?}");
        assert_eq!(meta.variables["tas"].dimensions, ["time", "lat", "lon"], "{store}");
        assert_eq!(meta.variables["tas"].chunks, [1, 15, 20], "{store}");
        assert_eq!(meta.variables["tas"].attributes["units"], "K", "{store}");
        assert_eq!(meta.attributes["title"], "chunked, shuffle + zlib", "{store}");
        for (name, expected) in manifest[&origin]["variables"].as_object().unwrap() {
            let shape: Vec<u64> = serde_json::from_value(expected["shape"].clone()).unwrap();
            let want = std::fs::read(dir.join(expected["values"].as_str().unwrap())).unwrap();
            let got = read_region(&source, name, &vec![0; shape.len()], &shape, u64::MAX).await.unwrap();
            assert!(got == want, "{store}: {name} differs from netCDF4-python on {origin}");
        }
        let ChunkRef::Range { url, offset: 0, length } = source.chunk_ref("tas", &[0, 1, 1]).await.unwrap() else {
            panic!()
        };
        assert!(length > 0 && (url.ends_with("tas/0.1.1") || url.ends_with("tas/c/0/1/1")), "{url}");
        assert!(!source.read_raw_chunk("tas", &[0, 1, 1]).await.unwrap().is_empty());
        assert!(source.read_chunk("tas", &[9, 0, 0]).await.is_err());
    }
}

/// A static file server with Range support on 127.0.0.1, stopped when dropped.
struct HttpServer(Option<tokio::runtime::Runtime>);

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

fn http_server(dir: &Path) -> (HttpServer, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
    runtime.spawn(async move { axum::serve(listener, app).await });
    (HttpServer(Some(runtime)), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netcdf_and_zarr_over_http_range_requests() {
    let dir = netcdf_files();
    let (_server, url) = tokio::task::block_in_place(|| http_server(dir));
    let stores = Arc::new(Stores::new());
    let manifest = manifest();
    for file in ["nc3_classic.nc", "nc3_64bit.nc", "nc3_single_record.nc", "cdf5.nc"] {
        let scan = cloudify_netcdf::scan_remote(&format!("{url}/{file}"), "remote", &stores, &Limits::default())
            .await
            .unwrap();
        let source = VirtualSource::new(scan.dataset, Arc::clone(&stores), None, &Limits::default()).unwrap();
        for (name, expected) in manifest[file]["variables"].as_object().unwrap() {
            let shape: Vec<u64> = serde_json::from_value(expected["shape"].clone()).unwrap();
            let want = std::fs::read(dir.join(expected["values"].as_str().unwrap())).unwrap();
            let got = read_region(&source, name, &vec![0; shape.len()], &shape, u64::MAX).await.unwrap();
            assert!(got == want, "{file}: {name} over HTTP differs from netCDF4-python");
        }
    }
    // NetCDF4 is scanned from a temporary copy; its chunks are read by ranges at the URL.
    let scan =
        cloudify_netcdf::scan_remote(&format!("{url}/nc4_chunked.nc"), "x", &stores, &Limits::default()).await.unwrap();
    assert_eq!(scan.dataset.files, [format!("{url}/nc4_chunked.nc")]);
    let source = VirtualSource::new(scan.dataset, Arc::clone(&stores), None, &Limits::default()).unwrap();
    let got = read_region(&source, "tas", &[0, 0, 0], &[5, 30, 40], u64::MAX).await.unwrap();
    assert!(got == std::fs::read(dir.join("nc4_chunked.nc.tas.bin")).unwrap(), "NetCDF4 over HTTP differs");
    assert!(cloudify_netcdf::scan_remote(&format!("{url}/missing.nc"), "x", &stores, &Limits::default())
        .await
        .is_err());

    let tas = std::fs::read(dir.join("nc4_chunked.nc.tas.bin")).unwrap();
    for store in ["chunked_v2.zarr", "chunked_v3.zarr"] {
        let source =
            cloudify_zarr::ZarrSource::open(&format!("{url}/{store}"), "z", Arc::clone(&stores), &Limits::default())
                .await
                .unwrap();
        let got = read_region(&source, "tas", &[0, 0, 0], &[5, 30, 40], u64::MAX).await.unwrap();
        assert!(got == tas, "{store} over HTTP differs from netCDF4-python");
    }
}
