//! The testing kit itself: the mock host answers as the server does, and the conformance
//! suite catches plugins that break the contract.

use cloudify_sdk::{
    meta::DataType,
    strings,
    testing::{MockDataset, MockHost, MockVariable, TestPlugin, TestRequest},
    ChunkRef, ErrorKind, Host, HostExt, LogLevel, Plugin, Request, Response, Route, Scope,
};
use futures::executor::block_on;
use serde_json::json;

mod well_behaved {
    use super::*;

    cloudify_sdk::declare_plugin!(name: "probe", init: init);

    fn init(host: Host) -> Result<Plugin, String> {
        let config: serde_json::Value = host.config().map_err(|e| e.to_string())?;
        if config.get("refuse").is_some() {
            return Err("refused by config".to_owned());
        }
        Ok(Plugin::new("probe", "0.1.0")
            .route(Route::get(Scope::Dataset, "/chunk/{var}/{*index}", chunk))
            .route(Route::get(Scope::Dataset, "/files", files))
            .route(Route::get(Scope::App, "/plugins", plugins))
            .route(Route::post(Scope::App, "/echo", echo)))
    }

    async fn chunk(host: Host, req: Request) -> Response {
        let id = req.dataset_id().unwrap_or_default();
        let index: Result<Vec<u64>, _> =
            req.param("index").unwrap_or_default().split('.').map(str::parse::<u64>).collect();
        let Ok(index) = index else {
            return Response::error(400, "bad chunk index");
        };
        match host.chunk(id, req.param("var").unwrap_or_default(), &index).await {
            Ok(bytes) => Response::bytes(200, "application/octet-stream", bytes),
            Err(err) => err.into(),
        }
    }

    async fn files(host: Host, req: Request) -> Response {
        match host.dataset_files(req.dataset_id().unwrap_or_default()) {
            Ok(files) => Response::json(200, &files),
            Err(err) => err.into(),
        }
    }

    async fn plugins(host: Host, req: Request) -> Response {
        Response::json(200, &json!({"plugins": host.plugins(), "base": req.base_url()}))
    }

    async fn echo(host: Host, req: Request) -> Response {
        let body = req.body.to_vec();
        let doubled = host.run_blocking(move || [body.clone(), body].concat()).await;
        match doubled {
            Ok(bytes) if !bytes.is_empty() => Response::bytes(200, "application/octet-stream", bytes),
            Ok(_) => Response::error(400, "empty body"),
            Err(err) => err.into(),
        }
    }
}

mod badly_behaved {
    use super::*;

    cloudify_sdk::declare_plugin!(name: "rude", init: init);

    fn init(_host: Host) -> Plugin {
        Plugin::new("rude", "0.1.0")
            .route(Route::get(Scope::App, "/boom/{what}", boom))
            .route(Route::get(Scope::App, "/plain-error", plain_error))
            .route(Route::get(Scope::Dataset, "/head-differs", head_differs))
    }

    async fn boom(_host: Host, req: Request) -> Response {
        if req.param("what") == Some("..") {
            panic!("traversal reached the handler");
        }
        Response::text(200, "fine")
    }

    async fn plain_error(_host: Host, _req: Request) -> Response {
        Response::text(400, "not json")
    }

    async fn head_differs(_host: Host, req: Request) -> Response {
        Response::new(if req.is_head() { 405 } else { 200 })
    }
}

fn demo() -> MockHost {
    let tas = MockVariable::new("tas", &[("time", 3), ("lat", 2)], [1f32, 2., 3., 4., 5., 6.])
        .chunks(&[2, 2])
        .fill_value("NaN")
        .attr("units", "K");
    let names = MockVariable::strings("station", &[("lat", 2)], ["Hamburg", "Reading"]);
    let dataset =
        MockDataset::new("demo").attr("title", "Demo").variable(tas).variable(names).file("a.nc", *b"CDF\x01");
    MockHost::new().dataset(dataset).plugins(&["zarr"]).base_url("https://data.example/")
}

