//! The intake plugin's catalogs against an in-memory host.

use cloudify_intake::plugin_module;
use cloudify_sdk::testing::{MockDataset, MockHost, MockVariable, TestPlugin};
use futures::executor::block_on;
use serde_json::{json, Value};

fn host() -> MockHost {
    let tas = MockVariable::new("tas", &[("time", 2)], [1f32, 2.]);
    MockHost::new()
        .dataset(MockDataset::new("tas-day").attr("title", "Daily temperature").variable(tas))
        .dataset(MockDataset::new("empty"))
        .base_url("https://data.example/cloudify")
}

fn plugin(config: Value) -> TestPlugin {
    host().config(config).load(plugin_module()).expect("intake loads")
}

fn yaml(plugin: &TestPlugin, uri: &str) -> Value {
    let answer = block_on(plugin.get(uri));
    assert_eq!((answer.status, answer.header("content-type")), (200, Some("text/yaml")), "{}", answer.text());
    serde_norway::from_slice(&answer.body).expect("YAML")
}

#[test]
fn the_root_catalog_has_one_source_per_dataset_with_a_method_parameter() {
    let catalog = yaml(&plugin(json!({})), "/intake.yaml");
    let sources = catalog["sources"].as_object().unwrap();
    assert_eq!(sources.keys().collect::<Vec<_>>(), ["tas-day", "empty"]);
    let tas = &sources["tas-day"];
    assert_eq!(tas["args"]["urlpath"], "https://data.example/cloudify/datasets/tas-day/{{ method }}");
    assert_eq!(tas["parameters"]["method"]["default"], "zarr");
    assert_eq!(tas["description"], "Daily temperature");
    assert_eq!(catalog["metadata"]["access_url"], "https://data.example/cloudify/intake.yaml");
}

#[test]
fn a_dataset_catalog_offers_zarr_and_kerchunk() {
    let catalog = yaml(&plugin(json!({"public_url": "https://proxy.example/"})), "/datasets/tas-day/catalog.yaml");
    assert_eq!(catalog["name"], "tas-day");
    assert_eq!(
        catalog["sources"]["tas-day-kerchunk"]["args"]["urlpath"],
        "https://proxy.example/datasets/tas-day/kerchunk"
    );
    assert_eq!(catalog["sources"]["tas-day-zarr"]["driver"], "zarr");
    assert_eq!(block_on(plugin(json!({})).get("/datasets/nope/catalog.yaml")).status, 404);
}

#[test]
fn a_wrong_default_method_refuses_the_plugin() {
    let refused = host().config(json!({"default_method": "netcdf"})).load(plugin_module());
    assert!(refused.err().is_some_and(|reason| reason.contains("default_method")));
    assert!(host().config(json!({"default_method": "kerchunk"})).load(plugin_module()).is_ok());
}

#[test]
fn the_plugin_keeps_the_contract() {
    block_on(plugin(json!({})).assert_conformance());
}
