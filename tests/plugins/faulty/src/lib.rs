//! A plugin for the host's integration tests: it calls every host service, panics on purpose
//! (in the synchronous part of a handler and inside its future), streams a body, claims a
//! route the host already has, and provides a dataset of its own.

use std::future::{ready, Future, Ready};

use cloudify_sdk::{
    dataset_source,
    meta::{DataType, DatasetMeta, VariableMeta},
    ErrorKind, Host, HostError, HostExt, LogLevel, Plugin, Provider, RVec, Request, Response, Route, Scope,
};
use futures::StreamExt as _;
use serde_json::json;

cloudify_sdk::declare_plugin!(name: "faulty", init: init);
cloudify_sdk::export_plugin!(plugin_module);

fn init(host: Host) -> Plugin {
    host.log(LogLevel::Info, "faulty test plugin initialised");
    Plugin::new("faulty", "9.9.9")
        .description("test plugin")
        .route(Route::get(Scope::App, "/faulty/echo", echo).summary("Echo the request"))
        .route(Route::get(Scope::App, "/faulty/panic-sync", panic_sync))
        .route(Route::get(Scope::App, "/faulty/panic-async", panic_async))
        .route(Route::get(Scope::App, "/faulty/blocking", blocking))
        .route(Route::get(Scope::App, "/faulty/slow", slow).summary("Answer after ?ms= milliseconds"))
        .route(Route::get(Scope::App, "/faulty/stream", stream).content_type("text/plain"))
        .route(Route::get(Scope::App, "/faulty/stream-panic", stream_panic).content_type("text/plain"))
        .route(Route::get(Scope::Dataset, "/faulty/chunk/{var}/{key}", chunk).content_type("application/octet-stream"))
        .route(Route::get(Scope::Dataset, "/faulty/region/{var}", region).content_type("application/octet-stream"))
        // Already a built-in route: the host must refuse this one and keep its own.
        .route(Route::get(Scope::App, "/datasets", echo))
        .dataset_source(dataset_source(Ramp))
}

async fn echo(host: Host, req: Request) -> Response {
    let config: serde_json::Value = host.config().unwrap_or_default();
    let params: serde_json::Map<String, serde_json::Value> =
        req.params.iter().map(|kv| (kv.0.to_string(), kv.1.as_str().into())).collect();
    Response::json(
        200,
        &json!({
            "method": req.method.as_str(), "path": req.path.as_str(), "query": req.query.as_str(),
            "params": params, "x_test": req.header("x-test"), "config": config, "datasets": host.datasets(),
            "base_url": req.base_url(),
        }),
    )
}

async fn slow(host: Host, req: Request) -> Response {
    let ms = req.query.as_str().strip_prefix("ms=").and_then(|ms| ms.parse().ok()).unwrap_or(1000);
    host.sleep(std::time::Duration::from_millis(ms)).await;
    Response::text(200, format!("slept {ms} ms"))
}

fn panic_sync(_host: Host, _req: Request) -> Ready<Response> {
    panic!("boom before the future");
}

async fn panic_async(host: Host, _req: Request) -> Response {
    host.sleep(std::time::Duration::from_millis(5)).await;
    panic!("boom inside the future");
}

async fn blocking(host: Host, _req: Request) -> Response {
    let sum = host.run_blocking(|| (1..=100u64).sum::<u64>()).await;
    let panicked = host.run_blocking(|| -> u64 { panic!("boom on the blocking pool") }).await;
    Response::json(
        200,
        &json!({
            "sum": sum.ok(),
            "panic": panicked.err().map(|e| e.to_string()),
        }),
    )
}

async fn stream(_host: Host, _req: Request) -> Response {
    let pieces = futures::stream::iter(["one ", "two ", "three"]).map(|piece| RVec::from(piece.as_bytes().to_vec()));
    Response::stream(200, "text/plain", pieces)
}

/// A body whose stream panics after its first piece.
async fn stream_panic(_host: Host, _req: Request) -> Response {
    let pieces = futures::stream::iter([true, false]).map(|first| {
        assert!(first, "boom inside the body stream");
        RVec::from(b"one ".to_vec())
    });
    Response::stream(200, "text/plain", pieces)
}

fn numbers(text: &str, sep: char) -> Option<Vec<u64>> {
    text.split(sep).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
}

async fn chunk(host: Host, req: Request) -> Response {
    let (Some(id), Some(var), Some(key)) = (req.dataset_id(), req.param("var"), req.param("key")) else {
        return Response::error(400, "missing path parameters");
    };
    let Some(index) = numbers(key, '.') else {
        return Response::error(400, format!("malformed chunk key '{key}'"));
    };
    match host.chunk(id, var, &index).await {
        Ok(bytes) => Response::bytes(200, "application/octet-stream", bytes),
        Err(err) => err.into(),
    }
}

async fn region(host: Host, req: Request) -> Response {
    let (Some(id), Some(var)) = (req.dataset_id(), req.param("var")) else {
        return Response::error(400, "missing path parameters");
    };
    let mut start = None;
    let mut shape = None;
    for pair in req.query.split('&') {
        match pair.split_once('=') {
            Some(("start", v)) => start = numbers(v, ','),
            Some(("shape", v)) => shape = numbers(v, ','),
            _ => {}
        }
    }
    let (Some(start), Some(shape)) = (start, shape) else {
        return Response::error(400, "start=..&shape=.. required");
    };
    match host.region(id, var, &start, &shape).await {
        Ok(bytes) => Response::bytes(200, "application/octet-stream", bytes),
        Err(err) => err.into(),
    }
}

/// One dataset, `ramp`: `x` = 0, 3, 6, ... (10 int32 values in chunks of 4).
struct Ramp;

const RAMP_LEN: u64 = 10;
const RAMP_CHUNK: u64 = 4;

impl Provider for Ramp {
    fn list(&self) -> Vec<String> {
        vec!["ramp".to_owned()]
    }

    fn metadata(&self, dataset: &str) -> Result<DatasetMeta, HostError> {
        if dataset != "ramp" {
            return Err(HostError::new(ErrorKind::NOT_FOUND, format!("no dataset {dataset}")));
        }
        let x = VariableMeta {
            dtype: DataType::Int32,
            dimensions: vec!["x".to_owned()],
            shape: vec![RAMP_LEN],
            chunks: vec![RAMP_CHUNK],
            attributes: json!({"long_name": "ramp"}).as_object().cloned().unwrap_or_default(),
            fill_value: json!(-1),
            codecs: vec![],
        };
        Ok(DatasetMeta {
            id: "ramp".to_owned(),
            attributes: json!({"title": "ramp from the faulty plugin"}).as_object().cloned().unwrap_or_default(),
            dimensions: [("x".to_owned(), RAMP_LEN)].into_iter().collect(),
            unlimited: vec![],
            last_modified: None,
            variables: [("x".to_owned(), x)].into_iter().collect(),
        })
    }

    fn read_chunk(
        &self,
        _dataset: &str,
        _variable: &str,
        index: &[u64],
    ) -> impl Future<Output = Result<Vec<u8>, HostError>> + Send + 'static {
        let first = index[0] * RAMP_CHUNK;
        let bytes = (first..first + RAMP_CHUNK)
            .flat_map(|i| if i < RAMP_LEN { (i as i32 * 3).to_le_bytes() } else { (-1i32).to_le_bytes() })
            .collect();
        ready(Ok(bytes))
    }
}