fn probe() -> TestPlugin {
    demo().load(well_behaved::plugin_module()).expect("probe loads")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn metadata_describes_the_arrays_as_built() {
    let plugin = probe();
    let meta = plugin.host().metadata("demo").unwrap();
    assert_eq!(meta.dimensions.get("time"), Some(&3));
    let tas = &meta.variables["tas"];
    assert_eq!((tas.dtype, tas.shape.clone(), tas.chunks.clone()), (DataType::Float32, vec![3, 2], vec![2, 2]));
    assert_eq!(tas.attributes["units"], "K");
    assert_eq!(meta.variables["station"].dtype, DataType::String);
    assert_eq!(meta.attributes["title"], "Demo");
}

#[test]
fn chunks_are_cut_and_edge_chunks_padded_with_the_fill_value() {
    let plugin = probe();
    block_on(async {
        let first = plugin.get("/datasets/demo/chunk/tas/0.0").await;
        assert_eq!(first.status, 200);
        assert_eq!(f32s(&first.body), [1., 2., 3., 4.]);
        let edge = f32s(&plugin.get("/datasets/demo/chunk/tas/1.0").await.body);
        assert_eq!(edge[..2], [5., 6.]);
        assert!(edge[2].is_nan() && edge[3].is_nan());
        let outside = plugin.get("/datasets/demo/chunk/tas/2.0").await;
        assert_eq!((outside.status, outside.error_message().is_some()), (404, true));
        assert_eq!(plugin.get("/datasets/demo/chunk/tas/0").await.status, 400);
        assert_eq!(plugin.get("/datasets/demo/chunk/nope/0.0").await.status, 404);
        let names = plugin.host().chunk("demo", "station", &[0]).await.unwrap();
        assert_eq!(strings::decode(&names).unwrap(), [&b"Hamburg"[..], b"Reading"]);
    });
}

#[test]
fn regions_references_and_files_answer_as_the_server_does() {
    let plugin = probe();
    let host = plugin.host();
    block_on(async {
        assert_eq!(f32s(&host.region("demo", "tas", &[1, 1], &[2, 1]).await.unwrap()), [4., 6.]);
        let past = host.region("demo", "tas", &[2, 0], &[2, 2]).await.unwrap_err();
        assert_eq!(past.status(), ErrorKind::INVALID_INPUT.status());
        let small = demo().max_region_bytes(8).load(well_behaved::plugin_module()).unwrap();
        let big = small.host().region("demo", "tas", &[0, 0], &[3, 2]).await.unwrap_err();
        assert_eq!(big.status(), 413);
        let reference = host.chunk_ref("demo", "tas", &[0, 0]).await.unwrap();
        assert!(matches!(reference, ChunkRef::Inline(bytes) if f32s(&bytes) == [1., 2., 3., 4.]));
        assert_eq!(host.dataset_files("demo").unwrap(), ["a.nc"]);
        assert_eq!(host.read_file("demo", "a.nc", 1, 2).await.unwrap().as_slice(), b"DF");
        assert!(host.read_file("demo", "a.nc", 3, 2).await.is_err());
        assert_eq!(host.file_stat("demo", "a.nc").await.unwrap().size, 4);
    });
}

#[test]
fn requests_are_routed_as_the_server_routes_them() {
    let plugin = probe();
    block_on(async {
        let listing = plugin.get("/plugins").await.json();
        assert_eq!(listing, json!({"plugins": ["zarr", "probe"], "base": "https://data.example"}));
        assert_eq!(plugin.get("/datasets/elsewhere/files").await.status, 404);
        assert_eq!(plugin.get("/datasets/demo/files").await.json(), json!(["a.nc"]));
        assert_eq!(plugin.get("/nowhere").await.status, 404);
        assert_eq!(plugin.send(TestRequest::post("/plugins", "x")).await.status, 405);
        let head = plugin.send(TestRequest::head("/datasets/demo/files")).await;
        assert_eq!((head.status, head.body.len()), (200, 0));
        let echo = plugin.send(TestRequest::post("/echo", "ab")).await;
        assert_eq!(echo.body, b"abab");
    });
}

#[test]
fn init_errors_refuse_the_plugin() {
    let refused = demo().config(json!({"refuse": true})).load(well_behaved::plugin_module());
    assert_eq!(refused.err().as_deref(), Some("plugin probe: refused by config"));
}

#[test]
fn a_plugin_that_keeps_the_contract_conforms() {
    block_on(probe().assert_conformance());
}

#[test]
fn the_conformance_suite_names_each_broken_rule() {
    let plugin = demo().load(badly_behaved::plugin_module()).unwrap();
    let failures = block_on(plugin.conformance());
    let report = failures.join("\n");
    assert!(report.contains("GET /boom/..: hostile input answered 500"), "{report}");
    assert!(report.contains("a handler panicked"), "{report}");
    assert!(report.contains("GET /plain-error: error 400 is not {\"error\": \"...\"} JSON"), "{report}");
    assert!(report.contains("GET /datasets/demo/head-differs: HEAD answered 405, GET 200"), "{report}");
    assert!(plugin.logs().iter().any(|(level, line)| *level == LogLevel::Error && line.contains("traversal")));
}
