//! A minimal third-party cloudify plugin: one app route and one dataset route.
//!
//! Run with: `cargo build --release` here, copy `target/release/libcloudify_plugin_hello.so`
//! into a plugin folder, then `cloudify serve --plugin-dir that/folder`.

use cloudify_sdk::{Host, HostExt, Plugin, Request, Response, Route, Scope};
use serde_json::json;

cloudify_sdk::declare_plugin!(name: "hello", init: init);
cloudify_sdk::export_plugin!(plugin_module);

fn init(_host: Host) -> Plugin {
    Plugin::new("hello", env!("CARGO_PKG_VERSION"))
        .description("says hello, and counts a dataset's variables")
        .route(Route::get(Scope::App, "/hello", hello).summary("Greeting and dataset count"))
        .route(Route::get(Scope::Dataset, "/hello", hello_dataset).summary("Greeting for one dataset"))
}

/// `GET /hello`
async fn hello(host: Host, _req: Request) -> Response {
    Response::json(200, &json!({"message": "hello from a cloudify plugin", "datasets": host.datasets().len()}))
}

/// `GET /datasets/{id}/hello`
async fn hello_dataset(host: Host, req: Request) -> Response {
    let id = req.dataset_id().unwrap_or_default();
    match host.metadata(id) {
        Ok(meta) => {
            Response::json(200, &json!({"dataset": id, "variables": meta.variables.keys().collect::<Vec<_>>()}))
        }
        Err(err) => err.into(),
    }
}
