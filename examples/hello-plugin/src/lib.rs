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

#[cfg(test)]
mod tests {
    use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable, TestPlugin};
    use futures::executor::block_on;
    use serde_json::json;

    fn plugin() -> TestPlugin {
        let tas = MockVariable::new("tas", &[("time", 2)], [280.5f32, 281.0]).attr("units", "K");
        let time = MockVariable::new("time", &[("time", 2)], [0i32, 31]).attr("units", "days since 2000-01-01");
        let demo = MockDataset::new("demo").variable(time).variable(tas);
        MockHost::new().dataset(demo).dataset(MockDataset::new("empty")).load(super::plugin_module()).unwrap()
    }

    #[test]
    fn hello_counts_the_datasets() {
        let answer = block_on(plugin().get("/hello"));
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json(), json!({"message": "hello from a cloudify plugin", "datasets": 2}));
    }

    #[test]
    fn a_dataset_says_which_variables_it_has() {
        let plugin = plugin();
        let answer = block_on(plugin.get("/datasets/demo/hello"));
        assert_eq!(answer.json(), json!({"dataset": "demo", "variables": ["time", "tas"]}));
        assert_eq!(block_on(plugin.get("/datasets/empty/hello")).json()["variables"], json!([]));
        assert_eq!(block_on(plugin.get("/datasets/missing/hello")).status, 404);
    }

    #[test]
    fn the_plugin_keeps_the_contract() {
        block_on(plugin().assert_conformance());
    }
}
